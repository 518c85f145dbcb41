"""The README's example runs as written (the Sphinx doctest build checks docs/)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_runs() -> None:
    """The README's 15-line example is a doctest; every output line in it must match."""
    result = doctest.testfile(str(README), module_relative=False, verbose=False)
    assert result.attempted >= 8
    assert result.failed == 0


REFERENCE = README.parent / "docs" / "reference.rst"


def test_the_reference_documents_every_public_name() -> None:
    """A complete API reference: every name in ``__all__`` of the package and of the
    simulation package has an entry (the theory module is documented whole)."""
    import opd_engine
    import opd_engine.simulation

    text = REFERENCE.read_text(encoding="utf-8")
    documented = set(
        re.findall(r"^\.\. (?:auto(?:class|function|exception)|data):: (\w+)", text, re.M)
    )
    missing = [
        f"{module.__name__}.{name}"
        for module in (opd_engine, opd_engine.simulation)
        for name in module.__all__
        if name not in documented
    ]
    assert missing == []
    assert ".. automodule:: opd_engine.simulation.theory" in text
