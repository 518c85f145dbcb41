"""Snapshots: an allocator's state to and from plain, JSON-safe, versioned dicts.

The format (version 3)::

    {"format": "opd-engine/snapshot", "version": 3, "seq": <last seq issued>,
     "allocator_version": <Allocator.version>,
     "doctors": [{"id", "name", "department", "consult_minutes", "issued",
                  "delay_minutes", "available", "current",
                  "paused_at" (only while paused), "ended" (only when true)}],
     "slots":   [{"id", "doctor_id", "start", "end", "capacity", "closed", "elastic"}],
     "tokens":  [{<every Token field>}],
     "notified": [<token ids sent a due notice, sorted>] (only when there is one)}

Enums are their member names. Datetimes are ISO 8601 strings with their UTC offset; one
whose ``tzinfo`` is a :class:`zoneinfo.ZoneInfo` also names its zone in brackets, as RFC 9557
writes it: ``2026-11-01T01:30:00-05:00[America/New_York]``. The offset pins the instant
(which of a fall-back night's two 01:30s it is), the name brings the zone itself back, so a
restored time is the original's: the same instant in the same zone, that compares, adds up
and reads on a wall clock as the original does across a daylight saving change. Any other
``tzinfo`` is written as its fixed offset. Datetimes, tokens and doctors are written and read
by :mod:`opd_engine._codec`, as the journal writes and reads them. Version 2 (the same without
zone names) is still read; version 1 is not (it has no ``allocator_version``, which a journal
continues from).

Restoring refuses, with :class:`InvalidArgumentError` naming the first problem and where it
is, anything a real allocator cannot have produced: each field is checked on its own (types,
ranges, ids), then against the others (a token's id is its issuing doctor's id and its
number, a status agrees with the timestamps and the place it implies, every datetime is
naive or every one aware), and finally the rebuilt allocator's own invariant check runs.
Every check is one pass over the tokens, so a restore stays O(n log n). Policies and the
clock are not part of the state: the caller passes them again on restore.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from . import _build
from ._check import MAX_MINUTES
from ._check import shown as _show
from ._codec import (
    Reader,
    Times,
    datetime_to_text,
    doctor_from_dict,
    doctor_to_dict,
    token_from_dict,
    token_to_dict,
)
from ._possible import status_problem
from ._queue import MAX_SEQ
from ._slot import Slot
from ._values import Token, TokenStatus, issuer_of, token_id
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._allocator import Allocator
    from ._ledger import Day
    from .policies import Policies

FORMAT: Final = "opd-engine/snapshot"
VERSION: Final = 3
#: The versions :func:`load` reads: version 2 is version 3 without zone names.
READABLE: Final = (2, 3)

# ============================================================================ dump


def dump(alloc: Allocator) -> dict[str, Any]:
    """The allocator's state as a JSON-safe dict. The caller holds the lock."""
    doctors: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    day = alloc._day
    for desk in day.desks.values():
        doctor = desk.doctor
        doctors.append(
            {
                **doctor_to_dict(doctor),
                "issued": desk.issued,
                "delay_minutes": int(desk.delay / timedelta(minutes=1)),
                "available": desk.available,
                "current": desk.current,
                # Written only when set, so that a day without them is written as before.
                **(
                    {}
                    if desk.paused_at is None
                    else {"paused_at": datetime_to_text(desk.paused_at)}
                ),
                **({"ended": True} if desk.ended else {}),
            }
        )
        slots.extend(
            {
                "id": slot.id,
                "doctor_id": slot.doctor_id,
                "start": datetime_to_text(slot.start),
                "end": datetime_to_text(slot.end),
                "capacity": slot.capacity,
                "closed": slot.closed,
                "elastic": slot.elastic,
            }
            for slot in desk.slots
        )
    tokens = [token_to_dict(token) for token in day.tokens.values()]
    return {
        "format": FORMAT,
        "version": VERSION,
        "seq": day.seq,
        "allocator_version": day.version,
        "doctors": doctors,
        "slots": slots,
        "tokens": tokens,
        # Written only when there is one, so that a day without them is written as before;
        # sorted, so that the same notices are written the same whatever their order.
        **({"notified": sorted(day.notified)} if day.notified else {}),
    }


# ============================================================================ load


def load(
    data: object,
    *,
    policies: Policies | None,
    clock: Callable[[], datetime] | None,
    factory: Callable[..., Allocator],
) -> Allocator:
    """Rebuild an allocator from :func:`dump`'s output; raise InvalidArgumentError if bad."""
    root = Reader(data, "snapshot", Times())
    if root.data.get("format") != FORMAT:
        raise InvalidArgumentError(
            f"snapshot.format must be {FORMAT!r}, got {_show(root.data.get('format'))}"
        )
    version = root.typed("version", int)
    if version not in READABLE:
        readable = " and ".join(map(str, READABLE))
        raise InvalidArgumentError(
            f"snapshot.version {version} is not supported (this opd-engine reads {readable})"
        )
    alloc = factory(policies=policies, clock=clock)
    # Every problem with the data is refused by name before anything is built, so whatever
    # else is raised from here on (a user's policy failing, say) is passed on as it is.
    _fill(alloc, root)
    try:
        alloc.check_invariants()
    except AssertionError as error:
        raise InvalidArgumentError(f"snapshot is inconsistent: {error}") from None
    return alloc


