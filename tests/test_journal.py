"""The journal: events as dicts and back, replay from events (and a checkpoint), a replica
catching up with ``apply``, and every malformed journal refused.

DESIGN section 9: "The events are a complete journal: a host that stores every event (one
row each, O(1) per change) can rebuild the allocator exactly, without full snapshots after
each change."
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Clock
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
    DoctorAdded,
    DoctorDelayed,
    Duplicates,
    EmergencyOverride,
    Event,
    InvalidArgumentError,
    OnDelay,
    OnFull,
    OPDError,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    Reserve,
    Slot,
    SlotAdded,
    Source,
    SourceQuota,
    StrictPriority,
    TokenBooked,
    TokenCompleted,
    TokenMoved,
    event_from_dict,
    event_to_dict,
)
from opd_engine._journal import KINDS

DAY = datetime(2026, 11, 25)
DOCTORS = ("D1", "D2", "D3")


class MyCapacity:
    """A user's capacity policy: the hard limit, written by hand."""

    def limit(self, capacity: int) -> int:
        return capacity

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        return slot.occupancy - slot.emergencies < slot.capacity


POLICIES = {
    "default": Policies(),
    "waitlist": Policies(on_full=OnFull.WAITLIST),
    "notify": Policies(on_full=OnFull.WAITLIST, notify_within=2),
    "strict-next-slot": Policies(
        ordering=StrictPriority(), on_full=OnFull.NEXT_SLOT, notify_within=2
    ),
    "bounded-shrink": Policies(
        emergency=EmergencyOverride(max_overflow=0),
        on_delay=OnDelay.SHRINK,
        on_full=OnFull.WAITLIST,
    ),
    "accumulating-quota": Policies(
        ordering=AccumulatingPriority(),
        capacity=SourceQuota({Source.ONLINE: 1}),
        on_full=OnFull.WAITLIST,
    ),
    "reserve-waitlist": Policies(
        capacity=Reserve({Source.WALK_IN: 2, Source.PAID: 1}, release_before=timedelta(minutes=20)),
        on_full=OnFull.WAITLIST,
    ),
    "overbooking-strict-fill": Policies(
        capacity=Overbooking(0.3),
        reallocation=Reallocation(fill_idle=False, max_moves=1),
        duplicates=Duplicates.ONE,
        max_missed_calls=1,
    ),
    "user-policy": Policies(
        capacity=MyCapacity(),
        ordering=Aging(step=timedelta(minutes=10)),
        duplicates=Duplicates.PER_DEPARTMENT,
        on_full=OnFull.WAITLIST,
        notify_within=1,
    ),
}


def new_day(
    policies: Policies, zone: ZoneInfo | None = None
) -> tuple[Allocator, Clock, list[Event]]:
    """Three doctors (two departments), three hourly slots each, and a subscriber keeping
    the journal."""
    start = DAY.replace(hour=8, tzinfo=zone)
    clock = Clock(start)
    alloc = Allocator(policies=policies, clock=clock)
    journal: list[Event] = []
    alloc.subscribe(journal.append)
    for doctor in DOCTORS:
        department = "Cardiology" if doctor == "D3" else "General Medicine"
        alloc.add_doctor(Doctor(doctor, f"Dr. {doctor}", department=department))
        for hour in (9, 10, 11):
            begin = DAY.replace(hour=hour, tzinfo=zone)
            alloc.add_slot(Slot(f"{doctor}@{hour}", doctor, begin, begin + timedelta(hours=1), 2))
    return alloc, clock, journal


