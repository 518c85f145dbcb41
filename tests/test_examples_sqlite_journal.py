"""The SQLite journal recipe (docs/examples/sqlite_journal.py): one row per event in the
call's transaction, checkpoints, restore = checkpoint + events, several processes sharing the
file, and no acknowledged change lost when the process is killed at any moment.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from conftest import CAPACITY, DOCTORS, HOURS, Clock, at, load_example
from opd_engine import (
    Allocator,
    InvalidArgumentError,
    OnFull,
    Policies,
    Priority,
    Slot,
    SlotFullError,
    Source,
    Token,
    TokenStatus,
    event_from_dict,
)

T = TypeVar("T")
Booking = Callable[[Allocator], Token]
POLICIES = Policies(on_full=OnFull.WAITLIST)
DAY = "2026-11-25"
CHILD = Path(__file__).resolve().parent / "journal_child.py"


class Journal(Protocol):
    """What the tests use of ``SQLiteJournal``."""

    checkpoint_every: int | None

    @property
    def allocator(self) -> Allocator: ...
    def run(self, call: Callable[[Allocator], T]) -> T: ...
    def read(self, call: Callable[[Allocator], T]) -> T: ...
    def setup(self, build: Callable[[Allocator], object]) -> bool: ...
    def checkpoint(self) -> int: ...
    def close(self) -> None: ...


sqlite_journal = load_example("sqlite_journal")
SQLiteJournal: Callable[..., Journal] = sqlite_journal.SQLiteJournal


def book(patient: str, doctor: str, slot_id: str | None = None, **options: Any) -> Booking:
    """A call that books ``patient``, for ``journal.run``."""
    return lambda alloc: alloc.book(patient, doctor, slot_id, **options)


def make_day(alloc: Allocator) -> None:
    """conftest's day: D1, D2 (General Medicine), D3 (Cardiology), 09-12, capacity 3."""
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            slot = Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
            alloc.add_slot(slot)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "opd.sqlite3"


@pytest.fixture
def open_journal(path: Path, clock: Clock) -> Iterator[Callable[..., Journal]]:
    """Opens journals on ``path`` (as restarted processes would) and closes them after."""
    opened: list[Journal] = []

    def make(**options: Any) -> Journal:
        options.setdefault("day", DAY)
        journal = SQLiteJournal(path, policies=POLICIES, clock=clock, **options)
        opened.append(journal)
        return journal

    yield make
    for journal in opened:
        journal.close()


def rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(query).fetchall()


def a_busy_morning(journal: Journal, clock: Clock) -> None:
    """Bookings, a waitlist, arrivals, a call, a cancel that refills, an emergency."""
    for i in range(4):
        journal.run(book(f"A{i}", "D1", "D1@09", source=Source.ONLINE))
    journal.run(lambda alloc: alloc.book("P1", "D2", source=Source.PAID, checked_in=True))
    clock.now = at(9, 0)
    journal.run(lambda alloc: alloc.check_in("D1-001"))
    journal.run(lambda alloc: alloc.call_next("D1"))
    journal.run(lambda alloc: alloc.cancel("D1-002"))  # A3 moves in from the waitlist
    journal.run(lambda alloc: alloc.book("E1", "D1", priority=Priority.EMERGENCY))
    journal.run(lambda alloc: alloc.delay("D2", 10))


# ----------------------------------------------------------------------------- one process


