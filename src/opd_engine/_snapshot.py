"""Snapshots: an allocator's state to and from plain, JSON-safe, versioned dicts.

The format (version 3)::

    {"format": "opd-engine/snapshot", "version": 3, "seq": <last seq issued>,
     "allocator_version": <Allocator.version>,
     "doctors": [{"id", "name", "department", "consult_minutes", "issued",
                  "delay_minutes", "available", "current"}],
     "slots":   [{"id", "doctor_id", "start", "end", "capacity", "closed", "elastic"}],
     "tokens":  [{<every Token field>}]}

Enums are their member names. Datetimes are ISO 8601 strings with their UTC offset; one
whose ``tzinfo`` is a :class:`zoneinfo.ZoneInfo` also names its zone in brackets, as RFC 9557
writes it: ``2026-11-01T01:30:00-05:00[America/New_York]``. The offset pins the instant
(which of a fall-back night's two 01:30s it is), the name brings the zone itself back, so a
restored time is the original's: the same instant in the same zone, that compares, adds up
and reads on a wall clock as the original does across a daylight saving change. Any other
``tzinfo`` is written as its fixed offset. Version 2 (the same without zone names) is still read;
version 1 is not (it has no ``allocator_version``, which a journal continues from).

Restoring refuses, with :class:`InvalidArgumentError` naming the first problem and where it
is, anything a real allocator cannot have produced: each field is checked on its own (types,
ranges, ids), then against the others (a token's id is its issuing doctor's id and its
number, a status agrees with the timestamps and the place it implies, every datetime is
naive or every one aware), and finally the rebuilt allocator's own invariant check runs.
Every check is one pass over the tokens, so a restore stays O(n log n). Policies and the
clock are not part of the state: the caller passes them again on restore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, TypeVar
from zoneinfo import ZoneInfo

import attrs

from ._check import EARLIEST, LATEST, MAX_MINUTES, check_id
from ._check import shown as _show
from ._desk import Desk
from ._possible import IN_A_SLOT, status_problem
from ._slot import MAX_SEQ, Slot
from ._values import Doctor, Priority, Source, Token, TokenStatus
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from ._allocator import Allocator
    from .policies import Policies

FORMAT: Final = "opd-engine/snapshot"
VERSION: Final = 3
#: The versions :func:`load` reads: version 2 is version 3 without zone names.
READABLE: Final = (2, 3)

E = TypeVar("E", bound=Enum)
T = TypeVar("T")


# ============================================================================ datetimes


def datetime_to_text(value: datetime) -> str:
    """ISO 8601 (with the UTC offset if aware), and the zone's name in brackets where the
    ``tzinfo`` is a :class:`~zoneinfo.ZoneInfo` with a key. O(1)."""
    text = value.isoformat()
    zone = value.tzinfo
    if isinstance(zone, ZoneInfo) and zone.key is not None:
        return f"{text}[{zone.key}]"
    return text


def datetime_from_text(text: str, where: str) -> datetime:
    """The datetime :func:`datetime_to_text` wrote; ``where`` names it in errors. O(1).

    A zone name comes back as that :class:`~zoneinfo.ZoneInfo`, at the same wall-clock time
    and on the same side of a fall-back change as the offset says (``fold``); an offset the
    zone does not have at that time is refused.
    """
    base, zone_name = text, None
    if text.endswith("]") and "[" in text:
        base, _, rest = text.partition("[")
        zone_name = rest[:-1]
    try:
        value = datetime.fromisoformat(base)
    except ValueError:
        raise InvalidArgumentError(
            f"{where} must be an ISO 8601 datetime, got {_show(text)}"
        ) from None
    if zone_name is None:
        return value
    offset = value.utcoffset()
    if offset is None:
        raise InvalidArgumentError(
            f"{where} names a time zone but has no UTC offset: {_show(text)}"
        )
    try:
        zone = ZoneInfo(zone_name)
    except (ValueError, LookupError, OSError):
        raise InvalidArgumentError(
            f"{where} names an unknown time zone {zone_name!r}: {_show(text)}"
        ) from None
    wall = value.replace(tzinfo=zone)
    for fold in (0, 1):
        candidate = wall.replace(fold=fold)
        if candidate.utcoffset() == offset:
            return candidate
    raise InvalidArgumentError(
        f"{where} has offset {value:%z}, which {zone_name} does not have at "
        f"{value:%Y-%m-%d %H:%M}: {_show(text)}"
    )


# ============================================================================ dump


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
                "start": datetime_to_text(slot.start),
                "end": datetime_to_text(slot.end),
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
                value = datetime_to_text(value)
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


# ============================================================================ reading


class _Times:
    """Parses every datetime of one snapshot, and refuses naive and aware ones mixed."""

    def __init__(self) -> None:
        self.aware: bool | None = None
        self.first = ""  # where the first datetime was

    def parse(self, text: str, where: str) -> datetime:
        value = datetime_from_text(text, where)
        # The allocator's own range (``add_slot`` and the clock keep to it too), so that
        # the durations it adds to a restored time never overflow.
        if not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
            raise InvalidArgumentError(
                f"{where} must be between {EARLIEST.date().isoformat()} and "
                f"{LATEST.date().isoformat()}, got {_show(text)}"
            )
        aware = value.tzinfo is not None
        if self.aware is None:
            self.aware, self.first = aware, where
        elif aware != self.aware:
            kinds = ("naive", "aware") if self.aware else ("aware", "naive")
            raise InvalidArgumentError(
                f"{where} is {kinds[0]}, but {self.first} is {kinds[1]}: a snapshot's "
                f"datetimes are all naive or all aware, got {_show(text)}"
            )
        return value


class _Reader:
    """Typed access to one JSON object, with errors that name the path."""

    def __init__(self, data: object, path: str, times: _Times) -> None:
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"{path} must be an object, got {_show(data)}")
        self.data = data
        self.path = path
        self.times = times

    def _get(self, key: str) -> object:
        if key not in self.data:
            raise InvalidArgumentError(f"{self.path}.{key} is missing")
        return self.data[key]

    def typed(self, key: str, kind: type[T]) -> T:
        """The value as a ``kind``; an ``int`` or ``str`` subclass's (which a mapping built
        in Python, not read from JSON, may hold) as a plain ``int`` or ``str``."""
        value = self._get(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgumentError(
                f"{self.path}.{key} must be {kind.__name__}, got {_show(value)}"
            )
        if type(value) is not kind:
            if isinstance(value, str):
                return str.__str__(value)  # type: ignore[return-value]
            if isinstance(value, int) and kind is int:
                return int.__int__(value)  # type: ignore[return-value]
        return value

    def maybe(self, key: str, kind: type[T]) -> T | None:
        """Like :meth:`typed`, but ``null`` is allowed."""
        if self._get(key) is None:
            return None
        return self.typed(key, kind)

    def ident(self, key: str) -> str:
        """A non-empty string without surrounding whitespace, as every id is."""
        value = self.typed(key, str)
        try:
            return check_id(key, value)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{self.path}.{error}") from None

    def maybe_ident(self, key: str) -> str | None:
        """Like :meth:`ident`, but ``null`` is allowed."""
        return None if self._get(key) is None else self.ident(key)

    def count(self, key: str, minimum: int, maximum: int | None = None) -> int:
        """An ``int`` in ``[minimum, maximum]``."""
        value = self.typed(key, int)
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise InvalidArgumentError(f"{self.path}.{key} must be {bound}, got {value!r}")
        return value

    def when(self, key: str) -> datetime:
        return self.times.parse(self.typed(key, str), f"{self.path}.{key}")

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
                f"{self.path}.{key} must be one of {names}, got {_show(value)}"
            ) from None

    def items(self, key: str) -> list[_Reader]:
        value = self.typed(key, list)
        return [
            _Reader(item, f"{self.path}.{key}[{i}]", self.times) for i, item in enumerate(value)
        ]

    def build(self, factory: Callable[..., T], *args: object) -> T:
        """``factory(*args)``, its own validation errors prefixed with this object's path."""
        try:
            return factory(*args)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{self.path}: {error}") from None


