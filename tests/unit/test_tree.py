"""Merkle trees of manifests: building, walking and diffing, including what gets loaded."""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any, AsyncIterator

import pytest
from hypothesis import given, settings, strategies as st

from fastest.domain.manifest import (
    MODE_EXECUTABLE,
    MODE_FILE,
    Entry,
    Manifest,
    ManifestError,
    entry_of_chunk,
    is_sha256_hex,
    parse_manifest,
    parse_stored_manifest,
    sha256_hex,
)
from fastest.domain.tree import (
    EMPTY_TREE_HASH,
    BuiltTree,
    Change,
    build_manifests,
    build_tree,
    diff,
    directories_of,
    find,
    memory_loader,
    path_sort_key,
    update_manifests,
    update_tree,
    walk,
)

# --- helpers ---------------------------------------------------------------------------------

Files = dict[str, tuple[int, int]]  # path -> (content number, mode)


def blob(content: int) -> str:
    return sha256_hex(f"content {content}".encode())


def size_of(content: int) -> int:
    return content * 10


def records(files: Files) -> list[tuple[str, str, int, int]]:
    return [(path, blob(content), size_of(content), mode) for path, (content, mode) in files.items()]


def build(files: Files) -> BuiltTree:
    return build_manifests(records(files))


def entry_of(path: str, content: int, mode: int = MODE_FILE) -> Entry:
    return Entry(name=path.rsplit("/", 1)[-1], type="file", hash=blob(content), size=size_of(content), mode=mode)


class CountingLoader:
    """A memory loader that records every hash it is asked for."""

    def __init__(self, *trees: BuiltTree, validate: bool = True) -> None:
        self.manifests: dict[str, bytes] = {}
        for tree in trees:
            self.manifests.update(tree.manifests)
        self._load = memory_loader(self.manifests, validate=validate)
        self.loaded: list[str] = []

    async def __call__(self, manifest_hash: str) -> Manifest:
        self.loaded.append(manifest_hash)
        return await self._load(manifest_hash)


def collect(stream: AsyncIterator[Any]) -> list[Any]:
    async def drain() -> list[Any]:
        return [item async for item in stream]

    return asyncio.run(drain())


def walked(tree: BuiltTree, load: Any = None) -> list[tuple[str, Entry]]:
    return collect(walk(tree.root, load or CountingLoader(tree)))


def diffed(old: BuiltTree | None, new: BuiltTree | None, load: Any = None) -> list[Change]:
    trees = [t for t in (old, new) if t is not None]
    return collect(diff(old and old.root, new and new.root, load or CountingLoader(*trees)))


def apply(files: dict[str, Entry], changes: list[Change]) -> dict[str, Entry]:
    """Apply changes to a path -> entry map, checking each is consistent with what is there."""
    result = dict(files)
    for change in changes:
        if change.kind == "added":
            assert change.old is None and change.new is not None and change.path not in result
            result[change.path] = change.new
        elif change.kind == "deleted":
            assert change.new is None and result.pop(change.path) == change.old
        else:
            assert result[change.path] == change.old != change.new
            result[change.path] = change.new
    return result


def as_entries(files: Files) -> dict[str, Entry]:
    return {path: entry_of(path, content, mode) for path, (content, mode) in files.items()}


# --- strategies ------------------------------------------------------------------------------

# Few names, chosen so that byte order and path order disagree ("a-" < "a/...") and so that the
# same name is often a file on one side and a directory on the other.
NAMES = st.sampled_from(["a", "b", "a-", "ab", "é", "Z"])
CONTENT = st.tuples(st.integers(0, 2), st.sampled_from([MODE_FILE, MODE_EXECUTABLE]))


def consistent(paths: dict[str, tuple[int, int]]) -> Files:
    """Drop paths that would make a name both a file and a directory (first one wins)."""
    files: Files = {}
    directories: set[str] = set()
    for path, content in paths.items():
        parts = path.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if path in directories or prefixes & files.keys():
            continue
        files[path] = content
        directories |= prefixes
    return files


file_sets = st.dictionaries(st.lists(NAMES, min_size=1, max_size=4).map("/".join), CONTENT, max_size=25).map(consistent)


