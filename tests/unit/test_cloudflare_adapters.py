"""The Cloudflare adapters against fakes shaped like the documented binding results.

The fakes stand in for Cloudflare (D1 `{results, success, meta}`, R2 objects, KV listings, DO stubs,
`ctx.storage`), not for our storage: they record what the adapter sent and answer in the platform's
shape, so these tests pin the conversions. The runtime-only half (`js`, WebCrypto) is thin and is
exercised for real only on Workers; the Vault's logic runs here with an injected AES-GCM.
"""

from __future__ import annotations

import asyncio
import base64
import http
import http.client
import os
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from fastest.platform import Platform
from fastest.platform.cloudflare import PlatformCache, build_platform, platform_from_env, read_vars
from fastest.platform.cloudflare.d1 import D1Database
from fastest.platform.cloudflare.durable_objects import (
    DurableObjectNamespace,
    DurableObjectStorage,
    object_name,
    read_session_request,
)
from fastest.platform.cloudflare.interop import from_js, to_bytes, to_datetime
from fastest.platform.cloudflare.kv import WorkersKV
from fastest.platform.cloudflare.r2 import R2BlobStore
from fastest.platform.cloudflare.rate_limit import BindingCappedLimiter, SlidingWindowLimiter
from fastest.platform.cloudflare.vault import UnconfiguredVault, WebCryptoVault
from fastest.ports import (
    BlobInfo,
    ByteRange,
    ConstraintError,
    DatabaseError,
    QueryResult,
    SessionRequest,
    VaultError,
)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------------------------------
# D1
# --------------------------------------------------------------------------------------------------


class FakeD1Statement:
    def __init__(self, db: "FakeD1", sql: str, params: tuple = ()) -> None:
        self.db, self.sql, self.params = db, sql, params

    def bind(self, *params: Any) -> "FakeD1Statement":
        return FakeD1Statement(self.db, self.sql, params)

    async def all(self) -> dict:
        return self.db.answer(self, "all")

    async def run(self) -> dict:
        return self.db.answer(self, "run")

    async def first(self, column: str | None = None) -> Any:
        result = self.db.answer(self, "first")
        rows = result["results"]
        if not rows:
            return None
        if column is None:
            return rows[0]
        if column not in rows[0]:
            raise Exception(f"D1_COLUMN_NOTFOUND: Column not found ({column})")
        return rows[0][column]


