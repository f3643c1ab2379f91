"""The tests' stand-ins for services we cannot reach (model providers, Paddle, Cloudflare, Google,
users' webhook endpoints) are small HTTP servers on loopback. This is their common part: a threaded
server on a free port of 127.0.0.1, serving a handler class in a daemon thread, as a context manager,
and a quiet handler base that reads request bodies.

A stand-in for a host on the Internet (a user's webhook endpoint) that the Worker on the edge harness
must reach is served as one: over HTTPS, with a certificate for a public name issued by the tests'
authority (tests/tls_authority.py), the name registered with the harness to resolve to a public
address (edge-harness/network.mjs). The Worker refuses plain HTTP and loopback targets, as it must."""

from __future__ import annotations

import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A stand-in's request handler: no access log on the test output, and the request's body."""

    def log_message(self, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""


# The address the tests' public hosts resolve to: a global unicast address, never dialled (the
# harness routes the connection to the stand-in by the host's name).
PUBLIC_ADDRESS = "93.184.216.34"


class LoopbackServer:
    """`public_on`: an edge harness to serve this stand-in to as a public HTTPS host (see above);
    None: plain HTTP on loopback."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, public_on: Any = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.harness = public_on
        self.host: str | None = None
        if public_on is not None:
            from tests.tls_authority import server_context

            self.host = f"host-{secrets.token_hex(4)}.example"
            self.server.socket = server_context(self.host).wrap_socket(self.server.socket, server_side=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def origin(self) -> str:
        return f"https://{self.host}" if self.host else f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Any:
        if self.harness is not None:
            from tests.tls_authority import ca_pem

            self.harness.register_host(self.host, [PUBLIC_ADDRESS], port=self.port, ca=ca_pem())
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
