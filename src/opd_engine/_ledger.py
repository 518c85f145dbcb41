"""What the whole day shares: the ledger every desk of one allocator writes to.

:class:`Day` holds the tokens, the policies, the patient index and its duplicate rule, the
``seq`` and ``version`` counters, the subscribers and the events of the call in progress
(as drafts, finished by :meth:`Day.publish` once the call is complete), and the undo log.
A desk (:mod:`opd_engine._desk`) changes one doctor's slots and waitlist; anything that
belongs to no one doctor lives here.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, final

import attrs

from ._check import require
from ._generated import value_builder
from ._patients import WHOLE_DAY, Held, HeldKey
from ._slot import Slot
from ._undo import DETACHED, Undo
from ._values import (
    EMERGENCY,
    Doctor,
    Priority,
    Source,
    Token,
    TokenStatus,
    copy_token,
)
from .events import (
    EVENT_CLASSES,
    Event,
    TokenBooked,
    TokenCalled,
    TokenCheckedIn,
    TokenCompleted,
    TokenEvent,
    TokenMoved,
    TokenWaitlisted,
)
from .policies import Duplicates, HardLimit, Policies, Reserve

if TYPE_CHECKING:
    from ._desk import Desk

_log = logging.getLogger("opd_engine")

# Statuses a token sent a due notice never has: stepping out or missing a call (to BOOKED
# or NO_SHOW) takes the notice back, and nobody absent is sent one.
_NOT_DUE: Final = frozenset({TokenStatus.BOOKED, TokenStatus.AWAY, TokenStatus.NO_SHOW})

# Fields of an event that only a complete call knows.
_SEALED: Final = frozenset({"version", "step", "steps"})

# One draft builder per event class, ``draft(at, *fields)``: every field but ``version``,
# ``step`` and ``steps``, which Day.publish writes once the call is complete (see _generated).
# A field with a default (a literal: ``out_of_turn=False``, ``reason=""``) may be left out.
_DRAFT: dict[type[Event], Callable[..., Any]] = {
    kind: value_builder(
        kind,
        f"{kind.__name__} draft",
        [
            name if field.default is attrs.NOTHING else f"{name}={field.default!r}"
            for name, field in fields.items()
        ],
        {name: name for name in fields},
        finish=False,
    )
    for kind in EVENT_CLASSES
    for fields in [{f.name: f for f in attrs.fields(kind) if f.name not in _SEALED}]
}

#: ``DRAFT[kind](at, *fields)``: a draft of an event, for ``Day.pending`` (O(1)). The hot
#: paths append drafts themselves, after testing ``day.subscribers``, rather than through
#: Day.note: a method call per event is a tenth of its cost.
DRAFT: Final = _DRAFT
draft_booked: Final = _DRAFT[TokenBooked]
draft_waitlisted: Final = _DRAFT[TokenWaitlisted]
draft_checked_in: Final = _DRAFT[TokenCheckedIn]
draft_called: Final = _DRAFT[TokenCalled]
draft_completed: Final = _DRAFT[TokenCompleted]
draft_moved: Final = _DRAFT[TokenMoved]


@final
class Subscription:
    """One :meth:`Allocator.subscribe`: its ``callback``, None once unsubscribed, so that
    a delivery under way skips it at once. Compared by identity: the same callback may be
    subscribed twice, and each unsubscribe ends its own subscription."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[Event], object]) -> None:
        self.callback: Callable[[Event], object] | None = callback


