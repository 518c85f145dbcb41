"""The Allocator: the one stateful object. It orchestrates; the policies decide."""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, final

import attrs

from . import _display, _snapshot
from ._check import MAX_MINUTES, check_bool, check_enum, check_id, check_int
from ._slot import Slot, Waitlist
from ._values import Doctor, Priority, Source, Token, TokenStatus, check_priority, copy_token
from .errors import (
    DuplicateBookingError,
    InvalidArgumentError,
    InvalidTransitionError,
    SlotClosedError,
    SlotFullError,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)
from .events import (
    DoctorDelayed,
    DoctorUnavailable,
    Event,
    MoveReason,
    SlotResized,
    TokenBooked,
    TokenCalled,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenWaitlisted,
)
from .policies import OnDelay, OnFull, Policies

__all__ = ["Allocator"]

_log = logging.getLogger("opd_engine")

_WAITING = (TokenStatus.BOOKED, TokenStatus.CHECKED_IN)
_CANCELLABLE = (TokenStatus.BOOKED, TokenStatus.CHECKED_IN, TokenStatus.WAITLISTED)


@attrs.define(eq=False)
class _Desk:
    """Everything the allocator keeps per doctor."""

    doctor: Doctor
    slots: list[Slot] = attrs.field(factory=list)  # by start; never overlapping
    ends: list[datetime] = attrs.field(factory=list)  # slots' ends, same order
    present: list[tuple[datetime, str]] = attrs.field(factory=list)  # slots with arrivals
    present_ids: set[str] = attrs.field(factory=set)
    urgent: list[tuple[datetime, str]] = attrs.field(factory=list)  # slots with emergencies
    urgent_ids: set[str] = attrs.field(factory=set)  # present
    waitlist: Waitlist = attrs.field(factory=Waitlist)
    current: str | None = None  # token in consultation
    # patient -> active token id (a tuple of ids in the rare case of several: emergencies).
    active: dict[str, str | tuple[str, ...]] = attrs.field(factory=dict)
    delay: timedelta = timedelta(0)
    available: bool = True
    issued: int = 0  # display numbers issued


def _to_policies(value: Policies | None) -> Policies:
    if value is None:
        return Policies()
    if not isinstance(value, Policies):
        raise InvalidArgumentError(f"policies must be a Policies, got policies={value!r}")
    return value


def _to_clock(value: Callable[[], datetime] | None) -> Callable[[], datetime]:
    if value is None:
        return datetime.now
    if not callable(value):
        raise InvalidArgumentError(f"clock must be callable, got clock={value!r}")
    return value


