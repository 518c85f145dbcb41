"""When a waiting patient will be called: the learned consultation length and the window.

Two parts, each with one job:

- :class:`Learned`, what a doctor's completed consultations taught today: their count, the
  sum of their lengths and the sum of their squares, in whole microseconds. Integers, so
  the sums are exact and do not depend on the order the consultations were added in: a
  restored snapshot or a replayed journal, which file them in another order, arrive at the
  same sums. The desk keeps one (:meth:`Desk.learn`, an undo primitive).
- :func:`estimate`, the :class:`WaitEstimate` of one waiting token, from its doctor's desk.

**The length per patient.** The learned length is a shrinkage mean: the doctor's
``consult_minutes`` counts as :data:`PRIOR_WEIGHT` consultations of that length, and each
consultation completed today as one, so ``m = (w * consult_minutes + sum) / (w + n)``. With
nothing learned it is ``consult_minutes`` exactly; after a dozen consultations it is mostly
what was observed. The spread is learned the same way: the prior standard deviation is
:data:`PRIOR_SPREAD` times ``consult_minutes`` (counted as ``w`` consultations too), pooled
with the observed squared deviations.

**The likely time.** The doctor's time line is walked slot by slot, in start order: the
doctor is free once the consultation in progress ends (its expected remainder), and each
slot's patients ahead of the token are seen from ``max(that time, slot.start + delay)`` on,
one learned length each (once the doctor has started, a present patient is called as soon
as the doctor is free of those ahead, without waiting for the slot's start). A present
emergency is seen first, whatever its slot. A waitlisted token is seen by the idle-fill
rule in the first gap the time line leaves (before a slot's start), else after every
patient waiting in the doctor's slots.

**The window.** The call comes after ``k`` consultations (those ahead, plus the remainder of
the one in progress); their total is taken as normal, with standard deviation ``sd *
sqrt(k)``. The window is :data:`LOW_Z` standard deviations before the likely time (never
before now) and :data:`HIGH_Z` after, widened by :data:`MARGIN_LOW` and
:data:`MARGIN_HIGH` learned lengths, the allowance for what no length predicts (a patient
ahead who does not come, an emergency who arrives). The constants were tuned once on the
simulation's default day (``docs/_scripts/estimates.py`` shows the figures), never per
seed.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, NamedTuple, final

import attrs

from ._check import utc
from ._slot import ahead_in, waiting_emergencies
from ._values import COMPLETED, EMERGENCY, Token
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._desk import Desk

__all__ = ["WaitEstimate"]

#: The doctor's own ``consult_minutes`` counts as this many consultations.
PRIOR_WEIGHT: Final = 3.0
#: The prior standard deviation of a consultation, as a share of ``consult_minutes``.
PRIOR_SPREAD: Final = 0.6
#: A consultation that runs over its learned length still needs this share of it.
OVERRUN: Final = 0.25
#: Standard deviations of the window before and after the likely time.
LOW_Z: Final = 1.3
HIGH_Z: Final = 1.3
#: Learned lengths added before and after the window.
MARGIN_LOW: Final = 0.5
MARGIN_HIGH: Final = 0.5

#: Whether estimates learn the length (off: the doctor's ``consult_minutes`` throughout).
#: A switch for the comparison in the docs (``docs/_scripts/estimates.py``), not an option.
LEARNING = True
_MINUTE: Final = timedelta(minutes=1)
_MICROS_PER_MINUTE: Final = 60_000_000


class Learned(NamedTuple):
    """What a doctor's completed consultations taught: how many, the sum of their lengths
    and the sum of their squared lengths, in microseconds (exact integers)."""

    consults: int = 0
    micros: int = 0
    squares: int = 0

    def plus(self, token: Token, sign: int = 1) -> Learned:
        """These sums with ``token``'s consultation added (``sign=-1``: taken away); the
        same sums if it has no length to teach. O(1)."""
        micros = consultation_micros(token)
        if micros is None:
            return self
        return Learned(
            self.consults + sign,
            self.micros + sign * micros,
            self.squares + sign * micros * micros,
        )

    def mean(self, prior: float) -> float:
        """The learned length in minutes, from the doctor's ``prior`` length. O(1)."""
        total = self.micros / _MICROS_PER_MINUTE
        return (PRIOR_WEIGHT * prior + total) / (PRIOR_WEIGHT + self.consults)

    def spread(self, prior: float) -> float:
        """The learned standard deviation of a consultation in minutes. O(1)."""
        deviations = 0.0
        if self.consults:
            # The observed sum of squared deviations from their own mean, exact then scaled.
            exact = self.squares * self.consults - self.micros * self.micros
            deviations = exact / self.consults / _MICROS_PER_MINUTE**2
        prior_variance = (PRIOR_SPREAD * prior) ** 2
        return math.sqrt(
            (PRIOR_WEIGHT * prior_variance + deviations) / (PRIOR_WEIGHT + self.consults)
        )


