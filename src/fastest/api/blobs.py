"""Blobs and manifests: exists, presign, upload, batches, downloads, GC, stats.

Every route needs the `sync` ability and is scoped to the caller: another user's hash is a 404 (or
"missing"), exactly like one that was never uploaded. Upload bodies are streamed, never parsed as
JSON: the service reads them chunk by chunk (hashing and counting as it goes). Downloads stream
from the BlobStore and are immutable (the ETag is the content hash).
"""

from __future__ import annotations

import re
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import ClientDisconnect

from fastest.api.deps import PlatformDep, authorize
from fastest.errors import ApiError, MethodNotAllowed, ValidationFailed
from fastest.schemas.blobs import (
    BatchResult,
    BlobUploaded,
    DownloadBatchRequest,
    ExistsResult,
    GcRequest,
    GcResult,
    HashList,
    ManifestUploaded,
    StorageStats,
    UrlMap,
)
from fastest.schemas.common import problem_responses
from fastest.services import storage
from fastest.services.identity.accounts import Principal
from fastest.services.storage import BatchDownload, Download, RequestedRange

router = APIRouter(prefix="/v1/blobs", tags=["blobs"], responses=problem_responses(400, 401, 403, 422, 429))

# Own budget: a push is hundreds of small transfers (see Settings.sync_rate_limit_per_minute).
sync = authorize("sync", route_class="sync")
HASH_PATTERN = r"^[0-9a-f]{64}$"
BlobHash = Annotated[str, Path(pattern=HASH_PATTERN, description="The blob's SHA-256 (64 lowercase hex digits).")]
IMMUTABLE = "public, max-age=31536000, immutable"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_ERRORS = problem_responses(409, 413)
# A batch download lists the hashes it leaves out in this header when there are at most this many
# (else it gives their count there too); X-Fastest-Missing-Count is always set.
MISSING_HEADER_MAX_HASHES = 50
# Paths under /manifests/ that are routes of their own (POST only), not a manifest's hash.
_MANIFEST_POST_ROUTES = ("exists", "batch")


def _binary_body(description: str, *, required: bool = True) -> dict:
    content = {"application/octet-stream": _BINARY}
    return {"requestBody": {"required": required, "description": description, "content": content}}


def _hash_in_path(collection: str, post_routes: tuple[str, ...]):
    """The `{hash}` of `/<collection>/{hash}`, checked here rather than by the route: that path also
    matches POST-only routes of their own (`/manifests/exists`, `/download/batch`…), which for any
    other method are a 405, not a malformed hash."""

    async def dependency(
        hash: str = Path(
            ..., description="The object's SHA-256 (64 lowercase hex digits).", json_schema_extra={"pattern": HASH_PATTERN}
        ),
    ) -> str:
        if hash in post_routes:
            raise MethodNotAllowed(f"Only POST is allowed on /v1/blobs/{collection}/{hash}.", headers={"Allow": "POST"})
        if re.fullmatch(HASH_PATTERN, hash) is None:
            raise ValidationFailed(
                "The request is invalid: see error.fields.",
                fields={"path.hash": f"String should match pattern '{HASH_PATTERN}'"},
            )
        return hash

    return dependency


manifest_hash = _hash_in_path("manifests", _MANIFEST_POST_ROUTES)
download_hash = _hash_in_path("download", ("batch",))


def _download_responses(media_type: str, *, ranges: bool) -> dict:
    responses: dict = {
        200: {"description": "The bytes (immutable; the ETag is the hash).", "content": {media_type: _BINARY}},
        304: {"description": "Not modified: `If-None-Match` named this hash."},
        **problem_responses(404),
    }
    if ranges:
        responses[206] = {"description": "The requested byte range (`Content-Range`).", "content": {media_type: _BINARY}}
        responses.update(problem_responses(416))
    return responses


# --------------------------------------------------------------------------------------------------
# HTTP details the service does not need to know about
# --------------------------------------------------------------------------------------------------


async def _body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives. A client that goes away mid-body is a 400 (nothing stored)."""
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect as exc:
        raise ApiError(
            "The request body ended before it was complete; nothing was stored.", code="request_incomplete"
        ) from exc


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def parse_range(header: str | None) -> RequestedRange | None:
    """One `bytes=` range, or None to send the whole object: no header, other units, several ranges
    or an invalid spec are ignored, as RFC 9110 §14.2 allows."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        return RequestedRange(first=None, last=int(last_text))
    first, last = int(first_text), (int(last_text) if last_text else None)
    if last is not None and last < first:
        return None
    return RequestedRange(first=first, last=last)


