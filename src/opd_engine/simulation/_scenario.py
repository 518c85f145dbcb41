"""What a simulated OPD day is made of: distributions, sessions, arrivals, doctors, scenario."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol, TypeVar, final, runtime_checkable

import attrs

from opd_engine._check import (
    MAX_MINUTES,
    attrs_validator,
    check_bool,
    check_enum,
    check_id,
    check_int,
    check_str,
)
from opd_engine._frozen import FrozenMap
from opd_engine._values import Priority, Source
from opd_engine.errors import InvalidArgumentError
from opd_engine.policies import (
    Aging,
    EmergencyOverride,
    OnDelay,
    OnFull,
    Policies,
    Reallocation,
)

T = TypeVar("T")

__all__ = [
    "Arrivals",
    "Break",
    "DoctorPlan",
    "Duration",
    "Exponential",
    "Fixed",
    "LogNormal",
    "Normal",
    "Pause",
    "Scenario",
    "Session",
]


# --------------------------------------------------------------------------- checks


def _number(
    name: str, value: object, *, minimum: float | None = None, strict: bool = False
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgumentError(f"{name} must be a finite number, got {name}={value!r}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        sign = ">" if strict else ">="
        raise InvalidArgumentError(f"{name} must be {sign} {minimum}, got {name}={value!r}")
    return float(value)


def _positive(instance: object, attribute: Any, value: float) -> None:
    _number(attribute.name, value, minimum=0, strict=True)


def _non_negative(instance: object, attribute: Any, value: float) -> None:
    _number(attribute.name, value, minimum=0)


def _finite(instance: object, attribute: Any, value: float) -> None:
    _number(attribute.name, value)


def _offset(name: str, value: object) -> timedelta:
    """A time of day, or an offset from the scenario's midnight, as an offset."""
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise InvalidArgumentError(f"{name} must be a naive time, got {name}={value!r}")
        return timedelta(hours=value.hour, minutes=value.minute, seconds=value.second)
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise InvalidArgumentError(f"{name} must be >= 0, got {name}={value!r}")
        return value
    raise InvalidArgumentError(
        f"{name} must be a datetime.time or a timedelta from midnight, got {name}={value!r}"
    )


def _probabilities(name: str, value: object) -> Mapping[Source, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{name} must be a mapping of Source to probability, got {name}={value!r}"
        )
    result: dict[Source, float] = {}
    for source, p in value.items():
        check_enum(f"{name} key", source, Source)
        label = f"{name}[{source.name}]"
        probability = _number(label, p, minimum=0)
        if probability > 1:
            raise InvalidArgumentError(f"{label} must be <= 1, got {label}={p!r}")
        result[source] = probability
    return FrozenMap(result)


def _no_show(value: Mapping[Source, float]) -> Mapping[Source, float]:
    return _probabilities("no_show", value)


def _cancellation(value: Mapping[Source, float]) -> Mapping[Source, float]:
    return _probabilities("cancellation", value)


def _reschedule(value: Mapping[Source, float]) -> Mapping[Source, float]:
    return _probabilities("reschedule", value)


def _start(value: time | timedelta) -> timedelta:
    return _offset("start", value)


def _end(value: time | timedelta) -> timedelta:
    return _offset("end", value)


def _until(value: time | timedelta) -> timedelta:
    return _offset("until", value)


def _optional_start(value: time | timedelta | None) -> timedelta | None:
    return None if value is None else _offset("start", value)


def _opening_offset(value: time | timedelta) -> timedelta:
    return _offset("bookings_open", value)


def _unavailable_at(value: time | timedelta | None) -> timedelta | None:
    return None if value is None else _offset("unavailable_at", value)


def _returns_at(value: time | timedelta | None) -> timedelta | None:
    return None if value is None else _offset("returns_at", value)


def _break_start(value: time | timedelta) -> timedelta:
    return _offset("start", value)


