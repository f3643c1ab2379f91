"""Snapshots through HTTP: closure checks, idempotency, the DAG, listing, restore and compare."""

from __future__ import annotations

import hashlib

import pytest

from fastest.domain.manifest import canonical_bytes, Entry
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, count_rows, make_caller

V1 = {"README.md": b"# hello\n", "src/app.py": b"print('v1')\n", "src/lib/util.py": b"x = 1\n"}
V2 = {"README.md": b"# hello\n", "src/app.py": b"print('v2')\n", "docs/guide.md": b"guide\n"}


@pytest.fixture
def project(client, alice):
    return new_project(client, alice)


def test_create_get_and_idempotent_retry(client, alice, project, platform):
    root = upload_tree(client, alice, V1)
    body = {"manifest_hash": root, "snapshot_id": "snp_01JD0000000000000000000000"}
    first = client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json=body)
    assert first.status_code == 201 and first.json()["created"] is True
    again = client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json=body)
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM snapshots") == 1
    got = client.get(f"/v1/snapshots/{body['snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert got["manifest_hash"] == root and got["parent_snapshot_ids"] == [] and got["source"] == "cli"
    assert client.get(f"/v1/projects/{project['id']}/status", headers=alice.headers).json()["last_snapshot_id"] == got["id"]


def test_same_snapshot_id_for_other_content_is_409(client, alice, project):
    body = {"manifest_hash": upload_tree(client, alice, V1), "snapshot_id": "snp_01JD0000000000000000000001"}
    client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json=body)
    other = {**body, "manifest_hash": upload_tree(client, alice, V2)}
    assert_problem(client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json=other), 409, "snapshot_id_taken")


def test_missing_manifest_and_missing_blobs_are_422_with_the_hashes(client, alice, project, platform):
    absent = "a" * 64
    body = assert_problem(
        client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json={"manifest_hash": absent}),
        422, "manifest_missing",
    )
    assert absent in body["missing_manifests"]
    blob = hashlib.sha256(b"never uploaded").hexdigest()
    manifest = canonical_bytes([Entry(name="ghost.txt", type="file", hash=blob, size=14, mode=420)])
    digest = hashlib.sha256(manifest).hexdigest()
    assert client.put(f"/v1/blobs/manifests/{digest}", headers=alice.headers, content=manifest).status_code == 201
    body = assert_problem(
        client.post(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers, json={"manifest_hash": digest}),
        422, "blobs_missing",
    )
    assert body["missing_blobs"] == [blob]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM snapshots") == 0


def test_parents_must_be_in_the_project(client, alice, project):
    other_project = new_project(client, alice, "Other")
    foreign = snapshot(client, alice, other_project["id"], upload_tree(client, alice, V1))
    root = upload_tree(client, alice, V2)
    body = assert_problem(
        client.post(
            f"/v1/projects/{project['id']}/snapshots", headers=alice.headers,
            json={"manifest_hash": root, "parent_snapshot_ids": [foreign["id"]]},
        ),
        422, "parent_not_found",
    )
    assert "parent_snapshot_ids.0" in body["error"]["fields"]


def test_dag_and_lists(client, alice, project):
    workspace = new_workspace(client, alice, project["id"])
    first = snapshot(client, alice, project["id"], upload_tree(client, alice, V1), workspace_id=workspace["id"])
    second = snapshot(
        client, alice, project["id"], upload_tree(client, alice, V2), workspace_id=workspace["id"],
        parent_snapshot_ids=[first["id"]],
    )
    assert second["parent_snapshot_ids"] == [first["id"]]
    listed = client.get(f"/v1/projects/{project['id']}/snapshots", headers=alice.headers).json()
    assert [s["id"] for s in listed["snapshots"]] == [second["id"], first["id"]] and listed["next_cursor"] is None
    page = client.get(f"/v1/workspaces/{workspace['id']}/snapshots?limit=1", headers=alice.headers).json()
    assert [s["id"] for s in page["snapshots"]] == [second["id"]]
    rest = client.get(f"/v1/workspaces/{workspace['id']}/snapshots?limit=1&cursor={page['next_cursor']}", headers=alice.headers).json()
    assert [s["id"] for s in rest["snapshots"]] == [first["id"]]
    assert client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]["current_snapshot_id"] == second["id"]
    detail = client.get(f"/v1/projects/{project['id']}", headers=alice.headers).json()
    assert [s["id"] for s in detail["snapshots"]] == [second["id"], first["id"]]
    assert detail["snapshot_insights"]["total_snapshots"] == 2


