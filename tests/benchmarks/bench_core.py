"""Per-operation cost of the allocator's hot paths, against two baselines in the same run.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_core.py            # 10^3, 10^4, 10^5 tokens in one slot
    python tests/benchmarks/bench_core.py --full     # and 10^6 (a few minutes)
    python tests/benchmarks/bench_core.py --quick    # 10^3, 10^4; 3 repeats
    python tests/benchmarks/bench_core.py --full --json docs/benchmarks.json \\
        --simulation-json sim.json --before old.json # the docs' figures (see below)
    python tests/benchmarks/bench_core.py --profile book --sizes 100000

For each size n, every operation is timed on a slot already holding n tokens, over a batch
of operations (at most n of them), and reported as the median of ``--repeats`` batches in
microseconds per operation:

- ``book``: mixed sources (online, walk-in, paid, follow-up) into the slot;
- ``check_in``: booked tokens arrive;
- ``call_next``: the doctor completes the current patient and calls the next;
- ``cancel``: a token in a full slot cancels and the waitlist refills its place;
- ``position`` and ``estimated_start`` of tokens spread over the queue;
- ``queue``: the whole queue as a list, per call (it returns n tokens, so it is O(n));
- the live floor (DESIGN section 10): ``next_up`` (the next 3), ``estimate`` of tokens
  spread over the queue, ``now_serving``, ``pause+resume`` (one of each per operation),
  ``preview`` (of a booking: the booking plus its undo), ``call`` (a checked-in patient
  spread over the queue, called out of turn), ``step_out`` of checked-in patients (each
  brought back, untimed, after the batch) and ``end_day`` (per token it ends: the batch is
  one ``end_day`` of a doctor holding the n tokens, rebuilt after it);
- ``book+sub``, ``check_in+sub``, ``call_next+sub``, ``cancel+sub``: the same with one
  subscriber that does nothing, which is what a host with a display board pays (without
  subscribers the allocator builds no events at all).

The spread of each figure, (slowest - fastest batch) / median, is printed too.

Baselines, timed in the same process on the same sizes:

- ``floor``: the fair floor, the least any SortedList design must do per booking: build
  the ``(priority, seq, id)`` key and the id string inside the loop, ``SortedList.add`` it
  to a list grown by ``add``, and insert it into a ``dict``;
- ``seed``: the seed's design, ``list.append`` then ``list.sort(key=(priority, arrival))``
  per booking.

Ratios are against these baselines, measured in the same run: absolute times on a shared
machine are noise, ratios are the figure to quote. The operations and the baselines take
turns, one batch each per repeat, so that a slow spell of the machine falls on all alike.

Filled states are built once per size and reused (booking 10^6 tokens takes seconds):
right after each batch, untimed, the state is put back (booked tokens are cancelled,
called and cancelled ones are replaced by new bookings); an operation that cannot be
undone (``check_in``, ``cancel``) takes fresh targets each batch, rebuilding its state
only when they run out. ``position``, ``estimated_start``, ``queue`` and ``book`` share one
filled slot; ``check_in``, ``call_next`` and ``cancel`` have one each. The seconds spent
building the states of each size (untimed) and in all are printed.

Also measured:

- a hospital: 200 doctors x 16 slots of capacity 30, filled with mixed sources up to 10
  free places per doctor in its last slot (94,000 tokens); ``book`` without a slot (the
  allocator walks the doctor's 16 slots to the last), ``check_in``, ``call_next`` (round
  robin over the doctors) and ``cancel`` (a freed place is refilled by pulling forward a
  checked-in patient of the nearest later slot with one, which frees a place there: a
  cascade down the doctor's slots), against the floor at the same total size; and
  ``board`` (one :meth:`Allocator.board` of the 200 doctors with the next 3 each, per call);
- memory per live token at 10^5 and 10^6 (those of them run) and at the largest size,
  with :mod:`tracemalloc` (traced bytes after filling the slot minus before, over n; the
  patient ids are the caller's strings, made before tracing, and everything the allocator
  allocates is counted), next to the floor's bytes per entry measured the same way;
- with ``--simulation-json PATH`` (the ``--json`` output of ``bench_simulation.py``), the
  simulation figures (the 3-class M/M/1 at its top level, the day-sized model under
  ``"day_sized"``), printed and merged into ``--json`` under ``"simulation"``.

Each target is printed next to its figure with PASS or MISS and summarised at the end.

``--json`` also records the machine (platform, processor, CPU count), the Python version
and the commit the run measured (``git rev-parse HEAD`` in the repository of the
``opd_engine`` imported, and whether its working tree had uncommitted changes; null where
git cannot tell, as for an installed package). With ``--before PATH``, an earlier
results file of the same format, the earlier run's commit, Python version and machine
(null where that file lacks them) and its values of this run's target figures, recomputed
from its raw figures where it has them, are stored under ``"before"``: one file then holds
both sides of a before and after comparison. Compare runs made on the same machine.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

from sortedcontainers import SortedList

import opd_engine
from opd_engine import Allocator, Doctor, OnFull, Policies, Slot, Source, TokenStatus

START = datetime(2026, 11, 25, 9, 0)
NOW = START + timedelta(minutes=5)
SOURCES = (Source.ONLINE, Source.WALK_IN, Source.PAID, Source.FOLLOW_UP)
WAITING = (TokenStatus.BOOKED, TokenStatus.CHECKED_IN)

BATCH = 2_000  # operations per timed batch (at most n)
SEED_BATCH = 20  # the seed sorts n entries per booking
QUEUE_BATCH = 3  # queue() returns n tokens per call
BOARD_BATCH = 20  # a board of the hospital's 200 doctors per call

HOSPITAL_DOCTORS = 200
HOSPITAL_SLOTS = 16
HOSPITAL_CAPACITY = 30
HOSPITAL_ROOM = 10  # free places per doctor, in its last slot

# Targets (DESIGN.md section 8); ratios measured at these sizes.
BOOK_OVER_FLOOR = 3.0  # book / fair floor at 10^5, at most
CANCEL_OVER_FLOOR = 8.0  # cancel with a waitlist refill / fair floor at 10^5, at most
CALL_NEXT_OVER_FLOOR = 3.0  # call_next / fair floor at 10^5, at most
SUBSCRIBER_OVERHEAD = 1.3  # an operation with one no-op subscriber / without, at 10^5
FLATNESS = 2.0  # per-op cost at the largest size / at the smallest, at most
SEED_OVER_BOOK = 100.0  # seed / book at 10^4, at least
BYTES_PER_TOKEN = 450.0  # at most, at each of MEMORY_SIZES run
CIW_OVER_OPD = 1.5  # the 3-class M/M/1: Ciw's time per patient / opd-engine's, at least
CIW_OVER_OPD_DAY = 1.0  # the day-sized model, likewise
TARGET_SIZE = 100_000
SEED_SIZE = 10_000
MEMORY_SIZES = (100_000, 1_000_000)

# A batch ready to time: (run, operations it performs).
Trial = tuple[Callable[[], object], int]


def clock() -> datetime:
    return NOW


def allocator(capacity: int, *, on_full: OnFull = OnFull.REJECT) -> Allocator:
    alloc = Allocator(policies=Policies(on_full=on_full), clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Bench"))
    alloc.add_slot(Slot("S1", "D1", START, START + timedelta(hours=8), capacity))
    alloc.add_slot(Slot("S2", "D1", START + timedelta(hours=8), START + timedelta(hours=9), 0))
    return alloc


def fill(
    alloc: Allocator,
    n: int,
    prefix: str = "P",
    *,
    first: int = 0,
    patients: Sequence[str] | None = None,
) -> None:
    """Book ``n`` tokens of mixed sources into slot S1 (waitlisted if it is full), for the
    given ``patients`` or patients named ``prefix`` + number."""
    book = alloc.book
    if patients is None:
        patients = [f"{prefix}{i}" for i in range(first, first + n)]
    for i, patient in enumerate(patients, start=first):
        book(patient, "D1", "S1", source=SOURCES[i % 4])


def last_issued(alloc: Allocator, k: int) -> list[str]:
    """Ids of the ``k`` tokens issued last. O(tokens)."""
    tokens = alloc.tokens()
    return [token.id for token in tokens[len(tokens) - k :]]


def spread(ids: Sequence[str], batch: int) -> list[str]:
    """``batch`` ids (at most all of them) spread evenly over ``ids``."""
    step = max(1, len(ids) // batch)
    return list(ids[::step][:batch])


class Pool:
    """Targets for operations that cannot be undone: each batch takes fresh ones."""

    def __init__(self, ids: Sequence[str], batch: int) -> None:
        self.unused = list(ids)
        self.batch = min(batch, len(self.unused))

    def enough(self) -> bool:
        return len(self.unused) >= self.batch

    def take(self, keep: Callable[[str], bool] | None = None) -> list[str]:
        """Fresh targets spread over the unused ones (those ``keep`` accepts)."""
        if keep is not None:
            self.unused = [i for i in self.unused if keep(i)]
        taken = spread(self.unused, self.batch)
        gone = set(taken)
        self.unused = [i for i in self.unused if i not in gone]
        return taken


class Bench:
    """One operation at one size. Untimed, ``trial()`` readies the next batch and ``undo()``
    (right after it) puts the state back as it was before the batch, where it can."""

    def trial(self) -> Trial:
        raise NotImplementedError

    def undo(self) -> None:
        pass


# ------------------------------------------------------------------------- one slot


class Filled:
    """Slot S1 holding ``n`` tokens of mixed sources, with room for ``room`` more.

    Shared by position, estimated_start, queue and book (which cancels what it booked
    right after each batch).
    """

    def __init__(self, n: int, room: int, alloc: Allocator | None = None) -> None:
        self.n = n
        if alloc is None:
            alloc = allocator(n + room)
            fill(alloc, n)
        self.alloc = alloc
        self.ids = [token.id for token in self.alloc.tokens()]


def measure_memory(n: int, room: int) -> tuple[Filled, float, float]:
    """A :class:`Filled` of ``n`` built under tracemalloc (slower to build, as fast to use),
    its bytes per token, and the floor's bytes per entry (SortedList of tuples plus dict)."""
    # Patient ids are the caller's strings (the allocator keeps a reference, not a copy), so
    # they are made before tracing starts; everything the allocator allocates is counted.
    patients = [f"P{i}" for i in range(n)]
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        alloc = allocator(n + room)
        fill(alloc, n, patients=patients)
        gc.collect()
        per_token = (tracemalloc.get_traced_memory()[0] - before) / n
        before = tracemalloc.get_traced_memory()[0]
        queue: SortedList[tuple[int, int, str]] = SortedList()
        index: dict[str, tuple[int, int, str]] = {}
        for i in range(n):
            key = key_of(i)
            queue.add(key)
            index[key[2]] = key
        gc.collect()
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / n
        del queue, index
    finally:
        tracemalloc.stop()
    gc.collect()
    return Filled(n, room, alloc), per_token, per_entry


