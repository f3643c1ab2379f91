"""The two batch routes added for clients that move thousands of objects: `POST /v1/blobs/manifests/batch`
(many manifests in one request, checked like `PUT /manifests/{hash}`) and `POST /v1/blobs/download/batch`
(many blobs streamed back as frames). The CLI's use of them is in test_cli_batches.py."""

from __future__ import annotations

import json

import httpx
import pytest

from fastest.api.middleware import body_limit
from fastest.cli.frames import decode_frames
from fastest.config import Settings
from fastest.domain.ids import iso
from fastest.services import storage
from tests.api.test_blobs import (
    assert_nothing_stored,
    canonical,
    file_entry,
    frame,
    manifest,
    sha,
    stored_keys,
    tree_entry,
    upload,
)
from tests.api.test_manifests import edges, manifest_row
from tests.conftest import assert_problem, count_rows, make_caller, run

MIB = 1024 * 1024
BLOB_LIMIT = 3 * MIB  # more than a JSON body (1 MiB) and than one manifest (2 MB)
MANIFESTS_BATCH = "/v1/blobs/manifests/batch"
DOWNLOAD_BATCH = "/v1/blobs/download/batch"


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000, blob_max_bytes=BLOB_LIMIT, blob_batch_max_frames=5)


def post_manifests(client, caller, body: bytes | object):
    return client.post(MANIFESTS_BATCH, headers=caller.headers, content=body)


def download(client, caller, hashes: list) -> httpx.Response:
    return client.post(DOWNLOAD_BATCH, headers=caller.headers, json={"hashes": hashes})


def frames_of(response: httpx.Response) -> list[tuple[str, bytes]]:
    return list(decode_frames(response.content))


def manifest_keys(platform, caller) -> list[str]:
    return sorted(k for k in stored_keys(platform, f"{caller.user_id}/") if "/manifests/" in k)


# ==================================================================================================
# POST /v1/blobs/manifests/batch
# ==================================================================================================


def test_manifest_batch_stores_children_and_parents_in_order_with_their_edges(client, alice, platform):
    for data in (b"lib", b"readme"):
        upload(client, alice, data)
    leaf = manifest(file_entry("lib.py", b"lib"))
    middle = manifest(tree_entry("pkg", leaf), file_entry("README.md", b"readme"))
    root = manifest(tree_entry("src", middle), tree_entry("vendor", leaf))
    response = post_manifests(client, alice, frame(leaf) + frame(middle) + frame(root))
    assert response.status_code == 200, response.text
    assert response.json() == {"stored": [sha(leaf), sha(middle), sha(root)], "existing": [], "rejected": []}
    assert "retry-after" not in response.headers
    # Exactly what PUT /manifests/{hash} records: the row, the edges with multiplicities, the object.
    assert edges(platform, alice.user_id, sha(root)) == sorted([("tree", sha(leaf), 1), ("tree", sha(middle), 1)])
    assert edges(platform, alice.user_id, sha(middle)) == sorted([("blob", sha(b"readme"), 1), ("tree", sha(leaf), 1)])
    for body in (leaf, middle, root):
        row = manifest_row(platform, alice.user_id, sha(body))
        assert row["state"] == "live" and row["size"] == len(body)
        assert client.get(f"/v1/blobs/manifests/{sha(body)}", headers=alice.headers).content == body
    # The tree is complete: a snapshot's closure check accepts it.
    run(storage.verify_closure(platform, alice.user_id, sha(root)))
    # Sent again: every frame is already there (and touched), nothing is rewritten.
    again = post_manifests(client, alice, frame(leaf) + frame(root))
    assert again.json() == {"stored": [], "existing": [sha(leaf), sha(root)], "rejected": []}


