"""The fault rig: a TCP proxy that cuts, resets and blackholes links, a PostgreSQL server
the tests halt and start, and SQLite size caps; tests that workers and producers ride it."""
