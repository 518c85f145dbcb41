"""Undo by construction: each primitive that changes the day's state records its own inverse.

A call is all or nothing. With the shipped policies every check comes before the first
change, so nothing can fail half-way and nothing needs undoing; a user's policy, though, is
asked in the middle of a call and may raise there, and a journal batch is checked as it is
applied. Then the allocator *records* the call (:meth:`Undo.begin`), and on an exception
undoes it (:meth:`Undo.rollback`), newest change first.

The rule that keeps this honest: **a method that changes state calls** :meth:`Undo.record`
**with the inverse of its change, right after making it**, whether or not a call is being
recorded. :meth:`Undo.record` is the one place that asks; a primitive never does, and names
no attribute as a string, so mypy checks every inverse's arguments like any call. An inverse
changes state directly and records nothing (recording is off while a rollback runs).

The primitives that record: ``Slot``'s ``_add``, ``_remove``, ``_hold``, ``_seat``,
``_release``, ``_arrive``, ``_advance``, ``_set_capacity``, ``_close``, ``_grant``; the
``Waitlist``'s ``add``, ``remove``, ``arrive``; ``Day``'s token store, patient index and
counters; ``Desk``'s slot list and its ``set_*`` fields; the allocator's slot and doctor
registers. Indexes derived from that state (the desk's present and urgent slots) are not
undone step by step but recomputed once every step is undone (:meth:`Undo.recompute`).
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

    Between recorded calls :meth:`record` forgets what it is given, at the cost of one
    method call. Recorded calls nest (a subscriber's own call, made while the events of a
    recorded call are delivered, is recorded on its own): :meth:`begin` returns what the
    enclosing call recorded, for :meth:`end` or :meth:`rollback` to give back.
    """

    __slots__ = ("_after", "_steps")

    def __init__(self) -> None:
        self._steps: list[_Step] | None = None
        self._after: list[_Step] = []

    def record(self, inverse: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """``inverse(*args)`` undoes the change just made: remember it if this call is
        recorded. The one place that asks whether it is. O(1)."""
        steps = self._steps
        if steps is not None:
            steps.append((inverse, args))

    def recompute(self, step: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """If this call is recorded and fails, run ``step(*args)`` once every change is
        undone: an index derived from the restored state follows it. O(1)."""
        if self._steps is not None:
            self._after.append((step, args))

    def begin(self) -> _Saved:
        """Start recording a call; returns what an enclosing call recorded. O(1)."""
        saved = (self._steps, self._after)
        self._steps = []
        self._after = []
        return saved

    def end(self, saved: _Saved) -> None:
        """The call succeeded: forget its steps, and go on with the enclosing call. O(1)."""
        self._steps, self._after = saved

    def seal(self) -> None:
        """The call's change is final (its events are about to be delivered): stop recording
        it. A subscriber's failure undoes nothing, and a subscriber's own calls record their
        own changes. O(1)."""
        self._steps = None
        self._after = []

    def rollback(self, saved: _Saved) -> None:
        """The call failed: undo its steps, newest first, then recompute; then go on with the
        enclosing call. O(k) for k steps."""
        steps = self._steps or []
        after = self._after
        self._steps = None  # the inverses record nothing
        try:
            for inverse, args in reversed(steps):
                inverse(*args)
            for step, args in after:
                step(*args)
        finally:
            self._steps, self._after = saved


#: The undo log of a slot or waitlist not (or no longer) part of an allocator: never begun,
#: so it records nothing.
DETACHED: Final = Undo()
