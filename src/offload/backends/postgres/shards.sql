-- Named queries of a shard's side of sharding (PostgreSQL only; docs/sharding.md): the
-- fences of queues moved away, and the range of ids the shard gives out.

-- name: move_lock
-- Taken on the home shard for the whole of a move (a transaction-level advisory lock held
-- while the other shards are fenced and unfenced): moves wait for each other, so each one
-- starts from where the last one left the queue.
SELECT pg_advisory_xact_lock(hashtext('offload_shard_move'))

-- name: fence_trigger
-- Takes SHARE ROW EXCLUSIVE on the jobs table until the move commits: it waits for every
-- insert in flight to commit, and every later insert sees the trigger and the fence.
CREATE OR REPLACE TRIGGER offload_shard_fence BEFORE INSERT ON offload_jobs
FOR EACH ROW EXECUTE FUNCTION offload_shard_fence()

-- name: fence
INSERT INTO offload_shard_fences (queue, moved_to) VALUES (:queue, :shard)
ON CONFLICT (queue) DO UPDATE SET moved_to = excluded.moved_to, moved_at = now()

-- name: unfence
DELETE FROM offload_shard_fences WHERE queue = :queue

-- name: fence_lock
-- An unfence that removed a fence takes the fence trigger's lock before asking whether any
-- is left: a fence being written meanwhile commits first and is seen, so its trigger stays.
-- The lock DROP TRIGGER needs, taken at once: holding a weaker one (SHARE ROW EXCLUSIVE)
-- and then asking for it deadlocked with a producer that had read offload_jobs and was
-- waiting to write it (its read blocks the upgrade, the held lock its write). Asked first,
-- the strong lock only queues, and PostgreSQL lets the reader's write go before it.
LOCK TABLE offload_jobs IN ACCESS EXCLUSIVE MODE

-- name: fenced
-- Whether any fence is left (the trigger is dropped with the last one).
SELECT EXISTS (SELECT 1 FROM offload_shard_fences)

-- name: drop_trigger
DROP TRIGGER IF EXISTS offload_shard_fence ON offload_jobs

-- name: fences
SELECT queue, moved_to FROM offload_shard_fences ORDER BY queue

-- name: floor_jobs
-- Start the shard's job ids at its range's floor, unless they are there already
-- (is_called false: the next id given is the floor itself).
SELECT setval('offload_jobs_id_seq', :floor, false)
WHERE (SELECT last_value FROM offload_jobs_id_seq) < :floor

-- name: floor_workflows
-- The same for its workflow ids.
SELECT setval('offload_workflows_id_seq', :floor, false)
WHERE (SELECT last_value FROM offload_workflows_id_seq) < :floor

-- name: range
-- The lowest stored ids and the next ones given, to check they lie in the shard's range.
SELECT (SELECT min(id) FROM offload_jobs), (SELECT last_value FROM offload_jobs_id_seq),
    (SELECT min(id) FROM offload_workflows), (SELECT last_value FROM offload_workflows_id_seq)

-- name: unfinished
-- Jobs of a queue not yet in a final state (a move is over when none is left on the old shard).
SELECT count(*) FROM offload_jobs
WHERE queue = :queue AND state NOT IN ('succeeded', 'dead', 'cancelled')
