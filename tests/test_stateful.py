"""Randomized tests: the allocator against a naive reference model, and random OPD days.

``AllocatorMachine`` drives a real :class:`Allocator` (injected clock) beside ``Model``, a
deliberately naive reference written from the contract: plain lists and dicts, every view
recomputed by scanning and sorting on each read, no index and no code shared with the
library. The machine books, checks in, calls, completes, cancels, marks no-shows, delays,
resizes, adds slots, reschedules, re-triages, misses calls, closes slots and sends doctors
away and back, under ten policy combinations (capacity, emergency bound, reallocation with
and without idle-fill, ordering, on_full, grace, delay handling, duplicate rule, missed-call
limit). After every step the two must agree on every token (all fields), every queue (the
standing order), slot figure and waitlist, every position and estimated start, the version,
and every event delivered (with its version); and a call that raises must raise the error
the model predicts (the duplicate's token id, the full slot's alternatives) and change
nothing, version included.

The property tests below run random operation lists under every policy combination and
check that no token is ever lost and that failing calls leave no trace.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
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

from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorUnavailable,
    DuplicateBookingError,
    Duplicates,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    OnDelay,
    OnFull,
    OPDError,
    Overbooking,
    PlacesGranted,
    Policies,
    Priority,
    Reallocation,
    Slot,
    SlotAdded,
    SlotClosed,
    SlotClosedError,
    SlotFullError,
    SlotResized,
    Source,
    SourceQuota,
    StrictPriority,
    Token,
    TokenEvent,
    TokenMoved,
    TokenRetriaged,
    TokenStatus,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
    event_to_dict,
)

T = TypeVar("T")
E = TypeVar("E")

START = datetime(2026, 11, 25, 9, 0)
PATIENTS = ("P1", "P2", "P3", "P4", "P5")
# Explicit rates, so the model does not rely on the library's defaults.
RATES = {
    Priority.EMERGENCY: 8.0,
    Priority.PAID: 4.0,
    Priority.FOLLOW_UP: 2.0,
    Priority.STANDARD: 1.0,
}
DEFAULT_PRIORITY = {
    Source.ONLINE: Priority.STANDARD,
    Source.WALK_IN: Priority.STANDARD,
    Source.PAID: Priority.PAID,
    Source.FOLLOW_UP: Priority.FOLLOW_UP,
}

# Statuses (by name) as the contract groups them.
HOLDING = ("BOOKED", "CHECKED_IN", "IN_CONSULTATION", "COMPLETED")  # occupy a place
WAITING = ("BOOKED", "CHECKED_IN")  # in a slot's queue
ACTIVE = ("BOOKED", "CHECKED_IN", "WAITLISTED", "IN_CONSULTATION")  # count for duplicates

# An event as comparable plain data: kind, subject id, at, then kind-specific fields.
Row = tuple[object, ...]


class Clock:
    """An injected clock that tests move by hand, never backwards."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ============================================================================ policies


@dataclass(frozen=True)
class Combo:
    """One policy combination: the library's ``Policies`` and the model's reading of them."""

    name: str
    policies: Callable[[], Policies]
    ordering: str = "aging"  # "strict", "aging" or "accumulating"
    step: timedelta = timedelta(minutes=30)
    ceiling: Priority = Priority.FOLLOW_UP
    on_full: OnFull = OnFull.REJECT
    max_overflow: int | None = None
    pull_forward: bool = True
    max_moves: int = 2
    fill_idle: bool = True
    grace: timedelta = timedelta(minutes=15)
    on_delay: OnDelay = OnDelay.SHIFT
    no_show_rate: str | None = None  # Overbooking, as the decimal written
    quotas: tuple[tuple[Source, int], ...] = ()  # SourceQuota
    duplicates: Duplicates = Duplicates.PER_DOCTOR
    max_missed_calls: int = 2

    def limit(self, capacity: int) -> int:
        """Places for non-emergency tokens: the capacity, or the overbooked number."""
        if self.no_show_rate is None:
            return capacity
        return math.floor(capacity / (1 - Fraction(self.no_show_rate)))


class OwnHardLimit:
    """A user's capacity policy: the hard limit, written by hand (the allocator checks its
    answers and records an undo log, as for any policy of the user's own)."""

    def limit(self, capacity: int) -> int:
        return capacity

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        return slot.occupancy < slot.capacity  # as HardLimit: emergencies' places count


class OwnOverflow:
    """A user's emergency policy: at most one extra place."""

    def overflow_limit(self, slot: Slot) -> int | None:
        return 1


class OwnReallocation:
    """A user's reallocation policy: the default, written by hand."""

    pull_forward = True
    max_moves = 2
    fill_idle = True


class OwnStrict:
    """A user's ordering: strict priority, written by hand (not lexicographic to the slot's
    fast paths, so positions are counted by walking the standing order)."""

    lexicographic = True

    def level(self, token: Token, now: datetime) -> int:
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return None

    def key(self, token: Token) -> int:
        return token.seq

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return 0


