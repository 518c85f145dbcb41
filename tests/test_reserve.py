"""Reserved places (DESIGN.md section 10): the ``Reserve`` capacity policy.

The contract's paragraph, quoted sentence by sentence in the tests below:

    **Reserved places.** ``Reserve(places, release_before=timedelta(minutes=30))``, a
    capacity policy: ``places`` maps a ``Source`` to a number of places in every slot kept
    for that channel (e.g. walk-ins), within the slot's capacity (where the places exceed a
    slot's capacity, the whole capacity is reserved; a negative number ->
    ``InvalidArgumentError``); the channel's own tokens in the slot use its reserve first;
    another channel's token is admitted only while the slot's occupancy stays below capacity
    minus the unused reserve, before ``slot.start - release_before``; from that instant on
    (inclusive), any channel may take any place.

The fixture's day (``conftest``): D1 and D2 in General Medicine, D3 in Cardiology, slots of
capacity 3 at 09:00, 10:00 and 11:00. Most tests start the clock at 07:00, before any
release (the default ``release_before`` releases ``D1@09`` at 08:30).
"""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import Build, Clock, at, ids
from opd_engine import (
    Allocator,
    Doctor,
    Event,
    InvalidArgumentError,
    OnFull,
    Policies,
    Priority,
    Reserve,
    Slot,
    SlotFullError,
    Source,
    StrictPriority,
    Token,
    TokenStatus,
)

ONLINE = Source.ONLINE
WALK_IN = Source.WALK_IN
PAID = Source.PAID
FOLLOW_UP = Source.FOLLOW_UP
STANDARD = Priority.STANDARD

UntypedReserve: Any = Reserve


def early(build: Build, clock: Clock, policy: Reserve, **changes: Any) -> Allocator:
    """The fixture's day under ``policy``, the clock at 07:00 (before every release)."""
    clock.now = at(7)
    return build(Policies(capacity=policy, **changes))


def held(alloc: Allocator, slot_id: str) -> dict[Source, int]:
    slot = alloc.slot(slot_id)
    return {source: slot.held_by(source) for source in Source if slot.held_by(source)}


# ----------------------------------------------------------------------------- the value


def test_the_default_release_is_thirty_minutes() -> None:
    """ "``Reserve(places, release_before=timedelta(minutes=30))``, a capacity policy"."""
    policy = Reserve({WALK_IN: 2})
    assert policy.release_before == timedelta(minutes=30)
    assert policy.places == {WALK_IN: 2}
    assert policy.limit(3) == 3  # who takes a place, not how many
    assert policy.limit(0) == 0


def test_places_are_kept_in_every_slot_for_the_channel(build: Build, clock: Clock) -> None:
    """ "``places`` maps a ``Source`` to a number of places in every slot kept for that
    channel (e.g. walk-ins)". Two of three places kept for walk-ins: each slot takes one
    online booking, then the online channel has no slot left; walk-ins still find two
    places in every slot."""
    alloc = early(build, clock, Reserve({WALK_IN: 2}))
    online = [alloc.book(f"O{i}", "D1", source=ONLINE).slot_id for i in range(3)]
    assert online == ["D1@09", "D1@10", "D1@11"]
    with pytest.raises(SlotFullError):
        alloc.book("O3", "D1", source=ONLINE)
    walk_ins = [alloc.book(f"W{i}", "D1", source=WALK_IN).slot_id for i in range(6)]
    assert walk_ins == ["D1@09", "D1@09", "D1@10", "D1@10", "D1@11", "D1@11"]
    assert [alloc.slot(f"D1@{h:02d}").occupancy for h in (9, 10, 11)] == [3, 3, 3]
    alloc.check_invariants()


