"""The dashboard's pages, internal: each reads the App (in a worker thread) and renders a
template; none changes anything stored."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from offload.core.errors import JobNotFound, WorkflowNotFound
from offload.core.selection import ACCEPTED
from offload.core.states import JobState
from offload.dashboard._charts import WINDOWS
from offload.dashboard._filters import PAGE, Filters, read_filters
from offload.dashboard._graph import layout
from offload.dashboard._site import PageError, Site, Viewer


class Pages:
    """The read-only pages of one dashboard."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.app = site.app

    async def overview(self, request: Request, viewer: Viewer) -> Response:
        queues = await self.site.call(self.app.queue_statuses)
        fragment = request.query_params.get("fragment") == "queues"
        return self.site.render(
            request,
            "_queues.html" if fragment else "overview.html",
            queues=queues,
            states=list(JobState),
            windows=list(WINDOWS),
        )

    async def jobs(self, request: Request, viewer: Viewer) -> Response:
        return await self._listing(request, read_filters(request.query_params), "jobs")

    async def dead(self, request: Request, viewer: Viewer) -> Response:
        filters = read_filters(request.query_params, state=JobState.DEAD.value)
        return await self._listing(request, filters, "dead")

    async def _listing(self, request: Request, filters: Filters, page: str) -> Response:
        """A page of jobs matching `filters`, newest first, keyset-paged by `before_id`."""
        if filters.problems:
            return self.site.render(
                request,
                "jobs.html",
                400,
                page=page,
                filters=filters,
                jobs=[],
                following=None,
                states=list(JobState),
                retryable=ACCEPTED["retry"],
            )
        found = await self.site.call(
            self.app.jobs, before_id=filters.cursor, limit=PAGE + 1, **filters.selection
        )
        jobs = found[:PAGE]
        following = jobs[-1].id if len(found) > PAGE else None
        return self.site.render(
            request,
            "jobs.html",
            page=page,
            filters=filters,
            jobs=jobs,
            following=following,
            states=list(JobState),
            retryable=ACCEPTED["retry"],
        )

    async def job(self, request: Request, viewer: Viewer) -> Response:
        job_id = request.path_params["job_id"]
        context = await self.job_context(job_id)
        name = "_job.html" if request.query_params.get("fragment") else "job.html"
        return self.site.render(request, name, **context)

    async def job_context(self, job_id: int) -> dict[str, Any]:
        """What the job page shows (JobNotFound as a 404 page)."""
        try:
            handle = await self.site.call(self.app.job, job_id)
        except JobNotFound:
            raise PageError(404, f"There is no job {job_id} (never stored, or pruned).") from None
        job = await self.site.call(handle.job)
        workflow = None
        if job.workflow_id is not None:
            try:
                workflow = await self.site.call(self.app.workflow_status, job.workflow_id)
            except WorkflowNotFound:
                workflow = None
        events = await self.site.call(self.app.events, job_id=job_id, limit=500)
        return {
            "job": job,
            "workflow": workflow,
            "graph": None if workflow is None else layout(workflow.nodes),
            "events": events,
            "retryable": job.state in ACCEPTED["retry"],
            "cancellable": job.state in ACCEPTED["cancel"],
            "deletable": job.state in ACCEPTED["purge"],
        }

    async def workflows(self, request: Request, viewer: Viewer) -> Response:
        filters = read_filters(request.query_params)
        if "before_id" in filters.problems:
            raise PageError(400, f"before_id: {filters.problems['before_id']}")
        found = await self.site.call(
            self.app.workflow_statuses, before_id=filters.cursor, limit=PAGE + 1
        )
        page = found[:PAGE]
        following = page[-1].id if len(found) > PAGE else None
        return self.site.render(
            request, "workflows.html", workflows=page, following=following, cursor=filters.cursor
        )

    async def workflow(self, request: Request, viewer: Viewer) -> Response:
        workflow_id = request.path_params["workflow_id"]
        try:
            status = await self.site.call(self.app.workflow_status, workflow_id)
        except WorkflowNotFound:
            raise PageError(404, f"There is no workflow {workflow_id}.") from None
        name = "_workflow.html" if request.query_params.get("fragment") else "workflow.html"
        return self.site.render(
            request, name, workflow=status, graph=layout(status.nodes), states=list(JobState)
        )

    async def cron(self, request: Request, viewer: Viewer) -> Response:
        schedules = await self.site.call(self.app.schedule_statuses)
        return self.site.render(request, "cron.html", schedules=schedules)

    async def workers(self, request: Request, viewer: Viewer) -> Response:
        workers = await self.site.call(self.app.worker_statuses)
        running = await self.site.call(self.app.jobs, state=JobState.RUNNING, limit=500)
        by_worker: dict[str, list[int]] = {}
        for job in running:
            if job.worker is not None:
                by_worker.setdefault(job.worker, []).append(job.id)
        return self.site.render(request, "workers.html", workers=workers, running=by_worker)

    async def topics(self, request: Request, viewer: Viewer) -> Response:
        topics = await self.site.call(self.app.topics)
        return self.site.render(request, "topics.html", topics=topics)
