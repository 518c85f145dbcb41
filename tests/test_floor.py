"""DESIGN.md section 10, the live floor (pause, resume, call out of turn, step out and back,
now serving, end of day, cancellation reasons), and the two amendments to section 3 (the
idle-fill rule never seats into a closed slot; who may call). Each test quotes the sentence
it checks in its docstring.

The day comes from ``conftest``: D1 and D2 (General Medicine) and D3 (Cardiology), each with
slots ``@09``, ``@10`` and ``@11`` of capacity 3; the clock starts at 08:30. WALK_IN
bookings are checked in at once, ONLINE and PAID ones are not. Token ids are
``<doctor>-<number>``, numbered per doctor in booking order. Where a test needs another
shape, it builds a small day of one doctor, D9, by hand (:func:`small_day`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import attrs
import pytest

from conftest import CAPACITY, DOCTORS, Build, Clock, at, ids, kinds, moves
from opd_engine import (
    Allocator,
    DayEnded,
    Doctor,
    DoctorPaused,
    DoctorResumed,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    MoveReason,
    NotFoundError,
    OnFull,
    Policies,
    Priority,
    Slot,
    SlotClosedError,
    Source,
    StrictPriority,
    Token,
    TokenCalled,
    TokenCancelled,
    TokenStatus,
    TokenSteppedOut,
    TokenUnseen,
    UnknownDoctorError,
    UnknownTokenError,
    event_from_dict,
    event_to_dict,
)

ONLINE = Source.ONLINE
PAID = Source.PAID
AWAY = TokenStatus.AWAY
BOOKED = TokenStatus.BOOKED
CHECKED_IN = TokenStatus.CHECKED_IN
IN_CONSULTATION = TokenStatus.IN_CONSULTATION
WAITLISTED = TokenStatus.WAITLISTED
UNSEEN = TokenStatus.UNSEEN
WAITLIST = Policies(on_full=OnFull.WAITLIST)
# Where a test reads the standing order, StrictPriority keeps every rank at the triaged level.
STRICT = Policies(ordering=StrictPriority())


def small_day(
    clock: Clock, *hours: int, capacity: int = 1, policies: Policies = WAITLIST
) -> Allocator:
    """One doctor, D9, with one-hour slots ``D9@<hour>`` of ``capacity`` starting at
    ``hours``; a full slot waitlists by default."""
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D9", "Dr. Das"))
    for hour in hours:
        alloc.add_slot(Slot(f"D9@{hour:02d}", "D9", at(hour), at(hour + 1), capacity))
    return alloc


def listen(alloc: Allocator) -> list[Event]:
    """The events ``alloc`` delivers from now on."""
    events: list[Event] = []
    alloc.subscribe(events.append)
    return events


def refused(
    alloc: Allocator, call: Callable[[], object], error: type[Exception], *named: str
) -> None:
    """``call()`` raises ``error`` whose message names each of ``named``, and changes
    nothing: the same snapshot and version, and no event delivered."""
    events = listen(alloc)
    before, version = alloc.snapshot(), alloc.version
    with pytest.raises(error) as raised:
        call()
    for name in named:
        assert name in str(raised.value)
    assert (alloc.snapshot(), alloc.version, events) == (before, version, [])
    alloc.check_invariants()


def no_change(alloc: Allocator, call: Callable[[], object]) -> object:
    """Run ``call()``, assert it changed nothing (snapshot, version, no event), and return
    what it returned."""
    events = listen(alloc)
    before, version = alloc.snapshot(), alloc.version
    result = call()
    assert (alloc.snapshot(), alloc.version, events) == (before, version, [])
    return result


def state(alloc: Allocator, token_id: str) -> tuple[TokenStatus, str | None]:
    """A token's status and slot."""
    token = alloc.token(token_id)
    return token.status, token.slot_id


# ----------------------------------------------------------------------------- pause, resume


def test_pause_holds_the_calls_while_the_desk_goes_on(alloc: Allocator, clock: Clock) -> None:
    """`pause(doctor_id)`: the doctor steps away for a while (ward round, break): bookings,
    check-ins and moves go on; `call_next` and `call` raise `InvalidTransitionError`; the
    consultation in progress can still be completed; `DoctorPaused`."""
    clock.now = at(9, 5)
    seen = alloc.book("A", "D1")  # D1-001, D1@09, present
    waiting = alloc.book("B", "D1")  # D1-002, D1@09, present
    assert alloc.call_next("D1") == alloc.token(seen.id)
    version = alloc.version
    events = listen(alloc)
    alloc.pause("D1")
    assert alloc.version == version + 1
    assert [(type(e), e.at, e.version, e.doctor_id) for e in events] == [  # type: ignore[attr-defined]
        (DoctorPaused, at(9, 5), version + 1, "D1")
    ]
    # Bookings, check-ins and moves go on.
    late = alloc.book("C", "D1", "D1@10", source=ONLINE)
    assert state(alloc, late.id) == (BOOKED, "D1@10")
    assert alloc.check_in(late.id).status is CHECKED_IN
    assert alloc.reschedule(late.id, "D1@09").slot_id == "D1@09"  # 2 of 3 held: room
    # Nobody is called.
    refused(alloc, lambda: alloc.call_next("D1"), InvalidTransitionError, "'D1'", "paused")
    refused(alloc, lambda: alloc.call(waiting.id), InvalidTransitionError, "'D1'", "paused")
    # The consultation in progress ends as usual.
    assert alloc.complete(seen.id).status is TokenStatus.COMPLETED
    assert alloc.now_serving("D1") is None
    alloc.check_invariants()


def test_pausing_a_paused_doctor_changes_nothing(alloc: Allocator) -> None:
    """`pause(doctor_id)`: ... a paused doctor -> no change."""
    alloc.pause("D1")
    assert no_change(alloc, lambda: alloc.pause("D1")) is None


def test_resume_lets_the_doctor_call_again(alloc: Allocator, clock: Clock) -> None:
    """`resume(doctor_id)`: `DoctorResumed`."""
    clock.now = at(9, 5)
    patient = alloc.book("A", "D1")
    alloc.pause("D1")
    clock.now = at(9, 25)
    version = alloc.version
    events = listen(alloc)
    alloc.resume("D1")
    assert [(type(e), e.at, e.version, e.doctor_id) for e in events] == [  # type: ignore[attr-defined]
        (DoctorResumed, at(9, 25), version + 1, "D1")
    ]
    called = alloc.call_next("D1")
    assert called is not None
    assert (called.id, called.status) == (patient.id, IN_CONSULTATION)


