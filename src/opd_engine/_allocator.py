"""The Allocator: the facade and the one stateful object.

It holds the lock, looks ids up, delivers events and moves tokens between doctors; every
rule within one doctor's day lives in :mod:`opd_engine._desk`, and the policies decide.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Concatenate, ParamSpec, TypeVar, final
from zoneinfo import ZoneInfo

import attrs

from . import _build, _display, _estimate, _guard, _invariants, _journal, _snapshot
from ._board import DoctorBoard, board_of
from ._check import (
    EARLIEST,
    LATEST,
    MAX_ID_LENGTH,
    MAX_MINUTES,
    check_bool,
    check_enum,
    check_id,
    check_int,
    check_str,
)
from ._codec import token_row
from ._desk import Desk, full, with_arrival, with_status
from ._estimate import WaitEstimate
from ._ledger import (
    DRAFT,
    Day,
    NotifyingDay,
    Subscription,
    draft_booked,
    draft_checked_in,
    draft_waitlisted,
)
from ._slot import Slot, SlotView
from ._values import (
    AWAY,
    BOOKED,
    CANCELLABLE,
    CANCELLED,
    CHECKED_IN,
    EMERGENCY,
    IN_CONSULTATION,
    NO_SHOW,
    UNSEEN,
    WAITING,
    WAITLISTED,
    WALK_IN,
    Doctor,
    Priority,
    Source,
    Token,
    TokenStatus,
    check_priority,
    new_token,
    token_id,
)
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
    DayEnded,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorPaused,
    DoctorResumed,
    DoctorUnavailable,
    Event,
    MoveReason,
    SlotAdded,
    SlotClosed,
    TokenCallMissed,
    TokenCancelled,
    TokenDue,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenRetriaged,
    TokenSteppedOut,
    TokenUnseen,
)
from .policies import Duplicates, OnDelay, Policies

__all__ = ["Allocator"]

#: At most this many slots in SlotFullError.alternatives.
_ALTERNATIVES = 5
_DEFAULT_PRIORITY = {source: source.default_priority for source in Source}


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


R = TypeVar("R")
A = ParamSpec("A")


def _atomic(
    method: Callable[Concatenate[Allocator, A], R],
) -> Callable[Concatenate[Allocator, A], R]:
    """Make ``method`` all or nothing when a user's policy could fail half-way: the changes
    it made and the events it queued are undone before its exception goes on. With the
    shipped policies only, there is nothing to undo and nothing is recorded.

    The five hot calls (book, check_in, call_next, complete, cancel) inline this wrapper as
    their first lines, ``if guarded and not recording: return _atomically(...)``: the
    wrapper's own call costs them as much as their undo primitives."""

    @functools.wraps(method)
    def call(self: Allocator, /, *args: A.args, **kwargs: A.kwargs) -> R:
        if not self._day.guarded:
            return method(self, *args, **kwargs)
        return self._atomically(method, self, *args, **kwargs)

    return call


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Allocator:
    """Allocates OPD tokens to doctors' slots with elastic capacity, for one OPD day.

    ``Allocator(policies=None, clock=None)``: ``policies`` defaults to :class:`Policies`
    (hard limit, unbounded emergency overflow, waitlist-then-pull-forward reallocation with
    the idle-fill rule, aging), ``clock`` to :meth:`datetime.datetime.now`. Inject a clock
    for deterministic behaviour; every decision depends only on the clock and the sequence
    of calls. All slots start on one calendar date: a host that books days ahead keeps one
    allocator per date.

    Ids are non-empty strings of at most 128 characters, without surrounding whitespace,
    control characters or lone surrogates: an argument that is not one raises
    :class:`InvalidArgumentError` naming it, and a well-formed id that is not there the
    matching :class:`NotFoundError`. An id given as a ``str`` subclass, or a number as an
    ``int`` subclass (an ``IntEnum`` member), is stored and journalled as the plain
    ``str`` or ``int``.

    Every public method holds one re-entrant lock, so the allocator may be shared between
    threads. A call that raises changes nothing. Subscribers receive the events of a call
    once it has completed; an exception raised by a subscriber is logged on the
    ``opd_engine`` logger and does not reach the caller.
    """

    _policies: Policies = attrs.field(default=None, converter=_to_policies)
    _clock: Callable[[], datetime] = attrs.field(default=None, converter=_to_clock)

    _day: Day = attrs.field(init=False)
    # The day's registers and lock, under the names the facade reads them by.
    _desks: dict[str, Desk] = attrs.field(init=False)
    _slots: dict[str, Slot] = attrs.field(init=False)
    _lock: threading.RLock = attrs.field(init=False)

    @_day.default
    def _new_day(self) -> Day:
        # Chosen once: a day that sends due notices notes the doctors each call touches.
        kind = NotifyingDay if self._policies.notify_within else Day
        checked = _guard.checked(self._policies)
        if checked is None:
            return kind(self._policies)
        return kind(checked, guarded=True)

    @_desks.default
    def _day_desks(self) -> dict[str, Desk]:
        return self._day.desks

    @_slots.default
    def _day_slots(self) -> dict[str, Slot]:
        return self._day.slots

    @_lock.default
    def _day_lock(self) -> threading.RLock:
        return self._day.lock

    @property
    def policies(self) -> Policies:
        """The policies given at construction (read-only). O(1)."""
        return self._policies

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock given at construction, else :meth:`datetime.datetime.now`; read-only. O(1)."""
        return self._clock

    @property
    def version(self) -> int:
        """The number of changes so far. O(1).

        Every call that changes something (``add_doctor`` and ``add_slot`` included) adds
        one; a call that raises or changes nothing leaves it. Every event carries the
        version after the call that emitted it; :meth:`snapshot` keeps it.
        """
        return self._day.version

    @property
    def _tokens(self) -> dict[str, Token]:
        return self._day.tokens

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

    @_atomic
    def add_doctor(self, doctor: Doctor) -> None:
        """Add a doctor. O(1).

        Raises :class:`InvalidArgumentError` if ``doctor`` is not a :class:`Doctor` or its
        id is taken. Emits :class:`DoctorAdded`.
        """
        with self._lock:
            if not isinstance(doctor, Doctor):
                raise InvalidArgumentError(f"doctor must be a Doctor, got doctor={doctor!r}")
            now = self._now()
            _build.add_doctor(self._day, doctor)
            self._day.record(DoctorAdded, now, doctor=doctor)
            self._commit()

    @_atomic
    def add_slot(self, slot: Slot) -> None:
        """Add a slot to its doctor's day, then fill it from the waitlist. O(s + log n).

        ``s`` is the number of the doctor's slots. Raises :class:`UnknownDoctorError` for an
        unknown doctor and :class:`InvalidArgumentError` for a duplicate id, a slot that
        overlaps another of the doctor's, a slot already added to an allocator, datetimes
        whose awareness (naive or aware) differs from the slots already added, a start
        on another calendar date than the other slots (an allocator is one OPD day), or a
        doctor whose day has ended (:meth:`end_day` closed it for good).
        Emits :class:`SlotAdded`.
        """
        with self._lock:
            if not isinstance(slot, Slot):
                raise InvalidArgumentError(f"slot must be a Slot, got slot={slot!r}")
            desk = self._desk(slot.doctor_id)
            if desk.ended:
                raise InvalidArgumentError(
                    f"slot {slot.id!r} cannot be added: doctor {desk.doctor.id!r} has ended the day"
                )
            i = _build.fit(self._day, slot, desk)
            if slot._attached():
                raise InvalidArgumentError(
                    f"slot {slot.id!r} already belongs to an allocator; create a new Slot"
                )
            now = self._now(slot.start.tzinfo is not None)
            _build.attach(self._day, slot, desk, i)
            self._day.touch(desk.doctor.id)  # where idle-fill seats may change
            self._day.record(
                SlotAdded,
                now,
                slot_id=slot.id,
                doctor_id=slot.doctor_id,
                start=slot.start,
                end=slot.end,
                capacity=slot.capacity,
            )
            desk.refill(slot, now)
            self._commit()

    # ================================================================ booking

    def book(
        self,
        patient_id: str,
        doctor_id: str,
        slot_id: str | None = None,
        *,
        source: Source = WALK_IN,
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
        that ``Policies.duplicates`` counts (not for emergencies), :class:`SlotClosedError`
        for an ended or closed slot or an unavailable doctor, :class:`SlotFullError` under
        ``OnFull.REJECT`` (its ``alternatives`` name up to 5 slots with room, found in
        O(d * s) on that error path only), and :class:`InvalidArgumentError` or a
        :class:`NotFoundError` for bad arguments.
        """
        day = self._day
        if day.guarded and not day.undo.recording:  # @_atomic, inlined
            return self._atomically(
                self.book,
                patient_id,
                doctor_id,
                slot_id,
                source=source,
                priority=priority,
                checked_in=checked_in,
            )
        with self._lock:
            now = self._now()
            # The checks inline their common case (a plain str of printable characters, a
            # member) and leave the rest, and the error messages, to the check functions.
            if (
                patient_id.__class__ is not str
                or not patient_id
                or len(patient_id) > MAX_ID_LENGTH
                or not patient_id.isprintable()
                or patient_id != patient_id.strip()
            ):
                patient_id = check_id("patient_id", patient_id)
            if doctor_id.__class__ is not str:
                doctor_id = check_id("doctor_id", doctor_id)
            desk = self._desk(doctor_id)
            kind: object = source.__class__  # typed object: a caller may pass anything
            if kind is not Source:
                check_enum("source", source, Source)
            if priority is None:
                priority = _DEFAULT_PRIORITY[source]
            else:
                level: object = priority.__class__
                if level is not Priority:
                    check_priority("priority", priority)
            emergency = priority is EMERGENCY
            if checked_in is None:
                checked_in = emergency or source is WALK_IN
            else:
                check_bool("checked_in", checked_in)
            slot = None
            if slot_id is not None:
                slot = self._slot(slot_id)
                if slot._doctor_id != doctor_id:
                    raise InvalidArgumentError(
                        f"slot {slot_id!r} belongs to doctor {slot.doctor_id!r}, "
                        f"got doctor_id={doctor_id!r}"
                    )
            if not emergency and patient_id in day.active:
                self._refuse_duplicate(patient_id, desk.doctor, None)
            try:
                target = desk.choose(slot, source, priority, now)
            except SlotFullError as error:
                raise SlotFullError(
                    str(error),
                    self._alternatives(desk, slot, patient_id, None, source, priority, now),
                ) from None
            # ---- validated: from here on only a user's policy may raise (and is undone).
            seq = day.next_seq()
            number = desk.issue()
            new_id = token_id(doctor_id, number)
            token = new_token(
                new_id,
                patient_id,
                doctor_id,
                None if target is None else target._id,
                priority,
                source,
                seq,
                number,
                (WAITLISTED if target is None else CHECKED_IN if checked_in else BOOKED),
                now,
                now if checked_in else None,
                0,  # moves
                0,  # missed_calls
                None,  # called_at
                None,  # completed_at
            )
            day.enter(token)
            if target is None:
                desk.waitlist.add(token)
                if day.subscribers:
                    day.pending.append(draft_waitlisted(now, token))
            else:
                target._add(token, now)
                if checked_in:
                    desk.joined(target, token)
                if day.subscribers:
                    day.pending.append(draft_booked(now, token))
                if emergency:
                    desk.contain_overflow(target, now)
            self._commit()
            return day.tokens[new_id]  # as it stands after subscribers' calls

    def _refuse_duplicate(self, patient_id: str, doctor: Doctor, exclude: str | None) -> None:
        """Raise :class:`DuplicateBookingError` if the duplicate rule counts another active
        token of the patient against a token with ``doctor``. O(1) for one held token."""
        held = self._day.duplicate(patient_id, doctor, exclude)
        if held is not None:
            rule = self._policies.duplicates
            where = "" if rule is Duplicates.PER_DOCTOR else f" (duplicate rule {rule.name})"
            raise DuplicateBookingError(
                f"patient already holds active token {held!r} with doctor "
                f"{self._day.tokens[held].doctor_id!r}{where}",
                held,
            )

    def _alternatives(
        self,
        desk: Desk,
        slot: Slot | None,
        patient_id: str,
        exclude: str | None,
        source: Source,
        priority: Priority,
        now: datetime,
    ) -> tuple[str, ...]:
        """Up to 5 slot ids that would admit the refused token now: the doctor's later open
        slots, then the department's (start order, then doctor id), passing over doctors
        the duplicate rule refuses and the slot the token ``exclude`` already holds (a
        refused reschedule). O(d * s)."""
        admits = self._day.policies.capacity.admits
        held = None if exclude is None else self._day.tokens[exclude].slot_id
        found = [
            s.id for s in desk.open_slots(now, slot) if s.id != held and admits(s, source, priority)
        ]
        if len(found) < _ALTERNATIVES:
            department = desk.doctor.department
            duplicate = self._day.duplicate
            others = sorted(
                (s._at, d.doctor.id, s.id)
                for d in self._desks.values()
                if d is not desk
                and d.available
                and d.doctor.department == department
                and duplicate(patient_id, d.doctor, exclude) is None
                for s in d.open_slots(now)
                if s.id != held and admits(s, source, priority)
            )
            found.extend(slot_id for _, _, slot_id in others)
        return tuple(found[:_ALTERNATIVES])

    # ================================================================ the day

    def check_in(self, token_id: str) -> Token:
        """Record the patient's arrival.

        ``BOOKED`` becomes ``CHECKED_IN``; a waitlisted token stays ``WAITLISTED`` but
        records ``checked_in_at``; a ``NO_SHOW`` is a late arrival: re-queued with a new
        ``seq`` into the doctor's current slot, or if that is full the earliest later open
        slot with room, or waitlisted if no slot can take it (an emergency always joins the
        current slot, within the emergency policy). If the doctor is unavailable, the late
        arrival is placed as :meth:`mark_unavailable` places a waiting token (a colleague of
        the same department first). O(log n), plus a walk over the doctor's full slots (and
        the colleagues', O(d * s)) for a late arrival.
        Raises :class:`InvalidTransitionError` for any other status (already checked in,
        in consultation, completed, cancelled), and :class:`DuplicateBookingError` for a late
        arrival whose patient has meanwhile booked again.
        """
        if self._day.guarded and not self._day.undo.recording:  # @_atomic, inlined
            return self._atomically(self.check_in, token_id)
        with self._lock:
            now = self._now()
            day = self._day
            token = self._token(token_id)
            desk = self._desks[token.doctor_id]
            status = token.status
            if status is BOOKED:
                slot = self._slots[token.slot_id]  # type: ignore[index]
                token = day.put(token, with_arrival(token, CHECKED_IN, now))
                slot._arrive(token, now)
                desk.joined(slot, token)
            elif status is WAITLISTED and token.checked_in_at is None:
                token = day.replace(token, checked_in_at=now)
                desk.waitlist.arrive(token)
            elif status is AWAY:
                token = desk.come_back(token, now)
            elif status is NO_SHOW:
                if desk.ended:
                    raise SlotClosedError(
                        f"token {token_id!r} cannot check in late: doctor "
                        f"{desk.doctor.id!r} has ended the day"
                    )
                token = self._late_arrival(desk, token, now)
            else:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot check in: it is {token.status.name}"
                    + (" and already checked in" if token.checked_in_at else "")
                )
            if day.subscribers:
                day.pending.append(draft_checked_in(now, token))
            self._commit()
            return self._day.tokens[token.id]  # as it stands after subscribers' calls

    def _late_arrival(self, desk: Desk, token: Token, now: datetime) -> Token:
        day = self._day
        emergency = token.priority is EMERGENCY
        if not emergency:
            self._refuse_duplicate(token.patient_id, desk.doctor, token.id)
        to_desk = desk
        if not desk.available:
            found = self._destination(desk, token, self._colleagues(desk), now)
            to_desk, target = found if found is not None else (desk, None)
        elif emergency:
            target = desk.emergency_slot(now)
        else:
            target = desk.first_with_room(token.source, token.priority, now)
        # ---- validated
        missed = token.slot_id
        token = day.replace(
            token,
            seq=day.next_seq(),
            doctor_id=to_desk.doctor.id,
            slot_id=None if target is None else target.id,
            status=WAITLISTED if target is None else CHECKED_IN,
            checked_in_at=now,
        )
        day.activate(token)
        to_desk.place(token, target, now)
        day.record(
            TokenMoved,
            now,
            token=token,
            from_slot_id=missed,
            to_slot_id=token.slot_id,
            reason=MoveReason.LATE_ARRIVAL,
        )
        if target is not None and emergency:
            to_desk.contain_overflow(target, now)
        return token

    def call_next(self, doctor_id: str) -> Token | None:
        """Complete the doctor's current consultation, then call the next patient.

        A checked-in emergency goes first, wherever it waits: the emergencies rank by
        earliest slot, then ``seq``. One on the doctor's waitlist (where an emergency waits
        only if no open slot could take it) ranks as if it waited in the slot the idle-fill
        rule seats it in, and is seated there and called, even with ``fill_idle=False``.
        One in a slot is called from the doctor's earliest slot, in start order, holding
        one: the first checked-in token of that slot's standing order (under
        ``AccumulatingPriority`` it still competes by rate within its slot). Without a
        present emergency, the next patient is the first checked-in token of the standing
        order of the earliest slot with anyone checked in. Booked patients who have not
        arrived are skipped. If no checked-in patient waits in any of the doctor's slots,
        the idle-fill rule (``Reallocation.fill_idle``, on by default) seats the first
        present patient of the doctor's waitlist in the current slot (the one containing
        now, else the latest that has started, else the next to start; if that one was
        closed with :meth:`close_slot`, the earliest open slot that has not ended, and with
        none nobody), over its capacity if need be, and calls them. Returns the called
        token (``IN_CONSULTATION``), or None if nobody present is waiting. O(log n) in the
        slot's size.
        """
        if self._day.guarded and not self._day.undo.recording:  # @_atomic, inlined
            return self._atomically(self.call_next, doctor_id)
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if desk.ended or desk.paused_at is not None or not desk.available:
                if desk.ended:
                    return None
                self._refuse_call(desk)
            finished = desk.current is not None
            called = desk.call(now)
            if finished or called is not None:
                self._commit()
            return None if called is None else self._day.tokens[called.id]

    def complete(self, token_id: str) -> Token:
        """End a consultation: ``IN_CONSULTATION`` -> ``COMPLETED``. O(1).

        Raises :class:`InvalidTransitionError` for any other status.
        """
        if self._day.guarded and not self._day.undo.recording:  # @_atomic, inlined
            return self._atomically(self.complete, token_id)
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is not IN_CONSULTATION:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot complete: it is {token.status.name}, "
                    "not IN_CONSULTATION"
                )
            desk = self._desks[token.doctor_id]
            token = desk.finish(token, now)
            desk.set_current(None)
            self._commit()
            return self._day.tokens[token.id]  # as it stands after subscribers' calls

    def cancel(self, token_id: str, reason: str = "") -> Token:
        """Cancel a booked, checked-in, away or waitlisted token; its place is refilled at
        once. :class:`TokenCancelled` keeps ``reason`` (any text without control
        characters; empty by default).

        O(log n) in the slot's size, plus O(log n) per token the refill moves. Raises
        :class:`InvalidTransitionError` for a token in consultation or already ended, and
        :class:`InvalidArgumentError` for a ``reason`` that is not such a str.
        """
        if self._day.guarded and not self._day.undo.recording:  # @_atomic, inlined
            return self._atomically(self.cancel, token_id, reason)
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if reason.__class__ is not str or (reason and not reason.isprintable()):
                reason = check_str("reason", reason)
            if token.status not in CANCELLABLE:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be cancelled: it is {token.status.name}"
                )
            token = self._release(token, CANCELLED, TokenCancelled, now, reason)
            self._commit()
            return self._day.tokens[token.id]  # as it stands after subscribers' calls

    @_atomic
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
            if token.status is not BOOKED:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be a no-show: it is {token.status.name}, not BOOKED"
                )
            slot = self._slots[token.slot_id]  # type: ignore[index]
            deadline = slot._at + self._policies.no_show_grace
            if now < deadline:
                if now.tzinfo is not None:
                    deadline = deadline.astimezone(now.tzinfo)
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be a no-show before {deadline} "
                    f"(slot start plus the grace period)"
                )
            token = self._release(token, NO_SHOW, TokenNoShow, now)
            self._commit()
            return self._day.tokens[token.id]  # as it stands after subscribers' calls

    def _release(
        self,
        token: Token,
        status: TokenStatus,
        event: type[TokenEvent],
        now: datetime,
        reason: str | None = None,
    ) -> Token:
        """End a waiting token's life and refill the place it held (``reason``: that of a
        cancellation)."""
        day = self._day
        desk = self._desks[token.doctor_id]
        slot = desk.unplace(token)
        token = day.put(token, with_status(token, status))
        day.deactivate(token)
        if day.subscribers:
            if reason is None:
                day.pending.append(DRAFT[event](now, token))
            else:
                day.pending.append(DRAFT[event](now, token, reason))
        if slot is not None:
            desk.refill(slot, now)
        return token

    # ================================================================ the front desk

    @_atomic
    def reschedule(self, token_id: str, slot_id: str) -> Token:
        """Move a waiting token (``BOOKED``, ``CHECKED_IN`` or ``WAITLISTED``) to the named
        slot, of the same doctor or another.

        The target obeys the booking rules for that token: :class:`SlotClosedError` for an
        ended or closed slot or an unavailable doctor, :class:`SlotFullError` (with
        ``alternatives``) for a non-emergency past the capacity policy, and
        :class:`DuplicateBookingError` if the patient holds another active token that the
        duplicate rule counts against the target's doctor. An emergency follows the
        emergency policy in the target. The token keeps its ``id``, ``number``, ``seq``,
        ``checked_in_at`` and ``moves``; the place it left is reallocated (the moved token
        itself is not pulled back into it). Emits ``TokenMoved(reason=RESCHEDULED)``. The
        token's own slot returns it unchanged, with no event. O(log n), plus the refill.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            target = self._slot(slot_id)
            if token.status not in CANCELLABLE:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be rescheduled: it is {token.status.name}"
                )
            if token.slot_id == target.id:
                return token
            desk = self._desks[token.doctor_id]
            to_desk = self._desks[target.doctor_id]
            to_desk.check_bookable(target, now)
            emergency = token.priority is EMERGENCY
            if not emergency:
                self._refuse_duplicate(token.patient_id, to_desk.doctor, token.id)
                if not to_desk.admits(target, token):
                    limit = self._day.policies.capacity.limit(target.capacity)
                    raise SlotFullError(
                        full(target, limit, token.source),
                        self._alternatives(
                            to_desk,
                            target,
                            token.patient_id,
                            token.id,
                            token.source,
                            token.priority,
                            now,
                        ),
                    )
            # ---- validated
            source = desk.unplace(token)
            moved = to_desk.receive(
                token, source, target, MoveReason.RESCHEDULED, now, counted=False
            )
            if emergency:
                to_desk.contain_overflow(target, now)
            if source is not None:
                desk.refill(source, now, keep=moved.id)
            self._commit()
            return self._day.tokens[token_id]

    @_atomic
    def retriage(self, token_id: str, priority: Priority) -> Token:
        """Change a waiting token's triage level (the patient got worse, or better).

        The token (``BOOKED``, ``CHECKED_IN`` or ``WAITLISTED``) keeps its ``seq`` and its
        place and is re-ranked in its slot or waitlist. Raised to ``EMERGENCY`` it follows
        the emergency policy in its slot (a bounded overflow displaces as a new emergency
        would), and a waitlisted one is seated in the doctor's current slot (the open one
        containing now, else the next to start): an emergency waits on a waitlist only
        where no open slot can take it, and :meth:`call_next` then calls it first. An
        emergency lowered to another level keeps its place even if the slot is then past
        its capacity. Emits :class:`TokenRetriaged`; the same level returns the token
        unchanged, with no event. O(log n), plus O(k log n) for k tokens displaced.

        Raises :class:`InvalidArgumentError` for a ``priority`` that is not a
        :class:`Priority`, :class:`InvalidTransitionError` for a token not waiting, and
        :class:`DuplicateBookingError` for an emergency lowered while its patient holds
        another active token that the duplicate rule counts (emergencies are exempt from
        it; the others are not): cancel one of the two first.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            check_priority("priority", priority)
            if token.status not in CANCELLABLE:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be re-triaged: it is {token.status.name}"
                )
            if priority is token.priority:
                return token
            day = self._day
            desk = self._desks[token.doctor_id]
            old = token.priority
            if old is EMERGENCY:
                # No longer exempt from the duplicate rule.
                self._refuse_duplicate(token.patient_id, desk.doctor, token.id)
            slot = desk.unplace(token)
            token = day.replace(token, priority=priority)
            desk.place(token, slot, now)
            day.record(TokenRetriaged, now, token=token, old_priority=old)
            emergency = priority is EMERGENCY
            if slot is None and emergency:
                seat = desk.emergency_slot(now)
                if seat is not None:
                    desk.move(token, seat, MoveReason.FROM_WAITLIST, now, counted=False)
                    slot = seat
            if slot is not None:
                if emergency:
                    desk.contain_overflow(slot, now)
                elif old is EMERGENCY:
                    excess = slot.occupancy - slot.emergencies
                    limit = self._day.policies.capacity.limit(slot.capacity)
                    desk.grant(slot, excess - limit, now)
            self._commit()
            return day.tokens[token_id]

    @_atomic
    def missed_call(self, token_id: str) -> Token:
        """The patient called in (``IN_CONSULTATION``) did not come.

        The token goes back to its slot's queue as ``BOOKED`` (not present: a later
        :meth:`check_in` records the arrival again), keeping its ``seq``, and
        ``missed_calls`` grows by one (:class:`TokenCallMissed`). At
        ``Policies.max_missed_calls`` missed calls it becomes ``NO_SHOW`` instead
        (:class:`TokenNoShow`; its place is freed and reallocated, and a later
        :meth:`check_in` is a late arrival). Either way the doctor has no current
        consultation afterwards. O(log n), plus the refill. Raises
        :class:`InvalidTransitionError` for a token not in consultation.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is not IN_CONSULTATION:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot miss a call: it is {token.status.name}, "
                    "not IN_CONSULTATION"
                )
            day = self._day
            desk = self._desks[token.doctor_id]
            slot = self._slots[token.slot_id]  # type: ignore[index]
            missed = token.missed_calls + 1
            desk.set_current(None)
            slot._release(token)
            day.forget_due(token.id)
            if missed >= self._policies.max_missed_calls:
                token = day.replace(token, status=NO_SHOW, missed_calls=missed)
                day.deactivate(token)
                day.note(TokenNoShow, now, token)
                desk.refill(slot, now)
            else:
                token = day.replace(
                    token,
                    status=BOOKED,
                    missed_calls=missed,
                    checked_in_at=None,
                    called_at=None,
                )
                desk.place(token, slot, now)
                day.note(TokenCallMissed, now, token)
                desk.keep_place(slot, token, now)
            self._commit()
            return day.tokens[token_id]

    # ================================================================ the live floor

    def _refuse_call(self, desk: Desk) -> None:
        """Raise :class:`InvalidTransitionError`: ``desk``'s doctor may not call now."""
        why = "unavailable" if not desk.available else "paused"
        raise InvalidTransitionError(f"doctor {desk.doctor.id!r} cannot call: the doctor is {why}")

    @_atomic
    def pause(self, doctor_id: str) -> None:
        """The doctor steps away for a while (a ward round, a break): bookings, check-ins
        and moves go on, but :meth:`call_next` and :meth:`call` raise
        :class:`InvalidTransitionError` until :meth:`resume`. The consultation in progress
        can still be completed. Emits :class:`DoctorPaused`; a paused doctor changes
        nothing. O(1)."""
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if desk.paused:
                return
            desk.set_paused(now)
            self._day.record(DoctorPaused, now, doctor_id=desk.doctor.id)
            self._commit()

    @_atomic
    def resume(self, doctor_id: str) -> None:
        """The doctor is back from a pause: calls go on. Emits :class:`DoctorResumed`; a
        doctor who is not paused changes nothing. O(1)."""
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if not desk.paused:
                return
            desk.set_paused(None)
            self._day.record(DoctorResumed, now, doctor_id=desk.doctor.id)
            self._commit()

    @_atomic
    def call(self, token_id: str) -> Token:
        """Call a chosen present patient out of turn (the desk's choice, not the ordering's).

        Completes the doctor's current consultation as :meth:`call_next` does, then the
        token, ``CHECKED_IN`` in one of the doctor's slots or a checked-in ``WAITLISTED``
        one, becomes ``IN_CONSULTATION``; a waitlisted one is first seated as the idle-fill
        rule seats it (the doctor's current slot, over its capacity if need be; a closed one
        never), and with nowhere to seat it the call raises :class:`SlotClosedError`. Emits
        :class:`TokenCalled` with ``out_of_turn=True``. O(log n).

        Raises :class:`InvalidTransitionError` for any other status (booked, away, in
        consultation, ended), or when the doctor is unavailable or paused; nothing changes.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            status = token.status
            if status is not CHECKED_IN and (
                status is not WAITLISTED or token.checked_in_at is None
            ):
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot be called: it is {status.name}"
                    + (", not checked in" if status is WAITLISTED else "")
                )
            desk = self._desks[token.doctor_id]
            if desk.paused or not desk.available:
                self._refuse_call(desk)
            if status is WAITLISTED and desk.seat_slot(now) is None:
                raise SlotClosedError(
                    f"token {token_id!r} cannot be called: doctor {desk.doctor.id!r} has no "
                    "open slot to seat a waitlisted patient in"
                )
            called = desk.call_out_of_turn(token, now)
            self._commit()
            return self._day.tokens[called.id]

    @_atomic
    def step_out(self, token_id: str) -> Token:
        """The patient leaves the waiting room but keeps their place (sent for a blood test
        or an X-ray, stepped out): ``CHECKED_IN`` or ``IN_CONSULTATION`` -> ``AWAY``.

        From ``IN_CONSULTATION`` the consultation ends (it is not completed, and teaches the
        estimates nothing) and the doctor is free to call the next patient. The token keeps
        its slot, ``seq``, ``number`` and ``checked_in_at``, still holds its place (its
        slot's occupancy counts it), stands in :meth:`queue` at its current rank (it goes on
        aging as a checked-in patient does), and is skipped by :meth:`call_next` and
        :meth:`next_up` until :meth:`check_in` brings it back to the same place. Emits
        :class:`TokenSteppedOut`. O(log n).

        Raises :class:`InvalidTransitionError` for any other status.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            status = token.status
            if status is not CHECKED_IN and status is not IN_CONSULTATION:
                raise InvalidTransitionError(
                    f"token {token_id!r} cannot step out: it is {status.name}, not CHECKED_IN "
                    "or IN_CONSULTATION"
                )
            day = self._day
            desk = self._desks[token.doctor_id]
            token = desk.step_out(token, now)
            day.forget_due(token.id)
            day.note(TokenSteppedOut, now, token)
            if status is IN_CONSULTATION:  # back in the queue from the consulting room
                desk.keep_place(self._slots[token.slot_id], token, now)  # type: ignore[index]
            self._commit()
            return day.tokens[token_id]

    def now_serving(self, doctor_id: str) -> Token | None:
        """The doctor's token in consultation, or None. O(1)."""
        with self._lock:
            desk = self._desk(doctor_id)
            current = desk.current
            return None if current is None else self._day.tokens[current]

    def next_up(self, doctor_id: str, n: int = 3) -> list[Token]:
        """The next ``n`` patients that successive :meth:`call_next` calls would call now,
        in that order (the idle-fill rule included), as they stand now; changes nothing.

        It shows who would be called, so it ignores a pause and unavailability (where
        :meth:`call_next` would raise); after :meth:`end_day` it is empty. Patients who
        stepped out (``AWAY``) or have not arrived are skipped, as :meth:`call_next` skips
        them. O(n log m) for the m tokens of the slots the names are called from: the
        desk's own calls are made and undone, never a pass over the doctor's tokens.

        Raises :class:`UnknownDoctorError` for an unknown doctor and
        :class:`InvalidArgumentError` for an ``n`` that is not an int >= 0.
        """
        n = check_int("n", n, minimum=0)
        with self._lock:
            now = self._now()
            return self._desk(doctor_id).upcoming(now, n)

    def board(self, *, n: int = 3, department: str | None = None) -> list[DoctorBoard]:
        """A display board: one frozen :class:`DoctorBoard` per doctor, in the order added
        (only ``department``'s if given), each showing its status, the patient in
        consultation, the next ``n`` (as :meth:`next_up`) and its counts, read together
        under the lock at one reading of the clock.

        O(d + b (n log m + s)) for the d doctors and the b shown, their s slots each (a
        counter read per slot) and the m tokens of the slots names are called from:
        never a pass over the doctors' tokens. Raises :class:`InvalidArgumentError` for an
        ``n`` that is not an int >= 0 or a ``department`` that is not a str.
        """
        n = check_int("n", n, minimum=0)
        if department is not None and type(department) is not str:
            if not isinstance(department, str):
                raise InvalidArgumentError(
                    f"department must be a str, got department={department!r}"
                )
            department = str.__str__(department)
        with self._lock:
            now = self._now()
            return [
                board_of(desk, n, now)
                for desk in self._desks.values()
                if department is None or desk.doctor.department == department
            ]

    @_atomic
    def end_day(self, doctor_id: str) -> list[Token]:
        """Close the doctor's day (a paused or unavailable doctor's too), and return the
        patients who were present but not seen, for the host to carry to another day.

        Every waiting token of the doctor, in standing order (slot by slot in start order,
        then the waitlist), ends: a ``BOOKED`` one becomes ``NO_SHOW``
        (:class:`TokenNoShow`); a present one not seen (``CHECKED_IN``, ``AWAY``, or a
        checked-in ``WAITLISTED`` one) becomes ``UNSEEN`` (:class:`TokenUnseen`); an absent
        waitlisted one is cancelled (:class:`TokenCancelled` with reason ``"day ended"``).
        Nobody is moved and no place is refilled. Then every slot of the doctor closes and
        :class:`DayEnded` is emitted. From then on :meth:`call_next` returns None, bookings
        raise :class:`SlotClosedError` (every slot is closed), as does a late
        :meth:`check_in` of a no-show, and no other doctor's patients are sent here.
        Returns the ``UNSEEN`` tokens, in standing order; a day already ended changes
        nothing and returns ``[]``. O(k log n + s) for the k tokens it ends and s slots.

        Raises :class:`InvalidTransitionError` while a consultation is in progress
        (complete it, or step the patient out, first).
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if desk.ended:
                return []
            if desk.current is not None:
                raise InvalidTransitionError(
                    f"doctor {desk.doctor.id!r} cannot end the day: token {desk.current!r} "
                    "is in consultation"
                )
            day = self._day
            tokens = day.tokens
            unseen: list[Token] = []
            for waiting_id in desk.standing(now):
                token = tokens[waiting_id]
                desk.unplace(token)
                status = token.status
                if status is BOOKED:
                    token = day.put(token, with_status(token, NO_SHOW))
                    day.note(TokenNoShow, now, token)
                elif status is WAITLISTED and token.checked_in_at is None:
                    token = day.put(token, with_status(token, CANCELLED))
                    day.record(TokenCancelled, now, token=token, reason="day ended")
                else:
                    token = day.put(token, with_status(token, UNSEEN))
                    day.note(TokenUnseen, now, token)
                    unseen.append(token)
                day.deactivate(token)
            desk.close_day()
            day.record(DayEnded, now, doctor_id=desk.doctor.id)
            self._commit()
            return [tokens[token.id] for token in unseen]

    def preview(self, change: Callable[[Allocator], object]) -> list[Event]:
        """What ``change(alloc)`` would do, without doing it: runs it on this allocator,
        returns the events it would have emitted (each with the ``version``, ``step`` and
        ``steps`` it would have had), then undoes it all. The state, :attr:`version` and
        the counters (``seq``, numbers) are as before, and no subscriber sees anything;
        if ``change`` raises, the exception goes on and nothing has changed. A desk shows
        "7 patients move, 2 to the waitlist" before closing a slot::

            events = alloc.preview(lambda a: a.close_slot("D1@10"))

        ``change`` may make several calls (each its own version, as for real) and read the
        state they leave; the allocator's lock is held throughout. O(c + u): what the
        change costs, plus undoing it (O(1) per change it made). Raises
        :class:`InvalidArgumentError` if ``change`` is not callable; subscribing,
        unsubscribing or previewing inside ``change`` raise it too (subscriptions are the
        host's, not the day's: a preview leaves them alone).
        """
        if not callable(change):
            raise InvalidArgumentError(f"change must be callable, got change={change!r}")
        with self._lock:
            day = self._day
            undo = day.undo
            seen: list[Event] = []
            if day.previewing:
                raise InvalidArgumentError("change cannot preview another change")
            kept = (day.subscribers, day.pending, day.outbox, day.delivering, undo.whole)
            version, touched = day.version, dict(day.touched)
            # The change's events go to ``seen`` alone, and every one is drafted (a call
            # drafts its events only while somebody listens); its calls are recorded whole,
            # through their deliveries (Undo.whole), to be undone together.
            day.subscribers = [Subscription(seen.append)]
            day.pending = []
            day.outbox = deque()
            day.delivering = False
            undo.whole = True
            day.previewing = True
            saved = undo.begin()
            try:
                change(self)
            finally:
                undo.rollback(saved)
                day.subscribers, day.pending, day.outbox, day.delivering, undo.whole = kept
                day.previewing = False
                day.version = version
                day.touched.clear()
                day.touched.update(touched)
            return seen

    # ================================================================ disruptions

    @_atomic
    def delay(self, doctor_id: str, minutes: int) -> None:
        """The doctor runs ``minutes`` late: estimated starts of waiting tokens shift.

        Delays add up over the day. With ``Policies.on_delay`` ``OnDelay.SHIFT`` (the
        default) that is all, O(1). With ``OnDelay.SHRINK`` each whole ``consult_minutes``
        of the total delay also takes one place off the doctor's current slot, then the
        next ones (a slot keeps at least 0); each shrunk slot reports ``SlotResized`` and
        its lowest-ranked waiting non-emergency tokens move on, ``MoveReason.DELAYED``, as
        :meth:`resize` does, O(s + k log n) for s slots and k tokens moved. Raises
        :class:`InvalidArgumentError` for a negative or non-integer ``minutes``. A delay of
        0 minutes changes nothing.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            doctor_id = desk.doctor.id
            minutes = check_int("minutes", minutes, minimum=0, maximum=MAX_MINUTES)
            before = desk.delay
            if before + timedelta(minutes=minutes) > timedelta(minutes=MAX_MINUTES):
                raise InvalidArgumentError(
                    f"minutes would make doctor {doctor_id!r} more than a day late in all, "
                    f"got minutes={minutes!r} on top of {before // timedelta(minutes=1)}"
                )
            if minutes == 0:
                return
            desk.set_delay(desk.delay + timedelta(minutes=minutes))
            self._day.record(
                DoctorDelayed,
                now,
                doctor_id=doctor_id,
                minutes=minutes,
                total_minutes=int(desk.delay / timedelta(minutes=1)),
            )
            if self._policies.on_delay is OnDelay.SHRINK and desk.available:
                consult = timedelta(minutes=desk.doctor.consult_minutes)
                desk.lose_places(desk.delay // consult - before // consult, now)
            self._commit()

    @_atomic
    def mark_unavailable(self, doctor_id: str) -> None:
        """The doctor stops for the day: their open slots close and every patient moves.

        The doctor's slots that have not ended close to new bookings. Every waiting token,
        in standing order (each slot's :meth:`queue`, slots in start order, then the
        waitlist), moves, ``MoveReason.REASSIGNED``, to the earliest open slot with room of
        another available doctor of the same department (never another department);
        failing that, to the shortest waitlist among those doctors; failing that, it stays
        on (or goes to) its own doctor's waitlist. A doctor the duplicate rule refuses for
        the patient is passed over. An emergency needs no room: it goes to the earliest
        open slot of such a doctor, so it waits on a waitlist only where none has an open
        slot (that doctor's :meth:`call_next` then calls it first). No token is cancelled,
        and a reassigned token keeps its id, number and ``seq``. The patient in
        consultation, if any, stays. Marking an unavailable doctor again changes nothing;
        :meth:`mark_available` brings the doctor back. O(k * (d * s + log n)) for k waiting
        tokens and d colleagues with s slots each.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if not desk.available:
                return
            desk.set_available(False)
            self._day.record(DoctorUnavailable, now, doctor_id=desk.doctor.id)
            colleagues = self._colleagues(desk)
            tokens = self._day.tokens
            for token_id in desk.standing(now):
                self._reassign(desk, tokens[token_id], colleagues, MoveReason.REASSIGNED, now)
            self._commit()

    @_atomic
    def mark_available(self, doctor_id: str) -> None:
        """The doctor is back: their slots that have not ended (and were not closed with
        :meth:`close_slot`) reopen, and the doctor's waitlist refills them, earliest first.

        Tokens moved away earlier stay where they are. Emits :class:`DoctorAvailable`; an
        available doctor changes nothing. O(s + k log n) for k tokens placed.
        """
        with self._lock:
            now = self._now()
            desk = self._desk(doctor_id)
            if desk.available:
                return
            desk.set_available(True)
            self._day.record(DoctorAvailable, now, doctor_id=desk.doctor.id)
            for slot in list(desk.open_slots(now)):
                desk.refill(slot, now)
            self._commit()

    @_atomic
    def close_slot(self, slot_id: str) -> None:
        """Close one slot (a break, a room lost): no new bookings, its patients move.

        Its waiting tokens, in standing order, move (``MoveReason.SLOT_CLOSED``) to the
        doctor's later open slots with room, else as :meth:`mark_unavailable` moves them
        (an available doctor of the same department), else to the doctor's waitlist; none
        is cancelled. An emergency needs no room: it goes to the doctor's next later open
        slot, else to the doctor's current open slot, and only then as
        :meth:`mark_unavailable` moves it, so it waits on a waitlist only where no open
        slot can take it. The patient in consultation, if any, stays. Booking the slot then
        raises :class:`SlotClosedError`; it never reopens. Emits :class:`SlotClosed`; a
        closed slot changes nothing. O(k * (d * s + log n)) for k tokens moved.
        """
        with self._lock:
            now = self._now()
            slot = self._slot(slot_id)
            if slot.closed:
                return
            desk = self._desks[slot.doctor_id]
            slot._close()
            self._day.touch(desk.doctor.id)  # where idle-fill seats may change
            self._day.record(SlotClosed, now, slot_id=slot.id)
            colleagues = self._colleagues(desk)
            tokens = self._day.tokens
            for token_id in list(slot._standing(now)):
                token = tokens[token_id]
                if token.priority is EMERGENCY:
                    # A later open slot, else the current one: never a waitlist while an
                    # open slot of the doctor can take it.
                    onward = next(desk.open_slots(now, slot), None)
                    if onward is None:
                        onward = desk.emergency_slot(now)
                else:
                    onward = desk.first_with_room(token.source, token.priority, now, after=slot)
                if onward is not None:
                    desk.move(token, onward, MoveReason.SLOT_CLOSED, now, counted=True)
                    if token.priority is EMERGENCY:
                        desk.contain_overflow(onward, now)
                else:
                    self._reassign(desk, token, colleagues, MoveReason.SLOT_CLOSED, now)
            self._commit()

    def _colleagues(self, desk: Desk) -> list[Desk]:
        """The other available doctors of ``desk``'s department, in the order added. O(d)."""
        department = desk.doctor.department
        return [
            d
            for d in self._desks.values()
            if d is not desk and d.available and not d.ended and d.doctor.department == department
        ]

    def _destination(
        self, desk: Desk, token: Token, colleagues: list[Desk], now: datetime
    ) -> tuple[Desk, Slot | None] | None:
        """Where a token leaving ``desk`` goes: the colleagues' earliest open slot with room
        (ties by the order added), else the shortest colleague waitlist, else None (its own
        doctor's waitlist). Colleagues the duplicate rule refuses are passed over (for a
        non-emergency: emergencies are exempt from the rule)."""
        duplicate = self._day.duplicate
        emergency = token.priority is EMERGENCY
        candidates = (
            colleagues  # emergencies are exempt from the duplicate rule
            if emergency
            else [d for d in colleagues if duplicate(token.patient_id, d.doctor, token.id) is None]
        )
        admits = self._day.policies.capacity.admits
        best: tuple[datetime, int, Slot, Desk] | None = None
        for rank, colleague in enumerate(candidates):
            for slot in colleague.open_slots(now):
                if emergency or admits(slot, token.source, token.priority):
                    if best is None or (slot._at, rank) < best[:2]:
                        best = (slot._at, rank, slot, colleague)
                    break
        if best is not None:
            return best[3], best[2]
        if candidates:
            return min(candidates, key=lambda d: len(d.waitlist)), None
        return None

    def _reassign(
        self, desk: Desk, token: Token, colleagues: list[Desk], reason: MoveReason, now: datetime
    ) -> None:
        found = self._destination(desk, token, colleagues, now)
        if found is None:
            if token.slot_id is not None:
                desk.move(token, None, reason, now, counted=True)
            return
        to_desk, slot = found
        source = desk.unplace(token)
        to_desk.receive(token, source, slot, reason, now, counted=True)
        if slot is not None and token.priority is EMERGENCY:
            to_desk.contain_overflow(slot, now)

    @_atomic
    def resize(self, slot_id: str, capacity: int) -> None:
        """Change a slot's capacity.

        Growing fills the new places from the waitlist, then by pulling forward. Shrinking
        moves the lowest-ranked waiting non-emergency tokens (lowest priority, latest
        ``seq``; tokens moved ``max_moves`` times last) on to the doctor's next slot with
        room, else to the waitlist, until the non-emergency tokens fit the new limit; places
        already used by called or completed patients cannot be taken back. The same capacity
        changes nothing. O(k log n) for k tokens moved.
        """
        with self._lock:
            now = self._now()
            slot = self._slot(slot_id)
            capacity = check_int("capacity", capacity, minimum=0)
            desk = self._desks[slot.doctor_id]
            old = slot.capacity
            if capacity == old:
                return
            slot._set_capacity(capacity)
            desk.resized(slot, old, MoveReason.RESIZED, now)
            desk.refill(slot, now)
            self._commit()

    # ================================================================ reading

    def token(self, token_id: str) -> Token:
        """The token with this id. O(1). Raises :class:`UnknownTokenError`."""
        with self._lock:
            return self._token(token_id)

    def slot(self, slot_id: str) -> Slot:
        """The slot with this id. O(1). Raises :class:`UnknownSlotError`."""
        with self._lock:
            return self._slot(slot_id)

    def slot_view(self, slot_id: str) -> SlotView:
        """The slot's figures (occupancy, free, overflow, waiting, present, ...) read
        together under the lock, as a frozen :class:`SlotView`. O(1). Raises
        :class:`UnknownSlotError`."""
        with self._lock:
            return SlotView.of(self._slot(slot_id))

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
            return list(self._day.tokens.values())

    @_atomic
    def queue(self, slot_id: str) -> list[Token]:
        """The slot's waiting tokens (booked and checked in) in its standing order, as of
        ``clock()``. O(n).

        The standing order ranks every waiting token as the ordering policy ranks it now: a
        checked-in token by its current (aged or accumulated) rank, a booked token that has
        not arrived by its triaged priority (it does not age), ties by ``seq``. So a paid
        patient booked for 10:00 stands ahead of a walk-in even before arriving, and a
        position does not jump when others check in. :meth:`call_next` calls the first
        checked-in token of it.
        """
        with self._lock:
            now = self._now()
            slot = self._slot(slot_id)
            tokens = self._day.tokens
            return [tokens[i] for i in slot._standing(now)]

    def waitlist(self, doctor_id: str) -> list[Token]:
        """The doctor's waitlisted tokens in ``(priority, seq)`` order. O(n)."""
        with self._lock:
            desk = self._desk(doctor_id)
            return [self._day.tokens[i] for i in desk.waitlist]

    @_atomic
    def position(self, token_id: str) -> int:
        """1-based place of a waiting token in its slot's :meth:`queue` (the standing order)
        or its waitlist.

        O(log n) under ``StrictPriority`` and ``Aging``, O(n) under other orderings. Raises
        :class:`InvalidTransitionError` for a token that is not waiting (in consultation or
        ended).
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            if token.status is WAITLISTED or (token.status is AWAY and token.slot_id is None):
                return self._desks[token.doctor_id].waitlist.position(token)
            if token.status not in WAITING:
                raise InvalidTransitionError(
                    f"token {token_id!r} has no position: it is {token.status.name}"
                )
            return self._slots[token.slot_id]._position(token, now)  # type: ignore[index]

    @_atomic
    def estimate(self, token_id: str) -> WaitEstimate | None:
        """When a waiting patient will be called, as a :class:`WaitEstimate`; None if the
        token is not waiting (in consultation, or ended).

        ``position`` is 1 + the number of the doctor's waiting patients (checked in, booked,
        away, or checked-in waitlisted) whom :meth:`call_next` would call before this one if all
        of them and this one were present now: a booked token is estimated as if present.
        ``consult_minutes`` is the length per patient, learned from the doctor's
        consultations completed today: the doctor's ``consult_minutes`` counts as three
        consultations of that length, each consultation completed today (by
        :meth:`complete` or the completion :meth:`call_next` makes) as one, from its
        ``called_at`` to its ``completed_at``. The consultation in progress counts only for
        what remains of it (at least a quarter of a length while it runs over). The
        doctor is free once it ends; each slot's patients ahead are seen from ``slot.start
        + delay`` on, a present emergency first, so the delay and the slot's start push
        the estimate later; so does a pause (taken to last as long again as it has so far,
        and at least one length). A waitlisted patient (or an away one sent on to the
        waitlist) is called in the first gap the doctor's time line leaves before a slot's
        start (the idle-fill rule), else after everyone waiting in the doctor's slots. The
        window runs from now (``earliest``) to the likely time plus 0.8 lengths
        (``latest``). See the explanation page on estimates for how it is calibrated.

        O(log n + s) for the n tokens of the token's slot and the doctor's s slots, under
        ``StrictPriority`` and ``Aging`` (O(n) under other orderings, the cost of
        :meth:`position`). Raises :class:`UnknownTokenError` for an unknown id.
        """
        with self._lock:
            now = self._now()
            token = self._token(token_id)
            status = token.status
            if status is not WAITLISTED and status not in WAITING:
                return None
            return _estimate.estimate(self._desks[token.doctor_id], token, now)

    @_atomic
    def estimated_start(self, token_id: str) -> datetime | None:
        """When the patient should be called: ``estimate(token_id).likely``, or None where
        :meth:`estimate` is None.

        For a non-emergency token, with nothing learned, no consultation in progress and
        nobody ahead from another slot, that is ``max(slot.start + delay, now) + (position
        - 1) * consult_minutes``, where ``delay`` is the doctor's accumulated
        :meth:`delay`. O(log n + s), the cost of :meth:`estimate`.
        """
        with self._lock:
            estimate = self.estimate(token_id)
            return None if estimate is None else estimate.likely

    def records(self) -> list[dict[str, object]]:
        """One row per token, in the order issued, ready for ``pandas.DataFrame``. O(n).

        Keys are the :class:`Token` fields; enums appear by name, datetimes as datetimes.
        """
        with self._lock:
            return [token_row(token) for token in self._day.tokens.values()]

    # ================================================================ persistence

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a versioned, JSON-safe dict (``json.dumps`` takes it). O(n).

        Restore it with :meth:`from_snapshot`. Policies, the clock and subscribers are not
        state and are not included; :attr:`version` is.
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

        The result has the same doctors, slots, tokens, queues, waitlists, numbering, next
        ``seq`` and :attr:`version`, and carries on exactly as the original would under the
        same policies and clock. Unknown formats or versions, and malformed or inconsistent
        data, raise :class:`InvalidArgumentError` saying what is wrong.
        """
        return _snapshot.load(data, policies=policies, clock=clock, factory=cls)

    # ================================================================ journal

    @classmethod
    def replay(
        cls,
        events: Iterable[Event | Mapping[str, Any]],
        *,
        snapshot: Mapping[str, Any] | None = None,
        policies: Policies | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Allocator:
        """Rebuild an allocator from its journal: ``snapshot`` (a :meth:`snapshot` dict,
        else an empty allocator), then the events newer than its version, in order.

        Events may be values or :func:`event_to_dict` dicts. Replay sets the state the
        events describe and never asks a policy what to do, so the result's
        :meth:`snapshot` equals the original's at the last event's version, and it goes on
        exactly as the original would under the same policies and clock. O(log n) per
        event, plus :meth:`check_invariants` once at the end.

        Raises :class:`InvalidArgumentError`, and returns nothing half-built, for
        ``events`` that is not an iterable of events, a malformed event, a gap or a step
        back in versions, a call with an event lost, moved or repeated (its events'
        ``step`` and ``steps``; events stored without them are taken as they are), an
        event that contradicts the state (an unknown token, doctor or slot, totals that do
        not add up, a slot that :meth:`add_slot` would refuse), a journal that leads to a
        state :meth:`from_snapshot` refuses, or a snapshot of another format.
        """
        if snapshot is None:
            alloc = cls(policies=policies, clock=clock)
        else:
            alloc = cls.from_snapshot(snapshot, policies=policies, clock=clock)
        values = _journal.as_events(events)
        with alloc._lock:
            _journal.apply(alloc, values)
            alloc._day.touched.clear()  # the journal has the notices of its own calls
            try:
                _invariants.check(alloc)
            except AssertionError as error:  # pragma: no cover - apply's checks catch it
                raise InvalidArgumentError(
                    f"the journal leads to an impossible state: {error}"
                ) from None
        return alloc

    def apply(self, events: Iterable[Event | Mapping[str, Any]]) -> None:
        """Bring this allocator up to date with journal events (a replica catching up).

        Events at or below :attr:`version` are skipped; the rest must follow on without a
        gap. They are checked as :meth:`replay` checks them, and so is the state they lead
        to, so a replica accepts exactly what a restart would. All or nothing: on an error
        nothing is applied. The events applied are then delivered to the subscribers, as
        any change is. O(log n) per event, plus O(k) at the end for the k tokens, slots,
        doctors and patients they touched (and the waiting tokens of a slot that closed or
        whose doctor became unavailable): never a pass over the whole day.
        """
        with self._lock:
            values = _journal.as_events(events)
            day = self._day
            version = day.version
            saved = day.undo.begin()
            try:
                fresh = _journal.apply(self, values)
            except BaseException:
                day.undo.rollback(saved)
                day.version = version
                raise
            day.undo.end(saved)
            day.touched.clear()  # the journal has the notices of its own calls
            if fresh and day.subscribers:
                day.outbox.extend(fresh)
            day.publish()

    # ================================================================ invariants

    @_atomic
    def check_invariants(self) -> None:
        """Assert every invariant of the allocator's state; raise ``AssertionError`` naming
        the broken one. O(n log n) in the tokens, whatever the number of doctors and slots.
        Meant for tests; it changes nothing.

        Checked: every token is in exactly one place (a slot's queue, its doctor's waitlist,
        the doctor's consultation, or a terminal state) and its fields say so; queues and
        waitlists are sorted on ``(priority, seq)``; slot counters match the tokens; no slot
        holds more non-emergency tokens than its capacity policy's limit plus the places the
        idle-fill rule or a lowered emergency granted, unless none of them can be moved; a
        closed slot or an unavailable doctor's open slot has no waiting tokens except those
        a missed call sent back; no patient holds two active non-emergency tokens that the
        duplicate rule counts; ids, ``seq`` and per-doctor numbers are unique; every index
        agrees with the tokens.
        """
        with self._lock:
            _invariants.check(self)

    # ================================================================ events

    def subscribe(self, callback: Callable[[Event], object]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event from now on; returns an unsubscribe.

        Events of a call are delivered in order once the call's change is complete, still
        under the allocator's lock, so every subscriber sees one consistent sequence. A
        subscriber may call the allocator; the events of that nested call are delivered
        after the ones already pending. An exception from a subscriber is logged on the
        ``opd_engine`` logger and swallowed: the change it reports has already happened.

        Each event goes to the subscribers present when it is delivered to them: unsubscribe
        takes effect at once, so a callback unsubscribed during a delivery (by itself or by
        another subscriber) receives nothing more, not even the event being delivered; a
        callback subscribed during a delivery receives the events delivered after. The same
        callback subscribed twice is called twice, and each unsubscribe ends its own
        subscription. O(1); unsubscribing is O(number of subscribers) and idempotent.
        """
        if not callable(callback):
            raise InvalidArgumentError(f"callback must be callable, got callback={callback!r}")
        subscription = Subscription(callback)
        with self._lock:
            if self._day.previewing:
                raise InvalidArgumentError("cannot subscribe inside a preview")
            self._day.subscribers.append(subscription)

        def unsubscribe() -> None:
            with self._lock:
                if self._day.previewing:
                    raise InvalidArgumentError("cannot unsubscribe inside a preview")
                if subscription.callback is not None:
                    subscription.callback = None  # a delivery under way skips it from now
                    self._day.subscribers.remove(subscription)

        return unsubscribe

    def _atomically(self, method: Callable[A, R], /, *args: A.args, **kwargs: A.kwargs) -> R:
        """Run ``method`` recording the undo log; on an exception, undo its changes and drop
        the events it queued before the exception goes on."""
        day = self._day
        undo = day.undo
        with self._lock:
            pending = day.pending
            queued = len(pending)
            saved = undo.begin()
            try:
                result = method(*args, **kwargs)
            except BaseException:
                undo.rollback(saved)
                del pending[queued:]
                raise
            undo.end(saved)
            return result

    def _commit(self) -> None:
        """The call changed something: count it, send the due notices it brings (if they
        are on), then deliver its events."""
        day = self._day
        day.version += 1
        if day.touched:  # only a NotifyingDay notes the doctors a call touched
            self._notify(day)
        if day.pending or day.outbox:
            day.publish()

    def _notify(self, day: Day) -> None:
        """Send a :class:`TokenDue` to each patient of the doctors the call touched whose
        place in the call order is now at most ``notify_within`` and who has not been sent
        one (the call's last events). O(t k log n) for t doctors touched and k =
        ``notify_within``."""
        within = self._policies.notify_within
        now = day.now
        assert now is not None  # the call read the clock
        notified = day.notified
        desks = day.desks
        due = DRAFT[TokenDue]
        for doctor_id in list(day.touched):
            desk = desks.get(doctor_id)
            if desk is None:  # pragma: no cover - a doctor is never removed
                continue
            for ahead, token in enumerate(desk.upcoming(now, within)):
                if token.id not in notified:
                    day.notice(token.id)
                    if day.subscribers:
                        day.pending.append(due(now, token, ahead))
        day.touched.clear()

    # ================================================================ internals

    def _now(self, aware: bool | None = None) -> datetime:
        """Read the clock once, checking it matches the slots' awareness; it becomes the
        day's time of the call in progress (``Day.now``). O(1)."""
        try:
            now = self._clock()
        except Exception as error:
            raise InvalidArgumentError(
                f"clock {self._clock!r} failed: {type(error).__name__}: {error}"
            ) from error
        if now.__class__ is not datetime and not isinstance(now, datetime):
            raise InvalidArgumentError(f"clock must return a datetime, got {now!r}")
        # EDGE_YEARS, (1, 9999), as literals: two int comparisons cost less than a search.
        if not 1 < now.year < 9999 and not (EARLIEST <= now.replace(tzinfo=None) <= LATEST):
            raise InvalidArgumentError(
                f"clock must return a time between {EARLIEST} and {LATEST}, got {now!r}"
            )
        if aware is None:
            aware = self._day.aware
        zone = now.tzinfo
        if zone is None:
            if aware:
                raise InvalidArgumentError(
                    f"clock must return aware datetimes like the slots, got {now!r}"
                )
            self._day.now = now
            return now
        # The standard library's zones (not a subclass) give every datetime an offset.
        if type(zone) is not timezone and type(zone) is not ZoneInfo:
            try:
                offset = now.utcoffset()
            except Exception as error:
                raise InvalidArgumentError(
                    f"clock's tzinfo fails to give a UTC offset ({error!r}), got {now!r}"
                ) from None
            if offset is None:
                raise InvalidArgumentError(f"clock's tzinfo gives no UTC offset, got {now!r}")
        if aware is False:
            raise InvalidArgumentError(
                f"clock must return naive datetimes like the slots, got {now!r}"
            )
        self._day.now = now  # the time of the call in progress, for a Reserve (see Day)
        return now

    # The lookups by id: a plain str is looked up as it is (an id that is not well formed
    # is not found, and then refused by name); anything else is checked first, so that a
    # str subclass's own __eq__ or __hash__ never takes part. Callers store the id of what
    # they found (``desk.doctor.id``, ``slot.id``), never the argument.

    def _desk(self, doctor_id: object) -> Desk:
        if type(doctor_id) is not str:
            doctor_id = check_id("doctor_id", doctor_id)
        desk = self._desks.get(doctor_id)
        if desk is None:
            check_id("doctor_id", doctor_id)
            raise UnknownDoctorError(f"unknown doctor_id={doctor_id!r}")
        return desk

    def _slot(self, slot_id: object) -> Slot:
        if type(slot_id) is not str:
            slot_id = check_id("slot_id", slot_id)
        slot = self._slots.get(slot_id)
        if slot is None:
            check_id("slot_id", slot_id)
            raise UnknownSlotError(f"unknown slot_id={slot_id!r}")
        return slot

    def _token(self, token_id: object) -> Token:
        if type(token_id) is not str:
            token_id = check_id("token_id", token_id)
        token = self._day.tokens.get(token_id)
        if token is None:
            check_id("token_id", token_id)
            raise UnknownTokenError(f"unknown token_id={token_id!r}")
        return token