def _notify(callback: Callable[[Event], object], event: Event) -> None:
    """Deliver one event; a subscriber's exception is logged, never raised: the change it
    reports has already happened, and the caller's call succeeded."""
    try:
        callback(event)
    except Exception:
        _log.exception("opd_engine subscriber %r failed on %r", callback, event)


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Allocator:
    """Allocates OPD tokens to doctors' slots with elastic capacity.

    ``Allocator(policies=None, clock=None)``: ``policies`` defaults to :class:`Policies`
    (hard limit, unbounded emergency overflow, waitlist-then-pull-forward reallocation,
    aging), ``clock`` to :meth:`datetime.datetime.now`. Inject a clock for deterministic
    behaviour; every decision depends only on the clock and the sequence of calls.

    Every public method holds one re-entrant lock, so the allocator may be shared between
    threads. A call that raises changes nothing. Subscribers receive the events of a call
    once it has completed; an exception raised by a subscriber is logged on the
    ``opd_engine`` logger and does not reach the caller.
    """

    _policies: Policies = attrs.field(default=None, converter=_to_policies)
    _clock: Callable[[], datetime] = attrs.field(default=None, converter=_to_clock)

    _desks: dict[str, _Desk] = attrs.field(init=False, factory=dict)
    _slots: dict[str, Slot] = attrs.field(init=False, factory=dict)
    _tokens: dict[str, Token] = attrs.field(init=False, factory=dict)
    _seq: int = attrs.field(init=False, default=0)
    _aware: bool | None = attrs.field(init=False, default=None)
    _subscribers: list[Callable[[Event], object]] = attrs.field(init=False, factory=list)
    _outbox: deque[Event] = attrs.field(init=False, factory=deque)
    _delivering: bool = attrs.field(init=False, default=False)
    _lock: threading.RLock = attrs.field(init=False, factory=threading.RLock)

    @property
    def policies(self) -> Policies:
        """The policies given at construction (read-only). O(1)."""
        return self._policies

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock given at construction, else :meth:`datetime.datetime.now`; read-only. O(1)."""
        return self._clock

    def _repr_html_(self) -> str | None:
        """A table of every slot for notebooks (escaped, at most 50 rows). O(tokens)."""
        with self._lock:
            return _display.allocator_html(self)

    def __repr__(self) -> str:
        with self._lock:
            waiting = sum(s.waiting for s in self._slots.values()) + sum(
                len(d.waitlist) for d in self._desks.values()
            )
            return (
                f"<Allocator {len(self._desks)} doctors, {len(self._slots)} slots, "
                f"{waiting} waiting>"
            )

    # ================================================================ setup

    def add_doctor(self, doctor: Doctor) -> None:
        """Add a doctor. O(1).

        Raises :class:`InvalidArgumentError` if ``doctor`` is not a :class:`Doctor` or its
        id is taken.
        """
        with self._lock:
            if not isinstance(doctor, Doctor):
                raise InvalidArgumentError(f"doctor must be a Doctor, got doctor={doctor!r}")
            if doctor.id in self._desks:
                raise InvalidArgumentError(f"doctor id {doctor.id!r} is already taken")
            self._desks[doctor.id] = _Desk(doctor)

    def add_slot(self, slot: Slot) -> None:
        """Add a slot to its doctor's day, then fill it from the waitlist. O(s + log n).

        ``s`` is the number of the doctor's slots. Raises :class:`UnknownDoctorError` for an
        unknown doctor and :class:`InvalidArgumentError` for a duplicate id, a slot that
        overlaps another of the doctor's, a slot already added to an allocator, or datetimes
        whose awareness (naive or aware) differs from the slots already added.
        """
        with self._lock:
            if not isinstance(slot, Slot):
                raise InvalidArgumentError(f"slot must be a Slot, got slot={slot!r}")
            desk = self._desk(slot.doctor_id)
            if slot.id in self._slots:
                raise InvalidArgumentError(f"slot id {slot.id!r} is already taken")
            if slot._ordering is not None:
                raise InvalidArgumentError(
                    f"slot {slot.id!r} already belongs to an allocator; create a new Slot"
                )
            aware = slot.start.tzinfo is not None
            if self._aware is not None and aware != self._aware:
                kind = "aware" if self._aware else "naive"
                raise InvalidArgumentError(
                    f"slot datetimes must be {kind} like the slots already added, "
                    f"got start={slot.start!r}"
                )
            i = bisect_left([s.start for s in desk.slots], slot.start)
            for other in desk.slots[max(0, i - 1) : i + 1]:
                if other.start < slot.end and slot.start < other.end:
                    raise InvalidArgumentError(
                        f"slot {slot.id!r} ({slot.start} to {slot.end}) overlaps slot "
                        f"{other.id!r} ({other.start} to {other.end}) of doctor "
                        f"{desk.doctor.id!r}"
                    )
            now = self._now(aware)
            slot._attach(self._policies.ordering, self._tokens)
            desk.slots.insert(i, slot)
            desk.ends.insert(i, slot.end)
            self._slots[slot.id] = slot
            self._aware = aware
            self._refill(desk, slot, now)
            self._deliver()

    # ================================================================ booking

    def book(
        self,
        patient_id: str,
        doctor_id: str,
        slot_id: str | None = None,
        *,
        source: Source = Source.WALK_IN,
        priority: Priority | None = None,
        checked_in: bool | None = None,
    ) -> Token:
        """Issue a token for ``patient_id`` with ``doctor_id``. O(log n) in the slot's size.

        ``priority=None`` takes the source's default; ``checked_in=None`` means present now
        for walk-ins and emergencies, not yet for the others. With ``slot_id`` the token goes
        to that slot; without, an emergency goes to the doctor's current slot (the one
        containing now, else the next to start) and anyone else to the earliest open slot
        with room (a walk over the doctor's full slots, O(s)).

        A non-emergency token for a full slot follows ``Policies.on_full``. An emergency is
        never turned away: it overflows the slot within the emergency policy's bound, and past
        it displaces the lowest-ranked non-emergency token to the next slot with room or the
        waitlist.

        Raises :class:`DuplicateBookingError` if the patient already holds an active token
        with this doctor (not for emergencies), :class:`SlotClosedError` for an ended slot
        or an unavailable doctor, :class:`SlotFullError` under ``OnFull.REJECT``, and
        :class:`InvalidArgumentError` or a :class:`NotFoundError` for bad arguments.
        """
        with self._lock:
            now = self._now()
            check_id("patient_id", patient_id)
            desk = self._desk(doctor_id)
            check_enum("source", source, Source)
            if priority is None:
                priority = source.default_priority
            else:
                check_priority("priority", priority)
            emergency = priority is Priority.EMERGENCY
            if checked_in is None:
                checked_in = emergency or source is Source.WALK_IN
            else:
                check_bool("checked_in", checked_in)
            slot = None
            if slot_id is not None:
                slot = self._slot(slot_id)
                if slot.doctor_id != doctor_id:
                    raise InvalidArgumentError(
                        f"slot {slot_id!r} belongs to doctor {slot.doctor_id!r}, "
                        f"got doctor_id={doctor_id!r}"
                    )
            if not emergency and patient_id in desk.active:
                held = self._held(desk, patient_id)
                if held is not None:
                    raise DuplicateBookingError(
                        f"patient already holds active token {held!r} with doctor {doctor_id!r}",
                        held,
                    )
            target = self._choose(desk, slot, source, priority, now)
            # ---- validated: from here on nothing raises.
            self._seq += 1
            desk.issued += 1
            token = Token(
                id=f"{doctor_id}-{desk.issued:03d}",
                patient_id=patient_id,
                doctor_id=doctor_id,
                slot_id=None if target is None else target.id,
                priority=priority,
                source=source,
                seq=self._seq,
                number=desk.issued,
                status=(
                    TokenStatus.WAITLISTED
                    if target is None
                    else TokenStatus.CHECKED_IN
                    if checked_in
                    else TokenStatus.BOOKED
                ),
                booked_at=now,
                checked_in_at=now if checked_in else None,
            )
            self._tokens[token.id] = token
            self._activate(desk, token)
            if target is None:
                desk.waitlist.add(token)
                self._note(TokenWaitlisted, now, token)
            else:
                target._add(token, now)
                if checked_in:
                    self._sync_present(desk, target)
                self._note(TokenBooked, now, token)
                if emergency:
                    self._contain_overflow(desk, target, now)
            self._deliver()
            return self._tokens[token.id]

    def _choose(
        self, desk: _Desk, slot: Slot | None, source: Source, priority: Priority, now: datetime
    ) -> Slot | None:
        """The slot a new token goes to (None: the waitlist), or raise. Changes nothing."""
        capacity = self._policies.capacity
        doctor_id = desk.doctor.id
        if slot is not None:
            self._check_bookable(desk, slot, now)
            if priority is Priority.EMERGENCY or capacity.admits(slot, source, priority):
                return slot
            on_full = self._policies.on_full
            if on_full is OnFull.REJECT:
                raise SlotFullError(
                    f"slot {slot.id!r} is full ({slot.occupancy} of "
                    f"{capacity.limit(slot.capacity)})"
                )
            if on_full is OnFull.WAITLIST:
                return None
            return self._first_with_room(desk, source, priority, now, after=slot)
        if not desk.available:
            raise SlotClosedError(f"doctor {doctor_id!r} is unavailable")
        first = bisect_right(desk.ends, now)
        if first == len(desk.slots):
            raise SlotClosedError(f"doctor {doctor_id!r} has no open slot left")
        if priority is Priority.EMERGENCY:
            return desk.slots[first]
        target = self._first_with_room(desk, source, priority, now)
        if target is None and self._policies.on_full is OnFull.REJECT:
            raise SlotFullError(
                f"doctor {doctor_id!r} is full: none of its "
                f"{len(desk.slots) - first} open slots has room"
            )
        return target

    def _first_with_room(
        self,
        desk: _Desk,
        source: Source,
        priority: Priority,
        now: datetime,
        *,
        after: Slot | None = None,
    ) -> Slot | None:
        """The earliest open slot (later than ``after``) that admits the token. O(s)."""
        if not desk.available:
            return None
        i = bisect_right(desk.ends, now)
        if after is not None:
            i = max(i, desk.slots.index(after) + 1)
        admits = self._policies.capacity.admits
        for slot in desk.slots[i:]:
            if admits(slot, source, priority):
                return slot
        return None

    def _check_bookable(self, desk: _Desk, slot: Slot, now: datetime) -> None:
        if not desk.available:
            raise SlotClosedError(
                f"slot {slot.id!r} is closed: doctor {desk.doctor.id!r} is unavailable"
            )
        if slot._end <= now:
            raise SlotClosedError(f"slot {slot.id!r} is closed: it ended at {slot.end}")

    # ================================================================ the day

    def check_in(self, token_id: str) -> Token:
        """Record the patient's arrival.

        ``BOOKED`` becomes ``CHECKED_IN``; a waitlisted token stays ``WAITLISTED`` but
        records ``checked_in_at``; a ``NO_SHOW`` is a late arrival: re-queued with a new
        ``seq`` into the doctor's current slot, or if that is full the earliest later open
        slot with room, or waitlisted if no slot can take it (an emergency always joins the
        current slot, within the emergency policy). O(log n), plus a walk over the doctor's
        full slots for a late arrival.
        Raises :class:`InvalidTransitionError` for any other status (already checked in,
        in consultation, completed, cancelled), and :class:`DuplicateBookingError` for a late
        arrival whose patient has meanwhile booked this doctor again.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            desk = self._desks[token.doctor_id]
            status = token.status
            if status is TokenStatus.BOOKED:
                slot = self._slots[token.slot_id]  # type: ignore[index]
                token = self._replace(token, status=TokenStatus.CHECKED_IN, checked_in_at=now)
                slot._arrive(token, now)
                self._sync_present(desk, slot)
            elif status is TokenStatus.WAITLISTED and token.checked_in_at is None:
                token = self._replace(token, checked_in_at=now)
            elif status is TokenStatus.NO_SHOW:
                token = self._late_arrival(desk, token, now)
            else:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot check in: it is {token.status.name}"
                    + (" and already checked in" if token.checked_in_at else "")
                )
            self._note(TokenCheckedIn, now, token)
            self._deliver()
            return token

    def _late_arrival(self, desk: _Desk, token: Token, now: datetime) -> Token:
        held = self._held(desk, token.patient_id)
        if held is not None and token.priority is not Priority.EMERGENCY:
            raise DuplicateBookingError(
                f"token {token.id!r} arrived late, but its patient meanwhile holds active "
                f"token {held!r} with doctor {token.doctor_id!r}",
                held,
            )
        if token.priority is Priority.EMERGENCY:
            first = bisect_right(desk.ends, now)
            placeable = desk.available and first < len(desk.slots)
            target = desk.slots[first] if placeable else None
        else:
            target = self._first_with_room(desk, token.source, token.priority, now)
        # ---- validated
        missed = token.slot_id
        self._seq += 1
        token = self._replace(
            token,
            seq=self._seq,
            slot_id=None if target is None else target.id,
            status=TokenStatus.WAITLISTED if target is None else TokenStatus.CHECKED_IN,
            checked_in_at=now,
        )
        self._activate(desk, token)
        if target is None:
            desk.waitlist.add(token)
        else:
            target._add(token, now)
            self._sync_present(desk, target)
        if self._subscribers:
            self._outbox.append(
                TokenMoved(
                    at=now,
                    token=token,
                    from_slot_id=missed,
                    to_slot_id=token.slot_id,
                    reason=MoveReason.LATE_ARRIVAL,
                )
            )
        if target is not None and token.priority is Priority.EMERGENCY:
            self._contain_overflow(desk, target, now)
        return token

    def call_next(self, doctor_id: str) -> Token | None:
        """Complete the doctor's current consultation, then call the next patient.

        The next patient comes from the doctor's earliest slot, in start order, with a
        checked-in emergency waiting, else the earliest with any checked-in patient waiting:
        within it, the one the ordering policy puts first. So a present emergency goes before
        everyone, whatever slot it joined (under ``AccumulatingPriority`` it still competes
        by rate within its slot). Booked patients who have not arrived are skipped. Returns
        the called token (``IN_CONSULTATION``), or None if nobody checked in is waiting.
        O(log n) in the slot's size.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if desk.current is not None:
                self._finish(desk, self._tokens[desk.current], now)
            called = None
            serving = desk.urgent or desk.present
            if serving:
                slot = self._slots[serving[0][1]]
                token_id = slot._next(now)
                assert token_id is not None
                token = self._tokens[token_id]
                slot._seat(token)
                self._sync_present(desk, slot)
                called = self._replace(token, status=TokenStatus.IN_CONSULTATION, called_at=now)
                desk.current = token_id
                self._note(TokenCalled, now, called)
            self._deliver()
            return called

    def complete(self, token_id: str) -> Token:
        """End a consultation: ``IN_CONSULTATION`` -> ``COMPLETED``. O(1).

        Raises :class:`InvalidTransitionError` for any other status.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is not TokenStatus.IN_CONSULTATION:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot complete: it is {token.status.name}, "
                    "not IN_CONSULTATION"
                )
            token = self._finish(self._desks[token.doctor_id], token, now)
            self._deliver()
            return token

    def _finish(self, desk: _Desk, token: Token, now: datetime) -> Token:
        desk.current = None
        token = self._replace(token, status=TokenStatus.COMPLETED, completed_at=now)
        self._deactivate(token)
        self._note(TokenCompleted, now, token)
        return token

    def cancel(self, token_id: str) -> Token:
        """Cancel a booked, checked-in or waitlisted token; its place is refilled at once.

        O(log n) in the slot's size, plus O(log n) per token the refill moves. Raises
        :class:`InvalidTransitionError` for a token in consultation or already ended.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status not in _CANCELLABLE:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be cancelled: it is {token.status.name}"
                )
            token = self._release(token, TokenStatus.CANCELLED, TokenCancelled, now)
            self._deliver()
            return token

    def no_show(self, token_id: str) -> Token:
        """Mark a booked patient who never came: ``BOOKED`` -> ``NO_SHOW``; refill the place.

        Allowed only once the grace period (``Policies.no_show_grace``) after the slot's
        start has passed; within it, or for any other status, raises
        :class:`InvalidTransitionError`. The patient may still arrive: :meth:`check_in`
        re-queues a late arrival. O(log n) plus the refill.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is not TokenStatus.BOOKED:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be a no-show: it is {token.status.name}, not BOOKED"
                )
            slot = self._slots[token.slot_id]  # type: ignore[index]
            deadline = slot.start + self._policies.no_show_grace
            if now < deadline:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be a no-show before {deadline} "
                    f"(slot start plus the grace period)"
                )
            token = self._release(token, TokenStatus.NO_SHOW, TokenNoShow, now)
            self._deliver()
            return token

    def _release(
        self, token: Token, status: TokenStatus, event: type[TokenEvent], now: datetime
    ) -> Token:
        """End a waiting token's life and refill the place it held."""
        desk = self._desks[token.doctor_id]
        slot = None
        if token.status is TokenStatus.WAITLISTED:
            desk.waitlist.remove(token)
        else:
            slot = self._slots[token.slot_id]  # type: ignore[index]
            slot._remove(token)
            self._sync_present(desk, slot)
        token = self._replace(token, status=status)
        self._deactivate(token)
        self._note(event, now, token)
        if slot is not None:
            self._refill(desk, slot, now)
        return token

    # ================================================================ disruptions

    def delay(self, doctor_id: str, minutes: int) -> None:
        """The doctor runs ``minutes`` late: estimated starts of waiting tokens shift.

        Delays add up over the day. With ``Policies.on_delay`` ``OnDelay.SHIFT`` (the
        default) that is all, O(1). With ``OnDelay.SHRINK`` each whole ``consult_minutes``
        of the total delay also takes one place off the doctor's current slot, then the
        next ones (a slot keeps at least 0); each shrunk slot reports ``SlotResized`` and
        its lowest-ranked waiting non-emergency tokens move on, ``MoveReason.DELAYED``, as
        :meth:`resize` does, O(s + k log n) for s slots and k tokens moved. Raises
        :class:`InvalidArgumentError` for a negative or non-integer ``minutes``.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            check_int("minutes", minutes, minimum=0, maximum=MAX_MINUTES)
            before = desk.delay
            if before + timedelta(minutes=minutes) > timedelta(minutes=MAX_MINUTES):
                raise InvalidArgumentError(
                    f"minutes would make doctor {doctor_id!r} more than a day late in all, "
                    f"got minutes={minutes!r} on top of {before // timedelta(minutes=1)}"
                )
            desk.delay += timedelta(minutes=minutes)
            if self._subscribers:
                self._outbox.append(
                    DoctorDelayed(
                        at=now,
                        doctor_id=doctor_id,
                        minutes=minutes,
                        total_minutes=int(desk.delay / timedelta(minutes=1)),
                    )
                )
            if self._policies.on_delay is OnDelay.SHRINK and desk.available:
                consult = timedelta(minutes=desk.doctor.consult_minutes)
                self._lose_places(desk, desk.delay // consult - before // consult, now)
            self._deliver()

    def _lose_places(self, desk: _Desk, places: int, now: datetime) -> None:
        """Take ``places`` off the doctor's open slots, earliest first, and move the excess."""
        shrunk: list[tuple[Slot, int]] = []
        for slot in desk.slots[bisect_right(desk.ends, now) :]:
            if places == 0:
                break
            taken = min(places, slot.capacity)
            if taken:
                shrunk.append((slot, slot.capacity))
                slot._set_capacity(slot.capacity - taken)
                places -= taken
        # Every capacity is final before anyone moves, so nobody is moved twice.
        for slot, old in shrunk:
            self._resized(desk, slot, old, MoveReason.DELAYED, now)

    def mark_unavailable(self, doctor_id: str) -> None:
        """The doctor stops for the day: their open slots close and every patient moves.

        The doctor's slots that have not ended close to new bookings. Every waiting token
        (each slot's queue in call order, slots in start order, then the waitlist) moves,
        ``MoveReason.REASSIGNED``, to the earliest open slot with room of another available
        doctor of the same department (never another department); failing that, to the
        shortest waitlist among those doctors; failing that, it stays on (or goes to) its
        own doctor's waitlist. A doctor with whom the patient already holds an active token
        is passed over. No token is cancelled, and a reassigned token keeps its id, number
        and ``seq``. The patient in consultation, if any, stays. Marking an unavailable
        doctor again changes nothing. O(k * (d * s + log n)) for k waiting tokens and d
        colleagues with s slots each.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if not desk.available:
                return
            desk.available = False
            if self._subscribers:
                self._outbox.append(DoctorUnavailable(at=now, doctor_id=doctor_id))
            department = desk.doctor.department
            colleagues = [
                d
                for d in self._desks.values()
                if d is not desk and d.available and d.doctor.department == department
            ]
            waiting: list[str] = []
            for slot in desk.slots:
                waiting.extend(slot._present_order(now))
                waiting.extend(slot._absent_order())
            waiting.extend(desk.waitlist)
            for token_id in waiting:
                self._reassign(desk, self._tokens[token_id], colleagues, now)
            self._deliver()

    def _reassign(self, desk: _Desk, token: Token, colleagues: list[_Desk], now: datetime) -> None:
        candidates = [d for d in colleagues if token.patient_id not in d.active]
        emergency = token.priority is Priority.EMERGENCY
        admits = self._policies.capacity.admits
        best: tuple[datetime, int, Slot, _Desk] | None = None
        for rank, colleague in enumerate(candidates):
            for slot in colleague.slots[bisect_right(colleague.ends, now) :]:
                if emergency or admits(slot, token.source, token.priority):
                    if best is None or (slot.start, rank) < best[:2]:
                        best = (slot.start, rank, slot, colleague)
                    break
        if best is not None:
            _, _, slot, colleague = best
            self._move(
                desk, token, slot, MoveReason.REASSIGNED, now, counted=True, to_desk=colleague
            )
            if emergency:
                self._contain_overflow(colleague, slot, now)
        elif candidates:
            colleague = min(candidates, key=lambda d: len(d.waitlist))
            self._move(
                desk, token, None, MoveReason.REASSIGNED, now, counted=True, to_desk=colleague
            )
        elif token.status is not TokenStatus.WAITLISTED:
            self._move(desk, token, None, MoveReason.REASSIGNED, now, counted=True)

    def resize(self, slot_id: str, capacity: int) -> None:
        """Change a slot's capacity.

        Growing fills the new places from the waitlist, then by pulling forward. Shrinking
        moves the lowest-ranked waiting non-emergency tokens (lowest priority, latest
        ``seq``; tokens moved ``max_moves`` times last) on to the doctor's next slot with
        room, else to the waitlist, until the non-emergency tokens fit the new limit; places
        already used by called or completed patients cannot be taken back. O(k log n) for k
        tokens moved.
        """
        with self._lock:
            now = self._now()
            slot = self._slot(slot_id)
            check_int("capacity", capacity, minimum=0)
            desk = self._desks[slot.doctor_id]
            old = slot.capacity
            slot._set_capacity(capacity)
            self._resized(desk, slot, old, MoveReason.RESIZED, now)
            self._refill(desk, slot, now)
            self._deliver()

    def _resized(
        self, desk: _Desk, slot: Slot, old: int, reason: MoveReason, now: datetime
    ) -> None:
        """Report a capacity change and move the tokens a smaller slot no longer holds."""
        if self._subscribers:
            self._outbox.append(
                SlotResized(at=now, slot_id=slot.id, old_capacity=old, capacity=slot.capacity)
            )
        limit = self._policies.capacity.limit(slot.capacity)
        while slot.occupancy - slot.emergencies > limit:
            if not self._displace(desk, slot, reason, now):
                break
        if slot.emergencies:
            self._contain_overflow(desk, slot, now, reason)

    def _contain_overflow(
        self,
        desk: _Desk,
        slot: Slot,
        now: datetime,
        reason: MoveReason = MoveReason.DISPLACED,
    ) -> None:
        """Displace non-emergencies while ``slot`` is past the emergency policy's bound."""
        bound = self._policies.emergency.overflow_limit(slot)
        if bound is None:
            return
        limit = self._policies.capacity.limit(slot.capacity)
        while slot.occupancy - limit > bound:
            if not self._displace(desk, slot, reason, now):
                return

    def _displace(self, desk: _Desk, slot: Slot, reason: MoveReason, now: datetime) -> bool:
        """Move the lowest-ranked displaceable token of ``slot`` onward; False if none."""
        max_moves = self._policies.reallocation.max_moves
        victim = None
        for priority, _, token_id in slot._victims():
            if priority == Priority.EMERGENCY:
                break
            token = self._tokens[token_id]
            if token.moves < max_moves:
                victim = token
                break
            if victim is None:
                victim = token  # protected: only if nobody else can go
        if victim is None:
            return False
        onward = self._first_with_room(desk, victim.source, victim.priority, now, after=slot)
        self._move(desk, victim, onward, reason, now, counted=True)
        return True

    # ================================================================ reallocation

    def _refill(self, desk: _Desk, slot: Slot, now: datetime) -> None:
        """Fill free places of ``slot`` (and of the slots that feeds from) at once."""
        if not desk.available:
            return
        capacity = self._policies.capacity
        pull_forward = self._policies.reallocation.pull_forward
        pending = [slot]
        while pending:
            slot = pending.pop()
            if slot.end <= now:
                continue
            while slot.occupancy < capacity.limit(slot.capacity):
                token = self._from_waitlist(desk, slot)
                if token is not None:
                    self._move(desk, token, slot, MoveReason.FROM_WAITLIST, now, counted=False)
                    continue
                if not pull_forward:
                    break
                source = self._pull_candidate(desk, slot, now)
                if source is None:
                    break
                token_id = source._next(now)
                assert token_id is not None
                self._move(
                    desk,
                    self._tokens[token_id],
                    slot,
                    MoveReason.PULLED_FORWARD,
                    now,
                    counted=True,
                )
                pending.append(source)

    def _from_waitlist(self, desk: _Desk, slot: Slot) -> Token | None:
        admits = self._policies.capacity.admits
        for token_id in desk.waitlist:
            token = self._tokens[token_id]
            if admits(slot, token.source, token.priority):
                return token
        return None

    def _pull_candidate(self, desk: _Desk, slot: Slot, now: datetime) -> Slot | None:
        """The nearest later slot whose next patient ``slot`` admits."""
        admits = self._policies.capacity.admits
        i = bisect_right(desk.present, (slot.start, slot.id))
        for _, later_id in desk.present[i:]:
            later = self._slots[later_id]
            token_id = later._next(now)
            assert token_id is not None
            token = self._tokens[token_id]
            if admits(slot, token.source, token.priority):
                return later
        return None

    def _move(
        self,
        desk: _Desk,
        token: Token,
        to: Slot | None,
        reason: MoveReason,
        now: datetime,
        *,
        counted: bool,
        to_desk: _Desk | None = None,
    ) -> Token:
        """Move a waiting or waitlisted token to ``to`` (None: a waitlist).

        ``to_desk`` is the doctor it moves to, when not its own (reassignment).
        """
        source = None
        if token.status is TokenStatus.WAITLISTED:
            desk.waitlist.remove(token)
        else:
            source = self._slots[token.slot_id]  # type: ignore[index]
            source._remove(token)
            self._sync_present(desk, source)
        arrived = token.checked_in_at is not None
        if to is None:
            status = TokenStatus.WAITLISTED
        else:
            status = TokenStatus.CHECKED_IN if arrived else TokenStatus.BOOKED
        changes: dict[str, Any] = {}
        if to_desk is not None and to_desk is not desk:
            self._deactivate(token)
            changes["doctor_id"] = to_desk.doctor.id
            desk = to_desk
        token = self._replace(
            token,
            slot_id=None if to is None else to.id,
            status=status,
            moves=token.moves + counted,
            **changes,
        )
        if changes:
            self._activate(desk, token)
        if to is None:
            desk.waitlist.add(token)
        else:
            to._add(token, now)
            self._sync_present(desk, to)
        if self._subscribers:
            self._outbox.append(
                TokenMoved(
                    at=now,
                    token=token,
                    from_slot_id=None if source is None else source.id,
                    to_slot_id=token.slot_id,
                    reason=reason,
                )
            )
        return token

    # ================================================================ reading

    def token(self, token_id: str) -> Token:
        """The token with this id. O(1). Raises :class:`UnknownTokenError`."""
        with self._lock:
            return self._token(token_id)

    def slot(self, slot_id: str) -> Slot:
        """The slot with this id. O(1). Raises :class:`UnknownSlotError`."""
        with self._lock:
            return self._slot(slot_id)

    def doctor(self, doctor_id: str) -> Doctor:
        """The doctor with this id. O(1). Raises :class:`UnknownDoctorError`."""
        with self._lock:
            return self._desk(doctor_id).doctor

    def doctors(self) -> list[Doctor]:
        """Every doctor, in the order added. O(d)."""
        with self._lock:
            return [desk.doctor for desk in self._desks.values()]

    def slots(self, doctor_id: str | None = None) -> list[Slot]:
        """The doctor's slots in start order, or every slot (by doctor, then start). O(s)."""
        with self._lock:
            if doctor_id is not None:
                return list(self._desk(doctor_id).slots)
            return [slot for desk in self._desks.values() for slot in desk.slots]

    def tokens(self) -> list[Token]:
        """Every token ever issued, in the order issued. O(n)."""
        with self._lock:
            return list(self._tokens.values())

    def queue(self, slot_id: str) -> list[Token]:
        """The slot's waiting tokens in call order, as of ``clock()``. O(n).

        Checked-in patients come first, in the order the ordering policy would call them
        now; then the booked patients not yet arrived, in ``(priority, seq)`` order (they
        join the call order when they check in).
        """
        with self._lock:
            now = self._now()
            slot = self._slot(slot_id)
            tokens = self._tokens
            present = [tokens[i] for i in slot._present_order(now)]
            return present + [tokens[i] for i in slot._absent_order()]

    def waitlist(self, doctor_id: str) -> list[Token]:
        """The doctor's waitlisted tokens in ``(priority, seq)`` order. O(n)."""
        with self._lock:
            desk = self._desk(doctor_id)
            return [self._tokens[i] for i in desk.waitlist]

    def position(self, token_id: str) -> int:
        """1-based place of a waiting token in its slot's :meth:`queue` or its waitlist.

        O(log n) under the shipped lexicographic orderings (``StrictPriority``, ``Aging``),
        O(n) otherwise. Raises :class:`InvalidTransitionError` for a token that is not
        waiting (in consultation or ended).
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is TokenStatus.WAITLISTED:
                return self._desks[token.doctor_id].waitlist.position(token)
            if token.status not in _WAITING:
                raise InvalidTransitionError(
                    f"token {token_id!r} has no position: it is {token.status.name}"
                )
            return self._slots[token.slot_id]._position(token, now)  # type: ignore[index]

    def estimated_start(self, token_id: str) -> datetime | None:
        """When the patient should be seen, or None if the token is not waiting in a slot.

        ``max(slot.start + delay, now) + (position - 1) * consult_minutes``, where ``delay``
        is the doctor's accumulated :meth:`delay`. O(log n) under the shipped lexicographic
        orderings, O(n) otherwise (the cost of :meth:`position`).
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status not in _WAITING:
                return None
            slot = self._slots[token.slot_id]  # type: ignore[index]
            desk = self._desks[token.doctor_id]
            position = slot._position(token, now)
            begin = max(slot.start + desk.delay, now)
            return begin + (position - 1) * timedelta(minutes=desk.doctor.consult_minutes)

    def records(self) -> list[dict[str, object]]:
        """One row per token, in the order issued, ready for ``pandas.DataFrame``. O(n).

        Keys are the :class:`Token` fields; enums appear by name, datetimes as datetimes.
        """
        with self._lock:
            names = [a.name for a in attrs.fields(Token)]
            rows = []
            for token in self._tokens.values():
                row: dict[str, object] = {}
                for name in names:
                    value = getattr(token, name)
                    row[name] = value.name if isinstance(value, Enum) else value
                rows.append(row)
            return rows

    # ================================================================ persistence

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a versioned, JSON-safe dict (``json.dumps`` takes it). O(n).

        Restore it with :meth:`from_snapshot`. Policies, the clock and subscribers are not
        state and are not included.
        """
        with self._lock:
            return _snapshot.dump(self)

    @classmethod
    def from_snapshot(
        cls,
        data: Mapping[str, Any],
        *,
        policies: Policies | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Allocator:
        """Rebuild an allocator from :meth:`snapshot` output. O(n log n).

        The result has the same doctors, slots, tokens, queues, waitlists, numbering and
        next ``seq``, and carries on exactly as the original would under the same policies
        and clock. Unknown formats or versions, and malformed or inconsistent data, raise
        :class:`InvalidArgumentError` saying what is wrong.
        """
        return _snapshot.load(data, policies=policies, clock=clock, factory=cls)

    # ================================================================ invariants

    def check_invariants(self) -> None:
        """Assert every invariant of the allocator's state; raise ``AssertionError`` naming
        the broken one. O(n log n). Meant for tests; it changes nothing.

        Checked: every token is in exactly one place (a slot's queue, its doctor's waitlist,
        the doctor's consultation, or a terminal state) and its fields say so; queues and
        waitlists are sorted on ``(priority, seq)``; slot counters match the tokens; no slot
        holds more non-emergency tokens than its capacity policy's limit unless none of them
        can be moved; no patient holds two active non-emergency tokens with one doctor;
        ids, ``seq`` and per-doctor numbers are unique; every index agrees with the tokens.
        """
        with self._lock:
            self._check_invariants()

    def _check_invariants(self) -> None:
        def require(ok: object, name: str, detail: str) -> None:
            if not ok:
                raise AssertionError(f"invariant {name!r} broken: {detail}")

        tokens = self._tokens
        placed: dict[str, str] = {}

        def place(token_id: str, where: str) -> None:
            require(
                token_id not in placed,
                "one place per token",
                f"token {token_id!r} is in {placed.get(token_id)} and in {where}",
            )
            placed[token_id] = where

        for desk in self._desks.values():
            doctor_id = desk.doctor.id
            starts = [slot.start for slot in desk.slots]
            require(starts == sorted(starts), "slots in start order", doctor_id)
            require(desk.ends == [slot.end for slot in desk.slots], "slot ends index", doctor_id)
            for a, b in zip(desk.slots, desk.slots[1:], strict=False):
                require(a.end <= b.start, "slots never overlap", f"{a.id!r} and {b.id!r}")
            keys = list(desk.waitlist._keys)
            require(keys == sorted(keys), "waitlist sorted", doctor_id)
            for priority, seq, token_id in keys:
                token = tokens.get(token_id)
                require(token is not None, "waitlist holds issued tokens", token_id)
                assert token is not None
                require(
                    (token.priority, token.seq, token.doctor_id, token.status, token.slot_id)
                    == (priority, seq, doctor_id, TokenStatus.WAITLISTED, None),
                    "waitlist entries match their tokens",
                    repr(token),
                )
                place(token_id, f"the waitlist of {doctor_id!r}")
            if desk.current is not None:
                token = tokens[desk.current]
                require(
                    token.status is TokenStatus.IN_CONSULTATION and token.doctor_id == doctor_id,
                    "current consultation",
                    repr(token),
                )
                place(token.id, f"consultation with {doctor_id!r}")
            with_present = sorted((s.start, s.id) for s in desk.slots if s.present)
            require(desk.present == with_present, "present-slot index", doctor_id)
            require(desk.present_ids == {i for _, i in with_present}, "present-slot ids", doctor_id)
            with_urgent = sorted(
                {
                    (self._slots[t.slot_id].start, t.slot_id)
                    for t in tokens.values()
                    if t.doctor_id == doctor_id
                    and t.status is TokenStatus.CHECKED_IN
                    and t.priority is Priority.EMERGENCY
                    and t.slot_id is not None
                }
            )
            require(desk.urgent == with_urgent, "present-emergency index", doctor_id)
            require(
                desk.urgent_ids == {i for _, i in with_urgent}, "present-emergency ids", doctor_id
            )
            for slot in desk.slots:
                self._check_slot(desk, slot, require, place)
            numbers = [t.number for t in tokens.values() if t.id.rsplit("-", 1)[0] == doctor_id]
            require(len(numbers) == len(set(numbers)), "numbers unique per doctor", doctor_id)
            require(desk.issued >= max(numbers, default=0), "number counter", doctor_id)

        seqs = [t.seq for t in tokens.values()]
        require(len(seqs) == len(set(seqs)), "seq unique", "two tokens share a seq")
        require(self._seq >= max(seqs, default=0), "seq counter", str(self._seq))
        active: dict[tuple[str, str], list[str]] = {}
        for token in tokens.values():
            where = placed.get(token.id)
            if token.status in _WAITING or token.status is TokenStatus.WAITLISTED:
                require(where is not None, "no token lost", f"{token!r} is in no queue")
            elif token.status is TokenStatus.IN_CONSULTATION:
                require(where is not None, "no token lost", f"{token!r} is not in consultation")
            else:
                require(where is None, "ended tokens hold no place", f"{token!r} in {where}")
            require(
                (token.checked_in_at is not None) or token.status is not TokenStatus.CHECKED_IN,
                "checked-in tokens have checked_in_at",
                repr(token),
            )
            if token.status.active:
                active.setdefault((token.patient_id, token.doctor_id), []).append(token.id)
        indexed = {
            (patient, desk.doctor.id): sorted([held] if isinstance(held, str) else held)
            for desk in self._desks.values()
            for patient, held in desk.active.items()
        }
        require(
            {k: sorted(v) for k, v in active.items()} == indexed,
            "active-booking index",
            "index differs from the tokens",
        )
        require(
            all(
                isinstance(h, str) or len(h) > 1
                for d in self._desks.values()
                for h in d.active.values()
            ),
            "active-booking index",
            "a single active token is stored as its id",
        )
        for (_, doctor), ids in active.items():
            normal = [i for i in ids if tokens[i].priority is not Priority.EMERGENCY]
            require(
                len(normal) <= 1,
                "one active token per patient and doctor",
                f"patient holds {normal} with doctor {doctor!r}",
            )

    def _check_slot(
        self,
        desk: _Desk,
        slot: Slot,
        require: Callable[[object, str, str], None],
        place: Callable[[str, str], None],
    ) -> None:
        tokens = self._tokens
        ordering = self._policies.ordering
        waiting = list(slot._waiting)
        require(waiting == sorted(waiting), "queue sorted on (priority, seq)", slot.id)
        absent = list(slot._absent)
        require(absent == sorted(absent), "booked list sorted", slot.id)
        for priority, seq, token_id in waiting:
            token = tokens[token_id]
            require(
                (token.priority, token.seq, token.slot_id, token.doctor_id)
                == (priority, seq, slot.id, slot.doctor_id),
                "queue entries match their tokens",
                repr(token),
            )
            require(token.status in _WAITING, "queue holds waiting tokens", repr(token))
            filed = token_id in slot._filed
            require(
                filed == (token.status is TokenStatus.CHECKED_IN),
                "checked-in tokens are filed for calling",
                repr(token),
            )
            place(token_id, f"slot {slot.id!r}")
        require(
            set(absent) == {k for k in waiting if k[2] not in slot._filed},
            "booked list is the not-arrived part of the queue",
            slot.id,
        )
        require(set(slot._filed) <= {k[2] for k in waiting}, "filed tokens wait", slot.id)
        filed_count = 0
        for level, entries in slot._levels.items():
            require(len(entries) > 0, "no empty levels", slot.id)
            listed = list(entries)
            require(listed == sorted(listed), "levels sorted by key", slot.id)
            for entry in listed:
                token = tokens[entry[1]]
                require(
                    slot._filed[entry[1]][:2] == (level, entry) and entry[0] == ordering.key(token),
                    "ordering index matches its tokens",
                    repr(token),
                )
                filed_count += 1
        require(filed_count == len(slot._filed), "ordering index complete", slot.id)
        pending = {c for _, _, c in slot._filed.values() if c is not None}
        require(pending <= set(slot._changes), "level changes scheduled", slot.id)
        heap = slot._changes
        require(
            all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))),
            "level changes form a heap",
            slot.id,
        )
        done = [
            t
            for t in tokens.values()
            if t.slot_id == slot.id
            and t.status in (TokenStatus.IN_CONSULTATION, TokenStatus.COMPLETED)
        ]
        require(slot._done == len(done), "occupancy counts called patients", slot.id)
        holders = [tokens[k[2]] for k in waiting] + done
        emergencies = sum(1 for t in holders if t.priority is Priority.EMERGENCY)
        require(slot.emergencies == emergencies, "emergency count", slot.id)
        for source in Source:
            count = sum(
                1 for t in holders if t.source is source and t.priority is not Priority.EMERGENCY
            )
            require(slot.held_by(source) == count, "per-source count", f"{slot.id} {source}")
        normal_waiting = any(tokens[k[2]].priority is not Priority.EMERGENCY for k in waiting)
        limit = self._policies.capacity.limit(slot.capacity)
        require(
            len(holders) - emergencies <= limit or not normal_waiting,
            "non-emergency tokens within the capacity limit",
            f"slot {slot.id!r} holds {len(holders) - emergencies} of {limit}",
        )

    # ================================================================ events

    def subscribe(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event from now on; returns an unsubscribe.

        Events of a call are delivered in order once the call's change is complete, still
        under the allocator's lock, so every subscriber sees one consistent sequence. A
        subscriber may call the allocator; the events of that nested call are delivered
        after the ones already pending. An exception from a subscriber is logged on the
        ``opd_engine`` logger and swallowed: the change it reports has already happened.
        O(1); unsubscribing is O(number of subscribers) and idempotent.
        """
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, got callback={callback!r}")
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _note(self, kind: type[TokenEvent], now: datetime, token: Token) -> None:
        if self._subscribers:
            self._outbox.append(kind(at=now, token=token))

    def _deliver(self) -> None:
        if self._delivering or not self._outbox:
            return
        self._delivering = True
        try:
            outbox = self._outbox
            while outbox:
                event = outbox.popleft()
                for callback in tuple(self._subscribers):
                    _notify(callback, event)
        finally:
            self._delivering = False

    # ================================================================ internals

    def _now(self, aware: bool | None = None) -> datetime:
        """Read the clock once, checking it matches the slots' awareness."""
        now = self._clock()
        if not isinstance(now, datetime):
            raise InvalidArgumentError(f"clock must return a datetime, got {now!r}")
        if aware is None:
            aware = self._aware
        if aware is not None and (now.tzinfo is not None) != aware:
            kind = "aware" if aware else "naive"
            raise InvalidArgumentError(
                f"clock must return {kind} datetimes like the slots, got {now!r}"
            )
        return now

    def _desk(self, doctor_id: object) -> _Desk:
        desk = self._desks.get(doctor_id) if isinstance(doctor_id, str) else None
        if desk is None:
            check_id("doctor_id", doctor_id)
            raise UnknownDoctorError(f"unknown doctor_id={doctor_id!r}")
        return desk

    def _slot(self, slot_id: object) -> Slot:
        slot = self._slots.get(slot_id) if isinstance(slot_id, str) else None
        if slot is None:
            check_id("slot_id", slot_id)
            raise UnknownSlotError(f"unknown slot_id={slot_id!r}")
        return slot

    def _token(self, token_id: object) -> Token:
        token = self._tokens.get(token_id) if isinstance(token_id, str) else None
        if token is None:
            check_id("token_id", token_id)
            raise UnknownTokenError(f"unknown token_id={token_id!r}")
        return token

    def _replace(self, token: Token, **changes: Any) -> Token:
        """A copy of ``token`` with ``changes``, stored as the current token."""
        new = copy_token(token, changes)
        self._tokens[token.id] = new
        return new

    def _held(self, desk: _Desk, patient_id: str) -> str | None:
        """The patient's active token with the doctor (a non-emergency one first). O(1)."""
        held = desk.active.get(patient_id)
        if held is None or isinstance(held, str):
            return held
        tokens = self._tokens
        return min(held, key=lambda i: (tokens[i].priority is Priority.EMERGENCY, tokens[i].seq))

    def _activate(self, desk: _Desk, token: Token) -> None:
        """Index ``token`` as one of its patient's active tokens with ``desk``'s doctor."""
        held = desk.active.get(token.patient_id)
        if held is None:
            desk.active[token.patient_id] = token.id
        else:
            desk.active[token.patient_id] = (held if isinstance(held, tuple) else (held,)) + (
                token.id,
            )

    def _deactivate(self, token: Token) -> None:
        """Drop ``token`` from the index of its doctor (the one in ``token.doctor_id``)."""
        active = self._desks[token.doctor_id].active
        held = active[token.patient_id]
        if isinstance(held, str):
            del active[token.patient_id]
            return
        rest = tuple(i for i in held if i != token.id)
        active[token.patient_id] = rest[0] if len(rest) == 1 else rest

    def _sync_present(self, desk: _Desk, slot: Slot) -> None:
        """Keep ``desk.present`` = the doctor's slots with a checked-in patient waiting, and
        ``desk.urgent`` = those with a checked-in emergency waiting. O(log n + s)."""
        key = (slot._start, slot._id)
        has = len(slot._filed) > 0
        if has != (slot._id in desk.present_ids):
            if has:
                desk.present_ids.add(slot._id)
                insort(desk.present, key)
            else:
                desk.present_ids.discard(slot._id)
                desk.present.remove(key)
        urgent = has and slot._emergencies > 0 and slot._present_emergencies() > 0
        if urgent != (slot._id in desk.urgent_ids):
            if urgent:
                desk.urgent_ids.add(slot._id)
                insort(desk.urgent, key)
            else:
                desk.urgent_ids.discard(slot._id)
                desk.urgent.remove(key)