def _closed_at(value: time | timedelta | None) -> timedelta | None:
    return None if value is None else _offset("closed_at", value)


def _pause_start(value: time | timedelta) -> timedelta:
    return _offset("start", value)


def _end_day_at(value: time | timedelta | None) -> timedelta | None:
    return None if value is None else _offset("end_day_at", value)


def _probability(instance: object, attribute: Any, value: float) -> None:
    name = attribute.alias
    _number(name, value, minimum=0)
    if value > 1:
        raise InvalidArgumentError(f"{name} must be <= 1, got {name}={value!r}")


def _rate(instance: object, attribute: Any, value: float) -> None:
    _number(attribute.alias, value, minimum=0)


def _minutes_bound(instance: object, attribute: Any, value: float) -> None:
    name = attribute.alias
    _number(name, value, minimum=0)
    if value > MAX_MINUTES:
        raise InvalidArgumentError(f"{name} must be <= {MAX_MINUTES}, got {name}={value!r}")


def _items(name: str, value: object, kind: type[T]) -> tuple[T, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidArgumentError(
            f"{name} must be a sequence of {kind.__name__}, got {name}={value!r}"
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, kind):
            raise InvalidArgumentError(
                f"{name} must be a sequence of {kind.__name__}, got {name}={value!r}"
            )
    return items


# --------------------------------------------------------------------------- durations


@runtime_checkable
class Duration(Protocol):
    """A random duration or offset in minutes: consultation times, punctuality."""

    @property
    def mean(self) -> float:
        """The mean, in minutes."""
        ...

    @property
    def second_moment(self) -> float:
        """``E[X^2]``, in minutes squared: what queueing formulas need."""
        ...

    def sample(self, rng: random.Random) -> float:
        """One draw, in minutes, using ``rng`` only. O(1)."""
        ...


@final
@attrs.frozen
class Exponential:
    """Exponentially distributed minutes with the given ``mean`` (memoryless: M/M/1)."""

    mean: float = attrs.field(validator=_positive)

    @property
    def second_moment(self) -> float:
        """``2 mean^2``."""
        return 2 * self.mean * self.mean

    def sample(self, rng: random.Random) -> float:
        """One draw. O(1)."""
        return rng.expovariate(1 / self.mean)


@final
@attrs.frozen
class Fixed:
    """Always ``minutes`` (deterministic consultations: M/D/1)."""

    minutes: float = attrs.field(validator=_non_negative)

    @property
    def mean(self) -> float:
        """``minutes``."""
        return self.minutes

    @property
    def second_moment(self) -> float:
        """``minutes^2``."""
        return self.minutes * self.minutes

    def sample(self, rng: random.Random) -> float:
        """``minutes``; draws nothing from ``rng``. O(1)."""
        return self.minutes


@final
@attrs.frozen
class LogNormal:
    """Log-normally distributed minutes with the given ``mean`` and standard deviation ``sd``.

    The usual shape of consultation times: positive, skewed to the right.
    """

    mean: float = attrs.field(validator=_positive)
    sd: float = attrs.field(validator=_positive)

    @property
    def second_moment(self) -> float:
        """``sd^2 + mean^2``."""
        return self.sd * self.sd + self.mean * self.mean

    def sample(self, rng: random.Random) -> float:
        """One draw. O(1)."""
        sigma2 = math.log1p((self.sd / self.mean) ** 2)
        return rng.lognormvariate(math.log(self.mean) - sigma2 / 2, math.sqrt(sigma2))


@final
@attrs.frozen
class Normal:
    """Normally distributed minutes (may be negative): e.g. arrival relative to a slot's
    start, ``Normal(-10, 10)`` for patients who come ten minutes early on average."""

    mean: float = attrs.field(validator=_finite)
    sd: float = attrs.field(validator=_non_negative)

    @property
    def second_moment(self) -> float:
        """``sd^2 + mean^2``."""
        return self.sd * self.sd + self.mean * self.mean

    def sample(self, rng: random.Random) -> float:
        """One draw. O(1)."""
        return rng.gauss(self.mean, self.sd)


def _duration(instance: object, attribute: Any, value: object) -> None:
    if not isinstance(value, Duration):
        raise InvalidArgumentError(
            f"{attribute.name} must be a Duration (Exponential, LogNormal, Fixed, Normal or "
            f"your own), got {attribute.name}={value!r}"
        )


# --------------------------------------------------------------------------- the day


@final
@attrs.frozen(kw_only=True)
class Session:
    """A doctor's session from ``start`` to ``end``, cut into slots of ``slot_minutes``.

    ``start`` and ``end`` are times of day (``datetime.time``) or offsets from the
    scenario's midnight (``timedelta``, which may pass 24 hours for long runs). Each slot
    has ``capacity`` places; a last slot shorter than ``slot_minutes`` is kept.
    """

    start: timedelta = attrs.field(converter=_start)
    end: timedelta = attrs.field(converter=_end)
    slot_minutes: int = attrs.field(default=60, validator=attrs_validator(check_int, minimum=1))
    capacity: int = attrs.field(default=10, validator=attrs_validator(check_int, minimum=0))

    @end.validator
    def _check_end(self, attribute: Any, value: timedelta) -> None:
        if value <= self.start:
            raise InvalidArgumentError(
                f"end must be after start, got start={self.start}, end={value}"
            )

    def slots(self) -> list[tuple[timedelta, timedelta]]:
        """``(start, end)`` offsets of the session's slots. O(slots)."""
        step = timedelta(minutes=self.slot_minutes)
        bounds = []
        start = self.start
        while start < self.end:
            bounds.append((start, min(start + step, self.end)))
            start += step
        return bounds


Steps = tuple[tuple[timedelta, float], ...]


def _schedule(
    value: float | Mapping[time, float] | Mapping[timedelta, float] | Iterable[tuple[Any, float]],
) -> float | Steps:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number("per_hour", value, minimum=0)
    if not isinstance(value, Mapping | list | tuple):
        raise InvalidArgumentError(
            "per_hour must be a number or a mapping of start time to rate per hour, "
            f"got per_hour={value!r}"
        )
    pairs = list(value.items()) if isinstance(value, Mapping) else list(value)
    steps = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise InvalidArgumentError(
                f"per_hour steps must be (start, rate) pairs, got per_hour={value!r}"
            )
        start, rate = pair
        steps.append((_offset("per_hour start", start), _number("per_hour rate", rate, minimum=0)))
    steps.sort()
    if len({start for start, _ in steps}) != len(steps):
        raise InvalidArgumentError(f"per_hour steps must start at distinct times, got {value!r}")
    return tuple(steps)


@final
@attrs.frozen(kw_only=True)
class Arrivals:
    """Patients who come without a booking: a Poisson process for one doctor.

    ``per_hour`` is a constant rate from ``start``, or steps ``{time(8): 6, time(10): 3}``
    (from each time on, that many per hour; before the first step, none; no ``start``), so
    a morning peak is two steps. Arrivals stop at ``until``. Each arrival books with
    ``source`` and ``priority`` (None: the source's default), so
    ``Arrivals(per_hour=0.5, start=time(9), until=time(13), priority=EMERGENCY)`` is a
    doctor's emergencies. Times are times of day or offsets from the scenario's midnight.
    """

    per_hour: float | Steps = attrs.field(converter=_schedule)
    start: timedelta | None = attrs.field(default=None, converter=_optional_start)
    until: timedelta = attrs.field(converter=_until)
    source: Source = attrs.field(
        default=Source.WALK_IN, validator=attrs_validator(check_enum, enum=Source)
    )
    priority: Priority | None = attrs.field(default=None)

    @start.validator
    def _check_start(self, attribute: Any, value: timedelta | None) -> None:
        constant = isinstance(self.per_hour, float)
        if constant and value is None:
            raise InvalidArgumentError(
                f"start is needed with a constant per_hour={self.per_hour!r}, got start=None"
            )
        if not constant and value is not None:
            raise InvalidArgumentError(
                f"start must be None when per_hour has steps (each step has its start), "
                f"got start={value!r}"
            )

    @until.validator
    def _check_until(self, attribute: Any, value: timedelta) -> None:
        first = self.steps[0][0]
        if value <= first:
            raise InvalidArgumentError(
                f"until must be after the first arrivals start {first}, got until={value}"
            )

    @property
    def steps(self) -> Steps:
        """``(from, per hour)`` steps, the constant form included."""
        if isinstance(self.per_hour, float):
            assert self.start is not None
            return ((self.start, self.per_hour),)
        return self.per_hour

    @priority.validator
    def _check_priority(self, attribute: Any, value: object) -> None:
        if value is not None:
            check_enum("priority", value, Priority)

    def times(self, rng: random.Random) -> list[timedelta]:
        """Arrival offsets of one day, drawn from ``rng``. O(arrivals)."""
        return list(arrival_offsets(self, rng))


def arrival_offsets(arrivals: Arrivals, rng: random.Random) -> Iterator[timedelta]:
    """:meth:`Arrivals.times` one at a time, each drawn when asked for: the engine keeps
    one pending arrival per stream, not the whole day's. O(1) per arrival."""
    steps = arrivals.steps
    until = arrivals.until
    bounds = [start for start, _ in steps[1:]] + [until]
    draw = rng.expovariate
    for (start, rate), end in zip(steps, bounds, strict=True):
        if rate == 0 or start >= until:
            continue
        end = min(end, until)
        clock = start
        per_minute = rate / 60
        while True:
            # Memoryless: restarting the exponential at each step is exact.
            clock += timedelta(minutes=draw(per_minute))
            if clock >= end:
                break
            yield clock


def _frozen_counts(value: object) -> Mapping[Source, int]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"prebooked must be a mapping of Source to int, got prebooked={value!r}"
        )
    counts: dict[Source, int] = {}
    for source, count in value.items():
        check_enum("prebooked key", source, Source)
        counts[source] = check_int(f"prebooked[{source.name}]", count, minimum=0)
    return FrozenMap(counts)