@st.composite
def tree_pairs(draw: st.DrawFn) -> tuple[Files, Files]:
    """Two trees: independent, or the second a mutation of the first (so subtrees are shared)."""
    old = draw(file_sets)
    if draw(st.booleans()):
        return old, draw(file_sets)
    new = {path: content for path, content in old.items() if draw(st.integers(0, 9)) > 1}  # ~20% deleted
    for path in list(new):
        if draw(st.integers(0, 9)) == 0:
            new[path] = draw(CONTENT)
    new.update(draw(file_sets))
    return old, consistent(new)


# --- building --------------------------------------------------------------------------------


def test_an_empty_tree_is_the_empty_manifest():
    tree = build_manifests([])
    assert tree.root == EMPTY_TREE_HASH
    assert tree.manifests == {EMPTY_TREE_HASH: b'{"entries":[],"version":1}'}
    assert parse_manifest(tree.manifests[EMPTY_TREE_HASH]).entries == ()


def test_build_makes_one_manifest_per_directory_children_first():
    tree = build({"README.md": (1, MODE_FILE), "src/app.py": (2, MODE_FILE), "src/lib/util.py": (0, MODE_EXECUTABLE)})
    assert len(tree.manifests) == 3
    assert list(tree.manifests)[-1] == tree.root
    root = parse_manifest(tree.manifests[tree.root])
    assert [(e.name, e.type) for e in root.entries] == [("README.md", "file"), ("src", "tree")]
    src = parse_manifest(tree.manifests[root.entries[1].hash])
    assert [(e.name, e.type) for e in src.entries] == [("app.py", "file"), ("lib", "tree")]
    lib = parse_manifest(tree.manifests[src.entries[1].hash])
    assert lib.entries == (entry_of("util.py", 0, MODE_EXECUTABLE),)


def test_identical_directories_are_stored_once():
    tree = build({"x/f": (1, MODE_FILE), "y/f": (1, MODE_FILE)})
    root = parse_manifest(tree.manifests[tree.root])
    assert root.entries[0].hash == root.entries[1].hash
    assert len(tree.manifests) == 2


@given(file_sets, st.randoms())
def test_build_is_canonical_and_independent_of_input_order(files, rng):
    tree = build(files)
    shuffled = records(files)
    rng.shuffle(shuffled)
    assert build_manifests(shuffled) == tree
    seen: set[str] = set()
    for manifest_hash, data in tree.manifests.items():
        manifest = parse_manifest(data)  # round-trips: canonical, valid
        assert manifest.canonical_bytes() == data and sha256_hex(data) == manifest_hash
        assert parse_stored_manifest(data, manifest_hash) == manifest
        assert all(child in seen for child in manifest.child_hashes()[0])  # children before parents
        seen.add(manifest_hash)
    assert list(tree.manifests)[-1] == tree.root


# --- updating --------------------------------------------------------------------------------


def assert_children_first(tree: BuiltTree) -> None:
    seen: set[str] = set()
    for manifest_hash, data in tree.manifests.items():
        assert sha256_hex(data) == manifest_hash
        assert all(child in seen for child in parse_manifest(data).child_hashes()[0])
        seen.add(manifest_hash)


@st.composite
def edits(draw: st.DrawFn) -> tuple[Files, dict[str, tuple[int, int] | None]]:
    """A tree and changes to it: edits, adds, deletes (some of whole directories, some of paths that
    are not files), re-stating unchanged files, and file <-> directory swaps, in any order."""
    old, new = draw(tree_pairs())
    changes: dict[str, tuple[int, int] | None] = {path: None for path in old if path not in new}
    changes.update({path: content for path, content in new.items() if old.get(path) != content})
    for path in old:
        if path in new and draw(st.integers(0, 9)) == 0:
            changes[path] = new[path]  # "changed" to what it was
    for path in draw(st.lists(st.lists(NAMES, min_size=1, max_size=3).map("/".join), max_size=3)):
        changes.setdefault(path, None)  # deleting a directory's path or a missing one: no effect
    order = draw(st.permutations(list(changes)))
    return old, {path: changes[path] for path in order}


def applied(old: Files, changes: dict[str, tuple[int, int] | None]) -> Files:
    files = dict(old)
    for path, content in changes.items():
        if content is None:
            files.pop(path, None)
        else:
            files[path] = content
    return files