def test_places_beyond_the_capacity_reserve_the_whole_slot(build: Build, clock: Clock) -> None:
    """ "within the slot's capacity (where the places exceed a slot's capacity, the whole
    capacity is reserved ...)". Five walk-in places in slots of three: no online booking
    fits anywhere before the release, walk-ins fill every place."""
    alloc = early(build, clock, Reserve({WALK_IN: 5}))
    with pytest.raises(SlotFullError) as refused:
        alloc.book("O", "D1", "D1@09", source=ONLINE)
    assert refused.value.alternatives == ()
    walk_ins = [alloc.book(f"W{i}", "D1").slot_id for i in range(4)]
    assert walk_ins == ["D1@09", "D1@09", "D1@09", "D1@10"]
    assert Reserve({WALK_IN: 5}).kept(3) == {WALK_IN: 3}
    alloc.check_invariants()


def test_places_beyond_the_capacity_are_cut_in_the_order_of_source() -> None:
    """The whole capacity is reserved, and no more: the channels keep their places in
    ``Source``'s declared order (ONLINE, WALK_IN, PAID, FOLLOW_UP), each its own number or
    what the channels before it left, whichever is smaller."""
    policy = Reserve({FOLLOW_UP: 1, PAID: 2, WALK_IN: 3})
    assert policy.kept(10) == {WALK_IN: 3, PAID: 2, FOLLOW_UP: 1}
    assert policy.kept(6) == {WALK_IN: 3, PAID: 2, FOLLOW_UP: 1}
    assert policy.kept(4) == {WALK_IN: 3, PAID: 1}  # 3 + 1 = 4
    assert policy.kept(3) == {WALK_IN: 3}
    assert policy.kept(2) == {WALK_IN: 2}
    assert policy.kept(0) == {}
    # The mapping's own order does not matter: equal values decide alike.
    assert Reserve({WALK_IN: 3, PAID: 2, FOLLOW_UP: 1}).kept(4) == policy.kept(4)
    assert Reserve({WALK_IN: 3, FOLLOW_UP: 1, PAID: 2}) == policy


@given(
    capacity=st.integers(0, 12),
    places=st.dictionaries(st.sampled_from(list(Source)), st.integers(0, 8)),
)
def test_the_kept_places_never_exceed_the_capacity(
    capacity: int, places: dict[Source, int]
) -> None:
    """Property: the kept places sum to ``min(capacity, sum of places)``, no channel keeps
    more than it asked for, and a channel is cut only once those before it took the rest."""
    kept = Reserve(places).kept(capacity)
    assert sum(kept.values()) == min(capacity, sum(places.values()))
    before = 0
    for source in Source:
        asked = places.get(source, 0)
        assert kept.get(source, 0) == min(asked, max(0, capacity - before))
        before += asked


@pytest.mark.parametrize(
    ("places", "message"),
    [
        ({WALK_IN: -1}, "places[Source.WALK_IN] must be >= 0, got places[Source.WALK_IN]=-1"),
        ({WALK_IN: 1.5}, "places[Source.WALK_IN] must be an int"),
        ({WALK_IN: True}, "places[Source.WALK_IN] must be an int"),
        ({WALK_IN: "2"}, "places[Source.WALK_IN] must be an int"),
        ({"WALK_IN": 1}, "places key must be one of Source.ONLINE"),
        ({Priority.PAID: 1}, "places key must be one of"),
        ([(WALK_IN, 1)], "places must be a mapping of Source to int, got places="),
        (None, "places must be a mapping"),
    ],
)
def test_bad_places_are_refused(places: object, message: str) -> None:
    """ "a negative number -> ``InvalidArgumentError``"; so is anything but a mapping of
    ``Source`` to int. The message names the argument and the value."""
    with pytest.raises(InvalidArgumentError) as refused:
        UntypedReserve(places)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    "release_before",
    [timedelta(minutes=-1), timedelta(days=1, microseconds=1), 30, None, "30m"],
)
def test_a_bad_release_is_refused(release_before: object) -> None:
    """``release_before`` is a timedelta in [0, 1 day] (an OPD day is one day long)."""
    with pytest.raises(InvalidArgumentError) as refused:
        UntypedReserve({WALK_IN: 1}, release_before=release_before)
    assert str(refused.value) == (
        "release_before must be a timedelta >= 0 and <= 1 day, "
        f"got release_before={release_before!r}"
    )


