"""Deploying a conversation's working tree: the edits are frozen and served, the deployment is listed
with the conversation (and kept in its session), its logs are readable, other users get 404."""

from __future__ import annotations

from fastest.ports import SessionRequest
from tests.api.deploy_target import alice, bob  # noqa: F401 (the callers, able to deploy)
from tests.api.test_conversations import new_conversation, prompt, wait_until_idle
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem, run


def deployed_conversation(client, caller):
    """A conversation whose edit is deployed: (its workspace, its id, the deploy's answer)."""
    project = new_project(client, caller, "Chat site")
    root = upload_tree(client, caller, {"index.html": b"<h1>before</h1>", "style.css": b"h1{}"})
    head = snapshot(client, caller, project["id"], root)
    workspace = new_workspace(client, caller, project["id"], base_snapshot_id=head["id"])
    cid = new_conversation(client, caller, workspace["id"])["id"]
    prompt(client, caller, cid, "/write index.html\n<h1>after</h1>\n")
    wait_until_idle(client, caller, cid)
    response = client.post(f"/v1/conversations/{cid}/deploy", headers=caller.headers)
    assert response.status_code == 200, response.text
    return workspace, cid, response.json()


def test_conversation_deploy_serves_its_edits(client, alice, bob, deploy_target):
    workspace, cid, result = deployed_conversation(client, alice)
    assert_problem(client.post(f"/v1/conversations/{cid}/deploy", headers=bob.headers), 404, "not_found")
    assert result["status"] == "ready" and result["deployment"]["trigger"] == "chat"
    assert deploy_target.serves(result["url"], "/") == b"<h1>after</h1>\n"
    assert deploy_target.serves(result["url"], "/style.css") == b"h1{}"

    listed = client.get(f"/v1/conversations/{cid}/deployments", headers=alice.headers).json()["deployments"]
    assert [(d["id"], d["status"], d["conversation_id"]) for d in listed] == [(result["deployment_id"], "ready", cid)]
    logs = client.get(f"/v1/conversations/{cid}/deployments/{result['deployment_id']}/logs", headers=alice.headers).json()
    assert logs["status"] == "ready" and any("Live at" in line["message"] for line in logs["logs"])
    # A second deploy without new edits deploys the same tree without another snapshot.
    again = client.post(f"/v1/conversations/{cid}/deploy", headers=alice.headers).json()
    assert again["deployment"]["snapshot_id"] == result["deployment"]["snapshot_id"]

    assert_problem(client.get(f"/v1/conversations/{cid}/deployments", headers=bob.headers), 404, "not_found")
    assert_problem(client.get(f"/v1/conversations/{cid}/deployments/{result['deployment_id']}/logs", headers=bob.headers),
                   404, "not_found")
    other = new_conversation(client, alice, workspace["id"])["id"]
    assert_problem(client.get(f"/v1/conversations/{other}/deployments/{result['deployment_id']}/logs", headers=alice.headers),
                   404, "not_found")


def test_the_session_keeps_its_own_record_of_the_deployment(client, alice, platform):
    _, cid, result = deployed_conversation(client, alice)
    kept = run(platform.sessions.get(cid).fetch(SessionRequest(method="GET", path="/deployments")))
    assert result["deployment_id"].encode() in kept.body
