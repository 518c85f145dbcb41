"""One doctor's day: slots in start order, the waitlist, refill, pull-forward, displacement
and the idle-fill rule.

The allocator asks; the desk decides and moves. A :class:`Desk` changes only its own
doctor's slots and waitlist; moves between doctors are the allocator's. Every desk of an
allocator shares one :class:`~opd_engine._ledger.Day`: the tokens, the policies, the patient
index, the counters and the events of the call in progress.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import final

import attrs

from ._check import require, utc
from ._estimate import Learned
from ._ledger import Day, draft_called, draft_completed, draft_moved
from ._queue import Waitlist
from ._slot import Slot
from ._values import (
    AWAY,
    BOOKED,
    CHECKED_IN,
    COMPLETED,
    EMERGENCY,
    IN_CONSULTATION,
    WAITLISTED,
    Doctor,
    Priority,
    Source,
    Token,
    copier,
)
from .errors import SlotClosedError, SlotFullError
from .events import (
    MoveReason,
    PlacesGranted,
    SlotResized,
)
from .policies import OnFull

# Copies of a token with the fields that each hot path changes.
with_arrival = copier("status", "checked_in_at")
with_call = copier("status", "called_at")
with_completion = copier("status", "completed_at")
with_status = copier("status")
with_move = copier("doctor_id", "slot_id", "status", "moves")


_ZERO = timedelta(0)


def full(slot: Slot, limit: int, source: Source) -> str:
    """The message of a :class:`SlotFullError` for a token of ``source`` refused by ``slot``
    under its capacity ``limit``: the places held, and, where places are left that the
    capacity policy keeps from this channel (a reserve, a quota), that too. O(1)."""
    held = slot.occupancy
    if held < limit:
        return (
            f"slot {slot.id!r} is full for {source.name} bookings ({held} of {limit} places "
            "held; the capacity policy keeps the rest from this channel)"
        )
    return f"slot {slot.id!r} is full ({held} of {limit})"


@final
@attrs.define(eq=False)
class Desk:
    """Everything one doctor's day holds, and the rules that move tokens within it."""

    doctor: Doctor
    day: Day
    slots: list[Slot] = attrs.field(factory=list)  # by start; never overlapping
    starts: list[datetime] = attrs.field(factory=list)  # slots' starts, same order
    ends: list[datetime] = attrs.field(factory=list)  # slots' ends, same order
    present: list[tuple[datetime, str]] = attrs.field(factory=list)  # slots with arrivals
    present_ids: set[str] = attrs.field(factory=set)
    urgent: list[tuple[datetime, str]] = attrs.field(factory=list)  # slots with emergencies
    urgent_ids: set[str] = attrs.field(factory=set)  # present
    waitlist: Waitlist = attrs.field()
    current: str | None = None  # token in consultation
    delay: timedelta = timedelta(0)
    available: bool = True
    paused_at: datetime | None = None  # since pause(), until resume(): nobody is called
    ended: bool = False  # end_day(): every slot closed, nobody called, for good
    issued: int = 0  # display numbers issued
    away: int = 0  # AWAY tokens (in a slot or on the waitlist): for the board
    # The consultations completed today and their total length (see _estimate.Learned).
    consults: int = 0
    consulted: timedelta = timedelta(0)
    slot_index: dict[str, Slot] = attrs.field(factory=dict)

    @waitlist.default
    def _new_waitlist(self) -> Waitlist:
        return Waitlist(self.day.undo)

    # ================================================================ the slots

    def insert(self, slot: Slot, index: int) -> None:
        """Add ``slot`` at ``index`` of the start order. O(s)."""
        self.slots.insert(index, slot)
        self.starts.insert(index, slot._at)
        self.ends.insert(index, slot._until)
        self.slot_index[slot.id] = slot
        if self.day.undo.recording:
            self.day.undo.record(self._uninsert, slot, index)

    def _uninsert(self, slot: Slot, index: int) -> None:
        del self.slots[index], self.starts[index], self.ends[index]
        del self.slot_index[slot.id]

    # ================================================================ the doctor's fields
    # Each records its inverse (see _undo).

    def set_current(self, token_id: str | None) -> None:
        """The token in consultation (None: nobody). O(1)."""
        old = self.current
        self.current = token_id
        if self.day.undo.recording:
            self.day.undo.record(self.set_current, old)

    def set_delay(self, delay: timedelta) -> None:
        """How late the doctor runs. O(1)."""
        old = self.delay
        self.delay = delay
        if self.day.undo.recording:
            self.day.undo.record(self.set_delay, old)

    def set_available(self, available: bool) -> None:
        """Whether the doctor sees patients today. O(1)."""
        old = self.available
        self.available = available
        if self.day.undo.recording:
            self.day.undo.record(self.set_available, old)

    @property
    def paused(self) -> bool:
        """Whether the doctor has stepped away for a while (calls are held). O(1)."""
        return self.paused_at is not None

    def set_paused(self, since: datetime | None) -> None:
        """The doctor pauses at ``since`` (None: resumes). O(1)."""
        old = self.paused_at
        self.paused_at = since
        if self.day.undo.recording:
            self.day.undo.record(self.set_paused, old)

    def set_ended(self, ended: bool) -> None:
        """Whether the doctor's day has closed. O(1)."""
        old = self.ended
        self.ended = ended
        if self.day.undo.recording:
            self.day.undo.record(self.set_ended, old)

    def count_away(self, step: int) -> None:
        """One more (``step=1``) or one fewer (``-1``) AWAY token. O(1)."""
        self.away += step
        if self.day.undo.recording:
            self.day.undo.record(self.count_away, -step)

    def set_issued(self, issued: int) -> None:
        """The last display number issued. O(1)."""
        old = self.issued
        self.issued = issued
        if self.day.undo.recording:
            self.day.undo.record(self.set_issued, old)

    def issue(self) -> int:
        """Issue the next display number. O(1)."""
        number = self.issued = self.issued + 1
        if self.day.undo.recording:
            self.day.undo.record(self.set_issued, number - 1)
        return number

    def learn(self, token: Token, sign: int = 1) -> None:
        """Add COMPLETED ``token``'s consultation to what the doctor's day taught
        (``sign=-1``: take it away); a token without one teaches nothing. O(1)."""
        consults, consulted = self.consults, self.consulted
        self.consults, self.consulted = Learned(consults, consulted).plus(token, sign)
        if self.day.undo.recording:
            self.day.undo.record(self.set_learned, consults, consulted)

    @property
    def learned(self) -> Learned:
        """What the consultations completed today taught. O(1)."""
        return Learned(self.consults, self.consulted)

    def set_learned(self, consults: int, consulted: timedelta) -> None:
        """What the completed consultations taught (an inverse: records nothing). O(1)."""
        self.consults = consults
        self.consulted = consulted

    def open_slots(self, now: datetime, after: Slot | None = None) -> Iterator[Slot]:
        """The open slots in start order (those starting after ``after``). O(log s) to
        start, O(1) per slot."""
        if not self.available:
            return
        i = bisect_right(self.ends, now)
        if after is not None:
            i = max(i, bisect_right(self.starts, after._at))
        for slot in self.slots[i:]:
            if not slot._closed:
                yield slot

    def check_bookable(self, slot: Slot, now: datetime) -> None:
        """Raise :class:`SlotClosedError` unless ``slot`` takes bookings now. O(1)."""
        if not self.available:
            raise SlotClosedError(
                f"slot {slot.id!r} is closed: doctor {self.doctor.id!r} is unavailable"
            )
        if slot._closed:
            raise SlotClosedError(f"slot {slot.id!r} is closed")
        if slot._until <= now:
            raise SlotClosedError(f"slot {slot.id!r} is closed: it ended at {slot.end}")

    def first_with_room(
        self, source: Source, priority: Priority, now: datetime, *, after: Slot | None = None
    ) -> Slot | None:
        """The earliest open slot (later than ``after``) that admits the token. O(s)."""
        if not self.available:
            return None
        i = bisect_right(self.ends, now)
        if after is not None:
            i = max(i, bisect_right(self.starts, after._at))
        if self.day.hard_limit:
            for slot in self.slots[i:]:
                if not slot._closed and len(slot._ids) + slot._done < slot._capacity:
                    return slot
            return None
        admits = self.day.policies.capacity.admits
        for slot in self.slots[i:]:
            if not slot._closed and admits(slot, source, priority):
                return slot
        return None

    def emergency_slot(self, now: datetime) -> Slot | None:
        """Where an emergency goes: the open slot containing now, else the next to start."""
        return next(self.open_slots(now), None)

    def seat_slot(self, now: datetime) -> Slot | None:
        """Where the idle-fill rule seats a waitlisted patient: the doctor's current slot
        (the one containing now, else the latest that has started, else the next to
        start), unless :meth:`Allocator.close_slot` closed it; then the earliest slot not
        closed that has not ended, and None if there is none. O(log s), plus the closed
        slots passed over."""
        slots = self.slots
        if not slots:
            return None
        slot = slots[max(0, bisect_right(self.starts, now) - 1)]
        if not slot._closed:
            return slot
        for i in range(bisect_right(self.ends, now), len(slots)):
            if not slots[i]._closed:
                return slots[i]
        return None

    def choose(
        self, slot: Slot | None, source: Source, priority: Priority, now: datetime
    ) -> Slot | None:
        """The slot a new token goes to (None: the waitlist), or raise. Changes nothing.

        Raises :class:`SlotClosedError` and :class:`SlotFullError` (without alternatives:
        the allocator, which sees the other doctors, adds them).
        """
        policies = self.day.policies
        capacity = policies.capacity
        doctor_id = self.doctor.id
        if slot is not None:
            if slot._closed or slot._until <= now or not self.available:
                self.check_bookable(slot, now)
            if priority is EMERGENCY:
                return slot
            if self.day.hard_limit:
                if len(slot._ids) + slot._done < slot._capacity:
                    return slot
            elif capacity.admits(slot, source, priority):
                return slot
            on_full = policies.on_full
            if on_full is OnFull.REJECT:
                raise SlotFullError(full(slot, capacity.limit(slot.capacity), source))
            if on_full is OnFull.WAITLIST:
                return None
            return self.first_with_room(source, priority, now, after=slot)
        if not self.available:
            raise SlotClosedError(f"doctor {doctor_id!r} is unavailable")
        if priority is EMERGENCY:
            target = self.emergency_slot(now)
            if target is None:
                raise SlotClosedError(f"doctor {doctor_id!r} has no open slot left")
            return target
        target = self.first_with_room(source, priority, now)
        if target is None:
            first = bisect_right(self.ends, now)
            open_slots = sum(1 for s in self.slots[first:] if not s._closed)
            if open_slots == 0:
                raise SlotClosedError(f"doctor {doctor_id!r} has no open slot left")
            if policies.on_full is OnFull.REJECT:
                raise SlotFullError(
                    f"doctor {doctor_id!r} is full: none of its {open_slots} open slots has room"
                )
        return target

    # ================================================================ filing tokens

    def place(self, token: Token, slot: Slot | None, now: datetime) -> None:
        """File a stored waiting token into ``slot`` (None: the waitlist). O(log n)."""
        if token.status is AWAY:
            self.count_away(1)
        if slot is None:
            self.waitlist.add(token)
        else:
            slot._add(token, now)
            if token.status is CHECKED_IN:
                self.joined(slot, token)

    def hold(self, slot: Slot, token: Token) -> None:
        """Count the place of a stored token already called, completed or missed in
        ``slot`` (restoring a snapshot). O(1)."""
        slot._hold(token)

    def unplace(self, token: Token) -> Slot | None:
        """Take a waiting or waitlisted token out of its slot or the waitlist; returns the
        slot it left (None: the waitlist). O(log n)."""
        if token.status is AWAY:
            self.count_away(-1)
        if token.slot_id is None:  # WAITLISTED, or AWAY sent on to the waitlist
            self.waitlist.remove(token)
            return None
        slot = self.slot_index[token.slot_id]
        slot._remove(token)
        if token.status is CHECKED_IN:
            self.left(slot)
        return slot

    def move(
        self, token: Token, to: Slot | None, reason: MoveReason, now: datetime, *, counted: bool
    ) -> Token:
        """Move a waiting or waitlisted token within this doctor's day. O(log n)."""
        source = self.unplace(token)
        return self.receive(token, source, to, reason, now, counted=counted)

    def receive(
        self,
        token: Token,
        source: Slot | None,
        to: Slot | None,
        reason: MoveReason,
        now: datetime,
        *,
        counted: bool,
    ) -> Token:
        """File a token just taken out of ``source`` (of this or another doctor) into ``to``
        (None: this doctor's waitlist), and report the move. O(log n)."""
        if token.status is AWAY:
            status = AWAY  # out of the waiting room wherever it goes
        elif to is None:
            status = WAITLISTED
        elif token.checked_in_at is not None:
            status = CHECKED_IN
        else:
            status = BOOKED
        token = self.day.put(
            token,
            with_move(
                token, self.doctor.id, None if to is None else to._id, status, token.moves + counted
            ),
        )
        self.place(token, to, now)
        if self.day.subscribers:
            self.day.pending.append(
                draft_moved(
                    now, token, None if source is None else source.id, token.slot_id, reason
                )
            )
        return token

    def standing(self, now: datetime) -> list[str]:
        """Every waiting token id: each slot's standing order, slots in start order, then
        the waitlist. O(n)."""
        waiting: list[str] = []
        for slot in self.slots:
            waiting.extend(slot._standing(now))
        waiting.extend(self.waitlist)
        return waiting

    # ================================================================ calling

    def call(self, now: datetime) -> Token | None:
        """Complete the current consultation, then call the next checked-in patient (a
        present emergency first, in a slot or on the waitlist, else the earliest slot with
        someone present), else apply the idle-fill rule. O(log n)."""
        day = self.day
        finished = self.current
        if finished is not None:
            # Complete and call in one: ``current`` is written once, to whoever comes next.
            self.finish(day.tokens[finished], now)
        seated = self.seat_emergency(now) if self.waitlist.emergencies else None
        if seated is not None:
            token = seated
            slot = self.slot_index[token.slot_id]  # type: ignore[index]
        elif serving := self.urgent or self.present:
            slot = self.slot_index[serving[0][1]]
            token_id = slot._next(now)
            assert token_id is not None
            token = day.tokens[token_id]
        else:
            seated = self.idle_fill(now)
            if seated is None:
                if finished is not None:
                    self.set_current(None)
                return None
            token = seated
            slot = self.slot_index[token.slot_id]  # type: ignore[index]
        return self.called(token, slot, now, False)

    def upcoming(self, now: datetime, n: int) -> list[Token]:
        """The next ``n`` patients that successive :meth:`call` would call now, in that
        order, as they stand now; changes nothing (a pause, unavailability and the
        consultation in progress aside: completing it changes nobody's turn).

        The desk's own calls are made, each seating and calling its patient without
        completing the one before, under the undo log, then undone, and the events they
        drafted dropped: the answer is what the calls do, by construction. O(n log m) for
        the m tokens of the slots called from, plus the undo.
        """
        if self.ended or n <= 0:
            return []
        day = self.day
        undo = day.undo
        pending = day.pending
        queued = len(pending)
        called: list[str] = []
        saved = undo.begin()
        try:
            while len(called) < n:
                if self.current is not None:
                    self.set_current(None)  # the next call seats, and completes nobody
                token = self.call(now)
                if token is None:
                    break
                called.append(token.id)
        finally:
            undo.rollback(saved)
            del pending[queued:]
        tokens = day.tokens
        return [tokens[token_id] for token_id in called]

    def called(self, token: Token, slot: Slot, now: datetime, out_of_turn: bool) -> Token:
        """``token``, checked in in ``slot``, is called in: IN_CONSULTATION. O(log n)."""
        day = self.day
        slot._seat(token)
        self.left(slot)
        called = day.put(token, with_call(token, IN_CONSULTATION, now))
        self.set_current(token.id)
        if day.subscribers:
            day.pending.append(draft_called(now, called, out_of_turn))
        return called

    def call_out_of_turn(self, token: Token, now: datetime) -> Token:
        """Complete the current consultation, then call ``token``, a present patient of this
        doctor chosen by the desk: CHECKED_IN in one of the doctor's slots, or a checked-in
        WAITLISTED one, seated first as the idle-fill rule seats. The caller has checked
        the status and that a waitlisted token has a seat (:meth:`seat_slot`). O(log n)."""
        finished = self.current
        if finished is not None:
            self.finish(self.day.tokens[finished], now)
        if token.status is WAITLISTED:
            slot = self.seat_slot(now)
            assert slot is not None
            token = self.seat(token, slot, now)
        else:
            slot = self.slot_index[token.slot_id]  # type: ignore[index]
        return self.called(token, slot, now, True)

    def step_out(self, token: Token, now: datetime) -> Token:
        """``token`` (CHECKED_IN, or IN_CONSULTATION with this doctor) steps out: AWAY at
        its place in its slot; a consultation ends unfinished (the place it held is given
        back and taken again in the queue: the caller then keeps it, :meth:`keep_place`).
        O(log n)."""
        day = self.day
        slot = self.slot_index[token.slot_id]  # type: ignore[index]
        if token.status is CHECKED_IN:
            slot._depart(token)
            self.left(slot)
            self.count_away(1)
            return day.put(token, with_status(token, AWAY))
        self.set_current(None)
        slot._release(token)
        token = day.replace(token, status=AWAY, called_at=None)
        self.place(token, slot, now)
        return token

    def keep_place(self, slot: Slot, token: Token, now: datetime) -> None:
        """A called token back in ``slot``'s queue (a missed call, a patient stepping out of
        the consulting room) keeps its place even if the slot shrank meanwhile: the place is
        granted past the limit. O(1)."""
        if token.priority is not EMERGENCY:
            limit = self.day.policies.capacity.limit(slot.capacity)
            self.grant(slot, slot.occupancy - slot.emergencies - limit, now)

    def come_back(self, token: Token, now: datetime) -> Token:
        """AWAY ``token`` is back at the same place: checked in again in its slot (even one
        that has ended meanwhile), or present again on the waitlist. O(log n)."""
        day = self.day
        self.count_away(-1)
        if token.slot_id is None:
            token = day.put(token, with_status(token, WAITLISTED))
            self.waitlist.arrive(token)
            return token
        slot = self.slot_index[token.slot_id]
        slot._return(token)
        token = day.put(token, with_status(token, CHECKED_IN))
        self.joined(slot, token)
        return token

    def close_day(self) -> None:
        """The day has ended: every slot closes, for good. O(s)."""
        for slot in self.slots:
            slot._close()
        self.set_ended(True)

    def seat_emergency(self, now: datetime) -> Token | None:
        """Seat the waitlist's present emergency of smallest ``seq`` where the idle-fill
        rule seats (whether the rule is on or off), if it ranks before every present
        emergency in the slots by (slot start, ``seq``), as if it already waited in that
        slot; None (nothing changes) if it does not, no slot can seat it, or none waits.
        O(log n).
        """
        token_id = self.waitlist.first_present_emergency()
        seat = self.seat_slot(now)
        if token_id is None or seat is None:
            return None
        token = self.day.tokens[token_id]
        urgent = self.urgent
        if urgent:
            start, slot_id = urgent[0]
            if start < seat._at:
                return None
            if slot_id == seat._id:
                first = seat._first_present_emergency()
                if first is not None and first < token.seq:
                    return None
        return self.move(token, seat, MoveReason.FROM_WAITLIST, now, counted=False)

    def idle_fill(self, now: datetime) -> Token | None:
        """Seat the first present waitlisted patient in the current slot, over its capacity
        if need be (``Reallocation.fill_idle``); None if the rule is off or nobody present
        waits. O(log n)."""
        if not self.day.policies.reallocation.fill_idle:
            return None
        token_id = self.waitlist.first_present()
        if token_id is None:
            return None
        slot = self.seat_slot(now)
        if slot is None:
            return None
        return self.seat(self.day.tokens[token_id], slot, now)

    def seat(self, token: Token, slot: Slot, now: datetime) -> Token:
        """Seat present waitlisted ``token`` in ``slot`` as the idle-fill rule seats: over the
        capacity policy if need be (the place is granted). O(log n)."""
        if token.priority is not EMERGENCY and not self.admits(slot, token):
            self.grant(slot, slot._elastic + 1, now)
        return self.move(token, slot, MoveReason.FROM_WAITLIST, now, counted=False)

    def grant(self, slot: Slot, elastic: int, now: datetime) -> None:
        """Grant ``slot`` places past its capacity policy, up to ``elastic`` in all, and
        report it (:class:`PlacesGranted`). O(1)."""
        if elastic > slot._elastic:
            slot._grant(elastic)
            self.day.record(PlacesGranted, now, slot_id=slot.id, elastic=elastic)

    def admits(self, slot: Slot, token: Token) -> bool:
        """Whether the capacity policy admits ``token`` into ``slot`` now. O(1)."""
        return self.day.policies.capacity.admits(slot, token.source, token.priority)

    def finish(self, token: Token, now: datetime) -> Token:
        """Complete ``token``, the one in consultation; the caller then says who is in
        consultation next (:meth:`set_current`): nobody after ``complete``, the next patient
        in :meth:`call`. O(1)."""
        day = self.day
        called_at = token.called_at
        token = day.put(token, with_completion(token, COMPLETED, now))
        if called_at is not None:
            # self.learn(token), inlined (every call_next makes one): the same exact sums,
            # the length in whole microseconds, a clock that went back counting 0.
            consults, consulted = self.consults, self.consulted
            length = now - called_at
            self.consults = consults + 1
            self.consulted = consulted + length if length > _ZERO else consulted
            if day.undo.recording:
                day.undo.record(self.set_learned, consults, consulted)
        day.deactivate(token)
        if day.subscribers:
            day.pending.append(draft_completed(now, token))
        return token

    # ================================================================ reallocation

    def refill(self, slot: Slot, now: datetime, *, keep: str | None = None) -> None:
        """Fill free places of ``slot`` (and of the slots that feeds from) at once: the
        waitlist first, then pulling forward (never the token ``keep``, just rescheduled
        away). O(k log n) for k tokens moved."""
        if not self.available:
            return
        capacity = self.day.policies.capacity
        hard_limit = self.day.hard_limit
        pull_forward = self.day.policies.reallocation.pull_forward
        tokens = self.day.tokens
        pending = [slot]
        while pending:
            slot = pending.pop()
            if slot._until <= now or slot._closed:
                continue
            limit = slot._capacity if hard_limit else capacity.limit(slot._capacity)
            while len(slot._ids) + slot._done < limit:
                token = self.from_waitlist(slot)
                if token is not None:
                    self.move(token, slot, MoveReason.FROM_WAITLIST, now, counted=False)
                    continue
                if not pull_forward:
                    break
                source = self.pull_candidate(slot, now, keep)
                if source is None:
                    break
                token_id = source._next(now)
                assert token_id is not None
                self.move(tokens[token_id], slot, MoveReason.PULLED_FORWARD, now, counted=True)
                pending.append(source)

    def from_waitlist(self, slot: Slot) -> Token | None:
        """The first waitlisted token ``slot`` admits (the slot has room). O(c log n) for the c
        (source, priority) classes waiting: the policy is asked once per class."""
        waitlist = self.waitlist
        if not len(waitlist):
            return None
        if self.day.hard_limit:  # it admits everyone or no one: the slot has room
            token_id = waitlist.first()
        else:
            admits = self.day.policies.capacity.admits
            token_id = waitlist.first_admitted(partial(admits, slot))
        return None if token_id is None else self.day.tokens[token_id]

    def pull_candidate(self, slot: Slot, now: datetime, keep: str | None = None) -> Slot | None:
        """The nearest later slot whose next patient ``slot`` admits (and is not ``keep``)."""
        admits = self.day.policies.capacity.admits
        tokens = self.day.tokens
        i = bisect_right(self.present, (slot._at, slot.id))
        for _, later_id in self.present[i:]:
            later = self.slot_index[later_id]
            token_id = later._next(now)
            assert token_id is not None
            token = tokens[token_id]
            if token_id != keep and admits(slot, token.source, token.priority):
                return later
        return None

    # ================================================================ displacement

    def resized(self, slot: Slot, old: int, reason: MoveReason, now: datetime) -> None:
        """Report a capacity change and move the tokens a smaller slot no longer holds."""
        self.day.record(SlotResized, now, slot_id=slot.id, old_capacity=old, capacity=slot.capacity)
        limit = self.day.policies.capacity.limit(slot.capacity)
        while slot.occupancy - slot.emergencies > limit:
            if not self.displace(slot, reason, now):
                break
        if slot.emergencies:
            self.contain_overflow(slot, now, reason)

    def lose_places(self, places: int, now: datetime) -> None:
        """Take ``places`` off the doctor's open slots, earliest first, and move the excess."""
        shrunk: list[tuple[Slot, int]] = []
        for slot in self.slots[bisect_right(self.ends, now) :]:
            if places == 0:
                break
            taken = min(places, slot.capacity)
            if taken:
                shrunk.append((slot, slot.capacity))
                slot._set_capacity(slot.capacity - taken)
                places -= taken
        # Every capacity is final before anyone moves, so nobody is moved twice.
        for slot, old in shrunk:
            self.resized(slot, old, MoveReason.DELAYED, now)

    def contain_overflow(
        self, slot: Slot, now: datetime, reason: MoveReason = MoveReason.DISPLACED
    ) -> None:
        """Displace non-emergencies while ``slot`` is past the emergency policy's bound."""
        policies = self.day.policies
        bound = policies.emergency.overflow_limit(slot)
        if bound is None:
            return
        limit = policies.capacity.limit(slot.capacity)
        while slot.occupancy - limit > bound:
            if not self.displace(slot, reason, now):
                return

    def displace(self, slot: Slot, reason: MoveReason, now: datetime) -> bool:
        """Move the lowest-ranked displaceable token of ``slot`` onward; False if none."""
        victim_id = slot._victim(self.day.policies.reallocation.max_moves)
        if victim_id is None:
            return False
        victim = self.day.tokens[victim_id]
        onward = self.first_with_room(victim.source, victim.priority, now, after=slot)
        self.move(victim, onward, reason, now, counted=True)
        return True

    # ================================================================ indexes

    def joined(self, slot: Slot, token: Token) -> None:
        """Checked-in ``token`` joined ``slot``: re-index it if it had nobody present, or
        no present emergency and ``token`` is one (the indexes change only then). O(log s)."""
        if slot._id not in self.present_ids or (
            token.priority is EMERGENCY and slot._id not in self.urgent_ids
        ):
            self.sync_present(slot)

    def left(self, slot: Slot) -> None:
        """A checked-in token left ``slot``: re-index it if nobody present is left there,
        or no present emergency (the indexes change only then). O(log n + s)."""
        if not slot._index.present or (
            slot._id in self.urgent_ids and not slot._present_emergencies()
        ):
            self.sync_present(slot)

    def sync_present(self, slot: Slot) -> None:
        """Keep ``present`` = the doctor's slots with a checked-in patient waiting, and
        ``urgent`` = those with a checked-in emergency waiting. O(log n + s)."""
        # Recomputed once every step is undone: the indexes follow the restored slot.
        if self.day.undo.recording:
            self.day.undo.recompute(self.sync_present, slot)
        key = (slot._at, slot._id)
        has = slot.present > 0
        if has != (slot._id in self.present_ids):
            if has:
                self.present_ids.add(slot._id)
                insort(self.present, key)
            else:
                self.present_ids.discard(slot._id)
                self.present.remove(key)
        urgent = has and slot._emergencies > 0 and slot._present_emergencies() > 0
        if urgent != (slot._id in self.urgent_ids):
            if urgent:
                self.urgent_ids.add(slot._id)
                insort(self.urgent, key)
            else:
                self.urgent_ids.discard(slot._id)
                self.urgent.remove(key)

    def _check(self) -> None:
        """Raise ``AssertionError`` naming the first broken invariant of the desk's own
        indexes. Changes nothing.

        Checked: the doctor's department in the day's index; the slots its doctor's, in
        start order and never overlapping; the start, end and id indexes; the slots with a
        patient present (each slot's own state is its ``_check()``, and the slots with a
        present emergency are checked against the tokens, both by the caller).
        O(s log s) for its s slots.
        """
        doctor_id = self.doctor.id
        require(
            self.day.departments.get(doctor_id) == self.doctor.department,
            "department index",
            doctor_id,
        )
        slots = self.slots
        require(
            all(slot.doctor_id == doctor_id for slot in slots), "slots of the doctor", doctor_id
        )
        starts = [utc(slot.start) for slot in slots]
        require(starts == sorted(starts), "slots in start order", doctor_id)
        require(self.starts == starts, "slot starts index", doctor_id)
        require(self.ends == [utc(slot.end) for slot in slots], "slot ends index", doctor_id)
        require(self.slot_index == {slot.id: slot for slot in slots}, "slot id index", doctor_id)
        for i in range(1, len(slots)):
            require(
                self.ends[i - 1] <= starts[i],
                "slots never overlap",
                f"{slots[i - 1].id!r} and {slots[i].id!r}",
            )
        with_present = sorted(
            (start, slot.id) for start, slot in zip(starts, slots, strict=True) if slot.present
        )
        require(self.present == with_present, "present-slot index", doctor_id)
        require(self.present_ids == {i for _, i in with_present}, "present-slot ids", doctor_id)