def test_edges_of_the_release_are_accepted() -> None:
    assert Reserve({}, release_before=timedelta(0)).release_before == timedelta(0)
    assert Reserve({}, release_before=timedelta(days=1)).release_before == timedelta(days=1)


def test_counts_are_kept_as_plain_ints_in_a_frozen_value() -> None:
    class Places(IntEnum):
        TWO = 2

    given_places = {WALK_IN: Places.TWO}
    policy = Reserve(given_places)
    assert type(policy.places[WALK_IN]) is int
    given_places[WALK_IN] = Places.TWO  # the caller's dict is copied
    given_places[PAID] = 5  # type: ignore[assignment]
    assert policy.places == {WALK_IN: 2}
    places: Any = policy.places
    with pytest.raises(TypeError):
        places[WALK_IN] = 0
    assert hash(policy) == hash(Reserve({WALK_IN: 2}))
    assert policy != Reserve({WALK_IN: 2}, release_before=timedelta(minutes=10))
    assert pickle.loads(pickle.dumps(policy)).kept(3) == {WALK_IN: 2}


# ----------------------------------------------------------------------------- admission


def test_the_channel_uses_its_own_reserve_first(build: Build, clock: Clock) -> None:
    """ "the channel's own tokens in the slot use its reserve first". One walk-in place
    kept in a slot of three: the first walk-in takes the reserved place, so none is left
    unused and two online bookings still fit (1 < 3 - 0, 2 < 3 - 0)."""
    alloc = early(build, clock, Reserve({WALK_IN: 1}))
    alloc.book("W1", "D1", "D1@09", source=WALK_IN)
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    alloc.book("O2", "D1", "D1@09", source=ONLINE)
    assert held(alloc, "D1@09") == {WALK_IN: 1, ONLINE: 2}
    alloc.check_invariants()


def test_another_channel_stays_below_capacity_minus_the_unused_reserve(
    build: Build, clock: Clock
) -> None:
    """ "another channel's token is admitted only while the slot's occupancy stays below
    capacity minus the unused reserve". Two walk-in places kept in a slot of three:

    - W1: its own reserve (0 of 2 held): admitted;
    - O1: occupancy 1, unused reserve 2 - 1 = 1: 1 < 3 - 1, admitted;
    - O2: occupancy 2, unused reserve 1: 2 < 2 fails, refused;
    - W2: its own reserve (1 of 2 held): admitted, and the slot is full.
    """
    alloc = early(build, clock, Reserve({WALK_IN: 2}))
    alloc.book("W1", "D1", "D1@09", source=WALK_IN)
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    # The refusal says the slot "is full" for this channel, with a place left it may not take.
    with pytest.raises(SlotFullError, match=r"is full for ONLINE bookings \(2 of 3 places held"):
        alloc.book("O2", "D1", "D1@09", source=ONLINE)
    alloc.book("W2", "D1", "D1@09", source=WALK_IN)
    assert held(alloc, "D1@09") == {WALK_IN: 2, ONLINE: 1}
    with pytest.raises(SlotFullError, match=r"is full \(3 of 3\)$"):
        alloc.book("W3", "D1", "D1@09", source=WALK_IN)
    alloc.check_invariants()


def test_a_channel_beyond_its_reserve_competes_like_anyone_else(alloc: Allocator) -> None:
    """A channel's tokens beyond its reserve compete for the unreserved places: with one
    walk-in and one paid place kept in a slot of three, a second walk-in takes the one
    unreserved place (occupancy 1 < 3 - 1), a third does not (2 < 3 - 1 fails), and a paid
    token still has its own place."""
    policy = Reserve({WALK_IN: 1, PAID: 1})
    slot = alloc.slot("D1@09")
    early = at(7)
    assert policy.admits(slot, WALK_IN, STANDARD, early)
    alloc.book("W1", "D1", "D1@09", source=WALK_IN)
    assert policy.admits(slot, WALK_IN, STANDARD, early)
    alloc.book("W2", "D1", "D1@09", source=WALK_IN)
    assert not policy.admits(slot, WALK_IN, STANDARD, early)
    assert not policy.admits(slot, ONLINE, STANDARD, early)
    assert policy.admits(slot, PAID, Priority.PAID, early)


