"""The discrete-event engine: a simulated clock driving the real Allocator through one day."""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Final, TypeVar

from opd_engine._allocator import Allocator
from opd_engine._estimate import WaitEstimate
from opd_engine._slot import Slot
from opd_engine._values import (
    BOOKED,
    CHECKED_IN,
    EMERGENCY,
    NO_SHOW,
    WAITLISTED,
    WALK_IN,
    Doctor,
    Priority,
    Source,
    Token,
)
from opd_engine.errors import InvalidArgumentError, OPDError, SlotClosedError, SlotFullError
from opd_engine.events import Event, MoveReason, TokenEvent, TokenMoved

from ._results import DoctorDay, Refusal, Replication, SimulationResult, Summary
from ._scenario import Arrivals, DoctorPlan, Scenario, arrival_offsets

__all__ = ["replicate", "simulate"]

Job = tuple[Scenario, int]
#: Anything with the signature of the builtin ``map`` for one iterable.
Mapper = Callable[[Callable[[Job], Summary], Iterable[Job]], Iterable[Summary]]
#: Called as ``progress(done, total)`` after each simulated day comes back.
Progress = Callable[[int, int], None]

_MINUTE: Final = timedelta(minutes=1)
_FROM_WAITLIST: Final = MoveReason.FROM_WAITLIST.name
T = TypeVar("T")
# Pre-booked sources in the order their tokens are issued for each slot.
_BOOKED_ORDER: Final = (Source.PAID, Source.FOLLOW_UP, Source.ONLINE, WALK_IN)


def _stream(seed: int, name: str) -> random.Random:
    """An independent random stream for one process of the day.

    Seeding with a string is deterministic across processes and platforms (it is hashed
    with SHA-512, not with ``hash()``), and each process draws only from its own stream,
    so changing, say, the no-show rate leaves every arrival time as it was.
    """
    return random.Random(f"opd-engine/{seed}/{name}")


