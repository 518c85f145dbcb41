"""A user's policy that raises or answers nonsense cannot break a call's atomicity.

The contract: "A call that raises changes nothing: state, counters and events are as before
the call, even when a user's policy or clock raised or returned nonsense (the allocator
checks what a policy returns, and refuses it with an OPDError naming the policy)."

Each test below runs one public call on a day whose policies are the user's own (thin
wrappers of the shipped ones, or subclasses of them: "the guard trusts only the shipped
classes themselves, not their subclasses"), and makes the k-th policy answer of that call
fail, for every k the call reaches: by raising, or by returning a value of the wrong type
or range (a key of NaN among them). The call
must then raise (the policy's own exception, or InvalidArgumentError naming the policy and
the value), leave the snapshot, every queue, the version and the events delivered as they
were, and keep every invariant; and the same call made again with the policy mended must
give what it gives on a day that never failed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import CAPACITY, DOCTORS, HOURS, Clock, at
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    EmergencyOverride,
    Event,
    HardLimit,
    InvalidArgumentError,
    OnDelay,
    OnFull,
    OPDError,
    Policies,
    Priority,
    Reallocation,
    Slot,
    Source,
    StrictPriority,
    Token,
    TokenStatus,
)


class Sabotage(Exception):
    """What a failing policy raises."""


class Fault:
    """Shared by a day's four policies: counts their answers and spoils the k-th."""

    def __init__(self) -> None:
        self.calls = 0
        self.at: int | None = None  # the answer to spoil (0-based), None: never
        self.mode = "raise"
        self.spoiled: str | None = None  # which answer was spoiled

    def answer(self, name: str, value: Any, garbage: Any) -> Any:
        index = self.calls
        self.calls += 1
        if index != self.at:
            return value
        self.spoiled = name
        if self.mode == "raise":
            raise Sabotage(name)
        return garbage


class MyCapacity:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.inner = HardLimit()

    def limit(self, capacity: int) -> int:
        return self.fault.answer("limit", self.inner.limit(capacity), -1)  # type: ignore[no-any-return]

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        return self.fault.answer("admits", self.inner.admits(slot, source, priority), None)  # type: ignore[no-any-return]


class MyEmergency:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.inner = EmergencyOverride(max_overflow=1)

    def overflow_limit(self, slot: Slot) -> int | None:
        return self.fault.answer("overflow_limit", self.inner.overflow_limit(slot), "1")  # type: ignore[no-any-return]


class MyReallocation:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.inner = Reallocation()

    @property
    def pull_forward(self) -> bool:
        return self.fault.answer("pull_forward", self.inner.pull_forward, "yes")  # type: ignore[no-any-return]

    @property
    def max_moves(self) -> int:
        return self.fault.answer("max_moves", self.inner.max_moves, -3)  # type: ignore[no-any-return]

    @property
    def fill_idle(self) -> bool:
        return self.fault.answer("fill_idle", self.inner.fill_idle, 1)  # type: ignore[no-any-return]


class MyOrdering:
    def __init__(self, fault: Fault, inner: Aging | AccumulatingPriority) -> None:
        self.fault = fault
        self.inner = inner

    @property
    def lexicographic(self) -> bool:
        return self.fault.answer("lexicographic", self.inner.lexicographic, None)  # type: ignore[no-any-return]

    def level(self, token: Token, now: datetime) -> int:
        return self.fault.answer("level", self.inner.level(token, now), "high")  # type: ignore[no-any-return]

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        # Garbage: a change that does not move forward (it would loop for ever).
        return self.fault.answer("next_change", self.inner.next_change(token, now), now)  # type: ignore[no-any-return]

    def key(self, token: Token) -> Any:
        # Garbage: NaN, which compares neither below nor above anything.
        return self.fault.answer("key", self.inner.key(token), math.nan)

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return self.fault.answer("pick", self.inner.pick(heads, now), len(heads))  # type: ignore[no-any-return]