def etag_matches(header: str | None, object_hash: str) -> bool:
    """`If-None-Match` names this object (weak comparison, `*` included)."""
    if header is None:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag in ("*", f'"{object_hash}"'):
            return True
    return False


def download_head(download: Download, *, ranges: bool) -> tuple[int, dict[str, str]]:
    """The status and headers of a download's answer (200, 206 or 304), shared with the Worker's
    streaming path (`fastest.edge.blob_stream`)."""
    headers = {"ETag": f'"{download.hash}"', "Cache-Control": IMMUTABLE}
    if ranges:
        headers["Accept-Ranges"] = "bytes"
    if download.not_modified:
        return 304, headers
    headers["Content-Length"] = str(download.length)
    if download.partial:
        headers["Content-Range"] = f"bytes {download.first}-{download.last}/{download.size}"
        return 206, headers
    return 200, headers


def _download_response(download: Download, media_type: str, *, ranges: bool) -> Response:
    status, headers = download_head(download, ranges=ranges)
    if download.not_modified:
        return Response(status_code=status, headers=headers)
    assert download.body is not None
    return StreamingResponse(download.body.stream(), status_code=status, media_type=media_type, headers=headers)


def _batch_response(result: dict) -> JSONResponse:
    """A batch upload's answer; `Retry-After` when some frame may be sent again shortly."""
    busy = any(r["code"] in storage.BEING_COLLECTED_CODES for r in result["rejected"])
    headers = {"Retry-After": str(storage.RETRY_AFTER_SECONDS)} if busy else None
    return JSONResponse(result, headers=headers)


def _batch_download_response(batch: BatchDownload) -> StreamingResponse:
    missing = batch.missing
    headers = {"X-Fastest-Missing-Count": str(len(missing)), "Cache-Control": "no-store"}
    if missing:
        headers["X-Fastest-Missing"] = (
            ",".join(missing) if len(missing) <= MISSING_HEADER_MAX_HASHES else str(len(missing))
        )
    return StreamingResponse(batch.frames, media_type="application/octet-stream", headers=headers)


# --------------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------------


@router.post("/exists", response_model=ExistsResult, summary="Which blobs are stored (max 100)")
async def blobs_exist(*, body: HashList, principal: Principal = Depends(sync), platform: PlatformDep):
    return await storage.blobs_exist(platform, principal.user_id, body.hashes)


@router.post("/manifests/exists", response_model=ExistsResult, summary="Which manifests are stored (max 100)")
async def manifests_exist(*, body: HashList, principal: Principal = Depends(sync), platform: PlatformDep):
    return await storage.manifests_exist(platform, principal.user_id, body.hashes)


@router.post("/presign-upload", response_model=UrlMap, summary="Upload paths for blobs (worker-proxied)")
async def presign_upload(body: HashList, principal: Principal = Depends(sync)):
    return {"urls": storage.upload_paths(body.hashes)}


@router.post(
    "/presign-download",
    response_model=UrlMap,
    summary="Download paths for blobs (worker-proxied; a hash not stored is a 404 when fetched)",
)
async def presign_download(body: HashList, principal: Principal = Depends(sync)):
    return {"urls": storage.download_paths(body.hashes)}


@router.put(
    "/upload/{hash}",
    status_code=201,
    response_model=BlobUploaded,
    responses={200: {"model": BlobUploaded, "description": "Already stored: nothing written."}, **_UPLOAD_ERRORS},
    summary="Upload a blob (SHA-256 verified; 201 if new, 200 if already stored)",
    openapi_extra=_binary_body("The blob's bytes."),
)
async def upload_blob(
    *,
    request: Request,
    hash: BlobHash,
    principal: Principal = Depends(sync),
    platform: PlatformDep,
):
    result = await storage.upload_blob(
        platform, principal.user_id, hash, _body(request), declared_length=_declared_length(request)
    )
    return JSONResponse(result, status_code=201 if result["created"] else 200)


@router.post(
    "/batch",
    response_model=BatchResult,
    responses=problem_responses(413),
    summary="Upload many small blobs in one request (frames: 64-hex hash, 8-hex length, bytes)",
    openapi_extra=_binary_body("Frames `<64 hex hash><8 hex length><bytes>`, back to back (none: empty).", required=False),
)
async def upload_batch(*, request: Request, principal: Principal = Depends(sync), platform: PlatformDep):
    result = await storage.store_batch(
        platform, principal.user_id, _body(request), declared_length=_declared_length(request)
    )
    return _batch_response(result)


