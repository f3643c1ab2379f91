"""Blobs and manifests: hash lists, upload answers, GC and storage statistics.

The GC request keeps its published camelCase names (`dryRun`, `maxBlobs`) and so does its answer; the
rest of the group is snake_case like the rest of the API.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

MAX_HASHES = 100
MAX_DOWNLOAD_BATCH_HASHES = 1000
GC_MAX_BLOBS_LIMIT = 100_000

# A SHA-256 as the API writes it everywhere: 64 lowercase hex digits.
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", min_length=64, max_length=64)]


class HashList(RequestModel):
    hashes: Annotated[list[Sha256], Field(min_length=1, max_length=MAX_HASHES)] = Field(
        description=f"1–{MAX_HASHES} SHA-256 hashes (64 lowercase hex digits). Duplicates are checked once."
    )


class DownloadBatchRequest(RequestModel):
    hashes: Annotated[list[Sha256], Field(min_length=1, max_length=MAX_DOWNLOAD_BATCH_HASHES)] = Field(
        description=f"1–{MAX_DOWNLOAD_BATCH_HASHES} blob hashes (64 lowercase hex digits). The answer holds the "
        "ones you have, in this order, each once."
    )


class ExistsResult(ResponseModel):
    missing: list[str] = Field(description="Hashes not stored for you (or being garbage-collected): upload them.")
    existing: list[str] = Field(description="Hashes stored for you. Each was marked as recently used, so GC keeps it.")
    checked: int = Field(description="How many distinct hashes were checked.")


class UrlMap(ResponseModel):
    urls: dict[str, str] = Field(description="Hash → a path on this server (worker-proxied, not a presigned URL).")


class BlobUploaded(ResponseModel):
    hash: str
    size: int
    created: bool = Field(description="False when the blob was already stored (the body was not stored again).")


class ManifestUploaded(ResponseModel):
    hash: str
    created: bool


class RejectedFrame(ResponseModel):
    hash: str
    code: str = Field(
        description="`hash_mismatch`; for manifests also a format code (e.g. `manifest_not_canonical`) or "
        "`payload_too_large`; `blob_being_collected` / `manifest_being_collected`: send it again after "
        "`Retry-After` seconds."
    )


class BatchResult(ResponseModel):
    stored: list[str]
    existing: list[str]
    rejected: list[RejectedFrame]


class GcRequest(RequestModel):
    dryRun: bool = Field(default=True, description="Only count what would be collected (the default).")
    maxBlobs: Annotated[int, Field(ge=1, le=GC_MAX_BLOBS_LIMIT)] | None = Field(
        default=None,
        description="Collect (or, in a dry run, count) at most this many blobs, and as many manifests, in this "
        "run; default 10,000. What is left waits for the next run.",
    )


class GcResult(ResponseModel):
    success: bool
    dryRun: bool
    scannedBlobs: int
    orphanedBlobs: int = Field(description="Blobs collected (or, in a dry run, that would be).")
    freedBytes: int = Field(description="Bytes of the blobs and manifests collected (or that would be).")
    freedMB: float
    scannedManifests: int
    orphanedManifests: int


class Usage(ResponseModel):
    count: int
    bytes: int
    mb: float


class TotalUsage(ResponseModel):
    bytes: int
    mb: float


class StorageStats(ResponseModel):
    blobs: Usage
    manifests: Usage
    total: TotalUsage
