"""The display board, due notices and "what if": ``next_up``, ``board``,
``Policies(notify_within=...)`` with ``TokenDue``, and ``preview`` (DESIGN section 10).

Each test quotes the sentence of section 10 it checks; the expected values are worked out
by hand from the fixture's day (``conftest.py``). The property tests at the end run random
days (``test_journal.step``) and compare each call with what it stands for: ``next_up``
with successive ``call_next`` calls on a copy, ``preview`` with the same change made for
real on a copy.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Build, Clock, at, ids, kinds
from opd_engine import (
    Allocator,
    DoctorBoard,
    DoctorStatus,
    Event,
    InvalidArgumentError,
    InvalidTransitionError,
    OnFull,
    Policies,
    Priority,
    Source,
    TokenDue,
    TokenMoved,
    UnknownDoctorError,
)
from test_journal import DOCTORS, POLICIES, new_day, step

WAITLIST = Policies(on_full=OnFull.WAITLIST)


def events_of(alloc: Allocator) -> list[Event]:
    heard: list[Event] = []
    alloc.subscribe(heard.append)
    return heard


def crowd(alloc: Allocator, clock: Clock) -> dict[str, str]:
    """At 09:00, D1@09 (capacity 3) holds a (walk-in, checked in), b (online, booked) and c
    (walk-in); w (walk-in) is waitlisted, the slot being full; e, an emergency, joins
    D1@09 past its capacity. Returns the token ids by name."""
    clock.now = at(9)
    names = {}
    names["a"] = alloc.book("Pa", "D1", "D1@09").id
    names["b"] = alloc.book("Pb", "D1", "D1@09", source=Source.ONLINE).id
    names["c"] = alloc.book("Pc", "D1", "D1@09").id
    names["w"] = alloc.book("Pw", "D1", "D1@09").id
    names["e"] = alloc.book("Pe", "D1", priority=Priority.EMERGENCY).id
    return names


# ============================================================================ next_up


def test_next_up_is_who_call_next_would_call(build: Build, clock: Clock) -> None:
    """``next_up(doctor_id, n=3)``: "the next ``n`` patients that successive ``call_next``
    calls would call now, in that order (idle-fill included), changing nothing"."""
    alloc = build(WAITLIST)
    t = crowd(alloc, clock)
    assert alloc.token(t["w"]).slot_id is None  # waitlisted
    # The emergency first, then the checked-in by seq (b has not arrived), then the
    # waitlisted walk-in by the idle-fill rule.
    before = alloc.snapshot()
    assert ids(alloc.next_up("D1", 10)) == [t["e"], t["a"], t["c"], t["w"]]
    assert ids(alloc.next_up("D1")) == [t["e"], t["a"], t["c"]]  # n=3 by default
    assert ids(alloc.next_up("D1", 1)) == [t["e"]]
    assert alloc.next_up("D1", 0) == []
    assert alloc.next_up("D2") == []
    # Changing nothing: the tokens are returned as they stand.
    assert alloc.snapshot() == before
    assert [tok.status.name for tok in alloc.next_up("D1", 4)] == [
        "CHECKED_IN",
        "CHECKED_IN",
        "CHECKED_IN",
        "WAITLISTED",
    ]
    # ... and successive calls do call them so.
    called = [alloc.call_next("D1") for _ in range(5)]
    assert [None if tok is None else tok.id for tok in called] == [
        t["e"],
        t["a"],
        t["c"],
        t["w"],
        None,
    ]


def test_next_up_skips_the_away_and_the_absent(build: Build, clock: Clock) -> None:
    """``step_out``: the token "is skipped by ``call_next`` and ``next_up``"; back, it
    stands at the same place."""
    alloc = build(WAITLIST)
    t = crowd(alloc, clock)
    alloc.step_out(t["a"])
    assert ids(alloc.next_up("D1", 10)) == [t["e"], t["c"], t["w"]]
    alloc.check_in(t["b"])
    alloc.check_in(t["a"])
    assert ids(alloc.next_up("D1", 10)) == [t["e"], t["a"], t["b"], t["c"], t["w"]]


