"""The facade: `from opd_engine import ...` gives the whole public API, documented."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import logging
import pickle
import pkgutil
import pydoc
import subprocess
import sys
import traceback
import types
import typing
from collections.abc import Iterator
from datetime import datetime, timedelta

import attrs
import pytest

import opd_engine
import opd_engine.simulation
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
    EmergencyOverride,
    Event,
    HardLimit,
    OnDelay,
    OnFull,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    Reserve,
    SlotFullError,
    Source,
    SourceQuota,
    StrictPriority,
    Token,
)


def submodules() -> Iterator[object]:
    """The modules behind the facade (not ``__main__``, not the simulation package)."""
    for info in pkgutil.iter_modules(opd_engine.__path__):
        if not info.ispkg and info.name not in ("__main__", "simulation"):
            yield importlib.import_module(f"opd_engine.{info.name}")


def public_classes() -> list[type]:
    return [obj for name in opd_engine.__all__ if inspect.isclass(obj := getattr(opd_engine, name))]


def public_functions() -> list[types.FunctionType]:
    return [
        obj for name in opd_engine.__all__ if inspect.isfunction(obj := getattr(opd_engine, name))
    ]


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
        "SlotResized", "DoctorDelayed", "DoctorUnavailable", "Reserve",
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


def test_public_names_show_their_public_path() -> None:
    """help(), reprs of classes and tracebacks say ``opd_engine.Token``, not the private
    module the class is written in."""
    classes = public_classes()
    assert len(classes) >= 40
    named: list[type | types.FunctionType] = [*classes, *public_functions()]
    elsewhere = [
        f"{obj.__module__}.{obj.__qualname__}" for obj in named if obj.__module__ != "opd_engine"
    ]
    assert elsewhere == []
    assert repr(Token) == "<class 'opd_engine.Token'>"
    assert pydoc.render_doc(Allocator).startswith(
        "Python Library Documentation: class Allocator in module opd_engine\n"
    )


def test_a_traceback_names_the_public_error(alloc: Allocator) -> None:
    for patient in ("A", "B", "C"):
        alloc.book(patient, "D1", "D1@09", source=Source.ONLINE)
    with pytest.raises(SlotFullError) as refused:
        alloc.book("D", "D1", "D1@09", source=Source.ONLINE)
    [last] = traceback.format_exception_only(refused.type, refused.value)
    assert last.startswith("opd_engine.SlotFullError: ")
    assert "is full" in last


def test_simulation_names_keep_their_subpackage() -> None:
    names = [getattr(opd_engine.simulation, name) for name in opd_engine.simulation.__all__]
    modules = {obj.__module__ for obj in names if inspect.isclass(obj) or inspect.isfunction(obj)}
    assert modules
    assert all(m.startswith("opd_engine.simulation") for m in modules), modules


def test_type_hints_still_resolve() -> None:
    """``typing.get_type_hints`` looks names up in the class's ``__module__``: the public
    classes' annotations must still resolve (cattrs, Hypothesis and FastAPI rely on it)."""
    hints = {cls.__name__: typing.get_type_hints(cls) for cls in public_classes()}
    assert hints["Token"]["booked_at"] is datetime
    assert hints["Token"]["checked_in_at"] == datetime | None
    assert hints["Token"]["priority"] is Priority
    assert hints["Aging"]["step"] is timedelta
    assert hints["Policies"]["on_full"] is OnFull
    attrs.resolve_types(Token)
    assert attrs.fields(Token).source.type is Source


def test_every_public_class_pickles_by_its_public_path() -> None:
    for cls in public_classes():
        assert pickle.loads(pickle.dumps(cls)) is cls
        assert f"opd_engine\n{cls.__qualname__}".encode() in pickle.dumps(cls, protocol=0)


POLICIES = [
    HardLimit(),
    Overbooking(0.25),
    SourceQuota({Source.ONLINE: 2, Source.PAID: 1}),
    Reserve({Source.WALK_IN: 2, Source.PAID: 1}, release_before=timedelta(minutes=45)),
    EmergencyOverride(max_overflow=1),
    Reallocation(pull_forward=False, max_moves=3),
    StrictPriority(),
    Aging(step=timedelta(minutes=20), ceiling=Priority.PAID),
    AccumulatingPriority(),
    Policies(
        capacity=Overbooking(0.1),
        ordering=StrictPriority(),
        on_full=OnFull.NEXT_SLOT,
        on_delay=OnDelay.SHRINK,
    ),
]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: type(p).__name__)
def test_policies_round_trip_through_pickle_with_their_reprs(policy: object) -> None:
    again = pickle.loads(pickle.dumps(policy))
    assert again == policy
    assert type(again) is type(policy)
    assert repr(again) == repr(policy)
    assert repr(policy).startswith(f"{type(policy).__name__}(")  # attrs' repr, no module


def test_values_and_events_round_trip_through_pickle(alloc: Allocator) -> None:
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    first = alloc.book("Asha", "D1", source=Source.PAID)
    alloc.book("Bala", "D1", "D1@09", priority=Priority.EMERGENCY)
    alloc.check_in(first.id)
    alloc.call_next("D1")
    alloc.cancel(first.id)
    alloc.resize("D1@10", 1)
    alloc.delay("D2", 15)
    alloc.mark_unavailable("D2")
    assert len({type(event) for event in seen}) >= 6
    doctor = Doctor("D9", "Dr. Nine", department="ENT", consult_minutes=12)
    values: list[object] = [*seen, doctor, *Priority, *Source, *opd_engine.TokenStatus]
    values += [alloc.token(first.id), *alloc.queue("D1@09")]
    for value in values:
        again = pickle.loads(pickle.dumps(value))
        assert again == value
        assert type(again) is type(value)
        assert repr(again) == repr(value)
    token = alloc.token(first.id)
    assert repr(token).startswith(f"Token(id={token.id!r}, doctor_id='D1', ")
    assert "Asha" not in repr(token)  # patient_id stays out of the repr
    assert repr(doctor) == "Doctor(id='D9', name='Dr. Nine', department='ENT', consult_minutes=12)"
