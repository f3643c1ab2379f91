"""Workspaces through HTTP: main, heartbeat, compare-and-set, drift reports and comparison, docs."""

from __future__ import annotations

import pytest

from fastest.domain.tokens import ABILITIES
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, make_caller

MAIN = {"README.md": b"# app\n", "src/a.py": b"a = 1\n", "src/b.py": b"b = 1\n", "docs/intro.rst": b"Intro\n=====\n"}
FEATURE = {"README.md": b"# app\n", "src/a.py": b"a = 2\n", "src/b.py": b"b = 1\n", "src/c.py": b"c = 1\n",
           "docs/intro.rst": b"Intro\n=====\n", "notes.txt": b"todo\n", "logo.png": b"\x89PNG\r\n"}


@pytest.fixture
def project(client, alice):
    return new_project(client, alice)


def test_first_workspace_is_main_and_lists_with_latest_drift(client, alice, project):
    main = new_workspace(client, alice, project["id"], "main", machine_id="m1", local_path="/src/app")
    other = new_workspace(client, alice, project["id"], "feature")
    assert main["is_main"] is True and other["is_main"] is False and main["id"].startswith("wsp_")
    listed = client.get(f"/v1/projects/{project['id']}/workspaces", headers=alice.headers).json()["workspaces"]
    assert [(w["name"], w["is_main"], w["latest_drift"]) for w in listed] == [("main", True, None), ("feature", False, None)]
    assert client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()["project"]["main_workspace_id"] == main["id"]


def test_heartbeat(client, alice, project, clock):
    workspace = new_workspace(client, alice, project["id"])
    clock.advance(5)
    beat = client.post(f"/v1/workspaces/{workspace['id']}/heartbeat", headers=alice.headers).json()
    assert beat["success"] is True
    assert client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]["last_seen_at"] == beat["last_seen_at"]


def test_current_manifest_compare_and_set(client, alice, project):
    workspace = new_workspace(client, alice, project["id"])
    url = f"/v1/workspaces/{workspace['id']}/current-manifest"
    first, second = upload_tree(client, alice, MAIN), upload_tree(client, alice, FEATURE)
    assert client.post(url, headers=alice.headers, json={"manifest_hash": first, "previous_manifest_hash": None}).json() == {
        "updated": True, "current_manifest_hash": first,
    }
    stale = client.post(url, headers=alice.headers, json={"manifest_hash": second, "previous_manifest_hash": second})
    body = assert_problem(stale, 409, "conflict")
    assert body["updated"] is False and body["conflict"] is True and body["current_manifest_hash"] == first
    assert client.post(url, headers=alice.headers, json={"manifest_hash": second, "previous_manifest_hash": first}).status_code == 200
    missing = client.post(url, headers=alice.headers, json={"manifest_hash": "b" * 64, "previous_manifest_hash": second})
    assert_problem(missing, 422, "manifest_missing")
    assert client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]["current_manifest_hash"] == second


def test_drift_reports_and_history(client, alice, project):
    workspace = new_workspace(client, alice, project["id"])
    url = f"/v1/workspaces/{workspace['id']}/drift"
    for added in (1, 2, 3):
        report = client.post(url, headers=alice.headers, json={"files_added": added, "files_modified": 0, "files_deleted": 0, "bytes_changed": 10})
        assert report.status_code == 201 and report.json()["drift_report"]["files_added"] == added
    history = client.get(f"{url}?limit=2", headers=alice.headers).json()
    assert [r["files_added"] for r in history["drift_reports"]] == [3, 2] and history["latest"]["files_added"] == 3
    more = client.get(f"{url}?limit=2&cursor={history['next_cursor']}", headers=alice.headers).json()
    assert [r["files_added"] for r in more["drift_reports"]] == [1]
    for bad in ({"files_added": -1, "files_modified": 0, "files_deleted": 0, "bytes_changed": 0},
                {"files_added": "1", "files_modified": 0, "files_deleted": 0, "bytes_changed": 0},
                {"files_added": 1.5, "files_modified": 0, "files_deleted": 0, "bytes_changed": 0},
                {"files_added": 1}):
        assert_problem(client.post(url, headers=alice.headers, json=bad), 422, "validation_failed")
    assert len(client.get(url, headers=alice.headers).json()["drift_reports"]) == 3


