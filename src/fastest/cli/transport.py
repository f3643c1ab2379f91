"""The CLI's HTTP/1.1 transport: keep-alive connections over plain sockets, standard library only.

Why not httpx here: importing it takes longer (~70-180 ms) than a whole `fastest status` may (8x the
interpreter's start, see bench/cli.py), and even `http.client` costs ~15 ms (it parses headers with
the `email` package). The CLI needs little: one server, JSON and byte bodies with a known length,
answers framed by `Content-Length` or chunked (streamed downloads), a few keep-alive connections
for parallel uploads. `Session` offers the part of `httpx.Client`'s interface that `ApiClient` uses
(`request`, `stream`, `close`; responses with `status_code`, `reason_phrase`, `headers`, `content`,
`json()`, `read()`, `iter_bytes()`), so `ApiClient` has one set of calls over either: this session
for real servers, or an `httpx.Client` around a test transport (`ApiClient(..., transport=...)`).

Connection failures raise `TransportError`. A request on a kept-alive connection the server has
closed meanwhile is sent once more on a new connection (every request the CLI makes is safe to
repeat, see `fastest.cli.client`).
"""

from __future__ import annotations

import _socket
import io
import json as jsonlib
import os
import threading
from contextlib import contextmanager
from urllib.parse import urlencode, urlsplit

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 64 * 1024  # a status line or one header line
MAX_HEADERS = 200
NO_BODY_STATUSES = frozenset({204, 304})


class TransportError(Exception):
    """The server could not be reached, or the connection broke before the answer was complete."""


class _Stale(Exception):
    """The server closed a kept-alive connection before answering: send again on a new one."""


class Headers(dict):
    """Response headers by lower-cased name (repeated ones joined with ", "); `get` ignores case."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class _Connection:
    def __init__(self, sock: Any) -> None:
        self.sock = sock
        if hasattr(sock, "makefile"):  # a TLS socket
            self.reader: Any = sock.makefile("rb", buffering=CHUNK_BYTES)
        else:
            self.reader = io.BufferedReader(_SocketInput(sock), CHUNK_BYTES)

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class _SocketInput(io.RawIOBase):
    """The socket's input as a raw stream, what `socket.makefile("rb")` builds on: plain HTTP runs
    on `_socket`'s sockets, as importing the `socket` module (it makes enums of every constant) is
    ~8% of a `fastest status`."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


def _connect(host: str | bytes, port: int, timeout: float | None) -> Any:
    """`socket.create_connection` over `_socket`: the first address that accepts."""
    error: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error if error is not None else OSError(f"no address for {host!r}")


class Response:
    """An answer: status and headers at once, the body read on demand (`read`, `iter_bytes`)."""

    def __init__(self, connection: _Connection, status: int, reason: str, headers: Headers, framing: str,
                 length: int, keep_alive: bool, release: Any) -> None:
        self.status_code = status
        self.reason_phrase = reason
        self.headers = headers
        self._connection = connection
        self._framing = framing  # "none", "length", "chunked" or "close" (until the server closes)
        self._left = length  # bytes left in the body ("length") or in the current chunk ("chunked")
        self._keep_alive = keep_alive
        self._release = release  # called once with (connection reusable: bool)
        self._content: bytes | None = None
        self._done = framing == "none" or (framing == "length" and length == 0)
        if self._done:
            self._content = b""
            self._finish(True)

    def read(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self._pieces(CHUNK_BYTES))
        return self._content

    @property
    def content(self) -> bytes:
        return self.read()

    def json(self) -> Any:
        return jsonlib.loads(self.read())

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        if self._content is not None:
            if self._content:
                yield self._content
            return
        yield from self._pieces(chunk_size or CHUNK_BYTES)
        self._content = b""

    def close(self) -> None:
        """Drop what is left unread (the connection then cannot be reused)."""
        self._finish(self._done)

    def _pieces(self, size: int) -> Iterator[bytes]:
        reader = self._connection.reader
        try:
            while not self._done:
                if self._framing == "chunked" and self._left == 0:
                    self._left = self._chunk_size(reader)
                    if self._left == 0:
                        while reader.readline(MAX_LINE_BYTES) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        self._done = True
                        break
                if self._framing == "close":
                    piece = reader.read1(size)
                    if not piece:
                        self._done = True
                        break
                else:
                    piece = reader.read1(min(size, self._left))
                    if not piece:
                        raise TransportError("the server closed the connection in the middle of the answer")
                    self._left -= len(piece)
                    if self._framing == "chunked" and self._left == 0 and reader.readline(MAX_LINE_BYTES).strip():
                        raise TransportError("malformed chunked answer")
                    if self._framing == "length" and self._left == 0:
                        self._done = True
                yield piece
        except OSError as exc:
            self._finish(False)
            raise TransportError(f"the connection broke while reading the answer: {exc}") from exc
        except TransportError:
            self._finish(False)
            raise
        self._finish(True)

    @staticmethod
    def _chunk_size(reader: Any) -> int:
        line = reader.readline(MAX_LINE_BYTES)
        try:
            return int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise TransportError("malformed chunked answer") from None

    def _finish(self, reusable: bool) -> None:
        release, self._release = self._release, None
        if release is not None:
            release(self._connection, reusable and self._done and self._keep_alive)


