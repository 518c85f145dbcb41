"""The discrete-event engine: a simulated clock driving the real Allocator through one day."""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from opd_engine._allocator import Allocator
from opd_engine._slot import Slot
from opd_engine._values import Doctor, Priority, Source, TokenStatus
from opd_engine.errors import InvalidArgumentError, OPDError, SlotClosedError, SlotFullError
from opd_engine.events import Event

from ._results import DoctorDay, Refusal, Replication, SimulationResult, Summary
from ._scenario import DoctorPlan, Scenario

__all__ = ["replicate", "simulate"]

Job = tuple[Scenario, int]
#: Anything with the signature of the builtin ``map`` for one iterable.
Mapper = Callable[[Callable[[Job], Summary], Iterable[Job]], Iterable[Summary]]

_MINUTE: Final = timedelta(minutes=1)
# Pre-booked sources in the order their tokens are issued for each slot.
_BOOKED_ORDER: Final = (Source.PAID, Source.FOLLOW_UP, Source.ONLINE, Source.WALK_IN)


def _stream(seed: int, name: str) -> random.Random:
    """An independent random stream for one process of the day.

    Seeding with a string is deterministic across processes and platforms (it is hashed
    with SHA-512, not with ``hash()``), and each process draws only from its own stream,
    so changing, say, the no-show rate leaves every arrival time as it was.
    """
    return random.Random(f"opd-engine/{seed}/{name}")


def _label(offset: timedelta) -> str:
    days, rest = divmod(offset, timedelta(days=1))
    hours, rest = divmod(rest, timedelta(hours=1))
    minutes = rest // _MINUTE
    text = f"{hours:02d}:{minutes:02d}"
    return text if days == 0 else f"d{days}+{text}"


class _Doctor:
    """The engine's view of one doctor: duty windows, the consultation in progress."""

    __slots__ = (
        "available",
        "busy",
        "consult",
        "day",
        "duty",
        "id",
        "plan",
        "slots",
    )

    def __init__(self, plan: DoctorPlan, midnight: datetime, seed: int) -> None:
        self.plan = plan
        self.id = plan.id
        self.consult = _stream(seed, f"consult/{plan.id}")
        # (duty start, session end) per session, in order; a late start delays the first.
        sessions = sorted(plan.sessions, key=lambda s: s.start)
        late = timedelta(minutes=plan.late_start)
        self.duty = [
            (midnight + s.start + (late if i == 0 else timedelta(0)), midnight + s.end)
            for i, s in enumerate(sessions)
        ]
        self.slots: list[Slot] = []
        self.available = True
        self.busy: str | None = None  # token in consultation
        self.day = DoctorDay(doctor_id=plan.id, sessions=tuple(self.duty))


