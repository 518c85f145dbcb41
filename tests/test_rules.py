"""One test per allocation rule of the design, the rule quoted in the test's docstring.

The day comes from ``conftest``: D1 and D2 (General Medicine) and D3 (Cardiology), each with
slots ``@09``, ``@10`` and ``@11`` of capacity 3; the clock starts at 08:30. WALK_IN
bookings are checked in at once, ONLINE, PAID and FOLLOW_UP ones are not.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta, timezone

import pytest

from conftest import CAPACITY, HOURS, Build, Clock, at, ids, kinds, moves
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
    InvalidTransitionError,
    MoveReason,
    OnDelay,
    OnFull,
    OPDError,
    OrderingPolicy,
    Policies,
    Priority,
    Reallocation,
    Slot,
    SlotClosedError,
    SlotFullError,
    SlotResized,
    Source,
    StrictPriority,
    TokenCancelled,
    TokenRetriaged,
    TokenStatus,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)

EMERGENCY = Priority.EMERGENCY
ONLINE = Source.ONLINE
PAID = Source.PAID
FOLLOW_UP = Source.FOLLOW_UP


def fill(alloc: Allocator, slot_id: str, count: int, prefix: str) -> list[str]:
    """Book ``count`` ONLINE patients (not arrived) into ``slot_id``; return their ids."""
    doctor_id = alloc.slot(slot_id).doctor_id
    return [alloc.book(f"{prefix}{i}", doctor_id, slot_id, source=ONLINE).id for i in range(count)]


# ----------------------------------------------------------------------------- queue order


def test_queue_is_ordered_by_priority_then_seq(alloc: Allocator) -> None:
    """A slot's queue is a `SortedList` keyed on `(priority, seq)`: `priority` is the triage
    level (lower = more urgent), `seq` a global counter assigned when the token is booked."""
    standard = alloc.book("S", "D1", "D1@10", source=ONLINE)
    follow_up = alloc.book("F", "D1", "D1@10", source=FOLLOW_UP)
    paid = alloc.book("P", "D1", "D1@10", source=PAID)
    emergency = alloc.book("E", "D1", "D1@10", priority=EMERGENCY, checked_in=False)
    assert [t.seq for t in (standard, follow_up, paid, emergency)] == [1, 2, 3, 4]
    assert ids(alloc.queue("D1@10")) == [emergency.id, paid.id, follow_up.id, standard.id]
    alloc.check_invariants()


def test_first_come_first_served_within_a_level(clock: Clock, build: Build) -> None:
    """`StrictPriority()` (by `(priority, seq)`) ... `seq` a global counter assigned when the
    token is booked (arrival order; never the wall clock, so ties are deterministic)."""
    alloc = build(Policies(ordering=StrictPriority()))
    first = alloc.book("A", "D1", "D1@09")
    paid = alloc.book("P", "D1", "D1@09", source=PAID, checked_in=True)
    second = alloc.book("B", "D1", "D1@09")
    clock.advance(45)
    assert ids(alloc.queue("D1@09")) == [paid.id, first.id, second.id]
    called = [alloc.call_next("D1") for _ in range(3)]
    assert [t.id if t else None for t in called] == [paid.id, first.id, second.id]


def test_seq_is_global_and_number_is_per_doctor(alloc: Allocator) -> None:
    """`seq` a global counter assigned when the token is booked ... `number: int` (display
    number, per doctor, stable for life)."""
    a = alloc.book("A", "D1")
    b = alloc.book("B", "D2")
    c = alloc.book("C", "D1")
    assert [(t.seq, t.number) for t in (a, b, c)] == [(1, 1), (2, 1), (3, 2)]
    assert [a.id, b.id, c.id] == ["D1-001", "D2-001", "D1-002"]


# ----------------------------------------------------------------------------- booking


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (Source.PAID, Priority.PAID),
        (Source.FOLLOW_UP, Priority.FOLLOW_UP),
        (Source.ONLINE, Priority.STANDARD),
        (Source.WALK_IN, Priority.STANDARD),
    ],
)
def test_default_priority_by_source(alloc: Allocator, source: Source, expected: Priority) -> None:
    """Default priority by source: PAID -> PAID, FOLLOW_UP -> FOLLOW_UP, ONLINE and WALK_IN
    -> STANDARD."""
    assert alloc.book("P", "D1", source=source).priority is expected


def test_explicit_priority_wins_over_the_source(alloc: Allocator) -> None:
    """`priority=None` takes the source's default."""
    token = alloc.book("P", "D1", source=ONLINE, priority=Priority.FOLLOW_UP)
    assert (token.priority, token.source) == (Priority.FOLLOW_UP, ONLINE)


@pytest.mark.parametrize(
    ("source", "priority", "status"),
    [
        (Source.WALK_IN, None, TokenStatus.CHECKED_IN),
        (Source.ONLINE, EMERGENCY, TokenStatus.CHECKED_IN),
        (Source.ONLINE, None, TokenStatus.BOOKED),
        (Source.PAID, None, TokenStatus.BOOKED),
        (Source.FOLLOW_UP, None, TokenStatus.BOOKED),
    ],
)
def test_checked_in_default(
    alloc: Allocator, clock: Clock, source: Source, priority: Priority | None, status: TokenStatus
) -> None:
    """`checked_in=None` means present now for WALK_IN or EMERGENCY, not yet for the others."""
    token = alloc.book("P", "D1", source=source, priority=priority)
    assert token.status is status
    expected = clock.now if status is TokenStatus.CHECKED_IN else None
    assert token.checked_in_at == expected


def test_checked_in_given_explicitly(alloc: Allocator) -> None:
    """`checked_in=None` means present now for WALK_IN or EMERGENCY, not yet for the others.
    [An explicit value is taken as given.]"""
    assert alloc.book("A", "D1", source=ONLINE, checked_in=True).status is TokenStatus.CHECKED_IN
    assert alloc.book("B", "D1", checked_in=False).status is TokenStatus.BOOKED


def test_emergency_without_slot_goes_to_the_next_slot_before_the_day(alloc: Allocator) -> None:
    """Without [slot_id]: an emergency goes to the doctor's current slot (the one containing
    now, else the next to start)."""
    fill(alloc, "D1@09", 3, "P")
    token = alloc.book("E", "D1", priority=EMERGENCY)
    assert token.slot_id == "D1@09"


def test_emergency_without_slot_goes_to_the_current_slot(alloc: Allocator, clock: Clock) -> None:
    """Without [slot_id]: an emergency goes to the doctor's current slot (the one containing
    now, else the next to start)."""
    clock.now = at(10, 15)
    assert alloc.book("E", "D1", priority=EMERGENCY).slot_id == "D1@10"
    clock.now = at(10, 59)
    assert alloc.book("F", "D1", priority=EMERGENCY).slot_id == "D1@10"
    clock.now = at(11)
    assert alloc.book("G", "D1", priority=EMERGENCY).slot_id == "D1@11"


def test_with_slot_id_the_token_goes_to_that_slot(alloc: Allocator) -> None:
    """With `slot_id`: that slot."""
    assert alloc.book("A", "D1", "D1@11", source=ONLINE).slot_id == "D1@11"
    assert alloc.book("E", "D1", "D1@11", priority=EMERGENCY).slot_id == "D1@11"


def test_others_go_to_the_earliest_open_slot_with_room(alloc: Allocator, clock: Clock) -> None:
    """Without [slot_id]: ... others go to the earliest open slot with room."""
    assert [alloc.book(f"P{i}", "D1").slot_id for i in range(4)] == ["D1@09"] * 3 + ["D1@10"]
    clock.now = at(10)  # D1@09 has ended: it is no longer open
    alloc.cancel("D1-001")
    assert alloc.book("Q", "D1").slot_id == "D1@10"


def test_on_full_reject_raises_slot_full(alloc: Allocator) -> None:
    """`OnFull.REJECT` (default, as the seed: `SlotFullError` whose message says the slot
    "is full")."""
    fill(alloc, "D1@09", 3, "P")
    with pytest.raises(SlotFullError, match="is full"):
        alloc.book("X", "D1", "D1@09", source=ONLINE)
    for slot_id in ("D1@10", "D1@11"):
        fill(alloc, slot_id, 3, slot_id)
    with pytest.raises(SlotFullError, match="is full"):
        alloc.book("X", "D1", source=ONLINE)


def test_slot_full_message_names_the_slot_and_counts(alloc: Allocator) -> None:
    """`SlotFullError` whose message says the slot "is full" [and, as the style guide asks,
    names the slot and the counts]."""
    fill(alloc, "D1@09", 3, "P")
    with pytest.raises(SlotFullError, match=r"slot 'D1@09' is full \(3 of 3\)"):
        alloc.book("X", "D1", "D1@09")


def test_on_full_waitlist(build: Build) -> None:
    """A non-emergency token for a full slot follows `Policies.on_full`: ...
    `OnFull.WAITLIST`."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    fill(alloc, "D1@09", 3, "P")
    token = alloc.book("X", "D1", "D1@09", source=ONLINE)  # D1@10 has room: not used
    assert (token.status, token.slot_id) == (TokenStatus.WAITLISTED, None)
    for slot_id in ("D1@10", "D1@11"):
        fill(alloc, slot_id, 3, slot_id)
    other = alloc.book("Y", "D1", source=ONLINE)
    assert other.status is TokenStatus.WAITLISTED
    assert ids(alloc.waitlist("D1")) == [token.id, other.id]
    alloc.check_invariants()


def test_on_full_next_slot(build: Build) -> None:
    """`OnFull.NEXT_SLOT` (earliest later slot with room, else waitlist)."""
    alloc = build(Policies(on_full=OnFull.NEXT_SLOT))
    fill(alloc, "D1@10", 3, "B")
    # D1@09 has room but is earlier: only later slots are tried.
    assert alloc.book("X", "D1", "D1@10", source=ONLINE).slot_id == "D1@11"
    fill(alloc, "D1@09", 3, "A")
    assert alloc.book("Y", "D1", "D1@09", source=ONLINE).slot_id == "D1@11"
    fill(alloc, "D1@11", 1, "C")
    late = alloc.book("Z", "D1", "D1@09", source=ONLINE)
    assert (late.status, late.slot_id) == (TokenStatus.WAITLISTED, None)
    anywhere = alloc.book("W", "D1", source=ONLINE)
    assert anywhere.status is TokenStatus.WAITLISTED
    alloc.check_invariants()


# ----------------------------------------------------------------------------- emergencies


def test_emergency_bypasses_the_hard_limit(alloc: Allocator) -> None:
    """An emergency follows the emergency policy: by default it bypasses the hard limit (the
    slot overflows)."""
    held = fill(alloc, "D1@09", 3, "P")
    emergencies = [alloc.book(f"E{i}", "D1", "D1@09", priority=EMERGENCY) for i in range(2)]
    slot = alloc.slot("D1@09")
    assert (slot.occupancy, slot.free, slot.overflow) == (5, 0, 2)
    assert ids(alloc.queue("D1@09")) == [e.id for e in emergencies] + held
    alloc.check_invariants()


def test_emergency_override_displaces_the_lowest_ranked(build: Build) -> None:
    """with `EmergencyOverride(max_overflow=k)` at most k extra, and past that the
    lowest-ranked non-emergency token (lowest priority, latest `seq`) is displaced to the
    first later slot of the same doctor with room, else to the waitlist, keeping its
    `seq`."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    standard = alloc.book("S", "D1", "D1@09", source=ONLINE)
    alloc.book("P", "D1", "D1@09", source=PAID)
    alloc.book("F", "D1", "D1@09", source=FOLLOW_UP)
    fill(alloc, "D1@10", 3, "B")  # full: the first later slot with room is D1@11
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    emergency = alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    moved = alloc.token(standard.id)
    assert (moved.slot_id, moved.seq, moved.moves) == ("D1@11", standard.seq, 1)
    assert moved.status is TokenStatus.BOOKED
    assert moves(seen) == [(standard.id, "D1@09", "D1@11", MoveReason.DISPLACED)]
    assert kinds(seen) == ["TokenBooked", "TokenMoved"]
    assert alloc.slot("D1@09").overflow == 0
    assert emergency.id in ids(alloc.queue("D1@09"))
    alloc.check_invariants()


