"""The queue key, once, and the one empty key list every sorted list of keys starts as.

A waiting token's queue key is ``priority << SEQ_BITS | seq``: the contract's ``(priority,
seq)`` as one int (ints compare several times faster than tuples in a sorted list). A
slot, its call-order index and a waitlist each map ``seq`` back to the token id (``key &
SEQ_MASK`` is ``seq``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, final

from sortedcontainers import SortedList

from ._values import EMERGENCY, Token

SEQ_BITS: Final = 40
SEQ_MASK: Final = (1 << SEQ_BITS) - 1
#: The largest ``seq`` a key holds (about 10^12: far beyond any day's tokens).
MAX_SEQ: Final = SEQ_MASK
WaitKey = int
#: Sorts before every non-emergency key, after every emergency.
FIRST_NORMAL: Final = (int(EMERGENCY) + 1) << SEQ_BITS


def wait_key(token: Token) -> WaitKey:
    """The queue key of ``token``. O(1)."""
    return token.priority << SEQ_BITS | token.seq


@final
class _NoKeys(SortedList[WaitKey]):
    """The one empty key list every slot's sorted lists start as: most of a day's slots
    never hold an aged or a protected token, and a slot that no token reaches needs none
    of its lists, so each list is made when its first key comes (a ``SortedList`` costs
    as much to make as several bookings). Reading it is reading an empty list; changing
    it would change every slot's, so it refuses to."""

    def add(self, value: WaitKey) -> None:
        raise AssertionError("the shared empty key list is never changed; make a list first")

    def update(self, iterable: Iterable[WaitKey]) -> None:
        raise AssertionError("the shared empty key list is never changed; make a list first")


NO_KEYS: Final[SortedList[WaitKey]] = _NoKeys()
