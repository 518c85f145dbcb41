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
GET      ``/state``                          the whole snapshot, its version, the worker pid
=======  ==================================  ==============================================

Enums travel by member name (``"source": "ONLINE"``, ``"priority": "EMERGENCY"``,
``"status": "CHECKED_IN"``) and datetimes as ISO 8601 strings. The library's errors become
HTTP statuses in one exception handler (see :func:`status_for`): 404 for an unknown doctor,
slot or token; 400 for an invalid argument; 409 for a full slot (the detail says it "is
full"), a duplicate booking (the body carries the existing ``token_id``), a closed slot or
an invalid transition. A malformed body is FastAPI's own 422.

``create_app(allocator)`` builds the app around an allocator you made (tests inject one
with a fixed clock), and ``create_app(journal)`` around a journal (``sqlite_journal.py``,
``postgres_journal.py``) whose ``run`` makes every change durable; importing this module
builds nothing. To try it with a demo day::

    pip install fastapi uvicorn
    cd docs/examples
    uvicorn --factory http_service:demo_app

then open http://127.0.0.1:8000/docs. The endpoints are plain ``def`` functions, so FastAPI
runs them in its threadpool; that is safe because every public ``Allocator`` method holds
the allocator's re-entrant lock.

In memory, run **one worker**: each process would hold its own allocator, and two workers
would hand out the same token id. ``demo_app`` refuses to start when the server runs more
than one (see :func:`workers_requested`: ``OPD_WORKERS``, ``--workers``, ``WEB_CONCURRENCY``).
For several workers, keep the journal in PostgreSQL: every worker keeps a replica and each
change runs in a transaction that holds the journal's lock::

    OPD_POSTGRES_DSN="dbname=opd" uvicorn --factory http_service:postgres_app --workers 4
"""

# No ``from __future__ import annotations`` here: FastAPI and pydantic read the annotations
# at runtime, and real objects work even when the module is loaded by path.

import enum
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Protocol, TypeVar

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
    "InMemory",
    "Journal",
    "TokenOut",
    "build_demo_day",
    "create_app",
    "demo_app",
    "opd_error_handler",
    "postgres_app",
    "sqlite_app",
    "status_for",
    "workers_requested",
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


class Journal(Protocol):
    """What :func:`create_app` needs of a journal (``SQLiteJournal``, ``PostgresJournal``)."""

    def run(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` as one durable change."""
        ...

    def read(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` on a replica that is up to date."""
        ...


class InMemory:
    """One allocator in this process's memory, with the journal's two methods."""

    def __init__(self, allocator: Allocator) -> None:
        self.allocator = allocator

    def run(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)``; nothing is written anywhere."""
        return call(self.allocator)

    read = run


def create_app(state: Allocator | Journal) -> FastAPI:
    """A FastAPI app serving ``state``: an :class:`~opd_engine.Allocator` in this process's
    memory, or a journal whose ``run`` makes each change durable (and, on PostgreSQL,
    shared by every worker). The app keeps no other state."""
    journal: Journal = InMemory(state) if isinstance(state, Allocator) else state
    run, read = journal.run, journal.read
    app = FastAPI(
        title="opd-engine HTTP recipe",
        summary="OPD token allocation over HTTP",
        responses=_ERROR_RESPONSES,
    )
    app.add_exception_handler(OPDError, opd_error_handler)

    @app.post("/tokens", status_code=status.HTTP_201_CREATED)
    def book(body: BookRequest) -> TokenOut:
        """Book a token; without ``slot_id`` the allocator picks the slot."""
        token = run(
            lambda alloc: alloc.book(
                body.patient_id,
                body.doctor_id,
                body.slot_id,
                source=body.source,
                priority=body.priority,
                checked_in=body.checked_in,
            )
        )
        return TokenOut.of(token)

    @app.get("/tokens/{token_id}")
    def get_token(token_id: str) -> TokenOut:
        """The token as it is now."""
        return TokenOut.of(read(lambda alloc: alloc.token(token_id)))

    @app.post("/tokens/{token_id}/check-in")
    def check_in(token_id: str) -> TokenOut:
        """Record the patient's arrival."""
        return TokenOut.of(run(lambda alloc: alloc.check_in(token_id)))

    @app.post("/tokens/{token_id}/cancel")
    def cancel(token_id: str) -> TokenOut:
        """Cancel the token; its place is refilled from the waitlist or later slots."""
        return TokenOut.of(run(lambda alloc: alloc.cancel(token_id)))

    @app.post(
        "/doctors/{doctor_id}/call-next",
        response_model=TokenOut,
        responses={status.HTTP_204_NO_CONTENT: {"description": "Nobody checked in is waiting"}},
    )
    def call_next(doctor_id: str) -> TokenOut | Response:
        """Complete the current consultation and call the next patient.

        200 with the called token, or 204 (no body) when nobody checked in is waiting.
        """
        token = run(lambda alloc: alloc.call_next(doctor_id))
        if token is None:
            return Response(status_code=status.HTTP_204_NO_CONTENT)
        return TokenOut.of(token)

    @app.get("/slots/{slot_id}/queue")
    def queue(slot_id: str) -> list[TokenOut]:
        """The slot's waiting tokens in standing order (booked and present together)."""
        return [TokenOut.of(token) for token in read(lambda alloc: alloc.queue(slot_id))]

    @app.get("/doctors/{doctor_id}/waitlist")
    def waitlist(doctor_id: str) -> list[TokenOut]:
        """The doctor's waitlisted tokens in order."""
        return [TokenOut.of(token) for token in read(lambda alloc: alloc.waitlist(doctor_id))]

    @app.get("/state")
    def whole_state() -> dict[str, Any]:
        """The whole state (``snapshot()``), with the version and the worker's process id:
        for backups, audits and tests. O(n) in the tokens: not for every request."""
        snapshot = read(lambda alloc: alloc.snapshot())
        return {
            "worker": os.getpid(),
            "version": snapshot["allocator_version"],
            "snapshot": snapshot,
        }

    return app


# ---------------------------------------------------------------- running it


def workers_requested(
    environ: Mapping[str, str] | None = None, argv: Sequence[str] | None = None
) -> int:
    """How many worker processes the server runs, as far as this process can tell.

    ``OPD_WORKERS`` if set (the explicit setting: say ``OPD_WORKERS=1`` to overrule the
    rest); else ``--workers N`` or ``-w N`` on the command line (uvicorn's and gunicorn's
    option; a uvicorn worker is a process spawned by :mod:`multiprocessing`, which gives it
    the server's ``sys.argv``, and a gunicorn worker is forked); else ``WEB_CONCURRENCY``
    (both servers' default for the option); else 1.
    """
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if "OPD_WORKERS" in environ:
        return int(environ["OPD_WORKERS"])
    for i, arg in enumerate(argv):
        for option in ("--workers", "-w"):
            if arg == option and i + 1 < len(argv):
                return int(argv[i + 1])
            if arg.startswith(f"{option}="):
                return int(arg.partition("=")[2])
    return int(environ.get("WEB_CONCURRENCY", "1"))


#: The demo day's doctors: four in General Medicine.
DEMO_DOCTORS = (
    Doctor("D1", "Dr. Rao", department="General Medicine"),
    Doctor("D2", "Dr. Iyer", department="General Medicine"),
    Doctor("D3", "Dr. Sen", department="General Medicine"),
    Doctor("D4", "Dr. Das", department="General Medicine"),
)


def build_demo_day(allocator: Allocator, day: date, *, places: int = 50) -> None:
    """Four General Medicine doctors (:data:`DEMO_DOCTORS`), each with hourly slots of
    ``places`` places covering the whole calendar date ``day``: 00:00-01:00 to 23:00-24:00,
    slot ids ``D1@00`` to ``D4@23``.

    At any hour of ``day`` one slot per doctor is open, and none starts on the next date (an
    allocator is one OPD day, so a slot starting tomorrow would be refused). The day holds
    4 x 24 x ``places`` places (4,800 by default), enough for a load test to measure bookings
    rather than full slots.
    """
    midnight = datetime.combine(day, time())
    for doctor in DEMO_DOCTORS:
        allocator.add_doctor(doctor)
        for hour in range(24):
            start = midnight + timedelta(hours=hour)
            slot_id = f"{doctor.id}@{hour:02d}"
            allocator.add_slot(Slot(slot_id, doctor.id, start, start + timedelta(hours=1), places))


def demo_app(clock: Callable[[], datetime] | None = None) -> FastAPI:
    """An app over a demo day in memory (:func:`build_demo_day`: four doctors, hourly slots
    covering today's whole date (today by ``clock``, else the wall clock), so the demo
    books into the current hour whenever it starts. ``uvicorn --factory
    http_service:demo_app`` serves it.

    The state lives in this process's memory, so it refuses to start (``RuntimeError``)
    when :func:`workers_requested` says the server runs more than one worker: each would
    hold a different allocator and hand out the same token ids. In a worker spawned by
    uvicorn's supervisor it also stops the supervisor, which would otherwise restart the
    failing worker forever. Use :func:`postgres_app` for several workers.
    """
    workers = workers_requested()
    if workers > 1:
        if multiprocessing.parent_process() is not None:
            # A worker uvicorn's supervisor spawned: it would restart a worker that fails
            # to start, forever; stop the supervisor, so the whole server refuses to start.
            os.kill(os.getppid(), signal.SIGTERM)
        raise RuntimeError(
            f"the in-memory app serves one process, but {workers} workers were requested: "
            "each would keep its own allocator; run one worker, or use postgres_app "
            "(a journal in PostgreSQL shared by every worker)"
        )
    allocator = Allocator(clock=clock)
    build_demo_day(allocator, allocator.clock().date(), places=_demo_places())
    return create_app(allocator)


def postgres_app() -> FastAPI:
    """An app over a demo day whose journal lives in PostgreSQL; any number of workers.

    ``OPD_POSTGRES_DSN`` is the connection string (required); ``OPD_DAY`` the OPD date,
    ISO 8601 (default: today), which also names the journal. The day's slots cover the whole
    date, hour by hour, as in :func:`build_demo_day`; a past date's slots have all ended, so
    it refuses every booking. Every worker opens its own connection and replica; the first to start
    builds the day::

        OPD_POSTGRES_DSN="dbname=opd" uvicorn --factory http_service:postgres_app --workers 4
    """
    from postgres_journal import PostgresJournal  # a sibling recipe; needs psycopg

    dsn = os.environ.get("OPD_POSTGRES_DSN")
    if not dsn:
        raise RuntimeError("postgres_app needs OPD_POSTGRES_DSN, a PostgreSQL connection string")
    day = _demo_date()
    journal = PostgresJournal(dsn, day=day.isoformat())
    journal.setup(lambda alloc: build_demo_day(alloc, day, places=_demo_places()))
    return create_app(journal)


def _demo_date() -> date:
    """``OPD_DAY`` (ISO 8601), else today by the wall clock: the date the server runs."""
    today = date.today().isoformat()
    return date.fromisoformat(os.environ.get("OPD_DAY") or today)


def _demo_places() -> int:
    """``OPD_DEMO_PLACES``, the places of each of the demo day's hourly slots (default 50)."""
    return int(os.environ.get("OPD_DEMO_PLACES") or 50)


def sqlite_app() -> FastAPI:
    """An app over a demo day whose journal lives in a SQLite file; any number of workers
    on one machine (SQLite's write lock serialises their changes).

    ``OPD_SQLITE_PATH`` is the database file (required); ``OPD_DAY`` the OPD date, as for
    :func:`postgres_app`::

        OPD_SQLITE_PATH=opd.sqlite3 uvicorn --factory http_service:sqlite_app --workers 4
    """
    from sqlite_journal import SQLiteJournal  # a sibling recipe; standard library only

    path = os.environ.get("OPD_SQLITE_PATH")
    if not path:
        raise RuntimeError("sqlite_app needs OPD_SQLITE_PATH, the path of a SQLite database")
    day = _demo_date()
    journal = SQLiteJournal(path, day=day.isoformat())
    journal.setup(lambda alloc: build_demo_day(alloc, day, places=_demo_places()))
    return create_app(journal)