def test_emergency_override_allows_k_extra(build: Build) -> None:
    """with `EmergencyOverride(max_overflow=k)` at most k extra."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=1)))
    held = fill(alloc, "D1@09", 3, "P")
    alloc.book("E1", "D1", "D1@09", priority=EMERGENCY)
    assert alloc.slot("D1@09").overflow == 1
    assert all(alloc.token(i).slot_id == "D1@09" for i in held)
    alloc.book("E2", "D1", "D1@09", priority=EMERGENCY)
    assert alloc.slot("D1@09").overflow == 1
    assert alloc.token(held[-1]).slot_id == "D1@10"
    alloc.check_invariants()


def test_displaced_token_goes_to_the_waitlist_without_later_room(build: Build) -> None:
    """... displaced to the first later slot of the same doctor with room, else to the
    waitlist, keeping its `seq`."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    held = fill(alloc, "D1@09", 3, "A")
    fill(alloc, "D1@10", 3, "B")
    fill(alloc, "D1@11", 3, "C")
    alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    displaced = alloc.token(held[-1])
    assert (displaced.status, displaced.slot_id, displaced.seq) == (
        TokenStatus.WAITLISTED,
        None,
        3,
    )
    assert ids(alloc.waitlist("D1")) == [held[-1]]
    alloc.check_invariants()


def test_displacement_from_the_last_slot_of_the_day_goes_to_the_waitlist(
    build: Build, clock: Clock
) -> None:
    """... displaced to the first *later* slot of the same doctor with room, else to the
    waitlist: from the day's last slot there is no later slot, and an earlier one with room
    is not taken (the patient was booked for later, not sooner)."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    held = fill(alloc, "D1@11", 3, "C")
    clock.now = at(11, 5)
    alloc.book("E", "D1", priority=EMERGENCY)  # the current slot is the last one
    assert alloc.token(held[-1]).status is TokenStatus.WAITLISTED
    assert [alloc.slot(f"D1@{h:02d}").occupancy for h in HOURS] == [0, 0, 3]
    alloc.check_invariants()


def test_a_token_can_be_displaced_again_down_the_day(build: Build) -> None:
    """... displaced to the first later slot of the same doctor with room ... keeping its
    `seq`: a token displaced twice keeps its seq both times and counts both moves."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    (first,) = fill(alloc, "D1@09", 1, "A")
    fill(alloc, "D1@09", 2, "B")
    for name in ("C0", "C1"):
        alloc.book(name, "D1", "D1@10", source=PAID)
    seq = alloc.token(first).seq
    alloc.book("E1", "D1", "D1@09", priority=EMERGENCY)  # displaces B1, the latest seq
    alloc.book("E2", "D1", "D1@09", priority=EMERGENCY)  # displaces B0 to D1@11
    alloc.book("E3", "D1", "D1@09", priority=EMERGENCY)  # displaces A0 to D1@11
    alloc.book("E4", "D1", "D1@10", priority=EMERGENCY)  # D1@10's lowest-ranked: B1 again
    moved = alloc.token(first)
    assert (moved.slot_id, moved.seq, moved.moves) == ("D1@11", seq, 1)
    b1 = alloc.token("D1-003")
    assert (b1.slot_id, b1.moves) == ("D1@11", 2)
    alloc.check_invariants()


def test_an_emergency_only_slot_takes_emergencies_and_nobody_else(build: Build) -> None:
    """Emergencies bypass [the capacity policy] according to the emergency policy ... when
    nobody can be displaced, the emergency overflows anyway: a slot of capacity 0 is an
    emergency-only slot."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=1)))
    start = at(12)
    alloc.add_slot(Slot("D1@ER", "D1", start, start + timedelta(hours=1), 0))
    with pytest.raises(SlotFullError, match="is full"):
        alloc.book("S", "D1", "D1@ER", source=ONLINE)
    emergencies = [alloc.book(f"E{i}", "D1", "D1@ER", priority=EMERGENCY) for i in range(3)]
    assert ids(alloc.queue("D1@ER")) == ids(emergencies)
    assert alloc.slot("D1@ER").overflow == 3  # past the bound: nobody can be displaced
    alloc.check_invariants()


def test_an_emergency_never_displaces_an_emergency(build: Build) -> None:
    """An emergency never displaces an emergency."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    first = [alloc.book(f"E{i}", "D1", "D1@09", priority=EMERGENCY) for i in range(2)]
    standard = alloc.book("S", "D1", "D1@09", source=ONLINE)
    alloc.book("E2", "D1", "D1@09", priority=EMERGENCY)
    assert alloc.token(standard.id).slot_id == "D1@10"
    alloc.book("E3", "D1", "D1@09", priority=EMERGENCY)
    assert all(alloc.token(e.id).slot_id == "D1@09" for e in first)
    assert alloc.token(standard.id).slot_id == "D1@10"
    alloc.check_invariants()


def test_emergency_overflows_when_nobody_can_be_displaced(build: Build) -> None:
    """when nobody can be displaced, the emergency overflows anyway: a patient in danger is
    never turned away."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    for i in range(3):
        alloc.book(f"S{i}", "D1", "D1@09")
        alloc.call_next("D1")  # called patients hold their place but cannot be displaced
    emergency = alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    assert emergency.slot_id == "D1@09"
    assert alloc.slot("D1@09").overflow == 1
    alloc.check_invariants()


def test_late_arriving_emergency_obeys_the_overflow_bound(build: Build, clock: Clock) -> None:
    """with `EmergencyOverride(max_overflow=k)` at most k extra, and past that the
    lowest-ranked non-emergency token (lowest priority, latest `seq`) is displaced."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    emergency = alloc.book("E", "D1", "D1@09", priority=EMERGENCY, checked_in=False)
    fill(alloc, "D1@09", 2, "A")
    clock.now = at(9, 20)
    alloc.no_show(emergency.id)
    (last,) = fill(alloc, "D1@09", 1, "B")
    arrived = alloc.check_in(emergency.id)  # late arrival: placed in the current slot
    assert arrived.slot_id == "D1@09"
    assert alloc.slot("D1@09").overflow == 0
    assert alloc.token(last).slot_id == "D1@10"


# ----------------------------------------------------------------------------- duplicates


def test_duplicate_booking_carries_the_existing_token(build: Build) -> None:
    """A patient holds at most one active token per doctor: a second booking raises
    `DuplicateBookingError` carrying the existing token's id (emergencies are exempt)."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    first = alloc.book("P", "D1", source=ONLINE)
    with pytest.raises(DuplicateBookingError) as info:
        alloc.book("P", "D1", "D1@11", source=PAID)
    assert info.value.token_id == first.id
    assert alloc.book("P", "D2").doctor_id == "D2"  # another doctor is fine
    emergency = alloc.book("P", "D1", priority=EMERGENCY)  # exempt
    assert emergency.status is TokenStatus.CHECKED_IN
    alloc.check_invariants()


def test_an_emergency_token_does_not_end_the_patient_s_other_token(alloc: Allocator) -> None:
    """A patient holds at most one active token per doctor: a second booking raises
    `DuplicateBookingError` carrying the existing token's id (emergencies are exempt)."""
    standard = alloc.book("P", "D1", source=ONLINE)
    emergency = alloc.book("P", "D1", priority=EMERGENCY)
    alloc.cancel(emergency.id)
    with pytest.raises(DuplicateBookingError) as info:
        alloc.book("P", "D1")
    assert info.value.token_id == standard.id
    alloc.cancel(standard.id)
    assert alloc.book("P", "D1").status is TokenStatus.CHECKED_IN


def test_duplicate_booking_covers_waitlisted_tokens(build: Build) -> None:
    """A patient holds at most one active token per doctor."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    fill(alloc, "D1@09", 3, "A")
    waiting = alloc.book("P", "D1", "D1@09", source=ONLINE)
    assert waiting.status is TokenStatus.WAITLISTED
    with pytest.raises(DuplicateBookingError) as info:
        alloc.book("P", "D1", "D1@11")
    assert info.value.token_id == waiting.id


@pytest.mark.parametrize("end", ["complete", "cancel", "no_show"])
def test_booking_again_after_the_token_ended(alloc: Allocator, clock: Clock, end: str) -> None:
    """A patient holds at most one active token per doctor [an ended token is not active]."""
    token = alloc.book("P", "D1", source=ONLINE)
    if end == "complete":
        alloc.check_in(token.id)
        alloc.call_next("D1")
        alloc.complete(token.id)
    elif end == "cancel":
        alloc.cancel(token.id)
    else:
        clock.now = at(9, 15)
        alloc.no_show(token.id)
    again = alloc.book("P", "D1")
    assert again.id != token.id
    alloc.check_invariants()


# ----------------------------------------------------------------------------- closed slots


def test_an_ended_slot_is_closed(alloc: Allocator, clock: Clock) -> None:
    """A slot that has ended, or whose doctor is unavailable, raises `SlotClosedError`."""
    clock.now = at(10)
    with pytest.raises(SlotClosedError):
        alloc.book("P", "D1", "D1@09")
    with pytest.raises(SlotClosedError):
        alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    clock.now = at(12)
    with pytest.raises(SlotClosedError):
        alloc.book("P", "D1")
    with pytest.raises(SlotClosedError):
        alloc.book("E", "D1", priority=EMERGENCY)
    assert alloc.tokens() == []


# ----------------------------------------------------------------------------- atomicity


Call = Callable[[Allocator, Clock], object]


def book_after_the_slot_ended(alloc: Allocator, clock: Clock) -> object:
    clock.now = at(10, 5)
    return alloc.book("X", "D1", "D1@09")


def book_with_an_aware_clock(alloc: Allocator, clock: Clock) -> object:
    clock.now = clock.now.replace(tzinfo=timezone.utc)
    return alloc.book("X", "D1")


FAILING_CALLS: list[tuple[str, Call, type[OPDError]]] = [
    ("full", lambda a, c: a.book("X", "D1", "D1@09"), SlotFullError),
    ("duplicate", lambda a, c: a.book("A", "D1", "D1@10"), DuplicateBookingError),
    ("unknown doctor", lambda a, c: a.book("X", "D9"), UnknownDoctorError),
    ("int priority", lambda a, c: a.book("X", "D1", priority=0), InvalidArgumentError),  # type: ignore[arg-type]
    ("foreign slot", lambda a, c: a.book("X", "D1", "D2@09"), InvalidArgumentError),
    ("cancel completed", lambda a, c: a.cancel("D1-003"), InvalidTransitionError),
    ("cancel in consultation", lambda a, c: a.cancel("D1-002"), InvalidTransitionError),
    ("no-show in grace", lambda a, c: a.no_show("D1-001"), InvalidTransitionError),
    ("check in twice", lambda a, c: a.check_in("D1-004"), InvalidTransitionError),
    ("complete booked", lambda a, c: a.complete("D1-001"), InvalidTransitionError),
    ("position completed", lambda a, c: a.position("D1-003"), InvalidTransitionError),
    ("unknown token", lambda a, c: a.cancel("D1-999"), UnknownTokenError),
    ("negative capacity", lambda a, c: a.resize("D1@09", -1), InvalidArgumentError),
    ("negative delay", lambda a, c: a.delay("D1", -5), InvalidArgumentError),
    ("duplicate doctor", lambda a, c: a.add_doctor(a.doctor("D1")), InvalidArgumentError),
    (
        "overlapping slot",
        lambda a, c: a.add_slot(Slot("D1@0930", "D1", at(9, 30), at(10, 30), 3)),
        InvalidArgumentError,
    ),
    ("ended slot", book_after_the_slot_ended, SlotClosedError),
    ("aware clock", book_with_an_aware_clock, InvalidArgumentError),
]


@pytest.mark.parametrize(
    ("call", "error"),
    [pytest.param(call, error, id=name) for name, call, error in FAILING_CALLS],
)
def test_a_call_that_raises_changes_nothing(
    alloc: Allocator, clock: Clock, call: Call, error: type[OPDError]
) -> None:
    """A call that raises changes nothing: state, counters and events are as before the
    call."""
    alloc.book("A", "D1", source=ONLINE)  # D1-001, booked
    alloc.book("B", "D1")  # D1-002
    alloc.book("C", "D1", source=PAID, checked_in=True)  # D1-003
    alloc.call_next("D1")  # calls D1-003 (paid)
    alloc.call_next("D1")  # completes D1-003, calls D1-002
    alloc.book("D", "D1", "D1@10")  # D1-004, checked in
    clock.now = at(9, 5)
    seen: list[Event] = []
    alloc.subscribe(seen.append)

    def state() -> object:
        return (
            alloc.records(),
            [ids(alloc.queue(s.id)) for s in alloc.slots()],
            [ids(alloc.waitlist(d.id)) for d in alloc.doctors()],
            [(s.id, s.capacity, s.occupancy) for s in alloc.slots()],
            [alloc.estimated_start(t.id) for t in alloc.tokens()],
            repr(alloc),
        )

    before = state()
    now = clock.now
    with pytest.raises(error):
        call(alloc, clock)
    clock.now = now
    assert state() == before
    assert seen == []
    probe = alloc.book("Z", "D1")  # the counters did not move either
    assert (probe.id, probe.seq, probe.number) == ("D1-005", 5, 5)
    alloc.check_invariants()


# ----------------------------------------------------------------------------- reallocation


def test_refill_takes_the_waitlist_first(build: Build) -> None:
    """When a place frees up (cancel, no-show, resize), the reallocation policy fills it: the
    doctor's waitlist first, then checked-in patients pulled forward from later slots."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    booked = fill(alloc, "D1@09", 3, "A")
    present = alloc.book("D", "D1", "D1@10")  # checked in: could be pulled forward
    fill(alloc, "D1@10", 2, "B")
    fill(alloc, "D1@11", 3, "C")
    waiting = alloc.book("W", "D1", source=ONLINE)
    assert waiting.status is TokenStatus.WAITLISTED
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.cancel(booked[0])
    assert moves(seen) == [(waiting.id, None, "D1@09", MoveReason.FROM_WAITLIST)]
    refilled = alloc.token(waiting.id)
    assert (refilled.status, refilled.moves) == (TokenStatus.BOOKED, 0)
    assert alloc.token(present.id).slot_id == "D1@10"
    alloc.check_invariants()