class Read(Bench):
    """position or estimated_start of tokens spread over the queue; changes nothing."""

    def __init__(self, state: Filled, batch: int, name: str) -> None:
        self.targets = spread(state.ids, batch)
        self.method: Callable[[str], object] = getattr(state.alloc, name)

    def trial(self) -> Trial:
        method, targets = self.method, self.targets

        def run() -> None:
            for token_id in targets:
                method(token_id)

        return run, len(targets)


class Queue(Bench):
    def __init__(self, state: Filled, batch: int) -> None:
        self.queue = state.alloc.queue
        self.batch = batch

    def trial(self) -> Trial:
        queue, batch = self.queue, self.batch

        def run() -> None:
            for _ in range(batch):
                queue("S1")

        return run, batch


class Book(Bench):
    def __init__(self, state: Filled, batch: int) -> None:
        self.alloc = state.alloc
        self.batch = batch
        self.trials = 0

    def trial(self) -> Trial:
        alloc, batch = self.alloc, self.batch
        self.trials += 1
        book = alloc.book
        patients = [f"N{self.trials}-{i}" for i in range(batch)]

        def run() -> None:
            for i, patient in enumerate(patients):
                book(patient, "D1", "S1", source=SOURCES[i % 4])

        return run, batch

    def undo(self) -> None:  # the slot holds n tokens again
        for token_id in last_issued(self.alloc, self.batch):
            self.alloc.cancel(token_id)


class CheckIn(Bench):
    """Booked tokens of a slot of its own arrive; fresh ones each batch (a new slot when
    every booked token has arrived)."""

    def __init__(self, n: int, batch: int) -> None:
        self.state = Filled(n, 0)
        self.batch = batch
        self.pool = self.booked(self.state, batch)

    @staticmethod
    def booked(state: Filled, batch: int) -> Pool:
        booked = {t.id for t in state.alloc.tokens() if t.status is TokenStatus.BOOKED}
        return Pool([i for i in state.ids if i in booked], batch)

    def trial(self) -> Trial:
        if not self.pool.enough():  # every booked token has arrived: a new slot
            self.state = Filled(self.state.n, 0)
            self.pool = self.booked(self.state, self.batch)
        targets = self.pool.take()
        check_in = self.state.alloc.check_in

        def run() -> None:
            for token_id in targets:
                check_in(token_id)

        return run, len(targets)


