"""check_invariants: every invariant of an allocator's state, through each part's own check.

Like sortedcontainers (``SortedList._check``), each part asserts its own structure in a
``_check()`` of its own: ``Day`` (the tokens' counters, the patient index, the duplicate
rule), ``Held``, ``Desk`` (its slot indexes), ``Waitlist`` and ``Slot`` (their sorted keys
against their tokens). This module composes them and keeps the rules across parts: each
token in exactly one place, and its record agreeing with that place; a slot's counters
against the tokens that hold its places; the desk's present-emergency index, number
counter and what completed consultations taught it, against the tokens. Beyond the
allocator's day and desks and each part's ``_check()``, it reads only public attributes,
and it changes nothing.

It costs O(n log n) in the tokens plus O(d + s log s) for the doctors and slots: each part
is checked once, and everything across parts about a token is checked where it is met, in
one pass over the tokens.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._check import require, utc
from ._estimate import Learned
from ._patients import Held
from ._values import CALLED, Priority, Source, TokenStatus, issuer_of

if TYPE_CHECKING:
    from ._allocator import Allocator
    from ._desk import Desk
    from ._values import Token


def check(alloc: Allocator) -> None:
    """Raise ``AssertionError`` naming the first broken invariant of ``alloc``'s state."""
    day = alloc._day
    desks = alloc._desks
    tokens = day.tokens
    placed: dict[str, str] = {}

    def place(token_id: str, where: str) -> None:
        require(
            token_id not in placed,
            "one place per token",
            f"token {token_id!r} is in {placed.get(token_id)} and in {where}",
        )
        placed[token_id] = where

    for desk in desks.values():
        _check_desk(alloc, desk, tokens, place)

    # One pass over the tokens: their place, the places they hold, the indexes.
    held: Counter[str] = Counter()  # slot id -> called or completed tokens
    emergencies: Counter[str] = Counter()  # slot id -> emergencies holding a place
    sources: Counter[tuple[str, Source]] = Counter()  # non-emergencies holding a place
    taught: dict[str, Learned] = {}  # doctor id -> what its completed consultations taught
    normal_waiting: set[str] = set()  # slots with a non-emergency waiting
    urgent: dict[str, set[str]] = {}  # doctor -> slots with a present emergency waiting
    numbers: dict[str, set[int]] = {}
    away: Counter[str] = Counter()  # doctor id -> AWAY tokens
    for token in tokens.values():
        where = placed.get(token.id)
        status = token.status
        if status.waiting or status is TokenStatus.WAITLISTED:
            if where is None:
                require(False, "no token lost", f"{token!r} is in no queue")
        elif status is TokenStatus.IN_CONSULTATION:
            if where is None:
                require(False, "no token lost", f"{token!r} is not in consultation")
        elif where is not None:
            require(False, "ended tokens hold no place", f"{token!r} in {where}")
        require(
            token.checked_in_at is not None or status is not TokenStatus.CHECKED_IN,
            "checked-in tokens have checked_in_at",
            token,
        )
        require(
            token.checked_in_at is None or status is not TokenStatus.BOOKED,
            "booked tokens have not checked in",
            token,
        )
        require(token.missed_calls >= 0, "missed calls count up", token)
        if status in CALLED:
            owner = desks.get(token.doctor_id)
            slot = None if owner is None else owner.slot_index.get(token.slot_id or "")
            require(slot is not None, "called tokens hold a place in their doctor's slot", token)
            assert slot is not None
            held[slot.id] += 1
            _count_place(token, slot.id, emergencies, sources)
            if status is TokenStatus.COMPLETED:
                taught[slot.doctor_id] = taught.get(slot.doctor_id, Learned()).plus(token)
        elif status.waiting and token.slot_id is not None:
            # In the queue of its slot (met above), which holds a place (an AWAY token may
            # wait on the waitlist instead).
            _count_place(token, token.slot_id, emergencies, sources)
            if token.priority is not Priority.EMERGENCY:
                normal_waiting.add(token.slot_id)
        if (
            status is TokenStatus.CHECKED_IN
            and token.priority is Priority.EMERGENCY
            and token.slot_id is not None
        ):
            urgent.setdefault(token.doctor_id, set()).add(token.slot_id)
        if status is TokenStatus.AWAY:
            away[token.doctor_id] += 1
        issuer = issuer_of(token.id)
        issued = numbers.setdefault(issuer, set())
        require(token.number not in issued, "numbers unique per doctor", issuer)
        issued.add(token.number)

    capacity = alloc.policies.capacity
    for desk in desks.values():
        doctor_id = desk.doctor.id
        with_urgent = sorted((utc(desk.slot_index[i].start), i) for i in urgent.get(doctor_id, ()))
        require(desk.urgent == with_urgent, "present-emergency index", doctor_id)
        require(desk.urgent_ids == {i for _, i in with_urgent}, "present-emergency ids", doctor_id)
        issued = numbers.get(doctor_id, set())
        require(desk.issued >= max(issued, default=0), "number counter", doctor_id)
        require(desk.away == away[doctor_id], "away count", doctor_id)
        require(
            desk.learned == taught.get(doctor_id, Learned()),
            "learned consultation lengths",
            doctor_id,
        )
        for slot in desk.slots:
            slot_id = slot.id
            require(
                slot.occupancy - slot.waiting == held[slot_id],
                "occupancy counts called patients",
                slot_id,
            )
            require(slot.emergencies == emergencies[slot_id], "emergency count", slot_id)
            for source in Source:
                require(
                    slot.held_by(source) == sources[slot_id, source],
                    "per-source count",
                    f"{slot_id} {source}",
                )
            limit = capacity.limit(slot.capacity) + slot.elastic
            normal = slot.occupancy - slot.emergencies
            require(
                normal <= limit or slot_id not in normal_waiting,
                "non-emergency tokens within the capacity limit",
                f"slot {slot_id!r} holds {normal} of {limit}",
            )

    day._check()
    for patient, patients_held in day.active.items():
        if isinstance(patients_held, Held):
            try:
                patients_held._check()
            except AssertionError as error:
                raise AssertionError(
                    f"active-booking index: patient {patient!r}: {error}"
                ) from None