def test_refill_pulls_forward_and_cascades(alloc: Allocator) -> None:
    """[Reallocation fills] a freed place from the waitlist, then pull[s] forward the best
    checked-in token from the doctor's later slots."""
    booked = fill(alloc, "D1@09", 3, "A")
    alloc.book("S", "D1", "D1@10")  # checked in, standard
    paid = alloc.book("P", "D1", "D1@10", source=PAID, checked_in=True)
    fill(alloc, "D1@10", 1, "B")
    fill(alloc, "D1@11", 1, "C")
    late = alloc.book("L", "D1", "D1@11")  # checked in
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.cancel(booked[1])
    assert moves(seen) == [
        (paid.id, "D1@10", "D1@09", MoveReason.PULLED_FORWARD),
        (late.id, "D1@11", "D1@10", MoveReason.PULLED_FORWARD),
    ]
    assert [alloc.token(i).moves for i in (paid.id, late.id)] == [1, 1]
    assert [alloc.slot(s).occupancy for s in ("D1@09", "D1@10", "D1@11")] == [3, 3, 1]
    alloc.check_invariants()


def test_booked_patients_are_never_pulled_forward(alloc: Allocator) -> None:
    """[Reallocation ...] then pull[s] forward the best checked-in token from the doctor's
    later slots [patients who have not arrived stay where they are]."""
    booked = fill(alloc, "D1@09", 3, "A")
    absent = fill(alloc, "D1@10", 3, "B")
    present = alloc.book("C", "D1", "D1@11")
    alloc.cancel(booked[0])
    assert [alloc.token(i).slot_id for i in absent] == ["D1@10"] * 3
    assert alloc.token(present.id).slot_id == "D1@09"


def test_no_pull_forward_when_disabled(build: Build) -> None:
    """`Reallocation(pull_forward=True, max_moves=2)`: fill a freed place from the waitlist,
    then pull forward the best checked-in token [only when pull_forward is set]."""
    alloc = build(Policies(reallocation=Reallocation(pull_forward=False)))
    booked = fill(alloc, "D1@09", 3, "A")
    present = alloc.book("C", "D1", "D1@10")
    alloc.cancel(booked[0])
    assert alloc.token(present.id).slot_id == "D1@10"
    assert alloc.slot("D1@09").free == 1


def test_an_ended_slot_is_not_refilled(build: Build, clock: Clock) -> None:
    """When a place frees up (cancel, no-show, resize), the reallocation policy fills it ...
    so no slot time is wasted [an ended slot has no time left to fill]."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    held = [alloc.book(f"A{i}", "D1", "D1@09") for i in range(3)]
    present = alloc.book("C", "D1", "D1@10")
    clock.now = at(10, 5)
    alloc.cancel(held[0].id)
    assert alloc.token(present.id).slot_id == "D1@10"
    assert alloc.slot("D1@09").free == 1


def test_a_moved_token_keeps_its_identity(alloc: Allocator, clock: Clock) -> None:
    """`number: int` (display number, per doctor, stable for life) ... displaced ...
    keeping its `seq`."""
    booked = fill(alloc, "D1@09", 3, "A")
    clock.now = at(8, 40)
    present = alloc.book("C", "D1", "D1@10")
    clock.now = at(8, 50)
    alloc.cancel(booked[0])
    moved = alloc.token(present.id)
    assert (moved.id, moved.seq, moved.number, moved.checked_in_at, moved.booked_at) == (
        present.id,
        present.seq,
        present.number,
        at(8, 40),
        at(8, 40),
    )
    assert (moved.slot_id, moved.status) == ("D1@09", TokenStatus.CHECKED_IN)


def test_max_moves_protects_tokens_from_repeated_displacement(build: Build) -> None:
    """a token displaced `max_moves` times is not displaced again while another candidate
    exists."""
    policies = Policies(
        emergency=EmergencyOverride(max_overflow=0), reallocation=Reallocation(max_moves=1)
    )
    alloc = build(policies)
    a, b, x = fill(alloc, "D1@09", 3, "A")
    pulled = alloc.book("C", "D1", "D1@10")
    alloc.cancel(x)
    assert alloc.token(pulled.id).moves == 1  # pulled forward once: protected now
    alloc.book("E1", "D1", "D1@09", priority=EMERGENCY)
    assert alloc.token(b).slot_id == "D1@10"  # not the lowest-ranked, but unprotected
    alloc.book("E2", "D1", "D1@09", priority=EMERGENCY)
    assert alloc.token(a).slot_id == "D1@10"
    assert alloc.token(pulled.id).slot_id == "D1@09"
    alloc.book("E3", "D1", "D1@09", priority=EMERGENCY)  # only the protected one is left
    assert (alloc.token(pulled.id).slot_id, alloc.token(pulled.id).moves) == ("D1@10", 2)
    alloc.check_invariants()


def test_protected_tokens_are_displaced_as_a_last_resort(build: Build) -> None:
    """a token displaced `max_moves` times is not displaced again while another candidate
    exists [with no other candidate, the lowest-ranked protected token goes]."""
    alloc = build(Policies(reallocation=Reallocation(max_moves=0)))  # everybody is protected
    paid = alloc.book("P", "D1", "D1@09", source=PAID)
    a, b = fill(alloc, "D1@09", 2, "A")
    alloc.resize("D1@09", 1)
    assert [alloc.token(i).slot_id for i in (b, a)] == ["D1@10", "D1@10"]
    assert alloc.token(paid.id).slot_id == "D1@09"


# ----------------------------------------------------------------------------- check-in


def test_check_in_a_booked_token(alloc: Allocator, clock: Clock) -> None:
    """`check_in` ... BOOKED -> CHECKED_IN."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(8, 55)
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.checked_in_at, arrived.seq) == (
        TokenStatus.CHECKED_IN,
        at(8, 55),
        token.seq,
    )
    with pytest.raises(InvalidTransitionError):
        alloc.check_in(token.id)


def test_check_in_a_waitlisted_token(build: Build, clock: Clock) -> None:
    """WAITLISTED stays WAITLISTED but records `checked_in_at`."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    booked = fill(alloc, "D1@09", 3, "A")
    token = alloc.book("W", "D1", "D1@09", source=ONLINE)
    clock.now = at(8, 45)
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.checked_in_at) == (TokenStatus.WAITLISTED, at(8, 45))
    with pytest.raises(InvalidTransitionError):
        alloc.check_in(token.id)
    alloc.cancel(booked[0])
    placed = alloc.token(token.id)
    assert (placed.status, placed.slot_id) == (TokenStatus.CHECKED_IN, "D1@09")


@pytest.mark.parametrize("state", ["in_consultation", "completed", "cancelled"])
def test_check_in_refused_in_other_states(alloc: Allocator, state: str) -> None:
    """BOOKED -> CHECKED_IN; WAITLISTED stays WAITLISTED but records `checked_in_at`; NO_SHOW
    -> late arrival [any other status is an invalid transition]."""
    token = alloc.book("P", "D1")
    if state == "cancelled":
        alloc.cancel(token.id)
    else:
        alloc.call_next("D1")
        if state == "completed":
            alloc.complete(token.id)
    with pytest.raises(InvalidTransitionError):
        alloc.check_in(token.id)


@pytest.mark.parametrize("ordering", [StrictPriority(), Aging()], ids=["strict", "aging"])
def test_a_present_emergency_is_called_before_earlier_slots(
    build: Build, clock: Clock, ordering: OrderingPolicy
) -> None:
    """Emergencies are always called before everyone else under every shipped ordering
    except `AccumulatingPriority`: also before patients still waiting from earlier slots."""
    alloc = build(Policies(ordering=ordering))
    clock.now = at(9, 40)
    backlog = [alloc.book(f"W{i}", "D1", "D1@09", source=PAID, checked_in=True) for i in (0, 1)]
    clock.now = at(10, 5)
    emergency = alloc.book("E", "D1", priority=EMERGENCY)
    assert emergency.slot_id == "D1@10"  # the current slot, behind the 09:00 backlog
    assert alloc.call_next("D1") == alloc.token(emergency.id)
    assert [alloc.call_next("D1").id for _ in backlog] == ids(backlog)  # type: ignore[union-attr]
    alloc.check_invariants()


def test_late_arrival_is_requeued_with_a_new_seq(alloc: Allocator, clock: Clock) -> None:
    """NO_SHOW -> late arrival, re-queued (new `seq`) into the doctor's current slot."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(9, 15)
    alloc.no_show(token.id)
    clock.now = at(10, 20)
    first = alloc.book("Q", "D1")  # checked in, D1@10
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.slot_id, arrived.checked_in_at) == (
        TokenStatus.CHECKED_IN,
        "D1@10",
        at(10, 20),
    )
    assert arrived.seq == first.seq + 1
    assert (arrived.id, arrived.number) == (token.id, token.number)
    assert ids(alloc.queue("D1@10")) == [first.id, token.id]
    alloc.check_invariants()


def test_late_arrival_takes_a_later_slot_when_the_current_one_is_full(
    alloc: Allocator, clock: Clock
) -> None:
    """NO_SHOW -> late arrival, re-queued (new `seq`) into the doctor's current slot, or
    waitlisted if it cannot be placed: a full current slot is not "cannot be placed" while a
    later slot of the doctor has room, so the patient takes the earliest such slot."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(9, 30)
    alloc.no_show(token.id)
    fill(alloc, "D1@09", 3, "A")
    fill(alloc, "D1@10", 3, "B")
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.slot_id, arrived.checked_in_at) == (
        TokenStatus.CHECKED_IN,
        "D1@11",
        at(9, 30),
    )
    assert alloc.waitlist("D1") == []
    alloc.check_invariants()


def test_late_arrival_is_waitlisted_when_every_slot_is_full(alloc: Allocator, clock: Clock) -> None:
    """NO_SHOW -> late arrival, re-queued (new `seq`) into the doctor's current slot, or
    waitlisted if it cannot be placed."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(9, 30)
    alloc.no_show(token.id)
    for slot_id, prefix in (("D1@09", "A"), ("D1@10", "B"), ("D1@11", "C")):
        fill(alloc, slot_id, 3, prefix)
    arrived = alloc.check_in(token.id)
    assert (arrived.status, arrived.slot_id, arrived.checked_in_at) == (
        TokenStatus.WAITLISTED,
        None,
        at(9, 30),
    )
    assert ids(alloc.waitlist("D1")) == [token.id]
    alloc.check_invariants()


def test_late_arrival_of_a_patient_who_booked_again(alloc: Allocator, clock: Clock) -> None:
    """A patient holds at most one active token per doctor: ... `DuplicateBookingError`
    carrying the existing token's id."""
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(9, 15)
    alloc.no_show(token.id)
    again = alloc.book("P", "D1")
    with pytest.raises(DuplicateBookingError) as info:
        alloc.check_in(token.id)
    assert info.value.token_id == again.id
    assert alloc.token(token.id).status is TokenStatus.NO_SHOW
    alloc.check_invariants()


# ----------------------------------------------------------------------------- calling


def test_call_next_skips_patients_who_have_not_arrived(alloc: Allocator) -> None:
    """[call_next] calls ... the next checked-in token: from the doctor's earliest slot, in
    start order, that has a checked-in waiting token ...; BOOKED tokens that have not
    arrived are skipped."""
    absent = alloc.book("A", "D1", "D1@09", source=ONLINE)
    later = alloc.book("B", "D1", "D1@10")
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.status) == (later.id, TokenStatus.IN_CONSULTATION)
    assert alloc.token(absent.id).status is TokenStatus.BOOKED


