-- offload schema 10 for SQLite: workflows, jobs that wait for jobs. The PostgreSQL script
-- of the same number explains the columns and tables.
CREATE TABLE offload_workflows (
    -- AUTOINCREMENT: an id is never reused, even after the newest workflow is pruned.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT,
    created_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

ALTER TABLE offload_jobs ADD COLUMN workflow_id INTEGER;
ALTER TABLE offload_jobs ADD COLUMN node TEXT;
ALTER TABLE offload_jobs ADD COLUMN parents INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offload_jobs ADD COLUMN pending INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offload_jobs ADD COLUMN children INTEGER NOT NULL DEFAULT 0;
ALTER TABLE offload_jobs ADD COLUMN takes TEXT NOT NULL DEFAULT 'nothing';
CREATE INDEX offload_jobs_workflow ON offload_jobs (workflow_id) WHERE workflow_id IS NOT NULL;

CREATE TABLE offload_dependencies (
    child_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    parent_id INTEGER NOT NULL,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('fail', 'cancel', 'run')),
    outcome TEXT,
    PRIMARY KEY (child_id, position)
) WITHOUT ROWID;
CREATE INDEX offload_dependencies_parent ON offload_dependencies (parent_id)
    WHERE outcome IS NULL;

-- Schema 9's update trigger, and a kind more: a waiting job released (its parents over) to
-- available or scheduled.
DROP TRIGGER offload_jobs_events_update;
CREATE TRIGGER offload_jobs_events_update AFTER UPDATE OF state, progress ON offload_jobs
WHEN (new.state = old.state AND new.state = 'running' AND new.progress IS NOT NULL
      AND new.progress IS NOT old.progress)
  OR (new.state <> old.state AND new.state <> 'running'
      AND NOT (old.state = 'running'
               AND new.state IN ('retrying', 'succeeded', 'dead', 'cancelled'))
      AND (new.state IN ('retrying', 'succeeded', 'dead', 'cancelled', 'shed')
           OR old.state IN ('running', 'succeeded', 'dead', 'cancelled', 'shed', 'waiting')))
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    VALUES (
        CASE WHEN new.state = old.state THEN 'progress'
             WHEN new.state IN ('retrying', 'succeeded', 'dead', 'cancelled', 'shed')
                 THEN new.state
             WHEN old.state = 'waiting' THEN 'released'
             ELSE 'requeued' END,
        new.id, new.task, new.queue, new.channel, new.state, new.attempt,
        CASE WHEN new.state = old.state THEN new.progress
             WHEN new.state IN ('retrying', 'dead')
                 THEN json_object('error', substr(new.errors ->> '$[#-1].message', 1, 500))
             ELSE '{}' END);
END;
