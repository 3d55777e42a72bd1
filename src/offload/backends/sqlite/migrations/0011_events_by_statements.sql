-- offload schema 11 for SQLite: every statement that changes a job's state writes its
-- events itself (events.sql `written`, from the ids it changed, in its transaction), so
-- the update trigger of schema 9 (and 10, which taught it `released`) goes. Even
-- narrowed by its WHEN to the changes no
-- statement wrote, its presence cost a drain about 5% (the old row kept for every row an
-- UPDATE of state touched, the WHEN evaluated); the insert trigger stays, a row program
-- being no dearer than a statement per enqueue.
DROP TRIGGER IF EXISTS offload_jobs_events_update;
