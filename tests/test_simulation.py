"""The simulation: scenarios, determinism, independent streams, rows, summaries, replications.

Validation against queueing theory lives in ``test_validation.py``.
"""

from __future__ import annotations

import itertools
import json
import math
import pickle
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import date, datetime, time, timedelta
from typing import Any

import attrs
import pytest

from opd_engine import (
    Allocator,
    InvalidArgumentError,
    MoveReason,
    OnFull,
    Policies,
    Priority,
    Reallocation,
    Source,
    StrictPriority,
    TokenStatus,
)
from opd_engine.simulation import (
    Arrivals,
    Break,
    DoctorPlan,
    EventRecord,
    Exponential,
    Fixed,
    LogNormal,
    Normal,
    Replication,
    Scenario,
    Session,
    SimulationResult,
    Summary,
    _engine,
    _report,
    _results,
    replicate,
    simulate,
)

DAY = Scenario.default_day()
EVENT_KINDS = {
    "TokenBooked",
    "TokenWaitlisted",
    "TokenMoved",
    "TokenCheckedIn",
    "TokenCalled",
    "TokenCompleted",
    "TokenCancelled",
    "TokenNoShow",
    "SlotResized",
    "DoctorDelayed",
    "DoctorUnavailable",
    "DoctorAvailable",
    "DoctorAdded",
    "SlotAdded",
    "SlotClosed",
    "TokenRetriaged",
    "TokenCallMissed",
    "PlacesGranted",
}


@pytest.fixture(scope="module")
def day() -> SimulationResult:
    return simulate(DAY, 1)


def plan_with(**changes: Any) -> DoctorPlan:
    """The clinic's doctor with some fields changed."""
    return attrs.evolve(clinic().doctors[0], **changes)


def clinic(**changes: Any) -> Scenario:
    """One doctor, one morning session of 30-minute slots, every source, walk-ins."""
    plan = DoctorPlan(
        id="D1",
        name="Dr. One",
        sessions=[Session(start=time(9), end=time(12), slot_minutes=30, capacity=4)],
        consult=Exponential(7.0),
        prebooked={Source.ONLINE: 1, Source.PAID: 1, Source.FOLLOW_UP: 1},
        arrivals=[
            Arrivals(per_hour=4.0, start=time(8, 30), until=time(11, 30)),
            Arrivals(per_hour=0.5, start=time(8, 30), until=time(11), priority=Priority.EMERGENCY),
        ],
    )
    return Scenario(doctors=[plan], **changes)


# ----------------------------------------------------------------------------- scenario


def test_default_day_has_what_the_issue_asks() -> None:
    """Scenario.default_day(): 3 doctors or more, 2 departments, every kind of event, and
    every front-desk operation: a reschedule, a re-triage, a missed call, a break, a doctor
    called away and back."""
    assert len(DAY.doctors) >= 3
    assert len({d.department for d in DAY.doctors}) == 2
    assert any(d.late_start for d in DAY.doctors)
    assert any(d.unavailable_at is not None and d.returns_at is None for d in DAY.doctors)
    assert any(d.returns_at is not None for d in DAY.doctors)
    assert any(d.breaks for d in DAY.doctors)
    seen = set()
    reasons = set()
    for seed in (1, 2, 3):
        rows = simulate(DAY, seed).events()
        seen |= {row["event"] for row in rows}
        reasons |= {row["reason"] for row in rows if row["event"] == "TokenMoved"}
    assert seen == EVENT_KINDS
    assert {"RESCHEDULED", "SLOT_CLOSED", "REASSIGNED"} <= reasons


def test_session_cuts_slots_with_a_short_last_one() -> None:
    session = Session(start=time(9), end=time(10, 45), slot_minutes=30, capacity=2)
    assert session.slots() == [
        (timedelta(hours=9), timedelta(hours=9, minutes=30)),
        (timedelta(hours=9, minutes=30), timedelta(hours=10)),
        (timedelta(hours=10), timedelta(hours=10, minutes=30)),
        (timedelta(hours=10, minutes=30), timedelta(hours=10, minutes=45)),
    ]
    assert Session(start=timedelta(hours=30), end=timedelta(hours=31)).start == timedelta(hours=30)


def test_with_policies_changes_only_the_policies() -> None:
    strict = Policies(ordering=StrictPriority())
    changed = DAY.with_policies(strict)
    assert changed.policies is strict
    assert attrs.evolve(changed, policies=DAY.policies) == DAY


