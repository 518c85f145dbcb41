"""Many hospitals' days in the HTTP recipe (docs/examples/http_service.py): ``Days``,
``postgres_days`` and ``hospitals_app``, serving ``/hospitals/{hospital}/days/{date}/...``.

Each hospital's date is a day of its own: its own token numbers, its own bookings, its own
idempotency keys. First in process, through FastAPI's TestClient, with the days in memory.
Then ``uvicorn --factory http_service:hospitals_app --workers 2`` on a Unix socket, the
hospitals sharded across two PostgreSQL servers by the routing table ``OPD_ROUTES``: each
server holds only its own hospitals' journals, and a server that stops takes down only its
own hospitals, which come back with their tokens when it is started again. Last, a server
that cannot be reached at start stops uvicorn at once, with one message a worker and no
password.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time as clock
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from conftest import CAPACITY, DOCTORS, EXAMPLES, HOURS, PostgresServer, load_example
from opd_engine import Allocator, Slot

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns when it finds only httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

http_service = load_example("http_service")
Days: Callable[..., Any] = http_service.Days
InMemory: Callable[[Allocator], Any] = http_service.InMemory
create_app: Callable[[Any], FastAPI] = http_service.create_app

FIRST, SECOND = date(2026, 11, 25), date(2026, 11, 26)


def make_day(day: date) -> Allocator:
    """The fixture's doctors and slots (``D1@09`` ...) on ``day``, its clock at 08:30."""
    alloc = Allocator(clock=lambda: datetime.combine(day, time(8, 30)))
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            start = datetime.combine(day, time(hour))
            slot_id = f"{doctor.id}@{hour:02d}"
            alloc.add_slot(Slot(slot_id, doctor.id, start, start + timedelta(hours=1), CAPACITY))
    return alloc


def url(hospital: str, day: date | str, path: str) -> str:
    return f"/hospitals/{hospital}/days/{day}{path}"


def book_body(patient: str, doctor: str = "D1") -> dict[str, Any]:
    return {"patient_id": patient, "doctor_id": doctor, "source": "ONLINE"}


@pytest.fixture
def opened() -> list[tuple[str, date]]:
    """The days the app opened, in order."""
    return []


@pytest.fixture
def client(opened: list[tuple[str, date]]) -> Iterator[TestClient]:
    """An app over the days of hospitals "north" and "south", in memory."""

    def open_day(hospital: str, day: date) -> Any:
        opened.append((hospital, day))
        return InMemory(make_day(day))

    with TestClient(create_app(Days(open_day, ["north", "south"], in_memory=True))) as client:
        yield client


def test_each_hospital_and_date_is_a_day_of_its_own(
    client: TestClient, opened: list[tuple[str, date]]
) -> None:
    def book(hospital: str, day: date, patient: str) -> str:
        response = client.post(url(hospital, day, "/tokens"), json=book_body(patient))
        assert response.status_code == 201
        token_id: str = response.json()["id"]
        return token_id

    assert book("north", FIRST, "N1") == "D1-001"
    assert book("north", FIRST, "N2") == "D1-002"
    assert book("south", FIRST, "S1") == "D1-001"  # numbered in its own day
    assert book("north", SECOND, "M1") == "D1-001"  # another date of north: another day
    assert opened == [("north", FIRST), ("south", FIRST), ("north", SECOND)]  # once each

    def patient(hospital: str, day: date, token_id: str) -> str | None:
        response = client.get(url(hospital, day, f"/tokens/{token_id}"))
        if response.status_code == 404:
            return None
        assert response.status_code == 200
        name: str = response.json()["patient_id"]
        return name

    assert patient("north", FIRST, "D1-001") == "N1"
    assert patient("south", FIRST, "D1-001") == "S1"
    assert patient("north", SECOND, "D1-001") == "M1"
    assert patient("south", FIRST, "D1-002") is None  # north's second booking stays in north
    assert patient("north", SECOND, "D1-002") is None  # ... on its own date
    for day in (FIRST, SECOND):  # each date's day has that date's slots
        slot = client.get(url("north", day, "/slots/D1@09")).json()
        assert slot["start"] == datetime.combine(day, time(9)).isoformat()
    assert len(opened) == 3


