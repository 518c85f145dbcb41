"""Call-order indexes: a slot's checked-in tokens, in the order its ordering calls them.

One class per shape of ordering, chosen once when the slot is attached (:func:`index_for`),
as ``SortedList.__new__`` picks ``SortedKeyList``; no method asks which shape it serves:

- :class:`StaticIndex`, under ``StrictPriority``: nobody ages, so the call order is the
  checked-in keys' own order, ``(priority, seq)``. Filing a token is adding its key.
- :class:`AgingIndex`, under ``Aging``: its key is ``seq``, so the call order is ``(level,
  seq)``, the checked-in keys' own order for every token still at its triaged priority;
  only the tokens that have aged to another level are filed again, by ``(level, seq)``.
  A call and a position are a few bisections.
- :class:`KeyedIndex`, under any other ordering (a user's, or a subclass of a shipped one,
  which may override any method): each level a sorted list of ``(key, seq)``, the levels
  called by ``pick`` (or in order, if ``lexicographic``).

Each keeps ``arrived``, the checked-in tokens' queue keys (the slot reads it for its
emergencies and the token to displace), and answers through one interface,
:class:`CallOrder`. An index changes only inside the slot's undo primitives (``file``,
``unfile`` and ``refile`` record nothing: the slot records their inverse), except for the
level changes that :meth:`advance` makes as time passes, which record their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from heapq import heappop, heappush, merge
from itertools import pairwise
from typing import Any, Protocol

from ._check import require
from ._guard import unordered_key
from ._queue import NO_KEYS, SEQ_BITS, SEQ_MASK, SortedList, WaitKey
from ._undo import Undo
from ._values import Token
from .errors import InvalidArgumentError
from .policies import Aging, OrderingPolicy, StrictPriority, shipped_filing

#: What :meth:`CallOrder.unfile` returns, for :meth:`CallOrder.refile` to put the token
#: back exactly where it was: ``(level, entry, pending level change or None)``, where the
#: entry is the queue key under ``Aging`` and ``(ordering key, seq)`` under a
#: :class:`KeyedIndex`; nothing under ``StrictPriority``.
Filed = Any
_Change = tuple[datetime, int, str]  # a pending level change: (when, seq, id)


class CallOrder(Protocol):
    """What a slot asks of its call-order index."""

    #: The checked-in tokens' queue keys, in ``(priority, seq)`` order.
    arrived: SortedList[WaitKey]
    #: How many tokens are checked in (``len(arrived)``, read without a call).
    present: int

    def file(self, token: Token, now: datetime) -> None:
        """File checked-in ``token`` as the ordering places it ``now``. O(log n).

        Asks the ordering first: if it fails, or gives a key that does not compare with
        the keys filed already (:class:`~opd_engine.InvalidArgumentError`), nothing
        changed."""

    def unfile(self, token: Token) -> Filed:
        """Take ``token`` out; return where it was, for :meth:`refile`. O(log n)."""

    def refile(self, token: Token, filed: Filed) -> None:
        """Undo :meth:`unfile`: put ``token`` back where it was (or file there what another
        index of the same class unfiled: a patient stepping out, or back). O(log n)."""

    def advance(self, now: datetime) -> None:
        """Re-file the tokens whose level changed by ``now``. O(log n) per change."""

    def next(self, now: datetime) -> str | None:
        """The id of the token the ordering calls first, or None. O(log n)."""

    def called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        """The checked-in tokens as ``(level, seq, id)`` in call order as of ``now``.
        O(n) (O(n * levels) under an ordering that is not lexicographic)."""

    def position(
        self, token: Token, now: datetime, absent: SortedList[WaitKey], away: CallOrder
    ) -> int:
        """1-based place of waiting ``token`` in the standing order, the booked tokens'
        keys being ``absent`` and the away tokens filed in ``away`` (an index of the same
        class, which ranks them as this one would if they were present). O(log n), O(n)
        in a :class:`KeyedIndex`."""

    def before(self, rank: int, now: datetime) -> int:
        """How many filed tokens rank before ``rank``, a ``(level, seq)`` as ``level <<
        SEQ_BITS | seq``, as of ``now``. O(log n) (not asked of a :class:`KeyedIndex`)."""

    def level_of(self, token: Token) -> int | None:
        """The level ``token`` is filed at here, None if it is not filed here. O(1)."""

    def _check(self, slot_id: str, ordering: OrderingPolicy) -> None:
        """Raise ``AssertionError`` naming the first broken invariant of the index, which
        serves ``ordering`` in slot ``slot_id``. Changes nothing. O(n log n)."""


def index_for(
    ordering: OrderingPolicy,
    slot_id: str,
    ids: Mapping[int, str],
    tokens: Mapping[str, Token],
    undo: Undo,
) -> CallOrder:
    """The index a slot keeps under ``ordering``: chosen by its exact class (a subclass of
    a shipped ordering may override any method, so it is asked like a user's). ``ids``
    maps each waiting token's ``seq`` to its id, ``tokens`` each id to the token. O(1)."""
    shape = type(ordering)
    if shape is StrictPriority:
        return StaticIndex(ids)
    if shape is Aging:
        return AgingIndex(ordering, ids, tokens, undo)
    return KeyedIndex(ordering, slot_id, ids, tokens, undo)


def shape_of(ordering: OrderingPolicy) -> type[CallOrder]:
    """The class :func:`index_for` picks for ``ordering``. O(1)."""
    shape = type(ordering)
    if shape is StrictPriority:
        return StaticIndex
    return AgingIndex if shape is Aging else KeyedIndex


def keyed(keys: Iterable[WaitKey], ids: Mapping[int, str]) -> Iterator[tuple[int, int, str]]:
    """The tokens of queue ``keys`` as ``(level or priority, seq, id)``, in order. O(n)."""
    for key in keys:
        seq = key & SEQ_MASK
        yield key >> SEQ_BITS, seq, ids[seq]


def _check_arrived(index: CallOrder, slot_id: str) -> None:
    arrived = list(index.arrived)
    require(all(a < b for a, b in pairwise(arrived)), "checked-in list sorted", slot_id)
    require(index.present == len(arrived), "checked-in tokens counted", slot_id)


class StaticIndex:
    """The call order under ``StrictPriority``: the checked-in keys themselves."""

    __slots__ = ("arrived", "ids", "present")

    def __init__(self, ids: Mapping[int, str]) -> None:
        self.arrived: SortedList[WaitKey] = NO_KEYS  # made at its first key
        self.present = 0
        self.ids = ids

    def file(self, token: Token, now: datetime) -> None:
        arrived = self.arrived
        if arrived is NO_KEYS:
            arrived = self.arrived = SortedList()
        arrived.add(token.priority << SEQ_BITS | token.seq)
        self.present += 1

    def unfile(self, token: Token) -> Filed:
        self.arrived.remove(token.priority << SEQ_BITS | token.seq)
        self.present -= 1
        return None

    def refile(self, token: Token, filed: Filed) -> None:
        arrived = self.arrived
        if arrived is NO_KEYS:  # a filing moved to a fresh index (a patient stepping out)
            arrived = self.arrived = SortedList()
        arrived.add(token.priority << SEQ_BITS | token.seq)
        self.present += 1

    def advance(self, now: datetime) -> None:
        """Nothing changes level. O(1)."""

    def next(self, now: datetime) -> str | None:
        try:
            head = self.arrived[0]
        except IndexError:  # nobody checked in
            return None
        return self.ids[head & SEQ_MASK]

    def called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        return keyed(self.arrived, self.ids)

    def position(
        self, token: Token, now: datetime, absent: SortedList[WaitKey], away: CallOrder
    ) -> int:
        rank = token.priority << SEQ_BITS | token.seq  # its (level, seq), for good
        return (
            self.arrived.bisect_left(rank) + away.before(rank, now) + absent.bisect_left(rank) + 1
        )

    def before(self, rank: int, now: datetime) -> int:
        return self.arrived.bisect_left(rank)

    def level_of(self, token: Token) -> int | None:
        return int(token.priority)  # every token at its triaged priority

    def _check(self, slot_id: str, ordering: OrderingPolicy) -> None:
        _check_arrived(self, slot_id)


class _Refiled:
    """What an index whose tokens change level keeps: each checked-in token's filing and
    the pending level changes. A subclass says how the ordering places a token
    (:meth:`_place`) and where a filing is kept (:meth:`_put`, :meth:`_take`); its
    ``file`` and ``unfile`` are those two with ``arrived`` kept too, written out, since
    every call and check-in makes one of them."""

    __slots__ = ("arrived", "changes", "filed", "ids", "ordering", "present", "tokens", "undo")

    def __init__(
        self,
        ordering: OrderingPolicy,
        ids: Mapping[int, str],
        tokens: Mapping[str, Token],
        undo: Undo,
    ) -> None:
        self.arrived: SortedList[WaitKey] = NO_KEYS  # made at its first key
        self.present = 0
        self.ordering = ordering
        self.ids = ids
        self.tokens = tokens
        self.undo = undo
        # token id -> (level, entry, pending level change or None): see Filed.
        self.filed: dict[str, Filed] = {}
        # Pending level changes (when, seq, id): a heap. An entry whose token left (or was
        # re-filed) stays until it comes due and is then skipped: cheaper than removing it.
        self.changes: list[_Change] = []

    def _place(self, token: Token, now: datetime) -> Filed:
        """Where the ordering files ``token`` now. Asks the ordering only. O(1)."""
        raise NotImplementedError

    def _put(self, token_id: str, filed: Filed) -> None:
        """File a token's filing (``arrived`` aside). O(log n)."""
        raise NotImplementedError

    def _take(self, token_id: str) -> Filed:
        """Take a token's filing out (``arrived`` aside) and return it. O(log n)."""
        raise NotImplementedError

    def refile(self, token: Token, filed: Filed) -> None:
        arrived = self.arrived
        if arrived is NO_KEYS:  # a filing moved to a fresh index (a patient stepping out)
            arrived = self.arrived = SortedList()
        arrived.add(token.priority << SEQ_BITS | token.seq)
        self.present += 1
        self._put(token.id, filed)

    def advance(self, now: datetime) -> None:
        """Re-file the tokens whose level changed by ``now`` (an undo primitive: it records
        the inverse of each change). O(log n) per change."""
        changes = self.changes
        filed = self.filed
        while changes and changes[0][0] <= now:
            change = changes[0]
            token_id = change[2]
            current = filed.get(token_id)
            if current is None or current[2] != change:
                heappop(changes)  # stale: the token left or was re-filed
                continue
            filing = self._place(self.tokens[token_id], now)
            heappop(changes)
            self._take(token_id)
            try:
                self._put(token_id, filing)
            except InvalidArgumentError:  # a user's key that does not fit its new level
                self._put(token_id, current)  # back where it was, its change pending again
                raise
            if self.undo.recording:
                self.undo.record(self._undo_advance, token_id, current)

    def _undo_advance(self, token_id: str, filed: Filed) -> None:
        """Undo a level change of :meth:`advance`. O(log n)."""
        self._take(token_id)
        self._put(token_id, filed)

    def _check_filed(self, slot_id: str) -> None:
        """The filings against ``arrived``, and the pending changes."""
        filed, ids = self.filed, self.ids
        require(
            len(filed) == len(self.arrived)
            and filed.keys() == {ids.get(key & SEQ_MASK) for key in self.arrived},
            "checked-in tokens are filed for calling",
            slot_id,
        )
        pending = {change for _, _, change in filed.values() if change is not None}
        heap = self.changes
        require(pending <= set(heap), "level changes scheduled", slot_id)
        require(
            all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))),
            "level changes form a heap",
            slot_id,
        )


