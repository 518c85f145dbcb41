"""The reference model: the executable statement of DESIGN.md section 3's rules and of the
live floor of section 10.

``Model`` is the contract written as naively as possible: plain lists and dicts, every view
recomputed by scanning and sorting on each read, no index and no code shared with the
library. Each method that carries out a rule quotes it from DESIGN.md section 3 or 10 (or
the section it refers to). ``tests/test_stateful.py`` runs it beside a real ``Allocator`` and
requires the two to agree after every step: every token, queue, waitlist, position,
estimated start, slot figure, event and refusal.

``Combo`` is one policy combination: the library's ``Policies`` and the model's reading of
them, so the model never relies on the library's defaults. ``token_row`` and ``event_row``
write what the library returns in the model's terms, for comparison.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction

from opd_engine import (
    AccumulatingPriority,
    Aging,
    DayEnded,
    Doctor,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorPaused,
    DoctorResumed,
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
    Reserve,
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
    TokenCalled,
    TokenCancelled,
    TokenEvent,
    TokenMoved,
    TokenRetriaged,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)

START = datetime(2026, 11, 25, 9, 0)
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
# DESIGN.md section 2, ``occupancy``: "tokens holding a place: booked, checked in, away, in
# consultation, completed".
HOLDING = ("BOOKED", "CHECKED_IN", "AWAY", "IN_CONSULTATION", "COMPLETED")
# Section 3, ``queue(slot_id)``: "waiting tokens (BOOKED, CHECKED_IN and AWAY)"; an AWAY token
# sent on to a waitlist (``slot_id`` None) waits there instead (section 10).
WAITING = ("BOOKED", "CHECKED_IN", "AWAY")
# Not yet ended: count for duplicates (section 2: UNSEEN is terminal, AWAY is not).
ACTIVE = ("BOOKED", "CHECKED_IN", "AWAY", "WAITLISTED", "IN_CONSULTATION")
# Section 10: "An AWAY token is a waiting token for every other call": cancel, reschedule,
# retriage.
MOVABLE = ("BOOKED", "CHECKED_IN", "AWAY", "WAITLISTED")

# An event as comparable plain data: kind, subject id, at, then kind-specific fields.
Row = tuple[object, ...]


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
    reserve: tuple[tuple[Source, int], ...] = ()  # Reserve
    release_before: timedelta = timedelta(minutes=30)  # Reserve
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
            "reserve",
            lambda: Policies(
                capacity=Reserve(
                    {Source.WALK_IN: 2, Source.PAID: 1}, release_before=timedelta(minutes=10)
                ),
                on_full=OnFull.WAITLIST,
                emergency=EmergencyOverride(max_overflow=1),
                duplicates=Duplicates.PER_DEPARTMENT,
            ),
            on_full=OnFull.WAITLIST,
            max_overflow=1,
            reserve=((Source.WALK_IN, 2), (Source.PAID, 1)),
            release_before=timedelta(minutes=10),
            duplicates=Duplicates.PER_DEPARTMENT,
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
    paused_at: datetime | None = None  # since ``pause``, until ``resume``
    ended: bool = False  # ``end_day``


def rank(token: MToken) -> tuple[int, int]:
    """The contract's queue key: ``(priority, seq)``."""
    return (int(token.priority), token.seq)