def test_call_next_prefers_the_earliest_slot(alloc: Allocator, clock: Clock) -> None:
    """[call_next calls] from the doctor's earliest slot, in start order, that has a
    checked-in waiting token, the one its ordering policy puts first."""
    standard = alloc.book("A", "D1", "D1@09")
    paid = alloc.book("P", "D1", "D1@10", source=PAID, checked_in=True)
    clock.now = at(10, 30)  # D1@09 has ended; its patient is still called first
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == standard.id
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == paid.id


def test_call_next_completes_the_current_consultation(alloc: Allocator, clock: Clock) -> None:
    """[call_next] completes the doctor's current consultation if any, then calls
    (IN_CONSULTATION) the next checked-in token ...; None if nobody checked in is waiting."""
    first = alloc.book("A", "D1")
    second = alloc.book("B", "D1")
    clock.now = at(9)
    assert alloc.call_next("D1") == alloc.token(first.id)
    clock.now = at(9, 10)
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.called_at) == (second.id, at(9, 10))
    done = alloc.token(first.id)
    assert (done.status, done.completed_at) == (TokenStatus.COMPLETED, at(9, 10))
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    assert alloc.call_next("D1") is None
    assert alloc.token(second.id).status is TokenStatus.COMPLETED
    assert kinds(seen) == ["TokenCompleted"]
    assert alloc.call_next("D1") is None
    assert kinds(seen) == ["TokenCompleted"]
    assert alloc.slot("D1@09").occupancy == 2  # completed patients keep their place


def test_complete(alloc: Allocator, clock: Clock) -> None:
    """`complete(token_id)` ... IN_CONSULTATION -> COMPLETED."""
    token = alloc.book("A", "D1")
    with pytest.raises(InvalidTransitionError):
        alloc.complete(token.id)
    alloc.call_next("D1")
    clock.now = at(9, 5)
    done = alloc.complete(token.id)
    assert (done.status, done.completed_at) == (TokenStatus.COMPLETED, at(9, 5))
    with pytest.raises(InvalidTransitionError):
        alloc.complete(token.id)
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    assert alloc.call_next("D1") is None  # nothing left to complete
    assert seen == []


# ----------------------------------------------------------------------------- cancel, no-show


@pytest.mark.parametrize("state", ["booked", "checked_in", "waitlisted"])
def test_cancel_active_tokens(build: Build, state: str) -> None:
    """`cancel` ... BOOKED, CHECKED_IN or WAITLISTED -> CANCELLED; frees the place and
    reallocates."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    fill(alloc, "D1@09", 2, "A")
    if state == "waitlisted":
        fill(alloc, "D1@09", 1, "B")
    token = alloc.book("P", "D1", "D1@09", checked_in=state != "booked")
    assert token.status.name == state.upper()
    cancelled = alloc.cancel(token.id)
    assert cancelled.status is TokenStatus.CANCELLED
    assert token.id not in ids(alloc.queue("D1@09")) + ids(alloc.waitlist("D1"))
    assert alloc.slot("D1@09").occupancy == (3 if state == "waitlisted" else 2)
    alloc.check_invariants()


@pytest.mark.parametrize("state", ["in_consultation", "completed", "cancelled"])
def test_cancel_refused_for_other_states(alloc: Allocator, state: str) -> None:
    """InvalidTransitionError e.g. cancel a completed token."""
    token = alloc.book("P", "D1")
    if state == "cancelled":
        alloc.cancel(token.id)
    else:
        alloc.call_next("D1")
        if state == "completed":
            alloc.call_next("D1")
    with pytest.raises(InvalidTransitionError):
        alloc.cancel(token.id)


def test_no_show_only_after_the_grace_period(build: Build, clock: Clock) -> None:
    """`no_show(token_id)` ... BOOKED -> NO_SHOW, only once the grace period after slot start has
    passed (else `InvalidTransitionError`); frees the place and reallocates."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    token, *_ = fill(alloc, "D1@09", 3, "A")
    waiting = alloc.book("W", "D1", "D1@09", source=ONLINE)
    clock.now = at(9, 15) - timedelta(seconds=1)
    with pytest.raises(InvalidTransitionError):
        alloc.no_show(token)
    clock.now = at(9, 15)
    gone = alloc.no_show(token)
    assert gone.status is TokenStatus.NO_SHOW
    assert alloc.token(waiting.id).slot_id == "D1@09"
    alloc.check_invariants()


def test_no_show_grace_is_a_policy(build: Build, clock: Clock) -> None:
    """Policies(... no_show_grace=timedelta(minutes=15)) [the grace period is a policy]."""
    alloc = build(Policies(no_show_grace=timedelta(minutes=5)))
    token = alloc.book("P", "D1", source=ONLINE)
    clock.now = at(9, 4)
    with pytest.raises(InvalidTransitionError):
        alloc.no_show(token.id)
    clock.now = at(9, 5)
    assert alloc.no_show(token.id).status is TokenStatus.NO_SHOW


def test_no_show_only_for_booked_tokens(alloc: Allocator, clock: Clock) -> None:
    """`no_show(token_id)` | `Token` | BOOKED -> NO_SHOW."""
    token = alloc.book("P", "D1")  # checked in
    clock.now = at(11)
    with pytest.raises(InvalidTransitionError):
        alloc.no_show(token.id)


# ----------------------------------------------------------------------------- ordering


def test_aging_lifts_a_long_waiter_to_the_follow_ups(alloc: Allocator, clock: Clock) -> None:
    """by default long-waiting standard patients are aged upwards, but never above
    FOLLOW_UP ... a checked-in token rises one level per `step` waited since check-in, never
    above `ceiling`; ties by `seq`."""
    clock.now = at(9)
    standard = alloc.book("S", "D1")
    clock.now = at(9, 10)
    follow_up = alloc.book("F", "D1", source=FOLLOW_UP, checked_in=True)
    clock.now = at(9, 29)
    assert ids(alloc.queue("D1@09")) == [follow_up.id, standard.id]
    clock.now = at(9, 30)  # waited exactly one step: level FOLLOW_UP, earlier seq
    assert ids(alloc.queue("D1@09")) == [standard.id, follow_up.id]
    assert alloc.position(standard.id) == 1
    paid = alloc.book("P", "D1", "D1@09", source=PAID, checked_in=True)
    clock.now = at(11, 30)  # three hours and more: still never above FOLLOW_UP
    assert ids(alloc.queue("D1@09")) == [paid.id, standard.id, follow_up.id]
    called = [alloc.call_next("D1") for _ in range(3)]
    assert [t.id if t else None for t in called] == [paid.id, standard.id, follow_up.id]


def test_strict_priority_never_ages(build: Build, clock: Clock) -> None:
    """`StrictPriority()` (by `(priority, seq)`)."""
    alloc = build(Policies(ordering=StrictPriority()))
    clock.now = at(9)
    standard = alloc.book("S", "D1")
    follow_up = alloc.book("F", "D1", source=FOLLOW_UP, checked_in=True)
    clock.now = at(11, 59)
    assert ids(alloc.queue("D1@09")) == [follow_up.id, standard.id]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == follow_up.id


@pytest.mark.parametrize("ordering", [StrictPriority(), Aging()], ids=["strict", "aging"])
def test_emergencies_are_called_first(build: Build, clock: Clock, ordering: OrderingPolicy) -> None:
    """Emergencies are always called before everyone else under every shipped ordering except
    `AccumulatingPriority`."""
    alloc = build(Policies(ordering=ordering))
    clock.now = at(9)
    alloc.book("S", "D1")
    alloc.book("P", "D1", source=PAID, checked_in=True)
    clock.now = at(9, 59)
    emergency = alloc.book("E", "D1", priority=EMERGENCY)
    assert emergency.slot_id == "D1@09"
    assert alloc.queue("D1@09")[0].id == emergency.id
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == emergency.id


def test_accumulating_priority_calls_the_largest_rate_times_wait(
    build: Build, clock: Clock
) -> None:
    """`AccumulatingPriority(rates={Priority.EMERGENCY: 8.0, ...})` (Kleinrock's
    delay-dependent priority: the checked-in token with the largest `rate * minutes waited`
    is called)."""
    alloc = build(Policies(ordering=AccumulatingPriority()))
    clock.now = at(9)
    standard = alloc.book("S", "D1")  # rate 1
    clock.now = at(9, 20)
    paid = alloc.book("P", "D1", source=PAID, checked_in=True)  # rate 4
    clock.now = at(9, 25)  # 25 * 1 > 5 * 4
    assert ids(alloc.queue("D1@09")) == [standard.id, paid.id]
    assert alloc.position(paid.id) == 2
    clock.now = at(9, 30)  # standard 30, paid 40
    emergency = alloc.book("E", "D1", priority=EMERGENCY)  # rate 8, but waited 0 minutes
    assert ids(alloc.queue("D1@09")) == [paid.id, standard.id, emergency.id]
    assert [alloc.position(t.id) for t in (paid, standard, emergency)] == [1, 2, 3]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == paid.id


def test_accumulating_priority_serves_a_class_in_check_in_order(build: Build, clock: Clock) -> None:
    """[AccumulatingPriority]: the checked-in token with the largest `rate * minutes waited`
    is called [within a class, the longest waiter]."""
    alloc = build(Policies(ordering=AccumulatingPriority()))
    late = alloc.book("A", "D1", "D1@09", source=ONLINE)  # seq 1, arrives last
    clock.now = at(9)
    early = alloc.book("B", "D1", "D1@09")
    clock.now = at(9, 5)
    paid = alloc.book("P", "D1", "D1@09", source=PAID, checked_in=True)
    clock.now = at(9, 8)
    alloc.check_in(late.id)
    clock.now = at(9, 10)  # standard: 10 and 2, paid: 4 * 5 = 20
    assert ids(alloc.queue("D1@09")) == [paid.id, early.id, late.id]
    assert alloc.position(late.id) == 3


# ----------------------------------------------------------------------------- estimates


def test_estimated_start_and_delay(alloc: Allocator, clock: Clock) -> None:
    """`estimated_start(token_id)` ... "for a non-emergency token, with nothing learned, no
    consultation in progress and nobody ahead from another slot, that is `max(slot.start +
    delay, now) + (position - 1) * consult_minutes`; None where `estimate` is None" ... the
    doctor runs late: estimated starts of remaining tokens shift. Section 10: "the
    consultation in progress counts only for what remains of it"."""
    first = alloc.book("A", "D1")
    second = alloc.book("B", "D1", source=ONLINE)
    assert [alloc.estimated_start(t.id) for t in (first, second)] == [at(9), at(9, 10)]
    alloc.delay("D1", 20)
    alloc.delay("D1", 5)  # delays add up
    assert [alloc.estimated_start(t.id) for t in (first, second)] == [at(9, 25), at(9, 35)]
    assert alloc.estimated_start(alloc.book("C", "D2").id) == at(9)  # other doctors unaffected
    clock.now = at(9, 50)
    assert [alloc.estimated_start(t.id) for t in (first, second)] == [at(9, 50), at(10)]
    alloc.call_next("D1")
    assert alloc.estimated_start(first.id) is None  # in consultation: not waiting
    # A's consultation began at 9:50 and has its whole 10 minutes to run.
    assert alloc.estimated_start(second.id) == at(10)
    clock.now = at(9, 56)  # 4 of them remain
    assert alloc.estimated_start(second.id) == at(10)


def test_delay_keeps_capacity_by_default(alloc: Allocator) -> None:
    """`delay(doctor_id, minutes)` ... estimated starts of remaining tokens shift;
    capacity-loss handling is a policy: by default (`OnDelay.SHIFT`) no place is lost."""
    booked = fill(alloc, "D1@09", 3, "A")
    alloc.delay("D1", 45)
    assert [alloc.slot(f"D1@{h:02d}").capacity for h in HOURS] == [CAPACITY] * 3
    assert ids(alloc.queue("D1@09")) == booked


def test_delay_can_remove_capacity(build: Build, clock: Clock) -> None:
    """`delay` ... a policy option where the lost minutes also remove capacity
    (`floor(minutes / consult_minutes)` places) and the lowest-ranked tokens move on,
    keeping seniority."""
    alloc = build(Policies(on_delay=OnDelay.SHRINK))
    paid = alloc.book("P", "D1", "D1@09", source=PAID)
    early, late = fill(alloc, "D1@09", 2, "A")
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    clock.now = at(9, 5)
    alloc.delay("D1", 25)  # consult_minutes=10: two places lost
    assert alloc.slot("D1@09").capacity == 1
    assert kinds(seen) == ["DoctorDelayed", "SlotResized", "TokenMoved", "TokenMoved"]
    assert moves(seen) == [
        (late, "D1@09", "D1@10", MoveReason.DELAYED),
        (early, "D1@09", "D1@10", MoveReason.DELAYED),
    ]
    assert ids(alloc.queue("D1@09")) == [paid.id]
    # Seniority is kept: the moved tokens keep their seq, so they stay in booking order.
    assert ids(alloc.queue("D1@10")) == [early, late]
    assert [alloc.token(t).moves for t in (early, late)] == [1, 1]
    alloc.check_invariants()


