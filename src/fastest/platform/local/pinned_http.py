"""HTTP/1.1 to an address checked beforehand (the `pin` of `HttpClient.stream`): integration webhooks.

The connection goes to the given IP address while the URL's host names the server (Host header, TLS
server name and certificate check), so what was checked is what is reached. Protocol handling is
h11's (the state machine under httpx); this module only owns sockets, keep-alive and timeouts. It
exists because httpx's pool does a lot of bookkeeping per request (it looks over every connection of
the pool), which dominated the cost of a webhook fan-out to many endpoints at once.

No redirects are followed (a 3xx is answered as it came); no proxies; no compression negotiated.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import AsyncIterator, Mapping
from urllib.parse import urlsplit

import h11

from fastest.ports import HttpStream

IDLE_PER_ORIGIN = 8
IDLE_SECONDS = 30.0
READ_SIZE = 64 * 1024


class _Connection:
    __slots__ = ("reader", "writer", "protocol", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0

    def close(self) -> None:
        try:
            self.writer.close()
        except Exception:
            pass


class PinnedHttp:
    """Keep-alive connections per (scheme, address, port, server name), for one event loop."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str, int, str], list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def stream(self, method: str, url: str, headers: Mapping[str, str], body: bytes, timeout: float,
                     address: str) -> HttpStream:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, address, port, host)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        names = {name.lower() for name in headers}
        request_headers = [("host", parts.netloc.rsplit("@", 1)[-1])] if "host" not in names else []
        request_headers += list(headers.items())
        if "content-length" not in names:
            request_headers.append(("content-length", str(len(body))))
        request = h11.Request(method=method, target=target, headers=request_headers)

        connection = self._take_idle(key)
        if connection is not None:
            try:
                response = await self._exchange(connection, request, body, timeout)
            except (ConnectionError, h11.RemoteProtocolError, asyncio.IncompleteReadError, _ClosedBeforeAnswer):
                # The server closed the idle connection meanwhile: try once on a fresh one.
                connection.close()
                connection = None
        if connection is None:
            connection = await self._connect(scheme, address, port, host, timeout)
            try:
                response = await self._exchange(connection, request, body, timeout)
            except BaseException:
                connection.close()
                raise
        return self._answer(key, connection, response, timeout)

    async def _connect(self, scheme: str, address: str, port: int, host: str, timeout: float) -> _Connection:
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port, ssl=tls, server_hostname=host if tls else None), timeout
        )
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, request: h11.Request, body: bytes, timeout: float) -> h11.Response:
        protocol = connection.protocol
        data = protocol.send(request) or b""
        if body:
            data += protocol.send(h11.Data(data=body)) or b""
        data += protocol.send(h11.EndOfMessage()) or b""
        connection.writer.write(data)
        await asyncio.wait_for(connection.writer.drain(), timeout)
        received_any = False
        while True:
            event = protocol.next_event()
            if event is h11.NEED_DATA:
                chunk = await asyncio.wait_for(connection.reader.read(READ_SIZE), timeout)
                if not chunk and not received_any:
                    raise _ClosedBeforeAnswer()
                received_any = True
                protocol.receive_data(chunk)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                raise _ClosedBeforeAnswer() if not received_any else ConnectionError("connection closed")
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")

    def _answer(self, key: tuple[str, str, int, str], connection: _Connection, response: h11.Response,
                timeout: float) -> HttpStream:
        protocol = connection.protocol
        done = False

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal done
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    protocol.receive_data(await asyncio.wait_for(connection.reader.read(READ_SIZE), timeout))
                elif isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                    done = True
                    return

        async def close() -> None:
            if done and protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
                try:
                    protocol.start_next_cycle()
                except h11.LocalProtocolError:
                    connection.close()
                    return
                self._put_idle(key, connection)
            else:
                connection.close()

        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in response.headers}
        return HttpStream(status=response.status_code, headers=headers, chunks=chunks(), close=close)

    def _take_idle(self, key: tuple[str, str, int, str]) -> _Connection | None:
        pool = self._idle.get(key)
        now = time.monotonic()
        while pool:
            connection = pool.pop()
            if now - connection.idle_since < IDLE_SECONDS and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def _put_idle(self, key: tuple[str, str, int, str], connection: _Connection) -> None:
        pool = self._idle.setdefault(key, [])
        if len(pool) >= IDLE_PER_ORIGIN:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        pool.append(connection)
        if len(self._idle) > 1024:  # many origins: drop the idle connections of the others
            for other, connections in list(self._idle.items()):
                if other != key:
                    for stale in connections:
                        stale.close()
                    del self._idle[other]


class _ClosedBeforeAnswer(Exception):
    """The server closed the connection before any byte of an answer."""
