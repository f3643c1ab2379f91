"""Action-item runs driven by a loopback model that issues tool calls: the patch, its checks, retry
and failure, the builtin engine, a restart mid-run, and applying (clean, merged, conflicting)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fastest.app import create_app
from fastest.config import Settings
from durable_objects.local import open_platform as open_local_platform
from tests.api.items_model import ScriptedModel, text, tool
from tests.api.test_action_items import LEAKY, TREE, items, make_workspace, move
from tests.api.trees import upload_tree
from tests.conftest import assert_problem, make_caller

FIXED = b'import os\n\nDEBUG = False\nAWS_ACCESS_KEY_ID = os.environ["AWS_ACCESS_KEY_ID"]\n'


def fixing_model(content: bytes = FIXED):
    """Reads the config, writes `content` in its place, then reports."""

    def respond(messages):
        last = messages[-1]
        if last["role"] == "user":
            return tool("read_file", path="config/settings.py")
        if last["role"] == "tool" and last["content"].startswith("import os"):
            return tool("write_file", path="config/settings.py", content=content.decode())
        return text("Read the AWS key from the environment.\nThe key was hard-coded in config/settings.py.")

    return respond


@pytest.fixture
def model():
    with ScriptedModel(fixing_model()) as server:
        yield server


@pytest.fixture
def settings(model) -> Settings:
    return Settings(ai_provider="openai", ai_base_url=model.base_url, ai_model="test-model",
                    ai_rate_limit_per_minute=100, action_item_run_retry_seconds=0)


def secret_item(client, caller):
    return next(i for i in items(client, caller) if i["type"] == "secrets")


def start(client, caller, item_id, **headers):
    response = client.post(f"/v1/action-items/{item_id}/runs", headers={**caller.headers, **headers})
    assert response.status_code == 202, response.text
    return response.json()["run"]


def wait_run(client, caller, run_id, statuses=("ready", "failed"), timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/action-items/runs/{run_id}", headers=caller.headers).json()["run"]
        if run["status"] in statuses:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run still {run['status']}: {run}")


def git_apply_check(tmp_path: Path, files: dict[str, bytes], patch: str) -> None:
    root = tmp_path / "checkout"
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    (root / "run.patch").write_text(patch)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "apply", "--check", "run.patch"], cwd=root, check=True)
    subprocess.run(["patch", "-p1", "--dry-run", "-s", "-i", "run.patch"], cwd=root, check=True)


def test_a_run_fixes_the_secret_and_apply_resolves_the_item(client, alice, model, tmp_path, platform):
    project, workspace, head = make_workspace(client, alice)
    item = secret_item(client, alice)
    assert client.get("/v1/action-items", headers=alice.headers).json()["agent_available"] is True  # a model is configured
    run = start(client, alice, item["id"])
    assert run["status"] in ("queued", "running") and run["action_item_id"] == item["id"] and run["max_attempts"] == 3
    run = wait_run(client, alice, run["id"])
    assert run["status"] == "ready", run
    assert run["attempt_count"] == 1 and run["error"] is None
    assert run["summary"] == "Read the AWS key from the environment."
    assert "config/settings.py" in run["report"]
    assert all(check["ok"] for check in run["checks"]) and {c["name"] for c in run["checks"]} == {"parses", "finding_resolved"}
    assert run["patch"].startswith("diff --git a/config/settings.py b/config/settings.py\n")
    git_apply_check(tmp_path, TREE, run["patch"])
    # The model got the chat's file tools, and the item as its task.
    first = model.requests[0]
    assert {t["function"]["name"] for t in first["tools"]} >= {"read_file", "write_file", "list_files", "delete_file"}
    assert "config/settings.py" in first["messages"][-1]["content"]
    # Nothing happened to the workspace yet.
    ws = client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]
    assert ws["current_snapshot_id"] == head["id"]
    # A ready event in the project's log.
    events = client.get(f"/v1/projects/{project['id']}/events", headers=alice.headers).json()["events"]
    assert any(e["type"] == "action_item.run.ready" and e["data"]["run_id"] == run["id"] for e in events)
    listed = client.get(f"/v1/action-items/{item['id']}/runs", headers=alice.headers).json()["runs"]
    assert [r["id"] for r in listed] == [run["id"]]

    applied = client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers)
    assert applied.status_code == 200, applied.text
    body = applied.json()
    assert body["merged"] is False and body["run"]["status"] == "applied"
    ws = client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]
    assert ws["current_snapshot_id"] == body["snapshot_id"] and ws["current_manifest_hash"] == body["manifest_hash"]
    assert item["id"] not in [i["id"] for i in items(client, alice)]
    assert_problem(client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers), 409, "run_already_applied")


def test_apply_after_the_workspace_moved_merges_or_conflicts(client, alice):
    _, workspace, _ = make_workspace(client, alice)
    item = secret_item(client, alice)
    run = wait_run(client, alice, start(client, alice, item["id"])["id"])
    assert run["status"] == "ready", run
    # The workspace changed another file meanwhile: a clean merge keeps both.
    move(client, alice, workspace, {**TREE, "README.md": b"# Web\n"})
    body = client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers).json()
    assert body["merged"] is True and body["run"]["status"] == "applied"
    compare = client.get(f"/v1/snapshots/{body['snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert compare["manifest_hash"] == body["manifest_hash"]


def test_apply_conflict_is_409_with_the_paths_and_changes_nothing(client, alice):
    _, workspace, _ = make_workspace(client, alice)
    item = secret_item(client, alice)
    run = wait_run(client, alice, start(client, alice, item["id"])["id"])
    edited = LEAKY.replace(b'AWS_ACCESS_KEY_ID = "AKIAZ7VRSQ5TKHJ3XQPL"', b'AWS_ACCESS_KEY_ID = load_key()')
    root = move(client, alice, workspace, {**TREE, "config/settings.py": edited})
    response = client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers)
    body = assert_problem(response, 409, "apply_conflict")
    assert body["paths"] == ["config/settings.py"]
    ws = client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]
    assert ws["current_manifest_hash"] == root
    assert client.get(f"/v1/action-items/runs/{run['id']}", headers=alice.headers).json()["run"]["status"] == "ready"


def test_a_run_that_breaks_a_file_is_retried_then_fails(client, alice, model):
    model.respond = fixing_model(b"import os\nAWS_ACCESS_KEY_ID = os.environ[\n")
    make_workspace(client, alice)
    item = secret_item(client, alice)
    run = wait_run(client, alice, start(client, alice, item["id"])["id"])
    assert run["status"] == "failed" and run["attempt_count"] == 3
    assert run["error"]["code"] == "checks_failed" and "config/settings.py" in run["error"]["message"]
    assert any(c["name"] == "parses" and not c["ok"] for c in run["checks"])
    # The retries were told why.
    retried = [r for r in model.requests if r["messages"][1]["role"] == "user" and "previous attempt failed" in r["messages"][1]["content"]]
    assert retried
    assert_problem(client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers), 409, "run_not_ready")


def test_one_active_run_per_item_and_unknown_runs(client, alice, bob, model):
    model.hold.set()
    make_workspace(client, alice)
    item = secret_item(client, alice)
    first = start(client, alice, item["id"])
    assert_problem(client.post(f"/v1/action-items/{item['id']}/runs", headers=alice.headers), 409, "run_in_progress")
    for method, path in [("GET", f"/v1/action-items/runs/{first['id']}"), ("POST", f"/v1/action-items/runs/{first['id']}/apply"),
                         ("GET", "/v1/action-items/runs/run_nope")]:
        assert_problem(client.request(method, path, headers=bob.headers), 404, "not_found")
    model.release.set()
    assert wait_run(client, alice, first["id"])["status"] == "ready"


def test_a_run_cannot_touch_another_users_files(client, alice, bob, model):
    """The run's tools read through its owner's storage: a path of Bob's tree is not there."""
    make_workspace(client, bob, {**TREE, "bob/secret.txt": b"bob's\n"}, name="B")
    model.respond = lambda messages: (tool("read_file", path="bob/secret.txt") if messages[-1]["role"] == "user"
                                      else text(messages[-1]["content"]) if messages[-1]["role"] == "tool" else text("x"))
    make_workspace(client, alice)
    run = wait_run(client, alice, start(client, alice, secret_item(client, alice)["id"])["id"])
    tool_results = [m["content"] for r in model.requests for m in r["messages"] if m["role"] == "tool"]
    assert tool_results and all("bob's" not in content for content in tool_results)
    assert run["status"] == "failed" and run["error"]["code"] == "checks_failed"


