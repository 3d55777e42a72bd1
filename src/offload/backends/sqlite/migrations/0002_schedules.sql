-- offload schema 2 for SQLite: periodic schedules and the one-row-per-tick guard.
CREATE TABLE offload_schedules (
    name TEXT NOT NULL PRIMARY KEY,
    cron TEXT NOT NULL,
    tz TEXT NOT NULL,
    task TEXT NOT NULL,
    misfire TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    -- The newest tick handled (fired, skipped or paused over), and when a scheduler last looked.
    last_tick REAL NOT NULL,
    checked_at REAL NOT NULL,
    last_job_id INTEGER,
    created_at REAL NOT NULL
);

-- Exactly one job per (schedule, tick), however many schedulers race for it.
CREATE TABLE offload_cron_ticks (
    schedule TEXT NOT NULL,
    tick_at REAL NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (schedule, tick_at)
);
