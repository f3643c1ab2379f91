"""Conversations through the ASGI app on the local runtime, with the builtin engine (no model)."""

from __future__ import annotations

import time

import pytest

from fastest.config import Settings
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.conftest import assert_problem


def wait_for(client, caller, conversation_id, predicate, timeout=10.0):
    """Poll the timeline until an event satisfies `predicate` (the turn runs in the background). The
    pause doubles from 20 ms, so a slower runtime is not polled into the caller's rate limit."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while time.monotonic() < deadline:
        timeline = client.get(f"/v1/conversations/{conversation_id}/timeline", headers=caller.headers).json()["timeline"]
        if any(predicate(event) for event in timeline):
            return timeline
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    raise AssertionError(f"no such event in {timeline}")


def turn_done(event):
    return event["type"] in ("turn.completed", "turn.failed")


@pytest.fixture
def settings() -> Settings:
    # These tests wait for turns by polling the timeline; the polls are not what they count.
    return Settings(rate_limit_per_minute=1000)


@pytest.fixture
def workspace(client, alice):
    project = new_project(client, alice)
    root = upload_tree(client, alice, {"README.md": b"# Hello\n", "src/app.py": b"print('hi')\n"})
    head = snapshot(client, alice, project["id"], root)
    return new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])


def new_conversation(client, caller, workspace_id, **fields):
    response = client.post("/v1/conversations", headers=caller.headers, json={"workspace_id": workspace_id, **fields})
    assert response.status_code == 201, response.text
    return response.json()["conversation"]


def prompt(client, caller, conversation_id, text):
    response = client.post(f"/v1/conversations/{conversation_id}/messages", headers=caller.headers, json={"prompt": text})
    assert response.status_code == 202, response.text
    return response.json()


def test_create_get_list_patch(client, alice, workspace):
    conversation = new_conversation(client, alice, workspace["id"])
    assert conversation["title"] is None and conversation["workspace_name"] == "laptop"
    got = client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers).json()["conversation"]
    assert got == conversation
    second = new_conversation(client, alice, workspace["id"], title="Second")
    listed = client.get("/v1/conversations?limit=1", headers=alice.headers).json()
    assert [c["id"] for c in listed["conversations"]] == [second["id"]]
    rest = client.get(f"/v1/conversations?limit=1&cursor={listed['next_cursor']}", headers=alice.headers).json()
    assert [c["id"] for c in rest["conversations"]] == [conversation["id"]] and rest["next_cursor"] is None
    assert client.patch(f"/v1/conversations/{conversation['id']}", headers=alice.headers, json={"title": "Renamed"}).json() == {"success": True}
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers).json()["conversation"]["title"] == "Renamed"


def test_patch_moves_only_within_the_project(client, alice, workspace):
    conversation = new_conversation(client, alice, workspace["id"])
    other_ws = new_workspace(client, alice, workspace["project_id"], name="desktop")
    assert client.patch(f"/v1/conversations/{conversation['id']}", headers=alice.headers, json={"workspace_id": other_ws["id"]}).status_code == 200
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers).json()["conversation"]["workspace_id"] == other_ws["id"]
    elsewhere = new_workspace(client, alice, new_project(client, alice, "Other")["id"])
    response = client.patch(f"/v1/conversations/{conversation['id']}", headers=alice.headers, json={"workspace_id": elsewhere["id"]})
    assert_problem(response, 422, "workspace_not_in_project")
    assert client.get(f"/v1/conversations/{conversation['id']}", headers=alice.headers).json()["conversation"]["workspace_id"] == other_ws["id"]


def test_another_users_conversation_is_404(client, alice, bob, workspace):
    conversation = new_conversation(client, alice, workspace["id"])
    for method, path in [("get", ""), ("get", "/messages"), ("get", "/timeline"), ("post", "/clear"), ("get", "/project-info")]:
        assert_problem(getattr(client, method)(f"/v1/conversations/{conversation['id']}{path}", headers=bob.headers), 404, "not_found")
    assert_problem(client.post("/v1/conversations", headers=bob.headers, json={"workspace_id": workspace["id"]}), 404, "not_found")
    assert client.get("/v1/conversations", headers=bob.headers).json()["conversations"] == []


def test_builtin_engine_explains_and_runs_commands_then_snapshot(client, alice, workspace):
    conversation = new_conversation(client, alice, workspace["id"])
    cid = conversation["id"]
    accepted = prompt(client, alice, cid, "Please add a test")
    assert accepted["message"]["role"] == "user"
    wait_for(client, alice, cid, turn_done)
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert "No AI model is configured" in messages[-1]["content"] and messages[-1]["provider"] == "builtin"
    assert client.get(f"/v1/conversations/{cid}", headers=alice.headers).json()["conversation"]["title"] == "Please add a test"

    prompt(client, alice, cid, "/write src/new.py\nx = 1\n")
    timeline = wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed" and e["id"] > accepted_ids(client, alice, cid))
    assert any(e["type"] == "file.changed" and e["data"]["path"] == "src/new.py" for e in timeline)
    prompt(client, alice, cid, "/rm README.md")
    wait_for(client, alice, cid, lambda e: e["type"] == "file.changed" and e["data"]["action"] == "deleted")
    wait_until_idle(client, alice, cid)
    prompt(client, alice, cid, "/cat src/new.py")
    wait_until_idle(client, alice, cid)
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert messages[-1]["content"] == "```\nx = 1\n\n```"
    prompt(client, alice, cid, "/ls")
    wait_until_idle(client, alice, cid)
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert messages[-1]["content"] == "src/app.py (12 bytes)\nsrc/new.py (6 bytes)"
    prompt(client, alice, cid, "/cat ../etc/passwd")
    wait_until_idle(client, alice, cid)
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert messages[-1]["content"].startswith("Error: Invalid path")
    assert client.get(f"/v1/conversations/{cid}/project-info", headers=alice.headers).json()["project_info"]["changed_files"] == 2

    response = client.post(f"/v1/conversations/{cid}/snapshot", headers=alice.headers, json={"generate_summary": True})
    assert response.status_code == 201, response.text
    frozen = response.json()
    assert frozen["was_dirty"] is True and "src/new.py" in frozen["summary"]
    compare = client.get(f"/v1/snapshots/{frozen['snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert compare["manifest_hash"] == frozen["manifest_hash"] and compare["source"] == "conversation"
    diff = client.post(f"/v1/snapshots/{frozen['snapshot_id']}/compare", headers=alice.headers,
                       json={"against": compare["parent_snapshot_ids"][0]}).json()["diff"]
    assert diff["paths"]["added"] == ["src/new.py"] and diff["paths"]["deleted"] == ["README.md"]
    # A second snapshot with nothing new is clean.
    again = client.post(f"/v1/conversations/{cid}/snapshot", headers=alice.headers).json()
    assert again["was_dirty"] is False and again["manifest_hash"] == frozen["manifest_hash"]


def accepted_ids(client, caller, cid):
    timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=caller.headers).json()["timeline"]
    return max(e["id"] for e in timeline if e["type"] == "turn.started")


def wait_until_idle(client, caller, cid):
    wait_for(client, caller, cid, lambda e: turn_done(e) and e["id"] > accepted_ids(client, caller, cid))


def test_bad_prompts_change_nothing(client, alice, workspace):
    cid = new_conversation(client, alice, workspace["id"])["id"]
    assert_problem(client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": ""}), 422, "validation_failed")
    assert_problem(client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": 3}), 422, "validation_failed")
    too_big = "x" * (Settings().conversation_max_prompt_bytes + 1)
    assert_problem(client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": too_big}), 413, "payload_too_large")
    assert client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"] == []


def test_clear(client, alice, workspace):
    cid = new_conversation(client, alice, workspace["id"])["id"]
    prompt(client, alice, cid, "hello")
    wait_for(client, alice, cid, turn_done)
    response = client.post(f"/v1/conversations/{cid}/clear", headers=alice.headers)
    assert response.status_code == 200 and response.json() == {"success": True, "cleared": 2}
    assert client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"] == []
    assert [e["type"] for e in client.get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]] == ["conversation.cleared"]


def test_unknown_question_and_deployment(client, alice, workspace):
    cid = new_conversation(client, alice, workspace["id"])["id"]
    assert_problem(client.post(f"/v1/conversations/{cid}/opencode-questions/que_nope/reply", headers=alice.headers, json={"answers": [["a"]]}), 404, "not_found")
    assert_problem(client.post(f"/v1/conversations/{cid}/opencode-questions/que_nope/reply", headers=alice.headers, json={"answers": "a"}), 422, "validation_failed")
    assert client.get(f"/v1/conversations/{cid}/deployments", headers=alice.headers).json() == {"deployments": []}
    assert_problem(client.get(f"/v1/conversations/{cid}/deployments/dep_x/logs", headers=alice.headers), 404, "not_found")
    info = client.get(f"/v1/conversations/{cid}/project-info", headers=alice.headers).json()["project_info"]
    assert info["workspace_id"] == workspace["id"] and info["changed_files"] == 0 and info["project_name"] == "P"


def test_prompt_with_idempotency_key_starts_one_turn(client, alice, workspace):
    cid = new_conversation(client, alice, workspace["id"])["id"]
    headers = {**alice.headers, "Idempotency-Key": "prompt-1"}
    first = client.post(f"/v1/conversations/{cid}/messages", headers=headers, json={"prompt": "hello"})
    assert first.status_code == 202
    wait_for(client, alice, cid, turn_done)
    again = client.post(f"/v1/conversations/{cid}/messages", headers=headers, json={"prompt": "hello"})
    assert again.status_code == 202 and again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_snapshot_of_a_conversation_on_an_empty_workspace(client, alice):
    workspace = new_workspace(client, alice, new_project(client, alice, "Empty")["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    clean = client.post(f"/v1/conversations/{cid}/snapshot", headers=alice.headers)
    assert clean.status_code == 201, clean.text
    assert clean.json()["was_dirty"] is False and clean.json()["summary"] is None
    prompt(client, alice, cid, "/write notes/todo.md\n- ship it\n")
    wait_for(client, alice, cid, lambda e: e["type"] == "turn.completed")
    dirty = client.post(f"/v1/conversations/{cid}/snapshot", headers=alice.headers, json={"generate_summary": True}).json()
    assert dirty["was_dirty"] is True and dirty["summary"] == "1 file(s) changed: wrote notes/todo.md"
    snapshot_row = client.get(f"/v1/snapshots/{dirty['snapshot_id']}", headers=alice.headers).json()["snapshot"]
    assert snapshot_row["parent_snapshot_ids"] == [clean.json()["snapshot_id"]] and snapshot_row["workspace_id"] == workspace["id"]
    # The snapshot is in the workspace's history; the workspace itself (a folder's mirror) did not move.
    history = client.get(f"/v1/workspaces/{workspace['id']}/snapshots", headers=alice.headers).json()["snapshots"]
    assert [s["id"] for s in history][:2] == [dirty["snapshot_id"], clean.json()["snapshot_id"]]
    assert client.get(f"/v1/workspaces/{workspace['id']}", headers=alice.headers).json()["workspace"]["current_snapshot_id"] is None


def test_streamed_chunks_of_earlier_turns_are_dropped_from_the_log(client, alice, workspace):
    """A turn's `message.delta` events replay until the next turn starts; then only its
    `message.completed` (which holds the whole text) remains, so the log does not grow by chunks."""
    cid = new_conversation(client, alice, workspace["id"])["id"]

    def replay() -> list[dict]:
        with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}&since=0") as ws:
            frames = []
            while not frames or frames[-1]["type"] != "ready":
                frames.append(ws.receive_json())
            return frames[:-1]

    def turn(text: str) -> None:
        with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}") as ws:
            while ws.receive_json()["type"] != "ready":
                pass
            ws.send_json({"type": "prompt", "data": {"prompt": text}})
            while ws.receive_json()["type"] != "turn.completed":
                pass

    turn("hello")
    first = replay()
    deltas = [f for f in first if f["type"] == "message.delta"]
    assert deltas  # the latest turn's chunks are still there
    turn("hello again")
    second = replay()
    assert not any(f["id"] in {d["id"] for d in deltas} for f in second)
    completed = [f for f in second if f["type"] == "message.completed" and f["data"]["message"]["role"] == "assistant"]
    assert len(completed) == 2 and completed[0]["data"]["message"]["content"] == "".join(d["data"]["delta"] for d in deltas)
    assert [f["type"] for f in second].count("message.delta") == len(deltas)  # the second turn's, same answer
    ids = [f["id"] for f in second]
    assert ids == sorted(ids) and len(ids) == len(set(ids))


def test_message_pages_go_back_with_before(client, alice, workspace, clock):
    """`limit` takes the last messages, `before` pages back from a time: oldest first in each page,
    `has_more` when older ones remain."""
    cid = new_conversation(client, alice, workspace["id"])["id"]
    for n in range(4):
        prompt(client, alice, cid, f"turn {n}")
        wait_until_idle(client, alice, cid)
        clock.advance(60)

    def page(**query):
        response = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        return [(m["role"], m["content"].split()[-1] if m["role"] == "user" else m["seq"]) for m in body["messages"]], body["has_more"]

    everything = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers, params={"limit": 100}).json()
    assert [m["seq"] for m in everything["messages"]] == list(range(1, 9)) and everything["has_more"] is False
    users = [m for m in everything["messages"] if m["role"] == "user"]
    assert page(limit=3) == ([("assistant", 6), ("user", "3"), ("assistant", 8)], True)
    assert page(limit=3, before=users[3]["created_at"]) == ([("assistant", 4), ("user", "2"), ("assistant", 6)], True)
    assert page(limit=2, before=users[1]["created_at"]) == ([("user", "0"), ("assistant", 2)], False)
    assert page(limit=5, before=users[1]["created_at"]) == ([("user", "0"), ("assistant", 2)], False)
    assert page(before=users[0]["created_at"]) == ([], False)
    assert page(before="2999-01-01T00:00:00Z", limit=8) == (page(limit=8)[0], False)
    assert_problem(client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers, params={"limit": 0}), 422, "validation_failed")


def test_the_timeline_is_the_last_events_without_deltas(client, alice, workspace, monkeypatch):
    """The timeline holds the last TIMELINE_LIMIT events that are not streamed chunks, oldest first,
    however many chunks the latest turn left in the log."""
    from durable_objects.session import messages as session_messages

    cid = new_conversation(client, alice, workspace["id"])["id"]
    for text in ("hello", "/ls", "hello again"):
        prompt(client, alice, cid, text)
        wait_until_idle(client, alice, cid)
    with client.websocket_connect(f"/v1/conversations/{cid}/stream?token={alice.token}&since=0") as ws:
        log = []
        while not log or log[-1]["type"] != "ready":
            log.append(ws.receive_json())
    events = [f for f in log[:-1] if f["type"] != "message.delta"]
    assert log[-4]["type"] == "message.delta"  # the latest turn's chunk is in the log, among the last events
    timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]
    assert timeline == events
    monkeypatch.setattr(session_messages, "TIMELINE_LIMIT", 3)
    timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]
    assert timeline == events[-3:] and [e["type"] for e in timeline][-1] == "turn.completed"
