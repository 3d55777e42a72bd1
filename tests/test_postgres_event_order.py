"""PostgreSQL reads events in the numeric order of their transaction ids, also where the
ids gain a digit: ordering by the cursor's text form put transaction 1000 before 999, so a
reader paging past 1000 never saw 999 (found by the HTTP slow-client stream test)."""

from __future__ import annotations

import psycopg

import offload
from offload.core.events import EventCursor


def test_reads_and_the_tail_follow_transaction_ids_across_a_digit(
    pg_app: offload.App, pg_url: str
) -> None:
    # Finished transaction ids on both sides of 1000, stored out of order; the server's
    # own ids are moved past them first (each subtransaction that writes takes one).
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert row is not None
        conn.execute("CREATE TEMP TABLE burn (i int)")
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{max(0, 1010 - int(row[0]))} LOOP "
            "BEGIN INSERT INTO burn VALUES (i); EXCEPTION WHEN others THEN NULL; END; "
            "END LOOP; END $$"
        )
        for tx in (1000, 998, 1001, 999):
            conn.execute(
                "INSERT INTO offload_events (tx, kind, channel, data) "
                "VALUES (%s::text::xid8, 'notify', 'c', %s::json)",
                (str(tx), f'{{"tx": {tx}}}'),
            )
    for channel in (None, "c"):
        seen, after = [], EventCursor.START
        while page := pg_app.events(after=after, limit=1, channel=channel):
            seen.append(page[0].cursor.tx)
            after = page[0].cursor
        assert seen == [998, 999, 1000, 1001], channel
    assert pg_app.event_tail().tx == 1001