def test_drift_compare_against_main_from_manifests(client, alice, project):
    main = new_workspace(client, alice, project["id"], "main")
    feature = new_workspace(client, alice, project["id"], "feature")
    snapshot(client, alice, project["id"], upload_tree(client, alice, MAIN), workspace_id=main["id"])
    snapshot(client, alice, project["id"], upload_tree(client, alice, FEATURE), workspace_id=feature["id"])
    result = client.get(f"/v1/workspaces/{feature['id']}/drift/compare", headers=alice.headers).json()
    drift = result["drift"]
    assert result["is_main_workspace"] is False and result["source_workspace"]["id"] == main["id"]
    assert (drift["files_added"], drift["files_modified"], drift["files_deleted"]) == (3, 1, 0)
    assert drift["counts_by_extension"] == {".py": 2, ".txt": 1, ".png": 1}
    assert 0 < drift["overlap_ratio"] < 1 and drift["risk_level"] in ("low", "medium", "high")
    assert "staleness" in drift
    # The comparison becomes the workspace's latest drift, shown on GET and in the project's list.
    shown = client.get(f"/v1/workspaces/{feature['id']}", headers=alice.headers).json()["drift"]
    assert shown["files_added"] == 3 and shown["risk_level"] == drift["risk_level"]
    # include_dirty uses the current manifest where one is set.
    client.post(f"/v1/workspaces/{feature['id']}/current-manifest", headers=alice.headers,
                json={"manifest_hash": upload_tree(client, alice, MAIN)})
    clean = client.get(f"/v1/workspaces/{feature['id']}/drift/compare?include_dirty=true", headers=alice.headers).json()["drift"]
    assert (clean["files_added"], clean["files_modified"], clean["files_deleted"]) == (0, 0, 0)


def test_set_as_main(client, alice, project):
    new_workspace(client, alice, project["id"], "main")
    other = new_workspace(client, alice, project["id"], "other")
    assert client.post(f"/v1/workspaces/{other['id']}/set-as-main", headers=alice.headers).json() == {
        "success": True, "main_workspace_id": other["id"],
    }
    assert client.get(f"/v1/workspaces/{other['id']}", headers=alice.headers).json()["workspace"]["is_main"] is True


def test_docs_list_and_content(client, alice, project):
    workspace = new_workspace(client, alice, project["id"])
    snapshot(client, alice, project["id"], upload_tree(client, alice, FEATURE), workspace_id=workspace["id"])
    docs = client.get(f"/v1/projects/{project['id']}/docs", headers=alice.headers).json()
    assert docs["total_files"] == 3
    assert [f["path"] for f in docs["workspaces"][0]["files"]] == ["README.md", "docs/intro.rst", "notes.txt"]
    content = client.get(
        f"/v1/projects/{project['id']}/docs/content", headers=alice.headers,
        params={"workspace": workspace["id"], "path": "docs/intro.rst"},
    ).json()
    assert content == {"content": "Intro\n=====\n", "path": "docs/intro.rst", "workspace_id": workspace["id"],
                       "workspace_name": "laptop", "size": 12}
    for path, status, code in (("src/a.py", 422, "validation_failed"), ("nope.md", 404, "not_found")):
        response = client.get(f"/v1/projects/{project['id']}/docs/content", headers=alice.headers,
                              params={"workspace": workspace["id"], "path": path})
        assert_problem(response, status, code)


def test_workspaces_are_invisible_to_other_users(client, alice, project, platform):
    bob = make_caller(platform, "bob@example.com", abilities=ABILITIES)
    workspace = new_workspace(client, alice, project["id"])
    root = upload_tree(client, alice, MAIN)
    wid = workspace["id"]
    for method, url, body in [
        ("GET", f"/v1/workspaces/{wid}", None),
        ("POST", f"/v1/workspaces/{wid}/heartbeat", None),
        ("POST", f"/v1/workspaces/{wid}/current-manifest", {"manifest_hash": root}),
        ("POST", f"/v1/workspaces/{wid}/drift", {"files_added": 0, "files_modified": 0, "files_deleted": 0, "bytes_changed": 0}),
        ("GET", f"/v1/workspaces/{wid}/drift", None),
        ("GET", f"/v1/workspaces/{wid}/drift/compare", None),
        ("POST", f"/v1/workspaces/{wid}/set-as-main", None),
        ("GET", f"/v1/workspaces/{wid}/snapshots", None),
        ("GET", f"/v1/projects/{project['id']}/workspaces", None),
        ("POST", f"/v1/projects/{project['id']}/workspaces", {"name": "mine"}),
        ("GET", f"/v1/projects/{project['id']}/docs", None),
    ]:
        assert_problem(client.request(method, url, headers=bob.headers, json=body), 404, "not_found")
    assert client.get(f"/v1/workspaces/{wid}", headers=alice.headers).json()["workspace"]["current_manifest_hash"] is None