def test_scenarios_pickle() -> None:
    """Scenarios travel to worker processes in `replicate`."""
    assert pickle.loads(pickle.dumps(DAY)) == DAY


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Session(start=time(10), end=time(9)), "end must be after start"),
        (lambda: Session(start=time(9), end=time(10), slot_minutes=0), "slot_minutes"),
        (lambda: Session(start=time(9), end=time(10), capacity=-1), "capacity"),
        (lambda: Session(start="09:00", end=time(10)), "start must be a datetime.time"),  # type: ignore[arg-type]
        (lambda: Arrivals(per_hour=2.0, until=time(10)), "start is needed"),
        (
            lambda: Arrivals(per_hour={time(8): 1.0}, start=time(8), until=time(10)),
            "start must be None",
        ),
        (lambda: Arrivals(per_hour=-1, start=time(8), until=time(10)), "per_hour must be >= 0"),
        (lambda: Arrivals(per_hour=1, start=time(10), until=time(9)), "until must be after"),
        (lambda: Arrivals(per_hour="1", start=time(8), until=time(9)), "per_hour must be"),  # type: ignore[arg-type]
        (
            lambda: Arrivals(per_hour=1, start=time(8), until=time(9), priority=1),  # type: ignore[arg-type]
            "priority must be one of",
        ),
        (lambda: Exponential(0), "mean must be > 0"),
        (lambda: LogNormal(10, -1), "sd must be > 0"),
        (lambda: Fixed(float("nan")), "minutes must be a finite number"),
        (lambda: Normal(0, -1), "sd must be >= 0"),
        (lambda: DoctorPlan(id="D1", sessions=[]), "sessions must hold at least one"),
        (lambda: DoctorPlan(id="", sessions=[Session(start=time(9), end=time(10))]), "id must"),
        (
            lambda: DoctorPlan(
                id="D1",
                sessions=[
                    Session(start=time(9), end=time(11)),
                    Session(start=time(10), end=time(12)),
                ],
            ),
            "sessions must not overlap",
        ),
        (
            lambda: DoctorPlan(
                id="D1",
                sessions=[Session(start=time(9), end=time(10))],
                consult=10,  # type: ignore[arg-type]
            ),
            "consult must be a Duration",
        ),
        (
            lambda: DoctorPlan(
                id="D1", sessions=[Session(start=time(9), end=time(10))], late_start=-5
            ),
            "late_start must be >= 0",
        ),
        (
            lambda: DoctorPlan(
                id="D1", sessions=[Session(start=time(9), end=time(10))], late_start=24 * 60 + 1
            ),
            "late_start must be <= 1440",
        ),
        (
            lambda: DoctorPlan(
                id="D1", sessions=[Session(start=time(9), end=time(10))], consult_minutes=0
            ),
            "consult_minutes must be >= 1",
        ),
        (
            lambda: DoctorPlan(
                id="D1", sessions=[Session(start=time(9), end=time(10))], prebooked={"x": 1}
            ),
            "prebooked key must be one of",
        ),
        (lambda: DoctorPlan(id="D1", sessions="morning"), "sessions must be a sequence"),  # type: ignore[arg-type]
        (lambda: Scenario(doctors=[]), "doctors must hold at least one"),
        (lambda: clinic(no_show={Source.ONLINE: 1.5}), r"no_show\[ONLINE\] must be <= 1"),
        (lambda: clinic(cancellation=[0.1]), "cancellation must be a mapping"),
        (lambda: clinic(policies="strict"), "policies must be a Policies"),
        (lambda: clinic(day=datetime(2026, 1, 1)), "day must be a datetime.date"),
        (lambda: clinic(punctuality=5), "punctuality must be a Duration"),
        (lambda: clinic(retriage_per_hour=-0.5), "retriage_per_hour must be >= 0"),
        (lambda: clinic(retriage_per_hour="often"), "retriage_per_hour must be a finite"),
        (lambda: clinic(missed_call=1.5), r"missed_call must be <= 1, got missed_call=1.5"),
        (lambda: clinic(missed_call=-0.1), "missed_call must be >= 0"),
        (lambda: clinic(missed_call_wait=-1), "missed_call_wait must be >= 0"),
        (lambda: clinic(missed_call_wait=2000), "missed_call_wait must be <= 1440"),
        (lambda: clinic(missed_call_return=3), "missed_call_return must be a Duration"),
        (lambda: clinic(reschedule={Source.ONLINE: 2}), r"reschedule\[ONLINE\] must be <= 1"),
        (lambda: plan_with(breaks=[time(11)]), "breaks must be a sequence of Break"),
        (
            lambda: plan_with(breaks=[Break(start=time(9, 15))]),
            "a break's start must be the start of one of the doctor's slots",
        ),
        (
            lambda: plan_with(breaks=[Break(start=time(9), closed_at=time(9, 30))]),
            "a break's closed_at must be before its slot's end",
        ),
        (
            lambda: plan_with(breaks=[Break(start=time(9)), Break(start=time(9))]),
            "breaks must close distinct slots",
        ),
        (lambda: Break(start="11:00"), "start must be a datetime.time"),  # type: ignore[arg-type]
        (lambda: plan_with(returns_at=time(11)), "returns_at needs unavailable_at"),
        (
            lambda: plan_with(unavailable_at=time(11), returns_at=time(10)),
            "returns_at must be after unavailable_at",
        ),
        (
            lambda: Scenario(doctors=[clinic().doctors[0], clinic().doctors[0]]),
            "doctor ids must be unique",
        ),
    ],
)
def test_bad_scenarios_are_refused(build: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        build()


@pytest.mark.parametrize(("seed", "message"), [("1", "seed must be an int"), (True, "seed")])
def test_simulate_refuses_bad_arguments(seed: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        simulate(DAY, seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="scenario must be a Scenario"):
        simulate("day", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="seeds must hold at least one"):
        replicate(DAY, [])
    with pytest.raises(InvalidArgumentError, match="map must be callable"):
        replicate(DAY, [1], map=None)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- random draws


@pytest.mark.parametrize(
    "duration", [Exponential(8.0), LogNormal(15.0, 6.0), Normal(-10.0, 10.0), Fixed(5.0)]
)
def test_durations_have_their_stated_moments(
    duration: Exponential | LogNormal | Normal | Fixed,
) -> None:
    rng = random.Random(3)
    draws = [duration.sample(rng) for _ in range(40_000)]
    mean = sum(draws) / len(draws)
    second = sum(d * d for d in draws) / len(draws)
    scale = math.sqrt(duration.second_moment)
    assert abs(mean - duration.mean) < 0.03 * scale
    assert abs(second - duration.second_moment) < 0.06 * duration.second_moment + 1e-9


def test_fixed_draws_nothing() -> None:
    rng = random.Random(1)
    state = rng.getstate()
    assert Fixed(6).sample(rng) == 6
    assert rng.getstate() == state


def test_arrivals_follow_their_steps() -> None:
    """A morning peak: 12 an hour from 08:00, 3 an hour from 10:00, none after 12:00."""
    arrivals = Arrivals(per_hour={time(10): 3.0, time(8): 12.0}, until=time(12))
    counts: Counter[str] = Counter()
    days = 200
    for seed in range(days):
        for offset in arrivals.times(random.Random(seed)):
            assert timedelta(hours=8) <= offset < timedelta(hours=12)
            counts["peak" if offset < timedelta(hours=10) else "late"] += 1
    # Poisson counts: mean 24 and 6 a day; the tolerance is 5 standard errors.
    assert abs(counts["peak"] / days - 24) < 5 * math.sqrt(24 / days)
    assert abs(counts["late"] / days - 6) < 5 * math.sqrt(6 / days)


# ----------------------------------------------------------------------------- determinism


def fingerprint(result: SimulationResult) -> str:
    return json.dumps([result.records(), result.events()], default=str, sort_keys=True)


def test_same_seed_same_day(day: SimulationResult) -> None:
    assert fingerprint(simulate(DAY, 1)) == fingerprint(day)
    assert fingerprint(simulate(DAY, 2)) != fingerprint(day)


def test_same_seed_same_day_in_another_process(day: SimulationResult) -> None:
    script = (
        "import json\n"
        "from opd_engine.simulation import Scenario, simulate\n"
        "r = simulate(Scenario.default_day(), 1)\n"
        "print(json.dumps([r.records(), r.events()], default=str, sort_keys=True))\n"
    )
    for hash_seed in ("0", "12345"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hash_seed, "PATH": ""},
        )
        assert done.stdout.strip() == fingerprint(day)


def arrivals_of(result: SimulationResult) -> list[tuple[object, ...]]:
    """Every walk-in and emergency who came: booked, or turned away at the desk."""
    came = [
        (row["doctor_id"], row["booked_at"], row["priority"])
        for row in result.records()
        if row["source"] == "WALK_IN"
    ]
    came += [
        (row["doctor_id"], row["at"], row["priority"])
        for row in result.refusals()
        if row["source"] == "WALK_IN"
    ]
    return sorted(came, key=str)


def test_changing_one_rate_leaves_the_other_streams_alone() -> None:
    """Independent random streams per process: changing the no-show rate does not change
    the arrival stream, and neither does the consultation distribution."""
    base = clinic()
    result = simulate(base, 5)
    shy = simulate(attrs.evolve(base, no_show={Source.ONLINE: 0.9}), 5)
    slow_plan = attrs.evolve(base.doctors[0], consult=LogNormal(12.0, 3.0))
    slow = simulate(attrs.evolve(base, doctors=[slow_plan]), 5)
    assert arrivals_of(shy) == arrivals_of(result) == arrivals_of(slow)
    assert len(arrivals_of(result)) > 5
    no_shows = [r["status"] for r in shy.records()].count("NO_SHOW")
    assert no_shows > [r["status"] for r in result.records()].count("NO_SHOW")


# ----------------------------------------------------------------------------- rows


def test_records_are_rows_with_waits_and_outcomes(day: SimulationResult) -> None:
    rows = day.records()
    tokens = {t.id: t for t in day.allocator.tokens()}
    assert [row["id"] for row in rows] == list(tokens)
    keys = set(rows[0])
    assert {"id", "patient_id", "priority", "source", "slot_id", "wait", "outcome"} <= keys
    for row in rows:
        assert set(row) == keys
        token = tokens[str(row["id"])]
        assert row["status"] == token.status.name
        if token.called_at is not None and token.checked_in_at is not None:
            wait = (token.called_at - token.checked_in_at) / timedelta(minutes=1)
            assert row["wait"] == pytest.approx(wait)
        else:
            assert row["wait"] is None
        expected = {
            TokenStatus.COMPLETED: "seen",
            TokenStatus.CANCELLED: "cancelled",
            TokenStatus.NO_SHOW: "no_show",
        }.get(token.status, "unseen")
        assert row["outcome"] == expected


def test_events_are_rows_with_the_same_keys(day: SimulationResult) -> None:
    rows = day.events()
    keys = set(rows[0])
    assert all(set(row) == keys for row in rows)
    times = [row["at"] for row in rows]
    assert times == sorted(times)
    moved = [row for row in rows if row["event"] == "TokenMoved"]
    assert moved
    assert {row["reason"] for row in moved} <= {r.name for r in MoveReason}
    delayed = [row for row in rows if row["event"] == "DoctorDelayed"]
    assert [(row["doctor_id"], row["minutes"]) for row in delayed] == [("D2", 20)]


def test_the_day_ends_in_a_consistent_state(day: SimulationResult) -> None:
    alloc = day.allocator
    alloc.check_invariants()
    statuses = {t.status for t in alloc.tokens()}
    assert TokenStatus.IN_CONSULTATION not in statuses  # every consultation ended
    assert TokenStatus.CHECKED_IN not in statuses  # every patient present in a slot was seen
    assert TokenStatus.BOOKED not in statuses  # every absent patient was marked a no-show
    unavailable = [e for e in day.events() if e["event"] == "DoctorUnavailable"]
    assert [(e["doctor_id"], e["at"]) for e in unavailable] == [
        ("D4", datetime(2026, 11, 25, 10, 30)),
        ("D3", datetime(2026, 11, 25, 11)),
    ]
    available = [e for e in day.events() if e["event"] == "DoctorAvailable"]
    assert [(e["doctor_id"], e["at"]) for e in available] == [("D4", datetime(2026, 11, 25, 11))]
    # Nobody is called by a doctor who has gone home, or before the doctor's late start.
    for row in day.events():
        if row["event"] == "TokenCalled":
            at = row["at"]
            assert isinstance(at, datetime)
            if row["doctor_id"] == "D3":
                assert at < datetime(2026, 11, 25, 11, 30)  # a consultation started before 11
            if row["doctor_id"] == "D2":
                assert at >= datetime(2026, 11, 25, 9, 20)
            if row["doctor_id"] == "D4":  # nobody while called away to the ward
                assert not datetime(2026, 11, 25, 10, 30) <= at < datetime(2026, 11, 25, 11)
            if row["doctor_id"] == "D1":  # nobody during the break
                assert not datetime(2026, 11, 25, 11) <= at < datetime(2026, 11, 25, 11, 20)


def test_refusals_are_rows(day: SimulationResult) -> None:
    rows = day.refusals()
    assert len(rows) == day.summary().refused
    for row in rows:
        assert row["reason"] in ("full", "closed")
    strict = simulate(clinic(), 2)  # OnFull.REJECT, the default: full slots refuse walk-ins
    assert any(row["reason"] == "full" for row in strict.refusals())


# ----------------------------------------------------------------------------- summary


def test_summary_adds_up(day: SimulationResult) -> None:
    summary = day.summary()
    assert summary is day.summary()  # computed once
    rows = day.records()
    assert summary.tokens == len(rows)
    assert set(summary.by_priority) == {p.name for p in Priority}
    assert set(summary.by_source) == {s.name for s in Source}
    assert sum(s.count for s in summary.by_priority.values()) == len(rows)
    assert sum(s.count for s in summary.by_source.values()) == len(rows)
    for name, stats in summary.by_priority.items():
        group = [r for r in rows if r["priority"] == name]
        waits = sorted(r["wait"] for r in group if r["wait"] is not None)
        assert stats.seen == len(waits)
        assert stats.no_shows == sum(1 for r in group if r["outcome"] == "no_show")
        assert stats.cancellations == sum(1 for r in group if r["outcome"] == "cancelled")
        assert stats.unseen == sum(1 for r in group if r["outcome"] == "unseen")
        assert stats.moves == sum(r["moves"] for r in group)
        if waits:
            assert stats.mean_wait == pytest.approx(sum(waits) / len(waits))
            assert stats.max_wait == waits[-1]
            assert waits[0] <= (stats.p50_wait or 0) <= (stats.p90_wait or 0) <= waits[-1]
    moved = Counter(str(e["reason"]) for e in day.events() if e["event"] == "TokenMoved")
    assert dict(summary.moves) == dict(moved)


def test_doctor_figures(day: SimulationResult) -> None:
    stats = day.summary().by_doctor
    assert set(stats) == {"D1", "D2", "D3", "D4"}
    calls = Counter(e["doctor_id"] for e in day.events() if e["event"] == "TokenCalled")
    for doctor_id, doctor in stats.items():
        assert doctor.patients + doctor.missed_calls == calls[doctor_id]
        assert 0 <= doctor.utilisation <= 1
        assert doctor.idle_minutes == pytest.approx(
            doctor.session_minutes * (1 - doctor.utilisation) - doctor.calling_minutes
        )
        assert 0 <= doctor.idle_waiting_minutes <= doctor.idle_minutes + 1e-9
        assert 0 <= doctor.unseen_present <= doctor.unseen
    assert stats["D1"].session_minutes == 220  # 09:00-13:00, less the 11:00 break
    assert stats["D2"].session_minutes == 220  # 20 minutes late
    assert stats["D3"].session_minutes == 120  # went home at 11:00
    assert stats["D3"].overtime_minutes == 0
    assert stats["D4"].session_minutes == 150  # 09:00-12:00, less 10:30-11:00 away
    unseen = Counter(r["doctor_id"] for r in day.records() if r["outcome"] == "unseen")
    assert {d: s.unseen for d, s in stats.items()} == {d: unseen[d] for d in stats}
    assert sum(s.missed_calls for s in stats.values()) == sum(
        r["missed_calls"] for r in day.records()
    )


def test_summary_report_and_html(day: SimulationResult) -> None:
    summary = day.summary()
    text = summary.report()
    assert text.splitlines()[0] == "Patients by priority, seed 1 (waits in minutes)"
    assert f"Tokens: {summary.tokens}, refused: {summary.refused}" in text
    page = day._repr_html_()
    assert page.count("<table>") == 3
    assert "<td>EMERGENCY</td>" in page
    assert "<th>idle while a patient waited</th>" in page
    assert repr(day).startswith(f"<SimulationResult seed=1: {summary.tokens} tokens")


def test_html_is_escaped() -> None:
    plan = attrs.evolve(clinic().doctors[0], id="<b>D1</b>")
    page = simulate(Scenario(doctors=[plan]), 1).summary()._repr_html_()
    assert "&lt;b&gt;D1&lt;/b&gt;" in page
    assert "<b>D1</b>" not in page


def test_figures_flatten_the_summary(day: SimulationResult) -> None:
    summary = day.summary()
    figures = summary.figures()
    assert figures["priority.EMERGENCY.count"] == summary.by_priority["EMERGENCY"].count
    assert figures["doctor.D4.utilisation"] == summary.by_doctor["D4"].utilisation
    rows = summary.rows()
    assert len(rows) == len(Priority) + len(Source)
    assert rows[0]["group"] == "priority"


# ----------------------------------------------------------------------------- replications


def test_replicate_summarises_each_seed() -> None:
    seeds = [1, 2, 3, 4]
    replication = replicate(DAY, seeds)
    assert isinstance(replication, Replication)
    assert replication.seeds == (1, 2, 3, 4)
    assert replication.summaries[1] == simulate(DAY, 2).summary()
    estimates = replication.estimates()
    values = [s.by_priority["STANDARD"].mean_wait for s in replication.summaries]
    standard = estimates["priority.STANDARD.mean_wait"]
    assert standard.n == len(values)
    assert standard.mean == pytest.approx(sum(v for v in values if v is not None) / 4)
    assert standard.low < standard.mean < standard.high
    # Student's t with 3 degrees of freedom: half-width 3.182446 standard errors.
    mean = standard.mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values if v is not None) / 3)
    assert standard.high - mean == pytest.approx(3.182446 * sd / 2)
    assert {row["figure"] for row in replication.rows()} == set(estimates)
    assert "<table>" in replication._repr_html_()


