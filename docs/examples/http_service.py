"""Serve one opd-engine ``Allocator`` over HTTP with FastAPI.

A recipe, not part of the library: ``opd_engine`` itself imports no web code and does no I/O.
This module wraps one :class:`~opd_engine.Allocator` in a small JSON API:

=======  ==================================  ==============================================
method   path                                does
=======  ==================================  ==============================================
POST     ``/tokens``                         book a token (201 with the token)
GET      ``/tokens/{token_id}``              read a token
POST     ``/tokens/{token_id}/check-in``     record the patient's arrival
POST     ``/tokens/{token_id}/cancel``       cancel; the place is refilled at once
POST     ``/doctors/{doctor_id}/call-next``  200 with the called token, 204 if nobody waits
GET      ``/slots/{slot_id}/queue``          the slot's waiting tokens in standing order
GET      ``/doctors/{doctor_id}/waitlist``   the doctor's waitlist in order
=======  ==================================  ==============================================

Enums travel by member name (``"source": "ONLINE"``, ``"priority": "EMERGENCY"``,
``"status": "CHECKED_IN"``) and datetimes as ISO 8601 strings. The library's errors become
HTTP statuses in one exception handler (see :func:`status_for`): 404 for an unknown doctor,
slot or token; 400 for an invalid argument; 409 for a full slot (the detail says it "is
full"), a duplicate booking (the body carries the existing ``token_id``), a closed slot or
an invalid transition. A malformed body is FastAPI's own 422.

``create_app(allocator)`` builds the app around an allocator you made (tests inject one
with a fixed clock); importing this module builds nothing. To try it with a demo day::

    pip install fastapi uvicorn
    cd docs/examples
    uvicorn --factory http_service:demo_app

then open http://127.0.0.1:8000/docs. The endpoints are plain ``def`` functions, so FastAPI
runs them in its threadpool; that is safe because every public ``Allocator`` method holds
the allocator's re-entrant lock. Run one process (one worker): the state lives in memory.
To keep it across restarts, see ``sqlite_store.py``.
"""

# No ``from __future__ import annotations`` here: FastAPI and pydantic read the annotations
# at runtime, and real objects work even when the module is loaded by path.

import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import attrs
from fastapi import FastAPI, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema

from opd_engine import (
    Allocator,
    Doctor,
    DuplicateBookingError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    OPDError,
    Priority,
    Slot,
    SlotClosedError,
    SlotFullError,
    Source,
    Token,
    TokenStatus,
)

__all__ = [
    "BookRequest",
    "ErrorOut",
    "TokenOut",
    "create_app",
    "demo_app",
    "opd_error_handler",
    "status_for",
]

E = TypeVar("E", bound=enum.Enum)


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


def _names_schema(kind: type[enum.Enum]) -> dict[str, Any]:
    return {"type": "string", "enum": list(kind.__members__)}


SourceName = Annotated[
    Source,
    PlainValidator(_parse_member(Source)),
    PlainSerializer(_member_name, return_type=str),
    WithJsonSchema(_names_schema(Source)),
]
PriorityName = Annotated[
    Priority,
    PlainValidator(_parse_member(Priority)),
    PlainSerializer(_member_name, return_type=str),
    WithJsonSchema(_names_schema(Priority)),
]
StatusName = Annotated[
    TokenStatus,
    PlainValidator(_parse_member(TokenStatus)),
    PlainSerializer(_member_name, return_type=str),
    WithJsonSchema(_names_schema(TokenStatus)),
]


# ---------------------------------------------------------------- bodies


class BookRequest(BaseModel):
    """The body of ``POST /tokens``: the arguments of :meth:`Allocator.book`.

    Types are checked strictly (a number is not a patient id) and unknown keys are refused,
    both as 422. The values themselves (an empty patient id, a slot of another doctor) are
    the library's to judge: 400.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    patient_id: str
    doctor_id: str
    slot_id: str | None = None
    source: SourceName
    priority: PriorityName | None = None
    checked_in: bool | None = None


class TokenOut(BaseModel):
    """A :class:`~opd_engine.Token` as JSON: every field, enums by name, ISO 8601 datetimes."""

    model_config = ConfigDict(frozen=True)

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


class ErrorOut(BaseModel):
    """The body of every error response the library's errors produce."""

    detail: str
    error: str
    token_id: str | None = None


# ---------------------------------------------------------------- errors

