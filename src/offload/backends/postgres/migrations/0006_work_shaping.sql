-- offload schema 6 for PostgreSQL: work shaping (DESIGN.md section 5).
--
-- `replace_key`: storing a job with this key cancels the queued jobs carrying it
-- (supersede); `superseded_by` names the job that did so to a cancelled one.
ALTER TABLE offload_jobs ADD COLUMN replace_key text;
ALTER TABLE offload_jobs ADD COLUMN superseded_by bigint;
