"""Snapshots: exact round trips, and malformed or inconsistent data refused."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from conftest import DOCTORS, Build, Clock, at
from opd_engine import (
    Allocator,
    DuplicateBookingError,
    InvalidArgumentError,
    OnFull,
    Policies,
    Priority,
    Slot,
    Source,
)

ONLINE = Source.ONLINE


def slot(slot_id: str, doctor_id: str, start: datetime, minutes: int = 60, cap: int = 3) -> Slot:
    return Slot(slot_id, doctor_id, start, start + timedelta(minutes=minutes), cap)


def test_snapshot_round_trips_through_json(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(10):
        alloc.book(f"P{i}", "D1", source=ONLINE if i % 3 else Source.WALK_IN)
    alloc.book("E", "D1", priority=Priority.EMERGENCY)
    alloc.call_next("D1")
    alloc.book("F", "D2", "D2@09")
    alloc.call_next("D2")
    alloc.call_next("D2")  # D2's patient completed
    alloc.delay("D1", 5)
    clock.now = at(9, 20)
    alloc.no_show("D1-002")
    data = json.loads(json.dumps(alloc.snapshot()))
    copy = Allocator.from_snapshot(data, policies=alloc.policies, clock=clock)
    copy.check_invariants()
    assert copy.records() == alloc.records()
    assert copy.snapshot() == alloc.snapshot()
    for s in alloc.slots():
        assert copy.queue(s.id) == alloc.queue(s.id)
    assert copy.waitlist("D1") == alloc.waitlist("D1")
    assert [copy.estimated_start(t.id) for t in copy.tokens()] == [
        alloc.estimated_start(t.id) for t in alloc.tokens()
    ]
    # Both carry on the same way.
    for each in (alloc, copy):
        each.cancel("D1-003")
        each.call_next("D1")
    assert copy.book("Z", "D1") == alloc.book("Z", "D1")
    assert copy.records() == alloc.records()


def test_snapshot_keeps_which_token_a_duplicate_booking_names(
    alloc: Allocator, clock: Clock
) -> None:
    emergency = alloc.book("P", "D1", priority=Priority.EMERGENCY, checked_in=False)
    clock.now = at(9, 20)
    alloc.no_show(emergency.id)
    standard = alloc.book("P", "D1")
    alloc.check_in(emergency.id)  # late arrival: the patient now holds both
    copy = Allocator.from_snapshot(alloc.snapshot(), policies=alloc.policies, clock=clock)
    for each in (alloc, copy):
        with pytest.raises(DuplicateBookingError) as info:
            each.book("P", "D1")
        assert info.value.token_id == standard.id


def test_snapshot_of_an_aware_day() -> None:
    utc = timezone.utc
    clock = Clock(at(8).replace(tzinfo=utc))
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(slot("A", "D1", at(9).replace(tzinfo=utc)))
    token = alloc.book("P", "D1")
    data = json.loads(json.dumps(alloc.snapshot()))
    copy = Allocator.from_snapshot(data, clock=clock)
    assert copy.token(token.id) == token
    assert copy.slot("A").start == at(9).replace(tzinfo=utc)


def corrupt(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of ``data`` with the item at ``path`` (``a.0.b``) set to ``value``."""
    copy: Any = json.loads(json.dumps(data))
    *parents, last = path.split(".")
    node = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dict(copy)


CORRUPTIONS: list[tuple[str, object, str]] = [
    ("version", "1", "version"),
    ("seq", True, "seq"),
    ("seq", 1, "inconsistent"),
    ("doctors", {}, "doctors"),
    ("doctors.0", "D1", "doctors"),
    ("doctors.0.consult_minutes", 0, "consult_minutes"),
    ("doctors.1.id", "D1", "twice"),
    ("doctors.0.current", "D1-404", "inconsistent"),
    ("slots.0.start", "nine o'clock", "ISO 8601"),
    ("slots.0.doctor_id", "D9", "unknown"),
    ("slots.1.id", "D1@09", "twice"),
    ("slots.1.start", "2026-11-25T09:30:00", "inconsistent"),
    (
        "slots.3",
        {
            "id": "D2@09",
            "doctor_id": "D2",
            "start": "2026-11-25T09:00:00+00:00",
            "end": "2026-11-25T10:00:00+00:00",
            "capacity": 3,
            "closed": False,
            "elastic": 0,
        },
        "mixes naive and aware",
    ),
    ("tokens.0.status", "LOST", "status"),
    ("tokens.0.priority", 3, "priority"),
    ("tokens.0.doctor_id", "D9", "unknown"),
    ("tokens.0.slot_id", "D2@09", "not a slot of"),
    ("tokens.1.id", "D1-001", "twice"),
    ("tokens.0.seq", 2, "inconsistent"),
]


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [pytest.param(p, v, m, id=f"{p}={v!r}") for p, v, m in CORRUPTIONS],
)
def test_from_snapshot_refuses_malformed_data(
    alloc: Allocator, clock: Clock, path: str, value: object, match: str
) -> None:
    alloc.book("A", "D1", source=ONLINE)
    alloc.book("B", "D1")
    alloc.book("C", "D1")
    alloc.call_next("D1")
    data = alloc.snapshot()
    assert Allocator.from_snapshot(data, clock=clock).records() == alloc.records()
    with pytest.raises(InvalidArgumentError, match=match):
        Allocator.from_snapshot(corrupt(data, path, value), clock=clock)


def test_from_snapshot_refuses_other_data(alloc: Allocator) -> None:
    data = alloc.snapshot()
    with pytest.raises(InvalidArgumentError, match="format"):
        Allocator.from_snapshot({**data, "format": "something else"})
    with pytest.raises(InvalidArgumentError, match="version"):
        Allocator.from_snapshot({**data, "version": 99})
    with pytest.raises(InvalidArgumentError):
        Allocator.from_snapshot({**data, "slots": [{"id": "S"}]})
    with pytest.raises(InvalidArgumentError, match="missing"):
        Allocator.from_snapshot({**data, "slots": [{"id": "S"}]})
    with pytest.raises(InvalidArgumentError, match="object"):
        Allocator.from_snapshot([data])  # type: ignore[arg-type]