# The same policies written as subclasses of the shipped ones, as a user may write them.
# Reallocation's answers are fields, which a subclass cannot override with properties: a
# day of subclasses keeps the shipped Reallocation, so that no policy of its is a wrapper.


@attrs.frozen
class SubLimit(HardLimit):  # type: ignore[misc]
    fault: Fault = attrs.field(eq=False)

    def limit(self, capacity: int) -> int:
        return self.fault.answer("limit", super().limit(capacity), -1)  # type: ignore[no-any-return]

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        return self.fault.answer("admits", super().admits(slot, source, priority), None)  # type: ignore[no-any-return]


@attrs.frozen(kw_only=True)
class SubOverride(EmergencyOverride):  # type: ignore[misc]
    fault: Fault = attrs.field(eq=False)

    def overflow_limit(self, slot: Slot) -> int | None:
        return self.fault.answer("overflow_limit", super().overflow_limit(slot), "1")  # type: ignore[no-any-return]


class SubOrdering:
    """The answers of an ordering subclass, spoiled by its fault (mixed in first)."""

    fault: Fault

    @property
    def lexicographic(self) -> bool:
        return self.fault.answer("lexicographic", super().lexicographic, None)  # type: ignore[misc, no-any-return]

    def level(self, token: Token, now: datetime) -> int:
        return self.fault.answer("level", super().level(token, now), "high")  # type: ignore[misc, no-any-return]

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return self.fault.answer("next_change", super().next_change(token, now), now)  # type: ignore[misc, no-any-return]

    def key(self, token: Token) -> Any:
        return self.fault.answer("key", super().key(token), math.nan)  # type: ignore[misc]

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return self.fault.answer("pick", super().pick(heads, now), len(heads))  # type: ignore[misc, no-any-return]


@attrs.frozen(kw_only=True)
class SubAging(SubOrdering, Aging):  # type: ignore[misc]
    fault: Fault = attrs.field(eq=False)


@attrs.frozen(kw_only=True)
class SubAccumulating(SubOrdering, AccumulatingPriority):  # type: ignore[misc]
    fault: Fault = attrs.field(eq=False)


def new_day(fault: Fault, ordering: str, style: str = "wrapper") -> tuple[Allocator, list[Event]]:
    """The conftest day under the user's policies, with patients in every state; ``style``
    says how the user wrote them: wrapping the shipped ones, or subclassing them."""
    step = timedelta(minutes=20)
    if style == "wrapper":
        inner = Aging(step=step) if ordering == "aging" else AccumulatingPriority()
        capacity: Any = MyCapacity(fault)
        emergency: Any = MyEmergency(fault)
        reallocation: Any = MyReallocation(fault)
        order: Any = MyOrdering(fault, inner)
    else:
        capacity = SubLimit(fault)
        emergency = SubOverride(max_overflow=1, fault=fault)
        reallocation = Reallocation()
        order = (
            SubAging(step=step, fault=fault)
            if ordering == "aging"
            else SubAccumulating(fault=fault)
        )
    policies = Policies(
        capacity=capacity,
        emergency=emergency,
        reallocation=reallocation,
        ordering=order,
        on_full=OnFull.WAITLIST,
        max_missed_calls=1,  # a missed call frees the place: the refill asks the policies
        on_delay=OnDelay.SHRINK,  # a delay takes places away: the policies are asked
    )
    clock = Clock()
    alloc = Allocator(policies=policies, clock=clock)
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            alloc.add_slot(
                Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
            )
    # D1@09: A booked, B present, C paid present; D1@10: D present, E booked, F present;
    # D1@11: G present; D1's waitlist: W1 present, W2 booked; D2: H in consultation.
    alloc.book("A", "D1", "D1@09", source=Source.ONLINE)  # D1-001
    alloc.book("B", "D1", "D1@09")  # D1-002
    alloc.book("C", "D1", "D1@09", source=Source.PAID, checked_in=True)  # D1-003
    alloc.book("D", "D1", "D1@10")  # D1-004
    alloc.book("E", "D1", "D1@10", source=Source.ONLINE)  # D1-005
    alloc.book("F", "D1", "D1@10")  # D1-006
    alloc.book("G", "D1", "D1@11")  # D1-007
    for hour in (11,):
        for i in range(CAPACITY - 1):
            alloc.book(f"X{i}", "D1", f"D1@{hour}", source=Source.ONLINE)
    alloc.book("W1", "D1")  # D1-010, waitlisted, present
    alloc.book("W2", "D1", source=Source.FOLLOW_UP)  # D1-011, waitlisted, not here
    alloc.book("H", "D2")  # D2-001
    clock.now = at(9, 20)
    alloc.call_next("D2")
    alloc.book("Q", "D3", "D3@09", source=Source.ONLINE)  # D3-001
    events: list[Event] = []
    alloc.subscribe(events.append)
    return alloc, events


