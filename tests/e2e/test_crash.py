"""Crashes, with real processes: `kill -9` of the server in the middle of a 3,000-file push, of the
CLI in the middle of a push, and two concurrent executes of one sync preview.

After each crash the next push completes, `fastest checkout` of its snapshot equals the folder byte
for byte, and no partial object is visible: every object in the server's blob store (blobs and
manifests, both content-addressed) hashes to the name it is stored under.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

from tests.api.test_sync import BASE, World, edit
from tests.e2e.conftest import FASTEST, Cli, admin_token, free_port

FILES = 3000
SERVER_ENV = {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_SYNC_RATE_LIMIT_PER_MINUTE": "100000"}


@contextmanager
def server_on(port: int, data_dir: Path) -> Iterator[subprocess.Popen]:
    """`fastest serve` on a given port (a restarted server must keep the folder's URL), healthy."""
    command = [*FASTEST, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)]
    deadline = time.monotonic() + 30
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **SERVER_ENV})
    try:
        while True:
            if process.poll() is not None:  # e.g. the killed server's port is not free yet: try again
                assert time.monotonic() < deadline, "the server would not start"
                time.sleep(0.2)
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                           env={**os.environ, **SERVER_ENV})
                continue
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.05)
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def make_folder(folder: Path, files: int = FILES) -> None:
    for i in range(files):
        path = folder / f"dir{i % 60:02d}" / f"sub{i % 7}" / f"file{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {i}\n".encode() * (1 + i % 5))


def stored_objects(data_dir: Path) -> int:
    index = data_dir / "r2" / "index.sqlite"
    if not index.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{index}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM objects WHERE key LIKE '%/blobs/%'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def assert_every_object_is_whole(data_dir: Path) -> int:
    """Every blob and manifest in the store hashes to its name; returns how many were checked."""
    root = data_dir / "r2"
    checked = 0
    with sqlite3.connect(f"file:{root / 'index.sqlite'}?mode=ro", uri=True) as db:
        for key, file_id, size, body in db.execute("SELECT key, file_id, size, body FROM objects"):
            parts = key.split("/")
            if len(parts) != 3 or parts[1] not in ("blobs", "manifests"):
                continue
            data = body if body is not None else (root / "objects" / file_id[:2] / file_id).read_bytes()
            assert len(data) == size, f"{key}: {len(data)} bytes stored, {size} recorded"
            assert hashlib.sha256(data).hexdigest() == parts[2], f"{key} does not hash to its name"
            checked += 1
    return checked


def assert_checkout_equals(cli: Cli, snapshot_id: str, folder: Path, out: Path) -> None:
    cli("checkout", snapshot_id, str(out), cwd=out.parent)
    expected = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file() and ".fastest" not in p.parts}
    actual = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and ".fastest" not in p.parts}
    assert actual.keys() == expected.keys()
    assert all(actual[path] == expected[path] for path in expected)


def start_push(cli: Cli, folder: Path) -> subprocess.Popen:
    return subprocess.Popen([*FASTEST, "push", "-m", "crash", "--json"], cwd=folder, env=cli.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_objects_appear(victim: subprocess.Popen, push: subprocess.Popen, data_dir: Path) -> int:
    """SIGKILL `victim` as soon as the server has stored some of the push's blobs, while the push
    runs; returns how many blobs were stored when the kill was sent."""
    deadline = time.monotonic() + 60
    while (stored := stored_objects(data_dir)) < 1:
        assert push.poll() is None, f"the push ended before the crash:\n{push.communicate()}"
        assert time.monotonic() < deadline, "the push stored nothing"
        time.sleep(0.005)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    return stored


def test_server_killed_mid_push_then_restarted(tmp_path: Path) -> None:
    data_dir, folder, port = tmp_path / "data", tmp_path / "folder", free_port()
    base_url = f"http://127.0.0.1:{port}"
    make_folder(folder)
    cli = Cli(tmp_path / "config")
    with server_on(port, data_dir) as server:
        cli("login", "--server", base_url, "--token", admin_token(data_dir, "crash@example.com"), cwd=tmp_path)
        cli("init", "--project", "crash", cwd=folder)
        push = start_push(cli, folder)
        try:
            kill_when_objects_appear(server, push, data_dir)
            stored_at_crash = stored_objects(data_dir)  # the server is gone: nothing moves any more
            _, err = push.communicate(timeout=60)  # the CLI retries a few times, then gives up
            assert push.returncode != 0, "the push finished although its server was killed"
        finally:
            if push.poll() is None:
                push.kill()
    assert stored_at_crash < FILES
    assert assert_every_object_is_whole(data_dir) >= 1

    with server_on(port, data_dir):
        again = cli.json("push", "-m", "after the crash", cwd=folder)
        assert again["snapshot_id"]
        assert_checkout_equals(cli, again["snapshot_id"], folder, tmp_path / "out")
    assert assert_every_object_is_whole(data_dir) >= FILES


def test_cli_killed_mid_push_then_the_next_push_completes(tmp_path: Path) -> None:
    data_dir, folder, port = tmp_path / "data", tmp_path / "folder", free_port()
    base_url = f"http://127.0.0.1:{port}"
    make_folder(folder)
    cli = Cli(tmp_path / "config")
    with server_on(port, data_dir):
        cli("login", "--server", base_url, "--token", admin_token(data_dir, "crash@example.com"), cwd=tmp_path)
        cli("init", "--project", "crash", cwd=folder)
        push = start_push(cli, folder)
        assert kill_when_objects_appear(push, push, data_dir) < FILES
        # (the server may still finish the batches it had received: that is fine)

        again = cli.json("push", "-m", "after the crash", cwd=folder)  # the lock died with the process
        assert again["snapshot_id"]
        assert_checkout_equals(cli, again["snapshot_id"], folder, tmp_path / "out")
        assert "nothing changed since the last push" in cli("status", cwd=folder).stdout
    assert assert_every_object_is_whole(data_dir) >= FILES


class Caller:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


def test_two_concurrent_executes_of_one_preview_exactly_one_wins(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    with server_on(port, data_dir), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        caller = Caller(admin_token(data_dir, "race@example.com"))
        world = World(http, caller, edit(BASE, {"src/new.py": b"new\n"}), edit(BASE, {"docs/extra.md": b"Extra\n"}))
        preview = world.prepare()
        barrier = threading.Barrier(2)
        answers: list[httpx.Response] = []

        def execute() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as own:
                own.get("/health")  # connect before the barrier: the two posts leave together
                barrier.wait()
                answers.append(own.post(world.url("execute"), headers=caller.headers,
                                        json={"preview_id": preview["id"], "decisions": {}}))

        threads = [threading.Thread(target=execute) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200, 409], [answer.text for answer in answers]
        loser = next(answer for answer in answers if answer.status_code == 409).json()
        assert loser["error"]["code"] in ("workspace_changed", "preview_already_executed")
        winner = next(answer for answer in answers if answer.status_code == 200).json()
        assert world.workspace()["current_snapshot_id"] == winner["snapshot_id"]
        history = http.get(f"/v1/workspaces/{world.feature['id']}/snapshots", headers=caller.headers).json()
        assert sum(1 for s in history["snapshots"] if s["id"] == winner["snapshot_id"]) == 1
