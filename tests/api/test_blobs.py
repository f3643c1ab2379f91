"""Blobs through HTTP on the local runtime: exists, presign, upload (streamed, verified, atomic),
batch frames, downloads (ETag, 304, ranges), isolation between users, stats."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest

from fastest.app import create_app
from fastest.config import Settings
from fastest.domain.ids import iso
from fastest.errors import NotFound, PayloadTooLarge
from fastest.services import storage
from tests.conftest import assert_problem, count_rows, make_caller, run

BLOB_LIMIT = 64 * 1024


@pytest.fixture
def settings() -> Settings:
    # Enough requests for one test, and a small blob limit so oversize cases stay cheap.
    return Settings(rate_limit_per_minute=100_000, blob_max_bytes=BLOB_LIMIT, blob_batch_max_frames=5)


# -- helpers shared with test_manifests.py and test_gc.py -------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client, caller, data: bytes):
    return client.put(f"/v1/blobs/upload/{sha(data)}", headers=caller.headers, content=data)


def frame(data: bytes, declared_hash: str | None = None) -> bytes:
    return (declared_hash or sha(data)).encode() + b"%08x" % len(data) + data


def canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def file_entry(name: str, data: bytes, mode: int = 420) -> dict[str, Any]:
    return {"name": name, "type": "file", "hash": sha(data), "size": len(data), "mode": mode}


def tree_entry(name: str, manifest: bytes) -> dict[str, Any]:
    return {"name": name, "type": "tree", "hash": sha(manifest)}


def manifest(*entries: dict[str, Any]) -> bytes:
    return canonical({"version": 1, "entries": sorted(entries, key=lambda e: e["name"].encode())})


def put_manifest(client, caller, body: bytes):
    return client.put(f"/v1/blobs/manifests/{sha(body)}", headers=caller.headers, content=body)


def stored_keys(platform, prefix: str) -> list[str]:
    return [info.key for info in run(platform.blobs.list(prefix=prefix)).objects]


def blob_state(platform, user_id: str, blob_hash: str) -> dict | None:
    return run(
        platform.db.prepare("SELECT * FROM blob_refs WHERE user_id = ? AND hash = ?").bind(user_id, blob_hash).first()
    )


def assert_nothing_stored(platform, caller) -> None:
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs WHERE user_id = ?", caller.user_id) == 0
    assert stored_keys(platform, f"{caller.user_id}/") == []


# -- upload -----------------------------------------------------------------------------------------


def test_upload_stores_verifies_and_is_idempotent(client, alice, platform, clock):
    data = b"hello, blobs"
    first = upload(client, alice, data)
    assert first.status_code == 201
    assert first.json() == {"hash": sha(data), "size": len(data), "created": True}
    info = run(platform.blobs.head(f"{alice.user_id}/blobs/{sha(data)}"))
    assert info is not None and info.size == len(data)
    assert blob_state(platform, alice.user_id, sha(data))["state"] == "live"

    clock.advance(60)
    again = upload(client, alice, data)
    assert again.status_code == 200
    assert again.json() == {"hash": sha(data), "size": len(data), "created": False}
    # Not rewritten, but touched (GC must keep what a client relies on).
    assert run(platform.blobs.head(f"{alice.user_id}/blobs/{sha(data)}")).uploaded == info.uploaded
    row = blob_state(platform, alice.user_id, sha(data))
    assert row["touched_at"] == iso(clock.now()) and row["uploaded_at"] < row["touched_at"]


def test_empty_blob_is_a_blob(client, alice):
    assert upload(client, alice, b"").json() == {"hash": sha(b""), "size": 0, "created": True}
    response = client.get(f"/v1/blobs/download/{sha(b'')}", headers=alice.headers)
    assert response.status_code == 200 and response.content == b""


def test_hash_mismatch_leaves_nothing_behind(client, alice, platform):
    response = client.put(f"/v1/blobs/upload/{sha(b'expected')}", headers=alice.headers, content=b"something else")
    body = assert_problem(response, 422, "hash_mismatch")
    assert body["actual_hash"] == sha(b"something else") and body["expected_hash"] == sha(b"expected")
    assert_nothing_stored(platform, alice)


@pytest.mark.parametrize("bad", ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "not-a-hash"])
def test_invalid_hash_in_path_is_422(client, alice, platform, bad):
    body = assert_problem(client.put(f"/v1/blobs/upload/{bad}", headers=alice.headers, content=b"x"), 422, "validation_failed")
    assert "path.hash" in body["error"]["fields"]
    assert_problem(client.get(f"/v1/blobs/download/{bad}", headers=alice.headers), 422, "validation_failed")
    assert_nothing_stored(platform, alice)


def test_oversize_upload_is_413_and_leaves_nothing(client, alice, platform):
    data = b"x" * (BLOB_LIMIT + 1)
    # Declared too large: refused before reading.
    assert_problem(upload(client, alice, data), 413, "payload_too_large")
    # Streamed without a length: refused as soon as the stream passes the limit.
    chunks = (data[i : i + 4096] for i in range(0, len(data), 4096))
    response = client.put(f"/v1/blobs/upload/{sha(data)}", headers=alice.headers, content=chunks)
    assert_problem(response, 413, "payload_too_large")
    assert_nothing_stored(platform, alice)


def test_exactly_the_limit_is_accepted(client, alice):
    assert upload(client, alice, b"y" * BLOB_LIMIT).status_code == 201


async def _drive_upload(platform, caller, blob_hash: str, messages: list[Any]) -> list[dict]:
    """Run the app on a raw ASGI PUT whose body arrives as `messages`; an Exception instance in the
    list is raised by `receive` at that point (the client's stream failing)."""
    app = create_app(lambda scope: platform)
    pending = list(messages)
    sent: list[dict] = []

    async def receive() -> dict:
        if not pending:
            await asyncio.sleep(3600)
        item = pending.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": f"/v1/blobs/upload/{blob_hash}",
        "raw_path": f"/v1/blobs/upload/{blob_hash}".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {caller.token}".encode()), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


def test_client_disconnect_midway_stores_nothing(platform, alice):
    data = b"a" * 10_000
    messages = [
        {"type": "http.request", "body": data[:4000], "more_body": True},
        {"type": "http.request", "body": data[4000:8000], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent = run(_drive_upload(platform, alice, sha(data), messages))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"]["code"] == "request_incomplete"
    assert_nothing_stored(platform, alice)
    assert list((platform.blobs.root / ".tmp").iterdir()) == []


def test_client_stream_raising_midway_stores_nothing(platform, alice):
    data = b"b" * 10_000
    messages = [{"type": "http.request", "body": data[:5000], "more_body": True}, RuntimeError("connection reset")]
    sent = run(_drive_upload(platform, alice, sha(data), messages))
    assert sent[0]["status"] == 500
    assert_nothing_stored(platform, alice)
    assert list((platform.blobs.root / ".tmp").iterdir()) == []


def test_upload_of_a_hash_being_collected_is_409_until_gc_is_done(client, alice, platform, clock):
    data = b"condemned"
    upload(client, alice, data)
    run(
        platform.db.prepare("UPDATE blob_refs SET state = 'deleting', deleting_since = ? WHERE hash = ?")
        .bind(iso(clock.now()), sha(data))
        .run()
    )
    response = upload(client, alice, data)
    assert_problem(response, 409, "blob_being_collected")
    assert response.headers["retry-after"] == str(storage.RETRY_AFTER_SECONDS)
    # exists says missing: the client will have to upload it again.
    assert client.post("/v1/blobs/exists", headers=alice.headers, json={"hashes": [sha(data)]}).json()["missing"] == [sha(data)]
    # A GC run that died leaves the row; after the claim timeout the upload finishes its job itself.
    clock.advance(storage.GC_CLAIM_TIMEOUT_SECONDS + 1)
    assert upload(client, alice, data).status_code == 201
    assert blob_state(platform, alice.user_id, sha(data))["state"] == "live"
    assert client.get(f"/v1/blobs/download/{sha(data)}", headers=alice.headers).content == data


# -- exists / presign -------------------------------------------------------------------------------


def test_exists_splits_missing_and_existing_and_touches(client, alice, platform, clock):
    stored = b"stored"
    upload(client, alice, stored)
    missing = sha(b"never uploaded")
    clock.advance(30)
    response = client.post(
        "/v1/blobs/exists", headers=alice.headers, json={"hashes": [missing, sha(stored), missing]}
    )
    assert response.status_code == 200
    assert response.json() == {"missing": [missing], "existing": [sha(stored)], "checked": 2}
    assert blob_state(platform, alice.user_id, sha(stored))["touched_at"] == iso(clock.now())


def test_exists_accepts_100_hashes_in_one_statement(client, alice):
    hashes = [sha(str(i).encode()) for i in range(100)]
    upload(client, alice, b"7")
    body = client.post("/v1/blobs/exists", headers=alice.headers, json={"hashes": hashes}).json()
    assert body["checked"] == 100 and body["existing"] == [sha(b"7")]


@pytest.mark.parametrize("route", ["/v1/blobs/exists", "/v1/blobs/manifests/exists", "/v1/blobs/presign-upload", "/v1/blobs/presign-download"])
def test_hash_lists_are_validated(client, alice, route):
    good = sha(b"x")
    assert_problem(client.post(route, headers=alice.headers, json={"hashes": []}), 422, "validation_failed")
    too_many = [sha(str(i).encode()) for i in range(101)]
    body = assert_problem(client.post(route, headers=alice.headers, json={"hashes": too_many}), 422, "validation_failed")
    assert "hashes" in body["error"]["fields"]
    for bad in ("A" * 64, "xyz", good + "0", 7):
        body = assert_problem(
            client.post(route, headers=alice.headers, json={"hashes": [good, bad]}), 422, "validation_failed"
        )
        assert list(body["error"]["fields"]) == ["hashes.1"]
    assert_problem(client.post(route, headers=alice.headers, json={"hashes": good}), 422, "validation_failed")
    assert_problem(client.post(route, headers=alice.headers, json={"hashes": [good], "more": 1}), 422, "validation_failed")
    assert_problem(client.post(route, headers=alice.headers, json={}), 422, "validation_failed")
    assert client.post(route, headers=alice.headers, json={"hashes": [good] * 100}).status_code == 200


def test_presign_returns_worker_paths_for_every_hash(client, alice):
    a, b = sha(b"a"), sha(b"b")
    upload(client, alice, b"a")
    up = client.post("/v1/blobs/presign-upload", headers=alice.headers, json={"hashes": [a, b]}).json()
    assert up == {"urls": {a: f"/v1/blobs/upload/{a}", b: f"/v1/blobs/upload/{b}"}}
    down = client.post("/v1/blobs/presign-download", headers=alice.headers, json={"hashes": [a, b]}).json()
    assert down == {"urls": {a: f"/v1/blobs/download/{a}", b: f"/v1/blobs/download/{b}"}}
    # The paths work as given: the stored one downloads, the missing one is a 404 when fetched.
    assert client.get(down["urls"][a], headers=alice.headers).content == b"a"
    assert_problem(client.get(down["urls"][b], headers=alice.headers), 404, "not_found")
    assert client.put(up["urls"][b], headers=alice.headers, content=b"b").status_code == 201


# -- batch ------------------------------------------------------------------------------------------


def test_batch_stores_good_frames_and_rejects_bad_ones(client, alice, platform):
    upload(client, alice, b"already")
    body = frame(b"one") + frame(b"liar", declared_hash=sha(b"truth")) + frame(b"already") + frame(b"two") + frame(b"one")
    response = client.post("/v1/blobs/batch", headers=alice.headers, content=body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "stored": [sha(b"one"), sha(b"two")],
        "existing": [sha(b"already")],
        "rejected": [{"hash": sha(b"truth"), "code": "hash_mismatch"}],
    }
    assert blob_state(platform, alice.user_id, sha(b"truth")) is None
    assert run(platform.blobs.head(f"{alice.user_id}/blobs/{sha(b'truth')}")) is None
    for data in (b"one", b"two"):
        assert client.get(f"/v1/blobs/download/{sha(data)}", headers=alice.headers).content == data
        assert blob_state(platform, alice.user_id, sha(data))["size"] == len(data)


def test_empty_batch_is_fine(client, alice):
    assert client.post("/v1/blobs/batch", headers=alice.headers, content=b"").json() == {
        "stored": [], "existing": [], "rejected": []
    }


def test_batch_length_may_be_upper_case_hex(client, alice):
    data = b"z" * 300
    body = sha(data).encode() + b"%08X" % len(data) + data
    assert client.post("/v1/blobs/batch", headers=alice.headers, content=body).json()["stored"] == [sha(data)]


@pytest.mark.parametrize(
    "tail, index",
    [
        (b"Z" * 64 + b"00000001" + b"z", 1),  # hash not lowercase hex
        (sha(b"q").upper().encode() + b"00000001" + b"q", 1),  # upper-case hash
        (sha(b"q").encode() + b"0000000g" + b"q", 1),  # length not hex
        (sha(b"q").encode() + b"0000", 1),  # header cut short
        (sha(b"qqqq").encode() + b"00000004" + b"qq", 1),  # body cut short
    ],
)
def test_malformed_framing_is_422_and_keeps_frames_before_it(client, alice, platform, tail, index):
    response = client.post("/v1/blobs/batch", headers=alice.headers, content=frame(b"first") + tail)
    body = assert_problem(response, 422, "invalid_batch")
    assert list(body["error"]["fields"]) == [f"frames.{index}"]
    assert body["stored"] == [sha(b"first")] and body["existing"] == [] and body["rejected"] == []
    assert blob_state(platform, alice.user_id, sha(b"first"))["state"] == "live"
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs") == 1
    assert stored_keys(platform, f"{alice.user_id}/") == [f"{alice.user_id}/blobs/{sha(b'first')}"]


def test_too_many_frames_is_422(client, alice, platform):
    frames = b"".join(frame(str(i).encode()) for i in range(6))  # the settings allow 5
    body = assert_problem(client.post("/v1/blobs/batch", headers=alice.headers, content=frames), 422, "invalid_batch")
    assert list(body["error"]["fields"]) == ["frames.5"]
    assert len(body["stored"]) == 5


def test_oversize_batch_is_413(client, alice, platform):
    big = b"x" * (BLOB_LIMIT // 2)
    frames = frame(big + b"1") + frame(big + b"2")
    assert_problem(client.post("/v1/blobs/batch", headers=alice.headers, content=frames), 413, "payload_too_large")
    chunks = (frames[i : i + 1000] for i in range(0, len(frames), 1000))
    assert_problem(client.post("/v1/blobs/batch", headers=alice.headers, content=chunks), 413, "payload_too_large")
    # A single frame announcing more than the limit is refused before its bytes are read.
    claim = sha(b"huge").encode() + b"%08x" % (BLOB_LIMIT + 1)
    assert_problem(client.post("/v1/blobs/batch", headers=alice.headers, content=claim), 413, "payload_too_large")


def test_batch_of_a_hash_being_collected_rejects_that_frame(client, alice, platform, clock):
    upload(client, alice, b"doomed")
    run(platform.db.prepare("UPDATE blob_refs SET state = 'deleting', deleting_since = ?").bind(iso(clock.now())).run())
    response = client.post("/v1/blobs/batch", headers=alice.headers, content=frame(b"doomed") + frame(b"fine"))
    assert response.json() == {
        "stored": [sha(b"fine")],
        "existing": [],
        "rejected": [{"hash": sha(b"doomed"), "code": "blob_being_collected"}],
    }


# -- download ---------------------------------------------------------------------------------------


def test_download_headers(client, alice):
    data = bytes(range(256)) * 4
    upload(client, alice, data)
    response = client.get(f"/v1/blobs/download/{sha(data)}", headers=alice.headers)
    assert response.status_code == 200 and response.content == data
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["etag"] == f'"{sha(data)}"'
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(data))


@pytest.mark.parametrize(
    "if_none_match, status",
    [("{etag}", 304), ("W/{etag}", 304), ('"other", {etag}', 304), ("*", 304), ('"other"', 200)],
)
def test_if_none_match(client, alice, if_none_match, status):
    data = b"cached"
    upload(client, alice, data)
    etag = f'"{sha(data)}"'
    response = client.get(
        f"/v1/blobs/download/{sha(data)}", headers={**alice.headers, "If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status_code == status
    assert response.headers["etag"] == etag
    assert response.content == (b"" if status == 304 else data)


def test_if_none_match_on_a_missing_blob_is_404(client, alice):
    missing = sha(b"nope")
    assert_problem(client.get(f"/v1/blobs/download/{missing}", headers={**alice.headers, "If-None-Match": "*"}), 404, "not_found")


@pytest.mark.parametrize(
    "spec, first, last",
    [("bytes=0-3", 0, 3), ("bytes=5-", 5, 9), ("bytes=-3", 7, 9), ("bytes=2-100", 2, 9), ("bytes=-50", 0, 9), ("bytes=9-9", 9, 9)],
)
def test_ranges(client, alice, spec, first, last):
    data = b"0123456789"
    upload(client, alice, data)
    response = client.get(f"/v1/blobs/download/{sha(data)}", headers={**alice.headers, "Range": spec})
    assert response.status_code == 206
    assert response.content == data[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/10"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.headers["etag"] == f'"{sha(data)}"'


@pytest.mark.parametrize("spec", ["bytes=10-", "bytes=10-20", "bytes=-0"])
def test_unsatisfiable_range_is_416(client, alice, spec):
    data = b"0123456789"
    upload(client, alice, data)
    response = client.get(f"/v1/blobs/download/{sha(data)}", headers={**alice.headers, "Range": spec})
    assert_problem(response, 416, "range_not_satisfiable")
    assert response.headers["content-range"] == "bytes */10"


@pytest.mark.parametrize("spec", ["bytes=5-2", "bytes=0-1,4-5", "items=0-1", "bytes=-", "bytes=a-b"])
def test_ranges_we_ignore_send_the_whole_blob(client, alice, spec):
    data = b"0123456789"
    upload(client, alice, data)
    response = client.get(f"/v1/blobs/download/{sha(data)}", headers={**alice.headers, "Range": spec})
    assert response.status_code == 200 and response.content == data


def test_if_none_match_wins_over_range(client, alice):
    data = b"0123456789"
    upload(client, alice, data)
    headers = {**alice.headers, "Range": "bytes=0-1", "If-None-Match": f'"{sha(data)}"'}
    assert client.get(f"/v1/blobs/download/{sha(data)}", headers=headers).status_code == 304


# -- isolation, auth, stats -------------------------------------------------------------------------


def test_another_users_blob_is_missing_for_them(client, alice, bob, platform):
    data = b"alice's secret"
    upload(client, alice, data)
    h = sha(data)
    assert_problem(client.get(f"/v1/blobs/download/{h}", headers=bob.headers), 404, "not_found")
    assert_problem(client.get(f"/v1/blobs/download/{h}", headers={**bob.headers, "If-None-Match": "*"}), 404, "not_found")
    assert_problem(client.get(f"/v1/blobs/download/{h}", headers={**bob.headers, "Range": "bytes=0-1"}), 404, "not_found")
    assert client.post("/v1/blobs/exists", headers=bob.headers, json={"hashes": [h]}).json()["missing"] == [h]
    assert client.get("/v1/blobs/stats", headers=bob.headers).json()["blobs"]["count"] == 0
    # Bob uploading the same bytes gets his own copy (201), under his own key.
    assert upload(client, bob, data).status_code == 201
    assert stored_keys(platform, f"{bob.user_id}/") == [f"{bob.user_id}/blobs/{h}"]
    frames = client.post("/v1/blobs/batch", headers=bob.headers, content=frame(data)).json()
    assert frames["existing"] == [h]


def test_blob_routes_need_a_token_and_the_sync_ability(client, platform):
    h = sha(b"x")
    assert_problem(client.post("/v1/blobs/exists", json={"hashes": [h]}), 401, "unauthenticated")
    assert_problem(client.put(f"/v1/blobs/upload/{h}", content=b"x"), 401, "unauthenticated")
    reader = make_caller(platform, "reader@example.com", abilities=("projects:read",))
    for method, url, kwargs in [
        ("POST", "/v1/blobs/exists", {"json": {"hashes": [h]}}),
        ("PUT", f"/v1/blobs/upload/{h}", {"content": b"x"}),
        ("GET", f"/v1/blobs/download/{h}", {}),
        ("POST", "/v1/blobs/batch", {"content": frame(b"x")}),
        ("GET", "/v1/blobs/stats", {}),
        ("POST", "/v1/blobs/gc", {"json": {}}),
    ]:
        assert_problem(client.request(method, url, headers=reader.headers, **kwargs), 403, "forbidden")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs") == 0


def test_stats_count_live_blobs_and_manifests(client, alice, platform):
    assert client.get("/v1/blobs/stats", headers=alice.headers).json() == {
        "blobs": {"count": 0, "bytes": 0, "mb": 0.0},
        "manifests": {"count": 0, "bytes": 0, "mb": 0.0},
        "total": {"bytes": 0, "mb": 0.0},
    }
    upload(client, alice, b"a" * 60_000)
    upload(client, alice, b"bb")
    tree = manifest(file_entry("a", b"a" * 60_000), file_entry("b", b"bb"))
    put_manifest(client, alice, tree)
    # A row GC is deleting no longer counts.
    upload(client, alice, b"gone")
    run(platform.db.prepare("UPDATE blob_refs SET state = 'deleting' WHERE hash = ?").bind(sha(b"gone")).run())
    blob_bytes = 60_002
    assert client.get("/v1/blobs/stats", headers=alice.headers).json() == {
        "blobs": {"count": 2, "bytes": blob_bytes, "mb": round(blob_bytes / 2**20, 2)},
        "manifests": {"count": 1, "bytes": len(tree), "mb": 0.0},
        "total": {"bytes": blob_bytes + len(tree), "mb": round((blob_bytes + len(tree)) / 2**20, 2)},
    }


def test_read_blob_for_other_services(client, alice, bob, platform):
    data = b"# Docs\n"
    upload(client, alice, data)
    assert run(storage.read_blob(platform, alice.user_id, sha(data))) == data
    with pytest.raises(NotFound):
        run(storage.read_blob(platform, bob.user_id, sha(data)))
    with pytest.raises(PayloadTooLarge):
        run(storage.read_blob(platform, alice.user_id, sha(data), max_bytes=3))
    with pytest.raises(NotFound):
        run(storage.read_blob(platform, alice.user_id, "../etc"))


def test_a_batch_of_the_maximum_frame_count_is_stored(client, alice, platform):
    # 5 frames (the configured maximum here): one existence check and one upsert for all of them.
    frames = b"".join(frame(f"blob {i}".encode()) for i in range(5))
    assert len(client.post("/v1/blobs/batch", headers=alice.headers, content=frames).json()["stored"]) == 5
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs WHERE user_id = ?", alice.user_id) == 5


def test_touched_at_of_existing_is_refreshed_by_batch(client, alice, platform, clock):
    upload(client, alice, b"old")
    clock.advance(3600)
    client.post("/v1/blobs/batch", headers=alice.headers, content=frame(b"old"))
    assert blob_state(platform, alice.user_id, sha(b"old"))["touched_at"] == iso(clock.now())
    assert iso(clock.now() - timedelta(seconds=3600)) == blob_state(platform, alice.user_id, sha(b"old"))["uploaded_at"]
