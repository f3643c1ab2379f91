"""What the `fastest` command sends is what it means: an id from the command line is percent-encoded
inside its path segment (a CR/LF cannot add a header, a non-ASCII id is no traceback), and a token a
header cannot carry is refused before anything is sent. Each ends in one `fastest: …` line. The
server here only records the raw bytes it receives."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

from tests.e2e.conftest import FASTEST

NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nConnection: close\r\n"
             b"Content-Length: 63\r\n\r\n" + b'{"error": {"code": "not_found", "message": "No such snapshot."}}')


class RecordingServer:
    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.received: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = connection.recv(65536)
                    if not piece:
                        break
                    data += piece
                self.received.append(data)
                connection.sendall(NOT_FOUND)


def fastest(server: RecordingServer, token: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")}
    env.update(FASTEST_SERVER=server.url, FASTEST_TOKEN=token, FASTEST_CONFIG_DIR=str(cwd / "config"))
    return subprocess.run([*FASTEST, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def one_line_failure(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastest: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_ids_are_quoted_into_their_path_segment(tmp_path: Path):
    server = RecordingServer()
    token = "fst_" + "a" * 43
    one_line_failure(fastest(server, token, "checkout", "snp_x\r\nX-Injected: yes", "out", cwd=tmp_path))
    one_line_failure(fastest(server, token, "checkout", "snp_é€", "out", cwd=tmp_path))
    request_lines = [raw.split(b"\r\n", 1)[0] for raw in server.received]
    assert request_lines == [b"GET /v1/snapshots/snp_x%0D%0AX-Injected%3A%20yes HTTP/1.1",
                             b"GET /v1/snapshots/snp_%C3%A9%E2%82%AC HTTP/1.1"]
    assert not any(b"\r\nX-Injected" in raw for raw in server.received)


def test_a_token_a_header_cannot_carry_is_refused_before_sending(tmp_path: Path):
    server = RecordingServer()
    for token in ("fst_a\r\nX-Injected: yes", "fst_é"):
        line = one_line_failure(fastest(server, token, "checkout", "snp_x", "out", cwd=tmp_path))
        assert "token" in line and "X-Injected" not in line
    assert server.received == []
