"""Durable state at hospital scale: the journal's cost per change, and whole-state operations.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_journal.py           # 10^3, 10^4, 10^5 tokens; a national day
    python tests/benchmarks/bench_journal.py --quick   # 10^3, 10^4; a smaller national day
    python tests/benchmarks/bench_journal.py --postgres "host=/run/postgresql dbname=opd"
    python tests/benchmarks/bench_journal.py --only whole-state    # or changes, or workers

**Persisting one change** (DESIGN section 8: "costs the same at 10^3 and 10^5 tokens").
An allocator of 50 doctors x 8 slots already holding n tokens lives in the SQLite journal
recipe (``docs/examples/sqlite_journal.py``, a temporary file). Each change is a booking or
the cancellation of the token just booked, made through ``journal.run``: one transaction
that catches up, calls, appends the call's events and commits. Reported per change, median
of ``--repeats`` batches: the call in memory alone, the call through the journal, and their
difference, the **persist cost**; with ``synchronous=OFF`` (the CPU's work, what could grow
with n) and ``synchronous=FULL`` (plus one fsync per commit, the disk's constant). Then the
ratio of the persist cost at the largest size to the smallest (target at most 2). A
checkpoint (a full snapshot, O(n)) is timed on its own, with what it adds per change
amortised over ``checkpoint_every=1000``. With ``--postgres DSN`` the PostgreSQL recipe is
measured the same way.

**Workers sharing one journal** (what a web server's worker processes spend on it): 1 and 4
processes, each with its own journal object on one day, make the standard mix (book, book,
check in, call next, cancel: five changes per cycle, each through ``journal.run``), all at
once. Reported: the processes' CPU per change (``time.process_time``, summed over the
processes, over the changes), the same calls on an allocator in memory, and, when the
PostgreSQL server runs on this machine and its ``/proc`` is readable, the server's CPU per
change (its processes' user and system time). With several workers each change is also
applied by every other worker's replica as it catches up.

**Whole-state operations** (DESIGN section 8: O(n log n) in tokens "whatever the number of
doctors and slots"): ``snapshot``, ``from_snapshot``, ``records``, ``replay`` (from event
values, and from the journal's dicts) and ``check_invariants`` on a national day, 130,000
tokens over 2,000 doctors x 8 slots; then the same operations on the same number of tokens
over 200 doctors x 8 slots and over 2 doctors x 8 slots (the fastest of ``--repeats``
runs each), and the per-token ratio of the first to the second (target at most 2).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from opd_engine import Allocator, Doctor, Event, Slot, Source, Token, event_to_dict

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
DAY = datetime(2026, 11, 25)
SOURCES = (Source.ONLINE, Source.WALK_IN, Source.PAID, Source.FOLLOW_UP)
SLOTS = 8
FLAT = 2.0  # target: ratio at most


def clock() -> datetime:
    return DAY.replace(hour=7)


def recipe(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def build(doctors: int, capacity: int) -> Callable[[Allocator], None]:
    """Doctors D0.. in ten departments, 8 hourly slots each from 08:00."""

    def make(alloc: Allocator) -> None:
        for d in range(doctors):
            alloc.add_doctor(Doctor(f"D{d}", f"Dr. {d}", department=f"Dept {d % 10}"))
            for h in range(SLOTS):
                start = DAY.replace(hour=8 + h)
                alloc.add_slot(
                    Slot(f"D{d}@{h}", f"D{d}", start, start + timedelta(hours=1), capacity)
                )

    return make


def fill(doctors: int, n: int) -> Callable[[Allocator], None]:
    """Book ``n`` tokens round robin over every slot, sources mixed, a third present."""

    def make(alloc: Allocator) -> None:
        book = alloc.book
        places = doctors * SLOTS
        for i in range(n):
            place = i % places
            d = place % doctors
            book(
                f"P{i}",
                f"D{d}",
                f"D{d}@{place // doctors}",
                source=SOURCES[i % 4],
                checked_in=i % 3 == 0,
            )

    return make


def timed(run: Callable[[], object]) -> float:
    gc.collect()
    gc.disable()
    try:
        began = time.perf_counter()
        run()
        return time.perf_counter() - began
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- one change


def booking(patient: str, doctor: str) -> Callable[[Allocator], object]:
    return lambda alloc: alloc.book(patient, doctor, f"{doctor}@7", source=Source.ONLINE)


class LastBooked:
    """Remembers the id of the last token booked (so a cancel needs no search)."""

    def __init__(self) -> None:
        self.token_id = ""

    def __call__(self, event: Event) -> None:
        token = getattr(event, "token", None)
        if token is not None and type(event).__name__ == "TokenBooked":
            self.token_id = token.id


def per_change(journal: Any, alloc: Allocator, batch: int, repeats: int) -> tuple[float, float]:
    """Median seconds per change, in memory alone and through the journal."""
    last = LastBooked()
    alloc.subscribe(last)
    memory: list[float] = []
    durable: list[float] = []
    for r in range(repeats):
        for where in ("memory", "journal"):
            tag = f"{where}{r}"

            def run(where: str = where, tag: str = tag) -> None:
                for i in range(batch // 2):
                    doctor = f"D{i % 50}"
                    patient = f"N{tag}-{i}"
                    if where == "memory":
                        alloc.book(patient, doctor, f"{doctor}@7", source=Source.ONLINE)
                        alloc.cancel(last.token_id)
                    else:
                        journal.run(booking(patient, doctor))
                        journal.run(lambda a: a.cancel(last.token_id))

            seconds = timed(run) / batch
            (memory if where == "memory" else durable).append(seconds)
    return statistics.median(memory), statistics.median(durable)


def bench_changes(sizes: list[int], batch: int, repeats: int, postgres: str | None) -> bool:
    with tempfile.TemporaryDirectory() as base:
        return _bench_changes(Path(base), sizes, batch, repeats, postgres)


def _bench_changes(
    base: Path, sizes: list[int], batch: int, repeats: int, postgres: str | None
) -> bool:
    sqlite_journal = recipe("sqlite_journal")

    def sqlite(synchronous: str) -> Callable[[str], Any]:
        def make(day: str) -> Any:
            return sqlite_journal.SQLiteJournal(
                base / f"{day}.sqlite3",
                day=day,
                clock=clock,
                checkpoint_every=None,
                synchronous=synchronous,
            )

        return make

    backends = [(f"sqlite {sync}", sqlite(sync)) for sync in ("OFF", "FULL")]
    if postgres is not None:
        postgres_journal = recipe("postgres_journal")
        backends.append(
            (
                "postgres",
                lambda day: postgres_journal.PostgresJournal(
                    postgres, day=day, clock=clock, checkpoint_every=None
                ),
            )
        )
    print("Persisting one change (a booking or a cancellation) through the journal")
    print(f"  {'backend':<14}{'tokens':>9}{'memory':>11}{'journal':>11}{'persist':>11}", end="")
    print(f"{'checkpoint':>13}{'per change':>12}")
    ok = True
    for name, open_journal in backends:
        persist = []
        for n in sizes:
            journal = open_journal(f"bench-{n}-{time.time_ns()}")
            journal.setup(build(50, n // 400 + batch))
            journal.run(fill(50, n))
            alloc = journal.allocator
            memory, durable = per_change(journal, alloc, batch, repeats)
            persist.append(durable - memory)
            checkpoint = timed(journal.checkpoint)
            print(
                f"  {name:<14}{n:>9,}{memory * 1e6:>9.1f}us{durable * 1e6:>9.1f}us"
                f"{(durable - memory) * 1e6:>9.1f}us{checkpoint * 1e3:>11.1f}ms"
                f"{checkpoint / 1000 * 1e6:>10.1f}us"
            )
            journal.close()
        ratio = persist[-1] / persist[0]
        verdict = "PASS" if ratio <= FLAT else "MISS"
        ok &= ratio <= FLAT
        print(
            f"  {name}: persist cost at {sizes[-1]:,} / at {sizes[0]:,} tokens = {ratio:.2f}"
            f" (target <= {FLAT:g}) {verdict}"
        )
    print("  (checkpoint: one snapshot written; per change: amortised over 1000 versions)")
    return ok


# ----------------------------------------------------------------------------- workers

WORKERS = (1, 4)
MIX_DAY = datetime(2026, 11, 25)


def mix_clock() -> datetime:
    return MIX_DAY.replace(hour=10, minute=30)  # the 10:00 slots are open


def mix_day(alloc: Allocator) -> None:
    """Four doctors, 24 hourly slots of 1,000 places: no booking of the mix is refused."""
    for d in range(1, 5):
        alloc.add_doctor(Doctor(f"D{d}", f"Dr. {d}", department="General Medicine"))
        for hour in range(24):
            start = MIX_DAY + timedelta(hours=hour)
            end = start + timedelta(hours=1)
            alloc.add_slot(Slot(f"D{d}@{hour:02d}", f"D{d}", start, end, 1000))


def mix(
    run: Callable[[Callable[[Allocator], Any]], Any], doctor: str, cycles: int, tag: str
) -> int:
    """``cycles`` times: book two patients, check the first in, call the doctor's next,
    cancel the second. Returns the number of changes."""

    def book(patient: str) -> Callable[[Allocator], Token]:
        return lambda alloc: alloc.book(patient, doctor, source=Source.ONLINE)

    def check_in(token: Token) -> Callable[[Allocator], Token]:
        return lambda alloc: alloc.check_in(token.id)

    def cancel(token: Token) -> Callable[[Allocator], Token]:
        return lambda alloc: alloc.cancel(token.id)

    for i in range(cycles):
        first, second = run(book(f"{tag}-{i}a")), run(book(f"{tag}-{i}b"))
        run(check_in(first))
        run(lambda alloc: alloc.call_next(doctor))
        run(cancel(second))
    return 5 * cycles


def open_mix_journal(backend: str, target: str, day: str) -> Any:
    module = recipe(f"{backend}_journal")
    if backend == "postgres":
        return module.PostgresJournal(target, day=day, clock=mix_clock)
    return module.SQLiteJournal(target, day=day, clock=mix_clock, synchronous="OFF")


def mix_worker(
    backend: str, target: str, day: str, index: int, cycles: int, start: Any, out: Any
) -> None:
    journal = open_mix_journal(backend, target, day)
    journal.setup(mix_day)
    start.wait()
    began = time.process_time()
    changes = mix(journal.run, f"D{index % 4 + 1}", cycles, f"W{index}")
    out.put((time.process_time() - began, changes))
    start.wait()  # until the server's CPU is read
    journal.close()


def server_cpu(pid: int | None) -> float | None:
    """Seconds of CPU of the PostgreSQL server whose postmaster is ``pid``: its own and its
    reaped children's, and its live children's."""
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(field) for field in fields[11:15])
        if int(entry) == pid:
            total += utime + stime + cutime + cstime
        elif int(fields[1]) == pid:
            total += utime + stime
    return total / tick


def postmaster(dsn: str) -> int | None:
    """The pid of the server's postmaster, if it runs on this machine (the parent of this
    connection's backend)."""
    import psycopg

    with psycopg.connect(dsn) as db:  # read while the backend lives
        row = db.execute("SELECT pg_backend_pid()").fetchone()
        backend = Path(f"/proc/{row[0] if row else 0}")
        try:
            if not backend.joinpath("cmdline").read_bytes().startswith(b"postgres"):
                return None  # a process of this machine with the remote backend's pid
            stat = backend.joinpath("stat").read_text()
        except OSError:
            return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def bench_workers(cycles: int, postgres: str | None) -> None:
    print("\nWorkers sharing one journal: CPU per change (book, book, check in, call next, cancel)")
    alloc = Allocator(clock=mix_clock)
    mix_day(alloc)
    began = time.process_time()
    changes = mix(lambda call: call(alloc), "D1", cycles, "M")
    print(f"  in memory, one allocator: {(time.process_time() - began) / changes * 1e3:.3f} ms")
    print(f"  {'backend':<12}{'workers':>8}{'CPU/change':>13}{'server CPU':>13}{'changes/s':>11}")
    with tempfile.TemporaryDirectory() as base:
        backends = [("sqlite", str(Path(base) / "workers.sqlite3"))]
        if postgres is not None:
            backends.append(("postgres", postgres))
        context = multiprocessing.get_context("spawn")
        for backend, target in backends:
            pid = postmaster(target) if backend == "postgres" else None
            for workers in WORKERS:
                day = f"bench-workers-{workers}-{time.time_ns()}"
                start, out = context.Barrier(workers + 1), context.Queue()
                processes = [
                    context.Process(
                        target=mix_worker,
                        args=(backend, target, day, i, cycles, start, out),
                    )
                    for i in range(workers)
                ]
                for process in processes:
                    process.start()
                start.wait()
                wall, server = time.perf_counter(), server_cpu(pid)
                results = [out.get() for _ in processes]
                wall = time.perf_counter() - wall
                after = server_cpu(pid)
                start.wait()
                for process in processes:
                    process.join()
                changes = sum(n for _, n in results)
                cpu = sum(seconds for seconds, _ in results) / changes
                shown = (
                    "-"
                    if server is None or after is None
                    else f"{(after - server) / changes * 1e3:.3f} ms"
                )
                print(
                    f"  {backend:<12}{workers:>8}{cpu * 1e3:>10.3f} ms{shown:>13}"
                    f"{changes / wall:>11,.0f}"
                )
    print("  (server CPU: the PostgreSQL server's processes, when it runs on this machine)")


