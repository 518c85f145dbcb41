"""Thread safety: one allocator shared by eight threads that start together.

The contract: "Every public Allocator method is safe to call from several threads." The
threads hammer a shared allocator with every kind of call while ``sys.setswitchinterval``
is lowered so that they interleave finely; afterwards the state must be exactly what some
serial order of the calls would leave: invariants hold, no token is lost or duplicated, no
slot is over capacity, and the events a subscriber received tell the same story as the
final state.
"""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from opd_engine import (
    Allocator,
    Doctor,
    Event,
    OnFull,
    OPDError,
    Policies,
    Priority,
    Slot,
    SlotFullError,
    Source,
    Token,
    TokenBooked,
    TokenCalled,
    TokenCancelled,
    TokenCompleted,
    TokenEvent,
    TokenNoShow,
    TokenStatus,
    TokenWaitlisted,
)
from test_stateful import placement_problems

THREADS = 8
OPERATIONS = 400  # per thread
SEED = 20261125
DAY = datetime(2026, 11, 25)
DOCTORS = (
    Doctor("D1", "Dr. Rao", department="General Medicine", consult_minutes=8),
    Doctor("D2", "Dr. Iyer", department="General Medicine"),
    Doctor("D3", "Dr. Sen", department="Cardiology", consult_minutes=12),
    Doctor("D4", "Dr. Das", department="Cardiology"),
)
SLOT_MINUTES = 20
SLOTS_PER_DOCTOR = 8
PATIENTS = tuple(f"P{n:03d}" for n in range(120))
HOLDING = (
    TokenStatus.BOOKED,
    TokenStatus.CHECKED_IN,
    TokenStatus.IN_CONSULTATION,
    TokenStatus.COMPLETED,
)


class LockedClock:
    """A deterministic clock shared by threads: it moves only when told, under a lock."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, minutes: int) -> None:
        with self._lock:
            self._now += timedelta(minutes=minutes)


@contextmanager
def fine_interleaving() -> Iterator[None]:
    """Switch threads as often as the interpreter allows, for the duration."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def run_threads(work: Callable[[int], None]) -> list[str]:
    """Run ``work(index)`` in ``THREADS`` threads started together; return the formatted
    tracebacks of every exception that escaped a thread."""
    barrier = threading.Barrier(THREADS, timeout=30)
    failures: list[str] = []
    failures_lock = threading.Lock()

    def body(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException:
            with failures_lock:
                failures.append(f"thread {index}:\n{traceback.format_exc()}")

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(THREADS)]
    with fine_interleaving():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    stuck = [i for i, thread in enumerate(threads) if thread.is_alive()]
    assert not stuck, f"threads {stuck} never finished (deadlock?)"
    return failures


def build_day(clock: LockedClock) -> tuple[Allocator, list[str]]:
    # HardLimit capacity; full slots send bookings on to a later slot or the waitlist.
    alloc = Allocator(policies=Policies(on_full=OnFull.NEXT_SLOT), clock=clock)
    slot_ids: list[str] = []
    for number, doctor in enumerate(DOCTORS):
        alloc.add_doctor(doctor)
        for i in range(SLOTS_PER_DOCTOR):
            start = DAY.replace(hour=9) + timedelta(minutes=SLOT_MINUTES * i)
            slot_id = f"{doctor.id}@{i}"
            capacity = 2 + (number + i) % 3
            alloc.add_slot(
                Slot(slot_id, doctor.id, start, start + timedelta(minutes=SLOT_MINUTES), capacity)
            )
            slot_ids.append(slot_id)
    return alloc, slot_ids


