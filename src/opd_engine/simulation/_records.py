"""The rows the simulation gives back: their shapes, how tokens and events become rows,
and their triage order for pandas.

Every row is a plain dict, typed here as a :class:`~typing.TypedDict` so that a typed caller
reads ``row["wait"]`` as ``float | None`` without a cast, and ``pandas.DataFrame(rows)``
takes the rows as they are. The library does not need pandas: :func:`categorise` imports it
only when called.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypedDict, TypeVar, cast

from opd_engine._codec import token_row
from opd_engine._values import Priority, Source, Token, TokenStatus
from opd_engine.events import Event, TokenEvent, TokenMoved

__all__ = [
    "OUTCOME_ORDER",
    "PRIORITY_ORDER",
    "SOURCE_ORDER",
    "DifferenceRow",
    "EstimateRow",
    "EventRecord",
    "IdleRecord",
    "RefusalRecord",
    "TidyRow",
    "TokenRecord",
    "TokenRow",
    "categorise",
]

#: Priority names in triage order, the order queues call them: ``EMERGENCY`` first.
PRIORITY_ORDER: Final[tuple[str, ...]] = tuple(p.name for p in sorted(Priority))
#: Source names in the triage order of their default priorities (``PAID``, ``FOLLOW_UP``,
#: then ``ONLINE`` and ``WALK_IN``, both ``STANDARD``, in the order they are defined).
SOURCE_ORDER: Final[tuple[str, ...]] = tuple(
    s.name for s in sorted(Source, key=lambda s: s.default_priority)
)
#: The ``outcome`` of a token record, from seen to never seen.
OUTCOME_ORDER: Final[tuple[str, ...]] = ("seen", "unseen", "no_show", "cancelled")
_STATUS_ORDER: Final[tuple[str, ...]] = tuple(s.name for s in TokenStatus)
Outcome = Literal["seen", "cancelled", "no_show", "unseen"]
# Each status's ``outcome`` in a token record: the day's end as the rows tell it.
OUTCOMES: Final[dict[TokenStatus, Outcome]] = {
    TokenStatus.COMPLETED: "seen",
    TokenStatus.IN_CONSULTATION: "seen",
    TokenStatus.CANCELLED: "cancelled",
    TokenStatus.NO_SHOW: "no_show",
    TokenStatus.BOOKED: "unseen",
    TokenStatus.CHECKED_IN: "unseen",
    TokenStatus.WAITLISTED: "unseen",
    TokenStatus.AWAY: "unseen",
    TokenStatus.UNSEEN: "unseen",
}
_MINUTE: Final = timedelta(minutes=1)


class TokenRow(TypedDict):
    """One token as a row: every :class:`~opd_engine.Token` field, enums by name.

    The rows of :meth:`Allocator.records() <opd_engine.Allocator.records>` have this shape
    (that method is typed ``list[dict[str, object]]``; ``cast(list[TokenRow], rows)`` types
    them).
    """

    id: str
    patient_id: str
    doctor_id: str
    slot_id: str | None
    priority: str
    source: str
    seq: int
    number: int
    status: str
    booked_at: datetime
    checked_in_at: datetime | None
    moves: int
    missed_calls: int
    called_at: datetime | None
    completed_at: datetime | None


class TokenRecord(TokenRow):
    """A row of :meth:`SimulationResult.records`: a :class:`TokenRow`, the ``wait`` in
    minutes from check-in to call (None if never called) and the day's ``outcome``."""

    wait: float | None
    outcome: Literal["seen", "cancelled", "no_show", "unseen"]


class EventRecord(TypedDict):
    """A row of :meth:`SimulationResult.events`: every key on every row, None where the
    event has no such field. ``event`` is the event's class name."""

    at: datetime
    version: int
    event: str
    token_id: str | None
    doctor_id: str | None
    slot_id: str | None
    priority: str | None
    source: str | None
    status: str | None
    from_slot_id: str | None
    to_slot_id: str | None
    reason: str | None
    old_capacity: int | None
    capacity: int | None
    minutes: int | None
    total_minutes: int | None