def test_delay_capacity_loss_adds_up_over_the_day(build: Build, clock: Clock) -> None:
    """... `floor(minutes / consult_minutes)` places: delays add up, so two delays of half a
    consultation each cost one place, and the minutes already counted are not counted again."""
    alloc = build(Policies(on_delay=OnDelay.SHRINK))
    clock.now = at(9, 5)
    alloc.delay("D1", 5)
    assert alloc.slot("D1@09").capacity == 3
    alloc.delay("D1", 5)
    assert alloc.slot("D1@09").capacity == 2
    alloc.delay("D1", 9)
    assert alloc.slot("D1@09").capacity == 2
    alloc.delay("D1", 1)
    assert [alloc.slot(f"D1@{h:02d}").capacity for h in HOURS] == [1, 3, 3]


def test_delay_capacity_loss_spills_into_later_slots(build: Build, clock: Clock) -> None:
    """... lost places come off the current slot, then the next ones; the tokens that no
    longer fit move to a later slot with room, else to the waitlist."""
    alloc = build(Policies(on_delay=OnDelay.SHRINK))
    first = fill(alloc, "D1@09", 3, "A")
    second = fill(alloc, "D1@10", 3, "B")
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    clock.now = at(9)
    alloc.delay("D1", 50)  # five places: all three of 09:00, two of 10:00
    assert [alloc.slot(f"D1@{h:02d}").capacity for h in HOURS] == [0, 1, 3]
    assert [e.slot_id for e in seen if isinstance(e, SlotResized)] == ["D1@09", "D1@10"]
    # 09:00's patients go to 11:00 (10:00 has no room left); 10:00 keeps its best-ranked one.
    assert ids(alloc.queue("D1@11")) == first
    assert ids(alloc.queue("D1@10")) == second[:1]
    assert ids(alloc.waitlist("D1")) == second[1:]
    assert {m[3] for m in moves(seen)} == {MoveReason.DELAYED}
    alloc.check_invariants()


def test_delay_capacity_loss_never_moves_emergencies(build: Build, clock: Clock) -> None:
    """... the lowest-ranked tokens move on: an emergency keeps its place in a shrunk slot."""
    alloc = build(Policies(on_delay=OnDelay.SHRINK))
    clock.now = at(9)
    emergency = alloc.book("E", "D1", priority=Priority.EMERGENCY)
    standard = alloc.book("S", "D1", "D1@09")
    alloc.delay("D1", 30)
    assert alloc.slot("D1@09").capacity == 0
    assert ids(alloc.queue("D1@09")) == [emergency.id]
    assert alloc.token(standard.id).slot_id == "D1@10"
    alloc.check_invariants()


def test_position_in_queue_and_waitlist(build: Build) -> None:
    """`position(token_id)` ... "1-based place in its slot's standing order (`queue()`) or in
    its waitlist": a booked paid patient stands first before arriving, and the absent
    standard patient booked first stands ahead of the present one booked after."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    absent = alloc.book("A", "D1", source=ONLINE)
    present = alloc.book("B", "D1")
    paid = alloc.book("C", "D1", source=PAID)
    assert [alloc.position(t.id) for t in (present, paid, absent)] == [3, 1, 2]
    fill(alloc, "D1@10", 3, "X")
    fill(alloc, "D1@11", 3, "Y")
    late = alloc.book("W1", "D1", source=ONLINE)
    urgent = alloc.book("W2", "D1", source=PAID)
    assert [alloc.position(t.id) for t in (urgent, late)] == [1, 2]
    assert alloc.estimated_start(late.id) is not None  # waitlisted: still waiting
    alloc.call_next("D1")
    with pytest.raises(InvalidTransitionError):
        alloc.position(present.id)


# ----------------------------------------------------------------------------- resize


def test_resize_grow_fills_from_the_waitlist(build: Build) -> None:
    """`resize(slot_id, capacity)` ... grow: fill from waitlist."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for slot_id in ("D1@09", "D1@10", "D1@11"):
        fill(alloc, slot_id, 3, slot_id)
    waiting = [alloc.book(f"W{i}", "D1", source=ONLINE).id for i in range(3)]
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.resize("D1@10", 5)
    assert kinds(seen) == ["SlotResized", "TokenMoved", "TokenMoved"]
    assert moves(seen) == [(w, None, "D1@10", MoveReason.FROM_WAITLIST) for w in waiting[:2]]
    assert ids(alloc.waitlist("D1")) == waiting[2:]
    assert alloc.slot("D1@10").capacity == 5
    alloc.check_invariants()


def test_resize_grow_pulls_forward(alloc: Allocator) -> None:
    """`resize(slot_id, capacity)` ... grow: fill from waitlist [then, as every freed place,
    by pulling forward]."""
    fill(alloc, "D1@09", 3, "A")
    present = alloc.book("C", "D1", "D1@10")
    alloc.resize("D1@09", 4)
    assert alloc.token(present.id).slot_id == "D1@09"


def test_resize_shrink_displaces_the_lowest_ranked(alloc: Allocator) -> None:
    """`resize(slot_id, capacity)` ... shrink: lowest-ranked tokens displaced onward."""
    paid = alloc.book("P", "D1", "D1@09", source=PAID)
    b, c = fill(alloc, "D1@09", 2, "A")
    fill(alloc, "D1@10", 2, "B")
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.resize("D1@09", 1)
    assert kinds(seen) == ["SlotResized", "TokenMoved", "TokenMoved"]
    assert moves(seen) == [
        (c, "D1@09", "D1@10", MoveReason.RESIZED),
        (b, "D1@09", "D1@11", MoveReason.RESIZED),
    ]
    assert [alloc.token(i).moves for i in (b, c)] == [1, 1]
    assert ids(alloc.queue("D1@09")) == [paid.id]
    alloc.check_invariants()


def test_resize_shrink_keeps_emergencies_and_called_patients(alloc: Allocator) -> None:
    """shrink: lowest-ranked tokens displaced onward [never an emergency, and places used by
    called patients stay used]."""
    seated = alloc.book("S", "D1", "D1@09")
    alloc.call_next("D1")
    emergency = alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    (other,) = fill(alloc, "D1@09", 1, "A")
    alloc.resize("D1@09", 0)
    assert alloc.token(seated.id).slot_id == "D1@09"
    assert alloc.token(emergency.id).slot_id == "D1@09"
    assert alloc.token(other).slot_id == "D1@10"
    alloc.check_invariants()


# ----------------------------------------------------------------------------- events


def test_events_arrive_after_the_change_is_complete(alloc: Allocator) -> None:
    """`subscribe(callback)` ... callback receives every event, after the change is
    complete."""
    booked = fill(alloc, "D1@09", 3, "A")
    alloc.book("B", "D1", "D1@10")
    last = alloc.book("C", "D1", "D1@11")
    observed: list[tuple[str, str | None, int]] = []

    def watch(event: Event) -> None:
        if isinstance(event, TokenCancelled):
            # The whole cascade has happened by the time the first event is delivered.
            observed.append(
                (
                    alloc.token(event.token_id).status.name,
                    alloc.token(last.id).slot_id,
                    alloc.slot("D1@09").occupancy,
                )
            )

    alloc.subscribe(watch)
    alloc.cancel(booked[0])
    assert observed == [("CANCELLED", "D1@10", 3)]


# --------------------------------------------------------------------------- unavailable doctors


def test_unavailable_doctor_closes_to_new_bookings(alloc: Allocator, clock: Clock) -> None:
    """mark_unavailable: "the doctor's slots that have not ended close to new bookings"."""
    alloc.mark_unavailable("D1")
    with pytest.raises(SlotClosedError):
        alloc.book("P", "D1")
    with pytest.raises(SlotClosedError):
        alloc.book("P", "D1", "D1@10")
    with pytest.raises(SlotClosedError):
        alloc.book("E", "D1", priority=EMERGENCY)
    alloc.check_invariants()


def test_unavailable_doctor_patients_move_within_the_department(
    alloc: Allocator, clock: Clock
) -> None:
    """mark_unavailable: "every waiting token, in standing order (slot by slot in start
    order, then the waitlist), moves to the earliest open slot with room of another
    available doctor of the same department (never another department)"."""
    events: list[Event] = []
    alloc.subscribe(events.append)
    online = alloc.book("A", "D1", "D1@09", source=Source.ONLINE)  # booked, not arrived
    walk_in = alloc.book("B", "D1", "D1@09")  # present, but booked after A
    later = alloc.book("C", "D1", "D1@11", source=Source.FOLLOW_UP)
    fill(alloc, "D2@09", 2, "X")  # one place left at 09:00 with D2
    events.clear()
    alloc.mark_unavailable("D1")
    assert kinds(events)[0] == "DoctorUnavailable"
    # In standing order: the online patient (same level, earlier seq) takes D2's last 09:00
    # place even though the walk-in is present; the walk-in gets the next earliest open slot
    # with room (D2@10), then the follow-up (also D2@10).
    assert moves(events) == [
        (online.id, "D1@09", "D2@09", MoveReason.REASSIGNED),
        (walk_in.id, "D1@09", "D2@10", MoveReason.REASSIGNED),
        (later.id, "D1@11", "D2@10", MoveReason.REASSIGNED),
    ]
    moved = alloc.token(walk_in.id)
    assert (moved.doctor_id, moved.id, moved.number, moved.seq, moved.moves) == (
        "D2",
        walk_in.id,
        walk_in.number,
        walk_in.seq,
        1,
    )
    assert moved.status is TokenStatus.CHECKED_IN
    assert alloc.token(online.id).status is TokenStatus.BOOKED
    assert all(alloc.token(t).doctor_id != "D3" for t in (online.id, walk_in.id, later.id))
    assert alloc.queue("D1@09") == []
    alloc.check_invariants()


def test_unavailable_doctor_patients_go_to_the_shortest_waitlist(build: Build) -> None:
    """mark_unavailable: "else to the shortest waitlist among those doctors"."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for hour in HOURS:
        fill(alloc, f"D2@{hour:02d}", CAPACITY, f"Y{hour}")
    alloc.book("W", "D2")  # D2's waitlist has one token
    mine = alloc.book("M", "D1")
    alloc.mark_unavailable("D1")
    token = alloc.token(mine.id)
    assert (token.doctor_id, token.status, token.slot_id) == ("D2", TokenStatus.WAITLISTED, None)
    assert ids(alloc.waitlist("D2"))[-1] == mine.id
    alloc.check_invariants()


def test_unavailable_doctor_without_colleagues_keeps_its_waitlist(alloc: Allocator) -> None:
    """mark_unavailable: "else to its own doctor's waitlist; none is cancelled" (D3 is the
    only cardiologist)."""
    events: list[Event] = []
    token = alloc.book("P", "D3", "D3@10", source=Source.ONLINE)
    alloc.subscribe(events.append)
    alloc.mark_unavailable("D3")
    assert moves(events) == [(token.id, "D3@10", None, MoveReason.REASSIGNED)]
    assert alloc.waitlist("D3") == [alloc.token(token.id)]
    assert not any(t.status is TokenStatus.CANCELLED for t in alloc.tokens())
    alloc.mark_unavailable("D3")  # again: nothing changes, no event
    assert len(events) == 2
    alloc.check_invariants()


def test_unavailable_doctor_passes_over_a_colleague_the_patient_already_sees(
    alloc: Allocator,
) -> None:
    """A patient holds at most one active token per doctor: reassignment skips a colleague with
    whom the patient already holds one."""
    alloc.book("P", "D2")
    mine = alloc.book("P", "D1")
    alloc.mark_unavailable("D1")
    token = alloc.token(mine.id)
    assert (token.doctor_id, token.status) == ("D1", TokenStatus.WAITLISTED)
    alloc.check_invariants()


def test_unavailable_doctor_emergency_respects_the_overflow_bound(build: Build) -> None:
    """An emergency reassigned into a colleague's full slot overflows it within
    EmergencyOverride(max_overflow=k), displacing the lowest-ranked token past it."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    d2 = fill(alloc, "D2@09", CAPACITY, "Y")
    emergency = alloc.book("E", "D1", priority=EMERGENCY)
    alloc.mark_unavailable("D1")
    assert alloc.token(emergency.id).slot_id == "D2@09"
    assert alloc.token(d2[-1]).slot_id == "D2@10"
    assert alloc.slot("D2@09").overflow == 0
    alloc.check_invariants()


