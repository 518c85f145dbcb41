"""Snapshots: an allocator's state to and from plain, JSON-safe, versioned dicts.

The format (version 2)::

    {"format": "opd-engine/snapshot", "version": 2, "seq": <last seq issued>,
     "allocator_version": <Allocator.version>,
     "doctors": [{"id", "name", "department", "consult_minutes", "issued",
                  "delay_minutes", "available", "current"}],
     "slots":   [{"id", "doctor_id", "start", "end", "capacity", "closed", "elastic"}],
     "tokens":  [{<every Token field>}]}

Datetimes are ISO 8601 strings, enums their member names. Policies and the clock are not
part of the state: the caller passes them again on restore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

from ._check import MAX_MINUTES
from ._desk import Desk
from ._slot import Slot
from ._values import Doctor, Priority, Source, Token, TokenStatus
from .errors import InvalidArgumentError, OPDError

if TYPE_CHECKING:
    from ._allocator import Allocator
    from .policies import Policies

FORMAT: Final = "opd-engine/snapshot"
VERSION: Final = 2

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


def dump(alloc: Allocator) -> dict[str, Any]:
    """The allocator's state as a JSON-safe dict. The caller holds the lock."""
    doctors: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    for desk in alloc._desks.values():
        doctor = desk.doctor
        doctors.append(
            {
                "id": doctor.id,
                "name": doctor.name,
                "department": doctor.department,
                "consult_minutes": doctor.consult_minutes,
                "issued": desk.issued,
                "delay_minutes": int(desk.delay / timedelta(minutes=1)),
                "available": desk.available,
                "current": desk.current,
            }
        )
        slots.extend(
            {
                "id": slot.id,
                "doctor_id": slot.doctor_id,
                "start": slot.start.isoformat(),
                "end": slot.end.isoformat(),
                "capacity": slot.capacity,
                "closed": slot._closed,
                "elastic": slot._elastic,
            }
            for slot in desk.slots
        )
    tokens = []
    for token in alloc._day.tokens.values():
        row: dict[str, Any] = {}
        for field in attrs.fields(Token):
            value = getattr(token, field.name)
            if isinstance(value, Enum):
                value = value.name
            elif isinstance(value, datetime):
                value = value.isoformat()
            row[field.name] = value
        tokens.append(row)
    return {
        "format": FORMAT,
        "version": VERSION,
        "seq": alloc._day.seq,
        "allocator_version": alloc._day.version,
        "doctors": doctors,
        "slots": slots,
        "tokens": tokens,
    }


class _Reader:
    """Typed access to one JSON object, with errors that name the path."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"{path} must be an object, got {data!r}")
        self.data = data
        self.path = path

    def _get(self, key: str) -> object:
        if key not in self.data:
            raise InvalidArgumentError(f"{self.path}.{key} is missing")
        return self.data[key]

    def typed(self, key: str, kind: type[T]) -> T:
        value = self._get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgumentError(f"{self.path}.{key} must be {kind.__name__}, got {value!r}")
        return value

    def maybe(self, key: str, kind: type[T]) -> T | None:
        """Like :meth:`typed`, but ``null`` is allowed."""
        if self._get(key) is None:
            return None
        return self.typed(key, kind)

    def when(self, key: str) -> datetime:
        value = self.typed(key, str)
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise InvalidArgumentError(
                f"{self.path}.{key} must be an ISO 8601 datetime, got {value!r}"
            ) from None

    def maybe_when(self, key: str) -> datetime | None:
        """Like :meth:`when`, but ``null`` is allowed."""
        return None if self._get(key) is None else self.when(key)

    def member(self, key: str, enum: type[E]) -> E:
        value = self.typed(key, str)
        try:
            return enum[value]
        except KeyError:
            names = ", ".join(m.name for m in enum)
            raise InvalidArgumentError(
                f"{self.path}.{key} must be one of {names}, got {value!r}"
            ) from None

    def items(self, key: str) -> list[_Reader]:
        value = self.typed(key, list)
        return [_Reader(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(value)]


def load(
    data: object,
    *,
    policies: Policies | None,
    clock: Callable[[], datetime] | None,
    factory: Callable[..., Allocator],
) -> Allocator:
    """Rebuild an allocator from :func:`dump`'s output; raise InvalidArgumentError if bad."""
    root = _Reader(data, "snapshot")
    if root.data.get("format") != FORMAT:
        raise InvalidArgumentError(
            f"snapshot.format must be {FORMAT!r}, got {root.data.get('format')!r}"
        )
    version = root.typed("version", int)
    if version != VERSION:
        raise InvalidArgumentError(
            f"snapshot.version {version} is not supported (this opd-engine reads {VERSION})"
        )
    alloc = factory(policies=policies, clock=clock)
    try:
        _fill(alloc, root)
        alloc.check_invariants()
    except AssertionError as error:
        raise InvalidArgumentError(f"snapshot is inconsistent: {error}") from None
    except InvalidArgumentError:
        raise
    except (OPDError, KeyError, ValueError, TypeError, OverflowError) as error:
        raise InvalidArgumentError(f"snapshot is malformed: {error!r}") from None
    return alloc


