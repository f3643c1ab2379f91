"""Manifests through HTTP: canonical-only uploads (each validation error), edges recorded atomically,
downloads, isolation; and the services the snapshot code calls (closure checks, reads, counts)."""

from __future__ import annotations

import json

import pytest

from fastest.config import Settings
from fastest.domain.ids import iso
from fastest.errors import ApiError, NotFound
from fastest.services import storage
from tests.api.test_blobs import (
    canonical,
    file_entry,
    manifest,
    put_manifest,
    sha,
    stored_keys,
    tree_entry,
    upload,
)
from tests.conftest import assert_problem, count_rows, run

H = "ab" * 32  # a well-formed hash


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


def edges(platform, user_id: str, parent: str) -> list[tuple[str, str, int]]:
    rows = run(
        platform.db.prepare(
            "SELECT child_type, child_hash, entries FROM manifest_edges WHERE user_id = ? AND parent_hash = ? "
            "ORDER BY child_type, child_hash"
        ).bind(user_id, parent).all()
    ).results
    return [(r["child_type"], r["child_hash"], r["entries"]) for r in rows]


def manifest_row(platform, user_id: str, manifest_hash: str):
    return run(
        platform.db.prepare("SELECT * FROM manifests WHERE user_id = ? AND hash = ?").bind(user_id, manifest_hash).first()
    )


def assert_no_manifests(platform) -> None:
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 0
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifest_edges") == 0
    assert [k for k in stored_keys(platform, "") if "/manifests/" in k] == []


# -- upload and download ----------------------------------------------------------------------------


def test_upload_records_the_manifest_and_its_edges(client, alice, platform):
    sub = manifest(file_entry("lib.py", b"lib"))
    root = manifest(
        file_entry("README.md", b"readme"),
        file_entry("copy.md", b"readme"),  # same content twice: one edge, two entries
        file_entry("run.sh", b"#!/bin/sh", mode=493),
        tree_entry("src", sub),
        tree_entry("vendor", sub),
    )
    response = put_manifest(client, alice, root)
    assert response.status_code == 201
    assert response.json() == {"hash": sha(root), "created": True}
    assert edges(platform, alice.user_id, sha(root)) == sorted(
        [("blob", sha(b"readme"), 2), ("blob", sha(b"#!/bin/sh"), 1), ("tree", sha(sub), 2)]
    )
    row = manifest_row(platform, alice.user_id, sha(root))
    assert row["size"] == len(root) and row["state"] == "live" and row["closure_verified_at"] is None
    # Children may come after their parent: the closure check reports what is still missing.
    assert put_manifest(client, alice, sub).status_code == 201


def test_upload_is_idempotent_and_touches(client, alice, platform, clock):
    body = manifest(file_entry("a", b"a"))
    put_manifest(client, alice, body)
    clock.advance(10)
    again = put_manifest(client, alice, body)
    assert again.status_code == 200 and again.json() == {"hash": sha(body), "created": False}
    assert manifest_row(platform, alice.user_id, sha(body))["touched_at"] == iso(clock.now())


def test_download_returns_the_bytes_with_immutable_headers(client, alice):
    body = manifest(file_entry("ünïcode.txt", b"x"))
    put_manifest(client, alice, body)
    response = client.get(f"/v1/blobs/manifests/{sha(body)}", headers=alice.headers)
    assert response.status_code == 200 and response.content == body
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["etag"] == f'"{sha(body)}"'
    not_modified = client.get(
        f"/v1/blobs/manifests/{sha(body)}", headers={**alice.headers, "If-None-Match": f'"{sha(body)}"'}
    )
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert_problem(client.get(f"/v1/blobs/manifests/{H}", headers=alice.headers), 404, "not_found")


def test_the_empty_tree_is_a_manifest(client, alice):
    body = manifest()
    assert body == b'{"entries":[],"version":1}'
    assert put_manifest(client, alice, body).status_code == 201


def test_hash_mismatch_stores_nothing(client, alice, platform):
    body = manifest(file_entry("a", b"a"))
    response = client.put(f"/v1/blobs/manifests/{H}", headers=alice.headers, content=body)
    assert_problem(response, 422, "hash_mismatch")
    assert_no_manifests(platform)


def test_oversize_manifest_is_413(client, alice, platform):
    body = b"x" * (storage.MANIFEST_MAX_BYTES + 1)
    assert_problem(client.put(f"/v1/blobs/manifests/{sha(body)}", headers=alice.headers, content=body), 413, "payload_too_large")
    assert_no_manifests(platform)


def _doc(*entries, version=1, **extra):
    return {"version": version, "entries": list(entries), **extra}


def _file(name="a", **overrides):
    entry = {"name": name, "type": "file", "hash": H, "size": 1, "mode": 420}
    entry.update(overrides)
    return entry


