"""The client's parts that need no server: ignore rules, the local index, the walk, batch frames,
upload order, local state, config, and the HTTP client's error and retry handling (mock transport)."""

from __future__ import annotations

import hashlib
import json
import io
import marshal
import os
import shutil
import stat
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, strategies as st

from fastest.cli import config
from fastest.cli.client import ApiClient, ApiError
from fastest.cli.frames import (
    BATCH_MAX_BYTES,
    FRAME_HEADER_BYTES,
    FrameReader,
    FramingError,
    PendingBlob,
    decode_frames,
    encode_frames,
    frame_header,
    plan_batches,
    plan_manifest_batches,
    split_by_size,
)
from fastest.cli.ignore import IgnoreRules
from fastest.cli.push import changes_since
from fastest.cli.index import INDEX_MAGIC, LocalIndex, is_settled
from fastest.cli import scan as scan_module
from fastest.cli.scan import scan, scan_paths, walk
from fastest.cli.state import Folder, ManifestCache, PushedTree, WorkspaceState, save_pushed
from fastest.cli.loader import manifest_loader, run_blocking
from fastest.domain.manifest import ManifestError
from fastest.domain.tree import build_manifests, build_tree, update_tree

# --------------------------------------------------------------------------------------------------
# ignore rules


def ignored(rules: IgnoreRules, path: str, is_dir: bool = False) -> bool:
    return rules.is_ignored(path, is_dir=is_dir)


def test_defaults_ignore_tool_and_dependency_directories():
    rules = IgnoreRules.from_lines([])
    for directory in (".git", ".fastest", "node_modules", "a/b/node_modules", ".venv", "venv", "src/__pycache__", ".wrangler"):
        assert ignored(rules, directory, is_dir=True), directory
    assert ignored(rules, "pkg/mod.pyc")
    assert ignored(rules, "deep/.DS_Store")
    # Directory-only patterns do not hit files of the same name.
    assert not ignored(rules, "node_modules")
    assert not ignored(rules, "src/main.py")


def test_unanchored_patterns_match_names_at_any_depth():
    rules = IgnoreRules.from_lines(["*.log", "build", "secret?.txt", "[Tt]emp*"], defaults=False)
    assert ignored(rules, "app.log") and ignored(rules, "a/b/app.log")
    assert ignored(rules, "build") and ignored(rules, "x/build", is_dir=True)
    assert ignored(rules, "secret1.txt") and not ignored(rules, "secret12.txt")
    assert ignored(rules, "x/Temporary") and ignored(rules, "temp")
    assert not ignored(rules, "logs/app.txt")


def test_anchored_patterns_match_from_the_root_only():
    rules = IgnoreRules.from_lines(["/dist", "docs/*.pdf", "a/**/z", "out/**"], defaults=False)
    assert ignored(rules, "dist", is_dir=True) and not ignored(rules, "pkg/dist", is_dir=True)
    assert ignored(rules, "docs/manual.pdf") and not ignored(rules, "x/docs/manual.pdf")
    assert not ignored(rules, "docs/sub/manual.pdf")  # `*` never crosses `/`
    assert ignored(rules, "a/z") and ignored(rules, "a/b/c/z")
    assert ignored(rules, "out/x/y.txt") and not ignored(rules, "out", is_dir=True)


def test_double_star_prefix_and_directory_only():
    rules = IgnoreRules.from_lines(["**/cache/", "**/tmp/*.bin"], defaults=False)
    assert ignored(rules, "cache", is_dir=True) and ignored(rules, "a/b/cache", is_dir=True)
    assert not ignored(rules, "a/cache")  # a file named cache
    assert ignored(rules, "tmp/x.bin") and ignored(rules, "a/tmp/x.bin")


def test_negation_last_match_wins():
    rules = IgnoreRules.from_lines(["*.env", "!example.env", "# a comment", "", "  "], defaults=False)
    assert ignored(rules, "prod.env")
    assert not ignored(rules, "config/example.env")
    rules = IgnoreRules.from_lines(["!keep.txt", "*.txt"], defaults=False)
    assert ignored(rules, "keep.txt")  # the later rule wins


def test_state_directory_cannot_be_reincluded():
    rules = IgnoreRules.from_lines(["!.fastest/"])
    assert ignored(rules, ".fastest", is_dir=True)


def test_escapes_and_trailing_spaces():
    rules = IgnoreRules.from_lines(["\\#notes", "\\!bang", "spaced\\ ", "trailing   "], defaults=False)
    assert ignored(rules, "#notes") and ignored(rules, "!bang")
    assert ignored(rules, "spaced ") and ignored(rules, "trailing") and not ignored(rules, "trailing   ")


def test_for_folder_reads_fastestignore(tmp_path: Path):
    (tmp_path / ".fastestignore").write_text("*.tmp\n/private/\n", encoding="utf-8")
    rules = IgnoreRules.for_folder(tmp_path)
    assert ignored(rules, "a.tmp") and ignored(rules, "private", is_dir=True)
    assert ignored(rules, "node_modules", is_dir=True)  # defaults still apply
    assert not ignored(IgnoreRules.for_folder(tmp_path / "nowhere"), "a.tmp")


# --------------------------------------------------------------------------------------------------
# walk and index


def make_tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print('hi')\n")
    (root / "src" / "pkg" / "mod.pyc").write_bytes(b"\x00compiled")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "index.js").write_text("x")
    (root / "empty").mkdir()
    (root / "notes.log").write_text("ignored by .fastestignore")
    (root / ".fastestignore").write_text("*.log\n")
    (root / "café ☕.txt").write_text("unicode")
    (root / "link").symlink_to("run.sh")
    (root / "dirlink").symlink_to("src")
    os.mkfifo(root / "pipe")


