"""A receiver for integration webhook tests: records every request and answers as told. Plain HTTP on
loopback for the local runtime (the operator's loopback exception); on edge, a public HTTPS host the
Worker reaches by name (tests/loopback.py)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver(LoopbackServer):
    """`answers[path]` says how to answer a path (default 200 "ok"); `received` lists requests.
    Given the test's platform, it is a public host where that platform is the edge harness's."""

    def __init__(self, platform: Any = None) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.body()
                with receiver._lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()))
                answer = receiver.answers.get(self.path, Answer())
                if answer.delay:
                    time.sleep(answer.delay)
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

        super().__init__(Handler, public_on=getattr(platform, "harness", None))

    def url(self, path: str = "/hook") -> str:
        return f"{self.origin}{path}"

    def on(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """The requests to `path` once there are `count` of them (waits for background sends)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got
            time.sleep(0.01)
        raise AssertionError(f"{path}: {len(self.on(path))} request(s), expected {count}")
