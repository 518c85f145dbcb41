"""Share one opd-engine journal between processes (web workers, machines) in PostgreSQL.

A recipe, not part of the library: ``opd_engine`` imports no database code. It needs
`psycopg 3 <https://www.psycopg.org/psycopg3/>`_ (``pip install "psycopg[binary]"``, part of
opd-engine's ``examples`` extra).

The design is ``sqlite_journal.py``'s (DESIGN section 9): one row per event, written in the
same transaction as the call that made it, a checkpoint (a full ``snapshot()``) every
``checkpoint_every`` versions, and restoring is the latest checkpoint plus the events after
it. What PostgreSQL adds is many writers. Each process keeps a **replica** (an
``Allocator`` in memory) and runs each call in a transaction that:

1. takes the journal's lock, a row lock on the journal's row in ``opd_journal``
   (``SELECT version ... FOR UPDATE``), held until commit; the row holds the version the
   journal has reached;
2. catches up: ``replica.apply(events newer than replica.version)``;
3. makes the call on the replica;
4. appends the call's events, moves the row's version on, commits.

So calls from all processes are serialised in one order, the journal's; each call sees
every change committed before it (no two workers hand out the same token id, no slot is
overbooked); and ``Allocator.replay`` of the journal equals every replica once it has
caught up. Readers catch up without the lock. Schema (``day`` names the journal: one per
OPD date)::

    CREATE TABLE opd_journal     (day text PRIMARY KEY, version bigint NOT NULL)
    CREATE TABLE opd_events      (day text, version bigint, idx integer, event jsonb,
                                  PRIMARY KEY (day, version, idx))
    CREATE TABLE opd_checkpoints (day text, version bigint, snapshot jsonb,
                                  PRIMARY KEY (day, version))

Typical start-up, in every worker::

    journal = PostgresJournal("dbname=opd host=/run/postgresql", day="2026-11-25",
                              policies=POLICIES)
    journal.setup(build_the_day)   # only the first process to get here builds the day
    token = journal.run(lambda alloc: alloc.book("P1", "D1"))
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import Jsonb

from opd_engine import Allocator, Event, InvalidArgumentError, Policies, event_to_dict

__all__ = ["PostgresJournal"]

T = TypeVar("T")

_SCHEMA_LOCK = 0x6F7064  # an advisory lock: workers starting together create tables once
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS opd_journal (
        day     text PRIMARY KEY,
        version bigint NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS opd_events (
        day     text NOT NULL,
        version bigint NOT NULL,
        idx     integer NOT NULL,
        event   jsonb NOT NULL,
        PRIMARY KEY (day, version, idx)
    )""",
    """CREATE TABLE IF NOT EXISTS opd_checkpoints (
        day      text NOT NULL,
        version  bigint NOT NULL,
        snapshot jsonb NOT NULL,
        PRIMARY KEY (day, version)
    )""",
)


