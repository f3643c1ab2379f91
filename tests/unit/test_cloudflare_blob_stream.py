"""The Worker's streaming blob path (`fastest.edge.blob_stream`) against Python fakes.

The fakes stand in for the runtime: a request shaped like the SDK's (`method`, `url`, `headers` as an
`http.client.HTTPMessage`, `body` a JS ReadableStream with `getReader()`/`cancel()`), an R2 bucket
that behaves like R2 (it reads the stream, checks the `sha256` option and fails the put like R2 does,
storing nothing) and hands out object bodies as opaque streams; and a Response factory that records
what it was given. D1, KV, the rate limiter and the clock are the real local platform, so the rows
(`blob_refs`) and the storage rules are the service's own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.datastructures import Headers

from fastest.api.blobs import IMMUTABLE
from fastest.config import Settings
from fastest.platform import Platform
from fastest.edge import blob_stream
from fastest.platform.cloudflare.r2 import R2BlobStore
from tests.conftest import Caller, count_rows, make_caller, run


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------------
# Fakes
# --------------------------------------------------------------------------------------------------


class FakeReader:
    def __init__(self, stream: "FakeJsStream") -> None:
        self.stream = stream

    async def read(self) -> dict:
        if not self.stream.chunks:
            return {"done": True, "value": None}
        self.stream.read_bytes += len(self.stream.chunks[0])
        return {"done": False, "value": self.stream.chunks.pop(0)}

    def releaseLock(self) -> None:  # noqa: N802 (JS name)
        pass


class FakeJsStream:
    """A JS ReadableStream: read through a reader, or cancelled unread."""

    def __init__(self, data: bytes, chunk: int = 4) -> None:
        self.chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)]
        self.read_bytes = 0
        self.cancelled = False

    def getReader(self) -> FakeReader:  # noqa: N802
        return FakeReader(self)

    async def cancel(self) -> None:
        self.cancelled = True


class JsError(Exception):
    """Like pyodide's JsException: the JS message in `.message`."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


UPLOADED_MS = datetime(2026, 4, 21, tzinfo=timezone.utc).timestamp() * 1000


