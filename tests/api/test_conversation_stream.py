"""The WebSocket stream through the ASGI app (the e2e tests drive the real server): prompts sent
as frames count against the AI rate class like `POST …/messages` does."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.test_conversations import new_conversation
from tests.api.trees import new_project, new_workspace
from tests.conftest import assert_problem


@pytest.fixture
def settings() -> Settings:
    return Settings(ai_rate_limit_per_minute=1)


def frames_until(ws, kind):
    frames = []
    while not frames or frames[-1]["type"] != kind:
        frames.append(ws.receive_json())
    return frames


def test_prompt_frames_spend_the_ai_rate_limit(client, alice):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}") as ws:
        frames_until(ws, "ready")
        ws.send_json({"type": "prompt", "data": {"prompt": "hello"}})
        frames_until(ws, "turn.completed")
        ws.send_json({"type": "prompt", "data": {"prompt": "hello again"}})
        error = frames_until(ws, "error")[-1]
    assert error["id"] is None and error["data"]["status"] == 429 and error["data"]["code"] == "rate_limited"
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["hello"]


def close_code(client, url: str, **kwargs) -> int:
    from starlette.websockets import WebSocketDisconnect

    with client.websocket_connect(url, **kwargs) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    return closed.value.code


def test_streams_open_by_one_set_of_rules(client, alice, bob):
    """The token in `?token=` or a bearer header; 4400 (422 on SSE) for a `since` that is not an
    event id, checked after the token and the owner."""
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?since=0", headers=alice.headers) as ws:
        assert frames_until(ws, "ready")[-1]["data"]["last_event_id"] == 0
    assert close_code(client, f"/v1/conversations/{cid}/stream?token={alice.token}&since=x") == 4400
    assert close_code(client, f"/v1/conversations/{cid}/stream?since=-1", headers=alice.headers) == 4400
    assert close_code(client, f"/v1/conversations/{cid}/stream?since=x") == 4401
    assert close_code(client, f"/v1/conversations/{cid}/stream?token={bob.token}&since=x") == 4404
    events = f"/v1/conversations/{cid}/events"
    assert_problem(client.get(f"{events}?token={alice.token}&since=x"), 422, "validation_failed")
    assert_problem(client.get(events, headers={**alice.headers, "Last-Event-ID": "x"}), 422, "validation_failed")
    assert_problem(client.get(f"{events}?since=x"), 401, "unauthenticated")
    assert_problem(client.get(f"{events}?token={bob.token}&since=x"), 404, "not_found")