class Worker:
    """One thread's share of the day, driven by its own seeded generator."""

    def __init__(
        self,
        alloc: Allocator,
        clock: LockedClock,
        slot_ids: list[str],
        issued: list[str],
        issued_lock: threading.Lock,
        index: int,
    ) -> None:
        self.alloc = alloc
        self.clock = clock
        self.slot_ids = slot_ids
        self.issued = issued
        self.issued_lock = issued_lock
        self.index = index
        self.rng = random.Random(SEED + index)
        self.booked: list[str] = []  # ids this thread's book() calls returned

    def some_token(self) -> str:
        with self.issued_lock:
            if not self.issued:
                return "D1-001"
            return self.issued[self.rng.randrange(len(self.issued))]

    def book(self) -> None:
        rng = self.rng
        doctor = rng.choice(DOCTORS).id
        slot_id = None
        if rng.random() < 0.5:
            # Mostly the doctor's own slots; now and then another's (a refused call).
            owner = doctor if rng.random() < 0.9 else rng.choice(DOCTORS).id
            slot_id = f"{owner}@{rng.randrange(SLOTS_PER_DOCTOR)}"
        priority = rng.choice([None, None, None, *Priority])
        if rng.random() < 0.05:
            priority = Priority.EMERGENCY
        token = self.alloc.book(
            rng.choice(PATIENTS),
            doctor,
            slot_id,
            source=rng.choice(list(Source)),
            priority=priority,
            checked_in=rng.choice([None, True, False]),
        )
        self.booked.append(token.id)
        with self.issued_lock:
            self.issued.append(token.id)

    def query(self) -> None:
        alloc, rng = self.alloc, self.rng
        token_id = self.some_token()
        choice = rng.randrange(8)
        if choice == 0:
            queue = alloc.queue(rng.choice(self.slot_ids))
            assert all(t.status in (TokenStatus.BOOKED, TokenStatus.CHECKED_IN) for t in queue)
        elif choice == 1:
            waitlist = alloc.waitlist(rng.choice(DOCTORS).id)
            assert all(t.status is TokenStatus.WAITLISTED for t in waitlist)
        elif choice == 2:
            assert alloc.position(token_id) >= 1
        elif choice == 3:
            alloc.estimated_start(token_id)
        elif choice == 4:
            # Tokens are never removed and listed in the order issued, so an earlier view
            # is a prefix of a later one even while other threads book.
            rows = [row["id"] for row in alloc.records()]
            later = [t.id for t in alloc.tokens()]
            assert later[: len(rows)] == rows
        elif choice == 5:
            self.snapshot_round_trip()
        elif choice == 6:
            assert alloc.token(token_id).id == token_id
            shown = alloc.slot(rng.choice(self.slot_ids))
            shown._repr_html_()  # what a notebook shows, while other threads change it
            repr(shown)
            alloc.doctor(rng.choice(DOCTORS).id)
            alloc.slots(rng.choice(DOCTORS).id)
            alloc.doctors()
            repr(alloc)
        else:
            alloc.check_invariants()

    def snapshot_round_trip(self) -> None:
        """A snapshot taken mid-run is one consistent state: it restores and round-trips."""
        data = self.alloc.snapshot()
        try:
            restored = Allocator.from_snapshot(data, clock=self.clock)
        except OPDError as error:  # an inconsistent snapshot is a bug, not a refusal
            raise AssertionError(
                f"a snapshot taken under load does not restore: {error}"
            ) from error
        assert restored.snapshot() == data

    def step(self, number: int) -> None:
        alloc, rng = self.alloc, self.rng
        roll = rng.random()
        if self.index == 0 and number == OPERATIONS // 2:
            alloc.mark_unavailable("D4")
        elif self.index == 1 and number == OPERATIONS // 3:
            alloc.close_slot(rng.choice(self.slot_ids))
        elif self.index == 0 and number == 3 * OPERATIONS // 4:
            alloc.mark_available("D4")
        elif roll < 0.03:
            alloc.reschedule(self.some_token(), rng.choice(self.slot_ids))
        elif roll < 0.05:
            alloc.retriage(self.some_token(), rng.choice(list(Priority)))
        elif roll < 0.07:
            alloc.missed_call(self.some_token())
        elif roll < 0.34:
            self.book()
        elif roll < 0.46:
            alloc.check_in(self.some_token())
        elif roll < 0.56:
            alloc.call_next(rng.choice(DOCTORS).id)
        elif roll < 0.61:
            alloc.complete(self.some_token())
        elif roll < 0.67:
            alloc.cancel(self.some_token())
        elif roll < 0.73:
            alloc.no_show(self.some_token())
        elif roll < 0.94:
            self.query()
        elif roll < 0.98:
            self.clock.advance(1)
        elif roll < 0.99:
            alloc.delay(rng.choice(DOCTORS).id, rng.randrange(0, 6))
        elif self.index == 0:
            # Only one thread resizes, and only upwards, so capacities never shrink.
            slot = alloc.slot(rng.choice(self.slot_ids))
            alloc.resize(slot.id, slot.capacity + 1)

    def run(self) -> None:
        for number in range(OPERATIONS):
            # A refused call is fine; anything else escapes and fails the test.
            with contextlib.suppress(OPDError):
                self.step(number)


