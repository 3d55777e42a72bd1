-- offload schema 2 for PostgreSQL: periodic schedules and the one-row-per-tick guard.
CREATE TABLE offload_schedules (
    name text PRIMARY KEY,
    cron text NOT NULL,
    tz text NOT NULL,
    task text NOT NULL,
    misfire text NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    -- The newest tick handled (fired, skipped or paused over), and when a scheduler last looked.
    last_tick timestamptz NOT NULL,
    checked_at timestamptz NOT NULL,
    last_job_id bigint,
    created_at timestamptz NOT NULL
);

-- Exactly one job per (schedule, tick), however many schedulers race for it.
CREATE TABLE offload_cron_ticks (
    schedule text NOT NULL,
    tick_at timestamptz NOT NULL,
    job_id bigint NOT NULL,
    PRIMARY KEY (schedule, tick_at)
);