def step(alloc: Allocator, clock: Clock, rng: random.Random) -> None:
    """One random call of the day (a refused one changes nothing)."""
    tokens = [t.id for t in alloc.tokens()] or ["D1-001"]
    token = rng.choice(tokens)
    doctor = rng.choice(DOCTORS)
    slot = f"{rng.choice(DOCTORS)}@{rng.choice((9, 10, 11))}"
    calls: list[Callable[[], object]] = [
        lambda: alloc.book(
            f"P{rng.randrange(25)}",
            doctor,
            source=rng.choice(list(Source)),
            priority=rng.choice([None, None, None, Priority.EMERGENCY]),
        ),
        lambda: alloc.book(f"P{rng.randrange(25)}", doctor, slot if slot[:2] == doctor else None),
        lambda: alloc.check_in(token),
        lambda: alloc.call_next(doctor),
        lambda: alloc.call_next(doctor),
        lambda: alloc.complete(token),
        lambda: alloc.cancel(token),
        lambda: alloc.no_show(token),
        lambda: alloc.missed_call(token),
        lambda: alloc.reschedule(token, slot),
        lambda: alloc.retriage(token, rng.choice(list(Priority))),
        lambda: alloc.resize(slot, rng.randrange(4)),
        lambda: alloc.delay(doctor, rng.randrange(15)),
        lambda: alloc.close_slot(slot) if rng.random() < 0.3 else None,
        lambda: alloc.mark_unavailable(doctor) if rng.random() < 0.3 else None,
        lambda: alloc.mark_available(doctor),
        lambda: setattr(clock, "now", clock.now + timedelta(minutes=rng.randrange(12))),
        # The live floor (DESIGN section 10).
        lambda: alloc.pause(doctor),
        lambda: alloc.resume(doctor),
        lambda: alloc.call(token),
        lambda: alloc.step_out(token),
        lambda: alloc.cancel(token, reason=rng.choice(["", "felt better", "went home"])),
        lambda: alloc.end_day(doctor) if rng.random() < 0.1 else None,
    ]
    with contextlib.suppress(OPDError):
        rng.choice(calls)()


def random_day(name: str, seed: int, steps: int) -> tuple[Allocator, Clock, list[Event]]:
    alloc, clock, journal = new_day(POLICIES[name])
    rng = random.Random(seed)
    for _ in range(steps):
        step(alloc, clock, rng)
    return alloc, clock, journal


# ============================================================================ dicts


def test_every_event_kind_round_trips_through_json() -> None:
    """event_to_dict: "JSON-safe: enums by name, datetimes ISO 8601 with their offset, a
    kind key naming the event class", and event_from_dict "round-trip every event exactly"."""
    seen: dict[str, Event] = {}
    for name in POLICIES:
        for seed in range(6):
            for event in random_day(name, seed, 150)[2]:
                seen.setdefault(type(event).__name__, event)
    assert set(seen) == set(KINDS), set(KINDS) - set(seen)
    for event in seen.values():
        data = json.loads(json.dumps(event_to_dict(event)))
        assert data["kind"] == type(event).__name__
        assert event_from_dict(data) == event


def test_aware_events_keep_their_zone() -> None:
    zone = ZoneInfo("America/New_York")
    alloc, _, journal = new_day(Policies(), zone)
    alloc.book("P", "D1")
    data = event_to_dict(journal[-1])
    assert data["at"] == "2026-11-25T08:00:00-05:00[America/New_York]"
    again = event_from_dict(data)
    assert again == journal[-1]
    assert again.at.tzinfo == zone


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda d: d.update(kind="TokenLost"), "kind"),
        (lambda d: d.pop("kind"), "kind"),
        (lambda d: d.update(version=0), "version"),
        (lambda d: d.update(version="3"), "version"),
        (lambda d: d.update(at="nine o'clock"), "ISO 8601"),
        (lambda d: d.update(colour="red"), "colour"),
        (lambda d: d.pop("token"), "token"),
        (lambda d: d["token"].update(status="LOST"), "status"),
        (lambda d: d["token"].update(seq=-1), "seq"),
        (lambda d: d["token"].update(seq=2**40), "seq"),
        (lambda d: d["token"].update(id=" D1-001"), "id"),
        (lambda d: d["token"].update(checked_in_at="2026-11-25T08:00:00+00:00"), "aware"),
    ],
)
def test_malformed_event_dicts_are_refused(
    change: Callable[[dict[str, Any]], object], match: str
) -> None:
    """event_from_dict: "an unknown kind or malformed data raises InvalidArgumentError naming
    what is wrong"."""
    alloc, _, journal = new_day(Policies())
    alloc.book("P", "D1", source=Source.ONLINE)
    data = json.loads(json.dumps(event_to_dict(journal[-1])))
    change(data)
    with pytest.raises(InvalidArgumentError, match=match):
        event_from_dict(data)


def test_only_opd_engine_events_become_dicts() -> None:
    @attrs.frozen(kw_only=True)
    class Mine(Event):
        pass

    with pytest.raises(InvalidArgumentError, match="event"):
        event_to_dict(Mine(at=DAY, version=1))


# ============================================================================ replay


