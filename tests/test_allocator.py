"""The Allocator, one scenario per row of the contract's table, plus hostile input.

Allocation rules in depth live in ``test_rules.py``; here each public method is exercised
for what it returns, what it raises and what it leaves behind.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from conftest import CAPACITY, DOCTORS, HOURS, START, Build, Clock, at, ids, kinds, moves
from opd_engine import (
    Aging,
    Allocator,
    Doctor,
    DoctorDelayed,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    MoveReason,
    OnFull,
    Policies,
    Priority,
    Reallocation,
    Slot,
    SlotResized,
    Source,
    StrictPriority,
    Token,
    TokenBooked,
    TokenStatus,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)
from opd_engine._queue import wait_key

ONLINE = Source.ONLINE
TOKEN_FIELDS = [
    "id",
    "patient_id",
    "doctor_id",
    "slot_id",
    "priority",
    "source",
    "seq",
    "number",
    "status",
    "booked_at",
    "checked_in_at",
    "moves",
    "missed_calls",
    "called_at",
    "completed_at",
]


def slot(slot_id: str, doctor_id: str, start: datetime, minutes: int = 60, cap: int = 3) -> Slot:
    return Slot(slot_id, doctor_id, start, start + timedelta(minutes=minutes), cap)


# Hostile input is, on purpose, of the wrong type: call through an untyped alias.
UntypedAllocator: Any = Allocator


# ----------------------------------------------------------------------------- construction


def test_defaults() -> None:
    alloc = Allocator()
    assert alloc.policies == Policies()
    assert alloc.clock == datetime.now
    assert alloc.doctors() == []
    assert alloc.slots() == []
    assert alloc.tokens() == []


def test_policies_and_clock_are_fixed_after_construction(alloc: Allocator) -> None:
    with pytest.raises(AttributeError):
        alloc.policies = Policies()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        alloc.clock = datetime.now  # type: ignore[misc]


# ----------------------------------------------------------------------------- add_doctor


def test_add_doctor(clock: Clock) -> None:
    alloc = Allocator(clock=clock)
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
    assert alloc.doctors() == list(DOCTORS)
    assert alloc.doctor("D3") == DOCTORS[2]
    assert alloc.slots("D3") == []
    assert alloc.waitlist("D3") == []
    with pytest.raises(InvalidArgumentError, match="'D1'"):
        alloc.add_doctor(Doctor("D1", "Someone else"))
    assert alloc.doctor("D1").name == "Dr. Rao"


# ----------------------------------------------------------------------------- add_slot


def test_add_slot_keeps_start_order(clock: Clock) -> None:
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    for hour in (11, 9, 10):
        alloc.add_slot(slot(f"S{hour}", "D1", at(hour)))
    assert [s.id for s in alloc.slots("D1")] == ["S9", "S10", "S11"]
    assert alloc.slot("S10").capacity == 3
    alloc.check_invariants()


UntypedSlot: Any = Slot


@pytest.mark.parametrize(
    ("args", "argument"),
    [
        (("", "D1", at(9), at(10), 3), "id"),
        ((5, "D1", at(9), at(10), 3), "id"),
        (("S", "", at(9), at(10), 3), "doctor_id"),
        (("S", None, at(9), at(10), 3), "doctor_id"),
        (("S", "D1", "09:00", at(10), 3), "start"),
        (("S", "D1", at(9), at(9).date(), 3), "end"),
        (("S", "D1", at(9), at(9), 3), "end must be after start"),
        (("S", "D1", at(10), at(9), 3), "end must be after start"),
        (
            ("S", "D1", at(9), at(10).replace(tzinfo=timezone.utc), 3),
            "start and end must both be naive or both aware",
        ),
        (("S", "D1", at(9), at(10), -1), "capacity must be >= 0"),
        (("S", "D1", at(9), at(10), "3"), "capacity"),
        (("S", "D1", at(9), at(10), True), "capacity"),
        (("S", "D1", at(9), at(10), 2.5), "capacity"),
    ],
)
def test_slot_validation(args: tuple[object, ...], argument: str) -> None:
    """`add_slot`: ... `end <= start`, `capacity < 0` ... -> `InvalidArgumentError` (raised as
    the Slot is made)."""
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(argument)}"):
        UntypedSlot(*args)


def test_a_slot_s_fields_are_read_only(alloc: Allocator) -> None:
    s = alloc.slot("D1@09")
    for field, value in (("id", "X"), ("doctor_id", "D2"), ("start", at(8)), ("capacity", 10)):
        with pytest.raises(AttributeError):
            setattr(s, field, value)
    assert s.capacity == 3
    empty = Slot("Z", "D1", at(9), at(10), 0)
    assert (empty.capacity, empty.free, empty.overflow) == (0, 0, 0)


def test_add_slot_refuses_unknown_doctors(alloc: Allocator) -> None:
    with pytest.raises(UnknownDoctorError, match="D9"):
        alloc.add_slot(slot("X", "D9", at(13)))


@pytest.mark.parametrize(
    ("new", "match"),
    [
        pytest.param(slot("D1@09", "D1", at(13)), "D1@09", id="duplicate id"),
        pytest.param(slot("X", "D1", at(9, 30)), "overlaps", id="overlap after"),
        pytest.param(slot("X", "D1", at(8, 30)), "overlaps", id="overlap before"),
        pytest.param(slot("X", "D1", at(8), minutes=300), "overlaps", id="covering"),
        pytest.param(slot("X", "D1", at(9, 15), minutes=30), "overlaps", id="inside"),
    ],
)
def test_add_slot_refuses_duplicates_and_overlaps(alloc: Allocator, new: Slot, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        alloc.add_slot(new)
    assert len(alloc.slots()) == 9


def test_add_slot_refuses_a_slot_already_added(alloc: Allocator, clock: Clock) -> None:
    added = alloc.slot("D1@09")
    with pytest.raises(InvalidArgumentError, match="D1@09"):
        alloc.add_slot(added)
    other = Allocator(clock=clock)
    other.add_doctor(DOCTORS[0])
    with pytest.raises(InvalidArgumentError, match="D1@09"):
        other.add_slot(added)
    assert other.slots() == []


def test_adjacent_slots_do_not_overlap(alloc: Allocator) -> None:
    alloc.add_slot(slot("D1@12", "D1", at(12)))
    alloc.add_slot(slot("D1@08", "D1", at(8)))
    assert [s.id for s in alloc.slots("D1")] == ["D1@08", "D1@09", "D1@10", "D1@11", "D1@12"]


def test_add_slot_refuses_mixed_awareness(alloc: Allocator) -> None:
    utc = timezone.utc
    with pytest.raises(InvalidArgumentError, match="naive"):
        alloc.add_slot(slot("X", "D1", at(13).replace(tzinfo=utc)))
    aware = Allocator(clock=lambda: at(8).replace(tzinfo=utc))
    aware.add_doctor(DOCTORS[0])
    aware.add_slot(slot("A", "D1", at(9).replace(tzinfo=utc)))
    with pytest.raises(InvalidArgumentError, match="aware"):
        aware.add_slot(slot("B", "D1", at(10)))
    assert aware.book("P", "D1").slot_id == "A"


def test_add_slot_checks_the_clock_against_the_slot(clock: Clock) -> None:
    alloc = Allocator(clock=clock)
    alloc.add_doctor(DOCTORS[0])
    with pytest.raises(InvalidArgumentError, match="clock"):
        alloc.add_slot(slot("A", "D1", at(9).replace(tzinfo=timezone.utc)))
    assert alloc.slots() == []
    alloc.add_slot(slot("A", "D1", at(9)))  # the failed call left no trace


def test_add_slot_fills_from_the_waitlist(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(9):
        alloc.book(f"P{i}", "D1", source=ONLINE)
    waiting = [alloc.book(f"W{i}", "D1", source=ONLINE) for i in range(2)]
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.add_slot(slot("D1@12", "D1", at(12), cap=1))
    assert ids(alloc.queue("D1@12")) == [waiting[0].id]
    assert ids(alloc.waitlist("D1")) == [waiting[1].id]
    assert kinds(seen) == ["SlotAdded", "TokenMoved"]
    alloc.check_invariants()


def test_add_slot_pulls_forward_into_an_earlier_slot(alloc: Allocator) -> None:
    present = alloc.book("A", "D1", "D1@10")
    absent = alloc.book("B", "D1", "D1@10", source=ONLINE)
    alloc.add_slot(slot("D1@08", "D1", at(8)))
    assert alloc.token(present.id).slot_id == "D1@08"
    assert alloc.token(absent.id).slot_id == "D1@10"


# ----------------------------------------------------------------------------- book


def test_book_returns_the_issued_token(alloc: Allocator, clock: Clock) -> None:
    clock.now = at(8, 40)
    token = alloc.book("P-17", "D2", source=Source.PAID)
    assert token == Token(
        id="D2-001",
        patient_id="P-17",
        doctor_id="D2",
        slot_id="D2@09",
        priority=Priority.PAID,
        source=Source.PAID,
        seq=1,
        number=1,
        status=TokenStatus.BOOKED,
        booked_at=at(8, 40),
    )
    assert alloc.token("D2-001") == token
    assert alloc.tokens() == [token]


def test_book_into_the_waitlist(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(CAPACITY * len(HOURS)):
        alloc.book(f"P{i}", "D3", source=ONLINE)
    token = alloc.book("W", "D3", checked_in=True)
    assert (token.status, token.slot_id) == (TokenStatus.WAITLISTED, None)
    assert token.checked_in_at == START
    assert alloc.waitlist("D3") == [token]
    assert alloc.position(token.id) == 1


# ----------------------------------------------------------------------------- the day


def test_a_patient_s_day(alloc: Allocator, clock: Clock) -> None:
    """check_in, call_next and complete, one after the other."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(8, 50)
    assert alloc.check_in(token.id).status is TokenStatus.CHECKED_IN
    clock.now = at(9)
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.status, called.called_at) == (
        token.id,
        TokenStatus.IN_CONSULTATION,
        at(9),
    )
    clock.now = at(9, 8)
    done = alloc.complete(token.id)
    assert (done.status, done.completed_at) == (TokenStatus.COMPLETED, at(9, 8))
    assert alloc.token(token.id) == done
    assert alloc.queue("D1@09") == []
    assert alloc.slot("D1@09").occupancy == 1
    alloc.check_invariants()


