"""The pure parts of a sync: conflict-copy names, answers to decisions, AI proposal checks, and
rebuilding a tree from only the directories on changed paths."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastest.domain import sync_plan
from fastest.domain.manifest import Entry
from fastest.domain.merge import Conflict
from fastest.domain.tree import build_manifests, directories_on_paths, rebuild_manifests, update_manifests


def h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("path, expected", [
    ("src/app.py", "src/app.main.py"), ("Makefile", "Makefile.main"), (".env", ".env.main"),
    ("a/b/archive.tar.gz", "a/b/archive.tar.main.gz"), ("lib", "lib.main"),
])
def test_conflict_copy_path(path, expected):
    assert sync_plan.conflict_copy_path(path, lambda p: False) == expected


def test_conflict_copy_path_skips_taken_names():
    taken = {"app.main.py", "app.main-2.py"}
    assert sync_plan.conflict_copy_path("app.py", taken.__contains__) == "app.main-3.py"


def file(name: str, content: str) -> Entry:
    return Entry(name=name, type="file", hash=h(content), size=len(content), mode=0o644)


def test_decisions_answered_merge_into_one_change_set():
    modify = Conflict("a.txt", "modify/modify", file("a.txt", "0"), file("a.txt", "1"), file("a.txt", "2"))
    delete = Conflict("b.txt", "modify/delete", file("b.txt", "0"), file("b.txt", "1"), None)
    decisions = [sync_plan.decision_for(modify, copy_path="a.main.txt"), sync_plan.decision_for(delete)]
    assert decisions[0].option_ids == ["keep_workspace", "take_main", "keep_both"]
    assert decisions[1].option_ids == ["keep_workspace", "take_main"]
    auto = {"c.txt": ("c.txt", h("c"), 1, 0o644)}
    changes = sync_plan.chosen_changes(auto, decisions, {"a.txt": "keep_both", "b.txt": "take_main"})
    assert changes == {**auto, "a.main.txt": ("a.main.txt", h("2"), 1, 0o644), "b.txt": None}
    with pytest.raises(sync_plan.UnansweredDecisions) as missing:
        sync_plan.chosen_changes(auto, decisions, {"a.txt": "ai_combined", "z": "take_main"})
    assert set(missing.value.problems) == {"a.txt", "b.txt", "z"}
    assert sync_plan.Decision.from_json(decisions[0].to_json()) == decisions[0]


@pytest.mark.parametrize("path, proposal, refused", [
    ("a.py", b"x = 1\n", None),
    ("a.py", b"x = 1\n<<<<<<< workspace\n", "contains conflict markers"),
    ("a.py", b"\xff\xfe", "not UTF-8 text"),
    ("c.json", b'{"a": 1}', None),
    ("c.json", b'{"a": 1', "does not parse as JSON: JSONDecodeError"),
    ("c.toml", b'a = "x"\n', None),
    ("c.toml", b"a = \n", "does not parse as TOML: TOMLDecodeError"),
    ("c.yaml", b"a: [1, 2]\n", None),
    ("c.yml", b"a: [1, 2\n", "does not parse as YML: ParserError"),
])
def test_accept_combination(path, proposal, refused):
    assert sync_plan.accept_combination(path, proposal) == refused


def test_strip_code_fence():
    assert sync_plan.strip_code_fence("```python\nx = 1\n```\n") == "x = 1\n"
    assert sync_plan.strip_code_fence("x = 1\n") == "x = 1\n"


names = st.sampled_from(["a", "b", "c", "d.txt", "e.py"])
paths = st.lists(names, min_size=1, max_size=3).map("/".join)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(paths, st.text(max_size=3), max_size=12),
       st.dictionaries(paths, st.one_of(st.none(), st.text(max_size=3)), max_size=6))
def test_rebuilding_from_the_directories_on_changed_paths_equals_a_full_update(files, edits):
    try:
        old = build_manifests([(p, h(c), len(c), 0o644) for p, c in files.items()])
    except ValueError:
        return  # a path that is both a file and a directory: not a tree
    changes = {p: None if c is None else (p, h(c), len(c), 0o644) for p, c in edits.items()}
    try:
        full = update_manifests(old.root, old.manifests, changes)
    except ValueError:
        return

    async def load(digest: str) -> bytes:
        return old.manifests[digest]

    needed = asyncio.run(directories_on_paths(old.root, changes.keys(), load))
    rebuilt = rebuild_manifests(old.root, needed, changes)
    assert rebuilt.root == full.root
    assert set(rebuilt.manifests) <= set(full.manifests)
