"""Randomized tests: the allocator against a naive reference model, and random OPD days.

``AllocatorMachine`` drives a real :class:`Allocator` (injected clock) beside ``Model``
(``tests/model.py``), a deliberately naive reference written from the contract: plain lists
and dicts, every view recomputed by scanning and sorting on each read, no index and no code
shared with the library. The machine books, checks in, calls, completes, cancels (with and
without a reason), marks no-shows, delays, resizes, adds slots, reschedules, re-triages,
misses calls, closes slots and sends doctors away and back, and works the live floor of
section 10: pauses and resumes doctors, calls out of turn, steps patients out and back, and
ends doctors' days, under twelve policy combinations (capacity, reserved places, emergency
bound, reallocation with and without idle-fill, ordering, on_full, grace, delay handling,
duplicate rule, missed-call limit, a user's own policies). After every step the two must
agree on every token (all fields), every queue (the standing order), slot figure and
waitlist, every position and estimated start, each doctor's consultation in progress, the
version, and every event delivered (with its version); and a call that raises
must raise the error the model predicts (the duplicate's token id, the full slot's
alternatives) and change nothing, version included.

The property tests below run random operation lists under every policy combination and
check that no token is ever lost and that failing calls leave no trace.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import ClassVar, TypeVar, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from model import (
    COMBOS,
    START,
    WAITING,
    Combo,
    Model,
    MSlot,
    MToken,
    Refused,
    event_row,
    ids_of,
    token_row,
)
from opd_engine import (
    Allocator,
    Doctor,
    DuplicateBookingError,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    OPDError,
    Overbooking,
    Policies,
    Priority,
    Reserve,
    Slot,
    SlotFullError,
    Source,
    SourceQuota,
    Token,
    TokenStatus,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
    event_to_dict,
)

T = TypeVar("T")
E = TypeVar("E")

PATIENTS = ("P1", "P2", "P3", "P4", "P5")


class Clock:
    """An injected clock that tests move by hand, never backwards."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ============================================================================ observing


def ids(tokens: Iterable[Token]) -> list[str]:
    return [t.id for t in tokens]


def observe(
    alloc: Allocator, doctor_ids: Iterable[str], slot_ids: Iterable[str], counts: list[int]
) -> object:
    """Everything a failing call must leave as it was."""
    slot_ids = list(slot_ids)
    return (
        alloc.records(),
        {s: ids(alloc.queue(s)) for s in slot_ids},
        {d: ids(alloc.waitlist(d)) for d in doctor_ids},
        {
            s: (alloc.slot(s).capacity, alloc.slot(s).closed, alloc.slot(s).elastic)
            for s in slot_ids
        },
        list(counts),
        alloc.version,
        alloc.snapshot(),
    )


def placement_problems(
    alloc: Allocator, issued: list[str], doctor_ids: Iterable[str], slot_ids: Iterable[str]
) -> list[str]:
    """Tokens not retrievable, or not in exactly the one place their status says."""
    problems = []
    in_queue: dict[str, list[str]] = {}
    for slot_id in slot_ids:
        for token in alloc.queue(slot_id):
            in_queue.setdefault(token.id, []).append(slot_id)
    in_waitlist: dict[str, list[str]] = {}
    for doctor_id in doctor_ids:
        for token in alloc.waitlist(doctor_id):
            in_waitlist.setdefault(token.id, []).append(doctor_id)
    if len(alloc.records()) != len(issued):
        problems.append(f"{len(alloc.records())} records for {len(issued)} tokens issued")
    for token_id in issued:
        token = alloc.token(token_id)
        queues, waitlists = in_queue.get(token_id, []), in_waitlist.get(token_id, [])
        status = token.status.name
        if status in ("WAITLISTED", "AWAY") and token.slot_id is None:  # an AWAY one sent on
            ok = not queues and waitlists == [token.doctor_id]
        elif status in WAITING:
            ok = queues == [token.slot_id] and not waitlists
        else:
            ok = not queues and not waitlists
        if not ok:
            problems.append(f"{token_id} is {status} but in queues {queues}, waitlists {waitlists}")
    unknown = (set(in_queue) | set(in_waitlist)) - set(issued)
    if unknown:
        problems.append(f"never issued but listed: {sorted(unknown)}")
    return problems


def capture(call: Callable[[], T]) -> tuple[T | None, OPDError | None]:
    """Run ``call``; return its result, or the ``OPDError`` it raised."""
    try:
        return call(), None
    except OPDError as error:
        return None, error


