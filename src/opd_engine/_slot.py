"""Slot: one stretch of a doctor's day, and the sorted queue of the tokens waiting in it.

With :mod:`opd_engine._patients` (a patient's held tokens), the only module that imports
``sortedcontainers``. The allocator is the only caller of the underscored methods; everybody
else sees a slot through its read-only properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from heapq import heappop, heappush, merge
from itertools import pairwise
from typing import Any, Final, final

import attrs
from sortedcontainers import SortedList

from . import _display
from ._check import attrs_validator, check_datetime, check_id, check_int, require, utc
from ._guard import unordered_key
from ._undo import DETACHED, Undo
from ._values import CHECKED_IN, EMERGENCY, WAITLISTED, Priority, Source, Token
from .errors import InvalidArgumentError
from .policies import Aging, OrderingPolicy, StrictPriority

__all__ = ["Slot", "SlotView"]

# A waiting token's queue key: ``priority << SEQ_BITS | seq``, the contract's ``(priority,
# seq)`` as one int (ints compare several times faster than tuples in a sorted list). A
# slot and a waitlist each map ``seq`` back to the token id (``key & SEQ_MASK`` is ``seq``).
SEQ_BITS: Final = 40
SEQ_MASK: Final = (1 << SEQ_BITS) - 1
#: The largest ``seq`` a key holds (about 10^12: far beyond any day's tokens).
MAX_SEQ: Final = SEQ_MASK
WaitKey = int
# A checked-in token's entry in the ordering index: its queue key under an ordering keyed
# by ``seq`` (StrictPriority, Aging), else ``(ordering key, seq)`` in its level.
PresentEntry = Any
# How a checked-in token is filed: (level, entry, pending level change or None).
Filed = tuple[int, PresentEntry, "tuple[datetime, int, str] | None"]
# Sorts before every non-emergency key, after every emergency.
_FIRST_NORMAL: Final = (int(EMERGENCY) + 1) << SEQ_BITS
# Orderings whose key is ``seq``: the standing order is then (level, seq), and a position
# is a few bisections. The classes themselves: a subclass may override any method, so it is
# asked like any user's ordering.
_SEQ_KEYED: Final = frozenset({StrictPriority, Aging})


def wait_key(token: Token) -> WaitKey:
    """The queue key of ``token``. O(1)."""
    return token.priority << SEQ_BITS | token.seq


def _last_unprotected(keys: SortedList[WaitKey], protected: SortedList[WaitKey]) -> int | None:
    """The largest non-emergency key of ``keys`` not in ``protected`` (a subset of
    ``keys``), or None. O(log^2 n)."""
    first = keys.bisect_left(_FIRST_NORMAL)
    last = len(keys) - 1
    if first > last:
        return None
    if not protected or keys[last] not in protected:
        return keys[last]
    if len(protected) - protected.bisect_left(_FIRST_NORMAL) == last - first + 1:
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


@final
class _NoKeys(SortedList[WaitKey]):
    """The one empty key list every slot's sorted lists start as: most of a day's slots
    never hold an aged or a protected token, and a slot that no token reaches needs none
    of its lists, so each list is made when its first key comes (a ``SortedList`` costs
    as much to make as several bookings). Reading it is reading an empty list; changing
    it would change every slot's, so it refuses to."""

    def add(self, value: WaitKey) -> None:
        raise AssertionError("the shared empty key list is never changed; make a list first")

    def update(self, iterable: Iterable[WaitKey]) -> None:
        raise AssertionError("the shared empty key list is never changed; make a list first")


