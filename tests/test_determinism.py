"""Determinism: the same calls and clock give the same state and events, in any process.

The contract: "Time comes from an injected clock; every decision is deterministic given the
clock and the sequence of calls." A fixed script of seeded random operations is played on a
fresh allocator, in this process and in fresh interpreters under different hash seeds; the
snapshots (as JSON) and the event streams (as reprs) must be identical.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Callable
from contextlib import suppress
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest

from conftest import Clock, at
from opd_engine import (
    AccumulatingPriority,
    Allocator,
    Doctor,
    EmergencyOverride,
    Event,
    OnFull,
    OPDError,
    Policies,
    Priority,
    Reallocation,
    Slot,
    Source,
    SourceQuota,
    Token,
    TokenStatus,
)

TESTS = Path(__file__).resolve().parent
STEPS = 300

POLICIES: dict[str, Callable[[], Policies]] = {
    "default": Policies,
    "mixed": lambda: Policies(
        capacity=SourceQuota({Source.ONLINE: 2, Source.PAID: 1}),
        emergency=EmergencyOverride(max_overflow=1),
        reallocation=Reallocation(max_moves=1),
        ordering=AccumulatingPriority(),
        on_full=OnFull.NEXT_SLOT,
        no_show_grace=timedelta(minutes=5),
    ),
}
DOCTORS = (
    Doctor("D1", "Dr. Rao", department="General Medicine"),
    Doctor("D2", "Dr. Iyer", department="General Medicine", consult_minutes=7),
    Doctor("D3", "Dr. Sen", department="Cardiology", consult_minutes=15),
)
# Patient ids are strings of varied shapes, so any set or dict ordered by hash would show.
PATIENTS = tuple(f"{name}-{n}" for n, name in enumerate(["asha", "Bo", "c", "Dev", "émile"] * 4))


def play(policies: str = "default") -> tuple[str, list[str]]:
    """Play the fixed script (``random.Random(7)``) on a fresh allocator whose clock the
    script advances. Returns the final snapshot as sorted JSON and every event's repr."""
    rng = random.Random(7)
    clock = Clock(at(8, 40))
    alloc = Allocator(policies=POLICIES[policies](), clock=clock)
    events: list[Event] = []
    alloc.subscribe(events.append)
    slot_ids: list[str] = []
    for doctor in DOCTORS:
        alloc.add_doctor(doctor)
        for i in range(5):
            start = at(9) + timedelta(minutes=25 * i)
            slot_id = f"{doctor.id}@{i}"
            alloc.add_slot(Slot(slot_id, doctor.id, start, start + timedelta(minutes=25), 3))
            slot_ids.append(slot_id)
    issued: list[str] = []
    outcomes: list[str] = []

    def overdue(token: Token) -> bool:
        """Booked, and its slot's no-show grace period is over."""
        if token.status is not TokenStatus.BOOKED or token.slot_id is None:
            return False
        return alloc.slot(token.slot_id).start + alloc.policies.no_show_grace <= clock.now

    def some_token(*statuses: TokenStatus, fits: Callable[[Token], bool] | None = None) -> str:
        """Usually a token in one of ``statuses`` or that ``fits`` (so the call succeeds),
        else any token issued."""
        fitting = [
            t.id for t in alloc.tokens() if t.status in statuses or (fits is not None and fits(t))
        ]
        pool = fitting if fitting and rng.random() < 0.7 else issued
        return pool[rng.randrange(len(pool))] if pool else "D1-001"

    def book(
        patient: str,
        doctor_id: str,
        slot_id: str | None,
        source: Source,
        priority: Priority | None,
        checked_in: bool | None,
    ) -> object:
        token = alloc.book(
            patient, doctor_id, slot_id, source=source, priority=priority, checked_in=checked_in
        )
        issued.append(token.id)
        return token

    def look(token_id: str) -> object:
        return alloc.position(token_id), alloc.estimated_start(token_id)

    for step in range(STEPS):
        roll = rng.random()
        doctor_id = rng.choice(DOCTORS).id
        call: Callable[[], object]
        if step == STEPS // 2:
            call = partial(alloc.mark_unavailable, "D2")
        elif roll < 0.40:
            call = partial(
                book,
                rng.choice(PATIENTS),
                doctor_id,
                rng.choice([None, None, *(s for s in slot_ids if s.startswith(doctor_id))]),
                rng.choice(list(Source)),
                rng.choice([None, None, None, *Priority]),
                rng.choice([None, True, False]),
            )
        elif roll < 0.52:
            call = partial(alloc.check_in, some_token(TokenStatus.BOOKED, TokenStatus.NO_SHOW))
        elif roll < 0.62:
            call = partial(alloc.call_next, doctor_id)
        elif roll < 0.65:
            call = partial(alloc.complete, some_token(TokenStatus.IN_CONSULTATION))
        elif roll < 0.70:
            call = partial(alloc.cancel, some_token(TokenStatus.BOOKED, TokenStatus.WAITLISTED))
        elif roll < 0.77:
            call = partial(alloc.no_show, some_token(fits=overdue))
        elif roll < 0.79:
            call = partial(alloc.delay, doctor_id, rng.randrange(0, 15))
        elif roll < 0.81:
            call = partial(alloc.resize, rng.choice(slot_ids), rng.randrange(0, 5))
        elif roll < 0.87:
            call = partial(look, some_token(TokenStatus.CHECKED_IN, TokenStatus.WAITLISTED))
        else:
            call = partial(clock.advance, rng.randrange(1, 11))
        try:
            outcomes.append(repr(call()))
        except OPDError as error:
            outcomes.append(f"{type(error).__name__}: {error}")
    with suppress(OPDError):
        outcomes.extend(repr(alloc.queue(s)) for s in slot_ids)
    snapshot = json.dumps(alloc.snapshot(), sort_keys=True)
    return snapshot, [repr(e) for e in events] + outcomes