CALLS: dict[str, Callable[[Allocator], object]] = {
    "book": lambda a: a.book("P", "D1", source=Source.ONLINE),
    "book-emergency": lambda a: a.book("P", "D1", "D1@09", priority=Priority.EMERGENCY),
    "check_in": lambda a: a.check_in("D1-005"),
    "check_in-waitlisted": lambda a: a.check_in("D1-011"),
    "call_next": lambda a: a.call_next("D1"),
    "call_next-idle-fill": lambda a: a.call_next("D3"),
    "complete": lambda a: a.complete("D2-001"),
    "cancel": lambda a: a.cancel("D1-002"),
    "no_show": lambda a: a.no_show("D1-001"),
    "missed_call": lambda a: a.missed_call("D2-001"),
    "delay": lambda a: a.delay("D1", 15),
    "mark_unavailable": lambda a: a.mark_unavailable("D1"),
    "resize-shrink": lambda a: a.resize("D1@10", 1),
    "resize-grow": lambda a: a.resize("D1@11", 5),
    "reschedule": lambda a: a.reschedule("D1-004", "D2@10"),
    "retriage": lambda a: a.retriage("D1-007", Priority.EMERGENCY),
    "retriage-waitlisted": lambda a: a.retriage("D1-010", Priority.EMERGENCY),
    "close_slot": lambda a: a.close_slot("D1@10"),
    "add_slot": lambda a: a.add_slot(Slot("D1@12", "D1", at(12), at(13), 2)),
    "queue": lambda a: a.queue("D1@09"),
    "position": lambda a: a.position("D1-001"),
    "estimated_start": lambda a: a.estimated_start("D1-006"),
}


def observe(alloc: Allocator, events: list[Event]) -> object:
    """Everything a failed call must leave as it was."""
    return (
        alloc.snapshot(),
        alloc.version,
        len(events),
        [[t.id for t in alloc.queue(s.id)] for s in alloc.slots()],
        [[t.id for t in alloc.waitlist(d.id)] for d in alloc.doctors()],
        [alloc.position(t.id) for t in alloc.tokens() if t.status.waiting],
    )


def reference(name: str, ordering: str, style: str) -> tuple[object, object, int]:
    """The call's result and resulting state on a day that never fails, and how many
    policy answers the call needs."""
    fault = Fault()
    alloc, events = new_day(fault, ordering, style)
    observe(alloc, events)  # as the test does before the call (queues bring aging up to date)
    fault.calls = 0
    result = CALLS[name](alloc)
    needed = fault.calls
    return result, observe(alloc, events), needed