class FakeD1:
    """Answers every statement with the next scripted result (or raises a scripted error)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, str, tuple]] = []
        self.batches: list[list[FakeD1Statement]] = []

    def prepare(self, sql: str) -> FakeD1Statement:
        return FakeD1Statement(self, sql)

    def answer(self, statement: FakeD1Statement, method: str) -> dict:
        self.calls.append((method, statement.sql, statement.params))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def batch(self, statements: list[FakeD1Statement]) -> list[dict]:
        self.batches.append(statements)
        return [self.answer(s, "batch") for s in statements]


def d1_result(rows: list[dict], **meta: Any) -> dict:
    base = {"duration": 0.2, "changes": 0, "last_row_id": 0, "rows_read": len(rows), "rows_written": 0,
            "served_by": "miniflare.db", "size_after": 8192}
    return {"results": rows, "success": True, "meta": {**base, **meta}}


def test_d1_all_converts_rows_blobs_and_meta() -> None:
    fake = FakeD1(d1_result([{"id": "u_1", "n": 3, "data": [0, 255, 7], "note": None}], rows_read=1))
    result = run(D1Database(fake).prepare("SELECT * FROM t WHERE id = ?").bind("u_1").all())

    assert isinstance(result, QueryResult)
    assert result.results == [{"id": "u_1", "n": 3, "data": b"\x00\xff\x07", "note": None}]
    assert result.meta == {"duration": 0.2, "changes": 0, "last_row_id": 0, "rows_read": 1, "rows_written": 0}
    assert fake.calls == [("all", "SELECT * FROM t WHERE id = ?", ("u_1",))]


def test_d1_run_reports_changes_and_last_row_id() -> None:
    fake = FakeD1(d1_result([], changes=1, last_row_id=42, rows_written=1))
    result = run(D1Database(fake).prepare("INSERT INTO t (x) VALUES (?)").bind(b"\x01").run())
    assert (result.changes, result.last_row_id) == (1, 42)
    assert fake.calls[0][2] == (b"\x01",)  # bytes go in as bytes: the SDK makes them a Uint8Array


def test_d1_first_row_column_and_empty() -> None:
    fake = FakeD1(
        d1_result([{"id": "a", "blob": [104, 105]}]),
        d1_result([{"id": "a", "blob": [104, 105]}]),
        d1_result([{"id": "a", "n": 7}]),
        d1_result([]),
    )
    db = D1Database(fake)
    assert run(db.prepare("SELECT id, blob FROM t").first()) == {"id": "a", "blob": b"hi"}
    assert run(db.prepare("SELECT id, blob FROM t").first("blob")) == b"hi"
    assert run(db.prepare("SELECT id, n FROM t").first("n")) == 7
    assert run(db.prepare("SELECT id FROM t WHERE 0").first()) is None


def test_d1_bind_returns_a_new_statement() -> None:
    fake = FakeD1(d1_result([]), d1_result([]))
    db = D1Database(fake)
    unbound = db.prepare("SELECT ?")
    bound = unbound.bind(1)
    run(bound.all())
    run(unbound.all())
    assert [call[2] for call in fake.calls] == [(1,), ()]


def test_d1_batch_sends_bound_statements_in_order() -> None:
    fake = FakeD1(d1_result([], changes=1, last_row_id=1), d1_result([{"c": 1}]))
    db = D1Database(fake)
    results = run(db.batch([db.prepare("INSERT INTO t VALUES (?)").bind("x"), db.prepare("SELECT count(*) AS c FROM t")]))

    assert [r.changes for r in results] == [1, 0]
    assert results[1].results == [{"c": 1}]
    (sent,) = fake.batches
    assert [(s.sql, s.params) for s in sent] == [("INSERT INTO t VALUES (?)", ("x",)), ("SELECT count(*) AS c FROM t", ())]
    assert run(db.batch([])) == []


class FakeJsException(Exception):
    """Like pyodide's JsException: the JS error's text is in `.message`."""

    def __init__(self, message: str) -> None:
        super().__init__("Error: " + message)
        self.message = message


@pytest.mark.parametrize(
    "error, expected",
    [
        (FakeJsException("D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT"), ConstraintError),
        (Exception("D1_ERROR: FOREIGN KEY constraint failed: SQLITE_CONSTRAINT"), ConstraintError),
        (FakeJsException("D1_ERROR: no such table: nope: SQLITE_ERROR"), DatabaseError),
        (FakeJsException("D1_ERROR: not authorized: SQLITE_AUTH"), DatabaseError),
    ],
)
def test_d1_errors_are_mapped(error: Exception, expected: type[DatabaseError]) -> None:
    db = D1Database(FakeD1(error))
    with pytest.raises(DatabaseError) as raised:
        run(db.prepare("INSERT INTO users VALUES (?)").bind("x").run())
    assert type(raised.value) is expected
    assert "D1_ERROR" in str(raised.value) and not str(raised.value).startswith("Error: ")


def test_d1_errors_in_first_and_batch_are_mapped() -> None:
    db = D1Database(FakeD1(d1_result([{"id": "a"}])))
    with pytest.raises(DatabaseError, match="D1_COLUMN_NOTFOUND"):
        run(db.prepare("SELECT id FROM t").first("nope"))
    db = D1Database(FakeD1(FakeJsException("D1_ERROR: UNIQUE constraint failed: t.x: SQLITE_CONSTRAINT")))
    with pytest.raises(ConstraintError):
        run(db.batch([db.prepare("INSERT INTO t VALUES (1)")]))


# --------------------------------------------------------------------------------------------------
# R2
# --------------------------------------------------------------------------------------------------


class FakeDate:
    """A JS Date proxy: only `getTime()` (epoch milliseconds)."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def getTime(self) -> float:  # noqa: N802 (JS name)
        return self.ms


class FakeReader:
    def __init__(self, chunks: list[Any]) -> None:
        self.chunks = list(chunks)
        self.released = False

    async def read(self) -> dict:
        if not self.chunks:
            return {"done": True, "value": None}
        return {"done": False, "value": self.chunks.pop(0)}

    def releaseLock(self) -> None:  # noqa: N802
        self.released = True


