"""The journal: events to and from JSON-safe dicts, and replaying them onto an allocator.

Every change an allocator makes is reported by events that say what the state became, so a
host that stores each event (one row per event, O(1) per change) can rebuild the allocator
exactly. Replay *sets* the state the events describe; it never asks a capacity, emergency
or reallocation policy what to do (the ordering files present patients, as it does for a
snapshot), so a replica ends where the original ended, whatever the policies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Final

import attrs

from . import _build
from ._check import MAX_MINUTES, check_str
from ._check import shown as _show
from ._codec import (
    DOCTOR_FIELDS,
    TOKEN_FIELDS,
    Reader,
    Times,
    datetime_to_text,
    doctor_from_dict,
    doctor_to_dict,
    token_from_dict,
    token_to_dict,
)
from ._desk import Desk
from ._possible import Touched, check_touched
from ._queue import MAX_SEQ
from ._slot import Slot
from ._values import CALLED, Doctor, Priority, Token, TokenStatus, issuer_of, token_id
from .errors import InvalidArgumentError, OPDError
from .events import (
    EVENT_CLASSES,
    DayEnded,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorPaused,
    DoctorResumed,
    DoctorUnavailable,
    Event,
    MoveReason,
    PlacesGranted,
    SlotAdded,
    SlotClosed,
    SlotResized,
    TokenBooked,
    TokenCalled,
    TokenCallMissed,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenDue,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenRetriaged,
    TokenSteppedOut,
    TokenUnseen,
    TokenWaitlisted,
)

if TYPE_CHECKING:
    from ._allocator import Allocator

#: Every event class, by the name ``event_to_dict`` writes under ``"kind"``.
KINDS: Final[dict[str, type[Event]]] = {kind.__name__: kind for kind in EVENT_CLASSES}

#: Per event class: its fields, those with a default, and the fields read after the common
#: four (``at``, ``version``, ``step``, ``steps``) in the order read. Worked out once.
_SHAPES: Final[dict[type[Event], tuple[frozenset[str], frozenset[str], tuple[str, ...]]]] = {
    kind: (
        frozenset(f.name for f in attrs.fields(kind)),
        frozenset(f.name for f in attrs.fields(kind) if f.default is not attrs.NOTHING),
        tuple(sorted({f.name for f in attrs.fields(kind)} - {"at", "version", "step", "steps"})),
    )
    for kind in EVENT_CLASSES
}


#: The statuses a token event's token may have, by kind (the others: any).
_STATUS: Final[dict[type[TokenEvent], frozenset[TokenStatus]]] = {
    TokenBooked: frozenset({TokenStatus.BOOKED, TokenStatus.CHECKED_IN}),
    TokenWaitlisted: frozenset({TokenStatus.WAITLISTED}),
    TokenCalled: frozenset({TokenStatus.IN_CONSULTATION}),
    TokenCompleted: frozenset({TokenStatus.COMPLETED}),
    TokenCancelled: frozenset({TokenStatus.CANCELLED}),
    TokenNoShow: frozenset({TokenStatus.NO_SHOW}),
    TokenSteppedOut: frozenset({TokenStatus.AWAY}),
    TokenUnseen: frozenset({TokenStatus.UNSEEN}),
}


#: Token events that take a due notice back (stepping out, a missed call: one that made the
#: token NO_SHOW included), and the statuses a token sent one may have.
_TAKE_BACK: Final = (TokenSteppedOut, TokenCallMissed, TokenNoShow)
_DUE: Final = frozenset({TokenStatus.CHECKED_IN, TokenStatus.WAITLISTED})


# ============================================================================ to and from dicts

#: Fields added to existing event kinds by the live floor (``TokenCalled.out_of_turn``,
#: ``TokenCancelled.reason``): written only when not at their default and read as their
#: default when absent, so that a journal stored before them reads, and is written, as
#: it was.
_LATER: Final = frozenset({"out_of_turn", "reason"})


def _plain(value: object) -> object:
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, datetime):
        return datetime_to_text(value)
    if isinstance(value, Token):
        return token_to_dict(value)
    if isinstance(value, Doctor):
        return doctor_to_dict(value)
    return value


def event_to_dict(event: Event) -> dict[str, Any]:
    """``event`` as a JSON-safe dict: ``"kind"`` names its class, then every field, with
    enums by name, datetimes in ISO 8601 with their offset (and their zone's name in
    brackets where they have one), and a token or doctor as a dict of its fields.
    :func:`event_from_dict` reads it back exactly. O(1).

    Raises :class:`InvalidArgumentError` if ``event`` is not one of opd-engine's events.
    """
    kind = type(event)
    if KINDS.get(kind.__name__) is not kind:
        raise InvalidArgumentError(f"event must be an opd-engine event, got event={event!r}")
    data: dict[str, Any] = {"kind": kind.__name__}
    for field in attrs.fields(kind):
        value = getattr(event, field.name)
        if field.name in _LATER and value == field.default:
            continue  # written as it was before the field existed
        data[field.name] = _plain(value)
    return data


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """The event :func:`event_to_dict` wrote. O(1).

    Raises :class:`InvalidArgumentError` naming what is wrong: an unknown ``kind``, a
    missing or extra field, a value of the wrong type or out of range.
    """
    return _event_from_dict(data, Times())


def _event_from_dict(data: Mapping[str, Any], times: Times) -> Event:
    """:func:`event_from_dict`, with ``times`` shared by a whole journal (so that naive and
    aware datetimes are never mixed in one)."""
    item = Reader(data, "event", times)
    name = item.typed("kind", str)
    kind = KINDS.get(name)
    if kind is None:
        raise InvalidArgumentError(f"event.kind {_show(name)} is not an opd-engine event")
    fields, defaulted, rest = _SHAPES[kind]
    if any(key not in fields and key != "kind" for key in data):
        extra = sorted(set(data) - fields - {"kind"})
        raise InvalidArgumentError(f"event.{extra[0]} is not a field of {name}")
    values: dict[str, Any] = {"at": item.when("at"), "version": item.count("version", 1)}
    numbered = [key for key in ("step", "steps") if key in data]
    if len(numbered) == 1:  # a journal stored before events were numbered has neither
        raise InvalidArgumentError(
            f"event.{'steps' if numbered == ['step'] else 'step'} is missing "
            f"(event.{numbered[0]} is given)"
        )
    if numbered:
        steps = values["steps"] = item.count("steps", 1)
        values["step"] = item.count("step", 1, steps)
    for field in rest:
        if field in _LATER and field not in data and field in defaulted:
            continue  # stored before the field existed: its default
        if field == "token":
            token = item.child("token")
            token.only(TOKEN_FIELDS, "Token")
            values[field] = token_from_dict(token)
        elif field == "doctor":
            doctor = item.child("doctor")
            doctor.only(DOCTOR_FIELDS, "Doctor")
            values[field] = doctor_from_dict(doctor)
        elif field == "reason" and kind is TokenCancelled:
            values[field] = check_str("event.reason", item.typed("reason", str))
        elif field == "reason":
            values[field] = item.member("reason", MoveReason)
        elif field == "out_of_turn":
            values[field] = item.typed("out_of_turn", bool)
        elif field == "old_priority":
            values[field] = item.member("old_priority", Priority)
        elif field in ("start", "end"):
            values[field] = item.when(field)
        elif field in ("from_slot_id", "to_slot_id"):
            values[field] = item.maybe_ident(field)
        elif field in ("slot_id", "doctor_id"):
            values[field] = item.ident(field)
        else:  # counts: capacity, old_capacity, minutes, total_minutes, elastic
            values[field] = item.count(field, 0)
    return kind(**values)


# ============================================================================ applying


class _Replay:
    """Applies events, in order, to an allocator's state, checking each against it, and
    notes what they touched for the check at the end (:mod:`opd_engine._possible`)."""

    def __init__(self, alloc: Allocator) -> None:
        self.alloc = alloc
        self.day = alloc._day
        self.where = ""
        self.touched = Touched()

    def fail(self, message: str) -> InvalidArgumentError:
        return InvalidArgumentError(f"{self.where}: {message}")

    def apply(self, event: Event) -> None:
        touched = self.touched
        if isinstance(event, TokenDue):
            self.due(event)
        elif isinstance(event, TokenEvent):
            self.token(event)
        elif isinstance(event, DoctorAdded):
            self.doctor_added(event)
            touched.doctors.add(event.doctor.id)
        elif isinstance(event, SlotAdded):
            self.slot_added(event)
            touched.slots.add(event.slot_id)
        elif isinstance(event, SlotResized):
            slot = self.slot(event.slot_id)
            if slot.capacity != event.old_capacity or event.capacity == event.old_capacity:
                raise self.fail(
                    f"slot {event.slot_id!r} has capacity {slot.capacity}: it cannot change "
                    f"from {event.old_capacity} to {event.capacity}"
                )
            slot._set_capacity(event.capacity)
            touched.slots.add(slot.id)
        elif isinstance(event, SlotClosed):
            slot = self.slot(event.slot_id)
            if slot.closed:
                raise self.fail(f"slot {event.slot_id!r} is closed already")
            slot._close()
            touched.slots.add(slot.id)
        elif isinstance(event, PlacesGranted):
            slot = self.slot(event.slot_id)
            if event.elastic <= slot.elastic:
                raise self.fail(
                    f"slot {event.slot_id!r} has {slot.elastic} places granted already: "
                    f"a grant makes them more, not {event.elastic}"
                )
            slot._grant(event.elastic)
            touched.slots.add(slot.id)
        elif isinstance(event, DoctorDelayed):
            desk = self.desk(event.doctor_id)
            before = desk.delay // timedelta(minutes=1)
            total = before + event.minutes
            if event.minutes < 1 or event.total_minutes != total or total > MAX_MINUTES:
                raise self.fail(
                    f"doctor {event.doctor_id!r} is {before} minutes late: {event.minutes} "
                    f"more cannot make {event.total_minutes} in all (at most {MAX_MINUTES})"
                )
            desk.set_delay(timedelta(minutes=total))
        elif isinstance(event, DoctorPaused | DoctorResumed):
            desk = self.desk(event.doctor_id)
            paused = isinstance(event, DoctorPaused)
            if desk.paused == paused:
                state = "paused" if paused else "not paused"
                raise self.fail(f"doctor {event.doctor_id!r} is {state} already")
            desk.set_paused(event.at if paused else None)
        elif isinstance(event, DayEnded):
            desk = self.desk(event.doctor_id)
            if desk.ended:
                raise self.fail(f"doctor {event.doctor_id!r} has ended the day already")
            desk.close_day()
            touched.slots.update(slot.id for slot in desk.slots)
            touched.doctors.add(desk.doctor.id)
        else:
            assert isinstance(event, DoctorUnavailable | DoctorAvailable)
            desk = self.desk(event.doctor_id)
            available = isinstance(event, DoctorAvailable)
            if desk.available == available:
                state = "available" if available else "unavailable"
                raise self.fail(f"doctor {event.doctor_id!r} is {state} already")
            desk.set_available(available)
            touched.doctors.add(desk.doctor.id)

    def due(self, event: TokenDue) -> None:
        """The token was sent its due notice: it changes nothing else, so the token must
        stand as the event shows it, present, and not have been sent one already."""
        token = event.token
        day = self.day
        stored = day.tokens.get(token.id)
        if stored is None:
            raise self.fail(f"unknown token {token.id!r}")
        if stored != token:
            raise self.fail(f"token {token.id!r} is not as it stands: a notice changes nothing")
        if token.checked_in_at is None or token.status not in _DUE:
            raise self.fail(f"token {token.id!r} is {token.status.name}: not present to notify")
        if token.id in day.notified:
            raise self.fail(f"token {token.id!r} was sent its due notice already")
        day.notice(token.id)
        self.touched.tokens.add(token.id)

    def desk(self, doctor_id: str) -> Desk:
        desk = self.day.desks.get(doctor_id)
        if desk is None:
            raise self.fail(f"unknown doctor {doctor_id!r}")
        return desk

    def slot(self, slot_id: str) -> Slot:
        slot = self.day.slots.get(slot_id)
        if slot is None:
            raise self.fail(f"unknown slot {slot_id!r}")
        return slot

    def doctor_added(self, event: DoctorAdded) -> None:
        day = self.day
        doctor = event.doctor
        if doctor.id in day.desks:
            raise self.fail(f"doctor {doctor.id!r} is already there")
        _build.add_doctor(day, doctor)

    def slot_added(self, event: SlotAdded) -> None:
        """Add the slot through the checks :meth:`Allocator.add_slot` makes (its id, its
        date, its overlaps, its datetimes' awareness), without the refill: the events
        that follow say where tokens went."""
        desk = self.desk(event.doctor_id)
        if desk.ended:
            raise self.fail(f"doctor {event.doctor_id!r} has ended the day: no slot is added")
        try:
            slot = Slot(event.slot_id, event.doctor_id, event.start, event.end, event.capacity)
            index = _build.fit(self.day, slot, desk)
        except OPDError as error:
            raise self.fail(str(error)) from None
        _build.attach(self.day, slot, desk, index)

    # ------------------------------------------------------------------ tokens

    def token(self, event: TokenEvent) -> None:
        """Move the token from where it is to where ``event.token`` says it now is."""
        new = event.token
        day = self.day
        old = day.tokens.get(new.id)
        issuing = isinstance(event, TokenBooked | TokenWaitlisted)
        if issuing and old is not None:
            raise self.fail(f"token {new.id!r} is already issued")
        if not issuing and old is None:
            raise self.fail(f"unknown token {new.id!r}")
        desk = self.desk(new.doctor_id)
        slot = None
        if new.slot_id is not None:
            slot = self.slot(new.slot_id)
            if slot.doctor_id != new.doctor_id:
                raise self.fail(f"slot {slot.id!r} is not a slot of doctor {new.doctor_id!r}")
        problem = self.disagreement(event, old)
        if problem is not None:
            raise self.fail(f"token {new.id!r} {problem}")
        touched = self.touched
        touched.tokens.add(new.id)
        touched.patients.add(new.patient_id)
        if old is not None and old.slot_id is not None:
            touched.slots.add(old.slot_id)
        if new.slot_id is not None:
            touched.slots.add(new.slot_id)
        placed = (new.status.waiting and new.status is not TokenStatus.AWAY) or (
            new.status in CALLED
        )
        if placed and slot is None:
            raise self.fail(f"token {new.id!r} is {new.status.name} without a slot")
        if new.status is TokenStatus.WAITLISTED and new.slot_id is not None:
            raise self.fail(f"token {new.id!r} is waitlisted in slot {new.slot_id!r}")
        if old is not None and (old.patient_id, old.number, old.source, old.booked_at) != (
            new.patient_id,
            new.number,
            new.source,
            new.booked_at,
        ):
            raise self.fail(f"token {new.id!r} changes patient, number, source or booking time")
        if new.seq > MAX_SEQ:
            raise self.fail(f"token {new.id!r} has seq {new.seq}, above the largest, {MAX_SEQ}")
        held_there = (
            old is not None
            and old.status in CALLED
            and new.status in CALLED
            and old.slot_id == new.slot_id
            and old.priority is new.priority  # the slot counts a held token by priority
        )
        if old is not None:
            self.leave(old, keep_place=held_there)
        if issuing:
            issuer = self.desk(issuer_of(new.id))
            if new.id != token_id(issuer.doctor.id, issuer.issued + 1) or new.number != (
                issuer.issued + 1
            ):
                raise self.fail(
                    f"token {new.id!r} (number {new.number}) is not the next token of doctor "
                    f"{issuer.doctor.id!r}, which has issued {issuer.issued}"
                )
            if new.seq <= day.seq:
                raise self.fail(f"token {new.id!r} has seq {new.seq}, not after {day.seq}")
            day.store(new)
            issuer.set_issued(new.number)
        else:
            assert old is not None
            if new.seq != old.seq and new.seq <= day.seq:
                raise self.fail(f"token {new.id!r} takes seq {new.seq}, not after {day.seq}")
            day.replace(old, **{f.name: getattr(new, f.name) for f in attrs.fields(Token)})
        if new.seq > day.seq:
            day.set_seq(new.seq)
        if isinstance(event, _TAKE_BACK):
            day.forget_due(new.id)  # back, the patient may be sent a notice again
        self.enter(new, desk, slot, event.at, keep_place=held_there)
        if (old is None or not old.status.active) and new.status.active:
            day.activate(new)
        elif old is not None and old.status.active and not new.status.active:
            day.deactivate(old)

    @staticmethod
    def disagreement(event: TokenEvent, old: Token | None) -> str | None:
        """How the event's kind and its other fields disagree with the token it carries
        and the token as it was, or None. O(1)."""
        new = event.token
        status = new.status
        expected = _STATUS.get(type(event))
        if expected is not None and status not in expected:
            return f"is {status.name} after {type(event).__name__}"
        if isinstance(event, TokenCheckedIn) and new.checked_in_at is None:
            return "has no checked_in_at after TokenCheckedIn"
        if old is None:
            return None
        if isinstance(event, TokenMoved) and (event.from_slot_id, event.to_slot_id) != (
            old.slot_id,
            new.slot_id,
        ):
            return (
                f"moves from {old.slot_id!r} to {new.slot_id!r}, not from "
                f"{event.from_slot_id!r} to {event.to_slot_id!r}"
            )
        if isinstance(event, TokenRetriaged) and not (
            event.old_priority is old.priority is not new.priority
        ):
            return (
                f"was {old.priority.name}: it cannot be retriaged from "
                f"{event.old_priority.name} to {new.priority.name}"
            )
        if isinstance(event, TokenCallMissed) and new.missed_calls != old.missed_calls + 1:
            return f"had missed {old.missed_calls} calls: one more is not {new.missed_calls}"
        return None

    def leave(self, token: Token, *, keep_place: bool) -> None:
        desk = self.day.desks[token.doctor_id]
        if token.status.waiting or token.status is TokenStatus.WAITLISTED:
            desk.unplace(token)
        elif token.status in CALLED and not keep_place:
            self.day.slots[token.slot_id]._release(token)  # type: ignore[index]
        if token.status is TokenStatus.IN_CONSULTATION and desk.current == token.id:
            desk.set_current(None)
        if token.status is TokenStatus.COMPLETED:
            desk.learn(token, -1)

    def enter(
        self, token: Token, desk: Desk, slot: Slot | None, at: datetime, *, keep_place: bool
    ) -> None:
        if token.status.waiting:
            desk.place(token, slot, at)
        elif token.status is TokenStatus.WAITLISTED:
            desk.place(token, None, at)
        elif token.status in CALLED:
            assert slot is not None
            if not keep_place:
                slot._hold(token)
            if token.status is TokenStatus.IN_CONSULTATION:
                if desk.current is not None and desk.current != token.id:
                    raise self.fail(f"doctor {desk.doctor.id!r} is already seeing {desk.current!r}")
                desk.set_current(token.id)
            elif token.status is TokenStatus.COMPLETED:
                desk.learn(token)


def as_events(events: object) -> list[Event]:
    """Events given as values or as :func:`event_to_dict` dicts, as values. O(n)."""
    if isinstance(events, str | bytes | Mapping) or not isinstance(events, Iterable):
        raise InvalidArgumentError(
            f"events must be an iterable of events or event dicts, got events={_show(events)}"
        )
    times = Times()
    result = []
    for index, item in enumerate(events):
        if isinstance(item, Event):
            if KINDS.get(type(item).__name__) is not type(item):
                raise InvalidArgumentError(f"event {index} is not an opd-engine event: {item!r}")
            result.append(item)
        elif isinstance(item, Mapping):
            try:
                result.append(_event_from_dict(item, times))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"event {index}: {error}") from None
        else:
            raise InvalidArgumentError(
                f"event {index} must be an event or a dict, got {_show(item)}"
            )
    return result


def _out_of_place(event: Event, previous: Event | None) -> str | None:
    """How ``event`` is not the step that follows ``previous``, the event before it in the
    same call (None: ``event`` opens its call), or None. O(1).

    A call's events are numbered 1 to ``steps``, so a journal that lost, moved or repeated
    one of them is refused. Events stored before they were numbered have 0 for both and
    are taken as they are (a whole call is, never half of one).
    """
    step, steps = event.step, event.steps
    if not 0 <= step <= steps or (step == 0) != (steps == 0):
        return f"has step {step} of {steps}: a step is 1 to steps, or both are 0"
    if previous is None:
        if step > 1:
            return (
                f"is step {step} of {steps}, yet opens its call: the journal lost or moved "
                "the call's first event"
            )
        return None
    if previous.steps != steps:
        return (
            f"is step {step} of {steps}, but the event before it in its call is step "
            f"{previous.step} of {previous.steps}"
        )
    if steps and step != previous.step + 1:
        return (
            f"is step {step} of {steps}, after step {previous.step}: the journal lost, moved "
            "or repeated an event of this call"
        )
    return None


def apply(alloc: Allocator, events: list[Event]) -> list[Event]:
    """Apply the events newer than ``alloc``'s version to ``alloc``, in order, then check
    the state they lead to (:func:`~opd_engine._possible.check_touched`); returns those
    applied. Older ones are skipped; the rest must follow on without a gap (the events of
    one call share its version and are its steps 1 to ``steps``, the next call's carry the
    next version). The caller holds the lock and, to make it all or nothing, records the
    undo log. O(log n) per event."""
    for earlier, later in pairwise(events):
        if later.version < earlier.version:
            raise InvalidArgumentError(
                f"event versions must not step back, got {earlier.version} then {later.version}"
            )
    current = alloc._day.version
    fresh = [event for event in events if event.version > current]
    replay = _Replay(alloc)
    previous: Event | None = None
    for index, event in enumerate(fresh):
        replay.where = f"event {index} ({type(event).__name__}, version {event.version})"
        if event.version == current + 1:  # the first event of the next call
            if previous is not None and previous.step != previous.steps:
                raise _unfinished(previous)
            current = event.version
            previous = None
        elif event.version != current or index == 0:
            raise InvalidArgumentError(
                f"event {index} ({type(event).__name__}) has version {event.version}: the "
                f"journal must go on from version {current} without a gap"
            )
        problem = _out_of_place(event, previous)
        if problem is not None:
            raise replay.fail(problem)
        try:
            replay.apply(event)
        except InvalidArgumentError:
            raise
        except (LookupError, ValueError, TypeError, AssertionError) as error:
            raise replay.fail(
                f"it contradicts the state ({type(error).__name__}: {error})"
            ) from None
        previous = event
    if previous is not None and previous.step != previous.steps:
        raise _unfinished(previous)
    try:
        check_touched(alloc, replay.touched)
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"the journal leads to an impossible state: {error}") from None
    alloc._day.version = current
    return fresh


def _unfinished(last: Event) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"the call of version {last.version} has {last.steps} events, but the journal has "
        f"only {last.step} of them: it lost the last"
    )
