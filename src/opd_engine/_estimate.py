"""When a waiting patient will be called: the learned consultation length and the window.

Two parts, each with one job:

- :class:`Learned`, what a doctor's completed consultations taught today: their count and
  the sum of their lengths, a ``timedelta`` (whole microseconds), so
  the sums are exact and do not depend on the order the consultations were added in: a
  restored snapshot or a replayed journal, which file them in another order, arrive at the
  same sums. The desk keeps one (:meth:`Desk.learn`, an undo primitive).
- :func:`estimate`, the :class:`WaitEstimate` of one waiting token, from its doctor's desk.

**The length per patient.** The learned length is a shrinkage mean: the doctor's
``consult_minutes`` counts as :data:`PRIOR_WEIGHT` consultations of that length, and each
consultation completed today as one, so ``m = (w * consult_minutes + sum) / (w + n)``. With
nothing learned it is ``consult_minutes`` exactly; after a dozen consultations it is mostly
what was observed.

**The likely time.** The doctor's time line is walked slot by slot, in start order: the
doctor is free once the consultation in progress ends (its expected remainder), and each
slot's patients ahead of the token are seen from ``max(that time, slot.start + delay)`` on,
one learned length each (once the doctor has started, a present patient is called as soon
as the doctor is free of those ahead, without waiting for the slot's start). A present
emergency is seen first, whatever its slot. A waitlisted token is seen by the idle-fill
rule in the first gap the time line leaves (before a slot's start), else after every
patient waiting in the doctor's slots.

**The window.** From now (a patient may be called at any moment: a patient ahead who does
not come, a consultation that ends early) to the likely time plus :data:`LATE_MARGIN`
learned lengths. Most wrong estimates are late, not early, and late for reasons no length
predicts (an emergency or a paid patient who arrives later and goes first, a doctor who
leaves and whose patients move): on the simulation's default day a window that widens with
the spread of the consultations ahead covers fewer patients at the same median width than
this one. The constant was chosen once on the default day's seeds 0-29 and checked on
seeds 30-59 (``docs/_scripts/estimates.py`` shows the figures), never per seed.
"""

from __future__ import annotations

from bisect import bisect_left
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
#: A consultation that runs over its learned length still needs this share of it.
OVERRUN: Final = 0.25
#: Learned lengths from the likely time to the end of the window.
LATE_MARGIN: Final = 0.8

#: Whether estimates learn the length (off: the doctor's ``consult_minutes`` throughout).
#: A switch for the comparison in the docs (``docs/_scripts/estimates.py``), not an option.
LEARNING = True
_MINUTE: Final = timedelta(minutes=1)


class Learned(NamedTuple):
    """What a doctor's completed consultations taught: how many, and the sum of their
    lengths (a ``timedelta``: whole microseconds, so the sum is exact and the same in any
    order)."""

    consults: int = 0
    total: timedelta = timedelta(0)

    def plus(self, token: Token, sign: int = 1) -> Learned:
        """These sums with ``token``'s consultation added (``sign=-1``: taken away); the
        same sums if it has no length to teach. O(1)."""
        length = consultation_length(token)
        if length is None:
            return self
        return Learned(self.consults + sign, self.total + sign * length)

    def mean(self, prior: float) -> float:
        """The learned length in minutes, from the doctor's ``prior`` length. O(1)."""
        return (PRIOR_WEIGHT * prior + self.total / _MINUTE) / (PRIOR_WEIGHT + self.consults)


_NOTHING: Final = Learned()
_ZERO: Final = timedelta(0)


def consultation_length(token: Token) -> timedelta | None:
    """The length of ``token``'s consultation if it teaches one: a ``COMPLETED`` token with
    ``called_at`` and ``completed_at`` (a clock that went back counts as 0). None
    otherwise. O(1)."""
    if token.status is not COMPLETED or token.called_at is None or token.completed_at is None:
        return None
    return max(_ZERO, token.completed_at - token.called_at)


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
            ahead = before + sum(waiting_emergencies(slot) for slot in slots)
            likely = free + ahead * step
        else:
            ahead = before + sum(slot.waiting for slot in slots)
            likely = _from_waitlist(desk, free, step, before)
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
    earliest = clock
    latest = likely + LATE_MARGIN * step
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


def _from_waitlist(desk: Desk, free: datetime, step: timedelta, before: int) -> datetime:
    """When a waitlisted non-emergency token is likely called: the ``before`` present
    waitlisted patients ranked ahead of it, then it, are called by the
    idle-fill rule in the gaps of the doctor's time line (before a slot's start), if the
    rule is on; the rest after every patient waiting in the doctor's slots. O(s)."""
    fill = desk.day.policies.reallocation.fill_idle
    delay = desk.delay
    at = free
    left = before  # waitlisted patients still to be called before this one
    for slot, start in zip(desk.slots, desk.starts, strict=True):
        waiting = slot.waiting
        if not waiting:
            continue
        opens = start + delay
        while fill and at < opens:
            if not left:
                return at
            left -= 1
            at += step
        at = max(at, opens) + waiting * step
    return at + left * step