def play_elsewhere(policies: str, hash_seed: str) -> tuple[str, list[str]]:
    """:func:`play` in a fresh interpreter with ``PYTHONHASHSEED=hash_seed``."""
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(TESTS)!r})\n"
        "from test_determinism import play\n"
        f"snapshot, events = play({policies!r})\n"
        "sys.stdout.write(json.dumps([snapshot, events]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    snapshot, events = json.loads(done.stdout)
    return snapshot, events


@pytest.mark.parametrize("policies", list(POLICIES))
def test_same_script_same_result_in_process(policies: str) -> None:
    """Contract: "every decision is deterministic given the clock and the sequence of
    calls." Playing the script twice in one process gives the identical snapshot and events."""
    first = play(policies)
    second = play(policies)
    assert first == second
    # The script exercises the allocator for real: many events of many kinds.
    kinds = {line.split("(", 1)[0] for line in first[1] if "(at=" in line}
    assert {"TokenBooked", "TokenCalled", "TokenCompleted", "TokenCancelled"} <= kinds, kinds
    assert {"TokenMoved", "TokenNoShow", "DoctorUnavailable", "SlotResized"} <= kinds, kinds
    assert len(first[1]) > STEPS


@pytest.mark.parametrize("policies", list(POLICIES))
def test_same_script_same_result_across_processes(policies: str) -> None:
    """Contract: "every decision is deterministic given the clock and the sequence of
    calls." Fresh interpreters under two different PYTHONHASHSEEDs produce the identical
    snapshot JSON and event list as this process."""
    here = play(policies)
    for hash_seed in ("0", "4242"):
        there = play_elsewhere(policies, hash_seed)
        assert there[0] == here[0], f"snapshot differs under PYTHONHASHSEED={hash_seed}"
        assert there[1] == here[1], f"events differ under PYTHONHASHSEED={hash_seed}"