def bad_calls(
    alloc: Allocator, doctor_id: str, slot_id: str
) -> list[tuple[type[OPDError], Callable[[], object]]]:
    """Calls that must fail whatever the state, with the error each must raise."""
    return [
        (UnknownDoctorError, lambda: alloc.book("P1", "NOBODY")),
        (UnknownSlotError, lambda: alloc.book("P1", doctor_id, "NOWHERE")),
        (InvalidArgumentError, lambda: alloc.book("P1", doctor_id, priority=cast(Priority, 0))),
        (InvalidArgumentError, lambda: alloc.book("", doctor_id)),
        (InvalidArgumentError, lambda: alloc.book("P1", doctor_id, source=cast(Source, "PAID"))),
        (InvalidArgumentError, lambda: alloc.book("P1", doctor_id, checked_in=cast(bool, 1))),
        (UnknownTokenError, lambda: alloc.cancel("NOBODY-001")),
        (InvalidArgumentError, lambda: alloc.check_in(cast(str, 7))),
        (UnknownTokenError, lambda: alloc.no_show("NOBODY-001")),
        (UnknownSlotError, lambda: alloc.resize("NOWHERE", 2)),
        (InvalidArgumentError, lambda: alloc.resize(slot_id, -1)),
        (InvalidArgumentError, lambda: alloc.delay(doctor_id, -5)),
        (UnknownDoctorError, lambda: alloc.call_next("NOBODY")),
        (UnknownTokenError, lambda: alloc.complete("NOBODY-001")),
        (UnknownTokenError, lambda: alloc.reschedule("NOBODY-001", slot_id)),
        (InvalidArgumentError, lambda: alloc.reschedule(cast(str, None), slot_id)),
        (UnknownTokenError, lambda: alloc.retriage("NOBODY-001", Priority.PAID)),
        (UnknownTokenError, lambda: alloc.missed_call("NOBODY-001")),
        (InvalidArgumentError, lambda: alloc.missed_call(" ")),
        (UnknownSlotError, lambda: alloc.close_slot("NOWHERE")),
        (InvalidArgumentError, lambda: alloc.close_slot(cast(str, 3))),
        (UnknownDoctorError, lambda: alloc.mark_available("NOBODY")),
        (UnknownDoctorError, lambda: alloc.mark_unavailable("NOBODY")),
        (InvalidArgumentError, lambda: alloc.mark_available("")),
        (UnknownDoctorError, lambda: alloc.pause("NOBODY")),
        (UnknownDoctorError, lambda: alloc.resume("NOBODY")),
        (InvalidArgumentError, lambda: alloc.pause(cast(str, 1))),
        (UnknownTokenError, lambda: alloc.call("NOBODY-001")),
        (UnknownTokenError, lambda: alloc.step_out("NOBODY-001")),
        (InvalidArgumentError, lambda: alloc.step_out("")),
        (UnknownDoctorError, lambda: alloc.end_day("NOBODY")),
        (UnknownDoctorError, lambda: alloc.now_serving("NOBODY")),
        (UnknownTokenError, lambda: alloc.cancel("NOBODY-001", reason="left")),
    ]


BAD_CALLS = 33  # len(bad_calls(...))
# ============================================================================ the machine


@dataclass(frozen=True)
class Booking:
    """The arguments of one ``book`` call; ``doctor`` and ``slot`` are indices."""

    patient: str
    doctor: int
    slot: int | None
    source: Source
    priority: Priority | None
    checked_in: bool | None


DOCTOR_INDEX = st.integers(0, 2)
BOOKINGS = st.builds(
    Booking,
    patient=st.sampled_from(PATIENTS),
    doctor=DOCTOR_INDEX,
    slot=st.none() | st.integers(0, 2),
    source=st.sampled_from(Source),
    priority=st.none() | st.sampled_from(Priority),
    checked_in=st.none() | st.booleans(),
)
DEPARTMENTS = ("OPD", "ENT")
# A triage level, or (None) a plain int the allocator must refuse.
TRIAGE = st.sampled_from([*Priority, None])
# A pick among the tokens in the statuses a rule is for; None: a token from the bundle.
PICK = st.none() | st.integers(0, 20)
WAITING_OR_LISTED = ("BOOKED", "CHECKED_IN", "AWAY", "WAITLISTED")
# Reasons for a cancellation; the last has a control character the allocator refuses.
REASONS = st.sampled_from(["", "patient left", "bell\x07"])


class Listener:
    """An extra subscriber that counts what it receives and may fail every time."""

    def __init__(self, failing: bool) -> None:
        self.failing = failing
        self.received = 0
        self.first = 0  # model events before it subscribed
        self.last: int | None = None  # model events when it unsubscribed
        self.unsubscribe: Callable[[], None] = lambda: None

    def __call__(self, event: Event) -> None:
        self.received += 1
        if self.failing:
            raise RuntimeError("a subscriber failed")


