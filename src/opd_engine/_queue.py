"""The queue key, once; the one empty key list every sorted list of keys starts as; and a
doctor's waitlist. The one module that imports ``sortedcontainers``: the others take
``SortedList`` from here.

A waiting token's queue key is ``priority << SEQ_BITS | seq``: the contract's ``(priority,
seq)`` as one int (ints compare several times faster than tuples in a sorted list). A
slot, its call-order index and a waitlist each map ``seq`` back to the token id (``key &
SEQ_MASK`` is ``seq``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from heapq import merge
from itertools import pairwise
from typing import Final, final

from sortedcontainers import SortedList as SortedList  # the others import it from here

from ._check import require
from ._undo import DETACHED, Undo
from ._values import AWAY, EMERGENCY, WAITLISTED, Priority, Source, Token

SEQ_BITS: Final = 40
SEQ_MASK: Final = (1 << SEQ_BITS) - 1
#: The largest ``seq`` a key holds (about 10^12: far beyond any day's tokens).
MAX_SEQ: Final = SEQ_MASK
WaitKey = int
#: Sorts before every non-emergency key, after every emergency.
FIRST_NORMAL: Final = (int(EMERGENCY) + 1) << SEQ_BITS


def wait_key(token: Token) -> WaitKey:
    """The queue key of ``token``. O(1)."""
    return token.priority << SEQ_BITS | token.seq


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


NO_KEYS: Final[SortedList[WaitKey]] = _NoKeys()


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
        # The keys of the tokens whose patients are present (checked in, and not AWAY):
        # idle-fill calls them.
        self._present: SortedList[WaitKey] = SortedList()
        # How many of them are emergencies: read by every call, so a plain count.
        self.emergencies = 0
        self._undo = undo

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def present(self) -> int:
        """How many waitlisted patients are present (checked in, not away). O(1)."""
        return len(self._present)

    def __iter__(self) -> Iterator[str]:
        """Token ids in order. O(n log c) for c classes."""
        ids = self._ids
        for key in merge(*self._classes.values()):
            yield ids[key & SEQ_MASK]

    def add(self, token: Token) -> None:
        """O(log n)."""
        key = token.priority << SEQ_BITS | token.seq
        self._ids[token.seq] = token.id
        if token.checked_in_at is not None and token.status is not AWAY:
            self._present.add(key)
            if key < FIRST_NORMAL:
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
        if token.checked_in_at is not None and token.status is not AWAY:
            self._present.remove(key)
            if key < FIRST_NORMAL:
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
        """A waitlisted patient is present now (checked in, or back from stepping out).
        O(log n)."""
        key = token.priority << SEQ_BITS | token.seq
        self._present.add(key)
        if key < FIRST_NORMAL:
            self.emergencies += 1
        if self._undo.recording:
            self._undo.record(self._undo_arrive, key)

    def _undo_arrive(self, key: WaitKey) -> None:
        """Undo :meth:`arrive`. O(log n)."""
        self._present.remove(key)
        if key < FIRST_NORMAL:
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

    def present_before(self, token: Token) -> int:
        """How many present patients rank before ``token`` (which need not be waitlisted):
        those the idle-fill rule calls first. O(log n)."""
        return self._present.bisect_left(token.priority << SEQ_BITS | token.seq)

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
                (token.priority, token.seq, token.doctor_id, token.slot_id)
                == (priority, seq, doctor_id, None)
                and (token.status is WAITLISTED or token.status is AWAY),
                "waitlist entries match their tokens",
                token,
            )
            require(class_of[key] == (token.source, token.priority), "waitlist class index", token)
            if token.checked_in_at is not None and token.status is not AWAY:
                present.append(key)
        require(list(self._present) == present, "present-waitlist index", doctor_id)
        require(
            self.emergencies == sum(1 for key in present if key >> SEQ_BITS == EMERGENCY),
            "present emergencies on the waitlist counted",
            doctor_id,
        )