def test_resuming_a_doctor_who_is_not_paused_changes_nothing(alloc: Allocator) -> None:
    """`resume(doctor_id)`: ... a doctor who is not paused -> no change."""
    assert no_change(alloc, lambda: alloc.resume("D1")) is None
    alloc.pause("D1")
    alloc.resume("D1")
    assert no_change(alloc, lambda: alloc.resume("D1")) is None


# ----------------------------------------------------------------------------- who may call


@pytest.mark.parametrize("why", ["paused", "unavailable"])
@pytest.mark.parametrize("how", ["call_next", "call"])
def test_an_unavailable_or_paused_doctor_cannot_call(
    build: Build, clock: Clock, why: str, how: str
) -> None:
    """Section 3, **Who may call**: `call_next` and `call` (section 10) raise
    `InvalidTransitionError`, naming the doctor, when the doctor is unavailable
    (`mark_unavailable`) or paused (`pause`); nothing changes. The consultation in progress
    can still be completed with `complete`."""
    alloc = build()
    clock.now = at(9, 5)
    # D3 is the only cardiologist: marked unavailable, its patients go to its waitlist.
    first = alloc.book("A", "D3")
    second = alloc.book("B", "D3")
    assert alloc.call_next("D3") == alloc.token(first.id)
    if why == "paused":
        alloc.pause("D3")
    else:
        alloc.mark_unavailable("D3")
    if how == "call_next":
        refused(alloc, lambda: alloc.call_next("D3"), InvalidTransitionError, "'D3'", why)
    else:
        refused(alloc, lambda: alloc.call(second.id), InvalidTransitionError, "'D3'", why)
    assert alloc.now_serving("D3") == alloc.token(first.id)
    assert alloc.complete(first.id).status is TokenStatus.COMPLETED
    assert alloc.now_serving("D3") is None
    alloc.check_invariants()


# ----------------------------------------------------------------------------- call out of turn


def test_call_calls_the_chosen_patient_out_of_turn(alloc: Allocator, clock: Clock) -> None:
    """`call(token_id)`: the desk calls a chosen present patient out of turn: completes the
    doctor's current consultation as `call_next` does, then a CHECKED_IN token in one of the
    doctor's slots ... becomes IN_CONSULTATION; `TokenCalled` with `out_of_turn=True` (False
    for `call_next`)."""
    clock.now = at(9, 5)
    first = alloc.book("A", "D1")  # D1@09
    second = alloc.book("B", "D1")  # D1@09
    chosen = alloc.book("C", "D1", "D1@10")  # a later slot, behind both
    events = listen(alloc)
    alloc.call_next("D1")  # A
    clock.now = at(9, 12)
    called = alloc.call(chosen.id)
    assert (called.id, called.status, called.slot_id) == (chosen.id, IN_CONSULTATION, "D1@10")
    assert alloc.now_serving("D1") == called
    assert alloc.token(first.id).status is TokenStatus.COMPLETED
    assert [(kind, e.token_id) for kind, e in zip(kinds(events), events, strict=True)] == [  # type: ignore[attr-defined]
        ("TokenCalled", first.id),
        ("TokenCompleted", first.id),
        ("TokenCalled", chosen.id),
    ]
    calls = [e for e in events if isinstance(e, TokenCalled)]
    assert [(e.token_id, e.out_of_turn) for e in calls] == [(first.id, False), (chosen.id, True)]
    assert calls[1].at == at(9, 12)
    # The order goes on where it was: B is next.
    again = alloc.call_next("D1")
    assert again is not None
    assert again.id == second.id
    assert isinstance(events[-1], TokenCalled)
    assert events[-1].out_of_turn is False
    alloc.check_invariants()


def test_call_seats_a_present_waitlisted_patient_first(build: Build, clock: Clock) -> None:
    """`call(token_id)`: ... or a checked-in WAITLISTED one (seated as the idle-fill rule
    seats; ...), becomes IN_CONSULTATION; `TokenCalled` with `out_of_turn=True`."""
    alloc = build(WAITLIST)
    clock.now = at(9, 5)
    for patient in "ABC":
        alloc.book(patient, "D3", "D3@09")  # D3-001 .. D3-003 fill D3@09
    extra = alloc.book("W", "D3", "D3@09")  # full: present, on the waitlist
    assert state(alloc, extra.id) == (WAITLISTED, None)
    events = listen(alloc)
    called = alloc.call(extra.id)
    # Seated in the current slot (the one containing 09:05), over its capacity.
    assert (called.status, called.slot_id) == (IN_CONSULTATION, "D3@09")
    assert moves(events) == [(extra.id, None, "D3@09", MoveReason.FROM_WAITLIST)]
    assert isinstance(events[-1], TokenCalled)
    assert (events[-1].token_id, events[-1].out_of_turn) == (extra.id, True)
    assert alloc.slot("D3@09").overflow == 1
    alloc.check_invariants()


def test_call_with_nowhere_to_seat_a_waitlisted_patient_is_refused(clock: Clock) -> None:
    """`call(token_id)`: ... a checked-in WAITLISTED one (seated as the idle-fill rule seats;
    with nowhere to seat it -> `SlotClosedError`)."""
    alloc = small_day(clock, 9)
    alloc.book("A", "D9", source=ONLINE)  # D9-001 holds the only place
    waiting = alloc.book("W", "D9")  # D9-002: present, waitlisted
    alloc.close_slot("D9@09")  # A goes to the waitlist too
    clock.now = at(9, 5)
    refused(alloc, lambda: alloc.call(waiting.id), SlotClosedError, repr(waiting.id))


def away(alloc: Allocator) -> str:
    token = alloc.book("X", "D1")
    return alloc.step_out(token.id).id


def booked(alloc: Allocator) -> str:
    return alloc.book("X", "D1", source=ONLINE).id


def absent_waitlisted(alloc: Allocator) -> str:
    for patient in "ABC":
        alloc.book(patient, "D1", "D1@09", source=ONLINE)
    return alloc.book("X", "D1", "D1@09", source=ONLINE).id


def in_consultation(alloc: Allocator) -> str:
    token = alloc.book("X", "D1")
    called = alloc.call_next("D1")
    assert called is not None
    return token.id


def completed(alloc: Allocator) -> str:
    token_id = in_consultation(alloc)
    return alloc.complete(token_id).id