class CallNext(Bench):
    """n + batch tokens, all checked in; each batch calls ``batch`` of them, then as many
    new checked-in patients are booked."""

    def __init__(self, n: int, batch: int) -> None:
        self.alloc = allocator(n + batch * 1_000)  # called patients keep their places
        fill(self.alloc, n + batch)
        for token in self.alloc.tokens():
            if token.checked_in_at is None:
                self.alloc.check_in(token.id)
        self.batch = batch
        self.trials = 0

    def trial(self) -> Trial:
        call_next, batch = self.alloc.call_next, self.batch

        def run() -> None:
            for _ in range(batch):
                call_next("D1")

        return run, batch

    def undo(self) -> None:
        self.trials += 1
        for i in range(self.batch):
            patient = f"C{self.trials}-{i}"
            self.alloc.book(patient, "D1", "S1", source=SOURCES[i % 4], checked_in=True)


class Cancel(Bench):
    """A full slot of n tokens and ``batch`` waitlisted; each cancel refills from the
    waitlist, then as many new tokens are waitlisted. Fresh targets each batch (a new slot
    when they run out)."""

    def __init__(self, n: int, batch: int) -> None:
        self.n = n
        self.batch = batch
        self.build()

    def build(self) -> None:
        self.alloc = allocator(self.n, on_full=OnFull.WAITLIST)
        fill(self.alloc, self.n)
        self.pool = Pool([token.id for token in self.alloc.tokens()], self.batch)
        self.batch = self.pool.batch
        self.waitlisted = 0
        self.top_up()

    def top_up(self) -> None:
        missing = self.batch - len(self.alloc.waitlist("D1"))
        fill(self.alloc, missing, "W", first=self.waitlisted)
        self.waitlisted += missing
        assert self.alloc.slot("S1").free == 0

    def trial(self) -> Trial:
        if not self.pool.enough():
            self.build()
        targets = self.pool.take()
        cancel = self.alloc.cancel

        def run() -> None:
            for token_id in targets:
                cancel(token_id)  # each refills the place from the waitlist

        return run, len(targets)

    def undo(self) -> None:
        self.top_up()


# ------------------------------------------------------------------------- the live floor


class Repeat(Bench):
    """``call()`` ``batch`` times on a state it leaves as it found it (a read, a pause
    and its resume, a preview)."""

    def __init__(self, call: Callable[[], object], batch: int) -> None:
        self.call = call
        self.batch = batch

    def trial(self) -> Trial:
        call, batch = self.call, self.batch

        def run() -> None:
            for _ in range(batch):
                call()

        return run, batch


def preview_bench(state: Filled, batch: int) -> Repeat:
    """The preview of a booking in the shared slot: the booking, then its undo."""
    alloc = state.alloc

    def book(a: Allocator) -> None:
        a.book("Preview", "D1", "S1", source=Source.WALK_IN)

    return Repeat(lambda: alloc.preview(book), batch)


def pause_bench(state: Filled, batch: int) -> Repeat:
    alloc = state.alloc

    def pause_resume() -> None:
        alloc.pause("D1")
        alloc.resume("D1")

    return Repeat(pause_resume, batch)


def present(n: int, room: int) -> Allocator:
    """Slot S1 holding ``n`` checked-in tokens of mixed sources, room for ``room`` more."""
    alloc = allocator(n + room)
    book = alloc.book
    for i in range(n):
        book(f"P{i}", "D1", "S1", source=SOURCES[i % 4], checked_in=True)
    return alloc


class StepOut(Bench):
    """Checked-in tokens spread over the queue step out; after the batch, untimed, they
    come back (``check_in``) to the same places."""

    def __init__(self, n: int, batch: int) -> None:
        self.alloc = present(n, 0)
        self.targets = spread([token.id for token in self.alloc.tokens()], batch)

    def trial(self) -> Trial:
        step_out, targets = self.alloc.step_out, self.targets

        def run() -> None:
            for token_id in targets:
                step_out(token_id)

        return run, len(targets)

    def undo(self) -> None:
        for token_id in self.targets:
            self.alloc.check_in(token_id)


class CallOutOfTurn(Bench):
    """``call`` of checked-in tokens spread over the queue (each call completes the one
    before); fresh targets each batch, as many new patients checked in after it."""

    def __init__(self, n: int, batch: int) -> None:
        self.n, self.batch = n, batch
        self.build()

    def build(self) -> None:
        self.alloc = present(self.n, self.batch * 1_000)
        self.pool = Pool([token.id for token in self.alloc.tokens()], self.batch)
        self.trials = 0

    def trial(self) -> Trial:
        if not self.pool.enough():
            self.build()
        targets = self.pool.take()
        call = self.alloc.call

        def run() -> None:
            for token_id in targets:
                call(token_id)

        return run, len(targets)

    def undo(self) -> None:
        self.trials += 1
        book = self.alloc.book
        for i in range(self.pool.batch):
            book(f"C{self.trials}-{i}", "D1", "S1", source=SOURCES[i % 4], checked_in=True)


