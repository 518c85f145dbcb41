"""The frozen values of the domain: priorities, sources, statuses, tokens and doctors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import Enum, IntEnum
from typing import Final, final

import attrs

from ._check import MAX_MINUTES, attrs_validator, check_enum, check_id, check_int, check_str
from ._display import token_html
from ._generated import value_builder

__all__ = ["Doctor", "Priority", "Source", "Token", "TokenStatus"]


@final
class Priority(IntEnum):
    """Triage level of a token; lower is more urgent.

    Queues are ordered by ``(priority, seq)``: every emergency before every paid patient,
    and so on, first come first served within a level.
    """

    EMERGENCY = 0
    PAID = 1
    FOLLOW_UP = 2
    STANDARD = 3


@final
class Source(Enum):
    """The channel a booking came through.

    Each source has a default priority (:attr:`default_priority`): ``PAID`` -> ``PAID``,
    ``FOLLOW_UP`` -> ``FOLLOW_UP``, ``ONLINE`` and ``WALK_IN`` -> ``STANDARD``. Emergency is
    a triage level, not a channel.
    """

    ONLINE = "online"
    WALK_IN = "walk_in"
    PAID = "paid"
    FOLLOW_UP = "follow_up"

    # Members are singletons compared by identity, so identity hashing agrees with ``==``; it
    # is C-level, where Enum's own ``__hash__`` is a Python call on every dict lookup.
    __hash__ = object.__hash__

    @property
    def default_priority(self) -> Priority:
        """The priority a booking from this source gets when none is given. O(1)."""
        return _DEFAULT_PRIORITY[self]


_DEFAULT_PRIORITY: dict[Source, Priority] = {
    Source.ONLINE: Priority.STANDARD,
    Source.WALK_IN: Priority.STANDARD,
    Source.PAID: Priority.PAID,
    Source.FOLLOW_UP: Priority.FOLLOW_UP,
}


@final
class TokenStatus(Enum):
    """Where a token is in its life.

    ``BOOKED`` (has a slot, patient not arrived), ``WAITLISTED`` (no slot yet),
    ``CHECKED_IN`` (has a slot, patient present), ``IN_CONSULTATION``, ``AWAY`` (present
    today and holding its place, but out of the waiting room: sent for a test, stepped out;
    :meth:`~opd_engine.Allocator.step_out`), and the terminal states ``COMPLETED``,
    ``CANCELLED``, ``NO_SHOW`` (a no-show may still arrive late and be re-queued) and
    ``UNSEEN`` (present but not seen when the doctor's day ended:
    :meth:`~opd_engine.Allocator.end_day`).
    """

    BOOKED = "booked"
    WAITLISTED = "waitlisted"
    CHECKED_IN = "checked_in"
    IN_CONSULTATION = "in_consultation"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    AWAY = "away"
    UNSEEN = "unseen"

    __hash__ = object.__hash__  # identity, as for Source: C-level, agrees with ``==``

    @property
    def waiting(self) -> bool:
        """True for ``BOOKED``, ``CHECKED_IN`` and ``AWAY``: the token waits for its turn in
        a slot's queue (an ``AWAY`` token sent on to a waitlist waits there). O(1)."""
        return self in WAITING

    @property
    def active(self) -> bool:
        """True until the token reaches ``COMPLETED``, ``CANCELLED``, ``NO_SHOW`` or
        ``UNSEEN``. O(1)."""
        return self not in ENDED


# The members the hot paths read, as module constants: ``TokenStatus.BOOKED`` is an
# attribute lookup through the enum's metaclass, several times slower than a global read.
EMERGENCY: Final = Priority.EMERGENCY
WALK_IN: Final = Source.WALK_IN
BOOKED: Final = TokenStatus.BOOKED
WAITLISTED: Final = TokenStatus.WAITLISTED
CHECKED_IN: Final = TokenStatus.CHECKED_IN
IN_CONSULTATION: Final = TokenStatus.IN_CONSULTATION
COMPLETED: Final = TokenStatus.COMPLETED
CANCELLED: Final = TokenStatus.CANCELLED
NO_SHOW: Final = TokenStatus.NO_SHOW
AWAY: Final = TokenStatus.AWAY
UNSEEN: Final = TokenStatus.UNSEEN

# The status groups, defined here once (``TokenStatus.active`` and ``.waiting`` read them).
#: Terminal: the token holds nothing any more (a no-show may still arrive late).
ENDED: Final = frozenset({COMPLETED, CANCELLED, NO_SHOW, UNSEEN})
#: Waiting for its turn in a slot's queue (an AWAY token may wait on a waitlist instead:
#: its ``slot_id`` says where).
WAITING: Final = frozenset({BOOKED, CHECKED_IN, AWAY})
#: What ``cancel`` (and a reschedule or a reassignment) may take: a token not yet called.
CANCELLABLE: Final = frozenset({BOOKED, CHECKED_IN, WAITLISTED, AWAY})
#: Called by the doctor: in consultation or done.
CALLED: Final = frozenset({IN_CONSULTATION, COMPLETED})
#: The patient has arrived (and may have stepped out since, or not been seen).
ARRIVED: Final = frozenset({CHECKED_IN, IN_CONSULTATION, COMPLETED, AWAY, UNSEEN})
#: Holding a place in a slot.
IN_A_SLOT: Final = frozenset({BOOKED, CHECKED_IN, IN_CONSULTATION, COMPLETED})


