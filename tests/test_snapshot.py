"""Snapshots: exact round trips, zone names kept across a DST change, and every impossible
state refused with an ``InvalidArgumentError`` that names the first problem.

The property test at the end tampers with random fields of real snapshots (each produced by
a random sequence of real calls): each result must be refused cleanly, or restore into a
state that survives 200 random calls with every invariant holding after each.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import DAY, Build, Clock, at
from opd_engine import (
    AccumulatingPriority,
    Aging,
    Allocator,
    Comparable,
    Doctor,
    DuplicateBookingError,
    Duplicates,
    EmergencyOverride,
    InvalidArgumentError,
    OnFull,
    OPDError,
    Overbooking,
    Policies,
    Priority,
    Reallocation,
    Reserve,
    Slot,
    Source,
    SourceQuota,
    StrictPriority,
    Token,
    TokenStatus,
)

ONLINE = Source.ONLINE
NEW_YORK = ZoneInfo("America/New_York")
UTC = timezone.utc


def restore(data: object, alloc: Allocator, clock: Clock) -> Allocator:
    """``from_snapshot`` with the original's policies, through JSON as a host stores it."""
    text = json.dumps(data)
    return Allocator.from_snapshot(json.loads(text), policies=alloc.policies, clock=clock)


def corrupt(data: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    """A deep copy of ``data`` with the item at ``path`` (``a.0.b``) set to ``value``."""
    copy: Any = json.loads(json.dumps(data))
    *parents, last = path.split(".")
    node = copy
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return dict(copy)


# ============================================================================ round trips


def test_snapshot_round_trips_through_json(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(10):
        alloc.book(f"P{i}", "D1", source=ONLINE if i % 3 else Source.WALK_IN)
    alloc.book("E", "D1", priority=Priority.EMERGENCY)
    alloc.call_next("D1")
    alloc.book("F", "D2", "D2@09")
    alloc.call_next("D2")
    alloc.call_next("D2")  # D2's patient completed
    alloc.delay("D1", 5)
    clock.now = at(9, 20)
    alloc.no_show("D1-002")
    copy = restore(alloc.snapshot(), alloc, clock)
    copy.check_invariants()
    assert copy.records() == alloc.records()
    assert copy.snapshot() == alloc.snapshot()
    for s in alloc.slots():
        assert copy.queue(s.id) == alloc.queue(s.id)
    assert copy.waitlist("D1") == alloc.waitlist("D1")
    assert [copy.estimated_start(t.id) for t in copy.tokens()] == [
        alloc.estimated_start(t.id) for t in alloc.tokens()
    ]
    # Both carry on the same way.
    for each in (alloc, copy):
        each.cancel("D1-003")
        each.call_next("D1")
    assert copy.book("Z", "D1") == alloc.book("Z", "D1")
    assert copy.records() == alloc.records()


def test_snapshot_keeps_which_token_a_duplicate_booking_names(
    alloc: Allocator, clock: Clock
) -> None:
    emergency = alloc.book("P", "D1", priority=Priority.EMERGENCY, checked_in=False)
    clock.now = at(9, 20)
    alloc.no_show(emergency.id)
    standard = alloc.book("P", "D1")
    alloc.check_in(emergency.id)  # late arrival: the patient now holds both
    copy = restore(alloc.snapshot(), alloc, clock)
    for each in (alloc, copy):
        with pytest.raises(DuplicateBookingError) as info:
            each.book("P", "D1")
        assert info.value.token_id == standard.id


def test_snapshot_of_an_aware_day() -> None:
    clock = Clock(at(8).replace(tzinfo=UTC))
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("A", "D1", at(9).replace(tzinfo=UTC), at(10).replace(tzinfo=UTC), 3))
    token = alloc.book("P", "D1")
    data = alloc.snapshot()
    assert data["slots"][0]["start"] == "2026-11-25T09:00:00+00:00"  # a fixed offset stays one
    copy = restore(data, alloc, clock)
    assert copy.token(token.id) == token
    assert copy.slot("A").start == at(9).replace(tzinfo=UTC)
    assert copy.slot("A").start.tzinfo is UTC


def test_an_unavailable_doctor_may_keep_a_waitlist(alloc: Allocator, clock: Clock) -> None:
    """Contract (``mark_unavailable``): every waiting token moves to a colleague of the same
    department, "else to its own doctor's waitlist; none is cancelled". D3 has no colleague in
    Cardiology, so its patients wait on its own waitlist: a state a restore must accept."""
    alloc.book("A", "D3", source=ONLINE)
    alloc.book("B", "D3")
    alloc.book("C", "D1", source=ONLINE)
    alloc.mark_unavailable("D3")
    alloc.mark_unavailable("D1")  # C moves to D2
    assert [t.id for t in alloc.waitlist("D3")] == ["D3-001", "D3-002"]
    copy = restore(alloc.snapshot(), alloc, clock)
    assert copy.snapshot() == alloc.snapshot()
    assert copy.waitlist("D3") == alloc.waitlist("D3")
    assert copy.token("D1-001").doctor_id == "D2"  # reassigned: D1's id, D2's token


def test_a_missed_call_in_a_shrunk_slot_leaves_a_state_that_restores(
    alloc: Allocator, clock: Clock
) -> None:
    """Every state a real allocator reaches restores. Here a patient is called, the slot
    shrinks to no places (a called patient keeps theirs), and the patient misses the call:
    back in the queue, the token holds a place past the slot's limit."""
    token = alloc.book("A", "D3")
    assert alloc.call_next("D3") is not None
    alloc.resize(token.slot_id or "", 0)
    alloc.missed_call(token.id)
    assert alloc.slot(token.slot_id or "").elastic == 1  # the place is granted
    alloc.check_invariants()
    assert restore(alloc.snapshot(), alloc, clock).snapshot() == alloc.snapshot()


# ============================================================================ impossible states


@pytest.fixture
def day(build: Build, clock: Clock) -> Allocator:
    """Every status, in this order of ``snapshot()["tokens"]``:

    0 ``D1-001`` BOOKED, 1 ``D1-002`` CHECKED_IN, 2 ``D1-003`` CHECKED_IN, 3 ``D1-004``
    WAITLISTED (D1@09 is full), 4 ``D2-001`` COMPLETED, 5 ``D2-002`` IN_CONSULTATION,
    6 ``D3-001`` CANCELLED. The untouched snapshot restores (each test checks it).
    """
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    alloc.book("P1", "D1", "D1@09", source=ONLINE)
    alloc.book("P2", "D1", "D1@09")
    alloc.book("P3", "D1", "D1@09")
    alloc.book("P4", "D1", "D1@09")
    alloc.book("P5", "D2", "D2@09")
    alloc.book("P6", "D2", "D2@09")
    clock.now = at(9, 5)
    alloc.call_next("D2")
    alloc.call_next("D2")
    alloc.cancel(alloc.book("P7", "D3", "D3@10", source=ONLINE).id)
    statuses = [t.status for t in alloc.tokens()]
    assert statuses == [
        TokenStatus.BOOKED,
        TokenStatus.CHECKED_IN,
        TokenStatus.CHECKED_IN,
        TokenStatus.WAITLISTED,
        TokenStatus.COMPLETED,
        TokenStatus.IN_CONSULTATION,
        TokenStatus.CANCELLED,
    ]
    return alloc


def refused(alloc: Allocator, clock: Clock, data: dict[str, Any]) -> str:
    """The message ``from_snapshot`` refuses ``data`` with; the original restores first."""
    assert restore(alloc.snapshot(), alloc, clock).snapshot() == alloc.snapshot()
    with pytest.raises(InvalidArgumentError) as info:
        restore(data, alloc, clock)
    return str(info.value)


def test_a_token_id_that_contradicts_its_number_is_refused(alloc: Allocator, clock: Clock) -> None:
    """Contract: a token's ``number`` is its "display number, per doctor, stable for life",
    and no operation ever loses a token. A snapshot in which token 2's id says ``D1-003``
    while its number is 2 used to restore, and the next booking, also ``D1-003``,
    overwrote patient P2. Now the id is checked against its issuing doctor and number."""
    alloc.book("P1", "D1")
    alloc.book("P2", "D1")
    data = alloc.snapshot()
    data["tokens"][1]["id"] = "D1-003"
    message = refused(alloc, clock, data)
    assert message == (
        "snapshot.tokens[1].id 'D1-003' does not match its number 2: doctor 'D1' issued "
        "number 2 as 'D1-002'"
    )
    # The real snapshot, restored, books D1-003 for P3 and keeps P2.
    copy = restore(alloc.snapshot(), alloc, clock)
    assert copy.book("P3", "D1").id == "D1-003"
    assert [t.patient_id for t in copy.tokens()] == ["P1", "P2", "P3"]


Edit = Callable[[dict[str, Any]], object]

# (name, edit, what the message must contain, the promise the state breaks)
IMPOSSIBLE: list[tuple[str, Edit, str, str]] = [
    (
        "id-and-number-disagree",
        lambda d: d["tokens"][1].update(id="D1-009"),
        "snapshot.tokens[1].id 'D1-009' does not match its number 2",
        "number: display number, per doctor, stable for life",
    ),
    (
        "empty-token-id",
        lambda d: d["tokens"][0].update(id=""),
        "snapshot.tokens[0].id must be non-empty without surrounding whitespace",
        "empty or padded ids ... are all refused",
    ),
    (
        "padded-token-id",
        lambda d: d["tokens"][0].update(id=" D1-001"),
        "snapshot.tokens[0].id must be non-empty without surrounding whitespace",
        "empty or padded ids ... are all refused",
    ),
    (
        "empty-patient-id",
        lambda d: d["tokens"][0].update(patient_id=""),
        "snapshot.tokens[0].patient_id must be non-empty without surrounding whitespace",
        "empty or padded ids ... are all refused",
    ),
    (
        "padded-patient-id",
        lambda d: d["tokens"][0].update(patient_id="P1 "),
        "snapshot.tokens[0].patient_id must be non-empty without surrounding whitespace",
        "empty or padded ids ... are all refused",
    ),
    (
        "negative-seq",
        lambda d: d["tokens"][0].update(seq=-1),
        "snapshot.tokens[0].seq must be >= 1, got -1",
        "seq: a global counter assigned when the token is booked",
    ),
    (
        "negative-number",
        lambda d: d["tokens"][0].update(number=-1),
        "snapshot.tokens[0].number must be >= 1, got -1",
        "number: display number, per doctor",
    ),
    (
        "negative-moves",
        lambda d: d["tokens"][0].update(moves=-1),
        "snapshot.tokens[0].moves must be >= 0, got -1",
        "moves: how often it was displaced or reassigned",
    ),
    (
        "unavailable-doctor-with-queued-tokens",
        lambda d: d["doctors"][0].update(available=False),
        "snapshot.tokens[0] is BOOKED but waits in slot 'D1@09' of doctor 'D1', who is unavailable",
        "mark_unavailable: every waiting token ... moves",
    ),
    (
        "completed-but-never-called",
        lambda d: d["tokens"][1].update(status="COMPLETED"),
        "snapshot.tokens[1] is COMPLETED but has no called_at: it was never called",
        "complete: IN_CONSULTATION -> COMPLETED",
    ),
    (
        "booked-with-checked-in-at",
        lambda d: d["tokens"][0].update(checked_in_at=d["tokens"][0]["booked_at"]),
        "snapshot.tokens[0] is BOOKED but has a checked_in_at",
        "BOOKED (has a slot, not arrived)",
    ),
    (
        "issued-count-below-a-number",
        lambda d: d["doctors"][0].update(issued=3),
        "snapshot.tokens[3].number 4 is above doctor 'D1''s issued count 3",
        "number: display number, per doctor (the next one is new)",
    ),
    (
        "seq-counter-below-a-seq",
        lambda d: d.update(seq=3),
        "snapshot.tokens[3].seq 4 is above snapshot.seq 3",
        "seq: a global counter (the next one is new)",
    ),
    (
        "current-consultation-not-in-consultation",
        lambda d: d["doctors"][0].update(current="D1-002"),
        "snapshot.doctors[0].current 'D1-002' must be a token IN_CONSULTATION with 'D1', "
        "got CHECKED_IN",
        "IN_CONSULTATION: the token is in the doctor's consultation",
    ),
    # More states no allocator can reach.
    (
        "in-consultation-without-a-doctor",
        lambda d: d["doctors"][1].update(current=None),
        "snapshot.tokens[5] is IN_CONSULTATION but doctor 'D2' is consulting None",
        "a token is in exactly one place at a time",
    ),
    (
        "two-tokens-share-a-seq",
        lambda d: d["tokens"][1].update(seq=1),
        "snapshot.tokens[1].seq 1 is also snapshot.tokens[0]'s",
        "seq unique overall",
    ),
    (
        "id-of-no-doctor",
        lambda d: d["tokens"][0].update(id="D9-001"),
        "snapshot.tokens[0].id 'D9-001' must start with the id of the doctor who issued it",
        "number: display number, per doctor",
    ),
    (
        "waitlisted-in-a-slot",
        lambda d: d["tokens"][3].update(slot_id="D1@10"),
        "snapshot.tokens[3] is WAITLISTED but has slot_id 'D1@10'",
        "slot_id: None while waitlisted",
    ),
    (
        "checked-in-without-arriving",
        lambda d: d["tokens"][1].update(checked_in_at=None),
        "snapshot.tokens[1] is CHECKED_IN but has no checked_in_at",
        "CHECKED_IN (has a slot, present)",
    ),
    (
        "completed-at-while-waiting",
        lambda d: d["tokens"][1].update(completed_at=d["tokens"][1]["checked_in_at"]),
        "snapshot.tokens[1] is CHECKED_IN but has a completed_at",
        "complete: IN_CONSULTATION -> COMPLETED",
    ),
    (
        "ended-token-in-another-doctors-slot",
        lambda d: d["tokens"][6].update(slot_id="D1@10"),
        "snapshot.tokens[6].slot_id 'D1@10' is not a slot of 'D3'",
        "a token is in exactly one place at a time",
    ),
    (
        "completed-without-completed-at",
        lambda d: d["tokens"][4].update(completed_at=None),
        "snapshot.tokens[4] is COMPLETED but has no completed_at",
        "complete: IN_CONSULTATION -> COMPLETED",
    ),
    (
        "waiting-in-a-closed-slot",
        lambda d: d["slots"][0].update(closed=True),
        "snapshot.tokens[0] is BOOKED but waits in slot 'D1@09', which is closed, and missed "
        "no call",
        "close_slot: its waiting tokens move",
    ),
    (
        "one-token-twice",
        lambda d: (d.update(seq=8), d["tokens"].append({**d["tokens"][0], "seq": 8})),
        "snapshot.tokens[7].id 'D1-001' appears twice",
        "a token is in exactly one place at a time",
    ),
    (
        "slots-overlap",
        lambda d: d["slots"][1].update(start="2026-11-25T09:30:00"),
        # add_slot's own check, through the one build path (before: the invariant check)
        "snapshot.slots[1]: slot 'D1@10' (2026-11-25 09:30:00 to 2026-11-25 11:00:00) "
        "overlaps slot 'D1@09'",
        "add_slot: overlap with the doctor's other slots -> InvalidArgumentError",
    ),
    (
        "over-capacity",
        lambda d: d["slots"][0].update(capacity=1),
        "invariant 'non-emergency tokens within the capacity limit' broken",
        "non-emergency tokens obey the capacity policy",
    ),
    (
        "two-active-tokens-for-one-patient",
        lambda d: d["tokens"][1].update(patient_id="P1"),
        "invariant 'one active token per patient under the duplicate rule' broken",
        "A patient holds at most one active token per doctor",
    ),
]


@pytest.mark.parametrize(
    ("edit", "match", "promise"),
    [pytest.param(edit, match, promise, id=name) for name, edit, match, promise in IMPOSSIBLE],
)
def test_an_impossible_state_is_refused(
    day: Allocator, clock: Clock, edit: Edit, match: str, promise: str
) -> None:
    """``from_snapshot`` refuses every state that ``check_invariants`` would reject, and
    every state no sequence of calls can reach, with an ``InvalidArgumentError`` naming the
    first problem and where it is. Each row quotes the promise its state breaks."""
    data = day.snapshot()
    edit(data)
    message = refused(day, clock, data)
    assert match in message, (promise, message)


def test_the_first_problem_is_named(day: Allocator, clock: Clock) -> None:
    data = day.snapshot()
    data["tokens"][4]["moves"] = -1
    data["tokens"][2]["seq"] = -1
    data["slots"][0]["capacity"] = 0
    assert "snapshot.tokens[2].seq" in refused(day, clock, data)


CORRUPTIONS: list[tuple[str, object, str]] = [
    ("version", "1", "snapshot.version must be int"),
    ("seq", True, "snapshot.seq must be int"),
    ("seq", -1, "snapshot.seq must be in [0, 1099511627775], got -1"),
    ("seq", 1, "snapshot.tokens[1].seq 2 is above snapshot.seq 1"),
    ("doctors", {}, "snapshot.doctors must be list"),
    ("doctors.0", "D1", "snapshot.doctors[0] must be an object"),
    ("doctors.0.consult_minutes", 0, "snapshot.doctors[0]: consult_minutes must be >= 1"),
    ("doctors.0.id", " D1", "snapshot.doctors[0]: id must be non-empty"),
    ("doctors.0.issued", -1, "snapshot.doctors[0].issued must be >= 0"),
    ("doctors.0.delay_minutes", 10**30, "snapshot.doctors[0].delay_minutes must be in"),
    ("doctors.0.current", "", "snapshot.doctors[0].current must be non-empty"),
    ("doctors.1.id", "D1", "snapshot.doctors[1].id 'D1' appears twice"),
    ("doctors.0.current", "D1-404", "doctor 'D1' is consulting 'D1-404'"),
    ("slots.0.start", "nine o'clock", "snapshot.slots[0].start must be an ISO 8601 datetime"),
    ("slots.0.capacity", -1, "snapshot.slots[0]: capacity must be >= 0"),
    ("slots.0.doctor_id", "D9", "snapshot.slots[0].doctor_id 'D9' is unknown"),
    ("slots.1.id", "D1@09", "snapshot.slots[1].id 'D1@09' appears twice"),
    (
        "slots.1.start",
        "2026-11-25T09:30:00",
        "snapshot.slots[1]: slot 'D1@10' (2026-11-25 09:30:00",
    ),
    (
        "slots.3",
        {
            "id": "D2@09",
            "doctor_id": "D2",
            "start": "2026-11-25T09:00:00+00:00",
            "end": "2026-11-25T10:00:00+00:00",
            "capacity": 3,
            "closed": False,
            "elastic": 0,
        },
        "snapshot.slots[3].start is aware, but snapshot.slots[0].start is naive",
    ),
    ("tokens.0.status", "LOST", "snapshot.tokens[0].status must be one of BOOKED,"),
    ("tokens.0.priority", 3, "snapshot.tokens[0].priority must be str"),
    ("tokens.0.doctor_id", "D9", "snapshot.tokens[0].doctor_id 'D9' is unknown"),
    ("tokens.0.slot_id", "D2@09", "snapshot.tokens[0].slot_id 'D2@09' is not a slot of 'D1'"),
    ("tokens.1.id", "D1-001", "snapshot.tokens[1].id 'D1-001' does not match its number 2"),
    ("tokens.0.seq", 2, "snapshot.tokens[1].seq 2 is also snapshot.tokens[0]'s"),
    ("tokens.0.moves", 1.5, "snapshot.tokens[0].moves must be int"),
    ("tokens.0.missed_calls", -1, "snapshot.tokens[0].missed_calls must be >= 0"),
    ("slots.0.closed", 0, "snapshot.slots[0].closed must be bool"),
    ("slots.0.elastic", -1, "snapshot.slots[0].elastic must be >= 0"),
    ("allocator_version", -1, "snapshot.allocator_version must be >= 0"),
    # Queue keys hold seq in 40 bits.
    ("seq", 2**40, f"snapshot.seq must be in [0, {2**40 - 1}], got {2**40}"),
    ("slots.2.start", "2026-11-24T11:30:00", "snapshot.slots[2].start must be on 2026-11-25"),
]


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [pytest.param(p, v, m, id=f"{p}={v!r}") for p, v, m in CORRUPTIONS],
)
def test_from_snapshot_refuses_malformed_data(
    alloc: Allocator, clock: Clock, path: str, value: object, match: str
) -> None:
    alloc.book("A", "D1", source=ONLINE)
    alloc.book("B", "D1")
    alloc.book("C", "D1")
    alloc.call_next("D1")
    message = refused(alloc, clock, corrupt(alloc.snapshot(), path, value))
    assert match in message


