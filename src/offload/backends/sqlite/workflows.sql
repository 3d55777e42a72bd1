-- Named queries of the workflows area (SQLite): jobs that wait for jobs. Lists arrive as
-- JSON text; offload.backends.sql.workflows says what runs when.

-- name: insert_workflow
INSERT INTO offload_workflows (kind, name) VALUES (:kind, :name) RETURNING id

-- name: insert_nodes
-- Every node of an insert in one statement. :specs is a JSON array of the distinct specs
-- [task, queue, priority, max_attempts, delay, run_at, meta, channel], each read once;
-- :nodes one of rows [spec index, args, kwargs, limit_key, group_key, node, takes,
-- parents, children]. A node with parents waits, counting them (pending). Rows go in
-- array order, so their ids ascend with it (numbered as insert_many's, schema 22).
WITH s AS MATERIALIZED (
    SELECT s.key AS spec, s.value ->> 0 AS task, s.value ->> 1 AS queue,
        s.value ->> 2 AS priority, s.value ->> 3 AS max_attempts, s.value ->> 6 AS meta,
        s.value ->> 7 AS channel, coalesce(s.value ->> 5, {now} + (s.value ->> 4)) AS run_at,
        (s.value ->> 2) * coalesce(
            (SELECT aging FROM offload_queues WHERE name = s.value ->> 1), :default_aging)
            AS head_start
    FROM json_each(:specs) AS s),
n AS (
    SELECT n.key AS k, n.value ->> 0 AS spec, n.value ->> 1 AS args,
        n.value ->> 2 AS kwargs, n.value ->> 3 AS limit_key, n.value ->> 4 AS group_key,
        n.value ->> 5 AS node, n.value ->> 6 AS takes, n.value ->> 7 AS parents,
        n.value ->> 8 AS children
    FROM json_each(:nodes) AS n)
INSERT INTO offload_jobs (id, task, queue, args, kwargs, priority, state, max_attempts,
    run_at, enqueued_at, group_key, meta, sort_at, limit_key, channel, workflow_id, node,
    parents, pending, children, takes)
SELECT {job_mark} + n.k + 1, s.task, s.queue, n.args, n.kwargs, s.priority,
    CASE WHEN n.parents > 0 THEN 'waiting' WHEN s.run_at > {now} THEN 'scheduled'
         ELSE 'available' END,
    s.max_attempts, s.run_at, {now}, n.group_key, s.meta, s.run_at - s.head_start,
    n.limit_key, s.channel, :workflow_id, n.node, n.parents, n.parents, n.children, n.takes
FROM n JOIN s ON s.spec = n.spec
ORDER BY n.k
RETURNING id

-- name: insert_edges
-- :edges is a JSON array of [child_id, position, parent_id, on_failure].
INSERT INTO offload_dependencies (child_id, position, parent_id, on_failure)
SELECT e.value ->> 0, e.value ->> 1, e.value ->> 2, e.value ->> 3 FROM json_each(:edges) AS e

-- name: lock_parents
-- Stored jobs that new edges point at (:parents, [id, edges]): count the edges on their
-- rows and read their states. (The writer lock already orders this with any statement
-- ending them.) An id not returned names no job.
UPDATE offload_jobs AS j
SET children = j.children + p.n
FROM (SELECT value ->> 0 AS id, value ->> 1 AS n FROM json_each(:parents)) AS p
WHERE j.id = p.id
RETURNING id, state

-- name: resolve
-- The release step's first half: the unresolved edges of jobs :ids that are over get
-- their parent's state, once (a parent retried by hand and ending again finds none).
UPDATE offload_dependencies
SET outcome = (SELECT state FROM offload_jobs WHERE id = parent_id)
WHERE parent_id IN (SELECT value FROM json_each(:ids)) AND outcome IS NULL
  AND (SELECT state FROM offload_jobs WHERE id = parent_id)
      IN ('succeeded', 'dead', 'cancelled')
RETURNING child_id, position, parent_id, on_failure, outcome

-- name: count_down
-- The second half: each waiting child in :children ([id, edges resolved, verdict,
-- message]) waits for that many parents fewer; a verdict ('dead': a `fail` edge's parent
-- ended badly, the message naming it; 'cancelled') ends it, else the last parent over
-- releases it to run (from now: its time waiting for parents is no queueing delay).
UPDATE offload_jobs AS j
SET pending = j.pending - v.n,
    state = CASE WHEN v.verdict IS NOT NULL THEN v.verdict
                 WHEN j.pending - v.n > 0 THEN 'waiting'
                 WHEN j.run_at > {now} THEN 'scheduled' ELSE 'available' END,
    finished_at = CASE WHEN v.verdict IS NOT NULL THEN {now} END,
    errors = CASE WHEN v.message IS NULL THEN j.errors
             ELSE json_insert(j.errors, '$[#]', json_object(
                 'at', {now}, 'attempt', j.attempt, 'type', 'offload.core.errors.ParentFailed',
                 'message', v.message, 'traceback', NULL)) END,
    run_at = CASE WHEN v.verdict IS NULL AND j.pending - v.n <= 0
             THEN max(j.run_at, {now}) ELSE j.run_at END,
    sort_at = CASE WHEN v.verdict IS NULL AND j.pending - v.n <= 0
              THEN max(j.run_at, {now}) - (j.run_at - j.sort_at) ELSE j.sort_at END
FROM (SELECT value ->> 0 AS id, value ->> 1 AS n, value ->> 2 AS verdict,
             value ->> 3 AS message
      FROM json_each(:children)) AS v
WHERE j.id = v.id AND +j.state = 'waiting'
RETURNING id, queue, state, children > 0 AS has_children

-- name: nodes
-- The node names of jobs :ids (for the error of a child their end fails).
SELECT id, node FROM offload_jobs WHERE id IN (SELECT value FROM json_each(:ids))

-- name: parents
-- The parents of jobs :ids in edge order, with how each ended (the edge's outcome for a
-- parent pruned since) and the total size in bytes of each child's parents' results;
-- results only with :results, and for a child whose total is within :limit.
SELECT child_id, parent_id, node, state, error, size,
    CASE WHEN :results AND (:limit IS NULL OR size <= :limit) THEN result END AS result
FROM (SELECT d.child_id, d.position, d.parent_id, j.node,
             coalesce(j.state, d.outcome) AS state, j.result,
             j.errors ->> '$[#-1]' AS error,
             coalesce(sum(length(CAST(j.result AS BLOB))) OVER (PARTITION BY d.child_id), 0)
                 AS size
      FROM offload_dependencies AS d LEFT JOIN offload_jobs AS j ON j.id = d.parent_id
      WHERE d.child_id IN (SELECT value FROM json_each(:ids))) AS p
ORDER BY child_id, position

-- name: results
-- A page of job :child_id's parents' results in edge order, after position :after.
SELECT d.position, j.result
FROM offload_dependencies AS d LEFT JOIN offload_jobs AS j ON j.id = d.parent_id
WHERE d.child_id = :child_id AND d.position > :after
ORDER BY d.position
LIMIT :limit

-- name: get
SELECT id, kind, name, created_at FROM offload_workflows WHERE id = :id

-- name: nodes_of
-- A workflow's jobs in id order, each with the ids of its parents in edge order.
SELECT j.id, j.node, j.task, j.state, j.attempt, j.started_at, j.finished_at,
    (SELECT json_group_array(parent_id) FROM (
        SELECT parent_id FROM offload_dependencies WHERE child_id = j.id ORDER BY position))
        AS parent_ids
FROM offload_jobs AS j
WHERE j.workflow_id = :id
ORDER BY j.id

-- name: list
-- A page of workflows, newest first, ids below :before_id: one row per state of its jobs.
SELECT w.id, w.kind, w.name, w.created_at, j.state, count(j.id) AS n
FROM (SELECT * FROM offload_workflows
      WHERE :before_id IS NULL OR id < :before_id
      ORDER BY id DESC LIMIT :limit) AS w
LEFT JOIN offload_jobs AS j ON j.workflow_id = w.id
GROUP BY w.id, w.kind, w.name, w.created_at, j.state
ORDER BY w.id DESC

-- name: cancel
-- `cancel_many` of workflow :id's jobs: queued and waiting ones end, running ones are
-- asked to stop.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE {now} END,
    cancel_requested = 1
WHERE workflow_id = :id
  AND {live_states}
RETURNING id, queue, state, children > 0 AS has_children

-- name: prune_edges
-- After a prune: the edges of jobs gone, and workflows with no job left.
DELETE FROM offload_dependencies
WHERE NOT EXISTS (SELECT 1 FROM offload_jobs WHERE id = child_id)

-- name: prune_workflows
DELETE FROM offload_workflows
WHERE NOT EXISTS (SELECT 1 FROM offload_jobs WHERE workflow_id = offload_workflows.id)