def test_next_up_ignores_the_consultation_in_progress(build: Build, clock: Clock) -> None:
    """The consultation in progress is not among the next: the first ``call_next`` would
    complete it and call the next one."""
    alloc = build(WAITLIST)
    t = crowd(alloc, clock)
    alloc.call_next("D1")
    assert alloc.now_serving("D1").id == t["e"]  # type: ignore[union-attr]
    assert ids(alloc.next_up("D1", 10)) == [t["a"], t["c"], t["w"]]


def test_next_up_and_board_ignore_a_pause_and_unavailability(build: Build, clock: Clock) -> None:
    """Section 10: "``next_up`` and ``board`` ignore a pause and unavailability (they show
    who would be called)"."""
    alloc = build(WAITLIST)
    t = crowd(alloc, clock)
    shown = ids(alloc.next_up("D1", 10))
    alloc.pause("D1")
    with pytest.raises(InvalidTransitionError):
        alloc.call_next("D1")
    assert ids(alloc.next_up("D1", 10)) == shown
    assert ids(alloc.board(n=10)[0].next_up) == shown
    # D3 has no colleague in Cardiology: unavailable, its patients wait on its waitlist,
    # and the idle-fill rule would call the present ones there.
    p = alloc.book("Pp", "D3", "D3@09").id
    q = alloc.book("Pq", "D3", "D3@10").id
    alloc.mark_unavailable("D3")
    assert [alloc.token(i).slot_id for i in (p, q)] == [None, None]
    with pytest.raises(InvalidTransitionError):
        alloc.call_next("D3")
    assert ids(alloc.next_up("D3")) == [p, q]
    assert ids(alloc.board(n=3)[2].next_up) == [p, q]
    assert t  # the crowd stands


def test_after_end_day_next_up_is_empty(build: Build, clock: Clock) -> None:
    """Section 10: "after ``end_day``, ``call_next`` returns None and ``next_up`` is empty, whatever
    else the doctor's status"."""
    alloc = build(WAITLIST)
    crowd(alloc, clock)
    alloc.pause("D1")
    alloc.mark_unavailable("D1")
    alloc.end_day("D1")
    assert alloc.call_next("D1") is None
    assert alloc.next_up("D1", 5) == []
    line = alloc.board()[0]
    assert (line.status, line.next_up) == (DoctorStatus.ENDED, ())


@pytest.mark.parametrize("n", [-1, -(10**9), 1.0, "3", True, None])
def test_next_up_and_board_refuse_a_bad_n(alloc: Allocator, n: Any) -> None:
    """Section 10: "``next_up(doctor_id, n)`` and ``board(n=...)`` with ``n < 0`` ->
    ``InvalidArgumentError``" (and ``n`` is an int: a bool is refused)."""
    before = alloc.snapshot()
    with pytest.raises(InvalidArgumentError, match="n must be"):
        alloc.next_up("D1", n)
    with pytest.raises(InvalidArgumentError, match="n must be"):
        alloc.board(n=n)
    assert alloc.snapshot() == before


def test_next_up_refuses_an_unknown_doctor(alloc: Allocator) -> None:
    """Section 10: "Every call that takes an id raises the matching ``NotFoundError`` for an unknown
    one"."""
    with pytest.raises(UnknownDoctorError):
        alloc.next_up("D9")
    with pytest.raises(InvalidArgumentError):
        alloc.next_up(" D1")


# ============================================================================ board


