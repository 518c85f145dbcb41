"""Per-operation cost of the allocator's hot paths, against two baselines in the same run.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_core.py            # 10^3, 10^4, 10^5 tokens in one slot
    python tests/benchmarks/bench_core.py --quick    # 10^3, 10^4; fewer repeats
    python tests/benchmarks/bench_core.py --sizes 1000 1000000 --json results.json

For each size n, every operation is timed on a slot already holding n tokens, over a batch
of operations, and reported as the median of several repeats in microseconds per operation:

- ``book``: mixed sources (online, walk-in, paid, follow-up) into the slot;
- ``check_in``: booked tokens arrive;
- ``call_next``: the doctor completes the current patient and calls the next;
- ``cancel``: a token in a full slot cancels and the waitlist refills its place;
- ``position`` and ``estimated_start`` of tokens spread over the queue;
- ``queue``: the whole queue as a list, per call (it returns n tokens, so it is O(n)).

Baselines, timed in the same process on the same sizes:

- ``floor``: ``SortedList.add`` of a ``(priority, seq, id)`` tuple plus a ``dict`` insert,
  the least any SortedList design must do per booking;
- ``seed``: the seed's design, ``list.append`` then ``list.sort(key=(priority, arrival))``
  per booking.

Ratios are against these baselines, measured in the same run: absolute times on a shared
machine are noise, ratios are the figure to quote.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sortedcontainers import SortedList

from opd_engine import Allocator, Doctor, OnFull, Policies, Slot, Source

START = datetime(2026, 11, 25, 9, 0)
NOW = START + timedelta(minutes=5)
SOURCES = (Source.ONLINE, Source.WALK_IN, Source.PAID, Source.FOLLOW_UP)
ARRIVING = (Source.ONLINE, Source.PAID, Source.FOLLOW_UP)

# setup(n, batch) -> (run, operations): `run` performs that many operations; setup is not timed.
Setup = Callable[[int, int], tuple[Callable[[], object], int]]


def clock() -> datetime:
    return NOW


def allocator(capacity: int, *, on_full: OnFull = OnFull.REJECT) -> Allocator:
    alloc = Allocator(policies=Policies(on_full=on_full), clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Bench"))
    alloc.add_slot(Slot("S1", "D1", START, START + timedelta(hours=8), capacity))
    alloc.add_slot(Slot("S2", "D1", START + timedelta(hours=8), START + timedelta(hours=9), 0))
    return alloc


def fill(alloc: Allocator, n: int, sources: Sequence[Source], prefix: str = "P") -> list[str]:
    return [
        alloc.book(f"{prefix}{i}", "D1", "S1", source=sources[i % len(sources)]).id
        for i in range(n)
    ]


def spread(ids: Sequence[str], batch: int) -> list[str]:
    """``batch`` ids (at most all of them) spread evenly over ``ids``."""
    step = max(1, len(ids) // batch)
    return list(ids[::step][:batch])


# ------------------------------------------------------------------------- the library


def setup_book(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n + batch)
    fill(alloc, n, SOURCES)
    book = alloc.book

    def run() -> None:
        for i in range(batch):
            book(f"N{i}", "D1", "S1", source=SOURCES[i % 4])

    return run, batch


def setup_check_in(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n)
    targets = spread(fill(alloc, n, ARRIVING), batch)
    check_in = alloc.check_in

    def run() -> None:
        for token_id in targets:
            check_in(token_id)

    return run, len(targets)


def setup_call_next(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n + batch)
    fill(alloc, n + batch, SOURCES)  # walk-ins present at once; the others check in below
    for token in alloc.queue("S1"):
        if token.checked_in_at is None:
            alloc.check_in(token.id)
    call_next = alloc.call_next

    def run() -> None:
        for _ in range(batch):
            call_next("D1")

    return run, batch


def setup_cancel(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n, on_full=OnFull.WAITLIST)
    targets = spread(fill(alloc, n, SOURCES), batch)
    fill(alloc, len(targets), SOURCES, prefix="W")  # the slot is full: these are waitlisted
    assert len(alloc.waitlist("D1")) == len(targets)
    cancel = alloc.cancel

    def run() -> None:
        for token_id in targets:
            cancel(token_id)  # each refills the place from the waitlist

    return run, len(targets)


def setup_position(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n)
    targets = spread(fill(alloc, n, SOURCES), batch)
    position = alloc.position

    def run() -> None:
        for token_id in targets:
            position(token_id)

    return run, len(targets)


def setup_estimated_start(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n)
    targets = spread(fill(alloc, n, SOURCES), batch)
    estimated_start = alloc.estimated_start

    def run() -> None:
        for token_id in targets:
            estimated_start(token_id)

    return run, len(targets)


def setup_queue(n: int, batch: int) -> tuple[Callable[[], object], int]:
    alloc = allocator(n)
    fill(alloc, n, SOURCES)
    queue = alloc.queue

    def run() -> None:
        for _ in range(batch):
            queue("S1")

    return run, batch


# ------------------------------------------------------------------------- baselines


def key_of(i: int) -> tuple[int, int, str]:
    return (int(SOURCES[i % 4].default_priority), i, f"D1-{i:07d}")


def setup_floor(n: int, batch: int) -> tuple[Callable[[], object], int]:
    queue = SortedList(key_of(i) for i in range(n))
    index = {key[2]: key for key in queue}
    new = [key_of(n + i) for i in range(batch)]

    def run() -> None:
        for key in new:
            queue.add(key)
            index[key[2]] = key

    return run, batch


def setup_seed(n: int, batch: int) -> tuple[Callable[[], object], int]:
    # The seed kept a plain list of bookings and sorted it on every booking.
    entries = [(int(SOURCES[i % 4].default_priority), i) for i in range(n)]
    new = [(int(SOURCES[(n + i) % 4].default_priority), n + i) for i in range(batch)]

    def arrival_order(entry: tuple[int, int]) -> tuple[int, int]:
        return entry

    def run() -> None:
        for entry in new:
            entries.append(entry)
            entries.sort(key=arrival_order)

    return run, batch


OPERATIONS: dict[str, tuple[Setup, int]] = {
    # name: (setup, batch size)
    "floor": (setup_floor, 2000),
    "seed": (setup_seed, 20),
    "book": (setup_book, 2000),
    "check_in": (setup_check_in, 2000),
    "call_next": (setup_call_next, 2000),
    "cancel": (setup_cancel, 2000),
    "position": (setup_position, 2000),
    "estimated_start": (setup_estimated_start, 2000),
    "queue": (setup_queue, 3),
}


def measure(setup: Setup, n: int, batch: int, repeats: int) -> float:
    """Median microseconds per operation over ``repeats`` fresh setups."""
    samples = []
    for _ in range(repeats):
        run, operations = setup(n, batch)
        gc.collect()
        gc.disable()
        try:
            began = time.perf_counter_ns()
            run()
            elapsed = time.perf_counter_ns() - began
        finally:
            gc.enable()
        samples.append(elapsed / operations / 1000)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="sizes 10^3 and 10^4, 3 repeats")
    parser.add_argument("--only", nargs="+", choices=list(OPERATIONS), help="a subset")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    sizes: list[int] = [1_000, 10_000] if args.quick else args.sizes
    repeats: int = 3 if args.quick else args.repeats
    names = args.only or list(OPERATIONS)
    for required in ("floor", "seed"):
        if required not in names:
            names.insert(0, required)

    results: dict[str, dict[str, float]] = {}
    print(f"median of {repeats} runs, microseconds per operation (Python {sys.version.split()[0]})")
    header = f"{'operation':<16}" + "".join(f"{f'n={n:,}':>14}" for n in sizes)
    print(header)
    print("-" * len(header))
    for name in names:
        setup, batch = OPERATIONS[name]
        row = {str(n): measure(setup, n, batch, repeats) for n in sizes}
        results[name] = row
        print(f"{name:<16}" + "".join(f"{row[str(n)]:>14.2f}" for n in sizes), flush=True)

    print()
    print("ratios (same run)")
    ratios: dict[str, dict[str, float]] = {}
    pairs: list[tuple[str, str, str]] = [
        (f"{name} / floor", name, "floor")
        for name in ("book", "cancel", "check_in", "call_next")
        if name in results
    ]
    if "book" in results:
        pairs.append(("seed / book", "seed", "book"))
    for label, top, bottom in pairs:
        row = {str(n): results[top][str(n)] / results[bottom][str(n)] for n in sizes}
        ratios[label] = row
        print(f"{label:<20}" + "".join(f"{row[str(n)]:>10.1f}x" for n in sizes))
    if len(sizes) > 1:
        first, last = str(sizes[0]), str(sizes[-1])
        for name in ("book", "cancel", "call_next", "check_in"):
            if name in results:
                growth = results[name][last] / results[name][first]
                ratios.setdefault(f"{name} growth", {})[f"{last}/{first}"] = growth
                print(f"{name} at n={int(last):,} / at n={int(first):,}: {growth:.2f}x")

    if args.json:
        document: dict[str, Any] = {
            "python": sys.version.split()[0],
            "repeats": repeats,
            "sizes": sizes,
            "microseconds_per_operation": results,
            "ratios": ratios,
        }
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2)
            file.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
