"""JSON nested too deep for Python's parser (a RecursionError, not a ValueError) is bad input like
any other: the routes answer their 4xx and change nothing, and a WebSocket frame gets an
`invalid_frame` error on a socket that stays open."""

from __future__ import annotations

import hashlib
import json

import pytest

from fastest.config import Settings
from fastest.domain.untrusted_text import MAX_JSON_DEPTH
from tests.api.test_conversations import new_conversation
from tests.api.trees import new_project, new_workspace
from tests.conftest import assert_problem, count_rows

DEEP = b"[" * 200_000


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


def test_a_manifest_nested_too_deep_is_refused_like_any_non_manifest(client, alice, platform):
    response = client.put(f"/v1/blobs/manifests/{hashlib.sha256(DEEP).hexdigest()}", headers=alice.headers, content=DEEP)
    assert_problem(response, 422, "manifest_invalid")
    batch = DEEP[:60_000]
    framed = hashlib.sha256(batch).hexdigest().encode() + f"{len(batch):08x}".encode() + batch
    rejected = client.post("/v1/blobs/manifests/batch", headers=alice.headers, content=framed)
    assert rejected.status_code == 200 and [r["code"] for r in rejected.json()["rejected"]] == ["manifest_invalid"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 0


def test_json_bodies_and_cursors_nested_too_deep_are_400(client, alice):
    json_headers = {**alice.headers, "Content-Type": "application/json"}
    assert_problem(client.post("/v1/projects", headers=json_headers, content=DEEP), 400, "invalid_json")
    token = client.post("/v1/oauth/token", headers={"Content-Type": "application/json"}, content=DEEP)
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"
    import base64

    cursor = base64.urlsafe_b64encode(b"[" * 3000).decode().rstrip("=")
    listed = client.get("/v1/projects", headers=alice.headers, params={"cursor": cursor})
    assert listed.status_code in (400, 422) and listed.json()["error"]["code"] != "internal", listed.text


def test_a_json_body_is_refused_for_its_depth_before_anything_parses_it(client, alice):
    """Deeper than MAX_JSON_DEPTH is refused even where Python's parser would cope (600 levels), also
    when the body arrives in parts; as deep as allowed, or brackets inside strings, are parsed as usual."""
    json_headers = {**alice.headers, "Content-Type": "application/json; charset=utf-8"}
    too_deep = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    assert_problem(client.post("/v1/projects", headers=json_headers, content=too_deep), 400, "invalid_json")
    parts = iter([too_deep[:300], too_deep[300:]])
    assert_problem(client.post("/v1/projects", headers=json_headers, content=parts), 400, "invalid_json")
    as_deep_as_allowed = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert_problem(client.post("/v1/projects", headers=json_headers, content=as_deep_as_allowed), 422, "validation_failed")
    in_a_string = json.dumps({"name": "[" * 1000}).encode()  # parsed: its name is too long
    too_long = assert_problem(client.post("/v1/projects", headers=json_headers, content=in_a_string), 422, "validation_failed")
    assert list(too_long["error"]["fields"]) == ["name"]


def test_a_websocket_frame_nested_too_deep_is_an_error_frame_and_the_socket_stays(client, alice):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}") as ws:
        while ws.receive_json()["type"] != "ready":
            pass
        ws.send_text("[" * 60_000)
        error = ws.receive_json()
        assert error["type"] == "error" and error["data"]["code"] == "invalid_frame"
        ws.send_json({"type": "ping"})
        assert ws.receive_json()["type"] == "pong"
