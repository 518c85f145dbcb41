"""Hostile input: every public entry point refuses bad values cleanly and changes nothing.

The contract: a call with bad input raises a clear ``OPDError`` (``InvalidArgumentError``,
also a ``ValueError``, for malformed values; a ``NotFoundError`` subclass for unknown ids)
whose message names the argument, never an ``AttributeError``, ``KeyError`` or
``TypeError`` from inside; and "a call that raises changes nothing: state, counters and
events are as before the call."

The table below lists hostile calls for every public ``Allocator`` method that takes an
argument and every public constructor; the Hypothesis properties then feed arbitrary values
as each argument of each public mutator and constructor.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CAPACITY, DOCTORS, HOURS, START, Clock, at
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Doctor,
    Duplicates,
    EmergencyOverride,
    Event,
    HardLimit,
    InvalidArgumentError,
    InvalidTransitionError,
    MoveReason,
    OnFull,
    OPDError,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    Reserve,
    Slot,
    SlotClosedError,
    Source,
    SourceQuota,
    StrictPriority,
    TokenStatus,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)
from test_stateful import observe

DOCTOR_IDS = [d.id for d in DOCTORS]
SLOT_IDS = [f"{d.id}@{h:02d}" for d in DOCTORS for h in HOURS]
UTC = timezone.utc
AWARE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
NOW = at(9, 20)  # the day's clock once set up: D1@09 is past its no-show grace

# The day ``new_day`` sets up:
BOOKED = "D1-001"  # patient A, online, booked into D1@09, not arrived
PRESENT = "D1-002"  # patient B, walk-in, checked in to D1@09
CONSULTING = "D2-001"  # patient C, walk-in, in consultation with D2


@dataclass
class Day:
    alloc: Allocator
    clock: Clock
    events: list[Event]

    def observe(self) -> object:
        """Everything a failing call must leave as it was, including events delivered."""
        return observe(self.alloc, DOCTOR_IDS, SLOT_IDS, [len(self.events)])


def new_day(policies: Policies | None = None) -> Day:
    """The conftest day (D1, D2 in General Medicine, D3 in Cardiology; three hourly slots
    each) with a booked, a checked-in and a called token, at 09:20."""
    clock = Clock()
    alloc = Allocator(policies=policies, clock=clock)
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for hour in HOURS:
            alloc.add_slot(
                Slot(f"{doctor.id}@{hour:02d}", doctor.id, at(hour), at(hour + 1), CAPACITY)
            )
    events: list[Event] = []
    alloc.subscribe(events.append)
    assert alloc.book("A", "D1", "D1@09", source=Source.ONLINE).id == BOOKED
    assert alloc.book("B", "D1", "D1@09").id == PRESENT
    assert alloc.book("C", "D2").id == CONSULTING
    clock.now = NOW
    assert alloc.call_next("D2") is not None
    return Day(alloc, clock, events)


def snapshot_of_day() -> dict[str, Any]:
    return new_day().alloc.snapshot()


def edited(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A snapshot of the day with ``change`` applied to it."""
    data = snapshot_of_day()
    change(data)
    return data


# ============================================================================ the table

Target = Callable[[Day], object]


def call(method: str, *args: object, **kwargs: object) -> Target:
    """``alloc.method(*args, **kwargs)`` on the day's allocator."""
    return lambda day: getattr(day.alloc, method)(*args, **kwargs)


def make(factory: Callable[..., object], *args: object, **kwargs: object) -> Target:
    """A constructor call; the day is left alone."""
    return lambda day: factory(*args, **kwargs)


def add_slot(*args: object, **kwargs: object) -> Target:
    """Construct a slot (the arguments are valid for the constructor) and add it."""
    return lambda day: day.alloc.add_slot(Slot(*args, **kwargs))  # type: ignore[arg-type]


def book_with(**overrides: object) -> Target:
    """``book`` with one argument made hostile; the others are valid."""
    kwargs: dict[str, object] = {
        "patient_id": "Z",
        "doctor_id": "D1",
        "slot_id": "D1@10",
        "source": Source.ONLINE,
        "priority": None,
        "checked_in": None,
    }
    kwargs.update(overrides)
    return call("book", **kwargs)


def with_clock(now: datetime, target: Target) -> Target:
    """Run ``target`` while the clock reads ``now`` (restored by the test afterwards)."""

    def run(day: Day) -> object:
        day.clock.now = now
        return target(day)

    return run


def on_fresh(clock_now: object, target: Callable[[Allocator], object]) -> Target:
    """Run ``target`` on a fresh allocator (doctor D1 only) whose clock returns
    ``clock_now``; the day is left alone."""

    def run(day: Day) -> object:
        alloc = Allocator(clock=cast("Callable[[], datetime]", lambda: clock_now))
        alloc.add_doctor(Doctor("D1", "Dr. Rao"))
        return target(alloc)

    return run


def from_snapshot(data: object, **kwargs: object) -> Target:
    return lambda day: Allocator.from_snapshot(data, **kwargs)  # type: ignore[arg-type]


Row = tuple[str, Target, type[OPDError], str]

# (label, value, expected error); None means the matching NotFoundError for an unknown id.
BAD_IDS: list[tuple[str, object, type[OPDError] | None]] = [
    ("None", None, InvalidArgumentError),
    ("empty", "", InvalidArgumentError),
    ("blank", " ", InvalidArgumentError),
    ("leading-space", " D1", InvalidArgumentError),
    ("trailing-newline", "D1-001\n", InvalidArgumentError),
    ("int", 7, InvalidArgumentError),
    ("bytes", b"D1", InvalidArgumentError),
    ("list", ["D1"], InvalidArgumentError),
    ("unknown", "NOBODY", None),
]


def id_rows(
    methods: list[str],
    argument: str,
    unknown: type[OPDError],
    base: dict[str, object],
    *,
    optional: bool = False,
) -> list[Row]:
    """Hostile ids for ``argument`` of each of ``methods`` (other arguments from ``base``);
    ``optional``: None is a valid value of the argument."""
    return [
        (
            f"{method}-{argument}-{label}",
            call(method, **{**base, argument: value}),
            unknown if error is None else error,
            argument,
        )
        for method in methods
        for label, value, error in BAD_IDS
        if not (optional and value is None)
    ]