def test_walk_keeps_regular_files_and_counts_what_it_skips(tmp_path: Path):
    make_tree(tmp_path)
    result = walk(tmp_path, IgnoreRules.for_folder(tmp_path))
    paths = [f.path for f in result.files]
    assert paths == sorted([".fastestignore", "café ☕.txt", "run.sh", "src/pkg/mod.py"])
    assert result.symlinks == 2 and result.special == 1
    modes = {f.path: f.mode for f in result.files}
    assert modes["run.sh"] == 493 and modes["src/pkg/mod.py"] == 420


def test_walk_skips_names_that_are_not_utf8(tmp_path: Path):
    (tmp_path / os.fsdecode(b"bad\xffname")).write_text("x")
    (tmp_path / "good").write_text("y")
    result = walk(tmp_path, IgnoreRules.from_lines([]))
    assert [f.path for f in result.files] == ["good"]
    assert len(result.unencodable) == 1


def age(path: Path, seconds: float = 10.0) -> None:
    """Backdate a file so its (size, mtime) is trusted by the index (not 'racily clean')."""
    moment = time.time() - seconds
    os.utime(path, (moment, moment))


def test_scan_hashes_once_then_reuses_the_index(tmp_path: Path):
    make_tree(tmp_path)
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            age(path)
    index_path = tmp_path / ".fastest" / "index"
    first = scan(tmp_path, LocalIndex.load(index_path), progress=False)
    assert first.hashed == 4 and first.reused == 0
    expected = hashlib.sha256(b"print('hi')\n").hexdigest()
    assert {f.path: f.hash for f in first.files}["src/pkg/mod.py"] == expected

    index = LocalIndex.load(index_path)
    assert len(index) == 0  # never saved
    index = LocalIndex(index_path)
    scan(tmp_path, index, progress=False)
    index.save()
    second = scan(tmp_path, LocalIndex.load(index_path), progress=False)
    assert second.hashed == 0 and second.reused == 4
    assert second.files == first.files


def test_index_notices_size_or_mtime_changes(tmp_path: Path):
    (tmp_path / "a.txt").write_text("one")
    age(tmp_path / "a.txt")
    index_path = tmp_path / ".fastest" / "index"
    index = LocalIndex(index_path)
    scan(tmp_path, index, progress=False)
    index.save()
    (tmp_path / "a.txt").write_text("two")  # same size, new mtime
    age(tmp_path / "a.txt", 5)
    index = LocalIndex.load(index_path)
    result = scan(tmp_path, index, progress=False)
    assert result.hashed == 1 and result.files[0].hash == hashlib.sha256(b"two").hexdigest()


