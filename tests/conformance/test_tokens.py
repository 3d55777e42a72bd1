"""API tokens on both backends: stored hashed, found by their lookup part, revoked for every
process at once; bad input refused with nothing stored."""

from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import offload
from offload.backends.base import Backend
from offload.backends.params import TokenCreateParams
from offload.core import tokens as core_tokens
from offload.core.errors import TokenExists, TokenNotFound, ValidationError
from offload.core.tokens import Scope, TokenInfo, new_token
from tests.conformance.helpers import RawDB, is_sqlite


def _rows(db_url: str) -> list[dict[str, Any]]:
    return RawDB(db_url).query("SELECT * FROM offload_tokens ORDER BY name")


def test_a_created_token_authenticates_with_its_name_and_scopes(app: offload.App) -> None:
    token = app.create_token("ci", ["read", Scope.ENQUEUE])
    assert token.startswith("offload_")
    info = app.authenticate(token)
    assert info == TokenInfo("ci", frozenset({Scope.READ, Scope.ENQUEUE}))
    assert info.allows("read") and info.allows(Scope.ENQUEUE) and not info.allows("admin")
    admin = app.authenticate(app.create_token("ops", "admin"))
    assert admin is not None and all(admin.allows(scope) for scope in Scope)
    assert app.create_token("other", "read") != token


