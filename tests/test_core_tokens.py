"""Token format, scopes and digests, without a database."""

from __future__ import annotations

import hashlib

import pytest

from offload.core.errors import ValidationError
from offload.core.tokens import (
    PREFIX,
    Scope,
    TokenInfo,
    check_scopes,
    digest,
    lookup_of,
    matches,
    new_token,
    scopes_from,
    scopes_text,
)


def test_a_new_token_is_random_prefixed_and_its_lookup_part_is_found() -> None:
    made = [new_token() for _ in range(50)]
    assert len({m.token for m in made}) == len({m.lookup for m in made}) == 50
    for m in made:
        assert m.token.startswith(PREFIX)
        assert lookup_of(m.token) == m.lookup
        assert m.digest == hashlib.sha256(m.token.encode()).hexdigest() == digest(m.token)
        assert matches(m.token, m.digest)
        assert not matches(m.token + "x", m.digest)


def test_scopes_parse_from_text_or_a_collection_and_keep_a_fixed_order() -> None:
    assert check_scopes("admin, read") == frozenset({Scope.ADMIN, Scope.READ})
    assert check_scopes([Scope.ENQUEUE, "enqueue"]) == frozenset({Scope.ENQUEUE})
    assert scopes_text({Scope.ADMIN, Scope.READ, Scope.ENQUEUE}) == "read,enqueue,admin"
    assert scopes_from("read,admin") == frozenset({Scope.READ, Scope.ADMIN})
    with pytest.raises(ValidationError, match="unknown scope 'Read'; one of: read, enqueue, admin"):
        check_scopes("Read")


def test_admin_allows_every_scope_and_enqueue_does_not_allow_read() -> None:
    admin = TokenInfo("ops", frozenset({Scope.ADMIN}))
    producer = TokenInfo("shop", frozenset({Scope.ENQUEUE}))
    assert all(admin.allows(scope) for scope in Scope)
    assert producer.allows("enqueue")
    assert not producer.allows(Scope.READ) and not producer.allows("admin")
    with pytest.raises(ValueError, match="'write'"):
        producer.allows("write")