def test_an_unknown_hospital_is_404_and_a_malformed_date_422(
    client: TestClient, opened: list[tuple[str, date]]
) -> None:
    response = client.get(url("west", FIRST, "/doctors"))
    assert response.status_code == 404
    assert response.json()["error"] == "NotFoundError"
    assert "west" in response.json()["detail"]
    assert client.post(url("west", FIRST, "/tokens"), json=book_body("W1")).status_code == 404
    for day in ("2026-02-30", "not-a-date", "25-11-2026"):
        assert client.get(url("north", day, "/doctors")).status_code == 422
        assert client.post(url("north", day, "/tokens"), json=book_body("N1")).status_code == 422
    assert opened == []  # no day was opened for any of them


def test_idempotency_keys_belong_to_their_day(client: TestClient) -> None:
    key = {"Idempotency-Key": "retry-1"}
    first = client.post(url("north", FIRST, "/tokens"), json=book_body("N0"))
    assert first.json()["id"] == "D1-001"
    north = client.post(url("north", FIRST, "/tokens"), json=book_body("P1"), headers=key)
    assert north.status_code == 201
    assert north.json()["id"] == "D1-002"
    assert "Idempotent-Replayed" not in north.headers
    for hospital, day in (("south", FIRST), ("north", SECOND)):  # the same key, another day
        other = client.post(url(hospital, day, "/tokens"), json=book_body("P1"), headers=key)
        assert other.status_code == 201
        assert other.json()["id"] == "D1-001"  # a booking of its own, not north's replayed
        assert "Idempotent-Replayed" not in other.headers

    again = client.post(url("north", FIRST, "/tokens"), json=book_body("P1"), headers=key)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == north.json()
    reused = client.post(url("north", FIRST, "/tokens"), json=book_body("P2"), headers=key)
    assert reused.status_code == 422
    assert reused.json()["error"] == "IdempotencyKeyReused"

    def tokens(hospital: str, day: date) -> list[tuple[str, str]]:
        snapshot = client.get(url(hospital, day, "/state")).json()["snapshot"]
        return [(token["id"], token["patient_id"]) for token in snapshot["tokens"]]

    # The replay and the refusal booked nothing.
    assert tokens("north", FIRST) == [("D1-001", "N0"), ("D1-002", "P1")]
    assert tokens("south", FIRST) == [("D1-001", "P1")]
    assert tokens("north", SECOND) == [("D1-001", "P1")]


def test_days_in_memory_refuse_several_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, date]] = []

    def open_day(hospital: str, day: date) -> Any:
        opened.append((hospital, day))
        return InMemory(make_day(day))

    monkeypatch.setenv("OPD_WORKERS", "2")
    with pytest.raises(RuntimeError, match="2 workers were requested"):
        create_app(Days(open_day, ["north"], in_memory=True))
    assert create_app(Days(open_day, ["north"])) is not None  # journals shared by workers
    assert opened == []  # days are opened on first use, not when the app is made


# ----------------------------------------------------------------------------- two servers

DAY, NEXT_DAY = "2099-01-05", "2099-01-06"  # ahead of the wall clock: no slot has ended
OUTAGE_DAY = "2099-01-07"  # the outage test's date: its journals are its own
HOSPITALS = ("north", "east", "south", "west")  # "west" is served by no server
WORKERS = 2
# What the tests set themselves, or must not inherit.
SERVER_VARIABLES = (
    "OPD_WORKERS", "WEB_CONCURRENCY", "OPD_KEYS", "OPD_DAY", "OPD_DEMO_PLACES",
    "OPD_POSTGRES_DSN", "OPD_ROUTES",
)  # fmt: skip