def test_the_stored_row_holds_a_digest_never_the_token(app: offload.App, db_url: str) -> None:
    token = app.create_token("ci", "read,enqueue")
    secret = token.rsplit("_", 1)[1]
    (row,) = _rows(db_url)
    for value in row.values():
        assert token not in str(value) and secret not in str(value)
    assert row["hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["lookup"] == token.split("_")[1]
    assert row["scopes"] == "read,enqueue"


def test_listing_shows_names_scopes_and_times(app: offload.App) -> None:
    before = app.backend.now()
    app.create_token("b", ["admin"])
    app.create_token("a", ["enqueue", "read"])
    listed = app.tokens()
    assert [(t.name, t.scopes) for t in listed] == [
        ("a", frozenset({Scope.READ, Scope.ENQUEUE})),
        ("b", frozenset({Scope.ADMIN})),
    ]
    assert all(t.created_at >= before - timedelta(seconds=1) for t in listed)
    assert all(t.last_used_at is None for t in listed)


def test_last_use_is_recorded_at_most_once_a_minute(app: offload.App, db_url: str) -> None:
    token = app.create_token("ci", "read")
    assert app.authenticate(token) is not None
    (first,) = app.tokens()
    assert first.last_used_at is not None
    assert app.authenticate(token) is not None
    assert app.tokens() == [first], "a use within the minute wrote again"
    earlier = datetime.now(UTC) - timedelta(seconds=2 * core_tokens.LAST_USED_EVERY)
    stamp: Any = earlier.timestamp() if is_sqlite(db_url) else earlier
    RawDB(db_url).execute("UPDATE offload_tokens SET last_used_at = ?", (stamp,))
    assert app.authenticate(token) is not None
    (again,) = app.tokens()
    assert again.last_used_at is not None and again.last_used_at > earlier + timedelta(seconds=1)


def test_revoking_takes_effect_in_every_process_at_once(app: offload.App, db_url: str) -> None:
    token = app.create_token("ci", "read")
    other = offload.App(db_url)
    try:
        assert other.authenticate(token) == TokenInfo("ci", frozenset({Scope.READ}))
        app.revoke_token("ci")
        assert other.authenticate(token) is None
        assert app.authenticate(token) is None
    finally:
        other.close()
    assert _rows(db_url) == []


def test_tokens_configured_follows_live_tokens(app: offload.App) -> None:
    assert app.tokens_configured() is False
    app.create_token("ci", "read")
    assert app.tokens_configured() is True
    app.revoke_token("ci")
    assert app.tokens_configured() is False


def test_a_name_is_reusable_after_revoking(app: offload.App) -> None:
    old = app.create_token("ci", "read")
    app.revoke_token("ci")
    new = app.create_token("ci", "admin")
    assert app.authenticate(old) is None
    assert app.authenticate(new) == TokenInfo("ci", frozenset({Scope.ADMIN}))


# -- bad input --------------------------------------------------------------------------


def test_a_taken_name_is_refused_naming_it_and_stores_nothing(
    app: offload.App, db_url: str
) -> None:
    token = app.create_token("ci", "read")
    before = _rows(db_url)
    with pytest.raises(TokenExists, match="'ci'") as info:
        app.create_token("ci", "admin")
    assert info.value.name == "ci"
    assert _rows(db_url) == before
    assert app.authenticate(token) == TokenInfo("ci", frozenset({Scope.READ}))


def test_racing_creates_of_one_name_store_one_token(app: offload.App, db_url: str) -> None:
    made: list[str] = []
    refused: list[Exception] = []

    def create() -> None:
        racer = offload.App(db_url)
        try:
            made.append(racer.create_token("ci", "read"))
        except TokenExists as exc:
            refused.append(exc)
        finally:
            racer.close()

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert (len(made), len(refused)) == (1, 3)
    assert app.authenticate(made[0]) is not None
    assert len(_rows(db_url)) == 1


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "1-200 characters"),
        ("x" * 201, "1-200 characters"),
        ("bad\nname", "control character"),
        ("bad\x00name", "control character"),
        (42, "1-200 characters"),
        ("lone \ud800", "surrogate"),
    ],
    ids=["empty", "overlong", "newline", "nul", "not-text", "surrogate"],
)
def test_bad_names_are_refused_and_store_nothing(
    app: offload.App, db_url: str, name: Any, fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        app.create_token(name, "read")
    assert _rows(db_url) == []


@pytest.mark.parametrize(
    ("scopes", "fragment"),
    [
        ("reed", "unknown scope 'reed'"),
        (["read", "superuser"], "unknown scope 'superuser'"),
        ([], "at least one scope"),
        ("", "unknown scope ''"),
        ([None], "unknown scope None"),
        (7, "must be a collection"),
    ],
    ids=["typo", "unknown", "none", "empty-text", "not-text", "not-a-collection"],
)
def test_bad_scopes_are_refused_and_store_nothing(
    app: offload.App, db_url: str, scopes: Any, fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment):
        app.create_token("ci", scopes)
    assert _rows(db_url) == []


def test_revoking_an_unknown_name_is_refused_naming_it(app: offload.App, db_url: str) -> None:
    token = app.create_token("deploy", "admin")
    with pytest.raises(
        TokenNotFound, match="unknown token 'deploi'; did you mean 'deploy'"
    ) as info:
        app.revoke_token("deploi")
    assert info.value.name == "deploi"
    with pytest.raises(TokenNotFound, match="unknown token 42"):
        app.revoke_token(42)  # type: ignore[arg-type]
    assert app.authenticate(token) is not None


def test_anything_but_a_live_token_authenticates_as_none(app: offload.App) -> None:
    token = app.create_token("ci", "read")
    lookup, secret = token.removeprefix("offload_").split("_", 1)
    other = "A" if secret[-1] != "A" else "B"
    refused: list[Any] = [
        None,
        42,
        b"bytes",
        "",
        "offload_",
        token + "\n",
        " " + token,
        token[:-1],
        token + "x",
        token[:-1] + other,  # right lookup, wrong secret
        f"offload_{'0' * 12}_{secret}",  # unknown lookup
        token.upper(),
        token.replace("offload_", "offlaod_"),
        "offload_" + lookup + "_\ud800" * 43,
        "x" * 100_000,
    ]
    for value in refused:
        assert app.authenticate(value) is None, value
    assert app.authenticate(token) is not None


def test_a_known_lookup_compares_digests_in_constant_time(
    app: offload.App, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = app.create_token("ci", "read")
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return bool(real(a, b))

    monkeypatch.setattr(hmac, "compare_digest", spy)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert app.authenticate(wrong) is None
    assert compared == [(core_tokens.digest(wrong), core_tokens.digest(token))]


def test_the_store_refuses_a_second_token_of_one_name(backend: Backend) -> None:
    made = new_token()
    store = backend.tokens
    params = TokenCreateParams("ci", made.lookup, made.digest, frozenset({Scope.READ}))
    assert store.create(params) is True
    again = new_token()
    assert store.create(TokenCreateParams("ci", again.lookup, again.digest, params.scopes)) is False
    found = store.find(made.lookup)
    assert found is not None
    assert (found.name, found.digest, found.scopes) == ("ci", made.digest, params.scopes)
    assert store.find(again.lookup) is None
    assert store.revoke("ci") is True and store.revoke("ci") is False