def test_call_next_for_a_doctor_without_patients(alloc: Allocator) -> None:
    assert alloc.call_next("D3") is None


def test_cancel_and_no_show_return_the_ended_token(alloc: Allocator, clock: Clock) -> None:
    a = alloc.book("A", "D1", source=ONLINE)
    b = alloc.book("B", "D1", source=ONLINE)
    assert alloc.cancel(a.id) == attrs.evolve(a, status=TokenStatus.CANCELLED)
    clock.now = at(9, 20)
    assert alloc.no_show(b.id) == attrs.evolve(b, status=TokenStatus.NO_SHOW)
    assert alloc.queue("D1@09") == []
    assert alloc.slot("D1@09").occupancy == 0
    with pytest.raises(InvalidTransitionError):
        alloc.no_show(b.id)
    alloc.check_invariants()


def test_no_show_of_a_waitlisted_token_is_refused(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(3):
        alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE)
    waiting = alloc.book("W", "D1", "D1@09", source=ONLINE)
    clock.now = at(11, 30)
    with pytest.raises(InvalidTransitionError, match="WAITLISTED"):
        alloc.no_show(waiting.id)


# ----------------------------------------------------------------------------- delay, resize


def test_delay(alloc: Allocator, clock: Clock) -> None:
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    v = alloc.version
    token = alloc.book("P", "D1")
    alloc.delay("D1", 0)
    assert alloc.version == v + 1
    alloc.delay("D1", 15)
    clock.now = at(8, 45)
    alloc.delay("D1", 10)
    delays = [e for e in seen if isinstance(e, DoctorDelayed)]
    assert delays == [  # a delay of 0 minutes changes nothing, so it reports nothing
        DoctorDelayed(
            at=at(8, 30),
            version=v + 2,
            step=1,
            steps=1,
            doctor_id="D1",
            minutes=15,
            total_minutes=15,
        ),
        DoctorDelayed(
            at=at(8, 45),
            version=v + 3,
            step=1,
            steps=1,
            doctor_id="D1",
            minutes=10,
            total_minutes=25,
        ),
    ]
    assert alloc.estimated_start(token.id) == at(9, 25)
    assert alloc.token(token.id).slot_id == "D1@09"  # a delay moves nobody
    with pytest.raises(UnknownDoctorError):
        alloc.delay("D9", 5)