def test_concurrent_day_keeps_every_invariant() -> None:
    """Contract: "Every public Allocator method is safe to call from several threads."

    Eight threads book (every source and priority, chosen and explicit slots), check in,
    call, complete, cancel, mark no-shows, delay, resize, mark a doctor unavailable and query
    one allocator at once; only OPDError may escape a call, and the final state and event
    stream are those of a serial history."""
    clock = LockedClock(DAY.replace(hour=8, minute=50))
    alloc, slot_ids = build_day(clock)
    events: list[Event] = []
    alloc.subscribe(events.append)
    issued: list[str] = []  # shared by the workers, under one lock
    issued_lock = threading.Lock()
    workers = [Worker(alloc, clock, slot_ids, issued, issued_lock, i) for i in range(THREADS)]

    failures = run_threads(lambda i: workers[i].run())
    assert not failures, "\n".join(failures)

    alloc.check_invariants()
    tokens = alloc.tokens()
    booked = [token_id for worker in workers for token_id in worker.booked]
    # Enough happened for the test to mean something.
    assert len(booked) > THREADS * OPERATIONS // 10
    assert clock() > DAY.replace(hour=9, minute=30)

    # Every id book() returned is unique and retrievable, exactly once in tokens().
    assert len(booked) == len(set(booked)), "book returned an id twice"
    assert Counter(t.id for t in tokens) == Counter(booked)
    for token_id in booked:
        assert alloc.token(token_id).id == token_id
    assert sorted(booked) == sorted(issued)
    problems = placement_problems(alloc, booked, [d.id for d in DOCTORS], slot_ids)
    assert not problems, problems
    assert len({t.seq for t in tokens}) == len(tokens), "two tokens share a seq"

    # No slot holds more non-emergency tokens than its capacity (HardLimit), but for the
    # places the idle-fill rule granted to patients called straight from the waitlist.
    for slot in alloc.slots():
        normal = [
            t
            for t in tokens
            if t.slot_id == slot.id and t.status in HOLDING and t.priority is not Priority.EMERGENCY
        ]
        assert len(normal) <= slot.capacity + slot.elastic, (slot, [t.id for t in normal])
        holders = [t for t in tokens if t.slot_id == slot.id and t.status in HOLDING]
        assert slot.occupancy == len(holders), slot

    check_events(events, tokens)


