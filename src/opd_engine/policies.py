"""Policies: the decisions an OPD makes differently from another, as pluggable values.

There are four kinds, each a :class:`typing.Protocol` whose docstring is the specification an
implementation must meet:

* :class:`CapacityPolicy`: how many non-emergency tokens a slot admits
  (:class:`HardLimit`, :class:`Overbooking`, :class:`SourceQuota`, :class:`Reserve`);
* :class:`EmergencyPolicy`: how far emergencies may overflow a slot
  (:class:`EmergencyOverride`);
* :class:`ReallocationPolicy`: how a freed place is refilled (:class:`Reallocation`);
* :class:`OrderingPolicy`: who is called next (:class:`StrictPriority`, :class:`Aging`,
  :class:`AccumulatingPriority`).

The shipped policies are frozen values; a class of your own with the same methods plugs in
the same way. A subclass of a shipped policy is a class of your own: its answers are
checked like any user policy's, and the shipped classes' fast paths serve only the shipped
classes themselves. :class:`Policies` bundles one of each with the remaining switches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from enum import Enum
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Protocol, final, runtime_checkable

import attrs

from ._check import MAX_MINUTES, attrs_validator, check_bool, check_enum, check_int, utc
from ._frozen import FrozenMap
from ._values import Priority, Source, Token
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._slot import Slot

__all__ = [
    "AccumulatingPriority",
    "Aging",
    "CapacityPolicy",
    "Comparable",
    "Duplicates",
    "EmergencyOverride",
    "EmergencyPolicy",
    "HardLimit",
    "OnDelay",
    "OnFull",
    "OrderingPolicy",
    "Overbooking",
    "Policies",
    "Reallocation",
    "ReallocationPolicy",
    "Reserve",
    "SourceQuota",
    "StrictPriority",
]


class Comparable(Protocol):
    """Anything ordered by ``<``, such as a tuple of ints and datetimes (for the kinds an
    ordering's key may be, see :meth:`OrderingPolicy.key`)."""

    def __lt__(self, other: Any, /) -> bool: ...


# --------------------------------------------------------------------------- capacity


@runtime_checkable
class CapacityPolicy(Protocol):
    """How many non-emergency tokens a slot admits.

    Emergencies never ask the capacity policy; they follow the :class:`EmergencyPolicy`.
    Both methods must be pure and O(1): the allocator calls them on every booking, and asks
    ``admits`` once per (source, priority) class when it refills a place from a waitlist.
    What a policy of your own answers is checked: ``limit`` must be an int in [0, 10^9],
    ``admits`` a bool, and a slot never admits past ``limit`` whatever ``admits`` says; a
    bad answer raises :class:`~opd_engine.InvalidArgumentError`, the call changing nothing.
    """

    def limit(self, capacity: int) -> int:
        """Places a slot of ``capacity`` offers to non-emergency tokens in all.

        A slot whose occupancy is at or past this limit has no room. Must be >= 0.
        """
        ...

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        """Whether ``slot`` admits one more non-emergency token of ``source``/``priority``.

        Must be False whenever ``slot.occupancy >= self.limit(slot.capacity)``; may refuse
        more (a per-channel quota, a seat kept for paid patients).
        """
        ...


@final
@attrs.frozen
class HardLimit:
    """A slot admits exactly ``capacity`` tokens (the default). O(1)."""

    def limit(self, capacity: int) -> int:
        """``capacity`` itself. O(1)."""
        return capacity

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        """True while ``slot.occupancy < slot.capacity``. O(1)."""
        return slot.occupancy < slot.capacity


def _check_rate(instance: object, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            f"{attribute.name} must be a number in [0, 1), got {attribute.name}={value!r}"
        )
    if not 0 <= value < 1:
        raise InvalidArgumentError(
            f"{attribute.name} must be in [0, 1), got {attribute.name}={value!r}"
        )


@final
@attrs.frozen
class Overbooking:
    """Overbook by the expected no-shows: admit ``floor(capacity / (1 - no_show_rate))``.

    With a no-show rate of 0.2 a slot of 10 admits 12, so on average 10 patients come.
    The rate is read as the decimal the caller wrote (0.3 is exactly 3/10), so the limit
    has no floating-point surprises. O(1).
    """

    no_show_rate: float = attrs.field(validator=_check_rate)

    def limit(self, capacity: int) -> int:
        """``floor(capacity / (1 - no_show_rate))``. O(1)."""
        rate = Fraction(str(self.no_show_rate))
        return math.floor(capacity / (1 - rate))

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        """True while ``slot.occupancy`` is below :meth:`limit`. O(1)."""
        return slot.occupancy < self.limit(slot.capacity)


def _source_counts(name: str, value: object) -> Mapping[Source, int]:
    """A field ``name`` mapping each ``Source`` to an int >= 0 (a quota, places kept), as a
    frozen map of plain ints, or :class:`InvalidArgumentError` naming ``name`` and the
    value."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"{name} must be a mapping of Source to int, got {name}={value!r}"
        )
    counts: dict[Source, int] = {}
    for source, count in value.items():
        check_enum(f"{name} key", source, Source)
        counts[source] = check_int(f"{name}[{source}]", count, minimum=0)
    return FrozenMap(counts)


def _freeze_quotas(value: object) -> Mapping[Source, int]:
    return _source_counts("quotas", value)


def _freeze_places(value: object) -> Mapping[Source, int]:
    return _source_counts("places", value)


def _day_span(name: str) -> Callable[[object, Any, object], None]:
    """The validator of a field ``name`` holding a ``timedelta`` from 0 to one day."""

    def check(instance: object, attribute: Any, value: object) -> None:
        if (
            not isinstance(value, timedelta)
            or value < timedelta(0)
            or value > timedelta(minutes=MAX_MINUTES)
        ):
            raise InvalidArgumentError(
                f"{name} must be a timedelta >= 0 and <= 1 day, got {name}={value!r}"
            )

    return check


@final
@attrs.frozen
class SourceQuota:
    """Per-channel caps on top of the hard limit: ``SourceQuota({Source.ONLINE: 6})``.

    A slot admits a token while it has room under its capacity and fewer than
    ``quotas[source]`` non-emergency tokens of that source hold a place; sources not named
    are capped by the capacity alone. O(1).
    """

    quotas: Mapping[Source, int] = attrs.field(converter=_freeze_quotas)

    def limit(self, capacity: int) -> int:
        """``capacity`` itself. O(1)."""
        return capacity

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        """True while the slot has room and the source is under its quota. O(1)."""
        if slot.occupancy >= slot.capacity:
            return False
        cap = self.quotas.get(source)
        return cap is None or slot.held_by(source) < cap


@final
@attrs.frozen
class Reserve:
    """Places kept for a channel until shortly before the slot:
    ``Reserve({Source.WALK_IN: 2}, release_before=timedelta(minutes=30))``.

    ``places`` maps a :class:`~opd_engine.Source` to the number of places in every slot kept
    for that channel, within the slot's capacity (see :meth:`kept`). The channel's own
    tokens in the slot use its reserve first; another channel's token is admitted only while
    the slot's occupancy stays below ``capacity`` minus the unused reserve (the kept places
    not yet held by their channel's non-emergency tokens), until ``slot.start -
    release_before``. From that instant on (inclusive) the slot admits any channel up to its
    capacity, as :class:`HardLimit` does. The instant is compared in real time (in UTC for
    aware datetimes). A channel's tokens beyond its reserve compete for the unreserved
    places like anyone else's; emergencies never ask a capacity policy, but the places they
    hold count in the occupancy.

    An allocator asks :meth:`admits` at the time of the call in progress: the one reading
    of its clock that the call's every decision uses. ``release_before`` is a timedelta in
    ``[0, 1 day]``; a count must be an int >= 0 (an ``int`` subclass is kept as the plain
    int); otherwise :class:`~opd_engine.InvalidArgumentError`. O(1): at most one step per
    channel.
    """

    places: Mapping[Source, int] = attrs.field(converter=_freeze_places)
    release_before: timedelta = attrs.field(
        default=timedelta(minutes=30), validator=_day_span("release_before")
    )
    # The channels with places, in Source's declared order (the order kept() caps them in).
    _order: tuple[tuple[Source, int], ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        places = self.places
        order = tuple((source, places[source]) for source in Source if places.get(source, 0) > 0)
        object.__setattr__(self, "_order", order)

    def limit(self, capacity: int) -> int:
        """``capacity`` itself: the reserve decides who takes a place, not how many. O(1)."""
        return capacity

    def kept(self, capacity: int) -> Mapping[Source, int]:
        """The places kept for each channel in a slot of ``capacity``. O(channels).

        Where the places exceed the capacity, the whole capacity is reserved: the channels
        are served in :class:`~opd_engine.Source`'s declared order (``ONLINE``,
        ``WALK_IN``, ``PAID``, ``FOLLOW_UP``), each keeping its places or what the channels
        before it left of the capacity, whichever is smaller. ``Reserve({WALK_IN: 3, PAID:
        2}).kept(4)`` is ``{WALK_IN: 3, PAID: 1}``. Channels keeping nothing are left out.
        """
        kept: dict[Source, int] = {}
        left = capacity
        for source, places in self._order:
            if left <= 0:
                break
            kept[source] = places if places < left else left
            left -= kept[source]
        return kept

    def released(self, slot: Slot, now: datetime) -> bool:
        """Whether ``now`` is at or past the release, ``slot.start - release_before``, when
        any channel may take any place. Compared in real time (UTC for aware datetimes).
        O(1)."""
        return utc(now) >= utc(slot.start) - self.release_before

    def admits(
        self, slot: Slot, source: Source, priority: Priority, now: datetime | None = None
    ) -> bool:
        """Whether ``slot`` admits one more non-emergency token of ``source`` at ``now``.
        O(channels).

        False once the slot is full (``occupancy >= capacity``). From the release on, True
        otherwise. Before it: True while ``source`` holds fewer places than :meth:`kept`
        gives it; else True while ``occupancy < capacity - unused``, the unused reserve
        being the sum over the channels of ``max(0, kept - held_by(channel))``. Without
        ``now`` (a call from outside an allocator) the release is taken as not yet come.
        """
        occupancy = slot.occupancy
        capacity = slot.capacity
        if occupancy >= capacity:
            return False
        if now is not None and self.released(slot, now):
            return True
        left = capacity
        unused = 0
        for channel, places in self._order:
            if left <= 0:
                break
            kept = places if places < left else left
            left -= kept
            held = slot.held_by(channel)
            if held < kept:
                if channel is source:
                    return True  # its own reserve first
                unused += kept - held
        return occupancy < capacity - unused


# --------------------------------------------------------------------------- emergency


@runtime_checkable
class EmergencyPolicy(Protocol):
    """How far emergencies may overflow a full slot.

    An emergency is never turned away. Past the bound, the allocator displaces the
    lowest-ranked non-emergency waiting token (lowest priority, latest ``seq``) to the first
    later slot of the same doctor with room, else to the waitlist; when nobody can be
    displaced the emergency overflows anyway.
    """

    def overflow_limit(self, slot: Slot) -> int | None:
        """The most places ``slot`` may hold beyond its capacity; None for no bound. O(1)."""
        ...


@final
@attrs.frozen
class EmergencyOverride:
    """Emergencies bypass the hard limit by at most ``max_overflow`` places (None: any)."""

    max_overflow: int | None = attrs.field(default=None)

    @max_overflow.validator
    def _check(self, attribute: Any, value: object) -> None:
        if value is not None:
            attrs_validator(check_int, minimum=0)(self, attribute, value)

    def overflow_limit(self, slot: Slot) -> int | None:
        """``max_overflow``, the same for every slot. O(1)."""
        return self.max_overflow


# --------------------------------------------------------------------------- reallocation


@runtime_checkable
class ReallocationPolicy(Protocol):
    """How a freed place (cancel, no-show, resize) is refilled, and whether an idle doctor
    calls a present patient from the waitlist.

    The doctor's waitlist is always tried first, in ``(priority, seq)`` order. Then, if
    ``pull_forward`` is true, the checked-in patient the ordering would call first in the
    doctor's nearest later slot with someone present moves into the freed place, and the
    place that leaves behind is refilled the same way. ``max_moves`` protects tokens from
    repeated displacement: a token already moved ``max_moves`` times is not displaced again
    while another candidate exists. ``fill_idle`` is the idle-fill rule: when the doctor
    calls and no checked-in patient waits in any of their slots, the first checked-in
    patient of their waitlist is seated in the current slot (over its capacity if need be)
    and called, so no doctor sits idle while a present patient waits.
    """

    @property
    def pull_forward(self) -> bool:
        """Whether present patients of later slots move into freed places."""
        ...

    @property
    def max_moves(self) -> int:
        """Moves after which a token is displaced only as the last resort."""
        ...

    @property
    def fill_idle(self) -> bool:
        """Whether an idle doctor calls a present patient from the waitlist."""
        ...


@final
@attrs.frozen(kw_only=True)
class Reallocation:
    """Refill from the waitlist, then (``pull_forward``) from later slots' present patients;
    with ``fill_idle`` (the default) an idle doctor calls a present waitlisted patient.

    ``fill_idle=False`` is the strict rule: a waitlisted patient is called only once a
    place frees for them, so a booked patient who has not arrived holds the doctor's time.
    """

    pull_forward: bool = attrs.field(default=True, validator=attrs_validator(check_bool))
    max_moves: int = attrs.field(default=2, validator=attrs_validator(check_int, minimum=0))
    fill_idle: bool = attrs.field(default=True, validator=attrs_validator(check_bool))


# --------------------------------------------------------------------------- ordering


@runtime_checkable
class OrderingPolicy(Protocol):
    """Who, among a slot's checked-in patients, is called next.

    The slot keeps its checked-in tokens in *levels*: ``level(token, now)`` says which, and
    within a level they are kept sorted by ``key(token)``, which must not change while the
    token waits. A token's level may change over time, but only at the instants
    ``next_change`` announces, so the slot re-files a token only when its level changes,
    never by scanning. To call the next patient the slot passes ``pick`` the head (smallest
    key) of every non-empty level, in ascending level order, and calls the one it picks.

    ``lexicographic`` promises that ``pick`` always returns 0, so the call order is simply
    ``(level, key)``. Booked patients who have not arrived are not filed: the slot's
    standing order (:meth:`Allocator.queue`) merges the call order with them, a booked
    token standing at its triaged priority, and between the two the smaller
    ``(level, seq)`` goes first. The slot answers ``position`` in O(log n) under the
    shipped ``StrictPriority`` and ``Aging`` (whose key is ``seq``), in O(n) otherwise.

    A key is an int, a float other than NaN, a str, a datetime, a timedelta, or a tuple of
    these (a subclass, such as an ``IntEnum`` member, counts as its plain value), so that
    keys are totally ordered: NaN compares neither below nor above anything, and a sorted
    index holding it could no longer find its entries. The keys of the tokens checked in to
    one slot at one level must also compare with each other: not a str beside numbers, nor a
    naive datetime beside aware ones, nor tuples that differ in kind where they first differ.

    The clock must not run backwards: a level once reached is kept. ``next_change`` must
    lie after ``now``; what a policy of your own answers is checked, and nonsense (a
    non-advancing ``next_change``, a ``pick`` outside the heads, a ``key`` of another kind
    or NaN, a key that does not compare with those already filed, which is refused when the
    token is filed: at check-in, or when its level changes) raises
    :class:`~opd_engine.InvalidArgumentError` naming the policy and the value, the call
    changing nothing.
    """

    @property
    def lexicographic(self) -> bool:
        """True when ``pick`` always returns 0."""
        ...

    def level(self, token: Token, now: datetime) -> int:
        """The level of checked-in ``token`` at ``now``. O(1)."""
        ...

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        """When ``level(token, ...)`` next differs from its value at ``now``; None: never."""
        ...

    def key(self, token: Token) -> Comparable:
        """Order within a level; fixed while the token waits. An int, a float other than
        NaN, a str, a datetime, a timedelta, or a tuple of these, comparable with the keys
        of the other tokens of its level. O(1)."""
        ...

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        """Index into ``heads`` (one token per non-empty level, in level order). O(levels)."""
        ...


@final
@attrs.frozen
class StrictPriority:
    """Call in ``(priority, seq)`` order: most urgent first, first come first served within.

    A standard patient may wait forever while more urgent ones keep arriving.
    """

    @property
    def lexicographic(self) -> bool:
        """Always True. O(1)."""
        return True

    def level(self, token: Token, now: datetime) -> int:
        """The token's triaged priority. O(1)."""
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        """Never. O(1)."""
        return None

    def _filing(self, token: Token, now: datetime) -> tuple[int, datetime | None]:
        """``(level(token, now), next_change(token, now))`` at once, for the slots. O(1)."""
        return int(token.priority), None

    def key(self, token: Token) -> Comparable:
        """``seq``: first come, first served. O(1)."""
        return token.seq

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        """The most urgent level's head. O(1)."""
        return 0


