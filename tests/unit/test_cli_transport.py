"""The CLI's socket transport (`fastest.cli.transport`) against a loopback server that answers each
request with what the test scripted: framing (length, chunked, until close), keep-alive, a server
that drops an idle connection, and one that answers before reading the body."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from fastest.cli.transport import Session, TransportError


class Scripted:
    """Accepts connections; for each request read (head + Content-Length body), sends the next
    scripted answer (bytes) and, after it, closes the connection if the script says so."""

    def __init__(self, answers: list[tuple[bytes, bool]], *, read_body: bool = True) -> None:
        self.answers = answers
        self.read_body = read_body
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/api"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn, conn.makefile("rb") as reader:  # both closed: the client sees the connection end
                while self.answers:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = reader.readline()
                        if not line:
                            break
                        head += line
                    if not head:
                        break
                    length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), 0)
                    body = reader.read(length) if self.read_body and length else b""
                    self.requests.append(head + body)
                    answer, close = self.answers.pop(0)
                    conn.sendall(answer)
                    if close:
                        break

    def close(self) -> None:
        self.sock.close()


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def test_json_requests_share_one_kept_alive_connection() -> None:
    server = Scripted([(ok(b'{"a": 1}', "X-Thing: yes\r\n"), False), (ok(b'{"b": 2}'), False)])
    session = Session(server.url, headers={"Authorization": "Bearer t"})
    first = session.request("POST", "/v1/x", json={"k": "é"}, params={"limit": 5})
    second = session.request("GET", "/v1/y")
    assert first.status_code == 200 and first.json() == {"a": 1} and first.headers.get("x-THING") == "yes"
    assert second.json() == {"b": 2} and server.connections == 1
    sent = server.requests[0].decode()
    assert sent.startswith("POST /api/v1/x?limit=5 HTTP/1.1\r\n") and "Authorization: Bearer t" in sent
    assert sent.endswith('{"k":"é"}') and "Content-Length: 10" in sent
    session.close()
    server.close()


def test_chunked_and_until_close_bodies_stream_in_pieces() -> None:
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    until_close = b"HTTP/1.0 200 OK\r\n\r\nthe rest"
    server = Scripted([(chunked, False), (ok(b"{}"), False), (until_close, True)])
    session = Session(server.url, headers={})
    with session.stream("GET", "/a") as response:
        assert b"".join(response.iter_bytes(3)) == b"hello world"
    assert session.request("GET", "/b").json() == {}  # the same connection, after the chunked body
    assert session.request("GET", "/c").content == b"the rest"
    assert server.connections == 1
    session.close()
    server.close()


def test_a_connection_the_server_dropped_is_replaced_once(tmp_path: Path) -> None:
    server = Scripted([(ok(b"1"), True), (ok(b"2"), False)])  # closes after the first answer
    session = Session(server.url, headers={})
    assert session.request("GET", "/a").content == b"1"
    path = tmp_path / "body"
    path.write_bytes(b"x" * 100_000)
    with open(path, "rb") as body:  # a file body is sent again from its start on the new connection
        assert session.request("PUT", "/b", content=body).content == b"2"
    assert server.connections == 2 and server.requests[1].endswith(b"x" * 100_000)
    assert b"Content-Length: 100000" in server.requests[1]
    session.close()
    server.close()


def test_an_answer_sent_before_the_body_was_read_is_reported() -> None:
    refusal = b'{"error": {"code": "payload_too_large"}}'
    server = Scripted([(b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: "
                        + str(len(refusal)).encode() + b"\r\n\r\n" + refusal, True)], read_body=False)
    session = Session(server.url, headers={})
    response = session.request("PUT", "/big", content=b"y" * 8_000_000)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    session.close()
    server.close()


def test_an_unreachable_server_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransportError):
        Session(f"http://127.0.0.1:{port}", headers={}).request("GET", "/")


def test_behind_a_proxy_the_client_is_httpx() -> None:
    """The socket transport speaks to the server directly; with a proxy configured for it, ApiClient
    uses httpx (which reads the same variables) instead."""
    from fastest.cli.client import uses_proxy

    assert not uses_proxy("http://127.0.0.1:8787", {})
    assert uses_proxy("https://api.example.com", {"HTTPS_PROXY": "http://proxy:3128"})
    assert uses_proxy("http://api.example.com", {"all_proxy": "http://proxy:3128"})
    assert not uses_proxy("http://api.example.com", {"HTTPS_PROXY": "http://proxy:3128"})  # another scheme
    assert not uses_proxy("https://api.example.com", {"https_proxy": "http://p", "NO_PROXY": "localhost,.example.com"})
    assert not uses_proxy("https://api.example.com", {"https_proxy": "http://p", "no_proxy": "*"})
