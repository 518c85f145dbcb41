"""Shared fixtures: an injected clock and a small OPD day.

The day: doctors D1 and D2 in General Medicine, D3 in Cardiology; each works three
consecutive one-hour slots of capacity 3 (``D1@09``, ``D1@10``, ``D1@11``, ...) on
25 November 2026. The clock starts at 08:30, before the first slot.
"""

from __future__ import annotations

import functools
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
from typing import Protocol

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


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A connection string to an empty PostgreSQL database.

    ``$OPD_TEST_POSTGRES_DSN`` if set (``.ci/run`` starts a server and sets it); else a
    server this fixture starts with ``initdb`` and ``pg_ctl`` in a temporary directory,
    listening on a Unix socket only (as the ``postgres`` user when run as root), and stops
    at the end of the session. Without either the tests skip, unless
    ``$OPD_REQUIRE_POSTGRES`` is set (CI): then they fail.
    """
    dsn = os.environ.get(POSTGRES_DSN_VARIABLE)
    if dsn:
        yield dsn
        return
    bindir = _postgres_bindir()
    if bindir is None:
        message = f"no PostgreSQL server: set {POSTGRES_DSN_VARIABLE} or install PostgreSQL"
        if os.environ.get("OPD_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="opd-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, log = base / "data", base / "log"
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True, cwd=base)
    run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "--no-sync"])  # fmt: skip
    options = f"-k {base} -c listen_addresses='' -c fsync=off"
    run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
         "start"])  # fmt: skip
    try:
        yield f"host={base} port=5432 dbname=postgres user=postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            check=False,
            cwd=base,
        )
        shutil.rmtree(base, ignore_errors=True)
