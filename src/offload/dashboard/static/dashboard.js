// offload dashboard: the little behaviour htmx does not cover. Loaded as a file (the
// Content-Security-Policy allows no inline script); reads its data from data-* attributes
// and JSON routes, never from markup it writes.
"use strict";

(function () {
  // "Select all" on a jobs table.
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (!box.classList || !box.classList.contains("check-all")) return;
    var form = box.closest("form");
    form.querySelectorAll("input[name=ids]").forEach(function (item) {
      item.checked = box.checked;
    });
  });

  // Charts: each figure[data-chart] draws one group of series of its data-src.
  var GROUPS = {
    throughput: [["enqueued", "#6b7bd6"], ["started", "#d69b3b"], ["succeeded", "#3a9d5d"]],
    failures: [["failed", "#d6833b"], ["dead", "#c0392b"]],
    latency: [["latency_p50", "#3b8ad6"], ["latency_p95", "#8e44ad"]],
  };
  var REFRESH_MS = 30000;

  function draw(figure, columns) {
    var group = GROUPS[figure.dataset.chart];
    if (!group || typeof uPlot === "undefined") return;
    var data = [columns.at].concat(group.map(function (s) { return columns[s[0]]; }));
    var series = [{}].concat(group.map(function (s) {
      // Points too: a series with one value in the window (a lone latency) still shows.
      return { label: s[0], stroke: s[1], width: 1.5, spanGaps: true, points: { show: true, size: 4 } };
    }));
    var width = Math.max(260, Math.floor(figure.getBoundingClientRect().width) || 320);
    var old = figure.querySelector(".uplot");
    if (old) old.remove();
    new uPlot({ width: width, height: 160, series: series, legend: { show: true } }, data, figure);
    figure.dataset.points = String(columns.at.length);
  }

  function load() {
    var sources = {};
    document.querySelectorAll("figure[data-chart]").forEach(function (figure) {
      var src = figure.dataset.src;
      (sources[src] = sources[src] || []).push(figure);
    });
    Object.keys(sources).forEach(function (src) {
      fetch(src, { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.json() : null; })
        .then(function (body) {
          if (!body) return;
          sources[src].forEach(function (figure) { draw(figure, body.columns); });
        })
        .catch(function () {});
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector("figure[data-chart]")) return;
    load();
    window.setInterval(load, REFRESH_MS);
  });
})();
