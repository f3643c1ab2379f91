"""Decisions extracted from a conversation driven over the WebSocket: without a model only explicit
statements, each message read once, links to the Atlas concepts they mention; with the loopback
model, its validated answer."""

from __future__ import annotations

import json

import pytest

from fastest.config import Settings
from tests.api.json_model_server import JsonModelServer, use_model
from tests.api.test_atlas import index, shop
from tests.api.test_conversation_stream import frames_until
from tests.api.test_conversations import new_conversation
from tests.conftest import assert_problem


@pytest.fixture
def settings():
    return Settings(ai_rate_limit_per_minute=100)


@pytest.fixture
def world(client, alice):
    project_id, workspace_id = shop(client, alice, "main", indexed=True)
    conversation = new_conversation(client, alice, workspace_id)
    return {"project": project_id, "conversation": conversation["id"]}


def say(client, caller, cid, *prompts):
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={caller.token}") as ws:
        frames_until(ws, "ready")
        for text in prompts:
            ws.send_json({"type": "prompt", "data": {"prompt": text}})
            frames_until(ws, "turn.completed")


def extract(client, caller, project_id):
    response = client.post(f"/v1/projects/{project_id}/decisions/extract", headers=caller.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_explicit_statements_without_a_model(client, alice, world):
    say(client, alice, world["conversation"],
        "Should we keep SQLite for orders?",
        "Decision: keep SQLite behind `connect` in api/shop/db.py until we have more than one server.",
        "Ok. We decided to charge cards only through the `charge` function.")
    result = extract(client, alice, world["project"])
    assert result["source"]["kind"] == "rules" and result["extracted_count"] == 2
    assert result["messages_read"] == 6  # three prompts, three builtin answers
    titles = [d["decision"] for d in result["decisions"]]
    assert titles == ["keep SQLite behind `connect` in api/shop/db.py until we have more than one server",
                      "to charge cards only through the `charge` function"]
    assert result["decisions"][0]["source"]["conversation_id"] == world["conversation"]
    assert len(result["decisions"][0]["source"]["message_ids"]) == 1
    # Each message is read once: nothing new, nothing read.
    again = extract(client, alice, world["project"])
    assert again["extracted_count"] == 0 and again["messages_read"] == 0
    say(client, alice, world["conversation"], "Decision: Order totals are integers in cents (models.py).")
    third = extract(client, alice, world["project"])
    assert third["messages_read"] == 2 and third["extracted_count"] == 1
    listed = client.get(f"/v1/projects/{world['project']}/decisions", headers=alice.headers,
                        params={"include_links": "true"}).json()["decisions"]
    assert len(listed) == 3
    links = {d["decision"][:12]: {(l["layer"], l["name"]) for l in d["links"]} for d in listed}
    assert ("module", "api/shop/db.py") in links["keep SQLite "] and ("code", "connect") in links["keep SQLite "]
    assert ("code", "charge") in links["to charge ca"]
    assert ("module", "api/shop/models.py") in links["Order totals"]
    plain = client.get(f"/v1/projects/{world['project']}/decisions", headers=alice.headers).json()["decisions"]
    assert "links" not in plain[0] or plain[0]["links"] is None
    # The links are `decided_by` edges of the Atlas, and survive a re-index.
    index(client, alice, world["project"])
    graph = client.get(f"/v1/projects/{world['project']}/atlas", headers=alice.headers, params={"layer": "code", "limit": 100}).json()
    decided = {(e["source_id"], e["target_id"]) for e in graph["edges"] if e["kind"] == "decided_by"}
    assert {(d["id"], link["concept_id"]) for d in listed for link in d["links"] if link["layer"] == "code"} <= decided
    edges = client.get(f"/v1/projects/{world['project']}/decisions", headers=alice.headers,
                       params={"include_links": "true"}).json()["decisions"]
    assert edges[0]["links"] == listed[0]["links"]


def test_with_the_model(client, alice, world, platform):
    say(client, alice, world["conversation"], "Let's use Stripe for payments, it handles refunds in refund().")
    answer = json.dumps({"decisions": [{"title": "Use Stripe for payments", "context": "Refunds are needed.",
                                        "decision": "Payments go through Stripe.", "consequences": "refund() calls Stripe.",
                                        "message_ids": []}]})
    with JsonModelServer("not json", answer) as server:
        use_model(platform, server)
        result = extract(client, alice, world["project"])
    assert result["source"]["kind"] == "model" and result["extracted_count"] == 1
    decision = result["decisions"][0]
    assert decision["title"] == "Use Stripe for payments" and decision["consequences"] == "refund() calls Stripe."
    assert "Stripe" in server.requests[0]["body"]["messages"][0]["content"]
    assert server.requests[0]["body"]["response_format"]["type"] == "json_schema"
    listed = client.get(f"/v1/projects/{world['project']}/decisions", headers=alice.headers,
                        params={"include_links": "true"}).json()["decisions"]
    assert ("code", "refund") in {(l["layer"], l["name"]) for l in listed[0]["links"]}


def test_decision_routes_are_404_for_another_user(client, alice, bob, world):
    base = f"/v1/projects/{world['project']}/decisions"
    assert_problem(client.get(base, headers=bob.headers), 404, "not_found")
    assert_problem(client.post(f"{base}/extract", headers=bob.headers), 404, "not_found")