class PostgresJournal:
    """One allocator's journal in PostgreSQL, and this process's replica of it.

    ``conninfo`` is a libpq connection string or URL; the journal opens one connection and
    owns it. ``day`` names the journal (one per OPD date). ``policies`` and ``clock`` are
    the allocator's, the same in every process. A checkpoint is written every
    ``checkpoint_every`` versions (None: only when :meth:`checkpoint` is called).

    Opening creates the tables if missing and restores the replica. A journal object may be
    shared by the threads of a process (its calls are serialised by a lock); each process
    opens its own.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        day: str,
        policies: Policies | None = None,
        clock: Callable[[], datetime] | None = None,
        checkpoint_every: int | None = 1000,
    ) -> None:
        if checkpoint_every is not None and checkpoint_every < 1:
            raise InvalidArgumentError(
                f"checkpoint_every must be >= 1 or None, got checkpoint_every={checkpoint_every}"
            )
        self._conninfo = conninfo
        self._db = psycopg.connect(conninfo, autocommit=True)
        self.day = day
        self.policies = policies
        self.clock = clock
        self.checkpoint_every = checkpoint_every
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._replica: Allocator | None = None
        try:
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO opd_journal (day, version) VALUES (%s, 0)"
                    " ON CONFLICT (day) DO NOTHING",
                    (day,),
                )
            with self._lock, self._db.transaction():
                self._restore()
        except BaseException:  # a journal that cannot be read: refuse it, leak nothing
            self._db.close()
            raise

    # ------------------------------------------------------------------ the replica

    @property
    def allocator(self) -> Allocator:
        """This process's replica, as of its last call or read. Change it only through
        :meth:`run`; other processes may have moved on, so read through :meth:`read`."""
        with self._lock:
            return self._current()

    def _current(self) -> Allocator:
        if self._db.broken:  # the server restarted or the network failed: reconnect
            self._db = psycopg.connect(self._conninfo, autocommit=True)
            self._replica = None
        if self._replica is None:  # a failed commit left it ahead of the database
            with self._db.transaction():
                self._restore()
        assert self._replica is not None
        return self._replica

    def _restore(self) -> None:
        """Rebuild the replica from the latest checkpoint and the events after it."""
        self._replica = None
        row = self._db.execute(
            "SELECT version, snapshot FROM opd_checkpoints WHERE day = %s"
            " ORDER BY version DESC LIMIT 1",
            (self.day,),
        ).fetchone()
        snapshot: dict[str, Any] | None = None if row is None else row[1]
        after = 0 if row is None else int(row[0])
        replica = Allocator.replay(
            self._events_after(after),
            snapshot=snapshot,
            policies=self.policies,
            clock=self.clock,
        )
        replica.subscribe(self._pending.append)
        self._replica = replica

    def _events_after(self, version: int) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT event FROM opd_events WHERE day = %s AND version > %s ORDER BY version, idx",
            (self.day, version),
        ).fetchall()
        return [event for (event,) in rows]

    def _catch_up(self, replica: Allocator, *, lock: bool) -> None:
        """Take the journal's row lock (if ``lock``) and apply what other processes
        appended since this replica's version."""
        query = "SELECT version FROM opd_journal WHERE day = %s" + (" FOR UPDATE" if lock else "")
        row = self._db.execute(query, (self.day,)).fetchone()
        assert row is not None
        if row[0] > replica.version:
            replica.apply(self._events_after(replica.version))

    # ------------------------------------------------------------------ calls

    def run(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` as one durable change, serialised with every other process's
        calls; returns its result once committed.

        A call that raises (a full slot, say) changes nothing and writes nothing; its
        exception propagates. If the database refuses the write or the commit, the replica
        is rebuilt from the database before the next call and the error propagates: the
        change is not acknowledged.
        """
        with self._lock:
            replica = self._current()
            try:
                with self._db.transaction():
                    self._catch_up(replica, lock=True)
                    self._pending.clear()
                    start = replica.version
                    result = call(replica)
                    self._append(replica, start)
                    return result
            except BaseException:
                if self._pending:  # the replica changed, but the change is not committed
                    self._replica = None
                raise
            finally:
                self._pending.clear()

    def read(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` on the replica caught up with the journal, without the lock
        (each call's events are committed together, and commits follow the lock's order,
        so a reader always sees whole calls)."""
        with self._lock:
            replica = self._current()
            try:
                with self._db.transaction():
                    self._catch_up(replica, lock=False)
            finally:
                self._pending.clear()
            return call(replica)

    def setup(self, build: Callable[[Allocator], object]) -> bool:
        """Run ``build(allocator)`` (add doctors and slots) as one change if the journal is
        still empty; True if it ran. Every worker calls it at start: the first builds the
        day, the others catch up on it."""
        built: list[bool] = []

        def first_start(alloc: Allocator) -> None:
            if alloc.version == 0:
                build(alloc)
                built.append(True)

        self.run(first_start)
        return bool(built)

    def _append(self, replica: Allocator, start: int) -> None:
        if not self._pending:
            return
        with self._db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO opd_events (day, version, idx, event) VALUES (%s, %s, %s, %s)",
                [
                    (self.day, event.version, idx, Jsonb(event_to_dict(event)))
                    for idx, event in enumerate(self._pending)
                ],
            )
        self._db.execute(
            "UPDATE opd_journal SET version = %s WHERE day = %s", (replica.version, self.day)
        )
        every = self.checkpoint_every
        # Due when the call crossed a multiple of checkpoint_every: every process agrees.
        if every is not None and replica.version // every > start // every:
            self._write_checkpoint(replica)

    def _write_checkpoint(self, replica: Allocator) -> None:
        snapshot = replica.snapshot()
        self._db.execute(
            "INSERT INTO opd_checkpoints (day, version, snapshot) VALUES (%s, %s, %s)"
            " ON CONFLICT (day, version) DO NOTHING",
            (self.day, snapshot["allocator_version"], Jsonb(snapshot)),
        )

    def checkpoint(self) -> int:
        """Write a checkpoint of the journal's current state now; returns its version.
        O(n). Any process may call it (a maintenance job, when ``checkpoint_every`` is
        None)."""
        with self._lock:
            replica = self._current()
            try:
                with self._db.transaction():
                    self._catch_up(replica, lock=True)
                    self._write_checkpoint(replica)
            finally:
                self._pending.clear()
            return replica.version

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
