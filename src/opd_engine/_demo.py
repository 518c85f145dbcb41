"""The scripted OPD day behind ``python -m opd_engine``: every behaviour, as a timeline.

This module only writes to the stream it is given; ``__main__`` hands it ``sys.stdout``.
The day is fixed (no randomness, an injected clock), so the output is the same every run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ParamSpec, TextIO, TypeVar

from . import (
    Aging,
    Allocator,
    Doctor,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorUnavailable,
    EmergencyOverride,
    Event,
    OPDError,
    Policies,
    Priority,
    Slot,
    SlotAdded,
    SlotClosed,
    SlotFullError,
    SlotResized,
    Source,
    Token,
    TokenBooked,
    TokenCalled,
    TokenCallMissed,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenMoved,
    TokenNoShow,
    TokenRetriaged,
    TokenWaitlisted,
)

P = ParamSpec("P")
T = TypeVar("T")

DAY = datetime(2026, 11, 25)
DEPARTMENTS = ("General Medicine", "Cardiology")


def at(hhmm: str) -> datetime:
    """``"09:30"`` on the scripted day."""
    hours, minutes = hhmm.split(":")
    return DAY.replace(hour=int(hours), minute=int(minutes))


def hhmm(when: datetime | None) -> str:
    return "--:--" if when is None else when.strftime("%H:%M")


def describe(event: Event) -> str:
    """One timeline line for ``event``."""
    if isinstance(event, TokenBooked):
        token = event.token
        where = f"{token.slot_id}, {token.status.name.lower().replace('_', ' ')}"
        return f"{token.id} booked: {token.patient_id}, {_kind(token)} -> {where}"
    if isinstance(event, TokenWaitlisted):
        token = event.token
        return f"{token.id} waitlisted: {token.patient_id}, {_kind(token)}"
    if isinstance(event, TokenMoved):
        source = event.from_slot_id or "waitlist"
        target = event.to_slot_id or f"waitlist of {event.token.doctor_id}"
        return f"{event.token_id} moved {source} -> {target} ({event.reason.name})"
    if isinstance(event, TokenCheckedIn):
        return f"{event.token_id} checked in ({event.token.slot_id or 'waitlist'})"
    if isinstance(event, TokenCalled):
        token = event.token
        return f"{token.id} called by {token.doctor_id}: {token.patient_id}, {_kind(token)}"
    if isinstance(event, TokenCompleted):
        return f"{event.token_id} completed"
    if isinstance(event, TokenCancelled):
        return f"{event.token_id} cancelled"
    if isinstance(event, TokenNoShow):
        return f"{event.token_id} no-show"
    if isinstance(event, SlotResized):
        return f"slot {event.slot_id} resized {event.old_capacity} -> {event.capacity}"
    if isinstance(event, DoctorDelayed):
        return (
            f"doctor {event.doctor_id} delayed {event.minutes} min "
            f"({event.total_minutes} min in all)"
        )
    if isinstance(event, DoctorUnavailable):
        return f"doctor {event.doctor_id} unavailable"
    if isinstance(event, DoctorAvailable):
        return f"doctor {event.doctor_id} available again"
    if isinstance(event, TokenRetriaged):
        old, new = event.old_priority.name, event.token.priority.name
        return f"{event.token_id} re-triaged {old} -> {new}"
    if isinstance(event, TokenCallMissed):
        token = event.token
        return f"{token.id} missed the call ({token.missed_calls} so far): back in {token.slot_id}"
    if isinstance(event, SlotClosed):
        return f"slot {event.slot_id} closed"
    if isinstance(event, SlotAdded):
        return f"slot {event.slot_id} added for {event.doctor_id} ({event.capacity} places)"
    if isinstance(event, DoctorAdded):
        return f"doctor {event.doctor.id} added ({event.doctor.department})"
    return repr(event)  # pragma: no cover - every event kind is described above


def _kind(token: Token) -> str:
    source = token.source.name.lower().replace("_", "-")
    if token.priority is token.source.default_priority:
        return source
    return f"{source}, {token.priority.name.lower().replace('_', '-')}"


class Clock:
    """The scripted day's clock: it moves only when the script says so."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Script:
    """Runs the day: narration, then the call, then the events the call produced."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.clock = Clock(at("08:00"))
        self.alloc = Allocator(
            policies=Policies(
                emergency=EmergencyOverride(max_overflow=1),
                ordering=Aging(step=timedelta(minutes=20), ceiling=Priority.FOLLOW_UP),
            ),
            clock=self.clock,
        )
        self.events: list[Event] = []
        self.alloc.subscribe(self.events.append)
        self.unavailable: set[str] = set()
        self.moves: dict[str, int] = {}

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def time(self, when: str, story: str) -> None:
        """Move the clock to ``when`` and tell what happens next."""
        self.clock.now = at(when)
        self.say()
        self.say(f"{when}  {story}")

    def do(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Run ``call``; print its events, or the error that refused it (which changes nothing)."""
        try:
            result = call(*args, **kwargs)
        except OPDError as error:
            self.say(f"       refused: {type(error).__name__}: {error}")
            if isinstance(error, SlotFullError):
                offered = ", ".join(error.alternatives) or "none"
                self.say(f"       alternatives with room now: {offered}")
            return None
        for event in self.events:
            self.say(f"       {describe(event)}")
            if isinstance(event, TokenMoved):
                reason = event.reason.name
                self.moves[reason] = self.moves.get(reason, 0) + 1
        self.events.clear()
        return result

    def book(
        self,
        patient: str,
        doctor: str,
        slot: str | None = None,
        *,
        source: Source = Source.WALK_IN,
        priority: Priority | None = None,
    ) -> Token | None:
        return self.do(self.alloc.book, patient, doctor, slot, source=source, priority=priority)

    def call_next(self, doctor: str) -> Token | None:
        return self.do(self.alloc.call_next, doctor)

    def show_queues(self, title: str) -> None:
        self.say()
        self.say(title)
        for doctor in self.alloc.doctors():
            state = ", unavailable" if doctor.id in self.unavailable else ""
            self.say(f"  {doctor.id} {doctor.name} ({doctor.department}){state}")
            for slot in self.alloc.slots(doctor.id):
                queue = self.alloc.queue(slot.id)
                shown = ", ".join(_entry(self.alloc, t) for t in queue) or "empty"
                closed = " closed" if slot.closed else ""
                self.say(
                    f"    {slot.id} {hhmm(slot.start)}-{hhmm(slot.end)} "
                    f"[{slot.occupancy}/{slot.capacity}]{closed}: {shown}"
                )
            waitlist = self.alloc.waitlist(doctor.id)
            if waitlist:
                self.say(f"    waitlist: {', '.join(_entry(self.alloc, t) for t in waitlist)}")