def test_from_snapshot_refuses_other_data(alloc: Allocator) -> None:
    data = alloc.snapshot()
    with pytest.raises(InvalidArgumentError, match="format"):
        Allocator.from_snapshot({**data, "format": "something else"})
    with pytest.raises(InvalidArgumentError, match=r"version 99 .* reads 2 and 3"):
        Allocator.from_snapshot({**data, "version": 99})
    with pytest.raises(InvalidArgumentError, match="missing"):
        Allocator.from_snapshot({**data, "slots": [{"id": "S"}]})
    with pytest.raises(InvalidArgumentError, match="object"):
        Allocator.from_snapshot([data])  # type: ignore[arg-type]


def test_a_long_bad_value_is_cut_short(alloc: Allocator) -> None:
    """A message names a bad value; it does not dump a whole list into a log line."""
    data = alloc.snapshot()
    with pytest.raises(InvalidArgumentError) as info:
        Allocator.from_snapshot({**data, "doctors": "x" * 10_000})
    message = str(info.value)
    assert message.startswith("snapshot.doctors must be list, got 'xxx")
    assert message.endswith("...")
    assert len(message) < 150


@attrs.frozen
class FailingKey:
    """Strict priority, but ``key`` raises: a user's own ordering with a bug."""

    lexicographic: bool = True

    def level(self, token: Token, now: datetime) -> int:
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        return None

    def key(self, token: Token) -> Comparable:
        raise RuntimeError("bug in the ordering")

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        return 0