def _sessions(value: Iterable[Session]) -> tuple[Session, ...]:
    return _items("sessions", value, Session)


@final
@attrs.frozen(kw_only=True)
class Break:
    """A doctor's break: the slot starting at ``start`` is closed (:meth:`Allocator.close_slot`).

    The front desk closes the slot at ``closed_at`` (None: at the slot's start), and the
    doctor calls nobody from then (or from the slot's start, if later) to the slot's end:
    the slot's waiting patients move to the doctor's later slots, else to a colleague, else
    to the waitlist. ``start`` must be the start of one of the doctor's slots, and
    ``closed_at`` before that slot's end. Times are times of day or offsets from the
    scenario's midnight.
    """

    start: timedelta = attrs.field(converter=_break_start)
    closed_at: timedelta | None = attrs.field(default=None, converter=_closed_at)


def _breaks(value: Iterable[Break]) -> tuple[Break, ...]:
    """The breaks in the order of their slots, however they were listed."""
    return tuple(sorted(_items("breaks", value, Break), key=lambda b: b.start))


@final
@attrs.frozen(kw_only=True)
class Pause:
    """A doctor's pause (a ward round, a word with a colleague): from ``start``, for
    ``minutes``, the doctor calls nobody (:meth:`Allocator.pause`, then
    :meth:`Allocator.resume`).

    Unlike a :class:`Break`, no slot closes: bookings, check-ins and moves go on, and the
    patients wait in their places. The consultation in progress at ``start`` runs to its
    end. ``start`` must fall within one of the doctor's sessions (the pause may run past
    its end). The time paused is off duty, as a break is. ``start`` is a time of day or an
    offset from the scenario's midnight.
    """

    start: timedelta = attrs.field(converter=_pause_start)
    minutes: int = attrs.field(validator=attrs_validator(check_int, minimum=1, maximum=MAX_MINUTES))

    @property
    def end(self) -> timedelta:
        """When the doctor resumes: ``start`` plus ``minutes``."""
        return self.start + timedelta(minutes=self.minutes)