def test_emergencies_are_never_asked_but_their_places_count(build: Build, clock: Clock) -> None:
    """Emergencies bypass every capacity policy: an emergency booked online takes a place
    the walk-ins keep. Its place counts in the occupancy: with one walk-in place kept in a
    slot of three and an emergency in it, one online token fits (1 < 3 - 1), not two."""
    alloc = early(build, clock, Reserve({WALK_IN: 3}))
    emergency = alloc.book("E", "D1", "D1@09", source=ONLINE, priority=Priority.EMERGENCY)
    assert emergency.slot_id == "D1@09"
    assert alloc.slot("D1@09").held_by(ONLINE) == 0  # not a non-emergency place holder

    alloc = early(build, clock, Reserve({WALK_IN: 1}))
    alloc.book("E", "D1", "D1@09", priority=Priority.EMERGENCY)
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    with pytest.raises(SlotFullError):
        alloc.book("O2", "D1", "D1@09", source=ONLINE)
    alloc.book("W1", "D1", "D1@09", source=WALK_IN)  # the kept place
    alloc.check_invariants()


def test_admits_refuses_a_full_slot_whatever_the_reserve(alloc: Allocator) -> None:
    policy = Reserve({WALK_IN: 1})
    for patient in ("A", "B", "C"):
        alloc.book(patient, "D1", "D1@09", source=ONLINE)
    slot = alloc.slot("D1@09")
    assert not policy.admits(slot, WALK_IN, STANDARD, at(7))  # no room: reserve or not
    assert not policy.admits(slot, WALK_IN, STANDARD, at(9))


# ----------------------------------------------------------------------------- the release


def test_the_reserve_is_released_at_the_instant_inclusive() -> None:
    """ "before ``slot.start - release_before``; from that instant on (inclusive), any
    channel may take any place." Through the real clock injection (``clock=lambda: t``):
    every place of ``S`` (09:00, capacity 2) is kept for walk-ins, released at 08:30. One
    microsecond before, an online booking is refused; at 08:30 exactly it is admitted, and
    so is a second, taking the last kept place."""
    t = at(8)
    alloc = Allocator(policies=Policies(capacity=Reserve({WALK_IN: 2})), clock=lambda: t)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("S", "D1", at(9), at(10), 2))
    t = at(8, 30) - timedelta(microseconds=1)
    with pytest.raises(SlotFullError) as refused:
        alloc.book("O1", "D1", "S", source=ONLINE)
    assert "'S' is full" in str(refused.value)
    t = at(8, 30)
    assert alloc.book("O1", "D1", "S", source=ONLINE).slot_id == "S"
    assert alloc.book("O2", "D1", "S", source=ONLINE).slot_id == "S"
    assert alloc.slot("S").held_by(WALK_IN) == 0
    alloc.check_invariants()


def test_each_slot_is_released_on_its_own_start(build: Build, clock: Clock) -> None:
    """The instant is per slot, ``slot.start - release_before``: at 08:30 ``D1@09`` is
    released and ``D1@10`` (released at 09:30) is not."""
    alloc = early(build, clock, Reserve({WALK_IN: 3}))
    clock.now = at(8, 30)
    online = [alloc.book(f"O{i}", "D1", source=ONLINE).slot_id for i in range(3)]
    assert online == ["D1@09", "D1@09", "D1@09"]
    with pytest.raises(SlotFullError):
        alloc.book("O3", "D1", "D1@10", source=ONLINE)
    clock.now = at(9, 30)
    assert alloc.book("O3", "D1", "D1@10", source=ONLINE).slot_id == "D1@10"


def test_a_zero_release_keeps_the_places_until_the_slot_starts(alloc: Allocator) -> None:
    policy = Reserve({WALK_IN: 3}, release_before=timedelta(0))
    slot = alloc.slot("D1@09")
    assert not policy.admits(slot, ONLINE, STANDARD, at(8, 59))
    assert policy.admits(slot, ONLINE, STANDARD, at(9))