def cancelled(alloc: Allocator) -> str:
    return alloc.cancel(alloc.book("X", "D1").id).id


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (booked, "BOOKED"),
        (away, "AWAY"),
        (absent_waitlisted, "WAITLISTED"),
        (in_consultation, "IN_CONSULTATION"),
        (completed, "COMPLETED"),
        (cancelled, "CANCELLED"),
    ],
)
def test_call_refuses_any_other_status(
    build: Build, clock: Clock, make: Callable[[Allocator], str], status: str
) -> None:
    """`call(token_id)`: ... any other status -> `InvalidTransitionError`, nothing changed.
    [Issue 20, bad input: a wrong status raises `InvalidTransitionError` naming the token
    and its status.]"""
    alloc = build(WAITLIST)
    clock.now = at(9, 5)
    token_id = make(alloc)
    assert alloc.token(token_id).status.name == status
    refused(alloc, lambda: alloc.call(token_id), InvalidTransitionError, repr(token_id), status)


# ----------------------------------------------------------------------------- step out and back


def test_a_patient_steps_out_and_keeps_the_place(alloc: Allocator, clock: Clock) -> None:
    """`step_out(token_id)`: the patient leaves the waiting room but keeps their place (sent
    for a test, stepped out): CHECKED_IN ... -> AWAY; ... the token keeps its slot, `seq`,
    `number` and `checked_in_at`, counts in its slot's occupancy, stands in `queue()` at its
    current rank, and is skipped by `call_next` ...; `TokenSteppedOut`."""
    first = alloc.book("A", "D1")  # seq 1, present since 08:30
    out = alloc.book("B", "D1")  # seq 2
    third = alloc.book("C", "D1")  # seq 3
    clock.now = at(8, 40)
    events = listen(alloc)
    stepped = alloc.step_out(out.id)
    assert stepped.status is AWAY
    assert (stepped.slot_id, stepped.seq, stepped.number, stepped.checked_in_at) == (
        "D1@09",
        2,
        2,
        at(8, 30),
    )
    assert [(type(e), e.token) for e in events] == [(TokenSteppedOut, stepped)]  # type: ignore[attr-defined]
    assert alloc.slot("D1@09").occupancy == CAPACITY  # still holds the place
    assert ids(alloc.queue("D1@09")) == [first.id, out.id, third.id]
    assert alloc.position(out.id) == 2
    clock.now = at(9, 0)
    called = [alloc.call_next("D1") for _ in range(2)]
    assert [t.id if t else None for t in called] == [first.id, third.id]
    # Nobody present is left (B is away): the doctor finishes C and calls nobody.
    assert alloc.call_next("D1") is None
    assert alloc.token(out.id).status is AWAY
    alloc.check_invariants()


def test_stepping_out_of_a_consultation_frees_the_doctor(build: Build, clock: Clock) -> None:
    """`step_out(token_id)`: ... CHECKED_IN or IN_CONSULTATION -> AWAY; from IN_CONSULTATION
    the consultation ends and the doctor is free to call the next; the token keeps its slot,
    `seq`, `number` and `checked_in_at`, counts in its slot's occupancy, stands in `queue()`
    ..."""
    alloc = build(STRICT)
    sent = alloc.book("A", "D1")  # seq 1
    other = alloc.book("B", "D1")  # seq 2
    clock.now = at(9, 5)
    alloc.call_next("D1")  # A
    events = listen(alloc)
    stepped = alloc.step_out(sent.id)  # sent for an X-ray
    assert (stepped.status, stepped.slot_id, stepped.seq, stepped.number) == (
        AWAY,
        "D1@09",
        1,
        1,
    )
    assert stepped.checked_in_at == at(8, 30)
    assert kinds(events) == ["TokenSteppedOut"]  # not completed
    assert alloc.now_serving("D1") is None
    assert alloc.slot("D1@09").occupancy == 2
    assert ids(alloc.queue("D1@09")) == [sent.id, other.id]
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == other.id
    assert kinds(events) == ["TokenSteppedOut", "TokenCalled"]  # nobody to complete
    alloc.check_invariants()


@pytest.mark.parametrize(
    ("make", "status"),
    [
        (booked, "BOOKED"),
        (away, "AWAY"),
        (absent_waitlisted, "WAITLISTED"),
        (completed, "COMPLETED"),
        (cancelled, "CANCELLED"),
    ],
)
def test_step_out_refuses_other_statuses(
    build: Build, clock: Clock, make: Callable[[Allocator], str], status: str
) -> None:
    """`step_out(token_id)`: ... other statuses -> `InvalidTransitionError`. [Issue 20, bad
    input: naming the token and its status; every refusal changes nothing.]"""
    alloc = build(WAITLIST)
    clock.now = at(9, 5)
    token_id = make(alloc)
    refused(alloc, lambda: alloc.step_out(token_id), InvalidTransitionError, repr(token_id), status)


def test_a_present_waitlisted_patient_cannot_step_out(build: Build) -> None:
    """`step_out(token_id)`: ... CHECKED_IN or IN_CONSULTATION -> AWAY; ... other statuses ->
    `InvalidTransitionError` [a checked-in WAITLISTED token is not CHECKED_IN]."""
    alloc = build(WAITLIST)
    for patient in "ABC":
        alloc.book(patient, "D1", "D1@09")
    waiting = alloc.book("W", "D1", "D1@09")
    assert (waiting.status, waiting.checked_in_at) == (WAITLISTED, at(8, 30))
    refused(alloc, lambda: alloc.step_out(waiting.id), InvalidTransitionError, "WAITLISTED")


def test_back_at_the_same_place_even_after_the_slot_ended(alloc: Allocator, clock: Clock) -> None:
    """`check_in(token_id)` on an AWAY token: back: AWAY -> CHECKED_IN at the same place
    (same slot, `seq` and `checked_in_at`, even if the slot has ended meanwhile);
    `TokenCheckedIn`."""
    sent = alloc.book("A", "D1")  # seq 1, D1@09, present since 08:30
    clock.now = at(9, 5)
    alloc.call_next("D1")
    alloc.step_out(sent.id)  # to the laboratory
    later = alloc.book("B", "D1", "D1@10")  # seq 2
    clock.now = at(10, 20)  # D1@09 ended at 10:00
    events = listen(alloc)
    back = alloc.check_in(sent.id)
    assert (back.status, back.slot_id, back.seq, back.checked_in_at) == (
        CHECKED_IN,
        "D1@09",
        1,
        at(8, 30),
    )
    assert [(kind, e.token) for kind, e in zip(kinds(events), events, strict=True)] == [  # type: ignore[attr-defined]
        ("TokenCheckedIn", back)
    ]
    # The earliest slot with someone present is called first: A, from the ended D1@09.
    called = [alloc.call_next("D1") for _ in range(2)]
    assert [t.id if t else None for t in called] == [sent.id, later.id]
    alloc.check_invariants()


