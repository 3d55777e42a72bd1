"""Every exception offload raises, under one root.

Tree::

    OffloadError
    ├── ConfigurationError        bad URL, bad option
    │   ├── ExtraMissing          a feature whose extra is not installed
    │   ├── AppImportFailed       the module holding the App raised while importing
    │   ├── UnknownShard          a shard map names a shard (cluster) the App was not given
    │   ├── QueueOnTwoShards      a shard map puts one queue (or topic) on two shards
    │   ├── ShardMismatch         a shard's database holds ids of another shard's range
    │   └── ElectionSettingInvalid a maintenance election setting out of its range
    ├── ValidationError           bad input to a public call
    │   ├── SerializationError    a value that is not JSON
    │   ├── PayloadTooLarge       arguments or result over the size limit
    │   ├── UnknownTask           a task name nobody registered
    │   ├── ArgumentsMismatch     arguments the task's signature cannot take
    │   ├── IdempotencyConflict   an idempotency key reused for a different job
    │   ├── TokenExists           an API token of that name exists already
    │   ├── BadEventId            an event cursor (Last-Event-ID) that is not one
    │   ├── InvalidWorkflow       a cycle, a missing node, a callback that cannot take results
    │   ├── UnknownDependency     depends_on names a job id that does not exist
    │   ├── OffsetOutOfRange      a replay to an offset the topic has not reached
    │   └── CrossShard            one operation over queues of two shards (e.g. a workflow)
    ├── JobNotFound               no job with that id
    ├── WorkflowNotFound          no workflow with that id
    ├── ScheduleNotFound          no schedule with that name
    ├── QueueNotFound             no queue of that name has a policy, jobs or workers
    ├── GroupNotFound             no consumer group of that name on the topic
    ├── TokenNotFound             no API token of that name
    ├── BackPressure              the queue pushes back: retry after `retry_after` seconds
    │   ├── QueueFull             at its max_depth
    │   └── Overloaded            over a watermark or its latency target (admission control)
    ├── DuplicateJob              a unique key is held (on_duplicate="raise")
    ├── InvalidTransition         the job's state does not allow the operation
    ├── LeaseLost                 a worker's claim on a job was taken over
    ├── JobFailed                 a job ended dead/cancelled; raised by JobHandle.result()
    ├── JobCancelled              raised inside a task whose job was asked to stop
    ├── ParentFailed              stored as a job's error: a parent ended dead or cancelled
    ├── ParentResultsTooLarge     a job's parents' results are over parent_results_limit
    ├── BatchResultMismatch       a batch function returned a result count unlike its items
    ├── ResultTimeout             JobHandle.result() waited past its timeout
    ├── ApiError                  an HTTP API answer with no class above (offload.client)
    │   ├── Unauthorized          401: no live bearer token
    │   ├── Forbidden             403: the token lacks the route's scope
    │   └── RequestRejected       400, 408, 413, 422: the request is wrong (a ValidationError)
    └── BackendError              the database refused or could not be reached
        ├── SchemaMismatch        schema older or newer than this code
        ├── QueueMoved            an insert refused by a shard that gave its queue away
        └── BackendUnavailable    cannot reach or write to the database (now, or for good)
            ├── StorageFull       the disk or the database's size limit is full
            └── OutcomeUnknown    the connection broke after a write was sent
"""

from __future__ import annotations

from typing import Any


class OffloadError(Exception):
    """Root of every offload error."""


class ConfigurationError(OffloadError):
    """The App, a backend URL or an option is misconfigured."""


class AppImportFailed(ConfigurationError):
    """Importing the user's module that holds the App raised `error` (a syntax error, a
    missing package, an exception at import); its traceback says where."""

    def __init__(self, module: str, error: Exception) -> None:
        self.module, self.error = module, error
        super().__init__(f"importing {module!r} failed: {type(error).__name__}: {error}")


