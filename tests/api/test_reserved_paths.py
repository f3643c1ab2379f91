"""`.git` and `.fastest` never enter a tree: manifests a client uploads that name them are refused
(422, nothing stored), however spelled; and a tree the server stored before that rule (so still
holding one) is checked out by the CLI without them, each skipped with a warning."""

from __future__ import annotations

import subprocess

import pytest

from fastest.cli.checkout import checkout
from fastest.cli.client import ApiClient
from fastest.config import Settings
from fastest.domain import manifest as manifest_module
from fastest.domain.tree import build_manifests
from fastest.services import storage
from tests.api.app_transport import AppTransport
from tests.api.test_blobs import file_entry, frame, manifest, put_manifest, tree_entry
from tests.api.trees import new_project, new_workspace, snapshot, upload_blobs
from tests.conftest import assert_problem, count_rows, run


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


@pytest.mark.parametrize("name", [".git", ".GIT", ".Git.", ".git ", ".fastest", ".FASTEST"])
def test_a_manifest_naming_git_or_fastest_is_refused(client, alice, platform, name):
    hook = manifest(file_entry("post-checkout", b"#!/bin/sh\ntouch /tmp/pwned\n", mode=493))
    for body in (manifest(tree_entry(name, hook)), manifest(file_entry(name, b"gitdir: /elsewhere"))):
        problem = assert_problem(put_manifest(client, alice, body), 422, "manifest_invalid")
        assert "No tree may hold" in problem["detail"]
        batch = client.post("/v1/blobs/manifests/batch", headers=alice.headers, content=frame(body))
        assert batch.status_code == 200 and [r["code"] for r in batch.json()["rejected"]] == ["manifest_invalid"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 0


def test_names_that_only_look_alike_are_kept(client, alice):
    for name in (".gitignore", ".github", "git", ".fastestignore", "x.git"):
        assert put_manifest(client, alice, manifest(file_entry(name, b"x"))).status_code == 201, name


def store_as_before_the_rule(client, caller, platform, monkeypatch, files: dict[str, bytes]) -> str:
    """The tree's blobs through the API, and its manifests as a server from before the rule stored
    them: by the storage service, run in this process with the rule off (on both runtimes)."""
    records = upload_blobs(client, caller, files)

    async def body(data: bytes):
        yield data

    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(manifest_module, "RESERVED_NAMES", frozenset())
        built = build_manifests(records)
        for digest, data in built.manifests.items():
            run(storage.upload_manifest(platform, caller.user_id, digest, body(data), declared_length=len(data)))
    return built.root


def test_checkout_of_a_tree_stored_before_the_rule_skips_git_and_fastest(client, alice, platform, tmp_path, monkeypatch, capsys):
    hostile = b"[core]\n\tfsmonitor = touch " + str(tmp_path / "ran").encode() + b"\n"
    root = store_as_before_the_rule(client, alice, platform, monkeypatch, {
        "app.py": b"print(1)\n", ".git/config": hostile, "sub/.fastest/workspace.json": b"{}", "sub/ok.txt": b"ok"})
    project = new_project(client, alice)
    workspace = new_workspace(client, alice, project["id"])
    stored = snapshot(client, alice, project["id"], root, workspace_id=workspace["id"])

    target = tmp_path / "out"
    with ApiClient(str(client.base_url).rstrip("/"), alice.token, transport=AppTransport(client)) as api:
        report = checkout(api, stored["id"], target, progress=False)

    assert sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()) == ["app.py", "sub/ok.txt"]
    assert report.files == 2
    warnings = capsys.readouterr().err
    assert "skipped .git/config" in warnings and "skipped sub/.fastest/workspace.json" in warnings
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "status"], cwd=target, check=True, capture_output=True)
    assert not (tmp_path / "ran").exists()
