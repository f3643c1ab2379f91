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
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from websockets.sync.client import connect

from fastest.platform.ai.opencode import model_of, opencode_config
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
def idle_seconds() -> str:
    return "600"


@pytest.fixture
def setup(tmp_path: Path, opencode_bin: Path, idle_seconds: str) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path / "data"
    with OpenCodeModel() as model, RecordingProxy() as proxy:
        env = {
            "FASTEST_RATE_LIMIT_PER_MINUTE": "1000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000",
            "FASTEST_AI_PROVIDER": "opencode", "FASTEST_AI_BASE_URL": model.base_url, "FASTEST_AI_MODEL": "test-model",
            "FASTEST_OPENCODE_BIN": str(opencode_bin), "FASTEST_OPENCODE_IDLE_SECONDS": idle_seconds,
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
    # Alice's own key for the model's provider reaches OpenCode (the server has none).
    stored = client.post("/v1/auth/api-keys", headers=alice.headers, json={"provider": "openai", "key_value": "sk-alice-own"})
    assert stored.status_code in (200, 201), stored.text
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

    assert {r["authorization"] for r in s["model"].requests} == {"Bearer sk-alice-own"}

    # The same events, with the same ids, replayed as server-sent events.
    replayed = []
    with client.stream("GET", f"/v1/conversations/{cid}/events", headers={**alice.headers, "Last-Event-ID": "0"}) as sse:
        for line in sse.iter_lines():
            if line.startswith("data: "):
                frame = json.loads(line[6:])
                if frame["type"] == "ready":
                    break
                replayed.append(frame)
    assert replayed[-len(events):] == events

    typecheck(tmp_path / "ts", {"parts": ("Record<string, Part[]>", parts), "question": ("QuestionRequest", request)})


@needs_sdk
def test_a_permission_opencode_asks_for_is_a_question_whose_answer_reaches_it(setup, tmp_path):
    s = setup
    cid, alice, client = s["conversation"]["id"], s["alice"], s["client"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "run the command")
        asked = read_until(ws, is_type("question.asked", "turn.failed"), timeout=TURN_SECONDS)[-1]
        assert asked["type"] == "question.asked", asked
        permission, request = asked["data"]["permission"], asked["data"]["request"]
        assert permission["permission"] == "bash" and permission["id"] == request["id"] == asked["data"]["request_id"]
        assert [o["label"] for o in request["questions"][0]["options"]] == ["once", "always", "reject"]
        reply = client.post(f"/v1/conversations/{cid}/opencode-questions/{request['id']}/reply", headers=alice.headers,
                            json={"answers": [["once"]]})
        assert reply.status_code == 200, reply.text
        frames = read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)
    assert frames[-1]["type"] == "turn.completed", frames
    [bash] = [f["data"] for f in frames if f["type"] == "tool.result"]
    assert bash["name"] == "bash" and bash["ok"], bash
    # What the command wrote is the conversation's too.
    assert [(f["data"]["path"], f["data"]["action"]) for f in frames if f["type"] == "file.changed"] == [("ran.txt", "created")]
    typecheck(tmp_path / "ts", {"permission": ("PermissionRequest", permission), "question": ("QuestionRequest", request)})

    # A question rejected: OpenCode hears it (its question tool fails) and the turn ends there.
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        send_prompt(ws, "write a note, then ask me")
        asked = read_until(ws, is_type("question.asked", "turn.failed"), timeout=TURN_SECONDS)[-1]
        rejected = client.post(f"/v1/conversations/{cid}/opencode-questions/{asked['data']['request_id']}/reject",
                               headers=alice.headers)
        assert rejected.status_code == 200, rejected.text
        frames = read_until(ws, is_type("turn.completed", "turn.failed"), timeout=TURN_SECONDS)
    assert frames[-1]["type"] == "turn.completed" and "question.rejected" in [f["type"] for f in frames]
    [question] = [f["data"] for f in frames if f["type"] == "tool.result"]
    assert question["name"] == "question" and not question["ok"]
    parts = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    assert [p["state"]["status"] for own in parts.values() for p in own if p["type"] == "tool" and p["tool"] == "question"] == ["error"]


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
        # The same OpenCode session all along; a cleared conversation starts a new one.
        sessions = {p["sessionID"] for own in client.get(f"/v1/conversations/{cid}/opencode-messages",
                                                         headers=alice.headers).json()["messages"].values() for p in own}
        assert len(sessions) == 1
        assert client.post(f"/v1/conversations/{cid}/clear", headers=alice.headers).status_code == 200
        assert turn(ws, "hello after clearing")[-1]["type"] == "turn.completed"
    after = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    assert len(after) == 2 and {p["sessionID"] for own in after.values() for p in own}.isdisjoint(sessions)