_NOTHING: Final = Learned()


def consultation_micros(token: Token) -> int | None:
    """The length of ``token``'s consultation in microseconds if it teaches one: a
    ``COMPLETED`` token with ``called_at`` and ``completed_at`` (a clock that went back
    counts as 0). None otherwise. O(1)."""
    if token.status is not COMPLETED or token.called_at is None or token.completed_at is None:
        return None
    length = utc(token.completed_at) - utc(token.called_at)
    return max(0, (length.days * 86_400 + length.seconds) * 1_000_000 + length.microseconds)


def learned_from(tokens: Iterable[Token]) -> Learned:
    """The sums learned from every token of ``tokens``. O(n)."""
    learned = Learned()
    for token in tokens:
        learned = learned.plus(token)
    return learned


def _check_estimate(
    instance: WaitEstimate, attribute: attrs.Attribute[datetime], value: datetime
) -> None:
    if not instance.earliest <= instance.likely <= instance.latest:
        raise InvalidArgumentError(
            f"a WaitEstimate needs earliest <= likely <= latest, got earliest="
            f"{instance.earliest!r}, likely={instance.likely!r}, latest={instance.latest!r}"
        )


def _check_position(instance: WaitEstimate, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"position must be an int >= 1, got position={value!r}")


@final
@attrs.frozen(kw_only=True)
class WaitEstimate:
    """When a waiting patient will be called (:meth:`Allocator.estimate`).

    ``position`` is 1 + the number of the doctor's waiting patients whom
    :meth:`Allocator.call_next` would call before this one if all of them and this one were
    present now; ``likely`` the time the call is expected, inside the window ``earliest``
    to ``latest`` (``earliest <= likely <= latest``, else :class:`InvalidArgumentError`);
    ``consult_minutes`` the length per patient used, learned from the doctor's
    consultations completed today.
    """

    position: int = attrs.field(validator=_check_position)
    earliest: datetime
    likely: datetime
    latest: datetime = attrs.field(validator=_check_estimate)
    consult_minutes: float

    @property
    def width(self) -> timedelta:
        """``latest - earliest``. O(1)."""
        return utc(self.latest) - utc(self.earliest)