def test_board_has_one_line_per_doctor_with_its_counts(build: Build, clock: Clock) -> None:
    """``board(*, n=3, department=None)``: "one frozen ``DoctorBoard`` per doctor, in the
    order added (only ``department``'s if given): ``doctor_id``, ``status`` ...,
    ``now_serving``, ``next_up`` (a tuple, as ``next_up(doctor_id, n)``), and counts
    (ints): ``waiting`` (checked-in tokens waiting for this doctor, waitlist included,
    AWAY excluded), ``away``, ``booked`` (BOOKED tokens and absent waitlisted ones),
    ``delay_minutes``, ``at`` (the clock)"."""
    alloc = build(WAITLIST)
    t = crowd(alloc, clock)
    # One more absent patient on the waitlist, one away in D1@10, a delay.
    x = alloc.book("Px", "D1", "D1@09", source=Source.ONLINE).id  # waitlisted, absent
    y = alloc.book("Py", "D1", "D1@10").id
    alloc.step_out(y)
    alloc.call_next("D1")  # e
    alloc.delay("D1", 7)
    clock.now = at(9, 5)
    lines = alloc.board()
    assert [line.doctor_id for line in lines] == ["D1", "D2", "D3"]
    d1 = lines[0]
    assert d1 == DoctorBoard(
        doctor_id="D1",
        status=DoctorStatus.AVAILABLE,
        now_serving=alloc.token(t["e"]),
        next_up=(alloc.token(t["a"]), alloc.token(t["c"]), alloc.token(t["w"])),
        waiting=3,  # a, c, and w on the waitlist; y is away
        away=1,  # y
        booked=2,  # b, and x on the waitlist
        delay_minutes=7,
        at=at(9, 5),
    )
    assert alloc.token(x).status.name == "WAITLISTED"
    assert lines[1] == DoctorBoard(
        doctor_id="D2",
        status=DoctorStatus.AVAILABLE,
        now_serving=None,
        next_up=(),
        waiting=0,
        away=0,
        booked=0,
        delay_minutes=0,
        at=at(9, 5),
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        d1.waiting = 0  # type: ignore[misc]
    assert alloc.board(n=1)[0].next_up == (alloc.token(t["a"]),)
    assert alloc.board(n=0)[0].next_up == ()
    # An away patient on the waitlist counts as away.
    alloc.call_next("D1")  # a
    alloc.step_out(t["a"])  # from consultation: back in D1@09, away
    assert (alloc.board()[0].away, alloc.board()[0].waiting) == (2, 2)


def test_board_of_a_department(build: Build, clock: Clock) -> None:
    """Section 10: "(only ``department``'s if given)"; a department that is not a str is refused."""
    alloc = build()
    assert [line.doctor_id for line in alloc.board(department="General Medicine")] == [
        "D1",
        "D2",
    ]
    assert [line.doctor_id for line in alloc.board(department="Cardiology")] == ["D3"]
    assert alloc.board(department="Radiology") == []
    with pytest.raises(InvalidArgumentError, match="department must be a str"):
        alloc.board(department=3)  # type: ignore[arg-type]


def test_board_status_is_the_first_that_applies(build: Build) -> None:
    """Section 10: "``status`` (``DoctorStatus.AVAILABLE``, ``PAUSED``, ``UNAVAILABLE`` or
    ``ENDED``; the first that applies of ENDED, UNAVAILABLE, PAUSED)"."""
    alloc = build()

    def status() -> DoctorStatus:
        return alloc.board(department="Cardiology")[0].status

    assert status() is DoctorStatus.AVAILABLE
    alloc.pause("D3")
    assert status() is DoctorStatus.PAUSED
    alloc.mark_unavailable("D3")
    assert status() is DoctorStatus.UNAVAILABLE
    alloc.resume("D3")
    assert status() is DoctorStatus.UNAVAILABLE
    alloc.pause("D3")
    alloc.end_day("D3")
    assert status() is DoctorStatus.ENDED


# ============================================================================ due notices


def test_notify_within_is_validated() -> None:
    """``Policies.notify_within`` (int >= 0, default 0 = off); "``notify_within < 0`` ...
    raise ``InvalidArgumentError``"."""
    assert Policies().notify_within == 0
    assert Policies(notify_within=3).notify_within == 3
    for bad in (-1, True, 1.5, "2", None):
        with pytest.raises(InvalidArgumentError, match="notify_within must be"):
            Policies(notify_within=bad)  # type: ignore[arg-type]


def test_no_notice_while_off(build: Build, clock: Clock) -> None:
    """Default 0 = off: no ``TokenDue``, and the snapshot has no notices."""
    alloc = build(WAITLIST)
    heard = events_of(alloc)
    crowd(alloc, clock)
    alloc.call_next("D1")
    assert not any(isinstance(e, TokenDue) for e in heard)
    assert "notified" not in alloc.snapshot()


def dues(heard: list[Event]) -> list[tuple[str, int]]:
    return [(e.token.id, e.ahead) for e in heard if isinstance(e, TokenDue)]


def test_a_due_notice_once_per_token(build: Build, clock: Clock) -> None:
    """**Due notices**: "when it is k > 0, a checked-in token (a checked-in waitlisted one
    included) whose place in its doctor's call order (``next_up`` order, 1 = next) is at
    most k after a change gets one ``TokenDue(token, ahead)`` event (``ahead`` = patients
    to be called before it, so ``ahead < k``); once per token"."""
    alloc = build(Policies(on_full=OnFull.WAITLIST, notify_within=2))
    heard = events_of(alloc)
    clock.now = at(9)
    a = alloc.book("Pa", "D1", "D1@09").id
    assert dues(heard) == [(a, 0)]
    b = alloc.book("Pb", "D1", "D1@09", source=Source.ONLINE).id  # not present: none
    c = alloc.book("Pc", "D1", "D1@09").id
    w = alloc.book("Pw", "D1", "D1@09").id  # waitlisted, third: none yet
    assert alloc.token(w).slot_id is None
    assert dues(heard) == [(a, 0), (c, 1)]
    # The notice is the call's last event, of the same version.
    assert kinds(heard[-3:]) == ["TokenBooked", "TokenDue", "TokenWaitlisted"]
    booked, due = heard[-3], heard[-2]
    assert (due.version, due.step, due.steps) == (booked.version, 2, 2)
    alloc.call_next("D1")  # a: c and w are next; w, waitlisted and present, is sent one
    assert dues(heard) == [(a, 0), (c, 1), (w, 1)]
    alloc.check_in(b)  # b is next after c now, but c was sent one: only b is
    assert ids(alloc.next_up("D1", 2)) == [b, c]
    assert dues(heard)[-1] == (b, 0)
    n = len(heard)
    alloc.call_next("D1")
    alloc.call_next("D1")  # once per token: nobody new within 2
    assert dues(heard[n:]) == []
    assert alloc.snapshot()["notified"] == sorted([a, b, c, w])


def test_a_notice_again_after_stepping_out_or_a_missed_call(build: Build, clock: Clock) -> None:
    """Section 10: "once per token, and once more only after it has stepped out or missed a call and
    come back"."""
    alloc = build(Policies(notify_within=1))
    heard = events_of(alloc)
    clock.now = at(9)
    a = alloc.book("Pa", "D1", "D1@09").id
    b = alloc.book("Pb", "D1", "D1@09").id
    assert dues(heard) == [(a, 0)]
    alloc.step_out(a)  # b is next now
    assert dues(heard) == [(a, 0), (b, 0)]
    alloc.check_in(a)  # back at its place, before b: sent one again
    assert dues(heard) == [(a, 0), (b, 0), (a, 0)]
    alloc.call_next("D1")  # a in consultation; b next, sent one already
    alloc.missed_call(a)  # a, booked again, is not present
    assert dues(heard)[3:] == []
    alloc.check_in(a)
    assert dues(heard)[3:] == [(a, 0)]
    # Moving around does not send a notice again.
    alloc.retriage(b, Priority.EMERGENCY)
    alloc.retriage(b, Priority.STANDARD)
    assert dues(heard)[3:] == [(a, 0)]


def test_due_notices_survive_snapshot_and_journal(build: Build, clock: Clock) -> None:
    """The notices sent are state: snapshots, the journal and ``check_invariants`` cover
    "due notices already sent"."""
    policies = Policies(notify_within=2)
    alloc = build(policies)
    clock.now = at(9)
    for patient in ("Pa", "Pb", "Pc"):
        alloc.book(patient, "D1", "D1@09")
    snapshot = alloc.snapshot()
    assert snapshot["notified"] == ["D1-001", "D1-002"]
    copy = Allocator.from_snapshot(snapshot, policies=policies, clock=clock)
    assert copy.snapshot() == snapshot
    copy.call_next("D1")
    alloc.call_next("D1")
    assert copy.snapshot() == alloc.snapshot()
    assert alloc.snapshot()["notified"] == ["D1-001", "D1-002", "D1-003"]
    alloc.check_invariants()
    bad = dict(snapshot, notified=["D1-009"])
    with pytest.raises(InvalidArgumentError, match="notified"):
        Allocator.from_snapshot(bad, policies=policies, clock=clock)


def test_a_journal_with_notices_replays_exactly(clock: Clock) -> None:
    """Replay of a ``TokenDue`` marks the token as sent one; a notice that contradicts the
    state is refused."""
    policies = Policies(notify_within=2)
    alloc, day_clock, journal = new_day(policies)
    day_clock.now = day_clock.now.replace(hour=9)
    for patient in ("Pa", "Pb", "Pc"):
        alloc.book(patient, "D1")
    alloc.step_out("D1-001")
    assert [e.token.id for e in journal if isinstance(e, TokenDue)] == [
        "D1-001",
        "D1-002",
        "D1-003",
    ]
    replica = Allocator.replay(journal, policies=policies, clock=day_clock)
    assert replica.snapshot() == alloc.snapshot()
    alloc.check_in("D1-001")
    replica.apply(journal)
    assert replica.snapshot() == alloc.snapshot()
    assert alloc.snapshot()["notified"] == ["D1-001", "D1-002", "D1-003"]
    first = next(e for e in journal if isinstance(e, TokenDue))
    twice = [*journal, attrs.evolve(first, version=alloc.version + 1, step=1, steps=1)]
    with pytest.raises(InvalidArgumentError, match="already"):
        Allocator.replay(twice, policies=policies, clock=day_clock)


# ============================================================================ preview


def test_preview_shows_a_change_without_making_it(build: Build, clock: Clock) -> None:
    """``preview(change)``: "runs ``change(alloc)`` (a callable taking the allocator) and
    returns the events it would have emitted, then undoes it all: state, ``version`` and
    counters as before; no subscriber sees anything ... Lets a desk show "7 patients move, 2
    to the waitlist" before closing a slot"."""
    alloc = build(WAITLIST)
    heard = events_of(alloc)
    clock.now = at(8, 45)
    # D3 (alone in Cardiology): D3@09 and D3@10 full, one place left in D3@11.
    for i in range(8):
        alloc.book(f"P{i}", "D3", source=Source.ONLINE)
    before, version, heard_before = alloc.snapshot(), alloc.version, len(heard)
    events = alloc.preview(lambda a: a.close_slot("D3@09"))
    moved = [e for e in events if isinstance(e, TokenMoved)]
    assert kinds(events) == ["SlotClosed", "TokenMoved", "TokenMoved", "TokenMoved"]
    assert [e.to_slot_id for e in moved] == ["D3@11", None, None]  # 3 move, 2 waitlisted
    assert {e.version for e in events} == {version + 1}
    assert [(e.step, e.steps) for e in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert alloc.snapshot() == before
    assert alloc.version == version
    assert len(heard) == heard_before
    alloc.check_invariants()
    # The same change for real emits exactly those events; the next booking takes the
    # number the preview's did not use up.
    alloc.close_slot("D3@09")
    assert heard[heard_before:] == events
    assert alloc.book("P9", "D3").id == "D3-009"


def test_preview_of_several_calls(build: Build, clock: Clock) -> None:
    """Each call in ``change`` is a change of its own (its own ``version``), as for real."""
    alloc = build()
    clock.now = at(9)
    version = alloc.version

    def change(a: Allocator) -> None:
        a.book("Pa", "D1")
        a.call_next("D1")
        assert a.version == version + 2

    events = alloc.preview(change)
    assert [(type(e).__name__, e.version) for e in events] == [
        ("TokenBooked", version + 1),
        ("TokenCalled", version + 2),
    ]
    assert alloc.version == version
    assert alloc.tokens() == []


def test_preview_lets_an_error_through_and_changes_nothing(build: Build, clock: Clock) -> None:
    """Section 10: "if ``change`` raises, the error propagates and nothing changed"."""
    alloc = build()
    heard = events_of(alloc)
    before = alloc.snapshot()

    def change(a: Allocator) -> None:
        a.book("Pa", "D1")
        a.pause("D1")
        a.call_next("D1")  # paused: raises

    with pytest.raises(InvalidTransitionError):
        alloc.preview(change)
    assert alloc.snapshot() == before
    assert heard == []
    with pytest.raises(InvalidArgumentError, match="change must be callable"):
        alloc.preview("close")  # type: ignore[arg-type]


def test_a_preview_leaves_the_subscriptions_alone(build: Build, clock: Clock) -> None:
    """Section 10, ``preview``: "no subscriber sees anything". Subscriptions are the
    host's, not the day's: a change that subscribes, unsubscribes or previews inside a
    preview is refused (InvalidArgumentError), and the host's subscriber goes on hearing
    the real calls."""
    alloc = build()
    clock.now = at(9)
    heard = events_of(alloc)
    unsubscribe = alloc.subscribe(lambda event: None)
    for change in (
        lambda a: a.subscribe(print),
        lambda a: unsubscribe(),
        lambda a: a.preview(lambda b: b.book("Pa", "D1")),
    ):
        with pytest.raises(InvalidArgumentError, match=r"inside a preview|another change"):
            alloc.preview(change)
    assert heard == []
    alloc.book("Pb", "D1")
    assert kinds(heard) == ["TokenBooked"]
    unsubscribe()  # outside a preview: allowed


def test_preview_with_a_subscriber_calling_back(build: Build, clock: Clock) -> None:
    """A preview made by a subscriber, while events are delivered, shows its own events
    only, and the events being delivered still reach every subscriber."""
    alloc = build()
    clock.now = at(9)
    previews: list[list[str]] = []
    heard: list[str] = []

    def desk(event: Event) -> None:
        heard.append(type(event).__name__)
        if len(previews) < 1:
            previews.append(kinds(alloc.preview(lambda a: a.call_next("D1"))))

    alloc.subscribe(desk)
    alloc.book("Pa", "D1")
    assert previews == [["TokenCalled"]]
    assert heard == ["TokenBooked"]
    assert alloc.now_serving("D1") is None


# ============================================================================ properties


def walk(name: str, seed: int, steps: int) -> tuple[Allocator, Clock]:
    alloc, clock, _ = new_day(POLICIES[name])
    rng = random.Random(seed)
    for _ in range(steps):
        step(alloc, clock, rng)
    return alloc, clock


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    seed=st.integers(0, 10**6),
    steps=st.integers(0, 200),
    n=st.integers(0, 8),
)
def test_next_up_equals_successive_call_next(name: str, seed: int, steps: int, n: int) -> None:
    """``next_up(d, n)`` names the patients ``n`` successive ``call_next`` calls call, on a
    copy (unpaused: a paused doctor's ``call_next`` raises), on random days."""
    alloc, clock = walk(name, seed, steps)
    before = alloc.snapshot()
    for doctor in DOCTORS:
        shown = alloc.next_up(doctor, n)
        assert alloc.snapshot() == before
        line = next(line for line in alloc.board(n=n) if line.doctor_id == doctor)
        assert line.next_up == tuple(shown)
        copy = Allocator.from_snapshot(before, policies=POLICIES[name], clock=clock)
        if line.status is DoctorStatus.ENDED:
            assert shown == []
            continue
        if line.status is DoctorStatus.UNAVAILABLE:
            continue  # call_next refuses; nothing to compare with
        copy.resume(doctor)
        called = []
        for _ in range(n):
            token = copy.call_next(doctor)
            if token is None:
                break
            called.append(token.id)
        assert ids(shown) == called
    alloc.check_invariants()


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 10**6), name=st.sampled_from(["strict-next-slot", "user-policy"]))
def test_due_notices_once_each_and_within_k(seed: int, name: str) -> None:
    """A token is sent ``TokenDue`` at most once, unless it stepped out or missed a call in
    between; ``ahead < k``, and it is the token's place in ``next_up`` when delivered;
    after each change every patient within ``k`` of the doctors the change touched has been
    sent one."""
    policies = POLICIES[name]
    k = policies.notify_within
    assert k > 0
    alloc, clock, journal = new_day(policies)
    places: list[bool] = []

    def check(event: Event) -> None:
        if isinstance(event, TokenDue):
            shown = alloc.next_up(event.token.doctor_id, k)
            places.append(ids(shown)[event.ahead] == event.token.id)

    alloc.subscribe(check)
    rng = random.Random(seed)
    for _ in range(200):
        version, start = alloc.version, len(journal)
        step(alloc, clock, rng)
        if alloc.version == version:
            continue
        touched = set()
        for event in journal[start:]:
            token = getattr(event, "token", None)
            if token is not None:
                touched.add(token.doctor_id)
            if isinstance(event, TokenMoved) and event.from_slot_id is not None:
                touched.add(alloc.slot(event.from_slot_id).doctor_id)
        notified = set(alloc.snapshot().get("notified", []))
        for doctor in sorted(touched):
            assert set(ids(alloc.next_up(doctor, k))) <= notified
    assert all(places)
    sent: Counter[str] = Counter()
    for event in journal:
        if isinstance(event, TokenDue):
            assert 0 <= event.ahead < k
            sent[event.token.id] += 1
            assert sent[event.token.id] == 1, event
        elif type(event).__name__ in ("TokenSteppedOut", "TokenCallMissed", "TokenNoShow"):
            sent[event.token.id] = 0  # type: ignore[attr-defined]


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    name=st.sampled_from(sorted(POLICIES)),
    seed=st.integers(0, 10**6),
    steps=st.integers(0, 150),
    changes=st.integers(1, 4),
    what=st.integers(0, 10**6),
)
def test_preview_is_the_change_undone(
    name: str, seed: int, steps: int, changes: int, what: int
) -> None:
    """``preview`` leaves ``snapshot()`` and ``version`` as they were, and returns exactly
    the events the same change emits when made for real (on a copy)."""
    alloc, clock = walk(name, seed, steps)
    heard = events_of(alloc)
    before, version, now = alloc.snapshot(), alloc.version, clock.now

    def change(a: Allocator) -> None:
        rng = random.Random(what)
        for _ in range(changes):
            step(a, clock, rng)

    shown = alloc.preview(change)
    assert heard == []
    assert alloc.snapshot() == before
    assert alloc.version == version
    alloc.check_invariants()
    clock.now = now
    copy = Allocator.from_snapshot(before, policies=POLICIES[name], clock=clock)
    real = events_of(copy)
    change(copy)
    assert shown == real
    # The allocator goes on as the copy does.
    clock.now = now
    change(alloc)
    assert alloc.snapshot() == copy.snapshot()
    assert heard == real