TOKEN_METHODS = [
    "check_in",
    "complete",
    "cancel",
    "no_show",
    "position",
    "estimated_start",
    "token",
    "missed_call",
]
DOCTOR_METHODS = ["call_next", "mark_unavailable", "mark_available", "waitlist", "doctor"]
SLOT_METHODS = ["queue", "slot", "close_slot"]

ALLOCATOR_ROWS: list[Row] = [
    *id_rows(TOKEN_METHODS, "token_id", UnknownTokenError, {}),
    *id_rows(DOCTOR_METHODS, "doctor_id", UnknownDoctorError, {}),
    *id_rows(["slots"], "doctor_id", UnknownDoctorError, {}, optional=True),  # None: all
    *id_rows(["delay"], "doctor_id", UnknownDoctorError, {"minutes": 5}),
    *id_rows(SLOT_METHODS, "slot_id", UnknownSlotError, {}),
    *id_rows(["resize"], "slot_id", UnknownSlotError, {"capacity": 2}),
    *id_rows(["reschedule"], "token_id", UnknownTokenError, {"slot_id": "D1@10"}),
    *id_rows(["reschedule"], "slot_id", UnknownSlotError, {"token_id": BOOKED}),
    *id_rows(["retriage"], "token_id", UnknownTokenError, {"priority": Priority.PAID}),
    ("retriage-int", call("retriage", BOOKED, 1), InvalidArgumentError, "priority"),
    ("retriage-None", call("retriage", BOOKED, None), InvalidArgumentError, "priority"),
    ("retriage-str", call("retriage", BOOKED, "PAID"), InvalidArgumentError, "priority"),
    (
        "retriage-consulting",
        call("retriage", CONSULTING, Priority.PAID),
        InvalidTransitionError,
        "IN_CONSULTATION",
    ),
    ("missed_call-booked", call("missed_call", BOOKED), InvalidTransitionError, "BOOKED"),
    (
        "reschedule-consulting",
        call("reschedule", CONSULTING, "D2@10"),
        InvalidTransitionError,
        "IN_CONSULTATION",
    ),
    (
        "reschedule-ended",
        with_clock(at(10, 5), call("reschedule", PRESENT, "D3@09")),
        SlotClosedError,
        "ended",
    ),
    # add_doctor
    ("add_doctor-None", call("add_doctor", None), InvalidArgumentError, "doctor"),
    ("add_doctor-str", call("add_doctor", "D9"), InvalidArgumentError, "doctor"),
    ("add_doctor-dict", call("add_doctor", {"id": "D9"}), InvalidArgumentError, "doctor"),
    (
        "add_doctor-duplicate",
        call("add_doctor", Doctor("D1", "Dr. Other")),
        InvalidArgumentError,
        "doctor",
    ),
    # add_slot
    ("add_slot-None", call("add_slot", None), InvalidArgumentError, "slot"),
    ("add_slot-str", call("add_slot", "D1@12"), InvalidArgumentError, "slot"),
    (
        "add_slot-unknown-doctor",
        add_slot("X@12", "NOBODY", at(12), at(13), 3),
        UnknownDoctorError,
        "doctor_id",
    ),
    (
        "add_slot-duplicate-id",
        add_slot("D1@09", "D1", at(14), at(15), 3),
        InvalidArgumentError,
        "slot",
    ),
    (
        "add_slot-overlap",
        add_slot("D1@1130", "D1", at(11, 30), at(12, 30), 3),
        InvalidArgumentError,
        "slot",
    ),
    (
        "add_slot-aware-on-naive-allocator",
        add_slot("D1@aware", "D1", AWARE.replace(hour=14), AWARE.replace(hour=15), 3),
        InvalidArgumentError,
        "start",
    ),
    (
        "add_slot-aware-on-fresh-naive-clock",
        on_fresh(NOW, lambda a: a.add_slot(Slot("S", "D1", AWARE, AWARE + timedelta(hours=1), 3))),
        InvalidArgumentError,
        "clock",
    ),
    (
        "add_slot-naive-on-fresh-aware-clock",
        on_fresh(AWARE, lambda a: a.add_slot(Slot("S", "D1", at(9), at(10), 3))),
        InvalidArgumentError,
        "clock",
    ),
    (
        "add_slot-clock-returns-str",
        on_fresh("09:00", lambda a: a.add_slot(Slot("S", "D1", at(9), at(10), 3))),
        InvalidArgumentError,
        "clock",
    ),
    (
        "book-clock-returns-None",
        on_fresh(None, lambda a: a.book("P", "D1")),
        InvalidArgumentError,
        "clock",
    ),
    (
        "book-aware-clock-on-naive-slots",
        with_clock(AWARE, book_with()),
        InvalidArgumentError,
        "clock",
    ),
    (
        "call_next-aware-clock-on-naive-slots",
        with_clock(AWARE, call("call_next", "D1")),
        InvalidArgumentError,
        "clock",
    ),
    # book: every argument
    ("book-patient-None", book_with(patient_id=None), InvalidArgumentError, "patient_id"),
    ("book-patient-empty", book_with(patient_id=""), InvalidArgumentError, "patient_id"),
    ("book-patient-padded", book_with(patient_id=" Z "), InvalidArgumentError, "patient_id"),
    ("book-patient-int", book_with(patient_id=42), InvalidArgumentError, "patient_id"),
    ("book-patient-bytes", book_with(patient_id=b"Z"), InvalidArgumentError, "patient_id"),
    ("book-doctor-None", book_with(doctor_id=None), InvalidArgumentError, "doctor_id"),
    ("book-doctor-empty", book_with(doctor_id=""), InvalidArgumentError, "doctor_id"),
    ("book-doctor-padded", book_with(doctor_id="D1 "), InvalidArgumentError, "doctor_id"),
    ("book-doctor-unknown", book_with(doctor_id="NOBODY"), UnknownDoctorError, "doctor_id"),
    ("book-slot-empty", book_with(slot_id=""), InvalidArgumentError, "slot_id"),
    ("book-slot-padded", book_with(slot_id=" D1@10"), InvalidArgumentError, "slot_id"),
    ("book-slot-int", book_with(slot_id=10), InvalidArgumentError, "slot_id"),
    ("book-slot-unknown", book_with(slot_id="NOWHERE"), UnknownSlotError, "slot_id"),
    ("book-slot-of-other-doctor", book_with(slot_id="D2@10"), InvalidArgumentError, "doctor_id"),
    ("book-source-int", book_with(source=1), InvalidArgumentError, "source"),
    ("book-source-str", book_with(source="ONLINE"), InvalidArgumentError, "source"),
    ("book-source-value", book_with(source="online"), InvalidArgumentError, "source"),
    ("book-source-priority", book_with(source=Priority.PAID), InvalidArgumentError, "source"),
    ("book-source-None", book_with(source=None), InvalidArgumentError, "source"),
    ("book-priority-int", book_with(priority=0), InvalidArgumentError, "priority"),
    ("book-priority-3", book_with(priority=3), InvalidArgumentError, "priority"),
    ("book-priority-bool", book_with(priority=True), InvalidArgumentError, "priority"),
    ("book-priority-str", book_with(priority="EMERGENCY"), InvalidArgumentError, "priority"),
    ("book-priority-source", book_with(priority=Source.PAID), InvalidArgumentError, "priority"),
    ("book-priority-float", book_with(priority=1.0), InvalidArgumentError, "priority"),
    ("book-checked_in-int", book_with(checked_in=1), InvalidArgumentError, "checked_in"),
    ("book-checked_in-str", book_with(checked_in="yes"), InvalidArgumentError, "checked_in"),
    (
        "book-checked_in-status",
        book_with(checked_in=TokenStatus.CHECKED_IN),
        InvalidArgumentError,
        "checked_in",
    ),
    # delay
    ("delay-negative", call("delay", "D1", -5), InvalidArgumentError, "minutes"),
    ("delay-float", call("delay", "D1", 1.5), InvalidArgumentError, "minutes"),
    ("delay-integral-float", call("delay", "D1", 5.0), InvalidArgumentError, "minutes"),
    ("delay-nan", call("delay", "D1", math.nan), InvalidArgumentError, "minutes"),
    ("delay-bool", call("delay", "D1", True), InvalidArgumentError, "minutes"),
    ("delay-str", call("delay", "D1", "5"), InvalidArgumentError, "minutes"),
    ("delay-None", call("delay", "D1", None), InvalidArgumentError, "minutes"),
    ("delay-timedelta", call("delay", "D1", timedelta(minutes=5)), InvalidArgumentError, "minutes"),
    # resize
    ("resize-negative", call("resize", "D1@10", -1), InvalidArgumentError, "capacity"),
    ("resize-float", call("resize", "D1@10", 2.5), InvalidArgumentError, "capacity"),
    ("resize-bool", call("resize", "D1@10", True), InvalidArgumentError, "capacity"),
    ("resize-str", call("resize", "D1@10", "3"), InvalidArgumentError, "capacity"),
    ("resize-None", call("resize", "D1@10", None), InvalidArgumentError, "capacity"),
    ("resize-huge-negative", call("resize", "D1@10", -(10**30)), InvalidArgumentError, "capacity"),
    # subscribe
    ("subscribe-None", call("subscribe", None), InvalidArgumentError, "callback"),
    ("subscribe-int", call("subscribe", 5), InvalidArgumentError, "callback"),
    ("subscribe-list", call("subscribe", []), InvalidArgumentError, "callback"),
    # from_snapshot
    ("from_snapshot-None", from_snapshot(None), InvalidArgumentError, "snapshot"),
    ("from_snapshot-list", from_snapshot([]), InvalidArgumentError, "snapshot"),
    ("from_snapshot-str", from_snapshot("{}"), InvalidArgumentError, "snapshot"),
    ("from_snapshot-empty", from_snapshot({}), InvalidArgumentError, "snapshot.format"),
    (
        "from_snapshot-format",
        from_snapshot(edited(lambda d: d.update(format="other"))),
        InvalidArgumentError,
        "snapshot.format",
    ),
    (
        "from_snapshot-version-str",
        from_snapshot(edited(lambda d: d.update(version="1"))),
        InvalidArgumentError,
        "snapshot.version",
    ),
    (
        "from_snapshot-version-bool",
        from_snapshot(edited(lambda d: d.update(version=True))),
        InvalidArgumentError,
        "snapshot.version",
    ),
    (
        "from_snapshot-version-99",
        from_snapshot(edited(lambda d: d.update(version=99))),
        InvalidArgumentError,
        "snapshot.version",
    ),
    (
        "from_snapshot-doctors-dict",
        from_snapshot(edited(lambda d: d.update(doctors={}))),
        InvalidArgumentError,
        "snapshot.doctors",
    ),
    (
        "from_snapshot-seq-missing",
        from_snapshot(edited(lambda d: d.pop("seq"))),
        InvalidArgumentError,
        "snapshot.seq",
    ),
    (
        "from_snapshot-token-status",
        from_snapshot(edited(lambda d: d["tokens"][0].update(status="LOST"))),
        InvalidArgumentError,
        "status",
    ),
    (
        "from_snapshot-token-priority-int",
        from_snapshot(edited(lambda d: d["tokens"][0].update(priority=0))),
        InvalidArgumentError,
        "priority",
    ),
    (
        "from_snapshot-slot-start",
        from_snapshot(edited(lambda d: d["slots"][0].update(start="nine o'clock"))),
        InvalidArgumentError,
        "start",
    ),
    (
        "from_snapshot-slot-capacity",
        from_snapshot(edited(lambda d: d["slots"][0].update(capacity=-1))),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "from_snapshot-consult-minutes",
        from_snapshot(edited(lambda d: d["doctors"][0].update(consult_minutes=0))),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "from_snapshot-delay-huge",
        from_snapshot(edited(lambda d: d["doctors"][0].update(delay_minutes=10**30))),
        InvalidArgumentError,
        "delay_minutes",
    ),
    (
        "from_snapshot-policies",
        from_snapshot(snapshot_of_day(), policies=HardLimit()),
        InvalidArgumentError,
        "policies",
    ),
    (
        "from_snapshot-clock",
        from_snapshot(snapshot_of_day(), clock=5),
        InvalidArgumentError,
        "clock",
    ),
]

