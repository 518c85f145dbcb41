"""opd-engine: elastic-capacity OPD token allocation for hospital outpatient departments.

The whole public API is importable from here::

    from opd_engine import Allocator, Doctor, Slot, Priority, Source, Policies
"""

from importlib.metadata import PackageNotFoundError, version

from ._allocator import Allocator
from ._slot import Slot
from ._values import Doctor, Priority, Source, Token, TokenStatus
from .errors import (
    DuplicateBookingError,
    InvalidArgumentError,
    InvalidTransitionError,
    NotFoundError,
    OPDError,
    SlotClosedError,
    SlotFullError,
    UnknownDoctorError,
    UnknownSlotError,
    UnknownTokenError,
)
from .events import (
    DoctorDelayed,
    DoctorUnavailable,
    Event,
    MoveReason,
    SlotResized,
    TokenBooked,
    TokenCalled,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenWaitlisted,
)
from .policies import (
    AccumulatingPriority,
    Aging,
    CapacityPolicy,
    Comparable,
    EmergencyOverride,
    EmergencyPolicy,
    HardLimit,
    OnDelay,
    OnFull,
    OrderingPolicy,
    Overbooking,
    Policies,
    Reallocation,
    ReallocationPolicy,
    SourceQuota,
    StrictPriority,
)

try:
    __version__ = version("opd-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AccumulatingPriority",
    "Aging",
    "Allocator",
    "CapacityPolicy",
    "Comparable",
    "Doctor",
    "DoctorDelayed",
    "DoctorUnavailable",
    "DuplicateBookingError",
    "EmergencyOverride",
    "EmergencyPolicy",
    "Event",
    "HardLimit",
    "InvalidArgumentError",
    "InvalidTransitionError",
    "MoveReason",
    "NotFoundError",
    "OPDError",
    "OnDelay",
    "OnFull",
    "OrderingPolicy",
    "Overbooking",
    "Policies",
    "Priority",
    "Reallocation",
    "ReallocationPolicy",
    "Slot",
    "SlotClosedError",
    "SlotFullError",
    "SlotResized",
    "Source",
    "SourceQuota",
    "StrictPriority",
    "Token",
    "TokenBooked",
    "TokenCalled",
    "TokenCancelled",
    "TokenCheckedIn",
    "TokenCompleted",
    "TokenEvent",
    "TokenMoved",
    "TokenNoShow",
    "TokenStatus",
    "TokenWaitlisted",
    "UnknownDoctorError",
    "UnknownSlotError",
    "UnknownTokenError",
    "__version__",
]