class ExtraMissing(ConfigurationError):
    """A feature needs an optional extra that is not installed: `feature` (what was
    asked for) needs `extra` (`pip install 'offload[extra]'`); `missing` is the module
    not found, when known. One message for every extra, so each says how to fix it."""

    def __init__(self, feature: str, extra: str, missing: str | None = None) -> None:
        self.feature, self.extra, self.missing = feature, extra, missing
        gone = f" ({missing} is missing)" if missing else ""
        super().__init__(f"{feature} needs the {extra} extra{gone}: pip install 'offload[{extra}]'")

    @classmethod
    def of(cls, feature: str, extra: str, error: ModuleNotFoundError) -> ExtraMissing:
        """The error for `error`, an import that failed: names its top-level package."""
        return cls(feature, extra, (error.name or "a module").partition(".")[0])


class UnknownShard(ConfigurationError):
    """A shard map names `shard`, which is not one of the App's `shards` (`known`)."""

    def __init__(self, shard: str, known: list[str], queue: str | None = None) -> None:
        self.shard, self.known, self.queue = shard, known, queue
        where = "" if queue is None else f" (for queue {shorten(queue)})"
        super().__init__(
            f"unknown shard {shorten(shard)}{where}{_did_you_mean(shard, known, 'shards')}"
        )


class QueueOnTwoShards(ConfigurationError):
    """A shard map puts `queue` on more than one shard: a queue (or topic) lives on one."""

    def __init__(self, queue: str, shards: list[str]) -> None:
        self.queue, self.shards = queue, shards
        super().__init__(
            f"shard map puts queue {shorten(queue)} on {len(shards)} shards "
            f"({', '.join(map(repr, shards))}): a queue lives on exactly one"
        )


class ShardMismatch(ConfigurationError):
    """Shard `shard`'s database holds ids outside the range of its position in the shard
    list (`reason` says which): the list was reordered, or a database that served alone
    was added past the first place."""

    def __init__(self, shard: str, location: str, reason: str) -> None:
        self.shard, self.location, self.reason = shard, location, reason
        super().__init__(f"shard {shorten(shard)} ({location}): {reason}")


class ElectionSettingInvalid(ConfigurationError):
    """A worker's or scheduler's maintenance election setting (`setting`) holds `value`,
    which `reason` says is wrong: refused at start, before any lease is taken."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting, self.value, self.reason = setting, value, reason
        super().__init__(f"{setting} must be {reason}, got {value!r}")


class ValidationError(OffloadError, ValueError):
    """A public call was given bad input; nothing was stored.

    `index` is the place of the bad call in an `enqueue_many` batch, where the error is one
    call's (None otherwise); the message then starts with "call N: "."""

    index: int | None = None

    def at_call(self, index: int) -> None:
        """This error, said of call `index` of a batch: the caller of `enqueue_many` learns
        which of its calls to mend (the error's class and fields stay)."""
        if self.index is None:
            self.index = index
            self.args = (f"call {index}: {self}",)


class SerializationError(ValidationError):
    """A value is not plain JSON (dict with str keys, list, str, int, float, bool, None)."""


class PayloadTooLarge(ValidationError):
    """An encoded payload is over its size limit."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what, self.size, self.limit = what, size, limit
        super().__init__(f"{what} is {size} bytes encoded, over the limit of {limit} bytes")


class UnknownTask(ValidationError):
    """No task of that name is registered with the App."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        hint = _did_you_mean(name, known, "tasks")
        super().__init__(f"unknown task {shorten(name)}{hint}")


class ArgumentsMismatch(ValidationError):
    """The arguments do not fit the task's signature: a call with them could never run.

    `reason` is what `inspect.Signature.bind` objected to, with the signature; `index` is
    the position of the bad call in an `enqueue_many` batch (None for a single call).
    """

    def __init__(self, task: str, reason: str, index: int | None = None) -> None:
        self.task, self.reason, self.index = task, reason, index
        where = "" if index is None else f"call {index}: "
        super().__init__(f"{where}arguments do not match task {shorten(task)}: {reason}")