def test_a_failing_policy_is_not_blamed_on_the_snapshot(alloc: Allocator, clock: Clock) -> None:
    """A sound snapshot restored under a user's policy that raises: the policy's error comes
    through as it is, not as "the snapshot is malformed"."""
    alloc.book("P", "D1")
    with pytest.raises(RuntimeError, match="bug in the ordering"):
        Allocator.from_snapshot(
            alloc.snapshot(), policies=Policies(ordering=FailingKey()), clock=clock
        )


# ============================================================================ naive and aware


def test_an_aware_datetime_in_a_naive_day_is_refused(day: Allocator, clock: Clock) -> None:
    """Contract: an Allocator's datetimes are all naive or all aware (``add_slot`` refuses a
    mix). One aware ``checked_in_at`` in a naive day used to restore, and the next ``cancel``
    raised ``TypeError`` half-way, leaving the token CANCELLED with broken invariants."""
    data = day.snapshot()
    data["tokens"][1]["checked_in_at"] = "2026-11-25T08:30:00+00:00"
    assert refused(day, clock, data) == (
        "snapshot.tokens[1].checked_in_at is aware, but snapshot.slots[0].start is naive: a "
        "snapshot's datetimes are all naive or all aware, got '2026-11-25T08:30:00+00:00'"
    )


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59", "0001-01-01T00:00:00"])
def test_a_time_at_an_end_of_datetimes_range_is_refused(
    build: Build, clock: Clock, text: str
) -> None:
    """A waitlisted patient who checked in at 9999-12-31 23:59 used to restore; once seated,
    aging added half an hour to that time and the call raised ``OverflowError``."""
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for patient in ("P1", "P2", "P3", "P4"):
        alloc.book(patient, "D1", "D1@09")
    data = alloc.snapshot()
    assert data["tokens"][3]["status"] == "WAITLISTED"
    data["tokens"][3]["checked_in_at"] = text
    assert "snapshot.tokens[3].checked_in_at must be between 0001-01-08 and 9999-12-24" in (
        refused(alloc, clock, data)
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("booked_at", "2026-11-25T08:30:00"),
        ("checked_in_at", "2026-11-25T08:30:00"),
        ("called_at", "2026-11-25T09:05:00"),
        ("completed_at", "2026-11-25T09:05:00"),
    ],
)
def test_a_naive_datetime_in_an_aware_day_is_refused(field: str, value: str) -> None:
    clock = Clock(at(8).replace(tzinfo=UTC))
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("A", "D1", at(9).replace(tzinfo=UTC), at(10).replace(tzinfo=UTC), 3))
    alloc.book("P", "D1")
    clock.now = at(9, 5).replace(tzinfo=UTC)
    alloc.call_next("D1")
    alloc.call_next("D1")  # completed: every datetime field is set
    data = alloc.snapshot()
    data["tokens"][0][field] = value
    assert f"snapshot.tokens[0].{field} is naive, but snapshot.slots[0].start is aware" in (
        refused(alloc, clock, data)
    )