class FakeStream:
    def __init__(self, chunks: list[Any]) -> None:
        self.reader = FakeReader(chunks)

    def getReader(self) -> FakeReader:  # noqa: N802
        return self.reader


UPLOADED = datetime(2026, 4, 21, 12, 0, 0, tzinfo=timezone.utc)


def r2_object(key: str, size: int = 3, *, body: list[Any] | None = None, uploaded: Any = None, **extra: Any):
    """An R2Object / R2ObjectBody proxy: attributes, as the runtime exposes them."""
    fields = {
        "key": key,
        "size": size,
        "etag": "e" + key,
        "httpEtag": '"e' + key + '"',
        "version": "v1",
        "uploaded": uploaded if uploaded is not None else FakeDate(UPLOADED.timestamp() * 1000),
        "customMetadata": {"sha256": "abc"},
        "httpMetadata": {"contentType": "application/octet-stream"},
        "storageClass": "Standard",
        **extra,
    }
    if body is not None:
        fields["body"] = FakeStream(body)
    return SimpleNamespace(**fields)


class FakeBucket:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.objects: dict[str, Any] = {}
        self.listing: dict = {}

    async def put(self, key: str, value: bytes, **options: Any):
        self.calls.append(("put", (key, value), options))
        return r2_object(key, len(value), customMetadata=options.get("customMetadata", {}),
                         httpMetadata=options.get("httpMetadata", {}))

    async def get(self, key: str, **options: Any):
        self.calls.append(("get", (key,), options))
        return self.objects.get(key)

    async def head(self, key: str):
        self.calls.append(("head", (key,), {}))
        return self.objects.get(key)

    async def delete(self, keys: Any) -> None:
        self.calls.append(("delete", (keys,), {}))

    async def list(self, **options: Any) -> dict:
        self.calls.append(("list", (), options))
        return self.listing


def test_r2_head_converts_the_object() -> None:
    bucket = FakeBucket()
    bucket.objects["u/blobs/a"] = r2_object("u/blobs/a", 3)
    info = run(R2BlobStore(bucket).head("u/blobs/a"))
    assert info == BlobInfo(
        key="u/blobs/a", size=3, etag="eu/blobs/a", uploaded=UPLOADED,
        custom_metadata={"sha256": "abc"}, content_type="application/octet-stream",
    )
    assert run(R2BlobStore(bucket).head("missing")) is None


@pytest.mark.parametrize(
    "uploaded",
    [
        FakeDate(UPLOADED.timestamp() * 1000),  # a JS Date proxy
        UPLOADED.replace(tzinfo=None),  # the SDK's conversion: a naive datetime, UTC on Workers
        UPLOADED.timestamp() * 1000,  # epoch milliseconds
        "2026-04-21T12:00:00.000Z",
    ],
)
def test_r2_uploaded_time_in_every_shape(uploaded: Any) -> None:
    bucket = FakeBucket()
    bucket.objects["k"] = r2_object("k", uploaded=uploaded, customMetadata=None, httpMetadata=None)
    info = run(R2BlobStore(bucket).head("k"))
    assert info.uploaded == UPLOADED and info.uploaded.tzinfo is not None
    assert info.custom_metadata == {} and info.content_type is None


def test_r2_get_streams_the_body_and_passes_the_range() -> None:
    bucket = FakeBucket()
    bucket.objects["k"] = r2_object("k", 6, body=[b"ab", memoryview(b"cd"), [101, 102]])
    store = R2BlobStore(bucket)

    body = run(store.get("k", range=ByteRange(offset=2, length=4)))
    assert body.range == ByteRange(2, 4) and body.info.key == "k"
    assert run(body.read()) == b"abcdef"
    assert bucket.objects["k"].body.reader.released
    assert bucket.calls[-1] == ("get", ("k",), {"range": {"offset": 2, "length": 4}})

    run(store.get("k", range=ByteRange(offset=5)))
    assert bucket.calls[-1][2] == {"range": {"offset": 5}}
    run(store.get("k"))
    assert bucket.calls[-1][2] == {}
    assert run(store.get("missing")) is None