class FakeR2:
    """An R2 bucket binding: stores what it reads, verifies `sha256` like R2, serves ranges."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict]] = {}
        self.puts: list[tuple[str, Any, dict]] = []
        self.served: list[FakeJsStream] = []

    def _object(self, key: str, body: FakeJsStream | None = None) -> SimpleNamespace:
        data, options = self.objects[key]
        fields = {
            "key": key,
            "size": len(data),
            "etag": "etag-" + key,
            "uploaded": SimpleNamespace(getTime=lambda: UPLOADED_MS),
            "customMetadata": options.get("customMetadata", {}),
            "httpMetadata": options.get("httpMetadata", {}),
        }
        if body is not None:
            fields["body"] = body
        return SimpleNamespace(**fields)

    async def put(self, key: str, value: Any, **options: Any):
        self.puts.append((key, value, options))
        data = b""
        if isinstance(value, bytes):  # the buffered put of the ASGI path
            data = value
        elif value is not None:
            reader = value.getReader()
            while not (chunk := await reader.read())["done"]:
                data += chunk["value"]
        expected = options.get("sha256")
        if expected is not None and sha(data) != expected:
            raise JsError(
                "put: The SHA-256 checksum you specified did not match what we received.\n"
                f"You provided a SHA-256 checksum with value: {expected}\nActual SHA-256 was: {sha(data)} (10037)"
            )
        self.objects[key] = (data, options)
        return self._object(key)

    async def get(self, key: str, **options: Any):
        if key not in self.objects:
            return None
        data = self.objects[key][0]
        if "range" in options:
            offset = options["range"]["offset"]
            length = options["range"].get("length", len(data) - offset)
            data = data[offset : offset + length]
        stream = FakeJsStream(data)
        self.served.append(stream)
        return self._object(key, stream)

    async def head(self, key: str):
        return self._object(key) if key in self.objects else None

    async def delete(self, keys: Any) -> None:
        for key in [keys] if isinstance(keys, str) else keys:
            self.objects.pop(key, None)


def fake_request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    message = http.client.HTTPMessage()
    for name, value in (headers or {}).items():
        message[name] = value
    stream = None if body is None else FakeJsStream(body)
    return SimpleNamespace(method=method, url=f"https://api.example.com{path}", headers=message, body=stream)


@dataclasses.dataclass
class Sent:
    body: Any
    status: int
    headers: Headers

    def json(self) -> Any:
        return json.loads(self.body)


def respond(body: Any, status: int, headers: dict[str, str]) -> Sent:
    assert len({k.lower() for k in headers}) == len(headers), headers  # no header given twice
    return Sent(body, status, Headers(headers=headers))  # case-insensitive, like JS Headers


@pytest.fixture
def settings() -> Settings:
    return Settings(blob_max_bytes=64)


@pytest.fixture
def r2() -> FakeR2:
    return FakeR2()


@pytest.fixture
def worker(platform: Platform, r2: FakeR2) -> Platform:
    """The local platform (D1, KV, limiter, clock) with R2 behind the Cloudflare adapter."""
    return dataclasses.replace(platform, blobs=R2BlobStore(r2), closers=[])


def serve(worker: Platform, request: Any) -> Sent:
    matched = blob_stream.match(request.method, request.url.split("example.com", 1)[1])
    assert matched is not None
    return run(blob_stream.handle(*matched, request, worker, respond=respond))


def upload(worker: Platform, caller: Caller | None, data: bytes, *, blob_hash: str | None = None,
           headers: dict[str, str] | None = None, length: bool = True):
    h = dict(caller.headers) if caller else {}
    if length:
        h["Content-Length"] = str(len(data))
    h.update(headers or {})
    request = fake_request("PUT", f"/v1/blobs/upload/{blob_hash or sha(data)}", h, data)
    return serve(worker, request), request


def download(worker: Platform, caller: Caller, blob_hash: str, headers: dict[str, str] | None = None, method: str = "GET"):
    request = fake_request(method, f"/v1/blobs/download/{blob_hash}", {**caller.headers, **(headers or {})})
    return serve(worker, request)


def refs(worker: Platform, caller: Caller, blob_hash: str) -> int:
    return count_rows(worker, "SELECT count(*) AS n FROM blob_refs WHERE user_id = ? AND hash = ?", caller.user_id, blob_hash)


def assert_problem(sent: Sent, status: int, code: str) -> dict:
    assert sent.status == status, sent.body
    assert sent.headers["Content-Type"] == "application/problem+json"
    body = sent.json()
    assert body["status"] == status and body["error"]["code"] == code
    assert body["instance"] == f"urn:fastest:request:{sent.headers['X-Request-Id']}"
    return body


# --------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------


def test_match_only_the_streaming_routes() -> None:
    h = "ab" * 32
    assert blob_stream.match("PUT", f"/v1/blobs/upload/{h}") == ("upload", h)
    assert blob_stream.match("GET", f"/v1/blobs/download/{h}") == ("download", h)
    for method, path in [
        ("POST", f"/v1/blobs/upload/{h}"),
        ("PUT", f"/v1/blobs/download/{h}"),
        ("PUT", f"/v1/blobs/upload/{h.upper()}"),
        ("PUT", "/v1/blobs/upload/abc"),
        ("GET", "/v1/blobs/download/batch"),
        ("HEAD", f"/v1/blobs/download/{h}"),  # the app's 405, on both runtimes
        ("GET", f"/v1/blobs/download/{h}/x"),
        ("PUT", f"/v1/blobs/manifests/{h}"),
    ]:
        assert blob_stream.match(method, path) is None, (method, path)


def test_match_accepts_the_sdk_method_enum() -> None:
    import http as http_module

    h = "cd" * 32
    assert blob_stream.match(http_module.HTTPMethod.PUT, f"/v1/blobs/upload/{h}") == ("upload", h)


def test_the_module_imports_no_runtime_module() -> None:
    import sys

    assert "workers" not in sys.modules and "js" not in sys.modules


# --------------------------------------------------------------------------------------------------
# Authorization (the same sequence as authorize("sync", route_class="sync"))
# --------------------------------------------------------------------------------------------------


def test_upload_without_a_token_is_401_and_the_body_is_cancelled(worker: Platform, r2: FakeR2) -> None:
    sent, request = upload(worker, None, b"hello")
    assert_problem(sent, 401, "unauthenticated")
    assert sent.headers["WWW-Authenticate"] == 'Bearer realm="fastest"'
    assert request.body.cancelled and request.body.read_bytes == 0
    assert r2.puts == []


def test_invalid_token_is_401(worker: Platform) -> None:
    sent, _ = upload(worker, None, b"hello", headers={"Authorization": "Bearer fst_nope"})
    assert_problem(sent, 401, "invalid_token")


def test_token_without_sync_is_403_with_rate_limit_headers(worker: Platform, r2: FakeR2) -> None:
    reader = make_caller(worker, "reader@example.com", abilities=("read",))
    sent, request = upload(worker, reader, b"hello")
    body = assert_problem(sent, 403, "forbidden")
    assert body["required_ability"] == "sync"
    assert sent.headers["RateLimit-Policy"].startswith('"sync";')
    assert request.body.cancelled and r2.puts == []


def test_sync_rate_limit_is_enforced(platform: Platform, r2: FakeR2, alice: Caller) -> None:
    worker = dataclasses.replace(
        platform, blobs=R2BlobStore(r2), closers=[], settings=dataclasses.replace(platform.settings, sync_rate_limit_per_minute=1)
    )
    data = b"x"
    assert upload(worker, alice, data)[0].status == 201
    sent, _ = upload(worker, alice, data)
    assert_problem(sent, 429, "rate_limited")
    assert int(sent.headers["Retry-After"]) >= 1


# --------------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------------


def test_upload_without_content_length_is_411(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    sent, request = upload(worker, alice, b"hello", length=False)
    assert_problem(sent, 411, "length_required")
    assert request.body.cancelled and r2.puts == []


def test_upload_over_the_limit_is_413_before_reading(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    data = b"x" * 65
    sent, request = upload(worker, alice, data)
    body = assert_problem(sent, 413, "payload_too_large")
    assert body["limit_bytes"] == 64
    assert request.body.read_bytes == 0 and request.body.cancelled and r2.puts == []


def test_upload_streams_the_js_body_into_r2_with_its_sha256(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    data = b"hello, streaming world"
    sent, request = upload(worker, alice, data, headers={"X-Request-Id": "req-abc"})

    assert sent.status == 201
    assert sent.json() == {"hash": sha(data), "size": len(data), "created": True}
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-Request-Id"] == "req-abc"
    assert sent.headers["X-Content-Type-Options"] == "nosniff"
    assert sent.headers["RateLimit"].startswith('"sync";')
    [(key, value, options)] = r2.puts
    assert key == f"{alice.user_id}/blobs/{sha(data)}"
    assert value is request.body  # the request's own stream, not a Python copy
    assert options == {
        "sha256": sha(data),
        "customMetadata": {"sha256": sha(data)},
        "httpMetadata": {"contentType": "application/octet-stream"},
    }
    assert refs(worker, alice, sha(data)) == 1


def test_upload_of_a_stored_blob_is_200_without_reading_the_body(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    data = b"already here"
    assert upload(worker, alice, data)[0].status == 201
    sent, request = upload(worker, alice, data)
    assert sent.status == 200
    assert sent.json() == {"hash": sha(data), "size": len(data), "created": False}
    assert request.body.cancelled and request.body.read_bytes == 0
    assert len(r2.puts) == 1


def test_hash_mismatch_is_422_and_nothing_is_stored(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    claimed = sha(b"something else")
    sent, _ = upload(worker, alice, b"the real bytes", blob_hash=claimed)
    body = assert_problem(sent, 422, "hash_mismatch")
    assert body["expected_hash"] == claimed and body["size"] == len(b"the real bytes")
    assert r2.objects == {}
    assert refs(worker, alice, claimed) == 0


def test_a_blob_being_collected_is_409_with_retry_after(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    data = b"condemned"
    assert upload(worker, alice, data)[0].status == 201
    run(worker.db.prepare(
        "UPDATE blob_refs SET state = 'deleting', deleting_since = ? WHERE user_id = ?"
    ).bind(datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"), alice.user_id).run())
    sent, request = upload(worker, alice, data)
    assert_problem(sent, 409, "blob_being_collected")
    assert "Retry-After" in sent.headers
    assert request.body.cancelled and len(r2.puts) == 1


def test_an_unexpected_r2_failure_is_a_500_that_reveals_nothing(worker: Platform, alice: Caller, r2: FakeR2) -> None:
    async def broken_put(key: str, value: Any, **options: Any):
        raise JsError("internal error talking to R2 (secret detail)")

    r2.put = broken_put  # type: ignore[method-assign]
    sent, _ = upload(worker, alice, b"boom")
    assert_problem(sent, 500, "internal")
    assert "secret" not in sent.body
    assert refs(worker, alice, sha(b"boom")) == 0


# --------------------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def stored(worker: Platform, alice: Caller) -> bytes:
    data = b"0123456789abcdefghij"
    assert upload(worker, alice, data)[0].status == 201
    return data


def test_download_passes_the_r2_stream_through(worker: Platform, alice: Caller, r2: FakeR2, stored: bytes) -> None:
    sent = download(worker, alice, sha(stored))
    assert sent.status == 200
    assert sent.body is r2.served[-1] and sent.body.read_bytes == 0  # untouched by Python
    assert sent.headers["ETag"] == f'"{sha(stored)}"'
    assert sent.headers["Cache-Control"] == IMMUTABLE
    assert sent.headers["Accept-Ranges"] == "bytes"
    assert sent.headers["Content-Length"] == str(len(stored))
    assert sent.headers["Content-Type"] == "application/octet-stream"
    assert sent.headers["RateLimit"].startswith('"sync";')


def test_if_none_match_is_304_without_a_body(worker: Platform, alice: Caller, r2: FakeR2, stored: bytes) -> None:
    served = len(r2.served)
    sent = download(worker, alice, sha(stored), {"If-None-Match": f'W/"{sha(stored)}"'})
    assert sent.status == 304 and sent.body is None
    assert sent.headers["ETag"] == f'"{sha(stored)}"'
    assert "Content-Length" not in sent.headers
    assert len(r2.served) == served  # no object body was opened


def test_a_single_range_is_206(worker: Platform, alice: Caller, r2: FakeR2, stored: bytes) -> None:
    sent = download(worker, alice, sha(stored), {"Range": "bytes=5-9"})
    assert sent.status == 206
    assert sent.body is r2.served[-1] and sent.body.chunks == [b"5678", b"9"]
    assert sent.headers["Content-Range"] == f"bytes 5-9/{len(stored)}"
    assert sent.headers["Content-Length"] == "5"


def test_an_unsatisfiable_range_is_416(worker: Platform, alice: Caller, stored: bytes) -> None:
    sent = download(worker, alice, sha(stored), {"Range": "bytes=100-"})
    assert_problem(sent, 416, "range_not_satisfiable")
    assert sent.headers["Content-Range"] == f"bytes */{len(stored)}"


def test_another_users_blob_is_404(worker: Platform, bob: Caller, stored: bytes) -> None:
    assert_problem(download(worker, bob, sha(stored)), 404, "not_found")


def test_cors_headers_for_an_allowed_origin(platform: Platform, r2: FakeR2, alice: Caller) -> None:
    settings = dataclasses.replace(platform.settings, cors_origins="https://app.example.com")
    worker = dataclasses.replace(platform, blobs=R2BlobStore(r2), closers=[], settings=settings)
    sent, _ = upload(worker, alice, b"cors", headers={"Origin": "https://app.example.com"})
    assert sent.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "ETag" in sent.headers["Access-Control-Expose-Headers"]
    sent, _ = upload(worker, alice, b"cors", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in sent.headers


# --------------------------------------------------------------------------------------------------
# Same answers as the ASGI routes
# --------------------------------------------------------------------------------------------------

PARITY_HEADERS = ("etag", "cache-control", "accept-ranges", "content-length", "content-range", "retry-after")


@pytest.mark.parametrize(
    "method, headers",
    [
        ("GET", {}),
        ("GET", {"Range": "bytes=-4"}),
        ("GET", {"Range": "bytes=50-"}),
        ("GET", {"If-None-Match": "*"}),
    ],
)
def test_downloads_answer_like_the_asgi_route(worker: Platform, alice: Caller, stored: bytes, method: str, headers: dict) -> None:
    from fastapi.testclient import TestClient

    from fastest.app import create_app

    with TestClient(create_app(lambda scope: worker), raise_server_exceptions=False) as client:
        asgi = client.request(method, f"/v1/blobs/download/{sha(stored)}", headers={**alice.headers, **headers})
    sent = download(worker, alice, sha(stored), headers, method=method)
    assert sent.status == asgi.status_code
    for name in PARITY_HEADERS + ("content-type",):
        if name == "content-length" and sent.status >= 400:
            continue  # a string body: the runtime sets it, as Starlette does
        assert sent.headers.get(name) == asgi.headers.get(name), name
    if sent.status >= 400:
        assert {k: v for k, v in sent.json().items() if k != "instance"} == {
            k: v for k, v in asgi.json().items() if k != "instance"
        }


def test_uploads_answer_like_the_asgi_route(worker: Platform, alice: Caller) -> None:
    from fastapi.testclient import TestClient

    from fastest.app import create_app

    cases = [(b"parity one", None), (b"parity one", None), (b"parity two", sha(b"other")), (b"x" * 65, None)]
    with TestClient(create_app(lambda scope: worker), raise_server_exceptions=False) as client:
        asgi = [
            client.put(f"/v1/blobs/upload/{claimed or sha(data)}", content=data, headers=alice.headers)
            for data, claimed in cases
        ]
    bob_like = make_caller(worker, "carol@example.com")
    for (data, claimed), expected in zip(cases, asgi):
        sent, _ = upload(worker, bob_like, data, blob_hash=claimed)
        assert sent.status == expected.status_code, (data, sent.body, expected.text)
        body, wanted = sent.json(), expected.json()
        if sent.status >= 400:
            assert body["error"]["code"] == wanted["error"]["code"]
            assert body.get("expected_hash") == wanted.get("expected_hash")
        else:
            assert body == wanted