# ============================================================================ time zones


def ny(hour: int, minute: int = 0, *, fold: int = 0, day: int = 1) -> datetime:
    """A wall-clock time in New York on 1 November 2026, the night clocks fall back at 02:00
    (EDT, -04:00) to 01:00 (EST, -05:00); ``fold=1`` is the second 01:xx."""
    return datetime(2026, 11, day, hour, minute, fold=fold, tzinfo=NEW_YORK)


def night(clock: Clock) -> Allocator:
    """A night clinic across the fall-back: 00:00 EDT to 03:00 EST (four real hours), then
    03:00 to 05:00 EST; default policies (aging every 30 minutes)."""
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao", consult_minutes=15))
    alloc.add_slot(Slot("night", "D1", ny(0), ny(3), 10))
    alloc.add_slot(Slot("dawn", "D1", ny(3), ny(5), 10))
    return alloc


def test_zone_names_are_kept() -> None:
    clock = Clock(ny(0, 10))
    alloc = night(clock)
    alloc.book("A", "D1")
    data = alloc.snapshot()
    assert data["slots"][0]["start"] == "2026-11-01T00:00:00-04:00[America/New_York]"
    assert data["slots"][0]["end"] == "2026-11-01T03:00:00-05:00[America/New_York]"
    assert data["tokens"][0]["booked_at"] == "2026-11-01T00:10:00-04:00[America/New_York]"
    copy = restore(data, alloc, clock)
    assert copy.slot("night").start.tzinfo is NEW_YORK
    assert copy.token("D1-001").booked_at.tzinfo is NEW_YORK
    assert copy.snapshot() == data


