"""A tree pulled into a folder never writes into its `.git/` (nor `.fastest/`): the chain an attacker
would use — a conversation's agent writes `.git/config` with an `fsmonitor` command, the result is
restored into main, and `fastest sync` brings main into a git repository, whose next `git status`
runs the command — leaves `.git/` untouched and runs nothing. Real server, real CLI, real git."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Cli, admin_token, write

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def git_repository(folder: Path) -> bytes:
    folder.mkdir(parents=True)
    git("init", "-q", cwd=folder)
    write(folder / "app.py", "print('hi')\n")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "add", "app.py", cwd=folder)
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first", cwd=folder)
    return (folder / ".git" / "config").read_bytes()


def workspace_id(folder: Path) -> str:
    return json.loads((folder / ".fastest" / "workspace.json").read_text())["workspace_id"]


def test_an_agent_cannot_plant_git_config_that_sync_writes_into_a_repository(server, logged_in: Cli, tmp_path: Path):
    base_url, data_dir = server
    token = admin_token(data_dir, "cli@example.com")
    api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    marker = tmp_path / "fsmonitor-ran"

    main = tmp_path / "main"
    write(main / "app.py", "print('hi')\n")
    logged_in("init", "--project", "app", "--workspace", "main", cwd=main)
    logged_in("push", "-m", "first", cwd=main)
    repository = tmp_path / "repository"
    config_before = git_repository(repository)
    logged_in("init", "--project", "app", "--workspace", "laptop", cwd=repository)
    logged_in("push", "-m", "laptop", cwd=repository)

    # The agent (the builtin engine's /write) is asked to plant a git config with a command in it.
    conversation = api.post("/v1/conversations", json={"workspace_id": workspace_id(main)}).json()["conversation"]["id"]
    for path in (".git/config", "sub/.GIT/hooks/post-checkout", ".fastest/workspace.json"):
        prompt = f"/write {path}\n[core]\n\tfsmonitor = touch {marker}\n"
        assert api.post(f"/v1/conversations/{conversation}/messages", json={"prompt": prompt}).status_code == 202
        reply = wait_for_reply(api, conversation)
        assert "No tree may hold" in reply and "Wrote" not in reply, reply

    # Its working tree is frozen and restored into main, then main is synced into the repository.
    frozen = api.post(f"/v1/conversations/{conversation}/snapshot", json={}).json()
    restored = api.post(f"/v1/snapshots/{frozen['snapshot_id']}/restore", json={"workspace_id": workspace_id(main)})
    assert restored.status_code == 200, restored.text
    logged_in("sync", "--yes", cwd=repository)

    assert (repository / ".git" / "config").read_bytes() == config_before
    git("status", cwd=repository)
    assert not marker.exists()


def wait_for_reply(api: httpx.Client, conversation: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = api.get(f"/v1/conversations/{conversation}/messages").json()["messages"]
        if messages and messages[-1]["role"] == "assistant":
            return messages[-1]["content"]
        time.sleep(0.1)
    raise AssertionError("the conversation never answered")
