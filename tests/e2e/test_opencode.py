"""OpenCode as the agent, for real: `fastest serve` with FASTEST_AI_PROVIDER=opencode runs the real
`opencode serve` (npm `opencode-ai`) on the conversation's working tree, against a loopback model
server (tests/e2e/opencode_model.py) that scripts the turn.

Everything OpenCode would send elsewhere goes through a recording proxy that refuses it; the tests
check it recorded nothing (no update check, model list, plugin install or share), so OpenCode works
offline as configured."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from fastest.platform.local import opencode
from tests.api.trees import new_project, new_workspace, snapshot, upload_tree
from tests.e2e.conftest import admin_token, running_server
from tests.e2e.opencode_model import NOTE, OpenCodeModel
from tests.e2e.test_conversations import User, is_type, read_until, send_prompt, ws_url
from tests.loopback import LoopbackServer, QuietHandler
from tests.opencode_types import needs_sdk, typecheck

REPO = Path(__file__).resolve().parents[2]
# OpenCode installs once per checkout (npm, ~190 MB), where `fastest serve` would put it.
OPENCODE_PREFIX = REPO / ".cache" / "opencode"
TURN_SECONDS = 90.0


class RecordingProxy(LoopbackServer):
    """An HTTP proxy that forwards nothing: it records each request (CONNECT for HTTPS) and refuses it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(QuietHandler):
            def refuse(self) -> None:
                owner.requests.append(f"{self.command} {self.path}")
                self.send_error(403)

            do_GET = do_POST = do_PUT = do_HEAD = do_CONNECT = refuse

        super().__init__(Handler)


@pytest.fixture(scope="session")
def opencode_bin() -> Path:
    if shutil.which("npm") is None:
        pytest.skip("OpenCode installs with npm")
    return asyncio.run(opencode.install(OPENCODE_PREFIX))


@pytest.fixture
def setup(tmp_path: Path, opencode_bin: Path) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path / "data"
    with OpenCodeModel() as model, RecordingProxy() as proxy:
        env = {
            "FASTEST_RATE_LIMIT_PER_MINUTE": "1000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
            "FASTEST_AI_PROVIDER": "opencode", "FASTEST_AI_BASE_URL": model.base_url, "FASTEST_AI_MODEL": "test-model",
            "FASTEST_OPENCODE_BIN": str(opencode_bin),
            "HTTP_PROXY": proxy.origin, "HTTPS_PROXY": proxy.origin, "NO_PROXY": "127.0.0.1,localhost",
        }
        with running_server(data_dir, env) as (base_url, process):
            alice = User(admin_token(data_dir, "alice@example.com"))
            with httpx.Client(base_url=base_url, timeout=30) as client:
                project = new_project(client, alice)
                head = snapshot(client, alice, project["id"], upload_tree(client, alice, {"README.md": b"# Hi\n"}))
                workspace = new_workspace(client, alice, project["id"], base_snapshot_id=head["id"])
                created = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]})
                assert created.status_code == 201, created.text
                yield {"base_url": base_url, "data_dir": data_dir, "client": client, "alice": alice, "head": head,
                       "conversation": created.json()["conversation"], "model": model, "proxy": proxy}
        assert proxy.requests == [], "OpenCode reached for the network"


def opencode_server(data_dir: Path) -> dict[str, Any]:
    """What the conversation's OpenCode server wrote about itself (URL, password, pid)."""
    [found] = (data_dir / "opencode" / "conversations").glob(f"*/{opencode.SERVER_FILE}")
    return {**json.loads(found.read_text()), "directory": str(found.parent / "tree")}


def turn(ws, prompt: str) -> list[dict[str, Any]]:
    send_prompt(ws, prompt)
    return read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)


