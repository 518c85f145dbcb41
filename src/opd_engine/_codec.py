"""The codec: datetimes as text, a typed reader of JSON-safe dicts, and tokens and doctors
to and from dicts. Snapshots (:mod:`opd_engine._snapshot`), journals
(:mod:`opd_engine._journal`) and :meth:`Allocator.records` all write and read through here,
so a field is written one way and read one way.

Enums are written as their member names. Datetimes are ISO 8601 strings with their UTC
offset; one whose ``tzinfo`` is a :class:`zoneinfo.ZoneInfo` also names its zone in
brackets, as RFC 9557 writes it: ``2026-11-01T01:30:00-05:00[America/New_York]``. The offset
pins the instant (which of a fall-back night's two 01:30s it is), the name brings the zone
itself back. Any other ``tzinfo`` is written as its fixed offset.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from enum import Enum
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import attrs

from ._check import EARLIEST, LATEST, MAX_ID_LENGTH, check_id
from ._check import shown as _show
from ._queue import MAX_SEQ  # the largest seq a queue key holds
from ._values import Doctor, Priority, Source, Token, TokenStatus
from .errors import InvalidArgumentError

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


class Times:
    """Parses every datetime of one snapshot or journal, each within the allocator's range,
    and refuses naive and aware ones mixed (``aware``: None until the first is read)."""

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


# ============================================================================ reading


class Reader:
    """Typed access to one JSON object, with errors that name the path."""

    def __init__(self, data: object, path: str, times: Times) -> None:
        if not isinstance(data, Mapping):
            raise InvalidArgumentError(f"{path} must be an object, got {_show(data)}")
        self.data = data
        self.path = path
        self.times = times

    def get(self, key: str) -> object:
        """The value, whatever it is."""
        if key not in self.data:
            raise InvalidArgumentError(f"{self.path}.{key} is missing")
        return self.data[key]

    def typed(self, key: str, kind: type[T]) -> T:
        """The value as a ``kind``; an ``int`` or ``str`` subclass's (which a mapping built
        in Python, not read from JSON, may hold) as a plain ``int`` or ``str``."""
        value = self.get(key)
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
        if self.get(key) is None:
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
        return None if self.get(key) is None else self.ident(key)

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
        return None if self.get(key) is None else self.when(key)

    def member(self, key: str, enum: type[E]) -> E:
        value = self.typed(key, str)
        try:
            return enum[value]
        except KeyError:
            names = ", ".join(m.name for m in enum)
            raise InvalidArgumentError(
                f"{self.path}.{key} must be one of {names}, got {_show(value)}"
            ) from None

    def child(self, key: str) -> Reader:
        """The object under ``key``."""
        return Reader(self.get(key), f"{self.path}.{key}", self.times)

    def items(self, key: str) -> list[Reader]:
        value = self.typed(key, list)
        return [Reader(item, f"{self.path}.{key}[{i}]", self.times) for i, item in enumerate(value)]

    def only(self, fields: Collection[str], what: str) -> None:
        """Refuse a key that is not one of ``fields`` (``what`` names the shape)."""
        extra = sorted(str(key) for key in self.data if key not in fields)
        if extra:
            raise InvalidArgumentError(f"{self.path}.{extra[0]} is not a field of {what}")

    def build(self, factory: Callable[..., T], *args: object) -> T:
        """``factory(*args)``, its own validation errors prefixed with this object's path."""
        try:
            return factory(*args)
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"{self.path}: {error}") from None


# ============================================================================ tokens


TOKEN_FIELDS: Final = tuple(field.name for field in attrs.fields(Token))
_PRIORITY_NAMES: Final = {p: p.name for p in Priority}
_SOURCE_NAMES: Final = {s: s.name for s in Source}
_STATUS_NAMES: Final = {s: s.name for s in TokenStatus}


def token_row(token: Token) -> dict[str, Any]:
    """Every field of ``token``, in field order, enums by name, datetimes as they are
    (a row of :meth:`Allocator.records`). A dict display, several times as fast as walking
    the fields with ``getattr``; a test checks its keys against ``attrs.fields(Token)``.
    O(fields)."""
    return {
        "id": token.id,
        "patient_id": token.patient_id,
        "doctor_id": token.doctor_id,
        "slot_id": token.slot_id,
        "priority": _PRIORITY_NAMES[token.priority],
        "source": _SOURCE_NAMES[token.source],
        "seq": token.seq,
        "number": token.number,
        "status": _STATUS_NAMES[token.status],
        "booked_at": token.booked_at,
        "checked_in_at": token.checked_in_at,
        "moves": token.moves,
        "missed_calls": token.missed_calls,
        "called_at": token.called_at,
        "completed_at": token.completed_at,
    }


def _text(value: datetime | None) -> str | None:
    return None if value is None else datetime_to_text(value)


def token_to_dict(token: Token) -> dict[str, Any]:
    """``token`` as a JSON-safe dict: :func:`token_row` with datetimes as text. O(fields)."""
    row = token_row(token)
    row["booked_at"] = datetime_to_text(token.booked_at)
    row["checked_in_at"] = _text(token.checked_in_at)
    row["called_at"] = _text(token.called_at)
    row["completed_at"] = _text(token.completed_at)
    return row