def listed_here(token: MToken) -> bool:
    """On its doctor's waitlist: WAITLISTED, or AWAY with no slot (section 10: one sent to a
    waitlist "stays AWAY with ``slot_id`` None")."""
    return token.slot_id is None and token.status in ("WAITLISTED", "AWAY")


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
        """A free place, the source under its quota, and no place kept for another channel."""
        if not self.room(slot):
            return False
        if not self.reserve_admits(slot, source):
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

    def reserve_admits(self, slot: MSlot, source: Source) -> bool:
        """DESIGN.md section 10, **Reserved places**: "the channel's own tokens in the slot use
        its reserve first; another channel's token is admitted only while the slot's occupancy
        stays below capacity minus the unused reserve, before ``slot.start - release_before``;
        from that instant on (inclusive), any channel may take any place." Places beyond the
        capacity are cut in ``Source``'s declared order (the library's documented rule)."""
        if not self.combo.reserve or self.now >= slot.start - self.combo.release_before:
            return True
        wanted = dict(self.combo.reserve)
        kept: dict[Source, int] = {}
        left = slot.capacity
        for channel in Source:
            kept[channel] = min(wanted.get(channel, 0), left)
            left -= kept[channel]
        held = {
            channel: len(
                [
                    t
                    for t in self.holders(slot)
                    if t.source is channel and t.priority is not Priority.EMERGENCY
                ]
            )
            for channel in Source
        }
        if held[source] < kept[source]:
            return True
        unused = sum(max(0, kept[channel] - held[channel]) for channel in Source)
        return len(self.holders(slot)) < slot.capacity - unused

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
        return self.in_call_order([t for t in self.holders(slot) if t.status == "CHECKED_IN"])

    def in_call_order(self, arrived: list[MToken]) -> list[MToken]:
        """``arrived`` (checked-in, or away, tokens) in the order the ordering would call them."""
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
        """The standing order: the call order, the away tokens in the order they would be
        called if present, and the booked tokens, merged by comparing the heads' ``(level,
        seq)`` (a booked token's level is its triaged priority).

        DESIGN.md section 3, the standing order: "A slot's standing order ranks all its waiting
        tokens as the ordering policy ranks them at ``clock()``: a checked-in token by its current
        (aged or accumulated) rank, a BOOKED token that has not arrived by its triaged priority
        (only checked-in tokens age), ties by ``seq``." Section 10, ``step_out``: an AWAY token
        "stands in ``queue()`` at its current rank" and "is skipped by ``call_next``": it is
        ranked as a checked-in token is (it goes on aging), and never called.
        """
        accumulating = self.combo.ordering == "accumulating"

        def key(token: MToken) -> tuple[int, int]:
            if token.status == "BOOKED" or accumulating:
                return rank(token)
            return (self.level(token), token.seq)

        streams = [
            self.present(slot),
            self.in_call_order([t for t in self.holders(slot) if t.status == "AWAY"]),
            sorted((t for t in self.holders(slot) if t.status == "BOOKED"), key=rank),
        ]
        merged: list[MToken] = []
        while any(streams):
            live = [stream for stream in streams if stream]
            first = min(live, key=lambda stream: key(stream[0]))
            merged.append(first.pop(0))
        return merged

    def waitlist(self, doctor_id: str) -> list[MToken]:
        """DESIGN.md section 3, ``waitlist(doctor_id)``: "waitlisted tokens in order". Section
        10: "An AWAY token on a waitlist is in ``waitlist()`` at its place"."""
        listed = [t for t in self.tokens.values() if t.doctor_id == doctor_id and listed_here(t)]
        return sorted(listed, key=rank)

    def listed_present(self, doctor_id: str) -> list[MToken]:
        """The waitlist's present patients, in order: checked-in WAITLISTED tokens (an AWAY
        one is out of the waiting room: section 10, "on its return is a checked-in WAITLISTED
        token")."""
        return [
            t
            for t in self.waitlist(doctor_id)
            if t.status == "WAITLISTED" and t.checked_in_at is not None
        ]

    def duplicate(self, patient_id: str, doctor_id: str, exclude: str | None) -> MToken | None:
        """The patient's active token the duplicate rule counts against ``doctor_id``: a
        non-emergency one first, then the earliest.

        DESIGN.md section 3, ``book``: "A patient holds at most one active token per doctor (by
        default; ``Policies.duplicates`` widens it): a second booking raises
        ``DuplicateBookingError`` carrying the existing token's id (emergencies are exempt)."
        """
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
        """Other available doctors of the same department, in the order added; never one
        whose day has ended (section 10, ``end_day``: "the doctor's day closes")."""
        department = self.doctors[doctor_id].department
        return [
            d
            for d in self.doctors.values()
            if d.id != doctor_id and d.available and not d.ended and d.department == department
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
        """DESIGN.md section 3, ``book``: "A slot that has ended, or whose doctor is unavailable,
        raises ``SlotClosedError``."
        """
        if not self.is_open(slot):
            raise Refused(SlotClosedError)

    def position(self, token: MToken, queues: dict[str, list[str]]) -> int | None:
        """DESIGN.md section 3, ``position(token_id)``: "1-based place in its slot's standing order
        (``queue()``) or in its waitlist"
        """
        if token.status in WAITING and not listed_here(token):
            assert token.slot_id is not None
            return queues[token.slot_id].index(token.id) + 1
        if listed_here(token):
            # Section 10: "An AWAY token on a waitlist is in ``waitlist()`` at its place, and
            # ``position()`` counts it there."
            return [t.id for t in self.waitlist(token.doctor_id)].index(token.id) + 1
        return None

    def learned_minutes(self, doctor_id: str) -> float:
        """DESIGN.md section 10, **Estimates**: "The consultation length is learned from the
        doctor's consultations completed today (from ``called_at`` to ``completed_at``),
        starting at ``Doctor.consult_minutes`` and moving towards what is observed as
        consultations accrue": the doctor's length counts as three consultations (the
        library's documented choice), each one completed as one."""
        lengths = [
            max(0.0, (t.completed_at - t.called_at).total_seconds() / 60)
            for t in self.tokens.values()
            if t.doctor_id == doctor_id
            and t.status == "COMPLETED"
            and t.called_at is not None
            and t.completed_at is not None
        ]
        prior = self.doctors[doctor_id].consult_minutes
        return (3 * prior + sum(lengths)) / (3 + len(lengths))

    def estimated_start(
        self, token: MToken, position: int | None, queues: dict[str, list[str]]
    ) -> datetime | None:
        """DESIGN.md section 3, ``estimated_start(token_id)``: "``estimate(token_id).likely``
        (section 10); for a non-emergency token, with nothing learned, no consultation in progress
        and nobody ahead from another slot, that is ``max(slot.start + delay, now) + (position - 1)
        * consult_minutes``; None where ``estimate`` is None". Section 10: "the consultation in
        progress counts only for what remains of it; a delay ... and the slot's start all push
        the estimate later" -- written out as the library documents its time line: the doctor
        is free when the consultation in progress ends (at least a quarter of a length from
        now while it runs over), present emergencies first, then each earlier slot's waiting
        patients from that slot's start + delay; a waitlisted patient in the first gap before
        a slot's start (idle-fill), else after the slots.
        """
        if token.status not in MOVABLE or position is None:
            return None
        doctor_id = token.doctor_id
        doctor = self.doctors[doctor_id]
        length = self.learned_minutes(doctor_id)
        step = timedelta(minutes=length)
        delay = timedelta(minutes=doctor.delay_minutes)
        free = self.now
        started = any(
            t.doctor_id == doctor_id and t.status == "COMPLETED" and t.called_at is not None
            for t in self.tokens.values()
        )
        for other in self.tokens.values():
            if other.doctor_id == doctor_id and other.status == "IN_CONSULTATION":
                assert other.called_at is not None
                elapsed = (self.now - other.called_at).total_seconds() / 60
                free = self.now + timedelta(minutes=max(length - elapsed, 0.25 * length))
                started = True
        if doctor.paused_at is not None:
            # Section 10: "a pause ... push[es] the estimate later": nobody knows when it
            # ends, so (the library's documented choice) it is taken to last as long again
            # as it has lasted so far, and at least one consultation length.
            free = max(free, self.now + max(self.now - doctor.paused_at, step))
        slots = self.slots_of(doctor_id)
        emergency = token.priority is Priority.EMERGENCY

        def urgent(slot: MSlot) -> int:
            return sum(1 for i in queues[slot.id] if self.tokens[i].priority is Priority.EMERGENCY)

        present = self.listed_present(doctor_id)
        before = sum(1 for t in present if rank(t) < rank(token))
        if listed_here(token):
            if emergency:
                return free + (before + sum(urgent(s) for s in slots)) * step
            at, left = free, before
            for slot in slots:
                waiting = len(queues[slot.id])
                if not waiting:
                    continue
                opens = slot.start + delay
                while self.combo.fill_idle and at < opens:
                    if not left:
                        return at
                    left, at = left - 1, at + step
                at = max(at, opens) + waiting * step
            return at + left * step
        assert token.slot_id is not None
        own = self.slots[token.slot_id]
        index = slots.index(own)
        within = queues[own.id].index(token.id)
        if emergency:
            ahead = sum(urgent(s) for s in slots[:index]) + within + before
            return free + ahead * step
        first = sum(1 for t in present if t.priority is Priority.EMERGENCY)
        at = free + (first + sum(urgent(s) for s in slots[index + 1 :])) * step
        for slot in slots[:index]:
            if queues[slot.id]:
                at = max(at, slot.start + delay) + len(queues[slot.id]) * step
        # A present patient of a doctor who has started is called once the doctor is free.
        gate = at if started and token.checked_in_at is not None else own.start + delay
        return max(at, gate) + within * step

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
        away = token.status == "AWAY"
        origin = token.slot_id
        if to is None:
            token.doctor_id = doctor_id or token.doctor_id
            token.slot_id, token.status = None, "WAITLISTED"
        else:
            token.doctor_id, token.slot_id = to.doctor_id, to.id
            token.status = "BOOKED" if token.checked_in_at is None else "CHECKED_IN"
        if away:
            # Section 10: "An AWAY token is a waiting token for every other call and stays
            # AWAY through them".
            token.status = "AWAY"
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
        """DESIGN.md section 3, ``book``: "An emergency follows the emergency policy: by default it
        bypasses the hard limit (the slot overflows); with ``EmergencyOverride(max_overflow=k)`` at
        most k extra, and past that the lowest-ranked non-emergency token (lowest priority, latest
        ``seq``) is displaced to the first later slot of the same doctor with room, else to the
        waitlist, keeping its ``seq``. An emergency never displaces an emergency; when nobody can be
        displaced, the emergency overflows anyway: a patient in danger is never turned away."
        """
        bound = self.combo.max_overflow
        if bound is None:
            return
        while len(self.holders(slot)) - self.combo.limit(slot.capacity) > bound:
            if not self.displace(slot, reason):
                return

    def refill(self, slot: MSlot, keep: str | None = None) -> None:
        """Fill free places: waitlist first, then pull forward (never ``keep``); cascade to
        emptied slots. Nothing while the doctor is unavailable.

        DESIGN.md section 4, ``Reallocation``: "fill a freed place from the waitlist, then pull
        forward the best checked-in token from the doctor's later slots; a token displaced
        ``max_moves`` times is not displaced again while another candidate exists; ``fill_idle`` is
        the idle-fill rule of section 3."
        """
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
            if not listed_here(token):
                self.move(token, None, reason, counted=True)
            return
        doctor_id, slot = found
        self.move(token, slot, reason, counted=True, doctor_id=doctor_id)
        if slot is not None and token.priority is Priority.EMERGENCY:
            self.contain(slot)

    # ---------------------------------------------------------------- setup

    def add_doctor(self, doctor: Doctor) -> None:
        """DESIGN.md section 3, ``add_doctor(doctor)``: "duplicate id ->
        ``InvalidArgumentError``"
        """
        if doctor.id in self.doctors:
            raise Refused(InvalidArgumentError)
        self.doctors[doctor.id] = MDoctor(
            doctor.id, doctor.name, doctor.department, doctor.consult_minutes
        )
        self.event("DoctorAdded", doctor.id, doctor.name, doctor.department, doctor.consult_minutes)

    def add_slot(self, slot: MSlot) -> None:
        """DESIGN.md section 3, ``add_slot(slot)``: "unknown doctor -> ``UnknownDoctorError``;
        duplicate id, ``end <= start``, ``capacity < 0``, overlap with the doctor's other slots, or
        a start on another date than the allocator's other slots (one OPD day) ->
        ``InvalidArgumentError``"
        """
        if slot.doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        if slot.id in self.slots:
            raise Refused(InvalidArgumentError)
        if self.doctors[slot.doctor_id].ended:
            # Section 10, ``end_day``: "the doctor's day closes ... every slot of the doctor
            # closes"; a closed day takes no new slot (the library refuses it as bad input).
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
        """DESIGN.md section 3, ``book``: "``priority=None`` takes the source's default;
        ``checked_in=None`` means present now for WALK_IN or EMERGENCY, not yet for the others. With
        ``slot_id``: that slot. Without: an emergency goes to the doctor's current slot (the one
        containing now, else the next to start); others go to the earliest open slot with room."
        """
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
        """Where a new token goes (None: the waitlist), or refuse.

        DESIGN.md section 3, ``book``: "A non-emergency token for a full slot follows
        ``Policies.on_full``: ``OnFull.REJECT`` (default, as the seed: ``SlotFullError`` whose
        message says the slot "is full"), ``OnFull.WAITLIST``, or ``OnFull.NEXT_SLOT`` (earliest
        later slot with room, else waitlist)."
        """
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
        """DESIGN.md section 3, ``check_in(token_id)``: "BOOKED -> CHECKED_IN; WAITLISTED stays
        WAITLISTED but records ``checked_in_at``; NO_SHOW -> late arrival, re-queued (new ``seq``)
        into the doctor's current slot, or waitlisted if it cannot be placed; if the doctor is
        unavailable, it is placed as ``mark_unavailable`` places a waiting token (a same-department
        colleague first)"

        Section 10, ``check_in(token_id)`` on an AWAY token: "back: AWAY -> CHECKED_IN at the
        same place (same slot, ``seq`` and ``checked_in_at``, even if the slot has ended
        meanwhile); ``TokenCheckedIn``. After the doctor's ``end_day``, a late ``check_in`` of
        a NO_SHOW raises ``SlotClosedError``"; one sent to a waitlist "on its return is a
        checked-in WAITLISTED token".
        """
        token = self.token(token_id)
        if token.status == "BOOKED":
            token.status, token.checked_in_at = "CHECKED_IN", self.now
        elif token.status == "WAITLISTED" and token.checked_in_at is None:
            token.checked_in_at = self.now
        elif token.status == "AWAY":
            token.status = "WAITLISTED" if token.slot_id is None else "CHECKED_IN"
        elif token.status == "NO_SHOW":
            if self.doctors[token.doctor_id].ended:
                raise Refused(SlotClosedError)
            self.late_arrival(token)
        else:
            raise Refused(InvalidTransitionError)
        self.emit("TokenCheckedIn", token)
        return token

    def late_arrival(self, token: MToken) -> None:
        """DESIGN.md section 3, ``check_in(token_id)``: "NO_SHOW -> late arrival, re-queued (new
        ``seq``) into the doctor's current slot, or waitlisted if it cannot be placed; if the doctor
        is unavailable, it is placed as ``mark_unavailable`` places a waiting token (a
        same-department colleague first)"
        """
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
        """DESIGN.md section 3, ``call_next(doctor_id)``: "completes the doctor's current
        consultation if any, then calls (IN_CONSULTATION) the next checked-in token: a checked-in
        emergency first, wherever it waits (in a slot, or on the waitlist, whence it is seated as
        the idle-fill rule seats, even with ``fill_idle=False``; lowest acuity first, section 12,
        then earliest slot, then ``seq``), else from the doctor's earliest slot, in start order,
        that has a checked-in waiting token, the first checked-in token of its standing order;
        BOOKED tokens that have not arrived are skipped; if no checked-in token waits in any of the
        doctor's slots, the idle-fill rule below applies; None if nobody checked in is waiting"
        """
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        if self.doctors[doctor_id].ended:
            # Section 10: "after ``end_day``, ``call_next`` returns None and ``next_up`` is
            # empty, whatever else the doctor's status."
            return None
        self.may_call(doctor_id)
        self.finish_current(doctor_id)
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
            for t in self.listed_present(doctor_id):
                if t.priority is Priority.EMERGENCY:
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
        arrived = self.listed_present(doctor_id)
        if not self.combo.fill_idle or not arrived or seat is None:
            return None
        self.seat_in(arrived[0], seat)
        return self.call(arrived[0])

    def seat_in(self, token: MToken, seat: MSlot) -> None:
        """Seat a present waitlisted token as the idle-fill rule seats: "over its capacity if
        need be (``TokenMoved(reason=MoveReason.FROM_WAITLIST)``, then ``TokenCalled``)"."""
        if token.priority is not Priority.EMERGENCY and not self.admits(seat, token.source):
            self.grant(seat, seat.elastic + 1)
        self.move(token, seat, "FROM_WAITLIST", counted=False)

    def may_call(self, doctor_id: str) -> None:
        """Section 3, "Who may call": "``call_next`` and ``call`` (section 10) raise
        ``InvalidTransitionError``, naming the doctor, when the doctor is unavailable
        (``mark_unavailable``) or paused (``pause``); nothing changes." """
        doctor = self.doctors[doctor_id]
        if not doctor.available or doctor.paused_at is not None:
            raise Refused(InvalidTransitionError)

    def finish_current(self, doctor_id: str) -> None:
        """Complete the doctor's consultation in progress, if any."""
        for token in list(self.tokens.values()):
            if token.doctor_id == doctor_id and token.status == "IN_CONSULTATION":
                self.finish(token)

    def seat(self, doctor_id: str) -> MSlot | None:
        """Where the idle-fill rule seats: the current slot (the one containing now, else
        the latest that has started, else the next to start); if that one is closed, the
        earliest slot not closed that has not ended; None if there is none.

        DESIGN.md section 3, the idle-fill rule: "it calls the first checked-in token of the
        doctor's waitlist: that token is placed in the doctor's current slot (the one containing
        now, else the latest that has started, else the next to start), over its capacity if need be
        (``TokenMoved(reason=MoveReason.FROM_WAITLIST)``, then ``TokenCalled``). [...] Idle-fill
        never seats a token into a closed slot (closed by ``close_slot`` or ``end_day``; a slot that
        has merely ended is not closed for this rule): if the current slot is closed, it uses the
        doctor's earliest open slot that has not ended, and with none it calls nobody (``None``)."
        """
        slots = self.slots_of(doctor_id)
        if not slots:
            return None
        started = [s for s in slots if s.start <= self.now]
        current = started[-1] if started else slots[0]
        if not current.closed:
            return current
        return next((s for s in slots if not s.closed and s.end > self.now), None)

    def call(self, token: MToken, out_of_turn: bool = False) -> MToken:
        token.status, token.called_at = "IN_CONSULTATION", self.now
        self.emit("TokenCalled", token, out_of_turn)
        return token

    def finish(self, token: MToken) -> None:
        token.status, token.completed_at = "COMPLETED", self.now
        self.emit("TokenCompleted", token)

    def complete(self, token_id: str) -> MToken:
        """DESIGN.md section 3, ``complete(token_id)``: "IN_CONSULTATION -> COMPLETED" """
        token = self.token(token_id)
        if token.status != "IN_CONSULTATION":
            raise Refused(InvalidTransitionError)
        self.finish(token)
        return token

    def cancel(self, token_id: str, reason: str = "") -> MToken:
        """DESIGN.md section 3, ``cancel(token_id)``: "BOOKED, CHECKED_IN or WAITLISTED ->
        CANCELLED; frees the place and reallocates". Section 10: an AWAY token "can be
        cancelled"; ``cancel(token_id, reason="")``: "``TokenCancelled.reason`` keeps the
        reason (a str)".
        """
        token = self.token(token_id)
        if any(unicodedata.category(c) == "Cc" for c in reason):
            # Section 3, "Ids and text": strings the journal stores (reasons among them)
            # contain no control character, "otherwise ``InvalidArgumentError``".
            raise Refused(InvalidArgumentError)
        if token.status not in MOVABLE:
            raise Refused(InvalidTransitionError)
        freed = token.slot_id
        token.status = "CANCELLED"
        self.emit("TokenCancelled", token, reason)
        if freed is not None:
            self.refill(self.slots[freed])
        return token

    def no_show(self, token_id: str) -> MToken:
        """DESIGN.md section 3, ``no_show(token_id)``: "BOOKED -> NO_SHOW, only once the grace
        period after slot start has passed (else ``InvalidTransitionError``); frees the place and
        reallocates"
        """
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
        """DESIGN.md section 3, ``reschedule(token_id, slot_id)``: "the desk moves a waiting token
        (BOOKED, CHECKED_IN or WAITLISTED) to the named slot, of the same doctor or another: the
        target obeys the booking rules for that token (``SlotClosedError``, ``SlotFullError`` for a
        non-emergency past the capacity policy, ``DuplicateBookingError`` if the patient holds
        another active token that the duplicate rule counts), and on any error nothing changes; the
        token keeps ``id``, ``number``, ``seq``, ``checked_in_at`` and ``moves``;
        ``TokenMoved(reason=MoveReason.RESCHEDULED)``; the freed place is reallocated; the token's
        own slot -> returned unchanged, no event"
        """
        token = self.token(token_id)
        if slot_id not in self.slots:
            raise Refused(UnknownSlotError)
        target = self.slots[slot_id]
        if token.status not in MOVABLE:  # section 10: an AWAY token "can be ... rescheduled"
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
        """DESIGN.md section 3, ``retriage(token_id, priority)``: "a waiting token's triage level
        changes (the patient's condition got worse or better): it keeps ``seq`` and its place, and
        is re-ranked in its slot or waitlist; raised to EMERGENCY it follows the emergency policy in
        its slot (bounded overflow displaces as a new emergency would), and a waitlisted one is
        seated in the doctor's current slot (an emergency waits on a waitlist only where no open
        slot can take it, and is then called first, section 3); ``TokenRetriaged``; the same level
        -> unchanged, no event"
        """
        token = self.token(token_id)
        if not isinstance(priority, Priority):
            raise Refused(InvalidArgumentError)
        if token.status not in MOVABLE:  # section 10: an AWAY token "can be ... re-triaged"
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
        """DESIGN.md section 3, ``missed_call(token_id)``: "the patient called in (IN_CONSULTATION)
        did not come: the token goes back to its slot's queue as BOOKED (not present), keeping
        ``seq``, and ``Token.missed_calls`` grows by one (``TokenCallMissed``); at
        ``Policies.max_missed_calls`` missed calls it becomes NO_SHOW instead (``TokenNoShow``,
        place freed and reallocated; a later ``check_in`` is a late arrival); the doctor has no
        current consultation afterwards"
        """
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

    # ---------------------------------------------------------------- the live floor

    def doctor(self, doctor_id: str) -> MDoctor:
        if doctor_id not in self.doctors:
            raise Refused(UnknownDoctorError)
        return self.doctors[doctor_id]

    def pause(self, doctor_id: str) -> None:
        """DESIGN.md section 10, ``pause(doctor_id)``: "the doctor steps away for a while (ward
        round, break): bookings, check-ins and moves go on; ``call_next`` and ``call`` raise
        ``InvalidTransitionError``; the consultation in progress can still be completed;
        ``DoctorPaused``; a paused doctor -> no change"
        """
        doctor = self.doctor(doctor_id)
        if doctor.paused_at is not None:
            return
        doctor.paused_at = self.now
        self.event("DoctorPaused", doctor_id)

    def resume(self, doctor_id: str) -> None:
        """DESIGN.md section 10, ``resume(doctor_id)``: "``DoctorResumed``; a doctor who is not
        paused -> no change"
        """
        doctor = self.doctor(doctor_id)
        if doctor.paused_at is None:
            return
        doctor.paused_at = None
        self.event("DoctorResumed", doctor_id)

    def call_out_of_turn(self, token_id: str) -> MToken:
        """DESIGN.md section 10, ``call(token_id)``: "the desk calls a chosen present patient
        out of turn: completes the doctor's current consultation as ``call_next`` does, then a
        CHECKED_IN token in one of the doctor's slots, or a checked-in WAITLISTED one (seated
        as the idle-fill rule seats; with nowhere to seat it -> ``SlotClosedError``), becomes
        IN_CONSULTATION; ``TokenCalled`` with ``out_of_turn=True`` (False for ``call_next``);
        any other status -> ``InvalidTransitionError``, nothing changed"
        """
        token = self.token(token_id)
        listed = token.status == "WAITLISTED" and token.checked_in_at is not None
        if token.status != "CHECKED_IN" and not listed:
            raise Refused(InvalidTransitionError)
        self.may_call(token.doctor_id)
        seat = self.seat(token.doctor_id) if listed else None
        if listed and seat is None:
            raise Refused(SlotClosedError)
        self.finish_current(token.doctor_id)
        if seat is not None:
            self.seat_in(token, seat)
        return self.call(token, out_of_turn=True)

    def step_out(self, token_id: str) -> MToken:
        """DESIGN.md section 10, ``step_out(token_id)``: "the patient leaves the waiting room but
        keeps their place (sent for a test, stepped out): CHECKED_IN or IN_CONSULTATION ->
        AWAY; from IN_CONSULTATION the consultation ends and the doctor is free to call the
        next; the token keeps its slot, ``seq``, ``number`` and ``checked_in_at``, counts in
        its slot's occupancy, stands in ``queue()`` at its current rank, and is skipped by
        ``call_next`` and ``next_up``; ``TokenSteppedOut``; other statuses ->
        ``InvalidTransitionError``"

        A consultation that ends this way is not completed (the estimates learn nothing from
        it: section 10, "one cut short by ``step_out`` ... does not"), so the token was never
        called as far as its record goes; back in its slot it keeps its place even if the
        slot shrank meanwhile, granted past the limit as after a missed call.
        """
        token = self.token(token_id)
        if token.status not in ("CHECKED_IN", "IN_CONSULTATION"):
            raise Refused(InvalidTransitionError)
        consulting = token.status == "IN_CONSULTATION"
        token.status = "AWAY"
        if consulting:
            token.called_at = None
        self.emit("TokenSteppedOut", token)
        if consulting and token.priority is not Priority.EMERGENCY:
            # Granted, and reported, after the token's own event, as after a missed call.
            assert token.slot_id is not None
            slot = self.slots[token.slot_id]
            self.grant(slot, self.normal(slot) - self.combo.limit(slot.capacity))
        return token

    def now_serving(self, doctor_id: str) -> MToken | None:
        """DESIGN.md section 10, ``now_serving(doctor_id)``: "the doctor's IN_CONSULTATION
        token" """
        self.doctor(doctor_id)
        serving = [
            t
            for t in self.tokens.values()
            if t.doctor_id == doctor_id and t.status == "IN_CONSULTATION"
        ]
        assert len(serving) <= 1
        return serving[0] if serving else None

    def end_day(self, doctor_id: str) -> list[MToken]:
        """DESIGN.md section 10, ``end_day(doctor_id)``: "the doctor's day closes (paused or
        unavailable doctors too): with a consultation in progress -> ``InvalidTransitionError``;
        BOOKED tokens -> NO_SHOW (``TokenNoShow``); present tokens not seen (CHECKED_IN, AWAY,
        checked-in WAITLISTED) -> UNSEEN (``TokenUnseen``), returned in standing order (slot by
        slot, then the waitlist) so the host can carry them to another day; absent waitlisted
        tokens -> CANCELLED (``TokenCancelled``); every slot of the doctor closes; then
        ``DayEnded(doctor_id)``; a day already ended -> no change, ``[]``"

        The cancellation's reason is "day ended" (the library's documented wording). Nobody
        is moved and no place refilled: every slot closes.
        """
        doctor = self.doctor(doctor_id)
        if doctor.ended:
            return []
        if self.now_serving(doctor_id) is not None:
            raise Refused(InvalidTransitionError)
        # The standing order, read before anything changes.
        leaving = [t for s in self.slots_of(doctor_id) for t in self.queue(s)]
        unseen: list[MToken] = []
        for token in leaving + self.waitlist(doctor_id):
            if token.status == "BOOKED":
                token.status = "NO_SHOW"
                self.emit("TokenNoShow", token)
            elif token.status == "WAITLISTED" and token.checked_in_at is None:
                token.status = "CANCELLED"
                self.emit("TokenCancelled", token, "day ended")
            else:
                token.status = "UNSEEN"
                self.emit("TokenUnseen", token)
                unseen.append(token)
        for slot in self.slots_of(doctor_id):
            slot.closed = True
        doctor.ended = True
        self.event("DayEnded", doctor_id)
        return unseen

    # ---------------------------------------------------------------- disruptions

    def delay(self, doctor_id: str, minutes: int) -> None:
        """DESIGN.md section 3, ``delay(doctor_id, minutes)``: "the doctor runs late: estimated
        starts of remaining tokens shift; capacity-loss handling is a policy"
        """
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
        """DESIGN.md section 3, ``resize(slot_id, capacity)``: "grow: fill from waitlist; shrink:
        lowest-ranked tokens displaced onward"
        """
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
        """DESIGN.md section 3, ``mark_unavailable(doctor_id)``: "the doctor's slots that have not
        ended close to new bookings; every waiting token, in standing order (slot by slot in start
        order, then the waitlist), moves to the earliest open slot with room of another available
        doctor of the same department (never another department), else to the shortest waitlist
        among those doctors, else to its own doctor's waitlist; none is cancelled"
        """
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
        """DESIGN.md section 3, ``mark_available(doctor_id)``: "the doctor is back: slots that have
        not ended (and were not closed by ``close_slot``) reopen; the doctor's waitlist refills
        them; tokens moved away earlier stay where they are; ``DoctorAvailable``; an available
        doctor -> no change"
        """
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
        """DESIGN.md section 3, ``close_slot(slot_id)``: "one slot closes (a break, a room lost): no
        new bookings (``SlotClosedError``); its waiting tokens move, in standing order, to the
        doctor's later open slots with room, else as ``mark_unavailable`` moves them (same
        department), else to the doctor's waitlist, ``MoveReason.SLOT_CLOSED``; none is cancelled;
        ``SlotClosed``; a closed slot -> no change"
        """
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


# ============================================================================ comparing


def event_row(event: Event) -> Row:
    """An event as the model writes it down: kind, version, at, then its fields."""
    head: Row = (type(event).__name__, event.version, event.at)
    if isinstance(event, TokenEvent):
        row = head + tuple(token_row(event.token).values())
        if isinstance(event, TokenMoved):
            row += (event.from_slot_id, event.to_slot_id, event.reason.name)
        elif isinstance(event, TokenRetriaged):
            row += (event.old_priority.name,)
        elif isinstance(event, TokenCalled):
            row += (event.out_of_turn,)
        elif isinstance(event, TokenCancelled):
            row += (event.reason,)
        return row
    if isinstance(event, SlotResized):
        return (*head, event.slot_id, event.old_capacity, event.capacity)
    if isinstance(event, DoctorDelayed):
        return (*head, event.doctor_id, event.minutes, event.total_minutes)
    if isinstance(
        event, DoctorUnavailable | DoctorAvailable | DoctorPaused | DoctorResumed | DayEnded
    ):
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


def ids_of(tokens: Iterable[MToken]) -> list[str]:
    return [t.id for t in tokens]
