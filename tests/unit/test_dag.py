"""Merge base of two snapshot heads: checked against a brute-force reference over random DAGs."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Mapping, Sequence

from hypothesis import given, settings, strategies as st

from fastest.domain.dag import merge_base, merge_base_lazy


def ancestors(node: str, parents: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Every ancestor of `node` (itself included) with its fewest parent steps from it."""
    distance = {node: 0}
    queue = deque([node])
    while queue:
        current = queue.popleft()
        for parent in parents.get(current, ()):
            if parent not in distance:
                distance[parent] = distance[current] + 1
                queue.append(parent)
    return distance


def best_common(a: str, b: str, parents: Mapping[str, Sequence[str]]) -> set[str]:
    from_a, from_b = ancestors(a, parents), ancestors(b, parents)
    common = from_a.keys() & from_b.keys()
    below_another = {x for c in common for x in ancestors(c, parents) if x != c}
    return common - below_another


def reference(a: str, b: str, parents: Mapping[str, Sequence[str]]) -> str | None:
    best = best_common(a, b, parents)
    if not best:
        return None
    from_a, from_b = ancestors(a, parents), ancestors(b, parents)
    return min(best, key=lambda n: (from_a[n] + from_b[n], max(from_a[n], from_b[n]), n))


def lazy(a: str, b: str, parents: Mapping[str, Sequence[str]], calls: list[list[str]] | None = None) -> str | None:
    async def load(ids: list[str]) -> Mapping[str, Sequence[str]]:
        if calls is not None:
            calls.append(ids)
        return {i: parents[i] for i in ids if i in parents}

    return asyncio.run(merge_base_lazy(a, b, load))


@st.composite
def dags(draw: st.DrawFn) -> dict[str, list[str]]:
    """Snapshots n0…nk, each with 0–3 parents created before it (so no cycles)."""
    size = draw(st.integers(1, 25))
    parents: dict[str, list[str]] = {}
    for i in range(size):
        if i == 0:
            parents["n00"] = []
            continue
        count = draw(st.integers(0, min(3, i)) if draw(st.integers(0, 9)) == 0 else st.integers(1, min(2, i)))
        chosen = draw(st.lists(st.integers(0, i - 1), min_size=count, max_size=count, unique=True))
        parents[f"n{i:02d}"] = [f"n{j:02d}" for j in chosen]
    return parents


@settings(max_examples=300, deadline=None)
@given(dags(), st.data())
def test_merge_base_is_a_best_common_ancestor(parents: dict[str, list[str]], data: st.DataObject) -> None:
    nodes = sorted(parents)
    a, b = data.draw(st.sampled_from(nodes)), data.draw(st.sampled_from(nodes))
    result = merge_base(a, b, parents)
    best = best_common(a, b, parents)
    if not best:
        assert result is None
        return
    assert result in ancestors(a, parents) and result in ancestors(b, parents)  # a common ancestor
    # No other common ancestor lies below-reachable from it, i.e. is its descendant.
    common = ancestors(a, parents).keys() & ancestors(b, parents).keys()
    assert not any(result in ancestors(c, parents) for c in common if c != result)
    assert result == reference(a, b, parents)  # the documented tie-break
    assert merge_base(b, a, parents) == result  # symmetric
    assert lazy(a, b, parents) == result


def test_simple_cases() -> None:
    parents = {"r": [], "x1": ["r"], "x2": ["x1"], "y1": ["r"], "y2": ["y1"], "m": ["x2", "y2"]}
    assert merge_base("x2", "x2", parents) == "x2"
    assert merge_base("x1", "x2", parents) == "x1"  # an ancestor of the other
    assert merge_base("x2", "y2", parents) == "r"
    assert merge_base("m", "y2", parents) == "y2"
    assert merge_base("x2", "other", {**parents, "other": []}) is None  # disjoint histories


def test_criss_cross_picks_deterministically() -> None:
    # a and b each merged the other's branch tip: both p and q are best common ancestors.
    parents = {"r": [], "p": ["r"], "q": ["r"], "a": ["p", "q"], "b": ["q", "p"]}
    assert best_common("a", "b", parents) == {"p", "q"}
    assert merge_base("a", "b", parents) == merge_base("b", "a", parents) == "p"  # equal distances: smallest id


def test_lazy_loads_level_by_level_and_stops_at_the_base() -> None:
    # A long main line, a short branch off its tip: the old history is never fetched.
    parents: dict[str, list[str]] = {"m0000": []}
    for i in range(1, 1000):
        parents[f"m{i:04d}"] = [f"m{i - 1:04d}"]
    parents["w1"] = ["m0990"]
    parents["w2"] = ["w1"]
    calls: list[list[str]] = []
    assert lazy("w2", "m0999", parents, calls) == "m0990"
    fetched = {i for call in calls for i in call}
    assert len(fetched) < 30
    assert len(calls) < 15
