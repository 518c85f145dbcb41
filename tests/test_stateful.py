"""Randomized tests: the allocator against a naive reference model, and random OPD days.

``AllocatorMachine`` drives a real :class:`Allocator` (injected clock) beside ``Model``, a
deliberately naive reference written from the contract: plain lists and dicts, every view
recomputed by scanning and sorting on each read, no index and no code shared with the
library. After every step the two must agree on every token (all fields), every queue and
waitlist, every position and estimated start, and every event delivered; and a call that
raises must raise the error the model predicts and change nothing.

The property tests below run random operation lists under every policy combination and
check that no token is ever lost and that failing calls leave no trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
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
    DoctorDelayed,
    DuplicateBookingError,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    OnDelay,
    OnFull,
    OPDError,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    Slot,
    SlotClosedError,
    SlotFullError,
    SlotResized,
    Source,
    SourceQuota,
    StrictPriority,
    Token,
    TokenEvent,
    TokenMoved,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
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
    grace: timedelta = timedelta(minutes=15)
    on_delay: OnDelay = OnDelay.SHIFT
    no_show_rate: str | None = None  # Overbooking, as the decimal written
    quotas: tuple[tuple[Source, int], ...] = ()  # SourceQuota

    def limit(self, capacity: int) -> int:
        """Places for non-emergency tokens: the capacity, or the overbooked number."""
        if self.no_show_rate is None:
            return capacity
        return math.floor(capacity / (1 - Fraction(self.no_show_rate)))


COMBOS = {
    combo.name: combo
    for combo in (
        # Policies() itself: HardLimit, unbounded emergencies, Reallocation(True, 2), Aging.
        Combo("default", Policies),
        Combo("strict", lambda: Policies(ordering=StrictPriority()), ordering="strict"),
        Combo("waitlist", lambda: Policies(on_full=OnFull.WAITLIST), on_full=OnFull.WAITLIST),
        Combo("next_slot", lambda: Policies(on_full=OnFull.NEXT_SLOT), on_full=OnFull.NEXT_SLOT),
        Combo(
            "bounded",
            lambda: Policies(
                emergency=EmergencyOverride(max_overflow=1),
                reallocation=Reallocation(pull_forward=False),
            ),
            max_overflow=1,
            pull_forward=False,
        ),
        Combo(
            "accumulating",
            lambda: Policies(ordering=AccumulatingPriority(rates=RATES)),
            ordering="accumulating",
        ),
        Combo(
            "overbooking",
            lambda: Policies(capacity=Overbooking(0.25), on_full=OnFull.WAITLIST),
            on_full=OnFull.WAITLIST,
            no_show_rate="0.25",
        ),
        Combo(
            "quota",
            lambda: Policies(
                capacity=SourceQuota({Source.ONLINE: 1, Source.WALK_IN: 2}),
                on_full=OnFull.NEXT_SLOT,
                emergency=EmergencyOverride(max_overflow=1),
            ),
            on_full=OnFull.NEXT_SLOT,
            max_overflow=1,
            quotas=((Source.ONLINE, 1), (Source.WALK_IN, 2)),
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
            ),
            step=timedelta(minutes=10),
            ceiling=Priority.PAID,
            on_full=OnFull.NEXT_SLOT,
            max_overflow=0,
            max_moves=1,
            grace=timedelta(minutes=5),
            on_delay=OnDelay.SHRINK,
        ),
    )
}


# ============================================================================ the model


class Refused(Exception):
    """The model's verdict that a call must raise ``kind`` (and change nothing)."""

    def __init__(self, kind: type[OPDError], holders: Iterable[MToken] = ()) -> None:
        super().__init__(kind.__name__)
        self.kind = kind
        self.holders = list(holders)


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


@dataclass
class MDoctor:
    id: str
    consult_minutes: int
    delay_minutes: int = 0
    issued: int = 0


def rank(token: MToken) -> tuple[int, int]:
    """The contract's queue key: ``(priority, seq)``."""
    return (int(token.priority), token.seq)


