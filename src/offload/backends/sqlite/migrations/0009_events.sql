-- offload schema 9 for SQLite: job events and the job's channel. The PostgreSQL script of
-- the same number explains them; here one writer at a time commits events in position
-- order, so tx is always 0, and row triggers (cheap in SQLite, no plpgsql call) write them.
ALTER TABLE offload_jobs ADD COLUMN channel TEXT;

CREATE TABLE offload_events (
    -- AUTOINCREMENT: a position is never reused, even after the newest event is pruned.
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    tx INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL,
    at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    job_id INTEGER,
    task TEXT,
    queue TEXT,
    channel TEXT,
    state TEXT,
    attempt INTEGER,
    data TEXT
);
CREATE INDEX offload_events_job ON offload_events (job_id, position) WHERE job_id IS NOT NULL;
CREATE INDEX offload_events_channel ON offload_events (channel, position)
    WHERE channel IS NOT NULL;

CREATE TRIGGER offload_jobs_events_insert AFTER INSERT ON offload_jobs
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    VALUES ('enqueued', new.id, new.task, new.queue, new.channel, new.state, new.attempt, '{}');
END;

-- Only updates that set state or progress can make an event; the WHEN picks the changes
-- that do (the same rule as PostgreSQL's offload_events_updated), but for a drain's own:
-- a job started (-> running: claims, the sweep's take) and a run's end (running ->
-- retrying, succeeded, dead, cancelled: outcomes, rescue), whose statements write their
-- events themselves, a batch at a time (events.sql `written`: a trigger program per row
-- cost a drain's storage a quarter of its rate).
CREATE TRIGGER offload_jobs_events_update AFTER UPDATE OF state, progress ON offload_jobs
WHEN (new.state = old.state AND new.state = 'running' AND new.progress IS NOT NULL
      AND new.progress IS NOT old.progress)
  OR (new.state <> old.state AND new.state <> 'running'
      AND NOT (old.state = 'running'
               AND new.state IN ('retrying', 'succeeded', 'dead', 'cancelled'))
      AND (new.state IN ('retrying', 'succeeded', 'dead', 'cancelled', 'shed')
           OR old.state IN ('running', 'succeeded', 'dead', 'cancelled', 'shed')))
BEGIN
    INSERT INTO offload_events (kind, job_id, task, queue, channel, state, attempt, data)
    VALUES (
        CASE WHEN new.state = old.state THEN 'progress'
             WHEN new.state IN ('retrying', 'succeeded', 'dead', 'cancelled', 'shed')
                 THEN new.state
             ELSE 'requeued' END,
        new.id, new.task, new.queue, new.channel, new.state, new.attempt,
        CASE WHEN new.state = old.state THEN new.progress
             WHEN new.state IN ('retrying', 'dead')
                 THEN json_object('error', substr(new.errors ->> '$[#-1].message', 1, 500))
             ELSE '{}' END);
END;
