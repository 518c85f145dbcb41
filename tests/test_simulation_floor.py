"""The simulation on the live floor: doctors' pauses, the day's end, and the estimates
recorded only when asked for; the default day without them is the day it was."""

from __future__ import annotations

import pickle
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, time, timedelta
from typing import Any

import attrs
import pytest

from opd_engine import Allocator, InvalidArgumentError, Policies, Source, TokenStatus
from opd_engine.events import (
    DayEnded,
    DoctorPaused,
    DoctorResumed,
    Event,
    TokenCalled,
    TokenCancelled,
    TokenCompleted,
    TokenNoShow,
    TokenUnseen,
)
from opd_engine.simulation import (
    Arrivals,
    Break,
    DoctorPlan,
    Exponential,
    Pause,
    Scenario,
    Session,
    SimulationResult,
    _engine,
    replicate,
    simulate,
)

DAY = Scenario.default_day()
SEEDS = range(6)
FLOOR_KINDS = {"DoctorPaused", "DoctorResumed", "DayEnded", "TokenUnseen", "TokenSteppedOut"}


def busy_doctor(**extra: Any) -> DoctorPlan:
    """One doctor, 09:00-12:00, with more walk-ins than they can see and a few bookings."""
    return DoctorPlan(
        id="D1",
        sessions=[Session(start=time(9), end=time(12), slot_minutes=30, capacity=4)],
        consult=Exponential(10.0),
        prebooked={Source.ONLINE: 1, Source.PAID: 1},
        arrivals=[Arrivals(per_hour=8.0, start=time(8, 45), until=time(11, 45))],
        **extra,
    )


PAUSE = Pause(start=time(10), minutes=30)
PAUSED = Scenario(doctors=[busy_doctor(pauses=[PAUSE])])


def run(scenario: Scenario, seed: int) -> tuple[SimulationResult, _engine._Day]:
    """The day and its engine, every event kept (``engine.events``)."""
    engine = _engine._Day(scenario, seed, record=True)
    return engine.run(), engine


def events_of(engine: _engine._Day) -> list[Event]:
    assert engine.events is not None
    return engine.events


def statuses(result: SimulationResult) -> Counter[TokenStatus]:
    return Counter(t.status for t in result.allocator.tokens())


# ----------------------------------------------------------------------------- scenario


def test_the_options_are_off_in_the_default_day() -> None:
    assert all(plan.pauses == () for plan in DAY.doctors)
    assert DAY.end_day_at is None
    assert DAY.record_estimates is False
    assert Scenario(doctors=[busy_doctor()]).end_day_at is None


def test_a_pause_is_a_start_and_minutes() -> None:
    pause = Pause(start=time(10, 15), minutes=20)
    assert pause.start == timedelta(hours=10, minutes=15)
    assert pause.end == timedelta(hours=10, minutes=35)
    assert Pause(start=timedelta(hours=10), minutes=20) == Pause(start=time(10), minutes=20)


def test_pauses_are_kept_in_the_order_they_start() -> None:
    late, early = Pause(start=time(11), minutes=10), Pause(start=time(9, 30), minutes=10)
    assert busy_doctor(pauses=[late, early]).pauses == (early, late)


@pytest.mark.parametrize(
    ("build", "named"),
    [
        (lambda: Pause(start=time(10), minutes=0), "minutes=0"),
        (lambda: Pause(start=time(10), minutes=-5), "minutes=-5"),
        (lambda: Pause(start=time(10), minutes=10.0), "minutes=10.0"),  # type: ignore[arg-type]
        (lambda: Pause(start=time(10), minutes=True), "minutes=True"),
        (lambda: Pause(start=time(10), minutes=24 * 60 * 400), "minutes="),
        (lambda: Pause(start="10:00", minutes=10), "start='10:00'"),  # type: ignore[arg-type]
        (
            lambda: Pause(start=timedelta(minutes=-1), minutes=10),
            "start=datetime.timedelta(days=-1",
        ),
        (lambda: busy_doctor(pauses=[Pause(start=time(12), minutes=10)]), "start=12:00:00"),
        (lambda: busy_doctor(pauses=[Pause(start=time(8), minutes=90)]), "start=8:00:00"),
        (lambda: busy_doctor(pauses=[PAUSE, Pause(start=time(10, 20), minutes=5)]), "pauses="),
        (lambda: busy_doctor(pauses=[PAUSE, PAUSE]), "pauses="),
        (lambda: busy_doctor(pauses=[(time(10), 30)]), "pauses="),
        (lambda: busy_doctor(pauses=PAUSE), "pauses="),
        (lambda: Scenario(doctors=[busy_doctor()], end_day_at=time(11, 59)), "end_day_at="),
        (lambda: Scenario(doctors=[busy_doctor()], end_day_at="13:00"), "end_day_at='13:00'"),  # type: ignore[arg-type]
        (lambda: Scenario(doctors=[busy_doctor()], record_estimates=1), "record_estimates=1"),  # type: ignore[arg-type]
        (lambda: Scenario(doctors=[busy_doctor()], record_estimates=None), "record_estimates="),  # type: ignore[arg-type]
    ],
)
def test_bad_options_are_refused_by_name(build: Any, named: str) -> None:
    with pytest.raises(InvalidArgumentError, match=named.replace("(", r"\(")):
        build()