def test_replicate_across_processes_matches_in_process() -> None:
    """Any `map` works: ProcessPoolExecutor().map spreads the days over cores."""
    with ProcessPoolExecutor(max_workers=2) as pool:
        spread = replicate(DAY, [5, 6, 7], map=pool.map)
    assert spread.summaries == replicate(DAY, [5, 6, 7]).summaries


def test_a_single_seed_has_no_interval() -> None:
    estimate = replicate(DAY, [9]).estimates()["tokens"]
    assert estimate.low == estimate.mean == estimate.high
    assert estimate.n == 1


def test_summaries_pickle(day: SimulationResult) -> None:
    summary = day.summary()
    assert isinstance(summary, Summary)
    assert pickle.loads(pickle.dumps(summary)) == summary


def test_long_runs_and_other_days() -> None:
    """Offsets past 24 hours are allowed (long validation runs); `day` moves the calendar."""
    end = timedelta(hours=30)
    plan = DoctorPlan(
        id="D1",
        sessions=[Session(start=timedelta(0), end=end, slot_minutes=30 * 60, capacity=10**6)],
        consult=Fixed(5.0),
        arrivals=[Arrivals(per_hour=6.0, start=timedelta(0), until=end)],
    )
    result = simulate(Scenario(doctors=[plan], day=date(2027, 1, 4)), 3)
    rows = result.records()
    assert rows[0]["slot_id"] == "D1@00:00"
    assert max(r["booked_at"] for r in rows) > datetime(2027, 1, 5)
    assert all(r["outcome"] == "seen" for r in rows)


