"""Backend conformance suite: every test runs against SQLite and PostgreSQL."""
