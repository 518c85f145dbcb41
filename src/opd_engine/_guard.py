"""Checks on what a user's policy returns, so that nonsense is refused, not obeyed.

The shipped policies are validated values and are used as they are: the classes
themselves, not their subclasses (a subclass may override any method, so it is the user's
own code like any other). A policy of the user's own is wrapped here: every answer is
checked (type and range) and a bad one raises :class:`~opd_engine.InvalidArgumentError`
naming the policy and the value. The allocator undoes whatever the call had changed, so a
failing policy leaves no trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, final

import attrs

from ._values import Priority, Source, Token
from .errors import InvalidArgumentError
from .policies import (
    AccumulatingPriority,
    Aging,
    CapacityPolicy,
    Comparable,
    EmergencyOverride,
    EmergencyPolicy,
    HardLimit,
    OrderingPolicy,
    Overbooking,
    Policies,
    Reallocation,
    ReallocationPolicy,
    Reserve,
    SourceQuota,
    StrictPriority,
)

if TYPE_CHECKING:
    from ._slot import Slot

#: No capacity policy may admit more than this many non-emergency tokens to one slot.
MAX_LIMIT = 10**9

#: The shipped policy classes: an instance of exactly one of these is trusted as it is.
_SHIPPED: frozenset[type] = frozenset(
    {
        HardLimit,
        Overbooking,
        SourceQuota,
        Reserve,
        EmergencyOverride,
        Reallocation,
        StrictPriority,
        Aging,
        AccumulatingPriority,
    }
)


def shipped(policy: object) -> bool:
    """Whether ``policy`` is an instance of a shipped class itself (not of a subclass,
    which may override anything). O(1)."""
    return type(policy) in _SHIPPED


def _refuse(policy: object, call: str, expected: str, value: object) -> InvalidArgumentError:
    return InvalidArgumentError(f"policy {policy!r}: {call} must return {expected}, got {value!r}")


def _check_bool(policy: object, call: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _refuse(policy, call, "a bool", value)
    return value


def _check_count(policy: object, call: str, value: object, maximum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= maximum:
        raise _refuse(policy, call, f"an int in [0, {maximum}]", value)
    return value


#: What :meth:`OrderingPolicy.key` may return, as the refusal says it.
_KEYS = "an int, a float other than NaN, a str, a datetime, a timedelta, or a tuple of these"


def plain_key(value: object) -> Comparable | None:
    """``value`` as an ordering key made of the built-in values whose order is total, or
    None if it is not one (see :class:`~opd_engine.OrderingPolicy`). O(size of the key).

    NaN is refused (it is neither smaller nor larger than anything, so a sorted index
    holding it cannot find its entries again). A subclass of int, float, str, datetime or
    timedelta becomes the plain value, so no overridden comparison reaches an index; an
    aware datetime becomes the same instant in UTC, so no time zone is asked again.
    """
    kind = type(value)
    if kind is int or kind is str:
        return value  # type: ignore[return-value]
    if kind is float:
        return value if value == value else None  # type: ignore[return-value]
    if kind is tuple:
        parts: list[Comparable] = []
        for part in value:  # type: ignore[attr-defined]
            plain = plain_key(part)
            if plain is None:
                return None
            parts.append(plain)
        return tuple(parts)
    if isinstance(value, int):  # bool, an IntEnum member
        return int.__index__(value)
    if isinstance(value, float):
        return plain_key(float.__float__(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            try:
                value = datetime.astimezone(value, timezone.utc)
            except Exception:  # a time zone of the user's that fails
                return None
        return datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            value.tzinfo,
        )
    if isinstance(value, timedelta):
        return timedelta(value.days, value.seconds, value.microseconds)
    return None


def unordered_key(
    ordering: object, token_id: str, key: object, slot_id: str
) -> InvalidArgumentError:
    """The refusal of ``key``, which does not compare with the keys already filed in slot
    ``slot_id`` (a str beside numbers, a naive datetime beside aware ones). O(1)."""
    policy = ordering.policy if isinstance(ordering, CheckedOrdering) else ordering
    return _refuse(
        policy,
        f"key({token_id!r})",
        f"a key comparable with those of the other tokens checked in to slot {slot_id!r}",
        key,
    )


@final
class CheckedCapacity:
    """A user's capacity policy whose answers are checked. A slot never admits past the
    policy's own ``limit``, whatever ``admits`` says."""

    __slots__ = ("policy",)

    def __init__(self, policy: CapacityPolicy) -> None:
        self.policy = policy

    def limit(self, capacity: int) -> int:
        value = self.policy.limit(capacity)
        return _check_count(self.policy, f"limit({capacity})", value, MAX_LIMIT)

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        value = self.policy.admits(slot, source, priority)
        _check_bool(self.policy, "admits()", value)
        return value and slot.occupancy - slot.emergencies < self.limit(slot.capacity)


