"""Action items through the API: findings across workspaces (analysis and drift), severity order,
dismissals that hold until the item gets worse, the refresh job, and cross-user 404s."""

from __future__ import annotations

import asyncio
from datetime import timedelta


from fastest.services.operations import jobs
from fastest.services.action_items import items as action_items_items
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, run

LEAKY = b'import os\n\nDEBUG = False\nAWS_ACCESS_KEY_ID = "AKIAZ7VRSQ5TKHJ3XQPL"\n'
LEAKIER = LEAKY + b'STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"\n'
TREE = {
    "config/settings.py": LEAKY,
    "package.json": b'{"name": "web", "dependencies": {"left-pad": "^1.3.0"}}\n',
    "app/models.py": b"class User:\n    pass\n",
    "app/views.py": b"def index():\n    return 'hi'\n",
    "tests/test_models.py": b"def test_user():\n    pass\n",
    "tests/test_settings.py": b"def test_settings():\n    pass\n",
}


def make_workspace(client, caller, files=TREE, name="P"):
    project = new_project(client, caller, name)
    root = upload_tree(client, caller, files)
    head = snapshot(client, caller, project["id"], root)
    return project, new_workspace(client, caller, project["id"], base_snapshot_id=head["id"]), head


def move(client, caller, workspace, files):
    """Push a new tree into the workspace (current-manifest compare-and-set)."""
    current = client.get(f"/v1/workspaces/{workspace['id']}", headers=caller.headers).json()["workspace"]
    root = upload_tree(client, caller, files)
    response = client.post(f"/v1/workspaces/{workspace['id']}/current-manifest", headers=caller.headers,
                           json={"manifest_hash": root, "previous_manifest_hash": current["current_manifest_hash"]})
    assert response.status_code == 200, response.text
    return root


def items(client, caller, **query):
    response = client.get("/v1/action-items", headers=caller.headers, params=query)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_findings_are_listed_critical_first(client, alice):
    project, workspace, _ = make_workspace(client, alice)
    listed = items(client, alice)
    assert [i["type"] for i in listed] == ["secrets", "missing-lockfile", "untested-modules"]
    secret = listed[0]
    assert secret["severity"] == "critical" and secret["workspace_id"] == workspace["id"]
    assert secret["project_id"] == project["id"] and secret["action_type"] == "run"
    assert secret["action_data"]["path"] == "config/settings.py"
    assert "AKIAZ7VRSQ5TKHJ3XQPL" not in str(listed)
    assert listed[2]["action_data"]["modules"] == ["app/views.py"]
    # Ids are stable across listings, and an item can be read by id.
    assert [i["id"] for i in items(client, alice)] == [i["id"] for i in listed]
    got = client.get(f"/v1/action-items/{secret['id']}", headers=alice.headers)
    assert got.status_code == 200 and got.json()["item"]["fingerprint"] == secret["fingerprint"]


def test_analysis_follows_the_tree(client, alice):
    _, workspace, _ = make_workspace(client, alice)
    fixed = {**TREE, "config/settings.py": b"import os\nKEY = os.environ['AWS_ACCESS_KEY_ID']\n", "package-lock.json": b"{}"}
    move(client, alice, workspace, fixed)
    assert [i["type"] for i in items(client, alice)] == ["untested-modules"]


def test_dismissal_persists_and_the_item_reappears_when_worse(client, alice):
    _, workspace, _ = make_workspace(client, alice)
    secret = items(client, alice)[0]
    response = client.post(f"/v1/action-items/{secret['id']}/dismiss", headers=alice.headers)
    assert response.status_code == 200 and response.json() == {"success": True}
    assert secret["id"] not in [i["id"] for i in items(client, alice)]
    hidden = [i for i in items(client, alice, include_dismissed="true") if i["id"] == secret["id"]]
    assert hidden and hidden[0]["dismissed"] is True
    # Unrelated change: still dismissed. Same secret count: still dismissed.
    move(client, alice, workspace, {**TREE, "README.md": b"# hi\n"})
    assert secret["id"] not in [i["id"] for i in items(client, alice)]
    # Worse: a second secret in the same file → back, with its magnitude.
    move(client, alice, workspace, {**TREE, "config/settings.py": LEAKIER})
    back = [i for i in items(client, alice) if i["id"] == secret["id"]]
    assert back and back[0]["magnitude"] == 2 and back[0]["dismissed"] is False


def test_drift_items_stale_workspace_and_dismissal(client, alice, clock):
    project, main, head = make_workspace(client, alice, {"a.py": b"x = 1\n", "test_a.py": b""})
    laptop = new_workspace(client, alice, project["id"], "laptop", base_snapshot_id=head["id"])
    clock.advance(timedelta(days=2).total_seconds())
    snapshot(client, alice, project["id"], upload_tree(client, alice, {"a.py": b"x = 2\n", "test_a.py": b""}),
             parent_snapshot_ids=[head["id"]], workspace_id=main["id"])
    clock.advance(timedelta(days=1).total_seconds())
    stale = [i for i in items(client, alice) if i["type"] == "drift-stale"]
    assert len(stale) == 1 and stale[0]["workspace_id"] == laptop["id"] and stale[0]["action_type"] == "sync"
    assert client.post(f"/v1/action-items/{stale[0]['id']}/dismiss", headers=alice.headers).status_code == 200
    assert not [i for i in items(client, alice) if i["type"] == "drift-stale"]
    clock.advance(timedelta(days=7).total_seconds())  # very stale now: worse, so back
    again = [i for i in items(client, alice) if i["type"] == "drift-stale"]
    assert again and again[0]["severity"] == "high"