CONSTRUCTOR_ROWS: list[Row] = [
    # Doctor
    ("Doctor-id-None", make(Doctor, None, "Dr. X"), InvalidArgumentError, "id"),
    ("Doctor-id-empty", make(Doctor, "", "Dr. X"), InvalidArgumentError, "id"),
    ("Doctor-id-padded", make(Doctor, " D9", "Dr. X"), InvalidArgumentError, "id"),
    ("Doctor-id-int", make(Doctor, 9, "Dr. X"), InvalidArgumentError, "id"),
    ("Doctor-name-None", make(Doctor, "D9", None), InvalidArgumentError, "name"),
    ("Doctor-name-bytes", make(Doctor, "D9", b"Dr. X"), InvalidArgumentError, "name"),
    (
        "Doctor-department-int",
        make(Doctor, "D9", "X", department=5),
        InvalidArgumentError,
        "department",
    ),
    (
        "Doctor-consult-str",
        make(Doctor, "D9", "X", consult_minutes="10"),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "Doctor-consult-float",
        make(Doctor, "D9", "X", consult_minutes=10.0),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "Doctor-consult-bool",
        make(Doctor, "D9", "X", consult_minutes=True),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "Doctor-consult-zero",
        make(Doctor, "D9", "X", consult_minutes=0),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "Doctor-consult-negative",
        make(Doctor, "D9", "X", consult_minutes=-10),
        InvalidArgumentError,
        "consult_minutes",
    ),
    (
        "Doctor-consult-timedelta",
        make(Doctor, "D9", "X", consult_minutes=timedelta(minutes=10)),
        InvalidArgumentError,
        "consult_minutes",
    ),
    # Slot
    ("Slot-id-None", make(Slot, None, "D1", at(12), at(13), 3), InvalidArgumentError, "id"),
    ("Slot-id-empty", make(Slot, "", "D1", at(12), at(13), 3), InvalidArgumentError, "id"),
    ("Slot-id-padded", make(Slot, "S ", "D1", at(12), at(13), 3), InvalidArgumentError, "id"),
    (
        "Slot-doctor-None",
        make(Slot, "S", None, at(12), at(13), 3),
        InvalidArgumentError,
        "doctor_id",
    ),
    (
        "Slot-doctor-padded",
        make(Slot, "S", "\tD1", at(12), at(13), 3),
        InvalidArgumentError,
        "doctor_id",
    ),
    (
        "Slot-start-str",
        make(Slot, "S", "D1", "2026-11-25T12:00", at(13), 3),
        InvalidArgumentError,
        "start",
    ),
    (
        "Slot-start-date",
        make(Slot, "S", "D1", at(12).date(), at(13), 3),
        InvalidArgumentError,
        "start",
    ),
    (
        "Slot-start-timestamp",
        make(Slot, "S", "D1", at(12).timestamp(), at(13), 3),
        InvalidArgumentError,
        "start",
    ),
    ("Slot-end-None", make(Slot, "S", "D1", at(12), None, 3), InvalidArgumentError, "end"),
    (
        "Slot-end-timedelta",
        make(Slot, "S", "D1", at(12), timedelta(hours=1), 3),
        InvalidArgumentError,
        "end",
    ),
    (
        "Slot-end-equals-start",
        make(Slot, "S", "D1", at(12), at(12), 3),
        InvalidArgumentError,
        "end",
    ),
    (
        "Slot-end-before-start",
        make(Slot, "S", "D1", at(12), at(11), 3),
        InvalidArgumentError,
        "end",
    ),
    (
        "Slot-naive-start-aware-end",
        make(Slot, "S", "D1", at(12), AWARE.replace(hour=13), 3),
        InvalidArgumentError,
        "end",
    ),
    (
        "Slot-aware-start-naive-end",
        make(Slot, "S", "D1", AWARE.replace(hour=12), at(13), 3),
        InvalidArgumentError,
        "end",
    ),
    (
        "Slot-capacity-str",
        make(Slot, "S", "D1", at(12), at(13), "3"),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Slot-capacity-float",
        make(Slot, "S", "D1", at(12), at(13), 3.0),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Slot-capacity-inf",
        make(Slot, "S", "D1", at(12), at(13), math.inf),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Slot-capacity-bool",
        make(Slot, "S", "D1", at(12), at(13), True),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Slot-capacity-negative",
        make(Slot, "S", "D1", at(12), at(13), -1),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Slot-capacity-None",
        make(Slot, "S", "D1", at(12), at(13), None),
        InvalidArgumentError,
        "capacity",
    ),
    # Policies
    ("Policies-capacity-str", make(Policies, capacity="hard"), InvalidArgumentError, "capacity"),
    ("Policies-capacity-None", make(Policies, capacity=None), InvalidArgumentError, "capacity"),
    ("Policies-capacity-int", make(Policies, capacity=10), InvalidArgumentError, "capacity"),
    (
        "Policies-capacity-wrong-kind",
        make(Policies, capacity=Aging()),
        InvalidArgumentError,
        "capacity",
    ),
    # A policy class where an instance belongs (the parentheses forgotten).
    (
        "Policies-capacity-class",
        make(Policies, capacity=HardLimit),
        InvalidArgumentError,
        "capacity",
    ),
    (
        "Policies-emergency-class",
        make(Policies, emergency=EmergencyOverride),
        InvalidArgumentError,
        "emergency",
    ),
    (
        "Policies-reallocation-class",
        make(Policies, reallocation=Reallocation),
        InvalidArgumentError,
        "reallocation",
    ),
    (
        "Policies-ordering-class",
        make(Policies, ordering=StrictPriority),
        InvalidArgumentError,
        "ordering",
    ),
    ("Policies-emergency-int", make(Policies, emergency=2), InvalidArgumentError, "emergency"),
    (
        "Policies-reallocation-bool",
        make(Policies, reallocation=True),
        InvalidArgumentError,
        "reallocation",
    ),
    ("Policies-ordering-str", make(Policies, ordering="aging"), InvalidArgumentError, "ordering"),
    (
        "Policies-ordering-wrong-kind",
        make(Policies, ordering=HardLimit()),
        InvalidArgumentError,
        "ordering",
    ),
    ("Policies-on_full-str", make(Policies, on_full="reject"), InvalidArgumentError, "on_full"),
    (
        "Policies-on_full-other-enum",
        make(Policies, on_full=MoveReason.DISPLACED),
        InvalidArgumentError,
        "on_full",
    ),
    ("Policies-grace-int", make(Policies, no_show_grace=15), InvalidArgumentError, "no_show_grace"),
    (
        "Policies-grace-negative",
        make(Policies, no_show_grace=timedelta(minutes=-1)),
        InvalidArgumentError,
        "no_show_grace",
    ),
    (
        "Policies-grace-None",
        make(Policies, no_show_grace=None),
        InvalidArgumentError,
        "no_show_grace",
    ),
    # Overbooking
    ("Overbooking-one", make(Overbooking, 1), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-negative", make(Overbooking, -0.1), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-nan", make(Overbooking, math.nan), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-inf", make(Overbooking, math.inf), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-str", make(Overbooking, "0.2"), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-bool", make(Overbooking, False), InvalidArgumentError, "no_show_rate"),
    ("Overbooking-None", make(Overbooking, None), InvalidArgumentError, "no_show_rate"),
    # SourceQuota
    ("SourceQuota-None", make(SourceQuota, None), InvalidArgumentError, "quotas"),
    ("SourceQuota-list", make(SourceQuota, [(Source.ONLINE, 1)]), InvalidArgumentError, "quotas"),
    ("SourceQuota-str-key", make(SourceQuota, {"ONLINE": 1}), InvalidArgumentError, "quotas"),
    (
        "SourceQuota-priority-key",
        make(SourceQuota, {Priority.PAID: 1}),
        InvalidArgumentError,
        "quotas",
    ),
    (
        "SourceQuota-negative",
        make(SourceQuota, {Source.ONLINE: -1}),
        InvalidArgumentError,
        "quotas",
    ),
    ("SourceQuota-float", make(SourceQuota, {Source.ONLINE: 1.5}), InvalidArgumentError, "quotas"),
    ("SourceQuota-bool", make(SourceQuota, {Source.ONLINE: True}), InvalidArgumentError, "quotas"),
    # Reserve
    ("Reserve-None", make(Reserve, None), InvalidArgumentError, "places"),
    ("Reserve-list", make(Reserve, [(Source.WALK_IN, 1)]), InvalidArgumentError, "places"),
    ("Reserve-str-key", make(Reserve, {"WALK_IN": 1}), InvalidArgumentError, "places"),
    ("Reserve-priority-key", make(Reserve, {Priority.PAID: 1}), InvalidArgumentError, "places"),
    ("Reserve-negative", make(Reserve, {Source.WALK_IN: -1}), InvalidArgumentError, "places"),
    ("Reserve-float", make(Reserve, {Source.WALK_IN: 1.5}), InvalidArgumentError, "places"),
    ("Reserve-bool", make(Reserve, {Source.WALK_IN: True}), InvalidArgumentError, "places"),
    (
        "Reserve-release-negative",
        make(Reserve, {}, release_before=timedelta(minutes=-1)),
        InvalidArgumentError,
        "release_before",
    ),
    (
        "Reserve-release-int",
        make(Reserve, {}, release_before=30),
        InvalidArgumentError,
        "release_before",
    ),
    # EmergencyOverride
    (
        "EmergencyOverride-negative",
        make(EmergencyOverride, -1),
        InvalidArgumentError,
        "max_overflow",
    ),
    ("EmergencyOverride-float", make(EmergencyOverride, 1.5), InvalidArgumentError, "max_overflow"),
    ("EmergencyOverride-bool", make(EmergencyOverride, True), InvalidArgumentError, "max_overflow"),
    ("EmergencyOverride-str", make(EmergencyOverride, "2"), InvalidArgumentError, "max_overflow"),
    # Reallocation
    (
        "Reallocation-pull-int",
        make(Reallocation, pull_forward=1),
        InvalidArgumentError,
        "pull_forward",
    ),
    (
        "Reallocation-pull-str",
        make(Reallocation, pull_forward="no"),
        InvalidArgumentError,
        "pull_forward",
    ),
    (
        "Reallocation-pull-None",
        make(Reallocation, pull_forward=None),
        InvalidArgumentError,
        "pull_forward",
    ),
    (
        "Reallocation-moves-negative",
        make(Reallocation, max_moves=-1),
        InvalidArgumentError,
        "max_moves",
    ),
    (
        "Reallocation-moves-float",
        make(Reallocation, max_moves=2.0),
        InvalidArgumentError,
        "max_moves",
    ),
    (
        "Reallocation-moves-bool",
        make(Reallocation, max_moves=True),
        InvalidArgumentError,
        "max_moves",
    ),
    # Aging
    ("Aging-step-zero", make(Aging, step=timedelta(0)), InvalidArgumentError, "step"),
    ("Aging-step-negative", make(Aging, step=timedelta(minutes=-30)), InvalidArgumentError, "step"),
    ("Aging-step-int", make(Aging, step=30), InvalidArgumentError, "step"),
    ("Aging-step-None", make(Aging, step=None), InvalidArgumentError, "step"),
    (
        "Aging-ceiling-emergency",
        make(Aging, ceiling=Priority.EMERGENCY),
        InvalidArgumentError,
        "ceiling",
    ),
    ("Aging-ceiling-int", make(Aging, ceiling=2), InvalidArgumentError, "ceiling"),
    ("Aging-ceiling-str", make(Aging, ceiling="FOLLOW_UP"), InvalidArgumentError, "ceiling"),
    (
        "Aging-ceiling-source",
        make(Aging, ceiling=Source.FOLLOW_UP),
        InvalidArgumentError,
        "ceiling",
    ),
    # AccumulatingPriority
    ("Accumulating-None", make(AccumulatingPriority, None), InvalidArgumentError, "rates"),
    ("Accumulating-empty", make(AccumulatingPriority, {}), InvalidArgumentError, "rates"),
    (
        "Accumulating-missing",
        make(AccumulatingPriority, {Priority.EMERGENCY: 8.0}),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-int-key",
        make(AccumulatingPriority, {0: 8.0, 1: 4.0, 2: 2.0, 3: 1.0}),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-zero",
        make(AccumulatingPriority, dict.fromkeys(Priority, 0.0)),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-negative",
        make(AccumulatingPriority, dict.fromkeys(Priority, -1.0)),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-nan",
        make(AccumulatingPriority, dict.fromkeys(Priority, math.nan)),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-inf",
        make(AccumulatingPriority, dict.fromkeys(Priority, math.inf)),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-bool",
        make(AccumulatingPriority, dict.fromkeys(Priority, True)),
        InvalidArgumentError,
        "rates",
    ),
    (
        "Accumulating-str",
        make(AccumulatingPriority, dict.fromkeys(Priority, "1")),
        InvalidArgumentError,
        "rates",
    ),
    # Allocator
    ("Allocator-policies-int", make(Allocator, policies=5), InvalidArgumentError, "policies"),
    (
        "Allocator-policies-class",
        make(Allocator, policies=Policies),
        InvalidArgumentError,
        "policies",
    ),
    ("Allocator-policies-dict", make(Allocator, policies={}), InvalidArgumentError, "policies"),
    (
        "Allocator-policies-policy",
        make(Allocator, policies=Aging()),
        InvalidArgumentError,
        "policies",
    ),
    ("Allocator-clock-int", make(Allocator, clock=5), InvalidArgumentError, "clock"),
    ("Allocator-clock-datetime", make(Allocator, clock=START), InvalidArgumentError, "clock"),
    ("Allocator-clock-str", make(Allocator, clock="now"), InvalidArgumentError, "clock"),
]


@pytest.mark.parametrize(
    ("target", "error", "argument"),
    [
        pytest.param(target, error, argument, id=name)
        for name, target, error, argument in ALLOCATOR_ROWS + CONSTRUCTOR_ROWS
    ],
)
def test_hostile_call_is_refused_cleanly(
    target: Target, error: type[OPDError], argument: str
) -> None:
    """Contract: "A call with bad input raises a clear OPDError ... whose message names the
    argument" and "a call that raises changes nothing: state, counters and events are as before the
    call." Each row: the exact exception class, the argument's name in the message, and
    the day (records, queues, waitlists, snapshot, events delivered) untouched."""
    day = new_day()
    before = day.observe()
    with pytest.raises(OPDError) as raised:
        target(day)
    day.clock.now = NOW
    assert type(raised.value) is error, f"expected {error.__name__}, got {raised.value!r}"
    assert argument in str(raised.value), f"{argument!r} not named in {raised.value}"
    if isinstance(raised.value, InvalidArgumentError):
        assert isinstance(raised.value, ValueError)
    assert day.observe() == before, "a refused call changed the allocator"
    day.alloc.check_invariants()


# ============================================================================ huge values


def exercise(alloc: Allocator, clock: Clock) -> None:
    """A short OPD day on ``alloc`` (doctor D1 with slots D1@09..D1@11): every call may be
    refused with an OPDError, but nothing else may escape, and the state stays sound."""
    steps: list[Callable[[], object]] = [
        lambda: alloc.book("A", "D1", source=Source.ONLINE),
        lambda: alloc.book("B", "D1"),
        lambda: alloc.book("C", "D1", source=Source.PAID, checked_in=True),
        lambda: alloc.book("E", "D1", priority=Priority.EMERGENCY),
        lambda: alloc.queue("D1@09"),
        lambda: [alloc.estimated_start(t.id) for t in alloc.tokens()],
        lambda: [alloc.position(t.id) for t in alloc.queue("D1@09")],
        lambda: clock.advance(50),
        lambda: alloc.queue("D1@09"),
        lambda: [alloc.estimated_start(t.id) for t in alloc.tokens()],
        lambda: alloc.no_show("D1-001"),
        lambda: alloc.call_next("D1"),
        lambda: alloc.cancel("D1-003"),
        lambda: alloc.call_next("D1"),
        lambda: alloc.check_in("D1-001"),
        lambda: alloc.resize("D1@10", 1),
        lambda: alloc.waitlist("D1"),
    ]
    for step in steps:
        with contextlib.suppress(OPDError):
            step()
        alloc.check_invariants()
    data = alloc.snapshot()
    restored = Allocator.from_snapshot(json.loads(json.dumps(data)), clock=clock)
    assert restored.snapshot() == data


def huge_day(
    policies: Policies | None = None, consult_minutes: int = 10, capacity: int = 2
) -> tuple[Allocator, Clock]:
    clock = Clock()
    alloc = Allocator(policies=policies, clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao", consult_minutes=consult_minutes))
    for hour in HOURS:
        alloc.add_slot(Slot(f"D1@{hour:02d}", "D1", at(hour), at(hour + 1), capacity))
    return alloc, clock


def delayed(minutes: int) -> tuple[Allocator, Clock]:
    alloc, clock = huge_day()
    alloc.delay("D1", minutes)
    return alloc, clock


def resized(capacity: int) -> tuple[Allocator, Clock]:
    alloc, clock = huge_day()
    alloc.resize("D1@09", capacity)
    return alloc, clock


HUGE = 10**30

# (id, setup, argument, whether the value must be accepted). A setup either raises
# InvalidArgumentError naming the argument, or returns a day that must then work.
HUGE_ROWS: list[tuple[str, Callable[[], tuple[Allocator, Clock]], str, bool]] = [
    # Capacities are counts compared with counts: big ints are exact and accepted.
    ("Slot-capacity", lambda: huge_day(capacity=HUGE), "capacity", True),
    ("resize-capacity", lambda: resized(HUGE), "capacity", True),
    (
        "SourceQuota",
        lambda: huge_day(Policies(capacity=SourceQuota({Source.ONLINE: HUGE}))),
        "quotas",
        True,
    ),
    (
        "Reserve",
        lambda: huge_day(Policies(capacity=Reserve({Source.WALK_IN: HUGE}))),
        "places",
        True,
    ),
    (
        "Overbooking-huge-capacity",
        lambda: huge_day(Policies(capacity=Overbooking(0.5)), capacity=HUGE),
        "capacity",
        True,
    ),
    (
        "EmergencyOverride",
        lambda: huge_day(Policies(emergency=EmergencyOverride(HUGE))),
        "max_overflow",
        True,
    ),
    (
        "Reallocation",
        lambda: huge_day(Policies(reallocation=Reallocation(max_moves=HUGE))),
        "max_moves",
        True,
    ),
    # Durations feed datetime arithmetic: refusing them is fine, crashing later is not.
    ("delay-huge", lambda: delayed(HUGE), "minutes", False),
    ("delay-past-year-9999", lambda: delayed(10**10), "minutes", False),
    ("Doctor-consult_minutes", lambda: huge_day(consult_minutes=HUGE), "consult_minutes", False),
    (
        "Policies-no_show_grace",
        lambda: huge_day(Policies(no_show_grace=timedelta.max)),
        "no_show_grace",
        False,
    ),
    ("Aging-step", lambda: huge_day(Policies(ordering=Aging(step=timedelta.max))), "step", False),
    (
        "Accumulating-rates",
        lambda: huge_day(Policies(ordering=AccumulatingPriority(dict.fromkeys(Priority, 1e308)))),
        "rates",
        False,
    ),
]


@pytest.mark.parametrize(
    ("setup", "argument", "accepted"),
    [
        pytest.param(setup, argument, accepted, id=name)
        for name, setup, argument, accepted in HUGE_ROWS
    ],
)
def test_huge_values_are_refused_or_work(
    setup: Callable[[], tuple[Allocator, Clock]], argument: str, accepted: bool
) -> None:
    """Contract: "A call with bad input raises a clear OPDError ... never an
    AttributeError/KeyError/TypeError from inside." A huge number is either refused at once with an
    InvalidArgumentError naming the argument, or accepted and then works everywhere: a whole
    short day (booking, queries, estimated starts, no-shows, calls, a snapshot round trip)
    raises nothing but OPDError. Capacities of 10**30 must be accepted."""
    refusal: InvalidArgumentError | None = None
    try:
        alloc, clock = setup()
    except InvalidArgumentError as error:
        refusal = error
    if refusal is not None:
        assert not accepted, f"a huge {argument} must be accepted, got {refusal!r}"
        assert argument in str(refusal)
        return
    exercise(alloc, clock)


# ============================================================================ properties

WRONG_ENUM_MEMBERS: list[Enum] = [
    *Priority,
    *Source,
    *TokenStatus,
    *OnFull,
    *MoveReason,
]

HOSTILE: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**30, -(10**30), 2**63, 2**31, -1, 0, 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 3.0]),
    st.text(max_size=8),
    st.sampled_from(["", " ", "\t", "\n", " D1", "D1 ", "D1@09 ", " D1-001"]),
    # Real ids, often in the wrong role (a token id as a doctor id, another doctor's slot).
    st.sampled_from(["D1", "D2", "D3", "D1@10", "D2@10", BOOKED, PRESENT, CONSULTING, "NOBODY"]),
    st.binary(max_size=4),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.datetimes(),
    st.datetimes(timezones=st.just(UTC)),
    st.timedeltas(),
    st.sampled_from([timedelta.max, timedelta.min, timedelta(days=10**6), timedelta(-1)]),
    st.sampled_from(WRONG_ENUM_MEMBERS),
)