def _remove(entry, key):
    entry = dict(entry)
    del entry[key]
    return entry


INVALID = [
    # (case id, body bytes, error code, field)
    ("spaces", json.dumps(_doc(_file()), sort_keys=True).encode(), "manifest_not_canonical", "manifest"),
    ("unsorted keys", json.dumps(_doc(_file()), separators=(",", ":")).encode(), "manifest_not_canonical", "manifest"),
    ("escaped unicode", json.dumps(_doc(_file("é")), sort_keys=True, separators=(",", ":")).encode(), "manifest_not_canonical", "manifest"),
    ("trailing newline", canonical(_doc(_file())) + b"\n", "manifest_not_canonical", "manifest"),
    ("unsorted entries", canonical(_doc(_file("b"), _file("a"))), "manifest_not_canonical", "entries.1.name"),
    ("duplicate names", canonical(_doc(_file("a"), _file("a"))), "manifest_invalid", "entries.1.name"),
    ("slash in name", canonical(_doc(_file("a/b"))), "manifest_invalid", "entries.0.name"),
    ("name is /", canonical(_doc(_file("/"))), "manifest_invalid", "entries.0.name"),
    ("name is .", canonical(_doc(_file("."))), "manifest_invalid", "entries.0.name"),
    ("name is ..", canonical(_doc(_file(".."))), "manifest_invalid", "entries.0.name"),
    ("NUL in name", canonical(_doc(_file("a\x00b"))), "manifest_invalid", "entries.0.name"),
    ("empty name", canonical(_doc(_file(""))), "manifest_invalid", "entries.0.name"),
    ("name too long", canonical(_doc(_file("n" * 256))), "manifest_invalid", "entries.0.name"),
    ("unknown entry type", canonical(_doc(_file(type="link"))), "manifest_invalid", "entries.0.type"),
    ("extra entry field", canonical(_doc(_file(mtime=1))), "manifest_invalid", "entries.0"),
    ("missing entry field", canonical(_doc(_remove(_file(), "mode"))), "manifest_invalid", "entries.0"),
    ("file fields on a tree", canonical(_doc(_file(type="tree"))), "manifest_invalid", "entries.0"),
    ("extra top-level field", canonical(_doc(_file(), note="hi")), "manifest_invalid", "manifest"),
    ("bad mode", canonical(_doc(_file(mode=511))), "manifest_invalid", "entries.0.mode"),
    ("mode as string", canonical(_doc(_file(mode="420"))), "manifest_invalid", "entries.0.mode"),
    ("negative size", canonical(_doc(_file(size=-1))), "manifest_invalid", "entries.0.size"),
    ("fractional size", canonical(_doc(_file(size=1.5))), "manifest_invalid", "entries.0.size"),
    ("boolean size", canonical(_doc(_file(size=True))), "manifest_invalid", "entries.0.size"),
    ("upper-case hash", canonical(_doc(_file(hash=H.upper()))), "manifest_invalid", "entries.0.hash"),
    ("short hash", canonical(_doc(_file(hash="ab"))), "manifest_invalid", "entries.0.hash"),
    ("bad version", canonical(_doc(_file(), version=2)), "manifest_invalid", "version"),
    ("version as boolean", canonical(_doc(_file(), version=True)), "manifest_invalid", "version"),
    ("entries not a list", canonical({"version": 1, "entries": {}}), "manifest_invalid", "entries"),
    ("entry not an object", canonical({"version": 1, "entries": ["a"]}), "manifest_invalid", "entries.0"),
    ("not an object", b"[]", "manifest_invalid", "manifest"),
    ("not JSON", b"{nope", "manifest_invalid", "manifest"),
    ("not UTF-8", b'{"entries":[],"version":1}\xff', "manifest_invalid", "manifest"),
]


