-- Named queries of the SQLite connector. Every file of this backend: {now} is the current
-- time in epoch seconds; {at} an optional :now (an injected clock) or {now}; {job_columns}
-- the job row's columns. Lists arrive as JSON text. Wake-ups are datagrams sent from
-- Python once a commit is visible (see wake.py); this file only lists where to send them.

-- name: now
SELECT {now}

-- name: wake_addresses
-- Workers heard from in the last minute; a SIGKILLed worker's address is soon dropped.
SELECT wake FROM offload_workers WHERE wake IS NOT NULL AND heartbeat_at > {now} - 60
