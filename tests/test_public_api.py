"""The facade: `from opd_engine import ...` gives the whole public API, documented."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import logging
import pkgutil
import subprocess
import sys
from collections.abc import Iterator

import opd_engine
from opd_engine import Allocator


def submodules() -> Iterator[object]:
    """The modules behind the facade (not ``__main__``, not the simulation package)."""
    for info in pkgutil.iter_modules(opd_engine.__path__):
        if not info.ispkg and info.name not in ("__main__", "simulation"):
            yield importlib.import_module(f"opd_engine.{info.name}")


def public_classes() -> list[type]:
    return [obj for name in opd_engine.__all__ if inspect.isclass(obj := getattr(opd_engine, name))]


def test_all_is_sorted() -> None:
    assert opd_engine.__all__ == sorted(opd_engine.__all__)
    assert len(set(opd_engine.__all__)) == len(opd_engine.__all__)


def test_all_is_complete() -> None:
    """Every public name defined in the submodules' `__all__` is re-exported."""
    defined = {name for module in submodules() for name in getattr(module, "__all__", ())}
    assert defined, "the submodules declare their public names"
    assert sorted(defined - set(opd_engine.__all__)) == []


def test_every_name_in_all_is_importable() -> None:
    for name in opd_engine.__all__:
        assert hasattr(opd_engine, name), name
    namespace: dict[str, object] = {}
    exec("from opd_engine import *", namespace)
    assert set(opd_engine.__all__) <= set(namespace)


def test_contract_names_are_exported() -> None:
    contract = {
        "Priority", "Source", "TokenStatus", "Token", "Doctor", "Slot", "Allocator",
        "Policies", "OnFull", "HardLimit", "Overbooking", "SourceQuota", "EmergencyOverride",
        "Reallocation", "StrictPriority", "Aging", "AccumulatingPriority", "OPDError",
        "InvalidArgumentError", "NotFoundError", "UnknownDoctorError", "UnknownSlotError",
        "UnknownTokenError", "SlotFullError", "SlotClosedError", "DuplicateBookingError",
        "InvalidTransitionError", "MoveReason", "TokenBooked", "TokenWaitlisted", "TokenMoved",
        "TokenCheckedIn", "TokenCalled", "TokenCompleted", "TokenCancelled", "TokenNoShow",
        "SlotResized", "DoctorDelayed", "DoctorUnavailable",
    }  # fmt: skip
    assert contract <= set(opd_engine.__all__)


def test_version_is_a_string() -> None:
    assert isinstance(opd_engine.__version__, str)
    assert opd_engine.__version__


def public_members(cls: type) -> Iterator[tuple[str, object]]:
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            yield name, member.fget
        elif isinstance(member, (classmethod, staticmethod)):
            yield name, member.__func__
        elif inspect.isfunction(member):
            yield name, member


def test_every_public_class_and_method_has_a_docstring() -> None:
    missing = [cls.__name__ for cls in public_classes() if not (cls.__doc__ or "").strip()]
    for cls in public_classes():
        missing += [
            f"{cls.__name__}.{name}"
            for name, member in public_members(cls)
            if not (getattr(member, "__doc__", None) or "").strip()
        ]
    assert missing == []


def test_every_allocator_method_states_its_complexity() -> None:
    methods = dict(public_members(Allocator))
    assert {"book", "cancel", "check_in", "call_next", "estimated_start"} <= set(methods)
    silent = [name for name, member in methods.items() if "O(" not in (member.__doc__ or "")]
    assert silent == []


def test_the_package_is_typed() -> None:
    files = {p.name for p in importlib.resources.files("opd_engine").iterdir()}
    assert "py.typed" in files


def test_the_logger_has_a_null_handler() -> None:
    handlers = logging.getLogger("opd_engine").handlers
    assert [type(h) for h in handlers if isinstance(h, logging.NullHandler)] == [
        logging.NullHandler
    ]


FAILING_SUBSCRIBER = """
import logging, sys
from datetime import datetime
from opd_engine import Allocator, Doctor, Slot

def broken(event):
    raise RuntimeError("display board offline")

alloc = Allocator(clock=lambda: datetime(2026, 11, 25, 8, 30))
alloc.add_doctor(Doctor("D1", "Dr. Rao"))
alloc.add_slot(Slot("D1@09", "D1", datetime(2026, 11, 25, 9), datetime(2026, 11, 25, 10), 2))
alloc.subscribe(broken)
if sys.argv[1:] == ["configured"]:
    logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
print(alloc.book("P1", "D1").id)
"""


def test_a_failing_subscriber_prints_nothing_unless_the_host_configures_logging() -> None:
    """Without a NullHandler, Python's last-resort handler would print the traceback."""
    quiet = subprocess.run(
        [sys.executable, "-c", FAILING_SUBSCRIBER], capture_output=True, text=True, check=True
    )
    assert (quiet.stdout, quiet.stderr) == ("D1-001\n", "")
    configured = subprocess.run(
        [sys.executable, "-c", FAILING_SUBSCRIBER, "configured"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert configured.stdout == "D1-001\n"
    assert configured.stderr.startswith("opd_engine ERROR opd_engine subscriber ")
    assert "RuntimeError: display board offline" in configured.stderr