class AgingIndex(_Refiled):
    """The call order under ``Aging``, ``(level, seq)``: ``arrived`` for the tokens at
    their triaged priority, and the aged ones filed again by ``(level, seq)``."""

    __slots__ = ("aged", "aged_keys", "filing")

    def __init__(
        self,
        ordering: OrderingPolicy,
        ids: Mapping[int, str],
        tokens: Mapping[str, Token],
        undo: Undo,
    ) -> None:
        super().__init__(ordering, ids, tokens, undo)
        # Aging gives a token's level and its next change in one call.
        filing = shipped_filing(ordering)
        assert filing is not None, "an AgingIndex serves Aging itself"
        self.filing = filing
        # The aged tokens by (level, seq), and their queue keys (a subset of arrived's).
        self.aged: SortedList[WaitKey] = NO_KEYS
        self.aged_keys: SortedList[WaitKey] = NO_KEYS

    def _place(self, token: Token, now: datetime) -> Filed:
        level, when = self.filing(token, now)
        key = token.priority << SEQ_BITS | token.seq
        return level, key, None if when is None else (when, token.seq, token.id)

    def file(self, token: Token, now: datetime) -> None:
        filed = self._place(token, now)
        level, key, change = filed
        if key >> SEQ_BITS != level:  # aged already: filed at its level as well
            self._age(level, key)
        if change is not None:
            heappush(self.changes, change)
        self.filed[token.id] = filed
        self.present += 1
        arrived = self.arrived
        if arrived is NO_KEYS:
            arrived = self.arrived = SortedList()
        arrived.add(key)

    def unfile(self, token: Token) -> Filed:
        filed = self.filed.pop(token.id)
        level, key, _ = filed
        self.arrived.remove(key)
        if key >> SEQ_BITS != level:
            self._unage(level, key)
        self.present -= 1
        if not self.present:
            self.changes.clear()
        return filed

    def _put(self, token_id: str, filed: Filed) -> None:
        level, key, change = filed
        if key >> SEQ_BITS != level:
            self._age(level, key)
        if change is not None:
            heappush(self.changes, change)
        self.filed[token_id] = filed

    def _take(self, token_id: str) -> Filed:
        filed = self.filed.pop(token_id)
        level, key, _ = filed
        if key >> SEQ_BITS != level:
            self._unage(level, key)
        if not self.filed:
            self.changes.clear()
        return filed

    def _age(self, level: int, key: WaitKey) -> None:
        """File a token aged to ``level`` by its (level, seq). O(log n)."""
        if self.aged is NO_KEYS:
            self.aged = SortedList()
            self.aged_keys = SortedList()
        self.aged.add(level << SEQ_BITS | (key & SEQ_MASK))
        self.aged_keys.add(key)

    def _unage(self, level: int, key: WaitKey) -> None:
        self.aged.remove(level << SEQ_BITS | (key & SEQ_MASK))
        self.aged_keys.remove(key)

    def next(self, now: datetime) -> str | None:
        changes = self.changes
        if changes and changes[0][0] <= now:
            self.advance(now)
        try:
            head: int = self.arrived[0]
        except IndexError:  # nobody checked in
            return None
        # The first by (level, seq): the head of the aged tokens (at their levels) or the
        # first checked-in token by (priority, seq). If that one has aged, the aged head is
        # ahead of it anyway, so it is never called from the wrong place.
        aged = self.aged
        if aged and aged[0] < head:
            head = aged[0]
        return self.ids[head & SEQ_MASK]

    def called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        self.advance(now)
        return merge(keyed(self.aged, self.ids), keyed(self._unaged(), self.ids))

    def _unaged(self) -> Iterator[WaitKey]:
        """The keys of ``arrived`` not in ``aged_keys`` (a subset), in order. O(n)."""
        aged = iter(self.aged_keys)
        skip = next(aged, None)
        for key in self.arrived:
            if key == skip:
                skip = next(aged, None)
            else:
                yield key

    def position(
        self, token: Token, now: datetime, absent: SortedList[WaitKey], away: CallOrder
    ) -> int:
        self.advance(now)
        level = self.level_of(token)
        if level is None:
            away.advance(now)
            level = away.level_of(token)
        if level is None:
            level = int(token.priority)  # booked: its triaged priority
        rank = level << SEQ_BITS | token.seq  # its (level, seq)
        # Ahead: the checked-in and away tokens by their (level, seq), the booked ones by
        # (priority, seq).
        return self.before(rank, now) + away.before(rank, now) + absent.bisect_left(rank) + 1

    def before(self, rank: int, now: datetime) -> int:
        # The unaged filed tokens by (priority, seq), the aged ones by (level, seq).
        self.advance(now)
        ahead: int = (
            self.arrived.bisect_left(rank)
            - self.aged_keys.bisect_left(rank)
            + self.aged.bisect_left(rank)
        )
        return ahead

    def level_of(self, token: Token) -> int | None:
        filed = self.filed.get(token.id)
        return None if filed is None else int(filed[0])

    def _check(self, slot_id: str, ordering: OrderingPolicy) -> None:
        _check_arrived(self, slot_id)
        self._check_filed(slot_id)
        aged: list[int] = []
        aged_keys: list[int] = []
        for key in self.arrived:
            token_id = self.ids[key & SEQ_MASK]
            filed = self.filed[token_id]
            require(filed[1] == key, "ordering index matches", self.tokens.get(token_id))
            if filed[0] != key >> SEQ_BITS:
                aged.append(filed[0] << SEQ_BITS | (key & SEQ_MASK))
                aged_keys.append(key)
        require(list(self.aged) == sorted(aged), "aged-token index", slot_id)
        require(list(self.aged_keys) == aged_keys, "aged-token keys", slot_id)