def test_now_serving_is_the_token_in_consultation(alloc: Allocator, clock: Clock) -> None:
    """`now_serving(doctor_id)` returns `Token | None`: the doctor's IN_CONSULTATION token."""
    first = alloc.book("A", "D1")
    second = alloc.book("B", "D1")
    clock.now = at(9, 5)
    assert no_change(alloc, lambda: alloc.now_serving("D1")) is None
    alloc.call_next("D1")
    serving = no_change(alloc, lambda: alloc.now_serving("D1"))
    assert serving == alloc.token(first.id)
    assert isinstance(serving, Token)
    assert serving.status is IN_CONSULTATION
    alloc.call_next("D1")
    assert alloc.now_serving("D1") == alloc.token(second.id)
    assert alloc.now_serving("D2") is None
    alloc.step_out(second.id)
    assert alloc.now_serving("D1") is None


# ----------------------------------------------------------------------------- end of day


def test_end_day_ends_every_waiting_token(build: Build, clock: Clock) -> None:
    """`end_day(doctor_id)` returns `list[Token]`: the doctor's day closes ...: BOOKED tokens
    -> NO_SHOW (`TokenNoShow`); present tokens not seen (CHECKED_IN, AWAY, checked-in
    WAITLISTED) -> UNSEEN (`TokenUnseen`), returned in standing order (slot by slot, then
    the waitlist) so the host can carry them to another day; absent waitlisted tokens ->
    CANCELLED (`TokenCancelled`); every slot of the doctor closes; then
    `DayEnded(doctor_id)`."""
    alloc = build(Policies(on_full=OnFull.WAITLIST, ordering=StrictPriority()))
    absent = alloc.book("A", "D1", "D1@09", source=ONLINE)  # D1-001, seq 1
    seen = alloc.book("B", "D1", "D1@09")  # D1-002, seq 2
    out = alloc.book("C", "D1", "D1@09")  # D1-003, seq 3, will step out
    gone = alloc.book("E", "D1", "D1@09", source=ONLINE)  # D1-004: waitlisted, absent
    here = alloc.book("F", "D1", "D1@09")  # D1-005: waitlisted, present
    walk_in = alloc.book("G", "D1", "D1@10")  # D1-006, seq 6
    paid = alloc.book("H", "D1", "D1@10", source=PAID, checked_in=True)  # D1-007, seq 7
    other = alloc.book("I", "D2", "D2@09")  # another doctor's patient
    alloc.step_out(out.id)
    clock.now = at(9, 5)
    alloc.call_next("D1")  # B
    alloc.complete(seen.id)
    clock.now = at(12, 30)
    version = alloc.version
    events = listen(alloc)
    unseen = alloc.end_day("D1")
    # Standing order: D1@09 (A absent, C away), D1@10 (H paid ahead of G), the waitlist
    # (E, F by seq).
    assert ids(unseen) == [out.id, paid.id, walk_in.id, here.id]
    assert all(token.status is UNSEEN for token in unseen)
    assert unseen == [alloc.token(token.id) for token in unseen]
    assert [(type(e).__name__, getattr(e, "token_id", None)) for e in events] == [
        ("TokenNoShow", absent.id),
        ("TokenUnseen", out.id),
        ("TokenUnseen", paid.id),
        ("TokenUnseen", walk_in.id),
        ("TokenCancelled", gone.id),
        ("TokenUnseen", here.id),
        ("DayEnded", None),
    ]
    assert {e.version for e in events} == {version + 1}
    assert alloc.version == version + 1
    ended = events[-1]
    assert isinstance(ended, DayEnded)
    assert (ended.doctor_id, ended.at) == ("D1", at(12, 30))
    assert [e.token for e in events if isinstance(e, TokenUnseen)] == unseen
    assert [alloc.token(t).status.name for t in (absent.id, gone.id, seen.id)] == [
        "NO_SHOW",
        "CANCELLED",
        "COMPLETED",
    ]
    assert [alloc.slot(f"D1@{hour}").closed for hour in ("09", "10", "11")] == [True] * 3
    assert alloc.waitlist("D1") == []
    assert alloc.queue("D1@09") == alloc.queue("D1@10") == []
    # Another doctor's day goes on.
    assert state(alloc, other.id) == (CHECKED_IN, "D2@09")
    assert not alloc.slot("D2@11").closed
    alloc.check_invariants()


def test_end_day_refuses_while_a_consultation_is_in_progress(
    alloc: Allocator, clock: Clock
) -> None:
    """`end_day(doctor_id)`: ... with a consultation in progress -> `InvalidTransitionError`."""
    patient = alloc.book("A", "D1")
    clock.now = at(9, 5)
    alloc.call_next("D1")
    refused(alloc, lambda: alloc.end_day("D1"), InvalidTransitionError, "'D1'", repr(patient.id))
    alloc.complete(patient.id)
    assert alloc.end_day("D1") == []


def test_a_day_already_ended_changes_nothing(alloc: Allocator) -> None:
    """`end_day(doctor_id)`: ... a day already ended -> no change, `[]`."""
    alloc.book("A", "D1")
    assert len(alloc.end_day("D1")) == 1
    assert no_change(alloc, lambda: alloc.end_day("D1")) == []


@pytest.mark.parametrize("why", ["paused", "unavailable"])
def test_end_day_closes_a_paused_or_unavailable_doctors_day(
    alloc: Allocator, clock: Clock, why: str
) -> None:
    """`end_day(doctor_id)`: the doctor's day closes (paused or unavailable doctors too) ...
    after `end_day`, `call_next` returns None ..., whatever else the doctor's status."""
    present = alloc.book("A", "D3")  # D3-001, checked in
    absent = alloc.book("B", "D3", source=ONLINE)  # D3-002
    if why == "paused":
        alloc.pause("D3")
        expected = {present.id: "UNSEEN", absent.id: "NO_SHOW"}
    else:
        # No other cardiologist: both go to D3's waitlist, A present, B absent.
        alloc.mark_unavailable("D3")
        assert [state(alloc, t) for t in (present.id, absent.id)] == [(WAITLISTED, None)] * 2
        expected = {present.id: "UNSEEN", absent.id: "CANCELLED"}
    unseen = alloc.end_day("D3")
    assert ids(unseen) == [present.id]
    assert {t: alloc.token(t).status.name for t in expected} == expected
    clock.now = at(10, 0)
    assert no_change(alloc, lambda: alloc.call_next("D3")) is None


def test_after_the_day_ended_nothing_is_booked_and_a_no_show_cannot_come_late(
    alloc: Allocator, clock: Clock
) -> None:
    """`check_in(token_id)` on an AWAY token: ... After the doctor's `end_day`, a late
    `check_in` of a NO_SHOW raises `SlotClosedError`. [`end_day`: ... every slot of the
    doctor closes.]"""
    absent = alloc.book("A", "D1", source=ONLINE)
    alloc.end_day("D1")
    assert alloc.token(absent.id).status is TokenStatus.NO_SHOW
    clock.now = at(9, 30)
    refused(alloc, lambda: alloc.check_in(absent.id), SlotClosedError, repr(absent.id))
    refused(alloc, lambda: alloc.book("Z", "D1", "D1@11"), SlotClosedError, "D1@11")
    refused(alloc, lambda: alloc.book("Z", "D1"), SlotClosedError, "'D1'")


