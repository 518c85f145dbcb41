"""Keep an opd-engine ``Allocator`` durable in SQLite as a journal of its events.

A recipe, not part of the library: ``opd_engine`` does no I/O, so this is where the I/O
lives. It needs only the standard library's :mod:`sqlite3` and :mod:`json`.

Every change the allocator makes is reported by events that say what the state became
(DESIGN section 9), so the database stores **one row per event**, written in the same
transaction as the call that made it, and now and then a **checkpoint** (a full
``snapshot()``). Persisting one change costs the same at a thousand tokens as at a hundred
thousand; restoring is the latest checkpoint plus the events after it, through
``Allocator.replay(events, snapshot=checkpoint)``::

    CREATE TABLE opd_journal     (day TEXT PRIMARY KEY, version INTEGER NOT NULL)
    CREATE TABLE opd_events      (day TEXT, version INTEGER, idx INTEGER, event TEXT,
                                  PRIMARY KEY (day, version, idx))
    CREATE TABLE opd_checkpoints (day TEXT, version INTEGER, snapshot TEXT,
                                  PRIMARY KEY (day, version))
    CREATE TABLE opd_audit       (day TEXT, version INTEGER, actor TEXT,
                                  PRIMARY KEY (day, version))
    CREATE TABLE opd_requests    (day TEXT, key TEXT, request TEXT, status INTEGER,
                                  body TEXT, version INTEGER, actor TEXT,
                                  PRIMARY KEY (day, key))

``day`` names the journal: an ``Allocator`` is one OPD day, so a host that books days ahead
keeps one journal per date in the same database (``day="2026-11-25"``). ``opd_journal``
holds the version the journal has reached; ``opd_audit`` who made each change (the
``actor`` the caller names: a role and a key name, say) at the version it reached;
``opd_requests`` each keyed request's key, request (the caller's fingerprint of it), reply
and the version after it.

Every change goes through :meth:`SQLiteJournal.run`, which, in one transaction that holds
SQLite's write lock (``BEGIN IMMEDIATE``):

1. catches the in-memory replica up on events another process appended (none when this
   process is the only writer: one indexed read);
2. makes the call;
3. appends the call's events (collected by a subscriber), an audit row when the call names
   its ``actor``, and a checkpoint every ``checkpoint_every`` versions;
4. commits, and only then returns the call's result.

So a call that returned is on disk (WAL, ``synchronous=FULL``), a crash loses at most the
call in flight, and several processes on one machine may share the file.

:meth:`SQLiteJournal.run_once` answers a keyed request (an HTTP ``Idempotency-Key``) once
for the whole day: in the same transaction, under the write lock, it looks the key up; a
stored key returns the stored reply without making the call, a new one is stored with the
call's events and reply. So two processes racing with one key make one change, and the
second replays the first's reply; a key is kept across restarts, as long as the day's
journal. Typical start-up::

    journal = SQLiteJournal("opd.sqlite3", day="2026-11-25", policies=POLICIES)
    journal.setup(build_the_day)   # adds doctors and slots, on the first start only
    token = journal.run(lambda alloc: alloc.book("P1", "D1"), actor="desk:front-1")
    queue = journal.read(lambda alloc: alloc.queue("D1@09"))
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from opd_engine import Allocator, Event, InvalidArgumentError, Policies, event_to_dict

__all__ = ["SQLiteJournal"]

T = TypeVar("T")
Stored = tuple[str, int, str]  # a keyed request's request, status and body

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS opd_journal (
        day     TEXT PRIMARY KEY,
        version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS opd_events (
        day     TEXT NOT NULL,
        version INTEGER NOT NULL,
        idx     INTEGER NOT NULL,
        event   TEXT NOT NULL,
        PRIMARY KEY (day, version, idx)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS opd_checkpoints (
        day      TEXT NOT NULL,
        version  INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        PRIMARY KEY (day, version)
    )""",
    """CREATE TABLE IF NOT EXISTS opd_audit (
        day     TEXT NOT NULL,
        version INTEGER NOT NULL,
        actor   TEXT NOT NULL,
        PRIMARY KEY (day, version)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS opd_requests (
        day     TEXT NOT NULL,
        key     TEXT NOT NULL,
        request TEXT NOT NULL,
        status  INTEGER NOT NULL,
        body    TEXT NOT NULL,
        version INTEGER NOT NULL,
        actor   TEXT,
        PRIMARY KEY (day, key)
    )""",
)
# The journal's version and the events after the replica's up to it, in order: one
# statement, so one snapshot (whole calls: each call's events are committed together).
_NEWER = """SELECT j.version, e.event FROM opd_journal j
    LEFT JOIN opd_events e ON e.day = j.day AND e.version > ? AND e.version <= j.version
    WHERE j.day = ? ORDER BY e.version, e.idx"""


