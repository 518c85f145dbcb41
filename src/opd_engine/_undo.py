"""Undo by construction: each primitive that changes the day's state records its own inverse.

A call is all or nothing. With the shipped policies every check comes before the first
change, so nothing can fail half-way and nothing needs undoing; a user's policy, though, is
asked in the middle of a call and may raise there, and a journal batch is checked as it is
applied. Then the allocator *records* the call (:meth:`Undo.begin`), and on an exception
undoes it (:meth:`Undo.rollback`), newest change first.

The rule that keeps this honest: **a method that changes state records the inverse of its
change itself, right after making it**, and only such a method (a *primitive*) does. The
callers, the desk's rules and the allocator's calls, never think about undo. A primitive
ends with::

    if self._undo.recording:
        self._undo.record(self._undo_seat, token, filed, protected)

that is: it asks the one flag :attr:`Undo.recording`, and names its inverse as a bound
method, never an attribute as a string, so mypy checks the inverse's arguments like any
call's. The flag is read in the primitive, not inside :meth:`record`, because a call costs
about ten times the read (roughly 1,000 CPU instructions against 100), and a booking runs
five primitives: an unconditional call would make every booking about a fifth dearer to
spare one line. An inverse changes state directly and records nothing (recording is off
while a rollback runs).

The primitives: ``Slot``'s ``_add``, ``_remove``, ``_hold``, ``_seat``, ``_release``,
``_arrive``, ``_set_capacity``, ``_close``, ``_grant`` (the inverse of ``_x`` is
``_undo_x``, or the opposite primitive), which file and unfile tokens in the slot's
call-order index, and the index's ``advance`` (its level changes as time passes); the
``Waitlist``'s ``add``, ``remove``, ``arrive``; ``Day``'s token store, patient index and
counters and its registers of desks and slots; ``Desk``'s slot list and its ``set_*``
fields.
Indexes derived from that state (the desk's present and urgent slots) are not undone step
by step but recomputed once every step is undone (:meth:`Undo.recompute`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    Ts = TypeVarTuple("Ts")


# One recorded step: a function and its arguments (a tuple costs less to make than a partial).
_Step = tuple[Callable[..., object], tuple[object, ...]]
_Saved = tuple["list[_Step] | None", "list[_Step]"]


@final
class Undo:
    """The inverse of every change made so far by the call being recorded, if one is.

    Recorded calls nest (a subscriber's own call, made while the events of a
    recorded call are delivered, is recorded on its own): :meth:`begin` returns what the
    enclosing call recorded, for :meth:`end` or :meth:`rollback` to give back.
    """

    __slots__ = ("_after", "_steps", "recording", "whole")

    def __init__(self) -> None:
        self._steps: list[_Step] | None = None
        self._after: list[_Step] = []
        #: Whether a call is being recorded: the one flag a primitive reads (see above).
        self.recording = False
        #: Whether the calls being recorded are kept whole until a rollback undoes them all
        #: (:meth:`Allocator.preview`): then :meth:`seal` keeps recording.
        self.whole = False

    def record(self, inverse: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """``inverse(*args)`` undoes the change just made: remember it (the primitive has
        seen :attr:`recording` set). O(1)."""
        steps = self._steps
        if steps is not None:
            steps.append((inverse, args))

    def recompute(self, step: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """If this recorded call fails, run ``step(*args)`` once every change is undone: an
        index derived from the restored state follows it (the caller has seen
        :attr:`recording` set). O(1)."""
        self._after.append((step, args))

    def begin(self) -> _Saved:
        """Start recording a call; returns what an enclosing call recorded. O(1)."""
        saved = (self._steps, self._after)
        self._steps = []
        self._after = []
        self.recording = True
        return saved

    def end(self, saved: _Saved) -> None:
        """The call succeeded: go on with the enclosing call, which now owns its steps (if
        the enclosing call is recorded, undoing it undoes this one too). O(k) for the k
        steps handed on, O(1) when nothing encloses the call."""
        steps, after = saved
        if steps is not None:
            if self._steps:
                steps.extend(self._steps)
            after.extend(self._after)
        self._steps, self._after = saved
        self.recording = steps is not None

    def seal(self) -> None:
        """The call's change is final (its events are about to be delivered): stop recording
        it. A subscriber's failure undoes nothing, and a subscriber's own calls record their
        own changes. O(1).

        Within :meth:`Allocator.preview` (:attr:`whole` set) it does nothing: the
        preview undoes every call it made, delivered or not."""
        if self.whole:
            return
        self._steps = None
        self._after = []
        self.recording = False

    def rollback(self, saved: _Saved) -> None:
        """The call failed: undo its steps, newest first, then recompute; then go on with the
        enclosing call. O(k) for k steps."""
        steps = self._steps or []
        after = self._after
        self._steps = None  # the inverses record nothing
        self.recording = False
        try:
            for inverse, args in reversed(steps):
                inverse(*args)
            for step, args in after:
                step(*args)
        finally:
            self._steps, self._after = saved
            self.recording = saved[0] is not None


#: The undo log of a slot or waitlist not (or no longer) part of an allocator: never begun,
#: so it records nothing.
DETACHED: Final = Undo()