# ----------------------------------------------------------------------------- idle while waiting

STRICT = Reallocation(pull_forward=True, max_moves=2, fill_idle=False)


def minimal_case(fill_idle: bool) -> Scenario:
    """The case of issue 10: one slot of capacity 1 holds an online booking that never
    comes; a present walk-in waits on the waitlist."""
    plan = DoctorPlan(
        id="D1",
        sessions=[Session(start=time(9), end=time(9, 30), slot_minutes=30, capacity=1)],
        consult=Fixed(10.0),
        prebooked={Source.ONLINE: 1, Source.WALK_IN: 1},  # issued in that order
    )
    policies = Policies(
        on_full=OnFull.WAITLIST,
        reallocation=Reallocation() if fill_idle else STRICT,
    )
    return Scenario(
        doctors=[plan], policies=policies, no_show={Source.ONLINE: 1.0}, cancellation={}
    )


def test_idle_fill_leaves_no_doctor_idle_in_the_minimal_case() -> None:
    """A doctor never sits idle while a present patient of theirs waits: the walk-in is
    called at 09:00, though the slot's one place is held by a booking that never comes."""
    result = simulate(minimal_case(fill_idle=True), 1)
    doctor = result.summary().by_doctor["D1"]
    assert doctor.idle_waiting_minutes == 0
    assert result.idle_waiting() == []
    [called] = [e for e in result.events() if e["event"] == "TokenCalled"]
    assert called["at"] == datetime(2026, 11, 25, 9)
    assert called["source"] == "WALK_IN"