def test_a_restored_copy_behaves_as_the_original_across_the_fall_back_night() -> None:
    """Snapshots used to store ``ZoneInfo`` times as fixed offsets: on the New York fall-back
    night a restored copy aged its patients in another time than the original, called a
    different patient and told patients other wall-clock times. Now the zone is kept and
    the copy does exactly what the original does."""
    clock = Clock(ny(1, 20))
    alloc = night(clock)
    alloc.book("A", "D1")  # STANDARD, present from 01:20 EDT
    clock.now = ny(1, 40)
    alloc.book("F", "D1", source=Source.FOLLOW_UP, checked_in=True)
    alloc.book("L", "D1", "night", source=ONLINE)  # booked, not arrived
    alloc.delay("D1", 150)  # the night slot starts at 00:00 EDT + 150 minutes
    clock.now = ny(1, 45)
    copy = restore(alloc.snapshot(), alloc, clock)
    clock.now = ny(1, 15, fold=1)  # 01:15 EST: 55 real minutes after A arrived
    assert [t.id for t in copy.queue("night")] == [t.id for t in alloc.queue("night")]
    original_start = alloc.estimated_start("D1-003")
    copy_start = copy.estimated_start("D1-003")
    assert original_start is not None
    assert copy_start is not None
    assert copy_start.isoformat() == original_start.isoformat()
    assert copy_start.tzinfo is original_start.tzinfo
    called = alloc.call_next("D1")
    assert called is not None
    assert copy.call_next("D1") == called
    assert copy.snapshot() == alloc.snapshot()


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(ny(1, 30), id="first-01:30"),
        pytest.param(ny(1, 30, fold=1), id="second-01:30"),
        pytest.param(datetime(2026, 3, 8, 2, 30, tzinfo=NEW_YORK), id="spring-gap-02:30"),
        pytest.param(datetime(2026, 11, 25, 9, tzinfo=ZoneInfo("UTC")), id="zone-UTC"),
        pytest.param(datetime(2026, 11, 25, 9, tzinfo=UTC), id="fixed-UTC"),
        pytest.param(datetime(2026, 11, 25, 9, tzinfo=timezone(timedelta(hours=5.5))), id="IST"),
    ],
)
def test_every_kind_of_time_comes_back_exactly(value: datetime) -> None:
    clock = Clock(value - timedelta(hours=1))
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    alloc.add_slot(Slot("S", "D1", value, value + timedelta(hours=2), 3))
    start = restore(alloc.snapshot(), alloc, clock).slot("S").start
    assert (start.replace(tzinfo=None), start.fold, start.utcoffset()) == (
        value.replace(tzinfo=None),
        value.fold,
        value.utcoffset(),
    )
    assert start.tzinfo == value.tzinfo


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("2026-11-01T00:00:00-04:00[Nowhere/Land]", "unknown time zone 'Nowhere/Land'"),
        ("2026-11-01T00:00:00-04:00[../../etc/passwd]", "unknown time zone"),
        ("2026-11-01T00:00:00-04:00[America]", "unknown time zone 'America'"),
        ("2026-11-01T00:00:00[America/New_York]", "names a time zone but has no UTC offset"),
        ("2026-11-01T00:00:00-07:00[America/New_York]", "has offset -0700, which America/New"),
        ("2026-11-01T00:00:00-04:00[America/New_York", "must be an ISO 8601 datetime"),
    ],
)
def test_a_bad_zone_is_refused(text: str, match: str) -> None:
    clock = Clock(ny(0, 10))
    alloc = night(clock)
    data = alloc.snapshot()
    data["slots"][0]["start"] = text
    assert match in refused(alloc, clock, data)


