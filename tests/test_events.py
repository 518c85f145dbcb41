"""Events: what each call emits, in order, stamped with the clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from conftest import Build, Clock, at, kinds, moves
from opd_engine import (
    Allocator,
    Doctor,
    DoctorAdded,
    DoctorDelayed,
    DoctorUnavailable,
    Event,
    MoveReason,
    OnFull,
    Policies,
    Slot,
    SlotAdded,
    SlotResized,
    Source,
    TokenBooked,
    TokenCalled,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenStatus,
    TokenWaitlisted,
)

ONLINE = Source.ONLINE


@pytest.fixture
def seen(alloc: Allocator) -> list[Event]:
    events: list[Event] = []
    alloc.subscribe(events.append)
    return events


def test_move_reasons() -> None:
    assert {r.name for r in MoveReason} >= {
        "DISPLACED",
        "PULLED_FORWARD",
        "REASSIGNED",
        "RESIZED",
        "FROM_WAITLIST",
    }


def test_event_classes() -> None:
    token_events = [
        TokenBooked,
        TokenWaitlisted,
        TokenMoved,
        TokenCheckedIn,
        TokenCalled,
        TokenCompleted,
        TokenCancelled,
        TokenNoShow,
    ]
    assert all(issubclass(kind, TokenEvent) for kind in token_events)
    for kind in (SlotResized, DoctorDelayed, DoctorUnavailable):
        assert issubclass(kind, Event)
        assert not issubclass(kind, TokenEvent)


def test_booking_emits_token_booked(alloc: Allocator, clock: Clock, seen: list[Event]) -> None:
    clock.now = at(8, 41)
    v = alloc.version
    token = alloc.book("P", "D1", source=ONLINE)
    assert alloc.version == v + 1
    assert seen == [TokenBooked(at=at(8, 41), version=v + 1, step=1, steps=1, token=token)]
    (event,) = seen
    assert isinstance(event, TokenBooked)
    assert event.token_id == token.id == "D1-001"


def test_booking_onto_the_waitlist_emits_token_waitlisted(build: Build) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    for i in range(9):
        alloc.book(f"P{i}", "D1", source=ONLINE)
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    token = alloc.book("W", "D1", source=ONLINE)
    assert seen == [
        TokenWaitlisted(at=at(8, 30), version=alloc.version, step=1, steps=1, token=token)
    ]


def test_cancellation_refilled_from_the_waitlist(build: Build, clock: Clock) -> None:
    alloc = build(Policies(on_full=OnFull.WAITLIST))
    first = alloc.book("A", "D1", "D1@09", source=ONLINE)
    for i in range(8):
        alloc.book(f"P{i}", "D1", source=ONLINE)
    waiting = alloc.book("W", "D1", source=ONLINE)
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    clock.now = at(8, 50)
    cancelled = alloc.cancel(first.id)
    v = alloc.version
    assert seen == [
        TokenCancelled(at=at(8, 50), version=v, step=1, steps=2, token=cancelled),
        TokenMoved(
            at=at(8, 50),
            version=v,
            step=2,
            steps=2,
            token=alloc.token(waiting.id),
            from_slot_id=None,
            to_slot_id="D1@09",
            reason=MoveReason.FROM_WAITLIST,
        ),
    ]
    moved = seen[1]
    assert isinstance(moved, TokenMoved)
    assert moved.token.status is TokenStatus.BOOKED


def test_pull_forward(alloc: Allocator, clock: Clock, seen: list[Event]) -> None:
    first = alloc.book("A", "D1", "D1@09", source=ONLINE)
    alloc.book("B", "D1", "D1@09", source=ONLINE)
    present = alloc.book("C", "D1", "D1@10")
    seen.clear()
    clock.now = at(9, 20)
    alloc.no_show(first.id)
    assert kinds(seen) == ["TokenNoShow", "TokenMoved"]
    assert moves(seen) == [(present.id, "D1@10", "D1@09", MoveReason.PULLED_FORWARD)]
    assert all(e.at == at(9, 20) for e in seen)
    moved = seen[1]
    assert isinstance(moved, TokenMoved)
    assert moved.token == alloc.token(present.id)
    assert moved.token.moves == 1


def test_a_call(alloc: Allocator, clock: Clock, seen: list[Event]) -> None:
    first = alloc.book("A", "D1")
    second = alloc.book("B", "D1")
    seen.clear()
    v = alloc.version
    clock.now = at(9, 2)
    alloc.call_next("D1")
    clock.now = at(9, 12)
    called = alloc.call_next("D1")
    assert called is not None
    assert seen == [
        TokenCalled(
            at=at(9, 2),
            version=v + 1,
            step=1,
            steps=1,
            token=attrs.evolve(first, status=TokenStatus.IN_CONSULTATION, called_at=at(9, 2)),
        ),
        TokenCompleted(at=at(9, 12), version=v + 2, step=1, steps=2, token=alloc.token(first.id)),
        TokenCalled(at=at(9, 12), version=v + 2, step=2, steps=2, token=called),
    ]
    assert called.id == second.id


def test_check_in_and_late_arrival(alloc: Allocator, clock: Clock, seen: list[Event]) -> None:
    on_time = alloc.book("A", "D1", source=ONLINE)
    late = alloc.book("B", "D1", source=ONLINE)
    clock.now = at(8, 55)
    alloc.check_in(on_time.id)
    clock.now = at(9, 30)
    alloc.no_show(late.id)
    clock.now = at(9, 45)
    arrived = alloc.check_in(late.id)
    assert kinds(seen) == [
        "TokenBooked",
        "TokenBooked",
        "TokenCheckedIn",
        "TokenNoShow",
        "TokenMoved",
        "TokenCheckedIn",
    ]
    v = alloc.version
    assert seen[2] == TokenCheckedIn(
        at=at(8, 55), version=v - 2, step=1, steps=1, token=alloc.token(on_time.id)
    )
    assert seen[3] == TokenNoShow(
        at=at(9, 30),
        version=v - 1,
        step=1,
        steps=1,
        token=attrs.evolve(late, status=TokenStatus.NO_SHOW),
    )
    assert seen[4] == TokenMoved(
        at=at(9, 45),
        version=v,
        step=1,
        steps=2,
        token=arrived,
        from_slot_id="D1@09",
        to_slot_id="D1@09",
        reason=MoveReason.LATE_ARRIVAL,
    )
    assert seen[5] == TokenCheckedIn(at=at(9, 45), version=v, step=2, steps=2, token=arrived)


def test_resize_and_delay_events(alloc: Allocator, clock: Clock, seen: list[Event]) -> None:
    clock.now = at(9, 5)
    v = alloc.version
    alloc.resize("D3@10", 4)
    alloc.delay("D3", 12)
    assert seen == [
        SlotResized(
            at=at(9, 5), version=v + 1, step=1, steps=1, slot_id="D3@10", old_capacity=3, capacity=4
        ),
        DoctorDelayed(
            at=at(9, 5),
            version=v + 2,
            step=1,
            steps=1,
            doctor_id="D3",
            minutes=12,
            total_minutes=12,
        ),
    ]


def test_every_event_of_a_call_carries_the_call_s_time(
    alloc: Allocator, clock: Clock, seen: list[Event]
) -> None:
    for i in range(3):
        alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE)
    alloc.book("Q", "D1", "D1@10")
    alloc.book("R", "D1", "D1@11")
    seen.clear()
    clock.now = at(9, 16)
    alloc.no_show("D1-001")  # pulls Q forward, then R
    assert kinds(seen) == ["TokenNoShow", "TokenMoved", "TokenMoved"]
    assert {e.at for e in seen} == {at(9, 16)}


def test_the_events_of_a_call_are_numbered(
    alloc: Allocator, clock: Clock, seen: list[Event]
) -> None:
    """events: each event carries "step and steps: its place in its call, 1 to steps, the
    number of events the call emitted" (a subscriber's own call is a call of its own)."""
    for i in range(3):
        alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE)
    alloc.book("Q", "D1", "D1@10")
    alloc.book("R", "D1", "D1@11")
    assert [(e.step, e.steps) for e in seen] == [(1, 1)] * 5
    seen.clear()

    def nested(event: Event) -> None:
        if isinstance(event, TokenNoShow):
            alloc.delay("D2", 5)

    alloc.subscribe(nested)
    clock.now = at(9, 16)
    alloc.no_show("D1-001")  # pulls Q forward, then R; the subscriber delays D2
    v = alloc.version
    assert [(type(e).__name__, e.version, e.step, e.steps) for e in seen] == [
        ("TokenNoShow", v - 1, 1, 3),
        ("TokenMoved", v - 1, 2, 3),
        ("TokenMoved", v - 1, 3, 3),
        ("DoctorDelayed", v, 1, 1),
    ]