class Session:
    """Requests to one server (`base_url`), over a pool of at most `max_connections` idle
    keep-alive connections; safe to use from several threads at once."""

    def __init__(self, base_url: str, *, headers: Mapping[str, str], connect_timeout: float = 10.0,
                 timeout: float = 120.0, max_connections: int = 8) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._prefix = url.path.rstrip("/")
        self._headers = {"Host": url.netloc, "Accept-Encoding": "identity", **headers}
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._max_idle = max_connections
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def request(self, method: str, path: str, **options: Any) -> Response:
        """Send and read the whole answer."""
        response = self._send(method, path, **options)
        response.read()
        return response

    @contextmanager
    def stream(self, method: str, path: str, **options: Any) -> Iterator[Response]:
        """Send; the body is read by the caller (`iter_bytes`) inside the block."""
        response = self._send(method, path, **options)
        try:
            yield response
        finally:
            response.close()

    # ----------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              content: Any = None, headers: Mapping[str, str] | None = None) -> Response:
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        sent = dict(self._headers)
        if headers:
            sent.update(headers)
        body: Any = content
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            sent.setdefault("Content-Type", "application/json")
        if body is None:
            if method in ("POST", "PUT", "PATCH"):
                sent["Content-Length"] = "0"
        elif isinstance(body, (bytes, bytearray, memoryview)):
            sent["Content-Length"] = str(len(body))
        else:  # a file: its length from the file system, as httpx does (the server requires one)
            sent["Content-Length"] = str(os.fstat(body.fileno()).st_size - body.tell())
        head = (f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in sent.items()) + "\r\n").encode("latin-1")
        start = body.tell() if hasattr(body, "read") else None
        for fresh in (False, True):
            connection, reused = self._connection(fresh)
            try:
                try:
                    self._write(connection, head, body)
                except OSError:
                    # The server may answer before reading the whole body (a 413 on the declared
                    # length) and close: its answer is the one to report, if it sent one.
                    return self._answer(connection, method, reusable=False)
                return self._answer(connection, method)
            except (_Stale, OSError) as exc:
                connection.close()
                if not reused:
                    raise TransportError(str(exc) or type(exc).__name__) from exc
                if start is not None:
                    body.seek(start)
            except TransportError:
                connection.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _write(connection: _Connection, head: bytes, body: Any) -> None:
        if body is None:
            connection.sock.sendall(head)
        elif isinstance(body, (bytes, bytearray, memoryview)):
            connection.sock.sendall(head + bytes(body))  # one send: no Nagle/delayed-ACK stall
        else:
            connection.sock.sendall(head)
            while piece := body.read(CHUNK_BYTES):
                connection.sock.sendall(piece)

    def _answer(self, connection: _Connection, method: str, *, reusable: bool = True) -> Response:
        reader = connection.reader
        while True:
            line = reader.readline(MAX_LINE_BYTES)
            if not line:
                raise _Stale("the server closed the connection")
            version, _, rest = line.decode("latin-1").rstrip("\r\n").partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/") or not code.isdigit():
                raise TransportError(f"not an HTTP answer: {line[:80]!r}")
            headers = Headers()
            for _ in range(MAX_HEADERS + 1):
                header = reader.readline(MAX_LINE_BYTES)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.decode("latin-1").partition(":")
                key, value = name.strip().lower(), value.strip()
                headers[key] = f"{dict.get(headers, key)}, {value}" if key in headers else value
            else:
                raise TransportError("too many headers in the answer")
            status = int(code)
            if status >= 200 or status == 101:
                break  # 1xx (100 Continue, 103 Early Hints): the real answer follows
        connection_header = headers.get("connection", "").lower()
        keep_alive = reusable and "close" not in connection_header and (
            version != "HTTP/1.0" or "keep-alive" in connection_header
        )
        if method == "HEAD" or status in NO_BODY_STATUSES or status < 200:
            framing, length = "none", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            framing, length = "chunked", 0
        elif (declared := headers.get("content-length")) is not None and declared.strip().isdigit():
            framing, length = "length", int(declared)
        else:
            framing, length, keep_alive = "close", 0, False
        return Response(connection, status, reason, headers, framing, length, keep_alive, self._release)

    def _connection(self, fresh: bool) -> tuple[_Connection, bool]:
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        try:
            # An ASCII host goes to getaddrinfo as bytes: as a str, the socket module encodes it with
            # the IDNA codec, whose import (unicodedata, stringprep) is ~3% of a `fastest status`.
            host = self._host.encode("ascii") if self._host.isascii() else self._host
            if self._https:
                import socket  # the ssl module wraps only its sockets

                sock = socket.create_connection((host, self._port), timeout=self._connect_timeout)
            else:
                sock = _connect(host, self._port, self._connect_timeout)
        except OSError as exc:
            raise TransportError(f"{exc.strerror or exc}") from exc
        try:
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            if self._https:
                import ssl  # only for https servers: ~5 ms of start-up

                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._timeout)
        except OSError as exc:
            sock.close()
            raise TransportError(f"{exc.strerror or exc}") from exc
        return _Connection(sock), False

    def _release(self, connection: _Connection, reusable: bool) -> None:
        if reusable:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(connection)
                    return
        connection.close()