class IdempotencyConflict(ValidationError):
    """The idempotency key `key` names job `job_id`, enqueued with another task or other
    arguments within the retention period (None: an earlier job of the same batch);
    nothing was stored."""

    def __init__(self, key: str, job_id: int | None) -> None:
        self.key, self.job_id = key, job_id
        holder = "an earlier job of this batch" if job_id is None else f"job {job_id}"
        super().__init__(
            f"idempotency key {shorten(key)} is held by {holder}, enqueued with a "
            "different task or arguments; use a new key for a different job"
        )


class BadEventId(ValidationError):
    """`text` is not an event cursor (`<tx>-<position>`, as an event's `id` gives it);
    `reason` says what is wrong with it."""

    def __init__(self, text: str, reason: str) -> None:
        self.text, self.reason = text, reason
        super().__init__(f"bad event id {shorten(text)}: {reason}")


class InvalidWorkflow(ValidationError):
    """A workflow that cannot be stored as given: `reason` says why (a cycle, a node name
    missing or repeated, a callback that cannot take its parents' results); `node` names
    the node at fault when there is one."""

    def __init__(self, reason: str, node: str | None = None) -> None:
        self.reason, self.node = reason, node
        where = "" if node is None else f" (node {shorten(node)})"
        super().__init__(f"invalid workflow{where}: {reason}")


class CrossShard(ValidationError):
    """One operation (`what`: a workflow, a transactional enqueue) names queues of several
    shards (`shards`, by queue), which no single database transaction can hold."""

    def __init__(self, what: str, shards: dict[str, str]) -> None:
        self.what, self.shards = what, shards
        placed = ", ".join(f"{shorten(q)} on {s!r}" for q, s in sorted(shards.items()))
        super().__init__(
            f"{what} spans shards ({placed}): put its queues on one shard (docs/sharding.md)"
        )


class UnknownDependency(ValidationError):
    """A job was enqueued to wait for job `job_id`, and no job has that id."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"depends_on names job {shorten(job_id)}, and no job has that id")


class OffsetOutOfRange(ValidationError):
    """A replay of topic `topic` to `offset`, past its newest message (`last`); the cursor
    did not move."""

    def __init__(self, topic: str, offset: int, last: int) -> None:
        self.topic, self.offset, self.last = topic, offset, last
        super().__init__(
            f"offset {shorten(offset)} is past the end of topic {shorten(topic)} "
            f"(its newest message is at {last})"
        )


class JobNotFound(OffloadError, LookupError):
    """No job with that id exists (it may have been pruned)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"no job with id {shorten(job_id)}")


class WorkflowNotFound(OffloadError, LookupError):
    """No workflow with that id exists (it may have been pruned)."""

    def __init__(self, workflow_id: int) -> None:
        self.workflow_id = workflow_id
        super().__init__(f"no workflow with id {shorten(workflow_id)}")


class ScheduleNotFound(OffloadError, LookupError):
    """No periodic schedule of that name is stored."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        hint = "" if known is None else _did_you_mean(name, known, "schedules")
        super().__init__(f"no schedule named {shorten(name)}{hint}")


class QueueNotFound(OffloadError, LookupError):
    """No queue of that name has a policy, jobs or a worker serving it."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        super().__init__(
            f"unknown queue {shorten(name)}{_did_you_mean(name, known or [], 'queues')}"
        )


class GroupNotFound(OffloadError, LookupError):
    """No consumer group `group` subscribes to topic `topic` (groups are stored when a
    worker serving them first starts, or by `App.subscribe`)."""

    def __init__(self, topic: str, group: str, known: list[str] | None = None) -> None:
        self.topic, self.group = topic, group
        hint = _did_you_mean(group, known or [], "groups")
        super().__init__(f"no group {shorten(group)} on topic {shorten(topic)}{hint}")


class TokenExists(ValidationError):
    """An API token of that name exists already; nothing was stored."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a token named {shorten(name)} exists already; revoke it first")


class TokenNotFound(OffloadError, LookupError):
    """No API token of that name."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown token {shorten(name)}{_did_you_mean(name, known, 'tokens')}")


class BackPressure(OffloadError):
    """The queue `queue` turned the enqueue away; nothing was stored. Try again in
    `retry_after` seconds (> 0), estimated from the queue's measured drain rate."""

    def __init__(self, queue: str, retry_after: float, message: str) -> None:
        self.queue, self.retry_after = queue, retry_after
        super().__init__(f"{message}; retry after {retry_after:.1f} s")


