"""The snapshot DAG: the merge base of two heads.

Snapshots point at their parents (one, or two for a sync). The merge base of two heads is their
*best* common ancestor: a snapshot reachable from both heads (a head counts as its own ancestor)
that is not itself an ancestor of another common ancestor. After a criss-cross merge there can be
several; we pick one deterministically, as documented in `merge_base`. Cycles are impossible by
construction (a snapshot's parents exist before it), but the search would still terminate on one.

The search paints, like git's `paint_down_to_common`: every snapshot reached from head `a` gets
flag A, from `b` flag B; one with both is a common ancestor, and everything below a common
ancestor is STALE (a common ancestor, but never a best one). It runs in *waves*: one wave fetches
the parents of the whole current frontier — one D1 query (`merge_base_lazy`) rather than loading
the whole history — and paints through everything known. It stops as soon
as the answer cannot change: nothing left to paint, or everything left to paint is STALE and exactly
one candidate remains. (With several candidates left, only further STALE painting can tell which of
them lie below another, so it goes on; that happens after criss-cross merges, which are rare.)
"""

from __future__ import annotations

from collections import deque
from typing import Awaitable, Callable, Iterable, Mapping, Sequence

ParentsLoader = Callable[[list[str]], Awaitable[Mapping[str, Sequence[str]]]]
"""Fetch the parent ids of these snapshot ids (one D1 query per call). An id missing from the
answer is taken to have no parents."""

_A, _B, _STALE = 1, 2, 4
_COMMON = _A | _B


class _Search:
    """The painting state shared by the synchronous and the lazy driver.

    `pending` holds the snapshots whose flags changed and have not been passed on to their parents
    yet. `settle` passes flags on through every snapshot whose parents are already known, to a
    fixpoint, so what stays pending is exactly the frontier whose parents must be fetched — and a
    STALE mark catches up at once with a frontier painted earlier (git orders its walk by commit
    date for that; we have no dates to trust)."""

    def __init__(self, a: str, b: str) -> None:
        self.heads = (a, b)
        self.flags: dict[str, int] = {}
        self.parents: dict[str, tuple[str, ...]] = {}
        self.pending: set[str] = set()
        self._paint(a, _A)
        self._paint(b, _B)

    def _paint(self, node: str, flags: int) -> None:
        old = self.flags.get(node, 0)
        if old | flags != old:
            self.flags[node] = old | flags
            self.pending.add(node)

    def frontier(self) -> list[str]:
        """The pending snapshots whose parents are not known yet (sorted: stable queries)."""
        return sorted(node for node in self.pending if node not in self.parents)

    def learn(self, parents: Mapping[str, Sequence[str]], asked: Iterable[str]) -> None:
        for node in asked:
            self.parents[node] = tuple(parents.get(node, ()))

    def settle(self) -> None:
        """Pass flags down through every snapshot whose parents are known, until nothing changes."""
        ready = [node for node in self.pending if node in self.parents]
        while ready:
            node = ready.pop()
            self.pending.discard(node)
            flags = self.flags[node]
            # Below a common ancestor everything is common, and stale.
            passed = _COMMON | _STALE if flags & _COMMON == _COMMON else flags
            for parent in self.parents[node]:
                before = self.flags.get(parent, 0)
                self._paint(parent, passed)
                if self.flags[parent] != before and parent in self.parents:
                    ready.append(parent)

    def candidates(self) -> list[str]:
        return [node for node, flags in self.flags.items() if flags & _COMMON == _COMMON and not flags & _STALE]

    def done(self) -> bool:
        """Nothing left to paint; or all that is left is STALE (below a common ancestor, so it can
        only make candidates stale) and a single candidate remains, which nothing can unseat."""
        if not self.pending:
            return True
        if any(not self.flags[node] & _STALE for node in self.pending):
            return False
        return len(self.candidates()) == 1

    def best(self) -> str | None:
        candidates = self.candidates()
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        # Every snapshot on a path from a head down to a candidate is above it, hence not stale,
        # hence fetched: the known parents give exact distances.
        to_a, to_b = self._distances(self.heads[0]), self._distances(self.heads[1])
        return min(candidates, key=lambda n: (to_a[n] + to_b[n], max(to_a[n], to_b[n]), n))

    def _distances(self, head: str) -> dict[str, int]:
        """Fewest parent steps from `head` to every known ancestor (BFS)."""
        distance = {head: 0}
        queue = deque([head])
        while queue:
            node = queue.popleft()
            for parent in self.parents.get(node, ()):
                if parent not in distance:
                    distance[parent] = distance[node] + 1
                    queue.append(parent)
        return distance


def merge_base(a: str, b: str, parents: Mapping[str, Sequence[str]]) -> str | None:
    """The best common ancestor of snapshots `a` and `b`, or None when their histories are disjoint.

    `parents` maps a snapshot id to its parents' ids (a missing id has none). `a == b` gives `a`;
    when one is an ancestor of the other, that one. Among several best common ancestors (after a
    criss-cross merge) the tie-break is: the fewest parent steps from `a` plus from `b`, then the
    smaller of the two larger step counts (the most balanced), then the smallest id. It is
    symmetric in `a` and `b`."""
    search = _Search(a, b)
    search.settle()
    while not search.done():
        asked = search.frontier()
        search.learn(parents, asked)
        search.settle()
    return search.best()


async def merge_base_lazy(a: str, b: str, load_parents: ParentsLoader) -> str | None:
    """`merge_base`, fetching parents wave by wave: one `load_parents` call per wave, for the
    snapshots of that wave whose parents are not known yet. Only the part of the history between
    the heads and their merge base (and a little below it) is ever fetched."""
    search = _Search(a, b)
    while not search.done():
        asked = search.frontier()
        search.learn(await load_parents(asked), asked)
        search.settle()
    return search.best()
