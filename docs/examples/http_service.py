"""Serve opd-engine over HTTP with FastAPI: the whole desk, roles, safe retries, a display.

A recipe, not part of the library: ``opd_engine`` itself imports no web code and does no I/O.
This module wraps one OPD day (an :class:`~opd_engine.Allocator` in memory, or a journal in
SQLite or PostgreSQL) or many (:class:`Days`: one journal per hospital and date) in a JSON
API that a front desk, a doctor's room and a waiting-room screen use. The how-to
"Serve the allocator over HTTP" lists every endpoint; ``/docs`` shows them with their
request and response models, examples and errors.

- **Every call of the desk.** Booking, check-in, cancel, no-show, reschedule, retriage and
  missed calls; call next or out of turn, complete, step out, pause and resume; delay,
  resize, close a slot, a doctor's availability and the end of the day; and the reads:
  tokens (by id or by patient), queues, waitlists, positions, estimates, now serving, next
  up, the board, doctors and slots. Lists are paginated (``offset``, ``limit``). The
  disruptive calls take ``?dry_run=true`` and answer with the events
  :meth:`~opd_engine.Allocator.preview` says they would emit, changing nothing.
- **Roles.** ``create_app(state, keys={"<secret>": "desk", ...})``: each API key, sent as
  ``Authorization: Bearer <key>``, has a role (:data:`ROLES`). ``desk`` books and changes
  bookings, ``clinician`` runs the doctor's room, ``board`` only reads the board, the
  display page and its event stream (there the key may also come as ``?key=`` or an
  ``opd_key`` cookie, since a browser's ``EventSource`` sends no headers), ``admin`` does
  everything. Every role but ``board`` reads tokens, queues, positions and estimates. No
  key: 401; the wrong role: 403. ``keys=None`` is an **open demo**: anyone who reaches the
  port may do anything. The journal records which key (its role and name) made each change.
- **Safe retries.** Every POST honours an ``Idempotency-Key`` header: the same key with the
  same request answers the first response again (status and body, with
  ``Idempotent-Replayed: true``) and changes nothing; the same key with another request is
  refused (422). The journal stores the key with the change, in one transaction.
- **A display.** ``GET /board`` (JSON), ``GET /display`` (an HTML page for a waiting-room
  screen) and ``GET /events`` (server-sent events: the board again whenever the day
  changes). They show token ids, never patient ids.

Enums travel by member name (``"source": "ONLINE"``) and datetimes as ISO 8601 strings.
The library's errors become HTTP statuses in one table (:func:`status_for`): 404 for an
unknown doctor, slot or token; 400 for an invalid argument; 409 for a full slot, a duplicate
booking (with the existing ``token_id``), a closed slot or an invalid transition. A malformed
request is FastAPI's own 422.

``create_app(allocator)`` serves an allocator you built (tests inject one with a fixed
clock); ``create_app(journal)`` a journal (``sqlite_journal.py``, ``postgres_journal.py``)
whose ``run`` makes every change durable; ``create_app(days)`` many hospitals' days under
``/hospitals/{hospital}/days/{date}/...``. Importing this module builds nothing. A demo::

    cd docs/examples
    uvicorn --factory http_service:demo_app

The endpoints are plain ``def`` functions, run in FastAPI's threadpool; every
:class:`~opd_engine.Allocator` method holds the allocator's lock, and every change runs
through the journal, which serialises changes. In memory, run **one worker**:
``create_app`` refuses to start in memory when the server runs more than one (see
:func:`workers_requested`). For several workers, keep the journal in PostgreSQL::

    OPD_POSTGRES_DSN="dbname=opd" uvicorn --factory http_service:postgres_app --workers 4
"""

# No ``from __future__ import annotations`` here: FastAPI and pydantic read the annotations
# at runtime, and real objects work even when the module is loaded by path.

import asyncio
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar, get_args

