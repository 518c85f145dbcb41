"""Instruction counts of the hot calls with and without one no-op subscriber.

Wall-clock ratios come from ``bench_core.py`` (its ``+sub`` column); this script gives the
stable figure beside them: CPU instructions per call, counted by valgrind's callgrind.
Run from the repository root (not collected by pytest)::

    python tests/benchmarks/bench_events.py                 # every operation, n=10^4, k=1000
    python tests/benchmarks/bench_events.py book cancel --n 100000
    python tests/benchmarks/bench_events.py --one book+sub 10000 1000   # one run, no valgrind

Each figure is (instructions of a run making k calls - instructions of the same set-up
making none) / k, with ``PYTHONHASHSEED=0`` and the garbage collector off during the calls.
The set-up: one doctor, one slot holding n tokens, a fixed clock.

- ``book``: k walk-in bookings into the slot (room for all);
- ``check_in``: k of the n online (not yet arrived) tokens check in;
- ``call_next``: the doctor completes the current patient and calls the next, k times;
- ``cancel``: a full slot with k present patients waitlisted; k tokens cancel, and each
  freed place is refilled from the waitlist.

``OP+sub`` is the same with one subscriber that does nothing, attached after the set-up:
what a host with a display board pays for the events. The ratio printed is ``OP+sub / OP``;
DESIGN.md section 8 asks for at most 1.3. Needs ``valgrind`` on the PATH, and the package
importable by the interpreter running this script (for a source tree, set ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime

OPERATIONS = ("book", "check_in", "call_next", "cancel")
SUBSCRIBED = "+sub"


def run_once(op: str, n: int, k: int) -> None:
    """Set up n tokens, then make k calls of ``op`` (with ``+sub``: one no-op subscriber)."""
    from opd_engine import Allocator, Doctor, OnFull, Policies, Slot, Source

    base = op.removesuffix(SUBSCRIBED)
    now = datetime(2026, 11, 25, 9, 5)
    policies = Policies(on_full=OnFull.WAITLIST) if base == "cancel" else None
    alloc = Allocator(policies=policies, clock=lambda: now)
    alloc.add_doctor(Doctor("D1", "Dr"))
    capacity = n if base == "cancel" else 10 * (n + k)
    start, end = datetime(2026, 11, 25, 9), datetime(2026, 11, 25, 17)
    alloc.add_slot(Slot("S", "D1", start, end, capacity))
    source = Source.ONLINE if base == "check_in" else Source.WALK_IN
    ids = [alloc.book(f"P{i}", "D1", source=source).id for i in range(n)]
    if base == "cancel":
        for i in range(k):
            alloc.book(f"W{i}", "D1", source=Source.WALK_IN)  # waitlisted, present
    if op.endswith(SUBSCRIBED):
        alloc.subscribe(lambda event: None)
    gc.collect()
    gc.disable()
    if base == "book":
        for i in range(k):
            alloc.book(f"Q{i}", "D1", source=Source.WALK_IN)
    elif base == "check_in":
        for i in range(k):
            alloc.check_in(ids[i])
    elif base == "call_next":
        for _ in range(k):
            alloc.call_next("D1")
    elif base == "cancel":
        for i in range(k):
            alloc.cancel(ids[i])
    else:
        raise SystemExit(f"unknown operation {op!r}")


def instructions(op: str, n: int, k: int) -> int:
    """Instructions of one run of :func:`run_once` in a fresh interpreter under callgrind."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={os.path.join(scratch, 'out')}",
            sys.executable,
            os.path.abspath(__file__),
            "--one",
            op,
            str(n),
            str(k),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from callgrind:\n{done.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "operations", nargs="*", metavar="OP", help=f"some of {', '.join(OPERATIONS)} (all)"
    )
    parser.add_argument("--n", type=int, default=10_000, help="tokens in the slot")
    parser.add_argument("--k", type=int, default=1000, help="calls measured")
    parser.add_argument("--one", nargs=3, metavar=("OP", "N", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        op, n, k = args.one
        run_once(op, int(n), int(k))
        return
    unknown = sorted(set(args.operations) - set(OPERATIONS))
    if unknown:
        parser.error(f"unknown operations {unknown}")
    print(f"instructions per call, n={args.n}, k={args.k}")
    for op in args.operations or OPERATIONS:
        per_call = {}
        for variant in (op, op + SUBSCRIBED):
            empty = instructions(variant, args.n, 0)
            per_call[variant] = (instructions(variant, args.n, args.k) - empty) / args.k
        plain, subscribed = per_call[op], per_call[op + SUBSCRIBED]
        ratio = subscribed / plain
        verdict = "PASS" if ratio <= 1.3 else "MISS"
        print(
            f"{op:<10} {plain / 1000:8.1f}k  +sub {subscribed / 1000:8.1f}k  "
            f"ratio {ratio:4.2f} (target <= 1.3: {verdict})",
            flush=True,
        )


if __name__ == "__main__":
    main()