def test_strict_rule_shows_idle_minutes_while_a_patient_waits() -> None:
    """With fill_idle=False the walk-in waits for the booking's grace period (15 minutes)
    while the doctor idles: the figure counts exactly those minutes."""
    result = simulate(minimal_case(fill_idle=False), 1)
    doctor = result.summary().by_doctor["D1"]
    assert doctor.idle_waiting_minutes == pytest.approx(15)
    assert result.summary().idle_waiting_minutes == pytest.approx(15)
    assert result.idle_waiting() == [
        {
            "doctor_id": "D1",
            "start": datetime(2026, 11, 25, 9),
            "end": datetime(2026, 11, 25, 9, 15),
            "minutes": 15.0,
        }
    ]
    [called] = [e for e in result.events() if e["event"] == "TokenCalled"]
    assert called["at"] == datetime(2026, 11, 25, 9, 15)
    assert "15.0 of them while a patient of theirs waited" in result.summary().report()


def duty_windows(scenario: Scenario, plan: DoctorPlan) -> list[tuple[datetime, datetime]]:
    """The doctor's duty from the plan alone: sessions after the late start, less breaks
    and time away."""
    midnight = scenario.midnight
    sessions = sorted(plan.sessions, key=lambda s: s.start)
    late = timedelta(minutes=plan.late_start)
    windows = [
        (midnight + s.start + (late if i == 0 else timedelta(0)), midnight + s.end)
        for i, s in enumerate(sessions)
    ]
    gaps = []
    for pause in plan.breaks:
        [slot_end] = [e for s in sessions for a, e in s.slots() if a == pause.start]
        off = pause.start if pause.closed_at is None else max(pause.start, pause.closed_at)
        gaps.append((midnight + off, midnight + slot_end))
    if plan.unavailable_at is not None:
        back = plan.returns_at if plan.returns_at is not None else timedelta(days=2)
        gaps.append((midnight + plan.unavailable_at, midnight + back))
    minute = timedelta(minutes=1)
    on = set()
    for start, end in windows:
        t = start
        while t < end:  # minute by minute: slow, but obviously right
            if not any(a <= t < b for a, b in gaps):
                on.add(t)
            t += minute
    merged: list[tuple[datetime, datetime]] = []
    for t in sorted(on):
        if merged and merged[-1][1] == t:
            merged[-1] = (merged[-1][0], t + minute)
        else:
            merged.append((t, t + minute))
    return merged


def recount_idle_waiting(scenario: Scenario, result: SimulationResult) -> dict[str, float]:
    """Idle-while-waiting minutes rebuilt from the event rows alone: who is present (a
    walk-in or emergency booked present, a check-in, not after a missed call), who is in
    consultation (from the call to its completion or missed call), against each doctor's
    duty taken from the plan."""
    doctors = [plan.id for plan in scenario.doctors]
    arrived: set[str] = set()
    present: dict[str, str] = {}
    count: Counter[str] = Counter()
    busy: dict[str, object] = dict.fromkeys(doctors)
    timeline: list[tuple[datetime, dict[str, bool]]] = []
    for row in result.events():
        token = row["token_id"]
        if token is not None:
            assert isinstance(token, str)
            kind, status, doctor = row["event"], row["status"], str(row["doctor_id"])
            booked_present = row["source"] == "WALK_IN" or row["priority"] == "EMERGENCY"
            if (
                kind == "TokenCheckedIn"
                or status == "CHECKED_IN"
                or (kind in ("TokenBooked", "TokenWaitlisted") and booked_present)
            ):
                arrived.add(token)
            elif kind == "TokenCallMissed":
                arrived.discard(token)
            was = present.pop(token, None)
            if was is not None:
                count[was] -= 1
            if token in arrived and status in ("CHECKED_IN", "WAITLISTED"):
                present[token] = doctor
                count[doctor] += 1
            if kind == "TokenCalled":
                busy[doctor] = token
            elif busy[doctor] == token:
                busy[doctor] = None
        at = row["at"]
        assert isinstance(at, datetime)
        timeline.append((at, {d: busy[d] is None and count[d] > 0 for d in doctors}))
    timeline.append((datetime(2026, 11, 27), dict.fromkeys(doctors, False)))
    minutes = {}
    for plan in scenario.doctors:
        duty = duty_windows(scenario, plan)
        total = 0.0
        for (start, state), (end, _) in itertools.pairwise(timeline):
            if state[plan.id]:
                for a, b in duty:
                    overlap = (min(b, end) - max(a, start)) / timedelta(minutes=1)
                    total += max(0.0, overlap)
        minutes[plan.id] = total
    return minutes


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_idle_waiting_is_what_really_happened(seed: int) -> None:
    """Under the strict rule doctors do idle while patients wait; the engine's figure per
    doctor equals the one rebuilt independently from the events and the plan."""
    strict = DAY.with_policies(attrs.evolve(DAY.policies, reallocation=STRICT))
    result = simulate(strict, seed)
    rebuilt = recount_idle_waiting(strict, result)
    figures = {d: s.idle_waiting_minutes for d, s in result.summary().by_doctor.items()}
    assert figures == pytest.approx(rebuilt, abs=1e-6)
    assert sum(figures.values()) > 0