def test_compare_lists_file_changes(client, alice, project):
    first = snapshot(client, alice, project["id"], upload_tree(client, alice, V1))
    second = snapshot(client, alice, project["id"], upload_tree(client, alice, V2), parent_snapshot_ids=[first["id"]])
    result = client.post(f"/v1/snapshots/{second['id']}/compare", headers=alice.headers, json={"against": first["id"]}).json()
    diff = result["diff"]
    assert diff["paths"] == {"added": ["docs/guide.md"], "modified": ["src/app.py"], "deleted": ["src/lib/util.py"]}
    assert (diff["files_added"], diff["files_modified"], diff["files_deleted"]) == (1, 1, 1)
    assert_problem(
        client.post(f"/v1/snapshots/{second['id']}/compare", headers=alice.headers, json={"against": "yesterday"}),
        422, "validation_failed",
    )


def test_restore_records_a_checkpoint_and_moves_the_head(client, alice, project):
    workspace = new_workspace(client, alice, project["id"])
    first = snapshot(client, alice, project["id"], upload_tree(client, alice, V1), workspace_id=workspace["id"])
    second = snapshot(
        client, alice, project["id"], upload_tree(client, alice, V2), workspace_id=workspace["id"], parent_snapshot_ids=[first["id"]]
    )
    restored = client.post(f"/v1/snapshots/{first['id']}/restore", headers=alice.headers, json={}).json()
    assert restored["restored_from"] == first["id"] and restored["workspace_id"] == workspace["id"]
    checkpoint = client.get(f"/v1/snapshots/{restored['before_restore_snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert checkpoint["manifest_hash"] == second["manifest_hash"] and checkpoint["parent_snapshot_ids"] == [second["id"]]
    assert checkpoint["source"] == "restore_checkpoint"
    head = restored["snapshot"]
    assert head["manifest_hash"] == first["manifest_hash"] and head["parent_snapshot_ids"] == [checkpoint["id"]]
    current = client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]
    assert current["current_snapshot_id"] == head["id"] and current["current_manifest_hash"] == first["manifest_hash"]


def test_snapshots_are_invisible_to_other_users(client, alice, project, platform):
    from fastest.domain.tokens import ABILITIES

    bob = make_caller(platform, "bob@example.com", abilities=ABILITIES)
    workspace = new_workspace(client, alice, project["id"])
    root = upload_tree(client, alice, V1)
    mine = snapshot(client, alice, project["id"], root, workspace_id=workspace["id"])
    for method, url, body in [
        ("GET", f"/v1/snapshots/{mine['id']}", None),
        ("POST", f"/v1/snapshots/{mine['id']}/restore", {}),
        ("POST", f"/v1/snapshots/{mine['id']}/compare", {"against": "current"}),
        ("GET", f"/v1/projects/{project['id']}/snapshots", None),
        ("POST", f"/v1/projects/{project['id']}/snapshots", {"manifest_hash": root}),
    ]:
        assert_problem(client.request(method, url, headers=bob.headers, json=body), 404, "not_found")
    # Bob's own project cannot use Alice's manifest either: storage is per user.
    theirs = new_project(client, bob, "Bob's")
    assert_problem(
        client.post(f"/v1/projects/{theirs['id']}/snapshots", headers=bob.headers, json={"manifest_hash": root}),
        422, "manifest_missing",
    )
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM snapshots") == 1