def test_manifest_batch_rejects_bad_frames_and_keeps_the_good_ones(client, alice, platform):
    known = manifest(file_entry("known", b"k"))
    assert client.put(f"/v1/blobs/manifests/{sha(known)}", headers=alice.headers, content=known).status_code == 201
    good = manifest(file_entry("a", b"a"))
    other = manifest(file_entry("b", b"b"))
    not_canonical = json.dumps({"version": 1, "entries": []}, indent=1).encode()
    slash = {"name": "x/y", "type": "file", "hash": sha(b"x"), "size": 1, "mode": 420}
    invalid = canonical({"version": 1, "entries": [slash]})
    oversize = b"x" * (storage.MANIFEST_MAX_BYTES + 1)  # > 1 MiB, < the blob limit: the route allows the body
    body = (
        frame(good)
        + frame(b'{"entries":[],"version":1}', declared_hash=sha(b"something else"))
        + frame(not_canonical)
        + frame(oversize)
        + frame(known)
    )
    response = post_manifests(client, alice, body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "stored": [sha(good)],
        "existing": [sha(known)],
        "rejected": [
            {"hash": sha(b"something else"), "code": "hash_mismatch"},
            {"hash": sha(not_canonical), "code": "manifest_not_canonical"},
            {"hash": sha(oversize), "code": "payload_too_large"},
        ],
    }
    # The other validation codes of the single route come through too; a hash sent twice is listed once.
    single = client.put(f"/v1/blobs/manifests/{sha(invalid)}", headers=alice.headers, content=invalid)
    assert single.status_code == 422
    second = post_manifests(client, alice, frame(invalid) + frame(other) + frame(other))
    assert second.json() == {
        "stored": [sha(other)],
        "existing": [],
        "rejected": [{"hash": sha(invalid), "code": single.json()["error"]["code"]}],
    }
    # Nothing of a rejected frame is stored: no row, no edges, no object.
    assert manifest_keys(platform, alice) == sorted(
        f"{alice.user_id}/manifests/{sha(m)}" for m in (known, good, other)
    )
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 3
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifest_edges") == 3


def test_manifest_batch_with_broken_framing_is_422_and_keeps_the_frames_before(client, alice, platform):
    first = manifest(file_entry("first", b"1"))
    cut = manifest(file_entry("cut", b"2"))
    body = frame(first) + frame(cut)[:-3]
    problem = assert_problem(post_manifests(client, alice, body), 422, "invalid_batch")
    assert list(problem["error"]["fields"]) == ["frames.1"]
    assert problem["stored"] == [sha(first)] and problem["existing"] == [] and problem["rejected"] == []
    assert manifest_row(platform, alice.user_id, sha(first))["state"] == "live"
    assert edges(platform, alice.user_id, sha(first)) == [("blob", sha(b"1"), 1)]
    assert manifest_row(platform, alice.user_id, sha(cut)) is None
    bad_header = frame(first) + b"Z" * 64 + b"00000002" + b"{}"
    problem = assert_problem(post_manifests(client, alice, bad_header), 422, "invalid_batch")
    assert list(problem["error"]["fields"]) == ["frames.1"] and problem["existing"] == [sha(first)]