VERSION_2 = {
    "format": "opd-engine/snapshot",
    "version": 2,
    "seq": 1,
    "allocator_version": 3,
    "doctors": [
        {
            "id": "D1",
            "name": "Dr. Rao",
            "department": "",
            "consult_minutes": 10,
            "issued": 1,
            "delay_minutes": 0,
            "available": True,
            "current": None,
        }
    ],
    "slots": [
        {
            "id": "S",
            "doctor_id": "D1",
            "start": "2026-11-25T09:00:00+05:30",
            "end": "2026-11-25T10:00:00+05:30",
            "capacity": 3,
            "closed": False,
            "elastic": 0,
        }
    ],
    "tokens": [
        {
            "id": "D1-001",
            "patient_id": "P",
            "doctor_id": "D1",
            "slot_id": "S",
            "priority": "STANDARD",
            "source": "ONLINE",
            "seq": 1,
            "number": 1,
            "status": "BOOKED",
            "booked_at": "2026-11-25T08:00:00+05:30",
            "checked_in_at": None,
            "moves": 0,
            "missed_calls": 0,
            "called_at": None,
            "completed_at": None,
        }
    ],
}


def test_a_version_2_snapshot_is_still_read() -> None:
    """Version 2 wrote every aware time as a fixed offset and no zone names; it restores
    as it always did, and is written back as version 3."""
    india = timezone(timedelta(hours=5, minutes=30))
    clock = Clock(datetime(2026, 11, 25, 8, 30, tzinfo=india))
    alloc = Allocator.from_snapshot(VERSION_2, clock=clock)
    assert alloc.token("D1-001").booked_at == datetime(2026, 11, 25, 8, tzinfo=india)
    assert alloc.version == 3
    assert alloc.snapshot() == {**VERSION_2, "version": 3}
    assert alloc.book("Q", "D1").id == "D1-002"


def test_a_version_1_snapshot_is_refused() -> None:
    """Version 1 had no ``allocator_version``, so a journal could not continue from it."""
    with pytest.raises(InvalidArgumentError, match=r"snapshot.version 1 is not supported"):
        Allocator.from_snapshot({**VERSION_2, "version": 1})


# ============================================================================ tampering


