"""Argument validation shared by the public entry points.

Each check raises :class:`InvalidArgumentError` naming the argument and the value, in the
shape ``capacity must be >= 0, got capacity=-1``. ``bool`` is refused wherever an ``int``
is expected, because ``True`` as a capacity is always a mistake.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any, TypeVar

from .errors import InvalidArgumentError

E = TypeVar("E", bound=Enum)


def check_id(name: str, value: object) -> str:
    """An id: a non-empty string without surrounding whitespace."""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{name} must be a str, got {name}={value!r} ({type(value).__name__})"
        )
    if not value or value != value.strip():
        raise InvalidArgumentError(
            f"{name} must be non-empty without surrounding whitespace, got {name}={value!r}"
        )
    return value


def check_str(name: str, value: object) -> str:
    """Any string, empty allowed."""
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{name} must be a str, got {name}={value!r} ({type(value).__name__})"
        )
    return value


def check_int(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An ``int`` (not ``bool``), optionally within ``[minimum, maximum]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgumentError(
            f"{name} must be an int, got {name}={value!r} ({type(value).__name__})"
        )
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
    if not EARLIEST <= value.replace(tzinfo=None) <= LATEST:
        raise InvalidArgumentError(
            f"{name} must be between {EARLIEST} and {LATEST}, got {name}={value!r}"
        )
    return value


def utc(value: datetime) -> datetime:
    """``value`` in real time: in UTC if it is aware (so that durations across a daylight
    saving change come out right), as it is if naive. O(1)."""
    return value if value.tzinfo is None else value.astimezone(timezone.utc)


def attrs_validator(check: Any, **kwargs: Any) -> Any:
    """Adapt a ``check_*`` function to an attrs field validator."""

    def validate(instance: object, attribute: Any, value: object) -> None:
        check(attribute.alias, value, **kwargs)  # the name the caller passed it as

    return validate


#: The longest duration a doctor-level setting may take (consultation, delay, grace, aging
#: step): one day. Longer values are always mistakes, and they would overflow ``datetime``
#: arithmetic near the end of its range.
MAX_MINUTES = 24 * 60

#: The range of datetimes the allocator takes: a week inside ``datetime``'s own, so that
#: day-long durations added to them (aging steps, grace, delays) never overflow.
EARLIEST = datetime.min + timedelta(days=7)
LATEST = datetime.max - timedelta(days=7)
