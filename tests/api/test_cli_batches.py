"""The CLI's push and checkout against the real app (in process): manifests and blobs travel through
the batch routes, frames refused while GC deletes their hash are sent again, and every downloaded
blob is verified."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import httpx
import pytest

from fastest.cli import checkout, push
from fastest.cli.checkout import CheckoutError, list_files, materialise
from fastest.cli.client import ApiClient, ApiError
from fastest.cli.frames import PendingBlob, decode_frames
from fastest.cli.push import PushReport, upload_blobs, upload_manifests
from fastest.config import Settings
from fastest.domain.tree import build_manifests, memory_loader
from fastest.services import storage
from tests.api.app_transport import AppTransport
from tests.api.test_blobs import frame, sha, upload
from tests.conftest import run

MANIFESTS_BATCH = "/v1/blobs/manifests/batch"
DOWNLOAD_BATCH = "/v1/blobs/download/batch"


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_limit_per_minute=100_000)


class Recorder(httpx.BaseTransport):
    """Passes requests to the app, records them, and lets a test answer some of them itself."""

    def __init__(self, inner: httpx.BaseTransport,
                 override: Callable[[httpx.Request], httpx.Response | None] | None = None) -> None:
        self.inner = inner
        self.override = override
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        answer = self.override(request) if self.override else None
        return answer if answer is not None else self.inner.handle_request(request)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.seen if m == method and p.startswith(prefix))


def api_for(client, caller, override=None) -> tuple[ApiClient, Recorder, list[float]]:
    recorder = Recorder(AppTransport(client), override)
    slept: list[float] = []
    return ApiClient(str(client.base_url).rstrip("/"), caller.token, transport=recorder, sleep=slept.append), recorder, slept


def write_tree(root: Path, files: int = 60, dirs: int = 12) -> list[tuple[str, str, int, int]]:
    records = []
    for i in range(files):
        path = f"d{i % dirs:02d}/sub{i // dirs % 3}/f{i:03d}.txt"
        data = f"file {i}\n".encode() * (i + 1)
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
        records.append((path, sha(data), len(data), 493 if i % 7 == 0 else 420))
    return records


def push_tree(api: ApiClient, root: Path, records) -> tuple[PushReport, dict[str, bytes], str]:
    tree = build_manifests(records)
    report = PushReport()
    pending = [PendingBlob(h, size, path) for path, h, size, _ in {r[1]: r for r in records}.values()]
    upload_blobs(api, root, pending, report, progress=False)
    upload_manifests(api, tree.manifests, set(tree.manifests), report, progress=False)
    return report, tree.manifests, tree.root


def checked_out(staging: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(staging).as_posix(): (p.read_bytes(), p.stat().st_mode & 0o777)
            for p in staging.rglob("*") if p.is_file()}


def expected(root: Path, records) -> dict[str, tuple[bytes, int]]:
    return {path: ((root / path).read_bytes(), 0o755 if mode == 493 else 0o644) for path, _, _, mode in records}


def test_cli_push_and_checkout_use_the_batch_routes(client, alice, platform, tmp_path, monkeypatch):
    monkeypatch.setattr(push, "MANIFEST_BATCH_MAX_FRAMES", 10)
    records = write_tree(tmp_path / "src")
    api, recorder, _ = api_for(client, alice)
    report, manifests, root = push_tree(api, tmp_path / "src", records)
    assert report.manifests_uploaded == len(manifests) == 1 + 12 + 36
    assert report.blobs_uploaded == 60
    # 49 manifests in batches of at most 10 frames: 5 requests, no PUT.
    assert recorder.count("PUT", "/v1/blobs/manifests/") == 0
    assert recorder.count("POST", MANIFESTS_BATCH) == 5
    run(storage.verify_closure(platform, alice.user_id, root))

    staging = tmp_path / "out"
    files = list_files(root, memory_loader(manifests))
    assert materialise(api, staging, files, progress=False) == 60
    assert checked_out(staging) == expected(tmp_path / "src", records)
    assert recorder.count("POST", DOWNLOAD_BATCH) == 1 and recorder.count("GET", "/v1/blobs/download/") == 0


def test_cli_push_retries_frames_gc_is_deleting(client, alice, platform, tmp_path):
    records = write_tree(tmp_path / "src", files=3, dirs=1)
    busy = {"blobs": 2, "manifests": 1}
    sent: list[list[str]] = []

    def collecting(request: httpx.Request) -> httpx.Response | None:
        kind = {"/v1/blobs/batch": "blobs", MANIFESTS_BATCH: "manifests"}.get(request.url.path)
        if kind is None:
            return None
        sent.append([h for h, _ in decode_frames(request.content)])
        answer = recorder.inner.handle_request(request)
        answer.read()
        if not busy[kind]:
            return answer
        busy[kind] -= 1
        # The server stored them, but says the first frame's hash was being collected: send it again.
        body = answer.json()
        first = sent[-1][0]
        body["stored" if first in body["stored"] else "existing"].remove(first)
        body["rejected"].append({"hash": first, "code": f"{kind[:-1]}_being_collected"})
        headers = {"retry-after": "2"} if kind == "blobs" else {}
        return httpx.Response(200, json=body, headers=headers)

    api, recorder, slept = api_for(client, alice, collecting)
    report, manifests, root = push_tree(api, tmp_path / "src", records)
    assert report.blobs_uploaded == 3 and report.manifests_uploaded == len(manifests)
    # Blobs: refused twice, sent three times, waiting as told; manifests: once more after the default wait.
    assert slept == [2.0, 2.0, 5.0]
    assert [len(hashes) for hashes in sent] == [3, 1, 1, len(manifests), 1]
    run(storage.verify_closure(platform, alice.user_id, root))


def test_cli_push_gives_up_on_a_hash_that_stays_busy(client, alice, tmp_path):
    records = write_tree(tmp_path / "src", files=2, dirs=1)

    def always_busy(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/v1/blobs/batch":
            hashes = [h for h, _ in decode_frames(request.content)]
            return httpx.Response(200, json={"stored": [], "existing": [], "rejected": [
                {"hash": h, "code": "blob_being_collected"} for h in hashes]})
        return None

    api, recorder, slept = api_for(client, alice, always_busy)
    with pytest.raises(push.PushError, match="still deleting"):
        push_tree(api, tmp_path / "src", records)
    assert len(slept) == push.COLLECTED_RETRIES
    assert recorder.count("POST", "/v1/blobs/batch") == 1 + push.COLLECTED_RETRIES


def test_cli_push_of_a_file_changed_after_it_was_hashed_says_so(client, alice, tmp_path):
    """The push reads each file once more to send it, without hashing it again: the server checks
    every frame against its hash, refuses the changed one, and the push names the file."""
    records = write_tree(tmp_path / "src", files=3, dirs=1)
    changed_path = records[1][0]
    (tmp_path / "src" / changed_path).write_bytes(b"edited after the scan\n")
    api, recorder, _ = api_for(client, alice)
    with pytest.raises(push.PushError, match=f"{changed_path} changed while pushing"):
        push_tree(api, tmp_path / "src", records)
    stats = api.get_json("/v1/blobs/stats")
    assert stats["blobs"]["count"] == 2  # the two unchanged files; nothing under the changed one's hash
    assert recorder.count("POST", "/v1/blobs/batch") == 1


def test_cli_checkout_splits_downloads_and_resumes_a_cut_stream(client, alice, tmp_path, monkeypatch):
    monkeypatch.setattr(checkout, "DOWNLOAD_BATCH_HASHES", 7)
    monkeypatch.setattr(checkout, "DOWNLOAD_THREADS", 1)  # deterministic order of requests
    records = write_tree(tmp_path / "src", files=30, dirs=3)
    asked: list[list[str]] = []
    cut = {"left": 1}

    class CutStream(httpx.SyncByteStream):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def __iter__(self):
            yield self.data
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")

    def cut_once(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != DOWNLOAD_BATCH:
            return None
        asked.append(json.loads(request.content)["hashes"])
        answer = recorder.inner.handle_request(request)
        body = answer.read()
        if not cut["left"]:
            return httpx.Response(200, content=body, headers=answer.headers)
        cut["left"] -= 1
        frames = list(decode_frames(body))
        # Two whole frames and half of the third, then the connection breaks.
        partial = b"".join(frame(data) for _, data in frames[:2]) + frame(frames[2][1])[:80]
        return httpx.Response(200, stream=CutStream(partial))

    api, recorder, slept = api_for(client, alice)
    _, manifests, root = push_tree(api, tmp_path / "src", records)
    recorder.override = cut_once
    staging = tmp_path / "out"
    assert materialise(api, staging, list_files(root, memory_loader(manifests)), progress=False) == 30
    assert checked_out(staging) == expected(tmp_path / "src", records)
    # 30 blobs, 7 per request: 5 requests, plus one that asks again for the 5 not received.
    assert [len(hashes) for hashes in asked] == [7, 5, 7, 7, 7, 2]
    assert asked[1] == asked[0][2:] and len(slept) == 1


def test_cli_checkout_halves_a_batch_the_server_finds_too_large(client, alice, tmp_path):
    records = write_tree(tmp_path / "src", files=8, dirs=2)
    sizes: list[int] = []

    def small_answers_only(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != DOWNLOAD_BATCH:
            return None
        hashes = json.loads(request.content)["hashes"]
        sizes.append(len(hashes))
        if len(hashes) > 2:
            return httpx.Response(422, json={"error": {"code": "batch_too_large", "message": "too big"}})
        return None

    api, recorder, _ = api_for(client, alice)
    _, manifests, root = push_tree(api, tmp_path / "src", records)
    recorder.override = small_answers_only
    staging = tmp_path / "out"
    assert materialise(api, staging, list_files(root, memory_loader(manifests)), progress=False) == 8
    assert checked_out(staging) == expected(tmp_path / "src", records)
    assert sorted(sizes) == [2, 2, 2, 2, 4, 4, 8]


def test_cli_checkout_of_a_blob_the_server_lacks_fails(client, alice, platform, tmp_path):
    records = write_tree(tmp_path / "src", files=4, dirs=2)
    api, recorder, _ = api_for(client, alice)
    _, manifests, root = push_tree(api, tmp_path / "src", records)
    gone = records[1][1]
    run(platform.db.prepare("DELETE FROM blob_refs WHERE hash = ?").bind(gone).run())
    run(platform.blobs.delete(f"{alice.user_id}/blobs/{gone}"))
    with pytest.raises(CheckoutError, match="not on the server"):
        materialise(api, tmp_path / "out", list_files(root, memory_loader(manifests)), progress=False)
    assert recorder.count("GET", f"/v1/blobs/download/{gone}") == 1  # asked alone before giving up


def test_cli_download_batch_detects_tampering(client, alice):
    upload(client, alice, b"genuine")

    def tamper(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == DOWNLOAD_BATCH:
            return httpx.Response(200, content=frame(b"forged", declared_hash=sha(b"genuine")))
        return None

    api, _, _ = api_for(client, alice, tamper)
    sinks: dict[str, io.BytesIO] = {}

    class Sink(io.BytesIO):
        def close(self) -> None:  # keep the bytes readable after the client closes it
            pass

    with pytest.raises(ApiError) as failure:
        api.download_batch([sha(b"genuine")], lambda d: sinks.setdefault(d, Sink()), lambda d, n: None)
    assert failure.value.code == "hash_mismatch"




def test_cli_fetches_a_tree_a_level_per_request(client, alice, tmp_path):
    from fastest.cli.client import MANIFEST_DOWNLOAD_BATCH
    from fastest.cli.loader import manifest_loader, prefetch_tree

    records = write_tree(tmp_path / "src")
    api, recorder, _ = api_for(client, alice)
    _, manifests, root = push_tree(api, tmp_path / "src", records)
    fetched = prefetch_tree(api, root)
    assert fetched == manifests  # every manifest of the tree, hash-verified
    assert recorder.count("POST", MANIFEST_DOWNLOAD_BATCH) == 3  # root, 12 directories, 36 below them
    assert recorder.count("GET", "/v1/blobs/manifests/") == 0
    assert list_files(root, manifest_loader(api, None, fetched)) == list_files(root, memory_loader(manifests))
