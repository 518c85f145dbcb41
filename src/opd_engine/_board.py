"""What a waiting-room display shows of one doctor: :class:`DoctorStatus`,
:class:`DoctorBoard`, and how one is read from a desk (:func:`board_of`).

A board is read, never kept: every figure comes from a counter the desk, its slots and its
waitlist already keep, and the names shown from the desk's own calls (:meth:`Desk.upcoming`),
so a board cannot lag behind the desk and never scans a doctor's tokens.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, final

import attrs

from ._values import Token

if TYPE_CHECKING:
    from ._desk import Desk

__all__ = ["DoctorBoard", "DoctorStatus"]


@final
class DoctorStatus(Enum):
    """A doctor's state on the board: ``AVAILABLE`` (calling), ``PAUSED`` (stepped away for
    a while: :meth:`~opd_engine.Allocator.pause`), ``UNAVAILABLE`` (gone for the day:
    :meth:`~opd_engine.Allocator.mark_unavailable`) or ``ENDED`` (the day closed:
    :meth:`~opd_engine.Allocator.end_day`). Where several apply, the first of ``ENDED``,
    ``UNAVAILABLE``, ``PAUSED`` is shown."""

    AVAILABLE = "available"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"
    ENDED = "ended"


@final
@attrs.frozen(kw_only=True)
class DoctorBoard:
    """One doctor's line on a display board, read at ``at`` (the allocator's clock), from
    :meth:`~opd_engine.Allocator.board`.

    ``now_serving`` is the token in consultation (None: nobody); ``next_up`` the next
    patients :meth:`~opd_engine.Allocator.call_next` would call, in that order (as
    :meth:`~opd_engine.Allocator.next_up`). The counts: ``waiting``, the checked-in
    patients waiting for this doctor (its waitlist's included, those stepped out not);
    ``away``, those stepped out (``AWAY``); ``booked``, the ``BOOKED`` tokens and the
    waitlisted ones not checked in; ``delay_minutes``, how late the doctor runs in all.
    """

    doctor_id: str
    status: DoctorStatus
    now_serving: Token | None
    next_up: tuple[Token, ...]
    waiting: int
    away: int
    booked: int
    delay_minutes: int
    at: datetime


def status_of(desk: Desk) -> DoctorStatus:
    """The first that applies of ENDED, UNAVAILABLE, PAUSED; else AVAILABLE. O(1)."""
    if desk.ended:
        return DoctorStatus.ENDED
    if not desk.available:
        return DoctorStatus.UNAVAILABLE
    if desk.paused:
        return DoctorStatus.PAUSED
    return DoctorStatus.AVAILABLE


def board_of(desk: Desk, n: int, now: datetime) -> DoctorBoard:
    """``desk``'s board line at ``now``, showing ``n`` names (``n >= 0``). O(n log m + s) for
    the m tokens of the slots called from and the desk's s slots (their counters read)."""
    slot_index = desk.slot_index
    # A slot's waiting tokens are its booked, checked-in and away ones; ``present`` the
    # checked-in ones. Only the slots listed in ``desk.present`` have anyone present.
    present = sum(slot_index[slot_id].present for _, slot_id in desk.present)
    in_slots = sum(slot.waiting for slot in desk.slots)
    waitlist = desk.waitlist
    current = desk.current
    return DoctorBoard(
        doctor_id=desk.doctor.id,
        status=status_of(desk),
        now_serving=None if current is None else desk.day.tokens[current],
        next_up=tuple(desk.upcoming(now, n)),
        waiting=present + waitlist.present,
        away=desk.away,
        booked=in_slots - present + len(waitlist) - waitlist.present - desk.away,
        delay_minutes=int(desk.delay / timedelta(minutes=1)),
        at=now,
    )
