"""A conversation's parts and questions are OpenCode's, whatever engine answered: the responses of
`opencode-messages` and the `question.asked` events type-check as `Part` and `QuestionRequest` of
`@opencode-ai/sdk` with the TypeScript compiler (an OpenAI-compatible model here; the OpenCode engine
is checked the same way in tests/e2e/test_opencode.py)."""

from __future__ import annotations

import pytest

from fastest.config import Settings
from tests.api.items_model import ScriptedModel, model_settings, text, tool
from tests.api.test_conversations import new_conversation, prompt, turn_done, wait_for
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.opencode_types import needs_sdk, typecheck


def answer(messages):
    """Write a file, read a missing one, ask a question, then say what was answered."""
    results = [m for m in messages if m["role"] == "tool"]
    if not results:
        return tool("write_file", path="notes/todo.md", content="- ship it\n")
    if len(results) == 1:
        return tool("read_file", path="missing.txt")
    if len(results) == 2:
        return tool("ask_question", question="Which colour shall the button be?", options=["red", "blue"])
    return text(f"Noted: {results[-1]['content']}")


@pytest.fixture
def model():
    with ScriptedModel(answer) as server:
        yield server


@pytest.fixture
def settings(model) -> Settings:
    return model_settings(model)


@pytest.fixture
def conversation(client, alice):
    project = new_project(client, alice)
    head = snapshot(client, alice, project["id"], upload_tree(client, alice, {"README.md": b"# Hi\n"}))
    workspace = new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
    return new_conversation(client, alice, workspace["id"])


@needs_sdk
def test_parts_and_questions_type_check_as_opencodes(client, alice, conversation, tmp_path):
    cid = conversation["id"]
    prompt(client, alice, cid, "plan the release")
    asked = next(e for e in wait_for(client, alice, cid, lambda e: e["type"] == "question.asked") if e["type"] == "question.asked")
    request = asked["data"]["request"]
    assert request["id"] == asked["data"]["request_id"] and request["sessionID"] == cid
    assert request["questions"] == [{"question": "Which colour shall the button be?", "header": "Which colour shall the button ",
                                     "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}]}]
    running = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    reply = client.post(f"/v1/conversations/{cid}/opencode-questions/{request['id']}/reply", headers=alice.headers,
                        json={"answers": [["blue"]]})
    assert reply.status_code == 200, reply.text
    assert [e["type"] for e in wait_for(client, alice, cid, turn_done) if turn_done(e)] == ["turn.completed"]

    parts = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    # Keyed by the conversation's messages (tool results belong to their call's part, not a message).
    assert list(parts) == [m["id"] for m in messages if m["role"] != "tool"]
    flat = [part for own in parts.values() for part in own]
    assert all(part["sessionID"] == cid for part in flat)
    assert all(part["messageID"] == message_id for message_id, own in parts.items() for part in own)
    assert len({part["id"] for part in flat}) == len(flat)
    tools = {part["tool"]: part for part in flat if part["type"] == "tool"}
    write, read, ask = tools["write_file"]["state"], tools["read_file"]["state"], tools["ask_question"]["state"]
    assert write["status"] == "completed" and write["input"] == {"path": "notes/todo.md", "content": "- ship it\n"}
    assert write["title"] == "notes/todo.md" and write["output"] == "Wrote notes/todo.md (10 bytes)."
    assert write["time"]["start"] <= write["time"]["end"]
    assert read["status"] == "error" and read["error"] == "Error: No file missing.txt."
    assert ask["status"] == "completed" and ask["output"] == '{"answers": [["blue"]]}'
    assert [p["text"] for p in flat if p["type"] == "text"] == ["plan the release", 'Noted: {"answers": [["blue"]]}']
    # While the question waited, the asking call was running.
    assert [p["state"]["status"] for own in running.values() for p in own if p["type"] == "tool"] == ["completed", "error", "running"]
    # The same ids on every read.
    assert client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"] == parts

    typecheck(tmp_path / "ts", {
        "parts": ("Record<string, Part[]>", parts),
        "running": ("Record<string, Part[]>", running),
        "question": ("QuestionRequest", request),
        "answers": ("QuestionAnswer[]", [["blue"]]),
    })


@needs_sdk
def test_the_type_check_fails_on_a_part_opencode_cannot_read(tmp_path):
    """The judge judges: a part in the shape this API used to send is refused by the compiler."""
    old = {"type": "tool", "call_id": "call_builtin", "tool": "read_file", "input": "{\"path\": \"a\"}",
           "state": {"status": "completed", "output": "hi\n"}}
    with pytest.raises(AssertionError, match="error TS"):
        typecheck(tmp_path / "ts", {"parts": ("Part[]", [old])})