# First match wins; NotFoundError covers UnknownDoctorError, UnknownSlotError and
# UnknownTokenError.
_STATUS: tuple[tuple[type[OPDError], int], ...] = (
    (NotFoundError, status.HTTP_404_NOT_FOUND),
    (InvalidArgumentError, status.HTTP_400_BAD_REQUEST),
    (SlotFullError, status.HTTP_409_CONFLICT),
    (DuplicateBookingError, status.HTTP_409_CONFLICT),
    (SlotClosedError, status.HTTP_409_CONFLICT),
    (InvalidTransitionError, status.HTTP_409_CONFLICT),
)


def status_for(error: OPDError) -> int:
    """The HTTP status for a library error.

    An ``OPDError`` this table does not know (a later library version may add one) is 409:
    every library error means the allocator refused the call and changed nothing, and all
    but invalid input depend on the allocator's state.
    """
    for kind, code in _STATUS:
        if isinstance(error, kind):
            return code
    return status.HTTP_409_CONFLICT


async def opd_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Turn any :class:`~opd_engine.OPDError` into a JSON error response.

    Registered once for ``OPDError``; Starlette finds it for every subclass.
    """
    if not isinstance(exc, OPDError):  # pragma: no cover - registered for OPDError only
        raise exc
    body = ErrorOut(
        detail=str(exc),
        error=type(exc).__name__,
        token_id=exc.token_id if isinstance(exc, DuplicateBookingError) else None,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status_for(exc))


# ---------------------------------------------------------------- the app

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 404, 409)
}


def create_app(allocator: Allocator) -> FastAPI:
    """A FastAPI app serving ``allocator``; the app keeps no other state."""
    app = FastAPI(
        title="opd-engine HTTP recipe",
        summary="OPD token allocation over HTTP",
        responses=_ERROR_RESPONSES,
    )
    app.add_exception_handler(OPDError, opd_error_handler)

    @app.post("/tokens", status_code=status.HTTP_201_CREATED)
    def book(body: BookRequest) -> TokenOut:
        """Book a token; without ``slot_id`` the allocator picks the slot."""
        token = allocator.book(
            body.patient_id,
            body.doctor_id,
            body.slot_id,
            source=body.source,
            priority=body.priority,
            checked_in=body.checked_in,
        )
        return TokenOut.of(token)

    @app.get("/tokens/{token_id}")
    def get_token(token_id: str) -> TokenOut:
        """The token as it is now."""
        return TokenOut.of(allocator.token(token_id))

    @app.post("/tokens/{token_id}/check-in")
    def check_in(token_id: str) -> TokenOut:
        """Record the patient's arrival."""
        return TokenOut.of(allocator.check_in(token_id))

    @app.post("/tokens/{token_id}/cancel")
    def cancel(token_id: str) -> TokenOut:
        """Cancel the token; its place is refilled from the waitlist or later slots."""
        return TokenOut.of(allocator.cancel(token_id))

    @app.post(
        "/doctors/{doctor_id}/call-next",
        response_model=TokenOut,
        responses={status.HTTP_204_NO_CONTENT: {"description": "Nobody checked in is waiting"}},
    )
    def call_next(doctor_id: str) -> TokenOut | Response:
        """Complete the current consultation and call the next patient.

        200 with the called token, or 204 (no body) when nobody checked in is waiting.
        """
        token = allocator.call_next(doctor_id)
        if token is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return TokenOut.of(token)

    @app.get("/slots/{slot_id}/queue")
    def queue(slot_id: str) -> list[TokenOut]:
        """The slot's waiting tokens in standing order (booked and present together)."""
        return [TokenOut.of(token) for token in allocator.queue(slot_id)]

    @app.get("/doctors/{doctor_id}/waitlist")
    def waitlist(doctor_id: str) -> list[TokenOut]:
        """The doctor's waitlisted tokens in order."""
        return [TokenOut.of(token) for token in allocator.waitlist(doctor_id)]

    return app


def demo_app(clock: Callable[[], datetime] | None = None) -> FastAPI:
    """An app over a demo day: two General Medicine doctors, hourly slots of four places.

    The slots start at the current hour (of ``clock``, else the wall clock), so the demo can
    book at any time of day. ``uvicorn --factory http_service:demo_app`` serves it.
    """
    allocator = Allocator(clock=clock)
    hour = allocator.clock().replace(minute=0, second=0, microsecond=0)
    for doctor in (
        Doctor("D1", "Dr. Rao", department="General Medicine"),
        Doctor("D2", "Dr. Iyer", department="General Medicine"),
    ):
        allocator.add_doctor(doctor)
        for i in range(8):
            start = hour + timedelta(hours=i)
            slot_id = f"{doctor.id}@{start:%H}"
            allocator.add_slot(Slot(slot_id, doctor.id, start, start + timedelta(hours=1), 4))
    return create_app(allocator)
