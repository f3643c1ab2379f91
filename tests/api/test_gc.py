"""Blob GC: what it keeps (snapshot and workspace roots, anything recent), what it collects, and
that it never loses a referenced object when it races uploads, closure checks, or another run."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import pytest

from fastest.config import Settings
from fastest.domain.ids import iso
from fastest.errors import ApiError
from fastest.services import storage
from tests.api.test_blobs import file_entry, manifest, put_manifest, sha, stored_keys, tree_entry, upload
from tests.conftest import assert_problem, count_rows, run

GRACE = Settings().gc_grace_seconds


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


class InterleavingBlobStore:
    """The platform's BlobStore, with a hook that runs just before each `delete` (the moment GC has
    condemned rows and is removing their objects) — to interleave another operation exactly there."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.before_delete: Callable[[], Awaitable[None]] | None = None
        self.deletes = 0

    async def delete(self, keys: Any) -> None:
        self.deletes += 1
        hook, self.before_delete = self.before_delete, None  # once
        if hook is not None:
            await hook()
        await self.inner.delete(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def interleave(platform):
    store = InterleavingBlobStore(platform.blobs)
    platform.blobs = store
    yield store
    platform.blobs = store.inner


def gc(client, caller, **body):
    response = client.post("/v1/blobs/gc", headers=caller.headers, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def push_tree(client, caller, prefix: str = "") -> dict[str, bytes]:
    """Upload a two-level tree: root → (README.md, src/ → (main.py, util.py))."""
    blobs = {name: f"{prefix}{name} contents".encode() for name in ("README.md", "main.py", "util.py")}
    for data in blobs.values():
        assert upload(client, caller, data).status_code == 201
    src = manifest(file_entry("main.py", blobs["main.py"]), file_entry("util.py", blobs["util.py"]))
    root = manifest(file_entry("README.md", blobs["README.md"]), tree_entry("src", src))
    for body in (src, root):
        assert put_manifest(client, caller, body).status_code == 201
    return {"root": root, "src": src, **blobs}


def live(platform, user_id: str, table: str, object_hash: str) -> bool:
    return bool(
        count_rows(
            platform,
            f"SELECT COUNT(*) AS n FROM {table} WHERE user_id = ? AND hash = ? AND state = 'live'",
            user_id,
            object_hash,
        )
    )


def assert_tree_intact(client, caller, platform, tree: dict[str, bytes]) -> None:
    for name, data in tree.items():
        table = "manifests" if name in ("root", "src") else "blob_refs"
        assert live(platform, caller.user_id, table, sha(data)), name
        url = f"/v1/blobs/manifests/{sha(data)}" if table == "manifests" else f"/v1/blobs/download/{sha(data)}"
        assert client.get(url, headers=caller.headers).content == data, name


def assert_tree_gone(client, caller, platform, tree: dict[str, bytes]) -> None:
    for name, data in tree.items():
        url = f"/v1/blobs/manifests/{sha(data)}" if name in ("root", "src") else f"/v1/blobs/download/{sha(data)}"
        assert client.get(url, headers=caller.headers).status_code == 404, name
    for table in ("blob_refs", "manifests"):
        assert count_rows(platform, f"SELECT COUNT(*) AS n FROM {table} WHERE user_id = ?", caller.user_id) == 0
    assert stored_keys(platform, f"{caller.user_id}/") == []
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifest_edges WHERE user_id = ?", caller.user_id) == 0


def make_project(client, caller) -> str:
    return client.post("/v1/projects", headers=caller.headers, json={"name": "p"}).json()["project"]["id"]


def insert_snapshot(platform, project_id: str, manifest_hash: str, clock) -> None:
    run(
        platform.db.prepare(
            "INSERT INTO snapshots (id, project_id, manifest_hash, created_at) VALUES (?, ?, ?, ?)"
        ).bind(f"snp_{manifest_hash[:26].upper()}", project_id, manifest_hash, iso(clock.now())).run()
    )


def insert_workspace(platform, project_id: str, manifest_hash: str, clock) -> None:
    now = iso(clock.now())
    run(
        platform.db.prepare(
            "INSERT INTO workspaces (id, project_id, name, current_manifest_hash, created_at, updated_at) "
            "VALUES (?, ?, 'w', ?, ?, ?)"
        ).bind(f"wsp_{manifest_hash[:26].upper()}", project_id, manifest_hash, now, now).run()
    )


# -- what GC keeps and collects ---------------------------------------------------------------------


def test_dry_run_is_the_default_and_changes_nothing(client, alice, platform, clock):
    tree = push_tree(client, alice)
    clock.advance(GRACE + 1)
    expected_bytes = sum(len(data) for data in tree.values())
    for response in (
        client.post("/v1/blobs/gc", headers=alice.headers, json={}),
        client.post("/v1/blobs/gc", headers=alice.headers),
    ):
        assert response.status_code == 200
        assert response.json() == {
            "success": True,
            "dryRun": True,
            "scannedBlobs": 3,
            "orphanedBlobs": 3,
            "freedBytes": expected_bytes,
            "freedMB": 0.0,
            "scannedManifests": 2,
            "orphanedManifests": 2,
        }
    assert_tree_intact(client, alice, platform, tree)


def test_unreachable_old_objects_are_collected(client, alice, platform, clock):
    tree = push_tree(client, alice)
    clock.advance(GRACE + 1)
    result = gc(client, alice, dryRun=False)
    assert result == {
        "success": True,
        "dryRun": False,
        "scannedBlobs": 3,
        "orphanedBlobs": 3,
        "freedBytes": sum(len(data) for data in tree.values()),
        "freedMB": 0.0,
        "scannedManifests": 2,
        "orphanedManifests": 2,
    }
    assert_tree_gone(client, alice, platform, tree)
    assert client.get("/v1/blobs/stats", headers=alice.headers).json()["total"] == {"bytes": 0, "mb": 0.0}
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0


def test_recent_objects_are_never_collected(client, alice, platform, clock):
    tree = push_tree(client, alice)
    clock.advance(GRACE - 1)
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0
    assert_tree_intact(client, alice, platform, tree)


def test_a_recent_manifest_keeps_its_old_children(client, alice, platform, clock):
    """A manifest uploaded now may use blobs uploaded (and untouched) long ago: the recent manifest
    is a GC root for the grace period, so its children are kept until a snapshot holds them."""
    old = b"old blob"
    upload(client, alice, old)
    clock.advance(GRACE + 1)
    body = manifest(file_entry("old.txt", old))
    put_manifest(client, alice, body)
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0
    assert live(platform, alice.user_id, "blob_refs", sha(old))


def test_a_snapshot_keeps_its_whole_tree_forever(client, alice, platform, clock):
    tree = push_tree(client, alice)
    project_id = make_project(client, alice)
    insert_snapshot(platform, project_id, sha(tree["root"]), clock)
    upload(client, alice, b"orphan")
    clock.advance(10 * GRACE)
    result = gc(client, alice, dryRun=False)
    assert (result["orphanedBlobs"], result["orphanedManifests"]) == (1, 0)
    assert_tree_intact(client, alice, platform, tree)
    # Deleting the project drops its snapshots (cascade): the tree becomes garbage.
    run(platform.db.prepare("DELETE FROM projects WHERE id = ?").bind(project_id).run())
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 3
    assert_tree_gone(client, alice, platform, tree)


def test_a_workspace_current_manifest_keeps_its_tree(client, alice, platform, clock):
    tree = push_tree(client, alice)
    insert_workspace(platform, make_project(client, alice), sha(tree["root"]), clock)
    clock.advance(10 * GRACE)
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0
    assert_tree_intact(client, alice, platform, tree)


def test_another_users_snapshot_does_not_keep_my_objects(client, alice, bob, platform, clock):
    mine = push_tree(client, alice)
    theirs = push_tree(client, bob)  # the same content, in bob's namespace
    insert_snapshot(platform, make_project(client, bob), sha(theirs["root"]), clock)
    clock.advance(GRACE + 1)
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 3
    assert_tree_gone(client, alice, platform, mine)
    assert_tree_intact(client, bob, platform, theirs)


def test_max_blobs_bounds_a_run_and_keeps_closures_honest(client, alice, platform, clock):
    tree = push_tree(client, alice)
    run(storage.verify_closure(platform, alice.user_id, sha(tree["root"])))
    clock.advance(GRACE + 1)
    result = gc(client, alice, dryRun=False, maxBlobs=1)
    assert (result["orphanedBlobs"], result["orphanedManifests"]) == (1, 1)
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs") == 2
    # Whatever survived, a closure check of the root cannot pass on a stale verification.
    with pytest.raises(ApiError) as caught:
        run(storage.verify_closure(platform, alice.user_id, sha(tree["root"])))
    assert caught.value.code in ("manifest_missing", "blobs_missing")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests WHERE closure_verified_at IS NOT NULL") == 0


@pytest.mark.parametrize(
    "body", [{"dryRun": "false"}, {"dryRun": 0}, {"maxBlobs": 1.5}, {"maxBlobs": "5"}, {"maxBlobs": 0}, {"dry_run": False}]
)
def test_gc_options_are_strict(client, alice, platform, clock, body):
    push_tree(client, alice)
    clock.advance(GRACE + 1)
    assert_problem(client.post("/v1/blobs/gc", headers=alice.headers, json=body), 422, "validation_failed")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs WHERE state = 'live'") == 3


def test_the_scheduled_job_collects_for_every_user(client, alice, bob, platform, clock):
    push_tree(client, alice, "a")
    push_tree(client, bob, "b")
    clock.advance(GRACE + 1)
    assert run(storage.collect_garbage_all_users(platform)) == 10
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs") == 0
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests") == 0
    assert run(storage.collect_garbage_all_users(platform)) == 0


# -- races ------------------------------------------------------------------------------------------


def test_a_touch_before_gc_keeps_the_blob(client, alice, platform, clock):
    """Mark and condemn are one atomic batch that re-checks age and reachability, so the only
    interleavings are "touched before" (kept) and "touched after" (sees it missing)."""
    data = b"about to be reused"
    upload(client, alice, data)
    clock.advance(GRACE + 1)
    assert client.post("/v1/blobs/exists", headers=alice.headers, json={"hashes": [sha(data)]}).json()["existing"] == [sha(data)]
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0
    assert live(platform, alice.user_id, "blob_refs", sha(data))


def test_gc_between_the_closure_checks_touch_and_its_walk_keeps_the_tree(
    client, alice, platform, clock, monkeypatch
):
    tree = push_tree(client, alice)
    upload(client, alice, b"unrelated orphan")
    clock.advance(GRACE + 1)
    original = storage.closure._find_missing
    collected: list[dict] = []

    async def gc_first(platform_, user_id, root_hash):
        collected.append(await storage.collect_garbage(platform_, user_id, dry_run=False))
        return await original(platform_, user_id, root_hash)

    monkeypatch.setattr(storage.closure, "_find_missing", gc_first)
    run(storage.verify_closure(platform, alice.user_id, sha(tree["root"])))
    assert collected[0]["orphanedBlobs"] == 1  # GC did run, and took only the unrelated orphan
    assert_tree_intact(client, alice, platform, tree)


def test_gc_condemning_a_tree_before_the_closure_check_makes_the_check_fail(client, alice, platform, clock, interleave):
    tree = push_tree(client, alice)
    clock.advance(GRACE + 1)
    outcomes: list[ApiError] = []

    async def check_closure() -> None:
        try:
            await storage.verify_closure(platform, alice.user_id, sha(tree["root"]))
        except ApiError as exc:
            outcomes.append(exc)

    interleave.before_delete = check_closure
    run(storage.collect_garbage(platform, alice.user_id, dry_run=False))
    # The snapshot would not have been created: the check saw the condemned root as missing.
    assert [(e.status, e.code) for e in outcomes] == [(422, "manifest_missing")]
    assert_tree_gone(client, alice, platform, tree)


def test_an_upload_racing_gc_waits_then_succeeds(client, alice, platform, clock, interleave):
    data = b"re-uploaded while being collected"
    upload(client, alice, data)
    clock.advance(GRACE + 1)
    during: list[Any] = []

    async def upload_during_deletion() -> None:
        during.append(upload(client, alice, data))
        during.append(client.post("/v1/blobs/exists", headers=alice.headers, json={"hashes": [sha(data)]}).json())

    interleave.before_delete = upload_during_deletion
    assert run(storage.collect_garbage(platform, alice.user_id, dry_run=False))["orphanedBlobs"] == 1
    assert_problem(during[0], 409, "blob_being_collected")
    assert during[1]["missing"] == [sha(data)]
    # Once GC is done, the retry stores it again, whole and live.
    assert upload(client, alice, data).status_code == 201
    assert live(platform, alice.user_id, "blob_refs", sha(data))
    assert client.get(f"/v1/blobs/download/{sha(data)}", headers=alice.headers).content == data


def test_two_runs_at_once_delete_only_their_own_claims(client, alice, platform, clock, interleave):
    tree = push_tree(client, alice)
    clock.advance(GRACE + 1)
    second: list[dict] = []

    async def second_run() -> None:
        second.append(await storage.collect_garbage(platform, alice.user_id, dry_run=False))

    interleave.before_delete = second_run
    first = run(storage.collect_garbage(platform, alice.user_id, dry_run=False))
    assert (first["orphanedBlobs"], first["orphanedManifests"]) == (3, 2)
    assert (second[0]["orphanedBlobs"], second[0]["orphanedManifests"]) == (0, 0)
    assert_tree_gone(client, alice, platform, tree)


def test_a_crashed_run_is_finished_by_a_later_one(client, alice, platform, clock, interleave):
    tree = push_tree(client, alice)
    clock.advance(GRACE + 1)

    async def crash() -> None:
        raise RuntimeError("worker killed mid-GC")

    interleave.before_delete = crash
    response = client.post("/v1/blobs/gc", headers=alice.headers, json={"dryRun": False})
    assert_problem(response, 500, "internal")
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs WHERE state = 'deleting'") == 3
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM manifests WHERE state = 'deleting'") == 2
    # Condemned objects are missing for clients, and uploads of them wait.
    blob = tree["README.md"]
    assert client.post("/v1/blobs/exists", headers=alice.headers, json={"hashes": [sha(blob)]}).json()["missing"] == [sha(blob)]
    assert_problem(upload(client, alice, blob), 409, "blob_being_collected")
    # A run right away leaves them to the (possibly still running) run that claimed them…
    assert gc(client, alice, dryRun=False)["orphanedBlobs"] == 0
    # …and finishes them once that run has certainly stopped.
    clock.advance(storage.GC_CLAIM_TIMEOUT_SECONDS + 1)
    result = gc(client, alice, dryRun=False)
    assert (result["orphanedBlobs"], result["orphanedManifests"]) == (3, 2)
    assert_tree_gone(client, alice, platform, tree)
