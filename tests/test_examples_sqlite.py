"""The persistence recipe (docs/examples/sqlite_store.py): save, restore, carry on.

A restored allocator must be indistinguishable from the original, and with
``persist_on_change`` a crash right after any call must lose nothing: simulated by opening
the same database file in a new store, as a restarted process would.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import pytest

from conftest import Build, Clock, at, load_example
from opd_engine import (
    Allocator,
    InvalidArgumentError,
    OnFull,
    Policies,
    Priority,
    Source,
    Token,
)

POLICIES = Policies(on_full=OnFull.WAITLIST)


class Store(Protocol):
    """What the tests use of ``SQLiteStore``."""

    last_error: Exception | None

    @property
    def connection(self) -> sqlite3.Connection: ...
    def save(self, allocator: Allocator) -> None: ...
    def save_text(self, snapshot: str) -> None: ...
    def load(
        self, policies: Policies | None = None, clock: Callable[[], datetime] | None = None
    ) -> Allocator | None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Store: ...
    def __exit__(self, *exc_info: object) -> None: ...


sqlite_store = load_example("sqlite_store")
SQLiteStore: Callable[..., Store] = sqlite_store.SQLiteStore
persist_on_change: Callable[[Allocator, Store], Callable[[], None]] = sqlite_store.persist_on_change


class Stamps:
    """A ``now`` for the store that counts the writes."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> datetime:
        self.count += 1
        return datetime(2026, 11, 25, 12, 0, self.count, tzinfo=timezone.utc)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "opd.sqlite3"


@pytest.fixture(params=["file", ":memory:", "connection"])
def store(request: pytest.FixtureRequest, path: Path) -> Iterator[Store]:
    """A store on a file, on ":memory:", and on a connection the caller opened."""
    if request.param == "connection":
        with closing(sqlite3.connect(":memory:")) as connection, SQLiteStore(connection) as store:
            yield store
        return
    with SQLiteStore(path if request.param == "file" else ":memory:") as store:
        yield store


def busy_day(alloc: Allocator, clock: Clock) -> None:
    """Calls that leave tokens everywhere: queues, waitlist, consultation, ended, moved."""
    for i in range(3):
        alloc.book(f"A{i}", "D1", "D1@09", source=Source.ONLINE)
    alloc.book("W1", "D1", "D1@09", source=Source.ONLINE)  # waitlisted
    alloc.book("W2", "D1", "D1@09", source=Source.FOLLOW_UP)  # waitlisted, ahead of W1
    alloc.book("P1", "D1", "D1@10", source=Source.PAID, checked_in=True)
    alloc.book("B1", "D2", source=Source.ONLINE)
    clock.now = at(9, 0)
    alloc.check_in("D1-002")
    alloc.check_in("D1-001")
    alloc.call_next("D1")
    alloc.cancel("D1-003")  # W2 takes the place
    alloc.book("E1", "D1", priority=Priority.EMERGENCY)  # overflows D1@09
    clock.now = at(9, 20)
    alloc.no_show("D2-001")
    alloc.delay("D1", 15)


def further_calls(alloc: Allocator, clock: Clock) -> list[Token | None]:
    """What both the original and the restored allocator go on to do."""
    clock.now = at(9, 25)
    results: list[Token | None] = [
        alloc.book("N1", "D1", source=Source.ONLINE),
        alloc.book("N2", "D2", source=Source.WALK_IN),
        alloc.call_next("D1"),
        alloc.check_in("D1-004"),
    ]
    clock.now = at(10, 5)
    results += [
        alloc.call_next("D1"),
        alloc.call_next("D1"),
        alloc.cancel("D1-005"),
        alloc.book("N3", "D1", "D1@11", source=Source.PAID),
        alloc.call_next("D2"),
    ]
    alloc.resize("D1@11", 1)
    alloc.mark_unavailable("D1")
    return results


def views(alloc: Allocator) -> dict[str, Any]:
    """Everything observable about queues and waitlists."""
    return {
        "queues": {s.id: alloc.queue(s.id) for s in alloc.slots()},
        "waitlists": {d.id: alloc.waitlist(d.id) for d in alloc.doctors()},
        "positions": {
            t.id: (alloc.position(t.id), alloc.estimated_start(t.id))
            for t in alloc.tokens()
            if t.status.active and t.status.name != "IN_CONSULTATION"
        },
    }


