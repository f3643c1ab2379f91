"""The local runtime's pinned HTTP/1.1 client (webhook sends to a checked address): keep-alive,
chunked answers, servers that close, the Host header, no redirects."""

from __future__ import annotations

import asyncio
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fastest.platform.local.http import HttpxClient


class Server:
    def __init__(self):
        self.connections = 0
        self.hosts: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                server.connections += 1
                super().setup()

            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                server.hosts.append(self.headers["host"])
                if self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for part in (b"hello ", b"world"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                elif self.path == "/close":
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.send_header("connection", "close")
                    self.end_headers()
                    self.wfile.write(b"ok")
                    self.close_connection = True
                elif self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("location", "http://169.254.169.254/")
                    self.send_header("content-length", "0")
                    self.end_headers()
                else:
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


async def post(client, url, pin="127.0.0.1"):
    response = await client.stream("POST", url, headers={"content-type": "application/json"}, body=b"{}", timeout=5, pin=pin)
    body = b"".join([chunk async for chunk in response.chunks])
    await response.close()
    return response.status, response.headers, body


def test_keep_alive_chunked_close_and_host(server):
    async def go():
        client = HttpxClient()
        url = f"http://receiver.test:{server.port}"
        results = [await post(client, url + "/plain") for _ in range(3)]
        assert server.connections == 1  # one connection, kept alive
        assert (await post(client, url + "/chunked"))[2] == b"hello world"
        assert (await post(client, url + "/close"))[0] == 200
        assert (await post(client, url + "/plain"))[0] == 200  # a new connection after the close
        assert server.connections == 2
        status, headers, _ = await post(client, url + "/redirect")
        assert status == 302 and headers["location"] == "http://169.254.169.254/"  # answered, not followed
        return results

    results = asyncio.run(go())
    assert all(r[0] == 200 and r[2] == b"ok" for r in results)
    assert set(server.hosts) == {f"receiver.test:{server.port}"}  # the URL's host, sent to the pinned address


def test_a_server_that_dropped_an_idle_connection_is_retried_on_a_fresh_one(server):
    async def go():
        client = HttpxClient()
        url = f"http://receiver.test:{server.port}/plain"
        await post(client, url)
        for connection in client._pinned._idle.values():  # the server side goes away meanwhile
            for idle in connection:
                idle.writer.transport.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
        return await post(client, url)

    assert asyncio.run(go())[0] == 200


def test_nothing_listening_is_a_connection_error():
    async def go():
        client = HttpxClient()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(OSError):
            await post(client, f"http://receiver.test:{port}/x")

    asyncio.run(go())
