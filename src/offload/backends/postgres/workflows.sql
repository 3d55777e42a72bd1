-- Named queries of the workflows area (PostgreSQL): jobs that wait for jobs. Lists arrive
-- as JSON text; offload.backends.sql.workflows says what runs when.

-- name: insert_workflow
INSERT INTO offload_workflows (kind, name) VALUES (:kind, :name) RETURNING id

-- name: insert_nodes
-- Every node of an insert in one statement. :specs is a JSON array of the distinct specs
-- [task, queue, priority, max_attempts, delay, run_at, meta, channel], each read once;
-- :nodes one of rows [spec index, args, kwargs, limit_key, group_key, node, takes,
-- parents, children] (args, kwargs and meta as JSON text in strings: json cannot take
-- \u0000 apart). A node with parents waits, counting them (pending). Rows go in array
-- order, so their ids ascend with it. Their `enqueued` events are written with them.
WITH s AS (
    SELECT s.k - 1 AS spec, s.task, s.queue, s.priority, s.max_attempts, s.meta, s.channel,
        s.run_at, s.run_at - make_interval(secs => s.priority * coalesce(
            (SELECT aging FROM offload_queues WHERE name = s.queue), :default_aging)) AS sort_at
    FROM (SELECT k, v ->> 0 AS task, v ->> 1 AS queue, (v ->> 2)::int AS priority,
                 (v ->> 3)::int AS max_attempts, v ->> 6 AS meta, v ->> 7 AS channel,
                 coalesce(to_timestamp((v ->> 5)::float8),
                          now() + make_interval(secs => (v ->> 4)::float8)) AS run_at
          FROM json_array_elements(:specs::json) WITH ORDINALITY AS p(v, k)) AS s),
ins AS (
INSERT INTO offload_jobs (task, queue, args, kwargs, priority, state, max_attempts, run_at,
    enqueued_at, group_key, meta, sort_at, limit_key, channel, workflow_id, node, parents,
    pending, children, takes)
SELECT s.task, s.queue, (n.v ->> 1)::json, (n.v ->> 2)::json, s.priority,
    CASE WHEN (n.v ->> 7)::int > 0 THEN 'waiting' WHEN s.run_at > now() THEN 'scheduled'
         ELSE 'available' END,
    s.max_attempts, s.run_at, now(), n.v ->> 4, s.meta::json, s.sort_at, n.v ->> 3,
    s.channel, :workflow_id, n.v ->> 5, (n.v ->> 7)::int, (n.v ->> 7)::int,
    (n.v ->> 8)::int, n.v ->> 6
FROM json_array_elements(:nodes::json) WITH ORDINALITY AS n(v, k)
JOIN s ON s.spec = (n.v ->> 0)::int
ORDER BY n.k
RETURNING id, task, queue, channel, state, attempt),
told AS (
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    SELECT 'enqueued', id, task, queue, channel, state, attempt, '{}' FROM ins ORDER BY id)
SELECT id, {wake_events} AS woken FROM ins

-- name: insert_edges
-- :edges is a JSON array of [child_id, position, parent_id, on_failure].
INSERT INTO offload_dependencies (child_id, position, parent_id, on_failure)
SELECT (e ->> 0)::bigint, (e ->> 1)::int, (e ->> 2)::bigint, e ->> 3
FROM json_array_elements(:edges::json) AS e

-- name: lock_parents
-- Stored jobs that new edges point at (:parents, [id, edges]): count the edges on their
-- rows and read their states. The row lock orders this with any statement ending them: a
-- parent ending meanwhile is seen over here, or sees the edges there (the statements that
-- end jobs re-read the row, children > 0, once this commits). An id not returned names no
-- job.
UPDATE offload_jobs AS j
SET children = j.children + p.n
FROM (SELECT (value ->> 0)::bigint AS id, (value ->> 1)::int AS n
      FROM json_array_elements(:parents::json) AS value) AS p
WHERE j.id = p.id
RETURNING j.id, j.state

-- name: resolve
-- The release step's first half: the unresolved edges of jobs :ids that are over get
-- their parent's state, once (a parent retried by hand and ending again finds none).
UPDATE offload_dependencies AS d
SET outcome = j.state
FROM offload_jobs AS j
WHERE d.parent_id IN (SELECT value::bigint FROM json_array_elements_text(:ids::json))
  AND d.outcome IS NULL AND j.id = d.parent_id
  AND j.state IN ('succeeded', 'dead', 'cancelled')
RETURNING d.child_id, d.position, d.parent_id, d.on_failure, d.outcome

-- name: count_down
-- The second half: each waiting child in :children ([id, edges resolved, verdict,
-- message]) waits for that many parents fewer; a verdict ('dead': a `fail` edge's parent
-- ended badly, the message naming it; 'cancelled') ends it, else the last parent over
-- releases it to run (from now: its time waiting for parents is no queueing delay). Two
-- transactions counting one child down take turns on its row lock, the second reading the
-- first's count; the rows are locked in id order first, so that two counting down the
-- same children never wait for each other in opposite orders.
WITH v AS (
    SELECT (value ->> 0)::bigint AS id, (value ->> 1)::int AS n, value ->> 2 AS verdict,
           value ->> 3 AS message
    FROM json_array_elements(:children::json) AS value),