@pytest.mark.parametrize("body, code, field", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_each_invalid_manifest_is_refused_with_its_code_and_field(client, alice, platform, body, code, field):
    response = put_manifest(client, alice, body)
    problem = assert_problem(response, 422, code)
    assert list(problem["error"]["fields"]) == [field]
    assert_no_manifests(platform)


def test_a_manifest_being_collected_is_409(client, alice, platform, clock):
    body = manifest(file_entry("a", b"a"))
    put_manifest(client, alice, body)
    run(platform.db.prepare("UPDATE manifests SET state = 'deleting', deleting_since = ?").bind(iso(clock.now())).run())
    response = put_manifest(client, alice, body)
    assert_problem(response, 409, "manifest_being_collected")
    assert "retry-after" in response.headers
    assert client.post("/v1/blobs/manifests/exists", headers=alice.headers, json={"hashes": [sha(body)]}).json()[
        "missing"
    ] == [sha(body)]


def test_a_big_directory_records_its_edges_in_few_statements(client, alice, platform):
    # 6,000 files: more edges than one statement's JSON chunk, far more than 100 parameters.
    entries = [file_entry(f"f{i:05d}", str(i).encode()) for i in range(6000)]
    body = manifest(*entries)
    assert put_manifest(client, alice, body).status_code == 201
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifest_edges WHERE parent_hash = ?", sha(body)) == 6000


# -- exists and isolation ---------------------------------------------------------------------------


def test_manifests_exist(client, alice, platform, clock):
    body = manifest(file_entry("a", b"a"))
    put_manifest(client, alice, body)
    clock.advance(5)
    response = client.post("/v1/blobs/manifests/exists", headers=alice.headers, json={"hashes": [sha(body), H]})
    assert response.json() == {"missing": [H], "existing": [sha(body)], "checked": 2}
    assert manifest_row(platform, alice.user_id, sha(body))["touched_at"] == iso(clock.now())


def test_another_users_manifest_is_missing_for_them(client, alice, bob, platform):
    body = manifest(file_entry("a", b"a"))
    put_manifest(client, alice, body)
    assert_problem(client.get(f"/v1/blobs/manifests/{sha(body)}", headers=bob.headers), 404, "not_found")
    assert client.post("/v1/blobs/manifests/exists", headers=bob.headers, json={"hashes": [sha(body)]}).json()[
        "missing"
    ] == [sha(body)]
    with pytest.raises(NotFound):
        run(storage.read_manifest(platform, bob.user_id, sha(body)))
    assert not run(storage.manifest_exists(platform, bob.user_id, sha(body)))
    # Bob's own upload is his own row, with his own edges.
    assert put_manifest(client, bob, body).status_code == 201
    assert edges(platform, bob.user_id, sha(body)) == [("blob", sha(b"a"), 1)]


# -- services for snapshots, drift and docs ---------------------------------------------------------


def test_read_manifest_and_manifest_exists(client, alice, platform):
    body = manifest(file_entry("a", b"a"), tree_entry("d", manifest()))
    put_manifest(client, alice, body)
    parsed = run(storage.read_manifest(platform, alice.user_id, sha(body)))
    assert parsed.hash == sha(body) and [e.name for e in parsed.entries] == ["a", "d"]
    assert run(storage.manifest_exists(platform, alice.user_id, sha(body)))
    assert not run(storage.manifest_exists(platform, alice.user_id, H))
    with pytest.raises(NotFound):
        run(storage.read_manifest(platform, alice.user_id, H))


def test_file_count_counts_entries_through_the_tree(client, alice, platform):
    leaf = manifest(file_entry("x", b"same"), file_entry("y", b"same"))
    middle = manifest(tree_entry("one", leaf), tree_entry("two", leaf), file_entry("z", b"z"))
    root = manifest(tree_entry("m", middle), file_entry("top", b"t"), tree_entry("missing", manifest(file_entry("q", b"q"))))
    for body in (leaf, middle, root):
        put_manifest(client, alice, body)
    assert run(storage.file_count(platform, alice.user_id, sha(leaf))) == 2
    assert run(storage.file_count(platform, alice.user_id, sha(middle))) == 5
    assert run(storage.file_count(platform, alice.user_id, sha(root))) == 6  # the missing subtree counts as empty
    assert run(storage.file_count(platform, alice.user_id, None)) == 0


@pytest.fixture
def tree(client, alice):
    """A small complete tree: root → src/ (a.py) and README.md; blobs uploaded."""
    src = manifest(file_entry("a.py", b"print(1)"))
    root = manifest(file_entry("README.md", b"# hi"), tree_entry("src", src))
    for data in (b"print(1)", b"# hi"):
        upload(client, alice, data)
    for body in (src, root):
        put_manifest(client, alice, body)
    return {"root": root, "src": src}


def _closure_error(platform, user_id: str, root_hash: str) -> ApiError:
    with pytest.raises(ApiError) as caught:
        run(storage.verify_closure(platform, user_id, root_hash))
    return caught.value


def test_verify_closure_accepts_a_complete_tree_and_records_it(platform, alice, tree, clock):
    clock.advance(1)
    run(storage.verify_closure(platform, alice.user_id, sha(tree["root"])))
    for body in tree.values():
        assert manifest_row(platform, alice.user_id, sha(body))["closure_verified_at"] == iso(clock.now())
    assert manifest_row(platform, alice.user_id, sha(tree["root"]))["touched_at"] == iso(clock.now())


def test_verify_closure_reports_a_missing_root(platform, alice, bob, tree):
    error = _closure_error(platform, alice.user_id, H)
    assert (error.status, error.code) == (422, "manifest_missing")
    assert error.extra["missing_manifests"] == [H] and error.extra["missing_manifest_count"] == 1
    # Another user's tree does not exist for this one.
    error = _closure_error(platform, bob.user_id, sha(tree["root"]))
    assert error.code == "manifest_missing" and error.extra["missing_manifests"] == [sha(tree["root"])]


def test_verify_closure_reports_missing_manifests(client, alice, platform, tree):
    absent_one, absent_two = manifest(file_entry("x", b"x")), manifest(file_entry("y", b"y"))
    root = manifest(tree_entry("ok", tree["src"]), tree_entry("one", absent_one), tree_entry("two", absent_two))
    put_manifest(client, alice, root)
    error = _closure_error(platform, alice.user_id, sha(root))
    assert error.code == "manifest_missing"
    assert error.extra["missing_manifests"] == sorted([sha(absent_one), sha(absent_two)])
    assert error.extra["missing_manifest_count"] == 2
    assert manifest_row(platform, alice.user_id, sha(root))["closure_verified_at"] is None


def test_verify_closure_reports_missing_blobs_truncated_with_a_count(client, alice, platform, monkeypatch):
    files = [file_entry(f"f{i}", f"content {i}".encode()) for i in range(5)]
    sub = manifest(*files[3:])
    root = manifest(*files[:3], tree_entry("sub", sub))
    upload(client, alice, b"content 0")
    put_manifest(client, alice, sub)
    put_manifest(client, alice, root)
    monkeypatch.setattr(storage.closure, "MISSING_REPORT_LIMIT", 3)
    error = _closure_error(platform, alice.user_id, sha(root))
    assert (error.status, error.code) == (422, "blobs_missing")
    expected = sorted(sha(f"content {i}".encode()) for i in range(1, 5))
    assert error.extra["missing_blobs"] == expected[:3] and error.extra["missing_blob_count"] == 4
    for i in range(1, 5):
        upload(client, alice, f"content {i}".encode())
    run(storage.verify_closure(platform, alice.user_id, sha(root)))
    assert manifest_row(platform, alice.user_id, sha(sub))["closure_verified_at"] is not None


def test_verify_closure_treats_rows_being_collected_as_missing(client, alice, platform, tree):
    run(platform.db.prepare("UPDATE blob_refs SET state = 'deleting' WHERE hash = ?").bind(sha(b"print(1)")).run())
    error = _closure_error(platform, alice.user_id, sha(tree["root"]))
    assert error.code == "blobs_missing" and error.extra["missing_blobs"] == [sha(b"print(1)")]
    run(platform.db.prepare("UPDATE manifests SET state = 'deleting' WHERE hash = ?").bind(sha(tree["src"])).run())
    assert _closure_error(platform, alice.user_id, sha(tree["root"])).extra["missing_manifests"] == [sha(tree["src"])]


def test_verified_subtrees_are_not_walked_again(client, alice, platform, tree, monkeypatch):
    run(storage.verify_closure(platform, alice.user_id, sha(tree["root"])))
    # A new root that reuses the verified src/ and adds one file: only the new root is walked.
    upload(client, alice, b"new")
    root2 = manifest(file_entry("new.txt", b"new"), tree_entry("src", tree["src"]))
    put_manifest(client, alice, root2)
    walked = []
    original = storage.closure._find_missing

    async def spy(platform_, user_id, root_hash):
        found = await original(platform_, user_id, root_hash)
        rows = await platform_.db.prepare(
            storage.closure._UNVERIFIED_WALK
            + "SELECT hash FROM walk w WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.user_id = ?1 "
            "AND m.hash = w.hash AND m.closure_verified_at IS NULL)"
        ).bind(user_id, root_hash).all()
        walked.extend(r["hash"] for r in rows.results)
        return found

    monkeypatch.setattr(storage.closure, "_find_missing", spy)
    run(storage.verify_closure(platform, alice.user_id, sha(root2)))
    assert walked == [sha(root2)]
    # A verified root answers without walking at all.
    walked.clear()
    run(storage.verify_closure(platform, alice.user_id, sha(root2)))
    assert walked == []


@pytest.mark.parametrize("bad", ["A" * 64, "a" * 63, "g" * 64])
def test_invalid_hash_in_path_is_422(client, alice, platform, bad):
    body = assert_problem(client.put(f"/v1/blobs/manifests/{bad}", headers=alice.headers, content=b"{}"), 422, "validation_failed")
    assert list(body["error"]["fields"]) == ["path.hash"]
    assert_problem(client.get(f"/v1/blobs/manifests/{bad}", headers=alice.headers), 422, "validation_failed")
    assert_problem(client.get(f"/v1/blobs/manifests/{bad}"), 401, "unauthenticated")
    assert_no_manifests(platform)


def test_manifests_exists_only_takes_post(client, alice):
    for method in ("GET", "PUT"):
        response = client.request(method, "/v1/blobs/manifests/exists", headers=alice.headers)
        assert_problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == "POST"
