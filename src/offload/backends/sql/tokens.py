"""The tokens area: API tokens, stored as a lookup part and a digest, one row each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from offload.backends.params import TokenCreateParams, TokenFound
from offload.backends.sql.rows import Columns
from offload.core.tokens import LAST_USED_EVERY, TokenRecord, scopes_from, scopes_text

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlTokens:
    """`TokenStore` over a backend's `tokens.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["tokens"]

    def create(self, params: TokenCreateParams) -> bool:
        values = {
            "name": params.name,
            "lookup": params.lookup,
            "hash": params.digest,
            "scopes": scopes_text(params.scopes),
        }
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["create"], values)
            return bool(cur.rowcount == 1)

    def find(self, lookup: str) -> TokenFound | None:
        with self.db.read() as cur:
            cur.execute(self.q["find"], {"lookup": lookup, "every": LAST_USED_EVERY})
            row = cur.fetchone()
        if row is None:
            return None
        name, digest, scopes, stale = row
        return TokenFound(name, digest, scopes_from(scopes), bool(stale))

    def touch(self, lookup: str) -> None:
        with self.db.tx(single=True, relaxed=True) as cur:
            cur.execute(self.q["touch"], {"lookup": lookup, "every": LAST_USED_EVERY})

    def list(self) -> list[TokenRecord]:
        with self.db.read() as cur:
            cur.execute(self.q["list"])
            rows = cur.fetchall()
            c = Columns.of(cur) if rows else None
        if c is None:
            return []
        return [self._record(c, row) for row in rows]

    def _record(self, c: Columns, row: Sequence[Any]) -> TokenRecord:
        used = row[c["last_used_at"]]
        return TokenRecord(
            name=row[c["name"]],
            scopes=scopes_from(row[c["scopes"]]),
            created_at=self.db.time(row[c["created_at"]]),
            last_used_at=None if used is None else self.db.time(used),
        )

    def revoke(self, name: str) -> bool:
        with self.db.tx(single=True) as cur:
            cur.execute(self.q["revoke"], {"name": name})
            return bool(cur.rowcount == 1)

    def any(self) -> bool:
        with self.db.read() as cur:
            cur.execute(self.q["any"])
            return bool(cur.fetchone()[0])