# ============================================================================ load


def load(
    data: object,
    *,
    policies: Policies | None,
    clock: Callable[[], datetime] | None,
    factory: Callable[..., Allocator],
) -> Allocator:
    """Rebuild an allocator from :func:`dump`'s output; raise InvalidArgumentError if bad."""
    root = _Reader(data, "snapshot", _Times())
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


def _fill(alloc: Allocator, root: _Reader) -> None:
    day = alloc._day
    seq = root.count("seq", 0, MAX_SEQ)
    day.seq = seq
    day.version = root.count("allocator_version", 0)
    desks = alloc._desks
    for item in root.items("doctors"):
        doctor = item.build(
            Doctor,
            item.typed("id", str),
            item.typed("name", str),
            item.typed("department", str),
            item.typed("consult_minutes", int),
        )
        if doctor.id in desks:
            raise InvalidArgumentError(f"{item.path}.id {doctor.id!r} appears twice")
        desk = Desk(doctor, day)
        desk.issued = item.count("issued", 0)
        desk.delay = timedelta(minutes=item.count("delay_minutes", 0, MAX_MINUTES))
        desk.available = item.typed("available", bool)
        desk.current = item.maybe_ident("current")
        desks[doctor.id] = desk
        day.departments[doctor.id] = doctor.department
    slots = alloc._slots
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
        slot._attach(
            day.policies.ordering,
            day.tokens,
            day.undo,
            day.policies.reallocation.max_moves,
            alloc._lock,
        )
        owner.slots.append(slot)
        slots[slot.id] = slot
    for desk in desks.values():
        ordered = sorted(desk.slots, key=lambda s: s._at)
        desk.slots.clear()
        for i, slot in enumerate(ordered):
            desk.insert(slot, i)
    tokens = day.tokens
    seqs: dict[int, str] = {}
    for item in root.items("tokens"):
        token = _token(alloc, item, seq, seqs)
        if token.id in tokens:
            raise InvalidArgumentError(f"{item.path}.id {token.id!r} appears twice")
        tokens[token.id] = token
    alloc._aware = root.times.aware
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
    now = alloc._now() if tokens else None
    for token in tokens.values():
        _place(alloc, token, now)
    for desk in desks.values():
        for slot in desk.slots:
            desk.sync_present(slot)