def read_rows(path: Path) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("SELECT id, snapshot, saved_at FROM allocator_state").fetchall()


# ----------------------------------------------------------------------------- save and load


def test_an_empty_database_loads_none(store: Store) -> None:
    assert store.load() is None


def test_save_then_load_gives_the_same_snapshot(store: Store, build: Build, clock: Clock) -> None:
    alloc = build(POLICIES)
    busy_day(alloc, clock)
    store.save(alloc)
    restored = store.load(policies=POLICIES, clock=clock)
    assert isinstance(restored, Allocator)
    assert restored.snapshot() == alloc.snapshot()
    assert restored.policies is POLICIES
    assert restored.clock is clock
    restored.check_invariants()


def test_saving_again_replaces_the_one_row(path: Path, build: Build, clock: Clock) -> None:
    alloc = build()
    with SQLiteStore(path, now=Stamps()) as store:
        store.save(alloc)
        alloc.book("P1", "D1")
        store.save(alloc)
    rows = read_rows(path)
    assert len(rows) == 1
    row_id, snapshot, saved_at = rows[0]
    assert row_id == 1
    assert json.loads(snapshot) == alloc.snapshot()
    assert saved_at == "2026-11-25T12:00:02+00:00"


def test_the_table_holds_one_row_only(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.connection.execute(
            "INSERT INTO allocator_state (id, snapshot, saved_at) VALUES (2, '{}', 'now')"
        )


def test_a_restored_allocator_carries_on_as_the_original(
    path: Path, build: Build, clock: Clock
) -> None:
    original = build(POLICIES)
    busy_day(original, clock)
    with SQLiteStore(path) as store:
        store.save(original)
    saved_at = clock.now
    with SQLiteStore(path) as store:
        restored = store.load(policies=POLICIES, clock=clock)
    assert restored is not None

    expected = further_calls(original, clock)
    clock.now = saved_at
    actual = further_calls(restored, clock)

    assert actual == expected  # same ids, numbers, seqs, slots, statuses, times
    first, second = actual[:2]
    assert first is not None
    assert second is not None
    assert (first.id, first.number, first.seq) == ("D1-008", 8, 9)
    assert (second.id, second.number, second.seq) == ("D2-002", 2, 10)
    assert restored.snapshot() == original.snapshot()
    assert views(restored) == views(original)
    restored.check_invariants()


def test_the_clock_and_policies_must_be_passed_again(path: Path, build: Build) -> None:
    original = build(POLICIES)
    with SQLiteStore(path) as store:
        store.save(original)
        restored = store.load()
    assert restored is not None
    assert restored.policies == Policies()  # not POLICIES: policies are not state
    assert restored.clock == datetime.now


def test_close_leaves_a_given_connection_open() -> None:
    with closing(sqlite3.connect(":memory:")) as connection:
        SQLiteStore(connection).close()
        assert connection.execute("SELECT count(*) FROM allocator_state").fetchone() == (0,)
    owned = SQLiteStore(":memory:")
    owned.close()
    with pytest.raises(sqlite3.ProgrammingError):
        owned.connection.execute("SELECT 1")


# ----------------------------------------------------------------------------- corrupt data


@pytest.mark.parametrize(
    ("stored", "match"),
    [
        ("not json", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "must be an object"),
        ('{"format": "something-else"}', "format"),
        ('{"format": "opd-engine/snapshot", "version": 99}', "version 99"),
    ],
)
def test_a_corrupt_row_raises_invalid_argument(store: Store, stored: str, match: str) -> None:
    store.connection.execute(
        "INSERT INTO allocator_state (id, snapshot, saved_at) VALUES (1, ?, 'now')", (stored,)
    )
    with pytest.raises(InvalidArgumentError, match=match):
        store.load()


def test_an_inconsistent_snapshot_raises_invalid_argument(store: Store, alloc: Allocator) -> None:
    alloc.book("P1", "D1")
    data = alloc.snapshot()
    data["tokens"][0]["slot_id"] = "D9@09"
    store.save_text(json.dumps(data))
    with pytest.raises(InvalidArgumentError, match="slot_id"):
        store.load()


# ----------------------------------------------------------------------------- on change


def test_persist_on_change_saves_the_set_up_at_once(path: Path, alloc: Allocator) -> None:
    with SQLiteStore(path) as store:
        persist_on_change(alloc, store)
        with SQLiteStore(path) as after_a_crash:
            restored = after_a_crash.load()
    assert restored is not None
    assert [s.id for s in restored.slots()] == [s.id for s in alloc.slots()]


def test_a_crash_after_any_call_loses_nothing(path: Path, build: Build, clock: Clock) -> None:
    alloc = build(POLICIES)

    def reload() -> dict[str, Any]:
        with SQLiteStore(path) as after_a_crash:
            restored = after_a_crash.load(policies=POLICIES, clock=clock)
        assert restored is not None
        return restored.snapshot()

    calls: list[Callable[[], object]] = [
        lambda: alloc.book("A", "D1", "D1@09", source=Source.ONLINE),
        lambda: alloc.book("B", "D1", "D1@09", source=Source.ONLINE),
        lambda: alloc.book("C", "D1", "D1@09", source=Source.ONLINE),
        lambda: alloc.book("W", "D1", "D1@09", source=Source.ONLINE),  # waitlisted
        lambda: alloc.check_in("D1-001"),
        lambda: alloc.cancel("D1-002"),  # and W moves in
        lambda: clock.advance(50),  # 09:20: past the no-show grace
        lambda: alloc.call_next("D1"),
        lambda: alloc.no_show("D1-003"),
        lambda: alloc.check_in("D1-003"),  # late: re-queued
        lambda: alloc.complete("D1-001"),
        lambda: alloc.delay("D2", 10),
        lambda: alloc.resize("D2@10", 5),
        lambda: alloc.book("E", "D2", priority=Priority.EMERGENCY),
        lambda: alloc.mark_unavailable("D2"),
    ]
    with SQLiteStore(path) as store:
        persist_on_change(alloc, store)
        for call in calls:
            call()
            assert reload() == alloc.snapshot()


def test_one_write_per_call(path: Path, build: Build) -> None:
    alloc = build(POLICIES)
    stamps = Stamps()
    with SQLiteStore(path, now=stamps) as store:
        persist_on_change(alloc, store)
        for patient in ("A", "B", "C", "W"):
            alloc.book(patient, "D1", "D1@09", source=Source.ONLINE)
        assert stamps.count == 5  # the set-up, then one per booking
        events: list[object] = []
        alloc.subscribe(events.append)
        alloc.cancel("D1-001")  # two events: the cancel and W's move
        assert len(events) == 2
        assert stamps.count == 6
        assert alloc.call_next("D1") is None  # nothing changed, nothing written
        assert stamps.count == 6


def test_unsubscribing_stops_saving(path: Path, alloc: Allocator) -> None:
    with SQLiteStore(path) as store:
        stop = persist_on_change(alloc, store)
        alloc.book("A", "D1")
        stop()
        alloc.book("B", "D1")
        restored = store.load()
    assert restored is not None
    assert [t.patient_id for t in restored.tokens()] == ["A"]


def test_a_failed_write_is_recorded_and_retried(
    path: Path, alloc: Allocator, caplog: pytest.LogCaptureFixture
) -> None:
    with SQLiteStore(path) as store:
        persist_on_change(alloc, store)
        store.connection.execute("DROP TABLE allocator_state")
        with caplog.at_level(logging.ERROR, logger="opd_engine"):
            token = alloc.book("A", "D1", source=Source.ONLINE)  # succeeds all the same
        assert alloc.token(token.id) == token
        error = store.last_error
        assert isinstance(error, sqlite3.OperationalError)
        assert "subscriber" in caplog.text

        SQLiteStore(store.connection)  # recreates the table
        alloc.check_in(token.id)
        assert store.last_error is None
        restored = store.load()
    assert restored is not None
    assert restored.snapshot() == alloc.snapshot()