def test_end_day_at_may_be_the_last_session_s_end_and_a_time_or_an_offset() -> None:
    at_end = Scenario(doctors=[busy_doctor()], end_day_at=time(12))
    assert at_end.end_day_at == timedelta(hours=12)
    assert at_end == Scenario(doctors=[busy_doctor()], end_day_at=timedelta(hours=12))
    # The latest session of all the doctors bounds it: D4 ends at 12:00, the others at 13:00.
    with pytest.raises(InvalidArgumentError, match="13:00:00"):
        attrs.evolve(DAY, end_day_at=time(12, 30))


def test_the_options_are_part_of_the_scenario_s_value() -> None:
    """Printed, compared, hashed and pickled with the rest, as workers receive them."""
    scenario = attrs.evolve(PAUSED, end_day_at=time(12, 30), record_estimates=True)
    text = repr(scenario)
    for part in ("pauses=(Pause(start=", "end_day_at=", "record_estimates=True"):
        assert part in text
    assert scenario != PAUSED
    assert scenario != attrs.evolve(scenario, record_estimates=False)
    assert scenario != attrs.evolve(scenario, end_day_at=time(13))
    assert hash(scenario) == hash(
        attrs.evolve(PAUSED, end_day_at=time(12, 30), record_estimates=True)
    )
    assert pickle.loads(pickle.dumps(scenario)) == scenario


def test_replications_on_worker_processes_keep_the_options() -> None:
    scenario = attrs.evolve(PAUSED, end_day_at=time(12, 30), record_estimates=True)
    here = replicate(scenario, [1, 2])
    with ProcessPoolExecutor(max_workers=2) as pool:
        there = replicate(scenario, [1, 2], pool.map)
    assert there == here
    assert all(s.estimates is not None for s in there.summaries)
    assert all(s.by_doctor["D1"].ended_unseen > 0 for s in there.summaries)


# ----------------------------------------------------------------------------- pauses


def between(events: list[Event], first: type[Event], last: type[Event]) -> list[Event]:
    """The events after the ``first`` kind's event and before the ``last`` kind's."""
    kinds = [type(e) for e in events]
    return events[kinds.index(first) + 1 : kinds.index(last)]


@pytest.mark.parametrize("seed", SEEDS)
def test_nobody_is_called_during_a_pause(seed: int) -> None:
    result, engine = run(attrs.evolve(PAUSED, end_day_at=time(13)), seed)
    events = events_of(engine)
    paused = [e for e in events if isinstance(e, DoctorPaused | DoctorResumed)]
    start = result.scenario.midnight + PAUSE.start
    assert [(type(e), e.at, e.doctor_id) for e in paused] == [
        (DoctorPaused, start, "D1"),
        (DoctorResumed, start + timedelta(minutes=30), "D1"),
    ]
    assert not [
        e for e in between(events, DoctorPaused, DoctorResumed) if isinstance(e, TokenCalled)
    ]
    day = engine.doctors["D1"].day
    assert not [c for c in day.consultations if start <= c[0] < start + timedelta(minutes=30)]
    # The calls are held, not lost: the next call comes as the pause ends, or as the
    # consultation in progress when it began ends, if later (patients wait all along).
    resumed = start + timedelta(minutes=30)
    in_progress = max(end for begun, end in day.consultations if begun < start)
    after = between(events, DoctorResumed, DayEnded)
    first = next(e for e in after if isinstance(e, TokenCalled))
    assert first.at == max(resumed, in_progress)