@final
@attrs.frozen(kw_only=True, weakref_slot=False)
class Token:
    """One patient's place with one doctor; a value, replaced (never mutated) on change.

    The allocator issues tokens; read them with :meth:`Allocator.token`. ``seq`` is the
    global arrival counter that breaks ties within a priority (it changes only when a
    no-show arrives late and is re-queued); ``number`` is the display number, per doctor,
    stable for the token's life. ``slot_id`` is ``None`` while waitlisted; after a terminal
    status it keeps the slot the token last held. ``moves`` counts how often the allocator
    moved the token out of a slot (displaced, reassigned, resized, pulled forward, moved off
    a closed slot); a desk's :meth:`~Allocator.reschedule` keeps it. ``missed_calls``
    counts the calls the patient did not answer (:meth:`Allocator.missed_call`).
    ``called_at`` and ``completed_at`` record the consultation, for analysis.
    """

    id: str
    patient_id: str = attrs.field(repr=False)
    doctor_id: str
    slot_id: str | None
    priority: Priority
    source: Source
    seq: int
    number: int
    status: TokenStatus
    booked_at: datetime
    checked_in_at: datetime | None = None
    moves: int = 0
    missed_calls: int = 0
    called_at: datetime | None = None
    completed_at: datetime | None = None

    def _repr_html_(self) -> str:
        """The token's fields as a table for notebooks, escaped; like the repr, without
        ``patient_id``. O(fields)."""
        return token_html(self)


# ---------------------------------------------------------------- the token id format
#
# A token's id is its issuing doctor's id and its number, zero-padded to three digits:
# ``D1-007``, ``D1-1234``. The number is the doctor's count of tokens issued; the doctor
# is the part before the last ``-`` (a doctor's id may hold dashes of its own). This is the
# one place the format is written and read.

#: The id suffixes of the first numbers, made once: ``book`` runs on every booking, and
#: a concatenation is several times cheaper than formatting ``f"{n:03d}"``.
_SUFFIXES: Final = tuple(f"-{number:03d}" for number in range(1000))


def token_id(doctor_id: str, number: int) -> str:
    """The id of the ``number``-th token that ``doctor_id`` issues: ``D1-007``. O(1)."""
    if number < 1000:
        return doctor_id + _SUFFIXES[number]
    return f"{doctor_id}-{number:03d}"


def issuer_of(token_id: str) -> str:
    """The id of the doctor who issued the token ``token_id`` (:func:`token_id`'s
    ``doctor_id``). O(len(token_id))."""
    return token_id.rpartition("-")[0]


_NAMES = tuple(field.name for field in attrs.fields(Token))


def copier(*changed: str) -> Callable[..., Token]:
    """A fast ``attrs.evolve`` for the allocator's hot paths: the returned function takes a
    token and one value per field of ``changed``, positionally, and returns the copy. Token
    has no validators or converters, so writing its fields one by one is the same; a test
    checks every copier against ``attrs.evolve``. O(fields) per copy."""
    unknown = sorted(set(changed) - set(_NAMES))
    if unknown:
        raise ValueError(f"Token has no fields {unknown}")
    values = {name: name if name in changed else f"token.{name}" for name in _NAMES}
    label = ", ".join(changed) or "nothing"
    return value_builder(Token, f"Token copier ({label})", ["token", *changed], values)


#: ``Token(...)`` with every field given positionally, in field order (for ``book``).
new_token: Callable[..., Token] = value_builder(
    Token, "Token builder", _NAMES, {name: name for name in _NAMES}
)


_copy = copier()
_SETTERS = {field.name: Token.__dict__[field.name].__set__ for field in attrs.fields(Token)}


def copy_token(token: Token, changes: dict[str, object]) -> Token:
    """``attrs.evolve(token, **changes)`` for the allocator's paths that are not hot enough
    for a :func:`copier` of their own. O(fields)."""
    new = _copy(token)
    for name, value in changes.items():
        _SETTERS[name](new, value)
    return new


@final
@attrs.frozen
class Doctor:
    """A doctor whose day is split into slots.

    ``consult_minutes`` is the expected length of one consultation, used for estimated
    start times. Construction validates every field and raises
    :class:`~opd_engine.InvalidArgumentError` on bad input: an ``id`` that is empty, padded
    with whitespace or longer than 128 characters, and an ``id``, ``name`` or
    ``department`` holding a control character (Unicode category Cc: NUL, tab, newline,
    ...) or a lone surrogate, none of which a journal can store everywhere. A ``str``
    subclass (a ``str`` enum member) is kept as the plain ``str`` of its characters, an
    ``int`` subclass (an ``IntEnum`` member) as a plain ``int``; ``bool`` is refused.
    """

    id: str = attrs.field(validator=attrs_validator(check_id))
    name: str = attrs.field(validator=attrs_validator(check_str))
    department: str = attrs.field(default="", validator=attrs_validator(check_str))
    consult_minutes: int = attrs.field(
        default=10, validator=attrs_validator(check_int, minimum=1, maximum=MAX_MINUTES)
    )


def check_priority(name: str, value: object) -> Priority:
    """A :class:`Priority` member (a plain ``int`` is refused)."""
    return check_enum(name, value, Priority)
