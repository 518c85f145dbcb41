"""The policies: constructors, validation, the decisions each makes, and a policy of our own."""

from __future__ import annotations

import math
import pickle
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Build, Clock, at, ids
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    CapacityPolicy,
    EmergencyOverride,
    EmergencyPolicy,
    HardLimit,
    InvalidArgumentError,
    OnDelay,
    OnFull,
    OrderingPolicy,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    ReallocationPolicy,
    Reserve,
    Slot,
    SlotFullError,
    Source,
    SourceQuota,
    StrictPriority,
    Token,
    TokenStatus,
)
from opd_engine.policies import shipped_filing

ONLINE = Source.ONLINE
WALK_IN = Source.WALK_IN

# Wrong-typed arguments on purpose: construct through untyped aliases.
UntypedPolicies: Any = Policies
UntypedAging: Any = Aging
UntypedAccumulating: Any = AccumulatingPriority
UntypedOverbooking: Any = Overbooking
UntypedQuota: Any = SourceQuota
UntypedOverride: Any = EmergencyOverride
UntypedReallocation: Any = Reallocation


def token(
    priority: Priority = Priority.STANDARD,
    *,
    seq: int = 1,
    checked_in_at: datetime | None = None,
) -> Token:
    return Token(
        id=f"D1-{seq:03d}",
        patient_id=f"P{seq}",
        doctor_id="D1",
        slot_id="D1@09",
        priority=priority,
        source=ONLINE,
        seq=seq,
        number=seq,
        status=TokenStatus.BOOKED if checked_in_at is None else TokenStatus.CHECKED_IN,
        booked_at=at(8),
        checked_in_at=checked_in_at,
    )


# ----------------------------------------------------------------------------- typing


def test_shipped_policies_fit_their_protocols() -> None:
    """mypy proves the assignments; the runtime checks agree."""
    hard: CapacityPolicy = HardLimit()
    overbooking: CapacityPolicy = Overbooking(0.1)
    quota: CapacityPolicy = SourceQuota({ONLINE: 2})
    reserve: CapacityPolicy = Reserve({WALK_IN: 2})
    emergency: EmergencyPolicy = EmergencyOverride()
    reallocation: ReallocationPolicy = Reallocation()
    strict: OrderingPolicy = StrictPriority()
    aging: OrderingPolicy = Aging()
    accumulating: OrderingPolicy = AccumulatingPriority()
    assert all(isinstance(p, CapacityPolicy) for p in (hard, overbooking, quota, reserve))
    assert isinstance(emergency, EmergencyPolicy)
    assert isinstance(reallocation, ReallocationPolicy)
    assert all(isinstance(p, OrderingPolicy) for p in (strict, aging, accumulating))
    assert not isinstance(hard, OrderingPolicy)


# ----------------------------------------------------------------------------- Policies