def change_records(changes: dict[str, tuple[int, int] | None]) -> dict[str, Any]:
    return {path: None if c is None else (path, blob(c[0]), size_of(c[0]), c[1]) for path, c in changes.items()}


@settings(max_examples=400)
@given(edits())
def test_update_is_build_of_the_changed_file_list(case):
    old, changes = case
    before = build(old)
    after = update_manifests(before.root, before.manifests, change_records(changes))
    assert after == build(applied(old, changes))
    assert_children_first(after)
    assert list(after.manifests)[-1] == after.root


@settings(max_examples=400)
@given(edits(), st.integers(1, 3))
def test_update_tree_keeps_the_directories_that_a_build_would_give(case, times):
    """`update_tree` (what push uses) finds the untouched manifests through the directories it is
    given; after one or several updates in a row, tree and directories are a fresh build's."""
    old, changes = case
    before, directories = build_tree(records(old))
    assert directories == directories_of(before.root, before.manifests)
    files = old
    tree = before
    for _ in range(times):
        tree, directories = update_tree(tree.root, tree.manifests, directories, change_records(changes))
        files = applied(files, changes)
        expected, expected_directories = build_tree(records(files))
        assert tree == expected
        assert directories == expected_directories
        assert_children_first(tree)
        assert list(tree.manifests)[-1] == tree.root
        changes = {path: None if content is None else (content[0] + 1, content[1]) for path, content in changes.items()}


def test_update_tree_drops_a_directory_replaced_by_a_file_with_what_was_below_it():
    tree, directories = build_tree(records({"a/b/c": (1, MODE_FILE), "d": (2, MODE_FILE)}))
    assert set(directories) == {"", "a", "a/b"}
    after, directories = update_tree(tree.root, tree.manifests, directories,
                                     change_records({"a/b/c": None, "a": (3, MODE_FILE)}))
    assert after == build({"a": (3, MODE_FILE), "d": (2, MODE_FILE)})
    assert directories == {"": after.root}
    assert len(after.manifests) == 1


@settings(max_examples=300)
@given(file_sets, st.dictionaries(st.lists(NAMES, min_size=1, max_size=4).map("/".join), st.none() | CONTENT, max_size=6))
def test_update_refuses_exactly_what_build_refuses(old, changes):
    """Arbitrary changes, including a file below a kept file or over a kept directory."""
    before = build(old)
    try:
        expected: BuiltTree | None = build(applied(old, changes))
    except ManifestError:
        expected = None
    if expected is None:
        with pytest.raises(ManifestError):
            update_manifests(before.root, before.manifests, change_records(changes))
    else:
        assert update_manifests(before.root, before.manifests, change_records(changes)) == expected


def test_update_replaces_only_the_manifests_on_the_changed_path():
    files = {f"d{i}/d{j}/d{k}/f{f}": (number, MODE_FILE) for number, (i, j, k, f) in enumerate(
        (i, j, k, f) for i in range(3) for j in range(3) for k in range(3) for f in range(2))}  # no two directories alike
    before = build(files)
    changed = "d1/d2/d0/f1"
    after = update_manifests(before.root, before.manifests, change_records({changed: (99, MODE_FILE)}))
    assert after == build({**files, changed: (99, MODE_FILE)})
    assert len(set(after.manifests) - set(before.manifests)) == 4  # the root, d1, d1/d2, d1/d2/d0
    assert len(set(before.manifests) - set(after.manifests)) == 4
    assert_children_first(after)


def test_update_to_nothing_and_from_nothing():
    tree = build({"a/b": (1, MODE_FILE), "c": (2, MODE_FILE)})
    emptied = update_manifests(tree.root, tree.manifests, {"a/b": None, "c": None})
    assert emptied == build_manifests([])
    assert update_manifests(EMPTY_TREE_HASH, {}, change_records({"a/b": (1, MODE_FILE), "c": (2, MODE_FILE)})) == tree