DOCTORS = (
    Doctor("D1", "Dr. Rao", department="General Medicine"),
    Doctor("D2", "Dr. Iyer", department="General Medicine", consult_minutes=15),
    Doctor("D3", "Dr. Sen", department="Cardiology"),
)
# (doctor, minutes after the day's first start, length in minutes)
# On New York's fall-back night ``D2@0`` spans the change (00:00 EDT to 01:30 EST).
SLOTS = (("D1", 0, 60), ("D1", 120, 60), ("D2", 0, 150), ("D2", 150, 60), ("D3", 30, 60))
PATIENTS = tuple(f"P{i}" for i in range(1, 11))
POLICIES = (
    Policies(),
    Policies(on_full=OnFull.WAITLIST, emergency=EmergencyOverride(max_overflow=1)),
    Policies(on_full=OnFull.NEXT_SLOT, ordering=StrictPriority(), capacity=Overbooking(0.25)),
    Policies(ordering=Aging(step=timedelta(minutes=10), ceiling=Priority.PAID)),
    Policies(
        ordering=AccumulatingPriority(),
        capacity=SourceQuota({Source.ONLINE: 1}),
        reallocation=Reallocation(fill_idle=False, max_moves=1),
        duplicates=Duplicates.PER_DEPARTMENT,
        max_missed_calls=1,
    ),
    Policies(
        capacity=Reserve({Source.WALK_IN: 2}, release_before=timedelta(minutes=45)),
        on_full=OnFull.NEXT_SLOT,
    ),
)
# (the zone, the day's first slot start): naive, a fixed offset, and New York's fall-back
# night, so that the random clock crosses the change.
ZONES: tuple[tuple[tzinfo | None, datetime], ...] = (
    (None, DAY.replace(hour=9)),
    (timezone(timedelta(hours=5, minutes=30)), DAY.replace(hour=9)),
    (NEW_YORK, datetime(2026, 11, 1, 0, 0)),
)


class ZoneClock:
    """A clock that runs in real time and reads in ``zone`` (so it crosses a fall-back
    night as a wall clock does, through both 01:30s)."""

    def __init__(self, start: datetime) -> None:
        self.instant = start.astimezone(UTC) if start.tzinfo is not None else start
        self.zone = start.tzinfo

    def __call__(self) -> datetime:
        return self.instant if self.zone is None else self.instant.astimezone(self.zone)

    def advance(self, minutes: int) -> None:
        self.instant += timedelta(minutes=minutes)


def new_day(
    policies: Policies, zone: tzinfo | None, first: datetime
) -> tuple[Allocator, ZoneClock]:
    first = first if zone is None else first.replace(tzinfo=zone)
    clock = ZoneClock(first - timedelta(minutes=20))
    alloc = Allocator(policies=policies, clock=clock)
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
    base = first.astimezone(UTC) if zone is not None else first
    for doctor_id, offset, length in SLOTS:
        start = base + timedelta(minutes=offset)
        end = start + timedelta(minutes=length)
        if zone is not None:
            start, end = start.astimezone(zone), end.astimezone(zone)
        alloc.add_slot(Slot(f"{doctor_id}@{offset}", doctor_id, start, end, 3))
    return alloc, clock


def random_call(
    alloc: Allocator, clock: ZoneClock, rng: random.Random, *, tick: bool = True
) -> None:
    """One random public call with ids from the allocator itself (whatever a tampered
    snapshot named them), now and then an unknown one, or (``tick``) the clock moving on;
    an ``OPDError`` is a refusal and fine, anything else escapes."""
    tokens = [t.id for t in alloc.tokens()] or ["D1-001"]
    doctors = [d.id for d in alloc.doctors()] or ["D1"]
    slots = [s.id for s in alloc.slots()] or ["S"]
    token_id = rng.choice(tokens) if rng.random() < 0.95 else "X-001"
    doctor_id = rng.choice(doctors)
    slot_id = rng.choice(slots)

    def book() -> object:
        return alloc.book(
            rng.choice(PATIENTS),
            doctor_id,
            None if rng.random() < 0.5 else slot_id,
            source=rng.choice(list(Source)),
            priority=None if rng.random() < 0.6 else rng.choice(list(Priority)),
            checked_in=rng.choice([None, True, False]),
        )

    def call_and_miss() -> object:
        called = alloc.call_next(doctor_id)
        return None if called is None else alloc.missed_call(called.id)

    calls: list[Callable[[], object]] = [
        book,
        book,
        book,
        lambda: alloc.check_in(token_id),
        lambda: alloc.call_next(doctor_id),
        lambda: alloc.call_next(doctor_id),
        lambda: alloc.complete(token_id),
        lambda: alloc.cancel(token_id),
        lambda: alloc.no_show(token_id),
        lambda: alloc.delay(doctor_id, rng.randint(0, 30)),
        lambda: alloc.resize(slot_id, rng.randint(0, 4)),
        lambda: alloc.mark_unavailable(doctor_id) if rng.random() < 0.2 else None,
        lambda: alloc.mark_available(doctor_id),
        lambda: alloc.close_slot(slot_id) if rng.random() < 0.2 else None,
        lambda: alloc.reschedule(token_id, slot_id),
        lambda: alloc.retriage(token_id, rng.choice(list(Priority))),
        lambda: alloc.missed_call(token_id),
        call_and_miss,
        lambda: clock.advance(rng.randint(1, 25)) if tick else None,
        lambda: alloc.queue(slot_id),
        lambda: alloc.waitlist(doctor_id),
        lambda: alloc.position(token_id),
        lambda: alloc.estimated_start(token_id),
    ]
    with contextlib.suppress(OPDError):
        rng.choice(calls)()


Node = dict[str, Any]


def fields(data: Node, part: str) -> list[tuple[Node, str]]:
    """The fields of one part of a snapshot: (the object holding one, its key)."""
    if part == "root":
        return [(data, "seq")]
    return [(item, key) for item in data[part] for key in item]


def plausible(data: Node, key: str, value: object) -> list[object]:
    """Values a tamperer might put in place of ``value`` at ``key`` that look right: the
    same field elsewhere in the snapshot, a neighbour, a padded or shortened id, another
    member's name, a time moved, made naive or aware, or given another zone."""
    others = [
        item[key]
        for part in ("doctors", "slots", "tokens")
        for item in data[part]
        if item.get(key) is not None and item[key] != value
    ]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value - 1, value + 1, -value, 10**6, *others[:5]]
    if not isinstance(value, str):
        return others[:10] or [0]
    moved = shifted_times(value)
    if moved:
        return moved + others[:5]
    for enum in (Priority, Source, TokenStatus):
        if value in enum.__members__:
            return [m.name for m in enum if m.name != value]
    return [f" {value}", f"{value} ", value[:-1], *others[:10]]