def test_resize_emits_slot_resized(alloc: Allocator, clock: Clock) -> None:
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    v = alloc.version
    alloc.resize("D2@10", 7)
    alloc.resize("D2@10", 7)  # the same capacity changes nothing
    assert alloc.version == v + 1
    clock.now = at(9)
    alloc.resize("D2@10", 0)
    assert seen == [
        SlotResized(
            at=at(8, 30),
            version=v + 1,
            step=1,
            steps=1,
            slot_id="D2@10",
            old_capacity=3,
            capacity=7,
        ),
        SlotResized(
            at=at(9), version=v + 2, step=1, steps=1, slot_id="D2@10", old_capacity=7, capacity=0
        ),
    ]
    assert alloc.slot("D2@10").capacity == 0
    with pytest.raises(UnknownSlotError):
        alloc.resize("D2@99", 1)


def test_resize_to_zero_sends_everyone_on(alloc: Allocator) -> None:
    moved = [alloc.book(f"P{i}", "D1", "D1@11", source=ONLINE).id for i in range(3)]
    alloc.resize("D1@11", 0)  # no later slot: the waitlist
    assert ids(alloc.waitlist("D1")) == moved
    assert all(alloc.token(i).moves == 1 for i in moved)
    alloc.check_invariants()


def test_resize_of_an_ended_slot_refills_nothing(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(9):
        alloc.book(f"P{i}", "D1", source=ONLINE)
    waiting = alloc.book("W", "D1", source=ONLINE)
    clock.now = at(10, 30)
    alloc.resize("D1@09", 5)
    assert alloc.token(waiting.id).status is TokenStatus.WAITLISTED


def test_resize_shrink_prefers_unprotected_tokens(build: Build) -> None:
    alloc = build(Policies(reallocation=Reallocation(max_moves=1)))
    a, b, c = (alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE) for i in range(3))
    pulled = alloc.book("Q", "D1", "D1@10")
    alloc.cancel(c.id)
    assert alloc.token(pulled.id).moves == 1
    alloc.resize("D1@09", 2)
    assert alloc.token(b.id).slot_id == "D1@10"
    assert alloc.token(pulled.id).slot_id == "D1@09"
    assert alloc.token(a.id).slot_id == "D1@09"