def test_r2_body_stream_yields_chunks() -> None:
    bucket = FakeBucket()
    bucket.objects["k"] = r2_object("k", 4, body=[b"ab", b"", b"cd"])

    async def chunks() -> list[bytes]:
        body = await R2BlobStore(bucket).get("k")
        return [c async for c in body.stream()]

    assert run(chunks()) == [b"ab", b"cd"]


def test_r2_put_sends_metadata_and_buffers_streams() -> None:
    bucket = FakeBucket()
    store = R2BlobStore(bucket)
    info = run(store.put("k", b"abc", custom_metadata={"sha256": "x"}, content_type="text/plain"))
    assert bucket.calls[-1] == ("put", ("k", b"abc"), {"customMetadata": {"sha256": "x"}, "httpMetadata": {"contentType": "text/plain"}})
    assert (info.key, info.size, info.content_type, info.custom_metadata) == ("k", 3, "text/plain", {"sha256": "x"})

    async def chunks():
        yield b"ab"
        yield b"c"

    run(store.put("k2", chunks()))
    assert bucket.calls[-1] == ("put", ("k2", b"abc"), {})


def test_r2_list_converts_and_sends_only_set_options() -> None:
    bucket = FakeBucket()
    bucket.listing = {
        "objects": [r2_object("p/a", 1), r2_object("p/b", 2)],
        "truncated": True,
        "cursor": "c2",
        "delimitedPrefixes": ["p/dir/"],
    }
    store = R2BlobStore(bucket)
    listing = run(store.list(prefix="p/", delimiter="/", limit=2))
    assert [o.key for o in listing.objects] == ["p/a", "p/b"]
    assert [o.size for o in listing.objects] == [1, 2]
    assert listing.delimited_prefixes == ["p/dir/"]
    assert (listing.truncated, listing.cursor) == (True, "c2")
    assert bucket.calls[-1][2] == {"limit": 2, "include": ["httpMetadata", "customMetadata"], "prefix": "p/", "delimiter": "/"}

    bucket.listing = {"objects": [], "truncated": False, "delimitedPrefixes": []}
    listing = run(store.list(cursor="c2"))
    assert (listing.objects, listing.truncated, listing.cursor) == ([], False, None)
    assert bucket.calls[-1][2] == {"limit": 1000, "include": ["httpMetadata", "customMetadata"], "cursor": "c2"}


def test_r2_delete_one_or_many() -> None:
    bucket = FakeBucket()
    run(R2BlobStore(bucket).delete("a"))
    run(R2BlobStore(bucket).delete(("a", "b")))
    assert [c[1][0] for c in bucket.calls] == ["a", ["a", "b"]]


# --------------------------------------------------------------------------------------------------
# KV
# --------------------------------------------------------------------------------------------------


class FakeKV:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []
        self.values: dict[str, str] = {}
        self.listing: dict = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def put(self, key: str, value: str, **options: Any) -> None:
        self.calls.append(("put", (key, value), options))
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", (key,), {}))
        self.values.pop(key, None)

    async def list(self, **options: Any) -> dict:
        self.calls.append(("list", (), options))
        return self.listing


@pytest.mark.parametrize("ttl", [0, 1, 59])
def test_kv_ttl_under_60_seconds_is_refused(ttl: int) -> None:
    kv = FakeKV()
    with pytest.raises(ValueError, match="at least 60"):
        run(WorkersKV(kv).put("k", "v", expiration_ttl=ttl))
    assert kv.calls == []


def test_kv_put_get_delete() -> None:
    kv = FakeKV()
    store = WorkersKV(kv)
    run(store.put("k", "v", expiration_ttl=60))
    run(store.put("k2", "v2"))
    assert kv.calls == [("put", ("k", "v"), {"expirationTtl": 60}), ("put", ("k2", "v2"), {})]
    assert run(store.get("k")) == "v" and run(store.get("nope")) is None
    run(store.delete("k"))
    assert run(store.get("k")) is None


@pytest.mark.parametrize("key", ["", ".", "..", "k" * 513])
def test_kv_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError):
        run(WorkersKV(FakeKV()).put(key, "v"))


