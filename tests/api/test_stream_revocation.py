"""A live stream ends with the token that opened it: after `POST /v1/auth/logout`, `DELETE
/v1/auth/tokens/{id}` or the token's expiry, its WebSocket is closed 4401 (and its SSE stream
ends) instead of receiving the next event or running the next prompt."""

from __future__ import annotations

from datetime import timedelta

import pytest
from starlette.websockets import WebSocketDisconnect

from fastest.config import Settings
from tests.api.test_conversations import new_conversation
from tests.api.trees import new_project, new_workspace
from tests.conftest import make_caller


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000, ai_rate_limit_per_minute=1000)


@pytest.fixture
def conversation(client, alice) -> str:
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    return new_conversation(client, alice, workspace["id"])["id"]


def ready(ws) -> None:
    while ws.receive_json()["type"] != "ready":
        pass


def next_frame_or_close(ws) -> str | int:
    """The next frame's type, or the close code if the server closed the socket instead."""
    try:
        return ws.receive_json()["type"]
    except WebSocketDisconnect as closed:
        return closed.code


def an_event(client, caller, conversation: str) -> None:
    """Something every client of the conversation is sent (the first frame of a turn)."""
    response = client.post(f"/v1/conversations/{conversation}/messages", headers=caller.headers, json={"prompt": "/help"})
    assert response.status_code == 202, response.text


def token_id(client, caller) -> str:
    tokens = client.get("/v1/auth/tokens", headers=caller.headers).json()["tokens"]
    return next(t["id"] for t in tokens if t["current"])


def test_logout_closes_the_tokens_websocket_and_leaves_others_open(client, platform, alice, conversation):
    leaving = make_caller(platform, alice.email)
    with client.websocket_connect(f"/v1/conversations/{conversation}/stream?token={leaving.token}") as gone, \
            client.websocket_connect(f"/v1/conversations/{conversation}/stream", headers=alice.headers) as staying:
        ready(gone)
        ready(staying)
        assert client.post("/v1/auth/logout", headers=leaving.headers).status_code == 204
        an_event(client, alice, conversation)
        assert next_frame_or_close(gone) == 4401
        assert next_frame_or_close(staying) == "message.created"


def test_revoking_a_token_closes_its_websocket_before_it_runs_a_prompt(client, platform, alice, conversation):
    laptop = make_caller(platform, alice.email)
    with client.websocket_connect(f"/v1/conversations/{conversation}/stream?token={laptop.token}") as ws:
        ready(ws)
        assert client.delete(f"/v1/auth/tokens/{token_id(client, laptop)}", headers=alice.headers).status_code == 200
        ws.send_json({"type": "prompt", "data": {"prompt": "/ls"}})
        assert next_frame_or_close(ws) == 4401
    messages = client.get(f"/v1/conversations/{conversation}/messages", headers=alice.headers).json()["messages"]
    assert messages == []


def test_revoking_a_token_ends_its_event_stream(client, platform, alice, conversation):
    reader = make_caller(platform, alice.email)
    with client.stream("GET", f"/v1/conversations/{conversation}/events?token={reader.token}") as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("event: ready")
        assert client.post("/v1/auth/logout", headers=reader.headers).status_code == 204
        an_event(client, alice, conversation)
        after = []
        for line in lines:  # ends when the server ends the stream
            after.append(line)
            if "message.created" in line:
                break
    assert not any("message.created" in line for line in after), after


def test_an_expired_tokens_websocket_is_closed_at_the_next_event(client, platform, clock, alice, conversation):
    with client.websocket_connect(f"/v1/conversations/{conversation}/stream?token={alice.token}") as ws:
        ready(ws)
        clock.advance(timedelta(days=platform.settings.token_ttl_days, seconds=1).total_seconds())
        an_event(client, make_caller(platform, alice.email), conversation)
        assert next_frame_or_close(ws) == 4401
