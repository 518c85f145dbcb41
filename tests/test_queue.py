"""The queue structures, tested directly against naive models.

The allocator's tests reach these structures only through whole OPD days; here each one is
driven alone, operation by operation, beside a plain list that is sorted or scanned on
every read (as sortedcontainers tests its own internals):

- the queue key ``priority << SEQ_BITS | seq`` (``wait_key``), which must order exactly as
  the contract's ``(priority, seq)``, and ``_last_unprotected``, the displacement search;
- ``Waitlist``: one sorted list per (source, priority) class with its head, the present
  patients and their emergency count, the order, positions and removal, and undo;
- ``Held``: one patient's active tokens by duplicate-rule scope, its ``_check()``, and its
  O(log k) cost, counted in key comparisons;
- a ``Slot``'s queue: the standing order, positions, the call order, the token to displace
  and the counts, under the three ways a slot files its checked-in tokens (nobody ages,
  ``Aging``, a user's ordering), and undo.

These are private structures: the tests keep to their methods, not their attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sortedcontainers import SortedList

from opd_engine import Aging, OrderingPolicy, Priority, Source, StrictPriority, Token, TokenStatus
from opd_engine._patients import WHOLE_DAY, Held, HeldKey
from opd_engine._queue import MAX_SEQ, SEQ_BITS, SEQ_MASK, Waitlist, wait_key
from opd_engine._slot import Slot

# The private displacement search is imported by name: it is the one helper of the key
# that the slot's methods do not expose on their own.
from opd_engine._slot import _last_unprotected as last_unprotected
from opd_engine._undo import Undo

T0 = datetime(2026, 11, 25, 9, 0)
EMERGENCY = Priority.EMERGENCY

SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
MACHINE_SETTINGS = settings(SETTINGS, stateful_step_count=40)

PRIORITIES = st.sampled_from(Priority)
SOURCES = st.sampled_from(Source)
PICK = st.integers(0, 1000)


def make_token(
    seq: int,
    priority: Priority,
    source: Source = Source.WALK_IN,
    status: TokenStatus = TokenStatus.BOOKED,
    checked_in_at: datetime | None = None,
    moves: int = 0,
) -> Token:
    """A token with ``seq`` whose id is ``T<seq>``."""
    return Token(
        id=f"T{seq}",
        patient_id="P1",
        doctor_id="D1",
        slot_id=None if status is TokenStatus.WAITLISTED else "S",
        priority=priority,
        source=source,
        seq=seq,
        number=seq,
        status=status,
        booked_at=T0,
        checked_in_at=checked_in_at,
        moves=moves,
    )


def ranked(tokens: Sequence[Token]) -> list[Token]:
    """The contract's order: ``(priority, seq)``."""
    return sorted(tokens, key=lambda t: (int(t.priority), t.seq))


# ============================================================================ the key

SEQS = st.integers(0, MAX_SEQ)


@SETTINGS
@given(a=st.tuples(PRIORITIES, SEQS), b=st.tuples(PRIORITIES, SEQS))
def test_the_key_orders_as_priority_then_seq(
    a: tuple[Priority, int], b: tuple[Priority, int]
) -> None:
    """Two keys compare as their ``(priority, seq)`` pairs, for every seq up to MAX_SEQ."""
    key_a, key_b = wait_key(make_token(a[1], a[0])), wait_key(make_token(b[1], b[0]))
    pair_a, pair_b = (int(a[0]), a[1]), (int(b[0]), b[1])
    assert (key_a < key_b) == (pair_a < pair_b)
    assert (key_a == key_b) == (pair_a == pair_b)


@SETTINGS
@given(priority=PRIORITIES, seq=SEQS)
def test_the_key_gives_back_priority_and_seq(priority: Priority, seq: int) -> None:
    key = wait_key(make_token(seq, priority))
    assert key & SEQ_MASK == seq
    assert key >> SEQ_BITS == priority


def test_every_emergency_key_sorts_before_every_other_key() -> None:
    """The largest emergency key (the last seq) is below the smallest paid key (seq 0)."""
    assert MAX_SEQ == 2**SEQ_BITS - 1
    last_emergency = wait_key(make_token(MAX_SEQ, EMERGENCY))
    first_paid = wait_key(make_token(0, Priority.PAID))
    assert last_emergency < first_paid
    assert last_emergency + 1 == first_paid  # nothing fits between: the bits are all used