def test_kv_list_converts() -> None:
    kv = FakeKV()
    kv.listing = {"keys": [{"name": "a:1"}, {"name": "a:2", "expiration": 1_900_000_000}], "list_complete": False, "cursor": "cur"}
    listing = run(WorkersKV(kv).list(prefix="a:", limit=2))
    assert (listing.keys, listing.cursor, listing.list_complete) == (["a:1", "a:2"], "cur", False)
    assert kv.calls[-1][2] == {"limit": 2, "prefix": "a:"}

    kv.listing = {"keys": [], "list_complete": True, "cacheStatus": None}
    listing = run(WorkersKV(kv).list(cursor="cur"))
    assert (listing.keys, listing.cursor, listing.list_complete) == ([], None, True)
    assert kv.calls[-1][2] == {"limit": 1000, "cursor": "cur"}


# --------------------------------------------------------------------------------------------------
# Durable Objects
# --------------------------------------------------------------------------------------------------


class FakeFetchResponse:
    """The SDK's Response (pyodide FetchResponse): `status`, `headers` as a dict, async `bytes()`."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status, self._body, self.headers = status, body, headers

    async def bytes(self) -> bytes:
        return self._body


class FakeStub:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict]] = []

    async def fetch(self, url: str, **options: Any) -> FakeFetchResponse:
        self.requests.append((url, options))
        return FakeFetchResponse(201, b'{"ok":true}', {"Content-Type": "application/json"})


class FakeNamespace:
    def __init__(self) -> None:
        self.stubs: dict[str, FakeStub] = {}

    def idFromName(self, name: str) -> str:  # noqa: N802
        return "id:" + name

    def get(self, object_id: str) -> FakeStub:
        return self.stubs.setdefault(object_id, FakeStub())


def test_session_namespace_fetches_the_named_object() -> None:
    namespace = FakeNamespace()
    sessions = DurableObjectNamespace(namespace)

    response = run(sessions.get("cv_1").fetch(SessionRequest("post", "/messages?since=3", b"{}", {"X-User": "u_1"})))
    assert (response.status, response.body, dict(response.headers)) == (201, b'{"ok":true}', {"content-type": "application/json"})
    url, options = namespace.stubs["id:cv_1"].requests[0]
    assert url == "https://session.internal/messages?since=3"
    assert options == {"method": "POST", "headers": {"X-User": "u_1"}, "body": b"{}"}

    run(sessions.get("cv_1").fetch(SessionRequest("GET", "/events")))
    assert namespace.stubs["id:cv_1"].requests[1][1] == {"method": "GET"}  # no body on a GET


class FakeStorage:
    """`ctx.storage` through the SDK: Python values in and out; `list` returns the Map as a dict."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def get(self, key: str) -> Any:
        return self.data.get(key)

    async def put(self, key: str, value: Any) -> None:
        self.data[key] = value

    async def delete(self, key: str) -> bool:
        return self.data.pop(key, None) is not None

    async def list(self, **options: Any) -> dict:
        self.list_options = options
        prefix, start, end = options.get("prefix", ""), options.get("start", ""), options.get("end")
        found = [(k, v) for k, v in sorted(self.data.items(), reverse=options.get("reverse", False))
                 if k.startswith(prefix) and k >= start and (end is None or k < end)]
        return dict(found[: options.get("limit", len(found))])


def test_durable_object_storage_adapter() -> None:
    storage = DurableObjectStorage(FakeStorage())
    run(storage.put("msg:1", {"role": "user", "text": "hi"}))
    run(storage.put("msg:2", {"role": "assistant", "text": "hello"}))
    run(storage.put("meta", 3))
    # Only strings reach ctx.storage (no PyProxy of a dict or list for the runtime to clone).
    assert storage._storage.data == {"msg:1": '{"role":"user","text":"hi"}', "msg:2": '{"role":"assistant","text":"hello"}', "meta": "3"}
    assert run(storage.get("msg:1")) == {"role": "user", "text": "hi"}
    assert run(storage.get("meta")) == 3
    assert run(storage.get("missing")) is None
    assert run(storage.list(prefix="msg:"))["msg:2"] == {"role": "assistant", "text": "hello"}
    for key, bad in (("set", {1, 2}), ("nan", float("nan")), ("huge", "x" * 2_000_000), ("", 1)):
        with pytest.raises(ValueError):
            run(storage.put(key, bad))
    assert set(storage._storage.data) == {"msg:1", "msg:2", "meta"}  # nothing written
    storage._storage.data["old"] = {"cloned": [1]}  # stored before values were text
    assert run(storage.get("old")) == {"cloned": [1]}
    del storage._storage.data["old"]
    assert list(run(storage.list(prefix="msg:"))) == ["msg:1", "msg:2"]
    assert len(run(storage.list())) == 3
    assert list(run(storage.list(prefix="msg:", start="msg:2", limit=5))) == ["msg:2"]
    assert storage._storage.list_options == {"prefix": "msg:", "start": "msg:2", "limit": 5}
    # The last entries first: DO storage's own `reverse` (and `end`), passed through.
    assert list(run(storage.list(prefix="msg:", end="msg:2", reverse=True, limit=1))) == ["msg:1"]
    assert storage._storage.list_options == {"prefix": "msg:", "end": "msg:2", "reverse": True, "limit": 1}
    assert list(run(storage.list(prefix="msg:", reverse=True))) == ["msg:2", "msg:1"]
    assert run(storage.delete("meta")) is True and run(storage.delete("meta")) is False


