"""check_invariants: every invariant of an allocator's state, in one pass over the tokens.

Like sortedcontainers' ``_check``, it reads the private state directly and changes nothing.
It costs O(n log n) in the tokens plus O(d + s) for the doctors and slots: each slot and
each desk is visited once, and everything about a token is checked where it is met.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from itertools import pairwise
from typing import TYPE_CHECKING

from ._desk import Desk
from ._slot import SEQ_BITS, SEQ_MASK, Slot
from ._values import Priority, Source, TokenStatus, issuer_of
from .policies import Duplicates

if TYPE_CHECKING:
    from ._allocator import Allocator


_HELD = (TokenStatus.IN_CONSULTATION, TokenStatus.COMPLETED)


def _require(ok: object, name: str, detail: object) -> None:
    """Raise naming the invariant unless ``ok``; ``detail`` (a string, or a value shown by
    its repr) is formatted only then, so the pass costs no repr per token."""
    if not ok:
        shown = detail if isinstance(detail, str) else repr(detail)
        raise AssertionError(f"invariant {name!r} broken: {shown}")


def _sorted(items: list[object]) -> bool:
    return all(a < b for a, b in pairwise(items))  # type: ignore[operator]


def check(alloc: Allocator) -> None:
    """Raise ``AssertionError`` naming the first broken invariant of ``alloc``'s state."""
    day = alloc._day
    tokens = day.tokens
    slots = alloc._slots
    placed: dict[str, str] = {}

    def place(token_id: str, where: str) -> None:
        _require(
            token_id not in placed,
            "one place per token",
            f"token {token_id!r} is in {placed.get(token_id)} and in {where}",
        )
        placed[token_id] = where

    for desk in alloc._desks.values():
        _check_desk(alloc, desk, place)

    # One pass over the tokens: their place, their slot's counters, the indexes.
    held: Counter[str] = Counter()  # slot id -> called or completed tokens
    held_emergencies: Counter[str] = Counter()
    held_sources: Counter[tuple[str, Source]] = Counter()
    urgent: dict[str, set[str]] = {}  # doctor -> slots with a present emergency waiting
    numbers: dict[str, set[int]] = {}
    seqs: set[int] = set()
    active: dict[str, list[str]] = {}
    for token in tokens.values():
        where = placed.get(token.id)
        status = token.status
        if status.waiting or status is TokenStatus.WAITLISTED:
            if where is None:
                _require(False, "no token lost", f"{token!r} is in no queue")
        elif status is TokenStatus.IN_CONSULTATION:
            if where is None:
                _require(False, "no token lost", f"{token!r} is not in consultation")
        elif where is not None:
            _require(False, "ended tokens hold no place", f"{token!r} in {where}")
        _require(
            token.checked_in_at is not None or status is not TokenStatus.CHECKED_IN,
            "checked-in tokens have checked_in_at",
            token,
        )
        _require(
            token.checked_in_at is None or status is not TokenStatus.BOOKED,
            "booked tokens have not checked in",
            token,
        )
        _require(token.missed_calls >= 0, "missed calls count up", token)
        if status in _HELD:
            slot = slots.get(token.slot_id) if token.slot_id is not None else None
            _require(
                slot is not None and slot.doctor_id == token.doctor_id,
                "called tokens hold a place in their doctor's slot",
                token,
            )
            assert slot is not None
            held[slot.id] += 1
            if token.priority is Priority.EMERGENCY:
                held_emergencies[slot.id] += 1
            else:
                held_sources[slot.id, token.source] += 1
        if (
            status is TokenStatus.CHECKED_IN
            and token.priority is Priority.EMERGENCY
            and token.slot_id is not None
        ):
            urgent.setdefault(token.doctor_id, set()).add(token.slot_id)
        issuer = issuer_of(token.id)
        issued = numbers.setdefault(issuer, set())
        _require(token.number not in issued, "numbers unique per doctor", issuer)
        issued.add(token.number)
        _require(token.seq not in seqs, "seq unique", f"two tokens share seq {token.seq}")
        seqs.add(token.seq)
        if status.active:
            active.setdefault(token.patient_id, []).append(token.id)

    for desk in alloc._desks.values():
        doctor_id = desk.doctor.id
        with_urgent = sorted((slots[i]._at, i) for i in urgent.get(doctor_id, ()))
        _require(desk.urgent == with_urgent, "present-emergency index", doctor_id)
        _require(desk.urgent_ids == {i for _, i in with_urgent}, "present-emergency ids", doctor_id)
        issued = numbers.get(doctor_id, set())
        _require(desk.issued >= max(issued, default=0), "number counter", doctor_id)
        for slot in desk.slots:
            _check_counts(alloc, slot, held, held_emergencies, held_sources)
    _require(day.seq >= max(seqs, default=0), "seq counter", str(day.seq))
    _check_active(alloc, active)


