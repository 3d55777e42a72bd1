"""The `offload` command line, run as real subprocesses against SQLite and PostgreSQL."""