@pytest.mark.parametrize("style", ["wrapper", "subclass"])
@pytest.mark.parametrize("ordering", ["aging", "accumulating"])
@pytest.mark.parametrize("mode", ["raise", "garbage"])
@pytest.mark.parametrize("name", list(CALLS))
def test_a_failing_policy_changes_nothing(name: str, mode: str, ordering: str, style: str) -> None:
    expected_result, expected_state, needed = reference(name, ordering, style)
    # These two ask no policy at all, so nothing of the user's can fail inside them; the
    # idle-fill asks only the reallocation policy, a shipped one on the day of subclasses.
    asks_nothing = {"complete", "check_in-waitlisted"}
    if style == "subclass":
        asks_nothing.add("call_next-idle-fill")
    assert (needed == 0) == (name in asks_nothing)
    for k in range(min(needed, 40)):
        fault = Fault()
        alloc, events = new_day(fault, ordering, style)
        before = observe(alloc, events)
        fault.calls, fault.at, fault.mode = 0, k, mode
        expected = Sabotage if mode == "raise" else InvalidArgumentError
        with pytest.raises(expected, match="." if mode == "raise" else "policy"):
            CALLS[name](alloc)
        fault.at = None
        assert observe(alloc, events) == before, f"answer {k} ({fault.spoiled}) left a trace"
        alloc.check_invariants()
        # Mended, the same call gives what it gives on a day that never failed.
        assert CALLS[name](alloc) == expected_result
        assert observe(alloc, events) == expected_state


def test_garbage_is_refused_naming_the_policy_and_the_value() -> None:
    fault = Fault()
    alloc, _ = new_day(fault, "aging")
    fault.calls, fault.at, fault.mode = 0, 0, "garbage"
    with pytest.raises(InvalidArgumentError, match=r"policy <.*MyCapacity.*>: .* got None"):
        alloc.book("P", "D1", source=Source.ONLINE)


# ----------------------------------------------------------------- subclasses of shipped ones


def test_a_subclass_of_a_shipped_policy_is_checked_like_a_users_own(clock: Clock) -> None:
    """Issue: "A user policy written as a subclass of a shipped one (class MyLimit(HardLimit))
    is trusted as shipped. If it raises midway, cancel raises but the token is already
    CANCELLED." The rule: the guard trusts only the shipped classes themselves, not their
    subclasses; a call that raises changes nothing, even when a user's policy raised."""

    class MyLimit(HardLimit):  # type: ignore[misc]
        armed = False

        def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
            if MyLimit.armed:
                raise Sabotage("admits")
            return super().admits(slot, source, priority)

    alloc = Allocator(policies=Policies(capacity=MyLimit(), on_full=OnFull.WAITLIST), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 1))
    booked = alloc.book("A", "D1", source=Source.ONLINE)
    alloc.book("W", "D1", source=Source.ONLINE)  # waitlisted: refills A's place
    events: list[Event] = []
    alloc.subscribe(events.append)
    before = (alloc.snapshot(), alloc.version)
    MyLimit.armed = True
    with pytest.raises(Sabotage):
        alloc.cancel(booked.id)  # frees the place, and the refill asks admits()
    MyLimit.armed = False
    assert alloc.token(booked.id).status is TokenStatus.BOOKED
    assert (alloc.snapshot(), alloc.version) == before
    assert events == []
    alloc.check_invariants()


def test_a_subclass_of_a_shipped_ordering_is_asked_not_bypassed(clock: Clock) -> None:
    """The shipped orderings' fast paths (their key is seq, their filing computed at once)
    serve the shipped classes themselves only: a subclass that overrides ``level`` is asked,
    here calling standard patients before paid ones."""

    class StandardFirst(StrictPriority):  # type: ignore[misc]
        def level(self, token: Token, now: datetime) -> int:
            return -int(token.priority)

    alloc = Allocator(policies=Policies(ordering=StandardFirst()), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 3))
    alloc.book("P", "D1", source=Source.PAID, checked_in=True)
    standard = alloc.book("W", "D1", source=Source.WALK_IN)
    clock.now = at(9)
    assert alloc.call_next("D1") == alloc.token(standard.id)
    alloc.check_invariants()


# ----------------------------------------------------------------- ordering keys


