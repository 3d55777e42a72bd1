-- offload schema 6 for SQLite: work shaping (DESIGN.md section 5). The PostgreSQL script
-- of the same number explains each part.
ALTER TABLE offload_jobs ADD COLUMN replace_key TEXT;
ALTER TABLE offload_jobs ADD COLUMN superseded_by INTEGER;
DROP INDEX offload_jobs_idempotency;
DROP INDEX offload_jobs_unique;
CREATE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX offload_jobs_unique ON offload_jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX offload_jobs_replace ON offload_jobs (replace_key)
    WHERE replace_key IS NOT NULL
      AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running');
