"""The real `fastest` client against the real server, both as subprocesses.

login → init → push a folder → change it → push again (one blob per changed file, only the manifests
on the changed paths) → log → checkout of each snapshot reproduces it byte for byte, modes included
→ status clean, then dirty.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from fastest.domain.tree import build_manifests
from tests.e2e.conftest import Cli, write


def generate_folder(root: Path) -> None:
    write(root / "README.md", "# demo\n")
    write(root / "src" / "app" / "main.py", "from .util import helpers\n")
    write(root / "src" / "app" / "util" / "helpers.py", "def help():\n    return 1\n")
    write(root / "src" / "same-a.txt", "duplicate content\n")
    write(root / "src" / "same-b.txt", "duplicate content\n")  # one blob, two paths
    write(root / "docs" / "guide" / "intro.md", "intro\n")
    write(root / "bin" / "run.sh", "#!/bin/sh\necho run\n", mode=0o755)
    write(root / "assets" / "logo.bin", bytes(range(256)) * 12 + b"\x00\xff")
    write(root / "assets" / "big.bin", hashlib.sha256(b"seed").digest() * 50_000)  # 1.6 MB: streamed upload
    write(root / "données" / "résumé ✓.txt", "unicode name\n")
    write(root / "node_modules" / "dep" / "index.js", "ignored by default\n")
    write(root / "secret.env", "TOKEN=ignored by .fastestignore\n")
    write(root / ".fastestignore", "*.env\n")
    (root / "link-to-readme").symlink_to("README.md")


def tree_of(root: Path) -> dict[str, tuple[bytes, int]]:
    """What a snapshot of `root` holds: path → (bytes, manifest mode), without ignored or state files."""
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        top = relative.split("/")[0]
        if top in (".fastest", "node_modules") or relative.endswith(".env") or path.is_symlink() or not path.is_file():
            continue
        files[relative] = (path.read_bytes(), 493 if path.stat().st_mode & 0o100 else 420)
    return files


def manifests_of(files: dict[str, tuple[bytes, int]]) -> dict[str, bytes]:
    records = [(p, hashlib.sha256(data).hexdigest(), len(data), mode) for p, (data, mode) in files.items()]
    return build_manifests(records).manifests


def checked_out(root: Path) -> dict[str, tuple[bytes, int]]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            mode = path.stat().st_mode & 0o777
            assert mode in (0o644, 0o755), (path, oct(mode))
            files[path.relative_to(root).as_posix()] = (path.read_bytes(), 493 if mode == 0o755 else 420)
    return files


def test_push_change_push_log_checkout_status(logged_in: Cli, tmp_path: Path):
    cli = logged_in
    folder = tmp_path / "demo"
    generate_folder(folder)

    init = cli.json("init", "--project", "demo", cwd=folder)
    assert init["project_created"] is True and init["workspace_id"].startswith("wsp_")
    state = json.loads((folder / ".fastest" / "workspace.json").read_text())
    assert state["head_snapshot_id"] is None and state["manifest_hash"] is None
    again = cli("init", cwd=folder)
    assert "already initialised" in again.stdout
    assert json.loads((folder / ".fastest" / "workspace.json").read_text()) == state

    version1 = tree_of(folder)
    first = cli("push", "-m", "first", "--json", cwd=folder)
    assert first.stderr == ""  # no progress bar without a terminal
    first = json.loads(first.stdout)
    assert first["files_scanned"] == len(version1) == 11
    assert first["symlinks_skipped"] == 1
    assert first["blobs_uploaded"] == len({data for data, _ in version1.values()}) == 10
    assert first["manifests_uploaded"] == first["manifests_total"] == len(manifests_of(version1))
    assert first["snapshot_id"].startswith("snp_") and first["snapshot_created"] is True

    unchanged = cli.json("push", cwd=folder)
    assert unchanged["nothing_to_push"] is True and unchanged["blobs_uploaded"] == 0
    assert unchanged["files_hashed"] == 0 or unchanged["files_reused"] > 0
    assert "nothing to push" in cli("push", cwd=folder).stdout

    write(folder / "src" / "app" / "util" / "helpers.py", "def help():\n    return 2\n")  # edit
    write(folder / "docs" / "guide" / "new.md", "brand new\n")  # add
    (folder / "README.md").unlink()  # delete
    version2 = tree_of(folder)
    second = cli.json("push", "-m", "second", cwd=folder)
    assert second["blobs_uploaded"] == 2  # the edited file and the new one
    on_changed_paths = set(manifests_of(version2)) - set(manifests_of(version1))
    assert len(on_changed_paths) == 6  # root, src, src/app, src/app/util, docs, docs/guide
    assert second["manifests_uploaded"] == 6
    assert second["blobs_new"] == 2 and second["manifests_new"] == 6  # the rest is known from the last push

    log = cli.json("log", "-n", "10", cwd=folder)
    ids = [s["id"] for s in log["snapshots"]]
    assert ids == [second["snapshot_id"], first["snapshot_id"]]
    assert log["head_snapshot_id"] == second["snapshot_id"]
    assert log["snapshots"][0]["parent_snapshot_ids"] == [first["snapshot_id"]]
    human_log = cli("log", cwd=folder).stdout.splitlines()
    assert human_log[0].startswith(f"* {second['snapshot_id']}") and human_log[1].startswith(f"  {first['snapshot_id']}")

    out = tmp_path / "out"
    cli("checkout", first["snapshot_id"], str(out / "v1"), cwd=tmp_path)
    assert checked_out(out / "v1") == version1
    cli("checkout", second["snapshot_id"], cwd=out)  # default directory: ./<snapshot id>
    assert checked_out(out / second["snapshot_id"]) == version2

    status = cli.json("status", cwd=folder)
    assert status["clean"] is True and status["changes"] == []
    write(folder / "docs" / "guide" / "intro.md", "edited locally\n")
    write(folder / "src" / "extra.py", "x = 1\n")
    (folder / "bin" / "run.sh").unlink()
    status = cli.json("status", cwd=folder)
    assert {(c["kind"], c["path"]) for c in status["changes"]} == {
        ("modified", "docs/guide/intro.md"), ("added", "src/extra.py"), ("deleted", "bin/run.sh"),
    }
    short = cli("status", cwd=(folder / "src")).stdout  # works from a subdirectory too
    assert "M docs/guide/intro.md" in short and "A src/extra.py" in short and "D bin/run.sh" in short
    assert "drift" in short.splitlines()[-1]


def test_checkout_refuses_a_non_empty_directory(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "p"
    write(folder / "a.txt", "a\n")
    logged_in("init", cwd=folder)
    snapshot = logged_in.json("push", cwd=folder)["snapshot_id"]
    busy = tmp_path / "busy"
    write(busy / "keep.txt", "mine\n")
    refused = logged_in("checkout", snapshot, str(busy), cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert (busy / "keep.txt").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".busy")) == []  # no leftovers
    logged_in("checkout", snapshot, str(busy), "--force", cwd=tmp_path)
    assert checked_out(busy) == {"a.txt": (b"a\n", 420)}
    missing = logged_in("checkout", "snp_00000000000000000000000000", str(tmp_path / "none"), cwd=tmp_path, check=False)
    assert missing.returncode == 1 and missing.stderr.startswith("fastest: ") and len(missing.stderr.splitlines()) == 1
    assert not (tmp_path / "none").exists()


def test_login_with_a_bad_token_fails(server, cli: Cli, tmp_path: Path):
    base_url, _ = server
    done = cli("login", "--server", base_url, "--token", "fst_not_a_real_token", cwd=tmp_path, check=False)
    assert done.returncode == 1 and "token rejected" in done.stderr
    assert not (tmp_path / "config" / "config.json").exists()


def test_commands_need_login_and_a_folder(server, cli: Cli, tmp_path: Path):
    not_logged_in = cli("init", cwd=tmp_path, check=False)
    assert not_logged_in.returncode == 2 and "not logged in" in not_logged_in.stderr
    not_a_folder = cli("push", cwd=tmp_path, check=False)
    assert not_a_folder.returncode == 2 and "fastest init" in not_a_folder.stderr


def test_init_finds_an_existing_project_by_name(logged_in: Cli, tmp_path: Path):
    one, two = tmp_path / "one" / "shared", tmp_path / "two" / "shared"
    one.mkdir(parents=True)
    two.mkdir(parents=True)
    first = logged_in.json("init", cwd=one)  # default project name: the folder's
    second = logged_in.json("init", "--workspace", "laptop", cwd=two)
    assert first["project_name"] == "shared" and first["project_created"] is True
    assert second["project_id"] == first["project_id"] and second["project_created"] is False
    assert second["workspace_id"] != first["workspace_id"] and second["workspace_name"] == "laptop"


def test_workspace_moved_on_the_server_is_reported(logged_in: Cli, server, tmp_path: Path):
    import httpx

    base_url, _ = server
    folder = tmp_path / "w"
    write(folder / "a.txt", "1\n")
    logged_in("init", cwd=folder)
    pushed_hash = logged_in.json("push", cwd=folder)["manifest_hash"]
    state = json.loads((folder / ".fastest" / "workspace.json").read_text())
    # Someone else moves the workspace to another (stored) manifest behind our back.
    other = tmp_path / "other"
    write(other / "b.txt", "2\n")
    logged_in("init", "--project-id", state["project_id"], cwd=other)
    other_hash = logged_in.json("push", cwd=other)["manifest_hash"]
    token = json.loads((tmp_path / "config" / "config.json").read_text())["token"]
    moved = httpx.post(
        f"{base_url}/v1/workspaces/{state['workspace_id']}/current-manifest",
        headers={"Authorization": f"Bearer {token}"},
        json={"manifest_hash": other_hash, "previous_manifest_hash": pushed_hash},
    )
    assert moved.status_code == 200, moved.text
    write(folder / "a.txt", "changed\n")
    done = logged_in("push", cwd=folder, check=False)
    assert done.returncode == 1 and "workspace moved on the server" in done.stderr
    (folder / ".fastest" / "pushed").unlink()  # local copies are only a cache: the server has the manifests
    assert logged_in.json("status", "--no-drift", cwd=folder)["changes"] == [{"path": "a.txt", "kind": "modified"}]
    assert [p.name for p in (folder / ".fastest" / "manifests").iterdir()] == [pushed_hash]


def test_push_of_named_paths_looks_at_those_alone(logged_in: Cli, tmp_path: Path):
    """`fastest push PATH…` (what an editor or a watcher calls): only the named files and directories
    are looked at; other changes stay local until a normal push."""
    cli = logged_in
    folder = tmp_path / "named"
    write(folder / "a.txt", "a\n")
    write(folder / "lib" / "one.py", "1\n")
    write(folder / "lib" / "two.py", "2\n")
    write(folder / "b.txt", "b\n")
    cli("init", "--project", "named", cwd=folder)
    cli("push", cwd=folder)
    write(folder / "a.txt", "a changed\n")
    write(folder / "b.txt", "b changed\n")
    write(folder / "lib" / "three.py", "3\n")
    (folder / "lib" / "two.py").unlink()

    report = cli.json("push", "a.txt", "lib", "missing.txt", cwd=folder)
    assert report["files_hashed"] == 2 and report["blobs_uploaded"] == 2  # a.txt and lib/three.py
    status = cli.json("status", "--no-drift", cwd=folder)
    assert [(c["path"], c["kind"]) for c in status["changes"]] == [("b.txt", "modified")]

    (folder / "a.txt").unlink()
    report = cli.json("push", str(folder / "a.txt"), cwd=folder)  # absolute paths work too; a deletion
    assert report["nothing_to_push"] is False
    outside = cli("push", str(tmp_path), cwd=folder, check=False)
    assert outside.returncode == 2 and "outside the folder" in outside.stderr
    cli("push", cwd=folder)  # a normal push picks up the rest
    assert cli.json("status", "--no-drift", cwd=folder)["changes"] == []