def test_policies_defaults() -> None:
    policies = Policies()
    assert policies.capacity == HardLimit()
    assert policies.emergency == EmergencyOverride(max_overflow=None)
    assert policies.reallocation == Reallocation(pull_forward=True, max_moves=2)
    assert policies.ordering == Aging(step=timedelta(minutes=30), ceiling=Priority.FOLLOW_UP)
    assert policies.on_full is OnFull.REJECT
    assert policies.no_show_grace == timedelta(minutes=15)
    assert policies.on_delay is OnDelay.SHIFT


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("capacity", None),
        ("capacity", 10),
        ("capacity", Aging()),
        ("emergency", 2),
        ("emergency", HardLimit()),
        ("reallocation", True),
        ("reallocation", EmergencyOverride()),
        ("ordering", "aging"),
        ("ordering", HardLimit()),
        ("on_full", "REJECT"),
        ("on_full", None),
        ("no_show_grace", 15),
        ("no_show_grace", timedelta(minutes=-1)),
        ("on_delay", "shrink"),
        ("on_delay", OnFull.WAITLIST),
    ],
)
def test_policies_validation(argument: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{argument} must"):
        UntypedPolicies(**{argument: value})


def test_policies_are_frozen() -> None:
    policies = Policies()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policies.on_full = OnFull.WAITLIST  # type: ignore[misc]
    assert Policies(no_show_grace=timedelta(0)).no_show_grace == timedelta(0)


# ----------------------------------------------------------------------------- capacity


def test_hard_limit(alloc: Allocator) -> None:
    policy = HardLimit()
    assert [policy.limit(c) for c in (0, 1, 10)] == [0, 1, 10]
    slot = alloc.slot("D1@09")
    assert policy.admits(slot, ONLINE, Priority.STANDARD)
    for i in range(3):
        alloc.book(f"P{i}", "D1", "D1@09")
    assert not policy.admits(slot, Source.PAID, Priority.PAID)


@pytest.mark.parametrize(
    ("rate", "capacity", "limit"),
    [
        (0.3, 7, 10),  # 7 / 0.7 is exactly 10: no floating-point shortfall
        (0.2, 10, 12),
        (0.25, 3, 4),
        (0.1, 10, 11),
        (0, 5, 5),
        (0.5, 0, 0),
        (0.9, 1, 10),
    ],
)
def test_overbooking_limit(rate: float, capacity: int, limit: int) -> None:
    """`Overbooking(no_show_rate)` (admits `floor(capacity / (1 - no_show_rate))`)."""
    assert Overbooking(rate).limit(capacity) == limit


def test_overbooking_admits_up_to_its_limit(build: Build) -> None:
    alloc = build(Policies(capacity=Overbooking(0.25)))
    slots = [alloc.book(f"P{i}", "D1", source=ONLINE).slot_id for i in range(5)]
    assert slots == ["D1@09"] * 4 + ["D1@10"]
    with pytest.raises(SlotFullError, match=r"\(4 of 4\)"):
        alloc.book("X", "D1", "D1@09")
    alloc.check_invariants()


@pytest.mark.parametrize("rate", [1, 1.0, -0.1, 1.5, "0.2", True, None, math.nan, math.inf])
def test_overbooking_validation(rate: object) -> None:
    with pytest.raises(InvalidArgumentError, match="no_show_rate"):
        UntypedOverbooking(rate)


def test_source_quota_caps_a_channel(build: Build) -> None:
    """`SourceQuota({Source.ONLINE: 6, ...})` (caps per channel, on top of the hard limit)."""
    alloc = build(Policies(capacity=SourceQuota({ONLINE: 1, WALK_IN: 5})))
    assert alloc.book("A", "D1", source=ONLINE).slot_id == "D1@09"
    assert alloc.book("B", "D1", source=ONLINE).slot_id == "D1@10"
    walk_ins = [alloc.book(f"W{i}", "D1").slot_id for i in range(3)]
    assert walk_ins == ["D1@09", "D1@09", "D1@10"]  # the hard limit still holds
    assert alloc.book("C", "D1", source=Source.PAID).slot_id == "D1@10"  # no quota: capacity
    slot = alloc.slot("D1@09")
    assert (slot.held_by(ONLINE), slot.held_by(WALK_IN)) == (1, 2)
    alloc.check_invariants()


def test_source_quota_admits(alloc: Allocator) -> None:
    policy = SourceQuota({ONLINE: 1, Source.PAID: 0})
    assert policy.limit(3) == 3
    slot = alloc.slot("D1@09")
    assert policy.admits(slot, ONLINE, Priority.STANDARD)
    assert not policy.admits(slot, Source.PAID, Priority.PAID)
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    assert not policy.admits(slot, ONLINE, Priority.STANDARD)
    assert policy.admits(slot, WALK_IN, Priority.STANDARD)


def test_source_quota_refill_skips_what_it_cannot_admit(build: Build) -> None:
    alloc = build(Policies(capacity=SourceQuota({ONLINE: 1}), on_full=OnFull.WAITLIST))
    online = [alloc.book(f"O{i}", "D1", source=ONLINE) for i in range(3)]
    assert [t.slot_id for t in online] == ["D1@09", "D1@10", "D1@11"]
    walk_ins = [alloc.book(f"W{i}", "D1") for i in range(6)]
    queued_online = alloc.book("X", "D1", source=ONLINE)
    queued_walk_in = alloc.book("Y", "D1")
    assert ids(alloc.waitlist("D1")) == [queued_online.id, queued_walk_in.id]
    alloc.cancel(walk_ins[0].id)  # D1@09 already holds its one ONLINE token
    assert alloc.token(queued_walk_in.id).slot_id == "D1@09"
    assert alloc.token(queued_online.id).status is TokenStatus.WAITLISTED
    alloc.cancel(online[0].id)
    assert alloc.token(queued_online.id).slot_id == "D1@09"
    alloc.check_invariants()


def test_source_quota_pull_forward_skips_what_it_cannot_admit(build: Build) -> None:
    alloc = build(Policies(capacity=SourceQuota({ONLINE: 1})))
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    first = alloc.book("A", "D1", "D1@09")
    alloc.book("B", "D1", "D1@09")
    online = alloc.book("O2", "D1", "D1@10", source=ONLINE, checked_in=True)
    walk_in = alloc.book("C", "D1", "D1@11")
    alloc.cancel(first.id)
    assert alloc.token(online.id).slot_id == "D1@10"
    assert alloc.token(walk_in.id).slot_id == "D1@09"
    alloc.check_invariants()


@pytest.mark.parametrize(
    ("quotas", "match"),
    [
        ({"ONLINE": 1}, "quotas key"),
        ({Priority.PAID: 1}, "quotas key"),
        ({ONLINE: -1}, "quotas"),
        ({ONLINE: 1.5}, "quotas"),
        ({ONLINE: True}, "quotas"),
        ([(ONLINE, 1)], "quotas"),
        (None, "quotas"),
    ],
)
def test_source_quota_validation(quotas: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        UntypedQuota(quotas)


def test_source_quota_is_a_frozen_value() -> None:
    given = {ONLINE: 2}
    policy = SourceQuota(given)
    given[ONLINE] = 0  # the caller's dict is not shared
    assert policy.quotas[ONLINE] == 2
    assert policy == SourceQuota({ONLINE: 2})
    quotas: Any = policy.quotas
    with pytest.raises(TypeError):
        quotas[ONLINE] = 0
    assert policy.quotas[ONLINE] == 2


class ReserveLastSeat:
    """A capacity policy of our own: the last place of every slot is kept for paid and
    follow-up patients."""

    def limit(self, capacity: int) -> int:
        return capacity

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        seats = slot.capacity if priority <= Priority.FOLLOW_UP else slot.capacity - 1
        return slot.occupancy < seats


def test_a_user_defined_capacity_policy_plugs_in(build: Build) -> None:
    """Each policy kind is a `typing.Protocol`; ... a user's own class that satisfies the
    Protocol plugs in the same way."""
    policy: CapacityPolicy = ReserveLastSeat()
    alloc = build(Policies(capacity=policy))
    standard = [alloc.book(f"S{i}", "D1", source=ONLINE).slot_id for i in range(3)]
    assert standard == ["D1@09", "D1@09", "D1@10"]
    with pytest.raises(SlotFullError):
        alloc.book("X", "D1", "D1@09")
    assert alloc.book("F", "D1", source=Source.FOLLOW_UP).slot_id == "D1@09"
    assert alloc.book("P", "D1", source=Source.PAID).slot_id == "D1@10"
    assert alloc.slot("D1@09").free == 0
    alloc.check_invariants()


# ----------------------------------------------------------------------------- emergency


def test_emergency_override(alloc: Allocator) -> None:
    slot = alloc.slot("D1@09")
    assert EmergencyOverride().max_overflow is None
    assert EmergencyOverride().overflow_limit(slot) is None
    assert EmergencyOverride(max_overflow=2).overflow_limit(slot) == 2
    assert EmergencyOverride(0).overflow_limit(slot) == 0


@pytest.mark.parametrize("value", [-1, 1.5, "2", True])
def test_emergency_override_validation(value: object) -> None:
    with pytest.raises(InvalidArgumentError, match="max_overflow"):
        UntypedOverride(max_overflow=value)


# ----------------------------------------------------------------------------- reallocation


def test_reallocation() -> None:
    policy = Reallocation(pull_forward=False, max_moves=0)
    assert (policy.pull_forward, policy.max_moves) == (False, 0)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.max_moves = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argument", "value"),
    [("pull_forward", 1), ("pull_forward", None), ("max_moves", -1), ("max_moves", "2")],
)
def test_reallocation_validation(argument: str, value: object) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{argument} must"):
        UntypedReallocation(**{argument: value})


# ----------------------------------------------------------------------------- ordering


def test_strict_priority() -> None:
    policy = StrictPriority()
    waiting = token(Priority.FOLLOW_UP, seq=4, checked_in_at=at(9))
    assert policy.lexicographic
    assert policy.level(waiting, at(23)) == int(Priority.FOLLOW_UP)
    assert policy.next_change(waiting, at(9)) is None
    assert policy.key(waiting) == 4
    assert policy.pick([waiting, token(seq=1, checked_in_at=at(8))], at(23)) == 0


STANDARD_AT_NINE = token(Priority.STANDARD, checked_in_at=at(9))


@pytest.mark.parametrize(
    ("ceiling", "now", "level", "change"),
    [
        (Priority.FOLLOW_UP, at(9), 3, at(9, 30)),
        (Priority.FOLLOW_UP, at(9, 30) - timedelta(microseconds=1), 3, at(9, 30)),
        (Priority.FOLLOW_UP, at(9, 30), 2, None),
        (Priority.FOLLOW_UP, at(15), 2, None),
        (Priority.PAID, at(9, 30), 2, at(10)),
        (Priority.PAID, at(9, 59), 2, at(10)),
        (Priority.PAID, at(10), 1, None),
        (Priority.PAID, at(17), 1, None),
        (Priority.STANDARD, at(17), 3, None),
        (Priority.FOLLOW_UP, at(8), 3, at(9, 30)),  # a clock before check-in: no aging
    ],
)
def test_aging_level_and_next_change(
    ceiling: Priority, now: datetime, level: int, change: datetime | None
) -> None:
    """`Aging(step=timedelta(minutes=30), ceiling=Priority.FOLLOW_UP)` ... a checked-in token
    rises one level per `step` waited since check-in, never above `ceiling`."""
    policy = Aging(ceiling=ceiling)
    assert policy.level(STANDARD_AT_NINE, now) == level
    assert policy.next_change(STANDARD_AT_NINE, now) == change


def test_aging_with_a_short_step() -> None:
    policy = Aging(step=timedelta(minutes=10), ceiling=Priority.PAID)
    assert [policy.level(STANDARD_AT_NINE, at(9, m)) for m in (9, 10, 19, 20, 45)] == [
        3,
        2,
        2,
        1,
        1,
    ]


@pytest.mark.parametrize("priority", [Priority.EMERGENCY, Priority.PAID, Priority.FOLLOW_UP])
def test_aging_leaves_levels_at_or_above_the_ceiling(priority: Priority) -> None:
    policy = Aging()
    waiting = token(priority, checked_in_at=at(9))
    assert policy.level(waiting, at(12)) == priority
    assert policy.next_change(waiting, at(9)) is None


def test_aging_only_counts_time_since_check_in() -> None:
    policy = Aging()
    absent = token(Priority.STANDARD)
    assert policy.level(absent, at(12)) == 3
    assert policy.next_change(absent, at(12)) is None
    assert policy.lexicographic
    assert policy.key(STANDARD_AT_NINE) == 1
    assert policy.pick([STANDARD_AT_NINE], at(9)) == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"ceiling": Priority.EMERGENCY}, "ceiling"),
        ({"ceiling": 2}, "ceiling"),
        ({"ceiling": "FOLLOW_UP"}, "ceiling"),
        ({"step": timedelta(0)}, "step"),
        ({"step": timedelta(minutes=-30)}, "step"),
        ({"step": 30}, "step"),
    ],
)
def test_aging_validation(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{argument} must"):
        UntypedAging(**kwargs)


# Zones for the aging reference: daylight saving changes of an hour, of half an hour (Lord
# Howe) and none (Kolkata), beside fixed offsets and UTC.
ZONES = [ZoneInfo(name) for name in ("America/New_York", "Australia/Lord_Howe", "Asia/Kolkata")]
#: Changes of offset in 2026, as (zone, wall time): New York's hour, Lord Howe's half hour.
DST_CHANGES = [(ZONES[0], datetime(2026, 3, 8, 2)), (ZONES[0], datetime(2026, 11, 1, 2))]
DST_CHANGES += [(ZONES[1], datetime(2026, 4, 5, 2)), (ZONES[1], datetime(2026, 10, 4, 2))]


def reference_filing(policy: Aging, token: Token, now: datetime) -> tuple[int, datetime | None]:
    """Aging as its docstring states it, in datetime arithmetic: ``max(ceiling, priority -
    floor(waited / step))`` below the ceiling, the wait in UTC for aware datetimes, and the
    next change ``step`` after the last one."""
    priority, ceiling = int(token.priority), int(policy.ceiling)
    arrived = token.checked_in_at
    if priority <= ceiling or arrived is None:
        return priority, None
    if now.tzinfo is not None:
        arrived, now = arrived.astimezone(timezone.utc), now.astimezone(timezone.utc)
    steps = max((now - arrived) // policy.step, 0)
    level = max(ceiling, priority - steps)
    if level == ceiling:
        return level, None
    return level, arrived + (steps + 1) * policy.step


@st.composite
def aging_cases(draw: st.DrawFn) -> tuple[Aging, Token, datetime]:
    """An Aging, a token and a clock reading: naive, or aware in a fixed offset or a zone
    (the two datetimes sharing a tzinfo or not, either fold), often at an exact step from
    check-in or a microsecond either side of it."""
    step = draw(
        st.one_of(
            st.sampled_from([timedelta(minutes=30), timedelta(minutes=1), timedelta(days=1)]),
            st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=1)),
        )
    )
    policy = Aging(
        step=step,
        ceiling=draw(st.sampled_from([p for p in Priority if p is not Priority.EMERGENCY])),
    )
    zone = st.one_of(
        st.sampled_from([timezone.utc, *ZONES]),
        st.builds(
            timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23))
        ),
    )
    kind = draw(st.sampled_from(["naive", "aware", "across a change of offset"]))
    if kind == "across a change of offset":  # checked in at most 3 hours before it
        arrived_zone, change = draw(st.sampled_from(DST_CHANGES))
        arrived = change - draw(st.timedeltas(timedelta(0), timedelta(hours=3)))
        arrived = arrived.replace(tzinfo=arrived_zone, fold=draw(st.integers(0, 1)))
    else:
        arrived = draw(st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1)))
        if kind == "aware":
            arrived = arrived.replace(tzinfo=draw(zone), fold=draw(st.integers(0, 1)))
    if draw(st.booleans()):  # at a step's edge, or a microsecond either side
        edge = draw(st.integers(-1, 4)) * step
        waited = edge + draw(st.sampled_from([-1, 0, 1])) * timedelta(microseconds=1)
    else:
        waited = draw(st.timedeltas(-timedelta(days=1), timedelta(days=5)))
    if kind == "naive":
        now = arrived + waited
    else:  # the wait in real time, read in the clock's zone (mostly the same tzinfo)
        now_zone = draw(st.sampled_from([arrived.tzinfo] * 3 + [None]))
        now = (arrived.astimezone(timezone.utc) + waited).astimezone(now_zone or draw(zone))
        if draw(st.booleans()):  # a wall clock read in the other fold, where there is one
            now = now.replace(fold=1 - now.fold)
    priority = draw(st.sampled_from(Priority))
    checked_in = (
        token(priority, checked_in_at=arrived) if draw(st.integers(0, 9)) else token(priority)
    )
    return policy, checked_in, now