def _label(offset: timedelta) -> str:
    """``HH:MM`` of an offset from midnight (``dN+HH:MM`` on a later day). O(1)."""
    days = offset.days
    hours, minutes = divmod(offset.seconds // 60, 60)
    text = f"{hours:02d}:{minutes:02d}"
    return text if days == 0 else f"d{days}+{text}"


def _nothing() -> None:
    """An action that does nothing: a placeholder until the real one is bound."""


class _Doctor:
    """The engine's view of one doctor: duty windows, breaks, pauses, the patient in
    progress.

    ``waiting`` counts the doctor's patients waiting present (checked in, or waitlisted
    after checking in), kept from the tokens the allocator returns and its events;
    ``idle_since`` is when the doctor
    last became idle on duty while one of them waited (None while that is not the case).
    ``held`` counts what keeps a present doctor from calling now (a break, a pause, the
    day closing): one number, so the hot path asks one question.
    """

    __slots__ = (
        "available",
        "away_since",
        "break_since",
        "busy",
        "closing",
        "consult",
        "consultations",
        "day",
        "done",
        "duty",
        "held",
        "id",
        "idle_since",
        "missed",
        "paused_since",
        "plan",
        "sample",
        "slots",
        "waiting",
    )

    def __init__(self, plan: DoctorPlan, midnight: datetime, seed: int) -> None:
        self.plan = plan
        self.id = plan.id
        self.consult = _stream(seed, f"consult/{plan.id}")
        self.missed = _stream(seed, f"missed-call/{plan.id}")
        # (duty start, session end) per session, in order; a late start delays the first.
        sessions = sorted(plan.sessions, key=lambda s: s.start)
        late = timedelta(minutes=plan.late_start)
        self.duty = [
            (midnight + s.start + (late if i == 0 else timedelta(0)), midnight + s.end)
            for i, s in enumerate(sessions)
        ]
        self.slots: list[Slot] = []
        self.available = True
        self.held = 0
        self.closing = False  # the desk is ending the doctor's day: no more calls
        self.away_since: datetime | None = None
        self.break_since: datetime | None = None
        self.paused_since: datetime | None = None
        self.busy: str | None = None  # the token called in (consultation or missed call)
        self.waiting = 0
        self.idle_since: datetime | None = None
        self.day = DoctorDay(doctor_id=plan.id, sessions=tuple(self.duty))
        self.consultations = self.day.consultations
        self.sample = plan.consult.sample
        # The action that ends this doctor's consultation (one object for the whole day).
        self.done: Callable[[], None] = _nothing

    def on_duty(self, now: datetime) -> bool:
        """In a session (after any late start), present, not on a break or paused, and
        the day not ended. O(sessions)."""
        if not self.available or self.held:
            return False
        for start, end in self.duty:  # noqa: SIM110 - a loop, not any(): the hot path
            if start <= now < end:
                return True
        return False


def _present(token: Token) -> bool:
    """Waiting present: checked in with a place, or waitlisted after checking in."""
    status = token.status
    return status is CHECKED_IN or (status is WAITLISTED and token.checked_in_at is not None)


class _Stream:
    """One arrival process of one doctor. Only its next arrival is in the engine's queue:
    each arrival draws the one after it, from the process's own random stream."""

    __slots__ = (
        "action",
        "day",
        "doctor",
        "doctor_id",
        "emergency",
        "midnight",
        "offsets",
        "priority",
        "source",
    )

    def __init__(self, day: _Day, doctor: _Doctor, arrivals: Arrivals, rng: random.Random):
        self.day = day
        self.doctor = doctor
        self.doctor_id = doctor.id
        self.midnight = day.midnight
        self.offsets = arrival_offsets(arrivals, rng)
        self.source = arrivals.source
        self.priority = arrivals.priority
        level = arrivals.source.default_priority if arrivals.priority is None else arrivals.priority
        # An emergency's booking may displace others: the engine watches it (_Day.book).
        self.emergency = level is EMERGENCY
        self.action = self.arrive

    def schedule(self) -> None:
        """Queue the next arrival, if the process has one left. O(log q)."""
        offset = next(self.offsets, None)
        if offset is not None:
            day = self.day
            day.order += 1
            heapq.heappush(day.queue, (self.midnight + offset, day.order, self.action))

    def arrive(self) -> None:
        """A patient walks in: :meth:`_Day.walk_in`, inlined for the common case (not an
        emergency), then the next arrival is drawn. O(log n)."""
        day = self.day
        if self.emergency:
            day.walk_in(self.doctor, self.source, self.priority)
        else:
            worsening = day.draw_worsening() if day.retriage_rate else math.inf
            day.patients += 1
            try:
                token = day.alloc.book(
                    f"P{day.patients:05d}",
                    self.doctor_id,
                    source=self.source,
                    priority=self.priority,
                )
            except OPDError as error:
                level = self.source.default_priority if self.priority is None else self.priority
                day.refuse(self.doctor_id, self.source, level, error)
            else:
                day.track(token)
                if worsening != math.inf:
                    day.note_worsening(token, worsening)
        self.schedule()


class _Day:
    """One simulated day. Everything happens in :meth:`run`; the result is plain data.

    The engine keeps, per doctor, the count of patients waiting present, and marks the
    doctors a change touched; after every action it settles: each marked doctor who is
    free calls the next patient (so a doctor on duty calls whenever one of their patients
    is present), and the idle-while-waiting clock of each is brought up to date.

    It learns the changes from the token each allocator call returns: a booking that is
    not an emergency, a check-in that is not a late arrival, a call and a completion change
    that token only. Every other call (an emergency's booking, which may displace, a late
    arrival, a cancellation, a no-show, a reschedule, a re-triage, a missed call, and the
    doctors' delay, absence, return, closed slots and day's end) may move other tokens
    too: for those
    alone the engine subscribes to the allocator's events, for the length of the call. So
    in a day of walk-ins and calls the allocator builds no event at all.

    ``record`` keeps every event of the day (:meth:`SimulationResult.events`); ``trace``
    follows every event, whatever the call (the reference the token-driven account is
    tested against: both give the same day).
    """

    def __init__(
        self, scenario: Scenario, seed: int, *, record: bool = False, trace: bool = False
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.midnight = scenario.midnight
        self.now = self.midnight + scenario.bookings_open
        self.alloc = Allocator(policies=scenario.policies, clock=self._clock)
        self.events: list[Event] | None = None
        if record:
            self.events = []
            self.alloc.subscribe(self.events.append)
        self.trace = trace
        if trace:
            self.alloc.subscribe(self._observe)
        self.queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self.order = 0
        self.patients = 0
        self.refusals: list[Refusal] = []
        self.doctors = {plan.id: _Doctor(plan, self.midnight, seed) for plan in scenario.doctors}
        for doctor in self.doctors.values():
            doctor.done = partial(self.finish, doctor)
        self.grace = scenario.policies.no_show_grace
        # token id -> the token as it stands, for every token waiting present.
        self.present: dict[str, Token] = {}
        # token id -> the estimate made when the patient last checked in (None: estimates
        # are not recorded).
        self.estimates: dict[str, WaitEstimate | None] | None = (
            {} if scenario.record_estimates else None
        )
        # Doctors a change touched since the last settle, by id (a dict: it iterates in a
        # fixed order, unlike a set of strings under hash randomisation).
        self.touched: dict[str, _Doctor] = {}
        # Tokens moved, by the name of the move's reason (what TokenMoved events would count).
        self.moves: dict[str, int] = {}
        # A pre-booked patient's planned arrival (moved by a reschedule).
        self.arrivals: dict[str, datetime] = {}
        # Minutes of waiting present after which a patient's condition worsens.
        self.worsening: dict[str, float] = {}
        self.retriage_rate = scenario.retriage_per_hour
        # A condition that worsens at or after every doctor's last duty end changes
        # nothing (worsen() would return): it is not queued, and the latest such instant
        # is kept, so that the day's clock still ends where the queued one would have.
        self.last_duty = max(d.duty[-1][1] for d in self.doctors.values())
        self.unqueued = self.now
        self.missed_rate = scenario.missed_call
        # One stream per process, drawn once per patient whatever the outcome.
        self.cancels = _stream(seed, "cancellation")
        self.cancel_times = _stream(seed, "cancellation-time")
        self.no_shows = _stream(seed, "no-show")
        self.punctuality = _stream(seed, "punctuality")
        self.reschedules = _stream(seed, "reschedule")
        self.retriages = _stream(seed, "retriage")
        self.returns = _stream(seed, "missed-call-return")

    def _clock(self) -> datetime:
        return self.now

    # ------------------------------------------------------------------ what changed

    def track(self, token: Token) -> None:
        """Take in ``token`` as it now stands: the present counts, the doctors to settle.
        O(1)."""
        token_id = token.id
        touched = self.touched
        was = self.present.pop(token_id, None)
        if was is not None:
            before = self.doctors[was.doctor_id]
            before.waiting -= 1
            touched[before.id] = before
        doctor = self.doctors[token.doctor_id]
        status = token.status
        if status is CHECKED_IN or (status is WAITLISTED and token.checked_in_at is not None):
            self.present[token_id] = token
            doctor.waiting += 1
            if was is None and self.estimates is not None:
                # Just checked in (or back): what the patient is told now.
                self.estimates[token_id] = self.alloc.estimate(token_id)
        touched[doctor.id] = doctor

    def _observe(self, event: Event) -> None:
        """Subscriber: take in the event's token, count moves, mark the doctor touched."""
        if isinstance(event, TokenEvent):
            if isinstance(event, TokenMoved):
                reason = event.reason.name
                self.moves[reason] = self.moves.get(reason, 0) + 1
            self.track(event.token)
        else:
            about = getattr(event, "doctor_id", None)
            if about in self.doctors:
                self.touched[about] = self.doctors[about]

    def watch(self, call: Callable[[], T]) -> T:
        """Make a call that may change other tokens than the one it returns, following
        its events (subscribed for the call only). O(1) besides the call and its events."""
        if self.trace:
            return call()  # already following every event
        unsubscribe = self.alloc.subscribe(self._observe)
        try:
            return call()
        finally:
            unsubscribe()

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        self.order += 1
        heapq.heappush(self.queue, (when, self.order, action))

    def patient(self) -> str:
        self.patients += 1
        return f"P{self.patients:05d}"

    def touch(self, doctor: _Doctor) -> None:
        self.touched[doctor.id] = doctor

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
            self.touch(doctor)  # as its DoctorAdded event would
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
            self.plan_duty(doctor)

    def plan_duty(self, doctor: _Doctor) -> None:
        """Every moment the doctor's duty changes, or a slot starts, settles the doctor."""
        plan = doctor.plan
        alloc = self.alloc
        touch = partial(self.touch, doctor)
        for duty_start, duty_end in doctor.duty:
            self.at(duty_start, touch)
            self.at(duty_end, touch)
        for slot in doctor.slots:
            self.at(slot.start, touch)
        if plan.late_start:
            first = self.midnight + min(s.start for s in plan.sessions)
            delay = partial(alloc.delay, doctor.id, plan.late_start)
            self.at(first, partial(self.watch, delay))
        by_start = {slot.start: slot for slot in doctor.slots}
        for pause in plan.breaks:
            slot = by_start[self.midnight + pause.start]
            closed = slot.start if pause.closed_at is None else self.midnight + pause.closed_at
            self.at(closed, partial(self.watch, partial(alloc.close_slot, slot.id)))
            self.at(max(closed, slot.start), partial(self.pause, doctor, True))
            self.at(slot.end, partial(self.pause, doctor, False))
        if plan.unavailable_at is not None:
            self.at(self.midnight + plan.unavailable_at, partial(self.leave, doctor))
        if plan.returns_at is not None:
            self.at(self.midnight + plan.returns_at, partial(self.come_back, doctor))
        for held in plan.pauses:
            self.at(self.midnight + held.start, partial(self.hold, doctor, True))
            self.at(self.midnight + held.end, partial(self.hold, doctor, False))
        end_day_at = self.scenario.end_day_at
        if end_day_at is not None:
            self.at(self.midnight + end_day_at, partial(self.close_day, doctor))

    def prebook(self, doctor: _Doctor) -> None:
        """Book the doctor's pre-booked patients, slot by slot, and queue what each will do:
        cancel, come (or not) and when, ask to come later, be declared a no-show. Each
        patient draws from every stream once, whatever the outcome. O(p log p) for p
        patients."""
        counts = doctor.plan.prebooked
        # Who books, in order, per slot (the counts are the same for every slot).
        sources = [source for source in _BOOKED_ORDER for _ in range(counts.get(source, 0))]
        if not sources:
            return
        scenario = self.scenario
        # Plain dicts: the scenario's read-only maps are slower to read, once per patient.
        cancellation = dict(scenario.cancellation)
        no_show = dict(scenario.no_show)
        reschedule = dict(scenario.reschedule)
        cancels = self.cancels.random
        cancel_times = self.cancel_times.random
        no_shows = self.no_shows.random
        punctuality = scenario.punctuality.sample
        on_time = self.punctuality
        reschedules = self.reschedules.random
        draw_worsening = self.draw_worsening
        book = self.alloc.book
        track = self.track
        at = self.at
        grace = self.grace
        opened = self.now
        doctor_id = doctor.id
        slots = doctor.slots
        for index, slot in enumerate(slots):
            later = slots[index + 1 :]
            slot_id = slot.id
            start = slot.start
            for source in sources:
                cancel = cancels()
                cancel_at = cancel_times()
                no_show_draw = no_shows()
                offset = punctuality(on_time)
                move = reschedules()
                move_at = reschedules()
                move_to = reschedules()
                worsening = draw_worsening()
                self.patients += 1
                try:
                    # Never an emergency, so it moves no other token (self.book, inlined).
                    token = book(f"P{self.patients:05d}", doctor_id, slot_id, source=source)
                except OPDError as error:
                    self.refuse(doctor_id, source, source.default_priority, error)
                    continue
                track(token)  # a pre-booked walk-in is present at once
                token_id = token.id
                if worsening != math.inf:
                    self.note_worsening(token, worsening)
                if cancel < cancellation.get(source, 0.0):
                    at(opened + (start - opened) * cancel_at, partial(self.cancel, token_id))
                    continue
                comes = no_show_draw >= no_show.get(source, 0.0)
                if comes:
                    self.plan_arrival(token_id, max(opened, start + offset * _MINUTE))
                if later and move < reschedule.get(source, 0.0):
                    when = opened + (start - opened) * move_at
                    target = later[int(move_to * len(later))]
                    at(
                        when,
                        partial(self.reschedule, token_id, target, offset if comes else None),
                    )
                at(start + grace, partial(self.grace_over, token_id))

    def plan_arrival(self, token_id: str, when: datetime) -> None:
        self.arrivals[token_id] = when
        self.at(when, partial(self.arrive, token_id, when))

    def plan_arrivals(self, doctor: _Doctor) -> None:
        """Queue the first arrival of each of the doctor's arrival processes. O(processes)."""
        for number, arrivals in enumerate(doctor.plan.arrivals):
            stream = _stream(self.seed, f"arrivals/{doctor.id}/{number}")
            _Stream(self, doctor, arrivals, stream).schedule()

    # ------------------------------------------------------------------ patients

    def book(
        self,
        patient_id: str,
        doctor_id: str,
        slot_id: str | None,
        source: Source,
        priority: Priority | None,
    ) -> Token:
        """Book through the allocator; an emergency may displace others, so it is watched."""
        alloc = self.alloc
        level = source.default_priority if priority is None else priority
        if level is EMERGENCY:
            return self.watch(
                partial(
                    alloc.book, patient_id, doctor_id, slot_id, source=source, priority=priority
                )
            )
        token = alloc.book(patient_id, doctor_id, slot_id, source=source, priority=priority)
        self.track(token)
        return token

    def draw_worsening(self) -> float:
        """Minutes of waiting present before the patient's condition worsens (inf: never)."""
        rate = self.retriage_rate
        if rate == 0:
            return math.inf
        return -math.log1p(-self.retriages.random()) * 60 / rate

    def note_worsening(self, token: Token, minutes: float) -> None:
        """Start the clock of a patient's condition: now if present, else at check-in."""
        if minutes == math.inf or token.priority is EMERGENCY:
            return
        status = token.status
        if status is CHECKED_IN or (status is WAITLISTED and token.checked_in_at is not None):
            when = self.now + minutes * _MINUTE
            if when >= self.last_duty:
                if when > self.unqueued:
                    self.unqueued = when
                return
            self.order += 1
            worsen: Callable[[], None] = partial(self.worsen, token.id)
            heapq.heappush(self.queue, (when, self.order, worsen))
        else:
            self.worsening[token.id] = minutes

    def worsen(self, token_id: str) -> None:
        """The patient's condition worsens: if still waiting present while their doctor's
        day lasts, the desk re-triages them as an emergency."""
        if token_id not in self.present:
            return  # called in (or gone) since: the engine's account of who is present
        token = self.alloc.token(token_id)
        if not _present(token) or token.priority is EMERGENCY:
            return
        if self.now >= self.doctors[token.doctor_id].duty[-1][1]:
            return  # the sessions are over: the patient is sent on, not re-triaged here
        self.watch(partial(self.alloc.retriage, token_id, EMERGENCY))

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
        worsening = self.draw_worsening()
        try:
            token = self.book(self.patient(), doctor.id, None, source, priority)
        except OPDError as error:
            level = source.default_priority if priority is None else priority
            self.refuse(doctor.id, source, level, error)
            return
        if worsening != math.inf:
            self.note_worsening(token, worsening)

    def cancel(self, token_id: str) -> None:
        if self.alloc.token(token_id).status in (BOOKED, WAITLISTED):
            self.watch(partial(self.alloc.cancel, token_id))

    def reschedule(self, token_id: str, slot: Slot, offset: float | None) -> None:
        """The patient asks to come later; the desk moves them if the slot has room."""
        if self.alloc.token(token_id).status is not BOOKED:
            return  # cancelled, or already here
        try:
            self.watch(partial(self.alloc.reschedule, token_id, slot.id))
        except (SlotFullError, SlotClosedError):
            return  # refused: the booking stays as it was
        if offset is not None:
            self.plan_arrival(token_id, max(self.now, slot.start + offset * _MINUTE))

    def arrive(self, token_id: str, when: datetime) -> None:
        if self.arrivals.get(token_id) != when:
            return  # rescheduled since: the patient comes for the new slot
        self.check_in(token_id)

    def check_in(self, token_id: str) -> None:
        """A patient comes to the desk: check in (a late arrival after a no-show is
        re-queued, and watched: it may displace), and start the clock of their condition."""
        alloc = self.alloc
        token = alloc.token(token_id)
        status = token.status
        if status is NO_SHOW:
            if self.doctors[token.doctor_id].closing:
                return  # the doctor's day has ended: the patient is turned away
            token = self.watch(partial(alloc.check_in, token_id))
        elif status is BOOKED or (status is WAITLISTED and token.checked_in_at is None):
            token = alloc.check_in(token_id)
            self.track(token)
        else:
            return
        minutes = self.worsening.pop(token_id, None)
        if minutes is not None:
            self.note_worsening(token, minutes)

    def grace_over(self, token_id: str) -> None:
        token = self.alloc.token(token_id)
        if token.status is not BOOKED:
            return
        assert token.slot_id is not None
        deadline = self.alloc.slot(token.slot_id).start + self.grace
        if self.now < deadline:  # moved to a later slot since: wait for that one
            self.at(deadline, partial(self.grace_over, token_id))
            return
        self.watch(partial(self.alloc.no_show, token_id))

    # ------------------------------------------------------------------ doctors

    def settle(self) -> None:
        """Let every doctor touched since the last settle call if free; update idle clocks.

        A call touches only its own doctor, who is then busy: nothing more to settle for
        them, so the loop ends once every touched doctor has been seen. O(touched
        doctors), plus the calls made.
        """
        touched = self.touched
        now = self.now
        while touched:
            # Any order will do: a doctor's call touches only their own patients.
            doctor = touched.popitem()[1]
            if doctor.busy is not None and doctor.idle_since is None:
                continue  # busy, and no idle period to close: nothing to do
            duty = doctor.on_duty(now)
            if doctor.busy is None and self.try_call(doctor, duty):
                # A call touched the doctor again; once busy there is nothing more to do.
                touched.pop(doctor.id, None)
            # The idle-while-a-patient-waits clock, opened or closed.
            if duty and doctor.busy is None and doctor.waiting > 0:
                if doctor.idle_since is None:
                    doctor.idle_since = now
            elif doctor.idle_since is not None:
                if now > doctor.idle_since:
                    doctor.day.idle_waiting.append((doctor.idle_since, now))
                doctor.idle_since = None

    def try_call(self, doctor: _Doctor, duty: bool) -> bool:
        """Call the next patient if the doctor (free, and ``duty``: on duty now) can;
        whether they did.

        On duty means: a session has started (after any late start), the doctor is not away
        and not on a break; the doctor then calls whenever one of their patients is present
        (the allocator chooses whom, the idle-fill rule included). After a session's end the
        doctor stays on while patients of slots that started before that end are present.
        """
        if duty:
            if not doctor.waiting:
                return False
        else:
            if not doctor.available or doctor.held:
                return False
            now = self.now
            bound = None
            for start, end in doctor.duty:
                if start > now:
                    break
                bound = end
            if bound is None:
                return False
            if not any(slot.present for slot in doctor.slots if slot.start < bound):
                return False
        token = self.alloc.call_next(doctor.id)
        if token is None:
            return False  # only waitlisted patients are present, and the policy keeps them there
        # The called token, in consultation, no longer waits present (track(), inlined:
        # the doctor it would touch is the one being settled, and busy from now on).
        was = self.present.pop(token.id, None)
        if was is not None:
            self.doctors[was.doctor_id].waiting -= 1
            if was.status is WAITLISTED:
                # The idle-fill rule seated the patient from the waitlist (a TokenMoved).
                self.moves[_FROM_WAITLIST] = self.moves.get(_FROM_WAITLIST, 0) + 1
        doctor.busy = token.id
        now = self.now
        missed = self.missed_rate
        if missed and doctor.missed.random() < missed and token.priority is not EMERGENCY:
            wait = now + self.scenario.missed_call_wait * _MINUTE
            self.at(wait, partial(self.missed_call, doctor, now))
            return True
        end = now + doctor.sample(doctor.consult) * _MINUTE
        doctor.consultations.append((now, end))
        self.order += 1
        heapq.heappush(self.queue, (end, self.order, doctor.done))
        return True

    def finish(self, doctor: _Doctor) -> None:
        """A consultation ends. A doctor on duty with a patient present calls the next at
        once: ``call_next`` completes the consultation in progress first, so one allocator
        call does both (what :meth:`settle` would do next). Otherwise the desk completes
        it and the doctor, free again, is touched."""
        token_id, doctor.busy = doctor.busy, None
        assert token_id is not None
        # The completed token was not waiting present (track(), inlined).
        if doctor.waiting and doctor.on_duty(self.now):
            assert doctor.idle_since is None  # a busy doctor is never idle
            if not self.try_call(doctor, True):  # completed, but only the waitlist is here
                self.touched[doctor.id] = doctor
            return
        self.alloc.complete(token_id)
        self.touched[doctor.id] = doctor
        if doctor.closing:
            self.end_day(doctor)

    def missed_call(self, doctor: _Doctor, called_at: datetime) -> None:
        """The called patient did not come: the desk records it; they come back later,
        unless the missed calls made them a no-show."""
        assert doctor.busy is not None
        token_id, doctor.busy = doctor.busy, None
        doctor.day.missed_calls.append((called_at, self.now))
        token = self.watch(partial(self.alloc.missed_call, token_id))
        if token.status is not NO_SHOW:
            back = self.scenario.missed_call_return.sample(self.returns)
            self.at(self.now + max(0.0, back) * _MINUTE, partial(self.check_in, token_id))
        if doctor.closing:
            self.end_day(doctor)

    def pause(self, doctor: _Doctor, on_break: bool) -> None:
        """A break starts or ends (its slot was closed by the desk)."""
        if on_break:
            doctor.break_since = self.now
            doctor.held += 1
        else:
            assert doctor.break_since is not None
            doctor.day.off_duty.append((doctor.break_since, self.now))
            doctor.break_since = None
            doctor.held -= 1
        self.touch(doctor)

    def hold(self, doctor: _Doctor, paused: bool) -> None:
        """A pause starts or ends (:meth:`Allocator.pause`, :meth:`Allocator.resume`): the
        doctor calls nobody meanwhile; the consultation in progress runs to its end."""
        if paused:
            self.alloc.pause(doctor.id)
            doctor.paused_since = self.now
            doctor.held += 1
        else:
            self.alloc.resume(doctor.id)
            assert doctor.paused_since is not None
            doctor.day.off_duty.append((doctor.paused_since, self.now))
            doctor.paused_since = None
            doctor.held -= 1
        self.touch(doctor)

    def close_day(self, doctor: _Doctor) -> None:
        """The desk ends the doctor's day (``Scenario.end_day_at``): the doctor calls nobody
        more; with a patient in, the day ends when that patient is done."""
        doctor.closing = True
        doctor.held += 1
        if doctor.busy is None:
            self.end_day(doctor)
        self.touch(doctor)

    def end_day(self, doctor: _Doctor) -> None:
        """:meth:`Allocator.end_day`, watched: the booked become no-shows, the present
        unseen ``UNSEEN``, the absent waitlisted cancelled."""
        self.watch(partial(self.alloc.end_day, doctor.id))
        doctor.day.ended_at = self.now
        self.touch(doctor)

    def leave(self, doctor: _Doctor) -> None:
        self.watch(partial(self.alloc.mark_unavailable, doctor.id))
        doctor.available = False
        doctor.away_since = self.now
        doctor.day.left_at = self.now
        self.touch(doctor)

    def come_back(self, doctor: _Doctor) -> None:
        self.watch(partial(self.alloc.mark_available, doctor.id))
        doctor.available = True
        assert doctor.away_since is not None
        doctor.day.off_duty.append((doctor.away_since, self.now))
        doctor.away_since = None
        doctor.day.left_at = None
        self.touch(doctor)

    # ------------------------------------------------------------------ the day

    def run(self) -> SimulationResult:
        self.prepare()
        self.settle()
        queue = self.queue
        touched = self.touched
        pop = heapq.heappop
        settle = self.settle
        while queue:
            when, _, action = pop(queue)
            self.now = when
            action()
            if touched:
                settle()
        if self.unqueued > self.now:
            self.now = self.unqueued  # where the last (unqueued) worsening leaves the clock
        for doctor in self.doctors.values():
            assert doctor.idle_since is None, "a duty window's end closes every idle period"
        tokens = self.alloc.tokens()
        return SimulationResult(
            scenario=self.scenario,
            seed=self.seed,
            allocator=self.alloc,
            tokens=tokens,
            slots=[slot for d in self.doctors.values() for slot in d.slots],
            events=self.events,
            refusals=self.refusals,
            doctors=[d.day for d in self.doctors.values()],
            moves=self.moves,
            estimates=self.estimates,
            replay=None
            if self.events is not None
            else partial(_recorded, self.scenario, self.seed, tokens),
        )


def _recorded(scenario: Scenario, seed: int, tokens: list[Token]) -> list[Event]:
    """The events of the day that gave ``tokens``: the day simulated again, every event
    kept. The same seed gives the same day, which the tokens confirm. O(the day)."""
    day = _Day(scenario, seed, record=True)
    day.run()
    if day.alloc.tokens() != tokens:
        raise InvalidArgumentError(
            f"simulating seed {seed} again gave other tokens: the scenario's policies must "
            f"be deterministic (no state of their own, no randomness), got "
            f"policies={scenario.policies!r}"
        )
    assert day.events is not None
    return day.events


def _check(scenario: object, seed: object) -> None:
    if not isinstance(scenario, Scenario):
        raise InvalidArgumentError(f"scenario must be a Scenario, got scenario={scenario!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidArgumentError(f"seed must be an int, got seed={seed!r}")


def simulate(scenario: Scenario, seed: int) -> SimulationResult:
    """Simulate one OPD day of ``scenario`` through a real :class:`~opd_engine.Allocator`.

    Deterministic for a given ``seed``: the same seed gives the same records and events in
    any process. Each random process of the day (each doctor's arrivals, consultations and
    missed calls, cancellations, no-shows, punctuality, reschedules, re-triage, returns
    after a missed call) draws from its own stream derived from the seed, so changing one
    rate leaves the others' draws as they were. A doctor on duty who is free calls the next
    patient at every moment one of their patients is present (a check-in, a consultation's
    end, a slot's start, a break's or a pause's end, the doctor's return, a token moved to
    them), until the desk ends the day (``Scenario.end_day_at``), so the
    idle-fill rule leaves no idle-while-waiting minutes. O(p log p) for p patients, plus the
    allocator's own costs.

    The day keeps no events, so that the allocator builds none; the result's
    :meth:`~SimulationResult.events` simulates the same day again to collect them when
    first asked (the scenario's policies must be deterministic, as the shipped ones are).
    """
    _check(scenario, seed)
    return _Day(scenario, seed).run()


def _summary_job(job: Job) -> Summary:
    """One day's summary: the function every executor runs (top-level, so it pickles by
    reference; the job is a scenario and a seed, both picklable)."""
    scenario, seed = job
    return _Day(scenario, seed).run().summary()


def _check_runner(map: object, progress: object) -> None:
    if not callable(map):
        raise InvalidArgumentError(f"map must be callable, got map={map!r}")
    if progress is not None and not callable(progress):
        raise InvalidArgumentError(f"progress must be callable or None, got progress={progress!r}")


def _seeds(scenario: Scenario, seeds: Iterable[int]) -> list[int]:
    seeds = list(seeds)
    for seed in seeds:
        _check(scenario, seed)
    if not seeds:
        raise InvalidArgumentError("seeds must hold at least one seed, got none")
    return seeds


def run_jobs(jobs: Sequence[Job], map: Mapper, progress: Progress | None) -> list[Summary]:
    """Every job's summary through ``map``, in the order of ``jobs``; ``progress(done,
    total)`` after each summary comes back (from this process: the workers know nothing
    of it). O(jobs * day)."""
    total = len(jobs)
    summaries = []
    for done, summary in enumerate(map(_summary_job, jobs), start=1):
        if not isinstance(summary, Summary):
            raise InvalidArgumentError(
                f"map must return the function's results, got {summary!r}; Dask's "
                f"client.map returns futures: pass client.get_executor().map"
            )
        summaries.append(summary)
        if progress is not None:
            progress(done, total)
    if len(summaries) != total:
        raise InvalidArgumentError(
            f"map must return one result per job, got {len(summaries)} for {total} jobs"
        )
    return summaries


def replicate(
    scenario: Scenario,
    seeds: Iterable[int],
    map: Mapper = map,
    *,
    progress: Progress | None = None,
) -> Replication:
    """Simulate ``scenario`` once per seed and summarise each day.

    ``map`` spreads the days: the builtin runs them here, one after another; a
    ``concurrent.futures`` executor's ``map`` (``ProcessPoolExecutor().map``) on every
    core; Dask's (``client.get_executor().map``) or Ray's on many machines. Only the
    scenario and a seed travel to a worker and only a :class:`Summary` comes back, both
    small and picklable, and the job function is a top-level one, so it pickles by
    reference. The summaries come back in the order of ``seeds``, the same on any
    executor. ``progress``, if given, is called as ``progress(done, total)`` after each
    day comes back; the library prints nothing. O(seeds * day).
    """
    seeds = _seeds(scenario, seeds)
    _check_runner(map, progress)
    summaries = run_jobs([(scenario, seed) for seed in seeds], map, progress)
    return Replication(scenario=scenario, summaries=tuple(summaries))