COMBOS = {
    combo.name: combo
    for combo in (
        # Policies() itself: HardLimit, unbounded emergencies, Reallocation(True, 2, True),
        # Aging, one active token per doctor, two missed calls.
        Combo("default", Policies),
        Combo(
            "strict",
            lambda: Policies(
                ordering=StrictPriority(), duplicates=Duplicates.PER_DEPARTMENT, max_missed_calls=1
            ),
            ordering="strict",
            duplicates=Duplicates.PER_DEPARTMENT,
            max_missed_calls=1,
        ),
        Combo(
            "waitlist",
            lambda: Policies(
                on_full=OnFull.WAITLIST, duplicates=Duplicates.ONE, max_missed_calls=3
            ),
            on_full=OnFull.WAITLIST,
            duplicates=Duplicates.ONE,
            max_missed_calls=3,
        ),
        Combo(
            "next_slot",
            lambda: Policies(on_full=OnFull.NEXT_SLOT, duplicates=Duplicates.PER_DEPARTMENT),
            on_full=OnFull.NEXT_SLOT,
            duplicates=Duplicates.PER_DEPARTMENT,
        ),
        Combo(
            "bounded",
            lambda: Policies(
                emergency=EmergencyOverride(max_overflow=1),
                reallocation=Reallocation(pull_forward=False),
                duplicates=Duplicates.ONE,
                max_missed_calls=1,
            ),
            max_overflow=1,
            pull_forward=False,
            duplicates=Duplicates.ONE,
            max_missed_calls=1,
        ),
        Combo(
            "accumulating",
            lambda: Policies(ordering=AccumulatingPriority(rates=RATES)),
            ordering="accumulating",
        ),
        Combo(
            "overbooking",
            lambda: Policies(
                capacity=Overbooking(0.25),
                on_full=OnFull.WAITLIST,
                duplicates=Duplicates.PER_DEPARTMENT,
            ),
            on_full=OnFull.WAITLIST,
            no_show_rate="0.25",
            duplicates=Duplicates.PER_DEPARTMENT,
        ),
        Combo(
            "quota",
            lambda: Policies(
                capacity=SourceQuota({Source.ONLINE: 1, Source.WALK_IN: 2}),
                on_full=OnFull.NEXT_SLOT,
                emergency=EmergencyOverride(max_overflow=1),
                duplicates=Duplicates.ONE,
                max_missed_calls=1,
            ),
            on_full=OnFull.NEXT_SLOT,
            max_overflow=1,
            quotas=((Source.ONLINE, 1), (Source.WALK_IN, 2)),
            duplicates=Duplicates.ONE,
            max_missed_calls=1,
        ),
        Combo(
            "tight",
            lambda: Policies(
                emergency=EmergencyOverride(max_overflow=0),
                reallocation=Reallocation(max_moves=1),
                ordering=Aging(step=timedelta(minutes=10), ceiling=Priority.PAID),
                on_full=OnFull.NEXT_SLOT,
                no_show_grace=timedelta(minutes=5),
                on_delay=OnDelay.SHRINK,
                max_missed_calls=1,
            ),
            step=timedelta(minutes=10),
            ceiling=Priority.PAID,
            on_full=OnFull.NEXT_SLOT,
            max_overflow=0,
            max_moves=1,
            grace=timedelta(minutes=5),
            on_delay=OnDelay.SHRINK,
            max_missed_calls=1,
        ),
        Combo(
            "user",
            lambda: Policies(
                capacity=OwnHardLimit(),
                emergency=OwnOverflow(),
                reallocation=OwnReallocation(),
                ordering=OwnStrict(),
                on_full=OnFull.WAITLIST,
            ),
            ordering="strict",
            max_overflow=1,
            on_full=OnFull.WAITLIST,
        ),
        Combo(
            "no_idle_fill",
            lambda: Policies(
                reallocation=Reallocation(fill_idle=False),
                duplicates=Duplicates.PER_DEPARTMENT,
                max_missed_calls=3,
            ),
            fill_idle=False,
            duplicates=Duplicates.PER_DEPARTMENT,
            max_missed_calls=3,
        ),
    )
}


# ============================================================================ the model


class Refused(Exception):
    """The model's verdict that a call must raise ``kind`` (and change nothing); for
    ``DuplicateBookingError`` the token it names, for ``SlotFullError`` its alternatives."""

    def __init__(
        self,
        kind: type[OPDError],
        token_id: str | None = None,
        alternatives: tuple[str, ...] | None = None,
    ) -> None:
        super().__init__(kind.__name__)
        self.kind = kind
        self.token_id = token_id
        self.alternatives = alternatives


@dataclass
class MToken:
    id: str
    patient_id: str
    doctor_id: str
    slot_id: str | None
    priority: Priority
    source: Source
    seq: int
    number: int
    status: str
    booked_at: datetime
    checked_in_at: datetime | None = None
    moves: int = 0
    missed_calls: int = 0
    called_at: datetime | None = None
    completed_at: datetime | None = None

    def row(self) -> dict[str, object]:
        """The row ``Allocator.records()`` should show for this token."""
        return {
            "id": self.id,
            "patient_id": self.patient_id,
            "doctor_id": self.doctor_id,
            "slot_id": self.slot_id,
            "priority": self.priority.name,
            "source": self.source.name,
            "seq": self.seq,
            "number": self.number,
            "status": self.status,
            "booked_at": self.booked_at,
            "checked_in_at": self.checked_in_at,
            "moves": self.moves,
            "missed_calls": self.missed_calls,
            "called_at": self.called_at,
            "completed_at": self.completed_at,
        }


@dataclass
class MSlot:
    id: str
    doctor_id: str
    start: datetime
    end: datetime
    capacity: int
    closed: bool = False
    elastic: int = 0  # places granted past the limit: idle-fill, a lowered emergency


@dataclass
class MDoctor:
    id: str
    name: str
    department: str
    consult_minutes: int
    delay_minutes: int = 0
    issued: int = 0
    available: bool = True


def rank(token: MToken) -> tuple[int, int]:
    """The contract's queue key: ``(priority, seq)``."""
    return (int(token.priority), token.seq)


