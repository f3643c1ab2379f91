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


def _self_signed(tmp_path, host: str):
    """A certificate for `host` (its own CA), written as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_to_the_pinned_address_checks_the_certificate_against_the_urls_host(tmp_path, server):
    import ssl

    cert, key = _self_signed(tmp_path, "hooks.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)

    async def go():
        client = HttpxClient()
        client._pool()
        trusted = ssl.create_default_context(cafile=str(cert))
        client._pinned._tls = trusted  # this test's CA; production uses the system's
        ok = await post(client, f"https://hooks.example:{server.port}/plain")
        with pytest.raises(ssl.SSLCertVerificationError):  # the same address, named otherwise
            await post(client, f"https://other.example:{server.port}/plain")
        untrusting = HttpxClient()
        untrusting._pool()
        with pytest.raises(ssl.SSLCertVerificationError):  # the system CAs do not know it
            await post(untrusting, f"https://hooks.example:{server.port}/plain")
        return ok

    status, _, body = asyncio.run(go())
    assert status == 200 and body == b"ok"
    assert server.hosts == [f"hooks.example:{server.port}"]
