"""Slot: one stretch of a doctor's day, and the sorted queue of the tokens waiting in it.

This is the only module that imports ``sortedcontainers``. The allocator is the only caller
of the underscored methods; everybody else sees a slot through its read-only properties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import partial
from heapq import heappop, heappush, merge
from typing import Any, final

import attrs
from sortedcontainers import SortedList

from . import _display
from ._check import attrs_validator, check_datetime, check_id, check_int, utc
from ._values import Priority, Source, Token, TokenStatus
from .errors import InvalidArgumentError
from .policies import Aging, OrderingPolicy, StrictPriority

__all__ = ["Slot", "SlotView"]

# (priority, seq, token id): the contract's queue key, unique per token.
WaitKey = tuple[int, int, str]
# (level's key, token id) inside one level of the ordering index.
PresentEntry = tuple[Any, str]
# How a checked-in token is filed: (level, entry, pending level change or None).
Filed = tuple[int, PresentEntry, "tuple[datetime, int, str] | None"]
# Sorts before every non-emergency waiting key, after every emergency.
_FIRST_NORMAL: WaitKey = (int(Priority.EMERGENCY) + 1, -1, "")
# Orderings whose key is ``seq``: the standing order is then (level, seq), and a position
# is a few bisections.
_SEQ_KEYED = (StrictPriority, Aging)


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


@final
@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class Slot:
    """A doctor's time slot with ``capacity`` places; it owns the queue of its tokens.

    ``Slot(id, doctor_id, start, end, capacity)`` validates its arguments and raises
    :class:`~opd_engine.InvalidArgumentError` for an empty id, ``end <= start``, a negative
    or non-integer capacity. Hand it to :meth:`Allocator.add_slot`; from then on only the
    allocator changes it (its fields are read-only), and it belongs to that allocator alone.
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
    # Waiting tokens keyed (priority, seq, id).
    _waiting: SortedList[WaitKey] = attrs.field(init=False, factory=SortedList)
    # The booked (not yet arrived) subset of _waiting.
    _absent: SortedList[WaitKey] = attrs.field(init=False, factory=SortedList)
    # Places held by tokens no longer waiting (in consultation, completed).
    _done: int = attrs.field(init=False, default=0)
    # Emergency place holders (waiting or not).
    _emergencies: int = attrs.field(init=False, default=0)
    # Non-emergency place holders per source, for quotas.
    _sources: dict[Source, int] = attrs.field(init=False, factory=dict)
    # Checked-in tokens: level -> entries sorted by the ordering's key.
    _levels: dict[int, SortedList[PresentEntry]] = attrs.field(init=False, factory=dict)
    # token id -> (level, entry in that level, pending level change or None).
    _filed: dict[str, Filed] = attrs.field(init=False, factory=dict)
    # Pending level changes (when, seq, id): a heap. An entry whose token left (or was re-filed)
    # stays until it comes due and is then skipped: cheaper than removing it.
    _changes: list[tuple[datetime, int, str]] = attrs.field(init=False, factory=list)
    _ordering: OrderingPolicy | None = attrs.field(init=False, default=None)
    _tokens: Mapping[str, Token] = attrs.field(init=False, factory=dict)
    # Closed by close_slot: no bookings, no refills, never reopened.
    _closed: bool = attrs.field(init=False, default=False)
    # Places granted past the capacity policy to non-emergencies: the idle-fill rule, an
    # emergency re-triaged to a lower level. They stay granted for the day.
    _elastic: int = attrs.field(init=False, default=0)
    # The inverse of each change of the call in progress, kept only when the policies are
    # not all shipped ones (a user's policy may fail half-way through a call).
    _undo: Undo | None = attrs.field(init=False, default=None)  # the allocator's, once added
    # Waiting non-emergency tokens moved ``_protect_at`` times or more (the reallocation
    # policy's max_moves when the slot was added): displaced only as the last resort.
    _protected: SortedList[WaitKey] = attrs.field(init=False, factory=SortedList)
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
        return len(self._waiting) + self._done

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
        return len(self._waiting)

    @property
    def present(self) -> int:
        """Checked-in tokens waiting to be called. O(1)."""
        return len(self._filed)

    def _present_emergencies(self) -> int:
        """Checked-in emergencies waiting to be called. O(log n)."""
        first_non_emergency: WaitKey = (int(Priority.EMERGENCY) + 1, -1, "")
        return self._waiting.bisect_left(first_non_emergency) - self._absent.bisect_left(
            first_non_emergency
        )

    @property
    def emergencies(self) -> int:
        """Emergency tokens holding a place. O(1)."""
        return self._emergencies

    def held_by(self, source: Source) -> int:
        """Non-emergency tokens of ``source`` holding a place. O(1)."""
        return self._sources.get(source, 0)

    def _repr_html_(self) -> str:
        """The slot's figures and waiting tokens for notebooks (escaped, at most 50 rows).
        O(n)."""
        tokens = self._tokens
        waiting = [tokens[token_id] for _, _, token_id in self._waiting if token_id in tokens]
        return _display.slot_html(self, waiting)

    def __repr__(self) -> str:
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
        undo: Undo | None,
        protect_at: int = 2**62,
    ) -> None:
        self._ordering = ordering
        self._tokens = tokens
        self._undo = undo
        self._protect_at = protect_at

    def _add(self, token: Token, now: datetime) -> None:
        """File a waiting token (BOOKED or CHECKED_IN). O(log n)."""
        # The ordering (user code, which may fail) is asked before anything changes.
        filing = self._filing(token, now) if token.status is TokenStatus.CHECKED_IN else None
        key = (token.priority, token.seq, token.id)
        self._waiting.add(key)
        if token.priority is Priority.EMERGENCY:
            self._emergencies += 1
        else:
            sources = self._sources
            sources[token.source] = sources.get(token.source, 0) + 1
            if token.moves >= self._protect_at:
                self._protected.add(key)
        if filing is None:
            self._absent.add(key)
        else:
            self._file(token.id, filing)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._remove, token))

    def _remove(self, token: Token) -> None:
        """Unfile a waiting token that gives up its place. O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._waiting.remove(key)
        self._count(token, -1)
        if token.moves >= self._protect_at and token.priority is not Priority.EMERGENCY:
            self._protected.remove(key)
        filed = self._filed.get(token.id)
        if filed is not None:
            self._unfile(token.id)
        else:
            self._absent.remove(key)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._restore, token, filed))

    def _restore(self, token: Token, filed: Filed | None) -> None:
        """Undo :meth:`_remove`: file the token back exactly as it was. O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._waiting.add(key)
        self._count(token, 1)
        if token.moves >= self._protect_at and token.priority is not Priority.EMERGENCY:
            self._protected.add(key)
        if filed is None:
            self._absent.add(key)
        else:
            self._file(token.id, filed)

    def _count(self, token: Token, step: int) -> None:
        if token.priority is Priority.EMERGENCY:
            self._emergencies += step
        else:
            self._sources[token.source] = self._sources.get(token.source, 0) + step

    def _hold(self, token: Token) -> None:
        """Count a token already called or completed (restoring a snapshot, replaying a
        journal). O(1)."""
        self._done += 1
        self._count(token, 1)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._unhold, token))

    def _unhold(self, token: Token) -> None:
        """Undo :meth:`_hold`. O(1)."""
        self._done -= 1
        self._count(token, -1)

    def _seat(self, token: Token) -> None:
        """A waiting token was called: it leaves the queue but keeps its place. O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._waiting.remove(key)
        self._done += 1
        protected = token.moves >= self._protect_at and token.priority is not Priority.EMERGENCY
        if protected:
            self._protected.remove(key)
        filed = self._filed[token.id]
        self._unfile(token.id)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._unseat_call, key, filed, protected))

    def _unseat_call(self, key: WaitKey, filed: Filed, protected: bool) -> None:
        """Undo :meth:`_seat`. O(log n)."""
        self._waiting.add(key)
        self._done -= 1
        if protected:
            self._protected.add(key)
        self._file(key[2], filed)

    def _unseat(self, token: Token) -> None:
        """A called token gives its place back (a missed call). O(1)."""
        self._done -= 1
        self._count(token, -1)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._rehold, token))

    def _rehold(self, token: Token) -> None:
        """Undo :meth:`_unseat`. O(1)."""
        self._done += 1
        self._count(token, 1)

    def _arrive(self, token: Token, now: datetime) -> None:
        """A booked token checked in: move it from the absent list to the index. O(log n)."""
        filing = self._filing(token, now)
        key = (token.priority, token.seq, token.id)
        self._absent.remove(key)
        self._file(token.id, filing)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._depart, key))

    def _depart(self, key: WaitKey) -> None:
        """Undo :meth:`_arrive`. O(log n)."""
        self._unfile(key[2])
        self._absent.add(key)

    def _set_capacity(self, capacity: int) -> None:
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._set_capacity, self._capacity))
        self._capacity = capacity

    def _close(self) -> None:
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(setattr, self, "_closed", self._closed))
        self._closed = True

    def _grant(self, places: int) -> None:
        """Grant places past the capacity policy: ``elastic`` becomes at least ``places``."""
        if places <= self._elastic:
            return
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(setattr, self, "_elastic", self._elastic))
        self._elastic = places

    def _filing(self, token: Token, now: datetime) -> Filed:
        """Where the ordering files a checked-in token now: ``(level, entry, change)``.
        Asks the ordering only; changes nothing. O(1)."""
        ordering = self._ordering
        assert ordering is not None
        level = ordering.level(token, now)
        entry: PresentEntry = (ordering.key(token), token.id)
        when = ordering.next_change(token, now)
        change = None if when is None else (when, token.seq, token.id)
        return level, entry, change

    def _file(self, token_id: str, filed: Filed) -> None:
        """Add a checked-in token to the ordering index. O(log n)."""
        level, entry, change = filed
        entries = self._levels.get(level)
        if entries is None:
            entries = self._levels[level] = SortedList()
        entries.add(entry)
        if change is not None:
            heappush(self._changes, change)
        self._filed[token_id] = filed

    def _unfile(self, token_id: str) -> None:
        level, entry, _ = self._filed.pop(token_id)
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
            self._file(token_id, filing)
            undo = self._undo
            if undo is not None and undo.steps is not None:
                undo.steps.append(partial(self._refile, token_id, current))

    def _refile(self, token_id: str, filed: Filed) -> None:
        """Undo a level change of :meth:`_advance`. O(log n)."""
        self._unfile(token_id)
        self._file(token_id, filed)

    def _next(self, now: datetime) -> str | None:
        """The id of the checked-in token the ordering calls first. O(log n)."""
        if not self._filed:
            return None
        self._advance(now)
        levels = self._levels
        ordering = self._ordering
        assert ordering is not None
        if ordering.lexicographic:
            return levels[min(levels)][0][1]
        order = sorted(levels)
        heads = [self._tokens[levels[level][0][1]] for level in order]
        return levels[order[ordering.pick(heads, now)]][0][1]

    def _called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        """Checked-in tokens as ``(level, seq, id)`` in the order the ordering calls them
        as of ``now``. O(n) (O(n * levels) if the ordering is not lexicographic)."""
        self._advance(now)
        ordering = self._ordering
        assert ordering is not None
        levels = self._levels
        tokens = self._tokens
        order = sorted(levels)
        if ordering.lexicographic:
            for level in order:
                for _, token_id in levels[level]:
                    yield level, tokens[token_id].seq, token_id
            return
        cursors = dict.fromkeys(order, 0)
        while cursors:
            live = list(cursors)
            heads = [tokens[levels[level][cursors[level]][1]] for level in live]
            level = live[ordering.pick(heads, now)]
            token_id = levels[level][cursors[level]][1]
            yield level, tokens[token_id].seq, token_id
            cursors[level] += 1
            if cursors[level] == len(levels[level]):
                del cursors[level]

    def _standing(self, now: datetime) -> Iterator[str]:
        """Every waiting token id in the standing order as of ``now``. O(n).

        The checked-in tokens in call order, merged with the booked ones in ``(priority,
        seq)`` order: whichever stream's head has the smaller ``(level, seq)`` goes first,
        a booked token's level being its triaged priority (it does not age).
        """
        for _, _, token_id in merge(self._called_order(now), self._absent):
            yield token_id

    def _position(self, token: Token, now: datetime) -> int:
        """1-based place of a waiting token in the standing order.

        O(log n) under ``StrictPriority`` and ``Aging`` (whose key is ``seq``: the order is
        then ``(level, seq)``), O(n) under any other ordering.
        """
        ordering = self._ordering
        assert ordering is not None
        self._advance(now)
        if ordering.lexicographic and isinstance(ordering, _SEQ_KEYED):
            filed = self._filed.get(token.id)
            if filed is not None:
                level = filed[0]
                within = self._levels[level].index(filed[1])
            else:
                level = int(token.priority)
                entries = self._levels.get(level)
                within = 0 if entries is None else entries.bisect_left((token.seq, ""))
            ahead = sum(len(v) for lv, v in self._levels.items() if lv < level) + within
            booked = self._absent.bisect_left((level, token.seq, token.id))
            return ahead + booked + 1
        for place, token_id in enumerate(self._standing(now), start=1):
            if token_id == token.id:
                return place
        raise AssertionError(f"token {token.id!r} waits but is not in the standing order")

    def _victim(self, max_moves: int) -> str | None:
        """The id of the token to displace: the lowest-ranked waiting non-emergency token
        moved fewer than ``max_moves`` times, else the lowest-ranked one (protected tokens
        go last); None if only emergencies wait. O(log^2 n) (O(n) if ``max_moves`` is not
        the one the slot was added under, which only a user's policy can do)."""
        waiting = self._waiting
        first = waiting.bisect_left(_FIRST_NORMAL)
        last = len(waiting) - 1
        if first > last:
            return None
        if max_moves != self._protect_at:
            tokens = self._tokens
            fallback = None
            for i in range(last, first - 1, -1):
                token_id = waiting[i][2]
                if tokens[token_id].moves < max_moves:
                    return token_id
                if fallback is None:
                    fallback = token_id
            return fallback
        protected = self._protected
        if len(protected) == last - first + 1 or waiting[last] not in protected:
            return waiting[last][2]  # all protected, or the lowest-ranked is not
        # The largest i whose key is not protected: the unprotected keys at or after
        # index i number (last - i + 1) - (protected keys >= waiting[i]), which falls as i
        # grows; find the last i where it is still 1 or more.
        low, high = first, last
        while low < high:
            middle = (low + high + 1) // 2
            unprotected = (
                last - middle + 1 - (len(protected) - protected.bisect_left(waiting[middle]))
            )
            if unprotected >= 1:
                low = middle
            else:
                high = middle - 1
        return waiting[low][2]


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
        occupancy = len(slot._waiting) + slot._done
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
            waiting=len(slot._waiting),
            present=len(slot._filed),
            emergencies=slot._emergencies,
            elastic=slot._elastic,
            closed=slot._closed,
        )