# Each public mutator with arguments under which it succeeds on ``new_day``'s day.
MUTATORS: dict[str, dict[str, object]] = {
    "add_doctor": {"doctor": Doctor("D9", "Dr. New")},
    "add_slot": {"slot": None},  # a fresh Slot per call, see ``base_arguments``
    "book": {
        "patient_id": "Z",
        "doctor_id": "D1",
        "slot_id": "D1@10",
        "source": Source.ONLINE,
        "priority": Priority.PAID,
        "checked_in": False,
    },
    "check_in": {"token_id": BOOKED},
    "call_next": {"doctor_id": "D1"},
    "complete": {"token_id": CONSULTING},
    "cancel": {"token_id": BOOKED},
    "no_show": {"token_id": BOOKED},
    "delay": {"doctor_id": "D1", "minutes": 5},
    "mark_unavailable": {"doctor_id": "D1"},
    "resize": {"slot_id": "D1@10", "capacity": 1},
    "subscribe": {"callback": lambda event: None},
    "reschedule": {"token_id": BOOKED, "slot_id": "D2@10"},
    "retriage": {"token_id": BOOKED, "priority": Priority.PAID},
    "missed_call": {"token_id": CONSULTING},
    "close_slot": {"slot_id": "D1@10"},
    "mark_available": {"doctor_id": "D1"},
}
MUTATOR_ARGUMENTS = [
    pytest.param(method, argument, id=f"{method}-{argument}")
    for method, arguments in MUTATORS.items()
    for argument in arguments
]