def test_without_a_time_the_places_are_kept(alloc: Allocator) -> None:
    """Asked outside an allocator's call (no ``now``), a reserve takes its release as not yet
    come: the places stay kept."""
    slot = alloc.slot("D1@09")
    policy = Reserve({WALK_IN: 3}, release_before=timedelta(days=1))
    assert not policy.admits(slot, ONLINE, STANDARD)
    assert policy.admits(slot, ONLINE, STANDARD, at(7))
    assert policy.released(slot, at(7))


def test_the_release_is_reckoned_in_real_time() -> None:
    """Aware times are compared in UTC: on New York's fall-back night a slot at 01:30 EST
    (06:30 UTC), kept for an hour, is released at 05:30 UTC, which is 01:30 EDT, the first
    01:30 of the night, not at the wall clock's 00:30."""
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=new_york)
    assert start.astimezone(timezone.utc).hour == 6
    t = datetime(2026, 11, 1, 0, 0, tzinfo=new_york)
    policies = Policies(capacity=Reserve({WALK_IN: 1}, release_before=timedelta(hours=1)))
    alloc = Allocator(policies=policies, clock=lambda: t)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("S", "D1", start, start + timedelta(hours=1), 1))
    t = datetime(2026, 11, 1, 1, 29, fold=0, tzinfo=new_york)  # 05:29 UTC
    with pytest.raises(SlotFullError):
        alloc.book("O1", "D1", "S", source=ONLINE)
    t = datetime(2026, 11, 1, 1, 30, fold=0, tzinfo=new_york)  # 05:30 UTC
    assert alloc.book("O1", "D1", "S", source=ONLINE).slot_id == "S"


# ----------------------------------------------------------------------------- reallocation


def test_a_refill_from_the_waitlist_respects_the_reserve(build: Build, clock: Clock) -> None:
    """A freed place is refilled from the waitlist only by what the reserve admits. Two
    walk-in places kept in ``D1@09`` (capacity 3), which holds O1, W1 and W2; the waitlist
    holds O2 then W3. W1 cancels: occupancy 2, unused reserve 2 - 1 = 1, so O2 (2 < 3 - 1
    fails) is passed over and W3 takes its channel's place."""
    alloc = early(build, clock, Reserve({WALK_IN: 2}), on_full=OnFull.WAITLIST)
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    o2 = alloc.book("O2", "D1", "D1@09", source=ONLINE)
    assert o2.status is TokenStatus.WAITLISTED
    w1 = alloc.book("W1", "D1", "D1@09", source=WALK_IN)
    alloc.book("W2", "D1", "D1@09", source=WALK_IN)
    w3 = alloc.book("W3", "D1", "D1@09", source=WALK_IN)
    assert ids(alloc.waitlist("D1")) == [o2.id, w3.id]
    alloc.cancel(w1.id)
    assert alloc.token(w3.id).slot_id == "D1@09"
    assert ids(alloc.waitlist("D1")) == [o2.id]
    alloc.check_invariants()


def test_a_pull_forward_respects_the_reserve(build: Build, clock: Clock) -> None:
    """Pulling forward asks the reserve too. ``D1@09`` holds O1, W1, W2 (two walk-in places
    kept); O3 waits present in ``D1@10``, W3 in ``D1@11``. W1 cancels: occupancy 2, unused
    reserve 1, so ``D1@10``'s next patient O3 is refused and W3 is pulled from ``D1@11``."""
    alloc = early(build, clock, Reserve({WALK_IN: 2}))
    alloc.book("O1", "D1", "D1@09", source=ONLINE)
    w1 = alloc.book("W1", "D1", "D1@09", source=WALK_IN)
    alloc.book("W2", "D1", "D1@09", source=WALK_IN)
    o3 = alloc.book("O3", "D1", "D1@10", source=ONLINE, checked_in=True)
    w3 = alloc.book("W3", "D1", "D1@11", source=WALK_IN, checked_in=True)
    alloc.cancel(w1.id)
    assert alloc.token(o3.id).slot_id == "D1@10"
    assert alloc.token(w3.id).slot_id == "D1@09"
    alloc.check_invariants()


