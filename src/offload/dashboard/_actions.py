"""The dashboard's actions, internal: every POST, each behind the CSRF check and the admin
scope (`Site.guard`), each one App call (a bulk operation by filter runs `App.bulk` in a
thread, batch by batch, its progress polled by the page)."""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, cast

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from offload.core.errors import OffloadError
from offload.core.selection import ACCEPTED, JobSelection, Operation
from offload.core.times import parse_time
from offload.dashboard import _security as security
from offload.dashboard._filters import read_filters
from offload.dashboard._pages import Pages
from offload.dashboard._site import Form, PageError, Site, Viewer, read_form, safe_next

#: What the dashboard calls each bulk operation.
LABELS: dict[str, str] = {"retry": "Retry", "cancel": "Cancel", "purge": "Delete"}
#: Jobs per transaction of a bulk operation by filter.
BATCH_SIZE = 1000
#: Bulk runs remembered for their progress pages (the oldest finished ones are dropped).
KEPT_RUNS = 100
#: The most job ids one form may select.
MAX_SELECTED = 1000


@dataclass
class BulkRun:
    """One bulk operation by filter running (or run) in a thread of this process."""

    id: int
    operation: str
    description: str
    expected: int
    matched: int = 0
    changed: int = 0
    batches: int = 0
    done: bool = False
    error: str | None = None
    steps: list[tuple[int, int]] = field(default_factory=list)