# ----------------------------------------------------------------------------- cancel(reason)


def test_a_cancellation_keeps_its_reason(alloc: Allocator) -> None:
    """`cancel(token_id, reason="")` returns `Token`: as in section 3; `TokenCancelled.reason`
    keeps the reason (a str)."""
    first = alloc.book("A", "D1", source=ONLINE)
    second = alloc.book("B", "D1", source=ONLINE)
    events = listen(alloc)
    assert alloc.cancel(first.id, reason="patient called to cancel").status.name == "CANCELLED"
    alloc.cancel(second.id)
    cancellations = [e for e in events if isinstance(e, TokenCancelled)]
    assert [(e.token_id, e.reason) for e in cancellations] == [
        (first.id, "patient called to cancel"),
        (second.id, ""),
    ]


def test_a_reason_given_as_a_str_subclass_is_kept_as_a_plain_str(alloc: Allocator) -> None:
    """`TokenCancelled.reason` keeps the reason (a str). [Section 3, ids and text: strings
    as plain `str`.]"""

    class Note(str):
        pass

    token = alloc.book("A", "D1")
    events = listen(alloc)
    alloc.cancel(token.id, Note("moved to another town"))
    (cancellation,) = (e for e in events if isinstance(e, TokenCancelled))
    assert cancellation.reason == "moved to another town"
    assert type(cancellation.reason) is str


@pytest.mark.parametrize("reason", [None, 3, b"bytes", "line\nbreak", "nul\x00"])
def test_a_reason_that_is_not_plain_text_is_refused(alloc: Allocator, reason: object) -> None:
    """`cancel(token_id, reason="")`: ... the reason (a str). [Issue 20, bad input: a non-str
    reason -> `InvalidArgumentError`; section 3: every string the journal stores (...
    reasons) contains no control character; otherwise `InvalidArgumentError` naming the
    argument.]"""
    token = alloc.book("A", "D1")
    refused(
        alloc,
        lambda: alloc.cancel(token.id, reason),  # type: ignore[arg-type]
        InvalidArgumentError,
        "reason",
    )


# ----------------------------------------------------------------------------- an AWAY token


def test_an_away_token_can_be_cancelled(build: Build) -> None:
    """An AWAY token is a waiting token for every other call and stays AWAY through them: it
    can be cancelled ... [`cancel` as in section 3: frees the place and reallocates]."""
    alloc = build(WAITLIST)
    alloc.book("A", "D1", "D1@09")
    out = alloc.book("B", "D1", "D1@09")
    alloc.book("C", "D1", "D1@09")
    waiting = alloc.book("W", "D1", "D1@09")  # full: waitlisted
    alloc.step_out(out.id)
    events = listen(alloc)
    assert alloc.cancel(out.id, reason="left for home").status is TokenStatus.CANCELLED
    assert moves(events) == [(waiting.id, None, "D1@09", MoveReason.FROM_WAITLIST)]
    assert state(alloc, waiting.id) == (CHECKED_IN, "D1@09")
    alloc.check_invariants()


def test_an_away_token_can_be_rescheduled(alloc: Allocator) -> None:
    """An AWAY token ... stays AWAY through them: it can be ... rescheduled ...
    [`reschedule`: the token keeps `id`, `number`, `seq`, `checked_in_at`;
    `TokenMoved(reason=MoveReason.RESCHEDULED)`.]"""
    out = alloc.step_out(alloc.book("A", "D1").id)
    events = listen(alloc)
    moved = alloc.reschedule(out.id, "D2@10")
    assert (moved.status, moved.doctor_id, moved.slot_id) == (AWAY, "D2", "D2@10")
    assert (moved.id, moved.number, moved.seq, moved.checked_in_at) == (
        out.id,
        1,
        1,
        at(8, 30),
    )
    assert moves(events) == [(out.id, "D1@09", "D2@10", MoveReason.RESCHEDULED)]
    assert alloc.queue("D2@10") == [moved]
    back = alloc.check_in(out.id)
    assert (back.status, back.slot_id) == (CHECKED_IN, "D2@10")
    alloc.check_invariants()


def test_an_away_token_can_be_retriaged(build: Build) -> None:
    """An AWAY token ... stays AWAY through them: it can be ... re-triaged ... [`retriage`:
    it keeps `seq` and its place, and is re-ranked in its slot.]"""
    alloc = build(STRICT)
    first = alloc.book("A", "D1")
    second = alloc.book("B", "D1")
    out = alloc.step_out(alloc.book("C", "D1").id)
    assert ids(alloc.queue("D1@09")) == [first.id, second.id, out.id]
    worse = alloc.retriage(out.id, Priority.PAID)
    assert (worse.status, worse.priority, worse.seq, worse.slot_id) == (
        AWAY,
        Priority.PAID,
        3,
        "D1@09",
    )
    assert ids(alloc.queue("D1@09")) == [out.id, first.id, second.id]
    assert alloc.position(out.id) == 1
    alloc.check_invariants()


def test_mark_unavailable_moves_an_away_token(alloc: Allocator) -> None:
    """An AWAY token ... stays AWAY through them: ... `mark_unavailable` and `close_slot`
    move it."""
    out = alloc.step_out(alloc.book("A", "D1").id)
    events = listen(alloc)
    alloc.mark_unavailable("D1")
    # The earliest open slot with room of a same-department colleague.
    assert moves(events) == [(out.id, "D1@09", "D2@09", MoveReason.REASSIGNED)]
    assert state(alloc, out.id) == (AWAY, "D2@09")
    assert alloc.token(out.id).moves == 1
    assert alloc.check_in(out.id).status is CHECKED_IN
    alloc.check_invariants()


def test_close_slot_moves_an_away_token(alloc: Allocator) -> None:
    """An AWAY token ... stays AWAY through them: ... `mark_unavailable` and `close_slot`
    move it."""
    out = alloc.step_out(alloc.book("A", "D1").id)
    events = listen(alloc)
    alloc.close_slot("D1@09")
    # The doctor's later open slot with room.
    assert moves(events) == [(out.id, "D1@09", "D1@10", MoveReason.SLOT_CLOSED)]
    assert state(alloc, out.id) == (AWAY, "D1@10")
    alloc.check_invariants()


