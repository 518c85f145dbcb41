"""Regression tests for the edges an adversarial audit found: the end of datetime's range,
time zones without offsets, daylight saving time, one allocator per OPD day, and the
smaller defects. Each test quotes the promise that broke."""

from __future__ import annotations

import json
import sys
import threading
import time as timing
import tracemalloc
import unicodedata
from collections.abc import Callable
from datetime import datetime, time, timedelta, timezone, tzinfo
from enum import Enum, IntEnum
from zoneinfo import ZoneInfo

import attrs
import pytest

from conftest import DOCTORS, Clock, at
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
    DuplicateBookingError,
    Duplicates,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    OnFull,
    Policies,
    Priority,
    Reallocation,
    Slot,
    Source,
    SourceQuota,
    StrictPriority,
    event_to_dict,
)
from opd_engine._check import check_str
from opd_engine.simulation import DoctorPlan, Session

NEW_YORK = ZoneInfo("America/New_York")
# The fall-back night of 2026 in New York: at 02:00 EDT the clocks go back to 01:00 EST.
BEFORE = datetime(2026, 11, 1, 0, 50, tzinfo=NEW_YORK)  # 04:50 UTC
FIRST_0130 = datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK)  # EDT, 05:30 UTC
SECOND_0115 = datetime(2026, 11, 1, 1, 15, fold=1, tzinfo=NEW_YORK)  # EST, 06:15 UTC
SECOND_0130 = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK)  # EST, 06:30 UTC


# ----------------------------------------------------------------------------- datetime range


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime.max - timedelta(hours=1), datetime.max),
        (datetime.min, datetime.min + timedelta(hours=1)),
        (datetime.max - timedelta(days=3), datetime.max - timedelta(days=2)),
        (
            datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=3),
            datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=2),
        ),
        (datetime.min.replace(tzinfo=timezone.utc), datetime.min.replace(tzinfo=timezone.utc)),
    ],
)
def test_slots_at_the_end_of_datetime_s_range_are_refused(start: datetime, end: datetime) -> None:
    """Issue: "A slot that ends at datetime.max is accepted, then book or check_in raises
    OverflowError after the token was filed" -- such a slot is refused when made."""
    with pytest.raises(InvalidArgumentError, match="between"):
        Slot("S", "D1", start, end, 3)


@pytest.mark.parametrize("aware", [False, True])
def test_slots_in_the_edge_years_inside_the_range_are_taken(aware: bool) -> None:
    """The first and last years of ``datetime`` hold both refused and accepted times."""
    zone = timezone.utc if aware else None
    early = (datetime.min + timedelta(days=8)).replace(tzinfo=zone)
    late = (datetime.max - timedelta(days=8)).replace(tzinfo=zone)
    for start in (early, late):
        slot = Slot("S", "D1", start, start + timedelta(hours=1), 3)
        assert slot.start == start


