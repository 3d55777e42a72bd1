"""`offload tokens create/list/revoke`: the token is printed once, listings never show it,
and bad input fails with one `error:` line, storing nothing."""

from __future__ import annotations

import offload
from offload.core.tokens import Scope, TokenInfo
from tests.cli.helpers import assert_one_line_error, offload_cli, run_json


def test_create_prints_a_token_that_authenticates_and_list_never_shows_it(
    store: offload.App, env: dict[str, str]
) -> None:
    created = offload_cli("tokens", "create", "ci", "--scopes", "read,enqueue", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"
    assert store.authenticate(token) == TokenInfo("ci", frozenset({Scope.READ, Scope.ENQUEUE}))

    listed = offload_cli("tokens", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ["ci", "read,enqueue"]
    as_json = run_json("tokens", "list", env=env)
    assert [(t["name"], t["scopes"]) for t in as_json] == [("ci", ["read", "enqueue"])]
    assert set(as_json[0]) == {"name", "scopes", "created_at", "last_used_at"}
    secret = token.rsplit("_", 1)[1]
    assert secret not in listed.stdout and secret not in str(as_json)

    revoked = offload_cli("tokens", "revoke", "ci", env=env)
    assert (revoked.returncode, revoked.stdout) == (0, "ci: revoked\n")
    assert store.authenticate(token) is None
    assert offload_cli("tokens", "list", env=env).stdout == "no tokens\n"


def test_bad_input_fails_with_one_line_and_changes_nothing(
    store: offload.App, env: dict[str, str]
) -> None:
    token = store.create_token("deploy", "admin")
    before = store.tokens()
    cases = [
        (("create", "deploy", "--scopes", "read"), 1, ("token named 'deploy' exists already",)),
        (("create", "x", "--scopes", "read,reed"), 1, ("unknown scope 'reed'",)),
        (("create", "bad\tname", "--scopes", "read"), 1, ("control character",)),
        (("create", "x"), 2, ("--scopes",)),
        (("revoke", "deploi"), 1, ("unknown token 'deploi'", "did you mean 'deploy'")),
    ]
    for args, code, fragments in cases:
        assert_one_line_error(offload_cli("tokens", *args, env=env), code, *fragments)
    assert store.tokens() == before
    assert store.authenticate(token) is not None