class KeyedBy:
    """A user's ordering: strict priority, ordered within a level by ``keys[patient]``."""

    lexicographic = True

    def __init__(self, keys: dict[str, object]) -> None:
        self.keys = keys

    def level(self, token: Token, now: datetime) -> int:
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return None

    def key(self, token: Token) -> Any:
        return self.keys[token.patient_id]

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return 0

    def __repr__(self) -> str:
        return "<KeyedBy>"


class Unordered:
    """A key whose comparisons raise."""

    def __lt__(self, other: object) -> bool:
        raise ValueError("no order")


def called(alloc: Allocator) -> str | None:
    """The patient D1 calls next, or None."""
    token = alloc.call_next("D1")
    return None if token is None else token.patient_id


def keyed_day(clock: Clock, keys: dict[str, object]) -> tuple[Allocator, list[Event]]:
    """D1 with one slot; A and B booked and present, C booked: A's and C's keys are given."""
    alloc = Allocator(policies=Policies(ordering=KeyedBy(keys)), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 5))
    for patient in ("A", "B", "C"):
        alloc.book(patient, "D1", source=Source.ONLINE, checked_in=patient != "C")
    events: list[Event] = []
    alloc.subscribe(events.append)
    return alloc, events


@pytest.mark.parametrize(
    "bad",
    [math.nan, (0, math.nan), None, Unordered(), [1], 1.5 + 0j],
    ids=["nan", "nan-in-tuple", "none", "unordered", "list", "complex"],
)
def test_a_key_that_is_not_a_total_order_is_refused(clock: Clock, bad: object) -> None:
    """Issue: "A user ordering whose key() returns NaN silently corrupts a slot's index.
    Later calls raise a raw ValueError or KeyError." The rule (OrderingPolicy): a key is an
    int, a float other than NaN, a str, a datetime, a timedelta, or a tuple of these;
    anything else is refused with InvalidArgumentError naming the policy and the value, and
    nothing changes."""
    keys: dict[str, object] = {"A": 2.0, "B": 1.0, "C": bad}
    alloc, events = keyed_day(clock, keys)
    before = observe(alloc, events)
    with pytest.raises(InvalidArgumentError, match=r"policy <KeyedBy>: key\('D1-003'\)") as error:
        alloc.check_in("D1-003")
    assert repr(bad) in str(error.value)
    assert observe(alloc, events) == before
    alloc.check_invariants()
    # The day goes on: the index is whole, every later call answers.
    alloc.cancel("D1-003")
    clock.now = at(9)
    assert [called(alloc), called(alloc)] == ["B", "A"]
    alloc.check_invariants()


def test_keys_of_the_allowed_kinds_order_as_their_plain_values(clock: Clock) -> None:
    """A subclass of int or str counts as its plain value (an overridden comparison never
    reaches the index), and aware datetimes in different zones compare as instants."""

    class Label(str):
        def __lt__(self, other: object) -> bool:
            raise ValueError("no order")

    india = timezone(timedelta(hours=5, minutes=30))
    keys: dict[str, object] = {
        "A": (Priority.PAID, datetime(2026, 11, 25, 9, tzinfo=india), Label("a")),  # 03:30 UTC
        "B": (1, datetime(2026, 11, 25, 4, tzinfo=timezone.utc), "b"),
        "C": (True, datetime(2026, 11, 25, 3, 30, tzinfo=timezone.utc), Label("c")),
    }
    alloc, _ = keyed_day(clock, keys)
    alloc.check_in("D1-003")
    clock.now = at(9)
    assert [called(alloc) for _ in range(3)] == ["A", "C", "B"]
    alloc.check_invariants()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("a", 1.0),
        (1, "a"),
        ((1, "a"), (1, 2)),
        (datetime(2026, 11, 25, 9), datetime(2026, 11, 25, 9, tzinfo=timezone.utc)),
        (timedelta(minutes=3), 3),
    ],
    ids=["str-float", "int-str", "tuples", "naive-aware", "timedelta-int"],
)
def test_keys_that_do_not_compare_with_each_other_are_refused(
    clock: Clock, first: object, second: object
) -> None:
    """Issue: "A user ordering whose key() returns keys that cannot be compared silently
    corrupts a slot's index, and a failed cancel leaves half its changes." The rule: the
    keys of the tokens checked in to one slot at one level must compare with each other; a
    token whose key does not compare with those already filed is refused with
    InvalidArgumentError naming the policy and the key, and nothing changes."""
    alloc, events = keyed_day(clock, {"A": first, "B": first, "C": second})
    before = observe(alloc, events)
    with pytest.raises(InvalidArgumentError, match=r"policy <KeyedBy>: key\('D1-003'\).*slot 'S'"):
        alloc.check_in("D1-003")
    assert observe(alloc, events) == before
    alloc.check_invariants()
    alloc.cancel("D1-001")
    clock.now = at(9)
    assert called(alloc) == "B"
    assert alloc.call_next("D1") is None  # C has not checked in
    alloc.check_invariants()