def test_default_day_never_idle_while_a_patient_waits() -> None:
    """Issue 10: with the default policies the default day has zero idle-while-waiting
    minutes for every seed from 1 to 50 (about a second for the 50 days)."""
    for seed in range(1, 51):
        result = simulate(DAY, seed)
        idle = {d: s.idle_waiting_minutes for d, s in result.summary().by_doctor.items()}
        assert idle == dict.fromkeys(idle, 0.0), (seed, idle)
        assert result.idle_waiting() == []
        # And not merely by the engine's own account: rebuilt from the events, too.
        assert recount_idle_waiting(DAY, result) == idle, seed


def test_idle_waiting_in_summary_figures_and_rows(day: SimulationResult) -> None:
    summary = day.summary()
    figures = summary.figures()
    assert figures["idle_waiting_minutes"] == summary.idle_waiting_minutes
    assert figures["unseen"] == summary.unseen == sum(d.unseen for d in summary.by_doctor.values())
    assert figures["doctor.D1.idle_waiting_minutes"] == 0.0
    rows = summary.doctor_rows()
    assert [r["doctor"] for r in rows] == ["D1", "D2", "D3", "D4"]
    assert rows[3]["unseen"] == summary.by_doctor["D4"].unseen


# ----------------------------------------------------------------------------- the front desk


def events_of(result: SimulationResult, kind: str) -> list[EventRecord]:
    return [row for row in result.events() if row["event"] == kind]


def test_retriage_makes_waiting_patients_emergencies() -> None:
    """A waiting patient's condition worsens at `retriage_per_hour`: the desk re-triages
    them as an emergency, and only while they wait present."""
    waitlist = Policies(on_full=OnFull.WAITLIST)
    assert not events_of(simulate(clinic(policies=waitlist), 4), "TokenRetriaged")
    result = simulate(clinic(retriage_per_hour=3.0, policies=waitlist), 4)
    retriaged = events_of(result, "TokenRetriaged")
    assert len(retriaged) >= 3
    assert {row["priority"] for row in retriaged} == {"EMERGENCY"}
    assert {row["status"] for row in retriaged} <= {"CHECKED_IN", "WAITLISTED"}
    ids = [row["token_id"] for row in retriaged]
    assert len(set(ids)) == len(ids)  # an emergency is not re-triaged again
    # Only while the doctor's day lasts: the unseen still waiting at 12:00 are sent on.
    assert all(row["at"] < datetime(2026, 11, 25, 12) for row in retriaged)
    unseen = [t for t in result.allocator.tokens() if t.status is TokenStatus.WAITLISTED]
    assert unseen
    assert all(t.priority is not Priority.EMERGENCY for t in unseen)
    # Re-triage draws from its own stream: the patients who come are the same (their
    # triage, of course, is not).
    came = [(doctor, at) for doctor, at, _ in arrivals_of(result)]
    before = arrivals_of(simulate(clinic(policies=waitlist), 4))
    assert came == [(doctor, at) for doctor, at, _ in before]


def test_missed_calls_come_back_until_they_are_no_shows() -> None:
    """A called patient who does not come is recorded as a missed call after
    `missed_call_wait` minutes and checks in again later; at `max_missed_calls` the token
    is a no-show and the patient does not come back."""
    scenario = clinic(missed_call=0.5, policies=Policies(max_missed_calls=2))
    result = simulate(scenario, 3)
    missed = events_of(result, "TokenCallMissed")
    assert missed
    calls = {str(row["token_id"]): row["at"] for row in events_of(result, "TokenCalled")}
    stats = result.summary().by_doctor["D1"]
    assert stats.missed_calls == sum(t.missed_calls for t in result.allocator.tokens())
    assert stats.calling_minutes == pytest.approx(2.0 * stats.missed_calls)
    gone = [t for t in result.allocator.tokens() if t.missed_calls == 2]
    assert gone
    assert all(t.status is TokenStatus.NO_SHOW for t in gone)
    assert all(t.priority is not Priority.EMERGENCY for t in gone)
    for row in missed:  # each patient came back and was called again, or gave up
        token = result.allocator.token(str(row["token_id"]))
        if token.status is not TokenStatus.NO_SHOW:
            assert token.checked_in_at is not None
            assert token.checked_in_at > row["at"]
            assert calls[token.id] > row["at"]
    assert TokenStatus.IN_CONSULTATION not in {t.status for t in result.allocator.tokens()}


def test_a_break_closes_its_slot_and_the_doctor_calls_nobody() -> None:
    """A break closes its slot at `closed_at` (`SlotClosed`); its patients move on
    (`SLOT_CLOSED`), and nobody is called from the slot's start to its end."""
    plan = plan_with(breaks=[Break(start=time(10), closed_at=time(9, 45))])
    result = simulate(Scenario(doctors=[plan]), 2)
    [closed] = events_of(result, "SlotClosed")
    assert (closed["slot_id"], closed["at"]) == ("D1@10:00", datetime(2026, 11, 25, 9, 45))
    moved = [r for r in events_of(result, "TokenMoved") if r["reason"] == "SLOT_CLOSED"]
    assert moved
    assert {r["from_slot_id"] for r in moved} == {"D1@10:00"}
    start, end = datetime(2026, 11, 25, 10), datetime(2026, 11, 25, 10, 30)
    assert not [r for r in events_of(result, "TokenCalled") if start <= r["at"] < end]
    stats = result.summary().by_doctor["D1"]
    assert stats.session_minutes == 150  # 09:00-12:00 less the break
    assert stats.idle_waiting_minutes == 0


def test_breaks_listed_later_first_are_the_same_breaks() -> None:
    """Issue: ``simulate()`` died with a bare ``AssertionError`` when two adjacent breaks
    were listed later-first (``Break(11:30), Break(11:00)``). A plan keeps its breaks in
    their slots' order, so the listing order changes nothing."""
    later_first = plan_with(breaks=[Break(start=time(11, 30)), Break(start=time(11))])
    in_order = plan_with(breaks=[Break(start=time(11)), Break(start=time(11, 30))])
    assert later_first == in_order
    result = simulate(Scenario(doctors=[later_first]), 2)
    closed = [(r["slot_id"], r["at"]) for r in events_of(result, "SlotClosed")]
    assert closed == [
        ("D1@11:00", datetime(2026, 11, 25, 11)),
        ("D1@11:30", datetime(2026, 11, 25, 11, 30)),
    ]
    assert result.records() == simulate(Scenario(doctors=[in_order]), 2).records()


