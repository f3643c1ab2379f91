"""Server-sent events from the session object's core: the framing both runtimes send, the replay
then live order, and how a pushed stream (the Durable Object's) is kept alive and let go."""

from __future__ import annotations

import asyncio
import json

from durable_objects.conversation_session import ConversationSession
from durable_objects.session.sse import SSE_KEEPALIVE, EventStream, sse_record
from durable_objects.session.state import EVENT_PREFIX
from tests.unit.test_cloudflare_conversations import MemoryStorage, Sink


def parse(records: list[str]) -> list[dict]:
    """Records as EventSource reads them: {id?, event, data}; comments skipped."""
    parsed = []
    for record in records:
        assert record.endswith("\n\n")
        fields = dict(line.split(": ", 1) for line in record[:-2].split("\n") if not line.startswith(":"))
        if fields:
            parsed.append(fields)
    return parsed


def test_a_frame_becomes_one_record():
    event = json.dumps({"type": "message.delta", "id": 7, "data": {"delta": "a\nb ü"}}, ensure_ascii=False)
    assert sse_record(event) == f"id: 7\nevent: message.delta\ndata: {event}\n\n"
    ready = json.dumps({"type": "ready", "id": None, "data": {}})
    assert sse_record(ready) == f"event: ready\ndata: {ready}\n\n"  # not an event: no id to resume from
    assert SSE_KEEPALIVE.startswith(":") and SSE_KEEPALIVE.endswith("\n\n")


class GatedStorage(MemoryStorage):
    """Holds the replay's read of the event log until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = asyncio.Event()
        self.proceed = asyncio.Event()

    async def list(self, **options):
        if options.get("prefix") == EVENT_PREFIX and options.get("start"):
            self.reading.set()
            await self.proceed.wait()
        return await super().list(**options)


def test_replay_then_live_with_nothing_lost_or_repeated():
    sink = Sink()
    stream = EventStream(sink.write, sink.end)

    async def scenario():
        storage = GatedStorage()
        core = ConversationSession("cnv_x", storage)
        await core.emit("one", {})
        await core.emit("two", {})
        attaching = asyncio.ensure_future(core.attach(stream, 1))
        await storage.reading.wait()
        await core.emit("three", {})  # while the replay reads: queued behind it
        storage.proceed.set()
        await attaching
        await core.emit("four", {})
        stream.close()

    asyncio.run(scenario())
    records = parse(sink.records)
    assert [(r.get("id"), r["event"]) for r in records] == [("2", "two"), ("3", "three"), (None, "ready"), ("4", "four")]
    assert all(json.loads(r["data"])["type"] == r["event"] for r in records)
    assert json.loads(records[2]["data"])["data"]["last_event_id"] == 3
    assert sink.ended


def test_a_held_stream_gets_keepalives_until_its_client_goes():
    sink = Sink()
    stream = EventStream(sink.write, sink.end)

    async def scenario():
        core = ConversationSession("cnv_x", MemoryStorage())
        await core.attach(stream, None)
        gone = asyncio.get_running_loop().create_future()
        holding = asyncio.ensure_future(core.hold(stream, gone, interval=0))
        while SSE_KEEPALIVE not in sink.records:
            await asyncio.sleep(0)
        gone.set_result(None)
        await holding
        assert stream not in core.sockets
        sent = len(sink.records)
        await core.emit("after", {})
        assert len(sink.records) == sent  # detached: nothing more is written

    asyncio.run(scenario())
    assert parse(sink.records)[0]["event"] == "ready"
