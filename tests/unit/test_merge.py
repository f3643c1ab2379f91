"""Three-way merge of trees and text, and the mass-change safety valve."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings, strategies as st

from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE, sha256_hex
from fastest.domain.merge import Conflict, MergeResult, mass_change, merge_text, merge_trees
from fastest.domain.tree import build_manifests, memory_loader, update_manifests, walk

Files = dict[str, tuple[int, int]]  # path -> (content number, mode)


def blob(content: int) -> str:
    return sha256_hex(f"content {content}".encode())


class Trees:
    """Builds trees into one manifest store, as storage would hold them."""

    def __init__(self) -> None:
        self.manifests: dict[str, bytes] = {}
        self.loads = 0

    def build(self, files: Files) -> str:
        built = build_manifests([(p, blob(c), c * 10, m) for p, (c, m) in files.items()])
        self.manifests.update(built.manifests)
        return built.root

    def merge(self, base: Files | None, ours: Files, theirs: Files) -> tuple[MergeResult, dict[str, tuple]]:
        roots = (None if base is None else self.build(base)), self.build(ours), self.build(theirs)
        inner = memory_loader(self.manifests)

        async def load(h: str):
            self.loads += 1
            return await inner(h)

        result = asyncio.run(merge_trees(*roots, load))
        merged = update_manifests(roots[1], self.manifests, result.updates)
        self.manifests.update(merged.manifests)
        return result, self.files(merged.root)

    def files(self, root: str) -> dict[str, tuple]:
        async def collect():
            return {p: (e.hash, e.size, e.mode) async for p, e in walk(root, memory_loader(self.manifests))}

        return asyncio.run(collect())


def flat(files: Files) -> dict[str, tuple]:
    return {p: (blob(c), c * 10, m) for p, (c, m) in files.items()}


def covered(path: str, conflicts: list[Conflict]) -> bool:
    return any(path == c.path or path.startswith(c.path + "/") for c in conflicts)


def normalized(files: Files) -> Files:
    """Drop files whose path is also a directory of another file (build_manifests refuses those)."""
    return {p: v for p, v in files.items() if not any(o.startswith(p + "/") for o in files)}


def keeps_change(base: tuple | None, side: tuple | None, merged: tuple | None) -> bool:
    """Whether the merged file carries what a side changed: its deletion, or each of content and
    mode that it changed (the other one may come from the other side)."""
    if side == base:
        return True
    if side is None or merged is None:
        return merged == side
    same_content = base is not None and side[:2] == base[:2]
    same_mode = base is not None and side[2] == base[2]
    return (same_content or merged[:2] == side[:2]) and (same_mode or merged[2] == side[2])


names = st.sampled_from(["a", "b", "c"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)
contents = st.tuples(st.integers(0, 4), st.sampled_from([MODE_FILE, MODE_EXECUTABLE]))
trees = st.dictionaries(paths, contents, max_size=10).map(normalized)


@st.composite
def edited(draw: st.DrawFn, base: Files) -> Files:
    """A side: base with random modifications, mode changes, deletions, adds and renames."""
    files = dict(base)
    for path in list(files):
        action = draw(st.sampled_from(["keep", "keep", "modify", "mode", "delete", "rename"]))
        content, mode = files[path]
        if action == "modify":
            files[path] = (draw(st.integers(0, 6)), mode)
        elif action == "mode":
            files[path] = (content, MODE_FILE if mode == MODE_EXECUTABLE else MODE_EXECUTABLE)
        elif action == "delete":
            del files[path]
        elif action == "rename":
            del files[path]
            files[draw(paths)] = (content, mode)
    files.update(draw(st.dictionaries(paths, contents, max_size=3)))
    return normalized(files)


@st.composite
def triples(draw: st.DrawFn) -> tuple[Files, Files, Files]:
    base = draw(trees)
    return base, draw(edited(base)), draw(edited(base))


@settings(max_examples=400, deadline=None)
@given(triples())
def test_a_merge_never_drops_a_change_silently(triple: tuple[Files, Files, Files]) -> None:
    base, ours, theirs = (flat(f) for f in triple)
    result, merged = Trees().merge(*triple)
    for path in base.keys() | ours.keys() | theirs.keys():
        if covered(path, result.conflicts):
            assert merged.get(path) == ours.get(path)  # undecided: the workspace keeps its version
            continue
        for side in (ours, theirs):
            assert keeps_change(base.get(path), side.get(path), merged.get(path)), path
        if ours.get(path) == base.get(path) == theirs.get(path):
            assert merged.get(path) == base.get(path)
    assert merged.keys() <= base.keys() | ours.keys() | theirs.keys()


@settings(max_examples=200, deadline=None)
@given(triples())
def test_one_sided_and_identical_merges_take_that_side(triple: tuple[Files, Files, Files]) -> None:
    base, x, y = triple
    for args, expected in (((base, x, base), x), ((base, base, y), y), ((base, x, x), x)):
        result, merged = Trees().merge(*args)
        assert result.clean
        assert merged == flat(expected)


@settings(max_examples=200, deadline=None)
@given(triples())
def test_conflicts_are_symmetric(triple: tuple[Files, Files, Files]) -> None:
    base, ours, theirs = triple
    forward, _ = Trees().merge(base, ours, theirs)
    backward, _ = Trees().merge(base, theirs, ours)
    swap = {"modify/delete": "delete/modify", "delete/modify": "modify/delete",
            "file/directory": "directory/file", "directory/file": "file/directory"}
    assert sorted((c.path, swap.get(c.kind, c.kind), c.base, c.theirs, c.ours) for c in forward.conflicts) == \
        sorted((c.path, c.kind, c.base, c.ours, c.theirs) for c in backward.conflicts)


def test_kinds_of_conflicts() -> None:
    base = {"m": (1, MODE_FILE), "d": (1, MODE_FILE), "fd": (1, MODE_FILE), "x": (1, MODE_FILE)}
    ours = {"m": (2, MODE_FILE), "fd": (2, MODE_FILE), "new": (5, MODE_FILE), "x": (1, MODE_EXECUTABLE)}
    theirs = {"m": (3, MODE_FILE), "d": (2, MODE_FILE), "fd/y": (1, MODE_FILE), "new": (6, MODE_FILE),
              "x": (2, MODE_FILE)}
    result, merged = Trees().merge(base, ours, theirs)
    assert {c.path: c.kind for c in result.conflicts} == {
        "m": "modify/modify", "d": "delete/modify", "fd": "file/directory", "new": "add/add"}
    assert merged["x"] == (blob(2), 20, MODE_EXECUTABLE)  # content from theirs, mode from ours
    assert result.combined == 1


def test_renames_are_detected_by_content_hash_only() -> None:
    base = {"old": (1, MODE_FILE), "keep": (2, MODE_FILE)}
    ours = {"new": (1, MODE_FILE), "keep": (2, MODE_FILE)}  # moved
    theirs = {"old": (3, MODE_FILE), "keep": (2, MODE_FILE)}  # modified the original
    result, merged = Trees().merge(base, ours, theirs)
    [conflict] = result.conflicts
    assert (conflict.kind, conflict.renamed_to) == ("delete/modify", "new")
    assert [(r.side, r.old_path, r.new_path) for r in result.renames] == [("ours", "old", "new")]
    result, _ = Trees().merge(base, {"keep": (2, MODE_FILE)}, {"moved/here": (1, MODE_FILE), "keep": (2, MODE_FILE)})
    assert result.clean  # ours deleted, theirs moved the untouched file: delete/delete plus an add


def test_unchanged_subtrees_are_not_read() -> None:
    big = {f"lib/{i}": (i % 5, MODE_FILE) for i in range(50)} | {"src/a": (1, MODE_FILE), "src/b": (2, MODE_FILE)}
    ours = big | {"src/a": (3, MODE_FILE)}
    theirs = big | {"src/b": (4, MODE_FILE)}
    trees = Trees()
    result, merged = trees.merge(big, ours, theirs)
    assert result.clean and result.updates == {"src/b": ("src/b", blob(4), 40, MODE_FILE)}
    assert trees.loads == 6  # root and src on three sides; lib never opened
    trees.loads = 0
    trees.merge(big, ours, big)
    assert trees.loads == 0


# --- text ------------------------------------------------------------------------------------

BASE = b"one\ntwo\nthree\nfour\nfive\n"


def test_non_overlapping_edits_merge_cleanly() -> None:
    merged = merge_text(BASE, b"ONE\ntwo\nthree\nfour\nfive\n", b"one\ntwo\nthree\nfour\nFIVE\n")
    assert merged.clean and merged.content == b"ONE\ntwo\nthree\nfour\nFIVE\n"


def test_overlapping_edits_conflict() -> None:
    merged = merge_text(BASE, b"one\nTWO\nthree\nfour\nfive\n", b"one\n2\nthree\nfour\nfive\n")
    assert not merged.clean and merged.content is None
    assert merged.conflict_markers == b"one\n<<<<<<< workspace\nTWO\n=======\n2\n>>>>>>> main\nthree\nfour\nfive\n"


def test_identical_edits_merge() -> None:
    edit = b"one\ntwo\nTHREE\nfour\nfive\n"
    merged = merge_text(BASE, edit, edit)
    assert merged.clean and merged.content == edit


@pytest.mark.parametrize("binary", [b"a\x00b\n", b"\xff\xfe\n"])
def test_binary_is_not_merged(binary: bytes) -> None:
    merged = merge_text(BASE, binary, BASE + b"six\n")
    assert merged.binary and not merged.clean and merged.content is None


def test_missing_final_newline_keeps_markers_on_their_own_lines() -> None:
    merged = merge_text(b"a", b"b", b"c")
    assert merged.conflict_markers == b"<<<<<<< workspace\nb\n=======\nc\n>>>>>>> main\n"


# --- safety valve ----------------------------------------------------------------------------


def test_mass_change() -> None:
    assert not mass_change(10, 5)
    assert mass_change(10, 6)
    assert mass_change(10, 3, threshold=0.2)
    assert mass_change(1, 1, threshold=1.0)  # emptying always counts
    assert mass_change(10, 0, result_file_count=0)
    assert not mass_change(0, 0)
    with pytest.raises(ValueError):
        mass_change(10, 1, threshold=0)