def test_a_doctor_called_away_comes_back() -> None:
    """`unavailable_at` then `returns_at`: the doctor's patients wait on the waitlist (no
    colleague in the department), nobody is called meanwhile, and on return the reopened
    slots refill from the waitlist and the doctor calls again."""
    plan = plan_with(unavailable_at=time(10), returns_at=time(10, 40))
    result = simulate(Scenario(doctors=[plan]), 2)
    [away] = events_of(result, "DoctorUnavailable")
    [back] = events_of(result, "DoctorAvailable")
    assert away["at"] == datetime(2026, 11, 25, 10)
    assert back["at"] == datetime(2026, 11, 25, 10, 40)
    calls = [r["at"] for r in events_of(result, "TokenCalled")]
    assert not [t for t in calls if away["at"] <= t < back["at"]]
    assert any(t >= back["at"] for t in calls)
    refills = [
        r
        for r in events_of(result, "TokenMoved")
        if r["reason"] == "FROM_WAITLIST" and r["at"] == back["at"]
    ]
    assert refills
    stats = result.summary().by_doctor["D1"]
    assert stats.session_minutes == 140  # 09:00-12:00 less 40 minutes away
    assert stats.overtime_minutes >= 0


def test_reschedule_moves_bookings_to_later_slots() -> None:
    """A pre-booked patient asking to come later is moved to a later slot of the same
    doctor (`RESCHEDULED`), and comes for the new slot."""
    result = simulate(clinic(reschedule={Source.ONLINE: 1.0}, no_show={}, cancellation={}), 6)
    moved = [r for r in events_of(result, "TokenMoved") if r["reason"] == "RESCHEDULED"]
    assert moved
    for row in moved:
        assert str(row["from_slot_id"]) < str(row["to_slot_id"])  # later the same morning
        assert row["at"] < result.allocator.slot(str(row["from_slot_id"])).start
        token = result.allocator.token(str(row["token_id"]))
        assert token.source is Source.ONLINE
        assert token.checked_in_at is not None
        assert token.checked_in_at >= result.allocator.slot(str(row["to_slot_id"])).start - (
            timedelta(minutes=60)
        )


# ----------------------------------------------------------------------------- the report


@pytest.mark.parametrize("seed", [1, 5, 17])
def test_report_fits_80_columns_and_explains_itself(seed: int) -> None:
    """Issue 14: the report fits an 80-column terminal, a legend explains its columns, and
    one line per doctor explains their idle time and unseen patients."""
    summary = simulate(DAY, seed).summary()
    text = summary.report()
    assert max(len(line) for line in text.splitlines()) <= 80
    legend = text[text.index("\nLegend\n") :]
    for term in ("tokens", "unseen", "refused", "moves", "busy", "idle-waiting", "overflow"):
        assert re.search(rf"^  {term} ", legend, re.MULTILINE), term
    assert "100% busy and overtime" in legend
    for name, doctor in summary.by_doctor.items():
        [line] = [line for line in text.splitlines() if line.startswith(f"{name}: ")]
        assert "idle" in line
        if doctor.unseen:
            assert f"{doctor.unseen} unseen" in text