def _check_desk(alloc: Allocator, desk: Desk, place: Callable[[str, str], None]) -> None:
    """The desk's own structures, and its slots' queues (each token met once)."""
    tokens = alloc._day.tokens
    doctor_id = desk.doctor.id
    _require(
        alloc._day.departments.get(doctor_id) == desk.doctor.department,
        "department index",
        doctor_id,
    )
    starts = [slot._at for slot in desk.slots]
    _require(starts == sorted(starts), "slots in start order", doctor_id)
    _require(desk.starts == starts, "slot starts index", doctor_id)
    _require(desk.ends == [slot._until for slot in desk.slots], "slot ends index", doctor_id)
    _require(desk.slot_index == {slot.id: slot for slot in desk.slots}, "slot id index", doctor_id)
    for a, b in zip(desk.slots, desk.slots[1:], strict=False):
        _require(a._until <= b._at, "slots never overlap", f"{a.id!r} and {b.id!r}")
    waitlist = desk.waitlist
    by_class: dict[tuple[Source, Priority], list[int]] = {}
    for group_class, group in waitlist._classes.items():
        listed = list(group)
        _require(len(listed) > 0, "no empty waitlist classes", doctor_id)
        _require(_sorted(listed), "waitlist classes sorted", doctor_id)  # type: ignore[arg-type]
        by_class[group_class] = listed
        _require(waitlist._heads.get(group_class) == listed[0], "waitlist class heads", doctor_id)
    _require(waitlist._heads.keys() == by_class.keys(), "waitlist class heads", doctor_id)
    keys = sorted(key for listed in by_class.values() for key in listed)
    _require(
        {key & SEQ_MASK for key in keys} == waitlist._ids.keys()
        and len(keys) == len(waitlist._ids),
        "waitlist id index",
        doctor_id,
    )
    present = []
    for key in keys:
        priority, seq = key >> SEQ_BITS, key & SEQ_MASK
        token_id = waitlist._ids[seq]
        token = tokens.get(token_id)
        _require(token is not None, "waitlist holds issued tokens", token_id)
        assert token is not None
        _require(
            (token.priority, token.seq, token.doctor_id, token.status, token.slot_id)
            == (priority, seq, doctor_id, TokenStatus.WAITLISTED, None),
            "waitlist entries match their tokens",
            token,
        )
        _require(
            by_class.get((token.source, token.priority), [key]).count(key) == 1,
            "waitlist class index",
            token,
        )
        if token.checked_in_at is not None:
            present.append(key)
        place(token_id, f"the waitlist of {doctor_id!r}")
    _require(list(waitlist._present) == present, "present-waitlist index", doctor_id)
    _require(
        waitlist.emergencies == sum(1 for key in present if key >> SEQ_BITS == Priority.EMERGENCY),
        "present emergencies on the waitlist counted",
        doctor_id,
    )
    if desk.current is not None:
        token = tokens.get(desk.current)
        _require(
            token is not None
            and token.status is TokenStatus.IN_CONSULTATION
            and token.doctor_id == doctor_id,
            "current consultation",
            token,
        )
        place(desk.current, f"consultation with {doctor_id!r}")
    with_present = sorted((s._at, s.id) for s in desk.slots if s.present)
    _require(desk.present == with_present, "present-slot index", doctor_id)
    _require(desk.present_ids == {i for _, i in with_present}, "present-slot ids", doctor_id)
    for slot in desk.slots:
        _check_queue(alloc, desk, slot, place)