@pytest.mark.parametrize("name", list(POLICIES))
@pytest.mark.parametrize("seed", range(4))
def test_replay_rebuilds_the_day_exactly(name: str, seed: int) -> None:
    """replay: "a replayed allocator's snapshot() equals the original's at the last event's
    version, and it goes on exactly as the original would"."""
    alloc, clock, journal = random_day(name, seed, 250)
    as_dicts = [json.loads(json.dumps(event_to_dict(e))) for e in journal]
    replica = Allocator.replay(as_dicts, policies=POLICIES[name], clock=clock)
    assert replica.snapshot() == alloc.snapshot()
    assert replica.version == alloc.version == journal[-1].version
    # ... and goes on exactly as the original.
    rng_a, rng_b = random.Random(seed + 100), random.Random(seed + 100)
    for _ in range(60):
        step(alloc, clock, rng_a)
        step(replica, clock, rng_b)
    assert replica.snapshot() == alloc.snapshot()
    replica.check_invariants()


@pytest.mark.parametrize("name", list(POLICIES))
def test_replay_from_a_checkpoint(name: str) -> None:
    """ "Checkpoints: a host may store a snapshot() every N versions and replay only the
    events after the latest one" (events at or below the snapshot's version are skipped)."""
    alloc, clock, journal = new_day(POLICIES[name])
    rng = random.Random(7)
    checkpoint = None
    for i in range(300):
        step(alloc, clock, rng)
        if i == 150:
            checkpoint = alloc.snapshot()
    assert checkpoint is not None
    replica = Allocator.replay(journal, snapshot=checkpoint, policies=POLICIES[name], clock=clock)
    assert replica.snapshot() == alloc.snapshot()
    after = [e for e in journal if e.version > checkpoint["allocator_version"]]
    replica = Allocator.replay(after, snapshot=checkpoint, policies=POLICIES[name], clock=clock)
    assert replica.snapshot() == alloc.snapshot()


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    seed=st.integers(0, 10**6),
    batches=st.lists(st.integers(1, 40), min_size=1, max_size=8),
)
def test_a_replica_catches_up_batch_by_batch(name: str, seed: int, batches: list[int]) -> None:
    """apply: "brings this allocator up to date with journal events newer than its version
    ... delivered to its subscribers like any change". The replica is fed overlapping
    batches (as a worker re-reads the journal from a little before its version)."""
    alloc, clock, journal = new_day(POLICIES[name])
    replica = Allocator(policies=POLICIES[name], clock=clock)
    heard: list[Event] = []
    replica.subscribe(heard.append)
    rng = random.Random(seed)
    for size in batches:
        for _ in range(size):
            step(alloc, clock, rng)
        overlap = [e for e in journal if e.version > replica.version - 3]
        replica.apply(overlap)
        assert replica.snapshot() == alloc.snapshot()
        replica.check_invariants()
    assert heard == journal


# ============================================================================ bad journals


def journal_of_a_small_day() -> tuple[list[Event], Clock]:
    _, clock, journal = random_day("waitlist", 3, 120)
    return journal, clock


def test_a_gap_a_step_back_and_a_duplicate_are_refused() -> None:
    """replay: "A gap or a step back in versions ... raises InvalidArgumentError; nothing is
    returned half-built"."""
    journal, clock = journal_of_a_small_day()
    middle = len(journal) // 2
    gap = [e for e in journal if e.version != journal[middle].version]
    with pytest.raises(InvalidArgumentError, match="gap"):
        Allocator.replay(gap, clock=clock)
    swapped = list(journal)
    swapped[middle], swapped[-1] = swapped[-1], swapped[middle]
    with pytest.raises(InvalidArgumentError, match="step back"):
        Allocator.replay(swapped, clock=clock)
    first_booking = next(i for i, e in enumerate(journal) if isinstance(e, TokenBooked))
    doubled = [*journal[: first_booking + 1], journal[first_booking], *journal[first_booking + 1 :]]
    with pytest.raises(InvalidArgumentError, match="repeated"):
        Allocator.replay(doubled, clock=clock)
    # Events stored before they were numbered: the state still refuses the repeat.
    unnumbered = [attrs.evolve(e, step=0, steps=0) for e in doubled]
    with pytest.raises(InvalidArgumentError, match="already issued"):
        Allocator.replay(unnumbered, clock=clock)


