"""The one way to build a day: add a doctor, fit and attach a slot, file a stored token.

:meth:`Allocator.add_doctor` and :meth:`Allocator.add_slot`, a snapshot being restored
(:mod:`opd_engine._snapshot`) and a journal being replayed or applied
(:mod:`opd_engine._journal`) all build through these functions, so the three cannot accept
different days: a slot passes the same checks however it arrives. Each change goes through
an undo primitive (see :mod:`opd_engine._undo`), so a journal batch that fails half-way is
undone like any call.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import datetime

from ._desk import Desk
from ._ledger import Day
from ._slot import Slot
from ._values import IN_A_SLOT, Doctor, Token, TokenStatus
from .errors import InvalidArgumentError


def add_doctor(day: Day, doctor: Doctor) -> Desk:
    """Register ``doctor``'s desk. Raises :class:`InvalidArgumentError` if the id is taken.
    O(1)."""
    if doctor.id in day.desks:
        raise InvalidArgumentError(f"doctor id {doctor.id!r} is already taken")
    desk = Desk(doctor, day)
    day.register_desk(desk)
    return desk


def fit(day: Day, slot: Slot, desk: Desk) -> int:
    """Where ``slot`` goes among ``desk``'s slots, after the checks every added slot
    passes, from :meth:`add_slot` or a journal's ``SlotAdded``: a new id, datetimes as
    aware or naive as the other slots', a start on their date, no overlap with the
    doctor's other slots. Raises :class:`InvalidArgumentError`. O(log s)."""
    start = slot.start
    if slot.id in day.slots:
        raise InvalidArgumentError(f"slot id {slot.id!r} is already taken")
    aware = start.tzinfo is not None
    if day.aware is not None and aware != day.aware:
        kind = "aware" if day.aware else "naive"
        raise InvalidArgumentError(
            f"slot datetimes must be {kind} like the slots already added, got start={start!r}"
        )
    if day.slots:
        first = next(iter(day.slots.values())).start
        if start.toordinal() != first.toordinal():  # their dates, without making them
            raise InvalidArgumentError(
                f"slot start must be on {first.date()} like the other slots (an allocator "
                f"is one OPD day), got start={start!r}"
            )
    # The doctor's slots never overlap, so only the neighbours of the new one's place
    # can overlap it: the one before (starting before it) if it ends after it starts,
    # the one at its place (starting at or after it) if it starts before it ends.
    at, starts = slot._at, desk.starts
    i = bisect_left(starts, at)
    if i and at < desk.ends[i - 1]:
        other = desk.slots[i - 1]
    elif i < len(starts) and starts[i] < slot._until:
        other = desk.slots[i]
    else:
        return i
    raise InvalidArgumentError(
        f"slot {slot.id!r} ({slot.start} to {slot.end}) overlaps slot "
        f"{other.id!r} ({other.start} to {other.end}) of doctor "
        f"{desk.doctor.id!r}"
    )


def attach(day: Day, slot: Slot, desk: Desk, index: int) -> None:
    """Attach ``slot`` as ``desk``'s ``index``-th slot (:func:`fit` found ``index``). O(s)
    for the doctor's s slots."""
    slot._attach(
        day.policies.ordering,
        day.tokens,
        day.undo,
        day.policies.reallocation.max_moves,
        day.lock,
    )
    desk.insert(slot, index)
    day.register_slot(slot)


def file_token(day: Day, token: Token, now: datetime) -> None:
    """File a stored token where its status says it is (restoring a snapshot): index it as
    its patient's active token, and put it on its doctor's waitlist, in its slot's queue,
    or count its place in its slot (a completed one also teaches its doctor its consultation's
    length). O(log n)."""
    status = token.status
    if status.active:
        day.activate(token)
    desk = day.desks[token.doctor_id]
    slot = None if token.slot_id is None else day.slots[token.slot_id]
    if status is TokenStatus.WAITLISTED or status.waiting:
        desk.place(token, slot, now)
    elif status in IN_A_SLOT:
        assert slot is not None
        desk.hold(slot, token)
        if status is TokenStatus.COMPLETED:
            desk.learn(token)  # the length it teaches, as when it was completed