@final
class Undo:
    """The inverse of every change made so far by the call in progress.

    Kept only when a user's policy could fail half-way through a call: then ``steps`` is a
    list during each call, and undoing it in reverse order restores the state exactly
    (the inverses never call a policy); ``after`` holds what is recomputed from the restored
    state (the desks' indexes). ``steps`` is None between calls.
    """

    __slots__ = ("after", "steps")

    def __init__(self) -> None:
        self.steps: list[Callable[[], object]] | None = None
        self.after: list[Callable[[], object]] = []

    def begin(self) -> tuple[list[Callable[[], object]] | None, list[Callable[[], object]]]:
        """Start recording a call; returns what an enclosing call recorded. O(1)."""
        saved = (self.steps, self.after)
        self.steps = []
        self.after = []
        return saved

    def end(
        self, saved: tuple[list[Callable[[], object]] | None, list[Callable[[], object]]]
    ) -> None:
        """The call succeeded: forget its steps. O(1)."""
        self.steps, self.after = saved

    def rollback(
        self, saved: tuple[list[Callable[[], object]] | None, list[Callable[[], object]]]
    ) -> None:
        """The call failed: undo its steps, newest first, then recompute. O(k) for k steps."""
        steps = self.steps or []
        after = self.after
        self.steps = None  # the inverses record nothing
        try:
            for step in reversed(steps):
                step()
            for step in after:
                step()
        finally:
            self.steps, self.after = saved


