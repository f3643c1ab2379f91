"""Opening a conversation stream: one set of rules (`services.conversations.open_stream`) for the
local routes and the Worker's forward to the Durable Object."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest

from fastest.errors import ApiError, ValidationFailed
from fastest.edge import conversation_streams
from fastest.services import conversations
from tests.api.trees import new_project, new_workspace


def test_the_token_comes_from_the_query_else_a_bearer_header():
    assert conversations.stream_token({"token": "fst_q"}, {"authorization": "Bearer fst_h"}) == "fst_q"
    assert conversations.stream_token({}, {"authorization": "Bearer fst_h"}) == "fst_h"
    assert conversations.stream_token({}, {"authorization": "bearer  fst_h "}) == "fst_h"
    assert conversations.stream_token({}, {"authorization": "Basic dXNlcjpwYXNz"}) is None
    assert conversations.stream_token({}, {}) is None


def test_since_comes_from_last_event_id_else_the_query():
    assert conversations.stream_since({}, {}) is None
    assert conversations.stream_since({"since": ""}, {}) is None
    assert conversations.stream_since({"since": "42"}, {}) == 42
    assert conversations.stream_since({"since": "42"}, {"last-event-id": "7"}) == 7
    assert conversations.stream_since({}, {"last-event-id": "0"}) == 0
    for bad in ("-1", "abc", "1.5", " 1", "9" * 16, "٣"):
        with pytest.raises(ValidationFailed):
            conversations.stream_since({"since": bad}, {})
        with pytest.raises(ValidationFailed):
            conversations.stream_since({}, {"last-event-id": bad})


def test_close_codes():
    assert [conversations.stream_close_code(s) for s in (401, 403, 404, 429, 422, 500)] == [4401, 4403, 4404, 4429, 4400, 4400]


@pytest.fixture
def conversation(client, alice) -> str:
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    response = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]})
    return response.json()["conversation"]["id"]


def refusal(platform, conversation_id: str, query: dict, headers: dict) -> tuple[int, str]:
    with pytest.raises(ApiError) as refused:
        asyncio.run(conversations.open_stream(platform, conversation_id, query, headers))
    return refused.value.status, refused.value.code


def test_open_stream_checks_the_token_then_the_owner_then_since(platform, conversation, alice, bob):
    assert asyncio.run(conversations.open_stream(platform, conversation, {"token": alice.token, "since": "3"}, {})).since == 3
    assert asyncio.run(conversations.open_stream(platform, conversation, {}, {"authorization": f"Bearer {alice.token}"})).since is None
    assert refusal(platform, conversation, {"since": "x"}, {}) == (401, "unauthenticated")
    assert refusal(platform, conversation, {"token": "fst_nope", "since": "x"}, {}) == (401, "invalid_token")
    assert refusal(platform, conversation, {"token": bob.token, "since": "x"}, {}) == (404, "not_found")
    assert refusal(platform, conversation, {"token": alice.token, "since": "x"}, {}) == (422, "validation_failed")


class FakeRequest:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers


class ForwardingStub:
    def __init__(self, forwarded: list, response: Any = "the object's response") -> None:
        self.forwarded = forwarded
        self.response = response

    async def forward(self, request: Any, headers: dict[str, str] | None = None) -> Any:
        """As `DurableObjectStub.forward`: the request, with `headers` set over the client's."""
        self.forwarded.append(FakeRequest(request.url, {**request.headers, **(headers or {})}))
        return self.response


def edge_platform(platform, stub: ForwardingStub):
    """The local platform, with a namespace whose stubs forward (as Durable Object stubs do)."""
    sessions = type("Sessions", (), {"get": lambda self, name: stub})()
    return dataclasses.replace(platform, sessions=sessions)


def test_the_worker_forwards_by_the_same_rules(platform, conversation, alice, monkeypatch):
    """The Worker's forward: refusals become the close codes the local route uses; an accepted
    request (token in the query or a bearer header) goes to the conversation's object untouched."""
    closed: list[tuple[int, str]] = []
    monkeypatch.setattr(conversation_streams, "closed_socket_response", lambda code, reason: closed.append((code, reason)) or "closed")
    forwarded: list = []
    edge = edge_platform(platform, ForwardingStub(forwarded))
    url = f"https://api.example/v1/conversations/{conversation}/stream"

    def forward(query: str, headers: dict[str, str]) -> Any:
        return asyncio.run(conversation_streams.forward_stream(conversation, "stream", FakeRequest(url + query, headers), edge))

    assert forward("?since=abc", {"Authorization": f"Bearer {alice.token}"}) == "closed"
    assert forward(f"?token={alice.token}&since=-1", {}) == "closed"
    assert forward("?token=fst_nope", {}) == "closed"
    assert closed == [(4400, "validation_failed"), (4400, "validation_failed"), (4401, "invalid_token")] and forwarded == []
    assert forward("?since=2", {"Authorization": f"Bearer {alice.token}"}) == "the object's response"
    forged = {"x-fastest-stream-token": "tok_forged", "x-fastest-stream-expires": "1e20"}
    assert forward(f"?token={alice.token}", forged) == "the object's response"
    assert len(forwarded) == 2
    # The object reads where to start by the same rule, and the grant the Worker set (never the client's).
    assert conversation_streams.since_of(forwarded[0]) == 2
    grants = [conversation_streams.grant_of(request) for request in forwarded]
    assert grants[0] == grants[1] and grants[0]["token_id"] and grants[0]["token_id"] != "tok_forged"
    assert grants[0]["expires_at"] < 1e20
    assert conversation_streams.since_of(FakeRequest(url, {"Last-Event-ID": "5"})) == 5


def test_the_worker_serves_event_streams_from_the_object(platform, conversation, alice):
    """SSE on the Worker: refusals are the local route's problem+json; an accepted stream is the
    object's streaming body, with the headers the app adds (request id, security, CORS)."""
    from fastest.api.errors import PROBLEM_MEDIA_TYPE

    body = object()  # the object's ReadableStream, passed through untouched
    forwarded: list = []
    stub = ForwardingStub(forwarded, {"status": 200, "body": body, "headers": {"Content-Type": "text/event-stream"}})
    edge = edge_platform(platform, stub)
    url = f"https://api.example/v1/conversations/{conversation}/events"

    def forward(query: str, headers: dict[str, str]) -> tuple[Any, int, dict[str, str]]:
        request = FakeRequest(url + query, headers)
        return asyncio.run(conversation_streams.forward_stream(
            conversation, "events", request, edge, respond=lambda b, status, h: (b, status, h)))

    problem, status, headers = forward("?since=x", {"authorization": f"Bearer {alice.token}"})
    assert status == 422 and headers["Content-Type"] == PROBLEM_MEDIA_TYPE and "X-Request-Id" in headers
    assert json.loads(problem)["error"]["code"] == "validation_failed"
    problem, status, _ = forward("", {})
    assert status == 401 and json.loads(problem)["error"]["code"] == "unauthenticated"
    assert forwarded == []
    streamed, status, headers = forward(f"?token={alice.token}", {"last-event-id": "4", "origin": "https://evil.example"})
    assert streamed is body and status == 200 and headers["content-type"] == "text/event-stream"
    assert "X-Request-Id" in headers and "Access-Control-Allow-Origin" not in headers and "RateLimit" in headers
    assert conversation_streams.since_of(forwarded[0]) == 4