class KeyedIndex(_Refiled):
    """The call order under any other ordering: per level, the tokens by ``(its key,
    seq)``; the ordering's ``pick`` chooses among the levels' heads."""

    __slots__ = ("levels", "slot_id")

    def __init__(
        self,
        ordering: OrderingPolicy,
        slot_id: str,
        ids: Mapping[int, str],
        tokens: Mapping[str, Token],
        undo: Undo,
    ) -> None:
        super().__init__(ordering, ids, tokens, undo)
        self.slot_id = slot_id
        # level -> the entries (ordering key, seq) of its tokens, sorted.
        self.levels: dict[int, SortedList[tuple[Any, int]]] = {}

    def _place(self, token: Token, now: datetime) -> Filed:
        ordering = self.ordering
        level = ordering.level(token, now)
        entry = (ordering.key(token), token.seq)
        when = ordering.next_change(token, now)
        return level, entry, None if when is None else (when, token.seq, token.id)

    def _put(self, token_id: str, filed: Filed) -> None:
        """Raises :class:`~opd_engine.InvalidArgumentError`, changing nothing, if the
        ordering gave the token a key that does not compare with the keys already in its
        level. Keys of the allowed kinds (``_guard.plain_key``) compare with all of a
        sorted list's entries once they compare with the entries the insertion meets:
        those that can differ from it in kind share its prefix, and so lie next to its
        place."""
        level, entry, change = filed
        entries = self.levels.get(level)
        if entries is None:
            self.levels[level] = SortedList((entry,))
        else:
            try:
                entries.add(entry)  # compares the key with the keys around it
            except TypeError:  # left unchanged: refused before anything changed
                raise unordered_key(self.ordering, token_id, entry[0], self.slot_id) from None
        if change is not None:
            heappush(self.changes, change)
        self.filed[token_id] = filed

    def _take(self, token_id: str) -> Filed:
        filed = self.filed.pop(token_id)
        level, entry, _ = filed
        entries = self.levels[level]
        entries.remove(entry)
        if not entries:
            del self.levels[level]
        if not self.filed:
            self.changes.clear()
        return filed

    def file(self, token: Token, now: datetime) -> None:
        self._put(token.id, self._place(token, now))  # first: it may refuse the key
        self.present += 1
        arrived = self.arrived
        if arrived is NO_KEYS:
            arrived = self.arrived = SortedList()
        arrived.add(token.priority << SEQ_BITS | token.seq)

    def unfile(self, token: Token) -> Filed:
        self.arrived.remove(token.priority << SEQ_BITS | token.seq)
        self.present -= 1
        return self._take(token.id)

    def next(self, now: datetime) -> str | None:
        levels = self.levels
        if not levels:
            return None
        changes = self.changes
        if changes and changes[0][0] <= now:
            self.advance(now)
        ordering = self.ordering
        if ordering.lexicographic:
            entry = levels[min(levels)][0]
        else:
            order = sorted(levels)
            ids, tokens = self.ids, self.tokens
            heads = [tokens[ids[levels[level][0][1]]] for level in order]
            entry = levels[order[ordering.pick(heads, now)]][0]
        return self.ids[entry[1]]

    def called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        self.advance(now)
        return self._called_order(now)

    def _called_order(self, now: datetime) -> Iterator[tuple[int, int, str]]:
        ids, tokens, levels = self.ids, self.tokens, self.levels
        order = sorted(levels)
        if self.ordering.lexicographic:
            for level in order:
                for _, seq in levels[level]:
                    yield level, seq, ids[seq]
            return
        cursors = dict.fromkeys(order, 0)
        while cursors:
            live = list(cursors)
            heads = [tokens[ids[levels[level][cursors[level]][1]]] for level in live]
            level = live[self.ordering.pick(heads, now)]
            seq = levels[level][cursors[level]][1]
            yield level, seq, ids[seq]
            cursors[level] += 1
            if cursors[level] == len(levels[level]):
                del cursors[level]

    def position(
        self, token: Token, now: datetime, absent: SortedList[WaitKey], away: CallOrder
    ) -> int:
        standing = merge(self.called_order(now), away.called_order(now), keyed(absent, self.ids))
        for place, (_, _, token_id) in enumerate(standing, start=1):
            if token_id == token.id:
                return place
        raise AssertionError(f"token {token.id!r} waits but is not in the standing order")

    def before(self, rank: int, now: datetime) -> int:
        level, seq = rank >> SEQ_BITS, rank & SEQ_MASK
        return sum(1 for entry in self.called_order(now) if entry[:2] < (level, seq))

    def level_of(self, token: Token) -> int | None:
        filed = self.filed.get(token.id)
        return None if filed is None else int(filed[0])

    def _check(self, slot_id: str, ordering: OrderingPolicy) -> None:
        _check_arrived(self, slot_id)
        self._check_filed(slot_id)
        ids, filed, tokens = self.ids, self.filed, self.tokens
        count = 0
        for level, entries in self.levels.items():
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
                count += 1
        require(count == len(filed), "ordering index complete", slot_id)