@pytest.fixture
def operator_opencode(tmp_path: Path, opencode_bin: Path) -> Iterator[dict[str, Any]]:
    """An OpenCode server its operator runs (as for the Worker): its own configuration holds the
    model, a password guards it, and it works in its own directory."""
    with OpenCodeModel() as model:
        home = tmp_path / "operator"
        config = opencode_config(model_of("test-model", model.base_url), base_url=model.base_url, api_key=None)
        opencode.seed_config_dir(home / "config" / "opencode", config)
        (home / "work").mkdir()
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"), **opencode.OFFLINE_FLAGS,
               "OPENCODE_SERVER_PASSWORD": "operator-secret"}
        process = subprocess.Popen([str(opencode_bin), "serve", "--hostname", "127.0.0.1", "--port", "0"], cwd=home / "work",
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            line = b""
            while b"listening on" not in line:
                line = process.stdout.readline()
                assert line, "the operator's OpenCode did not start"
            yield {"url": line.decode().split("listening on ")[1].strip(), "password": "operator-secret", "model": model}
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("idle_seconds", ["1"])
def test_an_idle_opencode_server_stops_and_the_next_turn_starts_it_again(setup):
    s = setup
    cid, alice = s["conversation"]["id"], s["alice"]
    with connect(ws_url(s["base_url"], cid, alice.token)) as ws:
        read_until(ws, is_type("ready"))
        assert turn(ws, "hello")[-1]["type"] == "turn.completed"
        first = opencode_server(s["data_dir"])["pid"]
        deadline = time.monotonic() + 20
        while Path(f"/proc/{first}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{first}").exists(), "the idle OpenCode server still runs"
        assert turn(ws, "hello again")[-1]["type"] == "turn.completed"
        assert opencode_server(s["data_dir"])["pid"] != first


@contextmanager
def operator_conversation(tmp_path: Path, operator: dict[str, Any], password: str) -> Iterator[tuple[str, httpx.Client, User, str]]:
    """`fastest serve` with FASTEST_OPENCODE_URL set to the operator's server, and a conversation."""
    data_dir = tmp_path / "data"
    env = {"FASTEST_AI_RATE_LIMIT_PER_MINUTE": "1000", "FASTEST_AI_PROVIDER": "opencode",
           "FASTEST_OPENCODE_URL": operator["url"], "FASTEST_OPENCODE_PASSWORD": password}
    with running_server(data_dir, env) as (base_url, _), httpx.Client(base_url=base_url, timeout=30) as client:
        alice = User(admin_token(data_dir, "alice@example.com"))
        workspace = new_workspace(client, alice, new_project(client, alice)["id"])
        created = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]})
        yield base_url, client, alice, created.json()["conversation"]["id"]
    assert not (data_dir / "opencode").exists()  # no OpenCode installed or ran here


def test_an_opencode_server_its_operator_runs_is_driven_the_same_way(tmp_path, operator_opencode):
    """FASTEST_OPENCODE_URL (what the Worker uses): no process of ours, the same protocol."""
    with operator_conversation(tmp_path, operator_opencode, operator_opencode["password"]) as (base_url, client, alice, cid):
        with connect(ws_url(base_url, cid, alice.token)) as ws:
            read_until(ws, is_type("ready"))
            frames = turn(ws, "hello")
        assert frames[-1]["type"] == "turn.completed", frames
        assert "".join(f["data"]["delta"] for f in frames if f["type"] == "message.delta") == "Hello again"
        parts = client.get(f"/v1/conversations/{cid}/opencode-messages", headers=alice.headers).json()["messages"]
    session_id = next(iter(parts.values()))[0]["sessionID"]
    reported = httpx.get(f"{operator_opencode['url']}/session/{session_id}/message",
                         auth=("opencode", operator_opencode["password"])).json()
    assert [item["parts"] for item in reported] == list(parts.values())


def test_a_wrong_password_for_the_operators_server_is_a_clear_error(tmp_path, operator_opencode):
    with operator_conversation(tmp_path, operator_opencode, "wrong") as (base_url, client, alice, cid):
        with connect(ws_url(base_url, cid, alice.token)) as ws:
            read_until(ws, is_type("ready"))
            ended = turn(ws, "hello")[-1]
            assert ended["type"] == "turn.failed" and ended["data"]["error"]["code"] == "opencode_unavailable", ended
            assert "401" in ended["data"]["error"]["message"]
            # The conversation takes the next prompt (and fails the same way, clearly).
            assert turn(ws, "hello")[-1]["data"]["error"]["code"] == "opencode_unavailable"