@dataclass
class Model:
    """The contract, executed as naively as possible (HardLimit capacity only).

    Every operation validates first and raises :class:`Refused` before changing anything.
    """

    combo: Combo
    now: datetime = START
    doctors: dict[str, MDoctor] = field(default_factory=dict)
    slots: dict[str, MSlot] = field(default_factory=dict)
    tokens: dict[str, MToken] = field(default_factory=dict)
    seq: int = 0
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

    def open_slots(self, doctor_id: str) -> list[MSlot]:
        return [s for s in self.slots_of(doctor_id) if s.end > self.now]

    def holders(self, slot: MSlot) -> list[MToken]:
        return [t for t in self.tokens.values() if t.slot_id == slot.id and t.status in HOLDING]

    def has_room(self, slot: MSlot, source: Source | None = None) -> bool:
        """A free place under the capacity policy (and, for ``source``, under its quota)."""
        holders = self.holders(slot)
        if len(holders) >= self.combo.limit(slot.capacity):
            return False
        quota = dict(self.combo.quotas).get(source) if source is not None else None
        if quota is None:
            return True
        held = [t for t in holders if t.source is source and t.priority is not Priority.EMERGENCY]
        return len(held) < quota

    def later_with_room(self, slot: MSlot, source: Source) -> MSlot | None:
        """The doctor's first open slot after ``slot`` that has room for ``source``."""
        for other in self.open_slots(slot.doctor_id):
            if other.start > slot.start and self.has_room(other, source):
                return other
        return None

    def call_key(self, token: MToken) -> tuple[float, int]:
        """Smaller is called first, as of ``now``."""
        assert token.checked_in_at is not None
        waited = self.now - token.checked_in_at
        if self.combo.ordering == "accumulating":
            minutes = waited.total_seconds() / 60
            return (-(RATES[token.priority] * minutes), token.seq)
        level = int(token.priority)
        if self.combo.ordering == "aging" and level > self.combo.ceiling:
            steps = int(waited.total_seconds() // self.combo.step.total_seconds())
            level = max(int(self.combo.ceiling), level - steps)
        return (level, token.seq)

    def present(self, slot: MSlot) -> list[MToken]:
        arrived = [t for t in self.holders(slot) if t.status == "CHECKED_IN"]
        return sorted(arrived, key=self.call_key)

    def queue(self, slot: MSlot) -> list[MToken]:
        booked = sorted((t for t in self.holders(slot) if t.status == "BOOKED"), key=rank)
        return self.present(slot) + booked

    def waitlist(self, doctor_id: str) -> list[MToken]:
        listed = [
            t for t in self.tokens.values() if t.doctor_id == doctor_id and t.status == "WAITLISTED"
        ]
        return sorted(listed, key=rank)

    def active(self, patient_id: str, doctor_id: str) -> list[MToken]:
        return [
            t
            for t in self.tokens.values()
            if t.patient_id == patient_id and t.doctor_id == doctor_id and t.status in ACTIVE
        ]

    def position(self, token: MToken) -> int | None:
        if token.status in WAITING:
            assert token.slot_id is not None
            return [t.id for t in self.queue(self.slots[token.slot_id])].index(token.id) + 1
        if token.status == "WAITLISTED":
            return [t.id for t in self.waitlist(token.doctor_id)].index(token.id) + 1
        return None

    def estimated_start(self, token: MToken) -> datetime | None:
        position = self.position(token)
        if token.status not in WAITING or position is None:
            return None
        assert token.slot_id is not None
        slot = self.slots[token.slot_id]
        doctor = self.doctors[token.doctor_id]
        begin = max(slot.start + timedelta(minutes=doctor.delay_minutes), self.now)
        return begin + (position - 1) * timedelta(minutes=doctor.consult_minutes)

    # ---------------------------------------------------------------- changing

    def emit(self, kind: str, token: MToken, *extra: object) -> None:
        self.events.append((kind, token.id, self.now, token.status, token.slot_id, *extra))

    def move(self, token: MToken, to: MSlot | None, reason: str, *, counted: bool) -> None:
        origin = None if token.status == "WAITLISTED" else token.slot_id
        if to is None:
            token.slot_id, token.status = None, "WAITLISTED"
        else:
            token.slot_id = to.id
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
        self.move(victim, self.later_with_room(slot, victim.source), reason, counted=True)
        return True

    def contain(self, slot: MSlot, reason: str) -> None:
        bound = self.combo.max_overflow
        if bound is None:
            return
        while len(self.holders(slot)) - self.combo.limit(slot.capacity) > bound:
            if not self.displace(slot, reason):
                return

    def refill(self, slot: MSlot) -> None:
        """Fill free places: waitlist first, then pull forward; cascade to emptied slots."""
        pending = [slot]
        while pending:
            current = pending.pop()
            if current.end <= self.now:
                continue
            while self.has_room(current):
                waiting = [
                    t for t in self.waitlist(current.doctor_id) if self.has_room(current, t.source)
                ]
                if waiting:
                    self.move(waiting[0], current, "FROM_WAITLIST", counted=False)
                    continue
                if not self.combo.pull_forward:
                    break
                later = [
                    s
                    for s in self.slots_of(current.doctor_id)
                    if s.start > current.start
                    and self.present(s)
                    and self.has_room(current, self.present(s)[0].source)
                ]
                if not later:
                    break
                self.move(self.present(later[0])[0], current, "PULLED_FORWARD", counted=True)
                pending.append(later[0])

    # ---------------------------------------------------------------- operations

    def add_doctor(self, doctor_id: str, consult_minutes: int) -> None:
        if doctor_id in self.doctors:
            raise Refused(InvalidArgumentError)
        self.doctors[doctor_id] = MDoctor(doctor_id, consult_minutes)

    def add_slot(self, slot: MSlot) -> None:
        if slot.doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        if slot.id in self.slots:
            raise Refused(InvalidArgumentError)
        for other in self.slots_of(slot.doctor_id):
            if other.start < slot.end and slot.start < other.end:
                raise Refused(InvalidArgumentError)
        self.slots[slot.id] = slot
        self.refill(slot)

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
        held = self.active(patient_id, doctor_id)
        if held and not emergency:
            raise Refused(DuplicateBookingError, held)
        target = self.place_new(doctor_id, chosen, emergency, source)
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
            self.contain(target, "DISPLACED")
        return token

    def place_new(
        self, doctor_id: str, chosen: MSlot | None, emergency: bool, source: Source
    ) -> MSlot | None:
        """Where a new token goes (None: the waitlist), or refuse."""
        on_full = self.combo.on_full
        if chosen is not None:
            if chosen.end <= self.now:
                raise Refused(SlotClosedError)
            if emergency or self.has_room(chosen, source):
                return chosen
            if on_full is OnFull.REJECT:
                raise Refused(SlotFullError)
            if on_full is OnFull.WAITLIST:
                return None
            return self.later_with_room(chosen, source)
        opened = self.open_slots(doctor_id)
        if not opened:
            raise Refused(SlotClosedError)
        if emergency:
            return opened[0]
        for slot in opened:
            if self.has_room(slot, source):
                return slot
        if on_full is OnFull.REJECT:
            raise Refused(SlotFullError)
        return None

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
        held = self.active(token.patient_id, token.doctor_id)
        if held and not emergency:
            raise Refused(DuplicateBookingError, held)
        opened = self.open_slots(token.doctor_id)
        if emergency:
            target = opened[0] if opened else None
        else:
            target = next((s for s in opened if self.has_room(s, token.source)), None)
        missed = token.slot_id
        self.seq += 1
        token.seq = self.seq
        token.slot_id = None if target is None else target.id
        token.status = "WAITLISTED" if target is None else "CHECKED_IN"
        token.checked_in_at = self.now
        self.emit("TokenMoved", token, missed, token.slot_id, "LATE_ARRIVAL")
        if target is not None and emergency:
            self.contain(target, "DISPLACED")

    def call_next(self, doctor_id: str) -> MToken | None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        for token in list(self.tokens.values()):
            if token.doctor_id == doctor_id and token.status == "IN_CONSULTATION":
                self.finish(token)
        # The earliest slot with a present emergency, else the earliest with anyone present.
        slots = self.slots_of(doctor_id)
        urgent = [
            s for s in slots if any(t.priority is Priority.EMERGENCY for t in self.present(s))
        ]
        for slot in urgent or slots:
            present = self.present(slot)
            if present:
                token = present[0]
                token.status, token.called_at = "IN_CONSULTATION", self.now
                self.emit("TokenCalled", token)
                return token
        return None

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

    def delay(self, doctor_id: str, minutes: int) -> None:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        if minutes < 0:
            raise Refused(InvalidArgumentError)
        doctor = self.doctors[doctor_id]
        before = doctor.delay_minutes
        doctor.delay_minutes += minutes
        self.events.append(("DoctorDelayed", doctor_id, self.now, minutes, doctor.delay_minutes))
        if self.combo.on_delay is OnDelay.SHRINK:
            consult = doctor.consult_minutes
            lost = doctor.delay_minutes // consult - before // consult
            shrunk: list[tuple[MSlot, int]] = []
            for slot in self.open_slots(doctor_id):
                taken = min(lost, slot.capacity)
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
        old, slot.capacity = slot.capacity, capacity
        self.shrunk(slot, old, "RESIZED")
        self.refill(slot)

    def shrunk(self, slot: MSlot, old: int, reason: str) -> None:
        """Report a new capacity; move the lowest-ranked waiting tokens that no longer fit."""
        self.events.append(("SlotResized", slot.id, self.now, old, slot.capacity))
        while len(
            [t for t in self.holders(slot) if t.priority is not Priority.EMERGENCY]
        ) > self.combo.limit(slot.capacity):
            if not self.displace(slot, reason):
                break
        if any(t.priority is Priority.EMERGENCY for t in self.holders(slot)):
            self.contain(slot, reason)


# ============================================================================ observing


def event_row(event: Event) -> Row:
    """An event as the model writes it down."""
    if isinstance(event, TokenEvent):
        token = event.token
        row: Row = (type(event).__name__, token.id, event.at, token.status.name, token.slot_id)
        if isinstance(event, TokenMoved):
            row += (event.from_slot_id, event.to_slot_id, event.reason.name)
        return row
    if isinstance(event, SlotResized):
        return ("SlotResized", event.slot_id, event.at, event.old_capacity, event.capacity)
    if isinstance(event, DoctorDelayed):
        return ("DoctorDelayed", event.doctor_id, event.at, event.minutes, event.total_minutes)
    return (type(event).__name__, None, event.at)


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
        "called_at": token.called_at,
        "completed_at": token.completed_at,
    }