def test_index_does_not_trust_racily_clean_files(tmp_path: Path):
    (tmp_path / "fresh.txt").write_text("just written")
    index = LocalIndex(tmp_path / "index")
    scan(tmp_path, index, progress=False)
    assert len(index) == 0  # too fresh: hashed again next time
    now = time.time_ns()
    assert not is_settled(now - 1_000_000, now)  # 1 ms old
    assert is_settled(now - 1_000_000_000 + 1, now)  # 1 s old, sub-second clock
    assert not is_settled((now // 10**9) * 10**9, now)  # whole-second clock: needs 2 s


def test_index_forgets_deleted_files_and_survives_corruption(tmp_path: Path):
    for name in ("a", "b"):
        (tmp_path / name).write_text(name)
        age(tmp_path / name)
    path = tmp_path / ".fastest" / "index"
    index = LocalIndex(path)
    scan(tmp_path, index, progress=False)
    index.save()
    (tmp_path / "b").unlink()
    index = LocalIndex.load(path)
    scan(tmp_path, index, progress=False)
    index.save()
    assert LocalIndex.load(path).paths() == {"a"}
    appended = path.read_bytes()
    path.write_bytes(appended[:-5])  # the last update cut short (a crash while appending): ignored
    assert LocalIndex.load(path).paths() == {"a", "b"}  # "b" is merely forgotten again next scan
    index = LocalIndex(path)  # not loaded: saved whole
    scan(tmp_path, index, progress=False)
    index.save()
    path.write_bytes(path.read_bytes()[:-5])  # the base cut short
    assert len(LocalIndex.load(path)) == 0
    path.write_text("{not an index")
    assert len(LocalIndex.load(path)) == 0


def test_the_index_reads_a_directorys_entries_only_when_asked_and_forgets_removed_directories(tmp_path: Path):
    """Entries are kept per directory and read when the scan first asks about one: a damaged
    directory's entries cost only that directory's files a new hash, and a removed directory's
    entries go with it."""
    root, path = indexed_many_files_tree(tmp_path)
    assert len(LocalIndex.load(path)) == 120
    groups, listings, rules_key, sealed_root = marshal.loads(path.read_bytes()[len(INDEX_MAGIC) + 8:])
    groups["d2/s1"] = b"\x00damaged"  # one directory's entries unreadable
    base = marshal.dumps((groups, listings, rules_key, sealed_root), 2)
    path.write_bytes(INDEX_MAGIC + len(base).to_bytes(8, "big") + base)
    loaded = LocalIndex.load(path)
    assert loaded.entries_in("d2/s1") == {} and len(loaded.entries_in("d2/s0")) == 4
    damaged = scan(root, loaded, progress=False)
    assert damaged.hashed == 3 and damaged.reused == 117  # d2/s1: f1, f4, f7
    shutil.rmtree(root / "d5")
    index = LocalIndex.load(path)
    scan(root, index, progress=False)
    index.save()
    assert LocalIndex.load(path).paths() == {p for p in scan(root, LocalIndex(tmp_path / "x"), progress=False).records}
    assert not any(p.startswith("d5/") for p in LocalIndex.load(path).paths())


def test_the_index_appends_a_few_changed_entries_and_rewrites_when_they_grow(tmp_path: Path):
    root = tmp_path / "tree"
    root.mkdir()
    for n in range(40):
        (root / f"f{n}.txt").write_text(f"file {n}")
    age_tree(root)
    path = tmp_path / "index"
    index = LocalIndex(path)
    scan(root, index, progress=False)
    index.save()
    size = path.stat().st_size
    for n in range(3):  # as pushes after editing one file at a time
        (root / f"f{n}.txt").write_text(f"edited {n}")
        age(root / f"f{n}.txt")
        index = LocalIndex.load(path)
        assert scan(root, index, progress=False).hashed == 1
        index.save()
    assert size < path.stat().st_size < size * 5 // 4  # three small updates appended
    index = LocalIndex.load(path)
    again = scan(root, index, progress=False)
    assert again.hashed == 0 and again.records["f1.txt"][0] == hashlib.sha256(b"edited 1").hexdigest()
    for n in range(40):  # many more changes than a quarter of the base: rewritten whole
        (root / f"f{n}.txt").write_text(f"again {n}")
        age(root / f"f{n}.txt")
    index = LocalIndex.load(path)
    scan(root, index, progress=False)
    index.save()
    assert path.stat().st_size < size * 5 // 4
    assert scan(root, LocalIndex.load(path), progress=False).hashed == 0


def age_tree(root: Path, seconds: float = 10.0) -> None:
    """Backdate every directory and file, so the index trusts their mtimes."""
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink() and (path.is_dir() or path.is_file()):
            age(path, seconds)


def walk_with_index(root: Path, path: Path) -> tuple[list[str], int]:
    """(paths found, directories actually read) by a walk that uses and saves the index at `path`."""
    index = LocalIndex.load(path)
    listed = []
    real_list = scan_module._list_directory
    scan_module._list_directory = lambda directory, *rest: listed.append(directory) or real_list(directory, *rest)
    try:
        result = walk(root, IgnoreRules.for_folder(root), index=index)
    finally:
        scan_module._list_directory = real_list
    index.save()
    return [f.path for f in result.files], len(listed)


@pytest.fixture
def listed_tree(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """`make_tree`, aged so its mtimes are trusted, walked once with an index: (root, index, paths)."""
    root = tmp_path / "tree"
    make_tree(root)
    age_tree(root)
    index_path = tmp_path / "index"
    first, listed = walk_with_index(root, index_path)
    assert listed == 4  # the root, src, src/pkg, empty
    return root, index_path, first


def test_unchanged_directories_are_not_read_again(listed_tree):
    root, index_path, first = listed_tree
    again, listed = walk_with_index(root, index_path)
    assert (again, listed) == (first, 0)
    plain = walk(root, IgnoreRules.for_folder(root))
    cached = walk(root, IgnoreRules.for_folder(root), index=LocalIndex.load(index_path))
    assert cached == plain  # files, and the counts of what was skipped

    (root / "src" / "pkg" / "new.py").write_text("new")  # the directory's mtime moves
    (root / "run.sh").write_text("#!/bin/sh\necho changed\n")  # a file changes, not its directory
    paths, listed = walk_with_index(root, index_path)
    assert "src/pkg/new.py" in paths and listed == 1
    found = {f.path: f for f in walk(root, IgnoreRules.for_folder(root), index=LocalIndex.load(index_path)).files}
    assert found["run.sh"].size == len("#!/bin/sh\necho changed\n")


def test_removed_and_replaced_entries_are_noticed(listed_tree):
    root, index_path, _ = listed_tree
    shutil.rmtree(root / "src" / "pkg")
    (root / "src" / "pkg").write_text("now a file")
    paths, _ = walk_with_index(root, index_path)
    assert "src/pkg" in paths and "src/pkg/mod.py" not in paths
    assert "src/pkg" not in LocalIndex.load(index_path)._listings  # forgotten with the directory


def many_files_tree(root: Path) -> None:
    for d in range(12):
        for f in range(10):
            (root / f"d{d}" / f"s{f % 3}").mkdir(parents=True, exist_ok=True)
            (root / f"d{d}" / f"s{f % 3}" / f"f{f}.txt").write_text(f"{d}/{f}")
    age_tree(root)


def indexed_many_files_tree(tmp_path: Path) -> tuple[Path, Path]:
    """`many_files_tree` at tmp_path/tree, scanned once with a new index saved at tmp_path/index."""
    root, index_path = tmp_path / "tree", tmp_path / "index"
    many_files_tree(root)
    index = LocalIndex(index_path)
    scan(root, index, progress=False)
    index.save()
    return root, index_path


def test_a_listed_directory_that_changed_without_a_new_mtime_is_read_again(tmp_path: Path):
    """A directory changed between reading its mtime and reading its files (here: a file removed
    and the directory's mtime put back, which a coarse clock can also do): its listing no longer
    holds, so it is listed again, and the walk still finds exactly what is there."""
    root, index_path = indexed_many_files_tree(tmp_path)
    directory = root / "d5" / "s2"
    before = directory.stat()
    (directory / "f2.txt").unlink()
    os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = scan(root, LocalIndex.load(index_path), progress=False)
    assert "d5/s2/f2.txt" not in again.records and len(again.records) == 119
    assert again.hashed == 0


def test_a_sealed_directory_replaced_by_a_symlink_is_not_followed(tmp_path: Path):
    """The walk opens each listed directory without following a symlink: a directory swapped for a
    symlink to an identical copy (files, sizes and mtimes alike), behind a parent whose mtime was
    put back, is gone for the scan, as a symlink is never followed."""
    root = tmp_path / "tree"
    many_files_tree(root)
    index_path = tmp_path / "index"
    pushed = scan(root, LocalIndex(index_path), progress=False).records
    _, pushed, _, _ = scan_against(root, index_path, pushed)  # seals every directory
    parent = (root / "d1").stat()
    shutil.copytree(root / "d1" / "s0", tmp_path / "copy")  # copy2: the files keep their mtimes
    shutil.rmtree(root / "d1" / "s0")
    (root / "d1" / "s0").symlink_to(tmp_path / "copy", target_is_directory=True)
    os.utime(root / "d1", ns=(parent.st_atime_ns, parent.st_mtime_ns))
    index = LocalIndex.load(index_path)
    result = scan(root, index, progress=False, against=pushed, against_root=tree_root(pushed))
    gone = {path for path in pushed if path.startswith("d1/s0/")}
    assert len(gone) == 4 and result.changes == dict.fromkeys(gone)


def test_a_file_rewritten_within_the_clock_tick_of_its_scan_is_hashed_again(tmp_path: Path):
    """git's racy-clean rule: a file whose mtime is as new as the scan that hashed it may change
    again without its (size, mtime) changing, so the index does not vouch for it; here it is
    rewritten with the same size and given back the very same mtime, and the next scan still sees
    the new content. On a file system with whole-second mtimes, two seconds are needed."""
    root = tmp_path / "tree"
    root.mkdir()
    path = root / "a.txt"
    path.write_text("one")
    index_path = tmp_path / "index"
    index = LocalIndex(index_path)
    assert scan(root, index, progress=False).hashed == 1
    index.save()
    mtime_ns = path.stat().st_mtime_ns
    path.write_text("two")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    again = scan(root, LocalIndex.load(index_path), progress=False)
    assert again.records["a.txt"][0] == hashlib.sha256(b"two").hexdigest()
    whole_second = (time.time_ns() // 10**9) * 10**9  # as such a file system stores it
    os.utime(path, ns=(whole_second, whole_second))
    index = LocalIndex(index_path)
    scan(root, index, progress=False)
    assert len(index) == 0  # not trusted for two seconds
    time.sleep(0.06)
    path.write_text("one")
    os.utime(path, ns=(mtime_ns - 10**9, mtime_ns - 10**9))  # a second old (sub-second clock): trusted
    index = LocalIndex(index_path)
    scan(root, index, progress=False)
    assert len(index) == 1


def test_changed_ignore_rules_drop_every_listing(listed_tree):
    root, index_path, _ = listed_tree
    (root / ".fastestignore").write_text("*.log\n*.py\n")  # rewrites a file: no directory's mtime moves
    paths, listed = walk_with_index(root, index_path)
    assert "src/pkg/mod.py" not in paths and listed == 4


def test_fresh_directories_are_read_again(tmp_path: Path):
    root = tmp_path / "tree"
    make_tree(root)  # just made: mtimes too recent to vouch for a listing
    index_path = tmp_path / "index"
    walk_with_index(root, index_path)
    _, listed = walk_with_index(root, index_path)
    assert listed == 4


def tree_root(records: dict) -> str:
    return build_tree([(path, *state) for path, state in records.items()])[0].root


def scan_against(root: Path, index_path: Path, against: dict) -> tuple[dict, dict, int, int]:
    """A push's scan, with the index at `index_path` and `against` as the pushed tree's records:
    (its changes, its records, files hashed, files taken from sealed directories); and checks the
    changes against a full scan with a fresh index. The push then records the scanned tree."""
    index = LocalIndex.load(index_path)
    rules = IgnoreRules.for_folder(root)
    against_root = tree_root(against)
    sealed_files = walk(root, rules, index=LocalIndex.load(index_path), clean={}, against=against,
                        against_root=against_root).sealed_files
    result = scan(root, index, progress=False, against=against, against_root=against_root)
    index.save()
    LocalIndex.move_sealed_root(index_path, against_root, tree_root(result.records))
    truth = scan(root, LocalIndex(index_path.parent / "scratch"), progress=False).records
    assert result.changes == changes_since(against, truth)
    assert result.records == truth and len(result.records) == result.hashed + result.reused
    return result.changes, result.records, result.hashed, sealed_files


def test_a_push_scan_takes_sealed_directories_as_pushed_and_finds_every_change(tmp_path: Path):
    """Once every file of a listed directory is settled and as pushed, the directory is sealed: its
    files are `lstat`ed and their digest compared in C, and nothing else. What breaks a seal
    (content, mode, a file added, removed or replaced, a directory removed or added, other ignore
    rules, a pushed tree that is not the one sealed against) is found, exactly as a full scan finds it."""
    root = tmp_path / "tree"
    many_files_tree(root)
    index_path = tmp_path / "index"
    pushed = scan(root, LocalIndex(index_path), progress=False).records  # the first push's tree
    changes, pushed, hashed, _ = scan_against(root, index_path, pushed)  # lists, hashes and seals
    assert changes == {} and hashed == 120
    changes, _, hashed, sealed = scan_against(root, index_path, pushed)
    assert (changes, hashed, sealed) == ({}, 0, 120)

    def push_after(change, seconds: float = 10.0) -> dict:
        nonlocal pushed
        change()
        age_tree(root, seconds)
        found, pushed, _, _ = scan_against(root, index_path, pushed)
        scan_against(root, index_path, pushed)  # seals what the change touched, now settled and pushed
        return found

    def digest(content: bytes) -> str:
        return hashlib.sha256(content).hexdigest()

    assert push_after(lambda: (root / "d1/s0/f0.txt").write_text("changed")) == {
        "d1/s0/f0.txt": (digest(b"changed"), 7, 420)}
    _, _, _, sealed = scan_against(root, index_path, pushed)
    assert sealed == 120
    mtime_ns = (root / "d2/s1/f1.txt").stat().st_mtime_ns
    (root / "d2/s1/f1.txt").chmod(0o755)  # the mode alone, mtime untouched
    assert (root / "d2/s1/f1.txt").stat().st_mtime_ns == mtime_ns
    changes, pushed, _, sealed = scan_against(root, index_path, pushed)
    assert changes == {"d2/s1/f1.txt": (digest(b"2/1"), 3, 493)} and sealed == 120 - 3  # d2/s1: f1, f4, f7
    assert push_after(lambda: (root / "d3/s2/f2.txt").unlink()) == {"d3/s2/f2.txt": None}
    assert push_after(lambda: shutil.rmtree(root / "d4")) == {f"d4/s{f % 3}/f{f}.txt": None for f in range(10)}
    assert push_after(lambda: ((root / "new/deep").mkdir(parents=True), (root / "new/deep/n.txt").write_text("n"))) == {
        "new/deep/n.txt": (digest(b"n"), 1, 420)}

    def replace_with_directory() -> None:
        (root / "d5/s0/f0.txt").unlink()
        (root / "d5/s0/f0.txt").mkdir()
        (root / "d5/s0/f0.txt/inner.txt").write_text("i")
    assert push_after(replace_with_directory) == {"d5/s0/f0.txt": None, "d5/s0/f0.txt/inner.txt": (digest(b"i"), 1, 420)}
    assert push_after(lambda: (root / ".fastestignore").write_text("f1.txt\n")) == {
        **{f"d{d}/s1/f1.txt": None for d in range(12) if d != 4}, ".fastestignore": (digest(b"f1.txt\n"), 7, 420)}
    changes, _, hashed, sealed = scan_against(root, index_path, pushed)
    assert (changes, hashed) == ({}, 0) and sealed == len(pushed)

    # A pushed tree other than the one the seals hold for (another client's push recorded by
    # `sync`, or a push whose state was lost): no seal is trusted, the change is found, and the
    # directories are sealed afresh against it.
    other = dict(pushed)
    other["d6/s0/f0.txt"] = (digest(b"elsewhere"), 9, 420)
    changes, _, _, sealed = scan_against(root, index_path, other)
    assert changes == {"d6/s0/f0.txt": pushed["d6/s0/f0.txt"]} and sealed == 0
    _, _, _, sealed = scan_against(root, index_path, pushed)  # recorded from that scan: the folder's tree
    assert sealed == len(pushed) - 4  # d6/s0 (f0, f3, f6, f9) was not as `other` had it: not sealed
    _, _, _, sealed = scan_against(root, index_path, pushed)
    assert sealed == len(pushed)


def test_a_first_push_scan_seals_what_it_found_for_the_tree_it_records(tmp_path: Path):
    """A scan without a pushed tree (a first push) seals the directories as it found them: the
    seals hold once the push moves the index's root from None to the tree it recorded, so the next
    walked push already takes them as pushed; without that move they are not trusted."""
    root = tmp_path / "tree"
    many_files_tree(root)
    index_path = tmp_path / "index"
    index = LocalIndex(index_path)
    records = scan(root, index, progress=False, seal=True).records
    index.save()
    rules = IgnoreRules.for_folder(root)

    def sealed_files() -> int:
        return walk(root, rules, index=LocalIndex.load(index_path), clean={}, against=records,
                    against_root=tree_root(records)).sealed_files

    assert LocalIndex.load(index_path).sealed_root is None and sealed_files() == 0  # the push did not land
    LocalIndex.move_sealed_root(index_path, None, tree_root(records))
    assert sealed_files() == len(records) == 120
    (root / "d3/s1/f4.txt").write_text("edited")
    age_tree(root)
    found = scan(root, LocalIndex.load(index_path), progress=False, against=records, against_root=tree_root(records))
    assert found.changes == {"d3/s1/f4.txt": (hashlib.sha256(b"edited").hexdigest(), 6, 420)}


def test_seals_hold_only_for_the_tree_they_were_made_against(tmp_path: Path):
    """The index says which pushed tree its seals hold for; a push moves that to the tree it
    recorded, and an update that does not follow from the root so far leaves none."""
    index_path = tmp_path / "index"
    index = LocalIndex(index_path)
    index.record_listing("", 1, scan_module.Listing(("a",), (), 0, 0, 0, ()), 10**12)
    index.set_seal("", b"s" * 16)
    index.sealed_root = "r1"
    index.save()
    assert LocalIndex.load(index_path).sealed_root == "r1"
    LocalIndex.move_sealed_root(index_path, "r1", "r2")
    loaded = LocalIndex.load(index_path)
    assert loaded.sealed_root == "r2" and loaded.listing_and_seal("", 1)[1] == b"s" * 16
    LocalIndex.move_sealed_root(index_path, "r1", "r3")  # not from the root the file has: none
    assert LocalIndex.load(index_path).sealed_root is None


def test_a_push_scan_does_not_seal_a_directory_whose_file_is_too_fresh(tmp_path: Path):
    """The racy-clean rule holds for seals: a file written just before the scan is not trusted, so
    its directory is not sealed, and the file rewritten with the same size and mtime is hashed again."""
    root = tmp_path / "tree"
    many_files_tree(root)
    index_path = tmp_path / "index"
    pushed = scan(root, LocalIndex(index_path), progress=False).records
    _, pushed, _, _ = scan_against(root, index_path, pushed)
    path = root / "d0/s0/f0.txt"
    path.write_text("one")
    directory_mtime = (root / "d0/s0").stat().st_mtime_ns
    changes, pushed, hashed, _ = scan_against(root, index_path, pushed)
    assert changes == {"d0/s0/f0.txt": (hashlib.sha256(b"one").hexdigest(), 3, 420)} and hashed == 1
    mtime_ns = path.stat().st_mtime_ns
    path.write_text("two")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    assert (root / "d0/s0").stat().st_mtime_ns == directory_mtime
    changes, _, hashed, sealed = scan_against(root, index_path, pushed)
    assert changes == {"d0/s0/f0.txt": (hashlib.sha256(b"two").hexdigest(), 3, 420)} and hashed == 1
    assert sealed == 120 - 4  # d0/s0 holds f0, f3, f6, f9


@pytest.mark.parametrize("with_directories", [False, True])
def test_looking_at_named_paths_finds_what_changed_there_and_only_there(tmp_path: Path, with_directories: bool):
    root = tmp_path / "tree"
    for path, text in {"a.txt": "a", "lib/one.py": "1", "lib/sub/two.py": "2", "lib.txt": "l", "libx/three.py": "3"}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    index = LocalIndex(tmp_path / "index")
    known = scan(root, index, progress=False).records
    shutil.rmtree(root / "lib")
    (root / "lib").write_text("now a file")  # a directory replaced by a file
    (root / "a.txt").write_text("a changed")
    (root / "libx" / "three.py").write_text("3 changed, but not named")
    directories = build_tree([(path, *state) for path, state in known.items()])[1] if with_directories else None
    changes, hashed = scan_paths(root, index, known, ["lib", "a.txt", "missing.txt"], directories=directories)
    assert sorted(changes) == ["a.txt", "lib", "lib/one.py", "lib/sub/two.py"]
    assert changes["lib/one.py"] is None and changes["lib/sub/two.py"] is None
    assert changes["lib"][0] == hashlib.sha256(b"now a file").hexdigest()
    assert hashed == 2


def test_looking_at_a_few_named_files_hashes_them_without_loading_the_index(tmp_path: Path):
    root = tmp_path / "tree"
    root.mkdir()
    for n in range(40):
        (root / f"f{n}.txt").write_text(str(n))
    old = tmp_path / "old"
    old.mkdir()
    (old / "f0.txt").write_text("before")
    known = scan(old, LocalIndex(tmp_path / "old-index"), progress=False).records
    loads: list[int] = []

    def load_index() -> LocalIndex:
        loads.append(1)
        return LocalIndex(tmp_path / "index")

    changes, hashed = scan_paths(root, load_index, known, ["f0.txt", "f1.txt"])
    assert loads == [] and hashed == 2
    assert changes == {f"f{n}.txt": (hashlib.sha256(str(n).encode()).hexdigest(), len(str(n)), 420) for n in (0, 1)}
    changes, hashed = scan_paths(root, load_index, known, [f"f{n}.txt" for n in range(40)])
    assert loads == [1] and hashed == 40 and len(changes) == 40
    (root / "sub").mkdir()
    (root / "sub" / "x").write_text("x")
    scan_paths(root, load_index, known, ["sub"])  # a directory: its files have likely not all changed
    assert loads == [1, 1]


# --------------------------------------------------------------------------------------------------
# frames and batches


def blob(size: int, n: int = 0) -> PendingBlob:
    return PendingBlob(hashlib.sha256(f"{n}".encode()).hexdigest(), size, f"f{n}")


def test_frame_encoding_round_trips():
    data = [(hashlib.sha256(b).hexdigest(), b) for b in (b"", b"hello", bytes(range(256)))]
    body = encode_frames(data)
    assert body[:72] == (data[0][0] + "00000000").encode()
    assert body[72 : 72 + 64].decode() == data[1][0]
    assert body[136:144] == b"00000005"
    assert list(decode_frames(body)) == data
    with pytest.raises(ValueError):
        list(decode_frames(body[:-1]))
    with pytest.raises(ValueError):
        frame_header("abc", 1)


def test_batches_respect_byte_and_frame_limits():
    blobs = [blob(100_000, n) for n in range(200)]  # 20 MB in 100 KB blobs
    batches = plan_batches(blobs)
    assert [b for batch in batches for b in batch] == blobs  # order kept, nothing lost
    for batch in batches:
        assert sum(FRAME_HEADER_BYTES + b.size for b in batch) <= BATCH_MAX_BYTES
    assert len(batches) == 3
    tiny = [blob(10, n) for n in range(2500)]
    assert [len(batch) for batch in plan_batches(tiny)] == [1000, 1000, 500]
    exact = [blob(BATCH_MAX_BYTES // 2 - FRAME_HEADER_BYTES, n) for n in range(4)]
    assert [len(batch) for batch in plan_batches(exact)] == [2, 2]
    with pytest.raises(ValueError):
        plan_batches([blob(BATCH_MAX_BYTES, 1)])


def test_frame_reader_reads_frames_split_anywhere():
    frames = [(hashlib.sha256(b).hexdigest(), b) for b in (b"one", b"", b"three" * 100)]
    body = encode_frames(frames)
    for size in (1, 7, 72, 1000):
        reader = FrameReader(body[i : i + size] for i in range(0, len(body), size))
        got = []
        while (header := reader.header()) is not None:
            digest, length = header
            got.append((digest, b"".join(reader.body(length))))
        assert got == frames


def test_manifest_batches_keep_the_order_within_limits():
    manifests = [(f"{n:064x}", b"m" * (n * 100)) for n in range(50)]
    batches = plan_manifest_batches(manifests, max_bytes=20_000, max_frames=8)
    assert [m for batch in batches for m in batch] == manifests
    for batch in batches:
        assert len(batch) <= 8 and sum(FRAME_HEADER_BYTES + len(d) for _, d in batch) <= 20_000


def test_frame_reader_tells_a_cut_stream_from_garbage():
    whole = frame_header("ab" * 32, 10) + b"0123456789"
    for cut in (whole[:40], whole[:75]):
        reader = FrameReader([cut])
        with pytest.raises(FramingError) as failure:
            header = reader.header()
            assert header is not None
            list(reader.body(header[1]))
        assert failure.value.truncated
    with pytest.raises(FramingError) as failure:
        FrameReader([b"Z" * 72]).header()
    assert not failure.value.truncated


def test_big_blobs_go_alone():
    small, big = split_by_size([blob(1024 * 1024, 1), blob(1024 * 1024 + 1, 2), blob(0, 3)])
    assert [b.path for b in small] == ["f1", "f3"] and [b.path for b in big] == ["f2"]


# --------------------------------------------------------------------------------------------------
# manifests: upload order and local state


def record(path: str, content: bytes) -> tuple[str, str, int, int]:
    return path, hashlib.sha256(content).hexdigest(), len(content), 420


def test_pushed_tree_round_trips_and_only_applies_to_its_root(tmp_path: Path):
    path = tmp_path / "pushed"
    tree = build_manifests([record("a/x", b"1"), record("b", b"2")])
    blob_hashes = frozenset({hashlib.sha256(b"1").hexdigest(), hashlib.sha256(b"2").hexdigest()})
    files = {"a/x": (hashlib.sha256(b"1").hexdigest(), 1, 420), "b": (hashlib.sha256(b"2").hexdigest(), 1, 420)}
    directories = build_tree([record("a/x", b"1"), record("b", b"2")])[1]
    assert set(directories) == {"", "a"}
    PushedTree(tree.root, files, blob_hashes, tree.manifests).save(path)  # directories derived when saved
    assert PushedTree.load(path, tree.root) == PushedTree(tree.root, files, blob_hashes, tree.manifests, directories)
    assert PushedTree.load(path, "x" * 64) == PushedTree.empty()
    assert PushedTree.load(tmp_path / "missing", tree.root) == PushedTree.empty()
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"z"'))  # a damaged manifest
    damaged = PushedTree.load(path, tree.root)
    # Loaded (only hashes are relied on), but its bytes are never used: they are checked where read.
    with pytest.raises(ApiError) as offline:
        run_blocking(manifest_loader(None, None, damaged.manifests)(tree.root))
    assert offline.value.code == "manifest_missing"
    assert run_blocking(manifest_loader(None, None, damaged.manifests, tree.manifests)(tree.root)).hash == tree.root
    with pytest.raises(ManifestError):
        update_tree(tree.root, damaged.manifests, damaged.directories, {"b": None})


def test_pushes_append_their_changes_to_the_pushed_tree_and_a_cut_short_one_is_not_used(tmp_path: Path):
    path = tmp_path / "pushed"
    files = {f"d{n % 4}/f{n}": (hashlib.sha256(str(n).encode()).hexdigest(), 1, 420) for n in range(40)}
    built, directories = build_tree([(p, *state) for p, state in files.items()])
    blobs = frozenset(state[0] for state in files.values())
    PushedTree(built.root, files, blobs, built.manifests, directories).save(path)
    size = path.stat().st_size
    pushed = PushedTree.load(path, built.root)
    for n, change in enumerate([{"d1/f1": (hashlib.sha256(b"x").hexdigest(), 1, 420)},  # as three pushes
                                {"d2/f2": None, "d9/new": (hashlib.sha256(b"y").hexdigest(), 1, 493)},
                                {f"d3/f{k}": None for k in range(3, 40, 4)}]):  # a directory emptied
        records = {p: state for p, state in {**pushed.records, **change}.items() if state is not None}
        tree, tree_directories = update_tree(pushed.root, pushed.manifests, pushed.directories,
                                             {p: None if state is None else (p, *state) for p, state in change.items()})
        save_pushed(path, tree.root, records, tree.manifests, tree_directories, since=pushed, changes=change)
        loaded = PushedTree.load(path, tree.root)
        assert loaded == PushedTree(tree.root, records, frozenset(s[0] for s in records.values()), tree.manifests,
                                    tree_directories)
        assert list(loaded.manifests) == list(tree.manifests)  # children first, as built
        pushed = loaded
    assert size < path.stat().st_size < size * 5 // 4  # appended, not rewritten
    assert PushedTree.load_saved(path) == pushed  # whatever its root (a deploy's last output)
    path.write_bytes(path.read_bytes()[:-3])  # the last update cut short by a crash
    assert PushedTree.load(path, pushed.root) == PushedTree.empty()  # not the folder's last pushed tree
    assert PushedTree.load_saved(path).root not in (None, pushed.root)  # the tree before that update


def test_pushed_tree_of_the_version_before_directories_still_loads(tmp_path: Path):
    """A folder last pushed by the previous release keeps its pushed tree: directories are derived."""
    path = tmp_path / "pushed"
    built, directories = build_tree([record("a/b/x", b"1"), record("b", b"2")])
    files = {"a/b/x": (hashlib.sha256(b"1").hexdigest(), 1, 420), "b": (hashlib.sha256(b"2").hexdigest(), 1, 420)}
    path.write_bytes(b"fastest-pushed 2\n" + marshal.dumps((built.root, files, built.manifests), 2))
    loaded = PushedTree.load(path, built.root)
    assert loaded.root == built.root and loaded.records == files and loaded.directories == directories


def test_pushed_tree_of_version_4_still_loads_and_records_are_read_by_directory(tmp_path: Path):
    """A pushed tree saved with its records whole (version 4) still loads, appended updates and
    all; saved again, its records are grouped by directory and read a directory at a time."""
    path = tmp_path / "pushed"
    files = {"a/b/x": (hashlib.sha256(b"1").hexdigest(), 1, 420), "b": (hashlib.sha256(b"2").hexdigest(), 1, 420)}
    built, directories = build_tree([(p, *r) for p, r in files.items()])
    base = marshal.dumps((built.root, dict(files), dict(built.manifests), directories), 2)
    path.write_bytes(b"fastest-pushed 4\n" + len(base).to_bytes(8, "big") + base)
    loaded = PushedTree.load(path, built.root)
    assert loaded.records == files and loaded.blobs == {r[0] for r in files.values()}
    changed = {**files, "a/c": (hashlib.sha256(b"3").hexdigest(), 1, 493)}
    rebuilt, rebuilt_directories = build_tree([(p, *r) for p, r in changed.items()])
    save_pushed(path, rebuilt.root, changed, rebuilt.manifests, rebuilt_directories, since=loaded,
                changes={"a/c": changed["a/c"]})  # a file of another version: rewritten whole
    assert path.read_bytes().startswith(b"fastest-pushed 5\n")
    again = PushedTree.load(path, rebuilt.root)
    assert len(again.records) == 3 and again.records.get("a/c") == changed["a/c"]
    assert set(again.records._groups.read()) == {"a"}  # only the group of a/c was read
    assert again.records == changed and list(again.records) == sorted(changed)

def test_manifest_cache_verifies_what_it_returns(tmp_path: Path):
    cache = ManifestCache(tmp_path / "m")
    data = b'{"entries":[],"version":1}'
    digest = hashlib.sha256(data).hexdigest()
    cache.put(digest, data)
    assert cache.get(digest) == data
    (tmp_path / "m" / digest).write_bytes(b"tampered")
    assert cache.get(digest) is None
    assert cache.get("../etc/passwd") is None


# --------------------------------------------------------------------------------------------------
# config


def test_config_is_private_and_env_overrides(tmp_path: Path):
    env = {"FASTEST_CONFIG_DIR": str(tmp_path / "cfg")}
    path = config.save(env, config.Credentials("http://127.0.0.1:1", "fst_x"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert config.resolve(env) == config.Credentials("http://127.0.0.1:1", "fst_x")
    assert config.resolve({**env, "FASTEST_TOKEN": "fst_y"}).token == "fst_y"
    with pytest.raises(config.ConfigError):
        config.resolve(env, workspace_server="http://elsewhere:2")
    with pytest.raises(config.ConfigError):
        config.resolve({"FASTEST_CONFIG_DIR": str(tmp_path / "none")})
    with pytest.raises(config.ConfigError):
        config.normalise_server("ftp://x")
    assert config.config_dir({"XDG_CONFIG_HOME": "/xdg"}) == Path("/xdg/fastest")


# --------------------------------------------------------------------------------------------------
# the HTTP client's error and retry handling (no server: httpx.MockTransport)


def mock_client(responses: list) -> tuple[ApiClient, list[float], list[httpx.Request]]:
    slept: list[float] = []
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    client = ApiClient("http://api.test", "fst_t", transport=httpx.MockTransport(handler), sleep=slept.append)
    return client, slept, seen


def problem(status: int, code: str, message: str, **extra) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": message, "error": {"code": code, "message": message, **extra}}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def test_client_reports_the_servers_message():
    client, _, seen = mock_client([problem(422, "validation_failed", "Bad input.", fields={"name": "too long"})])
    with pytest.raises(ApiError) as failure:
        client.create_project("x" * 500)
    assert failure.value.status == 422 and failure.value.code == "validation_failed"
    assert failure.value.message == "Bad input. (name: too long)"
    assert seen[0].headers["authorization"] == "Bearer fst_t" and "idempotency-key" in seen[0].headers


def test_client_retries_rate_limits_and_transient_failures_with_the_same_idempotency_key():
    client, slept, seen = mock_client([
        httpx.Response(429, headers={"retry-after": "3"}, json={"error": {"code": "rate_limited", "message": "Slow down."}}),
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(201, json={"project": {"id": "prj_1", "name": "p"}}),
    ])
    assert client.create_project("p") == {"id": "prj_1", "name": "p"}
    assert slept[0] == 3.0 and len(slept) == 3
    assert len({r.headers["idempotency-key"] for r in seen}) == 1  # one logical request


def test_client_gives_up_on_an_unreachable_server():
    client, slept, _ = mock_client([httpx.ConnectError("refused")] * 5)
    with pytest.raises(ApiError) as failure:
        client.list_projects()
    assert failure.value.status == 0 and "cannot reach http://api.test" in failure.value.message


def test_download_verifies_the_hash():
    data = b"content"
    client, _, _ = mock_client([httpx.Response(200, content=b"tampered")])
    with pytest.raises(ApiError) as failure:
        client.download_blob(hashlib.sha256(data).hexdigest(), io.BytesIO())
    assert failure.value.code == "hash_mismatch"
    client, _, _ = mock_client([httpx.Response(200, content=data)])
    sink = io.BytesIO()
    assert client.download_blob(hashlib.sha256(data).hexdigest(), sink) == len(data) and sink.getvalue() == data


@given(st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(st.sampled_from("xyz"), st.integers(0, 2), st.just(420))),
       st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(st.sampled_from("xyz"), st.integers(0, 2), st.just(420))))
def test_changes_since_are_exactly_what_turns_one_file_list_into_the_other(before, after):
    changes = changes_since(before, after)
    assert changes == {**{p: s for p, s in after.items() if before.get(p) != s}, **{p: None for p in before if p not in after}}
    applied = {**before, **changes}
    assert {p: s for p, s in applied.items() if s is not None} == after


def test_a_push_appends_the_head_it_moved_to_and_the_link_is_folded_back_into_workspace_json(tmp_path: Path):
    """A push that only moves the head appends it to `.fastest/head` instead of replacing
    workspace.json; a line cut short by a crash is not used, nor one for another workspace; the
    file is folded back into workspace.json once it grows, and when the link itself changes."""
    folder = Folder(tmp_path)
    linked = WorkspaceState(server="http://s", project_id="prj_1", workspace_id="wsp_1")
    folder.save(linked)
    heads = [(f"snp_{n:026d}", hashlib.sha256(str(n).encode()).hexdigest()) for n in range(60)]

    def push(n: int) -> None:
        state = folder.load()
        state.head_snapshot_id, state.manifest_hash = heads[n]
        folder.save(state)

    push(0)
    push(1)
    assert folder.head_file.exists() and json.loads(folder.workspace_file.read_text())["manifest_hash"] is None
    assert (folder.load().head_snapshot_id, folder.load().manifest_hash) == heads[1]
    with open(folder.head_file, "ab") as handle:
        handle.write(b"wsp_1 snp_cut")  # a crash mid-append
    assert folder.load().manifest_hash == heads[1][1]
    with open(folder.head_file, "ab") as handle:
        handle.write(f"\nwsp_2 {heads[2][0]} {heads[2][1]}\n".encode())  # not this folder's workspace
    assert folder.load().manifest_hash == heads[1][1]
    for n in range(3, 60):
        push(n)
    assert folder.head_file.stat().st_size <= 4096  # folded back at least once
    assert (folder.load().head_snapshot_id, folder.load().manifest_hash) == heads[59]
    relinked = folder.load()
    relinked.workspace_id = "wsp_9"
    folder.save(relinked)
    assert not folder.head_file.exists()
    assert json.loads(folder.workspace_file.read_text())["manifest_hash"] == heads[59][1]
    assert folder.load().workspace_id == "wsp_9"
