"""The PostgreSQL journal recipe (docs/examples/postgres_journal.py) against a real server,
and the HTTP recipe on it with four uvicorn workers.

The server is CI's (``$OPD_TEST_POSTGRES_DSN``, started by ``.ci/run``) or one the
``postgres_dsn`` fixture starts on a Unix socket; the clients talk to uvicorn over a Unix
socket too. Several replicas sharing one journal must behave as one allocator: no token id
handed out twice, no slot overbooked, and the journal's replay equal to every replica once
it has caught up.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import psycopg
import pytest

from conftest import CAPACITY, DOCTORS, EXAMPLES, HOURS, Clock, at, load_example
from opd_engine import Allocator, InvalidArgumentError, Slot, SlotFullError, Source, Token

T = TypeVar("T")
Booking = Callable[[Allocator], Token]
Reply = Callable[[Allocator], tuple[int, str]]


class Journal(Protocol):
    """What the tests use of ``PostgresJournal``."""

    @property
    def allocator(self) -> Allocator: ...
    def run(self, call: Callable[[Allocator], T], *, actor: str | None = None) -> T: ...
    def run_once(
        self, key: str, request: str, call: Reply, *, actor: str | None = None
    ) -> tuple[str, int, str, bool]: ...
    def read(self, call: Callable[[Allocator], T]) -> T: ...
    def audit(self) -> list[tuple[int, str]]: ...
    def setup(self, build: Callable[[Allocator], object]) -> bool: ...
    def checkpoint(self) -> int: ...
    def close(self) -> None: ...


postgres_journal = load_example("postgres_journal")
PostgresJournal: Callable[..., Journal] = postgres_journal.PostgresJournal
http_service = load_example("http_service")
workers_requested: Callable[..., int] = http_service.workers_requested


def book(patient: str, doctor: str, slot_id: str | None = None, **options: Any) -> Booking:
    """A call that books ``patient``, for ``journal.run``."""
    return lambda alloc: alloc.book(patient, doctor, slot_id, **options)


def make_day(alloc: Allocator) -> None:
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            slot = Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
            alloc.add_slot(slot)


def forget(dsn: str, day: str) -> None:
    """Remove the journal ``day`` (a test may run twice against one server, and may have
    left a journal it spoiled on purpose), then open it empty: that creates the tables."""
    with psycopg.connect(dsn, autocommit=True) as db:
        for table in ("opd_events", "opd_checkpoints", "opd_audit", "opd_requests", "opd_journal"):
            row = db.execute("SELECT to_regclass(%s)", (table,)).fetchone()
            if row is not None and row[0] is not None:
                db.execute(f"DELETE FROM {table} WHERE day = %s", (day,))
    PostgresJournal(dsn, day=day).close()


def journal_events(dsn: str, day: str) -> list[dict[str, Any]]:
    with psycopg.connect(dsn) as db:
        rows = db.execute(
            "SELECT event FROM opd_events WHERE day = %s ORDER BY version, idx", (day,)
        ).fetchall()
    return [event for (event,) in rows]


@pytest.fixture
def day(postgres_dsn: str, request: pytest.FixtureRequest) -> str:
    name = f"test:{request.node.name}"
    forget(postgres_dsn, name)
    return name


@pytest.fixture
def open_journal(postgres_dsn: str, day: str, clock: Clock) -> Iterator[Callable[..., Journal]]:
    opened: list[Journal] = []

    def make(**options: Any) -> Journal:
        journal = PostgresJournal(postgres_dsn, day=day, clock=clock, **options)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


# ----------------------------------------------------------------------------- the journal


def test_restore_is_the_checkpoint_and_the_events_after_it(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal(checkpoint_every=5)
    assert journal.setup(make_day) is True  # versions 1 to 12
    for i in range(6):
        journal.run(book(f"P{i}", "D1", source=Source.ONLINE))
    clock.now = at(9)
    journal.run(lambda alloc: alloc.check_in("D1-002"))
    journal.run(lambda alloc: alloc.cancel("D1-001"))  # pulls forward: several events
    with psycopg.connect(postgres_dsn) as db:
        versions = db.execute(
            "SELECT version FROM opd_checkpoints WHERE day = %s ORDER BY version", (day,)
        ).fetchall()
    assert versions == [(12,), (15,), (20,)]
    restarted = open_journal()
    assert restarted.allocator.snapshot() == journal.allocator.snapshot()
    replayed = Allocator.replay(journal_events(postgres_dsn, day), clock=clock)
    assert replayed.snapshot() == journal.allocator.snapshot()


def test_replicas_catch_up_before_each_call(open_journal: Callable[..., Journal]) -> None:
    replicas = [open_journal() for _ in range(3)]
    assert [replica.setup(make_day) for replica in replicas] == [True, False, False]
    rng = random.Random(7)
    issued = [rng.choice(replicas).run(book(f"P{i}", "D1")).id for i in range(9)]
    assert issued == [f"D1-{n:03d}" for n in range(1, 10)]
    with pytest.raises(SlotFullError):  # every replica knows the day is full
        replicas[0].run(book("P10", "D1"))
    snapshots = [replica.read(lambda alloc: alloc.snapshot()) for replica in replicas]
    assert snapshots[0] == snapshots[1] == snapshots[2]


def test_a_failed_commit_is_not_acknowledged(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute(  # another writer, bypassing the lock, took the next version
            "INSERT INTO opd_events (day, version, idx, event) VALUES (%s, 13, 0, '{}')", (day,)
        )
    with pytest.raises(psycopg.errors.UniqueViolation):
        journal.run(book("A", "D1"))
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("DELETE FROM opd_events WHERE day = %s AND version = 13", (day,))
    assert journal.allocator.tokens() == []  # rebuilt from the database
    assert journal.run(book("A", "D1")).id == "D1-001"


def test_a_lost_connection_is_reopened(postgres_dsn: str, day: str, clock: Clock) -> None:
    journal = PostgresJournal(f"{postgres_dsn} application_name=victim", day=day, clock=clock)
    try:
        journal.setup(make_day)
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'victim'"
            )
        # The first round trip finds the connection broken before anything ran: the journal
        # reconnects, rebuilds its replica and runs the call once.
        assert journal.run(book("A", "D1")).id == "D1-001"
        assert journal.run(book("B", "D1")).id == "D1-002"
        assert [t.patient_id for t in journal.allocator.tokens()] == ["A", "B"]
        replayed = Allocator.replay(journal_events(postgres_dsn, day))
        assert [t.patient_id for t in replayed.tokens()] == ["A", "B"]
    finally:
        journal.close()


def test_a_corrupt_journal_is_refused(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    open_journal().setup(make_day)
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        db.execute("DELETE FROM opd_events WHERE day = %s AND version = 5", (day,))
    with pytest.raises(InvalidArgumentError, match="gap"):
        open_journal()


# ----------------------------------------------------------------------------- keyed requests

SET_UP = len(DOCTORS) * (1 + len(HOURS))  # the version make_day reaches: a doctor or slot each


class Booker:
    """A keyed request's call: book ``patient`` with ``doctor``; reply ``(201, token id)``,
    or ``(409, "SlotFullError")`` when the doctor's day is full. Counts its calls."""

    def __init__(self, patient: str, doctor: str = "D1") -> None:
        self.patient, self.doctor, self.calls = patient, doctor, 0

    def __call__(self, alloc: Allocator) -> tuple[int, str]:
        self.calls += 1
        try:
            token = alloc.book(self.patient, self.doctor)
        except SlotFullError as error:
            return 409, type(error).__name__
        return 201, token.id


