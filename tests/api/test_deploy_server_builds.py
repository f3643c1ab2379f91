"""Builds on the local runtime when its operator turns them on: the output deploys, a failing build
is `failed` with its log, a slow one is killed at the timeout, and a chatty one's log is capped."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastest.api.deploy_sites import DeploymentSites
from fastest.app import create_app
from fastest.config import Settings
from fastest.domain import tree
from fastest.services import storage
from tests.api.test_deployments import deploy, event_types, pushed
from tests.conftest import run


@pytest.fixture
def settings() -> Settings:
    return Settings(deploy_builds_enabled=1, deploy_build_timeout_seconds=3, deploy_build_max_output_bytes=2000)


def set_build(client, caller, workspace_id, command, output_dir="out"):
    response = client.put(f"/v1/infrastructure/workspaces/{workspace_id}/deployment-settings", headers=caller.headers,
                          json={"build_command": command, "output_dir": output_dir})
    assert response.status_code == 200


def logs_of(client, caller, deployment_id):
    return [l["message"] for l in client.get(f"/v1/infrastructure/deployments/{deployment_id}/logs", headers=caller.headers).json()["logs"]]


def test_server_build_deploys_its_output(client, alice, platform):
    project, workspace, _, _ = pushed(client, alice, {"src/page.html": b"<h1>src</h1>"})
    set_build(client, alice, workspace["id"], "mkdir -p out && cp src/page.html out/index.html && echo built it")
    result = deploy(client, alice, project["id"])
    # The build ran in the background task, which TestClient awaits before answering.
    row = client.get(f"/v1/infrastructure/deployments/{result['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert row["status"] == "ready", logs_of(client, alice, row["id"])
    assert "built it" in logs_of(client, alice, row["id"])
    sites = TestClient(DeploymentSites(create_app(lambda s: platform), lambda s: platform))
    slug = row["id"].lower().replace("_", "-")
    assert sites.get("/", headers={"host": f"{slug}.localhost"}).content == b"<h1>src</h1>"
    assert event_types(client, alice, project["id"])[-4:] == [
        "deployment.started", "build.started", "build.completed", "deployment.ready"]


def test_server_build_failure_and_timeout_and_output_cap(client, alice):
    project, workspace, _, _ = pushed(client, alice, {"a.txt": b"x"})
    set_build(client, alice, workspace["id"], "echo nope; exit 2")
    failed = deploy(client, alice, project["id"])
    row = client.get(f"/v1/infrastructure/deployments/{failed['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert row["status"] == "failed" and "exited 2" in row["error"] and "nope" in logs_of(client, alice, row["id"])
    assert event_types(client, alice, project["id"])[-2:] == ["build.failed", "deployment.failed"]

    set_build(client, alice, workspace["id"], "sleep 30")
    slow = deploy(client, alice, project["id"])
    row = client.get(f"/v1/infrastructure/deployments/{slow['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert row["status"] == "failed" and "timed out" in row["error"]

    set_build(client, alice, workspace["id"], "yes line | head -n 5000; mkdir out; echo hi > out/index.html")
    chatty = deploy(client, alice, project["id"])
    lines = logs_of(client, alice, chatty["deployment_id"])
    assert any("truncated" in l for l in lines) and sum(l == "line" for l in lines) < 500


def test_auto_deploy_builds_beside_the_push(client, alice):
    project, workspace, _, _ = pushed(client, alice, {"src/page.html": b"v1"})
    client.put(f"/v1/infrastructure/workspaces/{workspace['id']}/deployment-settings", headers=alice.headers,
               json={"build_command": "sleep 0.3; mkdir -p out && cp src/page.html out/index.html", "output_dir": "out",
                     "auto_deploy": True})
    from tests.api.trees import snapshot, upload_tree
    import time

    root = upload_tree(client, alice, {"src/page.html": b"v2"})
    snapshot(client, alice, project["id"], root, workspace_id=workspace["id"])
    url = f"/v1/infrastructure/workspaces/{workspace['id']}/deployments"
    deadline = time.monotonic() + 10
    while True:
        [row] = client.get(url, headers=alice.headers).json()["deployments"]
        if row["status"] in ("ready", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert row["trigger"] == "auto" and row["status"] == "ready", row


ESBUILD = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "esbuild"


@pytest.mark.skipif(not ESBUILD.exists(), reason="esbuild is not installed: run `npm ci`")
def test_a_javascript_worker_is_bundled_where_builds_run(client, alice, platform, monkeypatch):
    monkeypatch.setenv("FASTEST_ESBUILD", str(ESBUILD))
    files = {"wrangler.toml": b'name = "w"\nmain = "src/index.ts"\ncompatibility_date = "2025-06-01"\n'
                              b'[assets]\ndirectory = "public"\n',
             "src/index.ts": b'import { two } from "./two";\nexport default { fetch: () => new Response(String(two())) };\n',
             "src/two.ts": b"export const two = (): number => 2;\n",
             "public/index.html": b"<h1>w</h1>"}
    project, _, _, _ = pushed(client, alice, files)
    result = deploy(client, alice, project["id"])
    row = client.get(f"/v1/infrastructure/deployments/{result['deployment_id']}", headers=alice.headers).json()["deployment"]
    assert row["status"] == "ready", logs_of(client, alice, row["id"])
    assert "Bundled src/index.ts → index.js with esbuild" in logs_of(client, alice, row["id"])
    bundle = run(tree.find(row["output_manifest_hash"], ".worker/index.js", storage.manifest_loader(platform, alice.user_id)))
    code = run(storage.read_blob(platform, alice.user_id, bundle.hash))
    assert b"var two = /* @__PURE__ */ __name(() => 2" in code and b"export {" in code
    assert run(tree.find(row["output_manifest_hash"], "index.html", storage.manifest_loader(platform, alice.user_id)))
