"""API tokens: their format, scopes and hashing (no I/O).

A token reads `offload_<lookup>_<secret>`: `lookup` (12 hex digits) is not secret and
finds the stored row by an index; `secret` is 32 random bytes. Only the SHA-256 of the whole
token is stored, and it is compared in constant time. A slow KDF (bcrypt, scrypt) protects
guessable passwords; a token carries 256 random bits, so a stolen hash cannot be reversed by
guessing, and one fast hash keeps a per-request check cheap.

Scopes: `read` (look at jobs, queues, workers, schedules, events), `enqueue` (create jobs)
and `admin` (cancel, retry, everything else). `admin` implies the other two; `enqueue` does
not imply `read`, so a producer's token cannot watch other producers' jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from offload.core.errors import ValidationError, shorten

#: What every token starts with, so that scanners and people recognise a leaked one.
PREFIX = "offload_"
#: Hex digits of the lookup part.
LOOKUP_DIGITS = 12
#: Seconds between two records of a token's last use: authenticating is a read otherwise.
LAST_USED_EVERY = 60.0
_SHAPE = re.compile(rf"{PREFIX}([0-9a-f]{{{LOOKUP_DIGITS}}})_[A-Za-z0-9_-]{{43}}")


class Scope(StrEnum):
    """What a token may do."""

    READ = "read"
    ENQUEUE = "enqueue"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """Who a valid token belongs to and what it may do."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope | str) -> bool:
        """Whether the token may act in `scope` (`admin` allows every scope)."""
        return Scope.ADMIN in self.scopes or Scope(scope) in self.scopes


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token as listings show it: never the token, never its hash."""

    name: str
    scopes: frozenset[Scope]
    created_at: datetime
    #: When it last authenticated a call, to the minute (None: never).
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly made token and what is stored of it."""

    token: str
    lookup: str
    digest: str


def new_token() -> NewToken:
    """A random token, with its lookup part and digest."""
    lookup = secrets.token_hex(LOOKUP_DIGITS // 2)
    token = f"{PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    return NewToken(token, lookup, digest(token))


def lookup_of(token: object) -> str | None:
    """The lookup part of a well-formed token, None for anything else (never raises)."""
    if not isinstance(token, str):
        return None
    match = _SHAPE.fullmatch(token)
    return None if match is None else match.group(1)


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, stored: str) -> bool:
    """Whether `token` hashes to the `stored` digest, in time independent of where they
    differ."""
    return hmac.compare_digest(digest(token), stored)


def check_scopes(scopes: Collection[Scope | str] | str) -> frozenset[Scope]:
    """Scopes given to a call: a collection of scope names or a comma-separated string, at
    least one, each known."""
    given = scopes.split(",") if isinstance(scopes, str) else scopes
    if not isinstance(given, Collection):
        raise ValidationError(f"scopes must be a collection of scope names, got {shorten(given)}")
    names = [s.strip() if isinstance(s, str) else s for s in given]
    known = ", ".join(Scope)
    out = set()
    for name in names:
        if name not in tuple(Scope):
            raise ValidationError(f"unknown scope {shorten(name)}; one of: {known}")
        out.add(Scope(name))
    if not out:
        raise ValidationError(f"a token needs at least one scope; one of: {known}")
    return frozenset(out)


def scopes_text(scopes: Collection[Scope]) -> str:
    """Scopes as stored and shown: comma-separated, in the order read, enqueue, admin."""
    return ",".join(s.value for s in Scope if s in scopes)


def scopes_from(text: str) -> frozenset[Scope]:
    """Stored scopes back as a set."""
    return frozenset(Scope(s) for s in text.split(",") if s)