def _entry(alloc: Allocator, token: Token) -> str:
    mark = "" if token.checked_in_at is not None else " (not here)"
    estimate = alloc.estimated_start(token.id)
    eta = f" ~{hhmm(estimate)}" if estimate is not None else ""
    return f"{token.id} {token.priority.name}{mark}{eta}"


def run(out: TextIO) -> None:
    """Play the scripted OPD day, writing the timeline and final queues to ``out``."""
    s = Script(out)
    alloc = s.alloc
    s.say("opd-engine scripted OPD day: 3 doctors, 2 departments, one morning")
    s.say("Policies: hard limit per slot; emergencies overflow by at most 1 place, then")
    s.say("displace; waiting patients rise one level per 20 minutes, up to FOLLOW_UP.")

    s.time("08:00", "The OPD opens its books.")
    doctors = [
        Doctor("D1", "Dr. Asha Rao", department="General Medicine", consult_minutes=10),
        Doctor("D2", "Dr. Vikram Iyer", department="General Medicine", consult_minutes=10),
        Doctor("D3", "Dr. Meera Nair", department="Cardiology", consult_minutes=15),
    ]
    for doctor in doctors:
        alloc.add_doctor(doctor)
        for hour in (9, 10):
            start = DAY.replace(hour=hour)
            capacity = 2 if doctor.id == "D3" else 3
            alloc.add_slot(
                Slot(
                    f"{doctor.id}@{hour:02d}",
                    doctor.id,
                    start,
                    start + timedelta(hours=1),
                    capacity,
                )
            )
    s.events.clear()  # DoctorAdded and SlotAdded: summed up per doctor instead
    for doctor in doctors:
        slots = ", ".join(f"{slot.id} ({slot.capacity} places)" for slot in alloc.slots(doctor.id))
        s.say(f"       {doctor.id} {doctor.name}, {doctor.department}: {slots}")

    s.time("08:05", "Bookings from every channel fill Dr. Rao's morning.")
    s.book("Anil", "D1", source=Source.ONLINE)
    s.book("Bina", "D1", source=Source.PAID)
    s.book("Chetan", "D1", source=Source.FOLLOW_UP)
    s.book("Divya", "D1", source=Source.ONLINE)
    s.book("Esha", "D1", source=Source.ONLINE)
    s.book("Farid", "D1", source=Source.WALK_IN)

    s.time("08:10", "Dr. Rao is full: one more online booking is refused, not overbooked.")
    s.book("Gita", "D1", source=Source.ONLINE)
    s.say("       Anil tries to book Dr. Rao a second time:")
    s.book("Anil", "D1", source=Source.ONLINE)

    s.time("08:15", "Dr. Iyer and Dr. Nair take their bookings.")
    s.book("Hari", "D2", source=Source.ONLINE)
    s.book("Kavya", "D3", source=Source.ONLINE)
    s.book("Lalit", "D3", source=Source.PAID)
    s.book("Mohan", "D3", source=Source.FOLLOW_UP)

    s.time("08:30", "A walk-in arrives early for Dr. Iyer and waits.")
    s.book("Nisha", "D2", source=Source.WALK_IN)

    s.time("08:40", "Two more phone bookings for Dr. Iyer.")
    s.book("Indu", "D2", source=Source.FOLLOW_UP)
    s.book("Jai", "D2", source=Source.PAID)

    s.time("08:50", "Patients arrive at the desk and check in.")
    for token_id in ("D1-001", "D1-002", "D2-003", "D2-004", "D3-001", "D3-002"):
        s.do(alloc.check_in, token_id)

    s.time("09:00", "An emergency arrives; Dr. Rao's 09:00 slot is full. It overflows by one")
    s.say("       and goes to the front of the queue.")
    s.book("Om", "D1", priority=Priority.EMERGENCY)

    s.time("09:02", "A second emergency: the overflow bound (1) is reached, so the")
    s.say("       lowest-ranked patient moves on; the 10:00 slot is full, so to the waitlist.")
    s.book("Priya", "D1", priority=Priority.EMERGENCY)

    s.time("09:03", "Doctors start calling: emergencies first, then by priority.")
    s.call_next("D1")
    s.call_next("D3")
    s.say("       Dr. Iyer: by priority alone follow-up Indu would go first, but walk-in")
    s.say("       Nisha has waited 33 minutes and risen to the follow-up level, where she")
    s.say("       was first to arrive (aging lifts a long waiter; never past FOLLOW_UP):")
    s.call_next("D2")

    s.time("09:12", "Consultations end; the next patients are called.")
    for token_id in ("D1-007", "D3-002", "D2-002"):
        s.do(alloc.complete, token_id)
    s.call_next("D1")
    s.call_next("D2")

    s.time("09:14", "Esha cancels her 10:00 place: the waitlist fills it at once.")
    s.do(alloc.cancel, "D1-005")

    s.time("09:16", "Chetan (follow-up, 09:00) has not come; the 15-minute grace has passed.")
    s.say("       His place absorbs the emergency's extra one, so nobody moves up.")
    s.do(alloc.no_show, "D1-003")

    s.time("09:20", "Bina is called away and cancels. The waitlist is empty, so the first")
    s.say("       patient present in a later slot is pulled forward into her place.")
    s.do(alloc.cancel, "D1-002")

    s.time("09:25", "Chetan arrives late. The 09:00 slot is full again, so he takes the free")
    s.say("       10:00 place, re-queued with a new arrival number.")
    s.do(alloc.check_in, "D1-003")

    s.time("09:30", "Dr. Nair is held up in the cath lab: 20 minutes late.")
    before = alloc.estimated_start("D3-003")
    s.do(alloc.delay, "D3", 20)
    after = alloc.estimated_start("D3-003")
    s.say(f"       Mohan's estimated start moves from {hhmm(before)} to {hhmm(after)}.")

    s.time("09:35", "Demand for Cardiology is high: the 10:00 slot grows by two places,")
    s.say("       and a walk-in books into it.")
    s.do(alloc.resize, "D3@10", 4)
    s.book("Qadir", "D3", source=Source.WALK_IN)

    s.time("09:40", "A room is needed: Dr. Iyer's 10:00 slot shrinks to one place.")
    s.book("Ravi", "D2", "D2@10", source=Source.ONLINE)
    s.book("Sara", "D2", "D2@10", source=Source.FOLLOW_UP)
    s.do(alloc.resize, "D2@10", 1)

    s.time("09:45", "Dr. Iyer goes home sick. His waiting patients move to Dr. Rao (same")
    s.say("       department, never Cardiology); she is full, so they join her waitlist.")
    s.do(alloc.mark_unavailable, "D2")
    s.unavailable.add("D2")

    s.time("09:50", "Dr. Rao adds an 11:00 slot; her waitlist moves into it.")
    s.do(alloc.add_slot, Slot("D1@11", "D1", at("11:00"), at("12:00"), 3))

    s.time("10:05", "The 10:00 sessions run.")
    for doctor_id in ("D1", "D3"):
        called = s.call_next(doctor_id)
        if called is not None:
            s.do(alloc.complete, called.id)
    s.call_next("D1")

    s.time("10:06", "Ravi, on Dr. Rao's waitlist, arrives: he waits for a place.")
    s.do(alloc.check_in, "D2-005")

    s.time("10:10", "Dr. Rao calls Chetan, who has stepped out and does not answer. A")
    s.say("       missed call sends him back to the queue as not here; two make a no-show.")
    s.call_next("D1")
    s.do(alloc.missed_call, "D1-003")
    s.call_next("D1")

    s.time("10:15", "Qadir's chest pain gets worse while he waits: the desk re-triages him")
    s.say("       as an emergency, and he goes to the front of Dr. Nair's queue.")
    s.do(alloc.retriage, "D3-004", Priority.EMERGENCY)
    s.call_next("D3")

    s.time("10:20", "Dr. Rao is free. Nobody in her slots is here (Chetan stepped out, the")
    s.say("       others have not come), but Ravi on her waitlist is: the idle-fill rule")
    s.say("       seats him in the 10:00 slot, over its capacity, and calls him.")
    s.call_next("D1")

    s.time("10:25", "Dr. Iyer is back. His slots reopen (the patients moved away stay where")
    s.say("       they are), and he adds an 11:00 slot.")
    s.do(alloc.mark_available, "D2")
    s.unavailable.discard("D2")
    s.do(alloc.add_slot, Slot("D2@11", "D2", at("11:00"), at("12:00"), 3))

    s.time("10:28", "Divya asks to see Dr. Iyer instead: the desk reschedules her token. Her")
    s.say("       place at 10:00 absorbs the one granted to Ravi, so nobody moves up.")
    s.do(alloc.reschedule, "D1-004", "D2@10")

    s.time("10:30", "Dr. Rao is needed in a meeting at 11:00: that slot closes, and its")
    s.say("       patients move to Dr. Iyer's 11:00 slot (same department).")
    s.do(alloc.close_slot, "D1@11")

    s.time("10:32", "Uma asks for Dr. Rao at 10:00. It is full; the desk is told where")
    s.say("       there is room now.")
    s.book("Uma", "D1", "D1@10", source=Source.ONLINE)

    s.show_queues("Queues at 10:32 (standing order; ~ is the estimated start):")
    s.say()
    s.say("Tokens by status:")
    counts: dict[str, int] = {}
    for token in alloc.tokens():
        counts[token.status.name] = counts.get(token.status.name, 0) + 1
    for status, count in sorted(counts.items()):
        s.say(f"  {status:<16}{count}")
    s.say()
    s.say("Moves by reason:")
    for reason, count in sorted(s.moves.items()):
        s.say(f"  {reason:<16}{count}")
    alloc.check_invariants()
    s.say()
    s.say("check_invariants(): all hold.")
