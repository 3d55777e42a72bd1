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


def fresh_database(url: str, name: str, *, template: str = "template0") -> str:
    """(Re)create database ``name`` on the server of ``url``; return its URL.

    Runs ``DROP DATABASE IF EXISTS name WITH (FORCE)`` (terminating any sessions on it)
    then ``CREATE DATABASE name`` as a copy of ``template`` (empty: template0), connected in
    autocommit mode. A template must have no session open while it is copied.
    """
    if not name or len(name.encode()) > _MAX_DB_NAME_BYTES:
        raise ValueError(f"database name must be 1..{_MAX_DB_NAME_BYTES} bytes: {name!r}")
    if name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to recreate system database {name!r}")
    ident = sql.Identifier(name)
    with psycopg.connect(_admin_url(url, name), autocommit=True, connect_timeout=30) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(ident, sql.Identifier(template))
        )
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``url`` if it exists, ending its sessions."""
    with psycopg.connect(_admin_url(url, name), autocommit=True, connect_timeout=30) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _admin_url(url: str, name: str) -> str:
    """Where to (re)create or drop ``name``: ``url``, unless it names that very database."""
    if conninfo_to_dict(url).get("dbname") == name:
        return make_conninfo(url, dbname="postgres")
    return url