# ----------------------------------------------------------------------------- standing order


def test_standing_order_ranks_booked_and_checked_in_together(alloc: Allocator) -> None:
    """Standing order: "a checked-in token by its current (aged or accumulated) rank, a
    BOOKED token that has not arrived by its triaged priority (only checked-in tokens age),
    ties by seq ... So a paid patient booked for 10:00 stands ahead of a walk-in even
    before arriving"."""
    walk_in = alloc.book("W", "D1", "D1@10")  # present, standard
    paid = alloc.book("P", "D1", "D1@10", source=PAID)  # not arrived
    assert ids(alloc.queue("D1@10")) == [paid.id, walk_in.id]
    assert (alloc.position(paid.id), alloc.position(walk_in.id)) == (1, 2)


def test_standing_order_positions_do_not_jump_when_others_check_in(
    alloc: Allocator, clock: Clock
) -> None:
    """Standing order: "a patient's position does not jump when others check in"."""
    first = alloc.book("A", "D1", source=ONLINE)
    second = alloc.book("B", "D1", source=ONLINE)
    walk_in = alloc.book("C", "D1")
    before = [alloc.position(t.id) for t in (first, second, walk_in)]
    clock.now = at(8, 50)
    alloc.check_in(second.id)
    assert [alloc.position(t.id) for t in (first, second, walk_in)] == before == [1, 2, 3]


def test_standing_order_booked_tokens_do_not_age(alloc: Allocator, clock: Clock) -> None:
    """Standing order: "(only checked-in tokens age)": after an hour a present standard
    patient has aged to FOLLOW_UP and passes a booked standard patient and a booked
    follow-up booked later, but not a booked follow-up booked earlier."""
    alloc.resize("D1@09", 4)
    early_follow_up = alloc.book("F1", "D1", source=FOLLOW_UP)
    booked_standard = alloc.book("S", "D1", source=ONLINE)
    present = alloc.book("W", "D1")
    late_follow_up = alloc.book("F2", "D1", source=FOLLOW_UP)
    clock.now = at(9, 31)  # the walk-in has waited an hour: two steps, capped at FOLLOW_UP
    assert ids(alloc.queue("D1@09")) == [
        early_follow_up.id,
        present.id,
        late_follow_up.id,
        booked_standard.id,
    ]
    assert [alloc.position(t) for t in ids(alloc.queue("D1@09"))] == [1, 2, 3, 4]
    assert alloc.call_next("D1") == alloc.token(present.id)  # the first checked-in one


@pytest.mark.parametrize("ordering", [StrictPriority(), Aging(), AccumulatingPriority()], ids=type)
def test_position_counts_in_the_standing_order(
    build: Build, clock: Clock, ordering: OrderingPolicy
) -> None:
    """`position(token_id)`: "1-based place in its slot's standing order (queue())", under
    every ordering (O(log n) under the lexicographic ones, a scan otherwise)."""
    alloc = build(Policies(ordering=ordering))
    tokens = [
        alloc.book("A", "D1", source=ONLINE),
        alloc.book("B", "D1"),
        alloc.book("C", "D1", source=PAID, checked_in=True),
    ]
    clock.now = at(9, 45)
    queue = ids(alloc.queue("D1@09"))
    assert sorted(queue) == sorted(ids(tokens))
    assert [alloc.position(token_id) for token_id in queue] == [1, 2, 3]


def test_call_next_skips_booked_tokens_in_the_standing_order(alloc: Allocator) -> None:
    """call_next: "the first checked-in token of its standing order; BOOKED tokens that have
    not arrived are skipped"."""
    paid = alloc.book("P", "D1", source=PAID)
    walk_in = alloc.book("W", "D1")
    assert ids(alloc.queue("D1@09")) == [paid.id, walk_in.id]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == walk_in.id
    assert ids(alloc.queue("D1@09")) == [paid.id]


# ----------------------------------------------------------------------------- idle-fill


def one_place_day(clock: Clock, policies: Policies | None = None) -> Allocator:
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("D1@09", "D1", at(9), at(10), 1))
    alloc.add_slot(Slot("D1@10", "D1", at(10), at(11), 1))
    return alloc


def test_idle_fill_calls_a_present_waitlisted_patient(clock: Clock) -> None:
    """Idle-fill rule: "A doctor never sits idle while a present patient of theirs waits ...
    it calls the first checked-in token of the doctor's waitlist: that token is placed in
    the doctor's current slot ..., over its capacity if need be (TokenMoved(reason=
    MoveReason.FROM_WAITLIST), then TokenCalled)". The issue's minimal case: an absent
    online booking holds the only place, a present walk-in is waitlisted."""
    alloc = one_place_day(clock, Policies(on_full=OnFull.WAITLIST))
    online = alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("X", "D1", "D1@10", source=ONLINE)
    walk_in = alloc.book("B", "D1", "D1@09")
    assert walk_in.status is TokenStatus.WAITLISTED
    events: list[Event] = []
    alloc.subscribe(events.append)
    clock.now = at(9)
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.slot_id, called.status) == (
        walk_in.id,
        "D1@09",
        TokenStatus.IN_CONSULTATION,
    )
    # The place granted past capacity is reported, for a journal to replay it.
    assert kinds(events) == ["PlacesGranted", "TokenMoved", "TokenCalled"]
    assert moves(events) == [(walk_in.id, None, "D1@09", MoveReason.FROM_WAITLIST)]
    slot = alloc.slot("D1@09")
    assert (slot.occupancy, slot.capacity, slot.overflow, slot.elastic) == (2, 1, 1, 1)
    assert alloc.token(online.id).status is TokenStatus.BOOKED  # keeps its place
    assert alloc.token(called.id).moves == 0
    alloc.check_invariants()


def test_idle_fill_prefers_slot_patients_and_skips_absent_waitlisted(clock: Clock) -> None:
    """Idle-fill rule: only "when call_next finds no checked-in token in any of the doctor's
    slots", and it calls "the first checked-in token of the doctor's waitlist"."""
    alloc = one_place_day(clock, Policies(on_full=OnFull.WAITLIST))
    alloc.book("A", "D1", "D1@09")  # present, in the slot
    alloc.book("X", "D1", "D1@10", source=ONLINE)
    absent = alloc.book("B", "D1", source=PAID)  # waitlisted, not arrived: ranks first
    present = alloc.book("C", "D1")  # waitlisted, present
    clock.now = at(9)
    first = alloc.call_next("D1")
    assert first is not None
    assert first.patient_id == "A"
    second = alloc.call_next("D1")
    assert second is not None
    assert second.id == present.id
    assert ids(alloc.waitlist("D1")) == [absent.id]
    assert alloc.call_next("D1") is None  # nobody present is left
    alloc.check_invariants()


def test_idle_fill_current_slot_is_the_latest_started(clock: Clock) -> None:
    """Idle-fill rule: "the doctor's current slot (the one containing now, else the latest
    that has started, else the next to start)"."""
    alloc = one_place_day(clock, Policies(on_full=OnFull.WAITLIST))
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("X", "D1", "D1@10", source=ONLINE)
    early = alloc.book("B", "D1")  # 08:30: the next to start is D1@09
    late = alloc.book("C", "D1")
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.slot_id) == (early.id, "D1@09")
    clock.now = at(11, 30)  # after the day: the latest that has started
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.slot_id) == (late.id, "D1@10")
    alloc.check_invariants()


def test_idle_fill_off_is_the_strict_rule(clock: Clock) -> None:
    """Idle-fill rule: "With fill_idle=False the strict rule holds: a waitlisted patient is
    called only once a place frees for them"."""
    alloc = one_place_day(
        clock, Policies(on_full=OnFull.WAITLIST, reallocation=Reallocation(fill_idle=False))
    )
    online = alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("X", "D1", "D1@10", source=ONLINE)
    walk_in = alloc.book("B", "D1", "D1@09")
    clock.now = at(9)
    assert alloc.call_next("D1") is None
    clock.now = at(9, 14)
    assert alloc.call_next("D1") is None
    clock.now = at(9, 15)
    alloc.no_show(online.id)  # the place frees: the walk-in takes it
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == walk_in.id


def test_idle_fill_never_seats_a_token_into_a_closed_slot(clock: Clock) -> None:
    """Idle-fill rule: "Idle-fill never seats a token into a closed slot ...: if the current
    slot is closed, it uses the doctor's earliest open slot that has not ended, and with
    none it calls nobody (None)"."""
    alloc = one_place_day(clock, Policies(on_full=OnFull.WAITLIST))
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("X", "D1", "D1@10", source=ONLINE)
    first = alloc.book("B", "D1")  # present, waitlisted
    second = alloc.book("C", "D1")  # present, waitlisted
    clock.now = at(9, 20)
    alloc.close_slot("D1@09")  # the current slot closes
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.slot_id) == (first.id, "D1@10")  # the earliest open slot
    alloc.close_slot("D1@10")  # no open slot is left
    version = alloc.version
    assert alloc.call_next("D1") is None  # completes B, calls nobody
    assert alloc.version == version + 1
    assert alloc.token(first.id).status is TokenStatus.COMPLETED
    assert alloc.token(second.id).status is TokenStatus.WAITLISTED
    alloc.check_invariants()


# ----------------------------------------------------------------------------- emergencies
# call_next: "a checked-in emergency first, wherever it waits (in a slot, or on the
# waitlist, ...)"; an emergency waits on a waitlist only where no open slot can take it.


@pytest.mark.parametrize("fill_idle", [True, False], ids=["fill_idle", "strict"])
def test_a_present_emergency_on_the_waitlist_is_called_first(
    build: Build, clock: Clock, fill_idle: bool
) -> None:
    """call_next: "a checked-in emergency first, wherever it waits (in a slot, or on the
    waitlist, whence it is seated as the idle-fill rule seats, even with fill_idle=False
    ...)". The doctor runs past the last slot and a waitlisted patient is re-triaged to
    emergency: no open slot can take it, and it is still called before the standard
    patient present in a slot."""
    policies = Policies(on_full=OnFull.WAITLIST, reallocation=Reallocation(fill_idle=fill_idle))
    alloc = build(policies)
    fill(alloc, "D1@09", CAPACITY, "X")
    fill(alloc, "D1@10", CAPACITY, "Y")
    fill(alloc, "D1@11", CAPACITY - 1, "Z")
    standard = alloc.book("S", "D1", "D1@11")  # present
    waiting = alloc.book("W", "D1")  # present, waitlisted: every slot is full
    assert waiting.status is TokenStatus.WAITLISTED
    clock.now = at(12, 10)  # past the last slot
    urgent = alloc.retriage(waiting.id, EMERGENCY)
    assert (urgent.status, urgent.slot_id) == (TokenStatus.WAITLISTED, None)
    events: list[Event] = []
    alloc.subscribe(events.append)
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.slot_id, called.status) == (
        waiting.id,
        "D1@11",  # the latest slot that has started
        TokenStatus.IN_CONSULTATION,
    )
    assert kinds(events) == ["TokenMoved", "TokenCalled"]
    assert moves(events) == [(waiting.id, None, "D1@11", MoveReason.FROM_WAITLIST)]
    assert ids(t for t in [alloc.call_next("D1")] if t is not None) == [standard.id]
    alloc.check_invariants()


def test_a_waitlisted_emergency_ranks_by_slot_then_seq(build: Build, clock: Clock) -> None:
    """call_next: a checked-in emergency first, "lowest acuity first, section 12, then
    earliest slot, then seq"; one on the waitlist ranks in the slot the idle-fill rule
    seats it in (here the last, D1@11)."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    fill(alloc, "D1@09", CAPACITY, "X")
    fill(alloc, "D1@10", CAPACITY - 1, "Y")
    early = alloc.book("E", "D1", "D1@10")  # present
    fill(alloc, "D1@11", CAPACITY - 2, "Z")
    standard = alloc.book("S", "D1", "D1@11")  # present
    waiting = alloc.book("W", "D1", "D1@09")  # present, waitlisted: D1@09 is full
    late = alloc.book("L", "D1", "D1@11")  # present, booked after W
    assert waiting.status is TokenStatus.WAITLISTED
    clock.now = at(12, 10)
    for token in (early, waiting, late):
        alloc.retriage(token.id, EMERGENCY)
    called = [alloc.call_next("D1") for _ in range(4)]
    assert ids(t for t in called if t is not None) == [early.id, waiting.id, late.id, standard.id]
    alloc.check_invariants()


def test_close_slot_moves_an_emergency_to_an_open_slot_not_the_waitlist(
    alloc: Allocator, clock: Clock
) -> None:
    """retriage, close_slot and mark_unavailable: "an emergency waits on a waitlist only
    where no open slot can take it". D3, the only cardiologist, closes its last slot: the
    emergency waiting there goes to the doctor's current slot and is called first."""
    clock.now = at(10, 15)
    standard = alloc.book("S", "D3", "D3@10")  # present
    emergency = alloc.book("E", "D3", "D3@11", priority=EMERGENCY)
    events: list[Event] = []
    alloc.subscribe(events.append)
    alloc.close_slot("D3@11")
    assert moves(events) == [(emergency.id, "D3@11", "D3@10", MoveReason.SLOT_CLOSED)]
    assert alloc.waitlist("D3") == []
    called = [alloc.call_next("D3") for _ in range(2)]
    assert ids(t for t in called if t is not None) == [emergency.id, standard.id]
    alloc.check_invariants()