class RefusalRecord(TypedDict):
    """A row of :meth:`SimulationResult.refusals`; ``reason`` is ``full`` or ``closed``."""

    at: datetime
    doctor_id: str
    source: str
    priority: str
    reason: str


class IdleRecord(TypedDict):
    """A row of :meth:`SimulationResult.idle_waiting`."""

    doctor_id: str
    start: datetime
    end: datetime
    minutes: float


class TidyRow(TypedDict):
    """One figure of one simulated day, in long (tidy) form.

    ``figure`` is the dotted key of :meth:`Summary.figures` (``priority.PAID.mean_wait``),
    split into ``by`` (``day``, ``priority``, ``source``, ``doctor`` or ``moves``),
    ``group`` (``PAID``, a doctor's id, a move's reason; ``all`` for the day's totals) and
    ``metric`` (``mean_wait``; ``count`` for moves). ``scenario`` is the caller's label.
    """

    scenario: str
    seed: int
    figure: str
    by: str
    group: str
    metric: str
    value: float


class EstimateRow(TypedDict):
    """A row of :meth:`Replication.rows`: a figure's mean over the seeds and its 95%
    confidence interval."""

    figure: str
    by: str
    group: str
    metric: str
    mean: float
    low: float
    high: float
    n: int


class DifferenceRow(TypedDict):
    """A row of :meth:`Comparison.rows`: ``scenario`` minus ``baseline`` for one figure,
    paired seed by seed (common random numbers).

    ``difference`` is the mean of the paired differences, ``low`` and ``high`` its 95%
    confidence interval (Student's t over ``n`` pairs), ``half_width`` = ``high -
    difference`` (for error bars); ``baseline_mean`` and ``scenario_mean`` are the two
    means over the same seeds.
    """

    scenario: str
    baseline: str
    figure: str
    by: str
    group: str
    metric: str
    baseline_mean: float
    scenario_mean: float
    difference: float
    low: float
    high: float
    half_width: float
    n: int


def split_figure(figure: str) -> tuple[str, str, str]:
    """``(by, group, metric)`` of a dotted figure key; doctor ids may hold dots. O(len)."""
    if "." not in figure:
        return "day", "all", figure
    by, rest = figure.split(".", 1)
    if by == "moves":
        return by, rest, "count"
    group, metric = rest.rsplit(".", 1)
    return by, group, metric


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


def event_row(event: Event) -> dict[str, object]:
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


def token_records(tokens: Iterable[Token]) -> list[TokenRecord]:
    """One :class:`TokenRecord` per token: its :func:`~opd_engine._codec.token_row`, the
    ``wait`` and the ``outcome``. O(tokens); simulations of tens of thousands of patients
    time it."""
    outcomes, minute = OUTCOMES, _MINUTE
    rows = []
    for t in tokens:
        row = token_row(t)
        called, arrived = t.called_at, t.checked_in_at
        row["wait"] = None if called is None or arrived is None else (called - arrived) / minute
        row["outcome"] = outcomes[t.status]
        rows.append(row)
    return cast(list[TokenRecord], rows)


F = TypeVar("F")

_ORDERS: Final = {
    "priority": PRIORITY_ORDER,
    "source": SOURCE_ORDER,
    "outcome": OUTCOME_ORDER,
    "status": _STATUS_ORDER,
}


def categorise(frame: F) -> F:
    """A copy of a ``pandas.DataFrame`` with ``priority``, ``source``, ``outcome`` and
    ``status`` (those it has) as ordered Categoricals, in triage order.

    A ``groupby("priority")``, a sort or a plot's axis then runs ``EMERGENCY``, ``PAID``,
    ``FOLLOW_UP``, ``STANDARD`` instead of alphabetically, and every level appears even if
    no row has it (pass ``observed=False`` to ``groupby``). pandas is imported only here; it
    is not a dependency of the library. O(rows).
    """
    pandas: Any = importlib.import_module("pandas")
    data: Any = frame
    changes = {
        column: pandas.Categorical(data[column], categories=order, ordered=True)
        for column, order in _ORDERS.items()
        if column in data.columns
    }
    result: F = data.assign(**changes)
    return result
