"""OFFLOAD_TEST_FULL picks the size of the long tests, and a bad value is refused by name."""

from __future__ import annotations

import pytest

from tests import sizes


@pytest.mark.parametrize(("value", "full"), [("", False), ("0", False), ("1", True)])
def test_the_setting_picks_the_size(
    monkeypatch: pytest.MonkeyPatch, value: str, full: bool
) -> None:
    monkeypatch.setenv(sizes.ENV, value)
    assert sizes._full() is full


def test_a_bad_setting_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(sizes.ENV, "yes")
    with pytest.raises(sizes.BadSizeSetting) as info:
        sizes._full()
    assert info.value.value == "yes"
    assert str(info.value) == "OFFLOAD_TEST_FULL must be 0 or 1 (or unset), not 'yes'"


def test_sized_gives_the_size_of_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizes, "FULL", False)
    assert sizes.sized(2, 10) == 2
    monkeypatch.setattr(sizes, "FULL", True)
    assert sizes.sized(2, 10) == 10