def test_a_clock_at_the_end_of_datetime_s_range_is_refused() -> None:
    """A clock reading that day-long durations would overflow is refused, changing nothing."""
    alloc = Allocator(clock=lambda: datetime.max)
    with pytest.raises(InvalidArgumentError, match="clock"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []


@pytest.mark.parametrize("zone", [None, timezone.utc, timezone(-timedelta(hours=5)), NEW_YORK])
def test_a_clock_is_taken_exactly_within_its_range(zone: tzinfo | None) -> None:
    """A clock reading a week inside datetime's range or more is taken, to the microsecond;
    one closer to either end is refused, naive or aware (the range is of wall times)."""
    first = datetime.min + timedelta(days=7)
    last = datetime.max - timedelta(days=7)
    tick = timedelta(microseconds=1)
    for now, taken in [(first, True), (last, True), (first - tick, False), (last + tick, False)]:
        alloc = Allocator(clock=Clock(now.replace(tzinfo=zone)))
        if taken:
            alloc.add_doctor(DOCTORS[0])
            assert [d.id for d in alloc.doctors()] == [DOCTORS[0].id]
        else:
            with pytest.raises(InvalidArgumentError, match="clock must return a time between"):
                alloc.add_doctor(DOCTORS[0])
            assert alloc.doctors() == []


class FailingZoneInfo(ZoneInfo):
    """A subclass of the standard library's zones whose lookups fail: only the standard
    classes themselves are trusted to give every datetime an offset."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        raise KeyError("Asia/Nowhere")


def test_a_clock_in_a_zone_subclass_that_raises_is_refused() -> None:
    alloc = Allocator(clock=lambda: datetime(2026, 11, 25, 8, tzinfo=FailingZoneInfo("UTC")))
    with pytest.raises(InvalidArgumentError, match=r"clock's tzinfo fails .*KeyError"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []


class NoOffset(tzinfo):
    """A tzinfo whose utcoffset() is None."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str:
        return "nowhere"


def test_a_tzinfo_without_an_offset_is_refused() -> None:
    """Issue: "A tzinfo whose utcoffset() is None raises TypeError inside add_slot, and the
    slot is added anyway" -- it is refused with InvalidArgumentError, before anything."""
    zone = NoOffset()
    with pytest.raises(InvalidArgumentError, match="UTC offset"):
        Slot("S", "D1", datetime(2026, 11, 25, 9, tzinfo=zone), datetime(2026, 11, 25, 10), 3)
    alloc = Allocator(clock=lambda: datetime(2026, 11, 25, 8, tzinfo=zone))
    with pytest.raises(InvalidArgumentError, match="UTC offset"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []


class FailingZone(tzinfo):
    """A tzinfo whose lookups fail, as a zone database missing an entry does."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        raise KeyError("Asia/Nowhere")

    def dst(self, dt: datetime | None) -> timedelta | None:
        raise KeyError("Asia/Nowhere")

    def tzname(self, dt: datetime | None) -> str:
        return "nowhere"


def test_a_clock_whose_zone_raises_is_refused_cleanly(clock: Clock) -> None:
    """Issue: "A clock whose time zone raises in utcoffset() leaks a raw KeyError" -- it is
    refused with InvalidArgumentError naming the clock, and nothing changes."""
    alloc = Allocator(clock=lambda: datetime(2026, 11, 25, 8, tzinfo=FailingZone()))
    with pytest.raises(InvalidArgumentError, match=r"clock's tzinfo fails .*KeyError"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []
    assert alloc.version == 0
    with pytest.raises(InvalidArgumentError, match="UTC offset"):
        Slot("S", "D1", datetime(2026, 11, 25, 9, tzinfo=FailingZone()), at(10), 3)


# ----------------------------------------------------------------------------- DST


def later(when: datetime, minutes: int) -> datetime:
    """``minutes`` real minutes after ``when``, in its zone (``+`` adds wall minutes)."""
    return (when.astimezone(timezone.utc) + timedelta(minutes=minutes)).astimezone(NEW_YORK)


def new_york_day(clock: Clock, policies: Policies | None = None) -> Allocator:
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    return alloc


def test_a_slot_across_the_fall_back_change_is_accepted() -> None:
    """Issue: "A 45-minute slot that crosses the change is refused as 'end must be after
    start'": 01:30 EDT to 01:15 EST is 45 real minutes."""
    slot = Slot("S", "D1", FIRST_0130, SECOND_0115, 3)
    assert (slot.start, slot.end) == (FIRST_0130, SECOND_0115)
    with pytest.raises(InvalidArgumentError, match="end must be after start"):
        Slot("T", "D1", SECOND_0115, FIRST_0130, 3)  # 45 real minutes backwards


def test_slots_across_the_change_are_ordered_in_real_time() -> None:
    """The second 01:15 (EST) comes after the first 01:30 (EDT): slots are ordered, and
    overlaps found, in real time."""
    clock = Clock(BEFORE)
    alloc = new_york_day(clock)
    alloc.add_slot(Slot("late", "D1", SECOND_0115, later(SECOND_0115, 30), 1))
    alloc.add_slot(Slot("early", "D1", FIRST_0130, later(FIRST_0130, 20), 1))
    assert [s.id for s in alloc.slots("D1")] == ["early", "late"]
    with pytest.raises(InvalidArgumentError, match="overlaps"):
        alloc.add_slot(Slot("x", "D1", SECOND_0130, later(SECOND_0130, 5), 1))
    alloc.check_invariants()


def test_aging_measures_waits_in_real_time() -> None:
    """Issue: "Aging measures waits in wall-clock time (40 minutes) instead of real time
    (100 minutes)": checked in at 00:50 EDT, at 01:30 EST a walk-in has waited 100
    minutes, three aging steps of 30, and is called before a follow-up who came later."""
    clock = Clock(BEFORE)
    alloc = new_york_day(clock, Policies(ordering=Aging(ceiling=Priority.PAID)))
    start = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    alloc.add_slot(Slot("S", "D1", start, start + timedelta(hours=3), 5))
    walk_in = alloc.book("W", "D1")
    clock.now = SECOND_0130 - timedelta(minutes=5)
    follow_up = alloc.book("F", "D1", source=Source.PAID, checked_in=True)
    clock.now = SECOND_0130
    # 100 real minutes: three steps, STANDARD -> PAID (the ceiling), and an earlier seq.
    assert [t.id for t in alloc.queue("S")] == [walk_in.id, follow_up.id]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == walk_in.id


def test_accumulating_priority_measures_waits_in_real_time() -> None:
    """AccumulatingPriority's ``rate * minutes waited`` counts real minutes across the
    change: the first check-in has waited longest."""
    clock = Clock(FIRST_0130)
    alloc = new_york_day(clock, Policies(ordering=AccumulatingPriority()))
    start = datetime(2026, 11, 1, 0, 30, tzinfo=NEW_YORK)
    alloc.add_slot(Slot("S", "D1", start, start + timedelta(hours=3), 5))
    first = alloc.book("A", "D1")  # 01:30 EDT
    clock.now = SECOND_0115  # 45 real minutes later, 15 wall minutes earlier
    second = alloc.book("B", "D1")
    clock.now = SECOND_0130
    assert [t.id for t in alloc.queue("S")] == [first.id, second.id]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == first.id
    alloc.check_invariants()


def test_estimated_start_and_no_show_grace_in_real_time() -> None:
    """Estimated starts and the no-show grace add real minutes, and come back in the
    clock's zone."""
    clock = Clock(BEFORE)
    alloc = new_york_day(clock, Policies(ordering=StrictPriority()))
    alloc.add_slot(Slot("S", "D1", FIRST_0130, SECOND_0130, 5))  # 01:30 EDT to 01:30 EST
    first = alloc.book("A", "D1", source=Source.ONLINE)
    second = alloc.book("B", "D1", source=Source.ONLINE)
    clock.now = datetime(2026, 11, 1, 1, 55, tzinfo=NEW_YORK)  # EDT, 05:55 UTC
    estimate = alloc.estimated_start(second.id)
    assert estimate is not None
    # An ambiguous local time never equals another zone's (PEP 495): compare in UTC.
    assert estimate.astimezone(timezone.utc) == datetime(2026, 11, 1, 6, 5, tzinfo=timezone.utc)
    assert estimate.tzinfo is NEW_YORK
    assert estimate.fold == 1  # 01:05 EST, the second one
    assert alloc.no_show(first.id).status.name == "NO_SHOW"  # 25 real minutes after start


# ----------------------------------------------------------------------------- one OPD day


def test_an_allocator_is_one_opd_day(clock: Clock) -> None:
    """DESIGN section 1: "An Allocator is one OPD day: all its slots start on the same
    calendar date"; add_slot refuses "a start on another date than the allocator's other
    slots (one OPD day)", so Monday's delay, leftovers and duplicates cannot reach
    Tuesday."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("Mon", "D1", at(9), at(10), 3))
    version = alloc.version
    tuesday = at(9) + timedelta(days=1)
    with pytest.raises(InvalidArgumentError, match="one OPD day"):
        alloc.add_slot(Slot("Tue", "D1", tuesday, tuesday + timedelta(hours=1), 3))
    assert [s.id for s in alloc.slots()] == ["Mon"]
    assert alloc.version == version


# ----------------------------------------------------------------------------- subscribers


def test_subscribers_see_the_changes_from_the_moment_they_subscribe(clock: Clock) -> None:
    """Issue: "A subscriber unsubscribed during delivery still gets the current event, and
    one added during delivery gets earlier events of the same call. Pick the rule." The
    rule: each event goes to the subscribers present when it is delivered; one who
    unsubscribes gets nothing after, one who subscribes gets what is delivered after."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 1))
    alloc.add_slot(Slot("T", "D1", at(10), at(11), 1))
    alloc.book("A", "D1", "S", source=Source.ONLINE)
    alloc.book("B", "D1", "T")  # present: pulled forward when A cancels
    late: list[Event] = []
    early: list[Event] = []
    stop_early: list[Callable[[], None]] = []

    def first(event: Event) -> None:
        early.append(event)
        stop_early[0]()  # unsubscribe during delivery
        alloc.subscribe(late.append)  # subscribe during delivery

    stop_early.append(alloc.subscribe(first))
    alloc.cancel("D1-001")  # TokenCancelled, then TokenMoved
    assert [type(e).__name__ for e in early] == ["TokenCancelled"]
    assert [type(e).__name__ for e in late] == ["TokenMoved"]


def test_a_subscriber_unsubscribed_by_another_during_delivery_gets_nothing_more(
    clock: Clock,
) -> None:
    """Issue: "A callback unsubscribed by another subscriber during delivery still receives
    the event being delivered." The rule: unsubscribe() takes effect at once; a callback
    unsubscribed during a delivery receives nothing more, not even the event being
    delivered."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    stopped: list[Event] = []
    stop_later: list[Callable[[], None]] = []

    def first(event: Event) -> None:
        if stop_later:
            stop_later.pop()()  # unsubscribes the next subscriber

    alloc.subscribe(first)
    stop_later.append(alloc.subscribe(stopped.append))
    alloc.book("A", "D1")
    alloc.book("B", "D1")
    assert stopped == []


def test_check_in_returns_the_token_as_it_stands_after_nested_calls(clock: Clock) -> None:
    """Issue: "After a nested call inside a subscriber, check_in returns a stale token":
    every call returns the token's value once its own change and the changes its
    subscribers made are complete."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    token = alloc.book("A", "D1", source=Source.ONLINE)

    def retriage_on_arrival(event: Event) -> None:
        if type(event).__name__ == "TokenCheckedIn":
            alloc.retriage(token.id, Priority.PAID)

    alloc.subscribe(retriage_on_arrival)
    arrived = alloc.check_in(token.id)
    assert arrived == alloc.token(token.id)
    assert arrived.priority is Priority.PAID


def test_slot_view_is_a_frozen_copy_of_the_figures(clock: Clock) -> None:
    """Issue: "slot() returns a live object whose properties are read without the lock":
    ``Allocator.slot`` returns the slot, and its figures (occupancy, free, overflow,
    waiting, present) are each one read of counters the allocator changes under its lock;
    ``Allocator.slot_view`` returns a frozen copy of all of them read together."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    alloc.book("A", "D1")
    view = alloc.slot_view("S")
    alloc.book("B", "D1", source=Source.ONLINE)
    assert (view.occupancy, view.waiting, view.present, view.free) == (1, 1, 1, 1)
    now = alloc.slot_view("S")
    assert (now.occupancy, now.waiting, now.present, now.free, now.overflow) == (2, 2, 1, 0, 0)
    assert (now.id, now.capacity, now.closed, now.elastic) == ("S", 2, False, 0)


# ----------------------------------------------------------------------------- costs


class CountingQuota:
    """SourceQuota's rule, counting how often the allocator asks it."""

    def __init__(self) -> None:
        self.inner = SourceQuota({Source.ONLINE: 1})
        self.asked = 0

    def limit(self, capacity: int) -> int:
        return self.inner.limit(capacity)

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        self.asked += 1
        return self.inner.admits(slot, source, priority)


def test_a_refused_waitlist_is_not_rescanned(clock: Clock) -> None:
    """Issue: "Under SourceQuota, each cancel rescans a waitlist that the quota refuses":
    the capacity policy is asked once per (source, priority) class waiting, not once per
    waitlisted token."""
    quota = CountingQuota()
    alloc = Allocator(policies=Policies(capacity=quota, on_full=OnFull.WAITLIST), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 10))
    alloc.book("O", "D1", "S", source=Source.ONLINE)
    for i in range(300):
        alloc.book(f"W{i}", "D1", "S", source=Source.ONLINE)  # refused by the quota
    walk_in = alloc.book("K", "D1", "S")
    quota.asked = 0
    alloc.cancel(walk_in.id)
    assert quota.asked <= 2  # one class waits: ONLINE at STANDARD
    assert len(alloc.waitlist("D1")) == 300
    alloc.check_invariants()


def test_protected_tokens_are_still_displaced_last(clock: Clock) -> None:
    """Issue: "resize(slot, 0) is quadratic when every waiting token is protected": the
    victim is now found with a few bisections (bench_edges.py measures the cost), and the
    rule is unchanged: the lowest-ranked token moved fewer than max_moves times goes first,
    protected ones only when nobody else can."""
    policies = Policies(reallocation=Reallocation(max_moves=1, pull_forward=False))
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(DOCTORS[0])
    for name, hour in (("A", 9), ("B", 10), ("C", 11)):
        alloc.add_slot(Slot(name, "D1", at(hour), at(hour + 1), 4))
    moved = [alloc.book(f"M{i}", "D1", "A", source=Source.ONLINE).id for i in range(3)]
    alloc.resize("A", 0)  # M0..M2 move to B: moved once, now protected
    fresh = alloc.book("F", "D1", "B", source=Source.FOLLOW_UP).id  # ranks above them
    alloc.resize("B", 3)  # one must go: the unprotected follow-up, though it ranks higher
    assert alloc.token(fresh).slot_id == "C"
    alloc.resize("B", 1)  # only protected ones left: the lowest-ranked two go
    assert [alloc.token(i).slot_id for i in moved] == ["B", "C", "C"]
    alloc.check_invariants()


# ----------------------------------------------------------------------------- round 3


def _peak_bytes(call: Callable[[], object]) -> int:
    """The most memory ``call`` held at once beyond what was held before it (deterministic:
    allocation sizes do not depend on the machine's speed)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        call()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rule", [Duplicates.PER_DOCTOR, Duplicates.PER_DEPARTMENT, Duplicates.ONE])
def test_a_placeholder_patient_id_costs_no_more_per_booking_as_it_fills(
    clock: Clock, rule: Duplicates
) -> None:
    """Issue: "Emergencies booked under one placeholder patient id ("UNKNOWN", as many
    hospitals do for unidentified patients) cost time in proportion to how many that id
    already holds" -- the patient index copied all of them on every booking and every
    cancel. Per-booking cost is O(log n) whatever one patient id holds: with 20,000 tokens
    held, a booking or a cancel under that id holds well under 100,000 bytes at once (the
    sorted lists' own growth; a copy of the ids held 160,000 bytes)."""
    alloc = Allocator(policies=Policies(duplicates=rule), clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao", department="OPD"))
    alloc.add_doctor(Doctor("D2", "Dr. Iyer", department="OPD"))
    for doctor in ("D1", "D2"):
        alloc.add_slot(Slot(f"{doctor}@09", doctor, at(9), at(10), 5))
    clock.now = at(9)
    for _ in range(20_000):
        alloc.book("UNKNOWN", "D1", priority=Priority.EMERGENCY)
    booked: list[str] = []
    assert (
        _peak_bytes(
            lambda: booked.append(alloc.book("UNKNOWN", "D1", priority=Priority.EMERGENCY).id)
        )
        < 100_000
    )
    assert _peak_bytes(lambda: alloc.cancel(booked[0])) < 100_000
    # The duplicate rule still names one of the many: a non-emergency in scope is refused.
    if rule is not Duplicates.PER_DOCTOR:
        with pytest.raises(DuplicateBookingError) as refused:
            alloc.book("UNKNOWN", "D2", source=Source.ONLINE)
        assert refused.value.token_id == "D1-001"  # the earliest of its emergencies
    else:
        assert alloc.book("UNKNOWN", "D2", source=Source.ONLINE).doctor_id == "D2"
    walk_in = alloc.book("UNKNOWN", "D1", priority=Priority.EMERGENCY)
    alloc.check_invariants()
    assert alloc.cancel(walk_in.id).status.name == "CANCELLED"


def test_the_duplicate_rule_follows_a_patient_s_tokens_between_doctors(clock: Clock) -> None:
    """A patient holds at most one active token per doctor: the rule counts the patient's
    token with that doctor as it stands now, after a reschedule to another doctor and a
    retriage, among several of the patient's tokens."""
    alloc = Allocator(clock=clock)  # Duplicates.PER_DOCTOR
    for doctor in ("D1", "D2"):
        alloc.add_doctor(Doctor(doctor, doctor, department="OPD"))
        alloc.add_slot(Slot(f"{doctor}@09", doctor, at(9), at(10), 5))
    clock.now = at(8)
    standard = alloc.book("P1", "D1", source=Source.ONLINE)
    emergency = alloc.book("P1", "D2", priority=Priority.EMERGENCY)
    alloc.book("P1", "D1", priority=Priority.EMERGENCY)  # a third: the patient holds many
    with pytest.raises(DuplicateBookingError) as refused:
        alloc.book("P1", "D2", source=Source.ONLINE)
    assert refused.value.token_id == emergency.id  # the earliest at D2
    alloc.reschedule(emergency.id, "D1@09")
    with pytest.raises(DuplicateBookingError) as refused:
        alloc.book("P1", "D1", source=Source.ONLINE)
    assert refused.value.token_id == standard.id  # the non-emergency one first
    alloc.reschedule(standard.id, "D2@09")
    with pytest.raises(DuplicateBookingError) as refused:
        alloc.book("P1", "D1", source=Source.ONLINE)
    assert refused.value.token_id == emergency.id  # followed it to D1; earlier than the third
    alloc.retriage(standard.id, Priority.EMERGENCY)
    alloc.check_invariants()
    alloc.cancel(emergency.id)
    with pytest.raises(DuplicateBookingError) as refused:
        alloc.book("P1", "D1", source=Source.ONLINE)
    assert refused.value.token_id == "D1-002"  # the third, now the only one at D1
    assert alloc.book("P1", "D2", priority=Priority.EMERGENCY).doctor_id == "D2"
    alloc.check_invariants()


# ----------------------------------------------------------------------------- ids and text
#
# DESIGN section 3, "Ids and text": "Ids (patient, doctor, slot) are non-empty strings of at
# most 128 characters without surrounding spaces; ids and every other string the journal
# stores (names, departments, reasons) contain no NUL, no lone surrogate and no other control
# character; numbers given as int subclasses (an IntEnum member) are stored as plain int,
# strings as plain str; otherwise InvalidArgumentError naming the argument and the value."


class Places(IntEnum):
    """A host's own numbers, as a hospital system might name them."""

    SMALL = 2
    LARGE = 4


class Minutes(IntEnum):
    TEN = 10
    TWELVE = 12


class Department(str, Enum):
    """A host's departments: a ``str`` mixed into an ``Enum``, whose ``str()`` and name are
    not its value."""

    GENERAL = "General Medicine"


class PatientId(str):
    """A host's id type: a ``str`` subclass with its own ``__eq__`` and ``__hash__``."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return 0


def journalled(clock: Clock) -> tuple[Allocator, list[Event]]:
    alloc = Allocator(clock=clock)
    journal: list[Event] = []
    alloc.subscribe(journal.append)
    return alloc, journal


def replayed(journal: list[Event], clock: Clock) -> Allocator:
    """The journal as a database keeps it (JSON text), replayed."""
    rows = [json.loads(json.dumps(event_to_dict(event))) for event in journal]
    return Allocator.replay(rows, clock=clock)


def test_int_enum_numbers_and_str_enum_text_are_journalled_as_their_values(clock: Clock) -> None:
    """DESIGN section 3, "Ids and text": "numbers given as int subclasses (an IntEnum
    member) are stored as plain int, strings as plain str". Issue: a capacity, a
    consultation length or a delay given as a host's IntEnum member was journalled as the
    member's name ("SMALL"), which replay refuses, so the day's journal could not be read;
    a department from a str enum was journalled as its name, moving the doctor elsewhere."""
    alloc, journal = journalled(clock)
    alloc.add_doctor(
        Doctor("D1", "Dr. Rao", department=Department.GENERAL, consult_minutes=Minutes.TWELVE)
    )
    alloc.add_slot(Slot("S9", "D1", at(9), at(10), capacity=Places.SMALL))
    alloc.add_slot(Slot("S10", "D1", at(10), at(11), capacity=Places.SMALL))
    alloc.book("P1", "D1", "S9")
    alloc.delay("D1", Minutes.TEN)
    alloc.resize("S10", Places.LARGE)

    copy = replayed(journal, clock)
    assert copy.snapshot() == alloc.snapshot()
    doctor, slot = alloc.doctor("D1"), alloc.slot("S9")
    assert type(doctor.consult_minutes) is int
    assert doctor.consult_minutes == 12
    assert type(doctor.department) is str
    assert doctor.department == "General Medicine"
    assert type(slot.capacity) is int
    assert slot.capacity == 2
    assert type(alloc.slot("S10").capacity) is int
    assert copy.doctor("D1").department == "General Medicine"
    assert copy.estimated_start("D1-001") == alloc.estimated_start("D1-001")
    for event in journal:
        for field in attrs.fields(type(event)):
            value = getattr(event, field.name)
            if isinstance(value, int | str) and not isinstance(value, Priority):
                assert type(value) in (int, str, bool), (event, field.name)
    copy.check_invariants()


def test_str_subclass_ids_are_stored_as_plain_strs(clock: Clock) -> None:
    """DESIGN section 3, "Ids and text": "strings as plain str". An id of a host's own
    ``str`` type (with its own ``__eq__`` and ``__hash__``) or a ``str`` enum member is
    stored, looked up and journalled as the plain string of its characters, so that the
    allocator's dicts and the journal never depend on the host's type."""
    alloc, journal = journalled(clock)
    alloc.add_doctor(Doctor(Department.GENERAL, "Dr. Rao"))
    alloc.add_slot(Slot(PatientId("S9"), Department.GENERAL, at(9), at(10), 3))
    alloc.add_slot(Slot("S10", "General Medicine", at(10), at(11), 3))
    token = alloc.book(PatientId("P1"), Department.GENERAL, PatientId("S9"))
    assert token.id == "General Medicine-001"
    for value in (token.id, token.patient_id, token.doctor_id, token.slot_id):
        assert type(value) is str
    alloc.book("P2", "General Medicine", "S9")  # P1 is not everybody
    alloc.delay(PatientId("General Medicine"), 5)
    alloc.close_slot(PatientId("S9"))
    alloc.mark_unavailable(Department.GENERAL)

    assert [type(d.id) for d in alloc.doctors()] == [str]
    assert {type(s.id) for s in alloc.slots()} == {str}
    assert {type(s.doctor_id) for s in alloc.slots()} == {str}
    for event in journal:
        for name in ("doctor_id", "slot_id"):
            if hasattr(event, name):
                assert type(getattr(event, name)) is str, (event, name)
    assert replayed(journal, clock).snapshot() == alloc.snapshot()


def test_int_subclass_numbers_are_stored_as_plain_ints_everywhere(clock: Clock) -> None:
    """DESIGN section 3, "Ids and text": "numbers given as int subclasses (an IntEnum
    member) are stored as plain int", in the policies and the simulation's plans too, and
    "bool stays refused where an int is expected"."""
    assert type(EmergencyOverride(max_overflow=Places.SMALL).max_overflow) is int
    assert type(Reallocation(max_moves=Places.SMALL).max_moves) is int
    assert type(Policies(max_missed_calls=Places.SMALL).max_missed_calls) is int
    assert type(SourceQuota({Source.ONLINE: Places.SMALL}).quotas[Source.ONLINE]) is int
    session = Session(start=time(9), end=time(12), slot_minutes=Minutes.TEN, capacity=Places.SMALL)
    assert (type(session.slot_minutes), type(session.capacity)) == (int, int)
    plan = DoctorPlan(
        id="D1",
        sessions=[session],
        consult_minutes=Minutes.TWELVE,
        late_start=Minutes.TEN,
        prebooked={Source.ONLINE: Places.SMALL},
    )
    assert (type(plan.consult_minutes), type(plan.late_start)) == (int, int)
    assert type(plan.prebooked[Source.ONLINE]) is int
    # A snapshot built in Python, not read from JSON, may hold a host's numbers too.
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S9", "D1", at(9), at(10), 3))
    alloc.book("P1", "D1")
    data = alloc.snapshot()
    data["doctors"][0]["issued"] = Places.SMALL
    data["tokens"][0]["moves"] = Places.SMALL
    again = Allocator.from_snapshot(data, clock=clock).snapshot()
    assert type(again["doctors"][0]["issued"]) is int
    assert type(again["tokens"][0]["moves"]) is int
    # bool stays refused.
    version = alloc.version
    with pytest.raises(InvalidArgumentError, match="minutes must be an int, got minutes=True"):
        alloc.delay("D1", True)
    with pytest.raises(InvalidArgumentError, match="capacity must be an int"):
        alloc.resize("S9", True)
    with pytest.raises(InvalidArgumentError, match="consult_minutes must be an int"):
        Doctor("D2", "Dr. Iyer", consult_minutes=True)
    assert alloc.version == version


UNSTORABLE_IDS = [
    pytest.param("P" * 129, "at most 128 characters", id="129-characters"),
    pytest.param("P\x001", "U\\+0000", id="NUL"),
    pytest.param("P\ud8001", "lone surrogate, U\\+D800", id="lone-high-surrogate"),
    pytest.param("P1\udfff", "lone surrogate, U\\+DFFF", id="lone-low-surrogate"),
    pytest.param("P\t1", "U\\+0009", id="tab"),
    pytest.param("P\n1", "U\\+000A", id="newline"),
    pytest.param("P\x7f1", "U\\+007F", id="DEL"),
    pytest.param("P\x9b1", "U\\+009B", id="C1-control"),
]


@pytest.mark.parametrize(("bad", "why"), UNSTORABLE_IDS)
def test_ids_the_journal_cannot_store_are_refused_and_change_nothing(
    clock: Clock, bad: str, why: str
) -> None:
    """DESIGN section 3, "Ids and text": "Ids (patient, doctor, slot) are non-empty strings
    of at most 128 characters without surrounding spaces; ids ... contain no NUL, no lone
    surrogate and no other control character; otherwise InvalidArgumentError naming the
    argument and the value." Issue: ids with a NUL or a lone surrogate were accepted, and
    the PostgreSQL recipe could not store them."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S9", "D1", at(9), at(10), 3))
    before, version = alloc.snapshot(), alloc.version
    calls: list[tuple[str, Callable[[], object]]] = [
        ("patient_id", lambda: alloc.book(bad, "D1")),
        ("patient_id", lambda: alloc.book(bad, "D1", "S9", priority=Priority.EMERGENCY)),
        ("doctor_id", lambda: alloc.book("P1", bad)),
        ("slot_id", lambda: alloc.book("P1", "D1", bad)),
        ("doctor_id", lambda: alloc.delay(bad, 5)),
        ("slot_id", lambda: alloc.resize(bad, 4)),
        ("slot_id", lambda: alloc.close_slot(bad)),
        ("token_id", lambda: alloc.cancel(bad)),
        ("id", lambda: alloc.add_doctor(Doctor(bad, "Dr. Rao"))),
        ("id", lambda: alloc.add_slot(Slot(bad, "D1", at(10), at(11), 3))),
        ("doctor_id", lambda: alloc.add_slot(Slot("S10", bad, at(10), at(11), 3))),
    ]
    for name, call in calls:
        with pytest.raises(InvalidArgumentError, match=f"^{name} must .*{why}") as caught:
            call()
        assert repr(bad)[:40] in str(caught.value)  # names the value, printably
        str(caught.value).encode("utf-8")  # the message itself can be logged
    assert alloc.snapshot() == before
    assert alloc.version == version


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("name", "Dr.\tRao"),
        ("name", "Dr. Rao\n"),
        ("name", "Dr. \x00Rao"),
        ("name", "Dr. \udc00Rao"),
        ("department", "General\rMedicine"),
        ("department", "General\x85Medicine"),
        ("department", "\ud83d"),  # half of an emoji's UTF-16 pair
    ],
)
def test_text_the_journal_cannot_store_is_refused(clock: Clock, field: str, bad: str) -> None:
    """DESIGN section 3, "Ids and text": "every other string the journal stores (names,
    departments, reasons) contain[s] no NUL, no lone surrogate and no other control
    character" -- a tab or a newline in a name is a control character too."""
    text = {"name": "Dr. Rao", "department": "General Medicine", field: bad}
    with pytest.raises(InvalidArgumentError, match=f"^{field} must contain no control"):
        Doctor("D1", text["name"], department=text["department"])