def test_the_consultation_in_progress_ends_during_the_pause() -> None:
    ended = 0
    for seed in SEEDS:
        _, engine = run(PAUSED, seed)
        done = between(events_of(engine), DoctorPaused, DoctorResumed)
        ended += sum(isinstance(e, TokenCompleted) for e in done)
    assert ended > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_pause_is_off_duty(seed: int) -> None:
    result, engine = run(PAUSED, seed)
    start = result.scenario.midnight + PAUSE.start
    assert engine.doctors["D1"].day.off_duty == [(start, start + timedelta(minutes=30))]
    doctor = result.summary().by_doctor["D1"]
    assert doctor.session_minutes == pytest.approx(180 - 30)
    # Patients wait through the pause, yet the doctor is never idle while one waits:
    # the pause is not duty.
    assert doctor.idle_waiting_minutes == 0
    assert result.idle_waiting() == []


def test_a_pause_over_a_break_and_time_away_counts_once() -> None:
    plan = busy_doctor(
        breaks=[Break(start=time(10))],
        pauses=[Pause(start=time(10, 15), minutes=45)],
        unavailable_at=time(10, 45),
        returns_at=time(11, 15),
    )
    result = simulate(Scenario(doctors=[plan]), 3)
    # Off duty from 10:00 (the break) to 11:15 (the return): 75 of 180 minutes.
    assert result.summary().by_doctor["D1"].session_minutes == pytest.approx(180 - 75)


def test_a_pause_leaves_every_other_process_s_draws_as_they_were() -> None:
    """The pause draws nothing: the walk-ins arrive at the same times with or without it."""

    def arrivals(scenario: Scenario) -> list[datetime]:
        result = simulate(scenario, 5)
        booked = [t.booked_at for t in result.allocator.tokens() if t.source is Source.WALK_IN]
        return sorted(booked + [r["at"] for r in result.refusals()])

    assert arrivals(PAUSED) == arrivals(Scenario(doctors=[busy_doctor()]))


def test_the_fast_engine_and_the_event_follower_agree_on_pauses_and_the_day_s_end() -> None:
    """The engine learns most changes from the tokens its calls return; one following
    every event lives the same days with pauses and the day's end too."""
    cases = [
        attrs.evolve(PAUSED, end_day_at=time(12)),
        attrs.evolve(
            DAY,
            doctors=[
                attrs.evolve(DAY.doctors[0], pauses=[Pause(start=time(9, 30), minutes=25)]),
                *DAY.doctors[1:],
            ],
            end_day_at=time(13),
        ),
    ]
    for scenario in cases:
        for seed in (1, 2):
            fast = simulate(scenario, seed)
            reference = _engine._Day(scenario, seed, record=True, trace=True).run()
            assert fast.records() == reference.records()
            assert fast.events() == reference.events()
            assert fast.summary() == reference.summary()


# ----------------------------------------------------------------------------- the day's end

ENDED = Scenario(
    doctors=[busy_doctor(pauses=[Pause(start=time(11, 50), minutes=30)])],
    # A booked patient's grace runs past the day's end: the end makes them a no-show.
    policies=Policies(no_show_grace=timedelta(minutes=45)),
    no_show={Source.ONLINE: 0.5},
    end_day_at=time(12, 10),
)


