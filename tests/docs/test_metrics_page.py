"""docs/metrics.md against the code: its table lists exactly the metrics offload exports,
and its example alert rules load as YAML and name only metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from offload.core.metrics import METRICS
from tests.docs.markdown import examples

PAGE = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
#: A metric name as PromQL writes it.
_NAME = re.compile(r"\boffload_[a-z_]+\b")


def _section(title: str) -> str:
    """The text of one `##` section of the page."""
    text = PAGE.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _rules() -> list[dict[str, Any]]:
    [example] = [e for e in examples(PAGE) if e.section == "Alert rules"]
    [block] = [b for b in example.blocks if b.lang == "yaml"]
    loaded = yaml.safe_load(block.code)
    [group] = loaded["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def test_the_table_lists_every_metric_and_no_other() -> None:
    rows = re.findall(r"^\| `(offload_[a-z_]+)` \| (\w+) \|", _section("Every metric"), re.M)
    assert sorted(name for name, _ in rows) == sorted(METRICS)
    for name, kind in rows:
        assert METRICS[name].kind == kind, name


def test_the_alert_rules_name_only_metrics_that_exist() -> None:
    series = {name for spec in METRICS.values() for name in spec.series()}
    rules = _rules()
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "for", "labels", "annotations"}, rule
        named = set(_NAME.findall(rule["expr"]))
        assert named, f"{rule['alert']} names no offload metric"
        assert named <= series, f"{rule['alert']} names unknown metrics: {named - series}"
    used = {name for rule in rules for name in _NAME.findall(rule["expr"])}
    # The four the page promises: depth growing, oldest age, no workers, dead-job rate.
    assert {
        "offload_queue_jobs",
        "offload_queue_oldest_age_seconds",
        "offload_workers",
        "offload_jobs_finished_total",
    } <= used
    assert any('outcome="dead"' in rule["expr"] for rule in rules)


def test_the_alert_rules_state_labels_that_exist() -> None:
    """A label matcher `{name="..."}` uses a label of the metric it follows."""
    for rule in _rules():
        for name, matchers in re.findall(r"(offload_[a-z_]+)\{([^}]*)\}", rule["expr"]):
            spec = next(s for s in METRICS.values() if name in s.series())
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", matchers):
                assert label in spec.labels, f"{rule['alert']}: {name} has no label {label}"