@final
class Waitlist:
    """A doctor's waitlist: tokens without a slot, in ``(priority, seq)`` order."""

    __slots__ = ("_classes", "_keys", "_present", "_undo")

    def __init__(self, undo: Undo | None = None) -> None:
        self._keys: SortedList[WaitKey] = SortedList()
        # The subset whose patients are present (checked_in_at set): idle-fill calls them.
        self._present: SortedList[WaitKey] = SortedList()
        # The same keys by (source, priority): a capacity policy admits or refuses a whole
        # class at once, so a refill asks it once per class, never once per token.
        self._classes: dict[tuple[Source, Priority], SortedList[WaitKey]] = {}
        self._undo = undo

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[str]:
        """Token ids in order. O(n)."""
        for _, _, token_id in self._keys:
            yield token_id

    def add(self, token: Token) -> None:
        """O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._keys.add(key)
        if token.checked_in_at is not None:
            self._present.add(key)
        group = self._classes.get((token.source, token.priority))
        if group is None:
            group = self._classes[token.source, token.priority] = SortedList()
        group.add(key)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self.remove, token))

    def remove(self, token: Token) -> None:
        """O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._keys.remove(key)
        if token.checked_in_at is not None:
            self._present.remove(key)
        group = self._classes[token.source, token.priority]
        group.remove(key)
        if not group:
            del self._classes[token.source, token.priority]
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self.add, token))

    def arrive(self, token: Token) -> None:
        """A waitlisted patient is present now. O(log n)."""
        key = (token.priority, token.seq, token.id)
        self._present.add(key)
        undo = self._undo
        if undo is not None and undo.steps is not None:
            undo.steps.append(partial(self._present.remove, key))

    def first_admitted(self, admits: Callable[[Source, Priority], bool]) -> str | None:
        """The id of the first token, in waitlist order, whose (source, priority) class
        ``admits`` accepts, or None. O(c log n) for c classes (at most 16)."""
        best: WaitKey | None = None
        for (source, priority), group in self._classes.items():
            head = group[0]
            if (best is None or head < best) and admits(source, priority):
                best = head
        return None if best is None else best[2]

    def first_present(self) -> str | None:
        """The id of the first present patient in waitlist order, or None. O(log n)."""
        return self._present[0][2] if self._present else None

    def position(self, token: Token) -> int:
        """1-based place. O(log n)."""
        return self._keys.index((token.priority, token.seq, token.id)) + 1
