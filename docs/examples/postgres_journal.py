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
4. appends the call's events (and, when the call names its ``actor``, an audit row), moves
   the row's version on, commits.

Steps 1 and 2 are one round trip to the server, step 4 another. So calls from all
processes are serialised in one order, the journal's; each call sees every change committed
before it (no two workers hand out the same token id, no slot is overbooked); and
``Allocator.replay`` of the journal equals every replica once it has caught up. Readers
catch up without the lock, in one query.

:meth:`PostgresJournal.run_once` answers a keyed request (an HTTP ``Idempotency-Key``)
once for the whole day, whichever worker gets it and however often: in the same
transaction, after taking the lock, it looks the key up; a stored key returns the stored
reply without making the call, a new one is stored with the call's events and reply. So two
workers racing with one key make one change, and the second replays the first's reply; a
key is kept across restarts, as long as the day's journal.

Schema (``day`` names the journal: one per OPD date)::

    CREATE TABLE opd_journal     (day text PRIMARY KEY, version bigint NOT NULL)
    CREATE TABLE opd_events      (day text, version bigint, idx integer, event jsonb,
                                  PRIMARY KEY (day, version, idx))
    CREATE TABLE opd_checkpoints (day text, version bigint, snapshot jsonb,
                                  PRIMARY KEY (day, version))
    CREATE TABLE opd_audit       (day text, version bigint, actor text,
                                  PRIMARY KEY (day, version))
    CREATE TABLE opd_requests    (day text, key text, request text, status integer,
                                  body text, version bigint, actor text,
                                  PRIMARY KEY (day, key))

``opd_audit`` says who made each change (the ``actor`` the caller names: a role and a key
name, say) at the version it reached; ``opd_requests`` holds each key's request (the
caller's fingerprint of it), reply and the version after it.

Typical start-up, in every worker::

    journal = PostgresJournal("dbname=opd host=/run/postgresql", day="2026-11-25",
                              policies=POLICIES)
    journal.setup(build_the_day)   # only the first process to get here builds the day
    token = journal.run(lambda alloc: alloc.book("P1", "D1"), actor="desk:front-1")
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar, cast

import psycopg
from psycopg.pq.abc import PGresult
from psycopg.types.json import Jsonb

from opd_engine import Allocator, Event, InvalidArgumentError, Policies, event_to_dict

__all__ = ["PostgresJournal"]

T = TypeVar("T")
R = TypeVar("R")
Stored = tuple[str, int, str]  # a keyed request's request, status and body

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
    """CREATE TABLE IF NOT EXISTS opd_audit (
        day     text NOT NULL,
        version bigint NOT NULL,
        actor   text NOT NULL,
        PRIMARY KEY (day, version)
    )""",
    """CREATE TABLE IF NOT EXISTS opd_requests (
        day     text NOT NULL,
        key     text NOT NULL,
        request text NOT NULL,
        status  integer NOT NULL,
        body    text NOT NULL,
        version bigint NOT NULL,
        actor   text,
        PRIMARY KEY (day, key)
    )""",
)


# The statements of every call, prepared once per connection (planned once). Each call
# sends them as one query string per round trip (see PostgresJournal._exec).
_PREPARED = (
    # The journal's lock: the row lock on its row in opd_journal, held until commit.
    "opd_lock (text) AS SELECT version FROM opd_journal WHERE day = $1 FOR UPDATE",
    # The events after a version, up to the journal's, as one JSON array in order; and
    # the request stored under a key (none: NULLs).
    """opd_newer (text, bigint, text) AS
    SELECT (SELECT json_agg(e.event ORDER BY e.version, e.idx) FROM opd_events e
            WHERE e.day = $1 AND e.version > $2
              AND e.version <= (SELECT j.version FROM opd_journal j WHERE j.day = $1)),
           r.request, r.status, r.body
    FROM (VALUES (0)) AS one LEFT JOIN opd_requests r ON r.day = $1 AND r.key = $3""",
    # A call's events (one JSON array), its audit row (when its actor is not NULL) and
    # the journal's new version, in one statement.
    """opd_append (text, jsonb, bigint, text) AS
    WITH events AS (
        INSERT INTO opd_events (day, version, idx, event)
        SELECT $1, (value ->> 'version')::bigint, ordinality - 1, value
        FROM jsonb_array_elements($2) WITH ORDINALITY
    ), audit AS (
        INSERT INTO opd_audit (day, version, actor) SELECT $1, $3, $4 WHERE $4 IS NOT NULL
    )
    UPDATE opd_journal SET version = $3 WHERE day = $1""",
    # A keyed request: key, request, status, body, the version after it, actor.
    """opd_request (text, text, text, integer, text, bigint, text) AS
    INSERT INTO opd_requests (day, key, request, status, body, version, actor)
    VALUES ($1, $2, $3, $4, $5, $6, $7)""",
)
_FAILED = (psycopg.pq.ExecStatus.FATAL_ERROR, psycopg.pq.ExecStatus.BAD_RESPONSE)