def test_doctor_explanations() -> None:
    """Each doctor's line says how long they idled, how much of it with a patient waiting,
    and why their unseen patients were not seen."""
    explain = _report.explain
    stats = simulate(minimal_case(fill_idle=False), 1).summary().by_doctor["D1"]
    # Idle 09:00-09:15 with the walk-in waiting, then 09:25-09:30 with nobody left.
    assert explain("D1", stats).startswith("D1: idle 20.0 min, 15.0 of them while a patient")
    busy = attrs.evolve(
        stats, idle_minutes=0.0, idle_waiting_minutes=0.0, unseen=3, unseen_present=2
    )
    assert explain("D1", busy) == (
        "D1: never idle on duty; 3 unseen: 2 here but still waitlisted when the session "
        "ended, 1 on the waitlist who never came."
    )
    calm = attrs.evolve(busy, idle_minutes=12.0, unseen=0, unseen_present=0)
    assert explain("D1", calm) == (
        "D1: idle 12.0 min, only while none of their patients was here; "
        "no patient of theirs left unseen."
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_engine_knows_who_waits_present(seed: int) -> None:
    """The engine's count of present patients per doctor, kept from the tokens the allocator
    returns and the events of the calls that may move others, agrees with
    the allocator's tokens at the end of the day (when unseen patients still wait)."""
    strict = DAY.with_policies(attrs.evolve(DAY.policies, reallocation=STRICT))
    for scenario in (DAY, strict):
        engine = _engine._Day(scenario, seed)
        result = engine.run()
        truth = {
            t.id: t
            for t in result.allocator.tokens()
            if t.status is TokenStatus.CHECKED_IN
            or (t.status is TokenStatus.WAITLISTED and t.checked_in_at is not None)
        }
        assert truth  # the day ends with patients still waiting: the check has teeth
        assert engine.present == truth  # each token as it stands, not a stale copy
        counts = Counter(t.doctor_id for t in truth.values())
        assert {d: doctor.waiting for d, doctor in engine.doctors.items()} == {
            d: counts[d] for d in engine.doctors
        }


def test_duty_is_the_sessions_less_the_gaps() -> None:
    """Duty minutes leave out breaks and time away, wherever they fall and overlap."""
    at = datetime(2026, 11, 25)

    def h(hour: float) -> datetime:
        return at + timedelta(hours=hour)

    windows = [(h(9), h(12)), (h(14), h(16))]
    assert _results._without(windows, []) == windows
    gaps = [(h(11.5), h(15)), (h(8), h(9.5)), (h(10), h(10.5)), (h(10.25), h(10.75))]
    assert _results._without(windows, gaps) == [
        (h(9.5), h(10)),
        (h(10.75), h(11.5)),
        (h(15), h(16)),
    ]
    assert _results._without(windows, [(h(8), h(17))]) == []


def test_the_moves_line_wraps_between_reasons() -> None:
    """A reason and its count stay on one line; every line fits 80 columns."""
    reasons = [f"{reason.name} {count}" for count, reason in enumerate(MoveReason, start=10)]
    lines = _report._items("Moves: ", reasons)
    assert len(lines) > 1
    assert max(len(line) for line in lines) <= 80
    assert " ".join(line.strip() for line in lines) == "Moves: " + ", ".join(reasons)
    assert _report._items("Moves: ", []) == ["Moves: none"]


# ----------------------------------------------------------------------------- what the engine sees


def busy_clinic(on_full: OnFull) -> Scenario:
    """The clinic crowded, under ``on_full``, with every front-desk operation on: calls
    that displace, refill, pull forward, re-queue late arrivals and seat from the waitlist."""
    policies = attrs.evolve(DAY.policies, on_full=on_full)
    doctor = attrs.evolve(
        clinic().doctors[0],
        sessions=[Session(start=time(9), end=time(12), slot_minutes=30, capacity=2)],
        prebooked={Source.ONLINE: 2, Source.PAID: 1, Source.FOLLOW_UP: 1},
    )
    return Scenario(
        doctors=[doctor],
        policies=policies,
        reschedule={Source.ONLINE: 0.3},
        retriage_per_hour=0.5,
        missed_call=0.2,
    )


STRICT_DAY = DAY.with_policies(attrs.evolve(DAY.policies, reallocation=STRICT))
LEARNING_CASES = [
    *((DAY, seed) for seed in range(1, 21)),
    *((STRICT_DAY, seed) for seed in range(1, 11)),
    *((busy_clinic(on_full), seed) for on_full in OnFull for seed in range(1, 6)),
    *((minimal_case(fill_idle), 1) for fill_idle in (True, False)),
]


def account(result: SimulationResult) -> tuple[object, ...]:
    return (
        result.records(),
        result.events(),
        result.refusals(),
        result.idle_waiting(),
        result.summary(),
    )


def test_the_engine_learns_from_tokens_what_the_events_say() -> None:
    """The engine follows most calls by the token they return, and subscribes only to calls
    that may move other tokens; a reference engine following every event of every call
    lives the same days, to the last event and figure (moves by reason included)."""
    moved = Counter[str]()
    for scenario, seed in LEARNING_CASES:
        fast = simulate(scenario, seed)
        reference = _engine._Day(scenario, seed, record=True, trace=True).run()
        assert account(fast) == account(reference), (scenario, seed)
        counted = Counter(
            str(e["reason"]) for e in reference.events() if e["event"] == "TokenMoved"
        )
        assert dict(reference.summary().moves) == dict(counted)
        moved.update(counted)
    # The cases have teeth: every kind of move the engine must learn of happened.
    assert {"DISPLACED", "FROM_WAITLIST", "LATE_ARRIVAL", "PULLED_FORWARD"} <= set(moved)


def test_walk_ins_and_calls_build_no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of walk-ins who are booked, called and seen gives the allocator no subscriber,
    so it builds no event; the events are there when asked for, the day simulated again."""
    plan = DoctorPlan(
        id="D1",
        sessions=[Session(start=time(8), end=time(16), slot_minutes=480, capacity=1000)],
        consult=Exponential(10.0),
        arrivals=[Arrivals(per_hour=5.0, start=time(8), until=time(15))],
    )
    scenario = Scenario(doctors=[plan], no_show={}, cancellation={})
    engine = _engine._Day(scenario, 4)
    subscribed = []
    original = Allocator.subscribe

    def spy(self: Allocator, callback: Callable[[Any], object]) -> Callable[[], None]:
        subscribed.append(callback)
        return original(self, callback)

    monkeypatch.setattr(Allocator, "subscribe", spy)
    result = engine.run()
    monkeypatch.undo()
    assert subscribed == []
    assert engine.events is None
    assert result.summary().tokens > 20
    rows = result.events()
    assert Counter(str(r["event"]) for r in rows)["TokenCalled"] == result.summary().tokens
    assert rows == _engine._Day(scenario, 4, record=True).run().events()


def test_events_replayed_for_other_tokens_are_refused() -> None:
    """The events come from simulating the day again; if that gave other tokens (a policy
    with a state or randomness of its own), the engine says so rather than mix two days."""
    other = simulate(DAY, 2).allocator.tokens()
    with pytest.raises(InvalidArgumentError, match="policies must be deterministic"):
        _engine._recorded(DAY, 1, other)


def test_arrivals_are_drawn_one_at_a_time() -> None:
    """The queue holds one pending arrival per arrival process, not the day's arrivals."""
    end = timedelta(hours=200)
    plan = DoctorPlan(
        id="D1",
        sessions=[Session(start=timedelta(0), end=end, slot_minutes=200 * 60, capacity=10**6)],
        consult=Exponential(10.0),
        arrivals=[Arrivals(per_hour=4.0, start=timedelta(0), until=end) for _ in range(3)],
    )
    engine = _engine._Day(Scenario(doctors=[plan], no_show={}, cancellation={}), 1)
    engine.prepare()
    arrivals = [a for _, _, a in engine.queue if getattr(a, "__name__", "") == "arrive"]
    assert len(arrivals) == 3
    assert len(engine.queue) < 10


def test_a_refused_emergency_keeps_its_priority() -> None:
    """An emergency turned away (its doctor has gone) is counted as an emergency."""
    emergencies = Arrivals(per_hour=3.0, start=time(9), until=time(12), priority=Priority.EMERGENCY)
    plan = plan_with(unavailable_at=time(10), arrivals=[*clinic().doctors[0].arrivals, emergencies])
    result = simulate(Scenario(doctors=[plan]), 3)
    refused = [r for r in result.refusals() if r["source"] == "WALK_IN"]
    assert {r["priority"] for r in refused} == {"EMERGENCY", "STANDARD"}
    by_priority = result.summary().by_priority
    assert by_priority["EMERGENCY"].refused == sum(
        1 for r in refused if r["priority"] == "EMERGENCY"
    )


def test_records_are_the_allocators_rows_with_wait_and_outcome(day: SimulationResult) -> None:
    """The simulation's rows, built field by field for speed, are the allocator's own rows
    (every Token field, enums by name) plus ``wait`` and ``outcome``."""
    rows = day.records()
    plain = day.allocator.records()
    assert [{k: v for k, v in row.items() if k not in ("wait", "outcome")} for row in rows] == plain
    assert [list(row)[: len(plain[0])] for row in rows] == [list(row) for row in plain]
