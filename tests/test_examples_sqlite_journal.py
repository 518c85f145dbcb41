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
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
Reply = Callable[[Allocator], tuple[int, str]]
POLICIES = Policies(on_full=OnFull.WAITLIST)
DAY = "2026-11-25"
CHILD = Path(__file__).resolve().parent / "journal_child.py"


class Journal(Protocol):
    """What the tests use of ``SQLiteJournal``."""

    checkpoint_every: int | None

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


def stored_requests(path: Path) -> list[tuple[Any, ...]]:
    return rows(
        path,
        "SELECT day, key, request, status, body, version, actor FROM opd_requests"
        " ORDER BY day, key",
    )


def test_run_once_answers_a_key_once(path: Path, open_journal: Callable[..., Journal]) -> None:
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
    snapshot, events = journal.allocator.snapshot(), rows(path, "SELECT * FROM opd_events")
    again = Booker("P1")
    assert journal.run_once("K1", "book P1", again) == ("book P1", 201, "D1-001", True)
    assert again.calls == 0  # replayed: the call was not made
    assert journal.allocator.snapshot() == snapshot
    assert journal.allocator.version == SET_UP + 1
    assert rows(path, "SELECT * FROM opd_events") == events
    assert stored_requests(path) == [
        (DAY, "K1", "book P1", 201, "D1-001", SET_UP + 1, "desk:front")
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


def test_an_error_reply_is_stored_and_replayed(path: Path, clock: Clock) -> None:
    with closing(SQLiteJournal(path, day=DAY, clock=clock)) as journal:  # OnFull.REJECT
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
    assert stored_requests(path) == [(DAY, "K", "book X", 409, "SlotFullError", full, None)]


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


def test_keys_outlive_a_restart_and_are_shared_by_another_process(
    open_journal: Callable[..., Journal],
) -> None:
    first, other = open_journal(), open_journal()  # two processes' journals
    first.setup(make_day)
    first.run_once("K", "book P1", Booker("P1"))
    first.close()
    restarted = open_journal()
    for journal in (restarted, other):  # other's replica is behind: it catches up first
        call = Booker("P1")
        assert journal.run_once("K", "book P1", call) == ("book P1", 201, "D1-001", True)
        assert call.calls == 0
        assert journal.allocator.version == SET_UP + 1


def test_keys_are_per_day(path: Path, open_journal: Callable[..., Journal]) -> None:
    for day in ("2026-11-25", "2026-11-26"):
        journal = open_journal(day=day)
        journal.setup(make_day)
        call = Booker("P1")
        assert journal.run_once("K", "book P1", call) == ("book P1", 201, "D1-001", False)
        assert call.calls == 1
    assert [key for _, key, *_ in stored_requests(path)] == ["K", "K"]


def test_a_call_that_raises_stores_nothing(
    path: Path, open_journal: Callable[..., Journal]
) -> None:
    journal = open_journal()
    journal.setup(make_day)

    def book_then_fail(alloc: Allocator) -> tuple[int, str]:
        alloc.book("P1", "D1")
        raise RuntimeError("the reply could not be made")

    with pytest.raises(RuntimeError, match="reply"):
        journal.run_once("K", "book P1", book_then_fail, actor="desk:front")
    assert stored_requests(path) == []
    assert rows(path, "SELECT count(*) FROM opd_events") == [(SET_UP,)]
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
    journal.run_once("K1", "book P3", Booker("P3"), actor="kiosk:lobby")  # replayed
    clock.now = at(9)
    journal.run(lambda alloc: alloc.check_in("D1-001"), actor="desk:nurse")  # SET_UP + 4
    trail = [(SET_UP + 1, "desk:front"), (SET_UP + 3, "kiosk:lobby"), (SET_UP + 4, "desk:nurse")]
    assert journal.audit() == trail
    assert open_journal().audit() == trail  # another process reads the same trail


def test_processes_racing_with_one_key_make_one_change(
    path: Path, open_journal: Callable[..., Journal]
) -> None:
    """Journals on their own connections, as processes would be: the key is looked up under
    the write lock, so whichever comes second replays the first's reply."""
    racers = [open_journal() for _ in range(6)]
    racers[0].setup(make_day)
    calls = [Booker("P1") for _ in racers]
    start = threading.Barrier(len(racers))

    def race(i: int) -> tuple[str, int, str, bool]:
        start.wait()
        return racers[i].run_once("K", "book P1", calls[i])

    with ThreadPoolExecutor(len(racers)) as pool:
        replies = list(pool.map(race, range(len(racers))))
    assert sum(call.calls for call in calls) == 1
    assert sorted(replies, key=lambda reply: reply[3]) == [
        ("book P1", 201, "D1-001", False),
        *[("book P1", 201, "D1-001", True)] * (len(racers) - 1),
    ]
    booked = rows(path, "SELECT count(*) FROM opd_events WHERE event LIKE '%TokenBooked%'")
    assert booked == [(1,)]


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