PROPERTY_SETTINGS = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def base_arguments(method: str) -> dict[str, object]:
    arguments = dict(MUTATORS[method])
    if method == "add_slot":
        arguments["slot"] = Slot("D1@12", "D1", at(12), at(13), 3)
    return arguments


@pytest.mark.parametrize("method", list(MUTATORS))
def test_mutator_base_calls_succeed(method: str) -> None:
    """The valid calls the property below starts from do succeed (so a refusal there is
    caused by the hostile value alone)."""
    day = new_day()
    getattr(day.alloc, method)(**base_arguments(method))
    day.alloc.check_invariants()


@pytest.mark.parametrize(("method", "argument"), MUTATOR_ARGUMENTS)
@PROPERTY_SETTINGS
@given(value=HOSTILE)
def test_any_value_in_any_argument_is_refused_cleanly(
    method: str, argument: str, value: object
) -> None:
    """Contract: "A call with bad input raises a clear OPDError" and "a call that raises changes
    nothing: state, counters and events are as before the call." Any value as any argument
    of a public mutator either succeeds or raises an OPDError; a refusal leaves the snapshot,
    every view and the events delivered untouched."""
    day = new_day()
    arguments = base_arguments(method)
    arguments[argument] = value
    before = day.observe()
    try:
        getattr(day.alloc, method)(**arguments)
    except OPDError:
        assert day.observe() == before, "a refused call changed the allocator"
    day.alloc.check_invariants()
    json.dumps(day.alloc.snapshot())