def test_a_key_that_does_not_fit_its_new_level_is_refused_each_time(clock: Clock) -> None:
    """A token whose level changes into a level holding keys its own does not compare with
    is refused when the change comes due, by every call that brings the slot up to date,
    and nothing changes: never a raw TypeError, never a token lost from the index."""

    class Rising(KeyedBy):
        """Standard patients are called with the paid ones from 09:30."""

        def level(self, token: Token, now: datetime) -> int:
            if token.priority is Priority.STANDARD and now >= at(9, 30):
                return int(Priority.PAID)
            return int(token.priority)

        def next_change(self, token: Token, now: datetime) -> datetime | None:
            if token.priority is Priority.STANDARD and now < at(9, 30):
                return at(9, 30)
            return None

    alloc = Allocator(policies=Policies(ordering=Rising({"P": 1, "W": "w"})), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 5))
    alloc.book("P", "D1", source=Source.PAID, checked_in=True)
    alloc.book("W", "D1", source=Source.WALK_IN)
    events: list[Event] = []
    alloc.subscribe(events.append)
    clock.now = at(9, 30)
    before = observe_quietly(alloc, events)
    for call in (
        lambda: alloc.queue("S"),
        lambda: alloc.position("D1-002"),
        lambda: alloc.estimated_start("D1-002"),
        lambda: alloc.call_next("D1"),
    ):
        with pytest.raises(InvalidArgumentError, match=r"policy <KeyedBy>: key\('D1-002'\)"):
            call()
        assert observe_quietly(alloc, events) == before
        alloc.check_invariants()
    # Once the paid patient has gone, the level is free for W's key.
    alloc.cancel("D1-001")
    assert [t.patient_id for t in alloc.queue("S")] == ["W"]
    assert called(alloc) == "W"
    alloc.check_invariants()


def observe_quietly(alloc: Allocator, events: list[Event]) -> object:
    """What :func:`observe` sees, without the reads that bring a slot's levels up to date."""
    return alloc.snapshot(), alloc.version, len(events)


