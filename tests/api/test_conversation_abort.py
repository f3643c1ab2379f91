"""Stopping a turn (`POST …/abort`, or the WebSocket frame `abort`) with this server's own agent
loop: the model's stream is cut, the turn ends with `turn.failed` `cancelled`, and the conversation
takes the next prompt. (OpenCode's turns: tests/e2e/test_opencode.py.)"""

from __future__ import annotations

import time

import pytest

from fastest.config import Settings
from tests.api.items_model import ScriptedModel, model_settings, text
from tests.api.test_conversations import new_conversation, prompt, turn_done, wait_for
from tests.api.trees import new_project, new_workspace
from tests.conftest import assert_problem


@pytest.fixture
def model():
    with ScriptedModel(lambda messages: text("Hello")) as server:
        yield server


@pytest.fixture
def settings(model) -> Settings:
    return model_settings(model)


@pytest.fixture
def conversation(client, alice):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    return new_conversation(client, alice, workspace["id"])


def ends(client, caller, cid, count):
    """The turns' ends on the timeline, once there are `count` of them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=caller.headers).json()["timeline"]
        done = [e for e in timeline if turn_done(e)]
        if len(done) >= count:
            return done
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} turns ended: {timeline}")


def test_abort_cancels_the_running_turn_and_the_next_prompt_runs(client, alice, conversation, model):
    cid = conversation["id"]
    assert_problem(client.post(f"/v1/conversations/{cid}/abort", headers=alice.headers), 409, "turn_not_running")
    model.hold.set()  # the model answers only when released: the turn is running meanwhile
    started = prompt(client, alice, cid, "take your time")
    wait_for(client, alice, cid, lambda e: e["type"] == "turn.started")
    aborted = client.post(f"/v1/conversations/{cid}/abort", headers=alice.headers)
    assert aborted.status_code == 200 and aborted.json() == {"success": True, "turn_id": started["turn_id"]}
    [failed] = ends(client, alice, cid, 1)
    assert failed["data"] == {"turn_id": started["turn_id"], "error": {"code": "cancelled", "message": "The turn was cancelled."}}
    model.hold.clear()
    model.release.set()
    prompt(client, alice, cid, "again")
    assert [e["type"] for e in ends(client, alice, cid, 2)] == ["turn.failed", "turn.completed"]


def test_the_abort_frame_does_the_same(client, alice, conversation, model):
    cid = conversation["id"]
    model.hold.set()
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}") as ws:
        assert ws.receive_json()["type"] == "ready"
        ws.send_json({"type": "abort"})
        refused = ws.receive_json()
        assert (refused["type"], refused["data"]["code"]) == ("error", "turn_not_running")
        ws.send_json({"type": "prompt", "data": {"prompt": "take your time"}})
        frames = []
        while not frames or frames[-1]["type"] != "turn.started":
            frames.append(ws.receive_json())
        ws.send_json({"type": "abort"})
        while frames[-1]["type"] != "turn.failed":
            frames.append(ws.receive_json())
    accepted = next(f for f in frames if f["type"] == "abort.accepted")
    assert accepted["id"] is None and accepted["data"]["turn_id"] == frames[-1]["data"]["turn_id"]
    assert frames[-1]["data"]["error"]["code"] == "cancelled"