def estimate(desk: Desk, token: Token, now: datetime) -> WaitEstimate:
    """The :class:`WaitEstimate` of waiting or waitlisted ``token`` of ``desk``'s doctor
    at ``now``. O(log n + s) for the doctor's s slots. Changes nothing."""
    tokens = desk.day.tokens
    learned = desk.learned if LEARNING else _NOTHING
    prior = float(desk.doctor.consult_minutes)
    length = learned.mean(prior)
    step = length * _MINUTE
    delay = desk.delay
    clock = utc(now)
    # When the doctor is free: now, or once the consultation in progress ends.
    free = clock
    consulting = 0
    current = desk.current
    if current is not None:
        called_at = tokens[current].called_at
        if called_at is not None:
            elapsed = (clock - utc(called_at)) / _MINUTE
            free = clock + max(length - elapsed, OVERRUN * length) * _MINUTE
            consulting = 1
    # A pause pushes ``free`` later: its end is not known, so it is taken to last as long
    # again as it has lasted, and at least one learned length.
    paused_at = desk.paused_at
    if paused_at is not None:
        free = max(free, clock + max(clock - utc(paused_at), step))
    # Once the doctor has started (a consultation in progress or completed today), a
    # present patient is called as soon as the doctor is free of those ahead: the engine
    # does not wait for the slot's start to call someone present.
    started = consulting or learned.consults
    slots = desk.slots
    waitlist = desk.waitlist
    if token.slot_id is None:  # waitlisted (or AWAY, sent on to the waitlist)
        before = waitlist.present_before(token)  # present waitlisted patients ranked first
        if token.priority is EMERGENCY:
            ahead = served = before + sum(waiting_emergencies(slot) for slot in slots)
            likely = free + ahead * step
        else:
            ahead = before + sum(slot.waiting for slot in slots)
            served, likely = _from_waitlist(desk, free, step, before)
    else:
        slot = desk.slot_index[token.slot_id]
        starts = desk.starts  # the slots' starts in real time
        index = bisect_left(starts, utc(slot.start))
        within = ahead_in(slot, token, now)
        if token.priority is EMERGENCY:
            # Present emergencies are called first: those of earlier slots, those ranked
            # first in its own, and the waitlist's with a smaller ``seq``.
            before = sum(waiting_emergencies(other) for other in slots[:index])
            ahead = before + within + waitlist.present_before(token)
            likely = free + ahead * step
        else:
            # Present emergencies of the waitlist and of later slots come first.
            first = waitlist.emergencies + sum(waiting_emergencies(s) for s in slots[index + 1 :])
            at = free + first * step
            ahead = first + within
            for i in range(index):
                waiting = slots[i].waiting
                if waiting:
                    at = max(at, starts[i] + delay) + waiting * step
                    ahead += waiting
            gate = at if started and token.checked_in_at is not None else starts[index] + delay
            likely = max(at, gate) + within * step
        served = ahead
    spread = learned.spread(prior) * math.sqrt(served + consulting)
    earliest = max(clock, likely - (LOW_Z * spread + MARGIN_LOW * length) * _MINUTE)
    latest = likely + (HIGH_Z * spread + MARGIN_HIGH * length) * _MINUTE
    zone = now.tzinfo
    if zone is not None:
        earliest = earliest.astimezone(zone)
        likely = likely.astimezone(zone)
        latest = latest.astimezone(zone)
    return WaitEstimate(
        position=ahead + 1,
        earliest=min(earliest, likely),
        likely=likely,
        latest=latest,
        consult_minutes=length,
    )


def _from_waitlist(
    desk: Desk, free: datetime, step: timedelta, before: int
) -> tuple[int, datetime]:
    """Consultations before a waitlisted non-emergency token's call, and its time: the
    ``before`` present waitlisted patients ranked ahead of it, then it, are called by the
    idle-fill rule in the gaps of the doctor's time line (before a slot's start), if the
    rule is on; the rest after every patient waiting in the doctor's slots. O(s)."""
    fill = desk.day.policies.reallocation.fill_idle
    delay = desk.delay
    at = free
    ahead = 0
    left = before  # waitlisted patients still to be called before this one
    for slot, start in zip(desk.slots, desk.starts, strict=True):
        waiting = slot.waiting
        if not waiting:
            continue
        opens = start + delay
        while fill and at < opens:
            if not left:
                return ahead, at
            left -= 1
            ahead += 1
            at += step
        at = max(at, opens) + waiting * step
        ahead += waiting
    return ahead + left, at + left * step
