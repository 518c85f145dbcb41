"""The JSON of the HTTP recipe (``http_service.py``): request bodies and responses.

A recipe, not part of the library. Enums travel by member name (``"source": "ONLINE"``),
both ways, and datetimes as ISO 8601 strings. Request bodies are checked strictly: a number
where an id belongs, an enum's value instead of its name, or an unknown key is a 422 before
the allocator sees it; the values themselves are the library's to judge.
"""

# No ``from __future__ import annotations`` here: pydantic reads the annotations at runtime.

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import attrs
from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema

from opd_engine import (
    Doctor,
    DoctorBoard,
    DoctorStatus,
    Priority,
    Slot,
    Source,
    Token,
    TokenStatus,
    WaitEstimate,
)

__all__ = [
    "AuditOut",
    "BoardOut",
    "BoardTokenOut",
    "BookRequest",
    "CancelRequest",
    "DelayRequest",
    "DoctorBoardOut",
    "DoctorOut",
    "ErrorOut",
    "EstimateOut",
    "Page",
    "PositionOut",
    "PreviewOut",
    "RescheduleRequest",
    "ResizeRequest",
    "RetriageRequest",
    "SlotOut",
    "StateOut",
    "TokenOut",
]

E = TypeVar("E", bound=enum.Enum)
T = TypeVar("T")


# ---------------------------------------------------------------- enums by name


def _parse_member(kind: type[E]) -> Callable[[object], E]:
    """A validator accepting a member of ``kind`` or its name (never its value)."""

    def parse(value: object) -> E:
        if isinstance(value, kind):
            return value
        if isinstance(value, str) and value in kind.__members__:
            return kind[value]
        names = ", ".join(kind.__members__)
        raise ValueError(f"must be one of {names}, got {value!r}")

    return parse


def _member_name(member: enum.Enum) -> str:
    return member.name


def _names(kind: type[enum.Enum]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(kind.__members__)})


_BY_NAME = PlainSerializer(_member_name, return_type=str)
SourceName = Annotated[Source, PlainValidator(_parse_member(Source)), _BY_NAME, _names(Source)]
PriorityName = Annotated[
    Priority, PlainValidator(_parse_member(Priority)), _BY_NAME, _names(Priority)
]
StatusName = Annotated[
    TokenStatus, PlainValidator(_parse_member(TokenStatus)), _BY_NAME, _names(TokenStatus)
]
DoctorStatusName = Annotated[
    DoctorStatus, PlainValidator(_parse_member(DoctorStatus)), _BY_NAME, _names(DoctorStatus)
]


# ---------------------------------------------------------------- requests


class BookRequest(BaseModel):
    """The body of ``POST /tokens``: the arguments of :meth:`Allocator.book`.

    Types are checked strictly (a number is not a patient id) and unknown keys are refused,
    both as 422. The values themselves (an empty patient id, a slot of another doctor) are
    the library's to judge: 400.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"patient_id": "P1", "doctor_id": "D1", "source": "ONLINE"},
                {"patient_id": "P2", "doctor_id": "D1", "slot_id": "D1@10", "source": "PAID"},
                {
                    "patient_id": "P3",
                    "doctor_id": "D1",
                    "source": "WALK_IN",
                    "priority": "EMERGENCY",
                },
            ]
        },
    )

    patient_id: str
    doctor_id: str
    slot_id: str | None = None
    source: SourceName
    priority: PriorityName | None = None
    checked_in: bool | None = None


class CancelRequest(BaseModel):
    """The optional body of ``POST /tokens/{token_id}/cancel``."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"reason": "patient called"}]}
    )

    reason: str = ""


class RescheduleRequest(BaseModel):
    """The body of ``POST /tokens/{token_id}/reschedule``: the slot to move to."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"slot_id": "D1@11"}]}
    )

    slot_id: str


class RetriageRequest(BaseModel):
    """The body of ``POST /tokens/{token_id}/retriage``: the new priority."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"priority": "EMERGENCY"}]}
    )

    priority: PriorityName


