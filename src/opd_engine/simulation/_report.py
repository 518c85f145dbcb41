"""The simulation's reports: a summary as 80-column text, and the tables a notebook shows.

The result classes call these (:meth:`Summary.report`, and the ``_repr_html_`` of
:class:`Summary`, :class:`SimulationResult` and :class:`Replication`); they read only the
results' public fields. They name the result types for the type checker alone, so at run
time the arrow points one way: the results import the report, never the other way round.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from opd_engine._display import table

if TYPE_CHECKING:
    from ._results import DoctorStats, EstimateStats, Replication, Summary, WaitStats


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
    (
        "unseen",
        "never seen: still on a waitlist when the day ended, or present and not seen "
        "when the desk ended the day",
    ),
    ("no-show", "never came, or missed too many calls"),
    ("cancel", "cancelled before the slot"),
    ("moves", "times a token was moved, by reason in the Moves line"),
    (
        "duty",
        "minutes on duty: the sessions from any late start, less breaks, pauses and time away",
    ),
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
    waitlisted = d.unseen_present - d.ended_unseen
    if not d.unseen:
        unseen = "no patient of theirs left unseen"
    else:
        parts = []
        if d.ended_unseen:
            parts.append(f"{d.ended_unseen} here but not seen when the desk ended the day")
        if waitlisted:
            parts.append(f"{waitlisted} here but still waitlisted when the session ended")
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


def summary_report(summary: Summary) -> str:
    """The text of :meth:`Summary.report`: at most 80 columns wide. O(figures)."""
    lines = [f"Patients by priority, seed {summary.seed} (waits in minutes)"]
    lines += _text_table(_GROUP_HEADER, [_group_row(n, s) for n, s in summary.by_priority.items()])
    lines += ["", "Patients by source"]
    lines += _text_table(_GROUP_HEADER, [_group_row(n, s) for n, s in summary.by_source.items()])
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
            for n, d in summary.by_doctor.items()
        ],
    )
    lines.append("")
    for name, doctor in summary.by_doctor.items():
        lines += _wrap(explain(name, doctor), "    ")
    lines.append("")
    lines += _items("Moves: ", [f"{reason} {count}" for reason, count in summary.moves.items()])
    lines += [
        f"Tokens: {summary.tokens}, refused: {summary.refused}, unseen: {summary.unseen}, "
        f"idle while a patient waited: {summary.idle_waiting_minutes:.1f} min",
        *_estimate_lines(summary.estimates),
        "",
    ]
    lines += _legend()
    return "\n".join(lines)


def summary_html(summary: Summary) -> str:
    """A summary's tables for a notebook: every figure of every group. O(figures)."""
    return (
        table(
            f"Waits by priority, seed {summary.seed} (minutes)",
            _WAIT_HEADER,
            (_wait_row(n, s) for n, s in summary.by_priority.items()),
        )
        + table(
            "Waits by source (minutes)",
            _WAIT_HEADER,
            (_wait_row(n, s) for n, s in summary.by_source.items()),
        )
        + table(
            "Doctors (minutes; utilisation is the share of duty in consultation)",
            _DOCTOR_HEADER,
            (_doctor_row(n, d) for n, d in summary.by_doctor.items()),
        )
    )


def replication_html(replication: Replication) -> str:
    """A replication's waits by priority for a notebook: mean and 95% interval over the
    seeds. O(figures * n)."""
    rows = [
        (name, e.mean, e.low, e.high, e.n)
        for name, e in sorted(replication.estimates().items())
        if name.startswith("priority.") and name.endswith("_wait")
    ]
    return table(
        f"Waits over {len(replication.summaries)} seeds (minutes, 95% interval)",
        ("figure", "mean", "low", "high", "n"),
        rows,
    )


def _estimate_lines(stats: EstimateStats | None) -> list[str]:
    """The estimates told at check-in, as the report's lines. O(1)."""
    if stats is None:
        return ["Estimates: not recorded (Scenario.record_estimates is off)"]
    apart = (
        f"not counted: {stats.stepped_out} stepped out, {stats.unseen} unseen, "
        f"{stats.never_called} never called"
    )
    if stats.coverage is None:
        return [f"Estimates: nobody was called after checking in; {apart}"]
    assert stats.median_width is not None
    assert stats.median_wait is not None
    return [
        f"Estimates at check-in: {stats.inside} of {stats.counted} called inside their "
        f"window ({stats.coverage:.0%});",
        f"  median width {stats.median_width:.1f} min against a median wait of "
        f"{stats.median_wait:.1f} min; mean error {stats.mean_error:.1f} min;",
        f"  {apart}",
    ]