@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
@given(aging_cases())
def test_aging_agrees_with_its_definition_in_datetime_arithmetic(
    case: tuple[Aging, Token, datetime],
) -> None:
    """Aging's levels and next changes, compared by value, zone and fold with the docstring's
    formula evaluated in plain datetime arithmetic."""
    policy, waiting, now = case
    expected_level, expected_change = reference_filing(policy, waiting, now)
    filing = shipped_filing(policy)
    assert filing is not None
    for level, change in [
        (policy.level(waiting, now), policy.next_change(waiting, now)),
        filing(waiting, now),
    ]:
        assert type(level) is int
        assert level == expected_level
        assert change == expected_change
        if change is not None and expected_change is not None:
            assert (change.replace(tzinfo=None), change.tzinfo, change.fold) == (
                expected_change.replace(tzinfo=None),
                expected_change.tzinfo,
                expected_change.fold,
            )


def test_aging_derives_its_table_from_its_fields() -> None:
    """The precomputed rises follow ``attrs.evolve`` and pickling, and stay out of the
    value's repr and equality."""
    policy = Aging()
    assert repr(policy) == (
        "Aging(step=datetime.timedelta(seconds=1800), ceiling=<Priority.FOLLOW_UP: 2>)"
    )
    shorter = attrs.evolve(policy, step=timedelta(minutes=10), ceiling=Priority.PAID)
    assert shorter == Aging(step=timedelta(minutes=10), ceiling=Priority.PAID)
    assert shorter.level(STANDARD_AT_NINE, at(9, 25)) == 1
    assert pickle.loads(pickle.dumps(shorter)).next_change(STANDARD_AT_NINE, at(9, 5)) == at(9, 10)