@dataclass
class Model:
    """The contract, executed as naively as possible.

    Every operation validates first and raises :class:`Refused` before changing anything.
    Events are rows ``(kind, version, at, *fields)``; ``version`` counts the calls that
    changed something (the machine bumps it after each one that emitted an event).
    """

    combo: Combo
    now: datetime = START
    doctors: dict[str, MDoctor] = field(default_factory=dict)
    slots: dict[str, MSlot] = field(default_factory=dict)
    tokens: dict[str, MToken] = field(default_factory=dict)
    seq: int = 0
    version: int = 0
    events: list[Row] = field(default_factory=list)

    # ---------------------------------------------------------------- reading

    def token(self, token_id: str) -> MToken:
        if token_id not in self.tokens:
            raise Refused(UnknownTokenError)
        return self.tokens[token_id]

    def slots_of(self, doctor_id: str) -> list[MSlot]:
        return sorted(
            (s for s in self.slots.values() if s.doctor_id == doctor_id), key=lambda s: s.start
        )

    def is_open(self, slot: MSlot) -> bool:
        """Takes bookings: not ended, not closed, its doctor available."""
        return self.doctors[slot.doctor_id].available and not slot.closed and slot.end > self.now

    def open_slots(self, doctor_id: str, after: MSlot | None = None) -> list[MSlot]:
        return [
            s
            for s in self.slots_of(doctor_id)
            if self.is_open(s) and (after is None or s.start > after.start)
        ]

    def holders(self, slot: MSlot) -> list[MToken]:
        return [t for t in self.tokens.values() if t.slot_id == slot.id and t.status in HOLDING]

    def normal(self, slot: MSlot) -> int:
        """Non-emergency tokens holding a place."""
        return len([t for t in self.holders(slot) if t.priority is not Priority.EMERGENCY])

    def room(self, slot: MSlot) -> bool:
        """A free place under the capacity policy's limit."""
        return len(self.holders(slot)) < self.combo.limit(slot.capacity)

    def admits(self, slot: MSlot, source: Source) -> bool:
        """A free place, and the source under its quota."""
        if not self.room(slot):
            return False
        quota = dict(self.combo.quotas).get(source)
        if quota is None:
            return True
        held = [
            t
            for t in self.holders(slot)
            if t.source is source and t.priority is not Priority.EMERGENCY
        ]
        return len(held) < quota

    def first_with_room(
        self, doctor_id: str, source: Source, after: MSlot | None = None
    ) -> MSlot | None:
        return next((s for s in self.open_slots(doctor_id, after) if self.admits(s, source)), None)

    def level(self, token: MToken) -> int:
        """A checked-in token's level as of ``now``: aged, or its priority."""
        assert token.checked_in_at is not None
        level = int(token.priority)
        if self.combo.ordering == "aging" and level > self.combo.ceiling:
            waited = self.now - token.checked_in_at
            steps = int(waited.total_seconds() // self.combo.step.total_seconds())
            level = max(int(self.combo.ceiling), level - steps)
        return level

    def score(self, token: MToken) -> float:
        """Accumulated priority: rate times minutes waited since check-in."""
        assert token.checked_in_at is not None
        return RATES[token.priority] * ((self.now - token.checked_in_at).total_seconds() / 60)

    def present(self, slot: MSlot) -> list[MToken]:
        """The slot's checked-in tokens in the order the ordering calls them."""
        arrived = [t for t in self.holders(slot) if t.status == "CHECKED_IN"]
        if self.combo.ordering != "accumulating":
            return sorted(arrived, key=lambda t: (self.level(t), t.seq))
        classes = {
            level: sorted(
                (t for t in arrived if t.priority == level),
                key=lambda t: (t.checked_in_at, t.seq),
            )
            for level in sorted({int(t.priority) for t in arrived})
        }
        called: list[MToken] = []
        while any(classes.values()):
            heads = [members[0] for members in classes.values() if members]
            best = min(heads, key=lambda t: (-self.score(t), t.seq))
            called.append(best)
            classes[int(best.priority)].remove(best)
        return called

    def queue(self, slot: MSlot) -> list[MToken]:
        """The standing order: the call order merged with the booked tokens by comparing the
        two heads' ``(level, seq)`` (a booked token's level is its triaged priority)."""
        called = self.present(slot)
        booked = sorted((t for t in self.holders(slot) if t.status == "BOOKED"), key=rank)
        merged: list[MToken] = []
        while called and booked:
            head = called[0]
            level = (
                int(head.priority) if self.combo.ordering == "accumulating" else self.level(head)
            )
            if (level, head.seq) < rank(booked[0]):
                merged.append(called.pop(0))
            else:
                merged.append(booked.pop(0))
        return merged + called + booked

    def waitlist(self, doctor_id: str) -> list[MToken]:
        listed = [
            t for t in self.tokens.values() if t.doctor_id == doctor_id and t.status == "WAITLISTED"
        ]
        return sorted(listed, key=rank)

    def duplicate(self, patient_id: str, doctor_id: str, exclude: str | None) -> MToken | None:
        """The patient's active token the duplicate rule counts against ``doctor_id``: a
        non-emergency one first, then the earliest."""
        rule = self.combo.duplicates
        department = self.doctors[doctor_id].department
        held = [
            t
            for t in self.tokens.values()
            if t.patient_id == patient_id
            and t.status in ACTIVE
            and t.id != exclude
            and (
                rule is Duplicates.ONE
                or (rule is Duplicates.PER_DOCTOR and t.doctor_id == doctor_id)
                or (
                    rule is Duplicates.PER_DEPARTMENT
                    and self.doctors[t.doctor_id].department == department
                )
            )
        ]
        return min(held, key=lambda t: (t.priority is Priority.EMERGENCY, t.seq), default=None)

    def refuse_duplicate(self, patient_id: str, doctor_id: str, exclude: str | None) -> None:
        held = self.duplicate(patient_id, doctor_id, exclude)
        if held is not None:
            raise Refused(DuplicateBookingError, token_id=held.id)

    def colleagues(self, doctor_id: str) -> list[MDoctor]:
        """Other available doctors of the same department, in the order added."""
        department = self.doctors[doctor_id].department
        return [
            d
            for d in self.doctors.values()
            if d.id != doctor_id and d.available and d.department == department
        ]

    def alternatives(
        self,
        doctor_id: str,
        after: MSlot | None,
        patient_id: str,
        exclude: str | None,
        source: Source,
    ) -> tuple[str, ...]:
        """Section 5: the doctor's later open slots that admit, then the department's
        (start order, then doctor id), at most 5; never the slot the token already holds."""
        held = None if exclude is None else self.tokens[exclude].slot_id  # not where it is
        own = [
            s.id
            for s in self.open_slots(doctor_id, after)
            if s.id != held and self.admits(s, source)
        ]
        others = sorted(
            (s.start, d.id, s.id)
            for d in self.colleagues(doctor_id)
            if self.duplicate(patient_id, d.id, exclude) is None
            for s in self.open_slots(d.id)
            if s.id != held and self.admits(s, source)
        )
        return tuple([*own, *(slot_id for _, _, slot_id in others)][:5])

    def check_bookable(self, slot: MSlot) -> None:
        if not self.is_open(slot):
            raise Refused(SlotClosedError)

    def position(self, token: MToken, queues: dict[str, list[str]]) -> int | None:
        if token.status in WAITING:
            assert token.slot_id is not None
            return queues[token.slot_id].index(token.id) + 1
        if token.status == "WAITLISTED":
            return [t.id for t in self.waitlist(token.doctor_id)].index(token.id) + 1
        return None

    def estimated_start(self, token: MToken, position: int | None) -> datetime | None:
        if token.status not in WAITING or position is None:
            return None
        assert token.slot_id is not None
        slot = self.slots[token.slot_id]
        doctor = self.doctors[token.doctor_id]
        begin = max(slot.start + timedelta(minutes=doctor.delay_minutes), self.now)
        return begin + (position - 1) * timedelta(minutes=doctor.consult_minutes)

    # ---------------------------------------------------------------- changing

    def event(self, kind: str, *fields: object) -> None:
        self.events.append((kind, self.version + 1, self.now, *fields))

    def emit(self, kind: str, token: MToken, *extra: object) -> None:
        self.event(kind, *token.row().values(), *extra)

    def grant(self, slot: MSlot, elastic: int) -> None:
        """Grant places past the limit, up to ``elastic`` in all (``PlacesGranted``)."""
        if elastic > slot.elastic:
            slot.elastic = elastic
            self.event("PlacesGranted", slot.id, elastic)

    def move(
        self,
        token: MToken,
        to: MSlot | None,
        reason: str,
        *,
        counted: bool,
        doctor_id: str | None = None,
    ) -> None:
        """Move a waiting or waitlisted token to ``to`` (None: ``doctor_id``'s waitlist,
        by default its own doctor's)."""
        origin = None if token.status == "WAITLISTED" else token.slot_id
        if to is None:
            token.doctor_id = doctor_id or token.doctor_id
            token.slot_id, token.status = None, "WAITLISTED"
        else:
            token.doctor_id, token.slot_id = to.doctor_id, to.id
            token.status = "BOOKED" if token.checked_in_at is None else "CHECKED_IN"
        if counted:
            token.moves += 1
        self.emit("TokenMoved", token, origin, token.slot_id, reason)

    def displace(self, slot: MSlot, reason: str) -> bool:
        """Move the lowest-ranked waiting non-emergency onward; False if there is none."""
        candidates = sorted(
            (
                t
                for t in self.holders(slot)
                if t.status in WAITING and t.priority is not Priority.EMERGENCY
            ),
            key=rank,
            reverse=True,
        )
        if not candidates:
            return False
        unprotected = [t for t in candidates if t.moves < self.combo.max_moves]
        victim = unprotected[0] if unprotected else candidates[0]
        onward = self.first_with_room(slot.doctor_id, victim.source, after=slot)
        self.move(victim, onward, reason, counted=True)
        return True

    def contain(self, slot: MSlot, reason: str = "DISPLACED") -> None:
        bound = self.combo.max_overflow
        if bound is None:
            return
        while len(self.holders(slot)) - self.combo.limit(slot.capacity) > bound:
            if not self.displace(slot, reason):
                return

    def refill(self, slot: MSlot, keep: str | None = None) -> None:
        """Fill free places: waitlist first, then pull forward (never ``keep``); cascade to
        emptied slots. Nothing while the doctor is unavailable."""
        if not self.doctors[slot.doctor_id].available:
            return
        pending = [slot]
        while pending:
            current = pending.pop()
            if current.end <= self.now or current.closed:
                continue
            while self.room(current):
                waiting = [
                    t for t in self.waitlist(current.doctor_id) if self.admits(current, t.source)
                ]
                if waiting:
                    self.move(waiting[0], current, "FROM_WAITLIST", counted=False)
                    continue
                if not self.combo.pull_forward:
                    break
                pulled = None
                for later in self.slots_of(current.doctor_id):
                    present = self.present(later) if later.start > current.start else []
                    if (
                        present
                        and present[0].id != keep
                        and self.admits(current, present[0].source)
                    ):
                        pulled = (later, present[0])
                        break
                if pulled is None:
                    break
                self.move(pulled[1], current, "PULLED_FORWARD", counted=True)
                pending.append(pulled[0])

    def destination(self, token: MToken) -> tuple[str, MSlot | None] | None:
        """Where a token leaving its doctor goes: the colleagues' earliest open slot with
        room (ties by the order added), else the shortest colleague waitlist, else None."""
        emergency = token.priority is Priority.EMERGENCY
        candidates = [
            d
            for d in self.colleagues(token.doctor_id)
            if emergency  # DESIGN section 4: emergencies are exempt from the duplicate rule
            or self.duplicate(token.patient_id, d.id, token.id) is None
        ]
        best: tuple[datetime, int, MSlot] | None = None
        for order, colleague in enumerate(candidates):
            for slot in self.open_slots(colleague.id):
                if emergency or self.admits(slot, token.source):
                    if best is None or (slot.start, order) < best[:2]:
                        best = (slot.start, order, slot)
                    break
        if best is not None:
            return best[2].doctor_id, best[2]
        if candidates:
            return min(candidates, key=lambda d: len(self.waitlist(d.id))).id, None
        return None

    def reassign(self, token: MToken, reason: str) -> None:
        """``mark_unavailable``'s move of one token."""
        found = self.destination(token)
        if found is None:
            if token.status != "WAITLISTED":
                self.move(token, None, reason, counted=True)
            return
        doctor_id, slot = found
        self.move(token, slot, reason, counted=True, doctor_id=doctor_id)
        if slot is not None and token.priority is Priority.EMERGENCY:
            self.contain(slot)

    # ---------------------------------------------------------------- setup

    def add_doctor(self, doctor: Doctor) -> None:
        if doctor.id in self.doctors:
            raise Refused(InvalidArgumentError)
        self.doctors[doctor.id] = MDoctor(
            doctor.id, doctor.name, doctor.department, doctor.consult_minutes
        )
        self.event("DoctorAdded", doctor.id, doctor.name, doctor.department, doctor.consult_minutes)

    def add_slot(self, slot: MSlot) -> None:
        if slot.doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        if slot.id in self.slots:
            raise Refused(InvalidArgumentError)
        for other in self.slots_of(slot.doctor_id):
            if other.start < slot.end and slot.start < other.end:
                raise Refused(InvalidArgumentError)
        self.slots[slot.id] = slot
        self.event("SlotAdded", slot.id, slot.doctor_id, slot.start, slot.end, slot.capacity)
        self.refill(slot)

    # ---------------------------------------------------------------- the day

    def book(
        self,
        patient_id: str,
        doctor_id: str,
        slot_id: str | None,
        source: Source,
        priority: Priority | None,
        checked_in: bool | None,
    ) -> MToken:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        level = DEFAULT_PRIORITY[source] if priority is None else priority
        emergency = level is Priority.EMERGENCY
        arrived = (emergency or source is Source.WALK_IN) if checked_in is None else checked_in
        chosen = None
        if slot_id is not None:
            if slot_id not in self.slots:
                raise Refused(UnknownSlotError)
            chosen = self.slots[slot_id]
            if chosen.doctor_id != doctor_id:
                raise Refused(InvalidArgumentError)
        if not emergency:
            self.refuse_duplicate(patient_id, doctor_id, None)
        target = self.place_new(patient_id, doctor_id, chosen, emergency, source)
        doctor = self.doctors[doctor_id]
        self.seq += 1
        doctor.issued += 1
        token = MToken(
            id=f"{doctor_id}-{doctor.issued:03d}",
            patient_id=patient_id,
            doctor_id=doctor_id,
            slot_id=None if target is None else target.id,
            priority=level,
            source=source,
            seq=self.seq,
            number=doctor.issued,
            status="WAITLISTED" if target is None else "CHECKED_IN" if arrived else "BOOKED",
            booked_at=self.now,
            checked_in_at=self.now if arrived else None,
        )
        self.tokens[token.id] = token
        self.emit("TokenWaitlisted" if target is None else "TokenBooked", token)
        if target is not None and emergency:
            self.contain(target)
        return token

    def place_new(
        self,
        patient_id: str,
        doctor_id: str,
        chosen: MSlot | None,
        emergency: bool,
        source: Source,
    ) -> MSlot | None:
        """Where a new token goes (None: the waitlist), or refuse."""
        on_full = self.combo.on_full
        if chosen is not None:
            self.check_bookable(chosen)
            if emergency or self.admits(chosen, source):
                return chosen
            if on_full is OnFull.REJECT:
                alternatives = self.alternatives(doctor_id, chosen, patient_id, None, source)
                raise Refused(SlotFullError, alternatives=alternatives)
            if on_full is OnFull.WAITLIST:
                return None
            return self.first_with_room(doctor_id, source, after=chosen)
        if not self.doctors[doctor_id].available:
            raise Refused(SlotClosedError)
        opened = self.open_slots(doctor_id)
        if not opened:
            raise Refused(SlotClosedError)
        if emergency:
            return opened[0]
        target = self.first_with_room(doctor_id, source)
        if target is None and on_full is OnFull.REJECT:
            alternatives = self.alternatives(doctor_id, None, patient_id, None, source)
            raise Refused(SlotFullError, alternatives=alternatives)
        return target

    def check_in(self, token_id: str) -> MToken:
        token = self.token(token_id)
        if token.status == "BOOKED":
            token.status, token.checked_in_at = "CHECKED_IN", self.now
        elif token.status == "WAITLISTED" and token.checked_in_at is None:
            token.checked_in_at = self.now
        elif token.status == "NO_SHOW":
            self.late_arrival(token)
        else:
            raise Refused(InvalidTransitionError)
        self.emit("TokenCheckedIn", token)
        return token

    def late_arrival(self, token: MToken) -> None:
        emergency = token.priority is Priority.EMERGENCY
        if not emergency:
            self.refuse_duplicate(token.patient_id, token.doctor_id, token.id)
        doctor_id, target = token.doctor_id, None
        if not self.doctors[token.doctor_id].available:
            doctor_id, target = self.destination(token) or (token.doctor_id, None)
        elif emergency:
            target = next(iter(self.open_slots(token.doctor_id)), None)
        else:
            target = self.first_with_room(token.doctor_id, token.source)
        missed = token.slot_id
        self.seq += 1
        token.seq = self.seq
        token.doctor_id = doctor_id
        token.slot_id = None if target is None else target.id
        token.status = "WAITLISTED" if target is None else "CHECKED_IN"
        token.checked_in_at = self.now
        self.emit("TokenMoved", token, missed, token.slot_id, "LATE_ARRIVAL")
        if target is not None and emergency:
            self.contain(target)

    def call_next(self, doctor_id: str) -> MToken | None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        for token in list(self.tokens.values()):
            if token.doctor_id == doctor_id and token.status == "IN_CONSULTATION":
                self.finish(token)
        slots = self.slots_of(doctor_id)
        seat = self.seat(doctor_id)
        # A present emergency first, wherever it waits, by (slot start, seq): one on the
        # waitlist as if it waited in the slot the idle-fill rule seats it in (even with
        # the rule off), and passed over if no slot can seat it.
        emergencies: list[tuple[datetime, int, MSlot | None]] = [
            (slot.start, t.seq, slot)
            for slot in slots
            for t in self.present(slot)
            if t.priority is Priority.EMERGENCY
        ]
        waiting: dict[int, MToken] = {}
        if seat is not None:
            for t in self.waitlist(doctor_id):
                if t.priority is Priority.EMERGENCY and t.checked_in_at is not None:
                    waiting[t.seq] = t
                    emergencies.append((seat.start, t.seq, None))
        if emergencies:
            _, seq, found = min(emergencies, key=lambda e: e[:2])
            if found is None:
                assert seat is not None
                self.move(waiting[seq], seat, "FROM_WAITLIST", counted=False)
                return self.call(waiting[seq])
            # The slot's ordering calls (under AccumulatingPriority, by rate within it).
            return self.call(self.present(found)[0])
        # Else the earliest slot with anyone present.
        for slot in slots:
            present = self.present(slot)
            if present:
                return self.call(present[0])
        # The idle-fill rule: the first present waitlisted patient, seated in the current
        # slot (never a closed one), over its capacity if need be.
        arrived = [t for t in self.waitlist(doctor_id) if t.checked_in_at is not None]
        if not self.combo.fill_idle or not arrived or seat is None:
            return None
        token = arrived[0]
        if token.priority is not Priority.EMERGENCY and not self.admits(seat, token.source):
            self.grant(seat, seat.elastic + 1)
        self.move(token, seat, "FROM_WAITLIST", counted=False)
        return self.call(token)

    def seat(self, doctor_id: str) -> MSlot | None:
        """Where the idle-fill rule seats: the current slot (the one containing now, else
        the latest that has started, else the next to start); if that one is closed, the
        earliest slot not closed that has not ended; None if there is none."""
        slots = self.slots_of(doctor_id)
        if not slots:
            return None
        started = [s for s in slots if s.start <= self.now]
        current = started[-1] if started else slots[0]
        if not current.closed:
            return current
        return next((s for s in slots if not s.closed and s.end > self.now), None)

    def call(self, token: MToken) -> MToken:
        token.status, token.called_at = "IN_CONSULTATION", self.now
        self.emit("TokenCalled", token)
        return token

    def finish(self, token: MToken) -> None:
        token.status, token.completed_at = "COMPLETED", self.now
        self.emit("TokenCompleted", token)

    def complete(self, token_id: str) -> MToken:
        token = self.token(token_id)
        if token.status != "IN_CONSULTATION":
            raise Refused(InvalidTransitionError)
        self.finish(token)
        return token

    def cancel(self, token_id: str) -> MToken:
        token = self.token(token_id)
        if token.status not in ("BOOKED", "CHECKED_IN", "WAITLISTED"):
            raise Refused(InvalidTransitionError)
        freed = token.slot_id if token.status in WAITING else None
        token.status = "CANCELLED"
        self.emit("TokenCancelled", token)
        if freed is not None:
            self.refill(self.slots[freed])
        return token

    def no_show(self, token_id: str) -> MToken:
        token = self.token(token_id)
        if token.status != "BOOKED":
            raise Refused(InvalidTransitionError)
        assert token.slot_id is not None
        slot = self.slots[token.slot_id]
        if self.now < slot.start + self.combo.grace:
            raise Refused(InvalidTransitionError)
        token.status = "NO_SHOW"
        self.emit("TokenNoShow", token)
        self.refill(slot)
        return token

    # ---------------------------------------------------------------- the front desk

    def reschedule(self, token_id: str, slot_id: str) -> MToken:
        token = self.token(token_id)
        if slot_id not in self.slots:
            raise Refused(UnknownSlotError)
        target = self.slots[slot_id]
        if token.status not in ("BOOKED", "CHECKED_IN", "WAITLISTED"):
            raise Refused(InvalidTransitionError)
        if token.slot_id == target.id:
            return token
        self.check_bookable(target)
        emergency = token.priority is Priority.EMERGENCY
        if not emergency:
            self.refuse_duplicate(token.patient_id, target.doctor_id, token.id)
            if not self.admits(target, token.source):
                alternatives = self.alternatives(
                    target.doctor_id, target, token.patient_id, token.id, token.source
                )
                raise Refused(SlotFullError, alternatives=alternatives)
        origin = self.slots[token.slot_id] if token.slot_id and token.status in WAITING else None
        self.move(token, target, "RESCHEDULED", counted=False)
        if emergency:
            self.contain(target)
        if origin is not None:
            self.refill(origin, keep=token.id)
        return token

    def retriage(self, token_id: str, priority: Priority) -> MToken:
        token = self.token(token_id)
        if not isinstance(priority, Priority):
            raise Refused(InvalidArgumentError)
        if token.status not in ("BOOKED", "CHECKED_IN", "WAITLISTED"):
            raise Refused(InvalidTransitionError)
        if priority is token.priority:
            return token
        if token.priority is Priority.EMERGENCY:  # no longer exempt from the duplicate rule
            self.refuse_duplicate(token.patient_id, token.doctor_id, token.id)
        old, token.priority = token.priority, priority
        self.emit("TokenRetriaged", token, old.name)
        slot = self.slots[token.slot_id] if token.slot_id and token.status in WAITING else None
        emergency = priority is Priority.EMERGENCY
        if slot is None and emergency:
            seat = next(iter(self.open_slots(token.doctor_id)), None)
            if seat is not None:
                self.move(token, seat, "FROM_WAITLIST", counted=False)
                slot = seat
        if slot is not None:
            if emergency:
                self.contain(slot)
            elif old is Priority.EMERGENCY:
                self.grant(slot, self.normal(slot) - self.combo.limit(slot.capacity))
        return token

    def missed_call(self, token_id: str) -> MToken:
        token = self.token(token_id)
        if token.status != "IN_CONSULTATION":
            raise Refused(InvalidTransitionError)
        assert token.slot_id is not None
        token.missed_calls += 1
        if token.missed_calls >= self.combo.max_missed_calls:
            token.status = "NO_SHOW"
            self.emit("TokenNoShow", token)
            self.refill(self.slots[token.slot_id])
        else:
            token.status, token.checked_in_at, token.called_at = "BOOKED", None, None
            self.emit("TokenCallMissed", token)
            if token.priority is not Priority.EMERGENCY:  # its place, even in a shrunk slot
                slot = self.slots[token.slot_id]
                self.grant(slot, self.normal(slot) - self.combo.limit(slot.capacity))
        return token

    # ---------------------------------------------------------------- disruptions

    def delay(self, doctor_id: str, minutes: int) -> None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        doctor = self.doctors[doctor_id]
        if minutes < 0 or doctor.delay_minutes + minutes > 24 * 60:
            raise Refused(InvalidArgumentError)
        if minutes == 0:
            return
        before = doctor.delay_minutes
        doctor.delay_minutes += minutes
        self.event("DoctorDelayed", doctor_id, minutes, doctor.delay_minutes)
        if self.combo.on_delay is OnDelay.SHRINK and doctor.available:
            consult = doctor.consult_minutes
            lost = doctor.delay_minutes // consult - before // consult
            shrunk: list[tuple[MSlot, int]] = []
            # Every slot that has not ended, closed or not.
            for slot in self.slots_of(doctor_id):
                taken = min(lost, slot.capacity) if slot.end > self.now else 0
                if taken:
                    shrunk.append((slot, slot.capacity))
                    slot.capacity -= taken
                    lost -= taken
            for slot, old in shrunk:
                self.shrunk(slot, old, "DELAYED")

    def resize(self, slot_id: str, capacity: int) -> None:
        if slot_id not in self.slots:
            raise Refused(UnknownSlotError)
        if capacity < 0:
            raise Refused(InvalidArgumentError)
        slot = self.slots[slot_id]
        if capacity == slot.capacity:
            return
        old, slot.capacity = slot.capacity, capacity
        self.shrunk(slot, old, "RESIZED")
        self.refill(slot)

    def shrunk(self, slot: MSlot, old: int, reason: str) -> None:
        """Report a new capacity; move the lowest-ranked waiting tokens that no longer fit."""
        self.event("SlotResized", slot.id, old, slot.capacity)
        while len(
            [t for t in self.holders(slot) if t.priority is not Priority.EMERGENCY]
        ) > self.combo.limit(slot.capacity):
            if not self.displace(slot, reason):
                break
        if any(t.priority is Priority.EMERGENCY for t in self.holders(slot)):
            self.contain(slot, reason)

    def mark_unavailable(self, doctor_id: str) -> None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        doctor = self.doctors[doctor_id]
        if not doctor.available:
            return
        doctor.available = False
        self.event("DoctorUnavailable", doctor_id)
        # Standing order: each slot's queue, slots in start order (ended ones too), then
        # the waitlist; all read before anyone moves.
        leaving = [t for s in self.slots_of(doctor_id) for t in self.queue(s)]
        for token in leaving + self.waitlist(doctor_id):
            self.reassign(token, "REASSIGNED")

    def mark_available(self, doctor_id: str) -> None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        doctor = self.doctors[doctor_id]
        if doctor.available:
            return
        doctor.available = True
        self.event("DoctorAvailable", doctor_id)
        for slot in self.open_slots(doctor_id):
            self.refill(slot)

    def close_slot(self, slot_id: str) -> None:
        if slot_id not in self.slots:
            raise Refused(UnknownSlotError)
        slot = self.slots[slot_id]
        if slot.closed:
            return
        slot.closed = True
        self.event("SlotClosed", slot_id)
        for token in self.queue(slot):
            if token.priority is Priority.EMERGENCY:
                # A later open slot, else the doctor's current one (never a waitlist while
                # an open slot can take it).
                opened = self.open_slots(slot.doctor_id)
                later = [s for s in opened if s.start > slot.start]
                onward: MSlot | None = (later or opened)[0] if opened else None
            else:
                onward = self.first_with_room(slot.doctor_id, token.source, after=slot)
            if onward is None:
                self.reassign(token, "SLOT_CLOSED")
                continue
            self.move(token, onward, "SLOT_CLOSED", counted=True)
            if token.priority is Priority.EMERGENCY:
                self.contain(onward)


# ============================================================================ observing


def event_row(event: Event) -> Row:
    """An event as the model writes it down: kind, version, at, then its fields."""
    head: Row = (type(event).__name__, event.version, event.at)
    if isinstance(event, TokenEvent):
        row = head + tuple(token_row(event.token).values())
        if isinstance(event, TokenMoved):
            row += (event.from_slot_id, event.to_slot_id, event.reason.name)
        elif isinstance(event, TokenRetriaged):
            row += (event.old_priority.name,)
        return row
    if isinstance(event, SlotResized):
        return (*head, event.slot_id, event.old_capacity, event.capacity)
    if isinstance(event, DoctorDelayed):
        return (*head, event.doctor_id, event.minutes, event.total_minutes)
    if isinstance(event, DoctorUnavailable | DoctorAvailable):
        return (*head, event.doctor_id)
    if isinstance(event, SlotClosed):
        return (*head, event.slot_id)
    if isinstance(event, PlacesGranted):
        return (*head, event.slot_id, event.elastic)
    if isinstance(event, DoctorAdded):
        doctor = event.doctor
        return (*head, doctor.id, doctor.name, doctor.department, doctor.consult_minutes)
    if isinstance(event, SlotAdded):
        return (*head, event.slot_id, event.doctor_id, event.start, event.end, event.capacity)
    raise AssertionError(f"an event the model does not know: {event!r}")


def token_row(token: Token) -> dict[str, object]:
    """A returned token in the shape of a ``records()`` row."""
    return {
        "id": token.id,
        "patient_id": token.patient_id,
        "doctor_id": token.doctor_id,
        "slot_id": token.slot_id,
        "priority": token.priority.name,
        "source": token.source.name,
        "seq": token.seq,
        "number": token.number,
        "status": token.status.name,
        "booked_at": token.booked_at,
        "checked_in_at": token.checked_in_at,
        "moves": token.moves,
        "missed_calls": token.missed_calls,
        "called_at": token.called_at,
        "completed_at": token.completed_at,
    }


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
        if status in WAITING:
            ok = queues == [token.slot_id] and not waitlists
        elif status == "WAITLISTED":
            ok = not queues and waitlists == [token.doctor_id]
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
    ]