class PostgresJournal:
    """One allocator's journal in PostgreSQL, and this process's replica of it.

    ``conninfo`` is a libpq connection string or URL; the journal opens one connection and
    owns it (its statements are prepared on that connection, so connect directly, not
    through a pooler in transaction mode). ``day`` names the journal (one per OPD date).
    ``policies`` and ``clock`` are the allocator's, the same in every process. A checkpoint
    is written every ``checkpoint_every`` versions (None: only when :meth:`checkpoint` is
    called).

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
        self.day = day
        self.policies = policies
        self.clock = clock
        self.checkpoint_every = checkpoint_every
        self._lock = threading.RLock()
        self._pending: list[Event] = []
        self._replica: Allocator | None = None
        with psycopg.connect(conninfo, autocommit=True) as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT INTO opd_journal (day, version) VALUES (%s, 0)"
                " ON CONFLICT (day) DO NOTHING",
                (day,),
            )
        self._connect()  # the tables exist: the statements can be prepared
        try:
            with self._lock:
                self._restore()
        except BaseException:  # a journal that cannot be read: refuse it, leak nothing
            self._db.close()
            raise

    def _connect(self) -> None:
        """Open the connection and prepare the statements of the calls on it."""
        self._db = db = psycopg.connect(self._conninfo, autocommit=True, client_encoding="UTF8")
        try:
            # Their plans are index scans of primary keys whatever the arguments: plan them
            # once (by default opd_newer would be planned again on every call).
            db.execute("SET plan_cache_mode = force_generic_plan")
            for statement in _PREPARED:
                db.execute(f"PREPARE {statement}")
            self._quote = psycopg.pq.Escaping(db.pgconn).escape_literal
            self._day = self._literal(self.day)
        except BaseException:
            db.close()
            raise

    def _exec(self, query: bytes) -> PGresult:
        """Run ``query``, one or more statements, in one round trip; the last one's result.

        The statements of a call go straight through libpq (``psycopg.pq``), prepared, with
        their arguments quoted by libpq: psycopg's cursors would spend several times the CPU
        of the round trip itself, on every call of every worker. Raises psycopg's error for
        the statement that failed (the statements after it do not run)."""
        pgconn = self._db.pgconn
        result = pgconn.exec_(query)
        if result.status in _FAILED:
            if pgconn.status == psycopg.pq.ConnStatus.BAD:  # the connection is lost
                raise psycopg.OperationalError(result.error_message.decode("utf-8", "replace"))
            raise psycopg.errors.error_from_result(result, encoding="utf-8")
        return result

    def _literal(self, value: str | None) -> bytes:
        """``value`` as an SQL literal (quoted by libpq), or NULL."""
        return b"NULL" if value is None else bytes(self._quote(value.encode()))

    # ------------------------------------------------------------------ the replica

    @property
    def allocator(self) -> Allocator:
        """This process's replica, as of its last call or read. Change it only through
        :meth:`run`; other processes may have moved on, so read through :meth:`read`."""
        with self._lock:
            return self._current()

    def _current(self) -> Allocator:
        if self._db.broken:  # the server restarted or the network failed: reconnect
            self._connect()
            self._replica = None
        if self._replica is None:  # a failed commit left it ahead of the database
            self._restore()
        assert self._replica is not None
        return self._replica

    def _restore(self) -> None:
        """Rebuild the replica from the latest checkpoint and the events after it."""
        self._replica = None
        with self._db.transaction():
            row = self._db.execute(
                "SELECT version, snapshot FROM opd_checkpoints WHERE day = %s"
                " ORDER BY version DESC LIMIT 1",
                (self.day,),
            ).fetchone()
            snapshot: dict[str, Any] | None = None if row is None else row[1]
            after = 0 if row is None else int(row[0])
            events, _ = self._newer(after)
        replica = Allocator.replay(
            events, snapshot=snapshot, policies=self.policies, clock=self.clock
        )
        replica.subscribe(self._pending.append)
        self._replica = replica

    def _newer(
        self, version: int, *, lock: bool = False, key: str | None = None
    ) -> tuple[list[dict[str, Any]], Stored | None]:
        """The journal's events after ``version`` and the request stored under ``key``, in
        one round trip; with ``lock``, begin a transaction and take the journal's lock first.

        The statements run one after the other, each reading what was committed when it
        started, so what follows the lock is read once the lock is held: no event is
        missed, and a key stored by the call that held the lock before is found. Without
        ``lock`` it is one statement, which reads from one snapshot: whole calls (each
        call's events are committed together)."""
        query = b"EXECUTE opd_newer(%b, %d, %b)" % (self._day, version, self._literal(key))
        if lock:
            query = b"BEGIN; EXECUTE opd_lock(%b); %b" % (self._day, query)
        result = self._exec(query)
        text, request, status, body = (result.get_value(0, column) for column in range(4))
        events = [] if text is None else cast("list[dict[str, Any]]", json.loads(text))
        if request is None or status is None or body is None:
            return events, None
        return events, (request.decode(), int(status), body.decode())

    # ------------------------------------------------------------------ calls

    def _fresh(self, first: Callable[[Allocator], R]) -> tuple[Allocator, R]:
        """The replica and ``first(replica)``, a call's first round trip. A connection that
        broke since the last call (the server restarted, say) fails there, before anything
        ran or was written: it is then opened again, the replica rebuilt, and ``first`` run
        once more, so the first request after a restart succeeds."""
        replica = self._current()
        try:
            return replica, first(replica)
        except psycopg.OperationalError:
            if not self._db.broken:
                raise
            self._pending.clear()
            replica = self._current()  # reconnects and rebuilds the replica
            return replica, first(replica)

    def _catch_up(self, replica: Allocator) -> None:
        """Apply what other processes committed since the replica's version: one query."""
        events, _ = self._newer(replica.version)
        if events:
            replica.apply(events)
        self._pending.clear()

    def _begin(self, replica: Allocator, key: str | None = None) -> Stored | None:
        """Begin a transaction, take the journal's lock and catch the replica up, and look
        ``key`` up: one round trip. Returns the request stored under ``key``, if any."""
        events, stored = self._newer(replica.version, lock=True, key=key)
        if events:
            replica.apply(events)
        self._pending.clear()  # apply reported the events caught up on: not ours to write
        return stored

    def _commit(
        self,
        replica: Allocator,
        start: int,
        actor: str | None,
        keyed: tuple[str, str, int, str] | None = None,
    ) -> None:
        """Append the call's events (one JSON array) and its audit row, move the journal's
        version on, store the keyed request ``(key, request, status, body)`` if any, and
        commit: one round trip."""
        statements = []
        if self._pending:
            every = self.checkpoint_every
            # Due when the call crossed a multiple of checkpoint_every: every process agrees.
            if every is not None and replica.version // every > start // every:
                self._write_checkpoint(replica)
            events = self._literal(json.dumps([event_to_dict(event) for event in self._pending]))
            statements.append(
                b"EXECUTE opd_append(%b, %b, %d, %b)"
                % (self._day, events, replica.version, self._literal(actor))
            )
        if keyed is not None:
            key, request, status, body = keyed
            values = (self._literal(key), self._literal(request), status, self._literal(body))
            statements.append(
                b"EXECUTE opd_request(%b, %b, %b, %d, %b, %d, %b)"
                % (self._day, *values, replica.version, self._literal(actor))
            )
        statements.append(b"COMMIT")
        self._exec(b"; ".join(statements))

    def _abort(self) -> None:
        """After a call or a write that failed: roll back, and forget a replica that is
        ahead of the database (it is rebuilt before the next call)."""
        if self._pending:
            self._replica = None
        self._pending.clear()
        db = self._db
        if not db.broken and db.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                self._exec(b"ROLLBACK")
            except psycopg.Error:  # the connection failed too: reopened before the next call
                db.close()

    def run(self, call: Callable[[Allocator], T], *, actor: str | None = None) -> T:
        """``call(allocator)`` as one durable change, serialised with every other process's
        calls; returns its result once committed.

        In one transaction holding the journal's lock: catch up, call, append the call's
        events, commit (two round trips). When the call changed something and ``actor`` is
        given, ``(version, actor)`` joins the audit trail in the same transaction. A call
        that raises (a full slot, say) changes nothing and writes nothing; its exception
        propagates. If the database refuses the write or the commit, the replica is rebuilt
        from the database before the next call and the error propagates: the change is not
        acknowledged.
        """
        with self._lock:
            try:
                replica, _ = self._fresh(self._begin)
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

        In one transaction holding the journal's lock (so after any other worker's call
        with the same key has committed): if ``key`` is stored for this day, return the
        stored ``(request, status, body, True)`` without calling ``call``; else
        ``(status, body) = call(allocator)``, store the key, ``request``, the reply,
        ``actor`` and the version after the call together with the call's events (and the
        audit row, as :meth:`run`), commit, and return ``(request, status, body, False)``.
        An error reply (a 409, say) is stored and replayed like any other.

        The caller compares the returned request (its fingerprint of the request) with
        its own: a different one means the key was reused for another request. A call that
        raises stores nothing; its exception propagates, as from :meth:`run`.
        """
        with self._lock:
            try:
                replica, stored = self._fresh(lambda replica: self._begin(replica, key))
                if stored is not None:
                    self._exec(b"COMMIT")  # nothing written: the lock is released
                    self._pending.clear()
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
        """``call(allocator)`` on the replica caught up with the journal, without the lock:
        one query (see ``_newer``)."""
        with self._lock:
            try:
                replica, _ = self._fresh(self._catch_up)
            finally:
                self._pending.clear()
            return call(replica)

    def audit(self) -> list[tuple[int, str]]:
        """``(version, actor)`` of every change of the day made with an ``actor``, in
        version order: who made each change."""
        with self._lock:
            self._current()
            rows = self._db.execute(
                "SELECT version, actor FROM opd_audit WHERE day = %s ORDER BY version",
                (self.day,),
            ).fetchall()
        return [(int(version), str(actor)) for version, actor in rows]

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
                self._begin(replica)
                self._write_checkpoint(replica)
                self._exec(b"COMMIT")
            except BaseException:
                self._abort()
                raise
            return replica.version

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> PostgresJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