def _fill(alloc: Allocator, root: Reader) -> None:
    day = alloc._day
    seq = root.count("seq", 0, MAX_SEQ)
    day.seq = seq
    day.version = root.count("allocator_version", 0)
    desks = day.desks
    for item in root.items("doctors"):
        doctor = doctor_from_dict(item)
        if doctor.id in desks:
            raise InvalidArgumentError(f"{item.path}.id {doctor.id!r} appears twice")
        desk = _build.add_doctor(day, doctor)
        desk.issued = item.count("issued", 0)
        desk.delay = timedelta(minutes=item.count("delay_minutes", 0, MAX_MINUTES))
        desk.available = item.typed("available", bool)
        desk.current = item.maybe_ident("current")
        desk.paused_at = item.maybe_when("paused_at") if "paused_at" in item.data else None
        desk.ended = "ended" in item.data and item.typed("ended", bool)
    slots = day.slots
    first: Slot | None = None
    for item in root.items("slots"):
        slot = item.build(
            Slot,
            item.typed("id", str),
            item.typed("doctor_id", str),
            item.when("start"),
            item.when("end"),
            item.typed("capacity", int),
        )
        slot._closed = item.typed("closed", bool)
        slot._elastic = item.count("elastic", 0)
        owner = desks.get(slot.doctor_id)
        if owner is None:
            raise InvalidArgumentError(f"{item.path}.doctor_id {slot.doctor_id!r} is unknown")
        if slot.id in slots:
            raise InvalidArgumentError(f"{item.path}.id {slot.id!r} appears twice")
        if first is None:
            first = slot
        elif slot.start.date() != first.start.date():
            raise InvalidArgumentError(
                f"{item.path}.start must be on {first.start.date()} like the other slots (an "
                f"allocator is one OPD day), got {slot.start.isoformat()!r}"
            )
        try:  # the checks every added slot passes (add_slot's, a journal's SlotAdded)
            index = _build.fit(day, slot, owner)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{item.path}: {error}") from None
        _build.attach(day, slot, owner, index)
    tokens = day.tokens
    seqs: dict[int, str] = {}
    for item in root.items("tokens"):
        token = _token(day, item, seq, seqs)
        if token.id in tokens:
            raise InvalidArgumentError(f"{item.path}.id {token.id!r} appears twice")
        tokens[token.id] = token
    day.aware = root.times.aware
    if "notified" in root.data:
        for i, token_id in enumerate(root.typed("notified", list)):
            where = f"{root.path}.notified[{i}]"
            if not isinstance(token_id, str) or token_id not in tokens:
                raise InvalidArgumentError(
                    f"{where} must be the id of a token, got {_show(token_id)}"
                )
            if token_id in day.notified:
                raise InvalidArgumentError(f"{where} {token_id!r} appears twice")
            day.notified.add(str.__str__(token_id))
    for i, desk in enumerate(desks.values()):
        current = desk.current
        if current is None:
            continue
        called = tokens.get(current)
        if (
            called is None
            or called.status is not TokenStatus.IN_CONSULTATION
            or called.doctor_id != desk.doctor.id
        ):
            what = (
                "no token" if called is None else f"{called.status.name} with {called.doctor_id!r}"
            )
            raise InvalidArgumentError(
                f"snapshot.doctors[{i}].current {current!r} must be a token IN_CONSULTATION "
                f"with {desk.doctor.id!r}, got {what}"
            )
    if tokens:
        now = alloc._now()
        for token in tokens.values():
            _build.file_token(day, token, now)  # the desks' present indexes follow


def _token(day: Day, item: Reader, seq_counter: int, seqs: dict[int, str]) -> Token:
    """One token, checked on its own (:func:`~opd_engine._codec.token_from_dict`), then
    against the doctors, the slots and the ``seq`` of the tokens before it (``seqs``: where
    each was seen)."""
    token = token_from_dict(item)
    path = item.path
    doctor_id = token.doctor_id
    holder = day.desks.get(doctor_id)
    if holder is None:
        raise InvalidArgumentError(f"{path}.doctor_id {doctor_id!r} is unknown")
    slot_id = token.slot_id
    slot = None
    if slot_id is not None:
        slot = day.slots.get(slot_id)
        if slot is None or slot.doctor_id != doctor_id:
            raise InvalidArgumentError(f"{path}.slot_id {slot_id!r} is not a slot of {doctor_id!r}")
    seq = token.seq
    if seq > seq_counter:
        raise InvalidArgumentError(
            f"{path}.seq {seq} is above snapshot.seq {seq_counter}, the last seq issued"
        )
    if seq in seqs:
        raise InvalidArgumentError(f"{path}.seq {seq} is also {seqs[seq]}'s")
    seqs[seq] = path
    number = token.number
    issuer_id = issuer_of(token.id)
    issuer = day.desks.get(issuer_id)
    if issuer is None:
        raise InvalidArgumentError(
            f"{path}.id {token.id!r} must start with the id of the doctor who issued it, "
            f"and there is no doctor {issuer_id!r}"
        )
    issued_as = token_id(issuer_id, number)
    if token.id != issued_as:
        raise InvalidArgumentError(
            f"{path}.id {token.id!r} does not match its number {number}: doctor "
            f"{issuer_id!r} issued number {number} as {issued_as!r}"
        )
    if number > issuer.issued:
        raise InvalidArgumentError(
            f"{path}.number {number} is above doctor {issuer_id!r}'s issued count "
            f"{issuer.issued}: the next token it issues would take this one's id"
        )
    problem = status_problem(token, holder, slot)
    if problem is not None:
        raise InvalidArgumentError(f"{path} is {token.status.name} but {problem}")
    return token