def _check_queue(
    alloc: Allocator, desk: Desk, slot: Slot, place: Callable[[str, str], None]
) -> None:
    tokens = alloc._day.tokens
    ordering = alloc.policies.ordering
    absent = list(slot._absent)
    _require(_sorted(absent), "booked list sorted", slot.id)  # type: ignore[arg-type]
    arrived = list(slot._arrived)
    _require(_sorted(arrived), "checked-in list sorted", slot.id)  # type: ignore[arg-type]
    _require(
        len(absent) + len(arrived) == len(slot._ids)
        and {key & SEQ_MASK for key in absent + arrived} == slot._ids.keys(),
        "queue id index",
        slot.id,
    )
    for keys, protected_keys, here in (
        (absent, slot._protected_absent, False),
        (arrived, slot._protected_arrived, True),
    ):
        protected = []
        for key in keys:
            priority, seq = key >> SEQ_BITS, key & SEQ_MASK
            token_id = slot._ids[seq]
            token = tokens.get(token_id)
            _require(token is not None, "queue holds issued tokens", token_id)
            assert token is not None
            _require(
                (token.priority, token.seq, token.slot_id, token.doctor_id)
                == (priority, seq, slot.id, slot.doctor_id),
                "queue entries match their tokens",
                token,
            )
            _require(token.status.waiting, "queue holds waiting tokens", token)
            _require(
                (token.status is TokenStatus.CHECKED_IN) == here == (token_id in slot._filed),
                "checked-in tokens are filed for calling",
                token,
            )
            if token.moves >= slot._protect_at and token.priority is not Priority.EMERGENCY:
                protected.append(key)
            _require(
                (desk.available and not slot._closed) or token.missed_calls > 0,
                "closed slots hold no waiting tokens but those a missed call sent back",
                token,
            )
            place(token_id, f"slot {slot.id!r}")
        _require(list(protected_keys) == protected, "protected-token index", slot.id)
    _require(len(slot._filed) == len(arrived), "filed tokens wait", slot.id)
    filed_count = 0
    if slot._seq_keyed:  # the checked-in list is the ordering index, with the aged apart
        _require(not slot._levels, "no level lists under an ordering keyed by seq", slot.id)
        aged: list[int] = []
        aged_keys: list[int] = []
        for key in arrived:
            token = tokens[slot._ids[key & SEQ_MASK]]
            record = slot._filed.get(token.id)
            _require(record is not None and record[1] == key, "ordering index matches", token)
            assert record is not None
            if record[0] != key >> SEQ_BITS:
                aged.append(record[0] << SEQ_BITS | token.seq)
                aged_keys.append(key)
            filed_count += 1
        _require(list(slot._aged) == sorted(aged), "aged-token index", slot.id)
        _require(list(slot._aged_keys) == aged_keys, "aged-token keys", slot.id)
    else:
        _require(not slot._aged and not slot._aged_keys, "no aged index", slot.id)
    for level, entries in slot._levels.items():
        _require(len(entries) > 0, "no empty levels", slot.id)
        listed = list(entries)
        _require(_sorted(listed), "levels sorted by key", slot.id)
        for entry in listed:
            found = slot._ids.get(entry[1])
            _require(found is not None, "ordering index holds waiting tokens", entry)
            assert found is not None
            token = tokens[found]
            record = slot._filed.get(found)
            _require(
                record is not None
                and record[:2] == (level, entry)
                and (ordering.key(token), token.seq) == entry,
                "ordering index matches its tokens",
                token,
            )
            filed_count += 1
    _require(filed_count == len(slot._filed), "ordering index complete", slot.id)
    pending = {c for _, _, c in slot._filed.values() if c is not None}
    _require(pending <= set(slot._changes), "level changes scheduled", slot.id)
    heap = slot._changes
    _require(
        all(heap[(i - 1) // 2] <= heap[i] for i in range(1, len(heap))),
        "level changes form a heap",
        slot.id,
    )
    _require(slot._elastic >= 0, "elastic places count up", slot.id)


def _check_counts(
    alloc: Allocator,
    slot: Slot,
    held: Counter[str],
    held_emergencies: Counter[str],
    held_sources: Counter[tuple[str, Source]],
) -> None:
    """The slot's counters against the tokens met in the pass, and the capacity limit."""
    tokens = alloc._day.tokens
    waiting = [tokens[token_id] for token_id in slot._ids.values()]
    _require(slot._done == held[slot.id], "occupancy counts called patients", slot.id)
    emergencies = held_emergencies[slot.id] + sum(
        1 for t in waiting if t.priority is Priority.EMERGENCY
    )
    _require(slot.emergencies == emergencies, "emergency count", slot.id)
    for source in Source:
        count = held_sources[slot.id, source] + sum(
            1 for t in waiting if t.source is source and t.priority is not Priority.EMERGENCY
        )
        _require(slot.held_by(source) == count, "per-source count", f"{slot.id} {source}")
    normal_waiting = any(t.priority is not Priority.EMERGENCY for t in waiting)
    limit = alloc.policies.capacity.limit(slot.capacity) + slot._elastic
    normal = slot.occupancy - emergencies
    _require(
        normal <= limit or not normal_waiting,
        "non-emergency tokens within the capacity limit",
        f"slot {slot.id!r} holds {normal} of {limit}",
    )


def _check_active(alloc: Allocator, active: dict[str, list[str]]) -> None:
    """The patient index against the active tokens, and the duplicate rule."""
    day = alloc._day
    tokens = day.tokens
    indexed = {
        patient: sorted([held] if isinstance(held, str) else held.ids())
        for patient, held in day.active.items()
    }
    _require(
        {k: sorted(v) for k, v in active.items()} == indexed,
        "active-booking index",
        "index differs from the tokens",
    )
    for patient, held in day.active.items():
        if isinstance(held, str):
            continue
        try:
            held._check()
        except AssertionError as error:
            raise AssertionError(f"active-booking index: patient {patient!r}: {error}") from None
        for token_id in held.ids():
            token = tokens[token_id]
            _require(
                held.filed(token_id) == day.where_filed(token),
                "active-booking index",
                f"token {token_id!r} filed under a stale doctor or level",
            )
    rule = alloc.policies.duplicates
    for patient, ids in active.items():
        normal = [tokens[i] for i in ids if tokens[i].priority is not Priority.EMERGENCY]
        if len(normal) < 2:
            continue
        if rule is Duplicates.PER_DOCTOR:
            groups = Counter(t.doctor_id for t in normal)
        elif rule is Duplicates.PER_DEPARTMENT:
            groups = Counter(day.departments[t.doctor_id] for t in normal)
        else:
            groups = Counter("" for _ in normal)
        _require(
            max(groups.values()) <= 1,
            "one active token per patient under the duplicate rule",
            f"patient {patient!r} holds {[t.id for t in normal]} ({rule.name})",
        )