def test_an_away_token_sent_to_a_waitlist(clock: Clock) -> None:
    """An AWAY token ... `mark_unavailable` and `close_slot` move it (one sent to a waitlist
    stays AWAY with `slot_id` None, and on its return is a checked-in WAITLISTED token) ...
    An AWAY token on a waitlist is in `waitlist()` at its place, and `position()` counts it
    there. [Idle-fill calls present waitlisted patients only.]"""
    alloc = small_day(clock, 9, 10, capacity=3)
    alloc.resize("D9@10", 0)  # no room later: the closed slot's patients go to the waitlist
    first = alloc.book("A", "D9")  # D9-001, seq 1
    out = alloc.book("B", "D9")  # D9-002, seq 2
    last = alloc.book("C", "D9")  # D9-003, seq 3
    alloc.step_out(out.id)
    alloc.close_slot("D9@09")
    assert ids(alloc.waitlist("D9")) == [first.id, out.id, last.id]
    assert state(alloc, out.id) == (AWAY, None)
    assert [alloc.position(t) for t in (first.id, out.id, last.id)] == [1, 2, 3]
    clock.now = at(9, 5)
    # D9@09 is closed: the idle-fill rule seats in D9@10, and skips B, who is away.
    called = [alloc.call_next("D9") for _ in range(3)]
    assert [t.id if t else None for t in called] == [first.id, last.id, None]
    assert state(alloc, first.id) == (TokenStatus.COMPLETED, "D9@10")
    back = alloc.check_in(out.id)
    assert (back.status, back.slot_id, back.checked_in_at) == (WAITLISTED, None, at(8, 30))
    again = alloc.call_next("D9")
    assert again is not None
    assert (again.id, again.slot_id) == (out.id, "D9@10")
    alloc.check_invariants()


def test_displacement_moves_an_away_token_as_a_present_one(build: Build) -> None:
    """An AWAY token ... displacement and pull-forward treat it as a present patient who
    cannot be called yet. [`EmergencyOverride(max_overflow=k)`: past that the lowest-ranked
    non-emergency token (lowest priority, latest `seq`) is displaced to the first later slot
    of the same doctor with room.]"""
    alloc = build(Policies(emergency=EmergencyOverride(max_overflow=0), ordering=StrictPriority()))
    alloc.book("A", "D1", "D1@09")
    alloc.book("B", "D1", "D1@09")
    out = alloc.step_out(alloc.book("C", "D1", "D1@09").id)  # lowest-ranked
    events = listen(alloc)
    alloc.book("E", "D1", "D1@09", priority=Priority.EMERGENCY)
    assert moves(events) == [(out.id, "D1@09", "D1@10", MoveReason.DISPLACED)]
    moved = alloc.token(out.id)
    assert (moved.status, moved.moves, moved.checked_in_at) == (AWAY, 1, at(8, 30))
    alloc.check_invariants()


def test_pull_forward_passes_over_an_away_token(build: Build) -> None:
    """An AWAY token ... displacement and pull-forward treat it as a present patient who
    cannot be called yet. [`Reallocation`: ... then pull forward the best checked-in token
    from the doctor's later slots.]"""
    alloc = build(STRICT)
    leaving = alloc.book("A", "D1", "D1@09")
    alloc.book("B", "D1", "D1@09")
    alloc.book("C", "D1", "D1@09")
    out = alloc.step_out(alloc.book("P", "D1", "D1@10").id)  # seq 4, ranks first in D1@10
    present = alloc.book("Q", "D1", "D1@10")  # seq 5
    events = listen(alloc)
    alloc.cancel(leaving.id)
    assert moves(events) == [(present.id, "D1@10", "D1@09", MoveReason.PULLED_FORWARD)]
    assert state(alloc, out.id) == (AWAY, "D1@10")
    alloc.check_invariants()


# ----------------------------------------------------------------------------- idle-fill, closed


def test_idle_fill_skips_a_slot_closed_by_close_slot(clock: Clock) -> None:
    """Section 3, idle-fill rule: Idle-fill never seats a token into a closed slot (closed
    by `close_slot` or `end_day` ...): if the current slot is closed, it uses the doctor's
    earliest open slot that has not ended."""
    alloc = small_day(clock, 9, 10, 11)
    alloc.book("A", "D9", "D9@09", source=ONLINE)  # D9-001
    alloc.book("B", "D9", "D9@10", source=ONLINE)  # D9-002
    alloc.book("C", "D9", "D9@11", source=ONLINE)  # D9-003
    walk_in = alloc.book("W", "D9")  # D9-004: every slot full, waitlisted, present
    clock.now = at(9, 20)
    alloc.close_slot("D9@09")  # A: no later slot has room, no colleague -> the waitlist
    assert state(alloc, "D9-001") == (WAITLISTED, None)
    events = listen(alloc)
    called = alloc.call_next("D9")
    assert called is not None
    assert (called.id, called.slot_id) == (walk_in.id, "D9@10")
    assert moves(events) == [(walk_in.id, None, "D9@10", MoveReason.FROM_WAITLIST)]
    alloc.check_invariants()


def test_idle_fill_seats_in_a_slot_that_merely_ended(clock: Clock) -> None:
    """Section 3, idle-fill rule: ... (closed by `close_slot` or `end_day`; a slot that has
    merely ended is not closed for this rule) [the current slot: the one containing now,
    else the latest that has started]."""
    alloc = small_day(clock, 9, 10)
    alloc.book("A", "D9", "D9@09", source=ONLINE)
    alloc.book("B", "D9", "D9@10", source=ONLINE)
    walk_in = alloc.book("W", "D9")
    clock.now = at(11, 30)  # both slots have ended; D9@10 is the latest that started
    called = alloc.call_next("D9")
    assert called is not None
    assert (called.id, called.slot_id) == (walk_in.id, "D9@10")
    alloc.check_invariants()


def test_idle_fill_with_no_open_slot_left_calls_nobody(clock: Clock) -> None:
    """Section 3, idle-fill rule: ... if the current slot is closed, it uses the doctor's
    earliest open slot that has not ended, and with none it calls nobody (`None`)."""
    alloc = small_day(clock, 9, 10, 11)
    for hour in (9, 10, 11):
        alloc.book(f"A{hour}", "D9", f"D9@{hour:02d}", source=ONLINE)
    walk_in = alloc.book("W", "D9")  # waitlisted, present
    clock.now = at(11, 10)
    alloc.close_slot("D9@11")  # D9@09 and D9@10 have ended but are not closed
    assert no_change(alloc, lambda: alloc.call_next("D9")) is None
    assert state(alloc, walk_in.id) == (WAITLISTED, None)
    refused(alloc, lambda: alloc.call(walk_in.id), SlotClosedError, repr(walk_in.id))