class TickingClock:
    """A clock that moves one minute forward every time it is read."""

    def __init__(self) -> None:
        self.reads = 0

    def __call__(self) -> datetime:
        self.reads += 1
        return at(8) + timedelta(minutes=self.reads)


def test_each_call_reads_the_clock_once(build: Build) -> None:
    """Each call reads the clock once; every event of the call carries that reading."""
    ticking = TickingClock()
    alloc = Allocator(clock=ticking)
    template = build()
    for doctor in template.doctors():
        alloc.add_doctor(doctor)
    for s in template.slots():
        alloc.add_slot(Slot(s.id, s.doctor_id, s.start, s.end, s.capacity))
    assert ticking.reads == len(template.doctors()) + len(template.slots())
    for i in range(3):
        alloc.book(f"P{i}", "D1", "D1@09", source=ONLINE)
    alloc.book("Q", "D1", "D1@10")
    alloc.book("R", "D1", "D1@11")
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    reads = ticking.reads
    alloc.cancel("D1-001")  # a cascade: cancelled, then two tokens pulled forward
    assert ticking.reads == reads + 1
    assert kinds(seen) == ["TokenCancelled", "TokenMoved", "TokenMoved"]
    assert {e.at for e in seen} == {at(8) + timedelta(minutes=ticking.reads)}
    for call in (
        lambda: alloc.call_next("D1"),
        lambda: alloc.check_in("D1-002"),
        lambda: alloc.queue("D1@09"),
        lambda: alloc.resize("D1@11", 4),
        lambda: alloc.delay("D1", 1),
    ):
        reads = ticking.reads
        call()
        assert ticking.reads == reads + 1