class EndDay(Bench):
    """One ``end_day`` of a doctor holding n tokens (booked and checked in), per token it
    ends; a new day is built after each batch (untimed)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.undo()

    def trial(self) -> Trial:
        end_day = self.alloc.end_day
        return (lambda: end_day("D1")), self.n

    def undo(self) -> None:
        self.alloc = allocator(self.n)
        fill(self.alloc, self.n)


def _ignore(event: object) -> None:
    """A subscriber that does nothing: what the allocator pays to build and deliver events."""


class Subscribed(Bench):
    """The same operation with one no-op subscriber attached for the timed batch, as a
    display board would be: the allocator then builds and delivers every event."""

    def __init__(self, inner: Bench) -> None:
        self.inner = inner
        self.unsubscribe: Callable[[], None] | None = None

    def trial(self) -> Trial:
        run, operations = self.inner.trial()  # may build a new state: subscribe after
        alloc = getattr(self.inner, "alloc", None) or self.inner.state.alloc  # type: ignore[attr-defined]
        self.unsubscribe = alloc.subscribe(_ignore)
        return run, operations

    def undo(self) -> None:
        assert self.unsubscribe is not None
        self.unsubscribe()
        self.inner.undo()


# ------------------------------------------------------------------------- baselines


PRIORITIES: Final = tuple(int(source.default_priority) for source in SOURCES)


def key_of(i: int) -> tuple[int, int, str]:
    return (PRIORITIES[i % 4], i, f"D1-{i:07d}")


class Floor(Bench):
    """The fair floor: per booking, build the ``(priority, seq, id)`` key and the id string,
    ``SortedList.add`` it to a list grown by ``add`` (as a slot's is), insert into a dict."""

    def __init__(self, n: int, batch: int) -> None:
        self.queue: SortedList[tuple[int, int, str]] = SortedList()
        self.index: dict[str, tuple[int, int, str]] = {}
        for i in range(n):
            key = key_of(i)
            self.queue.add(key)
            self.index[key[2]] = key
        self.n = n
        self.batch = batch

    def trial(self) -> Trial:
        queue, index, first = self.queue, self.index, self.n
        numbers = range(first, first + self.batch)

        def run() -> None:
            for i in numbers:
                token_id = f"D1-{i:07d}"
                key = (PRIORITIES[i % 4], i, token_id)
                queue.add(key)
                index[token_id] = key

        return run, self.batch

    def undo(self) -> None:
        for i in range(self.n, self.n + self.batch):
            key = key_of(i)
            self.queue.remove(key)
            del self.index[key[2]]


class Seed(Bench):
    # The seed kept a plain list of bookings and sorted it on every booking.
    def __init__(self, n: int, batch: int) -> None:
        self.entries = [(int(SOURCES[i % 4].default_priority), i) for i in range(n)]
        self.new = [(int(SOURCES[(n + i) % 4].default_priority), n + i) for i in range(batch)]

    def trial(self) -> Trial:
        entries = self.entries.copy()
        new = self.new

        def arrival_order(entry: tuple[int, int]) -> tuple[int, int]:
            return entry

        def run() -> None:
            for entry in new:
                entries.append(entry)
                entries.sort(key=arrival_order)

        return run, len(new)


# ------------------------------------------------------------------------- the hospital


class Hospital:
    """``doctors`` x ``slots`` slots of ``capacity`` (15 minutes each from 09:00), filled
    with mixed sources, slot by slot, up to ``room`` free places in each doctor's last."""

    def __init__(self, doctors: int, slots: int, capacity: int, room: int) -> None:
        self.alloc = alloc = Allocator(clock=clock)
        self.doctors = [f"D{d:03d}" for d in range(doctors)]
        k = 0
        for doctor in self.doctors:
            alloc.add_doctor(Doctor(doctor, f"Dr. {doctor}"))
            for s in range(slots):
                begins = START + timedelta(minutes=15 * s)
                slot = f"{doctor}-S{s:02d}"
                alloc.add_slot(Slot(slot, doctor, begins, begins + timedelta(minutes=15), capacity))
                for _ in range(capacity - (room if s == slots - 1 else 0)):
                    alloc.book(f"P{k}", doctor, slot, source=SOURCES[k % 4])
                    k += 1
        self.tokens = k
        self.ids = [token.id for token in alloc.tokens()]

    def moves(self) -> int:
        """Pull-forward moves so far, over every token. O(tokens)."""
        return sum(token.moves for token in self.alloc.tokens())


class HospitalBook(Bench):
    """``book(patient, doctor)`` round robin over the doctors: the allocator walks each
    doctor's full slots to the last; what was booked is cancelled after each batch."""

    def __init__(self, hospital: Hospital, batch: int) -> None:
        self.hospital = hospital
        self.batch = batch
        self.trials = 0

    def trial(self) -> Trial:
        alloc, batch, doctors = self.hospital.alloc, self.batch, self.hospital.doctors
        self.trials += 1
        book = alloc.book
        calls = [(f"H{self.trials}-{i}", doctors[i % len(doctors)]) for i in range(batch)]

        def run() -> None:
            for i, (patient, doctor) in enumerate(calls):
                book(patient, doctor, source=SOURCES[i % 4])

        return run, batch

    def undo(self) -> None:
        for token_id in last_issued(self.hospital.alloc, self.batch):
            self.hospital.alloc.cancel(token_id)


class HospitalCheckIn(Bench):
    def __init__(self, hospital: Hospital, batch: int) -> None:
        self.hospital = hospital
        booked = {t.id for t in hospital.alloc.tokens() if t.status is TokenStatus.BOOKED}
        self.pool = Pool([i for i in hospital.ids if i in booked], batch)

    def trial(self) -> Trial:
        token = self.hospital.alloc.token
        targets = self.pool.take(lambda i: token(i).status is TokenStatus.BOOKED)
        assert len(targets) == self.pool.batch
        check_in = self.hospital.alloc.check_in

        def run() -> None:
            for token_id in targets:
                check_in(token_id)

        return run, len(targets)


class HospitalCallNext(Bench):
    """``call_next`` round robin over the doctors, who call from their current slot."""

    def __init__(self, hospital: Hospital, batch: int) -> None:
        self.hospital = hospital
        self.batch = batch

    def trial(self) -> Trial:
        alloc, doctors = self.hospital.alloc, self.hospital.doctors
        calls = [doctors[i % len(doctors)] for i in range(self.batch)]
        per_doctor = -(-self.batch // len(doctors))
        for doctor in doctors:  # enough patients present that no call comes back empty
            present = sum(slot.present for slot in alloc.slots(doctor))
            if present < per_doctor:
                arriving = [
                    t.id
                    for slot in alloc.slots(doctor)
                    for t in alloc.queue(slot.id)
                    if t.status is TokenStatus.BOOKED
                ]
                for token_id in arriving[: per_doctor - present]:
                    alloc.check_in(token_id)
        call_next = alloc.call_next

        def run() -> None:
            for doctor in calls:
                call_next(doctor)

        return run, len(calls)


class HospitalBoard(Bench):
    """The display board of the whole hospital (200 doctors, the next 3 each), per call."""

    def __init__(self, hospital: Hospital, batch: int) -> None:
        self.board = hospital.alloc.board
        self.batch = batch

    def trial(self) -> Trial:
        board, batch = self.board, self.batch

        def run() -> None:
            for _ in range(batch):
                board()

        return run, batch


class HospitalCancel(Bench):
    """Cancel waiting tokens spread over every doctor and slot. Each freed place is refilled
    by pulling forward the first checked-in patient of the nearest later slot with one, and
    so on down the doctor's slots; after each batch as many new tokens are booked (into the
    freed places)."""

    def __init__(self, hospital: Hospital, batch: int) -> None:
        self.hospital = hospital
        waiting = {t.id for t in hospital.alloc.tokens() if t.status in WAITING}
        self.pool = Pool([i for i in hospital.ids if i in waiting], batch)
        self.cancelled: list[str] = []
        self.moves_before = 0
        self.moves = 0
        self.trials = 0

    def trial(self) -> Trial:
        alloc = self.hospital.alloc
        token = alloc.token
        targets = self.cancelled = self.pool.take(lambda i: token(i).status in WAITING)
        assert len(targets) == self.pool.batch
        self.moves_before = self.hospital.moves()
        cancel = alloc.cancel

        def run() -> None:
            for token_id in targets:
                cancel(token_id)

        return run, len(targets)

    def undo(self) -> None:
        self.moves += self.hospital.moves() - self.moves_before
        self.trials += 1
        alloc = self.hospital.alloc
        for i, token_id in enumerate(self.cancelled):
            doctor = alloc.token(token_id).doctor_id
            alloc.book(f"R{self.trials}-{i}", doctor, source=SOURCES[i % 4])

    def moves_per_cancel(self) -> float:
        return self.moves / (self.trials * self.pool.batch)


# ------------------------------------------------------------------------- timing


def measure(
    benches: dict[str, Bench], repeats: int, spreads: dict[str, float] | None = None
) -> dict[str, float]:
    """Median microseconds per operation of each bench over ``repeats`` batches; into
    ``spreads``, each bench's (slowest - fastest batch) / median.

    The benches take turns, one batch each per repeat, so that a slow spell of the shared
    machine falls on the operations and their baselines alike.
    """
    samples: dict[str, list[float]] = {name: [] for name in benches}
    for _ in range(repeats):
        for name, bench in benches.items():
            run, operations = bench.trial()
            gc.collect()
            gc.disable()
            try:
                began = time.perf_counter_ns()
                run()
                elapsed = time.perf_counter_ns() - began
            finally:
                gc.enable()
            bench.undo()
            samples[name].append(elapsed / operations / 1000)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    if spreads is not None:
        for name, values in samples.items():
            spreads[name] = (max(values) - min(values)) / medians[name]
    return medians


def settle() -> None:
    """Collect, then exempt every live object from later collections (the filled states
    would otherwise make each ``gc.collect()`` before a batch take seconds at 10^6)."""
    gc.collect()
    gc.freeze()


def release() -> None:
    gc.unfreeze()
    gc.collect()


SUBSCRIBED = "+sub"  # suffix: the operation with one no-op subscriber
# The live floor (DESIGN section 10): reported with their flatness, without a target.
FLOOR_OPERATIONS = (
    "next_up",
    "estimate",
    "now_serving",
    "pause+resume",
    "preview",
    "call",
    "step_out",
    "end_day",
)
SLOT_OPERATIONS = (
    "floor",
    "seed",
    "book",
    "check_in",
    "call_next",
    "cancel",
    f"book{SUBSCRIBED}",
    f"check_in{SUBSCRIBED}",
    f"call_next{SUBSCRIBED}",
    f"cancel{SUBSCRIBED}",
    "position",
    "estimated_start",
    "queue",
    *FLOOR_OPERATIONS,
)
SHARED = (  # one Filled
    "position",
    "estimated_start",
    "queue",
    "book",
    f"book{SUBSCRIBED}",
    "next_up",
    "estimate",
    "now_serving",
    "pause+resume",
    "preview",
)
HOSPITAL_OPERATIONS = ("floor", "book", "check_in", "call_next", "cancel", "board")


def batch_of(name: str, n: int) -> int:
    name = name.removesuffix(SUBSCRIBED)
    if name == "seed":
        return SEED_BATCH
    if name == "queue":
        return QUEUE_BATCH
    if name == "end_day":
        return n
    return min(BATCH, n)


def bench_for(name: str, n: int, state: Filled | None) -> Bench:
    if name.endswith(SUBSCRIBED):
        return Subscribed(bench_for(name.removesuffix(SUBSCRIBED), n, state))
    batch = batch_of(name, n)
    if name == "floor":
        return Floor(n, batch)
    if name == "seed":
        return Seed(n, batch)
    if name == "check_in":
        return CheckIn(n, batch)
    if name == "call_next":
        return CallNext(n, batch)
    if name == "cancel":
        return Cancel(n, batch)
    if name == "call":
        return CallOutOfTurn(n, batch)
    if name == "step_out":
        return StepOut(n, batch)
    if name == "end_day":
        return EndDay(n)
    assert state is not None
    if name == "estimate":
        return Read(state, batch, name)
    if name == "next_up":
        next_up = state.alloc.next_up
        return Repeat(lambda: next_up("D1", 3), batch)
    if name == "now_serving":
        now_serving = state.alloc.now_serving
        return Repeat(lambda: now_serving("D1"), batch)
    if name == "pause+resume":
        return pause_bench(state, batch)
    if name == "preview":
        return preview_bench(state, batch)
    if name in ("position", "estimated_start"):
        return Read(state, batch, name)
    if name == "queue":
        return Queue(state, batch)
    assert name == "book"
    return Book(state, batch)


def run_sizes(
    names: Sequence[str], sizes: Sequence[int], repeats: int, memory: bool
) -> tuple[
    dict[str, dict[str, float]],
    dict[str, dict[str, float]],
    dict[str, dict[str, float]],
    dict[str, Any] | None,
]:
    """Microseconds per operation per name and size, and their spreads; seconds per size
    spent building the filled states (``setup``, untimed) and in all (``wall``); memory at
    each of ``MEMORY_SIZES`` run and at the largest size."""
    results: dict[str, dict[str, float]] = {name: {} for name in names}
    spreads: dict[str, dict[str, float]] = {name: {} for name in names}
    seconds: dict[str, dict[str, float]] = {"setup": {}, "wall": {}}
    memory_figures: dict[str, Any] | None = None
    for n in sizes:
        began = time.perf_counter()
        state: Filled | None = None
        if memory and (n in MEMORY_SIZES or n == sizes[-1]):
            state, per_token, per_entry = measure_memory(n, BATCH)
            at = {"bytes_per_token": per_token, "floor_bytes_per_entry": per_entry}
            # The largest size's figures at the top level, every size measured under "at".
            previous = memory_figures["at"] if memory_figures is not None else {}
            memory_figures = {"tokens": n, **at, "at": {**previous, str(n): at}}
        elif any(name in SHARED for name in names):
            state = Filled(n, BATCH)
        benches = {name: bench_for(name, n, state) for name in names}
        setup = time.perf_counter() - began
        settle()
        spread: dict[str, float] = {}
        for name, value in measure(benches, repeats, spread).items():
            results[name][str(n)] = value
            spreads[name][str(n)] = spread[name]
        del benches, state
        release()
        seconds["setup"][str(n)] = setup
        seconds["wall"][str(n)] = time.perf_counter() - began
        print(
            f"  n={n:,}: {seconds['wall'][str(n)]:.1f} s, of which {setup:.1f} s building "
            "filled states",
            flush=True,
        )
    return results, spreads, seconds, memory_figures


def run_hospital(repeats: int) -> dict[str, Any]:
    began = time.perf_counter()
    hospital = Hospital(HOSPITAL_DOCTORS, HOSPITAL_SLOTS, HOSPITAL_CAPACITY, HOSPITAL_ROOM)
    build = time.perf_counter() - began
    cancel = HospitalCancel(hospital, BATCH)
    benches: dict[str, Bench] = {
        "floor": Floor(hospital.tokens, BATCH),
        "book": HospitalBook(hospital, BATCH),
        "check_in": HospitalCheckIn(hospital, BATCH),
        "call_next": HospitalCallNext(hospital, BATCH),
        "cancel": cancel,
        "board": HospitalBoard(hospital, BOARD_BATCH),
    }
    settle()
    micro = measure(benches, repeats)
    del benches
    release()
    return {
        "doctors": HOSPITAL_DOCTORS,
        "slots_per_doctor": HOSPITAL_SLOTS,
        "capacity": HOSPITAL_CAPACITY,
        "tokens": hospital.tokens,
        "build_seconds": build,
        "microseconds_per_operation": micro,
        "ratios": {
            f"{name} / floor": micro[name] / micro["floor"] for name in micro if name != "floor"
        },
        "moves_per_cancel": cancel.moves_per_cancel(),
    }


# ------------------------------------------------------------------------- report


def verdict(met: bool) -> str:
    return "PASS" if met else "MISS"


# A figure read from a results file (this run's or an earlier one's): None where it lacks it.
Reader = Callable[[dict[str, Any]], float | None]


def ratio_reader(top: str, bottom: str, n: int) -> Reader:
    """``top`` / ``bottom`` at size ``n``, from the raw microseconds per operation."""

    def read(document: dict[str, Any]) -> float | None:
        micro = document.get("microseconds_per_operation") or {}
        try:
            return float(micro[top][str(n)] / micro[bottom][str(n)])
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    return read


def flatness_reader(name: str, first: int, last: int) -> Reader:
    """``name``'s cost per operation at size ``last`` over its cost at size ``first``."""

    def read(document: dict[str, Any]) -> float | None:
        micro = document.get("microseconds_per_operation") or {}
        try:
            return float(micro[name][str(last)] / micro[name][str(first)])
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    return read


def memory_reader(n: int) -> Reader:
    """Bytes per live token at size ``n`` (older files measured the largest size only)."""

    def read(document: dict[str, Any]) -> float | None:
        memory = document.get("memory") or {}
        at = (memory.get("at") or {}).get(str(n))
        if at is not None:
            return float(at["bytes_per_token"])
        if memory.get("tokens") == n:
            return float(memory["bytes_per_token"])
        return None

    return read


def simulation_reader(day_sized: bool) -> Reader:
    """Ciw's time per patient over opd-engine's: the M/M/1 at the top level of the
    simulation's figures, the day-sized model under ``"day_sized"``."""

    def read(document: dict[str, Any]) -> float | None:
        simulation = document.get("simulation") or {}
        if day_sized:
            simulation = simulation.get("day_sized") or {}
        ratio = simulation.get("ratio_ciw_over_opd_engine")
        return None if ratio is None else float(ratio)

    return read


class Goal:
    """A target: a figure, its limit, and how to read the figure from a results file."""

    def __init__(
        self,
        figure: str,
        limit: float,
        at_most: bool,
        read: Reader,
        ratio: tuple[str, int] | None = None,
    ) -> None:
        self.figure = figure
        self.limit = limit
        self.at_most = at_most
        self.read = read
        self.ratio = ratio  # (the ratio's label, the size it is taken at), for the report

    @property
    def target(self) -> str:
        return f"{'<=' if self.at_most else '>='} {self.limit:g}"

    def met(self, value: float) -> bool:
        return value <= self.limit if self.at_most else value >= self.limit


def goals_for(sizes: Sequence[int]) -> list[Goal]:
    """Every target of a run over ``sizes``, in the order they are reported."""
    goals: list[Goal] = []

    def ratio(top: str, bottom: str, n: int, limit: float, at_most: bool = True) -> None:
        label = f"{top} / {bottom}"
        read = ratio_reader(top, bottom, n)
        goals.append(Goal(f"{label} at n={n:,}", limit, at_most, read, ratio=(label, n)))

    ratio("book", "floor", TARGET_SIZE, BOOK_OVER_FLOOR)
    ratio("cancel", "floor", TARGET_SIZE, CANCEL_OVER_FLOOR)
    ratio("call_next", "floor", TARGET_SIZE, CALL_NEXT_OVER_FLOOR)
    for name in ("book", "check_in", "call_next", "cancel"):
        ratio(f"{name}{SUBSCRIBED}", name, TARGET_SIZE, SUBSCRIBER_OVERHEAD)
    ratio("seed", "book", SEED_SIZE, SEED_OVER_BOOK, at_most=False)
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        for name in ("book", "cancel", "call_next"):
            figure = f"{name} flatness, n={last:,} / n={first:,}"
            goals.append(Goal(figure, FLATNESS, True, flatness_reader(name, first, last)))
    goals.extend(
        Goal(f"bytes per token at n={n:,}", BYTES_PER_TOKEN, True, memory_reader(n))
        for n in MEMORY_SIZES
    )
    goals.append(
        Goal(
            "simulation ciw / opd-engine, 3-class M/M/1",
            CIW_OVER_OPD,
            False,
            simulation_reader(False),
        )
    )
    goals.append(
        Goal(
            "simulation ciw / opd-engine, day-sized",
            CIW_OVER_OPD_DAY,
            False,
            simulation_reader(True),
        )
    )
    return goals


def machine() -> dict[str, Any]:
    """What the run ran on: the platform, the processor (its model name where Linux tells
    it) and the number of CPUs."""
    processor = platform.processor() or None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    processor = value.strip()
                    break
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "machine": platform.machine() or None,
        "processor": processor,
        "cpus": os.cpu_count(),
    }


def git(*args: str) -> str | None:
    """The output of a git command in the repository of the opd_engine imported (the code
    measured), or None where git cannot answer (not installed, not a repository)."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=Path(opd_engine.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout


def commit(output: str | None) -> tuple[str | None, bool | None]:
    """The commit checked out, and whether tracked files differ from it (the results file
    ``output`` aside, which a previous run may have rewritten); None where git cannot tell."""
    head = git("rev-parse", "HEAD")
    if head is None:
        return None, None
    root = git("rev-parse", "--show-toplevel")
    pathspec = [":(top)"]  # the whole working tree (git runs in the package's folder)
    if output is not None and root is not None:
        path = Path(output).resolve()
        if path.is_relative_to(Path(root.strip()).resolve()):
            pathspec.append(f":(exclude,top){path.relative_to(Path(root.strip()).resolve())}")
    status = git("status", "--porcelain", "--untracked-files=no", "--", *pathspec)
    return head.strip(), None if status is None else bool(status.strip())


def earlier_run(path: str, goals: Sequence[Goal]) -> dict[str, Any]:
    """What ``--before`` stores: the earlier run's provenance (null where its file lacks
    it) and its values of this run's target figures, read from its raw figures."""
    with open(path, encoding="utf-8") as file:
        earlier = json.load(file)
    return {
        "commit": earlier.get("commit"),
        "uncommitted_changes": earlier.get("uncommitted_changes"),
        "python": earlier.get("python"),
        "machine": earlier.get("machine"),
        "opd_engine": earlier.get("opd_engine"),
        "sortedcontainers": earlier.get("sortedcontainers"),
        "ciw": (earlier.get("simulation") or {}).get("ciw"),
        "sizes": earlier.get("sizes"),
        "repeats": earlier.get("repeats"),
        "figures": [
            {"figure": goal.figure, "value": goal.read(earlier), "target": goal.target}
            for goal in goals
        ],
    }