def test_alternatives_are_the_slots_the_reserve_admits(build: Build, clock: Clock) -> None:
    """``SlotFullError.alternatives`` name only slots that would admit the token now. Two
    walk-in places kept in every slot of three; ``D1@09``, ``D1@10`` and ``D2@09`` each
    already hold their one unreserved place for an online token. An online booking for
    ``D1@09`` is refused, with ``D1@11`` then the department's ``D2@10`` and ``D2@11``; a
    walk-in for ``D1@09`` is admitted."""
    alloc = early(build, clock, Reserve({WALK_IN: 2}))
    for patient, doctor_id, slot_id in (("A", "D1", "D1@09"), ("B", "D1", "D1@10")):
        alloc.book(patient, doctor_id, slot_id, source=ONLINE)
    alloc.book("C", "D2", "D2@09", source=ONLINE)
    with pytest.raises(SlotFullError) as refused:
        alloc.book("O", "D1", "D1@09", source=ONLINE)
    assert refused.value.alternatives == ("D1@11", "D2@10", "D2@11")
    assert alloc.book("W", "D1", "D1@09", source=WALK_IN).slot_id == "D1@09"


def test_next_slot_skips_the_slots_whose_places_are_kept(build: Build, clock: Clock) -> None:
    alloc = early(build, clock, Reserve({WALK_IN: 2}), on_full=OnFull.NEXT_SLOT)
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    assert alloc.book("B", "D1", "D1@09", source=ONLINE).slot_id == "D1@10"


# ----------------------------------------------------------------------------- the day


def test_the_hard_limit_fast_path_is_not_taken(build: Build, clock: Clock) -> None:
    """A reserve is asked on every booking: the day's fast path for exactly ``HardLimit``
    stays off, and the allocator shows the policy as given."""
    policy = Reserve({WALK_IN: 2})
    alloc = early(build, clock, policy)
    assert not alloc._day.hard_limit
    assert alloc.policies.capacity is policy


def test_a_reserve_works_beside_a_policy_of_the_users_own(build: Build, clock: Clock) -> None:
    """Beside a user's ordering (the allocator then checks that policy's answers and keeps
    an undo log) the reserve is still asked at the time of the call."""

    class OwnStrict:
        lexicographic = True

        def level(self, token: Token, now: datetime) -> int:
            return int(token.priority)

        def next_change(self, token: Token, now: datetime) -> datetime | None:
            return None

        def key(self, token: Token) -> int:
            return token.seq

        def pick(self, heads: object, now: datetime) -> int:
            return 0

    alloc = early(build, clock, Reserve({WALK_IN: 2}), ordering=OwnStrict())
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    with pytest.raises(SlotFullError):
        alloc.book("B", "D1", "D1@09", source=ONLINE)
    clock.now = at(8, 30)
    assert alloc.book("B", "D1", "D1@09", source=ONLINE).slot_id == "D1@09"
    alloc.check_invariants()


def test_a_replica_and_a_restored_snapshot_decide_alike(build: Build, clock: Clock) -> None:
    """Policies are not stored: a snapshot restored, or a journal replayed, under the same
    reserve and clock keeps the places and decides as the original does."""
    policies = Policies(capacity=Reserve({WALK_IN: 2}), ordering=StrictPriority())
    clock.now = at(7)
    alloc = build(policies)
    start = alloc.snapshot()
    journal: list[Event] = []
    alloc.subscribe(journal.append)
    alloc.book("A", "D1", "D1@09", source=ONLINE)
    restored = Allocator.from_snapshot(alloc.snapshot(), policies=policies, clock=clock)
    replica = Allocator.replay(journal, snapshot=start, policies=policies, clock=clock)
    assert replica.snapshot() == restored.snapshot() == alloc.snapshot()
    for day in (alloc, restored, replica):
        with pytest.raises(SlotFullError):
            day.book("B", "D1", "D1@09", source=ONLINE)
        assert day.book("W", "D1", "D1@09", source=WALK_IN).slot_id == "D1@09"