def test_one_row_per_event_written_with_the_call(
    path: Path, open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal()
    assert journal.setup(make_day) is True
    events: list[Any] = []
    journal.allocator.subscribe(events.append)
    a_busy_morning(journal, clock)
    stored = rows(path, "SELECT version, idx, event FROM opd_events ORDER BY version, idx")
    assert len(stored) == 3 + 9 + len(events)  # the set-up, then one row per event
    tail = [event_from_dict(json.loads(text)) for _, _, text in stored[12:]]
    assert tail == events
    assert [(v, i) for v, i, _ in stored[12:]] == [(e.version, i) for e, i in _indexed(events)]
    assert rows(path, "SELECT day, version FROM opd_journal") == [(DAY, journal.allocator.version)]


def _indexed(events: list[Any]) -> list[tuple[Any, int]]:
    """Each event with its index among the events of its call."""
    result, previous, index = [], None, 0
    for event in events:
        index = index + 1 if event.version == previous else 0
        previous = event.version
        result.append((event, index))
    return result


def test_a_restart_restores_the_same_state_and_carries_on(
    open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal(checkpoint_every=4)
    journal.setup(make_day)
    a_busy_morning(journal, clock)
    restarted = open_journal(checkpoint_every=4)
    assert restarted.allocator.snapshot() == journal.allocator.snapshot()
    assert restarted.setup(make_day) is False  # the day is built once
    restarted.allocator.check_invariants()
    mine = journal.run(lambda alloc: alloc.book("N1", "D1", source=Source.ONLINE))
    again = open_journal()
    theirs = again.run(lambda alloc: alloc.book("N2", "D1", source=Source.ONLINE))
    assert (mine.id, theirs.id) == ("D1-006", "D1-007")  # the second caught up first


def test_checkpoints_every_n_versions_and_restore_from_the_latest(
    path: Path, open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal(checkpoint_every=4)
    journal.setup(make_day)  # versions 1 to 12 in one call: crosses 4, 8 and 12
    a_busy_morning(journal, clock)  # versions 13 to 22
    assert rows(path, "SELECT version FROM opd_checkpoints ORDER BY version") == [
        (12,),
        (16,),
        (20,),
    ]
    # restoring reads the checkpoint and only the events after it
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DELETE FROM opd_events WHERE version <= 20")
    assert open_journal().allocator.snapshot() == journal.allocator.snapshot()
    assert journal.checkpoint() == 22
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DELETE FROM opd_events")
    assert open_journal().allocator.snapshot() == journal.allocator.snapshot()


def test_without_automatic_checkpoints_the_events_alone_restore(
    path: Path, open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal(checkpoint_every=None)
    journal.setup(make_day)
    a_busy_morning(journal, clock)
    assert rows(path, "SELECT count(*) FROM opd_checkpoints") == [(0,)]
    assert open_journal().allocator.snapshot() == journal.allocator.snapshot()


def test_a_refused_call_writes_nothing(
    path: Path, open_journal: Callable[..., Journal], clock: Clock
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    for i in range(3):
        journal.run(book(f"A{i}", "D3", "D3@09"))
    before = rows(path, "SELECT * FROM opd_events")
    strict = SQLiteJournal(path, day=DAY, clock=clock)  # OnFull.REJECT
    with pytest.raises(SlotFullError):
        strict.run(lambda alloc: alloc.book("A9", "D3", "D3@09"))
    strict.close()
    assert rows(path, "SELECT * FROM opd_events") == before


def test_a_failed_write_is_not_acknowledged_and_the_replica_is_rebuilt(
    path: Path, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)
    journal.run(lambda alloc: alloc.book("A", "D1"))
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON opd_events"
            " BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        journal.run(lambda alloc: alloc.book("B", "D1"))
    assert [t.patient_id for t in journal.allocator.tokens()] == ["A"]  # B was not kept
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DROP TRIGGER refuse")
    assert journal.run(lambda alloc: alloc.book("B", "D1")).id == "D1-002"


def test_a_corrupt_journal_is_refused(path: Path, open_journal: Callable[..., Journal]) -> None:
    journal = open_journal()
    journal.setup(make_day)
    journal.run(lambda alloc: alloc.book("A", "D1"))
    journal.run(lambda alloc: alloc.book("B", "D1"))
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute("DELETE FROM opd_events WHERE version = 10")
    with pytest.raises(InvalidArgumentError, match="gap"):
        open_journal()


def test_journals_of_two_days_share_a_database(open_journal: Callable[..., Journal]) -> None:
    monday, tuesday = open_journal(day="2026-11-25"), open_journal(day="2026-11-26")
    monday.setup(make_day)
    monday.run(lambda alloc: alloc.book("A", "D1"))
    assert tuesday.allocator.version == 0
    assert open_journal(day="2026-11-25").allocator.snapshot() == monday.allocator.snapshot()


def test_checkpoint_every_is_checked(open_journal: Callable[..., Journal]) -> None:
    with pytest.raises(InvalidArgumentError, match="checkpoint_every"):
        open_journal(checkpoint_every=0)


# ----------------------------------------------------------------------------- processes


def test_two_writers_on_one_file_stay_in_step(open_journal: Callable[..., Journal]) -> None:
    """Each call catches up first, so two processes' replicas never hand out one id twice."""
    first, second = open_journal(), open_journal()
    first.setup(make_day)
    assert second.setup(make_day) is False
    rng = random.Random(5)
    issued = []
    for i in range(12):
        writer = rng.choice((first, second))
        issued.append(writer.run(book(f"P{i}", "D1")).id)
    assert len(set(issued)) == 12
    assert first.read(lambda alloc: alloc.snapshot()) == second.read(lambda alloc: alloc.snapshot())


def _run_child(database: Path, prefix: str, count: int, kill_after: int) -> list[str]:
    """Start the child, SIGKILL it after ``kill_after`` acknowledgements (or let it end),
    and return every line it acknowledged."""
    lines = []
    with subprocess.Popen(
        [sys.executable, str(CHILD), str(database), prefix, str(count)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as child:
        assert child.stdout is not None
        try:
            for line in child.stdout:
                if line.strip() != "ready":
                    lines.append(line.split())
                if len(lines) >= kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
            # what it printed before it died was acknowledged too
            lines += [line.split() for line in child.stdout.read().splitlines()]
        finally:
            child.kill()
            child.wait(timeout=30)
    complete = [line for line in lines if line and line[0] in "BC" and len(line) >= 2]
    return [" ".join(line) for line in complete if line[0] == "C" or len(line) == 3]


def test_sigkill_at_random_points_loses_no_acknowledged_change(tmp_path: Path) -> None:
    database = tmp_path / "opd.sqlite3"
    rng = random.Random(20261125)
    acknowledged: list[str] = []
    for round_ in range(6):
        kill_after = rng.randint(0, 25)
        acknowledged += _run_child(database, f"R{round_}", 40, kill_after)
    acknowledged += _run_child(database, "LAST", 3, 10**6)  # runs to the end

    journal = SQLiteJournal(database, day="2026-11-25", policies=POLICIES, clock=lambda: at(8))
    alloc: Allocator = journal.allocator
    alloc.check_invariants()
    assert len(acknowledged) > 20
    for line in acknowledged:
        kind, token_id, *patient = line.split()
        token = alloc.token(token_id)
        if kind == "B":
            assert token.patient_id == patient[0]
        else:
            assert token.status is TokenStatus.CANCELLED
    # the journal alone, from its first event, rebuilds the same day as its checkpoints do
    query = "SELECT event FROM opd_events ORDER BY version, idx"
    events = [json.loads(text) for (text,) in rows(database, query)]
    assert Allocator.replay(events, policies=POLICIES).snapshot() == alloc.snapshot()
    journal.close()
