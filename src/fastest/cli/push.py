"""`fastest push`: scan the folder, upload what the server lacks, record a snapshot, move the workspace.

The order is what makes a push safe to interrupt at any point: blobs and manifests (children first,
beside the blobs), then the snapshot (whose creation checks that the whole tree is stored), then the compare-and-set
of the workspace's current manifest, and only then the local state. A push that dies half-way
leaves nothing visible on the server but content-addressed objects, which the next push reuses.

Only new hashes are considered: the last pushed tree's blobs and manifests are kept by the server
as long as its snapshot exists (`PushedTree`), so a one-file change costs one blob and the
manifests on that file's path (sent without asking first, as there are only a few). Should the server disagree (snapshot creation answers
`manifest_missing`/`blobs_missing`), the push checks everything once and tries again.

Small blobs and all manifests travel in batches (frames, see `frames.py`): a first push of 10,000
files in 1,000 directories is a few dozen requests, not 11,000. Manifests go children first, in
batches sent one after another. A frame refused because the server's GC is deleting that hash
(`*_being_collected`) is sent again after `Retry-After`, a bounded number of times.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from itertools import compress
from operator import ne
from pathlib import Path
from fastest.cli.client import BEING_COLLECTED, DEFAULT_COLLECTED_WAIT_SECONDS, ApiClient, ApiError, BatchAnswer
from fastest.cli.collector import collector_paused
from fastest.cli.failures import CommandFailure
from fastest.cli.frames import (
    BATCH_MAX_BYTES,
    BATCH_MAX_FRAMES,
    SMALL_BLOB_MAX,
    PendingBlob,
    encode_frames,
    plan_batches,
    plan_manifest_batches,
    split_by_size,
)
from fastest.cli.index import LocalIndex
from fastest.cli.parallel import run_parallel
from fastest.cli.progress import Progress
from fastest.cli.pushed_records import with_changes
from fastest.cli.records import Record
from fastest.cli.scan import FileState, ScanResult, ScannedFile, scan, scan_paths
from fastest.cli.state import Folder, PushedTree, WorkspaceState, save_pushed
from fastest.domain.ids import make_id
from fastest.domain.manifest import ManifestError
from fastest.domain.tree import BuiltTree, build_tree, update_tree

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Callable, Iterator, Mapping, Sequence

    from fastest.cli.transport import Response

UPLOAD_THREADS = 4
ASK_FIRST_ABOVE = 16  # candidates; at or below this many (small) ones, upload without asking
CLOSURE_ERRORS = frozenset({"manifest_missing", "blobs_missing"})
COLLECTED_RETRIES = 3  # times a frame refused as `*_being_collected` is sent again
MANIFEST_BATCH_MAX_FRAMES = BATCH_MAX_FRAMES  # the server's default limit
MANIFEST_BATCH_MAX_BYTES = BATCH_MAX_BYTES
LOOK_AT_PATHS_MAX = 5000  # more paths than this to look at: walk the folder instead


class PushError(CommandFailure):
    """A push that cannot complete; the message is one line for the user (exit code 1)."""


class WorkspaceMoved(PushError):
    """The compare-and-set lost: someone else moved the workspace on the server."""

    def __init__(self, current_manifest_hash: str | None) -> None:
        super().__init__("workspace moved on the server; run fastest status")
        self.current_manifest_hash = current_manifest_hash


class PushReport(Record):
    """What a push looked at and sent; `--json` prints exactly this (`to_json`)."""

    __slots__ = ("nothing_to_push", "folder_walked", "manifest_hash", "snapshot_id", "snapshot_created", "files_scanned",
                 "files_changed", "files_hashed", "files_reused", "bytes_hashed", "ignored", "symlinks_skipped", "special_skipped",
                 "unencodable_skipped", "blobs_new", "blobs_checked", "blobs_uploaded", "blob_bytes_uploaded",
                 "manifests_total", "manifests_new", "manifests_checked", "manifests_uploaded", "requests", "timings_ms")
    DEFAULTS = {"nothing_to_push": False, "folder_walked": True, "manifest_hash": None, "snapshot_id": None,
                "snapshot_created": False, "files_scanned": 0, "files_changed": 0, "files_hashed": 0, "files_reused": 0, "bytes_hashed": 0,
                "ignored": 0, "symlinks_skipped": 0, "special_skipped": 0, "unencodable_skipped": list, "blobs_new": 0,
                "blobs_checked": 0, "blobs_uploaded": 0, "blob_bytes_uploaded": 0, "manifests_total": 0,
                "manifests_new": 0, "manifests_checked": 0, "manifests_uploaded": 0, "requests": 0, "timings_ms": dict}
    nothing_to_push: bool
    folder_walked: bool  # False: only named paths (or those a watcher reported) were looked at
    manifest_hash: str | None
    snapshot_id: str | None
    snapshot_created: bool
    files_scanned: int
    files_changed: int  # added, modified or deleted since the last push
    files_hashed: int  # read and hashed by this scan (the others' hashes were known from an earlier one)
    files_reused: int
    bytes_hashed: int
    ignored: int
    symlinks_skipped: int
    special_skipped: int
    unencodable_skipped: list[str]
    blobs_new: int  # not in the last pushed tree (a few small ones are not looked up there: see `new_blobs`)
    blobs_checked: int  # asked about with blobs/exists
    blobs_uploaded: int
    blob_bytes_uploaded: int
    manifests_total: int
    manifests_new: int
    manifests_checked: int
    manifests_uploaded: int
    requests: int
    timings_ms: dict[str, float]  # per phase, to see where a slow push goes


def new_snapshot_id() -> str:
    """`snp_` + 26 Crockford base32, chosen here so that a retried create is recognised as the same one."""
    return make_id("snp", time.time_ns() // 1_000_000, os.urandom(10))


Changes = dict[str, "FileState | None"]
"""Path -> its new (hash, size, mode), or None if deleted: how a scan differs from the pushed tree."""


def scan_folder(folder: Folder, pushed: PushedTree, *, progress: bool | None = None,
                timings: dict[str, float] | None = None,
                only: Sequence[str] | None = None) -> tuple[ScanResult, BuiltTree, Changes, dict[str, str]]:
    """Scan with the local index (saving it if it changed) and derive the tree's manifests.

    With the pushed tree at hand, only the directories on changed paths are rebuilt
    (`update_tree`); otherwise the whole tree is built. `only`: look at these paths alone and
    take the rest as pushed (needs a pushed tree; without one, the whole folder is scanned).
    Returns the scan, the tree, the changes since the pushed tree (every file, if there is none)
    and the tree's directories (path -> manifest hash).
    """
    timings = {} if timings is None else timings
    with phase(timings, "scan"):
        if only is not None and len(only) > LOOK_AT_PATHS_MAX:
            only = None  # e.g. a branch switch under a watcher: walking is as fast and simpler
        if only is not None and pushed.root is not None:
            result, changes = _scan_only(folder, pushed, only)
        else:
            index = LocalIndex.load(folder.index_file)
            result = scan(folder.root, index, progress=progress, against=pushed.records if pushed.root is not None else None,
                          against_root=pushed.root, seal=True)
            changes = result.changes
            index.save()
    with phase(timings, "build"):
        if changes is None:
            changes = changes_since(pushed.records, result.records)
        tree = None
        if pushed.root is not None:
            directories = pushed.with_directories().directories or {}
            if not changes:
                tree = BuiltTree(pushed.root, dict(pushed.manifests))
            else:
                try:
                    tree, directories = update_tree(pushed.root, pushed.manifests, directories,
                                                    {path: None if state is None else (path, *state)
                                                     for path, state in changes.items()})
                except (ManifestError, KeyError):
                    tree = None  # e.g. a damaged manifest: build it all, which also names a bad record
        if tree is None:
            tree, directories = build_tree(result.manifest_records())
    return result, tree, changes, directories


def _scan_only(folder: Folder, pushed: PushedTree, only: Sequence[str]) -> tuple[ScanResult, Changes]:
    loaded: list[LocalIndex] = []

    def load_index() -> LocalIndex:  # only if many files are to be looked at
        loaded.append(LocalIndex.load(folder.index_file))
        return loaded[0]

    changes, hashed = scan_paths(folder.root, load_index, pushed.records, only,
                                 directories=pushed.with_directories().directories)
    for index in loaded:
        index.save()
    records = with_changes(pushed.records, changes)
    result = ScanResult(records=records, hashed=hashed, reused=len(records) - hashed, hashed_bytes=0,
                        ignored=0, symlinks=0, special=0, unencodable=[], folder_walked=False)
    return result, changes


def changes_since(before: Mapping[str, FileState], after: Mapping[str, FileState]) -> Changes:
    """What turns the file list `before` into `after`: each added or changed path with its new
    state, each deleted one with None."""
    # Compared in C (map, compress) rather than in a comprehension: a third of the time on 10,000 files.
    changed = list(compress(after, map(ne, map(before.get, after), after.values())))
    changes: Changes = dict(zip(changed, map(after.__getitem__, changed)))
    added = sum(1 for path in changed if path not in before)
    if len(before) != len(after) - added:  # some paths of `before` are gone (else the set difference is spared)
        changes.update((path, None) for path in before.keys() - after.keys())
    return changes


def new_blobs(changes: Changes, pushed: PushedTree) -> dict[str, ScannedFile]:
    """The blobs of changed files that the pushed tree does not hold, with one path each.

    Telling which blobs the pushed tree holds reads all of its records (a tenth of a one-file push
    on a big folder), so a few small blobs are not looked up: they are sent as they are, and the
    upload skips whatever the server already holds."""
    blobs: dict[str, ScannedFile] = {}
    for path, state in changes.items():
        if state is not None and state[0] not in blobs:
            blobs[state[0]] = ScannedFile(path, *state)
    if not _few_and_small(blobs):
        blobs = {digest: blob for digest, blob in blobs.items() if digest not in pushed.blobs}
    return blobs


def _few_and_small(blobs: Mapping[str, ScannedFile]) -> bool:
    """A handful of small blobs (the usual edit): sent without asking the server or the pushed tree
    first, as one batch; the upload skips what the server already holds."""
    return len(blobs) <= ASK_FIRST_ABOVE and sum(blob.size for blob in blobs.values()) <= SMALL_BLOB_MAX


@contextmanager
def run_beside(work: Callable[[], None] | None) -> Iterator[None]:
    """Run `work` on a thread while the block runs; its error, if any, is raised after the block
    (the block's own error first)."""
    if work is None:
        yield
        return
    import threading

    failure: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="fastest-push-manifests", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failure:
        raise failure[0]


@contextmanager
def phase(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + round((time.perf_counter() - started) * 1000, 1)


def push(
    folder: Folder,
    state: WorkspaceState,
    api: ApiClient,
    *,
    message: str | None = None,
    progress: bool | None = None,
    only: Sequence[str] | None = None,
) -> PushReport:
    """`only`: push the changes under these folder-relative paths alone (see `scan_folder`)."""
    with collector_paused():
        return _push(folder, state, api, message=message, progress=progress, only=only)


def _push(folder: Folder, state: WorkspaceState, api: ApiClient, *, message: str | None,
          progress: bool | None, only: Sequence[str] | None) -> PushReport:
    timings: dict[str, float] = {}
    with phase(timings, "load"):
        pushed = PushedTree.load(folder.pushed_file, state.manifest_hash)
    scanned_against = pushed.root
    scanned, tree, changes, directories = scan_folder(folder, pushed, progress=progress, timings=timings, only=only)
    report = PushReport(
        timings_ms=timings,
        folder_walked=scanned.folder_walked,
        manifest_hash=tree.root,
        files_scanned=len(scanned.records),
        files_changed=len(changes),
        files_hashed=scanned.hashed,
        files_reused=scanned.reused,
        bytes_hashed=scanned.hashed_bytes,
        ignored=scanned.ignored,
        symlinks_skipped=scanned.symlinks,
        special_skipped=scanned.special,
        unencodable_skipped=scanned.unencodable,
        manifests_total=len(tree.manifests),
    )
    if tree.root == state.manifest_hash or (state.manifest_hash is None and not scanned.records):
        # A never-pushed empty folder has nothing to record either: no empty snapshot.
        report.nothing_to_push = True
        report.snapshot_id = state.head_snapshot_id
        return report

    requests_before = api.requests_sent
    snapshot_id = new_snapshot_id()
    body = {
        "manifest_hash": tree.root,
        "snapshot_id": snapshot_id,
        "parent_snapshot_ids": [state.head_snapshot_id] if state.head_snapshot_id else [],
        "workspace_id": state.workspace_id,
        "source": "cli",
    }
    if message:
        body["summary"] = message
    for attempt in range(2):
        blobs = new_blobs(changes, pushed)
        upload_missing(api, folder.root, blobs, tree, pushed, report, progress=progress)
        try:
            with phase(timings, "snapshot"):
                answer = api.create_snapshot(state.project_id, body)
            break
        except ApiError as exc:
            if exc.code not in CLOSURE_ERRORS or attempt == 1:
                raise
            pushed = PushedTree.empty()  # the server lost something we thought it had: check everything
            changes = changes_since({}, scanned.records)
    report.snapshot_id = answer["snapshot"]["id"]
    report.snapshot_created = bool(answer.get("created"))

    with phase(timings, "workspace"):
        move_workspace(api, state, tree.root)
    with phase(timings, "save"):
        state.head_snapshot_id = report.snapshot_id
        state.manifest_hash = tree.root
        folder.save(state)
        save_pushed(folder.pushed_file, tree.root, scanned.records, tree.manifests, directories, since=pushed, changes=changes)
        if scanned.folder_walked:  # the index's seals were made against the pushed tree (None: the scanned one)
            LocalIndex.move_sealed_root(folder.index_file, scanned_against, tree.root)
    report.requests = api.requests_sent - requests_before
    return report


def move_workspace(api: ApiClient, state: WorkspaceState, manifest_hash: str) -> None:
    """Compare-and-set the workspace's current manifest from the last pushed one to this one."""
    response = api.set_current_manifest(state.workspace_id, manifest_hash, state.manifest_hash)
    if response.status_code == 409:
        current = _current_of_conflict(response)
        if current != manifest_hash:  # equal: our own earlier attempt landed (a retried request)
            raise WorkspaceMoved(current)


def _current_of_conflict(response: Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    current = body.get("current_manifest_hash")
    if current is None and isinstance(body.get("error"), dict):
        current = body["error"].get("current_manifest_hash")
    return current


# --------------------------------------------------------------------------------------------------
# uploads


def upload_missing(
    api: ApiClient,
    root: Path,
    blobs: dict[str, ScannedFile],
    tree: BuiltTree,
    pushed: PushedTree,
    report: PushReport,
    *,
    progress: bool | None = None,
) -> None:
    """Upload what the server lacks of `blobs` (by hash, one file each: `new_blobs`) first, then
    of the tree's manifests not in `pushed`.

    A handful of small candidates (the usual edit) are sent without asking first: the upload
    routes skip what they already hold, and one round trip is saved. Otherwise the server is asked.
    """
    blob_candidates = list(blobs)  # what `new_blobs` found the pushed tree lacks
    manifest_candidates = [h for h in tree.manifests if h not in pushed.manifests]
    report.blobs_new, report.manifests_new = len(blob_candidates), len(manifest_candidates)
    timings = report.timings_ms
    with phase(timings, "check"):
        if not _few_and_small(blobs):
            missing_blobs = api.blobs_exist(blob_candidates).missing
            report.blobs_checked += len(blob_candidates)
        else:
            missing_blobs = blob_candidates
        if len(manifest_candidates) > ASK_FIRST_ABOVE:
            missing_manifests = set(api.manifests_exist(manifest_candidates).missing)
            report.manifests_checked += len(manifest_candidates)
        else:
            missing_manifests = set(manifest_candidates)

    pending = [PendingBlob(h, blobs[h].size, blobs[h].path) for h in missing_blobs if h in blobs]

    def send_manifests() -> None:
        with phase(timings, "manifests"):
            # The blobs' progress bar is the one shown while both are under way.
            upload_manifests(api, tree.manifests, missing_manifests, report,
                             progress=False if beside else progress)

    # Many blobs: manifests go up beside them, not after them (the server checks that a tree is
    # whole only when the snapshot is created), so the manifests' requests, sent one after another
    # children first, do not wait for the last blob. A few blobs are one request: a thread would
    # cost more than it overlaps.
    beside = len(pending) > ASK_FIRST_ABOVE and bool(missing_manifests)
    with run_beside(send_manifests if beside else None):
        with phase(timings, "blobs"):
            upload_blobs(api, root, pending, report, progress=progress)
    if not beside:
        send_manifests()


def send_frames(api: ApiClient, hashes: list[str], send: Callable[[list[str]], BatchAnswer | None],
                name: Callable[[str], str]) -> BatchAnswer | None:
    """Send `hashes` as one batch with `send`, then again those refused as being collected (after
    the server's `Retry-After`), at most COLLECTED_RETRIES times. Any other refusal is a PushError.

    Returns everything the server accepted (`stored`, `existing`), or None when the route is missing.
    """
    stored: list[str] = []
    existing: list[str] = []
    for attempt in range(COLLECTED_RETRIES + 1):
        answer = send(hashes)
        if answer is None:
            return None
        stored += answer.stored
        existing += answer.existing
        refused = [r for r in answer.rejected if r.get("code") not in BEING_COLLECTED]
        if refused:
            first = refused[0]
            if first.get("code") == "hash_mismatch":  # the file changed since it was hashed
                raise PushError(f"{name(str(first.get('hash')))} changed while pushing; run fastest push again")
            raise PushError(f"the server refused {name(str(first.get('hash')))} ({first.get('code')}); "
                            f"{len(answer.rejected)} object(s) rejected")
        busy = [str(r["hash"]) for r in answer.rejected]
        if not busy:
            return BatchAnswer(stored, existing, [])
        if attempt == COLLECTED_RETRIES:
            raise PushError(f"the server is still deleting {name(busy[0])} and {len(busy) - 1} more; "
                            "run fastest push again in a minute")
        api.pause(answer.retry_after if answer.retry_after is not None else DEFAULT_COLLECTED_WAIT_SECONDS)
        hashes = busy
    raise AssertionError("unreachable")  # pragma: no cover


def upload_manifests(api: ApiClient, manifests: dict[str, bytes], missing: set[str], report: PushReport, *,
                     progress: bool | None = None) -> None:
    """Upload the `missing` ones of `manifests` (which is in children-before-parents order) in batches
    sent one after another, so no parent reaches the server before its children."""
    ordered = [(digest, data) for digest, data in manifests.items() if digest in missing]
    batches = plan_manifest_batches(ordered, max_bytes=MANIFEST_BATCH_MAX_BYTES, max_frames=MANIFEST_BATCH_MAX_FRAMES)
    with Progress("manifests", len(ordered), enabled=progress) as bar:
        for batch in batches:
            frames = dict(batch)
            answer = send_frames(
                api, list(frames),
                lambda hashes: api.upload_manifest_batch(encode_frames((h, frames[h]) for h in hashes)),
                lambda digest: f"manifest {digest}",
            )
            report.manifests_uploaded += len(answer.stored) + len(answer.existing)
            bar.advance(len(batch))


def upload_blobs(api: ApiClient, root: Path, pending: list[PendingBlob], report: PushReport, *,
                 progress: bool | None = None) -> None:
    small, big = split_by_size(pending)
    batches = plan_batches(small)
    with Progress("uploading", len(pending), total_bytes=sum(b.size for b in pending), enabled=progress) as bar:

        def send_batch(batch: list[PendingBlob]) -> None:
            by_hash = {blob.hash: blob for blob in batch}
            send_frames(
                api, list(by_hash),
                lambda hashes: api.upload_batch(encode_frames((h, read_blob(root, by_hash[h])) for h in hashes)),
                lambda digest: by_hash[digest].path if digest in by_hash else digest,
            )
            bar.advance(len(batch), sum(b.size for b in batch))

        def send_big(blob: PendingBlob) -> None:
            try:
                api.upload_blob_file(blob.hash, root / blob.path)
            except ApiError as exc:
                if exc.code == "hash_mismatch":
                    raise PushError(f"{blob.path} changed while pushing; run fastest push again") from exc
                if exc.status in (413, 422):  # e.g. larger than the server's blob limit
                    raise PushError(f"{blob.path}: {exc.message}") from exc
                raise
            except FileNotFoundError as exc:
                raise PushError(f"{blob.path} disappeared while pushing; run fastest push again") from exc
            bar.advance(1, blob.size)

        run_parallel(send_batch, batches, UPLOAD_THREADS)
        run_parallel(send_big, big, UPLOAD_THREADS)
    report.blobs_uploaded += len(pending)
    report.blob_bytes_uploaded += sum(b.size for b in pending)


def read_blob(root: Path, blob: PendingBlob) -> bytes:
    """The file's bytes as they are now. They are not hashed again here: the server checks every
    frame against its hash and refuses one that changed since the scan (`hash_mismatch`), which
    `send_frames` reports as a file changed while pushing."""
    try:
        return (root / blob.path).read_bytes()
    except FileNotFoundError as exc:
        raise PushError(f"{blob.path} disappeared while pushing; run fastest push again") from exc
