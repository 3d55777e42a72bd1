-- offload schema 6 for PostgreSQL: work shaping (DESIGN.md section 5).
--
-- `replace_key`: storing a job with this key cancels the queued jobs carrying it
-- (supersede); `superseded_by` names the job that did so to a cancelled one.
ALTER TABLE offload_jobs ADD COLUMN replace_key text;
ALTER TABLE offload_jobs ADD COLUMN superseded_by bigint;

-- Uniqueness and idempotency are decided at insert, under advisory locks on the keys
-- (`key_lock` in jobs.sql), not by unique indexes: a rule's states and period are its
-- own, and a unique index would make claims, retries and sweeps fail when a job re-enters
-- a state while another job holds its key. Plain indexes serve the lookups.
DROP INDEX offload_jobs_idempotency;
DROP INDEX offload_jobs_unique;
CREATE INDEX offload_jobs_idempotency ON offload_jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX offload_jobs_unique ON offload_jobs (unique_key) WHERE unique_key IS NOT NULL;
CREATE INDEX offload_jobs_replace ON offload_jobs (replace_key)
    WHERE replace_key IS NOT NULL
      AND state IN ('waiting', 'scheduled', 'available', 'retrying', 'shed', 'running');