def test_events_that_contradict_the_state_are_refused() -> None:
    """replay: "an event that contradicts the state (an unknown token, doctor or slot)"."""
    journal, clock = journal_of_a_small_day()
    booking = next(e for e in journal if isinstance(e, TokenBooked))
    index = journal.index(booking)
    for token, match in [
        (attrs.evolve(booking.token, id="D1-007", number=7), "not the next token"),
        (attrs.evolve(booking.token, number=booking.token.number + 1), "not the next token"),
        (attrs.evolve(booking.token, seq=0), "seq"),
        (attrs.evolve(booking.token, seq=2**40), "above the largest"),
        (attrs.evolve(booking.token, doctor_id="D9"), "unknown doctor"),
        (attrs.evolve(booking.token, slot_id="D1@99"), "unknown slot"),
        (attrs.evolve(booking.token, slot_id="D2@9"), "not a slot of doctor"),
    ]:
        bad = [*journal[:index], attrs.evolve(booking, token=token), *journal[index + 1 :]]
        with pytest.raises(InvalidArgumentError, match=match):
            Allocator.replay(bad, clock=clock)
    later = [e for e in journal if e.version > booking.version]
    with pytest.raises(InvalidArgumentError, match="version"):
        Allocator.replay(later, clock=clock)  # starts mid-journal without its checkpoint


def test_a_snapshot_of_another_version_is_refused() -> None:
    journal, clock = journal_of_a_small_day()
    snapshot = Allocator.replay(journal[:10], clock=clock).snapshot()
    with pytest.raises(InvalidArgumentError, match="version"):
        Allocator.replay(journal, snapshot={**snapshot, "version": 99}, clock=clock)


def test_apply_is_all_or_nothing() -> None:
    """apply: "atomic (on error, nothing applied)"."""
    alloc, clock, journal = random_day("bounded-shrink", 5, 200)
    cut = len(journal) // 2
    while journal[cut].version == journal[cut - 1].version:
        cut += 1  # between two calls
    replica = Allocator.replay(journal[:cut], policies=alloc.policies, clock=clock)
    before = replica.snapshot()
    heard: list[Event] = []
    replica.subscribe(heard.append)
    tail = journal[cut:]
    broken = [*tail[:-1], attrs.evolve(tail[-1], version=tail[-1].version + 5)]
    with pytest.raises(InvalidArgumentError):
        replica.apply(broken)
    assert replica.snapshot() == before
    assert heard == []
    replica.check_invariants()
    replica.apply(tail)
    assert replica.snapshot() == alloc.snapshot()


def test_apply_refuses_what_is_not_an_event() -> None:
    replica = Allocator()
    for bad in ([1], ["TokenBooked"], [object()]):
        with pytest.raises(InvalidArgumentError, match="event 0"):
            replica.apply(bad)  # type: ignore[arg-type]
    assert replica.version == 0


def test_replay_in_utc_and_zones_alike() -> None:
    zone = ZoneInfo("Asia/Kolkata")
    alloc, clock, journal = new_day(Policies(), zone)
    rng = random.Random(2)
    for _ in range(150):
        step(alloc, clock, rng)
    dicts = [json.loads(json.dumps(event_to_dict(e))) for e in journal]
    replica = Allocator.replay(dicts, clock=clock)
    assert replica.snapshot() == alloc.snapshot()
    assert all(t.booked_at.tzinfo == zone for t in replica.tokens())


# ============================================================================ stored journals

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "path", sorted(FIXTURES.glob("journal-*.json")), ids=lambda path: path.stem
)
def test_a_journal_stored_before_still_loads(path: Path) -> None:
    """The journal: "Journals and snapshots already stored in today's format must still
    load: nothing stored becomes unreadable". Each file is a day as an earlier opd-engine
    stored it (tests/fixtures/make_journals.py): its events replay, alone or after its
    checkpoint, onto the day's final state, and the snapshots restore."""
    stored = json.loads(path.read_text())
    policies = POLICIES[stored["policies"]]
    clock = Clock(datetime.fromisoformat(stored["clock"]))
    events, checkpoint, final = stored["events"], stored["checkpoint"], stored["snapshot"]
    assert {e["kind"] for e in events} <= set(KINDS)
    replica = Allocator.replay(events, policies=policies, clock=clock)
    assert replica.snapshot() == final
    replica.check_invariants()
    assert (
        Allocator.replay(events, snapshot=checkpoint, policies=policies, clock=clock).snapshot()
        == final
    )
    live = Allocator.from_snapshot(checkpoint, policies=policies, clock=clock)
    live.apply(events)
    assert live.snapshot() == final
    assert Allocator.from_snapshot(final, policies=policies, clock=clock).snapshot() == final