# ----------------------------------------------------------------------------- whole state


def whole_state(doctors: int, n: int, repeats: int = 1) -> dict[str, float]:
    """Seconds per operation on ``n`` tokens over ``doctors`` x 8 slots: the fastest of
    ``repeats`` runs (the least disturbed by the rest of the machine)."""
    alloc = Allocator(clock=clock)
    events: list[Event] = []
    alloc.subscribe(events.append)
    build(doctors, n // (doctors * SLOTS) + 1)(alloc)
    fill(doctors, n)(alloc)
    dicts = [event_to_dict(event) for event in events]
    snapshot = alloc.snapshot()
    operations: dict[str, Callable[[], object]] = {
        "snapshot": alloc.snapshot,
        "from_snapshot": lambda: Allocator.from_snapshot(snapshot, clock=clock),
        "records": alloc.records,
        "replay (values)": lambda: Allocator.replay(events, clock=clock),
        "replay (dicts)": lambda: Allocator.replay(dicts, clock=clock),
        "check_invariants": alloc.check_invariants,
    }
    result = {name: min(timed(run) for _ in range(repeats)) for name, run in operations.items()}
    assert Allocator.replay(dicts, clock=clock).snapshot() == snapshot
    return result


def bench_whole_state(national: int, tokens: int, repeats: int) -> bool:
    print(f"\nWhole-state operations: a national day, {national:,} tokens, 2,000 doctors x 8 slots")
    big = whole_state(2000, national)
    for name, seconds in big.items():
        print(f"  {name:<18}{seconds:>8.2f} s")
    print(f"\nThe same {tokens:,} tokens over 200 doctors x 8 slots and over 2 doctors x 8 slots")
    many, few = whole_state(200, tokens, repeats), whole_state(2, tokens, repeats)
    print(f"  {'operation':<18}{'200 x 8':>10}{'2 x 8':>10}{'ratio':>8}")
    ok = True
    for name in many:
        ratio = many[name] / few[name]
        ok &= ratio <= FLAT
        verdict = "PASS" if ratio <= FLAT else "MISS"
        print(f"  {name:<18}{many[name]:>9.3f}s{few[name]:>9.3f}s{ratio:>8.2f}  {verdict}")
    print(f"  (fastest of {repeats}; per-token ratio, same number of tokens; target <= {FLAT:g})")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 tokens")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=200, help="changes per timed batch")
    parser.add_argument("--postgres", metavar="DSN", help="also measure the PostgreSQL recipe")
    parser.add_argument("--only", choices=("changes", "workers", "whole-state"), help="one part")
    parser.add_argument("--cycles", type=int, default=400, help="mix cycles per worker")
    args = parser.parse_args()
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    national = 30_000 if args.quick else 130_000
    tokens = 8_000 if args.quick else 32_000
    ok = True
    if args.only in (None, "changes"):
        ok &= bench_changes(sizes, args.batch, args.repeats, args.postgres)
    if args.only in (None, "workers"):
        bench_workers(args.cycles, args.postgres)
    if args.only in (None, "whole-state"):
        ok &= bench_whole_state(national, tokens, args.repeats)
    print("\nall targets met" if ok else "\nSOME TARGETS MISSED")


if __name__ == "__main__":
    main()