def test_an_emergency_reassigned_to_a_colleague_s_waitlist_is_called_first(
    alloc: Allocator, clock: Clock
) -> None:
    """mark_unavailable moves a waiting token "to the earliest open slot ... of another
    available doctor of the same department ..., else to the shortest waitlist among those
    doctors"; past the day no open slot can take the emergency, so it waits on D2's
    waitlist, and call_next calls "a checked-in emergency first, wherever it waits"."""
    standard = alloc.book("S", "D2", "D2@11")  # present
    emergency = alloc.book("E", "D1", "D1@11", priority=EMERGENCY)
    clock.now = at(12, 10)
    alloc.mark_unavailable("D1")
    moved = alloc.token(emergency.id)
    assert (moved.doctor_id, moved.status) == ("D2", TokenStatus.WAITLISTED)
    called = [alloc.call_next("D2") for _ in range(2)]
    assert [(t.id, t.slot_id) for t in called if t is not None] == [
        (emergency.id, "D2@11"),
        (standard.id, "D2@11"),
    ]
    alloc.check_invariants()


# ----------------------------------------------------------------------------- reschedule


def test_reschedule_moves_a_token_keeping_its_identity(alloc: Allocator, clock: Clock) -> None:
    """reschedule: "the desk moves a waiting token (BOOKED, CHECKED_IN or WAITLISTED) to the
    named slot, of the same doctor or another ... the token keeps id, number, seq,
    checked_in_at and moves; TokenMoved(reason=MoveReason.RESCHEDULED)"."""
    token = alloc.book("A", "D1", "D1@09")
    events: list[Event] = []
    alloc.subscribe(events.append)
    clock.now = at(8, 40)
    moved = alloc.reschedule(token.id, "D2@11")
    assert (moved.id, moved.number, moved.seq, moved.checked_in_at, moved.moves) == (
        token.id,
        token.number,
        token.seq,
        token.checked_in_at,
        token.moves,
    )
    assert (moved.doctor_id, moved.slot_id, moved.status) == (
        "D2",
        "D2@11",
        TokenStatus.CHECKED_IN,
    )
    assert moves(events) == [(token.id, "D1@09", "D2@11", MoveReason.RESCHEDULED)]
    assert ids(alloc.queue("D2@11")) == [token.id]
    alloc.check_invariants()


def test_reschedule_a_waitlisted_token(build: Build) -> None:
    """reschedule: a WAITLISTED token may be moved to a slot with room; a booked one stays
    BOOKED."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for hour in HOURS:
        fill(alloc, f"D1@{hour:02d}", CAPACITY, f"X{hour}")
    waiting = alloc.book("W", "D1", source=ONLINE)
    moved = alloc.reschedule(waiting.id, "D2@10")
    assert (moved.slot_id, moved.status) == ("D2@10", TokenStatus.BOOKED)
    assert alloc.waitlist("D1") == []
    alloc.check_invariants()


def test_reschedule_reallocates_the_freed_place(build: Build) -> None:
    """reschedule: "the freed place is reallocated" (the waitlist first)."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    moving = fill(alloc, "D1@09", CAPACITY, "X")[0]
    for hour in (10, 11):
        fill(alloc, f"D1@{hour:02d}", CAPACITY, f"Y{hour}")
    waiting = alloc.book("W", "D1", source=ONLINE)
    alloc.reschedule(moving, "D2@09")
    assert alloc.token(waiting.id).slot_id == "D1@09"
    alloc.check_invariants()


def test_reschedule_does_not_pull_the_token_back(alloc: Allocator) -> None:
    """reschedule: a present patient moved to a later slot of the same doctor is not pulled
    forward into the place they left (that would undo the desk's move)."""
    token = alloc.book("A", "D1", "D1@09")
    other = alloc.book("B", "D1", "D1@11")
    moved = alloc.reschedule(token.id, "D1@10")
    assert moved.slot_id == "D1@10"
    assert alloc.token(token.id).slot_id == "D1@10"
    assert alloc.token(other.id).slot_id == "D1@09"  # pulled forward instead
    alloc.check_invariants()


def test_reschedule_to_its_own_slot_changes_nothing(alloc: Allocator) -> None:
    """reschedule: "the token's own slot -> returned unchanged, no event"."""
    token = alloc.book("A", "D1", "D1@10")
    events: list[Event] = []
    alloc.subscribe(events.append)
    version = alloc.version
    assert alloc.reschedule(token.id, "D1@10") == token
    assert events == []
    assert alloc.version == version


def test_reschedule_obeys_the_booking_rules(alloc: Allocator, clock: Clock) -> None:
    """reschedule: "the target obeys the booking rules for that token (SlotClosedError,
    SlotFullError for a non-emergency past the capacity policy, DuplicateBookingError if the
    patient holds another active token that the duplicate rule counts), and on any error
    nothing changes"."""
    token = alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("A", "D2", "D2@09", source=ONLINE)  # the same patient, another doctor
    fill(alloc, "D1@10", CAPACITY, "X")
    before = alloc.snapshot()
    with pytest.raises(SlotFullError, match="is full") as full:
        alloc.reschedule(token.id, "D1@10")
    # D2's slots have room, but the patient holds a token with D2 (PER_DOCTOR).
    assert full.value.alternatives == ("D1@11",)
    with pytest.raises(DuplicateBookingError) as duplicate:
        alloc.reschedule(token.id, "D2@10")
    assert duplicate.value.token_id == "D2-001"
    alloc.close_slot("D1@11")
    before = alloc.snapshot()
    with pytest.raises(SlotClosedError):
        alloc.reschedule(token.id, "D1@11")
    clock.now = at(10, 5)
    with pytest.raises(SlotClosedError, match="ended"):
        alloc.reschedule(token.id, "D3@09")
    assert alloc.snapshot() == before
    alloc.mark_unavailable("D3")
    with pytest.raises(SlotClosedError, match="unavailable"):
        alloc.reschedule(token.id, "D3@11")


def test_reschedule_an_emergency_follows_the_emergency_policy(build: Build) -> None:
    """reschedule: an emergency bypasses the capacity limit within the emergency policy,
    displacing the lowest-ranked token past the bound."""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0)))
    urgent = alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    booked = fill(alloc, "D1@10", CAPACITY, "X")
    moved = alloc.reschedule(urgent.id, "D1@10")
    assert moved.slot_id == "D1@10"
    assert alloc.token(booked[-1]).slot_id == "D1@11"  # displaced onward
    alloc.check_invariants()


def test_reschedule_refuses_tokens_not_waiting(alloc: Allocator, clock: Clock) -> None:
    """reschedule moves "a waiting token (BOOKED, CHECKED_IN or WAITLISTED)"; any other
    status raises InvalidTransitionError naming it."""
    token = alloc.book("A", "D1")
    clock.now = at(9)
    alloc.call_next("D1")
    with pytest.raises(InvalidTransitionError, match="IN_CONSULTATION"):
        alloc.reschedule(token.id, "D1@10")
    with pytest.raises(UnknownTokenError):
        alloc.reschedule("D1-404", "D1@10")
    with pytest.raises(UnknownSlotError):
        alloc.reschedule(token.id, "D1@99")


# ----------------------------------------------------------------------------- retriage


def test_retriage_re_ranks_keeping_seq_and_place(alloc: Allocator) -> None:
    """retriage: "a waiting token's triage level changes ...: it keeps seq and its place,
    and is re-ranked in its slot or waitlist; TokenRetriaged"."""
    first = alloc.book("A", "D1", source=ONLINE)
    second = alloc.book("B", "D1", source=ONLINE)
    events: list[Event] = []
    alloc.subscribe(events.append)
    worse = alloc.retriage(second.id, Priority.PAID)
    assert (worse.priority, worse.seq, worse.slot_id) == (Priority.PAID, second.seq, "D1@09")
    assert ids(alloc.queue("D1@09")) == [second.id, first.id]
    (event,) = events
    assert isinstance(event, TokenRetriaged)
    assert (event.old_priority, event.token, event.version) == (
        Priority.STANDARD,
        worse,
        alloc.version,
    )
    alloc.check_invariants()


def test_retriage_to_the_same_level_changes_nothing(alloc: Allocator) -> None:
    """retriage: "the same level -> unchanged, no event"."""
    token = alloc.book("A", "D1", source=ONLINE)
    version = alloc.version
    assert alloc.retriage(token.id, Priority.STANDARD) == token
    assert alloc.version == version


def test_retriage_to_emergency_is_called_first(alloc: Allocator) -> None:
    """retriage: "raised to EMERGENCY it follows the emergency policy in its slot": it keeps
    its place (it already holds one, so no bound is passed), counts as an emergency, and is
    called before everyone else, whatever slot it is in."""
    alloc.book("A", "D1", "D1@09")
    later = alloc.book("B", "D1", "D1@10")
    urgent = alloc.retriage(later.id, EMERGENCY)
    assert (urgent.slot_id, urgent.seq) == ("D1@10", later.seq)
    assert alloc.slot("D1@10").emergencies == 1
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == later.id
    alloc.check_invariants()


def test_retriage_seats_a_waitlisted_emergency(build: Build, clock: Clock) -> None:
    """retriage: "a waitlisted one is seated in the doctor's current slot (an emergency never
    waits on a waitlist)"."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for hour in HOURS:
        fill(alloc, f"D1@{hour:02d}", CAPACITY, f"X{hour}")
    waiting = alloc.book("W", "D1")
    clock.now = at(10, 20)
    events: list[Event] = []
    alloc.subscribe(events.append)
    urgent = alloc.retriage(waiting.id, EMERGENCY)
    assert (urgent.slot_id, urgent.status) == ("D1@10", TokenStatus.CHECKED_IN)
    assert kinds(events) == ["TokenRetriaged", "TokenMoved"]
    assert alloc.call_next("D1") == alloc.token(waiting.id)  # emergencies first
    alloc.check_invariants()


def test_retriage_lowering_an_emergency_keeps_its_place(alloc: Allocator) -> None:
    """retriage: the patient "keeps ... its place" when an emergency is lowered, even if the
    slot is then past its capacity (the place is granted, ``Slot.elastic``)."""
    fill(alloc, "D1@09", CAPACITY, "X")
    urgent = alloc.book("E", "D1", "D1@09", priority=EMERGENCY)
    lowered = alloc.retriage(urgent.id, Priority.PAID)
    assert lowered.slot_id == "D1@09"
    assert alloc.slot("D1@09").elastic == 1
    assert ids(alloc.queue("D1@09"))[0] == urgent.id
    alloc.check_invariants()


def test_retriage_bad_input(alloc: Allocator, clock: Clock) -> None:
    """retriage: a bad priority raises InvalidArgumentError naming the argument and the
    value; a token not waiting raises InvalidTransitionError naming its status."""
    token = alloc.book("A", "D1")
    with pytest.raises(InvalidArgumentError, match="priority"):
        alloc.retriage(token.id, 1)  # type: ignore[arg-type]
    clock.now = at(9)
    alloc.call_next("D1")
    with pytest.raises(InvalidTransitionError, match="IN_CONSULTATION"):
        alloc.retriage(token.id, Priority.PAID)


# ----------------------------------------------------------------------------- missed calls


def test_missed_call_sends_the_token_back_as_booked(alloc: Allocator, clock: Clock) -> None:
    """missed_call: "the patient called in (IN_CONSULTATION) did not come: the token goes
    back to its slot's queue as BOOKED (not present), keeping seq, and Token.missed_calls
    grows by one (TokenCallMissed) ... the doctor has no current consultation afterwards"."""
    token = alloc.book("A", "D1")
    other = alloc.book("B", "D1")
    clock.now = at(8, 45)  # before either has waited a whole aging step
    alloc.call_next("D1")
    events: list[Event] = []
    alloc.subscribe(events.append)
    back = alloc.missed_call(token.id)
    assert (back.status, back.seq, back.slot_id, back.missed_calls, back.checked_in_at) == (
        TokenStatus.BOOKED,
        token.seq,
        "D1@09",
        1,
        None,
    )
    assert kinds(events) == ["TokenCallMissed"]
    assert ids(alloc.queue("D1@09")) == [token.id, other.id]
    called = alloc.call_next("D1")  # completes nothing: no current consultation
    assert called is not None
    assert called.id == other.id
    assert alloc.token(token.id).status is TokenStatus.BOOKED
    alloc.check_invariants()


