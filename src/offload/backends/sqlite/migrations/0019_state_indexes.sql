-- offload schema 19 for SQLite: the partial indexes of the jobs hold their states by
-- comparisons, not `IN (...)` lists. SQLite (3.40) codes an index's `state IN (names)` by
-- building a temporary b-tree of the names each time it tests a row, on every insert and on
-- each update of a job (the old row and the new): measured, about 30% of the instructions
-- of a batched enqueue per job (benchmarks/RESULTS.md, issue 20, partial indexes). Each
-- index is rebuilt with the same states; the SQLite queries that rely on one repeat its
-- predicate word for word (the `*_index_states` macros of SQLiteBackend), which is how
-- SQLite's planner sees that a query implies it. PostgreSQL's indexes are unchanged.
DROP INDEX offload_jobs_finished;
CREATE INDEX offload_jobs_finished ON offload_jobs (state, finished_at)
    WHERE (state = 'succeeded' OR state = 'dead' OR state = 'cancelled');
DROP INDEX offload_jobs_limited;
CREATE INDEX offload_jobs_limited ON offload_jobs (queue, run_at)
    WHERE limit_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
DROP INDEX offload_jobs_replace;
CREATE INDEX offload_jobs_replace ON offload_jobs (replace_key)
    WHERE replace_key IS NOT NULL
      AND (state = 'waiting' OR state = 'scheduled' OR state = 'available'
           OR state = 'retrying' OR state = 'shed' OR state = 'running');
DROP INDEX offload_jobs_group;
CREATE INDEX offload_jobs_group ON offload_jobs (queue, task, group_key, sort_at, id)
    WHERE group_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
DROP INDEX offload_jobs_group_due;
CREATE INDEX offload_jobs_group_due ON offload_jobs (queue, task, group_key, run_at)
    WHERE group_key IS NOT NULL
      AND (state = 'available' OR state = 'scheduled' OR state = 'retrying');
-- NOT IN ('available', 'running'): state is NOT NULL, so no NULL slips between the two.
DROP INDEX offload_jobs_state;
CREATE INDEX offload_jobs_state ON offload_jobs (state, queue)
    WHERE state <> 'available' AND state <> 'running';
DROP INDEX offload_jobs_claim;
CREATE INDEX offload_jobs_claim ON offload_jobs (queue, sort_at, id, state)
    WHERE (state = 'available' OR state = 'scheduled' OR state = 'retrying');