def _fill(alloc: Allocator, root: _Reader) -> None:
    day = alloc._day
    day.seq = root.typed("seq", int)
    day.version = root.typed("allocator_version", int)
    for item in root.items("doctors"):
        doctor = Doctor(
            item.typed("id", str),
            item.typed("name", str),
            item.typed("department", str),
            item.typed("consult_minutes", int),
        )
        if doctor.id in alloc._desks:
            raise InvalidArgumentError(f"{item.path}.id {doctor.id!r} appears twice")
        desk = Desk(doctor, day)
        desk.issued = item.typed("issued", int)
        delay = item.typed("delay_minutes", int)
        if not 0 <= delay <= MAX_MINUTES:
            raise InvalidArgumentError(
                f"{item.path}.delay_minutes must be in [0, {MAX_MINUTES}], got {delay!r}"
            )
        desk.delay = timedelta(minutes=delay)
        desk.available = item.typed("available", bool)
        desk.current = item.maybe("current", str)
        alloc._desks[doctor.id] = desk
        day.departments[doctor.id] = doctor.department
    slot_items = root.items("slots")
    for item in slot_items:
        start = item.when("start")
        end = item.when("end")
        slot = Slot(
            item.typed("id", str),
            item.typed("doctor_id", str),
            start,
            end,
            item.typed("capacity", int),
        )
        slot._closed = item.typed("closed", bool)
        elastic = item.typed("elastic", int)
        if elastic < 0:
            raise InvalidArgumentError(f"{item.path}.elastic must be >= 0, got {elastic!r}")
        slot._elastic = elastic
        owner = alloc._desks.get(slot.doctor_id)
        if owner is None:
            raise InvalidArgumentError(f"{item.path}.doctor_id {slot.doctor_id!r} is unknown")
        if slot.id in alloc._slots:
            raise InvalidArgumentError(f"{item.path}.id {slot.id!r} appears twice")
        aware = slot.start.tzinfo is not None
        if alloc._aware is not None and aware != alloc._aware:
            raise InvalidArgumentError(f"{item.path} mixes naive and aware datetimes")
        alloc._aware = aware
        slot._attach(
            day.policies.ordering, day.tokens, day.undo, day.policies.reallocation.max_moves
        )
        owner.slots.append(slot)
        alloc._slots[slot.id] = slot
    for desk in alloc._desks.values():
        ordered = sorted(desk.slots, key=lambda s: s._at)
        desk.slots.clear()
        for i, slot in enumerate(ordered):
            desk.insert(slot, i)
    token_items = root.items("tokens")
    tokens = [_token(item) for item in token_items]
    now = alloc._now() if tokens and alloc._aware is not None else None
    for item, token in zip(token_items, tokens, strict=True):
        if token.id in day.tokens:
            raise InvalidArgumentError(f"{item.path}.id {token.id!r} appears twice")
        holder = alloc._desks.get(token.doctor_id)
        if holder is None:
            raise InvalidArgumentError(f"{item.path}.doctor_id {token.doctor_id!r} is unknown")
        day.tokens[token.id] = token
        if token.status.active:
            day.activate(token)
        if token.status is TokenStatus.WAITLISTED:
            holder.waitlist.add(token)
            continue
        if token.status in (TokenStatus.CANCELLED, TokenStatus.NO_SHOW):
            continue
        place = alloc._slots.get(token.slot_id) if token.slot_id is not None else None
        if place is None or place.doctor_id != token.doctor_id:
            raise InvalidArgumentError(
                f"{item.path}.slot_id {token.slot_id!r} is not a slot of {token.doctor_id!r}"
            )
        if token.status.waiting:
            assert now is not None
            place._add(token, now)
        else:
            place._hold(token)
    for desk in alloc._desks.values():
        for slot in desk.slots:
            desk.sync_present(slot)


def _token(item: _Reader) -> Token:
    return Token(
        id=item.typed("id", str),
        patient_id=item.typed("patient_id", str),
        doctor_id=item.typed("doctor_id", str),
        slot_id=item.maybe("slot_id", str),
        priority=item.member("priority", Priority),
        source=item.member("source", Source),
        seq=item.typed("seq", int),
        number=item.typed("number", int),
        status=item.member("status", TokenStatus),
        booked_at=item.when("booked_at"),
        checked_in_at=item.maybe_when("checked_in_at"),
        moves=item.typed("moves", int),
        missed_calls=item.typed("missed_calls", int),
        called_at=item.maybe_when("called_at"),
        completed_at=item.maybe_when("completed_at"),
    )
