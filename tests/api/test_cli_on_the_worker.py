"""The `fastest` CLI against the Worker: login with a token, init, push, status, and `sync` of a
second workspace from main, as a user of a Cloudflare deployment would. (On the local runtime the
same commands run against the real server in tests/e2e.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, write
from tests.e2e.test_cli_sync import files_of
from tests.edge_runtime import is_edge

pytestmark = pytest.mark.skipif(not is_edge(), reason="the CLI needs a server process; tests/e2e covers the local one")


def test_push_status_and_sync_through_the_worker(client, alice, tmp_path: Path):
    cli = Cli(tmp_path / "config")
    cli("login", "--server", str(client.base_url).rstrip("/"), "--token", alice.token, cwd=tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "app.py", "print('hello')\n")
    write(a / "conf.txt", "mode = base\n")
    project_id = cli.json("init", "--project", "on-the-worker", cwd=a)["project_id"]
    cli("push", "-m", "first", cwd=a)
    write(a / "app.py", "print('hello, edge')\n")
    assert "app.py" in cli("status", cwd=a).stdout
    cli("push", "-m", "second", cwd=a)

    b.mkdir()
    cli("init", "--project-id", project_id, "--workspace", "b", cwd=b)
    synced = cli.json("sync", cwd=b)  # an empty workspace takes everything from main
    assert synced["files_written"] == 2 and files_of(b) == files_of(a)