def test_manifest_batch_limits(client, alice, platform):
    six = b"".join(frame(manifest(file_entry(f"f{i}", b"x"))) for i in range(6))  # the settings allow 5
    problem = assert_problem(post_manifests(client, alice, six), 422, "invalid_batch")
    assert list(problem["error"]["fields"]) == ["frames.5"] and len(problem["stored"]) == 5
    # The whole body is bounded by the blob limit: declared, streamed, or announced by a frame header.
    big = b"x" * (BLOB_LIMIT // 2)
    too_much = frame(big + b"1") + frame(big + b"2")
    assert_problem(post_manifests(client, alice, too_much), 413, "payload_too_large")
    chunks = (too_much[i : i + 65536] for i in range(0, len(too_much), 65536))
    assert_problem(post_manifests(client, alice, chunks), 413, "payload_too_large")
    claim = sha(b"huge").encode() + b"%08x" % (BLOB_LIMIT + 1)
    assert_problem(post_manifests(client, alice, claim), 413, "payload_too_large")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 5


def test_manifest_batch_gets_the_blob_body_limit(client, alice, settings):
    assert body_limit(MANIFESTS_BATCH, settings) == settings.blob_max_bytes
    assert body_limit("/v1/blobs/manifests/" + "a" * 64, settings) == max(settings.max_body_bytes, 2_000_000)
    # 1.5 MB of manifests in one body (more than a JSON request may be) goes through.
    entries = [file_entry(f"file-{i:05d}.txt", str(i).encode()) for i in range(8000)]
    big = manifest(*entries)
    assert settings.max_body_bytes < len(big) < storage.MANIFEST_MAX_BYTES
    response = post_manifests(client, alice, frame(big))
    assert response.status_code == 200 and response.json()["stored"] == [sha(big)]


def test_manifest_batch_route_is_not_a_hash(client, alice):
    assert_problem(client.get(MANIFESTS_BATCH, headers=alice.headers), 405, "method_not_allowed")
    response = client.put(MANIFESTS_BATCH, headers=alice.headers, content=b"{}")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "POST"
    assert post_manifests(client, alice, b"").json() == {"stored": [], "existing": [], "rejected": []}


def test_manifest_batch_of_a_hash_being_collected_rejects_that_frame_with_retry_after(client, alice, platform, clock):
    doomed = manifest(file_entry("doomed", b"d"))
    client.put(f"/v1/blobs/manifests/{sha(doomed)}", headers=alice.headers, content=doomed)
    run(platform.db.prepare("UPDATE manifests SET state = 'deleting', deleting_since = ?").bind(iso(clock.now())).run())
    fine = manifest(file_entry("fine", b"f"))
    response = post_manifests(client, alice, frame(doomed) + frame(fine))
    assert response.json() == {
        "stored": [sha(fine)],
        "existing": [],
        "rejected": [{"hash": sha(doomed), "code": "manifest_being_collected"}],
    }
    assert response.headers["retry-after"] == str(storage.RETRY_AFTER_SECONDS)
    # Once the GC run that condemned it is certainly dead, a batch finishes its job and stores it.
    clock.advance(storage.GC_CLAIM_TIMEOUT_SECONDS + 1)
    assert post_manifests(client, alice, frame(doomed)).json()["stored"] == [sha(doomed)]
    assert manifest_row(platform, alice.user_id, sha(doomed))["state"] == "live"


def test_blob_batch_of_a_hash_being_collected_says_when_to_retry(client, alice, platform, clock):
    upload(client, alice, b"doomed")
    run(platform.db.prepare("UPDATE blob_refs SET state = 'deleting', deleting_since = ?").bind(iso(clock.now())).run())
    response = client.post("/v1/blobs/batch", headers=alice.headers, content=frame(b"doomed"))
    assert response.json()["rejected"] == [{"hash": sha(b"doomed"), "code": "blob_being_collected"}]
    assert response.headers["retry-after"] == str(storage.RETRY_AFTER_SECONDS)


def test_manifest_batch_is_per_user(client, alice, bob, platform):
    body = manifest(file_entry("a", b"a"))
    post_manifests(client, alice, frame(body))
    assert post_manifests(client, bob, frame(body)).json()["stored"] == [sha(body)]  # his own copy
    assert edges(platform, bob.user_id, sha(body)) == [("blob", sha(b"a"), 1)]
    reader = make_caller(platform, "reader@example.com", abilities=("projects:read",))
    assert_problem(client.post(MANIFESTS_BATCH, headers=reader.headers, content=frame(body)), 403, "forbidden")
    assert_problem(client.post(MANIFESTS_BATCH, content=frame(body)), 401, "unauthenticated")


# ==================================================================================================
# POST /v1/blobs/download/batch
# ==================================================================================================


def test_download_batch_streams_what_you_have_in_request_order(client, alice):
    blobs = [b"alpha", b"", bytes(range(256)) * 800]  # one empty, one bigger than a stream piece
    for data in blobs:
        upload(client, alice, data)
    missing = sha(b"never uploaded")
    asked = [sha(blobs[2]), missing, sha(blobs[0]), sha(blobs[1]), sha(blobs[0])]
    response = download(client, alice, asked)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-fastest-missing"] == missing
    assert response.headers["x-fastest-missing-count"] == "1"
    assert frames_of(response) == [(sha(blobs[2]), blobs[2]), (sha(blobs[0]), blobs[0]), (sha(b""), b"")]


def test_download_batch_headers_when_nothing_or_much_is_missing(client, alice):
    upload(client, alice, b"here")
    complete = download(client, alice, [sha(b"here")])
    assert complete.headers["x-fastest-missing-count"] == "0" and "x-fastest-missing" not in complete.headers
    assert frames_of(complete) == [(sha(b"here"), b"here")]
    absent = [sha(str(i).encode()) for i in range(51)]
    response = download(client, alice, [*absent, sha(b"here")])
    assert response.headers["x-fastest-missing-count"] == "51"
    assert response.headers["x-fastest-missing"] == "51"  # too many to list: their count
    assert frames_of(response) == [(sha(b"here"), b"here")]
    fifty = download(client, alice, absent[:50])
    assert fifty.headers["x-fastest-missing"].split(",") == absent[:50] and fifty.content == b""


def test_download_batch_validates_the_hash_list(client, alice):
    good = sha(b"x")
    assert_problem(download(client, alice, []), 422, "validation_failed")
    problem = assert_problem(download(client, alice, [good] * 1001), 422, "validation_failed")
    assert list(problem["error"]["fields"]) == ["hashes"]
    for bad in ("A" * 64, "xyz", good + "0", 7):
        problem = assert_problem(download(client, alice, [good, good, bad]), 422, "validation_failed")
        assert list(problem["error"]["fields"]) == ["hashes.2"]
    extra_field = client.post(DOWNLOAD_BATCH, headers=alice.headers, json={"hashes": [good], "x": 1})
    assert_problem(extra_field, 422, "validation_failed")
    assert download(client, alice, [good] * 1000).status_code == 200


def test_download_batch_refuses_an_answer_beyond_the_size_bound(client, alice, monkeypatch):
    monkeypatch.setattr(storage.downloads, "DOWNLOAD_BATCH_MAX_BYTES", 1000)  # the bound is then the blob limit
    first, second = b"1" * (2 * MIB), b"2" * (2 * MIB)
    upload(client, alice, first)
    upload(client, alice, second)
    problem = assert_problem(download(client, alice, [sha(first), sha(second)]), 422, "batch_too_large")
    assert problem["limit_bytes"] == BLOB_LIMIT and problem["total_bytes"] == 4 * MIB
    # One blob of the blob limit always fits; missing hashes weigh nothing.
    assert frames_of(download(client, alice, [sha(first), sha(b"absent")])) == [(sha(first), first)]


def test_bobs_batch_download_of_alices_hashes_returns_none_of_them(client, alice, bob):
    secrets = [b"alice 1", b"alice 2"]
    for data in secrets:
        upload(client, alice, data)
    response = download(client, bob, [sha(d) for d in secrets])
    assert response.status_code == 200 and response.content == b""
    assert response.headers["x-fastest-missing"] == ",".join(sha(d) for d in secrets)
    assert response.headers["x-fastest-missing-count"] == "2"


def test_download_batch_leaves_out_what_gc_is_deleting_or_has_deleted(client, alice, platform, clock):
    for data in (b"condemned", b"vanished", b"kept"):
        upload(client, alice, data)
    run(platform.db.prepare("UPDATE blob_refs SET state = 'deleting', deleting_since = ? WHERE hash = ?")
        .bind(iso(clock.now()), sha(b"condemned")).run())
    # Deleted from the store after the lookup would have found it: left out of the stream.
    run(platform.blobs.delete(f"{alice.user_id}/blobs/{sha(b'vanished')}"))
    response = download(client, alice, [sha(b"condemned"), sha(b"vanished"), sha(b"kept")])
    assert response.headers["x-fastest-missing"] == sha(b"condemned")
    assert frames_of(response) == [(sha(b"kept"), b"kept")]


def test_download_batch_needs_the_sync_ability(client, platform, alice):
    reader = make_caller(platform, "reader@example.com", abilities=("projects:read",))
    assert_problem(download(client, reader, [sha(b"x")]), 403, "forbidden")
    assert_problem(client.post(DOWNLOAD_BATCH, json={"hashes": [sha(b"x")]}), 401, "unauthenticated")
    wrong_method = client.get(DOWNLOAD_BATCH, headers=alice.headers)  # not taken as a blob hash
    assert_problem(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "POST"


def test_nothing_is_stored_for_a_manifest_batch_that_is_not_frames(client, alice, platform):
    problem = assert_problem(post_manifests(client, alice, b"not a frame"), 422, "invalid_batch")
    assert problem["stored"] == []
    assert_nothing_stored(platform, alice)


def test_manifest_batch_download_streams_manifests_in_order_and_per_user(client, alice, bob):
    from tests.api.trees import upload_tree

    root = upload_tree(client, alice, {"a/x.txt": b"x", "b/y.txt": b"y", "top.txt": b"t"})
    root_bytes = client.get(f"/v1/blobs/manifests/{root}", headers=alice.headers).content
    children = [entry["hash"] for entry in json.loads(root_bytes)["entries"] if entry["type"] == "tree"]
    absent = "e" * 64
    url = "/v1/blobs/manifests/download/batch"
    response = client.post(url, headers=alice.headers, json={"hashes": [root, absent, *children]})
    assert response.status_code == 200
    frames = list(decode_frames(response.content))
    assert [digest for digest, _ in frames] == [root, *children]
    assert frames[0][1] == root_bytes
    assert response.headers["x-fastest-missing"] == absent
    # Bob asks for Alice's manifests by hash: none of them is his.
    theirs = client.post(url, headers=bob.headers, json={"hashes": [root, *children]})
    assert list(decode_frames(theirs.content)) == [] and theirs.headers["x-fastest-missing-count"] == "3"