@pytest.mark.parametrize("seed", SEEDS)
def test_after_the_day_s_end_nobody_is_called(seed: int) -> None:
    result, engine = run(ENDED, seed)
    events = events_of(engine)
    [ended] = [i for i, e in enumerate(events) if isinstance(e, DayEnded)]
    day_ended = events[ended]
    assert isinstance(day_ended, DayEnded)
    assert day_ended.doctor_id == "D1"
    assert not [e for e in events[ended:] if isinstance(e, TokenCalled | TokenCompleted)]
    # The desk ends the day at 12:10, or once the patient in is done.
    end = result.scenario.midnight + timedelta(hours=12, minutes=10)
    last = max((e for _, e in engine.doctors["D1"].day.consultations), default=end)
    assert day_ended.at == max(end, last)
    assert engine.doctors["D1"].day.ended_at == day_ended.at
    # Nobody waits any more.
    left = statuses(result)
    for waiting in (TokenStatus.BOOKED, TokenStatus.CHECKED_IN, TokenStatus.WAITLISTED):
        assert left[waiting] == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_the_day_s_end_sends_the_unseen_home_and_counts_them(seed: int) -> None:
    result, engine = run(ENDED, seed)
    events = events_of(engine)
    end = next(e.at for e in events if isinstance(e, DayEnded))
    unseen = [t for t in result.allocator.tokens() if t.status is TokenStatus.UNSEEN]
    assert all(t.checked_in_at is not None and t.called_at is None for t in unseen)
    told = {e.token.id for e in events if isinstance(e, TokenUnseen)}
    assert told == {t.id for t in unseen}
    assert all(e.at == end for e in events if isinstance(e, TokenUnseen))
    # Counted: overall, per class, per doctor, in the rows and in the report.
    summary = result.summary()
    assert summary.unseen == len(unseen)
    for priority, stats in summary.by_priority.items():
        assert stats.unseen == sum(t.priority.name == priority for t in unseen)
    doctor = summary.by_doctor["D1"]
    assert doctor.unseen == doctor.unseen_present == doctor.ended_unseen == len(unseen)
    assert summary.figures()["doctor.D1.ended_unseen"] == len(unseen)
    rows = [r for r in result.records() if r["status"] == "UNSEEN"]
    assert len(rows) == len(unseen)
    assert all(r["outcome"] == "unseen" for r in rows)
    report = " ".join(summary.report().split())
    assert f"unseen: {len(unseen)}," in report
    if unseen:
        assert f"{len(unseen)} here but not seen when the desk ended the day" in report


def test_the_day_s_end_leaves_patients_unseen() -> None:
    """The cases above have teeth: the doctor cannot see every walk-in by 12:10."""
    unseen = [statuses(simulate(ENDED, seed))[TokenStatus.UNSEEN] for seed in SEEDS]
    assert sum(n > 0 for n in unseen) >= len(unseen) - 1


def test_the_day_s_end_makes_the_booked_no_shows() -> None:
    ended_booked = 0
    for seed in SEEDS:
        result, engine = run(ENDED, seed)
        events = events_of(engine)
        end = next(e.at for e in events if isinstance(e, DayEnded))
        at_end = [e for e in events if isinstance(e, TokenNoShow) and e.at == end]
        for event in at_end:
            token = result.allocator.token(event.token.id)
            assert token.status is TokenStatus.NO_SHOW
            assert token.checked_in_at is None
        ended_booked += len(at_end)
    assert ended_booked > 0


def test_the_day_s_end_cancels_the_absent_waitlisted() -> None:
    """On the default day a doctor goes home sick and their booked patients go to the
    waitlist; those who never came are cancelled when the day ends."""
    cancelled = 0
    for seed in SEEDS:
        _, engine = run(attrs.evolve(DAY, end_day_at=time(13)), seed)
        for event in events_of(engine):
            if isinstance(event, TokenCancelled) and event.reason:
                assert event.reason == "day ended"
                assert event.token.slot_id is None
                assert event.token.checked_in_at is None
                cancelled += 1
    assert cancelled > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_a_day_with_pauses_and_an_end_replays_to_the_same_state(seed: int) -> None:
    for scenario in (ENDED, attrs.evolve(DAY, end_day_at=time(13))):
        result, engine = run(scenario, seed)
        replayed = Allocator.replay(events_of(engine), policies=scenario.policies)
        assert replayed.snapshot() == result.allocator.snapshot()
        assert result.events() == simulate(scenario, seed).events()


def test_walk_ins_after_the_day_s_end_are_refused_and_late_comers_turned_away() -> None:
    plan = attrs.evolve(
        busy_doctor(), arrivals=[Arrivals(per_hour=8.0, start=time(8, 45), until=time(13))]
    )
    scenario = Scenario(doctors=[plan], end_day_at=time(12), missed_call=0.3)
    for seed in SEEDS:
        result = simulate(scenario, seed)
        [end] = [e["at"] for e in result.events() if e["event"] == "DayEnded"]
        late = [r for r in result.refusals() if r["at"] >= end]
        assert late
        assert {r["reason"] for r in late} == {"closed"}
        assert not [t for t in result.allocator.tokens() if t.booked_at > end]
        assert not [
            t for t in result.allocator.tokens() if t.checked_in_at and t.checked_in_at > end
        ]


# ----------------------------------------------------------------------------- estimates