def ids(tokens: Iterable[Token]) -> list[str]:
    return [t.id for t in tokens]


def observe(
    alloc: Allocator, doctor_ids: Iterable[str], slot_ids: Iterable[str], counts: list[int]
) -> object:
    """Everything a failing call must leave as it was."""
    return (
        alloc.records(),
        {s: ids(alloc.queue(s)) for s in slot_ids},
        {d: ids(alloc.waitlist(d)) for d in doctor_ids},
        list(counts),
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
    ]


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


BOOKINGS = st.builds(
    Booking,
    patient=st.sampled_from(PATIENTS),
    doctor=st.integers(0, 1),
    slot=st.none() | st.integers(0, 5),
    source=st.sampled_from(Source),
    priority=st.none() | st.sampled_from(Priority),
    checked_in=st.none() | st.booleans(),
)


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

    # ---------------------------------------------------------------- plumbing

    def counts(self) -> list[int]:
        return [len(self.events), *(listener.received for listener in self.listeners)]

    def attempt(self, call: Callable[[], T], predict: Callable[[], E]) -> tuple[T, E] | None:
        """Run ``call`` and the model's ``predict`` at the same instant; they must agree.

        Returns both results on success, None when both refused (after checking that the
        refusal changed nothing).
        """
        before = observe(self.alloc, self.model.doctors, self.model.slots, self.counts())
        self.model.now = self.clock.now
        refusal: Refused | None = None
        try:
            expected = predict()
        except Refused as refused:
            refusal = refused
        if refusal is not None:
            _, error = capture(call)
            assert error is not None, f"the model predicts {refusal.kind.__name__}; call succeeded"
            assert type(error) is refusal.kind, f"expected {refusal.kind.__name__}, got {error!r}"
            if isinstance(error, DuplicateBookingError):
                held = [t.id for t in refusal.holders]
                normal = [t.id for t in refusal.holders if t.priority is not Priority.EMERGENCY]
                assert error.token_id in (normal or held), (error.token_id, held)
            after = observe(self.alloc, self.model.doctors, self.model.slots, self.counts())
            assert after == before, "a call that raised changed the allocator"
            return None
        actual, error = capture(call)
        assert error is None, f"the model predicts success, the library raised {error!r}"
        return cast(T, actual), expected

    def agree(self, actual: Token | None, expected: MToken | None) -> None:
        if expected is None:
            assert actual is None
        else:
            assert actual is not None
            assert token_row(actual) == expected.row()

    def doctor(self, index: int) -> str:
        return self.doctor_ids[index % len(self.doctor_ids)]

    def pick_slot(self, doctor_id: str, index: int) -> str:
        """The doctor's ``index``-th slot, else some slot of the day (maybe another's)."""
        own = self.model.slots_of(doctor_id)
        if index < len(own):
            return own[index].id
        every = sorted(self.model.slots)
        return every[index % len(every)]

    # ---------------------------------------------------------------- setup

    @initialize(
        layout=st.lists(
            st.tuples(
                st.integers(5, 15),  # consult minutes
                st.lists(
                    st.tuples(
                        st.integers(0, 15),  # gap before the slot, minutes
                        st.integers(20, 90),  # length, minutes
                        st.integers(0, 3),  # capacity
                    ),
                    min_size=1,
                    max_size=4,
                ),
            ),
            min_size=1,
            max_size=2,
        )
    )
    def build_day(self, layout: list[tuple[int, list[tuple[int, int, int]]]]) -> None:
        for number, (consult, slots) in enumerate(layout, start=1):
            doctor_id = f"D{number}"
            doctor = Doctor(doctor_id, f"Dr. {number}", department="OPD", consult_minutes=consult)
            assert self.attempt(
                partial(self.alloc.add_doctor, doctor),
                partial(self.model.add_doctor, doctor_id, consult),
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
        outcome = self.attempt(
            lambda: self.alloc.check_in(token), lambda: self.model.check_in(token)
        )
        if outcome:
            self.agree(*outcome)

    @rule(token=tokens)
    def check_in_again(self, token: str) -> None:
        self.check_in(token)

    @rule(doctor=st.integers(0, 1))
    def call_next(self, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        outcome = self.attempt(
            lambda: self.alloc.call_next(doctor_id), lambda: self.model.call_next(doctor_id)
        )
        assert outcome is not None
        self.agree(*outcome)

    @rule(doctor=st.integers(0, 1))
    def call_next_again(self, doctor: int) -> None:
        self.call_next(doctor)

    @rule(token=tokens)
    def complete(self, token: str) -> None:
        outcome = self.attempt(
            lambda: self.alloc.complete(token), lambda: self.model.complete(token)
        )
        if outcome:
            self.agree(*outcome)

    @rule(token=tokens)
    def cancel(self, token: str) -> None:
        outcome = self.attempt(lambda: self.alloc.cancel(token), lambda: self.model.cancel(token))
        if outcome:
            self.agree(*outcome)

    @rule(token=tokens)
    def no_show(self, token: str) -> None:
        outcome = self.attempt(lambda: self.alloc.no_show(token), lambda: self.model.no_show(token))
        if outcome:
            self.agree(*outcome)

    @rule(doctor=st.integers(0, 1), minutes=st.integers(-3, 30))
    def delay(self, doctor: int, minutes: int) -> None:
        doctor_id = self.doctor(doctor)
        self.attempt(
            lambda: self.alloc.delay(doctor_id, minutes),
            lambda: self.model.delay(doctor_id, minutes),
        )

    @rule(doctor=st.integers(0, 1), slot=st.integers(0, 5), capacity=st.integers(-1, 4))
    def resize(self, doctor: int, slot: int, capacity: int) -> None:
        slot_id = self.pick_slot(self.doctor(doctor), slot)
        self.attempt(
            lambda: self.alloc.resize(slot_id, capacity),
            lambda: self.model.resize(slot_id, capacity),
        )

    @rule(minutes=st.integers(0, 40))
    def advance(self, minutes: int) -> None:
        self.clock.now += timedelta(minutes=minutes)

    @rule(minutes=st.integers(0, 40))
    def advance_more(self, minutes: int) -> None:
        self.advance(minutes)

    @precondition(lambda self: len(self.model.slots) < 6)
    @rule(
        doctor=st.integers(0, 1),
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

    @rule(variant=st.integers(0, 13), doctor=st.integers(0, 1))
    def bad_call(self, variant: int, doctor: int) -> None:
        doctor_id = self.doctor(doctor)
        calls = bad_calls(self.alloc, doctor_id, self.model.slots_of(doctor_id)[0].id)
        kind, call = calls[variant % len(calls)]

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

    @invariant()
    def queues_and_waitlists_agree(self) -> None:
        self.model.now = self.clock.now
        for slot_id, slot in self.model.slots.items():
            assert ids(self.alloc.queue(slot_id)) == ids_of(self.model.queue(slot)), slot_id
            view = self.alloc.slot(slot_id)
            occupancy = len(self.model.holders(slot))
            assert (view.capacity, view.occupancy) == (slot.capacity, occupancy), slot_id
            assert view.free == max(0, slot.capacity - occupancy)
            assert view.overflow == max(0, occupancy - slot.capacity)
        for doctor_id in self.model.doctors:
            assert ids(self.alloc.waitlist(doctor_id)) == ids_of(self.model.waitlist(doctor_id))

    @invariant()
    def positions_and_estimates_agree(self) -> None:
        self.model.now = self.clock.now
        for token_id, token in self.model.tokens.items():
            expected = self.model.position(token)
            position, error = capture(partial(self.alloc.position, token_id))
            if expected is None:
                assert isinstance(error, InvalidTransitionError), (token_id, position)
            else:
                assert error is None, error
                assert position == expected, token_id
            estimate = self.alloc.estimated_start(token_id)
            assert estimate == self.model.estimated_start(token), token_id

    @invariant()
    def no_token_lost(self) -> None:
        problems = placement_problems(
            self.alloc, list(self.model.tokens), self.model.doctors, self.model.slots
        )
        assert not problems, problems

    @invariant()
    def events_agree(self) -> None:
        assert [event_row(e) for e in self.events] == self.model.events
        for listener in self.listeners:
            end = len(self.model.events) if listener.last is None else listener.last
            assert listener.received == end - listener.first


def ids_of(tokens: Iterable[MToken]) -> list[str]:
    return [t.id for t in tokens]


MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
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


TestAllocatorMachine = AllocatorMachine.TestCase
TestStrictMachine = StrictMachine.TestCase
TestWaitlistMachine = WaitlistMachine.TestCase
TestNextSlotMachine = NextSlotMachine.TestCase
TestBoundedEmergencyMachine = BoundedEmergencyMachine.TestCase
TestAccumulatingMachine = AccumulatingMachine.TestCase
TestTightMachine = TightMachine.TestCase
TestOverbookingMachine = OverbookingMachine.TestCase
TestQuotaMachine = QuotaMachine.TestCase
TestAllocatorMachine.settings = MACHINE_SETTINGS
TestStrictMachine.settings = MACHINE_SETTINGS
TestWaitlistMachine.settings = MACHINE_SETTINGS
TestNextSlotMachine.settings = MACHINE_SETTINGS
TestBoundedEmergencyMachine.settings = MACHINE_SETTINGS
TestAccumulatingMachine.settings = MACHINE_SETTINGS
TestTightMachine.settings = MACHINE_SETTINGS
TestOverbookingMachine.settings = MACHINE_SETTINGS
TestQuotaMachine.settings = MACHINE_SETTINGS


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
)
BAD_STEPS = st.builds(Step, kind=st.just("bad"), a=st.integers(0, 13), b=st.integers(0, 1))

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
    }
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
