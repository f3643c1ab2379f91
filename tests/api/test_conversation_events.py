"""A conversation's server-sent events through the Worker: `Last-Event-ID` replays what came after it,
then `ready`, then live events, each record's `id:` and `event:` agreeing with its frame. (On the
local runtime tests/e2e covers SSE: an event stream never ends, and Starlette's test client reads
whole bodies.)"""

from __future__ import annotations

import json

import pytest

from tests.api.test_conversations import new_conversation, prompt, wait_until_idle
from tests.api.trees import new_project, new_workspace
from tests.edge_runtime import is_edge

pytestmark = pytest.mark.skipif(not is_edge(), reason="SSE never ends; the local server's is in tests/e2e")


def records_until(lines, kind: str) -> list[dict]:
    records, fields = [], {}
    for line in lines:
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        record = json.loads(fields["data"])
        assert fields["event"] == record["type"]
        assert fields.get("id") == (None if record["id"] is None else str(record["id"]))
        records.append(record)
        fields = {}
        if record["type"] == kind:
            return records
    raise AssertionError(f"the stream ended before {kind}: {records}")


def test_events_replay_after_last_event_id_then_go_live(client, alice):
    workspace = new_workspace(client, alice, new_project(client, alice)["id"])
    cid = new_conversation(client, alice, workspace["id"])["id"]
    prompt(client, alice, cid, "hello")
    wait_until_idle(client, alice, cid)
    timeline = client.get(f"/v1/conversations/{cid}/timeline", headers=alice.headers).json()["timeline"]
    with client.stream("GET", f"/v1/conversations/{cid}/events", headers={**alice.headers, "Last-Event-ID": "2"}) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        replayed = records_until(lines, "ready")
        assert [r["id"] for r in replayed[:-1] if r["type"] != "message.delta"] == [e["id"] for e in timeline if e["id"] > 2]
        accepted = client.post(f"/v1/conversations/{cid}/messages", headers=alice.headers, json={"prompt": "/ls"})
        assert accepted.status_code == 202, accepted.text
        live = records_until(lines, "turn.completed")
    assert live[0]["id"] > replayed[-2]["id"] and [r["type"] for r in live][0] == "message.created"
