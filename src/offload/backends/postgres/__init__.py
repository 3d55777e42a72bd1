"""The PostgreSQL backend: psycopg 3 pool, `SKIP LOCKED` claims, LISTEN/NOTIFY wake-ups."""

from offload.backends.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