def profile(name: str, n: int, repeats: int, top: int) -> None:
    """cProfile ``repeats`` batches of ``name`` at size ``n`` (the batches only)."""
    state = Filled(n, BATCH) if name in SHARED else None
    bench = bench_for(name, n, state)
    profiler = cProfile.Profile()
    operations = 0
    for _ in range(repeats):
        run, count = bench.trial()
        operations += count
        profiler.enable()
        run()
        profiler.disable()
        bench.undo()
    print(f"cProfile of {operations:,} x {name} at n={n:,} (Python {platform.python_version()})")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--full", action="store_true", help="add 10^6 to the sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="sizes 10^3 and 10^4, 3 repeats")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[*SLOT_OPERATIONS, "hospital", "memory"],
        help="a subset (floor and seed always run)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--simulation-json",
        metavar="PATH",
        help="bench_simulation.py's --json output: print it and merge it into --json",
    )
    parser.add_argument(
        "--before",
        metavar="PATH",
        help="an earlier run's --json output: compare with it and store its figures in --json",
    )
    parser.add_argument(
        "--profile",
        metavar="OPERATION",
        choices=SLOT_OPERATIONS,
        help="only cProfile that operation at the largest size and print the top functions",
    )
    args = parser.parse_args(argv)
    sizes: list[int] = [1_000, 10_000] if args.quick else list(args.sizes)
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    sizes = sorted(set(sizes))
    repeats: int = 3 if args.quick else args.repeats
    if repeats < 1 or sizes[0] < 1:
        parser.error("--repeats and --sizes must be >= 1")
    if args.profile:
        profile(args.profile, sizes[-1], repeats, top=15)
        return 0
    chosen = args.only or [*SLOT_OPERATIONS, "hospital", "memory"]
    names = [name for name in SLOT_OPERATIONS if name in chosen or name in ("floor", "seed")]
    simulation: dict[str, Any] | None = None
    if args.simulation_json:
        with open(args.simulation_json, encoding="utf-8") as file:
            simulation = json.load(file)
    goals = goals_for(sizes)
    # Read before the run, so that a missing file fails fast and --before may be --json.
    before = earlier_run(args.before, goals) if args.before else None
    head, uncommitted = commit(args.json)  # the code as it is when the run starts
    host = machine()

    python = platform.python_version()
    print(
        f"opd-engine {version('opd-engine')}, sortedcontainers {version('sortedcontainers')}, "
        f"Python {python}; median of {repeats} batches"
    )
    print(
        f"machine: {host['processor'] or host['machine']}, {host['cpus']} CPUs, "
        f"{host['platform']}; commit {head or 'unknown'}"
        + (" with uncommitted changes" if uncommitted else "")
    )
    print(f"sizes: {', '.join(f'{n:,}' for n in sizes)} tokens in one slot", flush=True)
    results, spreads, seconds, memory = run_sizes(names, sizes, repeats, "memory" in chosen)

    print()
    print("microseconds per operation")
    header = f"{'operation':<16}" + "".join(f"{f'n={n:,}':>14}" for n in sizes)
    print(header)
    print("-" * len(header))
    for name in names:
        row = results[name]
        print(f"{name:<16}" + "".join(f"{row[str(n)]:>14.2f}" for n in sizes))
    for kind, label in (("setup", "build states, s"), ("wall", "wall clock, s")):
        print(f"{label:<16}" + "".join(f"{seconds[kind][str(n)]:>14.1f}" for n in sizes))
    print()
    print(f"spread: (slowest - fastest of the {repeats} batches) / median")
    print(header)
    print("-" * len(header))
    for name in names:
        row = spreads[name]
        print(f"{name:<16}" + "".join(f"{row[str(n)]:>13.0%} " for n in sizes))

    # Every target is read from the figures as the results file holds them, as --before
    # reads an earlier file's.
    figures: dict[str, Any] = {
        "microseconds_per_operation": results,
        "memory": memory,
        "simulation": simulation,
    }
    targets: list[dict[str, Any]] = []
    notes: dict[str, str] = {}
    for goal in goals:
        value = goal.read(figures)
        if value is None:
            notes[goal.figure] = f"(target {goal.target}: not run)"
            continue
        met = goal.met(value)
        targets.append({"figure": goal.figure, "value": value, "target": goal.target, "met": met})
        notes[goal.figure] = f"target {goal.target}: {verdict(met)}"

    print()
    print("ratios (same run)")
    ratios: dict[str, dict[str, float]] = {}
    pairs: list[tuple[str, str, str]] = [
        (f"{name} / floor", name, "floor")
        for name in ("book", "cancel", "check_in", "call_next")
        if name in results
    ]
    pairs += [
        (f"{name}{SUBSCRIBED} / {name}", f"{name}{SUBSCRIBED}", name)
        for name in ("book", "cancel", "check_in", "call_next")
        if name in results and f"{name}{SUBSCRIBED}" in results
    ]
    if "book" in results:
        pairs.append(("seed / book", "seed", "book"))
    for label, top, bottom in pairs:
        row = {str(n): results[top][str(n)] / results[bottom][str(n)] for n in sizes}
        ratios[label] = row
        line = f"{label:<26}" + "".join(f"{row[str(n)]:>13.1f}x" for n in sizes)
        for goal in goals:
            if goal.ratio is not None and goal.ratio[0] == label:
                line += f"   at n={goal.ratio[1]:,}: {notes[goal.figure]}"
        print(line)

    flatness: dict[str, float] = {}
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        print()
        print(f"flatness: per-op cost at n={last:,} / at n={first:,}")
        for name in ("book", "cancel", "call_next", "check_in", *FLOOR_OPERATIONS):
            if name not in results:
                continue
            growth = results[name][str(last)] / results[name][str(first)]
            flatness[name] = growth
            line = f"{name:<26}{growth:>13.2f}x"
            figure = f"{name} flatness, n={last:,} / n={first:,}"
            if figure in notes:
                line += "   " + notes[figure]
            print(line)

    hospital: dict[str, Any] | None = None
    if "hospital" in chosen:
        hospital = run_hospital(repeats)
        print()
        print(
            f"hospital: {hospital['doctors']} doctors x {hospital['slots_per_doctor']} slots "
            f"of capacity {hospital['capacity']}, {hospital['tokens']:,} tokens, mixed sources "
            f"(built in {hospital['build_seconds']:.1f} s)"
        )
        header = f"{'operation':<16}{'us/op':>10}{'/ floor':>10}"
        print(header)
        print("-" * len(header))
        micro = hospital["microseconds_per_operation"]
        for name in HOSPITAL_OPERATIONS:
            ratio = micro[name] / micro["floor"]
            print(f"{name:<16}{micro[name]:>10.2f}{ratio:>9.1f}x")
        print(
            "book walks each doctor's 16 slots to the last; each cancel moved "
            f"{hospital['moves_per_cancel']:.1f} tokens forward on average; board shows "
            f"the next 3 of each of the {hospital['doctors']} doctors "
            f"({micro['board'] / hospital['doctors']:.2f} us per doctor)"
        )

    if memory is not None:
        print()
        print("memory (tracemalloc, after filling - before) / n")
        for n, at in memory["at"].items():
            per_token, per_entry = at["bytes_per_token"], at["floor_bytes_per_entry"]
            figure = f"bytes per token at n={int(n):,}"
            print(
                f"{f'n={int(n):,}, per live token':<30}{per_token:>10,.0f} bytes   "
                + notes.get(figure, "(no target at this size)")
            )
            print(
                f"{f'n={int(n):,}, floor, per entry':<30}{per_entry:>10,.0f} bytes   "
                f"(SortedList of tuples + dict; token / floor {per_token / per_entry:.1f}x)"
            )

    if simulation is not None:
        print()
        print(
            f"simulation ({args.simulation_json}, Python {simulation['python']}, "
            f"Ciw {simulation['ciw']})"
        )
        for key, model, figure in (
            (None, "3-class M/M/1", "simulation ciw / opd-engine, 3-class M/M/1"),
            ("day_sized", "day-sized model", "simulation ciw / opd-engine, day-sized"),
        ):
            part = simulation if key is None else simulation.get(key)
            if part is None or "timing" not in part:
                print(f"{model}: not in the file")
                continue
            timing = part["timing"]
            print(
                f"{model} ({part['repeats']} runs): us per patient: opd-engine "
                f"{timing['opd-engine']['microseconds_per_patient']:.1f}, Ciw "
                f"{timing['ciw']['microseconds_per_patient']:.1f}; ciw / opd-engine "
                f"{part['ratio_ciw_over_opd_engine']:.2f}x   {notes[figure]}"
            )

    print()
    print("targets")
    for item in targets:
        print(
            f"  {verdict(item['met'])}  {item['figure']:<44}{item['value']:>10.2f}"
            f"   (target {item['target']})"
        )
    for goal in goals:
        if goal.figure not in {item["figure"] for item in targets}:
            print(f"  ----  {goal.figure:<44}{'not run':>10}   (target {goal.target})")

    if before is not None:
        print()
        was = before["machine"]
        print(
            f"before ({args.before}): commit {before['commit'] or 'not recorded'}, Python "
            f"{before['python'] or 'not recorded'}, machine "
            + (
                f"{was['processor'] or was['machine']}, {was['cpus']} CPUs"
                if was
                else "not recorded"
            )
        )
        if was is not None and (was["processor"], was["cpus"]) != (host["processor"], host["cpus"]):
            print("  the earlier run was on another machine: its figures do not compare")
        after = {item["figure"]: item["value"] for item in targets}
        print(f"  {'figure':<44}{'before':>10}{'after':>10}   target")
        for item in before["figures"]:
            old, new = item["value"], after.get(item["figure"])
            print(
                f"  {item['figure']:<44}"
                + (f"{old:>10.2f}" if old is not None else f"{'-':>10}")
                + (f"{new:>10.2f}" if new is not None else f"{'not run':>10}")
                + f"   {item['target']}"
            )

    if args.json:
        document: dict[str, Any] = {
            "python": python,
            "opd_engine": version("opd-engine"),
            "sortedcontainers": version("sortedcontainers"),
            "machine": host,
            "commit": head,
            "uncommitted_changes": uncommitted,
            "repeats": repeats,
            "sizes": sizes,
            "batch": {name: {str(n): batch_of(name, n) for n in sizes} for name in names},
            "microseconds_per_operation": results,
            "spread": spreads,
            "ratios": ratios,
            "flatness": {"from": sizes[0], "to": sizes[-1], "ratios": flatness},
            "seconds": seconds,
            "memory": memory,
            "hospital": hospital,
            "targets": targets,
        }
        if simulation is not None:
            document["simulation"] = simulation
        if before is not None:
            document["before"] = before
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