def test_shipped_filing_serves_the_shipped_orderings_keyed_by_seq() -> None:
    """StrictPriority and Aging answer level and next change at once; any other ordering is
    asked through the Protocol."""
    strict = shipped_filing(StrictPriority())
    assert strict is not None
    assert strict(STANDARD_AT_NINE, at(12)) == (3, None)
    aging = shipped_filing(Aging())
    assert aging is not None
    assert aging(STANDARD_AT_NINE, at(9, 10)) == (3, at(9, 30))
    assert shipped_filing(AccumulatingPriority()) is None

    class Mine:
        lexicographic = True

        def level(self, token: Token, now: datetime) -> int:
            return 0

        def next_change(self, token: Token, now: datetime) -> datetime | None:
            return None

        def key(self, token: Token) -> int:
            return token.seq

        def pick(self, heads: object, now: datetime) -> int:
            return 0

    assert shipped_filing(Mine()) is None


def test_accumulating_priority_defaults() -> None:
    policy = AccumulatingPriority()
    assert dict(policy.rates) == {
        Priority.EMERGENCY: 8.0,
        Priority.PAID: 4.0,
        Priority.FOLLOW_UP: 2.0,
        Priority.STANDARD: 1.0,
    }
    assert not policy.lexicographic
    waiting = token(Priority.PAID, seq=3, checked_in_at=at(9))
    assert policy.level(waiting, at(10)) == int(Priority.PAID)
    assert policy.next_change(waiting, at(10)) is None
    assert policy.key(waiting) == (at(9), 3)