class _Day:
    """One simulated day. Everything happens in :meth:`run`; the result is plain data."""

    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        self.seed = seed
        self.midnight = scenario.midnight
        self.now = self.midnight + scenario.bookings_open
        self.alloc = Allocator(policies=scenario.policies, clock=self._clock)
        self.events: list[Event] = []
        self.alloc.subscribe(self.events.append)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = 0
        self.patients = 0
        self.refusals: list[Refusal] = []
        self.doctors = {plan.id: _Doctor(plan, self.midnight, seed) for plan in scenario.doctors}
        self.grace = scenario.policies.no_show_grace
        # One stream per process, drawn once per patient whatever the outcome.
        self.cancels = _stream(seed, "cancellation")
        self.cancel_times = _stream(seed, "cancellation-time")
        self.no_shows = _stream(seed, "no-show")
        self.punctuality = _stream(seed, "punctuality")

    def _clock(self) -> datetime:
        return self.now

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        self.order += 1
        heapq.heappush(self.queue, (when, self.order, action))

    def patient(self) -> str:
        self.patients += 1
        return f"P{self.patients:05d}"

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        alloc = self.alloc
        for doctor in self.doctors.values():
            plan = doctor.plan
            alloc.add_doctor(
                Doctor(
                    plan.id,
                    plan.name or plan.id,
                    department=plan.department,
                    consult_minutes=plan.expected_minutes,
                )
            )
            for session in sorted(plan.sessions, key=lambda s: s.start):
                for start, end in session.slots():
                    slot = Slot(
                        f"{plan.id}@{_label(start)}",
                        plan.id,
                        self.midnight + start,
                        self.midnight + end,
                        session.capacity,
                    )
                    alloc.add_slot(slot)
                    doctor.slots.append(slot)
        for doctor in self.doctors.values():
            self.prebook(doctor)
            self.plan_arrivals(doctor)
            for duty_start, _ in doctor.duty:
                self.at(duty_start, partial(self.try_call, doctor))
            plan = doctor.plan
            if plan.late_start:
                first = self.midnight + min(s.start for s in plan.sessions)
                self.at(first, partial(self.alloc.delay, doctor.id, plan.late_start))
            if plan.unavailable_at is not None:
                self.at(self.midnight + plan.unavailable_at, partial(self.leave, doctor))

    def prebook(self, doctor: _Doctor) -> None:
        counts = doctor.plan.prebooked
        opened = self.now
        for slot in doctor.slots:
            for source in _BOOKED_ORDER:
                for _ in range(counts.get(source, 0)):
                    cancel = self.cancels.random()
                    cancel_at = self.cancel_times.random()
                    no_show = self.no_shows.random()
                    offset = self.scenario.punctuality.sample(self.punctuality)
                    try:
                        token = self.alloc.book(self.patient(), doctor.id, slot.id, source=source)
                    except OPDError as error:
                        self.refuse(doctor.id, source, source.default_priority, error)
                        continue
                    if cancel < self.scenario.cancellation.get(source, 0.0):
                        when = opened + (slot.start - opened) * cancel_at
                        self.at(when, partial(self.cancel, token.id))
                        continue
                    if no_show >= self.scenario.no_show.get(source, 0.0):
                        when = max(opened, slot.start + offset * _MINUTE)
                        self.at(when, partial(self.arrive, token.id))
                    self.at(slot.start + self.grace, partial(self.grace_over, token.id))

    def plan_arrivals(self, doctor: _Doctor) -> None:
        for number, arrivals in enumerate(doctor.plan.arrivals):
            stream = _stream(self.seed, f"arrivals/{doctor.id}/{number}")
            for offset in arrivals.times(stream):
                self.at(
                    self.midnight + offset,
                    partial(self.walk_in, doctor, arrivals.source, arrivals.priority),
                )

    # ------------------------------------------------------------------ patients

    def refuse(self, doctor_id: str, source: Source, priority: Priority, error: OPDError) -> None:
        if not isinstance(error, SlotFullError | SlotClosedError):
            raise error  # anything else is a bug in the engine, not a refusal
        reason = "full" if isinstance(error, SlotFullError) else "closed"
        self.refusals.append(
            Refusal(
                at=self.now, doctor_id=doctor_id, source=source, priority=priority, reason=reason
            )
        )

    def walk_in(self, doctor: _Doctor, source: Source, priority: Priority | None) -> None:
        try:
            token = self.alloc.book(self.patient(), doctor.id, source=source, priority=priority)
        except OPDError as error:
            self.refuse(doctor.id, source, priority or source.default_priority, error)
            return
        self.wake(token.doctor_id)

    def cancel(self, token_id: str) -> None:
        if self.alloc.token(token_id).status in (TokenStatus.BOOKED, TokenStatus.WAITLISTED):
            self.alloc.cancel(token_id)
            self.wake_all()  # a refill may have seated someone already present

    def arrive(self, token_id: str) -> None:
        token = self.alloc.token(token_id)
        if token.status is TokenStatus.NO_SHOW:
            token = self.alloc.check_in(token_id)  # a late arrival, re-queued
        elif token.status in (TokenStatus.BOOKED, TokenStatus.WAITLISTED):
            token = self.alloc.check_in(token_id)
        else:
            return
        self.wake(token.doctor_id)

    def grace_over(self, token_id: str) -> None:
        token = self.alloc.token(token_id)
        if token.status is not TokenStatus.BOOKED:
            return
        assert token.slot_id is not None
        deadline = self.alloc.slot(token.slot_id).start + self.grace
        if self.now < deadline:  # moved to a later slot since: wait for that one
            self.at(deadline, partial(self.grace_over, token_id))
            return
        self.alloc.no_show(token_id)
        self.wake_all()

    # ------------------------------------------------------------------ doctors

    def wake(self, doctor_id: str) -> None:
        doctor = self.doctors[doctor_id]
        if doctor.busy is None:
            self.try_call(doctor)

    def wake_all(self) -> None:
        for doctor in self.doctors.values():
            if doctor.busy is None:
                self.try_call(doctor)

    def try_call(self, doctor: _Doctor) -> None:
        """Call the next patient if the doctor is free, on duty and someone is present.

        On duty means: a session has started (after any late start); after its end the
        doctor stays on while patients of slots that started before that end are present.
        """
        if doctor.busy is not None or not doctor.available:
            return
        bound = None
        for start, end in doctor.duty:
            if start > self.now:
                break
            bound = end
        if bound is None:
            return
        if not any(slot.present for slot in doctor.slots if slot.start < bound):
            return
        token = self.alloc.call_next(doctor.id)
        assert token is not None
        doctor.busy = token.id
        minutes = doctor.plan.consult.sample(doctor.consult)
        doctor.day.consultations.append((self.now, self.now + minutes * _MINUTE))
        self.at(self.now + minutes * _MINUTE, partial(self.finish, doctor))

    def finish(self, doctor: _Doctor) -> None:
        assert doctor.busy is not None
        self.alloc.complete(doctor.busy)
        doctor.busy = None
        self.try_call(doctor)

    def leave(self, doctor: _Doctor) -> None:
        self.alloc.mark_unavailable(doctor.id)
        doctor.available = False
        doctor.day.left_at = self.now
        self.wake_all()

    # ------------------------------------------------------------------ the day

    def run(self) -> SimulationResult:
        self.prepare()
        queue = self.queue
        while queue:
            when, _, action = heapq.heappop(queue)
            self.now = when
            action()
        return SimulationResult(
            scenario=self.scenario,
            seed=self.seed,
            allocator=self.alloc,
            tokens=self.alloc.tokens(),
            slots=[slot for d in self.doctors.values() for slot in d.slots],
            events=self.events,
            refusals=self.refusals,
            doctors=[d.day for d in self.doctors.values()],
        )


