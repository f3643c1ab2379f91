"""Conversations against the real server process: the `websockets` client, and a test-made
OpenAI-compatible model server on loopback that streams text and issues tool calls."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.e2e.conftest import admin_token, running_server
from tests.e2e.model_server import ModelServer


@dataclass
class User:
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def server_env(model: ModelServer) -> dict[str, str]:
    return {
        "FASTEST_RATE_LIMIT_PER_MINUTE": "1000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
        "FASTEST_AI_PROVIDER": "openai", "FASTEST_AI_BASE_URL": model.base_url,
        "FASTEST_AI_MODEL": "test-model", "FASTEST_AI_API_KEY": "sk-test-key",
    }


@pytest.fixture
def model() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def setup(tmp_path: Path, model: ModelServer):
    data_dir = tmp_path / "data"
    with running_server(data_dir, server_env(model)) as (base_url, process):
        alice = User(admin_token(data_dir, "alice@example.com"))
        bob = User(admin_token(data_dir, "bob@example.com"))
        with httpx.Client(base_url=base_url, timeout=10) as client:
            project = new_project(client, alice)
            root = upload_tree(client, alice, {"README.md": b"# Hi\n"})
            head = snapshot(client, alice, project["id"], root)
            workspace = new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
            created = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]})
            assert created.status_code == 201, created.text
            yield {"base_url": base_url, "data_dir": data_dir, "process": process, "client": client, "alice": alice,
                   "bob": bob, "conversation": created.json()["conversation"], "head": head, "model": model}


def ws_url(base_url: str, conversation_id: str, token: str, since: int | None = None) -> str:
    url = f"ws{base_url[4:]}/v1/conversations/{conversation_id}/stream?token={token}"
    return url + (f"&since={since}" if since is not None else "")


def read_until(ws, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(ws.recv(timeout=timeout))
        frames.append(frame)
        if predicate(frame):
            return frames


def is_type(*types: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame["type"] in types


def send_prompt(ws, text: str) -> None:
    ws.send(json.dumps({"type": "prompt", "data": {"prompt": text}}))


def test_full_turn_with_file_edits_then_snapshot(setup):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        assert read_until(ws, is_type("ready"))[-1]["data"]["last_event_id"] == 0
        ws.send(json.dumps({"type": "ping"}))
        assert read_until(ws, is_type("pong"))[-1]["type"] == "pong"
        send_prompt(ws, "please edit the greeting")
        frames = read_until(ws, is_type("turn.completed", "turn.failed"))
    types = [f["type"] for f in frames]
    assert types[-1] == "turn.completed", frames
    events = [f for f in frames if f["id"] is not None]
    assert [f["id"] for f in events] == list(range(1, len(events) + 1))
    assert "message.delta" in types and "tool.call" in types and "file.changed" in types
    text = "".join(f["data"]["delta"] for f in frames if f["type"] == "message.delta")
    assert text == "Editing.Done: Wrote hello.txt (21 bytes)."
    # The model got the tools, the key, and the tool result in the second round.
    first, second = s["model"].requests
    assert first["authorization"] == "Bearer sk-test-key" and {t["function"]["name"] for t in first["body"]["tools"]} >= {"write_file", "ask_question"}
    assert second["body"]["messages"][-1] == {"role": "tool", "content": "Wrote hello.txt (21 bytes).", "tool_call_id": "call_edit"}

    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert client.get(f"/v1/conversations/{cid}", headers=alice.headers).json()["conversation"]["title"] == "please edit the greeting"

    frozen = client.post(f"/v1/conversations/{cid}/snapshot", headers=alice.headers, json={})
    assert frozen.status_code == 201, frozen.text
    result = frozen.json()
    assert result["was_dirty"] is True
    diff = client.post(f"/v1/snapshots/{result['snapshot_id']}/compare", headers=alice.headers, json={"against": s["head"]["id"]}).json()["diff"]
    assert "hello.txt" in json.dumps(diff) and "README.md" not in json.dumps(diff)
    manifest = client.get(f"/v1/blobs/manifests/{result['manifest_hash']}", headers=alice.headers).json()
    entry = next(e for e in manifest["entries"] if e["name"] == "hello.txt")
    blob = client.get(f"/v1/blobs/download/{entry['hash']}", headers=alice.headers)
    assert blob.content == b"Hello from the model\n"


def test_reconnect_with_since_loses_and_repeats_nothing(setup):
    s = setup
    cid, alice = s["conversation"]["id"], s["alice"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "slow 40")
        seen = read_until(ws, lambda f: f["type"] == "message.delta" and f["data"]["delta"] == "w5 ")
    last = seen[-1]["id"]
    # Disconnected mid-stream; the turn goes on. Reconnect from the last id seen.
    with connect(ws_url(s["base_url"], cid, alice.token, since=last)) as ws:
        rest = read_until(ws, is_type("turn.completed"))
    events = [f for f in seen + rest if f["id"] is not None]
    ids = [f["id"] for f in events]
    assert ids == list(range(1, ids[-1] + 1)), ids  # contiguous: nothing lost, nothing twice
    text = "".join(f["data"]["delta"] for f in events if f["type"] == "message.delta")
    assert text == "".join(f"w{i} " for i in range(40))
    # A fresh client replaying from 0 sees the same log.
    with connect(ws_url(s["base_url"], cid, alice.token, since=0)) as ws:
        replay = read_until(ws, is_type("ready"))
    assert [f["id"] for f in replay[:-1]] == ids


def test_restart_keeps_history(setup, model):
    s = setup
    cid, alice = s["conversation"]["id"], s["alice"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "hello there")
        read_until(ws, is_type("turn.completed"))
    before = s["client"].get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    timeline = s["client"].get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]
    s["process"].send_signal(signal.SIGTERM)
    assert s["process"].wait(timeout=20) == 0
    with running_server(s["data_dir"], server_env(model)) as (base_url, _):
        with httpx.Client(base_url=base_url, headers=alice.headers) as client:
            assert client.get(f"/v1/conversations/{cid}/messages").json()["messages"] == before
            assert client.get(f"/v1/conversations/{cid}/timeline").json()["timeline"] == timeline
        with connect(ws_url(base_url, cid, alice.token)) as ws:
            ready = read_until(ws, is_type("ready"))[-1]
            assert ready["data"]["last_event_id"] == timeline[-1]["id"]
            send_prompt(ws, "again")
            frames = read_until(ws, is_type("turn.completed"))
            assert frames[0]["id"] == timeline[-1]["id"] + 1  # ids keep rising across restarts


def test_a_turn_cut_by_a_crash_ends_as_interrupted_after_the_restart(setup, model):
    s = setup
    cid, alice = s["conversation"]["id"], s["alice"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "slow 400")
        seen = read_until(ws, is_type("message.delta"))
    s["process"].send_signal(signal.SIGKILL)  # a crash mid-turn: nothing gets to finish it
    s["process"].wait(timeout=20)
    with running_server(s["data_dir"], server_env(model)) as (base_url, _):
        with connect(ws_url(base_url, cid, alice.token, since=seen[-1]["id"])) as ws:
            frames = read_until(ws, is_type("ready"))
            failed = [f for f in frames if f["type"] == "turn.failed"]
            assert [f["data"]["error"]["code"] for f in failed] == ["interrupted"]
            assert failed[0]["data"]["turn_id"] == next(f for f in seen if f["type"] == "turn.started")["data"]["turn_id"]
            send_prompt(ws, "hello after the crash")  # the conversation takes prompts again
            read_until(ws, is_type("turn.completed"))


def close_code(url: str) -> int:
    with connect(url) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    return closed.value.rcvd.code


def test_bad_token_4401_and_other_users_conversation_4404(setup):
    s = setup
    cid = s["conversation"]["id"]
    assert close_code(ws_url(s["base_url"], cid, "fst_not_a_token")) == 4401
    assert close_code(ws_url(s["base_url"], cid, s["bob"].token)) == 4404
    assert close_code(ws_url(s["base_url"], "cnv_00000000000000000000000000", s["alice"].token)) == 4404
    # Bad frames get an error frame (no event id) and change nothing.
    with connect(ws_url(s["base_url"], cid, s["alice"].token)) as ws:
        read_until(ws, is_type("ready"))
        ws.send(json.dumps({"type": "prompt", "data": {"prompt": "x" * 70_000}}))
        assert read_until(ws, is_type("error"))[-1]["data"]["code"] == "frame_too_large"
        ws.send("not json")
        assert read_until(ws, is_type("error"))[-1] == {"type": "error", "id": None, "data": {"code": "invalid_frame", "message": 'A frame is a JSON object with a "type".'}}
        ws.send(json.dumps({"type": "dance"}))
        assert read_until(ws, is_type("error"))[-1]["data"]["code"] == "unknown_frame_type"
        ws.send(json.dumps({"type": "prompt", "data": {"prompt": "   "}}))
        assert read_until(ws, is_type("error"))[-1]["data"]["code"] == "validation_failed"
    assert s["client"].get(f"/v1/conversations/{cid}/timeline", headers=s["alice"].headers).json()["timeline"] == []


def test_concurrent_prompts_never_interleave(setup):
    s = setup
    cid, alice = s["conversation"]["id"], s["alice"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws, connect(ws_url(s["base_url"], cid, alice.token)) as other:
        read_until(ws, is_type("ready"))
        read_until(other, is_type("ready"))
        send_prompt(ws, "slow 20")
        read_until(ws, is_type("turn.started"))
        send_prompt(other, "hello")
        refused = read_until(other, is_type("error"))[-1]
        assert refused["data"]["code"] == "turn_in_progress" and refused["data"]["status"] == 409
        over_http = s["client"].post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": "hi"})
        assert over_http.status_code == 409 and over_http.json()["error"]["code"] == "turn_in_progress"
        frames = read_until(ws, is_type("turn.completed"))
    assert sum(f["type"] == "turn.started" for f in frames) == 0
    messages = s["client"].get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_question_reply_resumes_the_turn(setup):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "ask me something")
        asked = read_until(ws, is_type("question.asked"))[-1]
        request_id = asked["data"]["request_id"]
        assert asked["data"]["request"] == {"id": request_id, "sessionID": cid, "questions": [{
            "question": "Which colour?", "header": "Which colour?",
            "options": [{"label": "red", "description": ""}, {"label": "blue", "description": ""}]}]}
        reply = client.post(f"/v1/conversations/{cid}/opencode-questions/{request_id}/reply", headers=alice.headers, json={"answers": [["blue"]]})
        assert reply.status_code == 200 and reply.json() == {"success": True}
        frames = read_until(ws, is_type("turn.completed"))
    text = "".join(f["data"]["delta"] for f in frames if f["type"] == "message.delta")
    assert text == 'Done: {"answers": [["blue"]]}'
    again = client.post(f"/v1/conversations/{cid}/opencode-questions/{request_id}/reject", headers=alice.headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "question_not_pending"


def test_clear_and_sse(setup):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "hello")
        read_until(ws, is_type("turn.completed"))
        cleared = client.post(f"/v1/conversations/{cid}/clear", headers=alice.headers)
        assert cleared.status_code == 200 and cleared.json()["cleared"] == 2
        assert read_until(ws, is_type("conversation.cleared"))[-1]["type"] == "conversation.cleared"
    assert client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"] == []
    # SSE: Last-Event-ID replays what came after it, then live frames.
    timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]
    with client.stream("GET", f"/v1/conversations/{cid}/events", headers={**alice.headers, "Last-Event-ID": "0"}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        records, fields = [], {}
        lines = stream.iter_lines()
        for line in lines:
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            # A record: `id:` (events only) and `event:` agree with the frame in `data:`.
            records.append(json.loads(fields["data"]))
            assert fields["event"] == records[-1]["type"] and fields.get("id") == (None if records[-1]["id"] is None else str(records[-1]["id"]))
            fields = {}
            if records[-1]["type"] == "ready":
                break
        assert [r["id"] for r in records[:-1]] == [e["id"] for e in timeline]
        # Then live: a prompt sent over HTTP streams its turn on this SSE connection.
        accepted = client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": "hello"})
        assert accepted.status_code == 202
        live = []
        for line in lines:
            if line.startswith("data: "):
                live.append(json.loads(line[6:]))
                if live[-1]["type"] == "turn.completed":
                    break
    assert "".join(f["data"]["delta"] for f in live if f["type"] == "message.delta") == "Hello world"
    assert [f["id"] for f in live] == list(range(timeline[-1]["id"] + 1, live[-1]["id"] + 1))