def test_update_keeps_a_directory_shared_with_an_unchanged_one():
    tree = build({"x/f": (1, MODE_FILE), "y/f": (1, MODE_FILE)})
    after = update_manifests(tree.root, tree.manifests, change_records({"x/f": (2, MODE_FILE)}))
    assert after == build({"x/f": (2, MODE_FILE), "y/f": (1, MODE_FILE)})
    assert len(after.manifests) == 3


def test_update_refuses_a_record_for_another_path():
    tree = build({"a": (1, MODE_FILE)})
    with pytest.raises(ManifestError):
        update_manifests(tree.root, tree.manifests, {"a": ("b", blob(1), 10, MODE_FILE)})


@pytest.mark.parametrize(
    "paths, field",
    [
        (["a", "a"], "files.1.path"),  # duplicate
        (["a", "a/b"], "files.1.path"),  # below a file
        (["a/b", "a"], "files.1.path"),  # a file where a directory is
        (["a/b/c", "a/b"], "files.1.path"),
        ([""], "files.0.path"),
        (["/a"], "files.0.path"),
        (["a/"], "files.0.path"),
        (["a//b"], "files.0.path"),
        (["a/./b"], "files.0.path"),
        (["../b"], "files.0.path"),
        (["a\x00b"], "files.0.path"),
        (["x" * 256], "files.0.path"),
    ],
)
def test_build_refuses_bad_paths(paths, field):
    with pytest.raises(ManifestError) as caught:
        build_manifests([(path, blob(1), 10, MODE_FILE) for path in paths])
    assert caught.value.field == field


@pytest.mark.parametrize(
    "record, field",
    [
        (("a", "A" * 64, 1, MODE_FILE), "files.0.hash"),
        (("a", blob(1)[:-1], 1, MODE_FILE), "files.0.hash"),
        (("a", blob(1), -1, MODE_FILE), "files.0.size"),
        (("a", blob(1), True, MODE_FILE), "files.0.size"),
        (("a", blob(1), 2**53, MODE_FILE), "files.0.size"),
        (("a", blob(1), 1, 0o600), "files.0.mode"),
        ((b"a", blob(1), 1, MODE_FILE), "files.0.path"),
    ],
)
def test_build_refuses_bad_files(record, field):
    with pytest.raises(ManifestError) as caught:
        build_manifests([record])
    assert caught.value.field == field


def test_build_handles_deep_trees_without_recursion():
    path = "/".join(["d"] * 2000) + "/f"
    tree = build_manifests([(path, blob(1), 10, MODE_FILE)])
    assert len(tree.manifests) == 2001
    assert [p for p, _ in walked(tree)] == [path]


def test_sha256_hex_is_exactly_64_lowercase_hex_digits():
    good = "0123456789abcdef" * 4
    assert is_sha256_hex(good)
    for bad in [good.upper(), good[:-1], good + "0", good[:-1] + "\n", good[:-1] + "g", "٣" * 64, good.encode(), None]:
        assert not is_sha256_hex(bad)


# --- walking ---------------------------------------------------------------------------------


def test_walk_yields_files_in_tree_order():
    files = {"a-c": (1, MODE_FILE), "a/b": (2, MODE_FILE), "a/a/z": (0, MODE_FILE), "B": (1, MODE_FILE), "é": (1, MODE_FILE)}
    assert [path for path, _ in walked(build(files))] == ["B", "a/a/z", "a/b", "a-c", "é"]


def test_walk_of_the_empty_tree_yields_nothing():
    assert walked(build_manifests([])) == []


def test_walk_with_a_prefix():
    tree = build({"x/y": (1, MODE_FILE)})
    assert [p for p, _ in collect(walk(tree.root, CountingLoader(tree), prefix="src/"))] == ["src/x/y"]


@given(file_sets)
def test_walk_yields_exactly_the_files_loading_each_directory_once(files):
    tree = build(files)
    load = CountingLoader(tree)
    result = walked(tree, load)
    assert [path for path, _ in result] == sorted(files, key=path_sort_key)
    assert dict(result) == as_entries(files)
    directories = {""} | {path.rsplit("/", 1)[0] for path in files if "/" in path}
    directories |= {"/".join(d.split("/")[:i]) for d in directories for i in range(1, d.count("/") + 1)}
    assert len(load.loaded) == (len(directories) if files else 0)  # the empty tree needs no load