def test_what_the_journal_can_store_is_accepted(clock: Clock) -> None:
    """The rule refuses control characters and lone surrogates, nothing else: names in any
    script (a Devanagari name with a zero-width joiner, which the script needs), spaces
    inside, emoji, and ids of exactly 128 characters are taken, journalled and replayed."""
    alloc, journal = journalled(clock)
    name = "डॉ. क्\u200dष राव\u00a0🩺"
    alloc.add_doctor(Doctor("D1", name, department="सामान्य चिकित्सा"))
    alloc.add_slot(Slot("S" * 128, "D1", at(9), at(10), 3))
    token = alloc.book("P" * 128, "D1")
    rows = [json.dumps(event_to_dict(event), ensure_ascii=False) for event in journal]
    for row in rows:
        row.encode("utf-8")  # what a database stores
    copy = Allocator.replay([json.loads(row) for row in rows], clock=clock)
    assert copy.doctor("D1").name == name
    assert copy.token(token.id).patient_id == "P" * 128
    assert copy.snapshot() == alloc.snapshot()


def test_the_refused_characters_are_exactly_unicode_categories_cc_and_cs() -> None:
    """What "other control character" means, decided in opd_engine._check: every character
    of Unicode category Cc (C0, DEL, C1) and every surrogate (Cs, in a str always a lone
    one); all other characters are allowed, format characters (Cf) included."""

    def refuses(code: int) -> bool:
        try:
            check_str("name", f"a{chr(code)}b")
        except InvalidArgumentError:
            return True
        return False

    refused = {code for code in range(sys.maxunicode + 1) if refuses(code)}
    expected = {
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cs")
    }
    assert refused == expected
    assert len(refused) == 65 + 2048


