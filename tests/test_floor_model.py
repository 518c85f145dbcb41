"""Regression tests for disagreements the reference model (``tests/model.py``) found between
the library and DESIGN.md section 10, the live floor."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conftest import START, Clock
from opd_engine import (
    Allocator,
    Doctor,
    Event,
    InvalidArgumentError,
    Slot,
    SlotClosedError,
    event_to_dict,
)


def ended_day() -> Allocator:
    alloc = Allocator(clock=Clock(START))
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("D1@09", "D1", START, START + timedelta(minutes=30), 2))
    alloc.end_day("D1")
    return alloc


def test_a_slot_cannot_be_added_to_an_ended_day() -> None:
    """Section 10, ``end_day``: "the doctor's day closes ... every slot of the doctor closes".
    A slot added afterwards used to open the day again: it took bookings for a doctor whose
    ``call_next`` returns None for good, and ``check_invariants`` failed."""
    alloc = ended_day()
    later = Slot("D1@10", "D1", START + timedelta(hours=1), START + timedelta(hours=2), 2)
    before = (alloc.snapshot(), alloc.version)
    with pytest.raises(InvalidArgumentError, match="ended the day"):
        alloc.add_slot(later)
    assert (alloc.snapshot(), alloc.version) == before
    with pytest.raises(SlotClosedError):
        alloc.book("P1", "D1")
    alloc.check_invariants()


def test_a_journal_that_adds_a_slot_to_an_ended_day_is_refused() -> None:
    """Replay refuses, as ``add_slot`` does, a ``SlotAdded`` after the doctor's ``DayEnded``."""
    clock = Clock(START)
    alloc = Allocator(clock=clock)
    events: list[Event] = []
    alloc.subscribe(events.append)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("D1@09", "D1", START, START + timedelta(minutes=30), 2))
    alloc.end_day("D1")
    journal = [event_to_dict(e) for e in events]
    assert [row["kind"] for row in journal] == ["DoctorAdded", "SlotAdded", "DayEnded"]
    later = START + timedelta(hours=1)
    forged = {
        **journal[1],
        "version": 4,
        "slot_id": "D1@10",
        "start": later.isoformat(),
        "end": (later + timedelta(hours=1)).isoformat(),
    }
    with pytest.raises(InvalidArgumentError, match="ended the day"):
        Allocator.replay([*journal, forged], clock=clock)
    assert Allocator.replay(journal, clock=clock).snapshot() == alloc.snapshot()