def test_builtin_engine_fails_with_model_not_configured(tmp_path, clock):
    platform = open_local_platform(tmp_path / "data", Settings(), clock=clock)
    try:
        with TestClient(create_app(lambda scope: platform)) as client:
            alice = make_caller(platform, "alice@example.com")
            make_workspace(client, alice)
            run = wait_run(client, alice, start(client, alice, secret_item(client, alice)["id"])["id"])
            assert run["status"] == "failed" and run["error"]["code"] == "model_not_configured"
            assert "FASTEST_AI_PROVIDER" in run["error"]["message"] and run["attempt_count"] == 1
    finally:
        platform.close()


def test_a_run_cut_short_by_a_restart_resumes(tmp_path, clock, model, settings):
    data = tmp_path / "data"
    model.hold.set()  # the first model call hangs: the server stops mid-run
    platform = open_local_platform(data, settings, clock=clock)
    with TestClient(create_app(lambda scope: platform)) as client:
        alice = make_caller(platform, "alice@example.com")
        make_workspace(client, alice)
        run = start(client, alice, secret_item(client, alice)["id"])
        deadline = time.monotonic() + 10
        while not model.requests and time.monotonic() < deadline:
            time.sleep(0.02)
        assert model.requests
        assert wait_run(client, alice, run["id"], statuses=("running",))["attempt_count"] == 1
    platform.close()
    model.hold.clear()
    model.release.set()

    platform = open_local_platform(data, settings, clock=clock)
    try:
        with TestClient(create_app(lambda scope: platform)) as client:
            client.portal.call(_start_alarms, platform)  # what `fastest serve` does at start
            resumed = wait_run(client, alice, run["id"])
            assert resumed["status"] == "ready", resumed
            assert resumed["attempt_count"] == 2  # the interrupted attempt counted
    finally:
        platform.close()