@final
class ReserveNow:
    """A day's :class:`~opd_engine.Reserve`, asked at the time of the call in progress.

    :class:`~opd_engine.CapacityPolicy` gives ``admits`` no time, and a reserve needs one
    (its places are released at ``slot.start - release_before``). The day therefore asks
    its reserve through this adapter, which passes ``Day.now``: the allocator's one reading
    of its clock for the call. Policies of the user's own keep the Protocol as it is.
    """

    __slots__ = ("day", "policy")

    def __init__(self, policy: Reserve, day: Day) -> None:
        self.policy = policy
        self.day = day

    def limit(self, capacity: int) -> int:
        """As the reserve's. O(1)."""
        return self.policy.limit(capacity)

    def admits(self, slot: Slot, source: Source, priority: Priority) -> bool:
        """The reserve's answer at ``Day.now``. O(channels)."""
        return self.policy.admits(slot, source, priority, self.day.now)

    def __repr__(self) -> str:
        return repr(self.policy)


# Not final: a day with due notices on is a NotifyingDay, chosen once when the allocator is
# made, so that a day without them pays nothing for noting which doctors a call touched.
@attrs.define(eq=False)
class Day:
    """What every desk of one allocator shares: one OPD day's tokens and counters."""

    policies: Policies
    tokens: dict[str, Token] = attrs.field(factory=dict)
    # doctor id -> department, for the duplicate rule.
    departments: dict[str, str] = attrs.field(factory=dict)
    # patient -> active token id (a Held in the rare case of several).
    active: dict[str, str | Held] = attrs.field(factory=dict)
    subscribers: list[Subscription] = attrs.field(factory=list)
    # The events of the call in progress, as drafts (see _generated): every field written
    # but ``version``, ``step`` and ``steps``, known once the call is complete.
    pending: list[Any] = attrs.field(factory=list)
    # Events of completed calls, waiting for delivery, and whether a delivery is under way.
    outbox: deque[Event] = attrs.field(factory=deque)
    delivering: bool = False
    seq: int = 0
    version: int = 0
    # The undo log of the call in progress: it records when a user's policy could fail
    # half-way through a call (``guarded``) and while journal events are applied.
    undo: Undo = attrs.field(factory=Undo)
    guarded: bool = False
    # The registers _build adds to: the doctors' desks and the slots by id, and whether
    # the slots' datetimes are aware (None before the first slot); the allocator's lock.
    desks: dict[str, Desk] = attrs.field(factory=dict)
    slots: dict[str, Slot] = attrs.field(factory=dict)
    aware: bool | None = None
    lock: threading.RLock = attrs.field(factory=threading.RLock)
    # The capacity policy is the shipped HardLimit: admits() is then inlined.
    hard_limit: bool = attrs.field(init=False)
    # The time of the call in progress: the allocator's one reading of its clock for the
    # call (None before the first). A capacity policy that needs it reads it through the
    # day (ReserveNow).
    now: datetime | None = attrs.field(default=None, init=False)
    # Due notices (Policies.notify_within): the tokens already sent one, and the doctors
    # whose call order the call in progress may have changed (noted by a NotifyingDay).
    notified: set[str] = attrs.field(factory=set, init=False)
    touched: dict[str, None] = attrs.field(factory=dict, init=False)
    # A preview is under way (Allocator.preview): its subscribers are stand-ins.
    previewing: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        capacity = self.policies.capacity
        if type(capacity) is Reserve:
            self.policies = attrs.evolve(self.policies, capacity=ReserveNow(capacity, self))

    @hard_limit.default
    def _is_hard_limit(self) -> bool:
        return type(self.policies.capacity) is HardLimit

    def register_desk(self, desk: Desk) -> None:
        """Register a new doctor's desk. O(1)."""
        doctor = desk.doctor
        self.desks[doctor.id] = desk
        self.departments[doctor.id] = doctor.department
        if self.undo.recording:
            self.undo.record(self._unregister_desk, doctor.id)

    def _unregister_desk(self, doctor_id: str) -> None:
        del self.desks[doctor_id], self.departments[doctor_id]

    def register_slot(self, slot: Slot) -> None:
        """Register a slot just attached; the day's datetimes are as aware as its. O(1)."""
        self.slots[slot.id] = slot
        if self.undo.recording:
            self.undo.record(self._unregister_slot, slot, self.aware)
        self.aware = slot.start.tzinfo is not None

    def _unregister_slot(self, slot: Slot, aware: bool | None) -> None:
        del self.slots[slot.id]
        self.aware = aware
        slot._attach(None, {}, DETACHED)  # free to be added again

    def next_seq(self) -> int:
        """Issue the next ``seq``. O(1)."""
        seq = self.seq = self.seq + 1
        if self.undo.recording:
            self.undo.record(self.set_seq, seq - 1)
        return seq

    def set_seq(self, seq: int) -> None:
        """Set the last ``seq`` issued (replaying a journal). O(1)."""
        old = self.seq
        self.seq = seq
        if self.undo.recording:
            self.undo.record(self.set_seq, old)

    def replace(self, token: Token, **changes: Any) -> Token:
        """A copy of ``token`` with ``changes``, stored as the current token. O(1)."""
        new = copy_token(token, changes)
        self.tokens[token.id] = new
        if self.undo.recording:
            self.undo.record(self._unput, token)
        if self.active.get(token.patient_id).__class__ is Held:
            self._refile(new)  # a new doctor or triage level files it elsewhere
        return new

    def put(self, old: Token, new: Token) -> Token:
        """Store ``new``, a copy of ``old`` (the same id), as the current token. O(1)."""
        self.tokens[new.id] = new
        if self.undo.recording:
            self.undo.record(self._unput, old)
        if self.active.get(new.patient_id).__class__ is Held:
            self._refile(new)  # a new doctor or triage level files it elsewhere
        return new

    def store(self, token: Token) -> None:
        """Store a token just issued. O(1)."""
        self.tokens[token.id] = token
        if self.undo.recording:
            self.undo.record(self._unstore, token.id)

    def enter(self, token: Token) -> None:
        """Store a token just issued and index it as one of its patient's active tokens:
        :meth:`store` then :meth:`activate`, in one call for a booking. O(1) for the
        patient's first active token, else as :meth:`activate`."""
        self.tokens[token.id] = token
        if self.undo.recording:
            self.undo.record(self._unstore, token.id)
        patient_id = token.patient_id
        if patient_id in self.active:
            self.activate(token)
        else:
            self.active[patient_id] = token.id
            if self.undo.recording:
                self.undo.record(self._set_active, patient_id, None)

    def notice(self, token_id: str) -> None:
        """The token has been sent its due notice (``TokenDue``). O(1)."""
        self.notified.add(token_id)
        if self.undo.recording:
            self.undo.record(self.notified.discard, token_id)

    def forget_due(self, token_id: str) -> None:
        """The token stepped out or missed a call: back, it may be sent a notice again.
        O(1)."""
        notified = self.notified
        if token_id in notified:
            notified.discard(token_id)
            if self.undo.recording:
                self.undo.record(notified.add, token_id)

    def touch(self, doctor_id: str) -> None:
        """The call in progress may have changed ``doctor_id``'s call order (a day without
        due notices does not keep track). O(1)."""

    def _unput(self, old: Token) -> None:
        self.tokens[old.id] = old

    def _unstore(self, token_id: str) -> None:
        del self.tokens[token_id]

    def note(self, kind: type[TokenEvent], now: datetime, token: Token) -> None:
        """Keep a token event of the call in progress, if anybody listens. O(1)."""
        if self.subscribers:
            self.pending.append(_DRAFT[kind](now, token))

    def record(self, kind: type[Event], now: datetime, **fields: Any) -> None:
        """Keep any event of the call in progress, if anybody listens. O(1)."""
        if self.subscribers:
            self.pending.append(_DRAFT[kind](now, **fields))

    def publish(self) -> None:
        """The call in progress is complete and final (``version`` counts it): finish its
        events, each with its ``step`` among the call's ``steps``, queue them, and deliver
        the queue, unless a delivery is already under way (a subscriber's own call). O(k)
        for the call's k events, plus the subscribers' own time."""
        self.undo.seal()
        outbox = self.outbox
        pending = self.pending
        if pending:
            steps = len(pending)
            version = self.version
            for step, draft in enumerate(pending, 1):
                draft.version = version
                draft.step = step
                draft.steps = steps
                draft.__class__ = draft.__class__.__base__  # the event class: now frozen
            outbox.extend(pending)
            pending.clear()
        if self.delivering or not outbox:
            return
        self.delivering = True
        try:
            subscribers = self.subscribers
            while outbox:
                event = outbox.popleft()
                for subscription in tuple(subscribers):
                    callback = subscription.callback
                    if callback is not None:  # not unsubscribed by an earlier subscriber
                        # A subscriber's exception is logged, never raised: the change it
                        # reports has already happened, and the caller's call succeeded.
                        try:
                            callback(event)
                        except Exception:
                            _log.exception("opd_engine subscriber %r failed on %r", callback, event)
        finally:
            self.delivering = False

    # ------------------------------------------------------------ the patient index
    # One active token is stored as its id; several as a Held, filed by the duplicate rule's
    # scope, so that a placeholder patient id holding thousands costs O(log k) per change.

    def _set_active(self, patient_id: str, held: str | Held | None) -> None:
        """The patient's active tokens are ``held`` (None: none). O(1)."""
        old = self.active.get(patient_id)
        if held is None:
            del self.active[patient_id]
        else:
            self.active[patient_id] = held
        if self.undo.recording:
            self.undo.record(self._set_active, patient_id, old)

    def _scope(self, doctor_id: str) -> str:
        """Where the duplicate rule counts a token of ``doctor_id``. O(1)."""
        rule = self.policies.duplicates
        if rule is Duplicates.PER_DOCTOR:
            return doctor_id
        if rule is Duplicates.PER_DEPARTMENT:
            return self.departments[doctor_id]
        return WHOLE_DAY

    def where_filed(self, token: Token) -> tuple[str, HeldKey]:
        """The scope and key ``token`` is filed under in its patient's Held. O(1)."""
        return self._scope(token.doctor_id), (token.priority is EMERGENCY, token.seq, token.id)

    def _file(self, held: Held, token: Token) -> None:
        held.add(token.id, *self.where_filed(token))
        if self.undo.recording:
            self.undo.record(held.discard, token.id)

    def _unfile(self, held: Held, token_id: str) -> None:
        filed = held.filed(token_id)
        assert filed is not None
        held.discard(token_id)
        if self.undo.recording:
            self.undo.record(held.add, token_id, *filed)

    def _refile(self, token: Token) -> None:
        """File ``token`` anew in its patient's Held if its doctor or level moved it. O(log k)."""
        held = self.active[token.patient_id]
        assert isinstance(held, Held)
        filed = held.filed(token.id)
        if filed is not None and filed != self.where_filed(token):
            self._unfile(held, token.id)
            self._file(held, token)

    def activate(self, token: Token) -> None:
        """Index ``token`` as one of its patient's active tokens. O(log k) for the patient's
        k active tokens (O(1) for the first)."""
        held = self.active.get(token.patient_id)
        if held is None:
            self._set_active(token.patient_id, token.id)
        elif isinstance(held, str):
            both = Held()
            self._set_active(token.patient_id, both)
            self._file(both, self.tokens[held])
            self._file(both, token)
        else:
            self._file(held, token)

    def deactivate(self, token: Token) -> None:
        """Drop ``token`` from its patient's active tokens. O(log k)."""
        held = self.active[token.patient_id]
        if isinstance(held, str):
            self._set_active(token.patient_id, None)
            return
        self._unfile(held, token.id)
        if len(held) == 1:
            self._set_active(token.patient_id, held.ids()[0])

    def duplicate(self, patient_id: str, doctor: Doctor, exclude: str | None = None) -> str | None:
        """The patient's active token that the duplicate rule counts against a token with
        ``doctor`` (a non-emergency one first, then the earliest), or None, never
        ``exclude``. O(log k) for the patient's k active tokens."""
        held = self.active.get(patient_id)
        if held is None or held == exclude:
            return None
        if isinstance(held, Held):
            return held.first(self._scope(doctor.id), exclude)
        token = self.tokens[held]
        return held if self._scope(token.doctor_id) == self._scope(doctor.id) else None

    def _check(self) -> None:
        """Raise ``AssertionError`` naming the first broken invariant of the day's own
        state. Changes nothing.

        Checked: ``seq`` unique, and the counter at or past every token's; the patient
        index against the active tokens, each token of a patient who holds several filed
        where the duplicate rule files it (each ``Held``'s own structure is its
        ``_check()``, asked by the caller); the duplicate rule itself; the due notices
        sent, to issued tokens, none of them since stepped out or sent back by a missed
        call (that takes the notice back). O(n log n) for the n tokens.
        """
        for token_id in self.notified:
            token = self.tokens.get(token_id)
            require(token is not None, "due notices go to issued tokens", token_id)
            assert token is not None
            require(token.status not in _NOT_DUE, "due notices go to present patients", token)
        tokens = self.tokens
        seqs: set[int] = set()
        active: dict[str, list[str]] = {}
        for token in tokens.values():
            require(token.seq not in seqs, "seq unique", f"two tokens share seq {token.seq}")
            seqs.add(token.seq)
            if token.status.active:
                active.setdefault(token.patient_id, []).append(token.id)
        require(self.seq >= max(seqs, default=0), "seq counter", str(self.seq))
        indexed = {
            patient: sorted([held] if isinstance(held, str) else held.ids())
            for patient, held in self.active.items()
        }
        require(
            {patient: sorted(ids) for patient, ids in active.items()} == indexed,
            "active-booking index",
            "index differs from the tokens",
        )
        for held in self.active.values():
            if isinstance(held, str):
                continue
            for token_id in held.ids():
                require(
                    held.filed(token_id) == self.where_filed(tokens[token_id]),
                    "active-booking index",
                    f"token {token_id!r} filed under a stale doctor or level",
                )
        for patient, ids in active.items():
            normal = [tokens[i] for i in ids if tokens[i].priority is not EMERGENCY]
            if len(normal) < 2:
                continue
            require(
                len({self._scope(token.doctor_id) for token in normal}) == len(normal),
                "one active token per patient under the duplicate rule",
                f"patient {patient!r} holds {[t.id for t in normal]} "
                f"({self.policies.duplicates.name})",
            )


