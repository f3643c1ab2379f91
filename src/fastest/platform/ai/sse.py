"""Server-sent events, parsed from a byte stream (what OpenAI-compatible and Anthropic servers send).

Only what model APIs use: `event:` and `data:` fields (multi-line data joined with newlines),
comments and other fields ignored, an event ends at a blank line. CRLF, LF and CR line ends all work.
"""

from __future__ import annotations

from typing import AsyncIterator, NamedTuple


class ServerSentEvent(NamedTuple):
    event: str
    data: str


async def parse_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[ServerSentEvent]:
    buffer = b""
    event, data = "", []
    async for chunk in chunks:
        buffer += chunk
        # A CR at the end may be the first half of a CRLF split across chunks: keep it back.
        held = b"\r" if buffer.endswith(b"\r") else b""
        lines = buffer[: len(buffer) - len(held)].replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        buffer = lines.pop() + held  # an incomplete last line waits for the next chunk
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield ServerSentEvent(event or "message", "\n".join(data))
                event, data = "", []
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
    if data:
        yield ServerSentEvent(event or "message", "\n".join(data))
