"""Every place that holds a manifest hash (or a blob) a user can still reach is a GC root: with the
grace period long gone, a collection keeps a conversation's unsnapshotted edits and a finished
action-item run's result, so `/cat` still reads them and the snapshot or the apply still works."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.test_action_item_runs import model, secret_item, start, wait_run  # noqa: F401 (model: a fixture)
from tests.api.test_action_items import make_workspace
from tests.api.test_conversations import new_conversation, prompt, turn_done, wait_for
from tests.api.test_gc import GRACE, gc
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree


@pytest.fixture
def settings(request) -> Settings:
    if "model" not in request.fixturenames:
        return Settings(rate_limit_per_minute=100_000, ai_rate_limit_per_minute=1000)
    model = request.getfixturevalue("model")
    return Settings(ai_provider="openai", ai_base_url=model.base_url, ai_model="test-model", rate_limit_per_minute=100_000,
                    ai_rate_limit_per_minute=1000, action_item_run_retry_seconds=0)


def last_reply(client, caller, conversation_id) -> str:
    messages = client.get(f"/v1/conversations/{conversation_id}/messages", headers=caller.headers).json()["messages"]
    return messages[-1]["content"]


def turn(client, caller, conversation_id, text) -> str:
    timeline = client.get(f"/v1/conversations/{conversation_id}/timeline", headers=caller.headers).json()["timeline"]
    before = max((event["id"] for event in timeline), default=0)  # this turn's end comes after every event so far
    prompt(client, caller, conversation_id, text)
    wait_for(client, caller, conversation_id, lambda e: turn_done(e) and e["id"] > before)
    return last_reply(client, caller, conversation_id)


def test_a_conversations_unsnapshotted_edits_survive_gc(client, alice, clock):
    project = new_project(client, alice)
    head = snapshot(client, alice, project["id"], upload_tree(client, alice, {"README.md": b"# Hello\n"}))
    workspace = new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
    conversation = new_conversation(client, alice, workspace["id"])["id"]
    assert turn(client, alice, conversation, "/write notes.txt\nonly in the working tree\n").startswith("Wrote notes.txt")

    clock.advance(GRACE + 60)
    assert gc(client, alice, dryRun=False)["success"]

    assert "only in the working tree" in turn(client, alice, conversation, "/cat notes.txt")
    frozen = client.post(f"/v1/conversations/{conversation}/snapshot", headers=alice.headers, json={})
    assert frozen.status_code in (200, 201), frozen.text
    assert frozen.json()["was_dirty"] is True


def test_edits_whose_conversation_is_gone_are_collected(client, alice, clock):
    project = new_project(client, alice)
    head = snapshot(client, alice, project["id"], upload_tree(client, alice, {"README.md": b"# Hello\n"}))
    workspace = new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
    conversation = new_conversation(client, alice, workspace["id"])["id"]
    turn(client, alice, conversation, "/write notes.txt\nthrowaway\n")
    assert client.delete(f"/v1/projects/{project['id']}", headers=alice.headers).status_code in (200, 204)
    clock.advance(GRACE + 60)
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 2  # README.md and the edit


def test_a_ready_runs_result_survives_gc_and_applies(client, alice, clock, model):
    make_workspace(client, alice)
    run = wait_run(client, alice, start(client, alice, secret_item(client, alice)["id"])["id"])
    assert run["status"] == "ready", run

    clock.advance(GRACE + 60)
    assert gc(client, alice, dryRun=False)["success"]

    applied = client.post(f"/v1/action-items/runs/{run['id']}/apply", headers=alice.headers)
    assert applied.status_code == 200, applied.text