def test_the_stored_journals_hold_every_event_kind() -> None:
    kinds = {
        event["kind"]
        for path in FIXTURES.glob("journal-*.json")
        for event in json.loads(path.read_text())["events"]
    }
    assert kinds == set(KINDS)


# ==================================================================== one path, whole journals


def a_small_journal() -> tuple[Allocator, Clock, list[Event]]:
    """A day with a call of two events: A and B fill D1@9, W waits on D1's waitlist, then
    A cancels and W takes the place (TokenCancelled, TokenMoved); then D1 runs late."""
    alloc, clock, journal = new_day(Policies(on_full=OnFull.WAITLIST))
    alloc.book("A", "D1", "D1@9", source=Source.ONLINE)
    alloc.book("B", "D1", "D1@9", source=Source.ONLINE)
    alloc.book("W", "D1", "D1@9", source=Source.ONLINE)
    alloc.cancel("D1-001")
    alloc.delay("D1", 10)
    assert [type(e).__name__ for e in journal[-3:]] == [
        "TokenCancelled",
        "TokenMoved",
        "DoctorDelayed",
    ]
    return alloc, clock, journal


def completed_day() -> tuple[Allocator, Clock, list[Event], TokenCompleted]:
    """A day whose one patient was booked, called and seen: its last event completes it."""
    alloc, clock, journal = new_day(Policies())
    alloc.book("A", "D1", source=Source.WALK_IN)
    clock.now = DAY.replace(hour=9, minute=5)
    alloc.call_next("D1")
    alloc.complete("D1-001")
    completed = journal[-1]
    assert isinstance(completed, TokenCompleted)
    return alloc, clock, journal, completed


def test_replay_refuses_the_states_from_snapshot_refuses() -> None:
    """Issue item 2, one path: "replay, apply and from_snapshot accept exactly the same
    states". A COMPLETED token without called_at, and a SlotAdded on another date than the
    day's other slots, are refused by from_snapshot, and so by replay and apply."""
    alloc, clock, journal, completed = completed_day()
    never_called = attrs.evolve(completed, token=attrs.evolve(completed.token, called_at=None))
    state = alloc.snapshot()
    state["tokens"][0]["called_at"] = None
    with pytest.raises(InvalidArgumentError, match="called_at"):
        Allocator.from_snapshot(state, clock=clock)
    bad = [*journal[:-1], never_called]
    with pytest.raises(InvalidArgumentError, match="called_at"):
        Allocator.replay(bad, clock=clock)
    replica = Allocator.replay(journal[:-1], clock=clock)
    before = replica.snapshot()
    with pytest.raises(InvalidArgumentError, match="called_at"):
        replica.apply(bad)
    assert replica.snapshot() == before

    added = next(e for e in journal if isinstance(e, SlotAdded) and e.doctor_id == "D3")
    next_day = attrs.evolve(
        added, start=added.start + timedelta(days=1), end=added.end + timedelta(days=1)
    )
    with pytest.raises(InvalidArgumentError, match="one OPD day"):
        Allocator.replay([next_day if e is added else e for e in journal], clock=clock)


def test_apply_refuses_what_replay_refuses() -> None:
    """Issue item 4: "apply() accepts journal rows that replay() refuses, because it skips
    the final check"; section 9: apply "does the same to a live allocator ... atomic (on
    error, nothing applied)". A booking rewritten to a patient who already holds a token
    with the doctor breaks the duplicate rule: both refuse, and the replica is unchanged."""
    alloc, clock, journal = new_day(Policies())
    alloc.book("A", "D1", source=Source.ONLINE)
    alloc.book("B", "D1", source=Source.ONLINE)
    second = journal[-1]
    assert isinstance(second, TokenBooked)
    twice = attrs.evolve(second, token=attrs.evolve(second.token, patient_id="A"))
    bad = [*journal[:-1], twice]
    with pytest.raises(InvalidArgumentError, match="duplicate rule"):
        Allocator.replay(bad, clock=clock)
    replica = Allocator.replay(journal[:-1], clock=clock)
    heard: list[Event] = []
    replica.subscribe(heard.append)
    before = replica.snapshot()
    with pytest.raises(InvalidArgumentError, match="duplicate rule"):
        replica.apply(bad)
    assert replica.snapshot() == before
    assert heard == []
    replica.check_invariants()