@pytest.mark.parametrize("seed", [1, 4])
def test_estimates_are_recorded_only_when_asked(seed: int) -> None:
    plain = simulate(DAY, seed)
    assert plain.estimates() == {}
    summary = plain.summary()
    assert summary.estimates is None
    assert not [name for name in summary.figures() if name.startswith("estimate.")]
    assert "Estimates: not recorded" in summary.report()
    told = simulate(attrs.evolve(DAY, record_estimates=True), seed)
    estimates = told.estimates()
    arrived = {t.id for t in told.allocator.tokens() if t.checked_in_at is not None}
    assert arrived
    assert set(estimates) == arrived
    stats = told.summary().estimates
    assert stats is not None
    assert stats.counted > 0
    assert stats.coverage is not None
    assert "called inside their window" in told.summary().report()
    # Asking the allocator changes nothing: the same day, to the last record and event.
    assert told.records() == plain.records()
    assert told.events() == plain.events()


def test_with_the_day_s_end_the_unseen_are_apart_from_the_estimates() -> None:
    result = simulate(attrs.evolve(ENDED, record_estimates=True), 2)
    stats = result.summary().estimates
    assert stats is not None
    unseen = statuses(result)[TokenStatus.UNSEEN]
    assert unseen > 0
    assert stats.unseen == unseen
    assert f"{unseen} unseen" in result.summary().report()
    called = [t for t in result.allocator.tokens() if t.called_at and t.checked_in_at]
    assert stats.counted == len(called)


# ----------------------------------------------------------------------------- the default day


@pytest.mark.parametrize("seed", SEEDS)
def test_the_default_day_uses_none_of_the_floor(seed: int) -> None:
    result, engine = run(DAY, seed)
    kinds = {type(e).__name__ for e in events_of(engine)}
    assert not kinds & FLOOR_KINDS
    assert not statuses(result)[TokenStatus.UNSEEN]
    assert not statuses(result)[TokenStatus.AWAY]
    assert all(d.day.ended_at is None for d in engine.doctors.values())
    assert all(d.ended_unseen == 0 for d in result.summary().by_doctor.values())


@pytest.mark.parametrize("seed", SEEDS)
def test_a_late_end_changes_only_who_was_left_waiting(seed: int) -> None:
    """Ending the day at 23:00, long after every patient has gone, is the default day
    followed by the end: the same events, then the end's own; the same tokens, except
    those still waiting, who end as the end says."""
    plain, plain_engine = run(DAY, seed)
    ended, ended_engine = run(attrs.evolve(DAY, end_day_at=time(23)), seed)
    before, after = events_of(plain_engine), events_of(ended_engine)
    assert after[: len(before)] == before
    late = datetime.combine(DAY.day, time(23))
    assert all(e.at == late for e in after[len(before) :])
    assert Counter(type(e).__name__ for e in after[len(before) :])["DayEnded"] == 4
    becomes = {
        TokenStatus.BOOKED: TokenStatus.NO_SHOW,
        TokenStatus.CHECKED_IN: TokenStatus.UNSEEN,
        TokenStatus.COMPLETED: TokenStatus.COMPLETED,
        TokenStatus.CANCELLED: TokenStatus.CANCELLED,
        TokenStatus.NO_SHOW: TokenStatus.NO_SHOW,
    }
    ended_tokens = {t.id: t for t in ended.allocator.tokens()}
    for token in plain.allocator.tokens():
        now = ended_tokens[token.id]
        if token.status is TokenStatus.WAITLISTED:
            present = token.checked_in_at is not None
            assert now.status is (TokenStatus.UNSEEN if present else TokenStatus.CANCELLED)
        else:
            assert now.status is becomes[token.status]
        if now.status is token.status:
            assert now == token
    assert plain.summary().unseen == ended.summary().unseen + sum(
        t.status is TokenStatus.WAITLISTED and t.checked_in_at is None
        for t in plain.allocator.tokens()
    )


def test_every_worsening_queued_or_not_gives_the_same_day() -> None:
    """A worsening due after every doctor's last duty changes nothing, so the engine does
    not queue it; queuing every one gives the same day, and the same clock at its end."""
    for seed in (1, 2, 3):
        fast = _engine._Day(DAY, seed, record=True)
        fast_result = fast.run()
        slow = _engine._Day(DAY, seed, record=True)
        slow.last_duty = datetime.max
        slow_result = slow.run()
        assert fast.now == slow.now
        assert fast_result.records() == slow_result.records()
        assert fast.events == slow.events
        assert len(slow.queue) == len(fast.queue) == 0