class AllocatorMachine(RuleBasedStateMachine):
    """A random OPD day, step by step, checked against :class:`Model` under ``combo``."""

    combo: ClassVar[Combo] = COMBOS["default"]
    tokens = Bundle[str]("tokens")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock(START)
        self.alloc = Allocator(policies=self.combo.policies(), clock=self.clock)
        self.model = Model(self.combo)
        self.events: list[Event] = []
        self.alloc.subscribe(self.events.append)
        self.listeners: list[Listener] = []
        self.doctor_ids: list[str] = []
        self.checked_events = 0  # events already compared with the model's

    # ---------------------------------------------------------------- plumbing

    def counts(self) -> list[int]:
        return [len(self.events), *(listener.received for listener in self.listeners)]

    def attempt(self, call: Callable[[], T], predict: Callable[[], E]) -> tuple[T, E] | None:
        """Run ``call`` and the model's ``predict`` at the same instant; they must agree.

        Returns both results on success, None when both refused (after checking that the
        refusal changed nothing, version included). The model refuses before changing
        anything, so the allocator is observed only when a refusal is predicted.
        """
        self.model.now = self.clock.now
        emitted = len(self.model.events)
        refusal: Refused | None = None
        try:
            expected = predict()
        except Refused as refused:
            refusal = refused
        if refusal is not None:
            self.refused(call, refusal)
            return None
        if len(self.model.events) > emitted:  # the call changed something
            self.model.version += 1
        actual, error = capture(call)
        assert error is None, f"the model predicts success, the library raised {error!r}"
        assert self.alloc.version == self.model.version, (self.alloc.version, self.model.version)
        return cast(T, actual), expected

    def refused(self, call: Callable[[], object], refusal: Refused) -> None:
        """``call`` must raise what the model predicts and change nothing."""
        before = observe(self.alloc, self.model.doctors, self.model.slots, self.counts())
        _, error = capture(call)
        assert error is not None, f"the model predicts {refusal.kind.__name__}; call succeeded"
        assert type(error) is refusal.kind, f"expected {refusal.kind.__name__}, got {error!r}"
        if isinstance(error, DuplicateBookingError):
            assert error.token_id == refusal.token_id, (error.token_id, refusal.token_id)
        if isinstance(error, SlotFullError):
            assert "is full" in str(error)
            assert error.alternatives == refusal.alternatives, (
                error.alternatives,
                refusal.alternatives,
            )
        after = observe(self.alloc, self.model.doctors, self.model.slots, self.counts())
        assert after == before, "a call that raised changed the allocator"

    def agree(self, actual: Token | None, expected: MToken | None) -> None:
        if expected is None:
            assert actual is None
        else:
            assert actual is not None
            assert token_row(actual) == expected.row()

    def run(self, call: Callable[[], Token | None], predict: Callable[[], MToken | None]) -> None:
        """``attempt`` a call that returns a token, and compare the tokens returned."""
        outcome = self.attempt(call, predict)
        if outcome:
            self.agree(*outcome)

    def doctor(self, index: int) -> str:
        return self.doctor_ids[index % len(self.doctor_ids)]

    def pick_slot(self, doctor_id: str, index: int) -> str:
        """The doctor's ``index``-th slot, else some slot of the day (maybe another's);
        a negative index names no slot."""
        if index < 0:
            return "NOWHERE"
        own = self.model.slots_of(doctor_id)
        if index < len(own):
            return own[index].id
        every = sorted(self.model.slots)
        return every[index % len(every)]

    def pick_token(self, pick: int | None, statuses: tuple[str, ...], fallback: str) -> str:
        """The ``pick``-th token in one of ``statuses`` (in the order issued), else
        ``fallback`` (a token from the bundle, in any status)."""
        matching = [t.id for t in self.model.tokens.values() if t.status in statuses]
        if pick is None or not matching:
            return fallback
        return matching[pick % len(matching)]

    # ---------------------------------------------------------------- setup

    @initialize(
        layout=st.lists(
            st.tuples(
                st.integers(5, 15),  # consult minutes
                st.sampled_from(DEPARTMENTS),
                st.lists(
                    st.tuples(
                        st.integers(0, 15),  # gap before the slot, minutes
                        st.integers(20, 90),  # length, minutes
                        st.integers(0, 3),  # capacity
                    ),
                    min_size=1,
                    max_size=3,
                ),
            ),
            min_size=1,
            max_size=3,
        )
    )
    def build_day(self, layout: list[tuple[int, str, list[tuple[int, int, int]]]]) -> None:
        for number, (consult, department, slots) in enumerate(layout, start=1):
            doctor_id = f"D{number}"
            doctor = Doctor(
                doctor_id, f"Dr. {number}", department=department, consult_minutes=consult
            )
            assert self.attempt(
                partial(self.alloc.add_doctor, doctor), partial(self.model.add_doctor, doctor)
            )
            self.doctor_ids.append(doctor_id)
            end = START
            for gap, length, capacity in slots:
                self._add_slot(doctor_id, end + timedelta(minutes=gap), length, capacity)
                end = self.model.slots_of(doctor_id)[-1].end

    def _add_slot(
        self, doctor_id: str, start: datetime, length: int, capacity: int, slot_id: str = ""
    ) -> None:
        slot_id = slot_id or f"{doctor_id}@{len(self.model.slots_of(doctor_id)) + 1}"
        end = start + timedelta(minutes=length)
        self.attempt(
            lambda: self.alloc.add_slot(Slot(slot_id, doctor_id, start, end, capacity)),
            lambda: self.model.add_slot(MSlot(slot_id, doctor_id, start, end, capacity)),
        )

    # ---------------------------------------------------------------- rules

    def _book(self, request: Booking) -> str | MultipleResults[str]:
        doctor_id = self.doctor(request.doctor)
        slot_id = None if request.slot is None else self.pick_slot(doctor_id, request.slot)
        patient, source, priority = request.patient, request.source, request.priority
        checked_in = request.checked_in
        outcome = self.attempt(
            lambda: self.alloc.book(
                patient, doctor_id, slot_id, source=source, priority=priority, checked_in=checked_in
            ),
            lambda: self.model.book(patient, doctor_id, slot_id, source, priority, checked_in),
        )
        if outcome is None:
            return multiple()
        self.agree(*outcome)
        return outcome[0].id

    # Hypothesis picks among the enabled rules uniformly, so the commonest calls of an OPD
    # day get more than one rule: booking three, checking in, calling and the clock two.
    @rule(target=tokens, request=BOOKINGS)
    def book(self, request: Booking) -> str | MultipleResults[str]:
        return self._book(request)

    @rule(target=tokens, request=BOOKINGS)
    def book_more(self, request: Booking) -> str | MultipleResults[str]:
        return self._book(request)

    @rule(target=tokens, request=BOOKINGS)
    def book_even_more(self, request: Booking) -> str | MultipleResults[str]:
        return self._book(request)

    @rule(token=tokens)
    def check_in(self, token: str) -> None:
        self.run(lambda: self.alloc.check_in(token), lambda: self.model.check_in(token))

    @rule(token=tokens, pick=st.integers(0, 20))
    def arrive(self, token: str, pick: int) -> None:
        """Check in a patient who can arrive: booked, no-show, back from stepping out, or
        waitlisted and absent."""
        can_arrive = [
            t.id
            for t in self.model.tokens.values()
            if t.status in ("BOOKED", "NO_SHOW", "AWAY")
            or (t.status == "WAITLISTED" and t.checked_in_at is None)
        ]
        self.check_in(can_arrive[pick % len(can_arrive)] if can_arrive else token)

    @rule(doctor=DOCTOR_INDEX)
    def call_next(self, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        outcome = self.attempt(
            lambda: self.alloc.call_next(doctor_id), lambda: self.model.call_next(doctor_id)
        )
        if outcome is not None:  # None: both refused (an unavailable doctor may not call)
            self.agree(*outcome)

    @rule(doctor=DOCTOR_INDEX)
    def call_next_again(self, doctor: int) -> None:
        self.call_next(doctor)

    @rule(token=tokens, pick=PICK)
    def complete(self, token: str, pick: int | None) -> None:
        token = self.pick_token(pick, ("IN_CONSULTATION",), token)
        self.run(lambda: self.alloc.complete(token), lambda: self.model.complete(token))

    @rule(token=tokens, pick=PICK, reason=REASONS)
    def cancel(self, token: str, pick: int | None, reason: str) -> None:
        token = self.pick_token(pick, WAITING_OR_LISTED, token)
        if reason:
            self.run(
                lambda: self.alloc.cancel(token, reason=reason),
                lambda: self.model.cancel(token, reason),
            )
        else:  # the default reason
            self.run(lambda: self.alloc.cancel(token), lambda: self.model.cancel(token))

    @rule(token=tokens, pick=PICK)
    def no_show(self, token: str, pick: int | None) -> None:
        token = self.pick_token(pick, ("BOOKED",), token)
        self.run(lambda: self.alloc.no_show(token), lambda: self.model.no_show(token))

    @rule(token=tokens, pick=PICK, doctor=DOCTOR_INDEX, slot=st.integers(-1, 5))
    def reschedule(self, token: str, pick: int | None, doctor: int, slot: int) -> None:
        """Move a waiting token to some slot: its own, another of its doctor's, another
        doctor's (of either department), an unknown one."""
        token = self.pick_token(pick, WAITING_OR_LISTED, token)
        slot_id = self.pick_slot(self.doctor(doctor), slot)
        self.run(
            lambda: self.alloc.reschedule(token, slot_id),
            lambda: self.model.reschedule(token, slot_id),
        )

    @rule(token=tokens, pick=PICK, priority=TRIAGE)
    def retriage(self, token: str, pick: int | None, priority: Priority | None) -> None:
        token = self.pick_token(pick, WAITING_OR_LISTED, token)
        level = cast(Priority, 0) if priority is None else priority
        self.run(
            lambda: self.alloc.retriage(token, level), lambda: self.model.retriage(token, level)
        )

    @rule(token=tokens, pick=PICK)
    def missed_call(self, token: str, pick: int | None) -> None:
        """The patient called in does not come (or, for a bundle token, any token)."""
        token = self.pick_token(pick, ("IN_CONSULTATION",), token)
        self.run(lambda: self.alloc.missed_call(token), lambda: self.model.missed_call(token))

    @rule(
        call=st.sampled_from(["close_slot", "mark_unavailable", "mark_available"]),
        doctor=DOCTOR_INDEX,
        slot=st.integers(-1, 5),
    )
    def disrupt(self, call: str, doctor: int, slot: int) -> None:
        """Close a slot (its own doctor's, another's, an unknown one), send a doctor away,
        or bring one back; one rule for the three, as each reshapes the whole day."""
        doctor_id = self.doctor(doctor)
        if call == "close_slot":
            slot_id = self.pick_slot(doctor_id, slot)
            self.attempt(
                lambda: self.alloc.close_slot(slot_id), lambda: self.model.close_slot(slot_id)
            )
        elif call == "mark_unavailable":
            self.attempt(
                lambda: self.alloc.mark_unavailable(doctor_id),
                lambda: self.model.mark_unavailable(doctor_id),
            )
        else:
            self.attempt(
                lambda: self.alloc.mark_available(doctor_id),
                lambda: self.model.mark_available(doctor_id),
            )

    # ---------------------------------------------------------------- the live floor

    @rule(call=st.sampled_from(["pause", "resume"]), doctor=DOCTOR_INDEX)
    def pause_or_resume(self, call: str, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        self.attempt(
            lambda: getattr(self.alloc, call)(doctor_id),
            lambda: getattr(self.model, call)(doctor_id),
        )

    @rule(token=tokens, pick=PICK)
    def call_out_of_turn(self, token: str, pick: int | None) -> None:
        """The desk calls a present patient (checked in, or checked in on a waitlist)."""
        present = [
            t.id
            for t in self.model.tokens.values()
            if t.status == "CHECKED_IN" or (t.status == "WAITLISTED" and t.checked_in_at)
        ]
        if pick is not None and present:
            token = present[pick % len(present)]
        self.run(lambda: self.alloc.call(token), lambda: self.model.call_out_of_turn(token))

    @rule(token=tokens, pick=PICK)
    def step_out(self, token: str, pick: int | None) -> None:
        token = self.pick_token(pick, ("CHECKED_IN", "IN_CONSULTATION"), token)
        self.run(lambda: self.alloc.step_out(token), lambda: self.model.step_out(token))

    @rule(doctor=DOCTOR_INDEX, now=st.integers(0, 7))
    def end_day(self, doctor: int, now: int) -> None:
        """End a doctor's day (one time in eight: it ends everything the doctor holds)."""
        doctor_id = self.doctor(doctor)
        if now:
            return
        outcome = self.attempt(
            lambda: self.alloc.end_day(doctor_id), lambda: self.model.end_day(doctor_id)
        )
        if outcome is not None:
            unseen, expected = outcome
            assert [token_row(t) for t in unseen] == [t.row() for t in expected]

    @rule(doctor=DOCTOR_INDEX, minutes=st.integers(-3, 30))
    def delay(self, doctor: int, minutes: int) -> None:
        doctor_id = self.doctor(doctor)
        self.attempt(
            lambda: self.alloc.delay(doctor_id, minutes),
            lambda: self.model.delay(doctor_id, minutes),
        )

    @rule(doctor=DOCTOR_INDEX, slot=st.integers(0, 5), capacity=st.integers(-1, 4))
    def resize(self, doctor: int, slot: int, capacity: int) -> None:
        slot_id = self.pick_slot(self.doctor(doctor), slot)
        self.attempt(
            lambda: self.alloc.resize(slot_id, capacity),
            lambda: self.model.resize(slot_id, capacity),
        )

    @rule(minutes=st.integers(0, 20))
    def advance(self, minutes: int) -> None:
        self.clock.now += timedelta(minutes=minutes)

    @rule(minutes=st.integers(0, 20))
    def advance_more(self, minutes: int) -> None:
        self.advance(minutes)

    @precondition(lambda self: len(self.model.slots) < 8)
    @rule(
        doctor=DOCTOR_INDEX,
        gap=st.integers(-30, 20),
        length=st.integers(10, 60),
        capacity=st.integers(0, 3),
        reuse_id=st.booleans(),
    )
    def add_slot(self, doctor: int, gap: int, length: int, capacity: int, reuse_id: bool) -> None:
        """A slot after the doctor's last one (a negative gap overlaps it), possibly already
        over, possibly under a taken id."""
        doctor_id = self.doctor(doctor)
        last = self.model.slots_of(doctor_id)[-1]
        slot_id = sorted(self.model.slots)[0] if reuse_id else ""
        self._add_slot(doctor_id, last.end + timedelta(minutes=gap), length, capacity, slot_id)

    @rule(failing=st.booleans(), index=st.none() | st.integers(0, 5))
    def subscribe(self, failing: bool, index: int | None) -> None:
        """Subscribe another listener (``index`` None), or unsubscribe one."""
        subscribed = [listener for listener in self.listeners if listener.last is None]
        if index is None or not subscribed:
            listener = Listener(failing)
            listener.first = len(self.model.events)
            listener.unsubscribe = self.alloc.subscribe(listener)
            self.listeners.append(listener)
        else:
            listener = subscribed[index % len(subscribed)]
            listener.unsubscribe()
            listener.last = len(self.model.events)

    @rule(variant=st.integers(0, BAD_CALLS - 1), doctor=DOCTOR_INDEX)
    def bad_call(self, variant: int, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        calls = bad_calls(self.alloc, doctor_id, self.model.slots_of(doctor_id)[0].id)
        assert len(calls) == BAD_CALLS
        kind, call = calls[variant]

        def refuse() -> None:
            raise Refused(kind)

        assert self.attempt(call, refuse) is None

    # ---------------------------------------------------------------- invariants

    @invariant()
    def library_invariants_hold(self) -> None:
        self.alloc.check_invariants()

    @invariant()
    def tokens_agree(self) -> None:
        assert self.alloc.records() == [t.row() for t in self.model.tokens.values()]
        assert self.alloc.version == self.model.version

    @invariant()
    def views_agree(self) -> None:
        """Every queue (the standing order), slot figure, waitlist, position and estimate."""
        model = self.model
        model.now = self.clock.now
        queues: dict[str, list[str]] = {}
        for slot_id, slot in model.slots.items():
            queues[slot_id] = ids_of(model.queue(slot))
            assert ids(self.alloc.queue(slot_id)) == queues[slot_id], slot_id
            view = self.alloc.slot(slot_id)
            occupancy = len(model.holders(slot))
            assert (view.capacity, view.occupancy) == (slot.capacity, occupancy), slot_id
            assert view.free == max(0, slot.capacity - occupancy)
            assert view.overflow == max(0, occupancy - slot.capacity)
            assert (view.closed, view.elastic) == (slot.closed, slot.elastic), slot_id
        for doctor_id in model.doctors:
            assert ids(self.alloc.waitlist(doctor_id)) == ids_of(model.waitlist(doctor_id))
            self.agree(self.alloc.now_serving(doctor_id), model.now_serving(doctor_id))
        for token_id, token in model.tokens.items():
            expected = model.position(token, queues)
            position, error = capture(partial(self.alloc.position, token_id))
            if expected is None:
                assert isinstance(error, InvalidTransitionError), (token_id, position)
            else:
                assert error is None, error
                assert position == expected, token_id
            estimate = self.alloc.estimated_start(token_id)
            reference = model.estimated_start(token, expected, queues)
            if reference is None or estimate is None:
                assert estimate is reference is None, token_id
            else:  # the same sums, in floats added in another order
                assert abs(estimate - reference) <= timedelta(milliseconds=1), token_id

    @invariant()
    def no_token_lost(self) -> None:
        problems = placement_problems(
            self.alloc, list(self.model.tokens), self.model.doctors, self.model.slots
        )
        assert not problems, problems

    @invariant()
    def events_agree(self) -> None:
        """The events delivered since the last step are the model's, version included."""
        assert len(self.events) == len(self.model.events)
        fresh = [event_row(e) for e in self.events[self.checked_events :]]
        assert fresh == self.model.events[self.checked_events :]
        self.checked_events = len(self.events)
        for listener in self.listeners:
            end = len(self.model.events) if listener.last is None else listener.last
            assert listener.received == end - listener.first

    def teardown(self) -> None:
        """DESIGN section 9: the events are a complete journal. A replica rebuilt from them
        (as JSON dicts) has the original's snapshot, under every policy combination."""
        journal = [json.loads(json.dumps(event_to_dict(e))) for e in self.events]
        replica = Allocator.replay(journal, policies=self.combo.policies(), clock=self.clock)
        assert replica.snapshot() == self.alloc.snapshot()
        assert replica.version == self.alloc.version


MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=60,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class StrictMachine(AllocatorMachine):
    combo = COMBOS["strict"]


class WaitlistMachine(AllocatorMachine):
    combo = COMBOS["waitlist"]


class NextSlotMachine(AllocatorMachine):
    combo = COMBOS["next_slot"]


class BoundedEmergencyMachine(AllocatorMachine):
    combo = COMBOS["bounded"]


class AccumulatingMachine(AllocatorMachine):
    combo = COMBOS["accumulating"]


class ReserveMachine(AllocatorMachine):
    combo = COMBOS["reserve"]


class TightMachine(AllocatorMachine):
    combo = COMBOS["tight"]


class OverbookingMachine(AllocatorMachine):
    combo = COMBOS["overbooking"]


class QuotaMachine(AllocatorMachine):
    combo = COMBOS["quota"]


class NoIdleFillMachine(AllocatorMachine):
    combo = COMBOS["no_idle_fill"]


class UserPolicyMachine(AllocatorMachine):
    combo = COMBOS["user"]


TestAllocatorMachine = AllocatorMachine.TestCase
TestStrictMachine = StrictMachine.TestCase
TestWaitlistMachine = WaitlistMachine.TestCase
TestNextSlotMachine = NextSlotMachine.TestCase
TestBoundedEmergencyMachine = BoundedEmergencyMachine.TestCase
TestAccumulatingMachine = AccumulatingMachine.TestCase
TestReserveMachine = ReserveMachine.TestCase
TestTightMachine = TightMachine.TestCase
TestOverbookingMachine = OverbookingMachine.TestCase
TestQuotaMachine = QuotaMachine.TestCase
TestNoIdleFillMachine = NoIdleFillMachine.TestCase
TestUserPolicyMachine = UserPolicyMachine.TestCase
TestAllocatorMachine.settings = MACHINE_SETTINGS
TestStrictMachine.settings = MACHINE_SETTINGS
TestWaitlistMachine.settings = MACHINE_SETTINGS
TestNextSlotMachine.settings = MACHINE_SETTINGS
TestBoundedEmergencyMachine.settings = MACHINE_SETTINGS
TestAccumulatingMachine.settings = MACHINE_SETTINGS
TestReserveMachine.settings = MACHINE_SETTINGS
TestTightMachine.settings = MACHINE_SETTINGS
TestOverbookingMachine.settings = MACHINE_SETTINGS
TestQuotaMachine.settings = MACHINE_SETTINGS
TestNoIdleFillMachine.settings = MACHINE_SETTINGS
TestUserPolicyMachine.settings = MACHINE_SETTINGS


# ============================================================================ random days


@dataclass(frozen=True)
class Step:
    """One random operation; ``a``, ``b`` and ``c`` pick patients, doctors, slots, tokens."""

    kind: str
    a: int = 0
    b: int = 0
    c: int | None = None
    source: Source = Source.WALK_IN
    priority: Priority | None = None
    checked_in: bool | None = None


DAY_DOCTORS = ("D1", "D2")
# (doctor, start offset, length) in minutes from START; D2 has a gap before its last slot.
DAY_SLOTS = (
    ("D1", 0, 30),
    ("D1", 30, 30),
    ("D1", 75, 45),
    ("D2", 0, 60),
    ("D2", 60, 20),
    ("D2", 100, 50),
)
DAY_SLOT_IDS = tuple(f"{doctor}@{offset}" for doctor, offset, _ in DAY_SLOTS)

VALID_STEPS = st.one_of(
    st.builds(
        Step,
        kind=st.just("book"),
        a=st.integers(0, len(PATIENTS) - 1),
        b=st.integers(0, 1),
        c=st.none() | st.integers(0, len(DAY_SLOTS) - 1),
        source=st.sampled_from(Source),
        priority=st.none() | st.sampled_from(Priority),
        checked_in=st.none() | st.booleans(),
    ),
    st.builds(
        Step,
        kind=st.sampled_from(["check_in", "complete", "cancel", "no_show", "step_out", "call"]),
        a=st.integers(0, 50),
    ),
    st.builds(Step, kind=st.just("call_next"), a=st.integers(0, 1)),
    st.builds(Step, kind=st.just("delay"), a=st.integers(0, 1), b=st.integers(-2, 20)),
    st.builds(
        Step, kind=st.just("resize"), a=st.integers(0, len(DAY_SLOTS) - 1), b=st.integers(-1, 5)
    ),
    st.builds(Step, kind=st.just("advance"), a=st.integers(0, 40)),
    st.builds(
        Step,
        kind=st.just("reschedule"),
        a=st.integers(0, 50),
        b=st.integers(0, len(DAY_SLOTS) - 1),
    ),
    st.builds(Step, kind=st.just("retriage"), a=st.integers(0, 50), b=st.integers(0, 3)),
    st.builds(
        Step,
        kind=st.sampled_from(
            ["missed_call", "mark_unavailable", "mark_available", "pause", "resume", "end_day"]
        ),
        a=st.integers(0, 1),
    ),
    st.builds(Step, kind=st.just("close_slot"), a=st.integers(0, len(DAY_SLOTS) - 1)),
)
BAD_STEPS = st.builds(
    Step, kind=st.just("bad"), a=st.integers(0, BAD_CALLS - 1), b=st.integers(0, 1)
)

PROPERTY_COMBOS = [
    *(pytest.param(combo.policies, id=name) for name, combo in COMBOS.items()),
    pytest.param(lambda: Policies(capacity=Overbooking(0.2)), id="overbooking_reject"),
    pytest.param(lambda: Policies(capacity=SourceQuota({Source.ONLINE: 1})), id="source_quota"),
    pytest.param(
        lambda: Policies(
            capacity=Reserve({Source.WALK_IN: 5, Source.ONLINE: 1}, release_before=timedelta(0))
        ),
        id="reserve_over_capacity",
    ),
]

PROPERTY_SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def new_day(policies: Policies, capacities: list[int]) -> tuple[Allocator, Clock, list[Event]]:
    clock = Clock(START - timedelta(minutes=10))
    alloc = Allocator(policies=policies, clock=clock)
    for doctor_id in DAY_DOCTORS:
        alloc.add_doctor(Doctor(doctor_id, f"Dr. {doctor_id}"))
    for (doctor_id, offset, length), slot_id, capacity in zip(
        DAY_SLOTS, DAY_SLOT_IDS, capacities, strict=True
    ):
        start = START + timedelta(minutes=offset)
        alloc.add_slot(Slot(slot_id, doctor_id, start, start + timedelta(minutes=length), capacity))
    events: list[Event] = []
    alloc.subscribe(events.append)
    return alloc, clock, events


def apply(alloc: Allocator, clock: Clock, step: Step, issued: list[str]) -> OPDError | None:
    """Perform ``step``; return the ``OPDError`` it raised, if any."""
    doctor_id = DAY_DOCTORS[step.b % 2] if step.kind == "book" else DAY_DOCTORS[step.a % 2]
    token_id = issued[step.a % len(issued)] if issued else "D1-001"
    if step.kind == "advance":
        clock.now += timedelta(minutes=step.a)
        return None
    if step.kind == "book":
        slot_id = None if step.c is None else DAY_SLOT_IDS[step.c]
        token, error = capture(
            lambda: alloc.book(
                PATIENTS[step.a],
                doctor_id,
                slot_id,
                source=step.source,
                priority=step.priority,
                checked_in=step.checked_in,
            )
        )
        if token is not None:
            issued.append(token.id)
        return error
    calls: dict[str, Callable[[], object]] = {
        "check_in": lambda: alloc.check_in(token_id),
        "complete": lambda: alloc.complete(token_id),
        "cancel": lambda: alloc.cancel(token_id),
        "no_show": lambda: alloc.no_show(token_id),
        "call_next": lambda: alloc.call_next(doctor_id),
        "delay": lambda: alloc.delay(doctor_id, step.b),
        "resize": lambda: alloc.resize(DAY_SLOT_IDS[step.a], step.b),
        "reschedule": lambda: alloc.reschedule(token_id, DAY_SLOT_IDS[step.b]),
        "retriage": lambda: alloc.retriage(token_id, list(Priority)[step.b]),
        "missed_call": lambda: alloc.missed_call(in_consultation),
        "close_slot": lambda: alloc.close_slot(DAY_SLOT_IDS[step.a]),
        "mark_unavailable": lambda: alloc.mark_unavailable(doctor_id),
        "mark_available": lambda: alloc.mark_available(doctor_id),
        "pause": lambda: alloc.pause(doctor_id),
        "resume": lambda: alloc.resume(doctor_id),
        "end_day": lambda: alloc.end_day(doctor_id),
        "step_out": lambda: alloc.step_out(token_id),
        "call": lambda: alloc.call(token_id),
    }
    # missed_call: the doctor's patient in consultation, if any.
    in_consultation = next(
        (
            t.id
            for t in alloc.tokens()
            if t.doctor_id == doctor_id and t.status is TokenStatus.IN_CONSULTATION
        ),
        token_id,
    )
    if step.kind == "bad":
        kind, call = bad_calls(alloc, DAY_DOCTORS[step.b], DAY_SLOT_IDS[0])[step.a]
        _, error = capture(call)
        assert type(error) is kind, f"expected {kind.__name__}, got {error!r}"
        return error
    return capture(calls[step.kind])[1]


@pytest.mark.parametrize("make_policies", PROPERTY_COMBOS)
@PROPERTY_SETTINGS
@given(
    capacities=st.lists(st.integers(0, 5), min_size=len(DAY_SLOTS), max_size=len(DAY_SLOTS)),
    steps=st.lists(VALID_STEPS, min_size=20, max_size=60),
)
def test_random_days_never_lose_a_token(
    make_policies: Callable[[], Policies], capacities: list[int], steps: list[Step]
) -> None:
    """No operation ever loses a token: after every step the invariants hold, every token
    issued is retrievable, and each is in exactly the one place its status says."""
    alloc, clock, _ = new_day(make_policies(), capacities)
    issued: list[str] = []
    for step in steps:
        apply(alloc, clock, step, issued)
        alloc.check_invariants()
        assert len(alloc.tokens()) == len(issued)
        problems = placement_problems(alloc, issued, DAY_DOCTORS, DAY_SLOT_IDS)
        assert not problems, (step, problems)


@pytest.mark.parametrize("make_policies", PROPERTY_COMBOS)
@PROPERTY_SETTINGS
@given(
    capacities=st.lists(st.integers(0, 3), min_size=len(DAY_SLOTS), max_size=len(DAY_SLOTS)),
    steps=st.lists(VALID_STEPS | BAD_STEPS, min_size=20, max_size=50),
)
def test_a_failing_call_changes_nothing(
    make_policies: Callable[[], Policies], capacities: list[int], steps: list[Step]
) -> None:
    """A call that raises changes nothing: state, counters and events are as before the
    call (records, every queue and waitlist, the snapshot, the events delivered)."""
    alloc, clock, events = new_day(make_policies(), capacities)
    issued: list[str] = []
    for step in steps:
        before = observe(alloc, DAY_DOCTORS, DAY_SLOT_IDS, [len(events)])
        error = apply(alloc, clock, step, issued)
        if error is not None:
            after = observe(alloc, DAY_DOCTORS, DAY_SLOT_IDS, [len(events)])
            assert after == before, (step, error)
