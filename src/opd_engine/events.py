"""Events: what changed, delivered to subscribers after each change is complete.

Every event is a frozen value with ``at`` (the allocator's clock when the call began),
``version`` (the allocator's :attr:`~opd_engine.Allocator.version` after the call that
emitted it; all events of one call share it), and ``step`` and ``steps``: its place in its
call, 1 to ``steps``, the number of events the call emitted. A journal proves itself whole
with them: replay refuses a call with an event missing, moved or repeated. Token events
carry ``token``, the token's value just after that step, and ``token_id``.
A host system persists or notifies from these; the library itself never does.

Events of one call are delivered in the order the changes happened, and only once the whole
call has succeeded: a call that raises emits nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import final

import attrs

from ._values import Doctor, Priority, Token

__all__ = [
    "DayEnded",
    "DoctorAdded",
    "DoctorAvailable",
    "DoctorDelayed",
    "DoctorPaused",
    "DoctorResumed",
    "DoctorUnavailable",
    "Event",
    "MoveReason",
    "PlacesGranted",
    "SlotAdded",
    "SlotClosed",
    "SlotResized",
    "TokenBooked",
    "TokenCallMissed",
    "TokenCalled",
    "TokenCancelled",
    "TokenCheckedIn",
    "TokenCompleted",
    "TokenDue",
    "TokenEvent",
    "TokenMoved",
    "TokenNoShow",
    "TokenRetriaged",
    "TokenSteppedOut",
    "TokenUnseen",
    "TokenWaitlisted",
]


@final
class MoveReason(Enum):
    """Why the allocator moved a token (see :class:`TokenMoved`)."""

    #: Made room for an emergency in a slot past its overflow bound.
    DISPLACED = "displaced"
    #: A checked-in patient moved into an earlier slot's freed place.
    PULLED_FORWARD = "pulled_forward"
    #: The doctor became unavailable; the token went to another doctor or a waitlist.
    REASSIGNED = "reassigned"
    #: The slot shrank below the places it held.
    RESIZED = "resized"
    #: A waitlisted token got a place in a slot.
    FROM_WAITLIST = "from_waitlist"
    #: A doctor's delay removed places from a slot.
    DELAYED = "delayed"
    #: A no-show arrived late and was re-queued.
    LATE_ARRIVAL = "late_arrival"
    #: The front desk moved the token to another slot (:meth:`Allocator.reschedule`).
    RESCHEDULED = "rescheduled"
    #: The token's slot was closed (:meth:`Allocator.close_slot`).
    SLOT_CLOSED = "slot_closed"


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event: ``at`` is the allocator's clock when the call began,
    ``version`` the allocator's version after the call (shared by all its events), and
    ``step`` its place among the call's ``steps`` events (1 to ``steps``).

    ``step`` and ``steps`` are 0 in an event read from a journal stored before events were
    numbered: replay takes such a call's events as they are, without the check.
    """

    at: datetime
    version: int
    step: int = 0
    steps: int = 0


@attrs.frozen(kw_only=True)
class TokenEvent(Event):
    """Base of the events about one token; ``token`` is its value after the step."""

    token: Token

    @property
    def token_id(self) -> str:
        """The id of the token the event is about. O(1)."""
        return self.token.id


@final
@attrs.frozen(kw_only=True)
class TokenBooked(TokenEvent):
    """A token was issued with a place in ``token.slot_id``."""


@final
@attrs.frozen(kw_only=True)
class TokenWaitlisted(TokenEvent):
    """A token was issued onto its doctor's waitlist (no slot had room)."""


@final
@attrs.frozen(kw_only=True)
class TokenMoved(TokenEvent):
    """A token changed place: ``to_slot_id=None`` means the waitlist, as does
    ``from_slot_id=None``."""

    from_slot_id: str | None
    to_slot_id: str | None
    reason: MoveReason


@final
@attrs.frozen(kw_only=True)
class TokenRetriaged(TokenEvent):
    """The token's triage level changed from ``old_priority`` to ``token.priority``.

    It kept its ``seq`` and its place and was re-ranked; raised to ``EMERGENCY`` it may
    also have been seated from the waitlist or caused displacement (separate events).
    """

    old_priority: Priority


@final
@attrs.frozen(kw_only=True)
class TokenCallMissed(TokenEvent):
    """The patient called in did not come; the token went back to its slot as ``BOOKED``
    (``token.missed_calls`` counts the missed calls)."""


@final
@attrs.frozen(kw_only=True)
class TokenCheckedIn(TokenEvent):
    """The patient arrived (``token.checked_in_at``)."""


