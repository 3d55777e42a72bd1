"""The leaders area: leases of the maintenance duties, taken and renewed in one statement
each, by the database's clock (a host's own clock is never read)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from offload.backends.params import ElectParams, ResignParams
from offload.core.records import Leadership

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlLeaders:
    """`LeaderStore` over a backend's `leaders.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["leaders"]

    def elect(self, params: ElectParams) -> Leadership:
        values = {
            "name": params.name,
            "holder": params.holder,
            "term": params.term,
            "ttl": params.ttl,
        }
        # Durable, not relaxed: a term lost in a crash could be given out again.
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["elect"], values)
            row = cur.fetchone()
        return self._leadership(params.name, row)

    def read(self, name: str) -> Leadership | None:
        with self.db.read() as cur:
            cur.execute(self.q["read"], {"name": name})
            row = cur.fetchone()
        return None if row is None else self._leadership(name, row)

    def resign(self, params: ResignParams) -> bool:
        values = {"name": params.name, "holder": params.holder, "term": params.term}
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["resign"], values)
            return bool(cur.rowcount)

    def _leadership(self, name: str, row: Any) -> Leadership:
        holder, term, since, expires_at, remaining = row
        return Leadership(
            name,
            str(holder),
            int(term),
            self.db.time(since),
            self.db.time(expires_at),
            float(remaining),
        )
