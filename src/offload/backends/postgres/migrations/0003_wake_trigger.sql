-- offload schema 3 for PostgreSQL: the wake-up of inserts. Any statement that inserts jobs
-- (an enqueue, a transactional enqueue, a cron tick) NOTIFYs, whoever runs it, with no
-- second round trip; PostgreSQL delivers at commit and folds repeats within a transaction.
-- (Releases, rescues, retries and cancels NOTIFY from the backend: they are rare, and a row
-- trigger on updates cost claims and outcomes 7-10% of a drain.) NOTIFY is only a hint
-- (capped at 8000 bytes, never replayed): workers poll behind it, and a wake-up that finds
-- nothing due (a delayed job) costs one empty claim.

-- Inserts: once per statement, however many rows, with no payload. A transition table
-- would let it name the queues and skip delayed jobs, but it cost 12% of a durable
-- single-row enqueue in an A/B (this trigger: 4%).
CREATE FUNCTION offload_jobs_wake() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('offload_jobs', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER offload_jobs_wake_insert AFTER INSERT ON offload_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION offload_jobs_wake();
