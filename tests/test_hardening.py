"""Regression tests for the edges an adversarial audit found: the end of datetime's range,
time zones without offsets, daylight saving time, one allocator per OPD day, and the
smaller defects. Each test quotes the promise that broke."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from conftest import DOCTORS, Clock, at
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
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
)

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
    ],
)
def test_slots_at_the_end_of_datetime_s_range_are_refused(start: datetime, end: datetime) -> None:
    """Issue: "A slot that ends at datetime.max is accepted, then book or check_in raises
    OverflowError after the token was filed" -- such a slot is refused when made."""
    with pytest.raises(InvalidArgumentError, match="between"):
        Slot("S", "D1", start, end, 3)


def test_a_clock_at_the_end_of_datetime_s_range_is_refused() -> None:
    """A clock reading that day-long durations would overflow is refused, changing nothing."""
    alloc = Allocator(clock=lambda: datetime.max)
    with pytest.raises(InvalidArgumentError, match="clock"):
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