def _pauses(value: Iterable[Pause]) -> tuple[Pause, ...]:
    """The pauses in the order they start, however they were listed."""
    return tuple(sorted(_items("pauses", value, Pause), key=lambda p: p.start))


def _arrivals(value: Iterable[Arrivals]) -> tuple[Arrivals, ...]:
    return _items("arrivals", value, Arrivals)


@final
@attrs.frozen(kw_only=True)
class DoctorPlan:
    """One doctor's simulated day.

    ``sessions`` cut into slots; ``consult`` draws consultation minutes (``consult_minutes``,
    the doctor's expected length used for estimates, defaults to its mean, rounded);
    ``prebooked`` is how many tokens each slot has booked before the day, per source;
    ``arrivals`` are walk-ins and emergencies; ``late_start`` minutes late for the first
    session (reported through :meth:`Allocator.delay`); ``breaks`` close one slot each
    (:class:`Break`; kept in their slots' order, whatever order they are given in);
    ``unavailable_at`` the time the doctor leaves (:meth:`Allocator.mark_unavailable`), if
    ever, and ``returns_at`` the time they come back (:meth:`Allocator.mark_available`;
    None: gone for the day, home sick); ``pauses`` hold the doctor's calls for a while
    without closing a slot (:class:`Pause`; kept in the order they start).
    """

    id: str = attrs.field(validator=attrs_validator(check_id))
    name: str = attrs.field(default="", validator=attrs_validator(check_str))
    department: str = attrs.field(default="", validator=attrs_validator(check_str))
    sessions: tuple[Session, ...] = attrs.field(converter=_sessions)
    consult: Duration = attrs.field(factory=lambda: Exponential(10.0), validator=_duration)
    consult_minutes: int | None = attrs.field(default=None)
    prebooked: Mapping[Source, int] = attrs.field(factory=dict, converter=_frozen_counts)
    arrivals: tuple[Arrivals, ...] = attrs.field(default=(), converter=_arrivals)
    # Reported through Allocator.delay, so within the bounds it puts on a doctor's delay.
    late_start: int = attrs.field(
        default=0, validator=attrs_validator(check_int, minimum=0, maximum=MAX_MINUTES)
    )
    breaks: tuple[Break, ...] = attrs.field(default=(), converter=_breaks)
    unavailable_at: timedelta | None = attrs.field(default=None, converter=_unavailable_at)
    returns_at: timedelta | None = attrs.field(default=None, converter=_returns_at)
    pauses: tuple[Pause, ...] = attrs.field(default=(), converter=_pauses)

    @sessions.validator
    def _check_sessions(self, attribute: Any, value: tuple[Session, ...]) -> None:
        if not value:
            raise InvalidArgumentError("sessions must hold at least one Session, got none")
        ordered = sorted(value, key=lambda s: s.start)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.start:
                raise InvalidArgumentError(f"sessions must not overlap, got sessions={value!r}")

    @breaks.validator
    def _check_breaks(self, attribute: Any, value: tuple[Break, ...]) -> None:
        ends = {start: end for session in self.sessions for start, end in session.slots()}
        starts = [b.start for b in value]
        if len(set(starts)) != len(starts):
            raise InvalidArgumentError(f"breaks must close distinct slots, got breaks={value!r}")
        for pause in value:
            if pause.start not in ends:
                raise InvalidArgumentError(
                    f"a break's start must be the start of one of the doctor's slots, "
                    f"got start={pause.start}"
                )
            if pause.closed_at is not None and pause.closed_at >= ends[pause.start]:
                raise InvalidArgumentError(
                    f"a break's closed_at must be before its slot's end "
                    f"{ends[pause.start]}, got closed_at={pause.closed_at}"
                )

    @returns_at.validator
    def _check_returns_at(self, attribute: Any, value: timedelta | None) -> None:
        if value is None:
            return
        if self.unavailable_at is None:
            raise InvalidArgumentError(
                f"returns_at needs unavailable_at (the time the doctor leaves), "
                f"got returns_at={value}, unavailable_at=None"
            )
        if value <= self.unavailable_at:
            raise InvalidArgumentError(
                f"returns_at must be after unavailable_at={self.unavailable_at}, "
                f"got returns_at={value}"
            )

    @pauses.validator
    def _check_pauses(self, attribute: Any, value: tuple[Pause, ...]) -> None:
        for pause in value:
            if not any(s.start <= pause.start < s.end for s in self.sessions):
                raise InvalidArgumentError(
                    f"a pause's start must fall within one of the doctor's sessions, "
                    f"got start={pause.start}"
                )
        for a, b in itertools.pairwise(value):
            if a.end > b.start:
                raise InvalidArgumentError(f"pauses must not overlap, got pauses={value!r}")

    @consult_minutes.validator
    def _check_consult_minutes(self, attribute: Any, value: object) -> None:
        if value is not None:  # the bounds Doctor puts on it
            attrs_validator(check_int, minimum=1, maximum=MAX_MINUTES)(self, attribute, value)

    @property
    def expected_minutes(self) -> int:
        """The consultation length the allocator uses for estimates."""
        if self.consult_minutes is not None:
            return self.consult_minutes
        return max(1, round(self.consult.mean))