def _check(scenario: object, seed: object) -> None:
    if not isinstance(scenario, Scenario):
        raise InvalidArgumentError(f"scenario must be a Scenario, got scenario={scenario!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an int, got seed={seed!r}")


def simulate(scenario: Scenario, seed: int) -> SimulationResult:
    """Simulate one OPD day of ``scenario`` through a real :class:`~opd_engine.Allocator`.

    Deterministic for a given ``seed``: the same seed gives the same records and events in
    any process. Each random process of the day (each doctor's arrivals and consultations,
    cancellations, no-shows, punctuality) draws from its own stream derived from the seed,
    so changing one rate leaves the others' draws as they were. O(p log p) for p patients,
    plus the allocator's own costs.
    """
    _check(scenario, seed)
    return _Day(scenario, seed).run()


def _summary_job(job: Job) -> Summary:
    scenario, seed = job
    return _Day(scenario, seed).run().summary()


def replicate(scenario: Scenario, seeds: Iterable[int], map: Mapper = map) -> Replication:
    """Simulate ``scenario`` once per seed and summarise each day.

    ``map`` spreads the days: the builtin runs them here, one after another;
    ``concurrent.futures.ProcessPoolExecutor().map`` runs them on every core, and a
    distributed engine's ``map`` (Dask's ``Client.map`` gathered, Ray's, ...) on many
    machines. Only the scenario and a seed travel to a worker and only a :class:`Summary`
    comes back, both small and picklable. The summaries come back in the order of
    ``seeds``. O(seeds * day).
    """
    seeds = list(seeds)
    for seed in seeds:
        _check(scenario, seed)
    if not seeds:
        raise InvalidArgumentError("seeds must hold at least one seed, got none")
    if not callable(map):
        raise InvalidArgumentError(f"map must be callable, got map={map!r}")
    summaries = tuple(map(_summary_job, [(scenario, seed) for seed in seeds]))
    return Replication(scenario=scenario, summaries=summaries)