def test_walk_reports_a_missing_manifest():
    tree = build({"x/y": (1, MODE_FILE)})
    del tree.manifests[list(tree.manifests)[0]]
    with pytest.raises(ManifestError) as caught:
        walked(tree)
    assert caught.value.code == "manifest_missing"


def test_find_an_entry_by_path_loading_only_the_way_there():
    tree = build(three_levels() | {"top.md": (2, MODE_FILE)})
    load = CountingLoader(tree)
    assert asyncio.run(find(tree.root, "d1/d2/d0/f1", load)) == entry_of("f1", 1)
    assert load.loaded == expected_path_hashes(tree, "d1/d2/d0")
    assert asyncio.run(find(tree.root, "top.md", load)) == entry_of("top.md", 2)
    directory = asyncio.run(find(tree.root, "d1/d2", load))
    assert directory is not None and directory.is_tree
    for missing in ["nope", "d1/nope", "d1/d2/d0/f1/x", "top.md/x", "", "d1/", "/d1"]:
        assert asyncio.run(find(tree.root, missing, load)) is None
    assert asyncio.run(find(EMPTY_TREE_HASH, "a", load)) is None


# --- diffing ---------------------------------------------------------------------------------


def test_diff_of_a_tree_with_itself_loads_nothing():
    tree = build({"a/b/c": (1, MODE_FILE), "d": (2, MODE_FILE)})
    load = CountingLoader(tree)
    assert diffed(tree, tree, load) == []
    assert load.loaded == []


def test_diff_of_empty_trees():
    assert diffed(None, None) == []
    empty = build_manifests([])
    assert diffed(empty, None) == [] and diffed(None, empty) == []


def test_the_empty_tree_is_known_without_loading():
    tree = build({"a": (1, MODE_FILE)})
    load = CountingLoader(tree)  # holds no empty manifest
    assert collect(walk(EMPTY_TREE_HASH, load)) == []
    assert [c.kind for c in collect(diff(EMPTY_TREE_HASH, tree.root, load))] == ["added"]
    assert [c.kind for c in collect(diff(tree.root, EMPTY_TREE_HASH, load))] == ["deleted"]
    assert collect(diff(None, EMPTY_TREE_HASH, load)) == []
    assert load.loaded == [tree.root, tree.root]


def test_diff_from_and_to_nothing():
    tree = build({"a/b": (1, MODE_FILE), "c": (2, MODE_EXECUTABLE)})
    assert diffed(None, tree) == [
        Change("a/b", "added", None, entry_of("b", 1)),
        Change("c", "added", None, entry_of("c", 2, MODE_EXECUTABLE)),
    ]
    assert [(c.path, c.kind) for c in diffed(tree, None)] == [("a/b", "deleted"), ("c", "deleted")]


def test_diff_reports_content_and_mode_changes_as_modified():
    old = build({"s/run.sh": (1, MODE_FILE), "s/data": (1, MODE_FILE), "s/same": (2, MODE_FILE)})
    new = build({"s/run.sh": (1, MODE_EXECUTABLE), "s/data": (2, MODE_FILE), "s/same": (2, MODE_FILE)})
    assert diffed(old, new) == [
        Change("s/data", "modified", entry_of("data", 1), entry_of("data", 2)),
        Change("s/run.sh", "modified", entry_of("run.sh", 1), entry_of("run.sh", 1, MODE_EXECUTABLE)),
    ]


def test_a_file_replaced_by_a_directory():
    old = build({"x": (1, MODE_FILE), "y": (1, MODE_FILE)})
    new = build({"x/a": (1, MODE_FILE), "x/b/c": (2, MODE_FILE), "y": (1, MODE_FILE)})
    assert [(c.path, c.kind) for c in diffed(old, new)] == [("x", "deleted"), ("x/a", "added"), ("x/b/c", "added")]
    assert [(c.path, c.kind) for c in diffed(new, old)] == [("x", "added"), ("x/a", "deleted"), ("x/b/c", "deleted")]


def test_a_file_whose_content_is_a_manifest_is_not_its_directory():
    # Same hash, different type: a blob can hold exactly a manifest's bytes.
    inner = build({"f": (1, MODE_FILE)})
    old = build_manifests([("x", inner.root, len(inner.manifests[inner.root]), MODE_FILE)])
    new = build({"x/f": (1, MODE_FILE)})
    assert [(c.path, c.kind) for c in diffed(old, new)] == [("x", "deleted"), ("x/f", "added")]