def test_accumulating_priority_picks_the_largest_rate_times_wait() -> None:
    """[AccumulatingPriority]: the checked-in token with the largest `rate * minutes waited`
    is called."""
    policy = AccumulatingPriority()
    heads = [
        token(Priority.EMERGENCY, seq=9, checked_in_at=at(9, 29)),  # 8 * 1 = 8
        token(Priority.PAID, seq=7, checked_in_at=at(9, 25)),  # 4 * 5 = 20
        token(Priority.STANDARD, seq=1, checked_in_at=at(9)),  # 1 * 30 = 30
    ]
    assert policy.pick(heads, at(9, 30)) == 2
    assert policy.pick(heads, at(9, 40)) == 0  # 8 * 11 = 88, 4 * 15 = 60, 40
    assert policy.pick(heads, at(9, 29)) == 2  # 0, 16, 29


def test_accumulating_priority_breaks_ties_by_seq() -> None:
    policy = AccumulatingPriority(
        {
            Priority.EMERGENCY: 8,
            Priority.PAID: 2,
            Priority.FOLLOW_UP: 2,
            Priority.STANDARD: 1,
        }
    )
    assert policy.rates[Priority.EMERGENCY] == 8.0
    paid_early = token(Priority.PAID, seq=2, checked_in_at=at(9, 10))  # 2 * 10 = 20
    standard = token(Priority.STANDARD, seq=3, checked_in_at=at(9))  # 1 * 20 = 20
    paid_late = token(Priority.PAID, seq=9, checked_in_at=at(9, 10))
    assert policy.pick([paid_early, standard], at(9, 20)) == 0
    assert policy.pick([paid_late, standard], at(9, 20)) == 1
    just_arrived = token(Priority.STANDARD, seq=4, checked_in_at=at(9, 10))
    assert policy.pick([paid_late, just_arrived], at(9, 10)) == 1  # nobody waited: 0 == 0