class QueueFull(BackPressure):
    """The queue holds `depth` jobs not yet started and its bound is `limit` (max_depth)."""

    def __init__(self, queue: str, depth: int, limit: int, retry_after: float) -> None:
        self.depth, self.limit = depth, limit
        super().__init__(
            queue,
            retry_after,
            f"queue {shorten(queue)} is full: {depth} jobs waiting, max_depth {limit}",
        )


class Overloaded(BackPressure):
    """Admission control refused a job below the queue's admit_priority; `reason` says
    which watermark was crossed."""

    def __init__(self, queue: str, reason: str, retry_after: float) -> None:
        self.reason = reason
        super().__init__(queue, retry_after, f"queue {shorten(queue)} is overloaded: {reason}")


class DuplicateJob(OffloadError):
    """The unique key `key` is held (an enqueue with `on_duplicate="raise"`); nothing was
    stored. `job_id` is the job holding it, None when it is an earlier call of the same
    batch; `position` is the refused call's index in an `enqueue_many` batch."""

    def __init__(self, key: str, job_id: int | None, position: int | None = None) -> None:
        self.key, self.job_id, self.position = key, job_id, position
        where = "" if position is None else f"call {position}: "
        holder = "an earlier call of this batch" if job_id is None else f"job {job_id}"
        super().__init__(f"{where}unique key {shorten(key)} is held by {holder}")


class InvalidTransition(OffloadError):
    """The job is in a state that does not allow the requested operation."""

    def __init__(self, job_id: int, state: str, operation: str) -> None:
        self.job_id, self.state, self.operation = job_id, state, operation
        super().__init__(f"cannot {operation} job {job_id}: it is {state}")


class LeaseLost(OffloadError):
    """This worker no longer owns the job: its lease expired and another attempt took over."""

    def __init__(self, job_id: int, attempt: int) -> None:
        self.job_id, self.attempt = job_id, attempt
        super().__init__(f"lease on job {job_id} (attempt {attempt}) was lost")


class JobFailed(OffloadError):
    """The job ended without success; `error` is its last recorded error."""

    def __init__(self, job_id: int, state: str, error: dict[str, Any] | None) -> None:
        self.job_id, self.state, self.error = job_id, state, error
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        super().__init__(f"job {job_id} is {state}{detail}")


class JobCancelled(OffloadError):
    """Raised inside a task by `raise_if_cancelled()` once its job was asked to stop."""


class ParentFailed(OffloadError):
    """Why a waiting job ended dead: its parent `parent_id` (node `node`) ended `state`,
    and the edge's rule is `on_parent_failure="fail"`. Stored as the child's error."""

    def __init__(self, parent_id: int, node: str | None, state: str) -> None:
        self.parent_id, self.node, self.state = parent_id, node, state
        name = "" if node is None else f" (node {node!r})"
        super().__init__(f"parent job {parent_id}{name} ended {state}")


class ParentResultsTooLarge(OffloadError):
    """The results of job `job_id`'s parents total `size` bytes of JSON, over the App's
    `parent_results_limit` (`limit`): the job fails without running."""

    def __init__(self, job_id: int, size: int, limit: int) -> None:
        self.job_id, self.size, self.limit = job_id, size, limit
        super().__init__(
            f"the results of job {job_id}'s parents total {size} bytes, over the limit of "
            f"{limit} (App(parent_results_limit=...)); pass references, not data"
        )


class BatchResultMismatch(OffloadError):
    """A batch task's function returned `got` results for `expected` items (or not a
    list): which result belongs to which item is unknown, so every item of the call fails."""

    def __init__(self, task: str, expected: int, got: int | str) -> None:
        self.task, self.expected, self.got = task, expected, got
        super().__init__(
            f"batch task {shorten(task)} returned {got} results for {expected} items; "
            "return one result (or ItemFailed) per item, in the items' order"
        )


