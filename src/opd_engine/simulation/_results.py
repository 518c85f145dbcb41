"""What a simulation gives back: a day's result, its figures, and replications' estimates.

A :class:`SimulationResult` hands out rows (built in ``_records``) and a :class:`Summary`
of per-priority, per-source and per-doctor figures; a :class:`Replication` gives each
figure's mean and 95% interval over seeds (the arithmetic in ``_stats``). The text report
and the notebook tables are written in ``_report``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, cast, final

import attrs

from opd_engine._allocator import Allocator
from opd_engine._check import utc
from opd_engine._estimate import WaitEstimate
from opd_engine._frozen import FrozenMap
from opd_engine._slot import Slot
from opd_engine._values import Priority, Source, Token, TokenStatus
from opd_engine.events import Event, TokenMoved

from ._records import (
    OUTCOMES,
    EstimateRow,
    EventRecord,
    IdleRecord,
    RefusalRecord,
    TidyRow,
    TokenRecord,
    event_row,
    split_figure,
    token_records,
)
from ._report import replication_html, summary_html, summary_report
from ._scenario import Scenario
from ._stats import mean_interval, percentile

__all__ = [
    "DoctorDay",
    "DoctorStats",
    "Estimate",
    "EstimateStats",
    "Refusal",
    "Replication",
    "SimulationResult",
    "Summary",
    "WaitStats",
]

_MINUTE: Final = timedelta(minutes=1)


def _minutes(delta: timedelta) -> float:
    return delta / _MINUTE


@final
@attrs.frozen(kw_only=True)
class Refusal:
    """A patient turned away at booking: the slot was full (``OnFull.REJECT``) or closed."""

    at: datetime
    doctor_id: str
    source: Source
    priority: Priority
    reason: str


@final
@attrs.define(kw_only=True)
class DoctorDay:
    """What a doctor did, as it happened: duty windows (sessions, after any late start),
    consultations, missed calls (from the call to the desk giving up), time off duty within
    the sessions (breaks, pauses, time away), when they left for good (if they did), the
    periods they were idle on duty while one of their patients waited present, and when
    the desk ended their day (:meth:`Allocator.end_day`; None without
    ``Scenario.end_day_at``)."""

    doctor_id: str
    sessions: tuple[tuple[datetime, datetime], ...]
    consultations: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    missed_calls: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    off_duty: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    left_at: datetime | None = None
    idle_waiting: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    ended_at: datetime | None = None


@final
@attrs.frozen(kw_only=True)
class WaitStats:
    """Figures for one group of tokens (a priority or a source). Waits in minutes, from
    check-in to call, over the patients seen; None when nobody in the group was seen."""

    count: int
    seen: int
    mean_wait: float | None
    p50_wait: float | None
    p90_wait: float | None
    max_wait: float | None
    no_shows: int
    cancellations: int
    unseen: int
    moves: int
    refused: int


@final
@attrs.frozen(kw_only=True)
class DoctorStats:
    """One doctor's day, in minutes.

    ``session_minutes`` is the time on duty: the sessions from the (late) start, less breaks
    and time away, until the doctor left for good if they did. ``utilisation`` is the share
    of that time spent in consultation, so it is at most 1; consultations after the last
    session's end are ``overtime_minutes`` (to the end of the last consultation), outside
    duty, so a doctor can be fully utilised and still run over. ``idle_minutes`` is duty
    time neither in consultation nor calling a patient who did not come
    (``calling_minutes``, over ``missed_calls`` calls); ``idle_waiting_minutes`` the part
    of it during which one of the doctor's own patients waited present (checked in, or
    waitlisted after checking in): zero under the idle-fill rule.
    ``emergency_overflow`` is the places used beyond capacity in the doctor's slots;
    ``unseen`` the tokens with the doctor at the end of the day that were never seen, of
    which ``unseen_present`` had checked in, and of those ``ended_unseen`` were present
    when the desk ended the doctor's day (``UNSEEN``; ``Scenario.end_day_at``).
    """

    patients: int
    session_minutes: float
    busy_minutes: float
    utilisation: float
    idle_minutes: float
    idle_waiting_minutes: float
    calling_minutes: float
    missed_calls: int
    overtime_minutes: float
    emergency_overflow: int
    unseen: int
    unseen_present: int
    ended_unseen: int = 0


@final
@attrs.frozen(kw_only=True)
class EstimateStats:
    """How the estimates told to patients when they checked in (:meth:`Allocator.estimate`)
    came out, in minutes.

    Counted are the patients called after checking in, each with the estimate made when
    they (last) checked in: ``counted`` of them, ``inside`` called inside their window
    (``earliest <= called_at <= latest``), ``coverage`` the share inside,
    ``median_width`` the window's median width, ``median_wait`` their median wait from
    check-in to call, and ``mean_error`` the mean distance from the likely time to the
    call. None where nobody counts. Not counted, and reported apart: ``stepped_out``
    (away from the waiting room at the end of the day), ``unseen`` (present but not seen
    when the doctor's day ended) and ``never_called`` (checked in, then never called:
    still waiting, cancelled or moved off at the day's end).
    """

    counted: int = 0
    inside: int = 0
    coverage: float | None = None
    median_width: float | None = None
    median_wait: float | None = None
    mean_error: float | None = None
    stepped_out: int = 0
    unseen: int = 0
    never_called: int = 0


def _estimate_stats(
    tokens: Iterable[Token], estimates: Mapping[str, WaitEstimate | None]
) -> EstimateStats:
    widths: list[float] = []
    waits: list[float] = []
    errors: list[float] = []
    inside = stepped_out = unseen = never_called = 0
    for token in tokens:
        if token.checked_in_at is None:
            continue
        status = token.status.name
        if status == "AWAY":
            stepped_out += 1
        elif status == "UNSEEN":
            unseen += 1
        elif token.called_at is None:
            never_called += 1
        else:
            told = estimates.get(token.id)
            if told is None or token.called_at < token.checked_in_at:
                continue
            called = utc(token.called_at)
            inside += utc(told.earliest) <= called <= utc(told.latest)
            widths.append(_minutes(told.width))
            waits.append(_minutes(token.called_at - token.checked_in_at))
            errors.append(abs(_minutes(called - utc(told.likely))))
    counted = len(widths)
    if not counted:
        return EstimateStats(stepped_out=stepped_out, unseen=unseen, never_called=never_called)
    return EstimateStats(
        counted=counted,
        inside=inside,
        coverage=inside / counted,
        median_width=percentile(sorted(widths), 50),
        median_wait=percentile(sorted(waits), 50),
        mean_error=math.fsum(errors) / counted,
        stepped_out=stepped_out,
        unseen=unseen,
        never_called=never_called,
    )


def _wait_stats(tokens: list[Token], refused: int) -> WaitStats:
    waits = sorted(
        _minutes(t.called_at - t.checked_in_at)
        for t in tokens
        if t.called_at is not None and t.checked_in_at is not None
    )
    seen = len(waits)
    return WaitStats(
        count=len(tokens),
        seen=seen,
        mean_wait=math.fsum(waits) / seen if seen else None,
        p50_wait=percentile(waits, 50) if seen else None,
        p90_wait=percentile(waits, 90) if seen else None,
        max_wait=waits[-1] if seen else None,
        no_shows=sum(1 for t in tokens if t.status is TokenStatus.NO_SHOW),
        cancellations=sum(1 for t in tokens if t.status is TokenStatus.CANCELLED),
        unseen=sum(1 for t in tokens if OUTCOMES[t.status] == "unseen"),
        moves=sum(t.moves for t in tokens),
        refused=refused,
    )


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> float:
    start, end = max(a[0], b[0]), min(a[1], b[1])
    return max(0.0, _minutes(end - start))


def _without(
    windows: Iterable[tuple[datetime, datetime]], gaps: Iterable[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The parts of ``windows`` outside every gap. O((w + g) log g)."""
    cuts = sorted(gaps)
    pieces = []
    for start, end in windows:
        for gap_start, gap_end in cuts:
            if gap_end <= start or gap_start >= end:
                continue
            if gap_start > start:
                pieces.append((start, gap_start))
            start = max(start, gap_end)
            if start >= end:
                break
        if start < end:
            pieces.append((start, end))
    return pieces


def _doctor_stats(day: DoctorDay, slots: Iterable[Slot], tokens: Iterable[Token]) -> DoctorStats:
    until = [
        (start, end if day.left_at is None else min(end, day.left_at))
        for start, end in day.sessions
        if day.left_at is None or start < day.left_at
    ]
    windows = _without(until, day.off_duty)
    session = math.fsum(_minutes(end - start) for start, end in windows)
    busy = math.fsum(_minutes(end - start) for start, end in day.consultations)
    inside = math.fsum(_overlap(c, w) for c in day.consultations for w in windows)
    calling = math.fsum(_overlap(c, w) for c in day.missed_calls for w in windows)
    last_end = day.sessions[-1][1]
    finished = max((end for _, end in day.consultations), default=last_end)
    overtime = _minutes(finished - last_end) if day.left_at is None else 0.0
    unseen = [t for t in tokens if OUTCOMES[t.status] == "unseen"]
    return DoctorStats(
        patients=len(day.consultations),
        session_minutes=session,
        busy_minutes=busy,
        utilisation=inside / session if session else 0.0,
        idle_minutes=max(0.0, session - inside - calling),
        idle_waiting_minutes=math.fsum(_minutes(end - start) for start, end in day.idle_waiting),
        calling_minutes=calling,
        missed_calls=len(day.missed_calls),
        overtime_minutes=max(0.0, overtime),
        emergency_overflow=sum(slot.overflow for slot in slots),
        unseen=len(unseen),
        unseen_present=sum(1 for t in unseen if t.checked_in_at is not None),
        ended_unseen=sum(1 for t in unseen if t.status is TokenStatus.UNSEEN),
    )


@final
@attrs.frozen(kw_only=True)
class Summary:
    """A day's figures: per priority, per source, per doctor, and moves by reason.

    Every priority and every source has an entry (with zero counts if absent), so the
    summaries of different seeds line up figure by figure.
    """

    seed: int
    tokens: int
    refused: int
    by_priority: Mapping[str, WaitStats]
    by_source: Mapping[str, WaitStats]
    by_doctor: Mapping[str, DoctorStats]
    moves: Mapping[str, int]
    #: How the estimates told at check-in came out (coverage and width side by side);
    #: None when the day recorded no estimates (``Scenario.record_estimates`` off).
    estimates: EstimateStats | None = None

    @property
    def idle_waiting_minutes(self) -> float:
        """Minutes doctors were idle on duty while one of their patients waited present,
        over all doctors. O(doctors)."""
        return math.fsum(d.idle_waiting_minutes for d in self.by_doctor.values())

    @property
    def unseen(self) -> int:
        """Tokens never seen (``UNSEEN`` when the desk ended the day, or still waiting or
        waitlisted at the end of the run). O(1)."""
        return sum(s.unseen for s in self.by_priority.values())

    def figures(self) -> dict[str, float]:
        """Every figure as ``{"priority.STANDARD.mean_wait": 12.5, ...}``, leaving out
        waits of groups nobody in which was seen, and the ``estimate.all.*`` figures when
        the day recorded no estimates; ``idle_waiting_minutes`` and ``unseen`` are the
        day's totals. O(figures)."""
        flat: dict[str, float] = {
            "tokens": self.tokens,
            "refused": self.refused,
            "unseen": self.unseen,
            "idle_waiting_minutes": self.idle_waiting_minutes,
        }
        for group, stats in (("priority", self.by_priority), ("source", self.by_source)):
            for name, wait in stats.items():
                for field, value in attrs.asdict(wait).items():
                    if value is not None:
                        flat[f"{group}.{name}.{field}"] = float(value)
        for name, doctor in self.by_doctor.items():
            for field, value in attrs.asdict(doctor).items():
                flat[f"doctor.{name}.{field}"] = float(value)
        for reason, count in self.moves.items():
            flat[f"moves.{reason}"] = count
        if self.estimates is not None:
            for field, value in attrs.asdict(self.estimates).items():
                if value is not None:
                    flat[f"estimate.all.{field}"] = float(value)
        return flat

    def tidy(self, scenario: str = "") -> list[TidyRow]:
        """Every figure as one long-format row (``scenario``, ``seed``, ``figure``, ``by``,
        ``group``, ``metric``, ``value``): what ``pandas``, seaborn and Altair take as they
        are. The same figures as :meth:`figures`, in the same order; ``scenario`` labels
        the rows. O(figures)."""
        return [
            TidyRow(
                scenario=scenario,
                seed=self.seed,
                figure=figure,
                by=by,
                group=group,
                metric=metric,
                value=value,
            )
            for figure, value in self.figures().items()
            for by, group, metric in (split_figure(figure),)
        ]

    def rows(self) -> list[dict[str, object]]:
        """One row per priority and per source group, ready for ``pandas.DataFrame``."""
        return [
            {"group": group, "name": name, **attrs.asdict(wait)}
            for group, stats in (("priority", self.by_priority), ("source", self.by_source))
            for name, wait in stats.items()
        ]

    def doctor_rows(self) -> list[dict[str, object]]:
        """One row per doctor: ``doctor`` and every :class:`DoctorStats` field. O(doctors)."""
        return [{"doctor": name, **attrs.asdict(d)} for name, d in self.by_doctor.items()]

    def report(self) -> str:
        """The summary as plain text for a terminal or a log, at most 80 columns wide: the
        patients by priority and by source, the doctors, one line per doctor on their idle
        time and unseen patients, the moves, and a legend. O(figures)."""
        return summary_report(self)

    def _repr_html_(self) -> str:
        return summary_html(self)


@final
@attrs.define(kw_only=True, eq=False, repr=False)
class SimulationResult:
    """One simulated day: rows for analysis and a summary.

    ``records()`` and ``events()`` return plain dicts, so ``pandas.DataFrame(rows)`` takes
    them as they are; the library itself does not need pandas. A result from
    :func:`simulate` holds no events until ``events()`` asks for them: the day is then
    simulated again, once, to collect them.
    """

    scenario: Scenario
    seed: int
    #: The allocator at the end of the day, for any question the rows do not answer.
    allocator: Allocator
    _tokens: list[Token] = attrs.field(alias="tokens")
    _slots: list[Slot] = attrs.field(alias="slots")
    # None until asked for: then ``replay()`` gives them (the day simulated again).
    _events: list[Event] | None = attrs.field(alias="events")
    _refusals: list[Refusal] = attrs.field(alias="refusals")
    _doctors: list[DoctorDay] = attrs.field(alias="doctors")
    # Tokens moved by the name of the move's reason, as the engine counted them (None:
    # count the TokenMoved events).
    _moves: Mapping[str, int] | None = attrs.field(alias="moves", default=None)
    _replay: Callable[[], list[Event]] | None = attrs.field(alias="replay", default=None)
    # token id -> the estimate made when the patient (last) checked in; None when the
    # day recorded none.
    _estimates: Mapping[str, WaitEstimate | None] | None = attrs.field(
        alias="estimates", default=None
    )
    _summary: Summary | None = attrs.field(init=False, default=None)

    def _event_list(self) -> list[Event]:
        if self._events is None:
            assert self._replay is not None, "a result without events can replay its day"
            self._events = self._replay()
            self._replay = None
        return self._events

    def records(self) -> list[TokenRecord]:
        """One row per token: its fields (enums by name), ``wait`` (minutes from check-in
        to call, None if never called) and ``outcome`` (``seen``, ``cancelled``,
        ``no_show`` or ``unseen``), typed :class:`TokenRecord`; :func:`categorise` puts
        ``priority`` and ``source`` in triage order in a DataFrame. O(tokens)."""
        return token_records(self._tokens)

    def events(self) -> list[EventRecord]:
        """One row per allocator event, in order, all with the same keys (None where a key
        does not apply to the event), typed :class:`EventRecord`. O(events), plus, the
        first time, the day simulated again to collect them: :func:`simulate` keeps no
        event (so the allocator builds none) unless its engine needs them, and the same
        seed gives the same day."""
        return [cast(EventRecord, event_row(event)) for event in self._event_list()]

    def refusals(self) -> list[RefusalRecord]:
        """One row per patient turned away at booking, typed :class:`RefusalRecord`.
        O(refusals)."""
        return [
            RefusalRecord(
                at=r.at,
                doctor_id=r.doctor_id,
                source=r.source.name,
                priority=r.priority.name,
                reason=r.reason,
            )
            for r in self._refusals
        ]

    def idle_waiting(self) -> list[IdleRecord]:
        """One row per period a doctor was idle on duty while one of their patients waited
        present: ``doctor_id``, ``start``, ``end``, ``minutes``. Empty under the idle-fill
        rule; typed :class:`IdleRecord`. O(periods)."""
        return [
            IdleRecord(
                doctor_id=day.doctor_id,
                start=start,
                end=end,
                minutes=_minutes(end - start),
            )
            for day in self._doctors
            for start, end in day.idle_waiting
        ]

    def estimates(self) -> dict[str, WaitEstimate]:
        """The estimate each patient was given when they (last) checked in, by token id
        (:meth:`Allocator.estimate`); :attr:`Summary.estimates` says how they came out.
        Empty unless the scenario records estimates (``Scenario.record_estimates``).
        O(patients)."""
        if self._estimates is None:
            return {}
        return {k: v for k, v in self._estimates.items() if v is not None}

    def tidy(self, scenario: str = "") -> list[TidyRow]:
        """The summary's figures in long form: :meth:`Summary.tidy`. O(tokens) the first
        time (the summary), then O(figures)."""
        return self.summary().tidy(scenario)

    def summary(self) -> Summary:
        """Per-class, per-source and per-doctor figures; computed once. O(tokens)."""
        if self._summary is None:
            self._summary = self._summarise()
        return self._summary

    def _summarise(self) -> Summary:
        by_priority: dict[str, WaitStats] = {}
        for priority in Priority:
            refused = sum(1 for r in self._refusals if r.priority is priority)
            group = [t for t in self._tokens if t.priority is priority]
            by_priority[priority.name] = _wait_stats(group, refused)
        by_source: dict[str, WaitStats] = {}
        for source in Source:
            refused = sum(1 for r in self._refusals if r.source is source)
            group = [t for t in self._tokens if t.source is source]
            by_source[source.name] = _wait_stats(group, refused)
        slots_of: dict[str, list[Slot]] = {}
        for slot in self._slots:
            slots_of.setdefault(slot.doctor_id, []).append(slot)
        tokens_of: dict[str, list[Token]] = {}
        for token in self._tokens:
            tokens_of.setdefault(token.doctor_id, []).append(token)
        by_doctor = {
            day.doctor_id: _doctor_stats(
                day, slots_of.get(day.doctor_id, []), tokens_of.get(day.doctor_id, [])
            )
            for day in self._doctors
        }
        moves: dict[str, int] = {}
        if self._moves is not None:
            moves.update(self._moves)
        else:
            for event in self._event_list():
                if isinstance(event, TokenMoved):
                    moves[event.reason.name] = moves.get(event.reason.name, 0) + 1
        return Summary(
            seed=self.seed,
            tokens=len(self._tokens),
            refused=len(self._refusals),
            by_priority=FrozenMap(by_priority),
            by_source=FrozenMap(by_source),
            by_doctor=FrozenMap(by_doctor),
            moves=FrozenMap(dict(sorted(moves.items()))),
            estimates=None
            if self._estimates is None
            else _estimate_stats(self._tokens, self._estimates),
        )

    def __repr__(self) -> str:
        seen = sum(1 for t in self._tokens if t.status is TokenStatus.COMPLETED)
        return (
            f"<SimulationResult seed={self.seed}: {len(self._tokens)} tokens, {seen} seen, "
            f"{len(self._refusals)} refused>"
        )

    def _repr_html_(self) -> str:
        return summary_html(self.summary())


# --------------------------------------------------------------------------- replications


@final
@attrs.frozen(kw_only=True)
class Estimate:
    """A figure's mean over replications with its 95% confidence interval (Student's t)."""

    mean: float
    low: float
    high: float
    n: int


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and 95% confidence interval of independent replications. O(n)."""
    mean, low, high = mean_interval(values)
    return Estimate(mean=mean, low=low, high=high, n=len(values))


@final
@attrs.frozen(kw_only=True)
class Replication:
    """Summaries of one scenario under several seeds, with means and 95% intervals."""

    scenario: Scenario
    summaries: tuple[Summary, ...]

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds, in the order given."""
        return tuple(s.seed for s in self.summaries)

    def estimates(self) -> dict[str, Estimate]:
        """Every figure's :class:`Estimate` over the seeds where it exists. O(figures * n)."""
        collected: dict[str, list[float]] = {}
        for summary in self.summaries:
            for name, value in summary.figures().items():
                collected.setdefault(name, []).append(value)
        return {name: estimate(values) for name, values in collected.items()}

    def rows(self) -> list[EstimateRow]:
        """One row per figure, sorted by figure: ``figure`` (the dotted key), split into
        ``by``, ``group`` and ``metric`` as in :class:`TidyRow`, then ``mean``, ``low``,
        ``high``, ``n``. O(figures * n)."""
        return [
            EstimateRow(
                figure=name,
                by=by,
                group=group,
                metric=metric,
                mean=e.mean,
                low=e.low,
                high=e.high,
                n=e.n,
            )
            for name, e in sorted(self.estimates().items())
            for by, group, metric in (split_figure(name),)
        ]

    def tidy(self, scenario: str = "") -> list[TidyRow]:
        """Every figure of every seed in long form (:meth:`Summary.tidy`), seed by seed in
        the order run; ``scenario`` labels the rows. O(figures * n)."""
        return [row for summary in self.summaries for row in summary.tidy(scenario)]

    def _repr_html_(self) -> str:
        return replication_html(self)