locked AS (
    SELECT id FROM offload_jobs WHERE id IN (SELECT id FROM v) ORDER BY id FOR UPDATE)
UPDATE offload_jobs AS j
SET pending = j.pending - v.n,
    state = CASE WHEN v.verdict IS NOT NULL THEN v.verdict
                 WHEN j.pending - v.n > 0 THEN 'waiting'
                 WHEN j.run_at > now() THEN 'scheduled' ELSE 'available' END,
    finished_at = CASE WHEN v.verdict IS NOT NULL THEN now() END,
    errors = CASE WHEN v.message IS NULL THEN j.errors
             ELSE j.errors || jsonb_build_array(jsonb_build_object(
                 'at', extract(epoch FROM now()), 'attempt', j.attempt,
                 'type', 'offload.core.errors.ParentFailed', 'message', v.message, 'traceback', NULL))
             END,
    run_at = CASE WHEN v.verdict IS NULL AND j.pending - v.n <= 0
             THEN greatest(j.run_at, now()) ELSE j.run_at END,
    sort_at = CASE WHEN v.verdict IS NULL AND j.pending - v.n <= 0
              THEN greatest(j.run_at, now()) - (j.run_at - j.sort_at) ELSE j.sort_at END
FROM v JOIN locked ON locked.id = v.id
WHERE j.id = v.id AND j.state = 'waiting'
RETURNING j.id, j.queue, j.state, j.children > 0 AS has_children

-- name: nodes
-- The node names of jobs :ids (for the error of a child their end fails).
SELECT id, node FROM offload_jobs
WHERE id IN (SELECT value::bigint FROM json_array_elements_text(:ids::json))

-- name: parents
-- The parents of jobs :ids in edge order, with how each ended (the edge's outcome for a
-- parent pruned since) and the total size in bytes of each child's parents' results;
-- results only with :results, and for a child whose total is within :limit.
SELECT child_id, parent_id, node, state, error, size,
    CASE WHEN :results::boolean AND (:limit::bigint IS NULL OR size <= :limit::bigint)
         THEN result END AS result
FROM (SELECT d.child_id, d.position, d.parent_id, j.node,
             coalesce(j.state, d.outcome) AS state, j.result::text AS result,
             (j.errors -> -1)::text AS error,
             coalesce(sum(octet_length(j.result::text)) OVER (PARTITION BY d.child_id), 0)
                 AS size
      FROM offload_dependencies AS d LEFT JOIN offload_jobs AS j ON j.id = d.parent_id
      WHERE d.child_id IN (SELECT value::bigint FROM json_array_elements_text(:ids::json)))
      AS p
ORDER BY child_id, position

-- name: results
-- A page of job :child_id's parents' results in edge order, after position :after.
SELECT d.position, j.result::text AS result
FROM offload_dependencies AS d LEFT JOIN offload_jobs AS j ON j.id = d.parent_id
WHERE d.child_id = :child_id AND d.position > :after
ORDER BY d.position
LIMIT :limit

-- name: get
SELECT id, kind, name, created_at FROM offload_workflows WHERE id = :id

-- name: nodes_of
-- A workflow's jobs in id order, each with the ids of its parents in edge order.
SELECT j.id, j.node, j.task, j.state, j.attempt, j.started_at, j.finished_at,
    (SELECT coalesce(json_agg(d.parent_id ORDER BY d.position), '[]')::text
     FROM offload_dependencies AS d WHERE d.child_id = j.id) AS parent_ids
FROM offload_jobs AS j
WHERE j.workflow_id = :id
ORDER BY j.id

-- name: list
-- A page of workflows, newest first, ids below :before_id: one row per state of its jobs.
SELECT w.id, w.kind, w.name, w.created_at, j.state, count(j.id) AS n
FROM (SELECT * FROM offload_workflows
      WHERE :before_id::bigint IS NULL OR id < :before_id
      ORDER BY id DESC LIMIT :limit) AS w
LEFT JOIN offload_jobs AS j ON j.workflow_id = w.id
GROUP BY w.id, w.kind, w.name, w.created_at, j.state
ORDER BY w.id DESC

-- name: cancel
-- `cancel_many` of workflow :id's jobs: queued and waiting ones end, running ones are
-- asked to stop.
UPDATE offload_jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finished_at = CASE WHEN state = 'running' THEN finished_at ELSE now() END,
    cancel_requested = true
WHERE workflow_id = :id
  AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running')
RETURNING id, queue, state, children > 0 AS has_children

-- name: prune_edges
-- After a prune: the edges of jobs gone, and workflows with no job left.
DELETE FROM offload_dependencies AS d
WHERE NOT EXISTS (SELECT 1 FROM offload_jobs WHERE id = d.child_id)

-- name: prune_workflows
DELETE FROM offload_workflows AS w
WHERE NOT EXISTS (SELECT 1 FROM offload_jobs WHERE workflow_id = w.id)