ALL_RATES = dict.fromkeys(Priority, 1.0)
WRONG_KEY = dict.fromkeys([*Priority, 5], 1.0)


@pytest.mark.parametrize(
    ("rates", "match"),
    [
        ({p: r for p, r in ALL_RATES.items() if p is not Priority.EMERGENCY}, "EMERGENCY"),
        ({**ALL_RATES, Priority.PAID: 0}, "PAID"),
        ({**ALL_RATES, Priority.PAID: -1.0}, "PAID"),
        ({**ALL_RATES, Priority.PAID: True}, "PAID"),
        ({**ALL_RATES, Priority.PAID: math.nan}, "PAID"),
        ({**ALL_RATES, Priority.PAID: math.inf}, "PAID"),
        ({**ALL_RATES, Priority.PAID: "4"}, "PAID"),
        (WRONG_KEY, "rates key"),
        ([1.0, 2.0, 3.0, 4.0], "rates"),
    ],
)
def test_accumulating_priority_validation(rates: object, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        UntypedAccumulating(rates)


def test_accumulating_priority_rates_are_frozen() -> None:
    policy = AccumulatingPriority()
    rates: Any = policy.rates
    with pytest.raises(TypeError):
        rates[Priority.STANDARD] = 100.0
    assert policy.rates[Priority.STANDARD] == 1.0


def test_policies_pickle_and_hash() -> None:
    """Policies cross process boundaries (simulation replications) and can be dict keys."""
    policies = Policies(
        capacity=SourceQuota({ONLINE: 2}),
        ordering=AccumulatingPriority(),
        emergency=EmergencyOverride(max_overflow=1),
    )
    copy = pickle.loads(pickle.dumps(policies))
    assert copy == policies
    assert copy.capacity.quotas == {ONLINE: 2}
    assert {policies: "a"}[copy] == "a"
    assert hash(SourceQuota({ONLINE: 2})) != hash(SourceQuota({ONLINE: 3}))


class SameKey:
    """A user's ordering that ranks every checked-in patient alike: one level, one key."""

    lexicographic = True

    def level(self, token: Token, now: datetime) -> int:
        return 0

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return None

    def key(self, token: Token) -> int:
        return 0

    def pick(self, heads: Any, now: datetime) -> int:
        return 0


def test_equal_keys_under_a_users_ordering_go_first_come_first_served(
    build: Build, clock: Clock
) -> None:
    """Queues are ordered "first come first served within a level": under an ordering whose
    keys tie, checked-in patients are called by ``seq``, not by token id."""
    alloc = build(Policies(ordering=SameKey()))
    late = alloc.book("A", "D1", "D1@09", source=ONLINE)  # D1-001, booked, not here
    second = alloc.book("B", "D1", "D1@09")  # walk-ins: here at once
    third = alloc.book("C", "D1", "D1@09")
    clock.now = at(9, 30)
    alloc.no_show(late.id)
    late = alloc.check_in(late.id)  # a late arrival: a new seq, after B's and C's
    assert late.seq > third.seq
    assert late.id < second.id  # by id it would come first
    called = [alloc.call_next("D1") for _ in range(3)]
    assert [t.id for t in called if t is not None] == [second.id, third.id, late.id]