import attrs
from fastapi import (
    APIRouter,
    Body,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    Response,
    status,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import (
    APIKeyCookie,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBearer,
)
from http_models import (  # a sibling recipe: the requests' and responses' JSON
    AuditOut,
    BoardOut,
    BookRequest,
    CancelRequest,
    DelayRequest,
    DoctorBoardOut,
    DoctorOut,
    ErrorOut,
    EstimateOut,
    Page,
    PositionOut,
    PreviewOut,
    RescheduleRequest,
    ResizeRequest,
    RetriageRequest,
    SlotOut,
    StateOut,
    TokenOut,
)
from pydantic import BaseModel

from opd_engine import (
    Allocator,
    Doctor,
    DuplicateBookingError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    OPDError,
    Slot,
    SlotClosedError,
    SlotFullError,
    Token,
    event_to_dict,
)

__all__ = [
    "DEMO_DOCTORS",
    "ROLES",
    "ApiKey",
    "BoardOut",
    "BookRequest",
    "Caller",
    "Days",
    "DoctorBoardOut",
    "DoctorOut",
    "ErrorOut",
    "EstimateOut",
    "InMemory",
    "Journal",
    "Page",
    "PreviewOut",
    "SlotOut",
    "StateOut",
    "TokenOut",
    "board_events",
    "build_demo_day",
    "create_app",
    "demo_app",
    "hospitals_app",
    "opd_error_handler",
    "postgres_app",
    "postgres_days",
    "sqlite_app",
    "status_for",
    "workers_requested",
]

T = TypeVar("T")


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


def _error_out(error: OPDError) -> ErrorOut:
    return ErrorOut(
        detail=str(error),
        error=type(error).__name__,
        token_id=error.token_id if isinstance(error, DuplicateBookingError) else None,
    )


async def opd_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Turn any :class:`~opd_engine.OPDError` into a JSON error response.

    Registered once for ``OPDError``; Starlette finds it for every subclass.
    """
    if not isinstance(exc, OPDError):  # pragma: no cover - registered for OPDError only
        raise exc
    body = _error_out(exc).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status_for(exc))


_WHY = {
    400: "An invalid argument: the request could never succeed (``InvalidArgumentError``)",
    401: "No API key, or one the service does not know",
    403: "The key's role may not make this call",
    404: "An unknown hospital, doctor, slot or token (``NotFoundError``)",
    409: "Refused by the day's present state: a full or closed slot, a duplicate booking, "
    "an invalid transition; nothing changed",
    422: "A malformed request (FastAPI's validation), or an ``Idempotency-Key`` used before "
    "for another request",
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI error table of an endpoint that can answer ``codes``."""
    return {code: {"model": ErrorOut, "description": _WHY[code]} for code in codes}


_READ_ERRORS = _errors(401, 403, 404)
_CHANGE_ERRORS = _errors(400, 401, 403, 404, 409, 422)


# ---------------------------------------------------------------- roles and keys

Role = Literal["desk", "clinician", "board", "admin"]

#: The roles a key may have, in the order the docs list them.
ROLES: tuple[Role, ...] = get_args(Role)


@attrs.frozen
class ApiKey:
    """A key's role and the name the audit trail records for it (a person, a desk, a
    screen: ``"front-desk-2"``)."""

    role: Role = attrs.field(validator=lambda _, __, role: _check_role(role))
    name: str


def _check_role(role: object) -> None:
    if role not in ROLES:
        raise ValueError(f"a key's role must be one of {', '.join(ROLES)}, got {role!r}")


@attrs.frozen
class Caller:
    """Who made a request: the role and name of the key it carried."""

    role: Role
    name: str

    @property
    def actor(self) -> str:
        """``role:name``, as the audit trail records it."""
        return f"{self.role}:{self.name}"


#: The caller of every request when the app has no keys (the open demo).
OPEN = Caller("admin", "open")

_DESK: frozenset[Role] = frozenset({"desk", "admin"})
_CLINICIAN: frozenset[Role] = frozenset({"clinician", "admin"})
_ADMIN: frozenset[Role] = frozenset({"admin"})
_READER: frozenset[Role] = frozenset({"desk", "clinician", "admin"})
_BOARD: frozenset[Role] = frozenset(ROLES)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key: `Authorization: Bearer <key>`. Its role decides what it may do.",
)
_key_query = APIKeyQuery(
    name="key",
    auto_error=False,
    scheme_name="boardKeyQuery",
    description="The display's key as `?key=<key>` (the board, display and events only).",
)
_key_cookie = APIKeyCookie(
    name="opd_key",
    auto_error=False,
    scheme_name="boardKeyCookie",
    description="The display's key as the `opd_key` cookie (the board, display and events only).",
)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _Keys:
    """The app's keys, looked up by their SHA-256 digest (the secrets are not kept)."""

    def __init__(self, keys: Mapping[str, str | ApiKey] | None) -> None:
        self.open = keys is None
        self._callers: dict[str, Caller] = {}
        for key, access in (keys or {}).items():
            if not isinstance(key, str) or not key:
                raise ValueError("every API key must be a non-empty string")
            digest = _digest(key)
            if isinstance(access, ApiKey):
                caller = Caller(access.role, access.name)
            else:
                _check_role(access)
                caller = Caller(access, f"{access}-{digest[:8]}")  # type: ignore[arg-type]
            self._callers[digest] = caller

    def caller(self, key: str | None, roles: frozenset[Role]) -> Caller:
        """The caller ``key`` names, if its role is one of ``roles``: else 401 (no key, or an
        unknown one) or 403 (a known key of another role)."""
        if self.open:
            return OPEN
        caller = None if key is None else self._callers.get(_digest(key))
        if caller is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="an API key is required: Authorization: Bearer <key>",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if caller.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"a {caller.role} key may not make this call (it needs: {allowed})",
            )
        return caller

    # The dependencies are ``async def``: they never block, and FastAPI would run a plain
    # ``def`` dependency in its threadpool, a thread hand-off per dependency per request.

    def allow(self, roles: frozenset[Role]) -> Callable[..., Awaitable[Caller]]:
        """A dependency: the caller of a request whose bearer key has one of ``roles``."""

        async def caller(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Caller:
            return self.caller(None if credentials is None else credentials.credentials, roles)

        return caller

    def allow_display(self) -> Callable[..., Awaitable[Caller]]:
        """A dependency for the board, display and events: any role, and the key may also
        come as ``?key=`` or the ``opd_key`` cookie."""

        async def caller(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
            query: Annotated[str | None, Depends(_key_query)],
            cookie: Annotated[str | None, Depends(_key_cookie)],
        ) -> Caller:
            key = credentials.credentials if credentials is not None else query or cookie
            return self.caller(key, _BOARD)

        return caller


# ---------------------------------------------------------------- journals


class Journal(Protocol):
    """What :func:`create_app` needs of a day's store: :class:`InMemory`,
    ``SQLiteJournal`` or ``PostgresJournal``."""

    def run(self, call: Callable[[Allocator], T], *, actor: str | None = None) -> T:
        """``call(allocator)`` as one durable change, recorded as ``actor``'s."""
        ...

    def read(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` on a replica that is up to date."""
        ...

    def run_once(
        self,
        key: str,
        request: str,
        call: Callable[[Allocator], tuple[int, str]],
        *,
        actor: str | None = None,
    ) -> tuple[str, int, str, bool]:
        """Answer the request under ``key`` once: the first time, ``call`` gives the reply
        ``(status, body)``, stored with the change; every time, ``(request, status, body,
        replayed)`` of the first."""
        ...

    def audit(self) -> list[tuple[int, str]]:
        """``(version, actor)`` of each change made with an actor, in version order."""
        ...


class InMemory:
    """One allocator in this process's memory, with a journal's methods: the idempotency
    keys and the audit trail are kept in memory, for the day."""

    def __init__(self, allocator: Allocator) -> None:
        self.allocator = allocator
        self._lock = threading.RLock()  # one change, or one keyed request, at a time
        self._requests: dict[str, tuple[str, int, str]] = {}
        self._audit: list[tuple[int, str]] = []

    def run(self, call: Callable[[Allocator], T], *, actor: str | None = None) -> T:
        """``call(allocator)``, recorded as ``actor``'s if it changed anything. O(1) more
        than the call."""
        with self._lock:
            before = self.allocator.version
            result = call(self.allocator)
            if actor is not None and self.allocator.version != before:
                self._audit.append((self.allocator.version, actor))
            return result

    def read(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)``; the allocator's own lock makes each of its calls atomic."""
        return call(self.allocator)

    def run_once(
        self,
        key: str,
        request: str,
        call: Callable[[Allocator], tuple[int, str]],
        *,
        actor: str | None = None,
    ) -> tuple[str, int, str, bool]:
        """As :meth:`Journal.run_once`; the keys are held for the allocator's life. O(1)
        more than the call."""
        with self._lock:
            stored = self._requests.get(key)
            if stored is not None:
                return (*stored, True)
            status_code, body = self.run(call, actor=actor)
            self._requests[key] = (request, status_code, body)
            return request, status_code, body, False

    def audit(self) -> list[tuple[int, str]]:
        """``(version, actor)`` of each change made with an actor, in version order. O(c)."""
        with self._lock:
            return list(self._audit)


class Days:
    """Many hospitals' OPD days: one journal per (hospital, date), opened by
    ``open(hospital, day)`` on first use and kept open.

    ``hospitals`` are the hospitals served (another is 404). ``in_memory`` says the journals
    live in this process's memory, so :func:`create_app` refuses to serve them from several
    workers. A group of hospitals that outgrows one database server routes each hospital to
    its server (:func:`postgres_days`).
    """

    def __init__(
        self,
        open: Callable[[str, date], Journal],
        hospitals: Iterable[str],
        *,
        in_memory: bool = False,
    ) -> None:
        self._open = open
        self.hospitals = frozenset(hospitals)
        self.in_memory = in_memory
        self._journals: dict[tuple[str, date], Journal] = {}
        self._opening: dict[tuple[str, date], threading.Lock] = {}
        self._lock = threading.Lock()

    def opened(self, hospital: str, day: date) -> Journal | None:
        """The journal of ``hospital`` on ``day`` if it is open, else None. O(1)."""
        return self._journals.get((hospital, day))

    def journal(self, hospital: str, day: date) -> Journal:
        """The journal of ``hospital`` on ``day``, opened on first use (which may wait for
        a database). Raises :class:`~opd_engine.NotFoundError` for a hospital not served."""
        if hospital not in self.hospitals:
            raise NotFoundError(f"unknown hospital={hospital!r}")
        key = (hospital, day)
        journal = self._journals.get(key)
        if journal is not None:
            return journal
        # One lock per day being opened: a server that is slow to answer holds up only the
        # requests for that day, never the opening of another.
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            journal = self._journals.get(key)
            if journal is None:
                journal = self._journals[key] = self._open(hospital, day)
        return journal


def postgres_days(
    routes: Mapping[str, str],
    build: Callable[[str, date, Allocator], object],
    **options: Any,
) -> Days:
    """Hospitals sharded across PostgreSQL servers: ``routes`` maps each hospital to its
    server's connection string (the routing table), and ``build(hospital, day, allocator)``
    sets up a day the first time any worker opens it. Each day is a ``PostgresJournal``
    named ``"<hospital>/<date>"``; ``options`` go to every journal (``policies``, ``clock``,
    ``checkpoint_every``). Hospitals on one server share its tables; hospitals on
    different servers share nothing."""
    from postgres_journal import PostgresJournal  # a sibling recipe; needs psycopg

    def open_day(hospital: str, day: date) -> Journal:
        journal = PostgresJournal(routes[hospital], day=f"{hospital}/{day.isoformat()}", **options)
        journal.setup(lambda alloc: build(hospital, day, alloc))
        return journal

    return Days(open_day, routes)


# ---------------------------------------------------------------- changes and retries

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string (a UUID): a retry with the same key and the same "
        "request answers the first response again and changes nothing.",
    ),
]
DryRun = Annotated[
    bool,
    Query(description="Answer with the events the call would emit, and change nothing."),
]
Offset = Annotated[int, Query(ge=0, description="How many items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many items.")]


def _fingerprint(request: Request, body: BaseModel | None) -> str:
    """What makes two requests the same: method, path, query and body (as parsed, so key
    order and spacing do not matter). A SHA-256 digest."""
    query = sorted(request.query_params.multi_items())
    parts = [request.method, request.url.path, json.dumps(query)]
    parts.append("" if body is None else body.model_dump_json())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _change(
    journal: Journal,
    caller: Caller,
    request: Request,
    key: str | None,
    body: BaseModel | None,
    call: Callable[[Allocator], tuple[int, BaseModel | list[TokenOut] | None]],
) -> Response:
    """Make a change through the journal, as ``caller``; once only under ``key``.

    ``call(allocator)`` makes the change and gives the status and the response model. The
    response is rendered inside the journal's transaction, so what is stored for a retry is
    exactly what was answered; a library error becomes its error response there too.
    """

    def reply(alloc: Allocator) -> tuple[int, str]:
        try:
            code, answer = call(alloc)
        except OPDError as error:
            return status_for(error), _error_out(error).model_dump_json(exclude_none=True)
        if answer is None:
            return code, ""
        if isinstance(answer, list):
            return code, "[" + ",".join(item.model_dump_json() for item in answer) + "]"
        return code, answer.model_dump_json()

    headers: dict[str, str] = {}
    if key is None:
        code, text = journal.run(reply, actor=caller.actor)
    else:
        fingerprint = _fingerprint(request, body)
        first, code, text, replayed = journal.run_once(key, fingerprint, reply, actor=caller.actor)
        if first != fingerprint:
            detail = f"Idempotency-Key {key!r} was used before for a different request"
            error = ErrorOut(detail=detail, error="IdempotencyKeyReused")
            return JSONResponse(error.model_dump(exclude_none=True), status_code=422)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    if not text:
        return Response(status_code=code, headers=headers)
    return Response(text, status_code=code, media_type="application/json", headers=headers)


def _dry_run(journal: Journal, change: Callable[[Allocator], object]) -> PreviewOut:
    """What ``change`` would emit, read from the day as it is; nothing changes."""
    events = journal.read(lambda alloc: alloc.preview(change))
    return PreviewOut(events=[event_to_dict(event) for event in events])


def _page(items: Sequence[T], offset: int, limit: int) -> "Page[T]":
    """Items ``offset`` to ``offset + limit`` of ``items``, and their total."""
    page = list(items[offset : offset + limit])
    return Page[T](items=page, total=len(items), offset=offset, limit=limit)


def _board_of(alloc: Allocator, n: int, department: str | None) -> BoardOut:
    entries = alloc.board(n=n, department=department)
    return BoardOut(
        version=alloc.version,
        at=alloc.clock(),
        doctors=[DoctorBoardOut.of(entry, alloc.doctor(entry.doctor_id)) for entry in entries],
    )


def _doctor_board(alloc: Allocator, doctor_id: str) -> DoctorBoardOut:
    """The board's line for one doctor (a board of the doctor's department)."""
    doctor = alloc.doctor(doctor_id)
    for entry in alloc.board(department=doctor.department):
        if entry.doctor_id == doctor_id:
            return DoctorBoardOut.of(entry, doctor)
    raise AssertionError(f"{doctor_id} is not on its department's board")  # pragma: no cover


def _display_page() -> str:
    return Path(__file__).with_name("display.html").read_text(encoding="utf-8")


async def board_events(
    read: Callable[[int | None], tuple[int, str | None]],
    *,
    poll: float = 0.5,
    keep_alive: float = 15.0,
    sleep: Callable[[float], Any] = asyncio.sleep,
) -> AsyncIterator[str]:
    """The server-sent events of ``GET /events``: the board now, then again each time the
    day's version moves, and a comment every ``keep_alive`` seconds so proxies keep the
    connection open.

    ``read(last)`` gives the day's version and, if it is not ``last``, the board as JSON
    (else None); it is polled every ``poll`` seconds, so every worker's changes reach every
    screen. ``sleep`` is injected by tests.
    """
    yield "retry: 2000\n\n"
    last: int | None = None
    quiet = 0.0
    while True:
        version, board = await run_in_threadpool(read, last)
        if board is not None:
            last = version
            quiet = 0.0
            yield f"event: board\ndata: {board}\n\n"
        elif quiet >= keep_alive:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await sleep(poll)
        quiet += poll


# ---------------------------------------------------------------- the endpoints

TokenCall = Callable[[Allocator, str], Token]
DoctorCall = Callable[[Allocator, str], object]

#: The calls on one token that take nothing else: (path, roles, tag, call, description).
_TOKEN_CALLS: tuple[tuple[str, frozenset[Role], str, TokenCall, str], ...] = (
    (
        "check-in",
        _DESK,
        "desk",
        Allocator.check_in,
        "Record the patient's arrival, or their return after stepping out (`check_in`).",
    ),
    (
        "no-show",
        _DESK,
        "desk",
        Allocator.no_show,
        "The patient did not come (`no_show`); the place is refilled at once.",
    ),
    (
        "call",
        _CLINICIAN,
        "clinician",
        Allocator.call,
        "Call this patient out of turn (`call`), completing the consultation in progress.",
    ),
    ("complete", _CLINICIAN, "clinician", Allocator.complete, "End the consultation (`complete`)."),
    (
        "step-out",
        _CLINICIAN,
        "clinician",
        Allocator.step_out,
        "The patient steps out (for a test) and keeps their place (`step_out`); `check-in` "
        "brings them back.",
    ),
    (
        "missed-call",
        _CLINICIAN,
        "clinician",
        Allocator.missed_call,
        "The called patient did not come (`missed_call`): back in the queue as booked, or a "
        "no-show after too many missed calls.",
    ),
)

#: The calls on one doctor that take nothing else and answer the doctor's line of the board.
_DOCTOR_CALLS: tuple[tuple[str, frozenset[Role], str, DoctorCall, str], ...] = (
    (
        "pause",
        _CLINICIAN,
        "clinician",
        Allocator.pause,
        "The doctor steps away for a while (`pause`): nobody is called until `resume`.",
    ),
    ("resume", _CLINICIAN, "clinician", Allocator.resume, "The doctor is back (`resume`)."),
    (
        "available",
        _ADMIN,
        "admin",
        Allocator.mark_available,
        "The doctor sees patients again (`mark_available`).",
    ),
)

_NOBODY = {"description": "Nobody: the library's None"}


def _preview_or(schema: str, what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a call that takes ``dry_run``: ``schema``, or a PreviewOut."""
    refs = [{"$ref": f"#/components/schemas/{name}"} for name in (schema, "PreviewOut")]
    return {
        200: {
            "description": f"{what}; with `dry_run`, a `PreviewOut` (nothing changed)",
            "content": {"application/json": {"schema": {"anyOf": refs}}},
        },
        **_CHANGE_ERRORS,
    }


def _routes(resolve: Callable[..., Awaitable[Journal]], keys: _Keys) -> APIRouter:
    """Every endpoint of one day, reading the day's journal through the dependency
    ``resolve``: the app's one journal, or the journal a path's hospital and date name."""
    router = APIRouter()
    Day = Annotated[Journal, Depends(resolve)]
    Desk = Annotated[Caller, Depends(keys.allow(_DESK))]
    Clinician = Annotated[Caller, Depends(keys.allow(_CLINICIAN))]
    Admin = Annotated[Caller, Depends(keys.allow(_ADMIN))]
    reader = [Depends(keys.allow(_READER))]

    def token_change(
        day: Journal,
        caller: Caller,
        request: Request,
        key: str | None,
        body: BaseModel | None,
        call: Callable[[Allocator], Token],
    ) -> Response:
        return _change(day, caller, request, key, body, lambda a: (200, TokenOut.of(call(a))))

    def doctor_change(
        day: Journal,
        caller: Caller,
        request: Request,
        key: str | None,
        body: BaseModel | None,
        doctor_id: str,
        call: Callable[[Allocator], object],
    ) -> Response:
        def change(alloc: Allocator) -> tuple[int, DoctorBoardOut]:
            call(alloc)
            return 200, _doctor_board(alloc, doctor_id)

        return _change(day, caller, request, key, body, change)

    # ---------------------------------------------------------------- calls by table

    def add_token_call(
        path: str, roles: frozenset[Role], tag: str, call: TokenCall, description: str
    ) -> None:
        def endpoint(
            token_id: str,
            request: Request,
            day: Day,
            caller: Caller = Depends(keys.allow(roles)),  # noqa: B008 - one per role
            key: IdempotencyKey = None,
        ) -> Response:
            return token_change(day, caller, request, key, None, lambda a: call(a, token_id))

        router.add_api_route(
            f"/tokens/{{token_id}}/{path}",
            endpoint,
            methods=["POST"],
            tags=[tag],
            name=path.replace("-", "_"),
            description=description,
            response_model=TokenOut,
            responses=_CHANGE_ERRORS,
        )

    def add_doctor_call(
        path: str, roles: frozenset[Role], tag: str, call: DoctorCall, description: str
    ) -> None:
        def endpoint(
            doctor_id: str,
            request: Request,
            day: Day,
            caller: Caller = Depends(keys.allow(roles)),  # noqa: B008 - one per role
            key: IdempotencyKey = None,
        ) -> Response:
            return doctor_change(
                day, caller, request, key, None, doctor_id, lambda a: call(a, doctor_id)
            )

        router.add_api_route(
            f"/doctors/{{doctor_id}}/{path}",
            endpoint,
            methods=["POST"],
            tags=[tag],
            name=path,
            description=description,
            response_model=DoctorBoardOut,
            responses=_CHANGE_ERRORS,
        )

    for token_call in _TOKEN_CALLS:
        add_token_call(*token_call)
    for doctor_call in _DOCTOR_CALLS:
        add_doctor_call(*doctor_call)

    # ---------------------------------------------------------------- calls with a body

    @router.post(
        "/tokens", status_code=201, tags=["desk"], response_model=TokenOut, responses=_CHANGE_ERRORS
    )
    def book(
        body: BookRequest, request: Request, day: Day, caller: Desk, key: IdempotencyKey = None
    ) -> Response:
        """Book a token (`book`): 201 with the token. Without `slot_id` the allocator picks
        the slot; an emergency is never turned away."""

        def call(alloc: Allocator) -> tuple[int, TokenOut]:
            token = alloc.book(
                body.patient_id,
                body.doctor_id,
                body.slot_id,
                source=body.source,
                priority=body.priority,
                checked_in=body.checked_in,
            )
            return 201, TokenOut.of(token)

        return _change(day, caller, request, key, body, call)

    @router.post(
        "/tokens/{token_id}/cancel",
        tags=["desk"],
        response_model=TokenOut,
        responses=_CHANGE_ERRORS,
    )
    def cancel(
        token_id: str,
        request: Request,
        day: Day,
        caller: Desk,
        body: Annotated[CancelRequest | None, Body()] = None,
        key: IdempotencyKey = None,
    ) -> Response:
        """Cancel the token, with an optional reason (`cancel`); its place is refilled at
        once."""
        reason = "" if body is None else body.reason
        return token_change(day, caller, request, key, body, lambda a: a.cancel(token_id, reason))

    @router.post(
        "/tokens/{token_id}/reschedule",
        tags=["desk"],
        response_model=TokenOut,
        responses=_CHANGE_ERRORS,
    )
    def reschedule(
        token_id: str,
        body: RescheduleRequest,
        request: Request,
        day: Day,
        caller: Desk,
        key: IdempotencyKey = None,
    ) -> Response:
        """Move the token to another slot of its doctor (`reschedule`)."""
        return token_change(
            day, caller, request, key, body, lambda a: a.reschedule(token_id, body.slot_id)
        )

    @router.post(
        "/tokens/{token_id}/retriage",
        tags=["desk"],
        response_model=TokenOut,
        responses=_CHANGE_ERRORS,
    )
    def retriage(
        token_id: str,
        body: RetriageRequest,
        request: Request,
        day: Day,
        caller: Desk,
        key: IdempotencyKey = None,
    ) -> Response:
        """Change the token's priority (`retriage`)."""
        return token_change(
            day, caller, request, key, body, lambda a: a.retriage(token_id, body.priority)
        )

    @router.post(
        "/doctors/{doctor_id}/call-next",
        tags=["clinician"],
        response_model=TokenOut,
        responses={204: _NOBODY, **_CHANGE_ERRORS},
    )
    def call_next(
        doctor_id: str, request: Request, day: Day, caller: Clinician, key: IdempotencyKey = None
    ) -> Response:
        """Complete the current consultation and call the next patient (`call_next`): 200
        with the called token, or 204 when nobody checked in is waiting. Send an
        `Idempotency-Key`: a retry then never completes the patient just called."""

        def call(alloc: Allocator) -> tuple[int, TokenOut | None]:
            token = alloc.call_next(doctor_id)
            return (204, None) if token is None else (200, TokenOut.of(token))

        return _change(day, caller, request, key, None, call)

    @router.post(
        "/doctors/{doctor_id}/delay",
        tags=["admin"],
        response_model=DoctorBoardOut,
        responses=_CHANGE_ERRORS,
    )
    def delay(
        doctor_id: str,
        body: DelayRequest,
        request: Request,
        day: Day,
        caller: Admin,
        key: IdempotencyKey = None,
    ) -> Response:
        """The doctor runs `minutes` later than before (`delay`)."""
        return doctor_change(
            day, caller, request, key, body, doctor_id, lambda a: a.delay(doctor_id, body.minutes)
        )

    # ---------------------------------------------------------------- disruptions: dry runs

    @router.post(
        "/doctors/{doctor_id}/unavailable",
        tags=["admin"],
        responses=_preview_or("DoctorBoardOut", "The doctor's line of the board"),
    )
    def mark_unavailable(
        doctor_id: str,
        request: Request,
        day: Day,
        caller: Admin,
        dry_run: DryRun = False,
        key: IdempotencyKey = None,
    ) -> Response:
        """The doctor is gone for the day (`mark_unavailable`): their patients move to
        colleagues or the waitlist."""
        if dry_run:
            return _json(_dry_run(day, lambda a: a.mark_unavailable(doctor_id)))
        return doctor_change(
            day, caller, request, key, None, doctor_id, lambda a: a.mark_unavailable(doctor_id)
        )

    @router.post(
        "/doctors/{doctor_id}/end-day",
        tags=["admin"],
        responses=_preview_or("TokenOut", "The patients left unseen (a list)"),
    )
    def end_day(
        doctor_id: str,
        request: Request,
        day: Day,
        caller: Admin,
        dry_run: DryRun = False,
        key: IdempotencyKey = None,
    ) -> Response:
        """Close the doctor's day (`end_day`): answers the patients left unseen."""
        if dry_run:
            return _json(_dry_run(day, lambda a: a.end_day(doctor_id)))

        def call(alloc: Allocator) -> tuple[int, list[TokenOut]]:
            return 200, [TokenOut.of(token) for token in alloc.end_day(doctor_id)]

        return _change(day, caller, request, key, None, call)

    def slot_change(
        slot_id: str, call: Callable[[Allocator], object]
    ) -> Callable[[Allocator], tuple[int, SlotOut]]:
        def change(alloc: Allocator) -> tuple[int, SlotOut]:
            call(alloc)
            return 200, SlotOut.of(alloc.slot(slot_id))

        return change

    @router.post(
        "/slots/{slot_id}/close", tags=["admin"], responses=_preview_or("SlotOut", "The slot")
    )
    def close_slot(
        slot_id: str,
        request: Request,
        day: Day,
        caller: Admin,
        dry_run: DryRun = False,
        key: IdempotencyKey = None,
    ) -> Response:
        """Close the slot (`close_slot`): its patients move to later slots or the waitlist."""
        if dry_run:
            return _json(_dry_run(day, lambda a: a.close_slot(slot_id)))
        change = slot_change(slot_id, lambda a: a.close_slot(slot_id))
        return _change(day, caller, request, key, None, change)

    @router.post(
        "/slots/{slot_id}/resize", tags=["admin"], responses=_preview_or("SlotOut", "The slot")
    )
    def resize(
        slot_id: str,
        body: ResizeRequest,
        request: Request,
        day: Day,
        caller: Admin,
        dry_run: DryRun = False,
        key: IdempotencyKey = None,
    ) -> Response:
        """Change the slot's capacity (`resize`)."""
        if dry_run:
            return _json(_dry_run(day, lambda a: a.resize(slot_id, body.capacity)))
        change = slot_change(slot_id, lambda a: a.resize(slot_id, body.capacity))
        return _change(day, caller, request, key, body, change)

    # ---------------------------------------------------------------- reading

    @router.get("/tokens/{token_id}", tags=["read"], dependencies=reader, responses=_READ_ERRORS)
    def get_token(token_id: str, day: Day) -> TokenOut:
        """The token as it is now (`token`)."""
        return day.read(lambda a: TokenOut.of(a.token(token_id)))

    @router.get(
        "/patients/{patient_id}/tokens",
        tags=["read"],
        dependencies=reader,
        responses=_errors(401, 403),
    )
    def patient_tokens(
        patient_id: str, day: Day, offset: Offset = 0, limit: Limit = 100
    ) -> Page[TokenOut]:
        """Every token of the patient today, in the order issued (O(n) in the day's tokens)."""
        found = day.read(
            lambda a: [TokenOut.of(t) for t in a.tokens() if t.patient_id == patient_id]
        )
        return _page(found, offset, limit)

    @router.get(
        "/tokens/{token_id}/position",
        tags=["read"],
        dependencies=reader,
        responses={**_READ_ERRORS, **_errors(409)},
    )
    def position(token_id: str, day: Day) -> PositionOut:
        """The waiting token's 1-based place in its queue or waitlist (`position`); 409 for a
        token that is not waiting."""
        return PositionOut(token_id=token_id, position=day.read(lambda a: a.position(token_id)))

    @router.get(
        "/tokens/{token_id}/estimate",
        tags=["read"],
        dependencies=reader,
        response_model=EstimateOut,
        responses={204: {"description": "The token is not waiting"}, **_READ_ERRORS},
    )
    def estimate(token_id: str, day: Day) -> Response:
        """When the patient will be called (`estimate`); 204 when the token is not waiting."""
        found = day.read(lambda a: a.estimate(token_id))
        return _json(None if found is None else EstimateOut.of(token_id, found))

    @router.get("/doctors", tags=["read"], dependencies=reader, responses=_errors(401, 403))
    def doctors(day: Day, offset: Offset = 0, limit: Limit = 100) -> Page[DoctorOut]:
        """Every doctor, in the order added (`doctors`)."""
        return _page(day.read(lambda a: [DoctorOut.of(d) for d in a.doctors()]), offset, limit)

    @router.get("/doctors/{doctor_id}", tags=["read"], dependencies=reader, responses=_READ_ERRORS)
    def doctor(doctor_id: str, day: Day) -> DoctorOut:
        """The doctor (`doctor`)."""
        return day.read(lambda a: DoctorOut.of(a.doctor(doctor_id)))

    @router.get("/slots", tags=["read"], dependencies=reader, responses=_READ_ERRORS)
    def slots(
        day: Day, doctor_id: str | None = None, offset: Offset = 0, limit: Limit = 100
    ) -> Page[SlotOut]:
        """Every slot (by doctor, then start), or one doctor's with `?doctor_id=` (`slots`)."""
        return _page(day.read(lambda a: [SlotOut.of(s) for s in a.slots(doctor_id)]), offset, limit)

    @router.get(
        "/doctors/{doctor_id}/slots", tags=["read"], dependencies=reader, responses=_READ_ERRORS
    )
    def doctor_slots(
        doctor_id: str, day: Day, offset: Offset = 0, limit: Limit = 100
    ) -> Page[SlotOut]:
        """The doctor's slots in start order (`slots`)."""
        return _page(day.read(lambda a: [SlotOut.of(s) for s in a.slots(doctor_id)]), offset, limit)

    @router.get("/slots/{slot_id}", tags=["read"], dependencies=reader, responses=_READ_ERRORS)
    def slot(slot_id: str, day: Day) -> SlotOut:
        """The slot and its counts (`slot`)."""
        return day.read(lambda a: SlotOut.of(a.slot(slot_id)))

    @router.get(
        "/slots/{slot_id}/queue", tags=["read"], dependencies=reader, responses=_READ_ERRORS
    )
    def queue(slot_id: str, day: Day, offset: Offset = 0, limit: Limit = 100) -> Page[TokenOut]:
        """The slot's waiting tokens in standing order (`queue`)."""
        return _page(day.read(lambda a: [TokenOut.of(t) for t in a.queue(slot_id)]), offset, limit)

    @router.get(
        "/doctors/{doctor_id}/waitlist", tags=["read"], dependencies=reader, responses=_READ_ERRORS
    )
    def waitlist(
        doctor_id: str, day: Day, offset: Offset = 0, limit: Limit = 100
    ) -> Page[TokenOut]:
        """The doctor's waitlisted tokens in order (`waitlist`)."""
        found = day.read(lambda a: [TokenOut.of(t) for t in a.waitlist(doctor_id)])
        return _page(found, offset, limit)

    @router.get(
        "/doctors/{doctor_id}/now-serving",
        tags=["read"],
        dependencies=reader,
        response_model=TokenOut,
        responses={204: _NOBODY, **_READ_ERRORS},
    )
    def now_serving(doctor_id: str, day: Day) -> Response:
        """The token in consultation (`now_serving`); 204 when nobody is."""
        token = day.read(lambda a: a.now_serving(doctor_id))
        return _json(None if token is None else TokenOut.of(token))

    @router.get(
        "/doctors/{doctor_id}/next-up", tags=["read"], dependencies=reader, responses=_READ_ERRORS
    )
    def next_up(
        doctor_id: str, day: Day, n: Annotated[int, Query(ge=1, le=50)] = 3
    ) -> list[TokenOut]:
        """The next `n` patients call-next would call, in that order (`next_up`)."""
        return day.read(lambda a: [TokenOut.of(t) for t in a.next_up(doctor_id, n)])

    _display_routes(router, Day, keys)

    # ---------------------------------------------------------------- the host

    @router.get(
        "/state",
        tags=["admin"],
        dependencies=[Depends(keys.allow(_ADMIN))],
        responses=_errors(401, 403),
    )
    def whole_state(day: Day) -> StateOut:
        """The whole state (`snapshot`), with its version and the worker's process id: for
        backups, audits and tests. O(n) in the tokens: not for every request."""
        snapshot = day.read(lambda a: a.snapshot())
        version = snapshot["allocator_version"]
        return StateOut(worker=os.getpid(), version=version, snapshot=snapshot)

    @router.get(
        "/audit",
        tags=["admin"],
        dependencies=[Depends(keys.allow(_ADMIN))],
        responses=_errors(401, 403),
    )
    def audit(day: Day, offset: Offset = 0, limit: Limit = 100) -> Page[AuditOut]:
        """The day's audit trail: which key (role and name) made each change."""
        trail = [AuditOut(version=version, actor=actor) for version, actor in day.audit()]
        return _page(trail, offset, limit)

    return router


def _display_routes(router: APIRouter, Day: Any, keys: _Keys) -> None:
    """``/board``, ``/display`` and ``/events``: the waiting-room screen. Every role reads
    them, and the key may come as ``?key=`` or the ``opd_key`` cookie."""
    display = [Depends(keys.allow_display())]
    BoardN = Annotated[int, Query(ge=0, le=10, description="How many next-up tokens to show.")]

    @router.get("/board", tags=["display"], dependencies=display, responses=_errors(401, 403))
    def board(day: Day, n: BoardN = 3, department: str | None = None) -> BoardOut:
        """The waiting-room board (`board`): per doctor, now serving and next up; token ids
        only, never patients."""
        return day.read(lambda a: _board_of(a, n, department))  # type: ignore[no-any-return]

    @router.get(
        "/display",
        tags=["display"],
        dependencies=display,
        response_class=HTMLResponse,
        responses=_errors(401, 403),
    )
    def display_page() -> HTMLResponse:
        """The waiting-room page: large type, high contrast, no external assets; it follows
        `events` (or polls `board`) and updates without a reload."""
        return HTMLResponse(_display_page())

    streamed = {
        "description": "`event: board` with a `BoardOut` as data, now and after each change",
        "content": {"text/event-stream": {}},
    }

    @router.get(
        "/events",
        tags=["display"],
        dependencies=display,
        responses={200: streamed, **_errors(401, 403)},
    )
    def events(day: Day, n: BoardN = 3, department: str | None = None) -> StreamingResponse:
        """The board as server-sent events: at once, then whenever the day changes."""

        def read(last: int | None) -> tuple[int, str | None]:
            def look(alloc: Allocator) -> tuple[int, str | None]:
                if alloc.version == last:
                    return alloc.version, None
                return alloc.version, _board_of(alloc, n, department).model_dump_json()

            return day.read(look)  # type: ignore[no-any-return]

        return StreamingResponse(
            board_events(read),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


def _json(model: BaseModel | None) -> Response:
    """``model`` as a JSON response, or an empty 204 for None."""
    if model is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return Response(model.model_dump_json(), media_type="application/json")


# ---------------------------------------------------------------- the app

_TAGS = [
    {"name": "desk", "description": "The front desk (role `desk`): bookings and arrivals."},
    {"name": "clinician", "description": "The doctor's room (role `clinician`): calls."},
    {
        "name": "admin",
        "description": "The day itself (role `admin`): delays, capacity, "
        "closing slots, doctors' availability, the end of the day; backups and the audit.",
    },
    {
        "name": "read",
        "description": "Reading tokens, queues, doctors and slots (every role but `board`).",
    },
    {"name": "display", "description": "The waiting-room screen (every role, `board` too)."},
]


def create_app(
    state: Allocator | Journal | Days, *, keys: Mapping[str, str | ApiKey] | None = None
) -> FastAPI:
    """A FastAPI app serving ``state``: an :class:`~opd_engine.Allocator` in this process's
    memory, a journal whose ``run`` makes each change durable (and, on PostgreSQL, shared
    by every worker), or :class:`Days`, many hospitals' days under
    ``/hospitals/{hospital}/days/{date}/...``.

    ``keys`` maps each API key (a secret, sent as ``Authorization: Bearer <key>``) to its
    role, one of :data:`ROLES`, or to an :class:`ApiKey` (role and name). ``keys=None``
    serves an open demo: every request may do everything.

    State in memory refuses to start (``RuntimeError``) when the server runs several
    workers (:func:`workers_requested`): each would keep its own day. The app keeps no
    other state.
    """
    access = _Keys(keys)
    if isinstance(state, (Allocator, InMemory)) or (isinstance(state, Days) and state.in_memory):
        _one_worker()
    app = FastAPI(
        title="opd-engine HTTP service",
        summary="OPD tokens over HTTP: the front desk, the doctor's room and the display",
        openapi_tags=_TAGS,
    )
    app.add_exception_handler(OPDError, opd_error_handler)
    if isinstance(state, Days):
        days = state

        async def resolve_day(hospital: str, day: date) -> Journal:
            journal = days.opened(hospital, day)
            if journal is None:  # opening may wait for a database: not on the event loop
                journal = await run_in_threadpool(days.journal, hospital, day)
            return journal

        app.include_router(_routes(resolve_day, access), prefix="/hospitals/{hospital}/days/{day}")
    else:
        journal: Journal = InMemory(state) if isinstance(state, Allocator) else state

        async def resolve() -> Journal:
            return journal

        app.include_router(_routes(resolve, access))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            _drop_impossible_422(schema)
            # The dry runs' answer is named by a reference, not by a response model.
            schema["components"]["schemas"]["PreviewOut"] = PreviewOut.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _drop_impossible_422(schema: dict[str, Any]) -> None:
    """FastAPI lists 422 on every operation with a parameter; drop it where nothing can
    fail validation: no body and only plain string parameters."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            parameters = operation.get("parameters", [])
            plain = all(
                p["schema"].get("type") == "string" and "format" not in p["schema"]
                for p in parameters
            )
            if "requestBody" not in operation and plain:
                operation.get("responses", {}).pop("422", None)


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


def _refuse_to_start(message: str) -> BaseException:
    """The error that stops the server, ``RuntimeError(message)``. In a worker uvicorn's
    supervisor spawned, it also stops the supervisor, which would otherwise restart the
    failing worker forever, logs the message once, and is ``SystemExit(3)``: uvicorn's
    code for a worker that could not start, which it does not restart."""
    if multiprocessing.parent_process() is None:
        return RuntimeError(message)
    os.kill(os.getppid(), signal.SIGTERM)
    logging.getLogger("uvicorn.error").error(message)
    return SystemExit(3)


def _setting(name: str, parse: Callable[[str], T], default: T) -> T:
    """The environment variable ``name`` read by ``parse``, else ``default``; a value that
    does not parse stops the server (:func:`_refuse_to_start`), naming the setting."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return parse(text)
    except (ValueError, TypeError) as error:
        raise _refuse_to_start(f"{name} cannot be read: {error}") from None


def _one_worker() -> None:
    workers = workers_requested()
    if workers > 1:
        raise _refuse_to_start(
            f"the in-memory app serves one process, but {workers} workers were requested: "
            "each would keep its own allocator and hand out the same token ids; run one "
            "worker, or keep the day in PostgreSQL (postgres_app)"
        )


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


def _demo_date() -> date:
    """``OPD_DAY`` (ISO 8601), else today by the wall clock: the date the server runs."""
    today = date.today()  # wall clock: a server without OPD_DAY serves the date it runs on
    return _setting("OPD_DAY", date.fromisoformat, today)


def _demo_places() -> int:
    """``OPD_DEMO_PLACES``, the places of each of the demo day's hourly slots (default 50)."""
    return _setting("OPD_DEMO_PLACES", int, 50)


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _demo_keys() -> dict[str, str] | None:
    """``OPD_KEYS``, a JSON object of API keys and their roles, else None (the open demo)."""
    return _setting("OPD_KEYS", _json_object, None)


def demo_app(clock: Callable[[], datetime] | None = None) -> FastAPI:
    """An app over a demo day in memory (:func:`build_demo_day`: four doctors, hourly slots
    covering today's whole date, today by ``clock``, else the wall clock), so the demo books
    into the current hour whenever it starts. ``uvicorn --factory http_service:demo_app``
    serves it; ``OPD_DEMO_PLACES`` sets the places per slot, ``OPD_KEYS`` the keys (a JSON
    object, ``{"<key>": "desk", ...}``; without it the demo is open).

    The state lives in this process's memory, so it refuses to start (``RuntimeError``)
    when the server runs more than one worker (see :func:`create_app`).
    """
    _one_worker()
    allocator = Allocator(clock=clock)
    build_demo_day(allocator, allocator.clock().date(), places=_demo_places())
    return create_app(allocator, keys=_demo_keys())


def _connect_or_refuse(open: Callable[[], T], dsn: str, setting: str = "OPD_POSTGRES_DSN") -> T:
    """``open()``, a journal on PostgreSQL; a server that cannot be reached stops the whole
    server with one message (the connection string without its password), instead of
    workers that fail and are restarted forever."""
    import psycopg

    try:
        return open()
    except psycopg.Error as error:  # unreachable, refused, or a malformed string
        try:
            parts = psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:  # its message may quote the string: say no more
            shown, reason = "(unreadable)", "the connection string is malformed"
        else:
            shown = " ".join(f"{k}={v}" for k, v in parts.items() if k != "password")
            lines = str(error).strip().splitlines()
            reason = lines[0] if lines else type(error).__name__
            secret = str(parts.get("password") or "")
            if secret:
                reason = reason.replace(secret, "***")
        raise _refuse_to_start(
            f"cannot open the journal in PostgreSQL at {setting}={shown!r}: {reason}"
        ) from None


def sqlite_app() -> FastAPI:
    """An app over a demo day whose journal lives in a SQLite file; any number of workers
    on one machine (SQLite's write lock serialises their changes).

    ``OPD_SQLITE_PATH`` is the database file (required); ``OPD_DAY`` the OPD date, as for
    :func:`postgres_app`; ``OPD_DEMO_PLACES`` and ``OPD_KEYS`` as for :func:`demo_app`::

        OPD_SQLITE_PATH=opd.sqlite3 uvicorn --factory http_service:sqlite_app --workers 4
    """
    from sqlite_journal import SQLiteJournal  # a sibling recipe; standard library only

    path = os.environ.get("OPD_SQLITE_PATH")
    if not path:
        raise _refuse_to_start("sqlite_app needs OPD_SQLITE_PATH, the path of a database")
    day = _demo_date()
    journal = SQLiteJournal(path, day=day.isoformat())
    journal.setup(lambda alloc: build_demo_day(alloc, day, places=_demo_places()))
    return create_app(journal, keys=_demo_keys())


def postgres_app() -> FastAPI:
    """An app over a demo day whose journal lives in PostgreSQL; any number of workers.

    ``OPD_POSTGRES_DSN`` is the connection string (required); ``OPD_DAY`` the OPD date,
    ISO 8601 (default: today), which also names the journal; ``OPD_DEMO_PLACES`` and
    ``OPD_KEYS`` as for :func:`demo_app`. A past date's slots have all ended, so it refuses
    every booking. Every worker opens its own connection and replica; the first to start
    builds the day. A server that cannot be reached stops the whole server at once, with
    one message::

        OPD_POSTGRES_DSN="dbname=opd" uvicorn --factory http_service:postgres_app --workers 4
    """
    from postgres_journal import PostgresJournal  # a sibling recipe; needs psycopg

    dsn = os.environ.get("OPD_POSTGRES_DSN")
    if not dsn:
        raise _refuse_to_start("postgres_app needs OPD_POSTGRES_DSN, a connection string")
    day = _demo_date()
    journal = _connect_or_refuse(lambda: PostgresJournal(dsn, day=day.isoformat()), dsn)
    journal.setup(lambda alloc: build_demo_day(alloc, day, places=_demo_places()))
    return create_app(journal, keys=_demo_keys())


def hospitals_app() -> FastAPI:
    """An app over many hospitals' demo days, each hospital's journals on its own
    PostgreSQL server: ``OPD_ROUTES`` is the routing table, a JSON object of hospitals and
    connection strings (``{"north": "host=db1 dbname=opd", "south": "host=db2 ..."}``).
    Every day of every hospital is a demo day (:func:`build_demo_day`), built the first
    time it is used; the paths are ``/hospitals/{hospital}/days/{date}/...``::

        OPD_ROUTES='{"north": "dbname=opd"}' uvicorn --factory http_service:hospitals_app

    A server that cannot be reached stops the whole server at start, with one message.
    """
    import psycopg

    routes: dict[str, str] = _setting("OPD_ROUTES", _json_object, {})
    if not routes:
        raise _refuse_to_start("hospitals_app needs OPD_ROUTES, a JSON object of hospitals")
    for hospital, dsn in routes.items():  # every server answers before the first request
        _connect_or_refuse(
            lambda dsn=dsn: psycopg.connect(dsn).close(),  # type: ignore[misc]
            dsn,
            f"OPD_ROUTES[{hospital!r}]",
        )
    places = _demo_places()
    days = postgres_days(
        routes, lambda _hospital, day, alloc: build_demo_day(alloc, day, places=places)
    )
    return create_app(days, keys=_demo_keys())
