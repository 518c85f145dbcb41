"""``opd-engine``, or ``python -m opd_engine``: a simulated OPD day and its report, or the
scripted day.

The one module of the package that prints. The ``opd-engine`` console script calls
:func:`main`, the same as ``python -m opd_engine``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta

import attrs

from . import __version__
from ._demo import run
from .simulation import Scenario, simulate


def _clock(offset: timedelta) -> str:
    hours, rest = divmod(offset, timedelta(hours=1))
    return f"{hours:02d}:{rest // timedelta(minutes=1):02d}"


def main(argv: Sequence[str] | None = None, *, prog: str = "opd-engine") -> int:
    """Parse ``argv`` (default: the command line), run the day, print it. Returns 0.

    ``prog`` is the command's name in ``--help`` and in error messages.
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Simulate a default OPD day through opd-engine (four doctors in two departments, "
            "bookings from every channel, walk-ins, emergencies, no-shows, cancellations, "
            "rescheduled bookings, re-triage, missed calls, a late start, a break, a doctor "
            "called away and back, and a doctor going home sick) and print its report; or, "
            "with --scripted, play a scripted day as a timeline."
        ),
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="the simulation's seed (default: %(default)s)"
    )
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="play the scripted OPD day, event by event, instead of simulating",
    )
    parser.add_argument("--version", action="version", version=f"opd-engine {__version__}")
    args = parser.parse_args(argv)
    if args.scripted:
        run(sys.stdout)
        return 0
    # The default day, with the estimates told at check-in recorded for the report.
    scenario = attrs.evolve(Scenario.default_day(), record_estimates=True)
    result = simulate(scenario, args.seed)
    print(f"opd-engine: a simulated OPD day ({scenario.day:%d %B %Y}), seed {args.seed}")
    print()
    for plan in scenario.doctors:
        notes = []
        if plan.late_start:
            notes.append(f"starts {plan.late_start} minutes late")
        for pause in plan.breaks:
            slot = next(
                e for session in plan.sessions for s, e in session.slots() if s == pause.start
            )
            notes.append(f"a break {_clock(pause.start)}-{_clock(slot)}")
        if plan.unavailable_at is not None and plan.returns_at is not None:
            notes.append(f"away {_clock(plan.unavailable_at)}-{_clock(plan.returns_at)}")
        elif plan.unavailable_at is not None:
            notes.append(f"goes home sick at {_clock(plan.unavailable_at)}")
        notes += [f"a pause {_clock(p.start)}-{_clock(p.end)}" for p in plan.pauses]
        extra = f" ({', '.join(notes)})" if notes else ""
        print(f"  {plan.id} {plan.name}, {plan.department}{extra}")
    print()
    print(result.summary().report())
    print()
    print("--seed N simulates another day; --scripted plays a scripted day, event by event.")
    return 0


if __name__ == "__main__":  # pragma: no cover - run in a subprocess by the tests
    sys.exit(main(prog="python -m opd_engine"))