def test_no_events_without_subscribers_and_none_after_unsubscribing(alloc: Allocator) -> None:
    alloc.book("A", "D1")
    seen: list[Event] = []
    stop = alloc.subscribe(seen.append)
    assert seen == []  # nothing queued from before subscribing
    alloc.book("B", "D1")
    stop()
    alloc.book("C", "D1")
    assert kinds(seen) == ["TokenBooked"]


def test_events_are_frozen(alloc: Allocator, seen: list[Event]) -> None:
    alloc.book("A", "D1")
    alloc.delay("D1", 5)
    booked, delayed = seen
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        booked.at = at(12)  # type: ignore[misc]
    assert isinstance(delayed, DoctorDelayed)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        delayed.minutes = 0  # type: ignore[misc]
    assert delayed == DoctorDelayed(
        at=at(8, 30),
        version=alloc.version,
        step=1,
        steps=1,
        doctor_id="D1",
        minutes=5,
        total_minutes=5,
    )
    assert hash(delayed) == hash(attrs.evolve(delayed))


def test_events_construct_by_keyword(alloc: Allocator) -> None:
    token = alloc.book("A", "D1")
    event = TokenMoved(
        at=at(9),
        version=7,
        token=token,
        from_slot_id="D1@09",
        to_slot_id=None,
        reason=MoveReason.RESIZED,
    )
    assert (event.token_id, event.to_slot_id, event.version) == ("D1-001", None, 7)
    assert DoctorUnavailable(at=at(9), version=1, doctor_id="D1").doctor_id == "D1"
    assert SlotResized(at=at(9), version=1, slot_id="S", old_capacity=1, capacity=2).capacity == 2
    with pytest.raises(TypeError):
        TokenBooked(at=at(9), token=token)  # type: ignore[call-arg]  # version is required


def _constructor_twin(event: Event) -> Event:
    """The same event built by its class's constructor, from its fields."""
    kind = type(event)
    return kind(**{f.name: getattr(event, f.name) for f in attrs.fields(kind)})