async def _start_alarms(platform):
    platform.sessions.start_alarms()


def test_run_creation_honours_idempotency_keys_and_validates_its_body(client, alice, model):
    model.hold.set()
    make_workspace(client, alice)
    item = secret_item(client, alice)
    assert_problem(client.post(f"/v1/action-items/{item['id']}/runs", headers=alice.headers, json={"instructions": 5}),
                   422, "validation_failed")
    assert_problem(client.post(f"/v1/action-items/{item['id']}/runs", headers=alice.headers, json={"nope": "x"}),
                   422, "validation_failed")
    first = start(client, alice, item["id"], **{"Idempotency-Key": "k1"})
    again = client.post(f"/v1/action-items/{item['id']}/runs", headers={**alice.headers, "Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["run"]["id"] == first["id"]
    model.release.set()
    wait_run(client, alice, first["id"])


def test_drift_items_are_not_runnable(client, alice, clock):
    from datetime import timedelta

    from tests.api.trees import new_workspace, snapshot

    project, main, head = make_workspace(client, alice, {"a.py": b"x = 1\n", "test_a.py": b""})
    new_workspace(client, alice, project["id"], "laptop", base_snapshot_id=head["id"])
    clock.advance(timedelta(days=2).total_seconds())
    snapshot(client, alice, project["id"], upload_tree(client, alice, {"a.py": b"x = 2\n", "test_a.py": b""}),
             parent_snapshot_ids=[head["id"]], workspace_id=main["id"])
    stale = next(i for i in items(client, alice) if i["type"] == "drift-stale")
    assert_problem(client.post(f"/v1/action-items/{stale['id']}/runs", headers=alice.headers), 422, "item_not_runnable")


def test_a_lost_compare_and_set_applies_nothing(client, alice, platform, monkeypatch):
    """The workspace moves between apply's read and its batch: 409, no snapshot, run still ready."""
    from fastest.services.action_items import runs as action_item_runs
    from fastest.services.sync import workspaces
    from tests.conftest import count_rows

    _, workspace, _ = make_workspace(client, alice)
    run = wait_run(client, alice, start(client, alice, secret_item(client, alice)["id"])["id"])
    real = workspaces.get_owned
    calls = []

    async def stale(platform_, user_id, workspace_id):
        row = await real(platform_, user_id, workspace_id)
        if not calls:
            calls.append(1)
            await platform_.db.prepare("UPDATE workspaces SET version = version + 1 WHERE id = ?").bind(workspace_id).run()
        return row

    monkeypatch.setattr(action_item_runs.workspaces, "get_owned", stale)
    before = count_rows(platform, "SELECT COUNT(*) AS n FROM snapshots")
    assert_problem(client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers), 409, "workspace_changed")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM snapshots") == before
    assert client.get(f"/v1/action-items/runs/{run['id']}", headers=alice.headers).json()["run"]["status"] == "ready"