def _check_step(instance: object, attribute: Any, value: object) -> None:
    if (
        not isinstance(value, timedelta)
        or value <= timedelta(0)
        or value > timedelta(minutes=MAX_MINUTES)
    ):
        raise InvalidArgumentError(f"step must be a timedelta > 0 and <= 1 day, got step={value!r}")


def _check_ceiling(instance: object, attribute: Any, value: object) -> None:
    check_enum("ceiling", value, Priority)
    if value is Priority.EMERGENCY:
        raise InvalidArgumentError(
            "ceiling must be PAID, FOLLOW_UP or STANDARD (only triage makes an emergency), "
            f"got ceiling={value!r}"
        )


def _aging_table(
    step: timedelta, ceiling: Priority
) -> tuple[tuple[int, tuple[timedelta, ...]], ...]:
    """For each priority (the index): the level it starts at, as a plain int, and the waits
    at which it rises one level more (``step``, ``2 * step``, ... up to the ceiling); none
    for a priority at or above the ceiling. O(levels), once per :class:`Aging`."""
    return tuple(
        (int(priority), tuple(rise * step for rise in range(1, priority - ceiling + 1)))
        for priority in Priority
    )


@final
@attrs.frozen(kw_only=True)
class Aging:
    """Strict priority, but a checked-in token rises one level per ``step`` waited.

    A token's level is ``max(ceiling, priority - floor(waited / step))`` for priorities
    below the ceiling, and its own priority otherwise; ties within a level go by ``seq``.
    Waits are measured in real time (in UTC for aware datetimes, so a daylight saving
    change neither adds nor takes away waiting). With the defaults a standard patient who
    has waited 30 minutes is called alongside the
    follow-ups, never ahead of paid patients or emergencies. The default ordering.
    """

    step: timedelta = attrs.field(default=timedelta(minutes=30), validator=_check_step)
    ceiling: Priority = attrs.field(default=Priority.FOLLOW_UP, validator=_check_ceiling)
    # Derived from the two fields above, once: see _aging_table.
    _table: tuple[tuple[int, tuple[timedelta, ...]], ...] = attrs.field(
        init=False, repr=False, eq=False
    )

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_table", _aging_table(self.step, self.ceiling))

    @property
    def lexicographic(self) -> bool:
        """Always True. O(1)."""
        return True

    def level(self, token: Token, now: datetime) -> int:
        """``max(ceiling, priority - floor(waited / step))`` for levels below it. O(1)."""
        return self._filing(token, now)[0]

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        """When the token next rises a level; None at the ceiling. O(1)."""
        return self._filing(token, now)[1]

    def _filing(self, token: Token, now: datetime) -> tuple[int, datetime | None]:
        """``(level(token, now), next_change(token, now))`` at once, for the slots. O(1).

        No division and no multiplication of durations: the wait is compared with the
        table's rises, made once (``floor(waited / step) >= k`` exactly when ``waited >=
        k * step``). An aware wait is the same real time as ``utc(now) - utc(arrived)``,
        found with fewer conversions: a subtraction between two fixed-offset ``timezone``
        datetimes is already in real time (different offsets are applied, equal ones
        cancel), and within one other zone the change of offset is taken off the
        wall-clock wait.
        """
        level, rises = self._table[token.priority]
        arrived = token.checked_in_at
        if not rises or arrived is None:
            return level, None
        zone = now.tzinfo
        start: datetime | None = None  # the wait's start in real time, made when needed
        if zone is None:
            waited = now - arrived
            start = arrived
        elif type(zone) is timezone and type(arrived.tzinfo) is timezone:
            waited = now - arrived
        else:
            offset, offset_then = now.utcoffset(), arrived.utcoffset()
            if arrived.tzinfo is zone and offset is not None and offset_then is not None:
                waited = now - arrived - (offset - offset_then)
            else:  # different zones, or no offset: convert both
                start = utc(arrived)
                waited = utc(now) - start
        for rise in rises:
            if waited < rise:
                return level, (utc(arrived) if start is None else start) + rise
            level -= 1
        return level, None

    def key(self, token: Token) -> Comparable:
        """``seq``. O(1)."""
        return token.seq

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        """The most urgent level's head. O(1)."""
        return 0


