"""An immutable, hashable, picklable mapping for policy and scenario values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar, final

K = TypeVar("K")
V = TypeVar("V")


@final
class FrozenMap(Mapping[K, V]):
    """A read-only copy of a mapping. Unlike ``MappingProxyType`` it hashes and pickles, so
    values holding one can be dict keys and cross process boundaries (``replicate``)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[K, V]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: K) -> V:
        return self._data[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return repr(self._data)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._data,))
