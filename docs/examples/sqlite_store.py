"""Persist an opd-engine ``Allocator`` to SQLite and restore it on start.

A recipe, not part of the library: ``opd_engine`` does no I/O, so this is where the I/O
lives. It needs only the standard library's :mod:`sqlite3` and :mod:`json`.

The whole state is one JSON document, ``allocator.snapshot()``: versioned, JSON-safe, and
restored exactly by ``Allocator.from_snapshot``. It is kept in a one-row table::

    CREATE TABLE allocator_state (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        snapshot TEXT NOT NULL,
        saved_at TEXT NOT NULL
    )

Each :meth:`SQLiteStore.save` replaces the row with an UPSERT inside a transaction, so the
database holds either the previous state or the new one, never half of either. Policies
and the clock are not state: pass them again to :meth:`SQLiteStore.load`.

Typical start-up::

    store = SQLiteStore("opd.sqlite3")
    allocator = store.load(policies=POLICIES)
    if allocator is None:            # first start: nothing saved yet
        allocator = build_the_day()
    persist_on_change(allocator, store)  # saves the set-up now, then every change

:func:`persist_on_change` then saves after every change the allocator reports, so a crash
after a call returns loses nothing.

Each save writes the whole state, O(n) in the tokens, under the allocator's lock: fine for
a few thousand tokens and one process. For larger days, or several workers, keep a journal
of events instead (``sqlite_journal.py``, ``postgres_journal.py``): O(1) per change.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from opd_engine import Allocator, Event, InvalidArgumentError, Policies

__all__ = ["SQLiteStore", "persist_on_change"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS allocator_state (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL,
    saved_at TEXT NOT NULL
)
"""
_UPSERT = """
INSERT INTO allocator_state (id, snapshot, saved_at) VALUES (1, ?, ?)
ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, saved_at = excluded.saved_at
"""
_SELECT = "SELECT snapshot FROM allocator_state WHERE id = 1"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)  # wall clock: when a host saved, for its audit


class SQLiteStore:
    """One allocator's state in one SQLite database.

    ``database`` is a path (or ``":memory:"``), which the store opens and owns, or an open
    :class:`sqlite3.Connection`, which stays the caller's (``close()`` leaves it open). The
    table is created if missing. ``now`` stamps ``saved_at`` (default: the UTC wall clock);
    it is metadata only and never affects the allocator.

    A store opened from a path may be used from several threads (a web app's threadpool):
    its writes are serialised by a lock. Pass your own connection only if you make it
    usable from the threads that save (``check_same_thread=False``); each save commits it,
    so do not keep a transaction of your own open on it.
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | sqlite3.Connection,
        *,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        if isinstance(database, sqlite3.Connection):
            self._connection = database
            self._owned = False
        else:
            self._connection = sqlite3.connect(database, check_same_thread=False)
            self._owned = True
        self._now = now
        self._lock = threading.Lock()
        #: The error of the last failed save by :func:`persist_on_change`, cleared by the
        #: next successful save; see there.
        self.last_error: Exception | None = None
        with self._lock, self._connection:
            self._connection.execute(_SCHEMA)

    @property
    def connection(self) -> sqlite3.Connection:
        """The underlying connection."""
        return self._connection

    def save(self, allocator: Allocator) -> None:
        """Write ``allocator.snapshot()`` as the stored state, in one transaction. O(n).

        The snapshot is taken under the allocator's lock, so it is consistent even while
        other threads call the allocator; the write happens after, under the store's lock.
        """
        self.save_text(json.dumps(allocator.snapshot()))

    def save_text(self, snapshot: str) -> None:
        """Write an already serialised snapshot, in one transaction."""
        saved_at = self._now().isoformat()
        with self._lock, self._connection:  # commits, or rolls back if the write fails
            self._connection.execute(_UPSERT, (snapshot, saved_at))
        self.last_error = None

    def load(
        self,
        policies: Policies | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> Allocator | None:
        """The stored allocator, or None if nothing was saved yet. O(n log n).

        ``policies`` and ``clock`` are those of the allocator you saved: they are not part
        of the snapshot. A stored snapshot that is not JSON, or that the library cannot
        restore (another format or version, inconsistent data), raises
        :class:`~opd_engine.InvalidArgumentError`.
        """
        with self._lock:
            row = self._connection.execute(_SELECT).fetchone()
        if row is None:
            return None
        text = row[0]
        try:
            data: Any = json.loads(text)
        except (TypeError, ValueError) as error:
            raise InvalidArgumentError(
                f"the stored snapshot is not JSON: {error} (got {str(text)[:40]!r})"
            ) from None
        return Allocator.from_snapshot(data, policies=policies, clock=clock)

    def close(self) -> None:
        """Close the connection if the store opened it."""
        if self._owned:
            self._connection.close()

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def persist_on_change(allocator: Allocator, store: SQLiteStore) -> Callable[[], None]:
    """Save ``allocator`` to ``store`` now and after every change it reports.

    Returns the unsubscribe function. Call it before other threads use the allocator. It
    first saves the current state (the day set up before it); later ``add_doctor`` and
    ``add_slot`` calls report events and are saved like any change.

    **When it saves.** The allocator delivers events once a call's change is complete,
    still under its lock, in order, possibly several per call (a cancel that refills the
    place reports the cancel and each move). So the first event of a call already sees the
    call's final state. Each event takes a snapshot, O(n), but the database is written only
    when the serialised state differs from the last one written: one write per call, and
    the next call cannot start before it is done, so writes follow the calls' order and a
    crash after a call returned loses nothing.

    **The trade-off.** Saving per event holds the allocator's lock during the write, so
    calls from other threads wait for the disk; and a call whose change reports no event
    is not saved. The alternative, in a web app, is one ``store.save(allocator)`` at the end
    of each mutating request, outside the lock: cheaper under contention, but a crash
    between the call and the save loses that call, and concurrent requests may finish their
    writes out of order (a later save overwrites a newer state until the next save).

    **Failures.** The allocator logs and swallows a subscriber's exception (the change has
    already happened and the caller's call succeeded), so a failed write cannot fail the
    call. It is logged on the ``opd_engine`` logger, recorded in ``store.last_error``, and
    retried at the next event; check ``store.last_error`` (for a health endpoint, say).
    """
    last: list[str | None] = [None]

    def on_event(event: Event) -> None:
        text = json.dumps(allocator.snapshot())
        if text == last[0]:
            return  # another event of a call already saved
        try:
            store.save_text(text)
        except Exception as error:
            store.last_error = error
            raise
        last[0] = text

    text = json.dumps(allocator.snapshot())
    store.save_text(text)
    last[0] = text
    return allocator.subscribe(on_event)
