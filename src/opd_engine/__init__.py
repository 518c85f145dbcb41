"""opd-engine: elastic-capacity OPD token allocation for hospital outpatient departments.

The whole public API is importable from here::

    from opd_engine import Allocator, Doctor, Slot, Priority, Source, Policies
"""

import inspect
import logging
import typing
from importlib.metadata import PackageNotFoundError, version

from ._allocator import Allocator
from ._board import DoctorBoard, DoctorStatus
from ._estimate import WaitEstimate
from ._journal import event_from_dict, event_to_dict
from ._slot import Slot, SlotView
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
    DayEnded,
    DoctorAdded,
    DoctorAvailable,
    DoctorDelayed,
    DoctorPaused,
    DoctorResumed,
    DoctorUnavailable,
    Event,
    MoveReason,
    PlacesGranted,
    SlotAdded,
    SlotClosed,
    SlotResized,
    TokenBooked,
    TokenCalled,
    TokenCallMissed,
    TokenCancelled,
    TokenCheckedIn,
    TokenCompleted,
    TokenDue,
    TokenEvent,
    TokenMoved,
    TokenNoShow,
    TokenRetriaged,
    TokenSteppedOut,
    TokenUnseen,
    TokenWaitlisted,
)
from .policies import (
    AccumulatingPriority,
    Aging,
    CapacityPolicy,
    Comparable,
    Duplicates,
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
    Reserve,
    SourceQuota,
    StrictPriority,
)

try:
    __version__ = version("opd-engine")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

# A library configures no logging, but its logger gets a NullHandler (the logging HOWTO's
# advice): a host that sets up no logging then sees nothing, not a traceback printed through
# logging's last-resort handler, when a subscriber fails. A host's own handlers still get it.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AccumulatingPriority",
    "Aging",
    "Allocator",
    "CapacityPolicy",
    "Comparable",
    "DayEnded",
    "Doctor",
    "DoctorAdded",
    "DoctorAvailable",
    "DoctorBoard",
    "DoctorDelayed",
    "DoctorPaused",
    "DoctorResumed",
    "DoctorStatus",
    "DoctorUnavailable",
    "DuplicateBookingError",
    "Duplicates",
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
    "PlacesGranted",
    "Policies",
    "Priority",
    "Reallocation",
    "ReallocationPolicy",
    "Reserve",
    "Slot",
    "SlotAdded",
    "SlotClosed",
    "SlotClosedError",
    "SlotFullError",
    "SlotResized",
    "SlotView",
    "Source",
    "SourceQuota",
    "StrictPriority",
    "Token",
    "TokenBooked",
    "TokenCallMissed",
    "TokenCalled",
    "TokenCancelled",
    "TokenCheckedIn",
    "TokenCompleted",
    "TokenDue",
    "TokenEvent",
    "TokenMoved",
    "TokenNoShow",
    "TokenRetriaged",
    "TokenStatus",
    "TokenSteppedOut",
    "TokenUnseen",
    "TokenWaitlisted",
    "UnknownDoctorError",
    "UnknownSlotError",
    "UnknownTokenError",
    "WaitEstimate",
    "__version__",
    "event_from_dict",
    "event_to_dict",
]

# Public names show their public path, as in httpx: help(), reprs, tracebacks and the
# reference say ``opd_engine.Token``, not ``opd_engine._values.Token``, and a pickle names
# ``opd_engine.Token``, which this module resolves. ``typing.get_type_hints`` evaluates a
# class's string annotations in ``sys.modules[cls.__module__]``, so each class's own
# annotations are evaluated first, in the module that wrote them (they must be resolvable
# there once the facade is imported). Names of ``opd_engine.simulation`` keep their module.
for _name in __all__:
    _obj = globals()[_name]
    _public = inspect.isclass(_obj) or inspect.isfunction(_obj)
    if _public and not _obj.__module__.startswith("opd_engine.simulation"):
        if inspect.isclass(_obj):  # nested forward references too: get_type_hints, not eval
            _hints = typing.get_type_hints(_obj, include_extras=True)
            _obj.__annotations__ = {key: _hints[key] for key in inspect.get_annotations(_obj)}
        _obj.__module__ = __name__
del _name, _obj, _public, _hints
