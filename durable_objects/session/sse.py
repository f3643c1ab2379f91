"""Server-sent events: the stream's frames for clients without WebSockets (`GET …/events`). The
framing is here, so the local route and the Durable Object send the same records."""

from __future__ import annotations

import json
from typing import Any, Callable

EVENT_STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
# Proxies (Cloudflare's among them) drop connections idle for long: a comment record keeps it open.
SSE_KEEPALIVE_SECONDS = 15.0
SSE_KEEPALIVE = ": keepalive\n\n"


def sse_record(text: str) -> str:
    """One frame (JSON text, one line) as an SSE record: `id:` for events (what EventSource sends
    back as `Last-Event-ID`), `event:` the frame's type, `data:` the frame itself."""
    frame = json.loads(text)
    head = f"id: {frame['id']}\n" if frame.get("id") is not None else ""
    return f"{head}event: {frame['type']}\ndata: {text}\n\n"


class EventStream:
    """A client (`Socket`) that receives the frames as SSE records through `write`, which must not
    block (it queues, or hands the text to a stream); `close` ends the stream through `end`."""

    def __init__(self, write: Callable[[str], None], end: Callable[[], None]) -> None:
        self._write = write
        self._end = end
        self.grant: dict[str, Any] | None = None  # the token that opened it (`EventLog.attach`)

    def send(self, text: str) -> None:
        self._write(sse_record(text))

    def keepalive(self) -> None:
        self._write(SSE_KEEPALIVE)

    def close(self, code: int = 1000, reason: str = "") -> None:
        self._end()
