-- offload schema 6 for SQLite: work shaping (DESIGN.md section 5). The PostgreSQL script
-- of the same number explains each part.
ALTER TABLE offload_jobs ADD COLUMN replace_key TEXT;
ALTER TABLE offload_jobs ADD COLUMN superseded_by INTEGER;