def check_events(events: list[Event], tokens: list[Token]) -> None:
    """The subscriber's events are one serial history that ends in the final state."""
    final = {t.id: t for t in tokens}
    # Calls are serialized and the clock never runs back, so neither does ``at``.
    stamps = [e.at for e in events]
    assert stamps == sorted(stamps), "events delivered out of order"

    issuing = [e for e in events if isinstance(e, TokenBooked | TokenWaitlisted)]
    assert len(issuing) == len(tokens)
    assert Counter(e.token_id for e in issuing) == Counter(final.keys())

    last: dict[str, TokenEvent] = {}
    first: dict[str, TokenEvent] = {}
    for event in events:
        if isinstance(event, TokenEvent):
            assert event.token_id in final, f"event about a token never issued: {event!r}"
            first.setdefault(event.token_id, event)
            last[event.token_id] = event
    for token_id, token in final.items():
        assert isinstance(first[token_id], TokenBooked | TokenWaitlisted), first[token_id]
        assert last[token_id].token.status is token.status, (last[token_id], token)
        assert last[token_id].token == token, "the last event does not show the final value"

    # Numbers are unique per issuing doctor and stable for life.
    numbers: dict[str, list[int]] = {}
    for event in issuing:
        numbers.setdefault(event.token.doctor_id, []).append(event.token.number)
        assert final[event.token_id].number == event.token.number
    for doctor_id, issued in numbers.items():
        assert len(issued) == len(set(issued)), f"doctor {doctor_id} reused a number"

    # Every event carries the version of its call; calls are serialized, so versions only
    # grow along the delivery order.
    versions = [e.version for e in events]
    assert versions == sorted(versions), "versions delivered out of order"

    kinds = Counter(type(e) for e in events)
    statuses = Counter(t.status for t in tokens)
    called = statuses[TokenStatus.IN_CONSULTATION] + statuses[TokenStatus.COMPLETED]
    # A call the patient missed was a call too.
    assert kinds[TokenCalled] == called + sum(t.missed_calls for t in tokens)
    assert kinds[TokenCompleted] == statuses[TokenStatus.COMPLETED]
    assert kinds[TokenCancelled] == statuses[TokenStatus.CANCELLED]
    assert kinds[TokenNoShow] >= statuses[TokenStatus.NO_SHOW]
    # At most one patient in consultation per doctor.
    consulting = Counter(t.doctor_id for t in tokens if t.status is TokenStatus.IN_CONSULTATION)
    assert all(n == 1 for n in consulting.values()), consulting


def test_last_places_go_to_exactly_capacity_bookers() -> None:
    """Contract: "Every public Allocator method is safe to call from several threads."

    Eight threads book the last free places of one slot at the same instant, round after
    round: exactly as many succeed as there were free places, every other one gets
    SlotFullError (the slot "is full"), and the slot ends exactly at capacity."""
    rounds = 80
    clock = LockedClock(DAY.replace(hour=8))
    alloc = Allocator(clock=clock)
    alloc.add_doctor(Doctor("D1", "Dr. Rao"))
    plan: list[tuple[str, int, int]] = []  # (slot id, capacity, places taken beforehand)
    for r in range(rounds):
        start = DAY.replace(hour=9) + timedelta(minutes=10 * r)
        capacity = 3 + r % 4
        taken = r % capacity
        slot_id = f"D1@{r}"
        alloc.add_slot(Slot(slot_id, "D1", start, start + timedelta(minutes=10), capacity))
        for n in range(taken):
            alloc.book(f"pre-{r}-{n}", "D1", slot_id, source=Source.ONLINE)
        plan.append((slot_id, capacity, taken))
    barriers = [threading.Barrier(THREADS, timeout=30) for _ in range(rounds)]
    outcomes: list[list[tuple[str, Token | OPDError]]] = [[] for _ in range(rounds)]
    outcome_lock = threading.Lock()

    def work(index: int) -> None:
        for r, (slot_id, _, _) in enumerate(plan):
            barriers[r].wait()
            result: Token | OPDError
            try:
                result = alloc.book(f"T{index}-{r}", "D1", slot_id, source=Source.ONLINE)
            except OPDError as error:
                result = error
            with outcome_lock:
                outcomes[r].append((f"T{index}-{r}", result))

    failures = run_threads(work)
    assert not failures, "\n".join(failures)

    for (slot_id, capacity, taken), results in zip(plan, outcomes, strict=True):
        assert len(results) == THREADS
        won = [r for _, r in results if isinstance(r, Token)]
        lost = [r for _, r in results if not isinstance(r, Token)]
        assert len(won) == min(THREADS, capacity - taken), (slot_id, won, lost)
        assert all(type(e) is SlotFullError and "is full" in str(e) for e in lost), lost
        assert all(t.slot_id == slot_id and t.status is TokenStatus.BOOKED for t in won)
        slot = alloc.slot(slot_id)
        assert slot.occupancy == capacity, slot
        winners = {p for p, r in results if isinstance(r, Token)}
        assert {t.patient_id for t in alloc.queue(slot_id)} >= winners
    alloc.check_invariants()
    assert len({t.id for t in alloc.tokens()}) == len(alloc.tokens())