def stored_requests(dsn: str, day: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as db:
        return db.execute(
            "SELECT key, request, status, body, version, actor FROM opd_requests"
            " WHERE day = %s ORDER BY key",
            (day,),
        ).fetchall()


def test_run_once_answers_a_key_once(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    first = Booker("P1")
    assert journal.run_once("K1", "book P1", first, actor="desk:front") == (
        "book P1",
        201,
        "D1-001",
        False,
    )
    assert first.calls == 1
    snapshot, events = journal.allocator.snapshot(), journal_events(postgres_dsn, day)
    again = Booker("P1")
    assert journal.run_once("K1", "book P1", again) == ("book P1", 201, "D1-001", True)
    assert again.calls == 0  # replayed: the call was not made
    assert journal.allocator.snapshot() == snapshot
    assert journal.allocator.version == SET_UP + 1
    assert journal_events(postgres_dsn, day) == events
    assert stored_requests(postgres_dsn, day) == [
        ("K1", "book P1", 201, "D1-001", SET_UP + 1, "desk:front")
    ]


def test_keys_requests_and_replies_are_stored_as_given(
    open_journal: Callable[..., Journal],
) -> None:
    """Quotes, backslashes, non-ASCII text and SQL in every value reach the database intact."""
    journal = open_journal()
    journal.setup(make_day)
    key, request = "K'1\\'; DROP TABLE opd_requests; --", "book 'Zoë' \\x00 \"Ω\""
    patient = "O'Brien \\ Zoë 😷"
    reply = journal.run_once(key, request, lambda alloc: (201, alloc.book(patient, "D1").id))
    assert reply == (request, 201, "D1-001", False)
    restarted = open_journal()
    assert restarted.run_once(key, request, Booker("other")) == (request, 201, "D1-001", True)
    assert restarted.allocator.token("D1-001").patient_id == patient
    assert restarted.audit() == []


def test_an_error_reply_is_stored_and_replayed(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    for i in range(len(HOURS) * CAPACITY):  # D3's day is full
        journal.run(book(f"A{i}", "D3"))
    full = journal.allocator.version
    assert journal.run_once("K", "book X", Booker("X", "D3")) == (
        "book X",
        409,
        "SlotFullError",
        False,
    )
    assert journal.allocator.version == full  # refused: no change, but the key is kept
    journal.run(lambda alloc: alloc.cancel("D3-001"))  # a place is free again
    again = Booker("X", "D3")
    assert journal.run_once("K", "book X", again) == ("book X", 409, "SlotFullError", True)
    assert again.calls == 0  # the first reply stands
    assert stored_requests(postgres_dsn, day) == [("K", "book X", 409, "SlotFullError", full, None)]


def test_a_key_reused_for_another_request_returns_the_first(
    open_journal: Callable[..., Journal],
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    journal.run_once("K", "book P1", Booker("P1"))
    other = Booker("P2", "D2")
    assert journal.run_once("K", "book P2", other) == ("book P1", 201, "D1-001", True)
    assert other.calls == 0
    assert [t.patient_id for t in journal.allocator.tokens()] == ["P1"]


def test_keys_outlive_a_restart_and_are_shared_by_every_worker(
    open_journal: Callable[..., Journal],
) -> None:
    worker, other = open_journal(), open_journal()  # two processes' journals
    worker.setup(make_day)
    worker.run_once("K", "book P1", Booker("P1"))
    worker.close()
    restarted = open_journal()
    for journal in (restarted, other):  # other's replica is behind: it catches up first
        call = Booker("P1")
        assert journal.run_once("K", "book P1", call) == ("book P1", 201, "D1-001", True)
        assert call.calls == 0
        assert journal.allocator.version == SET_UP + 1


def test_keys_are_per_day(postgres_dsn: str, day: str, clock: Clock) -> None:
    tomorrow = f"{day}:tomorrow"
    forget(postgres_dsn, tomorrow)
    journals = [PostgresJournal(postgres_dsn, day=name, clock=clock) for name in (day, tomorrow)]
    try:
        for journal in journals:
            journal.setup(make_day)
            call = Booker("P1")
            assert journal.run_once("K", "book P1", call) == ("book P1", 201, "D1-001", False)
            assert call.calls == 1
    finally:
        for journal in journals:
            journal.close()


def test_a_call_that_raises_stores_nothing(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)

    def book_then_fail(alloc: Allocator) -> tuple[int, str]:
        alloc.book("P1", "D1")
        raise RuntimeError("the reply could not be made")

    with pytest.raises(RuntimeError, match="reply"):
        journal.run_once("K", "book P1", book_then_fail, actor="desk:front")
    assert stored_requests(postgres_dsn, day) == []
    assert len(journal_events(postgres_dsn, day)) == SET_UP
    assert journal.allocator.tokens() == []  # the replica was rebuilt without the booking
    assert journal.audit() == []
    call = Booker("P2")
    assert journal.run_once("K", "book P2", call) == ("book P2", 201, "D1-001", False)


def test_the_audit_trail_names_who_made_each_change(
    open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal()
    journal.setup(make_day)  # no actor: not audited
    journal.run(book("P1", "D1", source=Source.ONLINE), actor="desk:front")  # SET_UP + 1
    journal.run(book("P2", "D1"))  # SET_UP + 2, not audited
    journal.run(lambda alloc: alloc.queue("D1@09"), actor="desk:front")  # no change
    journal.run_once("K1", "book P3", Booker("P3"), actor="kiosk:lobby")  # SET_UP + 3
    for i in range(len(HOURS) * CAPACITY):
        journal.run(book(f"A{i}", "D3"))  # SET_UP + 4 to SET_UP + 12
    journal.run_once("K2", "book P4", Booker("P4", "D3"), actor="kiosk:lobby")  # 409
    clock.now = at(9)
    journal.run(lambda alloc: alloc.check_in("D1-001"), actor="desk:nurse")  # SET_UP + 13
    trail = [
        (SET_UP + 1, "desk:front"),
        (SET_UP + 3, "kiosk:lobby"),
        (SET_UP + 13, "desk:nurse"),
    ]
    assert journal.audit() == trail
    assert open_journal().audit() == trail  # another worker reads the same trail


def test_two_workers_racing_with_one_key_make_one_change(
    postgres_dsn: str, day: str, clock: Clock, open_journal: Callable[..., Journal]
) -> None:
    """The second worker asks for the lock while the first holds it, and finds the key
    once the first has committed: it replays the first's reply."""
    first = open_journal()
    first.setup(make_day)
    second = PostgresJournal(f"{postgres_dsn} application_name=second", day=day, clock=clock)
    replies: list[tuple[str, int, str, bool]] = []
    theirs = Booker("P1")

    def second_worker() -> None:
        replies.append(second.run_once("K", "book P1", theirs))

    racer = threading.Thread(target=second_worker)

    def mine(alloc: Allocator) -> tuple[int, str]:
        racer.start()  # while this call holds the lock
        with psycopg.connect(postgres_dsn, autocommit=True) as db:
            deadline = time.monotonic() + 30
            waiting = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = 'second' AND wait_event_type = 'Lock'"
            )
            while db.execute(waiting).fetchone() != (1,):  # until it waits for the lock
                assert time.monotonic() < deadline, "the second worker never waited"
        return Booker("P1")(alloc)

    try:
        assert first.run_once("K", "book P1", mine) == ("book P1", 201, "D1-001", False)
        racer.join(timeout=30)
        assert replies == [("book P1", 201, "D1-001", True)]
        assert theirs.calls == 0
        assert second.allocator.snapshot() == first.allocator.snapshot()
    finally:
        second.close()
    booked = [e for e in journal_events(postgres_dsn, day) if e["kind"] == "TokenBooked"]
    assert len(booked) == 1


def test_many_workers_racing_with_one_key_make_one_change(
    postgres_dsn: str, day: str, open_journal: Callable[..., Journal]
) -> None:
    workers = [open_journal() for _ in range(6)]
    workers[0].setup(make_day)
    calls = [Booker("P1") for _ in workers]
    start = threading.Barrier(len(workers))

    def race(i: int) -> tuple[str, int, str, bool]:
        start.wait()
        return workers[i].run_once("K", "book P1", calls[i])

    with ThreadPoolExecutor(len(workers)) as pool:
        replies = list(pool.map(race, range(len(workers))))
    assert sum(call.calls for call in calls) == 1
    assert sorted(replies, key=lambda reply: reply[3]) == [
        ("book P1", 201, "D1-001", False),
        *[("book P1", 201, "D1-001", True)] * (len(workers) - 1),
    ]
    booked = [e for e in journal_events(postgres_dsn, day) if e["kind"] == "TokenBooked"]
    assert len(booked) == 1


# ----------------------------------------------------------------------------- HTTP workers

OPD_DAY = "2099-01-05"  # the day's slots lie ahead of the wall clock: no slot has ended
DEMO_PLACES = 4  # OPD_DEMO_PLACES: places per hourly slot of the demo day
PLACES = 2 * 24 * DEMO_PLACES  # what the clients book into: doctors D1 and D2, 24 slots each


def unix_client(path: Path) -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(path)), base_url="http://opd", timeout=30
    )


def listening(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def wait_until_up(path: Path, server: subprocess.Popen[bytes], deadline: float) -> None:
    """Poll (bounded) until the server answers."""
    while time.monotonic() < deadline:
        assert server.poll() is None, "uvicorn exited"
        if listening(path):
            with unix_client(path) as client:
                if client.get("/state").status_code == 200:
                    return
        time.sleep(0.05)
    pytest.fail("uvicorn did not answer in time")


@pytest.fixture
def four_workers(postgres_dsn: str, tmp_path: Path) -> Iterator[Path]:
    """``uvicorn --factory http_service:postgres_app --workers 4`` on a Unix socket."""
    forget(postgres_dsn, OPD_DAY)
    path = tmp_path / "opd.sock"
    env = {
        **os.environ,
        "OPD_POSTGRES_DSN": postgres_dsn,
        "OPD_DAY": OPD_DAY,
        "OPD_DEMO_PLACES": str(DEMO_PLACES),
    }
    env.pop("OPD_WORKERS", None)
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "http_service:postgres_app",
        "--workers", "4", "--uds", str(path), "--app-dir", str(EXAMPLES),
        "--log-level", "warning",
    ]  # fmt: skip
    with (tmp_path / "uvicorn.log").open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(path, server, time.monotonic() + 60)
        yield path
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_four_workers_behave_as_one_allocator(four_workers: Path, postgres_dsn: str) -> None:
    def client_books(client_id: int) -> list[tuple[int, str | None]]:
        rng = random.Random(client_id)
        results = []
        with unix_client(four_workers) as client:
            for i in range(30):  # 240 requests for the 192 places
                body = {
                    "patient_id": f"C{client_id}-{i}",
                    "doctor_id": rng.choice(("D1", "D2")),
                    "source": rng.choice(("ONLINE", "PAID", "FOLLOW_UP")),
                }
                response = client.post("/tokens", json=body, headers={"connection": "close"})
                token = response.json().get("id") if response.status_code == 201 else None
                results.append((response.status_code, token))
        return results

    with ThreadPoolExecutor(8) as pool:
        results = [r for batch in pool.map(client_books, range(8)) for r in batch]
    booked = [token for code, token in results if code == 201 and token is not None]
    assert {code for code, _ in results} == {201, 409}  # booked, or refused: the day is full
    assert len(booked) == len(set(booked)) == PLACES  # no id twice; every place taken once

    replayed = Allocator.replay(journal_events(postgres_dsn, OPD_DAY))
    replayed.check_invariants()
    assert all(slot.occupancy <= slot.capacity for slot in replayed.slots())
    assert sorted(t.id for t in replayed.tokens()) == sorted(booked)
    expected = json.loads(json.dumps(replayed.snapshot()))

    def state(_: int) -> dict[str, Any]:
        with unix_client(four_workers) as client:
            body: dict[str, Any] = client.get("/state", headers={"connection": "close"}).json()
            return body

    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + 30
    while len(seen) < 4 and time.monotonic() < deadline:  # until every worker has answered
        with ThreadPoolExecutor(16) as pool:
            for body in pool.map(state, range(32)):
                seen[body["worker"]] = body
    assert len(seen) == 4
    for body in seen.values():
        assert body["version"] == replayed.version
        assert body["snapshot"] == expected


def test_the_in_memory_app_refuses_several_workers(tmp_path: Path) -> None:
    path = tmp_path / "opd.sock"
    env = {k: v for k, v in os.environ.items() if k not in ("OPD_WORKERS", "WEB_CONCURRENCY")}
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "http_service:demo_app",
        "--workers", "2", "--uds", str(path), "--app-dir", str(EXAMPLES),
    ]  # fmt: skip
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        returncode = server.wait(timeout=60)  # the whole server stops
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert returncode == 0  # uvicorn's supervisor shuts down on SIGTERM
    assert "2 workers were requested" in log_path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("environ", "argv", "workers"),
    [
        ({}, ["uvicorn", "--factory", "http_service:demo_app"], 1),
        ({}, ["uvicorn", "--workers", "4"], 4),
        ({}, ["uvicorn", "--workers=3"], 3),
        ({}, ["gunicorn", "-w", "2", "-k", "uvicorn.workers.UvicornWorker"], 2),
        ({"WEB_CONCURRENCY": "5"}, ["uvicorn"], 5),
        ({"OPD_WORKERS": "1", "WEB_CONCURRENCY": "5"}, ["uvicorn", "--workers", "4"], 1),
        ({"OPD_WORKERS": "3"}, ["python"], 3),
    ],
)
def test_workers_requested(environ: dict[str, str], argv: list[str], workers: int) -> None:
    assert workers_requested(environ, argv) == workers


def test_demo_app_refuses_to_start_with_more_than_one_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    late = datetime(2026, 11, 25, 23, 30)  # any hour: the demo day is the clock's whole date
    monkeypatch.setenv("OPD_WORKERS", "2")
    with pytest.raises(RuntimeError, match="2 workers were requested"):
        http_service.demo_app(lambda: late)
    monkeypatch.setenv("OPD_WORKERS", "1")
    assert http_service.demo_app(lambda: late) is not None