WRONG: tuple[object, ...] = (None, "", True, 1.5, [], {}, -1, 0, 2**63, "LOST")


def shifted_times(text: str) -> list[str]:
    """``text`` as a time moved, made naive or aware, given a zone or its zone taken away,
    or taken to an end of ``datetime``'s range; empty if ``text`` is not a time."""
    base, _, zone = text.partition("[")
    try:
        when = datetime.fromisoformat(base)
    except ValueError:
        return []
    out = []
    for minutes in (-1, 1, -60, 60, 24 * 60, -400 * 24 * 60):
        with contextlib.suppress(OverflowError):
            out.append((when + timedelta(minutes=minutes)).isoformat())
    out.append(when.replace(tzinfo=None).isoformat() if when.tzinfo else f"{base}+00:00")
    out.extend([base, f"{base}[Europe/London]", f"{base}[Nowhere/Land]", f"{base}[{zone}"])
    edge = "" if when.tzinfo is None else "+00:00"
    out.extend([f"0001-01-01T00:00:00{edge}", f"9999-12-31T23:59:59{edge}"])
    return out


TIMES = ("booked_at", "checked_in_at", "called_at", "completed_at")
PARTS = ("tokens",) * 6 + ("doctors", "slots", "root")


@st.composite
def tampered_snapshots(draw: st.DrawFn) -> tuple[dict[str, Any], Policies, ZoneClock, int]:
    """A real snapshot (random calls on a random day), then one to three random edits:
    mostly a field set to a value that looks right (now and then one of the wrong type),
    sometimes a whole doctor, slot or token dropped or doubled."""
    policies = draw(st.sampled_from(POLICIES))
    zone, first = draw(st.sampled_from(ZONES))
    alloc, clock = new_day(policies, zone, first)
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(20, 120))):
        random_call(alloc, clock, rng)
    data = json.loads(json.dumps(alloc.snapshot()))
    times = shifted_times(data["slots"][0]["start"])
    for _ in range(draw(st.integers(1, 3))):
        part = draw(st.sampled_from(PARTS))
        if part != "root" and draw(st.integers(0, 9)) == 0:
            items = data[part]
            if items:
                i = draw(st.integers(0, len(items) - 1))
                if draw(st.booleans()):
                    del items[i]
                else:
                    items.append(json.loads(json.dumps(items[i])))
            continue
        found = fields(data, part) or fields(data, "root")
        node, key = draw(st.sampled_from(found))
        kind = draw(st.integers(0, 5))
        if kind == 0:
            node[key] = draw(st.sampled_from(WRONG))
        elif kind == 1 and data["tokens"]:
            # A token's time, set where there was none, moved, or taken to an edge.
            node = draw(st.sampled_from(data["tokens"]))
            key = draw(st.sampled_from(TIMES))
            node[key] = draw(st.sampled_from(times))
        else:
            node[key] = draw(st.sampled_from(plausible(data, key, node[key])))
    return data, policies, clock, rng.randrange(2**32)


TAMPER_SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@TAMPER_SETTINGS
@given(case=tampered_snapshots())
def test_a_tampered_snapshot_is_refused_or_restores_into_a_working_allocator(
    case: tuple[dict[str, Any], Policies, ZoneClock, int],
) -> None:
    """Issue: "A property test tampers with random fields of real snapshots. Each result
    must be either refused cleanly, or restored into a state that survives 200 random calls
    without an internal error." Refused means ``InvalidArgumentError`` and nothing else;
    restored means that after each of 200 random calls only an ``OPDError`` escaped and
    every invariant holds, and that the final state snapshots and restores exactly."""
    data, policies, clock, seed = case
    try:
        alloc = Allocator.from_snapshot(data, policies=policies, clock=clock)
    except InvalidArgumentError:
        return
    rng = random.Random(seed)
    for _ in range(200):
        random_call(alloc, clock, rng)
        alloc.check_invariants()
    final = alloc.snapshot()
    copy = Allocator.from_snapshot(json.loads(json.dumps(final)), policies=policies, clock=clock)
    assert copy.snapshot() == final


@settings(TAMPER_SETTINGS, max_examples=100)
@given(
    policies=st.sampled_from(POLICIES),
    zone=st.sampled_from(ZONES),
    seed=st.integers(0, 2**32),
    steps=st.integers(0, 150),
)
def test_every_real_state_restores_and_carries_on_the_same(
    policies: Policies, zone: tuple[tzinfo | None, datetime], seed: int, steps: int
) -> None:
    """Nothing a real allocator can reach is refused: after random calls the snapshot
    restores, the copy's snapshot is the original's, and 50 more random calls give both the
    same results and the same state."""
    alloc, clock = new_day(policies, *zone)
    rng = random.Random(seed)
    for _ in range(steps):
        random_call(alloc, clock, rng)
    copy = Allocator.from_snapshot(
        json.loads(json.dumps(alloc.snapshot())), policies=policies, clock=clock
    )
    assert copy.snapshot() == alloc.snapshot()
    for i in range(50):
        for each in (alloc, copy):
            random_call(each, clock, random.Random(f"{seed}-{i}"), tick=False)
        assert copy.records() == alloc.records()
        clock.advance(rng.randint(0, 10))
    assert copy.snapshot() == alloc.snapshot()
