"""A WebSocket to the edge harness, with the methods of Starlette's test session (`send_json`,
`receive_json`, …), so the conversation tests drive either runtime unchanged. A close from the
server raises `WebSocketDisconnect` with its code, as the test session does."""

from __future__ import annotations

import json
from typing import Any

from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class EdgeWebSocket:
    def __init__(self, url: str, headers: dict[str, str], subprotocols: list[str] | None) -> None:
        self._url, self._headers, self._subprotocols = url, headers, subprotocols
        self._socket: Any = None

    def __enter__(self) -> "EdgeWebSocket":
        self._socket = connect(self._url, additional_headers=self._headers, subprotocols=self._subprotocols,
                               open_timeout=60, close_timeout=5, max_size=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._socket is not None:
            self._socket.close(code, reason)

    def send_text(self, data: str) -> None:
        self._socket.send(data)

    def send_bytes(self, data: bytes) -> None:
        self._socket.send(data)

    def send_json(self, data: Any) -> None:
        self._socket.send(json.dumps(data))

    def _receive(self) -> Any:
        try:
            return self._socket.recv(timeout=60)
        except ConnectionClosed as closed:
            received = closed.rcvd
            raise WebSocketDisconnect(received.code if received else 1006, received.reason if received else "") from None

    def receive_text(self) -> str:
        return str(self._receive())

    def receive_bytes(self) -> bytes:
        data = self._receive()
        return data if isinstance(data, bytes) else data.encode()

    def receive_json(self) -> Any:
        return json.loads(self._receive())