@pytest.mark.parametrize("change", ["drop", "swap", "repeat", "drop-first"])
def test_a_call_with_an_event_lost_moved_or_repeated_is_refused(change: str) -> None:
    """Issue item 5, "a journal that notices a missing or moved event": "a journal with one
    event of a call dropped, two events of one call swapped ... replays without complaint
    into a different state". Events: step and steps, "its place in its call, 1 to steps".
    Replay and apply both refuse, whichever event of the call it is."""
    _, clock, journal = a_small_journal()
    cancelled, moved, delayed = journal[-3:]
    head = journal[:-3]
    bad = {
        "drop": [*head, cancelled, delayed],
        "swap": [*head, moved, cancelled, delayed],
        "repeat": [*head, cancelled, moved, moved, delayed],
        "drop-first": [*head, moved, delayed],
    }[change]
    with pytest.raises(InvalidArgumentError, match=r"lost|moved|repeated|only"):
        Allocator.replay(bad, clock=clock)
    replica = Allocator.replay(head, clock=clock)
    before = replica.snapshot()
    with pytest.raises(InvalidArgumentError, match=r"lost|moved|repeated|only"):
        replica.apply(bad)
    assert replica.snapshot() == before
    # The journal's last call, cut short, is refused too.
    with pytest.raises(InvalidArgumentError, match="lost the last"):
        Allocator.replay(journal[:-2], clock=clock)


def test_the_totals_an_event_carries_agree_with_the_state() -> None:
    """Issue item 5: "a DoctorDelayed whose totals disagree" replays into a different
    state; "the totals an event carries must agree with the state"."""
    _, clock, journal = a_small_journal()
    delayed = journal[-1]
    assert isinstance(delayed, DoctorDelayed)
    moved = journal[-2]
    assert isinstance(moved, TokenMoved)
    head = journal[:-2]
    for bad, match in [
        ([*head, moved, attrs.evolve(delayed, total_minutes=30)], "10 more cannot make 30"),
        ([*head, moved, attrs.evolve(delayed, minutes=20)], "20 more cannot make 10"),
        ([*head, attrs.evolve(moved, from_slot_id="D1@10"), delayed], "not from 'D1@10'"),
    ]:
        with pytest.raises(InvalidArgumentError, match=match):
            Allocator.replay(bad, clock=clock)


def test_replay_and_apply_refuse_what_is_not_a_journal() -> None:
    """Issue item 12: "Allocator.replay(None) and apply(None) raise a raw TypeError"; the
    issue: "replay and apply refuse non-iterables with InvalidArgumentError"."""
    _, _, journal = a_small_journal()
    replica = Allocator()
    for bad in (None, 5, "TokenBooked", event_to_dict(journal[0])):
        with pytest.raises(InvalidArgumentError, match="events must be an iterable"):
            Allocator.replay(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="events must be an iterable"):
            replica.apply(bad)  # type: ignore[arg-type]
    assert replica.version == 0


@pytest.mark.parametrize("where", ["token", "doctor"])
def test_unknown_keys_inside_token_and_doctor_are_refused(where: str) -> None:
    """Issue item 13: "Unknown keys inside event["token"] and event["doctor"] are silently
    dropped, while the same key at the top level is refused"; event_from_dict: "a missing
    or extra field" raises InvalidArgumentError naming what is wrong."""
    _, _, journal = a_small_journal()
    kind = TokenBooked if where == "token" else DoctorAdded
    data = event_to_dict(next(e for e in journal if isinstance(e, kind)))
    data[where]["colour"] = "red"
    with pytest.raises(InvalidArgumentError, match=rf"event\.{where}\.colour is not a field"):
        event_from_dict(data)
    with pytest.raises(InvalidArgumentError, match="colour"):
        Allocator.replay([event_to_dict(e) for e in journal[:5]] + [data])


def test_a_token_keeps_its_source_and_booking_time() -> None:
    """Replay "sets the state the events describe", and a token's source and booking time
    never change after booking: an event that changes them contradicts the state (a slot
    counts the places it holds by source, so replay could not follow it)."""
    _, clock, journal, completed = completed_day()
    for token in (
        attrs.evolve(completed.token, source=Source.ONLINE),
        attrs.evolve(completed.token, booked_at=DAY.replace(hour=7)),
    ):
        bad = [*journal[:-1], attrs.evolve(completed, token=token)]
        with pytest.raises(InvalidArgumentError, match="source or booking time"):
            Allocator.replay(bad, clock=clock)
