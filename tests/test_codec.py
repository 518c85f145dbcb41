"""The codec: datetimes as text, and tokens, doctors, snapshots and events as JSON-safe dicts.

DESIGN section 9: events and snapshots are "JSON-safe: enums by name, datetimes ISO 8601
with their offset". What a host stores must never change: the dicts written for a given
state are pinned, byte for byte, in ``fixtures/pinned-days.json``, written by this module
(``python tests/test_codec.py``) before the codec was gathered into one module.
"""

from __future__ import annotations

import json
import random
import sys
from datetime import datetime, timedelta, timezone, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from fixtures.make_journals import FLOOR_KINDS, Clock, step  # the stored journals' random day
from opd_engine import (
    Allocator,
    Doctor,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    OnDelay,
    OnFull,
    Policies,
    Slot,
    Token,
    TokenStatus,
    event_to_dict,
)
from opd_engine._codec import (
    DOCTOR_FIELDS,
    TOKEN_FIELDS,
    Reader,
    Times,
    datetime_from_text,
    datetime_to_text,
    doctor_from_dict,
    doctor_to_dict,
    token_from_dict,
    token_row,
    token_to_dict,
)
from opd_engine._journal import KINDS, _event_from_dict

PINNED = Path(__file__).parent / "fixtures" / "pinned-days.json"
POLICIES = Policies(
    emergency=EmergencyOverride(max_overflow=0),
    on_delay=OnDelay.SHRINK,
    on_full=OnFull.WAITLIST,
)
DOCTORS = ("D1", "D2", "D3")
#: One day per kind of datetime a snapshot holds: naive, in a named zone, at a fixed offset.
ZONES: dict[str, tzinfo | None] = {
    "naive": None,
    "zone": ZoneInfo("America/New_York"),
    "offset": timezone(timedelta(hours=5, minutes=30)),
}
SEED = 852  # the first seed whose naive day reaches every status and every event kind
STEPS = 400


def pinned_day(zone: tzinfo | None, seed: int = SEED) -> tuple[Allocator, list[Event]]:
    """A seeded random OPD day under waitlist, bounded-emergency and shrink-on-delay
    policies, and its journal."""
    date = datetime(2026, 11, 25, tzinfo=zone)
    clock = Clock(date.replace(hour=8))
    alloc = Allocator(policies=POLICIES, clock=clock)
    journal: list[Event] = []
    alloc.subscribe(journal.append)
    for doctor in DOCTORS:
        department = "Cardiology" if doctor == "D3" else "General Medicine"
        alloc.add_doctor(Doctor(doctor, f"Dr. {doctor}", department=department))
        for hour in (9, 10, 11):
            begin = date.replace(hour=hour)
            alloc.add_slot(Slot(f"{doctor}@{hour}", doctor, begin, begin + timedelta(hours=1), 2))
    rng = random.Random(seed)
    for _ in range(STEPS):
        step(alloc, clock, rng)
    return alloc, journal


def _text(value: object) -> str:
    return json.dumps(value, indent=None, separators=(",", ":"))


def written(zone: tzinfo | None) -> dict[str, str]:
    """What a host stores of the pinned day: its snapshot and its journal, as JSON text."""
    alloc, journal = pinned_day(zone)
    return {
        "snapshot": written_state(alloc),
        "events": _text([event_to_dict(event) for event in journal]),
    }


def written_state(alloc: Allocator) -> str:
    """``alloc``'s snapshot as the JSON text a host stores."""
    return _text(alloc.snapshot())


#: What the live floor (DESIGN section 10) added after the pinned days were written: the
#: random day of ``fixtures.make_journals`` makes none of the calls that reach them, and
#: ``test_floor.py`` pins a day that does.
FLOOR_STATUSES = {TokenStatus.AWAY, TokenStatus.UNSEEN}


def _reaches_everything(alloc: Allocator, journal: list[Event]) -> bool:
    statuses = {TokenStatus[row["status"]] for row in alloc.snapshot()["tokens"]}
    kinds = {type(event).__name__ for event in journal}
    return statuses == set(TokenStatus) - FLOOR_STATUSES and kinds == set(KINDS) - FLOOR_KINDS


def test_the_pinned_day_reaches_every_status_and_event_kind() -> None:
    """Every status and event kind but the live floor's (see ``FLOOR_KINDS``)."""
    assert _reaches_everything(*pinned_day(None))
    pinned = json.loads(PINNED.read_text())["naive"]
    stored = json.loads(pinned["snapshot"])
    assert {row["status"] for row in stored["tokens"]} == {
        status.name for status in set(TokenStatus) - FLOOR_STATUSES
    }
    assert {event["kind"] for event in json.loads(pinned["events"])} == set(KINDS) - FLOOR_KINDS


