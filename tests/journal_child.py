"""A process that books against the SQLite journal recipe and acknowledges each change.

Run by ``tests/test_examples_sqlite_journal.py``, which kills it with SIGKILL at random
points. Usage: ``python journal_child.py DATABASE PREFIX COUNT``. It opens the journal
(restoring whatever an earlier, killed process left), builds the day on the first start,
prints ``ready``, then books ``COUNT`` patients ``PREFIX-0``, ``PREFIX-1``, ... and cancels
every fifth token it booked (a cancel refills the place: a call of several events). After
each call returns, that is after its commit, it prints ``B <token id> <patient>`` or
``C <token id>`` and flushes: a printed line is an acknowledged change.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))

from sqlite_journal import SQLiteJournal

from opd_engine import Allocator, Doctor, OnFull, Policies, Slot, Source, Token

DAY = datetime(2026, 11, 25)
POLICIES = Policies(on_full=OnFull.WAITLIST)
CHECKPOINT_EVERY = 7


def clock() -> datetime:
    return DAY.replace(hour=8)


def build(alloc: Allocator) -> None:
    """Three doctors in one department, four slots of ten places each."""
    for d in range(1, 4):
        alloc.add_doctor(Doctor(f"D{d}", f"Dr. {d}", department="General Medicine"))
        for hour in range(9, 13):
            start = DAY.replace(hour=hour)
            alloc.add_slot(Slot(f"D{d}@{hour}", f"D{d}", start, start + timedelta(hours=1), 10))


def book(journal: SQLiteJournal, patient: str, doctor: str) -> Token:
    return journal.run(lambda alloc: alloc.book(patient, doctor, source=Source.ONLINE))


def cancel(journal: SQLiteJournal, token_id: str) -> Token:
    return journal.run(lambda alloc: alloc.cancel(token_id))


def main(database: str, prefix: str, count: int) -> None:
    journal = SQLiteJournal(
        database, day="2026-11-25", policies=POLICIES, clock=clock,
        checkpoint_every=CHECKPOINT_EVERY,
    )  # fmt: skip
    journal.setup(build)
    print("ready", flush=True)
    for i in range(count):
        patient = f"{prefix}-{i}"
        token = book(journal, patient, f"D{i % 3 + 1}")
        print("B", token.id, patient, flush=True)
        if i % 5 == 4:
            cancelled = cancel(journal, token.id)
            print("C", cancelled.id, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
