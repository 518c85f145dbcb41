"""Slot: one stretch of a doctor's day, and the sorted queue of the tokens waiting in it.

Its sorted lists, like those of :mod:`opd_engine._index` (the checked-in tokens in call
order, which a slot owns), :mod:`opd_engine._patients` (a patient's held tokens) and the
waitlist, come from :mod:`opd_engine._queue`, the one module that imports
``sortedcontainers``. The desk calls the underscored methods (the allocator too, on its
hot calls and for moves between doctors); everybody else sees a slot through its
read-only properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from heapq import merge
from itertools import pairwise
from typing import Any, Final, final

import attrs

from . import _display
from ._check import attrs_validator, check_datetime, check_id, check_int, require, utc
from ._index import CallOrder, Filed, StaticIndex, index_for, keyed, shape_of
from ._queue import FIRST_NORMAL, NO_KEYS, SEQ_BITS, SEQ_MASK, SortedList, WaitKey
from ._undo import DETACHED, Undo
from ._values import AWAY, BOOKED, CHECKED_IN, EMERGENCY, Source, Token
from .errors import InvalidArgumentError
from .policies import OrderingPolicy

__all__ = ["Slot", "SlotView"]


def _last_unprotected(keys: SortedList[WaitKey], protected: SortedList[WaitKey]) -> int | None:
    """The largest non-emergency key of ``keys`` not in ``protected`` (a subset of
    ``keys``), or None. O(log^2 n)."""
    first = keys.bisect_left(FIRST_NORMAL)
    last = len(keys) - 1
    if first > last:
        return None
    if not protected or keys[last] not in protected:
        return keys[last]
    if len(protected) - protected.bisect_left(FIRST_NORMAL) == last - first + 1:
        return None  # all protected
    # The largest i whose key is not protected: the unprotected keys at or after index i
    # number (last - i + 1) - (protected keys >= keys[i]), which falls as i grows; find the
    # last i where it is still 1 or more.
    low, high = first, last
    while low < high:
        middle = (low + high + 1) // 2
        unprotected = last - middle + 1 - (len(protected) - protected.bisect_left(keys[middle]))
        if unprotected >= 1:
            low = middle
        else:
            high = middle - 1
    return keys[low]


def _check_end(instance: Slot, attribute: Any, value: Any) -> None:
    end = check_datetime("end", value)
    start: object = instance._start
    if not isinstance(start, datetime):  # refused by start's own check
        return
    if (instance.start.tzinfo is None) != (end.tzinfo is None):
        raise InvalidArgumentError(
            f"start and end must both be naive or both aware, got start={instance.start!r}, "
            f"end={end!r}"
        )
    if utc(end) <= utc(instance.start):
        raise InvalidArgumentError(
            f"end must be after start, got start={instance.start!r}, end={end!r}"
        )


#: A detached slot's lock: nobody else changes it.
_UNLOCKED: Final[AbstractContextManager[object]] = nullcontext()


#: A slot's index before it is attached (or once detached): empty, never changed.
_DETACHED_INDEX: Final[CallOrder] = StaticIndex({})


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Slot:
    """A doctor's time slot with ``capacity`` places; it owns the queue of its tokens.

    ``Slot(id, doctor_id, start, end, capacity)`` validates its arguments and raises
    :class:`~opd_engine.InvalidArgumentError` for an id that is not one (empty, padded,
    longer than 128 characters, or holding a control character or a lone surrogate: see
    :class:`~opd_engine.Doctor`), ``end <= start``, a negative or non-integer capacity. Ids
    given as a ``str`` subclass are kept as plain ``str``, a capacity given as an ``int``
    subclass (an ``IntEnum`` member) as a plain ``int``. Hand it to
    :meth:`Allocator.add_slot`; from then on only the allocator changes it (its fields are
    read-only), and it belongs to that allocator alone.
    Each property is one read of figures the allocator changes under its lock; to read
    several figures consistently while other threads call the allocator, take
    :meth:`Allocator.slot_view`, a frozen copy of them all.

    Waiting tokens (``BOOKED``, ``CHECKED_IN`` and ``AWAY``) are kept sorted on
    ``(priority, seq)``; the checked-in ones are also filed by the ordering policy for
    O(log n) calls, and the away ones likewise, apart, never called. The slot's *standing
    order* ranks them all: a checked-in or away token at its current level, a booked one at
    its triaged priority, ties by ``seq``.
    """

    # Read-only to callers through the properties below; private so that no attribute write
    # on the hot paths goes through a generated __setattr__.
    _id: str = attrs.field(validator=attrs_validator(check_id))
    _doctor_id: str = attrs.field(validator=attrs_validator(check_id))
    _start: datetime = attrs.field(validator=attrs_validator(check_datetime))
    _end: datetime = attrs.field(validator=_check_end)
    _capacity: int = attrs.field(validator=attrs_validator(check_int, minimum=0))

    # Start and end in real time (UTC when aware), for every comparison and duration.
    _at: datetime = attrs.field(init=False)
    _until: datetime = attrs.field(init=False)
    # Every waiting token: seq -> id (its key is ``priority << SEQ_BITS | seq``).
    _ids: dict[int, str] = attrs.field(init=False, factory=dict)
    # Keys of the booked (not yet arrived) waiting tokens.
    _absent: SortedList[WaitKey] = attrs.field(init=False, default=NO_KEYS)
    # Places held by tokens no longer waiting (in consultation, completed).
    _done: int = attrs.field(init=False, default=0)
    # Emergency place holders (waiting or not).
    _emergencies: int = attrs.field(init=False, default=0)
    # Non-emergency place holders per source, for quotas.
    _sources: dict[Source, int] = attrs.field(init=False, factory=dict)
    # The checked-in tokens in call order, their keys in the index's ``arrived``: one
    # class per shape of ordering, chosen in _attach (see _index.py).
    _index: CallOrder = attrs.field(init=False, default=_DETACHED_INDEX)
    # The away tokens (stepped out, keeping their place), filed by the same ordering in an
    # index of their own, so that they keep their current (aged) rank and are never called.
    # Made at the first one (most slots never see one).
    _away: CallOrder = attrs.field(init=False, default=_DETACHED_INDEX)
    _ordering: OrderingPolicy | None = attrs.field(init=False, default=None)
    # ``_next(now)``: the id of the checked-in token the ordering calls first, O(log n).
    # The index's own method, bound in _attach: every call goes straight to it.
    _next: Callable[[datetime], str | None] = attrs.field(init=False, default=_DETACHED_INDEX.next)
    _tokens: Mapping[str, Token] = attrs.field(init=False, factory=dict)
    # The lock of the allocator the slot belongs to: reads for display take it.
    _lock: AbstractContextManager[object] = attrs.field(init=False, default=_UNLOCKED)
    # Closed by close_slot: no bookings, no refills, never reopened.
    _closed: bool = attrs.field(init=False, default=False)
    # Places granted past the capacity policy to non-emergencies: the idle-fill rule, an
    # emergency re-triaged to a lower level. They stay granted for the day.
    _elastic: int = attrs.field(init=False, default=0)
    # The inverse of each change of the call in progress, kept only when the policies are
    # not all shipped ones (a user's policy may fail half-way through a call).
    _undo: Undo = attrs.field(init=False, default=DETACHED)  # the allocator's, once added
    # Keys of the waiting non-emergency tokens moved ``_protect_at`` times or more (the
    # reallocation policy's max_moves when the slot was added), booked and checked in apart:
    # displaced only as the last resort.
    _protected_absent: SortedList[WaitKey] = attrs.field(init=False, default=NO_KEYS)
    _protected_arrived: SortedList[WaitKey] = attrs.field(init=False, default=NO_KEYS)
    _protected_away: SortedList[WaitKey] = attrs.field(init=False, default=NO_KEYS)
    _protect_at: int = attrs.field(init=False, default=2**62)

    # ----------------------------------------------------------------- read-only views

    def __attrs_post_init__(self) -> None:
        self._at = utc(self._start)
        self._until = utc(self._end)

    @property
    def id(self) -> str:
        """The slot's id."""
        return self._id

    @property
    def doctor_id(self) -> str:
        """The doctor whose slot it is."""
        return self._doctor_id

    @property
    def start(self) -> datetime:
        """When the slot starts."""
        return self._start

    @property
    def end(self) -> datetime:
        """When the slot ends (after ``start``)."""
        return self._end

    @property
    def capacity(self) -> int:
        """Places for non-emergency tokens under a hard limit."""
        return self._capacity

    @property
    def occupancy(self) -> int:
        """Tokens holding a place: booked, checked in, in consultation, completed. O(1)."""
        return len(self._ids) + self._done

    @property
    def free(self) -> int:
        """``max(0, capacity - occupancy)``. O(1)."""
        return max(0, self.capacity - self.occupancy)

    @property
    def overflow(self) -> int:
        """``max(0, occupancy - capacity)``: places beyond capacity (emergencies). O(1)."""
        return max(0, self.occupancy - self.capacity)

    @property
    def elastic(self) -> int:
        """Places granted past the capacity policy to non-emergency tokens: by the idle-fill
        rule (a present waitlisted patient called into a full slot) or to an emergency
        re-triaged to a lower level. They stay granted for the day. O(1)."""
        return self._elastic

    @property
    def closed(self) -> bool:
        """True once :meth:`Allocator.close_slot` closed it. O(1)."""
        return self._closed

    @property
    def waiting(self) -> int:
        """Tokens waiting in the queue (booked, checked in or away). O(1)."""
        return len(self._ids)

    @property
    def present(self) -> int:
        """Checked-in tokens waiting to be called. O(1)."""
        return self._index.present

    def _present_emergencies(self) -> int:
        """Checked-in emergencies waiting to be called. O(log n)."""
        return self._index.arrived.bisect_left(FIRST_NORMAL)

    def _first_present_emergency(self) -> int | None:
        """The smallest ``seq`` of the checked-in emergencies waiting, or None. O(1)."""
        arrived = self._index.arrived
        if arrived:
            key = arrived[0]
            if key < FIRST_NORMAL:
                return key & SEQ_MASK
        return None

    @property
    def emergencies(self) -> int:
        """Emergency tokens holding a place. O(1)."""
        return self._emergencies

    def held_by(self, source: Source) -> int:
        """Non-emergency tokens of ``source`` holding a place. O(1)."""
        return self._sources.get(source, 0)

    def _repr_html_(self) -> str:
        """The slot's figures and waiting tokens for notebooks (escaped, at most 50 rows),
        read under the allocator's lock. O(n)."""
        with self._lock:
            tokens, ids = self._tokens, self._ids
            waiting = [
                tokens[ids[key & SEQ_MASK]]
                for key in merge(self._absent, self._index.arrived, self._away.arrived)
            ]
            return _display.slot_html(self, waiting)

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"<Slot {self.id!r} of {self.doctor_id!r} {self.start:%Y-%m-%d %H:%M}-"
                f"{self.end:%H:%M}, {self.occupancy}/{self.capacity} held, "
                f"{self.waiting} waiting>"
            )

    # ----------------------------------------------------------------- allocator only

    def _attach(
        self,
        ordering: OrderingPolicy | None,
        tokens: Mapping[str, Token],
        undo: Undo,
        protect_at: int = 2**62,
        lock: AbstractContextManager[object] = _UNLOCKED,
    ) -> None:
        """Attach the slot to an allocator's day, ``ordering`` its policy (None: detach
        it), and choose its call-order index. O(1)."""
        self._lock = lock
        self._index = (
            _DETACHED_INDEX
            if ordering is None
            else index_for(ordering, self._id, self._ids, tokens, undo)
        )
        self._next = self._index.next
        self._away = _DETACHED_INDEX
        self._ordering = ordering
        self._tokens = tokens
        self._undo = undo
        self._protect_at = protect_at

    def _away_index(self) -> CallOrder:
        """The away tokens' index, made at the first one. O(1)."""
        away = self._away
        if away is _DETACHED_INDEX:
            assert self._ordering is not None, "only an attached slot holds tokens"
            away = self._away = index_for(
                self._ordering, self._id, self._ids, self._tokens, self._undo
            )
        return away

    def _attached(self) -> bool:
        """True while the slot belongs to an allocator. O(1)."""
        return self._index is not _DETACHED_INDEX

    def _add(self, token: Token, now: datetime) -> None:
        """File a waiting token (BOOKED or CHECKED_IN). O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        # A list still NO_KEYS is made here, at its first key. The inverses (_undo_remove,
        # _undo_seat, _undo_arrive) put a key back only where it was, so they never meet one.
        status = token.status
        if status is CHECKED_IN:
            # The ordering (user code, which may fail) is asked before anything changes.
            self._index.file(token, now)
        elif status is AWAY:
            self._away_index().file(token, now)
        else:
            keys = self._absent
            if keys is NO_KEYS:
                keys = self._absent = SortedList()
            keys.add(key)
        self._ids[seq] = token.id
        if token.priority is EMERGENCY:
            self._emergencies += 1
        else:
            sources = self._sources
            sources[token.source] = sources.get(token.source, 0) + 1
            if token.moves >= self._protect_at:
                if status is CHECKED_IN:
                    protected = self._protected_arrived
                    if protected is NO_KEYS:
                        protected = self._protected_arrived = SortedList()
                elif status is AWAY:
                    protected = self._protected_away
                    if protected is NO_KEYS:
                        protected = self._protected_away = SortedList()
                else:
                    protected = self._protected_absent
                    if protected is NO_KEYS:
                        protected = self._protected_absent = SortedList()
                protected.add(key)
        if self._undo.recording:
            self._undo.record(self._remove, token)

    def _remove(self, token: Token) -> None:
        """Unfile a waiting token that gives up its place. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        del self._ids[seq]
        filed = None
        if token.status is CHECKED_IN:
            filed = self._index.unfile(token)
            protected = self._protected_arrived
        elif token.status is AWAY:
            filed = self._away.unfile(token)
            protected = self._protected_away
        else:
            self._absent.remove(key)
            protected = self._protected_absent
        if token.priority is EMERGENCY:
            self._emergencies -= 1
        else:
            self._sources[token.source] -= 1
            if token.moves >= self._protect_at:
                protected.remove(key)
        if self._undo.recording:
            self._undo.record(self._undo_remove, token, filed)

    def _undo_remove(self, token: Token, filed: Filed) -> None:
        """Undo :meth:`_remove`: file the token back exactly as it was. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        self._ids[seq] = token.id
        if token.status is CHECKED_IN:
            self._index.refile(token, filed)
            protected = self._protected_arrived
        elif token.status is AWAY:
            self._away.refile(token, filed)
            protected = self._protected_away
        else:
            self._absent.add(key)
            protected = self._protected_absent
        self._count(token, 1)
        if token.moves >= self._protect_at and token.priority is not EMERGENCY:
            protected.add(key)

    def _count(self, token: Token, step: int) -> None:
        if token.priority is EMERGENCY:
            self._emergencies += step
        else:
            self._sources[token.source] = self._sources.get(token.source, 0) + step

    def _hold(self, token: Token) -> None:
        """Count a token already called or completed (restoring a snapshot, replaying a
        journal). O(1)."""
        self._done += 1
        self._count(token, 1)
        if self._undo.recording:
            self._undo.record(self._undo_hold, token)

    def _undo_hold(self, token: Token) -> None:
        """Undo :meth:`_hold`. O(1)."""
        self._done -= 1
        self._count(token, -1)

    def _seat(self, token: Token) -> None:
        """A checked-in token was called: it leaves the queue but keeps its place.
        O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        filed = self._index.unfile(token)
        del self._ids[seq]
        self._done += 1
        protected = token.moves >= self._protect_at and token.priority is not EMERGENCY
        if protected:
            self._protected_arrived.remove(key)
        if self._undo.recording:
            self._undo.record(self._undo_seat, token, filed, protected)

    def _undo_seat(self, token: Token, filed: Filed, protected: bool) -> None:
        """Undo :meth:`_seat`. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        self._ids[seq] = token.id
        self._done -= 1
        if protected:
            self._protected_arrived.add(key)
        self._index.refile(token, filed)

    def _release(self, token: Token) -> None:
        """A called token gives its place back (a missed call). O(1)."""
        self._done -= 1
        self._count(token, -1)
        if self._undo.recording:
            self._undo.record(self._undo_release, token)

    def _undo_release(self, token: Token) -> None:
        """Undo :meth:`_release`. O(1)."""
        self._done += 1
        self._count(token, 1)

    def _arrive(self, token: Token, now: datetime) -> None:
        """A booked token checked in: move its key from the booked to the checked-in list
        and file it for calling. O(log n)."""
        self._index.file(token, now)  # first: a user's ordering may fail or refuse its key
        key = token.priority << SEQ_BITS | token.seq
        self._absent.remove(key)
        protected = token.moves >= self._protect_at and token.priority is not EMERGENCY
        if protected:
            self._protected_absent.remove(key)
            if self._protected_arrived is NO_KEYS:
                self._protected_arrived = SortedList()
            self._protected_arrived.add(key)
        if self._undo.recording:
            self._undo.record(self._undo_arrive, token, key, protected)

    def _undo_arrive(self, token: Token, key: WaitKey, protected: bool) -> None:
        """Undo :meth:`_arrive`. O(log n)."""
        self._index.unfile(token)
        self._absent.add(key)
        if protected:
            self._protected_arrived.remove(key)
            self._protected_absent.add(key)

    def _depart(self, token: Token) -> None:
        """A checked-in token stepped out (``token`` as it was, CHECKED_IN): it keeps its
        place and its filing, moved to the away index, where it keeps its current rank
        (aging on) and is never called. O(log n)."""
        away = self._away_index()
        filed = self._index.unfile(token)
        try:
            away.refile(token, filed)
        except InvalidArgumentError:  # a user's key that does not fit among the away ones
            self._index.refile(token, filed)
            raise
        protected = self._shift(token, to_away=True)
        if self._undo.recording:
            self._undo.record(self._undo_depart, token, filed, protected)

    def _undo_depart(self, token: Token, filed: Filed, protected: bool) -> None:
        """Undo :meth:`_depart`. O(log n)."""
        self._away.unfile(token)
        self._index.refile(token, filed)
        if protected:
            key = token.priority << SEQ_BITS | token.seq
            self._protected_away.remove(key)
            self._protected_arrived.add(key)

    def _return(self, token: Token) -> None:
        """An away token is back (``token`` as it was, AWAY): filed for calling again, at the
        rank it had kept. O(log n)."""
        filed = self._away.unfile(token)
        try:
            self._index.refile(token, filed)
        except InvalidArgumentError:
            self._away.refile(token, filed)
            raise
        protected = self._shift(token, to_away=False)
        if self._undo.recording:
            self._undo.record(self._undo_return, token, filed, protected)

    def _undo_return(self, token: Token, filed: Filed, protected: bool) -> None:
        """Undo :meth:`_return`. O(log n)."""
        self._index.unfile(token)
        self._away.refile(token, filed)
        if protected:
            key = token.priority << SEQ_BITS | token.seq
            self._protected_arrived.remove(key)
            self._protected_away.add(key)

    def _shift(self, token: Token, *, to_away: bool) -> bool:
        """Move a protected token's key between the checked-in and the away protected
        lists; whether it was protected. O(log n)."""
        if token.moves < self._protect_at or token.priority is EMERGENCY:
            return False
        key = token.priority << SEQ_BITS | token.seq
        if to_away:
            self._protected_arrived.remove(key)
            if self._protected_away is NO_KEYS:
                self._protected_away = SortedList()
            self._protected_away.add(key)
        else:
            self._protected_away.remove(key)
            if self._protected_arrived is NO_KEYS:
                self._protected_arrived = SortedList()
            self._protected_arrived.add(key)
        return True

    def _set_capacity(self, capacity: int) -> None:
        """O(1)."""
        old = self._capacity
        self._capacity = capacity
        if self._undo.recording:
            self._undo.record(self._set_capacity, old)

    def _close(self) -> None:
        """Close the slot for good. O(1)."""
        if not self._closed:
            self._closed = True
            if self._undo.recording:
                self._undo.record(self._undo_close)

    def _undo_close(self) -> None:
        self._closed = False

    def _grant(self, places: int) -> None:
        """Grant places past the capacity policy: ``elastic`` becomes at least ``places``."""
        if places <= self._elastic:
            return
        old = self._elastic
        self._elastic = places
        if self._undo.recording:
            self._undo.record(self._undo_grant, old)

    def _undo_grant(self, places: int) -> None:
        self._elastic = places

    def _standing(self, now: datetime) -> Iterator[str]:
        """Every waiting token id in the standing order as of ``now``. O(n).

        The checked-in tokens in call order, merged with the away ones (ranked as if
        present) and the booked ones in ``(priority, seq)`` order: whichever stream's head
        has the smaller ``(level, seq)`` goes first, a booked token's level being its
        triaged priority (it does not age).
        """
        called = self._index.called_order(now)
        away = self._away.called_order(now)
        for _, _, token_id in merge(called, away, keyed(self._absent, self._ids)):
            yield token_id

    def _position(self, token: Token, now: datetime) -> int:
        """1-based place of a waiting token in the standing order.

        O(log n) under ``StrictPriority`` and ``Aging`` (whose key is ``seq``: the order is
        then ``(level, seq)``), O(n) under any other ordering.
        """
        return self._index.position(token, now, self._absent, self._away)

    def _victim(self, max_moves: int) -> str | None:
        """The id of the token to displace: the lowest-ranked waiting non-emergency token
        (lowest priority, latest ``seq``) moved fewer than ``max_moves`` times, else the
        lowest-ranked one (protected tokens go last); None if only emergencies wait.
        O(log^2 n) (O(n) if ``max_moves`` is not the one the slot was added under, which
        only a user's policy can do)."""
        ids = self._ids
        if max_moves != self._protect_at:
            tokens = self._tokens
            fallback = None
            for key in merge(
                reversed(self._absent),
                reversed(self._index.arrived),
                reversed(self._away.arrived),
                reverse=True,
            ):
                if key < FIRST_NORMAL:
                    break
                token_id = ids[key & SEQ_MASK]
                if tokens[token_id].moves < max_moves:
                    return token_id
                if fallback is None:
                    fallback = token_id
            return fallback
        candidates = [
            key
            for key in (
                _last_unprotected(self._absent, self._protected_absent),
                _last_unprotected(self._index.arrived, self._protected_arrived),
                _last_unprotected(self._away.arrived, self._protected_away),
            )
            if key is not None
        ]
        if not candidates:  # every non-emergency is protected (or none waits)
            candidates = [
                keys[-1]
                for keys in (self._absent, self._index.arrived, self._away.arrived)
                if keys and keys[-1] >= FIRST_NORMAL
            ]
            if not candidates:
                return None
        return ids[max(candidates) & SEQ_MASK]

    def _check(self, tokens: Mapping[str, Token], ordering: OrderingPolicy) -> list[str]:
        """Raise ``AssertionError`` naming the first broken invariant of the slot's own
        state, else return the ids of its waiting tokens (for the checks across parts).
        Changes nothing.

        Checked: its times in real time; the booked key list sorted; the booked and
        checked-in keys with the id index; each key against its token in ``tokens``
        (issued, this slot's, waiting, checked in exactly when among the checked-in keys);
        the protected-token lists; the call-order index, of the shape ``ordering`` (the
        policy as given, which keys each level) is served by, through its own ``_check()``;
        the granted places. O(n log n) for the n waiting tokens.
        """
        slot_id = self._id
        require(
            self._at == utc(self._start) and self._until == utc(self._end),
            "slot times in real time",
            slot_id,
        )
        ids = self._ids
        absent = list(self._absent)
        require(all(a < b for a, b in pairwise(absent)), "booked list sorted", slot_id)
        arrived = list(self._index.arrived)
        away = list(self._away.arrived)
        require(
            len(absent) + len(arrived) + len(away) == len(ids)
            and {key & SEQ_MASK for key in absent + arrived + away} == ids.keys(),
            "queue id index",
            slot_id,
        )
        waiting: list[str] = []  # booked, then checked in, then away, each by key
        for keys, protected_keys, status in (
            (absent, self._protected_absent, BOOKED),
            (arrived, self._protected_arrived, CHECKED_IN),
            (away, self._protected_away, AWAY),
        ):
            protected = []
            for key in keys:
                priority, seq = key >> SEQ_BITS, key & SEQ_MASK
                token_id = ids[seq]
                waiting.append(token_id)
                token = tokens.get(token_id)
                require(token is not None, "queue holds issued tokens", token_id)
                assert token is not None
                require(
                    (token.priority, token.seq, token.slot_id, token.doctor_id)
                    == (priority, seq, slot_id, self._doctor_id),
                    "queue entries match their tokens",
                    token,
                )
                require(token.status.waiting, "queue holds waiting tokens", token)
                require(
                    token.status is status,
                    "checked-in tokens are filed for calling, away ones apart",
                    token,
                )
                if token.moves >= self._protect_at and token.priority is not EMERGENCY:
                    protected.append(key)
            require(list(protected_keys) == protected, "protected-token index", slot_id)
        require(
            type(self._index) is shape_of(ordering), "call-order index fits the ordering", slot_id
        )
        self._index._check(slot_id, ordering)
        if self._away is not _DETACHED_INDEX:
            require(type(self._away) is shape_of(ordering), "away index fits the ordering", slot_id)
            self._away._check(slot_id, ordering)
        require(self._elastic >= 0, "elastic places count up", slot_id)
        return waiting


@final
@attrs.frozen(kw_only=True)
class SlotView:
    """A slot's figures read together, under the allocator's lock: a frozen value, so a
    display board on another thread never sees one figure from before a change and another
    from after it. From :meth:`Allocator.slot_view`."""

    id: str
    doctor_id: str
    start: datetime
    end: datetime
    capacity: int
    occupancy: int
    free: int
    overflow: int
    waiting: int
    present: int
    emergencies: int
    elastic: int
    closed: bool

    @classmethod
    def of(cls, slot: Slot) -> SlotView:
        """The figures of ``slot`` now (the caller holds the lock). O(1)."""
        occupancy = len(slot._ids) + slot._done
        capacity = slot._capacity
        return cls(
            id=slot._id,
            doctor_id=slot._doctor_id,
            start=slot._start,
            end=slot._end,
            capacity=capacity,
            occupancy=occupancy,
            free=max(0, capacity - occupancy),
            overflow=max(0, occupancy - capacity),
            waiting=len(slot._ids),
            present=slot._index.present,
            emergencies=slot._emergencies,
            elastic=slot._elastic,
            closed=slot._closed,
        )


def waiting_emergencies(slot: Slot) -> int:
    """Emergencies waiting in ``slot`` to be called, arrived or not (for an estimate).
    O(log n), O(1) for a slot without any."""
    if not slot._emergencies:
        return 0
    return (
        slot._absent.bisect_left(FIRST_NORMAL)
        + slot._present_emergencies()
        + slot._away.arrived.bisect_left(FIRST_NORMAL)
    )


def ahead_in(slot: Slot, token: Token, now: datetime) -> int:
    """How many stand before waiting ``token`` in ``slot``'s standing order (for an
    estimate). The cost of :meth:`Slot._position`."""
    return slot._position(token, now) - 1
