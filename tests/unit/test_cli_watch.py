"""`fastest watch`'s parts without a server: the journal's token rules, and the watcher on real
inotify events of a real folder (Linux only)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from fastest.cli import watch
from fastest.cli.state import Folder, FolderBusy
from fastest.cli.watch import ChangeJournal, Watcher

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def test_a_token_gets_what_changed_after_it_and_nothing_before():
    journal = ChangeJournal()
    journal.record("early.txt")
    first, paths = journal.answer(None)
    assert paths is None  # no token: walk the folder
    journal.record("a.txt")
    journal.record("lib")
    second, paths = journal.answer(first)
    assert paths == ["a.txt", "lib"]
    assert journal.answer(second)[1] == []
    journal.record("a.txt")  # changed again: reported again
    assert journal.answer(second)[1] == ["a.txt"]
    assert journal.answer(first)[1] == ["a.txt", "lib"]  # an older token gets more, never less


@pytest.mark.parametrize("token", ["other-instance:0", "garbage", "", None])
def test_tokens_of_another_watcher_or_garbage_mean_rescan(token):
    journal = ChangeJournal()
    journal.answer(None)
    journal.record("a.txt")
    assert journal.answer(token)[1] is None


def test_a_reset_makes_every_earlier_token_rescan():
    journal = ChangeJournal()
    token, _ = journal.answer(None)
    journal.record("a.txt")
    journal.reset()  # e.g. the kernel's queue overflowed
    later, paths = journal.answer(token)
    assert paths is None
    journal.record("b.txt")
    assert journal.answer(later)[1] == ["b.txt"]


@pytest.fixture
def watched(tmp_path: Path):
    if not watch.supported():
        pytest.skip("inotify is Linux's")
    root = tmp_path / "folder"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("1\n")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "README.md").write_text("hi\n")
    watcher = Watcher(Folder(root))
    try:
        yield root, watcher
    finally:
        watcher.close()


@linux_only
def test_the_watcher_reports_every_kind_of_change_made_before_the_question(watched):
    root, watcher = watched
    token = watcher.answer(None).token
    (root / "src" / "pkg" / "mod.py").write_text("2\n")
    (root / "README.md").rename(root / "README.txt")
    (root / "docs" / "deep").mkdir(parents=True)  # a new tree, files written before it could be watched
    (root / "docs" / "deep" / "a.md").write_text("a\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "run.sh", 0o755)
    answer = watcher.answer(token)  # no sleep: the cookie makes the answer exact
    assert answer.paths == ["README.md", "README.txt", "docs", "run.sh", "src/pkg/mod.py"]

    (root / "docs" / "deep" / "b.md").write_text("b\n")  # the new directory is watched now
    shutil.rmtree(root / "src")
    answer = watcher.answer(answer.token)
    assert answer.paths is not None and {"docs/deep/b.md", "src"} <= set(answer.paths)
    assert all(p == "docs/deep/b.md" or p == "src" or p.startswith("src/") for p in answer.paths)


@linux_only
def test_ignored_directories_are_not_watched_and_new_rules_mean_rescan(watched):
    root, watcher = watched
    assert sorted(watcher.directories.values()) == ["", "src", "src/pkg"]  # not node_modules, not .fastest
    token = watcher.answer(None).token
    (root / "node_modules" / "dep" / "index.js").write_text("x")
    (root / "node_modules" / "other").mkdir()
    (root / "src" / "mod.pyc").write_bytes(b"\0")
    answer = watcher.answer(token)
    assert answer.paths == []

    (root / ".fastestignore").write_text("src/\n")
    answer = watcher.answer(answer.token)
    assert answer.paths is None  # other rules: walk the folder once
    assert sorted(watcher.directories.values()) == [""]


@linux_only
def test_only_one_watcher_per_folder_and_the_client_finds_it(watched):
    root, watcher = watched
    with pytest.raises(watch.WatchError, match="already being watched"):
        Watcher(Folder(root))
    assert watch.ask(Folder(root / "src")) is None  # another folder: nobody watches it


def test_a_folder_is_pushed_or_synced_by_one_process_at_a_time(tmp_path: Path):
    folder = Folder(tmp_path)
    with folder.exclusive():
        with pytest.raises(FolderBusy, match="another fastest process"):
            with Folder(tmp_path).exclusive(wait=False):
                pass
    with folder.exclusive(wait=False):  # free again
        pass
