"""Whether a state could have been reached: the rules ``from_snapshot``, ``replay`` and
``apply`` share, so that the three accept exactly the same states.

A restored or replayed state is built by the same primitives the live calls use (the desk
places tokens, the slots count them), so its indexes and counters agree by construction;
what the data can still get wrong is what this module checks:

- each token against its status (:func:`status_problem`): the timestamps and the place a
  status implies, the doctor's current consultation, no patient waiting with an
  unavailable doctor or in a closed slot unless a missed call sent them back;
- each slot against its capacity policy: no more non-emergency tokens than the limit plus
  the places granted, unless none of them waits (and could be moved);
- each doctor's current consultation;
- each patient against the duplicate rule.

``from_snapshot`` checks every token as it reads it, then the whole state with the
invariant check. ``replay`` and ``apply`` check, once at the end, what the events
:class:`Touched`; ``replay`` then runs the whole invariant check too. A rule is about one
token, one slot (with its doctor), one doctor or one patient, and the state before the
events already kept every rule (it was restored, replayed or made by live calls, each
checked), so the rules of what the events did not touch still hold: checking the touched
part is the whole check, at O(k) for the k things touched (plus a slot's waiting tokens
where its doctor became unavailable or it closed) instead of O(n log n).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._values import ARRIVED, CALLED, IN_A_SLOT, Priority, Token, TokenStatus
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._allocator import Allocator
    from ._desk import Desk
    from ._slot import Slot


def status_problem(token: Token, holder: Desk, slot: Slot | None) -> str | None:
    """What about ``token`` contradicts its status, or None. O(1)."""
    status = token.status
    if status is TokenStatus.WAITLISTED and token.slot_id is not None:
        return f"has slot_id {token.slot_id!r}: a waitlisted token has no slot"
    if status in IN_A_SLOT and token.slot_id is None:
        return "has no slot_id: it holds a place in a slot"
    if status is TokenStatus.BOOKED and token.checked_in_at is not None:
        return "has a checked_in_at: a booked patient has not arrived"
    if status in ARRIVED and token.checked_in_at is None:
        return "has no checked_in_at: only an arrived patient is checked in or called"
    if status in CALLED and token.called_at is None:
        return "has no called_at: it was never called"
    if (status is TokenStatus.COMPLETED) != (token.completed_at is not None):
        if status is TokenStatus.COMPLETED:
            return "has no completed_at"
        return "has a completed_at: only a completed consultation has one"
    if status is TokenStatus.IN_CONSULTATION and holder.current != token.id:
        return f"doctor {token.doctor_id!r} is consulting {holder.current!r}"
    if holder.ended and (status.waiting or status is TokenStatus.WAITLISTED):
        return f"waits for doctor {token.doctor_id!r}, whose day has ended"
    if status is TokenStatus.BOOKED and token.missed_calls == 0:
        # Leaving or closing moves every waiting token out; only a missed call sends one
        # back (and a patient stepping out of a consultation, who is AWAY, then CHECKED_IN).
        if not holder.available:
            return (
                f"waits in slot {token.slot_id!r} of doctor {token.doctor_id!r}, who is "
                "unavailable, and missed no call"
            )
        if slot is not None and slot.closed:
            return f"waits in slot {token.slot_id!r}, which is closed, and missed no call"
    return None


@attrs.define
class Touched:
    """What journal events changed: the only part of the state whose rules they can break."""

    tokens: set[str] = attrs.field(factory=set)
    slots: set[str] = attrs.field(factory=set)
    doctors: set[str] = attrs.field(factory=set)
    patients: set[str] = attrs.field(factory=set)


def check_touched(alloc: Allocator, touched: Touched) -> None:
    """Raise :class:`InvalidArgumentError` naming the first rule of this module that the
    touched part of ``alloc``'s state breaks. O(k) for the k ids touched, plus the waiting
    tokens of a touched slot that is closed or whose doctor is unavailable."""
    day = alloc._day
    tokens, desks, slots = day.tokens, day.desks, day.slots
    for doctor_id in sorted(touched.doctors):
        desk = desks[doctor_id]
        if desk.current is not None:
            current = tokens.get(desk.current)
            if (
                current is None
                or current.status is not TokenStatus.IN_CONSULTATION
                or current.doctor_id != doctor_id
            ):
                raise InvalidArgumentError(
                    f"doctor {doctor_id!r} is consulting {desk.current!r}, which is not a "
                    "token in consultation with them"
                )
        if desk.ended and (desk.current is not None or len(desk.waitlist)):
            raise InvalidArgumentError(
                f"doctor {doctor_id!r} has ended the day, yet has patients in consultation "
                "or waitlisted"
            )
        touched.slots.update(slot.id for slot in desk.slots)
    for token_id in sorted(touched.tokens):
        token = tokens[token_id]
        slot = None if token.slot_id is None else slots[token.slot_id]
        problem = status_problem(token, desks[token.doctor_id], slot)
        if problem is not None:
            raise InvalidArgumentError(f"token {token_id!r} is {token.status.name} but {problem}")
    capacity = day.policies.capacity
    for slot_id in sorted(touched.slots):
        slot = slots[slot_id]
        desk = desks[slot.doctor_id]
        # The slot's waiting tokens are read only where a rule needs them: a closed slot
        # or an unavailable doctor, or more non-emergency tokens than the limit.
        held = slot._ids
        if slot.closed or not desk.available:
            for token_id in held.values():
                token = tokens[token_id]
                problem = status_problem(token, desk, slot)
                if problem is not None:
                    raise InvalidArgumentError(
                        f"token {token.id!r} is {token.status.name} but {problem}"
                    )
        limit = capacity.limit(slot.capacity) + slot.elastic
        normal = slot.occupancy - slot.emergencies
        if normal > limit and any(
            tokens[token_id].priority is not Priority.EMERGENCY for token_id in held.values()
        ):
            raise InvalidArgumentError(
                f"slot {slot_id!r} holds {normal} non-emergency tokens, past its limit of "
                f"{limit}, and some of them wait"
            )
    for patient_id in sorted(touched.patients):
        problem = duplicate_problem(alloc, patient_id)
        if problem is not None:
            raise InvalidArgumentError(problem)


def duplicate_problem(alloc: Allocator, patient_id: str) -> str | None:
    """How the patient's active tokens break the duplicate rule, or None. O(s log k) for
    the patient's k active tokens in s doctors' or departments' scopes."""
    day = alloc._day
    held = day.active.get(patient_id)
    if held is None or isinstance(held, str):
        return None
    crowded = held.crowded()
    if not crowded:
        return None
    normal = sorted(crowded[min(crowded)])
    rule = day.policies.duplicates
    return (
        f"patient {patient_id!r} holds {normal}, more active tokens than the duplicate rule "
        f"({rule.name}) allows"
    )
