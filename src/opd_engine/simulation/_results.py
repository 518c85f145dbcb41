"""What a simulation gives back: rows for DataFrames, summaries, replications."""

from __future__ import annotations

import functools
import math
import statistics
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, Literal, cast, final

import attrs

from opd_engine._allocator import Allocator
from opd_engine._codec import token_row
from opd_engine._display import table
from opd_engine._frozen import FrozenMap
from opd_engine._slot import Slot
from opd_engine._values import Priority, Source, Token, TokenStatus
from opd_engine.events import Event, TokenEvent, TokenMoved

from ._records import (
    EstimateRow,
    EventRecord,
    IdleRecord,
    RefusalRecord,
    TidyRow,
    TokenRecord,
    split_figure,
)
from ._scenario import Scenario

__all__ = [
    "DoctorDay",
    "DoctorStats",
    "Estimate",
    "Refusal",
    "Replication",
    "SimulationResult",
    "Summary",
    "WaitStats",
]

_MINUTE: Final = timedelta(minutes=1)
Outcome = Literal["seen", "cancelled", "no_show", "unseen"]
_OUTCOMES: Final[dict[TokenStatus, Outcome]] = {
    TokenStatus.COMPLETED: "seen",
    TokenStatus.IN_CONSULTATION: "seen",
    TokenStatus.CANCELLED: "cancelled",
    TokenStatus.NO_SHOW: "no_show",
    TokenStatus.BOOKED: "unseen",
    TokenStatus.CHECKED_IN: "unseen",
    TokenStatus.WAITLISTED: "unseen",
}
_EVENT_COLUMNS: Final = (
    "at",
    "version",
    "event",
    "token_id",
    "doctor_id",
    "slot_id",
    "priority",
    "source",
    "status",
    "from_slot_id",
    "to_slot_id",
    "reason",
    "old_capacity",
    "capacity",
    "minutes",
    "total_minutes",
)


def _minutes(delta: timedelta) -> float:
    return delta / _MINUTE