@st.composite
def keyed(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Distinct keys, and a subset of them."""
    pairs = draw(st.lists(st.tuples(PRIORITIES, st.integers(1, 60)), unique=True, max_size=30))
    keys = sorted(int(p) << SEQ_BITS | s for p, s in pairs)
    protected = [k for k in keys if draw(st.booleans())]
    return keys, protected


@SETTINGS
@given(keyed())
def test_the_last_unprotected_key(drawn: tuple[list[int], list[int]]) -> None:
    """``_last_unprotected``: the largest non-emergency key that is not protected, or None,
    found by bisection; here against a scan."""
    keys, protected = drawn
    expected = max(
        (k for k in keys if k >> SEQ_BITS != EMERGENCY and k not in protected), default=None
    )
    assert last_unprotected(SortedList(keys), SortedList(protected)) == expected


# ============================================================================ Waitlist


@dataclass
class Listed:
    """The naive waitlist: every token, scanned and sorted on each read."""

    tokens: dict[str, Token]

    def order(self) -> list[Token]:
        return ranked(list(self.tokens.values()))

    def present(self) -> list[Token]:
        return [t for t in self.order() if t.checked_in_at is not None]


def waitlist_view(waitlist: Waitlist, tokens: Sequence[Token]) -> object:
    """Everything a waitlist answers, for comparing two moments."""
    return (
        len(waitlist),
        list(waitlist),
        waitlist.first(),
        waitlist.first_present(),
        waitlist.first_present_emergency(),
        waitlist.emergencies,
        [waitlist.position(t) for t in tokens],
    )


class WaitlistMachine(RuleBasedStateMachine):
    """A ``Waitlist`` beside a plain list of tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.undo = Undo()
        self.waitlist = Waitlist(self.undo)
        self.model = Listed({})

    def pick(self, pick: int, present: bool | None = None) -> Token | None:
        tokens = [
            t
            for t in self.model.tokens.values()
            if present is None or (t.checked_in_at is not None) == present
        ]
        return tokens[pick % len(tokens)] if tokens else None

    def add(self, seq: int, priority: Priority, source: Source, present: bool) -> None:
        if f"T{seq}" in self.model.tokens:
            return
        token = make_token(seq, priority, source, TokenStatus.WAITLISTED, T0 if present else None)
        self.waitlist.add(token)
        self.model.tokens[token.id] = token

    def remove(self, pick: int) -> None:
        token = self.pick(pick)
        if token is not None:
            self.waitlist.remove(token)
            del self.model.tokens[token.id]

    def arrive(self, pick: int) -> None:
        token = self.pick(pick, present=False)
        if token is not None:
            token = attrs.evolve(token, checked_in_at=T0)
            self.waitlist.arrive(token)
            self.model.tokens[token.id] = token

    @rule(seq=st.integers(1, 40) | st.just(MAX_SEQ), priority=PRIORITIES, source=SOURCES,
          present=st.booleans())  # fmt: skip
    def add_token(self, seq: int, priority: Priority, source: Source, present: bool) -> None:
        self.add(seq, priority, source, present)

    @rule(batch=st.lists(st.tuples(st.integers(1, 40), PRIORITIES, SOURCES, st.booleans()),
                         max_size=8))  # fmt: skip
    def add_several(self, batch: list[tuple[int, Priority, Source, bool]]) -> None:
        """Several at once, so that the waitlist grows past a handful of tokens."""
        for seq, priority, source, present in batch:
            self.add(seq, priority, source, present)

    @rule(pick=PICK)
    def remove_token(self, pick: int) -> None:
        self.remove(pick)

    @rule(pick=PICK)
    def patient_arrives(self, pick: int) -> None:
        self.arrive(pick)

    @rule(admitted=st.sets(st.tuples(SOURCES, PRIORITIES)))
    def first_admitted(self, admitted: set[tuple[Source, Priority]]) -> None:
        """The first token whose (source, priority) class the policy admits: each class
        asked once at most (a capacity policy admits or refuses a whole class)."""
        asked: list[tuple[Source, Priority]] = []

        def admits(source: Source, priority: Priority) -> bool:
            asked.append((source, priority))
            return (source, priority) in admitted

        found = self.waitlist.first_admitted(admits)
        expected = next(
            (t.id for t in self.model.order() if (t.source, t.priority) in admitted), None
        )
        assert found == expected
        assert len(asked) == len(set(asked))
        assert set(asked) <= {(t.source, t.priority) for t in self.model.tokens.values()}

    @rule(
        steps=st.lists(
            st.tuples(st.integers(0, 2), st.integers(1, 40), PRIORITIES, SOURCES, PICK),
            max_size=8,
        )
    )
    def rolled_back(self, steps: list[tuple[int, int, Priority, Source, int]]) -> None:
        """Changes recorded in an ``Undo`` and rolled back leave the waitlist as it was."""
        tokens = list(self.model.tokens.values())
        before = waitlist_view(self.waitlist, tokens)
        saved_tokens = dict(self.model.tokens)
        saved = self.undo.begin()
        for kind, seq, priority, source, pick in steps:
            if kind == 0:
                self.add(seq, priority, source, present=pick % 2 == 0)
            elif kind == 1:
                self.remove(pick)
            else:
                self.arrive(pick)
        self.undo.rollback(saved)
        self.model.tokens = saved_tokens
        assert waitlist_view(self.waitlist, tokens) == before

    @invariant()
    def agrees(self) -> None:
        order = self.model.order()
        present = self.model.present()
        assert len(self.waitlist) == len(order)
        assert list(self.waitlist) == [t.id for t in order]
        assert self.waitlist.first() == (order[0].id if order else None)
        assert self.waitlist.first_present() == (present[0].id if present else None)
        emergencies = [t for t in present if t.priority is EMERGENCY]
        assert self.waitlist.emergencies == len(emergencies)
        assert self.waitlist.first_present_emergency() == (
            emergencies[0].id if emergencies else None
        )
        for place, token in enumerate(order, start=1):
            assert self.waitlist.position(token) == place


TestWaitlist = WaitlistMachine.TestCase
TestWaitlist.settings = MACHINE_SETTINGS


# ============================================================================ Held

SCOPES = ("D1", "D2", WHOLE_DAY)


class HeldMachine(RuleBasedStateMachine):
    """A ``Held`` beside a dict of token id -> (scope, key)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = Held()
        self.model: dict[str, tuple[str, HeldKey]] = {}

    def pick(self, pick: int) -> str | None:
        ids = sorted(self.model)
        return ids[pick % len(ids)] if ids else None

    @rule(seq=st.integers(1, 30), scope=st.sampled_from(SCOPES), emergency=st.booleans())
    def add(self, seq: int, scope: str, emergency: bool) -> None:
        token_id = f"T{seq}"
        if token_id in self.model:
            return
        key = (emergency, seq, token_id)
        self.held.add(token_id, scope, key)
        self.model[token_id] = (scope, key)

    @rule(pick=PICK)
    def discard(self, pick: int) -> None:
        token_id = self.pick(pick)
        if token_id is not None:
            self.held.discard(token_id)
            del self.model[token_id]

    @rule(pick=PICK, scope=st.sampled_from(SCOPES), emergency=st.booleans())
    def refile(self, pick: int, scope: str, emergency: bool) -> None:
        """A token's doctor or level changed: discard, then add under the new scope and key
        (as the patient index does)."""
        token_id = self.pick(pick)
        if token_id is None:
            return
        key = (emergency, self.model[token_id][1][1], token_id)
        self.held.discard(token_id)
        self.held.add(token_id, scope, key)
        self.model[token_id] = (scope, key)

    @rule(scope=st.sampled_from(SCOPES), exclude=st.none() | PICK)
    def first(self, scope: str, exclude: int | None) -> None:
        """The token the duplicate rule names in ``scope``: a non-emergency first, then the
        smallest seq; never ``exclude``."""
        excluded = None if exclude is None else self.pick(exclude)
        keys = sorted(key for where, key in self.model.values() if where == scope)
        expected = next((key[2] for key in keys if key[2] != excluded), None)
        assert self.held.first(scope, excluded) == expected

    @invariant()
    def agrees(self) -> None:
        assert len(self.held) == len(self.model)
        assert sorted(self.held.ids()) == sorted(self.model)
        for token_id, filed in self.model.items():
            assert token_id in self.held
            assert self.held.filed(token_id) == filed
        assert "T0" not in self.held
        assert self.held.filed("T0") is None
        normal: dict[str, int] = {}
        for scope, key in self.model.values():
            normal[scope] = normal.get(scope, 0) + (not key[0])
        assert sorted(self.held.crowded()) == sorted(s for s, n in normal.items() if n > 1)
        if len(self.model) >= 2:
            self.held._check()


TestHeld = HeldMachine.TestCase
TestHeld.settings = MACHINE_SETTINGS


def test_held_check_refuses_a_single_token() -> None:
    """A patient with one active token is indexed by its id, not a Held: ``_check`` says so
    (it is not an assertion that always passes)."""
    held = Held()
    held.add("T1", "D1", (False, 1, "T1"))
    held.add("T2", "D1", (False, 2, "T2"))
    held._check()
    held.discard("T2")
    with pytest.raises(AssertionError, match="one active token"):
        held._check()


class Counted(int):
    """A ``seq`` that counts how often it is compared."""

    comparisons: ClassVar[int] = 0

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return isinstance(other, int) and int(self) == int(other)

    def __lt__(self, other: int) -> bool:
        Counted.comparisons += 1
        return int(self) < int(other)

    def __gt__(self, other: int) -> bool:
        Counted.comparisons += 1
        return int(self) > int(other)

    def __le__(self, other: int) -> bool:
        Counted.comparisons += 1
        return int(self) <= int(other)

    def __ge__(self, other: int) -> bool:
        Counted.comparisons += 1
        return int(self) >= int(other)

    __hash__ = int.__hash__


def comparisons(call: Callable[[], object]) -> int:
    Counted.comparisons = 0
    call()
    return Counted.comparisons


@pytest.mark.parametrize("k", [2**4, 2**10, 2**16])
def test_held_costs_log_k_comparisons(k: int) -> None:
    """``add``, ``discard`` and ``first`` on a patient holding k tokens in one scope compare
    O(log k) keys, never k. A SortedList bisects its index of sublists, then one sublist:
    about ``log2(k) + 2`` key comparisons, each comparing two seqs (``==``, then ``<``).
    A scan (``list.remove``, ``min``, a re-sort) would make k or more."""
    held = Held()
    for seq in range(0, 2 * k, 2):  # even seqs; odd ones are free to add
        held.add(f"T{seq}", "D1", (False, Counted(seq), f"T{seq}"))
    bound = 2 * (math.log2(k) + 3)
    for seq in (1, k + 1, 2 * k - 1):  # first, middle, last
        token_id = f"T{seq}"
        key = (False, Counted(seq), token_id)
        added = comparisons(partial(held.add, token_id, "D1", key))
        assert added <= bound, (seq, added, bound)
        assert held.filed(token_id) == ("D1", key)
        discarded = comparisons(partial(held.discard, token_id))
        assert discarded <= bound, (seq, discarded, bound)
        assert token_id not in held
    named = comparisons(lambda: held.first("D1", exclude="T0"))
    assert named == 0  # the first entries are read, not searched for
    assert held.first("D1", exclude="T0") == "T2"
    assert len(held) == k


# ============================================================================ a slot's queue


class UserLifo:
    """A user's ordering, not one of the shipped ones (so the slot files its tokens by
    level and key): triage levels, and within a level the latest arrival first."""

    lexicographic = True

    def level(self, token: Token, now: datetime) -> int:
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return None

    def key(self, token: Token) -> int:
        return -token.seq

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return 0


PROTECT_AT = 2  # moves after which a token is displaced only as the last resort


class SlotQueueMachine(RuleBasedStateMachine):
    """A ``Slot``'s queue beside a dict of its tokens, under one ordering.

    The naive reading of the contract (DESIGN.md section 3, "Standing order"): a checked-in
    token stands at its current level, a booked one at its triaged priority; the ordering
    calls the checked-in tokens by (level, its key, seq); the standing order merges the two
    streams by comparing their heads' (level, seq).
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.policy = self.ordering()
        self.slot = Slot("S", "D1", T0, T0 + timedelta(hours=3), 3)
        self.tokens: dict[str, Token] = {}  # every token the slot has seen, current
        self.undo = Undo()
        self.slot._attach(self.policy, self.tokens, self.undo, PROTECT_AT)
        self.waiting: dict[str, Token] = {}
        self.seated: list[Token] = []

    def ordering(self) -> OrderingPolicy:
        return StrictPriority()

    # ---------------------------------------------------------------- the naive model

    def level(self, token: Token) -> int:
        """Aging, from its docstring: ``max(ceiling, priority - floor(waited / step))`` for
        priorities below the ceiling; every other ordering here: the priority."""
        priority = int(token.priority)
        if not isinstance(self.policy, Aging) or priority <= self.policy.ceiling:
            return priority
        assert token.checked_in_at is not None
        steps = (self.now - token.checked_in_at) // self.policy.step
        return max(int(self.policy.ceiling), priority - steps)

    def called(self) -> list[Token]:
        arrived = [t for t in self.waiting.values() if t.status is TokenStatus.CHECKED_IN]
        if isinstance(self.policy, UserLifo):
            return sorted(arrived, key=lambda t: (self.level(t), -t.seq))
        return sorted(arrived, key=lambda t: (self.level(t), t.seq))

    def standing(self) -> list[Token]:
        called = self.called()
        booked = ranked([t for t in self.waiting.values() if t.status is TokenStatus.BOOKED])
        merged: list[Token] = []
        while called and booked:
            head = called[0]
            if (self.level(head), head.seq) < (int(booked[0].priority), booked[0].seq):
                merged.append(called.pop(0))
            else:
                merged.append(booked.pop(0))
        return merged + called + booked

    def victim(self, max_moves: int) -> str | None:
        """DESIGN.md section 3: "the lowest-ranked non-emergency token (lowest priority,
        latest ``seq``)"; section 4: one moved ``max_moves`` times only if no other."""
        candidates = ranked([t for t in self.waiting.values() if t.priority is not EMERGENCY])
        candidates.reverse()
        fresh = [t for t in candidates if t.moves < max_moves]
        if fresh:
            return fresh[0].id
        return candidates[0].id if candidates else None

    def holders(self) -> list[Token]:
        return [*self.waiting.values(), *self.seated]

    # ---------------------------------------------------------------- operations

    def pick(self, pick: int, status: TokenStatus | None = None) -> Token | None:
        tokens = [t for t in self.waiting.values() if status is None or t.status is status]
        return tokens[pick % len(tokens)] if tokens else None

    def add(self, seq: int, priority: Priority, source: Source, present: bool, moves: int) -> None:
        if f"T{seq}" in self.tokens:
            return
        status = TokenStatus.CHECKED_IN if present else TokenStatus.BOOKED
        token = make_token(seq, priority, source, status, self.now if present else None, moves)
        self.tokens[token.id] = token
        self.slot._add(token, self.now)
        self.waiting[token.id] = token

    def remove(self, pick: int) -> None:
        token = self.pick(pick)
        if token is not None:
            self.slot._remove(token)
            del self.waiting[token.id]

    def arrive(self, pick: int) -> None:
        token = self.pick(pick, TokenStatus.BOOKED)
        if token is not None:
            token = attrs.evolve(token, status=TokenStatus.CHECKED_IN, checked_in_at=self.now)
            self.tokens[token.id] = self.waiting[token.id] = token
            self.slot._arrive(token, self.now)

    def seat(self) -> None:
        """Call the token the slot calls next: it leaves the queue, keeping its place."""
        token_id = self.slot._next(self.now)
        called = self.called()
        assert token_id == (called[0].id if called else None)
        if token_id is not None:
            token = self.waiting.pop(token_id)
            self.slot._seat(token)
            self.seated.append(token)

    def apply(self, kind: int, seq: int, priority: Priority, source: Source, pick: int) -> None:
        if kind == 0:
            self.add(seq, priority, source, present=pick % 2 == 0, moves=pick % 4)
        elif kind == 1:
            self.remove(pick)
        elif kind == 2:
            self.arrive(pick)
        else:
            self.seat()

    def view(self) -> object:
        """Everything the slot answers about its queue."""
        slot = self.slot
        return (
            list(slot._standing(self.now)),
            [slot._position(t, self.now) for t in self.waiting.values()],
            slot._next(self.now),
            [slot._victim(moves) for moves in (1, PROTECT_AT, 3)],
            (slot.waiting, slot.present, slot.occupancy, slot.emergencies),
            [slot.held_by(source) for source in Source],
            (slot._present_emergencies(), slot._first_present_emergency()),
        )

    # ---------------------------------------------------------------- rules

    @rule(seq=st.integers(1, 40), priority=PRIORITIES, source=SOURCES, present=st.booleans(),
          moves=st.integers(0, 3))  # fmt: skip
    def add_token(
        self, seq: int, priority: Priority, source: Source, present: bool, moves: int
    ) -> None:
        self.add(seq, priority, source, present, moves)

    @rule(batch=st.lists(st.tuples(st.integers(1, 40), PRIORITIES, SOURCES, st.booleans(),
                                   st.integers(0, 3)), max_size=8))  # fmt: skip
    def add_several(self, batch: list[tuple[int, Priority, Source, bool, int]]) -> None:
        """Several at once, so that the queue grows past a handful of tokens."""
        for seq, priority, source, present, moves in batch:
            self.add(seq, priority, source, present, moves)

    @rule(pick=PICK)
    def remove_token(self, pick: int) -> None:
        self.remove(pick)

    @rule(pick=PICK)
    def patient_arrives(self, pick: int) -> None:
        self.arrive(pick)

    @rule()
    def call(self) -> None:
        self.seat()

    @rule(minutes=st.integers(0, 25))
    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @precondition(lambda self: self.waiting)
    @rule(
        steps=st.lists(
            st.tuples(st.integers(0, 3), st.integers(41, 60), PRIORITIES, SOURCES, PICK),
            max_size=6,
        )
    )
    def rolled_back(self, steps: list[tuple[int, int, Priority, Source, int]]) -> None:
        """Changes recorded in an ``Undo`` and rolled back leave the queue as it was."""
        before = self.view()
        saved_state = (dict(self.waiting), list(self.seated), dict(self.tokens))
        saved = self.undo.begin()
        for step in steps:
            self.apply(*step)
        self.undo.rollback(saved)
        self.waiting, self.seated = dict(saved_state[0]), list(saved_state[1])
        self.tokens.clear()
        self.tokens.update(saved_state[2])
        assert self.view() == before

    # ---------------------------------------------------------------- invariant

    @invariant()
    def agrees(self) -> None:
        slot = self.slot
        standing = self.standing()
        assert list(slot._standing(self.now)) == [t.id for t in standing]
        for place, token in enumerate(standing, start=1):
            assert slot._position(token, self.now) == place, token.id
        called = self.called()
        assert slot._next(self.now) == (called[0].id if called else None)
        for max_moves in (1, PROTECT_AT, 3):
            assert slot._victim(max_moves) == self.victim(max_moves), max_moves
        holders = self.holders()
        present = [t for t in self.waiting.values() if t.status is TokenStatus.CHECKED_IN]
        assert slot.waiting == len(self.waiting)
        assert slot.present == len(present)
        assert slot.occupancy == len(holders)
        assert slot.emergencies == len([t for t in holders if t.priority is EMERGENCY])
        for source in Source:
            assert slot.held_by(source) == len(
                [t for t in holders if t.source is source and t.priority is not EMERGENCY]
            )
        urgent = sorted(t.seq for t in present if t.priority is EMERGENCY)
        assert slot._present_emergencies() == len(urgent)
        assert slot._first_present_emergency() == (urgent[0] if urgent else None)


class AgingQueueMachine(SlotQueueMachine):
    def ordering(self) -> OrderingPolicy:
        return Aging(step=timedelta(minutes=10))


class UserOrderingQueueMachine(SlotQueueMachine):
    def ordering(self) -> OrderingPolicy:
        return UserLifo()


TestStrictQueue = SlotQueueMachine.TestCase
TestAgingQueue = AgingQueueMachine.TestCase
TestUserOrderingQueue = UserOrderingQueueMachine.TestCase
TestStrictQueue.settings = MACHINE_SETTINGS
TestAgingQueue.settings = MACHINE_SETTINGS
TestUserOrderingQueue.settings = MACHINE_SETTINGS