def forget(dsn: str, days: Iterable[str]) -> None:
    """Remove the journals ``days`` from every table of the journals that has them (a test
    may run twice against one server); a journal not there is nothing to remove."""
    with psycopg.connect(dsn, autocommit=True) as db:
        tables = db.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND column_name = 'day'"
            " AND table_name LIKE 'opd!_%' ESCAPE '!'"
        ).fetchall()
        for (table,) in tables:
            delete = sql.SQL("DELETE FROM {} WHERE day = ANY(%s)").format(sql.Identifier(table))
            db.execute(delete, (list(days),))


def journals(dsn: str) -> set[str]:
    """The journals of this module's hospitals on the server ``dsn`` (``<hospital>/<date>``,
    from the journals' rows and their events)."""
    with psycopg.connect(dsn) as db:
        tables = db.execute("SELECT to_regclass('opd_journal'), to_regclass('opd_events')")
        if None in (tables.fetchone() or (None,)):  # no journal was ever opened there
            return set()
        rows = db.execute("SELECT day FROM opd_journal UNION SELECT day FROM opd_events").fetchall()
    return {day for (day,) in rows if day.split("/")[0] in HOSPITALS}


def unix_client(path: Path) -> httpx.Client:
    """A client of the server on the Unix socket ``path``; a connection per request, so
    the requests spread over the workers."""
    return httpx.Client(
        transport=httpx.HTTPTransport(uds=str(path)),
        base_url="http://opd",
        headers={"connection": "close"},
        timeout=30,
    )