_NO_SHOW: Mapping[Source, float] = {
    Source.ONLINE: 0.12,
    Source.PAID: 0.04,
    Source.FOLLOW_UP: 0.08,
}
_CANCELLATION: Mapping[Source, float] = {
    Source.ONLINE: 0.06,
    Source.PAID: 0.02,
    Source.FOLLOW_UP: 0.04,
}


def _doctors(value: Iterable[DoctorPlan]) -> tuple[DoctorPlan, ...]:
    return _items("doctors", value, DoctorPlan)


@final
@attrs.frozen(kw_only=True)
class Scenario:
    """A simulated OPD day: doctors, demand, disruptions, and the policies under test.

    ``day`` is the date simulated; ``bookings_open`` the time pre-booked tokens are issued.
    Each pre-booked patient cancels with probability ``cancellation[source]`` at a uniformly
    random time before the slot, else never comes with probability ``no_show[source]``,
    else arrives at the slot's start plus a draw from ``punctuality`` (minutes, negative
    for early). The front desk marks patients who have not come as no-shows once the grace
    period has passed; a patient who then arrives late is re-queued by the allocator.

    The front desk's everyday operations, each off by default:

    - ``reschedule[source]``: the probability that a pre-booked patient who keeps their
      booking asks, at a uniformly random time before the slot, to move to a later slot of
      the same doctor (:meth:`Allocator.reschedule`; a full or closed slot is refused and the
      booking stays); they then come for the new slot.
    - ``retriage_per_hour``: the rate, per hour of waiting present, at which a
      non-emergency patient's condition worsens; the desk re-triages them as an emergency
      (:meth:`Allocator.retriage`).
    - ``missed_call``: the probability that a called non-emergency patient does not come.
      The doctor calls for ``missed_call_wait`` minutes, then the desk records the missed
      call (:meth:`Allocator.missed_call`); the patient comes back after a draw from
      ``missed_call_return`` and checks in again, until ``Policies.max_missed_calls``
      makes the token a no-show (then they do not come back).

    Breaks, pauses, and a doctor leaving and coming back are per doctor
    (:class:`DoctorPlan`).

    The day's end, off by default: with ``end_day_at`` (a time of day or an offset from
    midnight, at or after every doctor's last session), the desk ends each doctor's day
    then (:meth:`Allocator.end_day`). A doctor with a patient in (a consultation, or a call
    not answered yet) calls nobody more and the desk ends the day as soon as that patient
    is done. Booked patients who never came become no-shows, present patients not seen
    become ``UNSEEN`` (counted as ``unseen`` in the reports), and absent waitlisted ones
    are cancelled; from then on the doctor's slots are closed, so a walk-in is refused and
    a patient who comes back is turned away. Without it the doctors see every patient of
    a slot that started before their session's end, and whoever is still waiting or
    waitlisted at the end of the run is left as they are.

    ``record_estimates``, off by default: when on, the engine asks
    :meth:`Allocator.estimate` for each patient as they check in (and again when they come
    back), and :attr:`Summary.estimates` reports how those estimates came out. It makes a
    day's simulation about a quarter slower; without it the summary's ``estimates`` is None.
    """

    doctors: tuple[DoctorPlan, ...] = attrs.field(converter=_doctors)
    policies: Policies = attrs.field(factory=Policies)
    day: date = attrs.field(default=date(2026, 11, 25))
    bookings_open: timedelta = attrs.field(default=timedelta(hours=7), converter=_opening_offset)
    no_show: Mapping[Source, float] = attrs.field(default=_NO_SHOW, converter=_no_show)
    cancellation: Mapping[Source, float] = attrs.field(
        default=_CANCELLATION, converter=_cancellation
    )
    punctuality: Duration = attrs.field(factory=lambda: Normal(-10.0, 10.0), validator=_duration)
    reschedule: Mapping[Source, float] = attrs.field(
        factory=lambda: FrozenMap({}), converter=_reschedule
    )
    retriage_per_hour: float = attrs.field(default=0.0, validator=_rate)
    missed_call: float = attrs.field(default=0.0, validator=_probability)
    missed_call_wait: float = attrs.field(default=2.0, validator=_minutes_bound)
    missed_call_return: Duration = attrs.field(
        factory=lambda: Exponential(10.0), validator=_duration
    )
    end_day_at: timedelta | None = attrs.field(default=None, converter=_end_day_at)
    record_estimates: bool = attrs.field(default=False, validator=attrs_validator(check_bool))

    @doctors.validator
    def _check_doctors(self, attribute: Any, value: tuple[DoctorPlan, ...]) -> None:
        if not value:
            raise InvalidArgumentError("doctors must hold at least one DoctorPlan, got none")
        ids = [d.id for d in value]
        if len(set(ids)) != len(ids):
            raise InvalidArgumentError(f"doctor ids must be unique, got {ids!r}")

    @policies.validator
    def _check_policies(self, attribute: Any, value: object) -> None:
        if not isinstance(value, Policies):
            raise InvalidArgumentError(f"policies must be a Policies, got policies={value!r}")

    @day.validator
    def _check_day(self, attribute: Any, value: object) -> None:
        if not isinstance(value, date) or isinstance(value, datetime):
            raise InvalidArgumentError(f"day must be a datetime.date, got day={value!r}")

    @end_day_at.validator
    def _check_end_day_at(self, attribute: Any, value: timedelta | None) -> None:
        if value is None:
            return
        last = max(s.end for d in self.doctors for s in d.sessions)
        if value < last:
            raise InvalidArgumentError(
                f"end_day_at must be at or after the end of every doctor's last session "
                f"{last}, got end_day_at={value}"
            )

    @property
    def midnight(self) -> datetime:
        """The start of ``day``, the origin of every offset."""
        return datetime(self.day.year, self.day.month, self.day.day)

    def with_policies(self, policies: Policies) -> Scenario:
        """The same day under other policies: the question analysts ask. O(1)."""
        return attrs.evolve(self, policies=policies)

    @classmethod
    def default_day(cls, policies: Policies | None = None) -> Scenario:
        """A morning OPD of four doctors in two departments with every kind of event.

        General Medicine: Dr. Rao (09:00-13:00, 20-minute slots of 2, exponential
        consultations, a break at 11:00 whose slot the desk closes at 10:00), Dr. Iyer
        (09:00-13:00, starts 20 minutes late, log-normal consultations) and Dr. Das
        (09:00-13:00, goes home sick at 11:00); Cardiology: Dr. Nair (09:00-12:00, 30-minute
        slots of 2, 15-minute log-normal consultations, called away to the ward from 10:30
        to 11:00). Slots carry online, paid and follow-up bookings; walk-ins peak from 08:30
        to 10:00; emergencies arrive all morning. At the desk, one online patient in ten
        asks to come later, a waiting patient's condition worsens to an emergency at a rate
        of 0.03 per hour of waiting (two or three patients a day), and one called patient in
        twenty does not come at first. The policies
        default to bounded emergency overflow (1), a waitlist for full slots, aging every
        20 minutes, and a doctor's lost minutes costing places; the idle-fill rule
        (``Reallocation(fill_idle=True)``) is on, so no doctor on duty sits idle while a
        patient of theirs is present.
        """
        if policies is None:
            policies = Policies(
                emergency=EmergencyOverride(max_overflow=1),
                reallocation=Reallocation(pull_forward=True, max_moves=2),
                ordering=Aging(step=timedelta(minutes=20)),
                on_full=OnFull.WAITLIST,
                on_delay=OnDelay.SHRINK,
            )
        morning = Session(start=time(9), end=time(13), slot_minutes=20, capacity=2)
        cardiology = Session(start=time(9), end=time(12), slot_minutes=30, capacity=2)
        walk_ins = Arrivals(per_hour={time(8, 30): 3.0, time(10): 1.5}, until=time(12, 15))
        emergencies = Arrivals(
            per_hour=0.4, start=time(8, 30), until=time(12, 30), priority=Priority.EMERGENCY
        )

        def general(
            doctor_id: str, name: str, prebooked: Mapping[Source, int], **extra: Any
        ) -> DoctorPlan:
            return DoctorPlan(
                id=doctor_id,
                name=name,
                department="General Medicine",
                sessions=(morning,),
                prebooked=prebooked,
                arrivals=(walk_ins, emergencies),
                **extra,
            )

        return cls(
            doctors=(
                general(
                    "D1",
                    "Dr. Asha Rao",
                    consult=Exponential(8.0),
                    prebooked={Source.ONLINE: 1, Source.PAID: 1},
                    breaks=(Break(start=time(11), closed_at=time(10)),),
                ),
                general(
                    "D2",
                    "Dr. Vikram Iyer",
                    consult=LogNormal(8.0, 4.0),
                    late_start=20,
                    prebooked={Source.ONLINE: 1, Source.FOLLOW_UP: 1},
                ),
                general(
                    "D3",
                    "Dr. Kiran Das",
                    consult=Exponential(8.0),
                    prebooked={Source.ONLINE: 1},
                    unavailable_at=time(11),
                ),
                DoctorPlan(
                    id="D4",
                    name="Dr. Meera Nair",
                    department="Cardiology",
                    sessions=(cardiology,),
                    consult=LogNormal(15.0, 6.0),
                    prebooked={Source.PAID: 1, Source.FOLLOW_UP: 1},
                    unavailable_at=time(10, 30),
                    returns_at=time(11),
                    arrivals=(
                        Arrivals(per_hour=1.0, start=time(8, 45), until=time(11, 30)),
                        Arrivals(
                            per_hour=0.3,
                            start=time(8, 45),
                            until=time(12),
                            priority=Priority.EMERGENCY,
                        ),
                    ),
                ),
            ),
            policies=policies,
            reschedule={Source.ONLINE: 0.1},
            retriage_per_hour=0.03,
            missed_call=0.05,
        )