def test_events_built_by_the_generated_drafts_are_the_constructor_s(clock: Clock) -> None:
    """Every event a call emits is built fast (a draft finished at the end of the call); it
    is of exactly its class and equals, hashes, prints, pickles and evolves as the same
    event built by its constructor, and is frozen."""
    import pickle

    from opd_engine._ledger import DRAFT
    from opd_engine.events import EVENT_CLASSES

    assert set(DRAFT) == set(EVENT_CLASSES)
    alloc = Allocator(policies=Policies(on_full=OnFull.WAITLIST), clock=clock)
    seen: list[Event] = []
    alloc.subscribe(seen.append)
    alloc.add_doctor(Doctor("D1", "Dr One"))
    alloc.add_slot(Slot("S", "D1", at(9), at(12), 1))
    first = alloc.book("P1", "D1", source=ONLINE)
    alloc.book("P2", "D1", source=Source.WALK_IN)  # waitlisted
    alloc.check_in(first.id)
    alloc.call_next("D1")
    alloc.call_next("D1")  # completes P1, seats P2 from the waitlist and calls them
    alloc.resize("S", 3)
    alloc.delay("D1", 5)
    alloc.cancel(alloc.book("P3", "D1", source=ONLINE).id)
    assert {type(event) for event in seen} >= {
        TokenBooked,
        TokenWaitlisted,
        TokenCheckedIn,
        TokenCalled,
        TokenCompleted,
        TokenCancelled,
        SlotResized,
        DoctorAdded,
        SlotAdded,
        DoctorDelayed,
    }
    for event in seen:
        twin = _constructor_twin(event)
        assert type(event) in EVENT_CLASSES
        assert event == twin
        assert twin == event
        assert hash(event) == hash(twin)
        assert repr(event) == repr(twin)
        assert pickle.loads(pickle.dumps(event)) == event
        assert type(pickle.loads(pickle.dumps(event))) is type(event)
        assert attrs.evolve(event, step=99) == attrs.evolve(twin, step=99)
        assert attrs.evolve(event) == event
        assert 1 <= event.step <= event.steps
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.version = 0  # type: ignore[misc]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            del event.at


def test_every_draft_builds_its_event_class() -> None:
    """Each generated draft takes ``at`` and its class's own fields, in order; finished with
    ``version``, ``step`` and ``steps`` it is the event its constructor builds."""
    from opd_engine._ledger import DRAFT

    at = datetime(2026, 1, 5, 9)
    for kind, draft in DRAFT.items():
        names = [f.name for f in attrs.fields(kind)]
        own = [name for name in names if name not in ("at", "version", "step", "steps")]
        values = {name: f"value of {name}" for name in own}
        made: Any = draft(at, *values.values())
        assert type(made).__bases__ == (kind,)  # a draft until finished
        made.version, made.step, made.steps = 7, 1, 2
        made.__class__ = kind
        assert made == kind(at=at, version=7, step=1, steps=2, **values)
        assert draft.__code__.co_filename == f"<opd_engine generated: {kind.__name__} draft>"


def test_generated_code_is_named_and_shown_in_tracebacks() -> None:
    """A traceback through generated code names it and shows its line."""
    import traceback

    from opd_engine._values import copier

    copy = copier("status")
    with pytest.raises(AttributeError) as caught:
        copy(object(), TokenStatus.BOOKED)
    text = "".join(traceback.format_exception(caught.value))
    assert 'File "<opd_engine generated: Token copier (status)>"' in text
    assert "new.id = token.id" in text


def test_drafts_refuse_classes_that_run_code_at_construction() -> None:
    """A class with a validator, a converter or a post-init hook cannot be built by a draft
    (its checks would be skipped), nor can a class without slots."""
    from opd_engine._generated import draft_class

    @attrs.frozen
    class Checked:
        x: int = attrs.field(validator=attrs.validators.instance_of(int))

    @attrs.frozen
    class Converted:
        x: int = attrs.field(converter=int)

    @attrs.frozen
    class Hooked:
        x: int

        def __attrs_post_init__(self) -> None:
            pass

    @attrs.frozen(slots=False)
    class Unslotted:
        x: int

    for cls in (Checked, Converted, Hooked, Unslotted):
        with pytest.raises(TypeError):
            draft_class(cls)