def test_missed_calls_up_to_the_limit_make_a_no_show(build: Build, clock: Clock) -> None:
    """missed_call: "at Policies.max_missed_calls missed calls it becomes NO_SHOW instead
    (TokenNoShow, place freed and reallocated; a later check_in is a late arrival)"."""
    alloc = build(Policies(max_missed_calls=2, on_full=OnFull.WAITLIST))
    token = alloc.book("A", "D1", "D1@09")
    fill(alloc, "D1@09", CAPACITY - 1, "X")
    for hour in (10, 11):
        fill(alloc, f"D1@{hour:02d}", CAPACITY, f"Y{hour}")
    waiting = alloc.book("W", "D1", source=ONLINE)
    clock.now = at(9)
    alloc.call_next("D1")
    alloc.missed_call(token.id)
    alloc.check_in(token.id)
    assert alloc.call_next("D1") == alloc.token(token.id)
    events: list[Event] = []
    alloc.subscribe(events.append)
    gone = alloc.missed_call(token.id)
    assert (gone.status, gone.missed_calls) == (TokenStatus.NO_SHOW, 2)
    assert kinds(events) == ["TokenNoShow", "TokenMoved"]
    assert alloc.token(waiting.id).slot_id == "D1@09"  # the place was reallocated
    clock.now = at(9, 40)
    late = alloc.check_in(token.id)
    assert late.status in (TokenStatus.CHECKED_IN, TokenStatus.WAITLISTED)
    assert late.seq > token.seq
    alloc.check_invariants()


def test_missed_call_bad_input(alloc: Allocator) -> None:
    """missed_call of a token not in consultation raises InvalidTransitionError; a bad
    max_missed_calls raises InvalidArgumentError naming the argument and the value."""
    token = alloc.book("A", "D1")
    with pytest.raises(InvalidTransitionError, match="CHECKED_IN"):
        alloc.missed_call(token.id)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(InvalidArgumentError, match=f"max_missed_calls.*{bad!r}"):
            Policies(max_missed_calls=bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- close_slot


def test_close_slot_moves_its_tokens_to_later_slots(alloc: Allocator, clock: Clock) -> None:
    """close_slot: "one slot closes (a break, a room lost): no new bookings
    (SlotClosedError); its waiting tokens move, in standing order, to the doctor's later
    open slots with room ... MoveReason.SLOT_CLOSED; none is cancelled; SlotClosed"."""
    booked = fill(alloc, "D1@10", 2, "X")
    present = alloc.book("W", "D1", "D1@10")
    fill(alloc, "D1@11", 1, "Y")
    events: list[Event] = []
    alloc.subscribe(events.append)
    alloc.close_slot("D1@10")
    assert kinds(events)[0] == "SlotClosed"
    assert moves(events) == [
        (booked[0], "D1@10", "D1@11", MoveReason.SLOT_CLOSED),
        (booked[1], "D1@10", "D1@11", MoveReason.SLOT_CLOSED),
        (present.id, "D1@10", "D2@09", MoveReason.SLOT_CLOSED),  # D1@11 full: a colleague
    ]
    assert alloc.slot("D1@10").closed
    assert alloc.queue("D1@10") == []
    with pytest.raises(SlotClosedError):
        alloc.book("Z", "D1", "D1@10")
    alloc.check_invariants()


def test_close_slot_falls_back_to_the_waitlist(alloc: Allocator) -> None:
    """close_slot: "... else as mark_unavailable moves them (same department), else to the
    doctor's waitlist" (D3 is the only cardiologist and has no later slot)."""
    token = alloc.book("A", "D3", "D3@11", source=ONLINE)
    alloc.close_slot("D3@11")
    moved = alloc.token(token.id)
    assert (moved.status, moved.doctor_id, moved.moves) == (TokenStatus.WAITLISTED, "D3", 1)
    alloc.check_invariants()


def test_close_slot_twice_changes_nothing(alloc: Allocator) -> None:
    """close_slot: "a closed slot -> no change"."""
    alloc.close_slot("D1@09")
    version = alloc.version
    alloc.close_slot("D1@09")
    assert alloc.version == version
    with pytest.raises(UnknownSlotError):
        alloc.close_slot("D1@99")


def test_closed_slots_are_never_refilled(build: Build, clock: Clock) -> None:
    """close_slot: a closed slot takes no new bookings, so no refill or pull-forward puts
    anyone in it."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    alloc.close_slot("D1@09")
    alloc.book("A", "D1", "D1@10")
    alloc.resize("D1@09", 5)
    assert alloc.queue("D1@09") == []
    assert alloc.book("B", "D1").slot_id == "D1@10"


# ----------------------------------------------------------------------------- mark_available


def test_mark_available_reopens_and_refills(build: Build, clock: Clock) -> None:
    """mark_available: "the doctor is back: slots that have not ended (and were not closed
    by close_slot) reopen; the doctor's waitlist refills them; tokens moved away earlier stay
    where they are; DoctorAvailable"."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    moved_away = alloc.book("A", "D1", "D1@11", source=ONLINE)
    alloc.close_slot("D1@10")
    for hour in HOURS:
        fill(alloc, f"D2@{hour:02d}", CAPACITY, f"Y{hour}")
    alloc.mark_unavailable("D1")
    assert alloc.token(moved_away.id).doctor_id == "D2"  # the shortest colleague waitlist
    alloc.mark_unavailable("D2")  # D2's patients: D1 is unavailable, so D2's own waitlist
    waiting = ids(alloc.waitlist("D2"))
    clock.now = at(9, 30)
    events: list[Event] = []
    alloc.subscribe(events.append)
    alloc.mark_available("D2")
    assert kinds(events)[0] == "DoctorAvailable"
    assert alloc.token(waiting[0]).slot_id == "D2@09"
    assert alloc.token(moved_away.id).doctor_id == "D2"
    alloc.mark_available("D1")
    assert alloc.slot("D1@10").closed  # closed with close_slot: stays closed
    assert alloc.book("B", "D1").slot_id == "D1@09"
    version = alloc.version
    alloc.mark_available("D1")  # an available doctor: no change
    assert alloc.version == version
    alloc.check_invariants()


def test_late_arrival_after_the_doctor_left_goes_to_a_colleague(
    alloc: Allocator, clock: Clock
) -> None:
    """check_in: "if the doctor is unavailable, it is placed as mark_unavailable places a
    waiting token (a same-department colleague first)"."""
    token = alloc.book("A", "D1", "D1@09", source=ONLINE)
    clock.now = at(9, 20)
    alloc.no_show(token.id)
    alloc.mark_unavailable("D1")
    arrived = alloc.check_in(token.id)
    assert (arrived.doctor_id, arrived.slot_id, arrived.status) == (
        "D2",
        "D2@09",
        TokenStatus.CHECKED_IN,
    )
    alloc.check_invariants()


# ----------------------------------------------------------------------------- alternatives


def test_slot_full_error_lists_alternatives(build: Build) -> None:
    """SlotFullError.alternatives: "a tuple of at most 5 slot ids where the refused token
    would be admitted now: the same doctor's later open slots first (start order), then the
    open slots of available doctors of the same department (start order, then doctor id);
    empty if none"."""
    alloc = build()
    fill(alloc, "D1@09", CAPACITY, "X")
    fill(alloc, "D2@10", CAPACITY, "Y")
    with pytest.raises(SlotFullError) as refused:
        alloc.book("P", "D1", "D1@09", source=ONLINE)
    assert refused.value.alternatives == ("D1@10", "D1@11", "D2@09", "D2@11")
    fill(alloc, "D3@09", CAPACITY, "Z")
    alloc.mark_unavailable("D3")
    for hour in (10, 11):
        fill(alloc, f"D3@{hour:02d}", 0, "W")
    alloc.mark_available("D3")
    fill(alloc, "D3@10", CAPACITY, "V")
    fill(alloc, "D3@11", CAPACITY, "U")
    with pytest.raises(SlotFullError) as none:
        alloc.book("Q", "D3", source=ONLINE)
    assert none.value.alternatives == ()


def test_slot_full_error_alternatives_are_at_most_five(clock: Clock) -> None:
    """SlotFullError.alternatives: "at most 5 slot ids"."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao", department="GM"))
    alloc.add_doctor(Doctor("D2", "Dr. Iyer", department="GM"))
    for doctor in ("D1", "D2"):
        for hour in range(9, 13):
            alloc.add_slot(Slot(f"{doctor}@{hour}", doctor, at(hour), at(hour + 1), 1))
    alloc.book("A", "D1", "D1@9", source=ONLINE)
    with pytest.raises(SlotFullError) as refused:
        alloc.book("B", "D1", "D1@9", source=ONLINE)
    assert refused.value.alternatives == ("D1@10", "D1@11", "D1@12", "D2@9", "D2@10")


# ----------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize(
    ("rule", "other_doctor_ok", "other_department_ok"),
    [
        (Duplicates.PER_DOCTOR, True, True),
        (Duplicates.PER_DEPARTMENT, False, True),
        (Duplicates.ONE, False, False),
    ],
)
def test_duplicate_rule(
    build: Build, rule: Duplicates, other_doctor_ok: bool, other_department_ok: bool
) -> None:
    """Duplicates: "PER_DOCTOR (the default: one per doctor), PER_DEPARTMENT (one per
    department), ONE (one in the whole allocator, i.e. one per OPD day). Emergencies are
    exempt under all three"."""
    alloc = build(Policies(duplicates=rule))
    first = alloc.book("P", "D1", source=ONLINE)
    with pytest.raises(DuplicateBookingError) as same:
        alloc.book("P", "D1", source=ONLINE)
    assert same.value.token_id == first.id
    for doctor, ok in (("D2", other_doctor_ok), ("D3", other_department_ok)):
        if ok:
            alloc.book("P", doctor, source=ONLINE)
        else:
            with pytest.raises(DuplicateBookingError) as refused:
                alloc.book("P", doctor, source=ONLINE)
            assert refused.value.token_id == first.id
    urgent = alloc.book("P", "D3", priority=EMERGENCY)  # exempt
    assert urgent.status is TokenStatus.CHECKED_IN
    alloc.check_invariants()


def test_duplicates_bad_value() -> None:
    """Policies.duplicates takes a Duplicates member; anything else raises
    InvalidArgumentError naming the argument and the value."""
    with pytest.raises(InvalidArgumentError, match=r"duplicates.*'ONE'"):
        Policies(duplicates="ONE")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- version


def test_version_counts_changes(clock: Clock) -> None:
    """version: "the number of changes so far: every call that changes something
    (add_doctor and add_slot included) adds one; a call that raises or changes nothing
    leaves it; kept by snapshot()". Every event "carries version: the allocator's version
    after the call that emitted it (all events of one call share it)"."""
    alloc = one_place_day(clock)
    assert alloc.version == 3
    events: list[Event] = []
    alloc.subscribe(events.append)
    first = alloc.book("A", "D1", "D1@09", source=ONLINE)
    assert alloc.version == 4
    with pytest.raises(SlotFullError):
        alloc.book("B", "D1", "D1@09", source=ONLINE)
    assert alloc.version == 4
    assert alloc.call_next("D1") is None  # nobody present: nothing changed
    assert alloc.version == 4
    alloc.book("C", "D1", "D1@10")
    clock.now = at(9, 20)
    alloc.cancel(first.id)  # cancelled, then C pulled forward: one change
    assert alloc.version == 6
    assert [e.version for e in events] == [4, 5, 6, 6]
    copy = Allocator.from_snapshot(alloc.snapshot(), clock=clock)
    assert copy.version == 6


def test_lowering_an_emergency_obeys_the_duplicate_rule(alloc: Allocator) -> None:
    """Emergencies "are exempt" from the duplicate rule, the other levels are not: lowering
    an emergency whose patient holds another active token with the doctor raises
    DuplicateBookingError carrying that token's id, and changes nothing."""
    booked = alloc.book("P", "D1", source=ONLINE)
    urgent = alloc.book("P", "D1", priority=EMERGENCY)
    before = alloc.snapshot()
    with pytest.raises(DuplicateBookingError) as refused:
        alloc.retriage(urgent.id, Priority.STANDARD)
    assert refused.value.token_id == booked.id
    assert alloc.snapshot() == before
    alloc.cancel(booked.id)
    assert alloc.retriage(urgent.id, Priority.STANDARD).priority is Priority.STANDARD
    alloc.check_invariants()