#: ``(level, next change)`` of a checked-in token at ``now``: an ordering's ``level`` and
#: ``next_change`` asked at once.
Filing = Callable[[Token, datetime], tuple[int, datetime | None]]


def shipped_filing(ordering: OrderingPolicy) -> Filing | None:
    """The level and next change at once, for a slot to call on every filing, when
    ``ordering`` is a shipped ordering keyed by ``seq`` (:class:`StrictPriority` or
    :class:`Aging` itself, not a subclass, which may override any method); None for any
    other ordering, which is asked through :class:`OrderingPolicy`. A slot asks once, when
    it is attached. O(1)."""
    if type(ordering) is Aging or type(ordering) is StrictPriority:
        return ordering._filing
    return None


_DEFAULT_RATES: Mapping[Priority, float] = {
    Priority.EMERGENCY: 8.0,
    Priority.PAID: 4.0,
    Priority.FOLLOW_UP: 2.0,
    Priority.STANDARD: 1.0,
}


def _freeze_rates(value: object) -> Mapping[Priority, float]:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            f"rates must be a mapping of Priority to float, got rates={value!r}"
        )
    rates: dict[Priority, float] = {}
    for priority, rate in value.items():
        check_enum("rates key", priority, Priority)
        if (
            isinstance(rate, bool)
            or not isinstance(rate, int | float)
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise InvalidArgumentError(
                f"rates[{priority.name}] must be a positive number, "
                f"got rates[{priority.name}]={rate!r}"
            )
        rates[priority] = float(rate)
    missing = [p.name for p in Priority if p not in rates]
    if missing:
        raise InvalidArgumentError(
            f"rates must give every priority a rate, missing {', '.join(missing)}"
        )
    return FrozenMap(rates)


@final
@attrs.frozen
class AccumulatingPriority:
    """Kleinrock's delay-dependent priority: call the largest ``rate * minutes waited``.

    A checked-in token accumulates priority at its class's rate from check-in; the one with
    the most is called, ties by ``seq``. Within a class the earliest check-in leads, so only
    the class heads are compared. Emergencies are not automatically first: their rate decides.
    """

    rates: Mapping[Priority, float] = attrs.field(
        factory=lambda: dict(_DEFAULT_RATES), converter=_freeze_rates
    )

    @property
    def lexicographic(self) -> bool:
        """Always False: classes overtake each other as time passes. O(1)."""
        return False

    def level(self, token: Token, now: datetime) -> int:
        """The token's triaged priority. O(1)."""
        return int(token.priority)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        """Never: a token stays in its class. O(1)."""
        return None

    def key(self, token: Token) -> Comparable:
        """``(checked_in_at, seq)``: the longest waiter leads its class. O(1)."""
        assert token.checked_in_at is not None
        return (utc(token.checked_in_at), token.seq)

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        """The head with the most accumulated priority, ties by ``seq``. O(levels)."""
        best = 0
        best_score = -math.inf
        best_seq = 0
        for i, token in enumerate(heads):
            assert token.checked_in_at is not None
            waited = (utc(now) - utc(token.checked_in_at)).total_seconds() / 60
            score = self.rates[token.priority] * waited
            if score > best_score or (score == best_score and token.seq < best_seq):
                best, best_score, best_seq = i, score, token.seq
        return best


# --------------------------------------------------------------------------- bundle


@final
class OnFull(Enum):
    """What happens to a non-emergency booking for a full slot."""

    #: Raise :class:`~opd_engine.SlotFullError` (the default).
    REJECT = "reject"
    #: Put the token on the doctor's waitlist.
    WAITLIST = "waitlist"
    #: Book the earliest later slot with room, else the waitlist.
    NEXT_SLOT = "next_slot"


@final
class OnDelay(Enum):
    """What a doctor's delay does besides shifting estimated starts."""

    #: Estimated starts shift; every slot keeps its capacity, as if the doctor will catch up
    #: or stay late (the default).
    SHIFT = "shift"
    #: The lost minutes also remove places: each whole ``consult_minutes`` of the doctor's
    #: total delay takes one place off the current slot (then the next ones), and the
    #: lowest-ranked waiting tokens move on to a later slot with room or the waitlist,
    #: keeping their ``seq`` (``MoveReason.DELAYED``).
    SHRINK = "shrink"


@final
class Duplicates(Enum):
    """How many active tokens a patient may hold at once (emergencies are always exempt)."""

    #: One per doctor (the default).
    PER_DOCTOR = "per_doctor"
    #: One per department: a patient waiting for one physician may not also queue for
    #: another of the same department.
    PER_DEPARTMENT = "per_department"
    #: One in the whole allocator, that is one per OPD day.
    ONE = "one"


def _protocol_validator(protocol: type, name: str) -> Any:
    def validate(instance: object, attribute: Any, value: object) -> None:
        # A class has the Protocol's methods too; only an instance can serve as a policy.
        if isinstance(value, type) or not isinstance(value, protocol):
            raise InvalidArgumentError(
                f"{attribute.name} must be a {name}, got {attribute.name}={value!r}"
            )

    return validate


@final
@attrs.frozen(kw_only=True)
class Policies:
    """One policy of each kind, plus the full-slot, no-show grace, delay, duplicate and
    missed-call rules.

    ``duplicates`` (:class:`Duplicates`) says how many active tokens a patient may hold;
    ``max_missed_calls`` (an int >= 1) is the number of unanswered calls after which
    :meth:`Allocator.missed_call` makes a token ``NO_SHOW``. ``notify_within`` (an int >=
    0; 0, the default, is off) sends due notices: after each change, a checked-in patient
    whose place in their doctor's call order (:meth:`Allocator.next_up` order, 1 = next) is
    at most ``notify_within`` is sent one :class:`TokenDue`, once, and once more only after
    stepping out or missing a call and coming back.

    Construction validates every field and raises :class:`~opd_engine.InvalidArgumentError`
    for a value that is not a policy of the right kind.
    """

    capacity: CapacityPolicy = attrs.field(
        factory=HardLimit, validator=_protocol_validator(CapacityPolicy, "CapacityPolicy")
    )
    emergency: EmergencyPolicy = attrs.field(
        factory=EmergencyOverride,
        validator=_protocol_validator(EmergencyPolicy, "EmergencyPolicy"),
    )
    reallocation: ReallocationPolicy = attrs.field(
        factory=Reallocation,
        validator=_protocol_validator(ReallocationPolicy, "ReallocationPolicy"),
    )
    ordering: OrderingPolicy = attrs.field(
        factory=Aging, validator=_protocol_validator(OrderingPolicy, "OrderingPolicy")
    )
    on_full: OnFull = attrs.field(
        default=OnFull.REJECT, validator=attrs_validator(check_enum, enum=OnFull)
    )
    no_show_grace: timedelta = attrs.field(
        default=timedelta(minutes=15), validator=_day_span("no_show_grace")
    )
    on_delay: OnDelay = attrs.field(
        default=OnDelay.SHIFT, validator=attrs_validator(check_enum, enum=OnDelay)
    )
    duplicates: Duplicates = attrs.field(
        default=Duplicates.PER_DOCTOR, validator=attrs_validator(check_enum, enum=Duplicates)
    )
    max_missed_calls: int = attrs.field(default=2, validator=attrs_validator(check_int, minimum=1))
    notify_within: int = attrs.field(default=0, validator=attrs_validator(check_int, minimum=0))