# ----------------------------------------------------------------------------- unknown ids


CALLS_BY_ID: list[tuple[str, Callable[[Allocator], object], type[NotFoundError]]] = [
    ("pause", lambda a: a.pause("D404"), UnknownDoctorError),
    ("resume", lambda a: a.resume("D404"), UnknownDoctorError),
    ("now_serving", lambda a: a.now_serving("D404"), UnknownDoctorError),
    ("end_day", lambda a: a.end_day("D404"), UnknownDoctorError),
    ("call_next", lambda a: a.call_next("D404"), UnknownDoctorError),
    ("call", lambda a: a.call("D1-404"), UnknownTokenError),
    ("step_out", lambda a: a.step_out("D1-404"), UnknownTokenError),
    ("check_in", lambda a: a.check_in("D1-404"), UnknownTokenError),
    ("cancel", lambda a: a.cancel("D1-404", reason="duplicate"), UnknownTokenError),
]


@pytest.mark.parametrize(
    ("call", "error"),
    [(call, error) for _, call, error in CALLS_BY_ID],
    ids=[n for n, *_ in CALLS_BY_ID],
)
def test_an_unknown_id_raises_the_matching_not_found_error(
    alloc: Allocator, call: Callable[[Allocator], object], error: type[NotFoundError]
) -> None:
    """Every call that takes an id raises the matching `NotFoundError` for an unknown one."""
    alloc.book("A", "D1")
    alloc.pause("D2")
    refused(alloc, lambda: call(alloc), error, "404")


# ----------------------------------------------------------------------------- section 3's rules


def test_every_new_call_is_one_change_reported_after_it(alloc: Allocator, clock: Clock) -> None:
    """Every call follows section 3's rules: atomic, thread-safe, events after the change,
    `version` +1 per change. [Section 6: every event carries `version`: the allocator's
    `version` after the call that emitted it (all events of one call share it).]"""
    first = alloc.book("A", "D1")  # D1-001
    chosen = alloc.book("B", "D1")  # D1-002
    absent = alloc.book("C", "D1", source=ONLINE)  # D1-003
    clock.now = at(9, 5)
    # What a subscriber sees on delivery: the event's kind and version, the allocator's
    # version, and the status of the event's token as the allocator holds it then.
    seen: list[tuple[str, int, int, TokenStatus | None]] = []

    def watch(event: Event) -> None:
        token = getattr(event, "token", None)
        status = None if token is None else alloc.token(token.id).status
        seen.append((type(event).__name__, event.version, alloc.version, status))

    alloc.subscribe(watch)
    steps: list[tuple[Callable[[], object], list[tuple[str, TokenStatus | None]]]] = [
        (lambda: alloc.pause("D1"), [("DoctorPaused", None)]),
        (lambda: alloc.resume("D1"), [("DoctorResumed", None)]),
        (lambda: alloc.call(chosen.id), [("TokenCalled", IN_CONSULTATION)]),
        (lambda: alloc.step_out(chosen.id), [("TokenSteppedOut", AWAY)]),
        (lambda: alloc.check_in(chosen.id), [("TokenCheckedIn", CHECKED_IN)]),
        (lambda: alloc.cancel(absent.id, "rebooked"), [("TokenCancelled", TokenStatus.CANCELLED)]),
        (lambda: alloc.call_next("D1"), [("TokenCalled", IN_CONSULTATION)]),
        (lambda: alloc.complete(first.id), [("TokenCompleted", TokenStatus.COMPLETED)]),
        (lambda: alloc.end_day("D1"), [("TokenUnseen", UNSEEN), ("DayEnded", None)]),
    ]
    for call, expected in steps:
        version = alloc.version
        seen.clear()
        call()
        assert alloc.version == version + 1
        assert seen == [(kind, version + 1, version + 1, status) for kind, status in expected]
    alloc.check_invariants()


def test_concurrent_calls_change_the_floor_once(alloc: Allocator) -> None:
    """Every call follows section 3's rules: ... thread-safe ... [`pause`: a paused doctor
    -> no change; `end_day`: a day already ended -> no change, `[]`.]"""
    threads = 8
    tokens = [alloc.book(f"P{i}", "D1").id for i in range(threads)]  # 3 + 3 + 2 places
    events = listen(alloc)
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def together(work: Callable[[int], object]) -> None:
        def run(i: int) -> None:
            barrier.wait()
            results[i] = work(i)

        workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    version = alloc.version
    together(lambda i: alloc.pause("D1"))
    together(lambda i: alloc.step_out(tokens[i]))
    together(lambda i: alloc.check_in(tokens[i]))
    together(lambda i: alloc.resume("D1"))
    together(lambda i: alloc.end_day("D1"))
    assert alloc.version == version + 1 + threads + threads + 1 + 1
    assert kinds(events).count("DoctorPaused") == kinds(events).count("DoctorResumed") == 1
    assert kinds(events).count("DayEnded") == 1
    assert sorted(len(r) for r in results if isinstance(r, list)) == [0] * (threads - 1) + [threads]
    assert {alloc.token(t).status for t in tokens} == {UNSEEN}
    alloc.check_invariants()


# ----------------------------------------------------------------------------- journal, snapshot


def floor_day(clock: Clock) -> tuple[Allocator, list[Event]]:
    """A day that uses every new call, with its events from the first. It ends with D1's
    day ended (B unseen, F a no-show), D2 paused with D (D2-001) away in D2@09, and D3's
    X (D3-001) away on D3's waitlist."""
    alloc = Allocator(policies=WAITLIST, clock=clock)
    events = listen(alloc)
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in (9, 10, 11):
            alloc.add_slot(
                Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
            )
    alloc.book("A", "D1")  # D1-001
    chosen = alloc.book("B", "D1")  # D1-002
    late = alloc.book("C", "D1", source=ONLINE)  # D1-003
    alloc.book("F", "D1", "D1@10", source=ONLINE)  # D1-004, never comes
    away_in_slot = alloc.book("D", "D2")  # D2-001
    alloc.book("E", "D2", "D2@10")  # D2-002
    away_on_waitlist = alloc.book("X", "D3", "D3@11")  # D3-001
    leaving = alloc.book("Y", "D3", "D3@11")  # D3-002
    clock.now = at(9, 5)
    assert alloc.now_serving("D1") is None
    alloc.call_next("D1")  # A
    alloc.call(chosen.id)  # out of turn: A is completed
    alloc.step_out(chosen.id)  # from the consultation, to the laboratory
    alloc.check_in(late.id)
    alloc.call_next("D1")  # C
    alloc.pause("D1")
    clock.now = at(9, 20)
    alloc.complete(late.id)
    alloc.check_in(chosen.id)  # back from the laboratory
    alloc.resume("D1")
    alloc.call_next("D1")  # B
    alloc.step_out(chosen.id)  # again, for an X-ray
    alloc.check_in(chosen.id)
    alloc.step_out(away_on_waitlist.id)
    alloc.close_slot("D3@11")  # no later slot, no other cardiologist: D3's waitlist
    alloc.cancel(leaving.id, reason="went to the emergency department")
    alloc.step_out(away_in_slot.id)
    alloc.pause("D2")
    clock.now = at(12, 30)
    assert ids(alloc.end_day("D1")) == [chosen.id]
    return alloc, events