@final
@attrs.frozen(kw_only=True)
class TokenCalled(TokenEvent):
    """The doctor called the patient in (``IN_CONSULTATION``): ``out_of_turn`` is True when
    the desk chose the patient (:meth:`Allocator.call`), False for
    :meth:`Allocator.call_next`."""

    out_of_turn: bool = False


@final
@attrs.frozen(kw_only=True)
class TokenCompleted(TokenEvent):
    """The consultation ended."""


@final
@attrs.frozen(kw_only=True)
class TokenCancelled(TokenEvent):
    """The token was cancelled; its place, if any, was reallocated. ``reason`` is the
    desk's (:meth:`Allocator.cancel`), empty if none was given; :meth:`Allocator.end_day`
    gives ``"day ended"`` for the absent waitlisted patients it cancels."""

    reason: str = ""


@final
@attrs.frozen(kw_only=True)
class TokenNoShow(TokenEvent):
    """The patient did not arrive within the grace period; the place was reallocated."""


@final
@attrs.frozen(kw_only=True)
class SlotResized(Event):
    """A slot's capacity changed from ``old_capacity`` to ``capacity``."""

    slot_id: str
    old_capacity: int
    capacity: int


@final
@attrs.frozen(kw_only=True)
class DoctorDelayed(Event):
    """The doctor runs ``minutes`` later; ``total_minutes`` is the delay so far today."""

    doctor_id: str
    minutes: int
    total_minutes: int


@final
@attrs.frozen(kw_only=True)
class DoctorUnavailable(Event):
    """The doctor stopped working; their open slots closed and waiting tokens moved."""

    doctor_id: str


@final
@attrs.frozen(kw_only=True)
class DoctorAvailable(Event):
    """The doctor is back: their open slots reopened and their waitlist refilled them."""

    doctor_id: str


@final
@attrs.frozen(kw_only=True)
class SlotClosed(Event):
    """One slot closed to new bookings (a break, a room lost); its waiting tokens moved."""

    slot_id: str


@final
@attrs.frozen(kw_only=True)
class DoctorAdded(Event):
    """A doctor joined the day (:meth:`Allocator.add_doctor`)."""

    doctor: Doctor


@final
@attrs.frozen(kw_only=True)
class SlotAdded(Event):
    """A slot was added to ``doctor_id``'s day (:meth:`Allocator.add_slot`)."""

    slot_id: str
    doctor_id: str
    start: datetime
    end: datetime
    capacity: int


@final
@attrs.frozen(kw_only=True)
class TokenSteppedOut(TokenEvent):
    """The patient left the waiting room but keeps their place (``AWAY``): sent for a test,
    stepped out (:meth:`Allocator.step_out`)."""


@final
@attrs.frozen(kw_only=True)
class TokenUnseen(TokenEvent):
    """The patient was present but not seen when the doctor's day ended (``UNSEEN``,
    :meth:`Allocator.end_day`)."""


@final
@attrs.frozen(kw_only=True)
class TokenDue(TokenEvent):
    """The patient's turn is near: ``ahead`` patients are to be called before them
    (``Policies.notify_within``)."""

    ahead: int


@final
@attrs.frozen(kw_only=True)
class DoctorPaused(Event):
    """The doctor stepped away for a while (:meth:`Allocator.pause`): nobody is called."""

    doctor_id: str


@final
@attrs.frozen(kw_only=True)
class DoctorResumed(Event):
    """The doctor is back from a pause (:meth:`Allocator.resume`)."""

    doctor_id: str


@final
@attrs.frozen(kw_only=True)
class DayEnded(Event):
    """The doctor's day closed (:meth:`Allocator.end_day`): every slot closed, nobody is
    called any more."""

    doctor_id: str


@final
@attrs.frozen(kw_only=True)
class PlacesGranted(Event):
    """A slot was granted places past its capacity policy: by the idle-fill rule (a present
    waitlisted patient called into a full slot) or to an emergency lowered to another
    level. ``elastic`` is the number so granted now (:attr:`Slot.elastic`)."""

    slot_id: str
    elastic: int


#: Every concrete event class (the journal's kinds, in its order). Not exported: the
#: package's own list, for the journal and for the event builders.
EVENT_CLASSES: tuple[type[Event], ...] = (
    TokenBooked,
    TokenWaitlisted,
    TokenMoved,
    TokenCheckedIn,
    TokenCalled,
    TokenCompleted,
    TokenCancelled,
    TokenNoShow,
    TokenRetriaged,
    TokenCallMissed,
    TokenSteppedOut,
    TokenUnseen,
    TokenDue,
    SlotAdded,
    SlotResized,
    SlotClosed,
    PlacesGranted,
    DoctorAdded,
    DoctorDelayed,
    DoctorUnavailable,
    DoctorAvailable,
    DoctorPaused,
    DoctorResumed,
    DayEnded,
)