@router.post(
    "/download/batch",
    response_class=Response,
    responses={
        200: {
            "description": "Frames `<64 hex hash><8 hex length><bytes>` for the blobs you have, in request order, "
            "each once; the others are left out and named in `X-Fastest-Missing` (comma-separated, or their "
            "count when more than 50) and counted in `X-Fastest-Missing-Count`. At most 64 MiB in all (422 "
            "`batch_too_large` beyond, decided before anything is sent).",
            "content": {"application/octet-stream": _BINARY},
        },
    },
    summary="Download many blobs in one streamed answer (max 1,000 hashes)",
)
async def download_batch(
    *,
    body: DownloadBatchRequest, principal: Principal = Depends(sync), platform: PlatformDep
):
    batch = await storage.open_blob_batch(platform, principal.user_id, body.hashes)
    return _batch_download_response(batch)


@router.post(
    "/manifests/download/batch",
    response_class=Response,
    responses={
        200: {
            "description": "The frames of `/v1/blobs/download/batch`, for manifests: a client walking a tree "
            "fetches a whole level of directories in one request.",
            "content": {"application/octet-stream": _BINARY},
        },
    },
    summary="Download many manifests in one streamed answer (max 1,000 hashes)",
)
async def download_manifest_batch(
    *,
    body: DownloadBatchRequest, principal: Principal = Depends(sync), platform: PlatformDep
):
    batch = await storage.open_blob_batch(platform, principal.user_id, body.hashes, kind=storage.MANIFESTS)
    return _batch_download_response(batch)


@router.get(
    "/download/{hash}",
    response_class=Response,
    responses=_download_responses("application/octet-stream", ranges=True),
    summary="Download a blob (immutable; ETag, If-None-Match and single byte ranges supported)",
)
async def download_blob(
    *,
    request: Request,
    hash: str = Depends(download_hash),
    principal: Principal = Depends(sync),
    platform: PlatformDep,
):
    download = await storage.open_blob(
        platform,
        principal.user_id,
        hash,
        requested=parse_range(request.headers.get("range")),
        client_has_it=etag_matches(request.headers.get("if-none-match"), hash),
    )
    return _download_response(download, "application/octet-stream", ranges=True)


@router.post(
    "/manifests/batch",
    response_model=BatchResult,
    responses=problem_responses(413),
    summary="Upload many manifests in one request (the frames of /v1/blobs/batch; handled in order)",
    openapi_extra=_binary_body(
        "Frames `<64 hex hash><8 hex length><canonical manifest bytes>`, back to back; children may precede "
        "their parents.",
        required=False,
    ),
)
async def upload_manifest_batch(
    *,
    request: Request, principal: Principal = Depends(sync), platform: PlatformDep
):
    result = await storage.store_manifest_batch(
        platform, principal.user_id, _body(request), declared_length=_declared_length(request)
    )
    return _batch_response(result)


@router.put(
    "/manifests/{hash}",
    status_code=201,
    response_model=ManifestUploaded,
    responses={200: {"model": ManifestUploaded, "description": "Already stored: nothing written."}, **_UPLOAD_ERRORS},
    summary="Upload a manifest (canonical JSON of one directory; 201 if new, 200 if already stored)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The manifest's canonical bytes (see docs/api/blobs.md, Manifests are trees).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def upload_manifest(
    *,
    request: Request,
    principal: Principal = Depends(sync),  # before the hash: authentication comes first
    hash: str = Depends(manifest_hash),
    platform: PlatformDep,
):
    result = await storage.upload_manifest(
        platform, principal.user_id, hash, _body(request), declared_length=_declared_length(request)
    )
    return JSONResponse(result, status_code=201 if result["created"] else 200)


@router.get(
    "/manifests/{hash}",
    response_class=Response,
    responses=_download_responses("application/json", ranges=False),
    summary="Download a manifest (immutable; ETag and If-None-Match supported)",
)
async def download_manifest(
    *,
    request: Request,
    principal: Principal = Depends(sync),  # before the hash: authentication comes first
    hash: str = Depends(manifest_hash),
    platform: PlatformDep,
):
    download = await storage.open_manifest(
        platform, principal.user_id, hash, client_has_it=etag_matches(request.headers.get("if-none-match"), hash)
    )
    return _download_response(download, "application/json", ranges=False)


@router.post("/gc", response_model=GcResult, summary="Collect unreachable blobs and manifests (dry run by default)")
async def collect_garbage(
    *,
    body: GcRequest | None = None, principal: Principal = Depends(sync), platform: PlatformDep
):
    options = body or GcRequest()
    return await storage.collect_garbage(platform, principal.user_id, dry_run=options.dryRun, max_blobs=options.maxBlobs)


@router.get("/stats", response_model=StorageStats, summary="Storage used by the caller")
async def storage_stats(*, principal: Principal = Depends(sync), platform: PlatformDep):
    return await storage.stats(platform, principal.user_id)