def percentile(ordered: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of sorted values, interpolating linearly. O(1)."""
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


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
    the sessions (breaks, time away), when they left for good (if they did), and the periods
    they were idle on duty while one of their patients waited present."""

    doctor_id: str
    sessions: tuple[tuple[datetime, datetime], ...]
    consultations: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    missed_calls: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    off_duty: list[tuple[datetime, datetime]] = attrs.field(factory=list)
    left_at: datetime | None = None
    idle_waiting: list[tuple[datetime, datetime]] = attrs.field(factory=list)


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
    which ``unseen_present`` had checked in.
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
        unseen=sum(1 for t in tokens if _OUTCOMES[t.status] == "unseen"),
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
    unseen = [t for t in tokens if _OUTCOMES[t.status] == "unseen"]
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
    )


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _text_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    cells = [list(header)] + [[_text(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]


#: The report's width: an 80-column terminal.
WIDTH: Final = 80

# The text report's group tables: the key figures only, so that they fit in 80 columns.
_GROUP_HEADER: Final = (
    "group",
    "tokens",
    "seen",
    "mean",
    "p90",
    "unseen",
    "no-show",
    "cancel",
    "refused",
    "moves",
)
# The HTML tables have room for every figure.
_WAIT_HEADER: Final = (
    "group",
    "count",
    "seen",
    "mean wait",
    "p50",
    "p90",
    "max",
    "no-shows",
    "cancelled",
    "unseen",
    "moves",
    "refused",
)
_DOCTOR_TEXT_HEADER: Final = (
    "doctor",
    "duty",
    "seen",
    "busy",
    "idle",
    "idle-waiting",
    "overtime",
    "overflow",
    "unseen",
)
_DOCTOR_HEADER: Final = (
    "doctor",
    "patients",
    "duty min",
    "utilisation",
    "idle min",
    "idle while a patient waited",
    "calling min",
    "missed calls",
    "overtime min",
    "overflow",
    "unseen",
    "unseen, checked in",
)
_LEGEND: Final = (
    ("tokens", "tokens issued"),
    ("refused", "turned away at booking: no token issued"),
    ("seen", "called in by a doctor (doctors: patients seen)"),
    ("mean, p90", "minutes from check-in to call, over the patients seen"),
    ("unseen", "never seen: still on a waitlist when the day ended"),
    ("no-show", "never came, or missed too many calls"),
    ("cancel", "cancelled before the slot"),
    ("moves", "times a token was moved, by reason in the Moves line"),
    ("duty", "minutes on duty: the sessions from any late start, less breaks and time away"),
    (
        "busy",
        "utilisation, the share of duty spent in consultation; consultations past the "
        "session's end are overtime, outside duty, so 100% busy and overtime mean a "
        "full day and then some",
    ),
    ("idle", "duty minutes out of consultation"),
    (
        "idle-waiting",
        "idle minutes while a patient of the doctor's waited present (checked in, or "
        "waitlisted after checking in): zero under the idle-fill rule",
    ),
    ("overtime", "minutes from the session's end to the end of the last consultation"),
    ("overflow", "places used beyond the slots' capacity (emergencies, idle-fill)"),
)
_TERM: Final = 14


def _legend() -> list[str]:
    lines = ["Legend"]
    for term, text in _LEGEND:
        first, *rest = textwrap.wrap(text, WIDTH - _TERM - 2, break_on_hyphens=False)
        lines.append(f"  {term:<{_TERM}}{first}")
        lines += [" " * (_TERM + 2) + line for line in rest]
    return lines


def _group_row(name: str, s: WaitStats) -> tuple[object, ...]:
    return (
        name,
        s.count,
        s.seen,
        s.mean_wait,
        s.p90_wait,
        s.unseen,
        s.no_shows,
        s.cancellations,
        s.refused,
        s.moves,
    )


def _wait_row(name: str, s: WaitStats) -> tuple[object, ...]:
    return (
        name,
        s.count,
        s.seen,
        s.mean_wait,
        s.p50_wait,
        s.p90_wait,
        s.max_wait,
        s.no_shows,
        s.cancellations,
        s.unseen,
        s.moves,
        s.refused,
    )


def _doctor_row(name: str, d: DoctorStats) -> tuple[object, ...]:
    return (
        name,
        d.patients,
        d.session_minutes,
        f"{d.utilisation:.0%}",
        d.idle_minutes,
        d.idle_waiting_minutes,
        d.calling_minutes,
        d.missed_calls,
        d.overtime_minutes,
        d.emergency_overflow,
        d.unseen,
        d.unseen_present,
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def explain(name: str, d: DoctorStats) -> str:
    """One sentence on a doctor's idle time and unseen patients. O(1)."""
    if d.idle_minutes < 0.05:
        idle = "never idle on duty"
    elif d.idle_waiting_minutes < 0.05:
        idle = f"idle {d.idle_minutes:.1f} min, only while none of their patients was here"
    else:
        idle = (
            f"idle {d.idle_minutes:.1f} min, {d.idle_waiting_minutes:.1f} of them while a "
            f"patient of theirs waited"
        )
    if d.missed_calls:
        idle += (
            f" (and {d.calling_minutes:.1f} calling {_plural(d.missed_calls, 'absent patient')})"
        )
    absent = d.unseen - d.unseen_present
    if not d.unseen:
        unseen = "no patient of theirs left unseen"
    else:
        parts = []
        if d.unseen_present:
            parts.append(f"{d.unseen_present} here but still waitlisted when the session ended")
        if absent:
            parts.append(f"{absent} on the waitlist who never came")
        unseen = f"{d.unseen} unseen: " + ", ".join(parts)
    return f"{name}: {idle}; {unseen}."


def _items(label: str, items: Sequence[str], indent: str = "    ") -> list[str]:
    """``label`` and comma-separated items, wrapped between items, never inside one."""
    lines = [label.rstrip() + " none"] if not items else []
    line = label
    for i, item in enumerate(items):
        text = item + ("," if i < len(items) - 1 else "")
        if line not in (label, indent) and len(line) + len(text) > WIDTH:
            lines.append(line.rstrip())
            line = indent
        line += text + " "
    if items:
        lines.append(line.rstrip())
    return lines


def _wrap(text: str, indent: str = "") -> list[str]:
    return textwrap.wrap(text, WIDTH, subsequent_indent=indent, break_on_hyphens=False)


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

    @property
    def idle_waiting_minutes(self) -> float:
        """Minutes doctors were idle on duty while one of their patients waited present,
        over all doctors. O(doctors)."""
        return math.fsum(d.idle_waiting_minutes for d in self.by_doctor.values())

    @property
    def unseen(self) -> int:
        """Tokens never seen (still waiting or waitlisted at the end of the day). O(1)."""
        return sum(s.unseen for s in self.by_priority.values())

    def figures(self) -> dict[str, float]:
        """Every figure as ``{"priority.STANDARD.mean_wait": 12.5, ...}``, leaving out
        waits of groups nobody in which was seen; ``idle_waiting_minutes`` and ``unseen``
        are the day's totals. O(figures)."""
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
        lines = [f"Patients by priority, seed {self.seed} (waits in minutes)"]
        lines += _text_table(_GROUP_HEADER, [_group_row(n, s) for n, s in self.by_priority.items()])
        lines += ["", "Patients by source"]
        lines += _text_table(_GROUP_HEADER, [_group_row(n, s) for n, s in self.by_source.items()])
        lines += ["", "Doctors (minutes)"]
        lines += _text_table(
            _DOCTOR_TEXT_HEADER,
            [
                (
                    n,
                    d.session_minutes,
                    d.patients,
                    f"{d.utilisation:.0%}",
                    d.idle_minutes,
                    d.idle_waiting_minutes,
                    d.overtime_minutes,
                    d.emergency_overflow,
                    d.unseen,
                )
                for n, d in self.by_doctor.items()
            ],
        )
        lines.append("")
        for name, doctor in self.by_doctor.items():
            lines += _wrap(explain(name, doctor), "    ")
        lines.append("")
        lines += _items("Moves: ", [f"{reason} {count}" for reason, count in self.moves.items()])
        lines += [
            f"Tokens: {self.tokens}, refused: {self.refused}, unseen: {self.unseen}, "
            f"idle while a patient waited: {self.idle_waiting_minutes:.1f} min",
            "",
        ]
        lines += _legend()
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return (
            table(
                f"Waits by priority, seed {self.seed} (minutes)",
                _WAIT_HEADER,
                (_wait_row(n, s) for n, s in self.by_priority.items()),
            )
            + table(
                "Waits by source (minutes)",
                _WAIT_HEADER,
                (_wait_row(n, s) for n, s in self.by_source.items()),
            )
            + table(
                "Doctors (minutes; utilisation is the share of duty in consultation)",
                _DOCTOR_HEADER,
                (_doctor_row(n, d) for n, d in self.by_doctor.items()),
            )
        )


def _event_row(event: Event) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(_EVENT_COLUMNS)
    row["at"] = event.at
    row["event"] = type(event).__name__
    if isinstance(event, TokenEvent):
        token = event.token
        row.update(
            token_id=token.id,
            doctor_id=token.doctor_id,
            slot_id=token.slot_id,
            priority=token.priority.name,
            source=token.source.name,
            status=token.status.name,
        )
    for name in (
        "version",
        "doctor_id",
        "slot_id",
        "old_capacity",
        "capacity",
        "minutes",
        "total_minutes",
    ):
        if hasattr(event, name):
            row[name] = getattr(event, name)
    if isinstance(event, TokenMoved):
        row.update(
            from_slot_id=event.from_slot_id,
            to_slot_id=event.to_slot_id,
            reason=event.reason.name,
            slot_id=event.to_slot_id,
        )
    return row


def _token_records(tokens: Iterable[Token]) -> list[TokenRecord]:
    """One :class:`TokenRecord` per token: its :func:`~opd_engine._codec.token_row`, the
    ``wait`` and the ``outcome``. O(tokens); simulations of tens of thousands of patients
    time it."""
    outcomes, minute = _OUTCOMES, _MINUTE
    rows = []
    for t in tokens:
        row = token_row(t)
        called, arrived = t.called_at, t.checked_in_at
        row["wait"] = None if called is None or arrived is None else (called - arrived) / minute
        row["outcome"] = outcomes[t.status]
        rows.append(row)
    return cast(list[TokenRecord], rows)


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
        return _token_records(self._tokens)

    def events(self) -> list[EventRecord]:
        """One row per allocator event, in order, all with the same keys (None where a key
        does not apply to the event), typed :class:`EventRecord`. O(events), plus, the
        first time, the day simulated again to collect them: :func:`simulate` keeps no
        event (so the allocator builds none) unless its engine needs them, and the same
        seed gives the same day."""
        return [cast(EventRecord, _event_row(event)) for event in self._event_list()]

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
        )

    def __repr__(self) -> str:
        seen = sum(1 for t in self._tokens if t.status is TokenStatus.COMPLETED)
        return (
            f"<SimulationResult seed={self.seed}: {len(self._tokens)} tokens, {seen} seen, "
            f"{len(self._refusals)} refused>"
        )

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()


# --------------------------------------------------------------------------- replications


def _central(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``df`` degrees of freedom, ``t >= 0``: the
    finite series of Abramowitz and Stegun 26.7.3 and 26.7.4, exact for integer ``df``.
    O(df)."""
    theta = math.atan(t / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term = total = math.cos(theta)
        for k in range(3, df - 1, 2):
            term *= cos2 * (k - 1) / k
            total += term
        return 2 / math.pi * (theta + sin * total)
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= cos2 * (k - 1) / k
        total += term
    return sin * total


# Past this many degrees of freedom the Cornish-Fisher expansion is exact to 1e-12.
_SERIES_DF: Final = 1000


@functools.lru_cache(maxsize=256)
def t_quantile(p: float, df: int) -> float:
    """Student's t ``p``-quantile (``0.5 < p < 1``) with ``df >= 1`` degrees of freedom,
    without scipy: the exact distribution function inverted by bisection to float
    precision, or for ``df`` over 1000 the Cornish-Fisher expansion around the normal
    quantile. ``t_quantile(0.975, 9)`` is 2.262157. O(df) per call, cached."""
    if df > _SERIES_DF:
        z = statistics.NormalDist().inv_cdf(p)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        return z + g1 / df + g2 / df**2 + g3 / df**3
    target = 2 * p - 1
    low, high = 0.0, 1.0
    while _central(high, df) < target:
        low, high = high, high * 2
    while True:  # halves the interval until no float lies between its ends (about 60 times)
        middle = (low + high) / 2
        if middle in (low, high):
            return middle
        if _central(middle, df) < target:
            low = middle
        else:
            high = middle


def t975(df: int) -> float:
    """Student's t 0.975 quantile, for a two-sided 95% interval: :func:`t_quantile`.
    O(df) the first time, then O(1)."""
    return t_quantile(0.975, df)


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
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return Estimate(mean=mean, low=mean, high=mean, n=n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t975(n - 1) * math.sqrt(variance / n)
    return Estimate(mean=mean, low=mean - half, high=mean + half, n=n)


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
        rows = [
            (name, e.mean, e.low, e.high, e.n)
            for name, e in sorted(self.estimates().items())
            if name.startswith("priority.") and name.endswith("_wait")
        ]
        return table(
            f"Waits over {len(self.summaries)} seeds (minutes, 95% interval)",
            ("figure", "mean", "low", "high", "n"),
            rows,
        )