@final
@attrs.define(eq=False)
class NotifyingDay(Day):
    """A day with due notices on (``Policies.notify_within > 0``): every change of a token
    notes the doctors it belongs to, before and after, in :attr:`Day.touched`, for the
    notices to look at once the call is complete (:meth:`Allocator._commit`)."""

    def touch(self, doctor_id: str) -> None:
        """Note ``doctor_id`` (undone with the call, if it is undone). O(1)."""
        touched = self.touched
        if doctor_id not in touched:
            touched[doctor_id] = None
            if self.undo.recording:
                self.undo.record(self._untouch, doctor_id)

    def _untouch(self, doctor_id: str) -> None:
        self.touched.pop(doctor_id, None)

    def put(self, old: Token, new: Token) -> Token:
        """As :meth:`Day.put`, noting the doctors. O(1)."""
        self.touch(old.doctor_id)
        if new.doctor_id != old.doctor_id:
            self.touch(new.doctor_id)
        return super().put(old, new)

    def replace(self, token: Token, **changes: Any) -> Token:
        """As :meth:`Day.replace`, noting the doctors. O(1)."""
        new = super().replace(token, **changes)
        self.touch(token.doctor_id)
        if new.doctor_id != token.doctor_id:
            self.touch(new.doctor_id)
        return new

    def enter(self, token: Token) -> None:
        """As :meth:`Day.enter`, noting the doctor. O(1)."""
        self.touch(token.doctor_id)
        super().enter(token)