def test_diff_is_in_tree_order():
    old = build({"a-c": (1, MODE_FILE), "a/b": (1, MODE_FILE)})
    new = build({"a-c": (2, MODE_FILE), "a/b": (2, MODE_FILE)})
    assert [c.path for c in diffed(old, new)] == ["a/b", "a-c"]


def three_levels(changed: int | None = None) -> Files:
    """3 × 3 × 3 directories of 3 files; optionally one file (by number) with other content."""
    files: Files = {}
    for number, (i, j, k, f) in enumerate((i, j, k, f) for i in range(3) for j in range(3) for k in range(3) for f in range(3)):
        files[f"d{i}/d{j}/d{k}/f{f}"] = (2 if number == changed else 1, MODE_FILE)
    return files


def test_diff_loads_only_the_manifests_on_the_changed_path():
    old, new = build(three_levels()), build(three_levels(changed=40))  # d1/d1/d1/f1
    load = CountingLoader(old, new)
    assert [(c.path, c.kind) for c in diffed(old, new, load)] == [("d1/d1/d1/f1", "modified")]
    assert len(load.loaded) == 8 == len(set(load.loaded))  # 4 levels × 2 sides, each once
    assert set(load.loaded) == set(expected_path_hashes(old, "d1/d1/d1")) | set(expected_path_hashes(new, "d1/d1/d1"))


def directory_hashes(tree: BuiltTree) -> dict[str, str]:
    """Every directory of a tree by path ("" for the root) -> its manifest hash."""
    found, pending = {}, [("", tree.root)]
    while pending:
        path, manifest_hash = pending.pop()
        found[path] = manifest_hash
        for entry in parse_manifest(tree.manifests[manifest_hash]).entries:
            if entry.is_tree:
                pending.append((f"{path}/{entry.name}".lstrip("/"), entry.hash))
    return found


def expected_path_hashes(tree: BuiltTree, directory: str) -> list[str]:
    """The manifests from the root down to `directory`."""
    hashes = [tree.root]
    for name in directory.split("/"):
        manifest = parse_manifest(tree.manifests[hashes[-1]])
        hashes.append(next(e.hash for e in manifest.entries if e.name == name))
    return hashes


def test_adding_a_subtree_loads_only_that_subtree_and_the_path_to_it():
    old = build(three_levels())
    new_files = three_levels() | {"d0/new/x/y": (1, MODE_FILE)}
    new = build(new_files)
    load = CountingLoader(old, new)
    assert [(c.path, c.kind) for c in diffed(old, new, load)] == [("d0/new/x/y", "added")]
    # Roots and d0 on both sides, then the new subtree (new, new/x) on the new side only.
    assert Counter(load.loaded) == Counter(
        expected_path_hashes(old, "d0") + expected_path_hashes(new, "d0") + expected_path_hashes(new, "d0/new/x")[2:]
    )


@settings(max_examples=300)
@given(tree_pairs())
def test_diff_turns_one_tree_into_the_other(pair):
    old_files, new_files = pair
    old, new = build(old_files), build(new_files)
    load = CountingLoader(old, new)
    changes = diffed(old, new, load)
    assert apply(as_entries(old_files), changes) == as_entries(new_files)
    keys = [path_sort_key(c.path) for c in changes]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # tree order, each path once
    # The reverse diff is the inverse, change for change.
    inverse = {"added": "deleted", "deleted": "added", "modified": "modified"}
    assert diffed(new, old) == [Change(c.path, inverse[c.kind], c.new, c.old) for c in changes]
    # Exactly the directories whose manifest differs at the same path on the other side are loaded,
    # once each; a directory equal on both sides is skipped with everything below it (and the
    # empty tree is never loaded).
    old_dirs, new_dirs = directory_hashes(old), directory_hashes(new)
    expected = [h for p, h in old_dirs.items() if new_dirs.get(p) != h] + [h for p, h in new_dirs.items() if old_dirs.get(p) != h]
    assert Counter(load.loaded) == Counter(h for h in expected if h != EMPTY_TREE_HASH)


