"""Conversation limits with a model configured (the test-made OpenAI-compatible server on loopback):
the AI budget guardrail (429 ai_rate_limited) and the tool-call rounds of a turn."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.test_conversations import new_conversation, prompt, wait_for
from tests.api.trees import new_project, new_workspace
from tests.conftest import assert_problem
from tests.e2e.model_server import ModelServer


@pytest.fixture
def model():
    with ModelServer() as server:
        yield server


@pytest.fixture
def settings(model) -> Settings:
    return Settings(ai_provider="openai", ai_base_url=model.base_url, ai_model="test-model",
                    ai_budget_calls=2, conversation_max_tool_rounds=1, ai_rate_limit_per_minute=100)


@pytest.fixture
def cid(client, alice):
    project = new_project(client, alice)
    return new_conversation(client, alice, new_workspace(client, alice, project["id"])["id"])["id"]


def test_budget_guardrail_answers_429_and_changes_nothing(client, alice, cid):
    prompt(client, alice, cid, "hello")
    wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed")
    prompt(client, alice, cid, "hello again")
    wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed" and e["id"] > 6)
    before = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    response = client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": "one more"})
    body = assert_problem(response, 429, "ai_rate_limited")
    assert body["ai_rate_limit"]["used"] == 2 and body["ai_rate_limit"]["limit"] == 2
    assert body["ai_rate_limit"]["resets_at"].endswith("Z") and int(response.headers["retry-after"]) > 0
    assert client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"] == before


def test_tool_rounds_are_bounded(client, alice, cid):
    prompt(client, alice, cid, "edit something")
    timeline = wait_for(client, alice, cid, lambda e: e["type"] in ("turn.completed", "turn.failed"))
    failed = timeline[-1]
    assert failed["type"] == "turn.failed" and failed["data"]["error"]["code"] == "tool_rounds_exceeded"
    # The one round's tool call still ran.
    assert any(e["type"] == "file.changed" for e in timeline)


def test_an_oversized_model_message_fails_the_turn_and_is_not_kept(client, alice, cid):
    prompt(client, alice, cid, "huge")
    timeline = wait_for(client, alice, cid, lambda e: e["type"] in ("turn.completed", "turn.failed"))
    assert timeline[-1]["type"] == "turn.failed" and timeline[-1]["data"]["error"]["code"] == "message_too_large"
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert [m["role"] for m in messages] == ["user"]