class FakeSdkRequest:
    """The SDK's Request: `method` is an http.HTTPMethod, `headers` an HTTPMessage, `bytes()`."""

    def __init__(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.method = http.HTTPMethod[method]
        self.url = url
        self.headers = http.client.HTTPMessage()
        for name, value in headers.items():
            self.headers[name] = value
        self._body = body

    async def bytes(self) -> bytes:
        return self._body


def test_read_session_request_from_the_sdk_request() -> None:
    request = FakeSdkRequest("PUT", "https://session.internal/context?x=1", b"{}", {"Content-Type": "application/json"})
    assert run(read_session_request(request)) == SessionRequest(
        method="PUT", path="/context?x=1", body=b"{}", headers={"content-type": "application/json"}
    )


def test_object_name_prefers_the_name() -> None:
    class Id:
        def __init__(self, name):
            self.name = name

        def toString(self):  # noqa: N802
            return "ab" * 32

    assert object_name(SimpleNamespace(id=Id("cv_1"))) == "cv_1"
    assert object_name(SimpleNamespace(id=Id(None))) == "ab" * 32


# --------------------------------------------------------------------------------------------------
# Vault
# --------------------------------------------------------------------------------------------------

class CryptographyAesGcm:
    """The AES-GCM primitive WebCrypto provides on Workers, from `cryptography` for CPython."""

    def __init__(self) -> None:
        self.aesgcm = pytest.importorskip("cryptography.hazmat.primitives.ciphers.aead").AESGCM

    async def seal(self, key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self.aesgcm(key).encrypt(nonce, plaintext, aad)

    async def open(self, key: bytes, nonce: bytes, ciphertext_and_tag: bytes, aad: bytes) -> bytes:
        return self.aesgcm(key).decrypt(nonce, ciphertext_and_tag, aad)


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def cloudflare_vault(current: str, previous: str = "") -> WebCryptoVault:
    return WebCryptoVault(current, previous, cipher=CryptographyAesGcm())


def test_vault_round_trip_and_binding_to_owner_and_purpose() -> None:
    vault = cloudflare_vault(new_key())
    sealed = run(vault.encrypt("s3cret", owner="u_1", purpose="env:p_1:API_KEY"))
    assert sealed.startswith("v1.") and "s3cret" not in sealed
    assert run(vault.decrypt(sealed, owner="u_1", purpose="env:p_1:API_KEY")) == "s3cret"
    for owner, purpose in [("u_2", "env:p_1:API_KEY"), ("u_1", "env:p_2:API_KEY")]:
        with pytest.raises(VaultError):
            run(vault.decrypt(sealed, owner=owner, purpose=purpose))
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(VaultError):
        run(vault.decrypt(tampered, owner="u_1", purpose="env:p_1:API_KEY"))


def test_vault_nonce_comes_from_the_injected_source_per_call() -> None:
    nonces = iter([b"\x01" * 12, b"\x02" * 12])
    vault = WebCryptoVault(new_key(), cipher=CryptographyAesGcm(), random_bytes=lambda n: next(nonces))
    a = run(vault.encrypt("x", owner="o", purpose="p"))
    b = run(vault.encrypt("x", owner="o", purpose="p"))
    assert a != b


def test_vault_opens_what_the_local_vault_sealed_and_back() -> None:
    local_vault = pytest.importorskip("fastest.platform.local.vault")
    key = new_key()
    local = local_vault.LocalVault.from_base64(key)
    edge = cloudflare_vault(key)

    sealed_locally = run(local.encrypt("from local", owner="u_1", purpose="api_key"))
    assert run(edge.decrypt(sealed_locally, owner="u_1", purpose="api_key")) == "from local"
    sealed_on_edge = run(edge.encrypt("from edge", owner="u_1", purpose="api_key"))
    assert run(local.decrypt(sealed_on_edge, owner="u_1", purpose="api_key")) == "from edge"


def test_vault_rotation_and_unknown_keys() -> None:
    old, new = new_key(), new_key()
    sealed_with_old = run(cloudflare_vault(old).encrypt("v", owner="o", purpose="p"))
    rotated = cloudflare_vault(new, previous=f" {old} ,")
    assert run(rotated.decrypt(sealed_with_old, owner="o", purpose="p")) == "v"
    assert run(rotated.encrypt("v", owner="o", purpose="p")).split(".")[1] == rotated.key_ids[0]
    with pytest.raises(VaultError, match="unknown key"):
        run(cloudflare_vault(new_key()).decrypt(sealed_with_old, owner="o", purpose="p"))
    with pytest.raises(VaultError):
        run(rotated.decrypt("v1.nonsense", owner="o", purpose="p"))


@pytest.mark.parametrize("key", ["not base64!", base64.b64encode(b"short").decode()])
def test_vault_malformed_keys_fail_when_built(key: str) -> None:
    with pytest.raises(ValueError):
        cloudflare_vault(key)


def test_unconfigured_vault_refuses() -> None:
    with pytest.raises(VaultError, match="FASTEST_VAULT_KEY"):
        run(UnconfiguredVault().encrypt("x", owner="o", purpose="p"))


# --------------------------------------------------------------------------------------------------
# Rate limiting
# --------------------------------------------------------------------------------------------------


def test_sliding_window_limits_and_frees_slots() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(monotonic=lambda: now[0])
    decisions = [run(limiter.hit("u", limit=2, window_seconds=60)) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert [d.remaining for d in decisions] == [1, 0, 0]
    assert decisions[2].reset_seconds == 60
    now[0] += 60
    assert run(limiter.hit("u", limit=2, window_seconds=60)).allowed
    assert run(limiter.hit("other", limit=2, window_seconds=60)).remaining == 1


def test_sliding_window_is_bounded() -> None:
    limiter = SlidingWindowLimiter(max_keys=3, monotonic=lambda: 0.0)
    for i in range(10):
        run(limiter.hit(f"k{i}", limit=1, window_seconds=60))
    assert limiter.tracked_keys() == 3


def test_binding_caps_the_local_window() -> None:
    class FakeRateLimitBinding:
        def __init__(self, answers):
            self.answers, self.keys = list(answers), []

        async def limit(self, **options):
            self.keys.append(options["key"])
            return {"success": self.answers.pop(0)}

    binding = FakeRateLimitBinding([True, False])
    limiter = BindingCappedLimiter(binding, SlidingWindowLimiter(monotonic=lambda: 0.0))
    first = run(limiter.hit("default:u", limit=2, window_seconds=60))
    second = run(limiter.hit("default:u", limit=2, window_seconds=60))
    third = run(limiter.hit("default:u", limit=2, window_seconds=60))
    assert (first.allowed, second.allowed, third.allowed) == (True, False, False)
    assert second.remaining == 0 and second.reset_seconds == 60
    assert binding.keys == ["default:u", "default:u"]  # the third was refused locally first


# --------------------------------------------------------------------------------------------------
# Interop helpers and the platform
# --------------------------------------------------------------------------------------------------


class FakeProxy:
    """A JsProxy that converts with `to_py()` (a Map, a typed array...)."""

    def __init__(self, converted: Any) -> None:
        self.converted = converted

    def to_py(self) -> Any:
        return self.converted


def test_interop_accepts_converted_and_proxied_values() -> None:
    assert from_js(FakeProxy({"a": FakeProxy([1, 2])})) == {"a": [1, 2]}
    assert from_js(FakeProxy(memoryview(b"xy"))) == b"xy"
    opaque = SimpleNamespace(to_py=lambda: opaque_marker)
    opaque_marker = object()
    assert from_js(opaque) is opaque  # an instance that does not convert stays a proxy
    assert to_bytes([104, 105]) == b"hi" and to_bytes(SimpleNamespace(to_bytes=lambda: b"z")) == b"z"
    assert to_datetime(FakeDate(0)) == datetime(1970, 1, 1, tzinfo=timezone.utc)


class FakeEnv:
    """The Worker `env` as the SDK exposes it: bindings and vars as attributes."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


def worker_env(**overrides: Any) -> FakeEnv:
    values = dict(
        DB=FakeD1(), BLOBS=FakeBucket(), CACHE=FakeKV(), CONVERSATIONS=FakeNamespace(),
        FASTEST_ENVIRONMENT="production", FASTEST_BLOB_MAX_BYTES="1024", FASTEST_RATE_LIMIT_PER_MINUTE=30,
        FASTEST_VAULT_KEY=new_key(),
    )
    values.update(overrides)
    return FakeEnv(**values)


def test_platform_from_env_builds_settings_and_adapters() -> None:
    platform = build_platform(worker_env())
    assert isinstance(platform, Platform)
    assert platform.settings.environment == "production"
    assert platform.settings.blob_max_bytes == 1024 and platform.settings.rate_limit_per_minute == 30
    assert isinstance(platform.vault, WebCryptoVault)
    assert isinstance(platform.rate_limiter, SlidingWindowLimiter)
    assert "FASTEST_VAULT_KEY" not in read_vars(worker_env())  # secrets are not settings

    capped = build_platform(worker_env(RATE_LIMITER=object(), FASTEST_VAULT_KEY=None))
    assert isinstance(capped.rate_limiter, BindingCappedLimiter)
    assert isinstance(capped.vault, UnconfiguredVault)

    with pytest.raises(RuntimeError, match="`DB` binding"):
        build_platform(worker_env(DB=None))


def test_platform_cache_is_keyed_by_configuration_and_bounded() -> None:
    cache = PlatformCache(max_entries=2)
    key = new_key()
    first = platform_from_env(worker_env(FASTEST_VAULT_KEY=key), cache=cache)
    # A new env wrapper per request, same configuration → the same platform.
    assert platform_from_env(worker_env(FASTEST_VAULT_KEY=key), cache=cache) is first
    other = platform_from_env(worker_env(FASTEST_VAULT_KEY=key, FASTEST_ENVIRONMENT="staging"), cache=cache)
    assert other is not first
    platform_from_env(worker_env(FASTEST_VAULT_KEY=new_key()), cache=cache)
    assert len(cache) == 2
    assert platform_from_env(worker_env(), cache=None) is not first


class FakeAlarmStorage(FakeStorage):
    """`ctx.storage`'s alarm methods: one alarm, a number of ms or null."""

    alarm = None

    async def setAlarm(self, when):
        self.alarm = when

    async def getAlarm(self):
        return self.alarm

    async def deleteAlarm(self):
        self.alarm = None


def test_durable_object_storage_alarms() -> None:
    storage = DurableObjectStorage(FakeAlarmStorage())
    assert run(storage.get_alarm()) is None
    run(storage.set_alarm(1_700_000_000_000))
    run(storage.set_alarm(1_700_000_001_000))  # one per object: replaced
    assert run(storage.get_alarm()) == 1_700_000_001_000
    run(storage.delete_alarm())
    assert run(storage.get_alarm()) is None


def test_the_workers_opencode_engine_is_the_operators_server() -> None:
    import asyncio
    import base64

    env = worker_env(FASTEST_AI_PROVIDER="opencode", FASTEST_OPENCODE_URL="https://opencode.example.com/",
                     FASTEST_OPENCODE_PASSWORD="pw")
    platform = build_platform(env)
    server = asyncio.run(platform.opencode.server("cnv_1", {}, {}))
    assert server.url == "https://opencode.example.com" and server.directory is None and server.files is None
    assert server.headers == {"authorization": "Basic " + base64.b64encode(b"opencode:pw").decode()}
    assert server.running() and platform.model_factory(None).provider == "opencode"
    assert "FASTEST_OPENCODE_PASSWORD" in read_vars(env) and "pw" not in repr(platform.settings)
    assert build_platform(worker_env()).opencode is None