def test_a_slot_s_display_waits_for_the_change_in_progress(clock: Clock) -> None:
    """Issue: "Slot._repr_html_() (what a notebook displays) reads without the lock, and
    raises KeyError within a few renders while another thread reschedules". Reads for
    display take the allocator's lock: while a call is in progress (here, held open by a
    subscriber, which runs under the lock), another thread's render waits for it, then
    shows the finished change."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", DOCTORS[0].id, at(9), at(10), 3))
    slot = alloc.slot("S")
    shown: dict[str, str] = {}
    rendered = threading.Event()

    def render() -> None:
        shown["html"] = slot._repr_html_()
        shown["repr"] = repr(slot)
        rendered.set()

    reader = threading.Thread(target=render)

    def during_the_call(event: Event) -> None:
        if not reader.is_alive() and "html" not in shown:
            reader.start()
            for _ in range(2_000):  # hand the reader the interpreter, again and again
                timing.sleep(0)  # no wait: yields the interpreter to the reader
                if rendered.is_set():  # a render that does not wait would get here
                    break
            shown["rendered during the call"] = str(rendered.is_set())

    alloc.subscribe(during_the_call)
    alloc.book("P1", DOCTORS[0].id, source=Source.ONLINE)
    reader.join()
    assert shown["rendered during the call"] == "False"
    assert "1/3 held" in shown["repr"]  # the finished booking
    assert "D1-001" in shown["html"]
