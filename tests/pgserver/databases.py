"""Fresh, empty databases on a server, and URLs naming them."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

_MAX_DB_NAME_BYTES = 63


def database_url(url: str, name: str) -> str:
    """``url`` with its database replaced by ``name`` (URL or key=value conninfo)."""
    if "://" not in url:
        return make_conninfo(url, dbname=name)
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "dbname"])
    return urlunsplit(parts._replace(path="/" + quote(name, safe=""), query=query))


def fresh_database(url: str, name: str) -> str:
    """(Re)create an empty database ``name`` on the server of ``url``; return its URL.

    Runs ``DROP DATABASE IF EXISTS name WITH (FORCE)`` (terminating any sessions on it)
    then ``CREATE DATABASE name`` from template0, connected in autocommit mode.
    """
    if not name or len(name.encode()) > _MAX_DB_NAME_BYTES:
        raise ValueError(f"database name must be 1..{_MAX_DB_NAME_BYTES} bytes: {name!r}")
    if name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate system database {name!r}")
    admin_url = url
    if conninfo_to_dict(url).get("dbname") == name:
        admin_url = make_conninfo(url, dbname="postgres")
    ident = sql.Identifier(name)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=30) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(ident))
    return database_url(url, name)