@pytest.mark.parametrize("name", sorted(ZONES))
def test_snapshots_and_events_are_written_as_before(name: str) -> None:
    """A state is written byte for byte as opd-engine wrote it when the file was made: the
    stored journal's events, read and written again, and the state it leads to.

    (The pinned day is no longer made again call by call: since ``call_next`` refuses an
    unavailable doctor, DESIGN section 3's "who may call", its random calls take another
    course. What is pinned is how a state and its events are written.)"""
    pinned = json.loads(PINNED.read_text())[name]
    times = Times()
    events = [event_to_dict(_event_from_dict(item, times)) for item in json.loads(pinned["events"])]
    assert _text(events) == pinned["events"]
    clock = Clock(datetime(2026, 11, 25, 20, tzinfo=ZONES[name]))
    replayed = Allocator.replay(json.loads(pinned["events"]), policies=POLICIES, clock=clock)
    assert written_state(replayed) == pinned["snapshot"]


@pytest.mark.parametrize("name", sorted(ZONES))
def test_the_pinned_day_loads_into_the_same_state(name: str) -> None:
    pinned = json.loads(PINNED.read_text())[name]
    snapshot: dict[str, Any] = json.loads(pinned["snapshot"])
    events: list[dict[str, Any]] = json.loads(pinned["events"])
    clock = Clock(datetime(2026, 11, 25, 20, tzinfo=ZONES[name]))
    restored = Allocator.from_snapshot(snapshot, policies=POLICIES, clock=clock)
    assert _text(restored.snapshot()) == pinned["snapshot"]
    replayed = Allocator.replay(events, policies=POLICIES, clock=clock)
    assert _text(replayed.snapshot()) == pinned["snapshot"]


# ============================================================================ the parts


def test_a_token_row_names_every_field_in_order() -> None:
    alloc, _ = pinned_day(None)
    token = alloc.tokens()[0]
    row = token_row(token)
    assert tuple(row) == tuple(f.name for f in attrs.fields(Token)) == TOKEN_FIELDS
    assert row == {
        f.name: (lambda v: v.name if isinstance(v, Enum) else v)(getattr(token, f.name))
        for f in attrs.fields(Token)
    }
    assert alloc.records()[0] == row


@pytest.mark.parametrize("name", sorted(ZONES))
def test_tokens_and_doctors_round_trip(name: str) -> None:
    alloc, _ = pinned_day(ZONES[name])
    for token in alloc.tokens():
        data = json.loads(json.dumps(token_to_dict(token)))
        assert tuple(data) == TOKEN_FIELDS
        assert token_from_dict(Reader(data, "token", Times())) == token
    doctor = Doctor("D-9", "Dr. Nine", department="ENT", consult_minutes=12)
    data = doctor_to_dict(doctor)
    assert tuple(data) == DOCTOR_FIELDS
    assert doctor_from_dict(Reader(data, "doctor", Times())) == doctor


@pytest.mark.parametrize(
    ("text", "aware"),
    [
        ("2026-11-01T01:30:00", False),
        ("2026-11-01T01:30:00+05:30", True),
        ("2026-11-01T01:30:00-04:00[America/New_York]", True),
        ("2026-11-01T01:30:00-05:00[America/New_York]", True),
    ],
)
def test_datetimes_round_trip_as_text(text: str, aware: bool) -> None:
    """The offset pins which of a fall-back night's two 01:30s it is; the name brings the
    zone back."""
    value = datetime_from_text(text, "at")
    assert datetime_to_text(value) == text
    assert (value.tzinfo is not None) == aware


def test_one_reader_refuses_naive_and_aware_datetimes_mixed() -> None:
    times = Times()
    times.parse("2026-11-25T09:00:00", "first")
    with pytest.raises(InvalidArgumentError, match="second is aware, but first is naive"):
        times.parse("2026-11-25T09:00:00+00:00", "second")


def main() -> None:
    """Write the pinned file (never over an existing one: it pins what was written)."""
    if PINNED.exists():
        sys.exit(f"{PINNED.name} exists; it pins what an earlier opd-engine wrote")
    data = {name: written(zone) for name, zone in ZONES.items()}
    PINNED.write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main()