BAD_CALLS = 24  # len(bad_calls(...))
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
WAITING_OR_LISTED = ("BOOKED", "CHECKED_IN", "WAITLISTED")


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
        """Check in a patient who can arrive: booked, no-show or waitlisted and absent."""
        can_arrive = [
            t.id
            for t in self.model.tokens.values()
            if t.status in ("BOOKED", "NO_SHOW")
            or (t.status == "WAITLISTED" and t.checked_in_at is None)
        ]
        self.check_in(can_arrive[pick % len(can_arrive)] if can_arrive else token)

    @rule(doctor=DOCTOR_INDEX)
    def call_next(self, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        outcome = self.attempt(
            lambda: self.alloc.call_next(doctor_id), lambda: self.model.call_next(doctor_id)
        )
        assert outcome is not None
        self.agree(*outcome)

    @rule(doctor=DOCTOR_INDEX)
    def call_next_again(self, doctor: int) -> None:
        self.call_next(doctor)

    @rule(token=tokens, pick=PICK)
    def complete(self, token: str, pick: int | None) -> None:
        token = self.pick_token(pick, ("IN_CONSULTATION",), token)
        self.run(lambda: self.alloc.complete(token), lambda: self.model.complete(token))

    @rule(token=tokens, pick=PICK)
    def cancel(self, token: str, pick: int | None) -> None:
        token = self.pick_token(pick, WAITING_OR_LISTED, token)
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
        for token_id, token in model.tokens.items():
            expected = model.position(token, queues)
            position, error = capture(partial(self.alloc.position, token_id))
            if expected is None:
                assert isinstance(error, InvalidTransitionError), (token_id, position)
            else:
                assert error is None, error
                assert position == expected, token_id
            estimate = self.alloc.estimated_start(token_id)
            assert estimate == model.estimated_start(token, expected), token_id

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


def ids_of(tokens: Iterable[MToken]) -> list[str]:
    return [t.id for t in tokens]


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
        kind=st.sampled_from(["check_in", "complete", "cancel", "no_show"]),
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
        kind=st.sampled_from(["missed_call", "mark_unavailable", "mark_available"]),
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