def test_admits_always_true_cannot_overfill_a_slot(clock: Clock) -> None:
    """A capacity policy whose ``admits`` always says yes cannot put more tokens in a slot
    than its own ``limit`` allows."""

    class Yes:
        def limit(self, capacity: int) -> int:
            return capacity

        def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
            return True

    alloc = Allocator(policies=Policies(capacity=Yes(), on_full=OnFull.WAITLIST), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    tokens = [alloc.book(f"P{i}", "D1", "S", source=Source.ONLINE) for i in range(4)]
    assert [t.slot_id for t in tokens] == ["S", "S", None, None]
    alloc.check_invariants()


def test_an_ordering_that_does_not_advance_is_refused(clock: Clock) -> None:
    """Issue: "An ordering whose next_change returns now hangs the allocator"; it is refused
    with an error instead, and the call changes nothing."""

    class Stuck:
        lexicographic = True

        def level(self, token: Token, now: datetime) -> int:
            return int(token.priority)

        def next_change(self, token: Token, now: datetime) -> datetime | None:
            return now

        def key(self, token: Token) -> int:
            return token.seq

        def pick(self, heads: Sequence[Token], now: datetime) -> int:
            return 0

    alloc = Allocator(policies=Policies(ordering=Stuck()), clock=clock)
    alloc.add_doctor(DOCTORS[0])
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    version = alloc.version
    with pytest.raises(InvalidArgumentError, match="next_change"):
        alloc.book("P", "D1")
    assert alloc.tokens() == []
    assert alloc.version == version
    alloc.check_invariants()


@pytest.mark.parametrize(
    "clock_value", [datetime, lambda: None, lambda: 1 / 0], ids=["class", "none", "raises"]
)
def test_a_bad_clock_is_refused_cleanly(clock_value: Callable[[], Any]) -> None:
    """Issue: "A clock that returns a non-datetime (for example the datetime class itself)
    crashes with TypeError; refuse it with a clear OPDError"."""
    alloc = Allocator(clock=clock_value)
    with pytest.raises(OPDError, match="clock"):
        alloc.add_doctor(DOCTORS[0])
    assert alloc.doctors() == []


class RandomFault(Fault):
    """Spoils each answer with probability ``rate``, drawn from a seeded generator."""

    def __init__(self, seed: int, rate: float) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rate = rate
        self.armed = False

    def answer(self, name: str, value: Any, garbage: Any) -> Any:
        self.calls += 1
        if not self.armed or self.rng.random() >= self.rate:
            return value
        self.spoiled = name
        if self.rng.random() < 0.5:
            raise Sabotage(name)
        return garbage


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "book",
                "check_in",
                "call_next",
                "cancel",
                "no_show",
                "missed_call",
                "reschedule",
                "retriage",
                "close_slot",
                "mark_unavailable",
                "mark_available",
                "resize",
                "delay",
                "queue",
                "advance",
            ]
        ),
        st.integers(0, 10**6),
    ),
    max_size=40,
)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(operations=OPERATIONS, seed=st.integers(0, 2**16))
def test_random_days_with_failing_policies_keep_every_promise(
    operations: list[tuple[str, int]], seed: int
) -> None:
    """Random days under user policies that now and then raise or answer nonsense: every
    call either succeeds or raises and changes nothing, and no token is ever lost."""
    fault = RandomFault(seed, rate=0.05)
    alloc, events = new_day(fault, "aging" if seed % 2 else "accumulating")
    clock = alloc.clock
    assert isinstance(clock, Clock)
    slots = [s.id for s in alloc.slots()]
    doctors = [d.id for d in alloc.doctors()]
    issued = len(alloc.tokens())
    for name, pick in operations:
        tokens = [t.id for t in alloc.tokens()]
        token = tokens[pick % len(tokens)]
        slot = slots[pick % len(slots)]
        doctor = doctors[pick % len(doctors)]
        before = observe(alloc, events)
        fault.armed = True
        try:
            if name == "book":
                alloc.book(f"N{pick}", doctor, source=list(Source)[pick % 4])
            elif name == "advance":
                clock.advance(pick % 25)
            elif name in ("check_in", "cancel", "no_show", "missed_call"):
                getattr(alloc, name)(token)
            elif name == "call_next":
                alloc.call_next(doctor)
            elif name == "reschedule":
                alloc.reschedule(token, slot)
            elif name == "retriage":
                alloc.retriage(token, list(Priority)[pick % 4])
            elif name in ("close_slot", "queue"):
                getattr(alloc, name)(slot)
            elif name in ("mark_unavailable", "mark_available"):
                getattr(alloc, name)(doctor)
            elif name == "resize":
                alloc.resize(slot, pick % 5)
            else:
                alloc.delay(doctor, pick % 20)
        except (OPDError, Sabotage):
            fault.armed = False
            assert observe(alloc, events) == before, (name, fault.spoiled)
        fault.armed = False
        alloc.check_invariants()
        assert len(alloc.tokens()) >= issued
        issued = len(alloc.tokens())
