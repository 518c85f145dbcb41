"""Argument validation shared by the public entry points.

Each check raises :class:`InvalidArgumentError` naming the argument and the value, in the
shape ``capacity must be >= 0, got capacity=-1``, and returns the value as it is to be
stored: a plain ``int`` for an ``int`` subclass (an ``IntEnum`` member), a plain ``str``
for a ``str`` subclass (a ``StrEnum`` member), so that what the allocator keeps, journals
and snapshots is the number or the text itself, never a host's type. ``bool`` is refused
wherever an ``int`` is expected, because ``True`` as a capacity is always a mistake.

Text the journal stores (ids, names, departments) holds no *control character*: nothing
of Unicode category Cc (U+0000 to U+001F, among them NUL, tab and newline, U+007F and
U+0080 to U+009F) and no surrogate (category Cs, U+D800 to U+DFFF, which a ``str`` holds
only as a lone surrogate: no UTF-8 encoder writes one, so no database stores it). Every
other character is allowed, format characters (category Cf) included: the zero-width
joiner and non-joiner are part of names in many scripts.

:func:`require` is the other kind of check: an invariant of the allocator's own state,
asserted by each part's ``_check()`` and by ``check_invariants``, in one message shape.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, Final, TypeVar

from .errors import InvalidArgumentError

E = TypeVar("E", bound=Enum)

#: The longest id (patient, doctor, slot), in characters.
MAX_ID_LENGTH: Final = 128

# The characters refused in stored text (see the module docstring): Cc, then Cs. Every one
# of them makes ``str.isprintable()`` false, so the common case is that one C-level call.
_UNSTORABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(value: object) -> str:
    """``repr(value)``, cut short: a message names a bad value, it does not dump it."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _plain_str(name: str, value: object) -> str:
    if type(value) is str:
        return value
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{name} must be a str, got {name}={value!r} ({type(value).__name__})"
        )
    return str.__str__(value)  # the characters alone, as an exact str


def _check_storable(name: str, value: str) -> None:
    if value.isprintable():
        return
    found = _UNSTORABLE.search(value)
    if found is not None:
        kind = "a lone surrogate" if found.group() >= "\ud800" else "a control character"
        raise InvalidArgumentError(
            f"{name} must contain no control character or lone surrogate, got "
            f"{name}={shown(value)} ({kind}, U+{ord(found.group()):04X}, at index "
            f"{found.start()})"
        )


def check_id(name: str, value: object) -> str:
    """An id: a non-empty string of at most :data:`MAX_ID_LENGTH` characters, without
    surrounding whitespace, control characters or lone surrogates; returned as a plain
    ``str``. O(len(value))."""
    value = _plain_str(name, value)
    if not value or value != value.strip():
        raise InvalidArgumentError(
            f"{name} must be non-empty without surrounding whitespace, got {name}={shown(value)}"
        )
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(
            f"{name} must be at most {MAX_ID_LENGTH} characters, got {name}={shown(value)} "
            f"({len(value)} characters)"
        )
    _check_storable(name, value)
    return value


def check_str(name: str, value: object) -> str:
    """Stored text (a name, a department): any string, empty allowed, without control
    characters or lone surrogates; returned as a plain ``str``. O(len(value))."""
    value = _plain_str(name, value)
    _check_storable(name, value)
    return value


def check_int(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An ``int`` (not ``bool``), optionally within ``[minimum, maximum]``; returned as a
    plain ``int``. O(1)."""
    if type(value) is not int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidArgumentError(
                f"{name} must be an int, got {name}={value!r} ({type(value).__name__})"
            )
        value = int.__int__(value)  # the number alone, as an exact int
    if minimum is not None and value < minimum:
        raise InvalidArgumentError(f"{name} must be >= {minimum}, got {name}={value!r}")
    if maximum is not None and value > maximum:
        raise InvalidArgumentError(f"{name} must be <= {maximum}, got {name}={value!r}")
    return value


def check_enum(name: str, value: object, enum: type[E]) -> E:
    """A member of ``enum``; its plain value (an ``int`` for a ``Priority``) is refused."""
    if not isinstance(value, enum):
        members = ", ".join(f"{enum.__name__}.{m.name}" for m in enum)
        raise InvalidArgumentError(f"{name} must be one of {members}, got {name}={value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    """A ``bool``."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(
            f"{name} must be a bool, got {name}={value!r} ({type(value).__name__})"
        )
    return value


def check_datetime(name: str, value: object) -> datetime:
    """A ``datetime`` (naive or aware; consistency is checked by the allocator) at least a
    week inside ``datetime``'s range, whose ``tzinfo``, if any, gives a UTC offset."""
    if not isinstance(value, datetime):
        raise InvalidArgumentError(
            f"{name} must be a datetime, got {name}={value!r} ({type(value).__name__})"
        )
    if value.tzinfo is not None:
        try:
            offset = value.utcoffset()
        except Exception as error:
            raise InvalidArgumentError(
                f"{name} has a tzinfo that fails to give a UTC offset ({error!r}), "
                f"got {name}={value!r}"
            ) from None
        if offset is None:
            raise InvalidArgumentError(
                f"{name} has a tzinfo without a UTC offset, got {name}={value!r}"
            )
    if value.year in EDGE_YEARS and not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
        raise InvalidArgumentError(
            f"{name} must be between {EARLIEST} and {LATEST}, got {name}={value!r}"
        )
    return value


def utc(value: datetime) -> datetime:
    """``value`` in real time: in UTC if it is aware (so that durations across a daylight
    saving change come out right), as it is if naive. O(1)."""
    return value if value.tzinfo is None else value.astimezone(timezone.utc)


def require(ok: object, name: str, detail: object) -> None:
    """Raise ``AssertionError`` naming the broken invariant ``name`` unless ``ok``, in the
    shape ``invariant 'seq counter' broken: 7``. ``detail`` (a string, or a value shown by
    its repr) is formatted only then, so a pass over the state costs no repr per token.
    O(1)."""
    if not ok:
        shown = detail if isinstance(detail, str) else repr(detail)
        raise AssertionError(f"invariant {name!r} broken: {shown}")


def attrs_validator(check: Any, **kwargs: Any) -> Any:
    """Adapt a ``check_*`` function to an attrs field validator that also stores the value
    the check returns (a plain ``int`` or ``str`` for a subclass's instance).

    A validator rather than an attrs converter: mypy's attrs plugin refuses a converter
    built by a function, and types an ``__init__`` parameter from a named converter's
    argument (``object`` here), which would let any value through; this way the field
    keeps its own type. O(1) plus the check.
    """

    def validate(instance: object, attribute: Any, value: object) -> None:
        checked = check(attribute.alias, value, **kwargs)  # the name the caller passed
        if checked is not value:
            # A frozen or read-only class refuses an ordinary write; the instance is
            # still being initialised, so this write is part of its __init__.
            object.__setattr__(instance, attribute.name, checked)

    return validate


#: The longest duration a doctor-level setting may take (consultation, delay, grace, aging
#: step): one day. Longer values are always mistakes, and they would overflow ``datetime``
#: arithmetic near the end of its range.
MAX_MINUTES = 24 * 60

#: The range of datetimes the allocator takes: a week inside ``datetime``'s own, so that
#: day-long durations added to them (aging steps, grace, delays) never overflow.
EARLIEST = datetime.min + timedelta(days=7)
LATEST = datetime.max - timedelta(days=7)
#: The only years that hold times out of that range: any other year is in it, which is
#: cheaper to test than the range (``replace`` builds a datetime).
EDGE_YEARS: Final = (EARLIEST.year, LATEST.year)
