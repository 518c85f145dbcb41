"""``python -m opd_engine``: a scripted OPD day, printed as a timeline and final queues.

The one module of the package that prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from ._demo import run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and play the scripted day. Returns 0."""
    parser = argparse.ArgumentParser(
        prog="python -m opd_engine",
        description=(
            "Play a scripted OPD day through opd-engine: bookings from every channel, "
            "emergencies into full slots, cancellations refilled from the waitlist, "
            "pull-forward, no-shows and late arrivals, aging, a delay, resized slots and a "
            "doctor going home sick; then print the final queues."
        ),
    )
    parser.add_argument("--version", action="version", version=f"opd-engine {__version__}")
    parser.parse_args(argv)
    run(sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover - run in a subprocess by the tests
    sys.exit(main())
