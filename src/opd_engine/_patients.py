"""The active tokens of one patient who holds several at once.

Most patients hold one active token, and the day's patient index stores it as its id. A
patient who holds several (an emergency on top of a booking, or a placeholder id such as
"UNKNOWN" that a hospital books every unidentified emergency under) gets a :class:`Held`,
which answers the duplicate rule in O(log k) for k tokens instead of scanning them: the
tokens are filed by the rule's *scope* (the doctor, the department, or the whole day) and,
within a scope, by the rule's preference (a non-emergency token first, then the earliest).
"""

from __future__ import annotations

from typing import Final, final

from ._queue import SortedList

#: The scope of every token under ``Duplicates.ONE``.
WHOLE_DAY: Final = ""

#: Within a scope: (is an emergency, seq, token id): the token the rule names comes first.
HeldKey = tuple[bool, int, str]


@final
class Held:
    """Two or more active tokens of one patient, by scope and preference.

    ``add``, ``discard`` and ``first`` cost O(log k) for the patient's k active tokens. The
    caller keeps a token's scope and key current (:meth:`add` again after a change moves it).
    """

    __slots__ = ("_filed", "_scopes")

    def __init__(self) -> None:
        self._filed: dict[str, tuple[str, HeldKey]] = {}  # token id -> (scope, key)
        self._scopes: dict[str, SortedList[HeldKey]] = {}

    def __len__(self) -> int:
        return len(self._filed)

    def __contains__(self, token_id: object) -> bool:
        return token_id in self._filed

    def ids(self) -> list[str]:
        """The token ids, in no particular order. O(k)."""
        return list(self._filed)

    def filed(self, token_id: str) -> tuple[str, HeldKey] | None:
        """Where ``token_id`` is filed, or None. O(1)."""
        return self._filed.get(token_id)

    def add(self, token_id: str, scope: str, key: HeldKey) -> None:
        """File ``token_id`` (not yet held) under ``scope`` with ``key``. O(log k)."""
        self._filed[token_id] = (scope, key)
        entries = self._scopes.get(scope)
        if entries is None:
            self._scopes[scope] = SortedList((key,))
        else:
            entries.add(key)

    def discard(self, token_id: str) -> None:
        """Forget ``token_id`` (held). O(log k)."""
        scope, key = self._filed.pop(token_id)
        entries = self._scopes[scope]
        if len(entries) == 1:
            del self._scopes[scope]
        else:
            entries.remove(key)

    def first(self, scope: str, exclude: str | None) -> str | None:
        """The preferred token of ``scope`` other than ``exclude``, or None. O(log k)."""
        entries = self._scopes.get(scope)
        if entries is None:
            return None
        for _urgent, _seq, token_id in entries.islice(0, 2):
            if token_id != exclude:
                return token_id
        return None

    def crowded(self) -> dict[str, list[str]]:
        """The scopes holding more than one non-emergency token (which the duplicate rule
        forbids), each with those tokens' ids in preference order. O(s) for the s scopes
        the tokens are in, plus the tokens named."""
        found: dict[str, list[str]] = {}
        for scope, entries in self._scopes.items():
            if len(entries) > 1 and not entries[1][0]:  # the second is not an emergency
                normal = found[scope] = []
                for urgent, _seq, token_id in entries:  # non-emergencies sort first
                    if urgent:
                        break
                    normal.append(token_id)
        return found

    def _check(self) -> None:
        """Assert the structure's own invariants. O(k log k)."""
        assert len(self._filed) >= 2, "a patient with one active token is held by its id"
        assert sum(map(len, self._scopes.values())) == len(self._filed), "scopes hold the tokens"
        for token_id, (scope, key) in self._filed.items():
            assert key[2] == token_id, f"token {token_id!r} filed under another id's key"
            assert key in self._scopes[scope], f"token {token_id!r} missing from its scope"
