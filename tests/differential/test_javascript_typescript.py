"""Atlas's JavaScript/TypeScript extraction against the TypeScript compiler (`ts.createSourceFile` for
declarations, `ts.resolveModuleName` for where imports lead) on real packages: declarations, class
members and import specifiers compared by file + name + kind."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from fastest.domain.atlas import extract
from fastest.domain.atlas.graph import PathIndex

from .corpus import JAVASCRIPT, NODE_MODULES, TYPESCRIPT, Part

JUDGE = Path(__file__).parent / "typescript_facts.cjs"

pytestmark = pytest.mark.skipif(not (NODE_MODULES / "typescript").is_dir() or shutil.which("node") is None,
                                reason="needs `npm ci --prefix tests/differential` (the README's test command does it)")


def judged(parts: tuple[Part, ...]) -> list[tuple[Part, str, dict, object]]:
    """(part, relative path, the compiler's facts, Atlas's facts) for every file of the parts."""
    rows = []
    for part in parts:
        root, paths = part.root(), part.files()
        assert root is not None and paths, f"{part.package} is not installed"
        answer = subprocess.run(["node", str(JUDGE)], input=json.dumps({"root": str(root), "paths": paths}),
                                capture_output=True, text=True, check=True, timeout=300)
        truth = json.loads(answer.stdout)
        for path in paths:
            rows.append((part, path, truth[path], extract(path, (root / path).read_bytes())))
    return rows


class Score:
    def __init__(self) -> None:
        self.found = self.wrong = self.missed = 0
        self.examples: list[str] = []

    def add(self, got: set, want: set, where: str) -> None:
        self.found += len(got & want)
        self.wrong += len(got - want)
        self.missed += len(want - got)
        self.examples += [f"{where}: extra {x}" for x in sorted(got - want, key=str)[:3]]
        self.examples += [f"{where}: missed {x}" for x in sorted(want - got, key=str)[:3]]

    @property
    def recall(self) -> float:
        return self.found / ((self.found + self.missed) or 1)

    @property
    def precision(self) -> float:
        return self.found / ((self.found + self.wrong) or 1)

    def __str__(self) -> str:
        return f"recall {self.recall:.4f}, precision {self.precision:.4f} ({self.found} found, {self.wrong} extra, {self.missed} missed)"


def measure(parts: tuple[Part, ...]) -> dict[str, Score]:
    scores = defaultdict(Score)
    files: dict[str, list[str]] = defaultdict(list)
    rows = judged(parts)
    for part, path, _, _ in rows:
        files[part.package].append(path)
    indexes = {package: PathIndex(paths) for package, paths in files.items()}
    for part, path, truth, facts in rows:
        where = f"{part.package}/{path}"
        scores["files parsed"].add({path} if facts.parse_error is None else set(), {path}, f"{where} ({facts.parse_error})")
        scores["symbols"].add({(s.name, s.kind) for s in facts.symbols}, {(s["name"], s["kind"]) for s in truth["symbols"]}, where)
        scores["import specifiers"].add({i.spec for i in facts.imports}, set(truth["specifiers"]), where)
        index = indexes[part.package]
        edges = {index.resolve(i.candidates, suffix=i.suffix) for i in facts.imports if i.candidates} - {None, path}
        scores["import edges"].add(edges, set(truth["resolved"].values()) - {path}, where)
    return scores


def report(language: str, scores: dict[str, Score]) -> str:
    return "\n".join(f"{language} {name}: {score}" for name, score in scores.items())


@pytest.mark.parametrize("language,parts", [("TypeScript", TYPESCRIPT), ("JavaScript", JAVASCRIPT)])
def test_atlas_agrees_with_the_typescript_compiler(language, parts, capsys):
    scores = measure(parts)
    with capsys.disabled():
        print("\n" + report(language, scores))
    symbols, edges = scores["symbols"], scores["import edges"]
    assert symbols.recall >= 0.98 and symbols.precision >= 0.99, (str(symbols), symbols.examples[:20])
    assert scores["import specifiers"].precision == 1.0, scores["import specifiers"].examples[:20]
    assert edges.precision == 1.0, edges.examples[:20]
    assert edges.recall >= 0.98, (str(edges), edges.examples[:20])
