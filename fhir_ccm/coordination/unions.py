"""Disjoint sets of keys, for "these sources are the same thing" (conditions, people).

Groups come out sorted, each led by its smallest key, so the result never
depends on the order in which sameness was discovered.
"""

from __future__ import annotations

from collections.abc import Iterable


class Unions:
    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._parent: dict[str, str] = {}
        for key in keys:
            self.add(key)

    def add(self, key: str) -> None:
        self._parent.setdefault(key, key)

    def find(self, key: str) -> str:
        self.add(key)
        root = key
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[key] != root:
            self._parent[key], key = root, self._parent[key]
        return root

    def join(self, first: str, second: str) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            low, high = sorted((a, b))
            self._parent[high] = low

    def groups(self) -> list[tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for key in self._parent:
            found.setdefault(self.find(key), []).append(key)
        return sorted(tuple(sorted(members)) for members in found.values())
