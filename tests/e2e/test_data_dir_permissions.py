"""The server's data directory is its owner's alone: the directory is 0700 (also one that existed
with looser bits) and every file in it — the database, its WAL, the KV and blob index, session
objects, the vault key — is 0600, so another user of the machine reads no token hash or secret."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx

from tests.e2e.conftest import FASTEST, admin_token, running_server


def loose(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return found


def test_the_data_directory_and_its_files_are_private(tmp_path: Path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)
    subprocess.run([*FASTEST, "migrate", "--data-dir", str(data_dir)], check=True, capture_output=True)
    token = admin_token(data_dir, "private@example.com")
    with running_server(data_dir) as (base_url, _):
        api = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        project = api.post("/v1/projects", json={"name": "p"}).json()["project"]
        workspace = api.post(f"/v1/projects/{project['id']}/workspaces", json={"name": "w"}).json()["workspace"]
        conversation = api.post("/v1/conversations", json={"workspace_id": workspace["id"]}).json()["conversation"]
        assert api.post(f"/v1/conversations/{conversation['id']}/messages", json={"prompt": "/help"}).status_code == 202
        assert loose(data_dir) == []
    assert any(p.name.endswith("-wal") or p.suffix == ".sqlite" for p in data_dir.rglob("*"))
    assert loose(data_dir) == []
