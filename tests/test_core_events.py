"""EventCursor's text form and ordering, Event's JSON view, and channel names (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import offload
from offload.core.errors import ValidationError
from offload.core.events import MAX_CHANNEL, Event, EventCursor, check_channel


def test_a_cursor_round_trips_through_its_text() -> None:
    for cursor in (EventCursor(0, 0), EventCursor(0, 17), EventCursor(2**64 - 1, 2**63 - 1)):
        assert EventCursor.parse(str(cursor)) == cursor
    assert str(EventCursor(812, 1003)) == "812-1003"
    assert EventCursor.START == EventCursor(0, 0) == EventCursor.parse("0-0")


def test_cursors_order_by_transaction_then_position() -> None:
    cursors = [EventCursor(2, 1), EventCursor(1, 9), EventCursor(1, 10), EventCursor(0, 50)]
    assert sorted(cursors) == [
        EventCursor(0, 50), EventCursor(1, 9), EventCursor(1, 10), EventCursor(2, 1),
    ]  # fmt: skip
    assert EventCursor(0, 1) > EventCursor.START


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "two decimal numbers"),
        ("12", "two decimal numbers"),
        ("1-2-3", "two decimal numbers"),
        ("-1-2", "two decimal numbers"),
        ("1--2", "two decimal numbers"),
        ("1-2 ", "two decimal numbers"),
        ("1_000-2", "two decimal numbers"),
        ("01-2", "two decimal numbers"),
        ("1-02", "two decimal numbers"),
        ("\uff11-2", "two decimal numbers"),  # a fullwidth 1: int() would take it
        ("0x1-2", "two decimal numbers"),
        (f"{2**64}-1", "out of range"),
        (f"1-{2**63}", "out of range"),
        ("9" * 5000, "two decimal numbers"),
    ],
)
def test_bad_text_raises_bad_event_id_naming_it(text: str, reason: str) -> None:
    with pytest.raises(offload.BadEventId) as raised:
        EventCursor.parse(text)
    assert (raised.value.text, reason in raised.value.reason) == (text, True)
    assert reason in str(raised.value) and "bad event id" in str(raised.value)
    assert len(str(raised.value)) < 400  # a huge input is not repeated whole
    assert isinstance(raised.value, ValidationError)


def test_a_value_that_is_not_text_is_a_bad_event_id() -> None:
    with pytest.raises(offload.BadEventId, match="expected text, got int"):
        EventCursor.parse(12)  # type: ignore[arg-type]


def test_an_event_s_json_view_names_every_field() -> None:
    at = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
    event = Event(EventCursor(5, 6), "progress", at, 7, "report", "default", "u:1",
                  "running", 1, {"fraction": 0.5})  # fmt: skip
    assert event.to_json() == {
        "id": "5-6",
        "kind": "progress",
        "at": "2026-11-28T09:30:00+00:00",
        "job_id": 7,
        "task": "report",
        "queue": "default",
        "channel": "u:1",
        "state": "running",
        "attempt": 1,
        "data": {"fraction": 0.5},
    }


def test_channel_names_are_1_to_255_characters_of_valid_unicode() -> None:
    for good in ("a", "user:42", "x" * MAX_CHANNEL, "café 🦊", " "):
        assert check_channel(good) == good
    for bad, problem in (
        ("", "1-255 characters, got 0"),
        ("x" * (MAX_CHANNEL + 1), "got 256"),
        ("a\udc80", "lone surrogate at index 1"),
        (b"bytes", "must be a str"),
        (None, "must be a str"),
    ):
        with pytest.raises(ValidationError, match="channel") as raised:
            check_channel(bad)
        assert problem in str(raised.value)