_NO_KEYS: Final[SortedList[WaitKey]] = _NoKeys()


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

    Waiting tokens (``BOOKED`` and ``CHECKED_IN``) are kept sorted on ``(priority, seq)``;
    the checked-in ones are also filed by the ordering policy for O(log n) calls. The
    slot's *standing order* ranks them all: a checked-in token at its current level, a
    booked one at its triaged priority, ties by ``seq``.
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
    _absent: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
    # Keys of the checked-in waiting tokens (also filed by the ordering, in _levels).
    _arrived: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
    # Places held by tokens no longer waiting (in consultation, completed).
    _done: int = attrs.field(init=False, default=0)
    # Emergency place holders (waiting or not).
    _emergencies: int = attrs.field(init=False, default=0)
    # Non-emergency place holders per source, for quotas.
    _sources: dict[Source, int] = attrs.field(init=False, factory=dict)
    # Checked-in tokens: level -> entries sorted by the ordering's key (see PresentEntry).
    _levels: dict[int, SortedList[PresentEntry]] = attrs.field(init=False, factory=dict)
    # token id -> (level, entry in that level, pending level change or None).
    _filed: dict[str, Filed] = attrs.field(init=False, factory=dict)
    # Pending level changes (when, seq, id): a heap. An entry whose token left (or was re-filed)
    # stays until it comes due and is then skipped: cheaper than removing it.
    _changes: list[tuple[datetime, int, str]] = attrs.field(init=False, factory=list)
    _ordering: OrderingPolicy | None = attrs.field(init=False, default=None)
    _seq_keyed: bool = attrs.field(init=False, default=False)  # the ordering's key is seq
    # Under an ordering keyed by seq (StrictPriority, Aging) the call order is (level, seq),
    # which is _arrived's own order for every token still at its triaged priority: only
    # the tokens that have aged to another level are filed again, in _aged by (level, seq),
    # their keys in _aged_keys; _levels stays empty.
    _aged: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
    _static: bool = attrs.field(init=False, default=False)  # StrictPriority: nobody ages
    _aged_keys: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
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
    _protected_absent: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
    _protected_arrived: SortedList[WaitKey] = attrs.field(init=False, default=_NO_KEYS)
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
        """Tokens waiting in the queue (booked or checked in). O(1)."""
        return len(self._ids)

    @property
    def present(self) -> int:
        """Checked-in tokens waiting to be called. O(1)."""
        return len(self._filed)

    def _present_emergencies(self) -> int:
        """Checked-in emergencies waiting to be called. O(log n)."""
        return self._arrived.bisect_left(_FIRST_NORMAL)

    def _first_present_emergency(self) -> int | None:
        """The smallest ``seq`` of the checked-in emergencies waiting, or None. O(1)."""
        arrived = self._arrived
        if arrived:
            key = arrived[0]
            if key < _FIRST_NORMAL:
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
            waiting = [tokens[ids[key & SEQ_MASK]] for key in merge(self._absent, self._arrived)]
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
        self._lock = lock
        self._ordering = ordering
        self._seq_keyed = type(ordering) in _SEQ_KEYED
        self._static = type(ordering) is StrictPriority
        self._tokens = tokens
        self._undo = undo
        self._protect_at = protect_at

    def _add(self, token: Token, now: datetime) -> None:
        """File a waiting token (BOOKED or CHECKED_IN). O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        # A list still _NO_KEYS is made here, at its first key. The inverses (_undo_remove,
        # _undo_seat, _undo_arrive) put a key back only where it was, so they never meet one.
        if token.status is CHECKED_IN:
            # The ordering (user code, which may fail) is asked before anything changes.
            self._file(token.id, self._filing(token, now))
            keys = self._arrived
            if keys is _NO_KEYS:
                keys = self._arrived = SortedList()
            keys.add(key)
        else:
            keys = self._absent
            if keys is _NO_KEYS:
                keys = self._absent = SortedList()
            keys.add(key)
        self._ids[seq] = token.id
        if token.priority is EMERGENCY:
            self._emergencies += 1
        else:
            sources = self._sources
            sources[token.source] = sources.get(token.source, 0) + 1
            if token.moves >= self._protect_at:
                if token.status is CHECKED_IN:
                    protected = self._protected_arrived
                    if protected is _NO_KEYS:
                        protected = self._protected_arrived = SortedList()
                else:
                    protected = self._protected_absent
                    if protected is _NO_KEYS:
                        protected = self._protected_absent = SortedList()
                protected.add(key)
        if self._undo.recording:
            self._undo.record(self._remove, token)

    def _remove(self, token: Token) -> None:
        """Unfile a waiting token that gives up its place. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        del self._ids[seq]
        filed = self._filed[token.id] if token.status is CHECKED_IN else None
        if filed is not None:
            self._arrived.remove(key)
            self._unfile(token.id)
            protected = self._protected_arrived
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

    def _undo_remove(self, token: Token, filed: Filed | None) -> None:
        """Undo :meth:`_remove`: file the token back exactly as it was. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        self._ids[seq] = token.id
        if filed is None:
            self._absent.add(key)
            protected = self._protected_absent
        else:
            self._arrived.add(key)
            self._file(token.id, filed)
            protected = self._protected_arrived
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
        self._arrived.remove(key)
        del self._ids[seq]
        self._done += 1
        protected = token.moves >= self._protect_at and token.priority is not EMERGENCY
        if protected:
            self._protected_arrived.remove(key)
        filed = self._filed[token.id]
        self._unfile(token.id)
        if self._undo.recording:
            self._undo.record(self._undo_seat, token, filed, protected)

    def _undo_seat(self, token: Token, filed: Filed, protected: bool) -> None:
        """Undo :meth:`_seat`. O(log n)."""
        seq = token.seq
        key = token.priority << SEQ_BITS | seq
        self._arrived.add(key)
        self._ids[seq] = token.id
        self._done -= 1
        if protected:
            self._protected_arrived.add(key)
        self._file(token.id, filed)

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
        filing = self._filing(token, now)
        key = token.priority << SEQ_BITS | token.seq
        self._file(token.id, filing)  # first: it may refuse a user's key
        self._absent.remove(key)
        arrived = self._arrived
        if arrived is _NO_KEYS:
            arrived = self._arrived = SortedList()
        arrived.add(key)
        protected = token.moves >= self._protect_at and token.priority is not EMERGENCY
        if protected:
            self._protected_absent.remove(key)
            if self._protected_arrived is _NO_KEYS:
                self._protected_arrived = SortedList()
            self._protected_arrived.add(key)
        if self._undo.recording:
            self._undo.record(self._undo_arrive, token.id, key, protected)

    def _undo_arrive(self, token_id: str, key: WaitKey, protected: bool) -> None:
        """Undo :meth:`_arrive`. O(log n)."""
        self._unfile(token_id)
        self._arrived.remove(key)
        self._absent.add(key)
        if protected:
            self._protected_arrived.remove(key)
            self._protected_absent.add(key)

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

    def _filing(self, token: Token, now: datetime) -> Filed:
        """Where the ordering files a checked-in token now: ``(level, entry, change)``.
        Asks the ordering only; changes nothing. O(1)."""
        key = token.priority << SEQ_BITS | token.seq
        if self._static:  # StrictPriority: at its priority for good, nothing to ask
            return key >> SEQ_BITS, key, None
        ordering = self._ordering
        assert ordering is not None
        if self._seq_keyed:  # a shipped ordering: both answers at once
            level, when = ordering._filing(token, now)  # type: ignore[attr-defined]
            entry: PresentEntry = key
        else:
            level = ordering.level(token, now)
            entry = (ordering.key(token), token.seq)
            when = ordering.next_change(token, now)
        return level, entry, None if when is None else (when, token.seq, token.id)

    def _file(self, token_id: str, filed: Filed) -> None:
        """Add a checked-in token to the ordering index. O(log n).

        Raises :class:`~opd_engine.InvalidArgumentError`, changing nothing, if a user's
        ordering gave it a key that does not compare with the keys already in its level.
        Keys of the allowed kinds (``_guard.plain_key``) compare with all of a sorted
        list's entries once they compare with the entries the insertion meets: those that
        can differ from it in kind share its prefix, and so lie next to its place."""
        level, entry, change = filed
        if self._seq_keyed:
            if entry >> SEQ_BITS != level:  # aged: filed at its level as well
                if self._aged is _NO_KEYS:
                    self._aged = SortedList()
                    self._aged_keys = SortedList()
                self._aged.add(level << SEQ_BITS | (entry & SEQ_MASK))
                self._aged_keys.add(entry)
        else:
            entries = self._levels.get(level)
            if entries is None:
                self._levels[level] = SortedList((entry,))
            else:
                try:
                    entries.add(entry)  # compares the key with the keys around it
                except TypeError:  # left unchanged: refused before anything changed
                    raise unordered_key(self._ordering, token_id, entry[0], self._id) from None
        if change is not None:
            heappush(self._changes, change)
        self._filed[token_id] = filed

    def _unfile(self, token_id: str) -> None:
        level, entry, _ = self._filed.pop(token_id)
        if self._seq_keyed:
            if entry >> SEQ_BITS != level:
                self._aged.remove(level << SEQ_BITS | (entry & SEQ_MASK))
                self._aged_keys.remove(entry)
        else:
            entries = self._levels[level]
            entries.remove(entry)
            if not entries:
                del self._levels[level]
        if not self._filed:
            self._changes.clear()

    def _advance(self, now: datetime) -> None:
        """Re-file the tokens whose level changed by ``now``. O(log n) per change."""
        changes = self._changes
        filed = self._filed
        while changes and changes[0][0] <= now:
            change = changes[0]
            token_id = change[2]
            current = filed.get(token_id)
            if current is None or current[2] != change:
                heappop(changes)  # stale: the token left or was re-filed
                continue
            filing = self._filing(self._tokens[token_id], now)
            heappop(changes)
            self._unfile(token_id)
            try:
                self._file(token_id, filing)
            except InvalidArgumentError:  # a user's key that does not fit its new level
                self._file(token_id, current)  # back where it was, its change pending again
                raise
            if self._undo.recording:
                self._undo.record(self._undo_advance, token_id, current)

    def _undo_advance(self, token_id: str, filed: Filed) -> None:
        """Undo a level change of :meth:`_advance`. O(log n)."""
        self._unfile(token_id)
        self._file(token_id, filed)

    def _next(self, now: datetime) -> str | None:
        """The id of the checked-in token the ordering calls first. O(log n)."""
        if not self._filed:
            return None
        changes = self._changes
        if changes and changes[0][0] <= now:
            self._advance(now)
        if self._seq_keyed:
            # The first by (level, seq): the head of the aged tokens (at their levels) or
            # the first checked-in token by (priority, seq). If that one has aged, the aged
            # head is ahead of it anyway, so it is never called from the wrong place.
            head: int = self._arrived[0]
            aged = self._aged
            if aged and aged[0] < head:
                head = aged[0]
            return self._ids[head & SEQ_MASK]
        levels = self._levels
        ordering = self._ordering
        assert ordering is not None
        if ordering.lexicographic:
            entry = levels[min(levels)][0]
        else:
            order = sorted(levels)
            ids, tokens = self._ids, self._tokens
            heads = [tokens[ids[levels[level][0][1]]] for level in order]
            entry = levels[order[ordering.pick(heads, now)]][0]
        return self._ids[entry[1]]

    def _called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        """Checked-in tokens as ``(level, seq, id)`` in the order the ordering calls them
        as of ``now``. O(n) (O(n * levels) if the ordering is not lexicographic)."""
        self._advance(now)
        ids, tokens = self._ids, self._tokens
        if self._seq_keyed:
            yield from merge(self._keyed(self._aged), self._keyed(self._unaged()))
            return
        ordering = self._ordering
        assert ordering is not None
        levels = self._levels
        order = sorted(levels)
        if ordering.lexicographic:
            for level in order:
                for _, seq in levels[level]:
                    yield level, seq, ids[seq]
            return
        cursors = dict.fromkeys(order, 0)
        while cursors:
            live = list(cursors)
            heads = [tokens[ids[levels[level][cursors[level]][1]]] for level in live]
            level = live[ordering.pick(heads, now)]
            seq = levels[level][cursors[level]][1]
            yield level, seq, ids[seq]
            cursors[level] += 1
            if cursors[level] == len(levels[level]):
                del cursors[level]

    def _unaged(self) -> Iterator[WaitKey]:
        """The keys of ``_arrived`` not in ``_aged_keys`` (a subset), in order. O(n)."""
        aged = iter(self._aged_keys)
        skip = next(aged, None)
        for key in self._arrived:
            if key == skip:
                skip = next(aged, None)
            else:
                yield key

    def _keyed(self, keys: Iterable[WaitKey]) -> Iterator[tuple[int, int, str]]:
        """The tokens of ``keys`` as ``(level or priority, seq, id)``, in order. O(n)."""
        ids = self._ids
        for key in keys:
            seq = key & SEQ_MASK
            yield key >> SEQ_BITS, seq, ids[seq]

    def _standing(self, now: datetime) -> Iterator[str]:
        """Every waiting token id in the standing order as of ``now``. O(n).

        The checked-in tokens in call order, merged with the booked ones in ``(priority,
        seq)`` order: whichever stream's head has the smaller ``(level, seq)`` goes first,
        a booked token's level being its triaged priority (it does not age).
        """
        for _, _, token_id in merge(self._called_order(now), self._keyed(self._absent)):
            yield token_id

    def _position(self, token: Token, now: datetime) -> int:
        """1-based place of a waiting token in the standing order.

        O(log n) under ``StrictPriority`` and ``Aging`` (whose key is ``seq``: the order is
        then ``(level, seq)``), O(n) under any other ordering.
        """
        self._advance(now)
        if self._seq_keyed:
            filed = self._filed.get(token.id)
            level = int(token.priority) if filed is None else filed[0]
            rank = level << SEQ_BITS | token.seq  # its (level, seq)
            # Ahead: the unaged checked-in tokens by (priority, seq), the aged ones by
            # (level, seq), the booked ones by (priority, seq).
            ahead: int = (
                self._arrived.bisect_left(rank)
                - self._aged_keys.bisect_left(rank)
                + self._aged.bisect_left(rank)
                + self._absent.bisect_left(rank)
            )
            return ahead + 1
        for place, token_id in enumerate(self._standing(now), start=1):
            if token_id == token.id:
                return place
        raise AssertionError(f"token {token.id!r} waits but is not in the standing order")

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
            for key in merge(reversed(self._absent), reversed(self._arrived), reverse=True):
                if key < _FIRST_NORMAL:
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
                _last_unprotected(self._arrived, self._protected_arrived),
            )
            if key is not None
        ]
        if not candidates:  # every non-emergency is protected (or none waits)
            candidates = [
                keys[-1]
                for keys in (self._absent, self._arrived)
                if keys and keys[-1] >= _FIRST_NORMAL
            ]
            if not candidates:
                return None
        return ids[max(candidates) & SEQ_MASK]

    def _check(self, tokens: Mapping[str, Token], ordering: OrderingPolicy) -> list[str]:
        """Raise ``AssertionError`` naming the first broken invariant of the slot's own
        state, else return the ids of its waiting tokens (for the checks across parts).
        Changes nothing.

        Checked: its times in real time; the booked and checked-in key lists sorted, and
        with the id index; each key against its token in ``tokens`` (issued, this slot's,
        waiting, filed for calling exactly when checked in); the protected-token lists; the
        ordering index (``ordering`` is the policy as given, which keys each level) and its
        aged tokens; the pending level changes, a heap; the granted places.
        O(n log n) for the n waiting tokens.
        """
        slot_id = self._id
        require(
            self._at == utc(self._start) and self._until == utc(self._end),
            "slot times in real time",
            slot_id,
        )
        ids, filed = self._ids, self._filed
        absent = list(self._absent)
        require(all(a < b for a, b in pairwise(absent)), "booked list sorted", slot_id)
        arrived = list(self._arrived)
        require(all(a < b for a, b in pairwise(arrived)), "checked-in list sorted", slot_id)
        require(
            len(absent) + len(arrived) == len(ids)
            and {key & SEQ_MASK for key in absent + arrived} == ids.keys(),
            "queue id index",
            slot_id,
        )
        waiting: list[str] = []  # booked, then checked in, each by key
        for keys, protected_keys, here in (
            (absent, self._protected_absent, False),
            (arrived, self._protected_arrived, True),
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
                    (token.status is CHECKED_IN) == here == (token_id in filed),
                    "checked-in tokens are filed for calling",
                    token,
                )
                if token.moves >= self._protect_at and token.priority is not EMERGENCY:
                    protected.append(key)
            require(list(protected_keys) == protected, "protected-token index", slot_id)
        require(len(filed) == len(arrived), "filed tokens wait", slot_id)
        filed_count = 0
        if self._seq_keyed:  # the checked-in list is the ordering index, with the aged apart
            require(not self._levels, "no level lists under an ordering keyed by seq", slot_id)
            aged: list[int] = []
            aged_keys: list[int] = []
            for key in arrived:
                token = tokens[ids[key & SEQ_MASK]]
                record = filed.get(token.id)
                require(record is not None and record[1] == key, "ordering index matches", token)
                assert record is not None
                if record[0] != key >> SEQ_BITS:
                    aged.append(record[0] << SEQ_BITS | token.seq)
                    aged_keys.append(key)
                filed_count += 1
            require(list(self._aged) == sorted(aged), "aged-token index", slot_id)
            require(list(self._aged_keys) == aged_keys, "aged-token keys", slot_id)
        else:
            require(not self._aged and not self._aged_keys, "no aged index", slot_id)
        for level, entries in self._levels.items():
            require(len(entries) > 0, "no empty levels", slot_id)
            listed = list(entries)
            require(all(a < b for a, b in pairwise(listed)), "levels sorted by key", slot_id)
            for entry in listed:
                found = ids.get(entry[1])
                require(found is not None, "ordering index holds waiting tokens", entry)
                assert found is not None
                token = tokens[found]
                record = filed.get(found)
                require(
                    record is not None
                    and record[:2] == (level, entry)
                    and (ordering.key(token), token.seq) == entry,
                    "ordering index matches its tokens",
                    token,
                )
                filed_count += 1
        require(filed_count == len(filed), "ordering index complete", slot_id)
        pending = {change for _, _, change in filed.values() if change is not None}
        heap = self._changes
        require(pending <= set(heap), "level changes scheduled", slot_id)
        require(
            all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))),
            "level changes form a heap",
            slot_id,
        )
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
            present=len(slot._filed),
            emergencies=slot._emergencies,
            elastic=slot._elastic,
            closed=slot._closed,
        )


@final
class Waitlist:
    """A doctor's waitlist: tokens without a slot, in ``(priority, seq)`` order.

    Kept as one sorted list of keys per (source, priority) class (at most 16): a capacity
    policy admits or refuses a whole class at once, so a refill asks it once per class,
    never once per token; the waitlist order is their merge.
    """

    __slots__ = ("_classes", "_heads", "_ids", "_present", "_undo", "emergencies")

    def __init__(self, undo: Undo = DETACHED) -> None:
        # seq -> id of every waitlisted token.
        self._ids: dict[int, str] = {}
        # Keys by (source, priority) class.
        self._classes: dict[tuple[Source, Priority], SortedList[WaitKey]] = {}
        # Each class's first key (the same classes), kept as keys come and go.
        self._heads: dict[tuple[Source, Priority], WaitKey] = {}
        # The keys of the tokens whose patients are present (checked_in_at set): idle-fill
        # calls them.
        self._present: SortedList[WaitKey] = SortedList()
        # How many of them are emergencies: read by every call, so a plain count.
        self.emergencies = 0
        self._undo = undo

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        """Token ids in order. O(n log c) for c classes."""
        ids = self._ids
        for key in merge(*self._classes.values()):
            yield ids[key & SEQ_MASK]

    def add(self, token: Token) -> None:
        """O(log n)."""
        key = token.priority << SEQ_BITS | token.seq
        self._ids[token.seq] = token.id
        if token.checked_in_at is not None:
            self._present.add(key)
            if key < _FIRST_NORMAL:
                self.emergencies += 1
        group_class = (token.source, token.priority)
        group = self._classes.get(group_class)
        if group is None:
            group = self._classes[group_class] = SortedList()
            self._heads[group_class] = key
        elif key < self._heads[group_class]:
            self._heads[group_class] = key
        group.add(key)
        if self._undo.recording:
            self._undo.record(self.remove, token)

    def remove(self, token: Token) -> None:
        """O(log n)."""
        key = token.priority << SEQ_BITS | token.seq
        del self._ids[token.seq]
        if token.checked_in_at is not None:
            self._present.remove(key)
            if key < _FIRST_NORMAL:
                self.emergencies -= 1
        group_class = (token.source, token.priority)
        group = self._classes[group_class]
        group.remove(key)
        if not group:
            del self._classes[group_class], self._heads[group_class]
        elif key == self._heads[group_class]:
            self._heads[group_class] = group[0]
        if self._undo.recording:
            self._undo.record(self.add, token)

    def arrive(self, token: Token) -> None:
        """A waitlisted patient is present now. O(log n)."""
        key = token.priority << SEQ_BITS | token.seq
        self._present.add(key)
        if key < _FIRST_NORMAL:
            self.emergencies += 1
        if self._undo.recording:
            self._undo.record(self._undo_arrive, key)

    def _undo_arrive(self, key: WaitKey) -> None:
        """Undo :meth:`arrive`. O(log n)."""
        self._present.remove(key)
        if key < _FIRST_NORMAL:
            self.emergencies -= 1

    def first_admitted(self, admits: Callable[[Source, Priority], bool]) -> str | None:
        """The id of the first token, in waitlist order, whose (source, priority) class
        ``admits`` accepts, or None. O(c log n) for c classes (at most 16)."""
        best: WaitKey | None = None
        for (source, priority), head in self._heads.items():
            if (best is None or head < best) and admits(source, priority):
                best = head
        return None if best is None else self._ids[best & SEQ_MASK]

    def first(self) -> str | None:
        """The id of the first token in waitlist order, or None. O(c) for c classes (at
        most 16)."""
        heads = self._heads
        return self._ids[min(heads.values()) & SEQ_MASK] if heads else None

    def first_present(self) -> str | None:
        """The id of the first present patient in waitlist order, or None. O(log n)."""
        present = self._present
        return self._ids[present[0] & SEQ_MASK] if present else None

    def first_present_emergency(self) -> str | None:
        """The id of the present emergency with the smallest ``seq``, or None. O(1)."""
        return self._ids[self._present[0] & SEQ_MASK] if self.emergencies else None

    def position(self, token: Token) -> int:
        """1-based place. O(c log n) for c classes."""
        key = token.priority << SEQ_BITS | token.seq
        return sum(group.bisect_left(key) for group in self._classes.values()) + 1

    def _check(self, tokens: Mapping[str, Token], doctor_id: str) -> None:
        """Raise ``AssertionError`` naming the first broken invariant of the waitlist's own
        state, the waitlist of ``doctor_id``. Changes nothing.

        Checked: each class non-empty, sorted, with its head; the id index; each key
        against its token in ``tokens`` (issued, this doctor's, waitlisted, in its class);
        the present patients' keys and their emergencies counted.
        O(n log n) for the n waitlisted tokens.
        """
        heads = self._heads
        class_of: dict[WaitKey, tuple[Source, Priority]] = {}
        for group_class, group in self._classes.items():
            listed = list(group)
            require(len(listed) > 0, "no empty waitlist classes", doctor_id)
            require(all(a < b for a, b in pairwise(listed)), "waitlist classes sorted", doctor_id)
            class_of.update(dict.fromkeys(listed, group_class))
            require(heads.get(group_class) == listed[0], "waitlist class heads", doctor_id)
        require(heads.keys() == self._classes.keys(), "waitlist class heads", doctor_id)
        ids = self._ids
        keys = sorted(key for group in self._classes.values() for key in group)
        require(
            {key & SEQ_MASK for key in keys} == ids.keys() and len(keys) == len(ids),
            "waitlist id index",
            doctor_id,
        )
        present = []
        for key in keys:
            priority, seq = key >> SEQ_BITS, key & SEQ_MASK
            token_id = ids[seq]
            token = tokens.get(token_id)
            require(token is not None, "waitlist holds issued tokens", token_id)
            assert token is not None
            require(
                (token.priority, token.seq, token.doctor_id, token.status, token.slot_id)
                == (priority, seq, doctor_id, WAITLISTED, None),
                "waitlist entries match their tokens",
                token,
            )
            require(class_of[key] == (token.source, token.priority), "waitlist class index", token)
            if token.checked_in_at is not None:
                present.append(key)
        require(list(self._present) == present, "present-waitlist index", doctor_id)
        require(
            self.emergencies == sum(1 for key in present if key >> SEQ_BITS == EMERGENCY),
            "present emergencies on the waitlist counted",
            doctor_id,
        )