def valid_slot(**overrides: object) -> Slot:
    fields: dict[str, object] = {
        "id": "D1@12",
        "doctor_id": "D1",
        "start": at(12),
        "end": at(13),
        "capacity": 3,
    }
    fields.update(overrides)
    return Slot(**fields)  # type: ignore[arg-type]


def valid_doctor(**overrides: object) -> Doctor:
    fields: dict[str, object] = {
        "id": "D9",
        "name": "Dr. New",
        "department": "General Medicine",
        "consult_minutes": 10,
    }
    fields.update(overrides)
    return Doctor(**fields)  # type: ignore[arg-type]


def use_doctor(doctor: Doctor) -> None:
    alloc, _ = huge_day()
    alloc.add_doctor(doctor)
    alloc.add_slot(Slot("X@09", doctor.id, at(9), at(10), 2))
    alloc.book("A", doctor.id)
    alloc.book("B", doctor.id, source=Source.ONLINE)
    for token in alloc.tokens():
        alloc.estimated_start(token.id)
    alloc.snapshot()


def use_slot(slot: Slot) -> None:
    alloc, clock = huge_day()
    alloc.add_slot(slot)
    exercise(alloc, clock)


def use_policies(policies: Policies) -> None:
    alloc, clock = huge_day(policies)
    exercise(alloc, clock)