@needs_sdk
def test_a_turn_writes_a_file_asks_and_finishes_as_opencode_reports(setup, tmp_path):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "write a note, then ask me")
        frames = read_until(ws, is_type("question.asked", "turn.failed"), timeout=TURN_SECONDS)
        asked = frames[-1]
        assert asked["type"] == "question.asked", frames
        request = asked["data"]["request"]
        assert request["id"] == asked["data"]["request_id"] and request["id"].startswith("que")
        assert request["questions"] == [{"question": "Which colour?", "header": "Colour", "options": [
            {"label": "red", "description": "Warm"}, {"label": "blue", "description": "Cool"}]}]
        reply = client.post(f"/v1/conversations/{cid}/opencode-questions/{request['id']}/reply", headers=alice.headers,
                            json={"answers": [["blue"]]})
        assert reply.status_code == 200, reply.text
        frames += read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)
    types = [f["type"] for f in frames]
    assert types[-1] == "turn.completed", frames
    started = next(f for f in frames if f["type"] == "turn.started")["data"]
    assert (started["provider"], started["model"]) == ("opencode", "fastest/test-model")
    events = [f for f in frames if f["id"] is not None]
    assert [f["id"] for f in events] == list(range(events[0]["id"], events[0]["id"] + len(events)))
    calls = [f["data"] for f in frames if f["type"] == "tool.call"]
    assert [c["name"] for c in calls] == ["write", "question"]
    assert json.loads(calls[0]["arguments"]) == {"filePath": "notes.txt", "content": NOTE}
    assert all(f["data"]["ok"] for f in frames if f["type"] == "tool.result")
    assert "question.answered" in types
    text = "".join(f["data"]["delta"] for f in frames if f["type"] == "message.delta")
    assert text.startswith("Writing the note.Done: ") and "blue" in text
    [changed] = [f["data"] for f in frames if f["type"] == "file.changed"]
    assert (changed["path"], changed["action"], changed["size"]) == ("notes.txt", "created", len(NOTE))

    # The parts kept are what OpenCode reports for the session, message by message.
    parts = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    messages = client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
    assert list(parts) == [m["id"] for m in messages]
    server = opencode_server(s["data_dir"])
    session_id = next(iter(parts.values()))[0]["sessionID"]
    reported = httpx.get(f"{server['url']}/session/{session_id}/message", params={"directory": server["directory"]},
                         auth=(server["username"], server["password"])).json()
    assert [item["parts"] for item in reported] == list(parts.values())
    tool_parts = [p for own in parts.values() for p in own if p["type"] == "tool"]
    assert [(p["tool"], p["state"]["status"]) for p in tool_parts] == [("write", "completed"), ("question", "completed")]

    # The file OpenCode wrote is in the conversation's snapshot (recorded when the turn ended).
    [recorded] = [f["data"] for f in frames if f["type"] == "conversation.snapshot"]
    diff = client.post(f"/v1/snapshots/{recorded['snapshot_id']}/compare", headers=alice.headers,
                       json={"against": s["head"]["id"]}).json()["diff"]
    assert "notes.txt" in json.dumps(diff) and "README.md" not in json.dumps(diff)
    manifest = client.get(f"/v1/blobs/manifests/{recorded['manifest_hash']}", headers=alice.headers).json()
    entry = next(e for e in manifest["entries"] if e["name"] == "notes.txt")
    assert client.get(f"/v1/blobs/download/{entry['hash']}", headers=alice.headers).content == NOTE.encode()

    typecheck(tmp_path / "ts", {"parts": ("Record<string, Part[]>", parts), "question": ("QuestionRequest", request)})


def test_abort_and_an_opencode_that_dies_leave_the_conversation_usable(setup):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "be slow")
        read_until(ws, is_type("message.delta", "turn.failed"), timeout=TURN_SECONDS)
        aborted = client.post(f"/v1/conversations/{cid}/abort", headers=alice.headers)
        assert aborted.status_code == 200, aborted.text
        ended = read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)[-1]
        assert ended["type"] == "turn.failed" and ended["data"]["error"]["code"] == "cancelled", ended
        assert ended["data"]["turn_id"] == aborted.json()["turn_id"]
        assert client.post(f"/v1/conversations/{cid}/abort", headers=alice.headers).json()["error"]["code"] == "turn_not_running"
        assert turn(ws, "hello")[-1]["type"] == "turn.completed"

        # OpenCode's process dies mid-turn: a clear error, then the next prompt starts it again.
        first = opencode_server(s["data_dir"])
        send_prompt(ws, "be slow again")
        read_until(ws, is_type("message.delta", "turn.failed"), timeout=TURN_SECONDS)
        os.kill(first["pid"], signal.SIGKILL)
        ended = read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)[-1]
        assert ended["type"] == "turn.failed", ended
        assert ended["data"]["error"]["code"] == "opencode_unavailable" and "stopped" in ended["data"]["error"]["message"]
        frames = turn(ws, "hello once more")
        assert frames[-1]["type"] == "turn.completed", frames
        assert opencode_server(s["data_dir"])["pid"] != first["pid"]
    texts = [m["content"] for m in client.get(f"/v1/conversations/{cid}/messages", headers=alice.headers).json()["messages"]
             if m["role"] == "assistant"]
    assert texts[-1] == "Hello again"