def _token(alloc: Allocator, item: _Reader, seq_counter: int, seqs: dict[int, str]) -> Token:
    """One token, checked on its own and against the doctors, the slots and the ``seq`` of
    the tokens before it (``seqs``: where each was seen)."""
    path = item.path
    token_id = item.ident("id")
    doctor_id = item.typed("doctor_id", str)
    holder = alloc._desks.get(doctor_id)
    if holder is None:
        raise InvalidArgumentError(f"{path}.doctor_id {doctor_id!r} is unknown")
    slot_id = item.maybe("slot_id", str)
    slot = None
    if slot_id is not None:
        slot = alloc._slots.get(slot_id)
        if slot is None or slot.doctor_id != doctor_id:
            raise InvalidArgumentError(f"{path}.slot_id {slot_id!r} is not a slot of {doctor_id!r}")
    seq = item.count("seq", 1)
    if seq > seq_counter:
        raise InvalidArgumentError(
            f"{path}.seq {seq} is above snapshot.seq {seq_counter}, the last seq issued"
        )
    if seq in seqs:
        raise InvalidArgumentError(f"{path}.seq {seq} is also {seqs[seq]}'s")
    seqs[seq] = path
    number = item.count("number", 1)
    issuer_id, _, _ = token_id.rpartition("-")
    issuer = alloc._desks.get(issuer_id)
    if issuer is None:
        raise InvalidArgumentError(
            f"{path}.id {token_id!r} must start with the id of the doctor who issued it, "
            f"and there is no doctor {issuer_id!r}"
        )
    issued_as = f"{issuer_id}-{number:03d}"
    if token_id != issued_as:
        raise InvalidArgumentError(
            f"{path}.id {token_id!r} does not match its number {number}: doctor "
            f"{issuer_id!r} issued number {number} as {issued_as!r}"
        )
    if number > issuer.issued:
        raise InvalidArgumentError(
            f"{path}.number {number} is above doctor {issuer_id!r}'s issued count "
            f"{issuer.issued}: the next token it issues would take this one's id"
        )
    token = Token(
        id=token_id,
        patient_id=item.ident("patient_id"),
        doctor_id=doctor_id,
        slot_id=slot_id,
        priority=item.member("priority", Priority),
        source=item.member("source", Source),
        seq=seq,
        number=number,
        status=item.member("status", TokenStatus),
        booked_at=item.when("booked_at"),
        checked_in_at=item.maybe_when("checked_in_at"),
        moves=item.count("moves", 0),
        missed_calls=item.count("missed_calls", 0),
        called_at=item.maybe_when("called_at"),
        completed_at=item.maybe_when("completed_at"),
    )
    problem = status_problem(token, holder, slot)
    if problem is not None:
        raise InvalidArgumentError(f"{path} is {token.status.name} but {problem}")
    return token


def _place(alloc: Allocator, token: Token, now: datetime | None) -> None:
    """File ``token`` where its status says it is."""
    desk = alloc._desks[token.doctor_id]
    status = token.status
    if status.active:
        alloc._day.activate(token)
    if status is TokenStatus.WAITLISTED:
        desk.waitlist.add(token)
    elif status.waiting:
        assert now is not None
        alloc._slots[token.slot_id]._add(token, now)  # type: ignore[index]
    elif status in IN_A_SLOT:
        alloc._slots[token.slot_id]._hold(token)  # type: ignore[index]