def test_refresh_job_analyses_moved_workspaces(client, alice, platform):
    make_workspace(client, alice)
    assert run(jobs.run(platform, "refresh-action-items")) == 1
    assert run(jobs.run(platform, "refresh-action-items")) == 0  # nothing moved since
    assert "refresh-action-items" in jobs.SCHEDULE["*/15 * * * *"]


def test_refresh_job_run_twice_at_once_ends_as_one_run(client, alice, platform):
    """The `refresh-action-items` job twice concurrently: the same items as one run, nothing left queued."""
    make_workspace(client, alice)

    async def twice():
        return await asyncio.gather(jobs.run(platform, "refresh-action-items"), jobs.run(platform, "refresh-action-items"))

    assert sum(run(twice())) >= 1
    assert run(jobs.run(platform, "refresh-action-items")) == 0
    assert [i["type"] for i in items(client, alice)] == ["secrets", "missing-lockfile", "untested-modules"]


def test_unknown_and_other_users_items_are_404(client, alice, bob):
    make_workspace(client, alice)
    secret = items(client, alice)[0]
    assert items(client, bob) == []
    for method, path in [
        ("GET", f"/v1/action-items/{secret['id']}"),
        ("POST", f"/v1/action-items/{secret['id']}/dismiss"),
        ("POST", f"/v1/action-items/{secret['id']}/runs"),
        ("GET", f"/v1/action-items/{secret['id']}/runs"),
        ("GET", "/v1/action-items/act_nope"),
    ]:
        assert_problem(client.request(method, path, headers=bob.headers), 404, "not_found")
    # Bob's dismissal attempt changed nothing for Alice.
    assert secret["id"] in [i["id"] for i in items(client, alice)]


def test_needs_authentication(client):
    assert_problem(client.get("/v1/action-items"), 401, "unauthenticated")


def test_a_push_queues_the_workspace_and_the_job_drains_the_queue(client, alice, platform):
    from tests.conftest import count_rows

    project, workspace, head = make_workspace(client, alice, {"a.py": b"x = 1\n", "test_a.py": b""})
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM action_item_queue") == 0
    root = move(client, alice, workspace, TREE)  # a push: the folder's tree, then its snapshot
    snapshot(client, alice, project["id"], root, parent_snapshot_ids=[head["id"]], workspace_id=workspace["id"])
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM action_item_queue WHERE workspace_id = ?", workspace["id"]) == 1
    assert run(jobs.run(platform, "refresh-action-items")) == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM action_item_queue") == 0
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM action_items WHERE kind = 'secrets'") == 1


def test_dismissal_is_a_project_event(client, alice):
    project, _, _ = make_workspace(client, alice)
    secret = items(client, alice)[0]
    client.post(f"/v1/action-items/{secret['id']}/dismiss", headers=alice.headers)
    events = client.get(f"/v1/projects/{project['id']}/events", headers=alice.headers).json()["events"]
    assert events[0]["type"] == "action_item.dismissed" and events[0]["data"]["action_item_id"] == secret["id"]


def test_a_failed_last_sync_is_an_item_until_a_sync_succeeds(client, alice):
    from tests.api.test_sync import BASE, World, edit

    world = World(client, alice, edit(BASE, {"src/new.py": b"new\n"}), edit(BASE, {"docs/extra.md": b"Extra\n"}))
    preview = world.prepare()
    snapshot(client, alice, world.project["id"], upload_tree(client, alice, {"x": b"x\n"}), workspace_id=world.main["id"],
             parent_snapshot_ids=[world.theirs["id"]])
    assert_problem(world.execute(preview["id"]), 409, "main_changed")
    failed = [i for i in items(client, alice) if i["type"] == "drift-sync-failed"]
    assert len(failed) == 1 and failed[0]["workspace_id"] == world.feature["id"] and failed[0]["severity"] == "high"
    assert failed[0]["action_data"]["code"] == "main_changed" and failed[0]["action_type"] == "sync"
    preview = world.prepare()
    assert world.execute(preview["id"], confirm_mass_change=True).status_code == 200
    assert not [i for i in items(client, alice) if i["type"] == "drift-sync-failed"]


def test_scans_are_kept_per_blob_and_big_trees_wait_for_the_job(client, alice, platform, monkeypatch):
    from fastest.services import action_items
    from tests.conftest import count_rows

    monkeypatch.setattr(action_items_items, "LAZY_SCAN_BYTES", 10)  # every tree is "big"
    _, workspace, _ = make_workspace(client, alice)
    assert items(client, alice) == []  # not analysed inside the listing
    assert run(jobs.run(platform, "refresh-action-items")) == 1
    assert [i["type"] for i in items(client, alice)][0] == "secrets"
    scanned = count_rows(platform, "SELECT COUNT(*) AS n FROM action_item_blob_scans")
    assert scanned >= 5
    # A one-file change scans one new blob, within even this budget's reach for the job.
    move(client, alice, workspace, {**TREE, "app/models.py": b"class User:\n    name = 'x'\n"})
    assert run(jobs.run(platform, "refresh-action-items")) == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM action_item_blob_scans") == scanned + 1


def test_the_listing_says_whether_an_agent_can_fix_items(client, alice):
    """No model configured: runs would fail at once, so the listing says no agent is available."""
    make_workspace(client, alice)
    listing = client.get("/v1/action-items", headers=alice.headers).json()
    assert listing["items"] and listing["agent_available"] is False
