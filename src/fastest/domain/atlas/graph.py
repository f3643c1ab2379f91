"""Graph algorithms over the Atlas: resolving import candidates against the files of a tree, and
ranking modules by PageRank over the import edges (as aider's repo map ranks files: a module many
others depend on, directly or through important modules, matters first)."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence


class PathIndex:
    """The files of a tree, for resolving imports: exact paths, and for absolute Python (and Java)
    imports the path under a source root (`pkg/mod.py` matches `src/pkg/mod.py`), the shortest path
    winning. A Python source root is a directory that is not itself a package (no `__init__.py`), as
    on `sys.path`: `json.py` inside package `pkg/` is `pkg.json`, never `json`."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: set[str] = set(paths)
        self._suffixes: dict[str, str] = {}
        self._dirs: dict[str, str] = {}  # a Go/Java package directory (and its suffixes) → its first file
        packages = {p[: -len("/__init__.py")] for p in self.paths if p.endswith("/__init__.py")}
        for path in sorted(self.paths, key=lambda p: (p.count("/"), p)):
            if path.endswith((".py", ".java")):
                parts = path.split("/")
                python = path.endswith(".py")
                for start in range(1, len(parts)):
                    if python and "/".join(parts[:start]) in packages:
                        continue
                    self._suffixes.setdefault("/".join(parts[start:]), path)
            if path.endswith((".go", ".java")) and not path.endswith("_test.go"):
                parts = path.split("/")[:-1]
                for start in range(len(parts)):
                    self._dirs.setdefault("/".join(parts[start:]), path)

    def resolve(self, candidates: Sequence[str], *, suffix: bool) -> str | None:
        for candidate in candidates:
            if candidate.startswith("dir:"):
                directory = candidate[4:]
                parts = directory.split("/")
                for start in range(len(parts)):  # the longest suffix of the import path the tree has
                    found = self._dirs.get("/".join(parts[start:]))
                    if found is not None:
                        return found
                continue
            if candidate in self.paths:
                return candidate
        if suffix:
            for candidate in candidates:
                found = self._suffixes.get(candidate)
                if found is not None:
                    return found
        return None


def pagerank(nodes: Sequence[str], edges: Iterable[tuple[str, str]], *, damping: float = 0.85,
             iterations: int = 40, tolerance: float = 1e-9) -> dict[str, float]:
    """PageRank of `nodes` over directed `edges` (source depends on target: rank flows to the
    target). Dangling nodes spread their rank evenly. Deterministic; sums to 1."""
    count = len(nodes)
    if count == 0:
        return {}
    index = {node: i for i, node in enumerate(nodes)}
    outgoing: list[list[int]] = [[] for _ in range(count)]
    for source, target in edges:
        s, t = index.get(source), index.get(target)
        if s is not None and t is not None and s != t:
            outgoing[s].append(t)
    rank = [1.0 / count] * count
    base = (1.0 - damping) / count
    for _ in range(iterations):
        dangling = sum(rank[i] for i in range(count) if not outgoing[i])
        new = [base + damping * dangling / count] * count
        for i, targets in enumerate(outgoing):
            if targets:
                share = damping * rank[i] / len(targets)
                for t in targets:
                    new[t] += share
        delta = sum(abs(a - b) for a, b in zip(new, rank))
        rank = new
        if delta < tolerance:
            break
    return {node: rank[i] for node, i in index.items()}


def top_level(path: str) -> str:
    """The first component of a path ("" for a file at the root)."""
    return path.split("/", 1)[0] if "/" in path else ""


def aggregate(edges: Iterable[tuple[str, str]], group: Mapping[str, str]) -> dict[tuple[str, str], int]:
    """Edges between groups (weight = how many edges), self-loops dropped."""
    counts: dict[tuple[str, str], int] = {}
    for source, target in edges:
        a, b = group.get(source), group.get(target)
        if a is None or b is None or a == b:
            continue
        counts[(a, b)] = counts.get((a, b), 0) + 1
    return counts
