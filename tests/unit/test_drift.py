"""Drift metrics: counts, bytes, overlap, risk thresholds at their boundaries, staleness levels."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given

from fastest.domain.drift import (
    HIGH_CHANGED_FILES,
    MEDIUM_CHANGED_FILES,
    RATIO_MIN_FILES,
    STALE_AFTER,
    VERY_STALE_AFTER,
    assess_risk,
    change_bytes,
    extension,
    overlap_ratio,
    staleness,
    summarize,
    summarize_async,
)
from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE, Entry, sha256_hex
from fastest.domain.tree import Change, build_manifests, diff, memory_loader

from .test_tree import build, tree_pairs


def file(name: str, content: str = "x", size: int = 10, mode: int = MODE_FILE) -> Entry:
    return Entry(name=name, type="file", hash=sha256_hex(content.encode()), size=size, mode=mode)


def added(path: str, size: int = 10) -> Change:
    return Change(path, "added", None, file(path.rsplit("/", 1)[-1], size=size))


def deleted(path: str, size: int = 10) -> Change:
    return Change(path, "deleted", file(path.rsplit("/", 1)[-1], size=size), None)


def modified(path: str, old_size: int = 10, new_size: int = 10) -> Change:
    name = path.rsplit("/", 1)[-1]
    return Change(path, "modified", file(name, "old", old_size), file(name, "new", new_size))


# --- summaries -------------------------------------------------------------------------------


def test_a_hand_made_drift():
    changes = [
        added("docs/guide.MD", size=100),
        modified("src/app.py", old_size=300, new_size=200),
        Change("src/run.sh", "modified", file("run.sh", size=50), file("run.sh", size=50, mode=MODE_EXECUTABLE)),
        deleted("src/old.py", size=40),
        deleted("Makefile", size=7),
    ]
    summary = summarize(changes, old_file_count=10, new_file_count=9)
    assert (summary.files_added, summary.files_modified, summary.files_deleted) == (1, 2, 2)
    assert summary.files_unchanged == 6 and summary.files_changed == 5
    assert summary.bytes_changed == 100 + 300 + 0 + 40 + 7  # added new, modified max, mode-only 0, deleted old
    assert summary.overlap_ratio == 6 / 11  # 6 unchanged of 11 paths (10 old + 1 added)
    assert summary.risk_level == "low"  # 11 paths: too few for the share rules
    assert summary.counts_by_extension == {"": 1, ".md": 1, ".py": 2, ".sh": 1}
    assert summary.added_paths == ["docs/guide.MD"]
    assert summary.modified_paths == ["src/app.py", "src/run.sh"]
    assert summary.deleted_paths == ["src/old.py", "Makefile"]
    assert not summary.truncated


def test_to_json_is_plain_json():
    summary = summarize([added("a.py"), deleted("b.txt")], old_file_count=3, new_file_count=3)
    document = json.loads(json.dumps(summary.to_json()))
    assert document == {
        "files_added": 1,
        "files_modified": 0,
        "files_deleted": 1,
        "files_unchanged": 2,
        "bytes_changed": 20,
        "overlap_ratio": 0.5,
        "risk_level": "low",
        "counts_by_extension": {".py": 1, ".txt": 1},
        "paths": {"added": ["a.py"], "modified": [], "deleted": ["b.txt"]},
        "truncated": False,
    }


def test_path_lists_are_truncated_in_tree_order():
    changes = [added("a"), modified("b"), deleted("c"), added("d")]
    summary = summarize(changes, old_file_count=2, new_file_count=3, path_limit=2)
    assert (summary.added_paths, summary.modified_paths, summary.deleted_paths) == (["a"], ["b"], [])
    assert summary.truncated
    assert summary.files_added == 2 and summary.counts_by_extension == {"": 4}  # counts are complete
    assert not summarize(changes, old_file_count=2, new_file_count=3, path_limit=4).truncated
    assert summarize(changes, old_file_count=2, new_file_count=3, path_limit=0).truncated
    with pytest.raises(ValueError):
        summarize(changes, old_file_count=2, new_file_count=3, path_limit=-1)


def test_no_changes():
    summary = summarize([], old_file_count=5, new_file_count=5)
    assert summary.risk_level == "none" and summary.overlap_ratio == 1.0 and summary.bytes_changed == 0
    empty = summarize([], old_file_count=0, new_file_count=0)
    assert empty.risk_level == "none" and empty.overlap_ratio == 1.0  # two empty trees are identical


def test_nothing_shared():
    summary = summarize([deleted("a"), added("b")], old_file_count=1, new_file_count=1)
    assert summary.overlap_ratio == 0.0


@pytest.mark.parametrize("old_count, new_count", [(1, 1), (0, 1), (3, 1), (2, 2)])
def test_counts_must_agree_with_the_changes(old_count, new_count):
    with pytest.raises(ValueError):
        summarize([modified("a"), added("b")], old_file_count=old_count, new_file_count=new_count)


@pytest.mark.parametrize(
    "path, expected",
    [("a.py", ".py"), ("src/A.PY", ".py"), ("Makefile", ""), (".gitignore", ""), ("x/a.tar.gz", ".gz"), ("v1.2/readme", "")],
)
def test_extension(path, expected):
    assert extension(path) == expected


def test_change_bytes():
    assert change_bytes(added("a", size=5)) == 5
    assert change_bytes(deleted("a", size=6)) == 6
    assert change_bytes(modified("a", old_size=3, new_size=9)) == 9
    assert change_bytes(modified("a", old_size=9, new_size=3)) == 9


def test_summarize_a_real_tree_diff_streaming():
    old = build({"src/a.py": (1, MODE_FILE), "src/b.py": (2, MODE_FILE), "README": (1, MODE_FILE)})
    new = build({"src/a.py": (2, MODE_FILE), "docs/x.md": (1, MODE_FILE), "README": (1, MODE_FILE)})
    load = memory_loader(old.manifests | new.manifests)
    summary = asyncio.run(summarize_async(diff(old.root, new.root, load), old_file_count=3, new_file_count=3))
    assert (summary.added_paths, summary.modified_paths, summary.deleted_paths) == (["docs/x.md"], ["src/a.py"], ["src/b.py"])
    assert summary.bytes_changed == 10 + 20 + 20 and summary.overlap_ratio == 1 / 4


@given(tree_pairs())
def test_summary_invariants(pair):
    old_files, new_files = pair
    old, new = build(old_files), build(new_files)
    load = memory_loader(old.manifests | new.manifests)

    async def both_ways():
        forward = await summarize_async(diff(old.root, new.root, load), old_file_count=len(old_files), new_file_count=len(new_files))
        backward = await summarize_async(diff(new.root, old.root, load), old_file_count=len(new_files), new_file_count=len(old_files))
        return forward, backward

    forward, backward = asyncio.run(both_ways())
    assert forward.files_unchanged + forward.files_modified + forward.files_deleted == len(old_files)
    assert forward.files_unchanged == len({p for p in old_files.keys() & new_files.keys() if old_files[p] == new_files[p]})
    assert sum(forward.counts_by_extension.values()) == forward.files_changed
    assert 0.0 <= forward.overlap_ratio <= 1.0 and (forward.overlap_ratio == 1.0) == (forward.files_changed == 0)
    # Symmetric measures.
    assert (forward.files_added, forward.files_deleted) == (backward.files_deleted, backward.files_added)
    assert forward.bytes_changed == backward.bytes_changed and forward.overlap_ratio == backward.overlap_ratio


# --- risk ------------------------------------------------------------------------------------


def risk(added: int = 0, modified: int = 0, deleted: int = 0, old: int = 100) -> str:
    return assess_risk(files_added=added, files_modified=modified, files_deleted=deleted, old_file_count=old)


def test_risk_none_and_low():
    assert risk() == "none"
    assert risk(modified=1) == "low"
    assert risk(added=1, old=0) == "low"


def test_emptying_a_tree_is_always_high():
    assert risk(deleted=1, old=1) == "high"
    assert risk(deleted=100, old=100) == "high"
    assert risk(deleted=1, added=1, old=1) == "low"  # replaced, not emptied (and tiny)


@pytest.mark.parametrize(
    "changed, expected",
    [(MEDIUM_CHANGED_FILES - 1, "low"), (MEDIUM_CHANGED_FILES, "medium"), (HIGH_CHANGED_FILES - 1, "medium"), (HIGH_CHANGED_FILES, "high")],
)
def test_risk_by_number_of_changed_files(changed, expected):
    # In a huge tree, so the shares stay tiny: only the counts decide.
    assert risk(modified=changed, old=1_000_000) == expected


@pytest.mark.parametrize(
    "modified, expected",
    [(4, "low"), (5, "medium"), (10, "medium"), (11, "high")],  # overlap 16/20 = 0.8, 15/20, 10/20 = 0.5, 9/20
)
def test_risk_by_overlap(modified, expected):
    assert risk(modified=modified, old=20) == expected


@pytest.mark.parametrize(
    "deleted, expected",
    [(5, "low"), (6, "medium"), (25, "medium"), (26, "high")],  # of 100: 5% and 25% are not above the line
)
def test_risk_by_deleted_share(deleted, expected):
    # Overlap alone would say low for 5 and 6, medium for 25 and 26: the deleted share decides.
    assert risk(deleted=deleted, old=100) == expected


def test_share_rules_need_enough_paths():
    assert RATIO_MIN_FILES == 20
    assert risk(modified=18, old=19) == "low"  # 19 paths: only the counts apply
    assert risk(modified=18, old=20) == "high"
    assert risk(modified=1, added=1, old=18) == "low"  # 19 paths
    assert risk(modified=10, added=1, old=19) == "high"  # 20 paths, overlap 9/20


def test_overlap_ratio_from_counts():
    assert overlap_ratio(files_added=0, files_modified=0, files_deleted=0, old_file_count=0) == 1.0
    assert overlap_ratio(files_added=5, files_modified=1, files_deleted=2, old_file_count=10) == 7 / 15


def test_summary_risk_matches_assess_risk():
    changes = [modified(f"f{i}") for i in range(11)]
    assert summarize(changes, old_file_count=20, new_file_count=20).risk_level == "high"


# --- staleness -------------------------------------------------------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_not_behind_is_fresh_however_old():
    assert staleness(NOW - timedelta(days=30), None, NOW) == {"behind_main": False, "seconds_behind": 0, "level": "fresh"}
    assert staleness(None, None, NOW)["level"] == "fresh"
    base = NOW - timedelta(days=30)
    assert staleness(base, base, NOW) == {"behind_main": False, "seconds_behind": 0, "level": "fresh"}
    assert staleness(base, base - timedelta(days=1), NOW)["behind_main"] is False


@pytest.mark.parametrize(
    "age, level",
    [
        (timedelta(0), "fresh"),
        (STALE_AFTER - timedelta(seconds=1), "fresh"),
        (STALE_AFTER, "stale"),
        (VERY_STALE_AFTER - timedelta(seconds=1), "stale"),
        (VERY_STALE_AFTER, "very_stale"),
        (timedelta(days=365), "very_stale"),
    ],
)
def test_staleness_levels_by_age_of_the_base(age, level):
    base = NOW - age
    result = staleness(base, base + timedelta(microseconds=1), NOW)
    assert result == {"behind_main": True, "seconds_behind": int(age.total_seconds()), "level": level}


def test_no_base_counts_from_mains_head():
    assert staleness(None, NOW - timedelta(days=2), NOW) == {"behind_main": True, "seconds_behind": 172800, "level": "stale"}


def test_clock_skew_never_gives_negative_seconds():
    assert staleness(NOW + timedelta(hours=1), NOW + timedelta(hours=2), NOW) == {
        "behind_main": True,
        "seconds_behind": 0,
        "level": "fresh",
    }


def test_thresholds_are_one_day_and_one_week():
    assert STALE_AFTER == timedelta(days=1) and VERY_STALE_AFTER == timedelta(days=7)


def test_an_empty_tree_root_from_build():
    # The drift module and the tree module agree on the empty tree: no changes, no risk.
    empty = build_manifests([])
    load = memory_loader(empty.manifests)
    summary = asyncio.run(summarize_async(diff(empty.root, None, load), old_file_count=0, new_file_count=0))
    assert summary.risk_level == "none" and summary.files_changed == 0