# (constructor, its valid keyword arguments, how to put the value to use)
CONSTRUCTORS: dict[str, tuple[Callable[..., Any], dict[str, object], Callable[[Any], None]]] = {
    "Doctor": (
        valid_doctor,
        {"id": "D9", "name": "N", "department": "", "consult_minutes": 10},
        use_doctor,
    ),
    "Slot": (
        valid_slot,
        {"id": "S", "doctor_id": "D1", "start": at(12), "end": at(13), "capacity": 3},
        use_slot,
    ),
    "Policies": (
        Policies,
        {
            "capacity": HardLimit(),
            "emergency": EmergencyOverride(),
            "reallocation": Reallocation(),
            "ordering": Aging(),
            "on_full": OnFull.REJECT,
            "no_show_grace": timedelta(minutes=15),
            "duplicates": Duplicates.PER_DOCTOR,
            "max_missed_calls": 2,
        },
        use_policies,
    ),
    "Overbooking": (
        Overbooking,
        {"no_show_rate": 0.2},
        lambda p: use_policies(Policies(capacity=p)),
    ),
    "SourceQuota": (
        SourceQuota,
        {"quotas": {Source.ONLINE: 1}},
        lambda p: use_policies(Policies(capacity=p)),
    ),
    "Reserve": (
        Reserve,
        {"places": {Source.WALK_IN: 1}, "release_before": timedelta(minutes=30)},
        lambda p: use_policies(Policies(capacity=p)),
    ),
    "EmergencyOverride": (
        EmergencyOverride,
        {"max_overflow": 1},
        lambda p: use_policies(Policies(emergency=p)),
    ),
    "Reallocation": (
        Reallocation,
        {"pull_forward": True, "max_moves": 2, "fill_idle": True},
        lambda p: use_policies(Policies(reallocation=p)),
    ),
    "Aging": (
        Aging,
        {"step": timedelta(minutes=30), "ceiling": Priority.FOLLOW_UP},
        lambda p: use_policies(Policies(ordering=p)),
    ),
    "AccumulatingPriority": (
        AccumulatingPriority,
        {"rates": dict.fromkeys(Priority, 1.0)},
        lambda p: use_policies(Policies(ordering=p)),
    ),
    "Allocator": (
        Allocator,
        {"policies": None, "clock": None},
        lambda a: a.snapshot(),
    ),
}
CONSTRUCTOR_ARGUMENTS = [
    pytest.param(name, argument, id=f"{name}-{argument}")
    for name, (_, arguments, _) in CONSTRUCTORS.items()
    for argument in arguments
]


@pytest.mark.parametrize(("name", "argument"), CONSTRUCTOR_ARGUMENTS)
@PROPERTY_SETTINGS
@given(value=HOSTILE)
def test_any_value_in_any_constructor_argument_is_refused_cleanly(
    name: str, argument: str, value: object
) -> None:
    """Contract: "A call with bad input raises a clear OPDError ... never an
    AttributeError/KeyError/TypeError from inside." Any value as any argument of a public
    constructor either builds a value or raises an OPDError; a value that was accepted then
    works in a short day."""
    factory, arguments, use = CONSTRUCTORS[name]
    try:
        built = factory(**{**arguments, argument: value})
    except OPDError:
        return
    with contextlib.suppress(OPDError):
        use(built)