class Actions:
    """The POST routes of one dashboard."""

    def __init__(self, site: Site, pages: Pages) -> None:
        self.site = site
        self.app = site.app
        self.pages = pages
        self.runs: OrderedDict[int, BulkRun] = OrderedDict()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    async def _form(self, request: Request) -> Form:
        return await read_form(request)

    def _back(self, request: Request, form: Form, default: str = "/") -> Response:
        target = form.get("next")
        prefix = request.scope.get("root_path", "")
        wanted = target if isinstance(target, str) else prefix + default
        return RedirectResponse(safe_next(request, wanted), status_code=303)

    @staticmethod
    def _text(form: Form, name: str, limit: int = 2000) -> str:
        value = form.get(name)
        if not isinstance(value, str) or not value.strip() or len(value) > limit:
            raise PageError(422, f"The form needs a {name} field.")
        return value

    # -- login ------------------------------------------------------------------------

    async def login(self, request: Request, viewer: Viewer) -> Response:
        form = await self._form(request)
        token = form.get("token")
        target = form.get("next")
        following = safe_next(request, target if isinstance(target, str) else None)
        if not self.site.auth:
            return RedirectResponse(following, status_code=303)
        if not isinstance(token, str) or not token.strip():
            return self._login_again(request, "Paste an API token.", following)
        info = await self.site.call(self.app.authenticate, token.strip())
        if info is None:
            return self._login_again(
                request, "That is not a live API token (unknown, revoked or mistyped).", following
            )
        if not info.allows("read"):
            return self._login_again(
                request, f"Token {info.name!r} lacks the read scope the dashboard needs.", following
            )
        response = RedirectResponse(following, status_code=303)
        security.set_session(response, request, token.strip())
        return response

    def _login_again(self, request: Request, message: str, following: str) -> Response:
        return self.site.render(request, "login.html", 401, message=message, next=following)

    async def logout(self, request: Request, viewer: Viewer) -> Response:
        prefix = request.scope.get("root_path", "")
        response = RedirectResponse(prefix + "/", status_code=303)
        security.clear_session(response, request)
        return response

    # -- one job ----------------------------------------------------------------------

    async def job_action(self, request: Request, viewer: Viewer) -> Response:
        """POST /jobs/{id}/{retry|cancel|delete}; an htmx request gets the job's panel."""
        job_id: int = request.path_params["job_id"]
        operation = request.path_params["operation"]
        await self.pages.job_context(job_id)  # a 404 page for an unknown job
        if operation == "retry":
            await self.site.call(self.app.retry, job_id)
        elif operation == "cancel":
            await self.site.call(self.app.cancel, job_id)
        elif operation == "delete":
            await self.site.call(self.app.purge, ids=[job_id])
        else:
            raise PageError(404, f"No such action: {operation[:40]}.")
        if operation == "delete":
            prefix = request.scope.get("root_path", "")
            return RedirectResponse(prefix + "/jobs", status_code=303)
        if request.headers.get("hx-request"):
            # A note only: the page's live stream alone redraws the job, so an answer
            # that arrives late never puts an older state over a newer one.
            done = {"retry": "Retried: the job is queued again.", "cancel": "Cancel asked."}
            return self.site.render(request, "_message.html", message=done[operation], kind="info")
        return self._back(request, await self._form(request), f"/jobs/{job_id}")

    async def selected(self, request: Request, viewer: Viewer) -> Response:
        """POST /jobs/selected: retry, cancel or delete the checked jobs."""
        form = await self._form(request)
        operation = _operation(form.get("operation"))
        ids = []
        for value in form.getlist("ids"):
            if not value.isdigit() or len(value) > 19:
                raise PageError(422, "The selection holds something that is not a job id.")
            ids.append(int(value))
        if not ids:
            raise PageError(422, "Check at least one job first.")
        if len(ids) > MAX_SELECTED:
            raise PageError(422, f"Select at most {MAX_SELECTED} jobs, or act by filter.")
        if operation == "retry":
            await self.site.call(self.app.retry_many, ids=ids)
        elif operation == "cancel":
            await self.site.call(self.app.cancel_many, ids=ids)
        else:
            await self.site.call(self.app.purge, ids=ids)
        return self._back(request, form, "/jobs")

    # -- by filter --------------------------------------------------------------------

    async def bulk_confirm(self, request: Request, viewer: Viewer) -> Response:
        """GET /jobs/bulk: how many jobs the filter matches, and the button to go on."""
        operation = _operation(request.query_params.get("operation"))
        filters = read_filters(request.query_params)
        if filters.problems:
            raise PageError(400, _problems(filters.problems))
        if not filters.selection:
            raise PageError(422, "Filter the jobs first: a bulk action never means every job.")
        selection = cast(JobSelection, filters.selection)
        # Checked now (nothing runs before the first batch is asked for): a selection the
        # operation refuses is said here, before the user confirms anything.
        await self.site.call(self.app.bulk, cast(Operation, operation), **selection)
        count = await self.site.call(self.app.count_jobs, **selection)
        states = ", ".join(sorted(s.value for s in ACCEPTED[operation]))
        return self.site.render(
            request,
            "bulk_confirm.html",
            operation=operation,
            label=LABELS[operation],
            filters=filters,
            count=count,
            states=states,
        )

    async def bulk_start(self, request: Request, viewer: Viewer) -> Response:
        """POST /jobs/bulk: start the operation in a thread; its progress page follows."""
        form = await self._form(request)
        operation = _operation(form.get("operation"))
        values = dict(form.items())
        filters = read_filters(values)
        if filters.problems:
            raise PageError(400, _problems(filters.problems))
        if not filters.selection:
            raise PageError(422, "Filter the jobs first: a bulk action never means every job.")
        selection = cast(JobSelection, filters.selection)
        progress = await self.site.call(
            self.app.bulk, cast(Operation, operation), batch_size=BATCH_SIZE, **selection
        )  # checked here: a refused selection is a page now, not a failed run later
        expected = int(values.get("expected", "0")) if values.get("expected", "").isdigit() else 0
        with self._lock:
            run = BulkRun(next(self._ids), operation, filters.query, expected)
            self.runs[run.id] = run
            while len(self.runs) > KEPT_RUNS:
                oldest = next(iter(self.runs))
                if not self.runs[oldest].done:
                    break
                del self.runs[oldest]
        threading.Thread(
            target=_drive, args=(run, progress), name=f"offload-bulk-{run.id}", daemon=True
        ).start()
        prefix = request.scope.get("root_path", "")
        return RedirectResponse(f"{prefix}/bulk/{run.id}", status_code=303)

    async def bulk_progress(self, request: Request, viewer: Viewer) -> Response:
        """GET /bulk/{id}: the run's progress (a fragment that polls while it runs)."""
        run = self.runs.get(request.path_params["run_id"])
        if run is None:
            raise PageError(404, "No such bulk run in this server process (finished long ago?).")
        name = "_bulk.html" if request.query_params.get("fragment") else "bulk.html"
        return self.site.render(request, name, run=run, label=LABELS[run.operation])

    # -- queues, schedules, workflows, topics ---------------------------------------------

    async def queue_action(self, request: Request, viewer: Viewer) -> Response:
        form = await self._form(request)
        name = self._text(form, "name", 200)
        if request.path_params["operation"] not in ("pause", "resume"):
            raise PageError(404, "Queues can be paused or resumed.")
        if request.path_params["operation"] == "pause":
            await self.site.call(self.app.pause_queue, name)
        else:
            await self.site.call(self.app.resume_queue, name)
        return self._back(request, form)

    async def cron_action(self, request: Request, viewer: Viewer) -> Response:
        form = await self._form(request)
        name = self._text(form, "name", 200)
        operation = request.path_params["operation"]
        if operation not in ("pause", "resume", "run"):
            raise PageError(404, "Schedules can be paused, resumed or run now.")
        if operation == "run":
            handle = await self.site.call(self.app.cron_run, name)
            prefix = request.scope.get("root_path", "")
            return RedirectResponse(f"{prefix}/jobs/{handle.id}", status_code=303)
        await self.site.call(self.app.cron_pause, name, operation == "pause")
        return self._back(request, form, "/cron")

    async def workflow_cancel(self, request: Request, viewer: Viewer) -> Response:
        workflow_id = request.path_params["workflow_id"]
        await self.site.call(self.app.cancel_workflow, workflow_id)
        form = await self._form(request)
        return self._back(request, form, f"/workflows/{workflow_id}")

    async def replay(self, request: Request, viewer: Viewer) -> Response:
        """POST /topics/replay: move a group's cursor to an offset or a time."""
        form = await self._form(request)
        topic, group = self._text(form, "topic", 100), self._text(form, "group", 100)
        position = self._text(form, "position", 100).strip()
        options: dict[str, Any] = {}
        if position.isdigit() and len(position) < 19:
            options["offset"] = int(position)
        else:
            try:
                options["at"] = parse_time(position)
            except ValueError:
                raise PageError(
                    422,
                    f"{position[:40]!r} is neither an offset nor a time (1h, 2026-11-28T09:30Z)",
                ) from None
        await self.site.call(self.app.replay, topic, group, **options)
        return self._back(request, form, "/topics")


def _drive(run: BulkRun, progress: Any) -> None:
    """Run a bulk operation to its end, noting each batch (in a thread of its own)."""
    try:
        for step in progress:
            run.matched, run.changed = step.matched_so_far, step.changed
            run.batches += 1
            run.steps.append((step.matched_so_far, step.changed))
            del run.steps[:-20]
            if step.done:
                break
    except OffloadError as exc:
        run.error = str(exc)
    except Exception as exc:  # reported on its page; the server goes on
        run.error = f"unexpected {type(exc).__name__}"
    finally:
        run.done = True


def _operation(value: object) -> str:
    if value == "delete":
        return "purge"
    if not isinstance(value, str) or value not in LABELS:
        raise PageError(422, "The action must be retry, cancel or delete.")
    return value


def _problems(problems: dict[str, str]) -> str:
    return "; ".join(f"{name}: {text}" for name, text in problems.items())
