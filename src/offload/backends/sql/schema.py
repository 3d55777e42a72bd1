"""The schema area: which version the database holds, and the migrations to the newest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from offload.backends.sql.queries import migration_files
from offload.core.errors import SchemaMismatch

if TYPE_CHECKING:
    from offload.backends.sql.connector import SqlBackend


class SqlSchema:
    """`SchemaStore` over a backend's `schema.sql` and `migrations/NNNN_*.sql`."""

    def __init__(self, db: SqlBackend) -> None:
        self.db = db
        self.q = db.q["schema"]

    @property
    def target(self) -> int:
        """The newest migration shipped."""
        return migration_files(self.db.package)[-1][0]

    def version(self) -> int:
        with self.db.read() as cur:
            cur.execute(self.q["exists"])
            if cur.fetchone() is None:
                return 0
            cur.execute(self.q["version"])
            row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else 0

    def migrate(self) -> int:
        target = self.target
        found = self.version()
        if found > target:
            raise SchemaMismatch(self.db.location, found, target)
        for version, sql in migration_files(self.db.package):
            if version > found:
                self.db.apply_migration(version, sql)
        return target

    def check(self) -> None:
        found, target = self.version(), self.target
        if found != target:
            raise SchemaMismatch(self.db.location, found, target)