# ----------------------------------------------------------------------------- lookups


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda a: a.token("D1-001"), UnknownTokenError),
        (lambda a: a.slot("D1@13"), UnknownSlotError),
        (lambda a: a.doctor("D4"), UnknownDoctorError),
        (lambda a: a.check_in("X"), UnknownTokenError),
        (lambda a: a.cancel("X"), UnknownTokenError),
        (lambda a: a.no_show("X"), UnknownTokenError),
        (lambda a: a.complete("X"), UnknownTokenError),
        (lambda a: a.position("X"), UnknownTokenError),
        (lambda a: a.estimated_start("X"), UnknownTokenError),
        (lambda a: a.call_next("X"), UnknownDoctorError),
        (lambda a: a.waitlist("X"), UnknownDoctorError),
        (lambda a: a.slots("X"), UnknownDoctorError),
        (lambda a: a.delay("X", 1), UnknownDoctorError),
        (lambda a: a.queue("X"), UnknownSlotError),
        (lambda a: a.resize("X", 1), UnknownSlotError),
        (lambda a: a.book("P", "X"), UnknownDoctorError),
        (lambda a: a.book("P", "D1", "X"), UnknownSlotError),
    ],
)
def test_unknown_ids(
    alloc: Allocator, call: Callable[[Allocator], object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"'X'|'D1-001'|'D1@13'|'D4'"):
        call(alloc)


def test_lookups(alloc: Allocator) -> None:
    token = alloc.book("P", "D3", "D3@11")
    assert alloc.token(token.id) == token
    assert alloc.slot("D3@11").id == "D3@11"
    assert alloc.doctor("D3").department == "Cardiology"
    assert [s.id for s in alloc.slots()][:4] == ["D1@09", "D1@10", "D1@11", "D2@09"]
    assert [s.id for s in alloc.slots("D3")] == ["D3@09", "D3@10", "D3@11"]


# ----------------------------------------------------------------------------- queue, waitlist


def test_queue_is_the_standing_order(build: Build, clock: Clock) -> None:
    """A booked token ranks by its triaged priority, present or not: the queue does not
    jump when someone checks in."""
    alloc = build(Policies(ordering=StrictPriority()))
    paid = alloc.book("A", "D1", source=Source.PAID)  # not arrived
    standard = alloc.book("B", "D1")  # present
    follow_up = alloc.book("C", "D1", source=Source.FOLLOW_UP)
    assert ids(alloc.queue("D1@09")) == [paid.id, follow_up.id, standard.id]
    clock.now = at(8, 40)
    alloc.check_in(follow_up.id)
    assert ids(alloc.queue("D1@09")) == [paid.id, follow_up.id, standard.id]
    assert [alloc.position(t) for t in (paid.id, follow_up.id, standard.id)] == [1, 2, 3]
    assert all(
        t.status in (TokenStatus.BOOKED, TokenStatus.CHECKED_IN) for t in alloc.queue("D1@09")
    )


def test_queue_follows_the_clock_under_aging(alloc: Allocator, clock: Clock) -> None:
    standard = alloc.book("S", "D1")
    follow_up = alloc.book("F", "D1", source=Source.FOLLOW_UP, checked_in=True)
    assert ids(alloc.queue("D1@09")) == [follow_up.id, standard.id]
    assert alloc.position(standard.id) == 2
    clock.advance(30)
    assert ids(alloc.queue("D1@09")) == [standard.id, follow_up.id]
    assert alloc.position(standard.id) == 1
    assert alloc.estimated_start(follow_up.id) == at(9, 10)


def test_waitlist_is_ordered_by_priority_then_seq(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(9):
        alloc.book(f"P{i}", "D2", source=ONLINE)
    late = [
        alloc.book("W1", "D2", source=ONLINE),
        alloc.book("W2", "D2", source=Source.FOLLOW_UP),
        alloc.book("W3", "D2", source=ONLINE),
        alloc.book("W4", "D2", source=Source.PAID),
    ]
    assert ids(alloc.waitlist("D2")) == [late[3].id, late[1].id, late[0].id, late[2].id]
    assert [alloc.position(t.id) for t in late] == [3, 2, 4, 1]
    assert alloc.waitlist("D1") == []


# ----------------------------------------------------------------------------- subscribe


def test_unsubscribe_stops_delivery_and_is_idempotent(alloc: Allocator) -> None:
    first: list[Event] = []
    second: list[Event] = []
    stop = alloc.subscribe(first.append)
    alloc.subscribe(second.append)
    alloc.book("A", "D1")
    stop()
    stop()
    alloc.book("B", "D1")
    assert kinds(first) == ["TokenBooked"]
    assert kinds(second) == ["TokenBooked", "TokenBooked"]


def test_each_unsubscribe_ends_its_own_subscription(alloc: Allocator) -> None:
    """The same callback subscribed twice is called twice per event; each unsubscribe ends
    its own subscription only, however often it is called."""
    seen: list[Event] = []
    stop = alloc.subscribe(seen.append)
    alloc.subscribe(seen.append)
    alloc.book("A", "D1")
    stop()
    stop()
    alloc.book("B", "D1")
    assert kinds(seen) == ["TokenBooked"] * 3


def test_a_failing_subscriber_is_logged_and_swallowed(
    alloc: Allocator, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("display board offline")

    alloc.subscribe(broken)
    alloc.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="opd_engine"):
        token = alloc.book("A", "D1")
    assert token.status is TokenStatus.CHECKED_IN
    assert alloc.token(token.id) == token
    assert kinds(seen) == ["TokenBooked"]
    (record,) = caplog.records
    assert record.name == "opd_engine"
    assert record.exc_info is not None
    assert "display board offline" in str(record.exc_info[1])
    alloc.check_invariants()


def test_a_subscriber_may_call_the_allocator(alloc: Allocator) -> None:
    order: list[tuple[str, str]] = []

    def echo(event: Event) -> None:
        if isinstance(event, TokenBooked):
            order.append(("booked", event.token.patient_id))
            if event.token.patient_id == "A":
                alloc.book("B", "D2")
                order.append(("returned", "B"))

    alloc.subscribe(echo)
    alloc.book("A", "D1")
    # The nested call's event is delivered after the one already being delivered.
    assert order == [("booked", "A"), ("returned", "B"), ("booked", "B")]
    assert ids(alloc.tokens()) == ["D1-001", "D2-001"]


def test_threads_share_one_allocator(build: Build) -> None:
    """Every public Allocator method is safe to call from several threads."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(40):
                token = alloc.book(f"W{worker}-{i}", f"D{1 + (i % 3)}", source=ONLINE)
                if i % 4 == 0:
                    alloc.cancel(token.id)
                alloc.records()  # readers interleave with writers
        except BaseException as error:  # pragma: no cover - only on failure
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    tokens = alloc.tokens()
    assert len(tokens) == 160
    assert sorted(t.seq for t in tokens) == list(range(1, 161))
    assert sum(t.status is TokenStatus.CANCELLED for t in tokens) == 40
    alloc.check_invariants()


# ----------------------------------------------------------------------------- invariants


def test_check_invariants_passes_on_a_busy_day(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(12):
        alloc.book(f"P{i}", "D1", source=ONLINE if i % 2 else Source.WALK_IN)
    alloc.book("E", "D1", priority=Priority.EMERGENCY)
    alloc.call_next("D1")
    clock.now = at(9, 30)
    alloc.cancel("D1-004")
    alloc.no_show("D1-002")
    alloc.check_invariants()


def test_each_slot_keeps_its_own_queue(build: Build, clock: Clock) -> None:
    """A slot makes each of its sorted lists when its first key comes (booked, checked in,
    aged, protected): filing tokens in one slot leaves every other slot's queue empty."""
    alloc = build(
        Policies(ordering=Aging(step=timedelta(minutes=10)), reallocation=Reallocation(max_moves=0))
    )
    booked = alloc.book("A", "D1", "D1@09", source=ONLINE)  # protected: moved >= 0 times
    alloc.book("B", "D1", "D1@09")  # a walk-in: checked in at once
    alloc.check_in(booked.id)
    clock.now = at(9, 30)  # both have aged
    assert ids(alloc.queue("D1@09")) == ["D1-001", "D1-002"]
    for slot in alloc.slots():
        if slot.id != "D1@09":
            assert alloc.queue(slot.id) == []
            assert slot.waiting == 0
    alloc.check_invariants()
    alloc.book("C", "D2", "D2@10", source=ONLINE)
    assert ids(alloc.queue("D2@10")) == ["D2-001"]
    assert alloc.queue("D2@09") == alloc.queue("D1@10") == []
    alloc.check_invariants()


def test_check_invariants_detects_a_token_missing_from_its_queue(alloc: Allocator) -> None:
    token = alloc.book("A", "D1", source=ONLINE)
    alloc.slot("D1@09")._absent.remove(wait_key(token))
    with pytest.raises(AssertionError, match=re.escape("invariant 'queue id index' broken")):
        alloc.check_invariants()


def test_check_invariants_detects_a_present_token_missing(alloc: Allocator) -> None:
    token = alloc.book("A", "D1")
    alloc.slot("D1@09")._index.arrived.remove(wait_key(token))  # still filed for calling
    with pytest.raises(AssertionError, match=re.escape("invariant 'queue id index' broken")):
        alloc.check_invariants()


def test_check_invariants_detects_a_token_whose_status_lies(alloc: Allocator) -> None:
    token = alloc.book("A", "D1", source=ONLINE)
    alloc._tokens[token.id] = attrs.evolve(token, status=TokenStatus.COMPLETED)
    with pytest.raises(AssertionError, match=r"invariant '[^']+' broken: .*D1-001"):
        alloc.check_invariants()


def test_check_invariants_detects_a_wrong_counter(alloc: Allocator) -> None:
    alloc.book("A", "D1")
    alloc.slot("D1@09")._done += 1
    with pytest.raises(AssertionError, match=r"invariant '[^']+' broken: D1@09"):
        alloc.check_invariants()


def test_check_invariants_detects_a_waitlisted_token_of_a_class_not_held(build: Build) -> None:
    """The waitlist files a token under its (source, priority) class: a token whose record
    names a class the waitlist holds no key of is found as well."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(CAPACITY):
        alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE)
    token = alloc.book("W", "D1", "D1@09", source=ONLINE)
    assert token.status is TokenStatus.WAITLISTED
    alloc.check_invariants()
    alloc._tokens[token.id] = attrs.evolve(token, source=Source.PAID)
    with pytest.raises(AssertionError, match=re.escape("invariant 'waitlist class index' broken")):
        alloc.check_invariants()


def test_check_invariants_detects_a_slot_at_another_doctor_s_desk(alloc: Allocator) -> None:
    alloc.slot("D1@10")._doctor_id = "D2"
    with pytest.raises(AssertionError, match=re.escape("invariant 'slots of the doctor' broken")):
        alloc.check_invariants()


# ----------------------------------------------------------------------------- records


def test_records(alloc: Allocator, clock: Clock) -> None:
    alloc.book("P1", "D1", source=Source.PAID)
    clock.now = at(8, 45)
    alloc.book("P2", "D2", priority=Priority.EMERGENCY)
    rows = alloc.records()
    assert [list(row) for row in rows] == [TOKEN_FIELDS, TOKEN_FIELDS]
    assert rows[0] == {
        "id": "D1-001",
        "patient_id": "P1",
        "doctor_id": "D1",
        "slot_id": "D1@09",
        "priority": "PAID",
        "source": "PAID",
        "seq": 1,
        "number": 1,
        "status": "BOOKED",
        "booked_at": at(8, 30),
        "checked_in_at": None,
        "moves": 0,
        "missed_calls": 0,
        "called_at": None,
        "completed_at": None,
    }
    assert (rows[1]["priority"], rows[1]["status"], rows[1]["checked_in_at"]) == (
        "EMERGENCY",
        "CHECKED_IN",
        at(8, 45),
    )
    rows[0]["status"] = "tampered"  # a copy: the allocator is unaffected
    assert alloc.token("D1-001").status is TokenStatus.BOOKED


def test_records_of_an_empty_allocator() -> None:
    assert Allocator().records() == []


# ----------------------------------------------------------------------------- repr


def test_reprs(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    assert repr(alloc) == "<Allocator 3 doctors, 9 slots, 0 waiting>"
    for i in range(10):
        alloc.book(f"P{i}", "D1", source=ONLINE)
    alloc.call_next("D1")  # nobody present: nothing changes
    alloc.book("X", "D2")
    alloc.call_next("D2")
    assert repr(alloc) == "<Allocator 3 doctors, 9 slots, 10 waiting>"
    assert repr(alloc.slot("D1@09")) == (
        "<Slot 'D1@09' of 'D1' 2026-11-25 09:00-10:00, 3/3 held, 3 waiting>"
    )
    assert repr(alloc.slot("D2@09")) == (
        "<Slot 'D2@09' of 'D2' 2026-11-25 09:00-10:00, 1/3 held, 0 waiting>"
    )


def test_slot_views(alloc: Allocator) -> None:
    s = alloc.slot("D1@09")
    assert (s.occupancy, s.free, s.overflow, s.waiting, s.present, s.emergencies) == (
        0,
        3,
        0,
        0,
        0,
        0,
    )
    alloc.book("A", "D1", source=ONLINE)
    alloc.book("B", "D1")
    alloc.book("C", "D1", source=Source.PAID)
    alloc.book("E", "D1", priority=Priority.EMERGENCY)
    alloc.call_next("D1")  # the emergency: still holds its place
    assert (s.occupancy, s.free, s.overflow, s.waiting, s.present, s.emergencies) == (
        4,
        0,
        1,
        3,
        1,
        1,
    )
    assert (s.held_by(ONLINE), s.held_by(Source.WALK_IN), s.held_by(Source.PAID)) == (1, 1, 1)
    assert s.held_by(Source.FOLLOW_UP) == 0


# ----------------------------------------------------------------------------- hostile input

Hostile = Callable[[Any], object]

HOSTILE_CALLS: list[tuple[str, Hostile]] = [
    ("patient_id", lambda a: a.book(5, "D1")),
    ("patient_id", lambda a: a.book("", "D1")),
    ("patient_id", lambda a: a.book(" P", "D1")),
    ("patient_id", lambda a: a.book(None, "D1")),
    ("doctor_id", lambda a: a.book("P", 1)),
    ("doctor_id", lambda a: a.book("P", "")),
    ("doctor_id", lambda a: a.book("P", ["D1"])),
    ("slot_id", lambda a: a.book("P", "D1", 9)),
    ("slot_id", lambda a: a.book("P", "D1", "")),
    ("source", lambda a: a.book("P", "D1", source="ONLINE")),
    ("source", lambda a: a.book("P", "D1", source=None)),
    ("priority", lambda a: a.book("P", "D1", priority=0)),
    ("priority", lambda a: a.book("P", "D1", priority=3)),
    ("priority", lambda a: a.book("P", "D1", priority="PAID")),
    ("priority", lambda a: a.book("P", "D1", priority=Source.PAID)),
    ("checked_in", lambda a: a.book("P", "D1", checked_in="yes")),
    ("checked_in", lambda a: a.book("P", "D1", checked_in=1)),
    ("token_id", lambda a: a.token(5)),
    ("token_id", lambda a: a.token("")),
    ("token_id", lambda a: a.check_in(None)),
    ("token_id", lambda a: a.cancel(1.5)),
    ("token_id", lambda a: a.no_show(b"D1-001")),
    ("token_id", lambda a: a.complete({})),
    ("token_id", lambda a: a.position(7)),
    ("token_id", lambda a: a.estimated_start(7)),
    ("doctor_id", lambda a: a.doctor(5)),
    ("doctor_id", lambda a: a.call_next(None)),
    ("doctor_id", lambda a: a.waitlist("")),
    ("doctor_id", lambda a: a.slots(3)),
    ("doctor_id", lambda a: a.delay(3, 5)),
    ("slot_id", lambda a: a.slot(5)),
    ("slot_id", lambda a: a.queue(None)),
    ("slot_id", lambda a: a.resize(5, 3)),
    ("minutes", lambda a: a.delay("D1", -1)),
    ("minutes", lambda a: a.delay("D1", 1.5)),
    ("minutes", lambda a: a.delay("D1", True)),
    ("minutes", lambda a: a.delay("D1", "5")),
    ("capacity", lambda a: a.resize("D1@09", "3")),
    ("capacity", lambda a: a.resize("D1@09", True)),
    ("capacity", lambda a: a.resize("D1@09", -1)),
    ("capacity", lambda a: a.resize("D1@09", 2.0)),
    ("doctor", lambda a: a.add_doctor("D4")),
    ("slot", lambda a: a.add_slot("D1@12")),
    ("callback", lambda a: a.subscribe(5)),
]


@pytest.mark.parametrize(
    ("argument", "call"),
    [pytest.param(arg, call, id=f"{arg}-{i}") for i, (arg, call) in enumerate(HOSTILE_CALLS)],
)
def test_hostile_arguments_raise_invalid_argument(
    alloc: Allocator, argument: str, call: Hostile
) -> None:
    alloc.book("Q", "D1", source=ONLINE)
    before = alloc.records()
    with pytest.raises(InvalidArgumentError, match=re.escape(argument)):
        call(alloc)
    assert alloc.records() == before


HOSTILE_CONSTRUCTORS: list[tuple[str, Callable[[], object]]] = [
    ("policies", lambda: UntypedAllocator(policies=5)),
    ("policies", lambda: UntypedAllocator(policies=Aging())),
    ("policies", lambda: UntypedAllocator(policies={"on_full": OnFull.WAITLIST})),
    ("clock", lambda: UntypedAllocator(clock=at(9))),
    ("clock", lambda: UntypedAllocator(clock="now")),
]


@pytest.mark.parametrize(
    ("argument", "make"),
    [
        pytest.param(arg, make, id=f"{arg}-{i}")
        for i, (arg, make) in enumerate(HOSTILE_CONSTRUCTORS)
    ],
)
def test_hostile_constructor_arguments(argument: str, make: Callable[[], object]) -> None:
    with pytest.raises(InvalidArgumentError, match=argument):
        make()


@pytest.mark.parametrize("value", ["09:00", 900, None, at(9).date()])
def test_a_clock_returning_no_datetime(value: object) -> None:
    def wrong() -> object:
        return value

    alloc: Allocator = UntypedAllocator(clock=wrong)
    with pytest.raises(InvalidArgumentError, match="clock"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []
    assert alloc.version == 0


def test_a_clock_mixing_naive_and_aware(alloc: Allocator, clock: Clock) -> None:
    token = alloc.book("P", "D1")
    clock.now = at(9).replace(tzinfo=timezone.utc)
    calls: list[Callable[[], object]] = [
        lambda: alloc.book("Q", "D1"),
        lambda: alloc.cancel(token.id),
        lambda: alloc.call_next("D1"),
        lambda: alloc.queue("D1@09"),
        lambda: alloc.position(token.id),
        lambda: alloc.resize("D1@09", 4),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="clock"):
            call()
    clock.now = at(9)
    assert alloc.token(token.id).status is TokenStatus.CHECKED_IN
    assert alloc.slot("D1@09").capacity == 3


def test_late_arrival_after_the_last_slot_is_waitlisted(alloc: Allocator, clock: Clock) -> None:
    token = alloc.book("P", "D3", "D3@11", source=ONLINE)
    clock.now = at(11, 20)
    alloc.no_show(token.id)
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    clock.now = at(12)  # every slot of D3 has ended
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.slot_id, arrived.checked_in_at) == (
        TokenStatus.WAITLISTED,
        None,
        at(12),
    )
    assert kinds(seen) == ["TokenMoved", "TokenCheckedIn"]
    assert moves(seen) == [(token.id, "D3@11", None, MoveReason.LATE_ARRIVAL)]
    alloc.check_invariants()


def test_snapshot_keeps_the_front_desk_state(build: Build, clock: Clock) -> None:
    """A closed slot, granted elastic places, missed calls, a doctor who came back and the
    version all survive a snapshot, and the copy carries on as the original."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    fill_ids = [alloc.book(f"X{i}", "D1", "D1@09", source=ONLINE).id for i in range(3)]
    alloc.book("W", "D1")  # D1@10 has room: the walk-in goes there
    for hour in (10, 11):
        while alloc.slot(f"D1@{hour}").free:
            alloc.book(f"F{hour}{alloc.slot(f'D1@{hour}').free}", "D1", f"D1@{hour}", source=ONLINE)
    waiting = alloc.book("Y", "D1")  # waitlisted, present
    clock.now = at(9, 5)
    alloc.close_slot("D3@10")
    alloc.mark_unavailable("D3")
    alloc.mark_available("D3")
    called = alloc.call_next("D1")  # the walk-in in D1@10
    assert called is not None
    alloc.missed_call(called.id)
    idle = alloc.call_next("D1")  # nobody present in a slot: the waitlisted walk-in
    assert idle is not None
    assert idle.id == waiting.id
    data = json.loads(json.dumps(alloc.snapshot()))
    copy = Allocator.from_snapshot(data, policies=alloc.policies, clock=clock)
    assert copy.snapshot() == alloc.snapshot()
    assert copy.version == alloc.version
    assert copy.slot("D3@10").closed
    assert copy.slot("D1@09").elastic == alloc.slot("D1@09").elastic == 1
    assert copy.token(called.id).missed_calls == 1
    for each in (alloc, copy):
        each.check_in(called.id)
        each.cancel(fill_ids[0])
        each.call_next("D1")
    assert copy.snapshot() == alloc.snapshot()