@final
class CheckedEmergency:
    """A user's emergency policy whose answers are checked."""

    __slots__ = ("policy",)

    def __init__(self, policy: EmergencyPolicy) -> None:
        self.policy = policy

    def overflow_limit(self, slot: Slot) -> int | None:
        value = self.policy.overflow_limit(slot)
        if value is None:
            return None
        return _check_count(self.policy, "overflow_limit()", value, MAX_LIMIT)


@final
class CheckedReallocation:
    """A user's reallocation policy whose answers are checked."""

    __slots__ = ("policy",)

    def __init__(self, policy: ReallocationPolicy) -> None:
        self.policy = policy

    @property
    def pull_forward(self) -> bool:
        return _check_bool(self.policy, "pull_forward", self.policy.pull_forward)

    @property
    def max_moves(self) -> int:
        return _check_count(self.policy, "max_moves", self.policy.max_moves, MAX_LIMIT)

    @property
    def fill_idle(self) -> bool:
        return _check_bool(self.policy, "fill_idle", self.policy.fill_idle)


@final
class CheckedOrdering:
    """A user's ordering whose answers are checked; ``next_change`` must move forward."""

    __slots__ = ("policy",)

    def __init__(self, policy: OrderingPolicy) -> None:
        self.policy = policy

    @property
    def lexicographic(self) -> bool:
        return _check_bool(self.policy, "lexicographic", self.policy.lexicographic)

    def level(self, token: Token, now: datetime) -> int:
        value = self.policy.level(token, now)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _refuse(self.policy, f"level({token.id!r})", "an int", value)
        return int.__index__(value)  # a plain int (not an IntEnum member)

    def next_change(self, token: Token, now: datetime) -> datetime | None:
        value = self.policy.next_change(token, now)
        if value is None:
            return None
        if not isinstance(value, datetime) or (value.tzinfo is None) != (now.tzinfo is None):
            kind = "an aware" if now.tzinfo is not None else "a naive"
            raise _refuse(self.policy, "next_change()", f"None or {kind} datetime", value)
        if value <= now:
            raise _refuse(self.policy, "next_change()", f"None or a time after {now}", value)
        return value

    def key(self, token: Token) -> Comparable:
        value = self.policy.key(token)
        key = plain_key(value)
        if key is None:
            raise _refuse(self.policy, f"key({token.id!r})", _KEYS, value)
        return key

    def pick(self, heads: Sequence[Token], now: datetime) -> int:
        value = self.policy.pick(heads, now)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(heads):
            raise _refuse(self.policy, "pick()", f"an index in [0, {len(heads)})", value)
        return value


def checked(policies: Policies) -> Policies | None:
    """``policies`` with every user policy wrapped in its checks, or None if every policy
    is a shipped one (nothing to check, nothing can fail half-way). A subclass of a shipped
    policy is a user policy. O(1)."""
    capacity, emergency = policies.capacity, policies.emergency
    reallocation, ordering = policies.reallocation, policies.ordering
    if all(shipped(p) for p in (capacity, emergency, reallocation, ordering)):
        return None
    return attrs.evolve(
        policies,
        capacity=capacity if shipped(capacity) else CheckedCapacity(capacity),
        emergency=emergency if shipped(emergency) else CheckedEmergency(emergency),
        reallocation=reallocation if shipped(reallocation) else CheckedReallocation(reallocation),
        ordering=ordering if shipped(ordering) else CheckedOrdering(ordering),
    )
