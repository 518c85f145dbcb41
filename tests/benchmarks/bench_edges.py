"""The costs an audit found far above the documented ones, now O(k log n): each is timed at
n and at 8n tokens in one process, and the ratio of the per-item costs printed.

Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_edges.py            # n = 2,000 and 16,000
    python tests/benchmarks/bench_edges.py --quick    # n = 500 and 4,000

- ``resize to 0, all protected``: a slot of n waiting tokens, each already moved
  ``max_moves`` times, shrinks to 0: every token moves on (k = n); cost per moved token.
  It used to rescan the protected tokens for each one (quadratic: 3.6 s at 8,000).
- ``emergency, max_overflow=0``: an emergency booked into a full slot of n protected
  tokens displaces one; cost per emergency. It used to scan all n.
- ``cancel under SourceQuota``: a cancellation whose place the waitlist of n tokens cannot
  fill (their channel's quota is used up); cost per cancel. It used to rescan the whole
  waitlist (37 ms at 10^5).
- ``placeholder patient``: an emergency booked, then cancelled, under one patient id
  ("UNKNOWN", as hospitals book unidentified patients) that already holds n active tokens;
  cost per booking and cancel. The patient index used to copy all n ids on each (5.5 to 9
  times the cost at 8 times the count).

A ratio near 1 means per-item cost flat in n (O(log n) per item); 8 would be linear.
The garbage collector is paused while timing: its full passes
cost time in proportion to everything alive, whatever the allocator does.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from opd_engine import (
    Allocator,
    Doctor,
    EmergencyOverride,
    OnFull,
    Policies,
    Priority,
    Reallocation,
    Slot,
    Source,
    SourceQuota,
)

DAY = datetime(2026, 11, 25)


def clock() -> datetime:
    return DAY.replace(hour=8)


def protected_slot(n: int, max_overflow: int | None = None) -> Allocator:
    """Slot "C" holds n waiting tokens, each moved twice (protected under max_moves=2): they
    were booked into "A", which shrank to 0 (on to "B"), which shrank to 0 (on to "C")."""
    policies = Policies(
        reallocation=Reallocation(max_moves=2, pull_forward=False),
        emergency=EmergencyOverride(max_overflow=max_overflow),
        on_full=OnFull.WAITLIST,
    )
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    for name, hour in (("A", 9), ("B", 10), ("C", 11)):
        start = DAY.replace(hour=hour)
        alloc.add_slot(Slot(name, "D1", start, start + timedelta(hours=1), n))
    for i in range(n):
        alloc.book(f"P{i}", "D1", "A", source=Source.ONLINE)
    alloc.resize("A", 0)
    alloc.resize("B", 0)
    assert alloc.slot("C").waiting == n
    assert all(t.moves == 2 for t in alloc.queue("C"))
    return alloc


def resize_all_protected(n: int) -> float:
    alloc = protected_slot(n)
    start = time.perf_counter()
    alloc.resize("C", 0)  # everyone moves on, to the waitlist
    elapsed = time.perf_counter() - start
    assert alloc.slot("C").waiting == 0
    return elapsed / n


def emergency_into_protected(n: int) -> float:
    alloc = protected_slot(n, max_overflow=0)
    count = 50
    start = time.perf_counter()
    for i in range(count):
        alloc.book(f"E{i}", "D1", "C", priority=Priority.EMERGENCY)  # displaces one each
    elapsed = time.perf_counter() - start
    assert len(alloc.waitlist("D1")) == count
    return elapsed / count


def cancel_with_refused_waitlist(n: int) -> float:
    policies = Policies(capacity=SourceQuota({Source.ONLINE: 1}), on_full=OnFull.WAITLIST)
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("A", "D1", DAY.replace(hour=9), DAY.replace(hour=10), 200))
    alloc.book("O", "D1", "A", source=Source.ONLINE)  # the online quota is used up
    for i in range(n):
        alloc.book(f"W{i}", "D1", "A", source=Source.ONLINE)  # waitlisted: quota
    walk_ins = [alloc.book(f"K{i}", "D1", "A").id for i in range(150)]
    count = 100
    start = time.perf_counter()
    for token_id in walk_ins[:count]:
        alloc.cancel(token_id)  # the place frees; no waitlisted token may take it
    return (time.perf_counter() - start) / count


def placeholder_patient(n: int) -> float:
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("A", "D1", DAY.replace(hour=9), DAY.replace(hour=10), 20))
    for _ in range(n):
        alloc.book("UNKNOWN", "D1", priority=Priority.EMERGENCY)
    count = 200
    start = time.perf_counter()
    for _ in range(count):
        alloc.cancel(alloc.book("UNKNOWN", "D1", priority=Priority.EMERGENCY).id)
    return (time.perf_counter() - start) / count


CASES: dict[str, Callable[[int], float]] = {
    "resize to 0, all protected (per token)": resize_all_protected,
    "emergency, max_overflow=0 (per call)": emergency_into_protected,
    "cancel under SourceQuota (per call)": cancel_with_refused_waitlist,
    "placeholder patient (per book + cancel)": placeholder_patient,
}


def timed(case: Callable[[int], float], n: int) -> float:
    gc.collect()
    gc.disable()
    try:
        return case(n)
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 500 and 4,000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    small = 500 if args.quick else 2000
    sizes = (small, 8 * small)
    print(f"{'case':<42}{sizes[0]:>12,}{sizes[1]:>12,}   ratio (8x the tokens)")
    for name, case in CASES.items():
        per = [statistics.median(timed(case, n) for _ in range(args.repeats)) for n in sizes]
        ratio = per[1] / per[0]
        verdict = "flat" if ratio <= 2 else "GROWS"
        print(f"{name:<42}{per[0] * 1e6:>10.1f}us{per[1] * 1e6:>10.1f}us   {ratio:.2f}  {verdict}")


if __name__ == "__main__":
    main()