def answering(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket ``path`` and answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    with unix_client(path) as client:
        return client.get("/openapi.json").status_code == 200


def pause(server: subprocess.Popen[bytes]) -> None:
    """Wait a little between two polls, returning early if the server exits."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(timeout=0.05)


def start_uvicorn(
    factory: str, environ: Mapping[str, str], workers: int, directory: Path
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """``uvicorn --factory http_service:<factory> --workers <workers>`` on a Unix socket in
    ``directory``, its output in a log there: the server, its socket and its log."""
    path, log_path = directory / "opd.sock", directory / "uvicorn.log"
    env = {k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}
    env.update(environ)
    command = [
        sys.executable, "-m", "uvicorn", "--factory", f"http_service:{factory}",
        "--workers", str(workers), "--uds", str(path), "--app-dir", str(EXAMPLES),
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    return server, path, log_path


def stop(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def hospitals_server(routes: Mapping[str, str], directory: Path) -> Iterator[Path]:
    """``hospitals_app`` over ``routes`` with :data:`WORKERS` workers, once it answers:
    its socket."""
    environ = {"OPD_ROUTES": json.dumps(dict(routes)), "OPD_DEMO_PLACES": "3"}
    server, path, log_path = start_uvicorn("hospitals_app", environ, WORKERS, directory)
    try:
        deadline = clock.monotonic() + 60
        while not answering(path):
            if server.poll() is not None or clock.monotonic() > deadline:
                log = log_path.read_text(errors="replace")
                pytest.fail(f"uvicorn did not start:\n{log}")
            pause(server)
        yield path
    finally:
        stop(server)


def day_url(hospital: str, day: str, path: str) -> str:
    return f"/hospitals/{hospital}/days/{day}{path}"


def book(client: httpx.Client, hospital: str, day: str, patient: str) -> httpx.Response:
    return client.post(day_url(hospital, day, "/tokens"), json=book_body(patient))


def patient_of(client: httpx.Client, hospital: str, day: str, token_id: str) -> str | None:
    """The patient of ``token_id`` in the day, None if the day has no such token."""
    response = client.get(day_url(hospital, day, f"/tokens/{token_id}"))
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    patient: str = response.json()["patient_id"]
    return patient


def every_worker(path: Path, hospital: str, day: str) -> tuple[dict[int, list[Any]], list[int]]:
    """``GET .../state`` of the day until every worker has answered it (bounded): each
    worker's tokens, and the status of every answer that was not a 200."""

    def state(_: int) -> tuple[int, dict[str, Any]]:
        with unix_client(path) as client:
            response = client.get(day_url(hospital, day, "/state"))
        return response.status_code, response.json() if response.status_code == 200 else {}

    tokens: dict[int, list[Any]] = {}
    failures: list[int] = []
    deadline = clock.monotonic() + 30
    while len(tokens) < WORKERS and clock.monotonic() < deadline:
        with ThreadPoolExecutor(8) as pool:
            for code, body in pool.map(state, range(16)):
                if code == 200:
                    tokens[body["worker"]] = body["snapshot"]["tokens"]
                else:
                    failures.append(code)
    assert len(tokens) == WORKERS, f"{len(tokens)} of {WORKERS} workers answered"
    return tokens, failures


@pytest.fixture(scope="module")
def sharded(
    postgres_dsns: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """``hospitals_app``: "north" and "east" on the first server, "south" on the second."""
    first, second = postgres_dsns
    days = [f"{h}/{d}" for h in HOSPITALS for d in (DAY, NEXT_DAY, "2099-02-30")]
    forget(first, days)
    forget(second, days)
    routes = {"north": first, "east": first, "south": second}
    with hospitals_server(routes, tmp_path_factory.mktemp("hospitals")) as path:
        yield path


def test_the_same_calls_in_two_hospitals_make_independent_days(sharded: Path) -> None:
    with unix_client(sharded) as client:
        for hospital in ("north", "east", "south"):
            response = book(client, hospital, DAY, f"{hospital}-1")
            assert response.status_code == 201, response.text
            assert response.json()["id"] == "D1-001"  # each day numbers its own tokens
        assert book(client, "north", DAY, "north-2").json()["id"] == "D1-002"
        assert book(client, "north", NEXT_DAY, "north-next-1").json()["id"] == "D1-001"

        assert patient_of(client, "south", DAY, "D1-001") == "south-1"
        assert patient_of(client, "east", DAY, "D1-001") == "east-1"
        assert patient_of(client, "east", DAY, "D1-002") is None  # north's, on the same server
        assert patient_of(client, "south", DAY, "D1-002") is None  # north's, on another server
        assert patient_of(client, "north", NEXT_DAY, "D1-002") is None  # north's, another date
        slot = client.get(day_url("north", NEXT_DAY, "/slots/D1@00")).json()
        assert slot["start"] == f"{NEXT_DAY}T00:00:00"  # the path's date is the day's

    # Every worker's replica of a day holds that day's tokens and no other.
    expected = {
        ("north", DAY): [("D1-001", "north-1"), ("D1-002", "north-2")],
        ("south", DAY): [("D1-001", "south-1")],
        ("north", NEXT_DAY): [("D1-001", "north-next-1")],
    }
    for (hospital, day), tokens in expected.items():
        seen, failures = every_worker(sharded, hospital, day)
        assert failures == []
        for worker_tokens in seen.values():
            assert [(t["id"], t["patient_id"]) for t in worker_tokens] == tokens


def test_each_server_holds_only_its_own_hospitals_journals(
    sharded: Path, postgres_dsns: tuple[str, str]
) -> None:
    with unix_client(sharded) as client:  # open each hospital's day
        for hospital in ("north", "east", "south"):
            assert client.get(day_url(hospital, DAY, "/doctors")).status_code == 200
    first, second = postgres_dsns
    on_first, on_second = journals(first), journals(second)
    assert {f"north/{DAY}", f"east/{DAY}"} <= on_first
    assert {day.split("/")[0] for day in on_first} <= {"north", "east"}
    assert f"south/{DAY}" in on_second
    assert {day.split("/")[0] for day in on_second} == {"south"}


def test_an_unknown_hospital_or_a_malformed_date_opens_no_journal(
    sharded: Path, postgres_dsns: tuple[str, str]
) -> None:
    with unix_client(sharded) as client:
        response = client.get(day_url("west", DAY, "/doctors"))
        assert response.status_code == 404
        assert response.json()["error"] == "NotFoundError"
        assert book(client, "west", DAY, "west-1").status_code == 404
        for day in ("2099-02-30", "not-a-date"):
            assert client.get(day_url("north", day, "/doctors")).status_code == 422
            assert book(client, "north", day, "north-x").status_code == 422
    for dsn in postgres_dsns:  # no journal was made for them
        assert not any(day.startswith("west/") for day in journals(dsn))
        assert "north/2099-02-30" not in journals(dsn)


def test_a_stopped_server_takes_down_only_its_own_hospitals(
    postgres_dsn: str, own_postgres: PostgresServer, tmp_path: Path
) -> None:
    # "south" on a server of the test's own, which it stops and starts again.
    forget(postgres_dsn, [f"north/{OUTAGE_DAY}"])
    routes = {"north": postgres_dsn, "south": own_postgres.dsn}
    with hospitals_server(routes, tmp_path) as path, unix_client(path) as client:
        assert book(client, "south", OUTAGE_DAY, "south-1").json()["id"] == "D1-001"
        assert book(client, "north", OUTAGE_DAY, "north-1").json()["id"] == "D1-001"
        every_worker(path, "south", OUTAGE_DAY)  # every worker has south's journal open

        own_postgres.stop("fast")

        def get(hospital: str) -> Callable[[int], int]:
            def call(_: int) -> int:
                with unix_client(path) as one:
                    url = day_url(hospital, OUTAGE_DAY, "/tokens/D1-001")
                    return one.get(url).status_code

            return call

        with ThreadPoolExecutor(8) as pool:
            south = list(pool.map(get("south"), range(16)))
            north = list(pool.map(get("north"), range(16)))
        assert all(500 <= code < 600 for code in south), south
        assert north == [200] * 16
        assert 500 <= book(client, "south", OUTAGE_DAY, "south-lost").status_code < 600
        assert book(client, "north", OUTAGE_DAY, "north-2").json()["id"] == "D1-002"

        own_postgres.start()

        # Each worker's journal reconnects, even one that had not yet found its connection
        # broken (its first query fails, before anything ran, and is tried again): no
        # request fails, and every answer is the day as it was.
        seen, failures = every_worker(path, "south", OUTAGE_DAY)
        assert failures == []
        for tokens in seen.values():
            assert [(t["id"], t["patient_id"]) for t in tokens] == [("D1-001", "south-1")]
        assert book(client, "south", OUTAGE_DAY, "south-2").json()["id"] == "D1-002"
        assert patient_of(client, "south", OUTAGE_DAY, "D1-001") == "south-1"
        assert patient_of(client, "north", OUTAGE_DAY, "D1-002") == "north-2"


# ----------------------------------------------------------------------------- fail fast

SECRET = "s3cret-Pa55"  # a password that must never reach the output
REFUSAL = "cannot open the journal in PostgreSQL"


def run_to_exit(
    factory: str, environ: Mapping[str, str], directory: Path, workers: int = 4
) -> tuple[int | None, str]:
    """Run ``uvicorn --factory http_service:<factory> --workers <workers>`` until it exits,
    at most 30 s, or until it has restarted more workers than it runs (a crash loop): its
    exit status (None if it had to be stopped) and its output."""
    server, _path, log_path = start_uvicorn(factory, environ, workers, directory)
    deadline = clock.monotonic() + 30
    try:
        while server.poll() is None and clock.monotonic() < deadline:
            if restarts(log_path.read_text(errors="replace")) > workers:
                break
            pause(server)
        returncode = server.poll()
    finally:
        stop(server)
    return returncode, log_path.read_text(errors="replace")


def restarts(output: str) -> int:
    """How many workers uvicorn's supervisor restarted: it logs "Child process [n] died"
    for each."""
    return output.count(" died\n")


def unreachable(directory: Path) -> str:
    """A connection string, with a password, to a socket directory where no server runs."""
    nowhere = directory / "no-server"
    nowhere.mkdir()
    return f"host={nowhere} dbname=opd user=opd password={SECRET}"


def assert_refused(returncode: int | None, output: str, workers: int = 4) -> None:
    """uvicorn stopped by itself, each worker process having said why at most once, and
    no password was shown.

    A worker that cannot start asks the supervisor to stop (SIGTERM) and exits with
    uvicorn's code for a worker that could not start, which the supervisor does not
    restart: no worker is started twice.
    """
    assert returncode is not None, f"uvicorn kept running:\n{output}"
    assert returncode >= 0  # it stopped by itself, not by a signal
    assert restarts(output) == 0, output
    assert 1 <= output.count(REFUSAL) <= workers, output
    assert SECRET not in output


def test_postgres_app_stops_at_once_without_its_server(tmp_path: Path) -> None:
    environ = {"OPD_POSTGRES_DSN": unreachable(tmp_path), "OPD_DAY": DAY}
    returncode, output = run_to_exit("postgres_app", environ, tmp_path)
    assert_refused(returncode, output)
    assert f"host={tmp_path / 'no-server'}" in output  # the message says which server


def test_postgres_app_stops_at_once_without_its_server_url(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-server"
    nowhere.mkdir()
    environ = {"OPD_POSTGRES_DSN": f"postgresql://opd:{SECRET}@/opd?host={nowhere}"}
    returncode, output = run_to_exit("postgres_app", environ, tmp_path)
    assert_refused(returncode, output)


def test_hospitals_app_stops_at_once_when_one_route_is_unreachable(
    postgres_dsn: str, tmp_path: Path
) -> None:
    routes = {"north": postgres_dsn, "south": unreachable(tmp_path)}
    returncode, output = run_to_exit("hospitals_app", {"OPD_ROUTES": json.dumps(routes)}, tmp_path)
    assert_refused(returncode, output)
    assert f"host={tmp_path / 'no-server'}" in output
    assert "OPD_ROUTES['south']=" in output  # the setting at fault, by its hospital


@pytest.mark.parametrize(
    ("factory", "setting", "value"),
    [("hospitals_app", "OPD_ROUTES", "{not json"), ("hospitals_app", "OPD_ROUTES", '["north"]'),
     ("hospitals_app", "OPD_DEMO_PLACES", "many"), ("hospitals_app", "OPD_KEYS", "desk"),
     ("postgres_app", "OPD_DAY", "25/11/2026")],
)  # fmt: skip
def test_a_setting_that_cannot_be_read_stops_the_server_at_once(
    postgres_dsn: str, tmp_path: Path, factory: str, setting: str, value: str
) -> None:
    environ = {
        "OPD_ROUTES": json.dumps({"north": postgres_dsn}),
        "OPD_POSTGRES_DSN": postgres_dsn,
        setting: value,
    }
    returncode, output = run_to_exit(factory, environ, tmp_path, workers=2)
    assert returncode is not None, output
    assert restarts(output) == 0, output
    assert 1 <= output.count(f"{setting} cannot be read") <= 2, output


@pytest.mark.parametrize("mistake", ["unknown option", "bad percent-encoding"])
def test_postgres_app_stops_at_once_with_a_malformed_connection_string(
    mistake: str, tmp_path: Path
) -> None:
    nowhere = tmp_path / "no-server"
    nowhere.mkdir()
    dsn = {  # libpq's complaint about the second quotes the password
        "unknown option": f"host={nowhere} dbname=opd password={SECRET} colour=blue",
        "bad percent-encoding": f"postgresql://opd:{SECRET}%zz@/opd?host={nowhere}",
    }[mistake]
    environ = {"OPD_POSTGRES_DSN": dsn}
    returncode, output = run_to_exit("postgres_app", environ, tmp_path, workers=2)
    assert_refused(returncode, output, workers=2)