def _count_place(
    token: Token,
    slot_id: str,
    emergencies: Counter[str],
    sources: Counter[tuple[str, Source]],
) -> None:
    """Count ``token`` as holding a place in ``slot_id``. O(1)."""
    if token.priority is Priority.EMERGENCY:
        emergencies[slot_id] += 1
    else:
        sources[slot_id, token.source] += 1


def _check_desk(
    alloc: Allocator, desk: Desk, tokens: dict[str, Token], place: Callable[[str, str], None]
) -> None:
    """The desk's, its waitlist's and its slots' own checks, and where each of their tokens
    is (each token met once)."""
    desk._check()
    doctor_id = desk.doctor.id
    waitlist = desk.waitlist
    waitlist._check(tokens, doctor_id)
    where = f"the waitlist of {doctor_id!r}"
    for token_id in waitlist:
        place(token_id, where)
    if desk.current is not None:
        token = tokens.get(desk.current)
        require(
            token is not None
            and token.status is TokenStatus.IN_CONSULTATION
            and token.doctor_id == doctor_id,
            "current consultation",
            token,
        )
        place(desk.current, f"consultation with {doctor_id!r}")
    if desk.ended:
        require(
            desk.current is None
            and not len(waitlist)
            and all(slot.closed and not slot.waiting for slot in desk.slots),
            "an ended day has every slot closed and nobody waiting",
            doctor_id,
        )
    ordering = alloc.policies.ordering
    for slot in desk.slots:
        is_open = desk.available and not slot.closed
        where = f"slot {slot.id!r}"
        for token_id in slot._check(tokens, ordering):
            token = tokens[token_id]
            require(
                is_open or token.missed_calls > 0 or token.status is not TokenStatus.BOOKED,
                "closed slots hold no booked tokens but those a missed call sent back",
                token,
            )
            place(token_id, where)
