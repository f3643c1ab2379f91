"""Content-addressed storage: each user's blobs and manifests, their D1 index, closures and GC.

Bodies live in R2 under `{user_id}/blobs/{sha256}` and `{user_id}/manifests/{sha256}`; the rows of
`blob_refs`, `manifests` and `manifest_edges` (migrations 0002, 0003) are the index that answers
`exists`, stats, closure checks and GC with queries instead of R2 scans. Keys and queries are always
scoped by user, so another user's hash is simply not there (404 / "missing").

**Order of writes.** An object is written to R2 first (atomically: a put that fails, including on a
hash mismatch detected at the end of the stream, leaves nothing visible) and recorded in D1 second.
A crash in between leaves an unrecorded object, which is harmless (the next upload of that hash
writes it again and records it); the other order could record a blob that does not exist.

**GC safety.** A row is `live` or `deleting`. GC marks and condemns in one atomic D1 batch: rows that
are unreachable from every root **and** untouched for the grace period flip to `deleting`; only then
are the R2 objects deleted, then the rows. Everything that relies on a row *touches* it with a
conditional `UPDATE … WHERE state = 'live'` that is also the existence check (exists, uploads of a
known hash, closure checks), so each such operation is ordered against the flip: either it touched
first (and the flip's re-check skips the row) or the flip came first (and it sees the row as missing
and says so). The roots are listed in `garbage` (and DESIGN.md): snapshots, workspaces,
deployments, action-item runs, sync runs, working trees' held blobs, and every manifest touched
within the grace period — so touching a snapshot's root manifest protects its whole closure.

**Batches.** `store_batch` (blobs) and `store_manifest_batch` (manifests) read the same frames
`<64 hex hash><8 hex length><bytes>` with one reader and handle them in groups: one D1 batch checks a
group, its new objects go to R2, one more D1 batch records them (manifests with their edges). A
batch download (`open_blob_batch`) looks every hash up first, then streams the objects one by one.

**Closure invariant.** A live manifest with `closure_verified_at` set has its whole closure live.
Closure checks rely on it to skip verified subtrees; GC keeps it by clearing the mark, in the same
batch as the flip, on every unreachable manifest it does not condemn (with `maxBlobs` a run may
condemn a blob and leave its parent manifest for the next run).

**Modules.** `objects` (the two kinds, keys, errors, shared limits), `index` (touch-as-check and
recording rows), `uploads` (exists, single uploads), `batches` (batch uploads), `downloads`,
`trees` (server-side reads and tree rebuilds, file counts), `closure` (closure checks), `garbage`
(GC) and `usage` (stats). Callers use the names re-exported here (`storage.upload_blob(...)`); a
test that changes a limit patches the module that reads it (e.g. `storage.closure`).
"""

from __future__ import annotations

from fastest.services.storage.batches import (
    BATCH_GROUP_BYTES,
    BATCH_GROUP_FRAMES,
    BATCH_HEADER_BYTES,
    BATCH_PUT_CONCURRENCY,
    store_batch,
    store_manifest_batch,
)
from fastest.services.storage.closure import MISSING_REPORT_LIMIT, verify_closure
from fastest.services.storage.downloads import (
    DOWNLOAD_BATCH_MAX_BYTES,
    DOWNLOAD_LOOKUP_CHUNK,
    DOWNLOAD_STREAM_PIECE_BYTES,
    BatchDownload,
    Download,
    RequestedRange,
    open_blob,
    open_blob_batch,
    open_manifest,
)
from fastest.services.storage.garbage import (
    GC_DEFAULT_MAX_BLOBS,
    GC_TIME_BUDGET_SECONDS,
    R2_DELETE_CHUNK,
    collect_garbage,
    collect_garbage_all_users,
    hold_blob,
)
from fastest.services.storage.index import EDGES_PER_STATEMENT, HASHES_PER_STATEMENT
from fastest.services.storage.objects import (
    BEING_COLLECTED_CODES,
    BLOBS,
    GC_CLAIM_TIMEOUT_SECONDS,
    MANIFEST_MAX_BYTES,
    MANIFESTS,
    MIB,
    RETRY_AFTER_SECONDS,
    BeingCollected,
    HashMismatch,
    RangeNotSatisfiable,
    blob_key,
    manifest_key,
)
from fastest.services.storage.trees import (
    FILE_COUNT_MAX_DIRECTORIES,
    file_count,
    manifest_loader,
    read_blob,
    read_manifest,
    read_manifest_bytes,
    store_changed_tree,
    store_objects,
)
from fastest.services.storage.uploads import (
    BlobUpload,
    blobs_exist,
    checksum_mismatch,
    download_paths,
    manifest_exists,
    manifests_exist,
    prepare_upload,
    record_upload,
    upload_blob,
    upload_manifest,
    upload_paths,
)
from fastest.services.storage.usage import stats

__all__ = [
    "BATCH_GROUP_BYTES",
    "BATCH_GROUP_FRAMES",
    "BATCH_HEADER_BYTES",
    "BATCH_PUT_CONCURRENCY",
    "BEING_COLLECTED_CODES",
    "BLOBS",
    "DOWNLOAD_BATCH_MAX_BYTES",
    "DOWNLOAD_LOOKUP_CHUNK",
    "DOWNLOAD_STREAM_PIECE_BYTES",
    "EDGES_PER_STATEMENT",
    "FILE_COUNT_MAX_DIRECTORIES",
    "GC_CLAIM_TIMEOUT_SECONDS",
    "GC_DEFAULT_MAX_BLOBS",
    "GC_TIME_BUDGET_SECONDS",
    "HASHES_PER_STATEMENT",
    "MANIFESTS",
    "MANIFEST_MAX_BYTES",
    "MIB",
    "MISSING_REPORT_LIMIT",
    "R2_DELETE_CHUNK",
    "RETRY_AFTER_SECONDS",
    "BatchDownload",
    "BeingCollected",
    "BlobUpload",
    "Download",
    "HashMismatch",
    "RangeNotSatisfiable",
    "RequestedRange",
    "blob_key",
    "blobs_exist",
    "checksum_mismatch",
    "collect_garbage",
    "collect_garbage_all_users",
    "hold_blob",
    "download_paths",
    "file_count",
    "manifest_exists",
    "manifest_key",
    "manifest_loader",
    "manifests_exist",
    "open_blob",
    "open_blob_batch",
    "open_manifest",
    "prepare_upload",
    "read_blob",
    "read_manifest",
    "read_manifest_bytes",
    "record_upload",
    "stats",
    "store_batch",
    "store_changed_tree",
    "store_manifest_batch",
    "store_objects",
    "upload_blob",
    "upload_manifest",
    "upload_paths",
    "verify_closure",
]
