-- offload schema 15 for PostgreSQL: the fences of queues moved to another shard
-- (docs/sharding.md). A fence says "jobs of this queue now go to shard X": while one
-- exists, a trigger (created by the move, dropped with the last fence, so a database that
-- never gave a queue away pays nothing per insert) refuses inserts of the queue with
-- SQLSTATE OF001 naming the new shard (JSON {queue, shard} in its detail), so an enqueue with a stale shard map is refused in
-- the database, never stored where no one expects it.
CREATE TABLE offload_shard_fences (
    queue text PRIMARY KEY,
    moved_to text NOT NULL,
    moved_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION offload_shard_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target text;
BEGIN
    -- A volatile function's query reads with a snapshot of its own, taken after the insert
    -- got its table lock: a fence committed by a move (which held a conflicting lock) is seen.
    SELECT moved_to INTO target FROM offload_shard_fences WHERE queue = NEW.queue;
    IF FOUND THEN
        RAISE EXCEPTION 'queue % moved to shard %', NEW.queue, target
            USING ERRCODE = 'OF001',
            DETAIL = json_build_object('queue', NEW.queue, 'shard', target)::text;
    END IF;
    RETURN NEW;
END
$$;