def test_a_day_using_every_new_call_replays_into_the_same_state(clock: Clock) -> None:
    """Snapshots, the journal (`event_to_dict`, `replay`, `apply`) and `check_invariants`
    cover all new state (pauses, AWAY and UNSEEN tokens, ... ended days). [Issue 20, done
    when: replay of a day that uses every new call equals the live state.]"""
    alloc, events = floor_day(clock)
    alloc.check_invariants()
    expected = alloc.snapshot()
    assert {"DoctorPaused", "DoctorResumed", "TokenSteppedOut", "TokenUnseen", "DayEnded"} <= set(
        kinds(events)
    )
    assert any(isinstance(e, TokenCalled) and e.out_of_turn for e in events)
    assert any(isinstance(e, TokenCancelled) and e.reason for e in events)
    replayed = Allocator.replay(events, policies=WAITLIST, clock=clock)
    assert replayed.snapshot() == expected
    replayed.check_invariants()
    # As a host stores them: one JSON row per event.
    rows = [json.dumps(event_to_dict(e)) for e in events]
    assert [event_from_dict(json.loads(row)) for row in rows] == events
    from_rows = Allocator.replay([json.loads(row) for row in rows], policies=WAITLIST, clock=clock)
    assert from_rows.snapshot() == expected
    # A replica that stopped at D1's pause catches up.
    paused = next(e.version for e in events if isinstance(e, DoctorPaused))
    replica = Allocator.replay(
        [e for e in events if e.version <= paused], policies=WAITLIST, clock=clock
    )
    replica.apply(events)
    assert replica.snapshot() == expected
    replica.check_invariants()


def test_a_snapshot_of_the_live_floor_round_trips(clock: Clock) -> None:
    """Snapshots ... cover all new state (pauses, AWAY and UNSEEN tokens, ... ended days).
    [Section 3: `snapshot()` / `Allocator.from_snapshot`: JSON-safe, versioned; round-trips
    exactly.]"""
    alloc, _ = floor_day(clock)
    assert [state(alloc, t) for t in ("D1-002", "D1-004", "D2-001", "D3-001")] == [
        (UNSEEN, "D1@09"),
        (TokenStatus.NO_SHOW, "D1@10"),
        (AWAY, "D2@09"),
        (AWAY, None),
    ]
    snapshot = alloc.snapshot()
    restored = Allocator.from_snapshot(
        json.loads(json.dumps(snapshot)), policies=WAITLIST, clock=clock
    )
    assert restored.snapshot() == snapshot
    restored.check_invariants()
    # Both go on alike: the same calls, the same answers, the same events.
    journals: list[list[dict[str, object]]] = []
    for day in (alloc, restored):
        events = listen(day)
        with pytest.raises(InvalidTransitionError, match="paused"):
            day.call_next("D2")
        assert day.end_day("D1") == []
        assert day.call_next("D1") is None
        with pytest.raises(SlotClosedError):
            day.check_in("D1-004")  # a no-show, after the day ended
        assert day.check_in("D2-001").status is CHECKED_IN
        assert day.check_in("D3-001").status is WAITLISTED
        # D3@11, the current slot, is closed and every other has ended: nobody is seated.
        assert day.call_next("D3") is None
        day.resume("D2")
        called = day.call_next("D2")
        assert called is not None
        assert called.id == "D2-001"
        journals.append([event_to_dict(e) for e in events])
    assert journals[0] == journals[1]
    assert restored.snapshot() == alloc.snapshot()


def test_check_invariants_sees_an_ended_day_with_an_open_slot(alloc: Allocator) -> None:
    """... `check_invariants` cover all new state (... ended days)."""
    alloc.end_day("D1")
    alloc.check_invariants()
    alloc.slot("D1@11")._closed = False
    with pytest.raises(AssertionError, match="an ended day has every slot closed"):
        alloc.check_invariants()


@pytest.mark.parametrize(
    ("step_out", "lie"), [(False, AWAY), (True, CHECKED_IN), (False, UNSEEN), (True, UNSEEN)]
)
def test_check_invariants_sees_an_away_or_unseen_status_that_lies(
    alloc: Allocator, step_out: bool, lie: TokenStatus
) -> None:
    """... `check_invariants` cover all new state (... AWAY and UNSEEN tokens ...)."""
    token = alloc.book("A", "D1")
    if step_out:
        token = alloc.step_out(token.id)
    alloc.check_invariants()
    alloc._tokens[token.id] = attrs.evolve(token, status=lie)
    with pytest.raises(AssertionError, match=r"invariant '[^']+' broken: .*D1-001"):
        alloc.check_invariants()


def test_an_away_token_stands_at_its_current_aged_rank(alloc: Allocator, clock: Clock) -> None:
    """`step_out(token_id)`: ... stands in `queue()` at its current rank. [Section 3,
    standing order: a checked-in token by its current (aged or accumulated) rank.]"""
    early = alloc.book("A", "D1")  # seq 1, STANDARD, present since 08:30
    clock.now = at(9, 5)  # 35 minutes waited: under Aging (one level per 30) FOLLOW_UP
    review = alloc.book("F", "D1", source=Source.FOLLOW_UP)  # seq 2, FOLLOW_UP, not arrived
    assert ids(alloc.queue("D1@09")) == [early.id, review.id]  # (FOLLOW_UP, 1), (FOLLOW_UP, 2)
    alloc.step_out(early.id)
    assert ids(alloc.queue("D1@09")) == [early.id, review.id]
    assert alloc.position(early.id) == 1
    assert alloc.call_next("D1") is None  # away, and the review has not arrived
    clock.now = at(9, 20)
    alloc.check_in(review.id)  # (FOLLOW_UP, 2): behind the away patient's (FOLLOW_UP, 1)
    assert ids(alloc.queue("D1@09")) == [early.id, review.id]
    alloc.check_in(early.id)  # back at the same place
    called = alloc.call_next("D1")
    assert called is not None
    assert called.id == early.id
    alloc.check_invariants()
