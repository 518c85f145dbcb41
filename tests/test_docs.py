"""The README's example runs as written (the Sphinx doctest build checks docs/)."""

from __future__ import annotations

import doctest
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs() -> None:
    """The README's 15-line example is a doctest; every output line in it must match."""
    result = doctest.testfile(str(README), module_relative=False, verbose=False)
    assert result.attempted >= 8
    assert result.failed == 0
