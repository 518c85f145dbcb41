"""Shared fixtures: an injected clock and a small OPD day.

The day: doctors D1 and D2 in General Medicine, D3 in Cardiology; each works three
consecutive one-hour slots of capacity 3 (``D1@09``, ``D1@10``, ``D1@11``, ...) on
25 November 2026. The clock starts at 08:30, before the first slot.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import NoReturn, Protocol

import pytest

from opd_engine import Allocator, Doctor, Event, MoveReason, Policies, Slot, Token, TokenMoved

DAY = datetime(2026, 11, 25)
START = DAY.replace(hour=8, minute=30)
HOURS = (9, 10, 11)
CAPACITY = 3
DOCTORS = (
    Doctor("D1", "Dr. Rao", department="General Medicine"),
    Doctor("D2", "Dr. Iyer", department="General Medicine"),
    Doctor("D3", "Dr. Sen", department="Cardiology"),
)


EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
# The recipes import each other as siblings (``from http_models import ...``), as they do
# when run from docs/examples.
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


def load_example(name: str) -> ModuleType:
    """Import the recipe ``docs/examples/<name>.py`` by path."""
    spec = importlib.util.spec_from_file_location(f"opd_examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def at(hour: int, minute: int = 0) -> datetime:
    """A time on the fixture's day."""
    return DAY.replace(hour=hour, minute=minute)


def ids(tokens: Iterable[Token]) -> list[str]:
    """The ids of ``tokens``, in order."""
    return [token.id for token in tokens]


def kinds(events: Iterable[Event]) -> list[str]:
    """The class names of ``events``, in order."""
    return [type(event).__name__ for event in events]


def moves(events: Iterable[Event]) -> list[tuple[str, str | None, str | None, MoveReason]]:
    """``(token_id, from_slot_id, to_slot_id, reason)`` of every :class:`TokenMoved`."""
    return [
        (e.token_id, e.from_slot_id, e.to_slot_id, e.reason)
        for e in events
        if isinstance(e, TokenMoved)
    ]


class Clock:
    """A clock a test sets by hand; pass it as ``Allocator(clock=...)``."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> datetime:
        """Move the clock forward and return the new time."""
        self.now += timedelta(minutes=minutes)
        return self.now


class Build(Protocol):
    """Builds the fixture's day under the given policies."""

    def __call__(self, policies: Policies | None = None) -> Allocator: ...


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def build(clock: Clock) -> Build:
    def make(policies: Policies | None = None) -> Allocator:
        alloc = Allocator(policies=policies, clock=clock)
        for doctor in DOCTORS:
            alloc.add_doctor(doctor)
            for hour in HOURS:
                alloc.add_slot(
                    Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
                )
        return alloc

    return make


@pytest.fixture
def alloc(build: Build) -> Allocator:
    return build()


# ----------------------------------------------------------------------------- PostgreSQL

POSTGRES_DSN_VARIABLE = "OPD_TEST_POSTGRES_DSN"
SECOND_POSTGRES_DSN_VARIABLE = "OPD_TEST_POSTGRES_DSN_2"


def no_postgres(message: str) -> NoReturn:
    """Skip the test for want of a PostgreSQL server; fail instead when
    ``$OPD_REQUIRE_POSTGRES`` is set (CI)."""
    if os.environ.get("OPD_REQUIRE_POSTGRES"):
        pytest.fail(message)
    pytest.skip(message)


def _postgres_bindir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: ``pg_config --bindir``, else the newest
    Debian layout, else the PATH."""
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if (bindir / "initdb").exists():
            return bindir
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (bindir / "initdb").exists():
            return bindir
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(initdb).parent


class PostgresServer:
    """A throwaway PostgreSQL server: its data and its Unix socket in the directory
    ``base``, no TCP port, run as the ``postgres`` user when the tests run as root (initdb
    refuses root). A test that owns one may stop and start it."""

    def __init__(self, bindir: Path, base: Path) -> None:
        self.bindir = bindir
        self.base = base
        self.dsn = f"host={base} port=5432 dbname=postgres user=postgres"
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *command: str, check: bool = True) -> None:
        subprocess.run(
            [*self._as_user, *command], check=check, capture_output=True, text=True, cwd=self.base
        )

    def init(self) -> None:
        """Create the database cluster."""
        if self._as_user:
            shutil.chown(self.base, "postgres")
        initdb = str(self.bindir / "initdb")
        self._run(initdb, "-D", str(self.base / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-k {self.base} -c listen_addresses='' -c fsync=off"
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-o", options,
                  "-l", str(self.base / "log"), "-w", "start")  # fmt: skip

    def stop(self, mode: str = "fast", *, check: bool = True) -> None:
        """Stop the server (``pg_ctl stop -m mode``) and wait until it has stopped."""
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.base / "data"), "-m", mode, "-w", "stop", check=check)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A :class:`PostgresServer` started in a temporary directory, stopped and removed on
    exit. Without PostgreSQL installed the test skips (or fails: :func:`no_postgres`)."""
    bindir = _postgres_bindir()
    if bindir is None:
        no_postgres(f"no PostgreSQL server: set {POSTGRES_DSN_VARIABLE} or install PostgreSQL")
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="opd-pg-")))
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop("immediate", check=False)
        shutil.rmtree(server.base, ignore_errors=True)


def postgres_server_id(dsn: str) -> int:
    """The server's system identifier, chosen at random by ``initdb``: two connection
    strings reach the same server exactly when their identifiers are equal."""
    import psycopg

    with psycopg.connect(dsn) as db:
        row = db.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A connection string to an empty PostgreSQL database.

    ``$OPD_TEST_POSTGRES_DSN`` if set (``.ci/run`` starts a server and sets it); else a
    server this fixture starts (:func:`postgres_server`) and stops at the end of the
    session. Without either the tests skip, unless ``$OPD_REQUIRE_POSTGRES`` is set (CI):
    then they fail.
    """
    dsn = os.environ.get(POSTGRES_DSN_VARIABLE)
    if dsn:
        yield dsn
        return
    with postgres_server() as server:
        yield server.dsn


@pytest.fixture(scope="session")
def postgres_dsns(postgres_dsn: str) -> Iterator[tuple[str, str]]:
    """Connection strings to two different PostgreSQL servers: :func:`postgres_dsn`'s, and
    ``$OPD_TEST_POSTGRES_DSN_2`` if set (``.ci/run`` starts a second server), else a server
    this fixture starts. Skips or fails as :func:`postgres_dsn` does."""
    second = os.environ.get(SECOND_POSTGRES_DSN_VARIABLE)
    if second:
        if postgres_server_id(second) == postgres_server_id(postgres_dsn):
            pytest.fail(
                f"{POSTGRES_DSN_VARIABLE} and {SECOND_POSTGRES_DSN_VARIABLE} reach the same"
                " server; the tests need two"
            )
        yield postgres_dsn, second
        return
    with postgres_server() as server:
        yield postgres_dsn, server.dsn


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which it may stop and start; stopped and
    removed after the test, whatever ``$OPD_TEST_POSTGRES_DSN`` says."""
    with postgres_server() as server:
        yield server
