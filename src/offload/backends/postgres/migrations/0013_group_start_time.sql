-- offload schema 13 for PostgreSQL: a group started (or replayed) from a time keeps that
-- time. Its cursor says where its pump reads from; `start_at` says which messages are its
-- own: those published at or after it. A start in the future then passes over the messages
-- published until then (the cursor alone would have handed them out), and a message whose
-- transaction began before the time but committed after an earlier one is passed over too.
ALTER TABLE offload_groups ADD COLUMN start_at timestamptz;
