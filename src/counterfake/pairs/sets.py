"""Union-find over image keys: which images chains of relations join into one group."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class DisjointSets:
    """Union-find over image keys: which images chains of relations join into one group.

    Written out because it is a dozen lines, and the libraries that have it (scipy, networkx)
    would be new dependencies for this alone.
    """

    def __init__(self, keys: Iterable[int]) -> None:
        self._parent = {key: key for key in keys}
        self._members = {key: {key} for key in self._parent}  # of each root

    def __iter__(self) -> Iterator[int]:
        return iter(self._parent)

    def __contains__(self, key: int) -> bool:
        return key in self._parent

    def find(self, key: int) -> int:
        parent = self._parent
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving keeps the chains short
            key = parent[key]
        return key

    def members(self, key: int) -> set[int]:
        """The keys of ``key``'s group (the same set object for every key of the group)."""
        return self._members[self.find(key)]

    def join(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a != b:
            if len(self._members[a]) > len(self._members[b]):
                a, b = b, a
            self._parent[a] = b
            self._members[b] |= self._members.pop(a)