class SQLiteJournal:
    """One allocator's journal in a SQLite database, and its in-memory replica.

    ``database`` is a path (or ``":memory:"``), opened and owned by the journal. ``day``
    names the journal (one per OPD date). ``policies`` and ``clock`` are the allocator's:
    they are code, not state, so pass the same ones on every start. A checkpoint is written
    every ``checkpoint_every`` versions (None: only when :meth:`checkpoint` is called).
    ``synchronous`` is SQLite's setting: ``"FULL"`` (the default) syncs every commit to
    disk, so an acknowledged change survives a power cut; ``"NORMAL"`` survives a crash of
    the process but may lose the last commits on a power cut; ``"OFF"`` is for benchmarks.

    Opening restores the replica from the database (the latest checkpoint and the events
    after it). A journal object may be shared by the threads of a process: its calls are
    serialised by a lock, as the allocator's are.
    """

    def __init__(
        self,
        database: str | os.PathLike[str],
        *,
        day: str,
        policies: Policies | None = None,
        clock: Callable[[], datetime] | None = None,
        checkpoint_every: int | None = 1000,
        synchronous: str = "FULL",
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise InvalidArgumentError(
                f"synchronous must be FULL, NORMAL or OFF, got synchronous={synchronous!r}"
            )
        if checkpoint_every is not None and checkpoint_every < 1:
            raise InvalidArgumentError(
                f"checkpoint_every must be >= 1 or None, got checkpoint_every={checkpoint_every}"
            )
        # Autocommit mode: the journal issues BEGIN IMMEDIATE / COMMIT itself.
        self._db = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        self.day = day
        self.policies = policies
        self.clock = clock
        self.checkpoint_every = checkpoint_every
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._replica: Allocator | None = None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA busy_timeout=30000")  # wait for other processes' calls
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute(
                "INSERT INTO opd_journal (day, version) VALUES (?, 0) ON CONFLICT (day) DO NOTHING",
                (day,),
            )
            with self._lock:
                self._restore()
        except BaseException:  # a journal that cannot be read: refuse it, leak nothing
            self._db.close()
            raise

    # ------------------------------------------------------------------ the replica

    @property
    def allocator(self) -> Allocator:
        """The in-memory replica, as of the last call or read of this process.

        Change it only through :meth:`run` (a change made directly would not be journaled);
        read it directly only when this process is the journal's only writer, else through
        :meth:`read`.
        """
        with self._lock:
            return self._current()

    def _current(self) -> Allocator:
        if self._replica is None:  # a failed write left it ahead of the database
            self._restore()
        assert self._replica is not None
        return self._replica

    def _restore(self) -> None:
        """Rebuild the replica: the latest checkpoint, then the events after it. O(n log n)
        in the checkpoint's tokens plus O(log n) per event."""
        self._replica = None
        row = self._db.execute(
            "SELECT version, snapshot FROM opd_checkpoints WHERE day = ?"
            " ORDER BY version DESC LIMIT 1",
            (self.day,),
        ).fetchone()
        snapshot = None if row is None else json.loads(row[1])
        after = 0 if row is None else int(row[0])
        replica = Allocator.replay(
            self._newer(after), snapshot=snapshot, policies=self.policies, clock=self.clock
        )
        replica.subscribe(self._pending.append)
        self._replica = replica

    def _newer(self, version: int) -> list[dict[str, Any]]:
        """The journal's events after ``version``: one query."""
        rows = self._db.execute(_NEWER, (version, self.day)).fetchall()
        return [json.loads(text) for _, text in rows if text is not None]

    def _catch_up(self, replica: Allocator) -> None:
        """Apply what other processes appended since this replica's version (none when
        this process is the only writer: one indexed read)."""
        events = self._newer(replica.version)
        if events:
            replica.apply(events)
        self._pending.clear()  # apply reported the events caught up on: not ours to write

    # ------------------------------------------------------------------ calls

    def _begin(self, replica: Allocator, key: str | None = None) -> Stored | None:
        """Take the write lock (``BEGIN IMMEDIATE``), catch up, and look ``key`` up: the
        request stored under it, if any."""
        self._db.execute("BEGIN IMMEDIATE")
        self._catch_up(replica)
        if key is None:
            return None
        row = self._db.execute(
            "SELECT request, status, body FROM opd_requests WHERE day = ? AND key = ?",
            (self.day, key),
        ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]), str(row[2]))

    def _commit(
        self,
        replica: Allocator,
        start: int,
        actor: str | None,
        keyed: tuple[str, str, int, str] | None = None,
    ) -> None:
        """Append the call's events (one row each, O(1) per event), its audit row and a
        checkpoint when one is due, store the keyed request ``(key, request, status,
        body)`` if any, and commit."""
        version = replica.version
        if self._pending:
            self._db.executemany(
                "INSERT INTO opd_events (day, version, idx, event) VALUES (?, ?, ?, ?)",
                [
                    (self.day, event.version, idx, json.dumps(event_to_dict(event)))
                    for idx, event in enumerate(self._pending)
                ],
            )
            self._db.execute(
                "UPDATE opd_journal SET version = ? WHERE day = ?", (version, self.day)
            )
            if actor is not None:
                self._db.execute(
                    "INSERT INTO opd_audit (day, version, actor) VALUES (?, ?, ?)",
                    (self.day, version, actor),
                )
            every = self.checkpoint_every
            # Due when the call crossed a multiple of checkpoint_every: every process agrees.
            if every is not None and version // every > start // every:
                self._write_checkpoint(replica)
        if keyed is not None:
            self._db.execute(
                "INSERT INTO opd_requests (day, key, request, status, body, version, actor)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.day, *keyed, version, actor),
            )
        self._db.execute("COMMIT")

    def _abort(self) -> None:
        """After a call or a write that failed: roll back, and forget a replica that is
        ahead of the database (it is rebuilt before the next call)."""
        if self._pending:  # the replica changed, but the change is not on disk
            self._replica = None
        self._pending.clear()
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def run(self, call: Callable[[Allocator], T], *, actor: str | None = None) -> T:
        """``call(allocator)`` as one durable change; returns its result once committed.

        In one ``BEGIN IMMEDIATE`` transaction: catch up, call, append the call's events
        (one row each, O(1) per event) and a checkpoint when one is due, commit. When the
        call changed something and ``actor`` is given, ``(version, actor)`` joins the audit
        trail in the same transaction. A call that raises (a full slot, say) changes
        nothing and writes nothing; its exception propagates. If the database refuses the
        write, the replica is rebuilt from the database before the next call and the
        database's error propagates: the change is not acknowledged.
        """
        with self._lock:
            replica = self._current()
            try:
                self._begin(replica)
                start = replica.version
                result = call(replica)
                self._commit(replica, start, actor)
            except BaseException:
                self._abort()
                raise
            self._pending.clear()
            return result

    def run_once(
        self,
        key: str,
        request: str,
        call: Callable[[Allocator], tuple[int, str]],
        *,
        actor: str | None = None,
    ) -> tuple[str, int, str, bool]:
        """Answer the keyed request ``key`` once: ``(request, status, body, replayed)``.

        In one transaction holding the write lock (so after any other process's call with
        the same key has committed): if ``key`` is stored for this day, return the stored
        ``(request, status, body, True)`` without calling ``call``; else
        ``(status, body) = call(allocator)``, store the key, ``request``, the reply,
        ``actor`` and the version after the call together with the call's events (and the
        audit row, as :meth:`run`), commit, and return ``(request, status, body, False)``.
        An error reply (a 409, say) is stored and replayed like any other.

        The caller compares the returned request (its fingerprint of the request) with
        its own: a different one means the key was reused for another request. A call that
        raises stores nothing; its exception propagates, as from :meth:`run`.
        """
        with self._lock:
            replica = self._current()
            try:
                stored = self._begin(replica, key)
                if stored is not None:
                    self._db.execute("COMMIT")  # nothing written: the lock is released
                    return (*stored, True)
                start = replica.version
                status, body = call(replica)
                self._commit(replica, start, actor, (key, request, status, body))
            except BaseException:
                self._abort()
                raise
            self._pending.clear()
            return request, status, body, False

    def read(self, call: Callable[[Allocator], T]) -> T:
        """``call(allocator)`` on the replica caught up with the journal: one query, which
        needs no lock (each call's events are committed together)."""
        with self._lock:
            replica = self._current()
            try:
                self._catch_up(replica)
            finally:
                self._pending.clear()
            return call(replica)

    def audit(self) -> list[tuple[int, str]]:
        """``(version, actor)`` of every change of the day made with an ``actor``, in
        version order: who made each change."""
        with self._lock:
            rows = self._db.execute(
                "SELECT version, actor FROM opd_audit WHERE day = ? ORDER BY version",
                (self.day,),
            ).fetchall()
        return [(int(version), str(actor)) for version, actor in rows]

    def setup(self, build: Callable[[Allocator], object]) -> bool:
        """Run ``build(allocator)`` (add doctors and slots) as one change if the journal is
        still empty; True if it ran. Every process may call it at start: only the first
        builds the day, the others catch up on it."""
        built: list[bool] = []

        def first_start(alloc: Allocator) -> None:
            if alloc.version == 0:
                build(alloc)
                built.append(True)

        self.run(first_start)
        return bool(built)

    def _write_checkpoint(self, replica: Allocator) -> None:
        snapshot = replica.snapshot()
        self._db.execute(
            "INSERT INTO opd_checkpoints (day, version, snapshot) VALUES (?, ?, ?)"
            " ON CONFLICT (day, version) DO NOTHING",
            (self.day, snapshot["allocator_version"], json.dumps(snapshot)),
        )

    def checkpoint(self) -> int:
        """Write a checkpoint of the current state now (a maintenance job may call it when
        ``checkpoint_every`` is None); returns its version. O(n)."""
        with self._lock:
            replica = self._current()
            try:
                self._begin(replica)
                self._write_checkpoint(replica)
                self._db.execute("COMMIT")
            except BaseException:
                self._abort()
                raise
            return replica.version

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SQLiteJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
