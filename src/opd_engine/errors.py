"""The exceptions opd-engine raises.

Every error derives from :class:`OPDError`, so ``except OPDError`` catches all of them.
Leaves mix in the builtin they resemble, so ``except ValueError`` or ``except LookupError``
in a caller keeps working::

    OPDError
    ├── InvalidArgumentError(OPDError, ValueError)   bad input; names the argument and value
    ├── NotFoundError(OPDError, LookupError)
    │   ├── UnknownDoctorError
    │   ├── UnknownSlotError
    │   └── UnknownTokenError
    ├── SlotFullError                                 message contains "is full"; .alternatives
    ├── SlotClosedError
    ├── DuplicateBookingError                         .token_id = the existing active token
    └── InvalidTransitionError                        e.g. cancel a completed token

A call that raises any of them has changed nothing.
"""

from __future__ import annotations

from typing import final

__all__ = [
    "DuplicateBookingError",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "NotFoundError",
    "OPDError",
    "SlotClosedError",
    "SlotFullError",
    "UnknownDoctorError",
    "UnknownSlotError",
    "UnknownTokenError",
]


class OPDError(Exception):
    """Root of every error opd-engine raises on purpose.

    The allocator is unchanged after any call that raised an ``OPDError``.
    """


@final
class InvalidArgumentError(OPDError, ValueError):
    """An argument has the wrong type or value.

    Raised before anything changes. The message names the argument and the value, in the
    shape ``capacity must be >= 0, got capacity=-1``. Unlike :class:`InvalidTransitionError`,
    the request could never succeed, whatever the allocator's state.
    """


class NotFoundError(OPDError, LookupError):
    """An id names nothing the allocator knows; the subclasses say what kind of thing."""


@final
class UnknownDoctorError(NotFoundError):
    """No doctor with this id was added."""


@final
class UnknownSlotError(NotFoundError):
    """No slot with this id was added."""


@final
class UnknownTokenError(NotFoundError):
    """No token with this id was issued."""


@final
class SlotFullError(OPDError):
    """A non-emergency token cannot be admitted: the slot (or every open slot) is full.

    Raised only under ``OnFull.REJECT`` (and by :meth:`Allocator.reschedule`); the other
    ``OnFull`` policies waitlist instead. The message contains the words "is full".

    ``alternatives`` is a tuple of at most 5 slot ids where the refused token would be
    admitted now: the same doctor's later open slots first (in start order), then the open
    slots of available doctors of the same department (start order, then doctor id); empty
    if there are none.
    """

    def __init__(self, message: str, alternatives: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.alternatives = alternatives

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.alternatives))


@final
class SlotClosedError(OPDError):
    """The slot has ended or was closed, its doctor is unavailable, or the doctor has no
    open slot left.

    Unlike :class:`SlotFullError`, no capacity policy could admit the booking.
    """


@final
class DuplicateBookingError(OPDError):
    """The patient already holds an active token that the duplicate rule counts.

    By default that is an active token with the same doctor (``Policies.duplicates``
    widens it to the department or the whole day). ``token_id`` is the id of that existing
    token. Emergency bookings are never refused for this reason.
    """

    def __init__(self, message: str, token_id: str) -> None:
        super().__init__(message)
        self.token_id = token_id

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.token_id))


@final
class InvalidTransitionError(OPDError):
    """The token's current status does not allow the request.

    For example cancelling a completed token, or marking a no-show within the grace
    period. Unlike :class:`InvalidArgumentError`, the same call may succeed in another
    state.
    """