def _seq(item: Reader) -> int:
    seq = item.count("seq", 1)
    if seq > MAX_SEQ:  # queue keys hold seq in 40 bits
        raise InvalidArgumentError(f"{item.path}.seq must be in [1, {MAX_SEQ}], got {seq!r}")
    return seq


def _plain_id(value: object) -> bool:
    """Whether ``value`` is an id :func:`~opd_engine._check.check_id` takes as it is."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isprintable()
        and value == value.strip()
    )


def _plain_count(value: object, minimum: int, maximum: int | None = None) -> bool:
    """Whether ``value`` is an ``int`` (not a ``bool``) in ``[minimum, maximum]``."""
    return type(value) is int and value >= minimum and (maximum is None or value <= maximum)


_PRIORITIES: Final = Priority.__members__
_SOURCES: Final = Source.__members__
_STATUSES: Final = TokenStatus.__members__


def _plain_token(item: Reader) -> Token | None:
    """The token of a plainly written ``item`` (every row a journal or snapshot of this
    library holds), read without the careful path's calls; None for anything else, which
    :func:`token_from_dict` then reads field by field and names what is wrong. The checks
    are the careful path's, and the datetimes are read by the same :class:`Times`, in the
    same order, so an error there is the one the careful path gives."""
    data = item.data
    try:
        token_id, patient_id, doctor_id = data["id"], data["patient_id"], data["doctor_id"]
        slot_id, seq, number = data["slot_id"], data["seq"], data["number"]
        moves, missed_calls = data["moves"], data["missed_calls"]
        names = data["priority"], data["source"], data["status"]
        texts = (
            data["booked_at"], data["checked_in_at"], data["called_at"], data["completed_at"]
        )  # fmt: skip
    except KeyError:
        return None
    if not (
        _plain_id(token_id)
        and _plain_id(patient_id)
        and _plain_id(doctor_id)
        and (slot_id is None or _plain_id(slot_id))
        and _plain_count(seq, 1, MAX_SEQ)
        and _plain_count(number, 1)
        and _plain_count(moves, 0)
        and _plain_count(missed_calls, 0)
        and all(type(name) is str for name in names)
        and type(texts[0]) is str
        and all(text is None or type(text) is str for text in texts[1:])
    ):
        return None
    priority, source, status = (
        _PRIORITIES.get(names[0]), _SOURCES.get(names[1]), _STATUSES.get(names[2])
    )  # fmt: skip
    if priority is None or source is None or status is None:
        return None
    parse, path = item.times.parse, item.path
    return Token(
        id=token_id,
        patient_id=patient_id,
        doctor_id=doctor_id,
        slot_id=slot_id,
        priority=priority,
        source=source,
        seq=seq,
        number=number,
        status=status,
        booked_at=parse(texts[0], f"{path}.booked_at"),
        checked_in_at=None if texts[1] is None else parse(texts[1], f"{path}.checked_in_at"),
        moves=moves,
        missed_calls=missed_calls,
        called_at=None if texts[2] is None else parse(texts[2], f"{path}.called_at"),
        completed_at=None if texts[3] is None else parse(texts[3], f"{path}.completed_at"),
    )


def token_from_dict(item: Reader) -> Token:
    """The token :func:`token_to_dict` wrote, each field checked on its own (a snapshot
    checks them against each other and the state). Keys beyond the fields are the
    caller's to refuse (:meth:`Reader.only`). O(fields).

    A plainly written token (:func:`_plain_token`) is read in one pass; anything else
    field by field, naming the first field that is wrong."""
    plain = _plain_token(item)
    if plain is not None:
        return plain
    return Token(
        id=item.ident("id"),
        patient_id=item.ident("patient_id"),
        doctor_id=item.ident("doctor_id"),
        slot_id=item.maybe_ident("slot_id"),
        priority=item.member("priority", Priority),
        source=item.member("source", Source),
        seq=_seq(item),
        number=item.count("number", 1),
        status=item.member("status", TokenStatus),
        booked_at=item.when("booked_at"),
        checked_in_at=item.maybe_when("checked_in_at"),
        moves=item.count("moves", 0),
        missed_calls=item.count("missed_calls", 0),
        called_at=item.maybe_when("called_at"),
        completed_at=item.maybe_when("completed_at"),
    )


# ============================================================================ doctors


DOCTOR_FIELDS: Final = tuple(field.name for field in attrs.fields(Doctor))


def doctor_to_dict(doctor: Doctor) -> dict[str, Any]:
    """``doctor`` as a JSON-safe dict of its fields, in field order. O(1)."""
    return {
        "id": doctor.id,
        "name": doctor.name,
        "department": doctor.department,
        "consult_minutes": doctor.consult_minutes,
    }


def doctor_from_dict(item: Reader) -> Doctor:
    """The doctor :func:`doctor_to_dict` wrote, validated as ``Doctor(...)`` validates.
    Keys beyond the fields are the caller's to refuse (:meth:`Reader.only`). O(1)."""
    return item.build(
        Doctor,
        item.typed("id", str),
        item.typed("name", str),
        item.typed("department", str),
        item.typed("consult_minutes", int),
    )