class ResultTimeout(OffloadError, TimeoutError):
    """The job did not finish within the time the caller was willing to wait."""

    def __init__(self, job_id: int, timeout: float, state: str, what: str = "job") -> None:
        self.job_id, self.timeout, self.state = job_id, timeout, state
        super().__init__(f"{what} {job_id} still {state} after {timeout:g}s")


class ApiError(OffloadError):
    """The HTTP API answered `status` with the error `type` (its stable name) and no class
    of its own: raised by `offload.client`. `field` names the request field at fault."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None) -> None:
        self.status, self.type, self.field = status, type_, field
        super().__init__(message)


class Unauthorized(ApiError):
    """401: the server checks bearer tokens and the request had no live one."""


class Forbidden(ApiError):
    """403: the bearer token is live but lacks the scope the route needs."""


class RequestRejected(ApiError, ValidationError):
    """The HTTP API refused the request itself before calling the App (malformed JSON, a
    field of the wrong type, a body over the limit or too slow to arrive); nothing was
    stored."""


class BackendError(OffloadError):
    """The database refused an operation or could not be reached."""


class SchemaMismatch(BackendError):
    """The database schema version differs from the one this code needs."""

    def __init__(self, location: str, found: int, needed: int) -> None:
        self.location, self.found, self.needed = location, found, needed
        if found < needed:
            advice = "run `offload migrate` to upgrade it"
        else:
            advice = "upgrade offload: the database was migrated by a newer version"
        super().__init__(
            f"{location}: database schema is version {found}, this offload needs {needed}; {advice}"
        )


class QueueMoved(BackendError):
    """A shard refused an insert into `queue`: it was moved to shard `shard`, and the shard
    map of the inserting App is older than the move. A sharded App follows it by itself."""

    def __init__(self, queue: str, shard: str, location: str) -> None:
        self.queue, self.shard, self.location = queue, shard, location
        super().__init__(
            f"{location}: queue {shorten(queue)} was moved to shard {shard!r}; "
            "enqueue through an App given every shard (docs/sharding.md)"
        )


class BackendUnavailable(BackendError):
    """The database cannot be reached or cannot take writes.

    `transient` says whether waiting may help (a restart, a cut link, a full disk): workers
    and schedulers ride such an outage out and resume; they stop on the others (a refused
    password, a file that is not a database).
    """

    def __init__(self, message: str, *, transient: bool = True) -> None:
        self.transient = transient
        super().__init__(message)


class StorageFull(BackendUnavailable):
    """The disk, or the database's own size limit, is full; nothing of the failed
    operation was stored. `location` names the file or server."""

    def __init__(self, message: str, location: str) -> None:
        self.location = location
        super().__init__(message)


class OutcomeUnknown(BackendUnavailable):
    """The connection broke after a write was sent and before its commit was confirmed: it
    may or may not have been stored. Resending is safe only for an operation that can be
    told apart from its first try (an enqueue with an idempotency key)."""

    def __init__(self, message: str, operation: str) -> None:
        self.operation = operation
        super().__init__(message)


def shorten(value: object, limit: int = 200) -> str:
    """`repr(value)` for an error message, cut to `limit` characters when longer (with the
    full length), so that a message never repeats a huge input."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deeply, or an int of 4,300+ digits
        text = f"<{type(value).__name__} too large to show>"
    return clip(text, limit)


def clip(text: str, limit: int = 200) -> str:
    """`text` cut to about `limit` characters when longer: its start and end around "...",
    then its full length."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    return f"{text[: limit - tail]}...{text[-tail:]} ({len(text)} characters)"


#: Up to this many known names are listed when none is close to a wrong one.
_LISTED = 10


def _did_you_mean(name: str, known: list[str], kind: str) -> str:
    """The nearest known name as a question, else the known names (a few), else none."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    if close:
        return f"; did you mean {close[0]!r}?"
    if not known:
        return f"; there are no {kind}"
    listed = ", ".join(sorted(known)[:_LISTED])
    more = f" and {len(known) - _LISTED} more" if len(known) > _LISTED else ""
    return f"; known {kind}: {listed}{more}"