class DelayRequest(BaseModel):
    """The body of ``POST /doctors/{doctor_id}/delay``: minutes to add to the delay."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"minutes": 20}]}
    )

    minutes: int


class ResizeRequest(BaseModel):
    """The body of ``POST /slots/{slot_id}/resize``: the slot's new capacity."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"capacity": 12}]}
    )

    capacity: int


# ---------------------------------------------------------------- responses


class TokenOut(BaseModel):
    """A :class:`~opd_engine.Token` as JSON: every field, enums by name, ISO 8601 datetimes."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "D1-001",
                    "patient_id": "P1",
                    "doctor_id": "D1",
                    "slot_id": "D1@09",
                    "priority": "STANDARD",
                    "source": "ONLINE",
                    "seq": 1,
                    "number": 1,
                    "status": "CHECKED_IN",
                    "booked_at": "2026-11-25T08:30:00",
                    "checked_in_at": "2026-11-25T08:55:00",
                    "moves": 0,
                    "missed_calls": 0,
                    "called_at": None,
                    "completed_at": None,
                }
            ]
        },
    )

    id: str
    patient_id: str
    doctor_id: str
    slot_id: str | None
    priority: PriorityName
    source: SourceName
    seq: int
    number: int
    status: StatusName
    booked_at: datetime
    checked_in_at: datetime | None
    moves: int
    missed_calls: int
    called_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def of(cls, token: Token) -> "TokenOut":
        """The JSON view of ``token``."""
        return cls.model_validate(attrs.asdict(token, recurse=False))


class DoctorOut(BaseModel):
    """A :class:`~opd_engine.Doctor` as JSON."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "D1",
                    "name": "Dr. Rao",
                    "department": "General Medicine",
                    "consult_minutes": 10,
                }
            ]
        },
    )

    id: str
    name: str
    department: str | None
    consult_minutes: int

    @classmethod
    def of(cls, doctor: Doctor) -> "DoctorOut":
        """The JSON view of ``doctor``."""
        return cls.model_validate(attrs.asdict(doctor, recurse=False))


class SlotOut(BaseModel):
    """A :class:`~opd_engine.Slot` as JSON, with its counts as of the answer."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "D1@09",
                    "doctor_id": "D1",
                    "start": "2026-11-25T09:00:00",
                    "end": "2026-11-25T10:00:00",
                    "capacity": 10,
                    "occupancy": 7,
                    "free": 3,
                    "waiting": 6,
                    "present": 4,
                    "emergencies": 1,
                    "overflow": 0,
                    "closed": False,
                    "elastic": 0,
                }
            ]
        },
    )

    id: str
    doctor_id: str
    start: datetime
    end: datetime
    capacity: int
    occupancy: int
    free: int
    waiting: int
    present: int
    emergencies: int
    overflow: int
    closed: bool
    elastic: bool

    @classmethod
    def of(cls, slot: Slot) -> "SlotOut":
        """The JSON view of ``slot``."""
        return cls(**{name: getattr(slot, name) for name in cls.model_fields})


class BoardTokenOut(BaseModel):
    """A token as a public screen shows it: its id and number, never the patient."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={"examples": [{"id": "D1-004", "number": 4, "slot_id": "D1@09"}]},
    )

    id: str
    number: int
    slot_id: str | None

    @classmethod
    def of(cls, token: Token) -> "BoardTokenOut":
        """The public view of ``token``."""
        return cls(id=token.id, number=token.number, slot_id=token.slot_id)


class DoctorBoardOut(BaseModel):
    """One doctor on the board (:class:`~opd_engine.DoctorBoard`), with the doctor's name."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "doctor_id": "D1",
                    "name": "Dr. Rao",
                    "department": "General Medicine",
                    "status": "AVAILABLE",
                    "now_serving": {"id": "D1-003", "number": 3, "slot_id": "D1@09"},
                    "next_up": [{"id": "D1-004", "number": 4, "slot_id": "D1@09"}],
                    "waiting": 4,
                    "away": 0,
                    "booked": 7,
                    "delay_minutes": 0,
                }
            ]
        },
    )

    doctor_id: str
    name: str
    department: str | None
    status: DoctorStatusName
    now_serving: BoardTokenOut | None
    next_up: list[BoardTokenOut]
    waiting: int
    away: int
    booked: int
    delay_minutes: int

    @classmethod
    def of(cls, entry: DoctorBoard, doctor: Doctor) -> "DoctorBoardOut":
        """The JSON view of ``entry``, the board's line for ``doctor``."""
        serving = entry.now_serving
        return cls(
            doctor_id=entry.doctor_id,
            name=doctor.name,
            department=doctor.department,
            status=entry.status,
            now_serving=None if serving is None else BoardTokenOut.of(serving),
            next_up=[BoardTokenOut.of(token) for token in entry.next_up],
            waiting=entry.waiting,
            away=entry.away,
            booked=entry.booked,
            delay_minutes=entry.delay_minutes,
        )