@given(file_sets)
def test_diff_against_nothing_is_the_walk(files):
    tree = build(files)
    assert [(c.path, c.new) for c in diffed(None, tree)] == walked(tree)
    assert [(c.path, c.old) for c in diffed(tree, None)] == walked(tree)


def test_diff_can_be_abandoned_midway():
    old, new = build(three_levels()), build({})

    async def first() -> Change:
        stream = diff(old.root, new.root, CountingLoader(old, new))
        change = await anext(stream)
        await stream.aclose()
        return change

    assert asyncio.run(first()).path == "d0/d0/d0/f0"


# --- loaders ---------------------------------------------------------------------------------


def test_memory_loader_checks_hashes_and_validates():
    good = build({"a": (1, MODE_FILE)})
    data = good.manifests[good.root]
    not_canonical = json.dumps(json.loads(data), indent=1).encode()
    swapped = {good.root: b'{"entries":[],"version":1}', sha256_hex(not_canonical): not_canonical}
    for validate in (True, False):
        with pytest.raises(ManifestError) as caught:
            asyncio.run(memory_loader(swapped, validate=validate)(good.root))
        assert caught.value.code == "manifest_corrupt"
    with pytest.raises(ManifestError) as caught:
        asyncio.run(memory_loader(swapped)(sha256_hex(not_canonical)))
    assert caught.value.code == "manifest_not_canonical"
    # The stored-manifest path trusts what matches its hash (it was validated on the way in).
    assert asyncio.run(memory_loader(swapped, validate=False)(sha256_hex(not_canonical))) == parse_manifest(data)


def test_parse_stored_manifest_matches_parse_manifest_on_a_big_directory():
    rng = random.Random(7)
    files = {f"dir/{rng.randrange(10**9)}-é.{ext}": (rng.randrange(3), MODE_FILE) for ext in ("py", "md") for _ in range(300)}
    tree = build(files)
    for manifest_hash, data in tree.manifests.items():
        assert parse_stored_manifest(data, manifest_hash) == parse_manifest(data)


# Names that look like the canonical encoding's own punctuation: quotes, backslashes, the text that
# separates two entries, control characters (escaped in JSON) and non-ASCII (kept as UTF-8).
AWKWARD_NAMES = ['a"b', "back\\slash", '},{"hash":"x', 'end\\', '"', "tab\there", "line\nbreak", "é日本", "\x1f"]


def test_entries_compared_as_bytes_parse_like_the_whole_manifest():
    """Diff and merge cut a stored manifest at entry boundaries and parse only the pieces that
    differ: every piece parses to the entry the whole document holds, whatever the name."""
    files = {f"d/{name}": (index + 1, MODE_FILE) for index, name in enumerate(AWKWARD_NAMES)}
    files.update({f"{name}/f": (index + 20, MODE_EXECUTABLE) for index, name in enumerate(AWKWARD_NAMES)})
    tree = build(files)
    for manifest_hash, data in tree.manifests.items():
        stored = parse_stored_manifest(data, manifest_hash)
        assert [entry_of_chunk(chunk) for chunk in stored.entry_chunks()] == list(parse_manifest(data).entries)


def test_diff_of_awkward_names_is_the_diff_of_their_files():
    old_files = {f"d/{name}": (index + 1, MODE_FILE) for index, name in enumerate(AWKWARD_NAMES)}
    new_files = dict(old_files)
    new_files['d/a"b'] = (99, MODE_FILE)  # modified
    del new_files['d/},{"hash":"x']  # deleted
    new_files["d/new\\one"] = (7, MODE_FILE)  # added
    new_files["d/tab\there"] = (4, MODE_EXECUTABLE)  # mode only
    old, new = build(old_files), build(new_files)
    changes = collect(diff(old.root, new.root, CountingLoader(old, new, validate=False)))
    assert {(c.path, c.kind) for c in changes} == {
        ('d/a"b', "modified"), ('d/},{"hash":"x', "deleted"), ("d/new\\one", "added"), ("d/tab\there", "modified"),
    }
    assert [c.path for c in changes] == sorted((c.path for c in changes), key=path_sort_key)
