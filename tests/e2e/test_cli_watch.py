"""`fastest watch` with the real client and server: push and status ask the running watcher what
changed instead of walking the folder, and without `--no-push` it pushes by itself."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from fastest.cli.state import Folder
from tests.e2e.conftest import FASTEST, Cli, write
from tests.e2e.test_cli import checked_out, tree_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fastest watch uses inotify")


class Watching:
    """`fastest watch …` as a background process whose output lines can be waited for."""

    def __init__(self, cli: Cli, folder: Path, *args: str) -> None:
        self.process = subprocess.Popen([*FASTEST, "watch", *args], cwd=folder, env=cli.env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, matches: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if matches(line):
                return line
        raise AssertionError(f"no such line from fastest watch; it said: {self.seen}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def folder_with_watcher(logged_in: Cli, tmp_path: Path) -> Iterator[tuple[Cli, Path, Watching]]:
    cli = logged_in
    folder = tmp_path / "watched"
    write(folder / "a.txt", "a\n")
    write(folder / "lib" / "one.py", "1\n")
    write(folder / "lib" / "two.py", "2\n")
    write(folder / "node_modules" / "dep" / "index.js", "ignored\n")
    cli("init", "--project", "watched", cwd=folder)
    cli("push", cwd=folder)
    watcher = Watching(cli, folder, "--no-push")
    watcher.wait_for(lambda line: line.startswith("watching"))
    try:
        yield cli, folder, watcher
    finally:
        watcher.stop()


def test_push_and_status_take_the_changed_paths_from_the_watcher(folder_with_watcher, tmp_path: Path):
    cli, folder, watcher = folder_with_watcher
    first = cli.json("push", cwd=folder)  # no token yet: walks, and keeps the watcher's token
    assert first["folder_walked"] is True and first["nothing_to_push"] is True

    write(folder / "a.txt", "a changed\n")
    write(folder / "docs" / "deep" / "new.md", "new\n")  # a new directory with a file in it
    (folder / "lib" / "two.py").unlink()
    write(folder / "node_modules" / "dep" / "index.js", "still ignored\n")
    status = cli.json("status", "--no-drift", cwd=folder)  # right after the changes: nothing missed
    assert status["folder_walked"] is False
    assert {(c["kind"], c["path"]) for c in status["changes"]} == {
        ("modified", "a.txt"), ("added", "docs/deep/new.md"), ("deleted", "lib/two.py"),
    }
    pushed = cli.json("push", cwd=folder)
    assert pushed["folder_walked"] is False and pushed["blobs_uploaded"] == 2
    assert cli.json("status", "--no-drift", cwd=folder)["changes"] == []
    assert cli.json("status", "--no-drift", "--rescan", cwd=folder)["folder_walked"] is True

    out = tmp_path / "out"
    cli("checkout", pushed["snapshot_id"], str(out), cwd=tmp_path)
    assert checked_out(out) == tree_of(folder)  # what the watcher said was all there was to push

    watcher.stop()
    write(folder / "lib" / "one.py", "1 changed while nobody watched\n")
    after = cli.json("push", cwd=folder)
    assert after["folder_walked"] is True and after["blobs_uploaded"] == 1


def test_a_second_watcher_on_the_same_folder_is_refused(folder_with_watcher):
    cli, folder, _ = folder_with_watcher
    second = cli("watch", cwd=folder, check=False)
    assert second.returncode == 1 and "already being watched" in second.stderr


def test_watch_pushes_changes_by_itself(logged_in: Cli, tmp_path: Path):
    cli = logged_in
    folder = tmp_path / "auto"
    write(folder / "a.txt", "a\n")
    cli("init", "--project", "auto", cwd=folder)
    watcher = Watching(cli, folder, "--delay", "0.2")
    try:
        watcher.wait_for(lambda line: "uploaded 1 blob" in line)  # the unpushed folder, at start
        write(folder / "b.txt", "b\n")
        write(folder / "a.txt", "a changed\n")
        uploaded = 0
        while uploaded < 2:  # one push of both, or (on a slow machine) one each
            line = watcher.wait_for(lambda line: "uploaded" in line)
            uploaded += int(line.split("uploaded ")[1].split(" ")[0])
        assert uploaded == 2
        assert cli.json("status", "--no-drift", cwd=folder)["clean"] is True
        assert 2 <= len(cli.json("log", cwd=folder)["snapshots"]) <= 3
    finally:
        watcher.stop()


def test_watch_waits_while_another_push_holds_the_folder(logged_in: Cli, tmp_path: Path):
    cli = logged_in
    folder = tmp_path / "busy"
    write(folder / "a.txt", "a\n")
    cli("init", "--project", "busy", cwd=folder)
    cli("push", cwd=folder)
    watcher = Watching(cli, folder, "--delay", "0.2")
    try:
        watcher.wait_for(lambda line: line.startswith("watching"))
        with Folder(folder).exclusive():  # as a manual push or sync would
            write(folder / "a.txt", "a changed\n")
            time.sleep(1.5)
            assert not any("uploaded" in line or "failed" in line for line in watcher.seen + list(watcher.lines.queue))
        watcher.wait_for(lambda line: "uploaded 1 blob" in line)  # its turn came
        assert cli.json("status", "--no-drift", cwd=folder)["clean"] is True
    finally:
        watcher.stop()