class BoardOut(BaseModel):
    """The waiting-room board: every doctor (or a department's), as of ``at`` and the day's
    ``version``."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "version": 42,
                    "at": "2026-11-25T09:20:00",
                    "doctors": [
                        {
                            "doctor_id": "D1",
                            "name": "Dr. Rao",
                            "department": "General Medicine",
                            "status": "PAUSED",
                            "now_serving": None,
                            "next_up": [],
                            "waiting": 2,
                            "away": 1,
                            "booked": 5,
                            "delay_minutes": 15,
                        }
                    ],
                }
            ]
        },
    )

    version: int
    at: datetime
    doctors: list[DoctorBoardOut]


class EstimateOut(BaseModel):
    """When a waiting patient will be called (:class:`~opd_engine.WaitEstimate`)."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "token_id": "D1-007",
                    "position": 3,
                    "earliest": "2026-11-25T09:20:00",
                    "likely": "2026-11-25T09:40:00",
                    "latest": "2026-11-25T09:48:00",
                    "consult_minutes": 10.0,
                }
            ]
        },
    )

    token_id: str
    position: int
    earliest: datetime
    likely: datetime
    latest: datetime
    consult_minutes: float

    @classmethod
    def of(cls, token_id: str, estimate: WaitEstimate) -> "EstimateOut":
        """The JSON view of ``estimate``, the estimate for ``token_id``."""
        return cls(token_id=token_id, **attrs.asdict(estimate, recurse=False))


class PositionOut(BaseModel):
    """A waiting token's 1-based place in its slot's queue or its doctor's waitlist."""

    model_config = ConfigDict(
        frozen=True, json_schema_extra={"examples": [{"token_id": "D1-007", "position": 3}]}
    )

    token_id: str
    position: int


class PreviewOut(BaseModel):
    """What a change would do (``?dry_run=true``): the events it would emit, as
    :func:`~opd_engine.event_to_dict` writes them. Nothing changed."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "dry_run": True,
                    "events": [
                        {
                            "kind": "SlotClosed",
                            "at": "2026-11-25T09:20:00",
                            "version": 43,
                            "step": 1,
                            "steps": 1,
                            "slot_id": "D1@10",
                        }
                    ],
                }
            ]
        },
    )

    dry_run: Literal[True] = True
    events: list[dict[str, Any]]


class AuditOut(BaseModel):
    """One change of the day's audit trail: the version it made and who made it
    (``role:key name``)."""

    model_config = ConfigDict(
        frozen=True, json_schema_extra={"examples": [{"version": 42, "actor": "desk:front-desk-2"}]}
    )

    version: int
    actor: str


class StateOut(BaseModel):
    """The day's whole state: :meth:`~opd_engine.Allocator.snapshot` (the library's stable
    snapshot format, restored by ``Allocator.from_snapshot``), its version, and the process
    id of the worker that answered."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [{"worker": 4242, "version": 42, "snapshot": {"allocator_version": 42}}]
        },
    )

    worker: int
    version: int
    snapshot: dict[str, Any]


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``, at most ``limit`` of them, of
    ``total``."""

    items: list[T]
    total: int
    offset: int
    limit: int


class ErrorOut(BaseModel):
    """The body of every error response the library's errors produce."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"detail": "slot 'D1@09' is full (10 of 10 places held)", "error": "SlotFullError"},
                {
                    "detail": "patient already holds active token 'D1-002' with doctor 'D1'",
                    "error": "DuplicateBookingError",
                    "token_id": "D1-002",
                },
            ]
        }
    )

    detail: str
    error: str
    token_id: str | None = None
