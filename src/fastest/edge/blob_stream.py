"""The Worker's streaming path for single-blob upload and download (DESIGN.md §3).

The ASGI bridge reads a whole request body into memory before the app sees it, and the app's
download streams every chunk through Python. For `PUT /v1/blobs/upload/{hash}` and
`GET /v1/blobs/download/{hash}` the Worker entry comes here instead, and JS streams go straight
from the request to R2 and from R2 to the response:

- upload: the request's ReadableStream is handed to `R2.put` with R2's `sha256` option, so R2 hashes
  what it receives and refuses a mismatch (nothing stored); that is why a `Content-Length` is required
  (R2 needs a known length; 411 otherwise).
- download: the R2 object's body stream is the Response body, untouched.

Only the transport differs. Authorization is `identity.authorize` (the sequence behind
`api.deps.authorize("sync", route_class="sync")`); the storage rules are the service's own steps
(`storage.prepare_upload` / `record_upload`, `storage.open_blob`); statuses and headers come from
`api.blobs` (`download_head`, `parse_range`, `etag_matches`) and errors from `api.errors.problem_body`,
with the headers the app's middleware adds (request id, security, RateLimit, CORS).

The Response is built by `platform.cloudflare.interop.workers_response` (the one place that imports
`workers`, lazily), so this module imports under CPython and is unit-tested there with fakes.

Layering: this is the Worker's HTTP edge, beside `src/entry.py` and above the app: it calls into `api`
and `services` as the entry does, and reaches the runtime only through `platform.cloudflare`.
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any

from fastest.api.blobs import HASH_PATTERN, download_head, etag_matches, parse_range
from fastest.api.errors import internal_error
from fastest.edge.reply import EdgeReply, ResponseFactory, request_header
from fastest.errors import ApiError, LengthRequired
from fastest.platform import Platform
from fastest.platform.cloudflare.interop import is_null
from fastest.ports import ChecksumMismatch
from fastest.services import identity, storage

__all__ = ["DOWNLOAD", "UPLOAD", "EdgeReply", "handle", "match"]

log = logging.getLogger("fastest")

UPLOAD = "upload"
DOWNLOAD = "download"
ABILITY, ROUTE_CLASS = "sync", "sync"  # as api.blobs: authorize("sync", route_class="sync")
_HEX = HASH_PATTERN.strip("^$")
_ROUTES = (
    (UPLOAD, frozenset({"PUT"}), re.compile(rf"/v1/blobs/upload/({_HEX})")),
    # GET only: the app answers HEAD here with a 405 (FastAPI adds no HEAD to GET routes), and both
    # runtimes must answer alike, so HEAD stays with the app.
    (DOWNLOAD, frozenset({"GET"}), re.compile(rf"/v1/blobs/download/({_HEX})")),
)

def match(method: Any, path: str) -> tuple[str, str] | None:
    """`(kind, hash)` when this request is one the streaming path serves, else None (→ ASGI).
    Anything else on these paths (another method, a malformed hash) stays with the app, which
    answers it as it always has (405, 422…)."""
    verb = str(getattr(method, "value", method)).upper()
    for kind, methods, pattern in _ROUTES:
        if verb in methods and (found := pattern.fullmatch(path)) is not None:
            return kind, found.group(1)
    return None


def _bearer_token(authorization: str | None) -> str | None:
    """The credentials of `Authorization: Bearer <token>` (scheme case-insensitive), as HTTPBearer."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


def _declared_length(request: Any) -> int | None:
    value = request_header(request, "content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


async def _cancel(stream: Any) -> None:
    """Tell the client we will not read its body (ReadableStream.cancel); best effort."""
    if is_null(stream):
        return
    try:
        result = stream.cancel()
        if inspect.isawaitable(result):
            await result
    except Exception:  # a stream already locked or closed: nothing to release
        pass


async def _upload(request: Any, platform: Platform, user_id: str, blob_hash: str, reply: EdgeReply) -> Any:
    declared = _declared_length(request)
    try:
        if declared is None:
            raise LengthRequired("Send the blob's size in `Content-Length` (chunked uploads are not accepted).")
        upload = await storage.prepare_upload(platform, user_id, blob_hash, declared_length=declared)
    except ApiError:
        await _cancel(request.body)  # refused before reading: nothing of the body is needed
        raise
    if upload.already_stored:
        await _cancel(request.body)
        return reply.json(upload.existing(), 200)
    body = request.body
    try:
        info = await platform.blobs.put_stream(
            upload.key,
            None if is_null(body) else body,
            sha256=blob_hash,
            custom_metadata=upload.custom_metadata,
            content_type=upload.content_type,
        )
    except ChecksumMismatch as exc:
        raise storage.checksum_mismatch(blob_hash, declared, exc.actual) from exc
    return reply.json(await storage.record_upload(platform, user_id, upload, info.size), 201)


async def _download(request: Any, platform: Platform, user_id: str, blob_hash: str, reply: EdgeReply) -> Any:
    download = await storage.open_blob(
        platform,
        user_id,
        blob_hash,
        requested=parse_range(request_header(request, "range")),
        client_has_it=etag_matches(request_header(request, "if-none-match"), blob_hash),
    )
    status, headers = download_head(download, ranges=True)
    if download.not_modified:
        return reply.stream(None, status, headers)
    assert download.body is not None
    headers["Content-Type"] = "application/octet-stream"
    return reply.stream(download.body.native_stream(), status, headers)


async def handle(
    kind: str,
    blob_hash: str,
    request: Any,
    platform: Platform,
    *,
    respond: ResponseFactory | None = None,
) -> Any:
    """Serve one matched request (see `match`) and return the runtime's Response."""
    reply = EdgeReply(request, platform, respond, route_class=ROUTE_CLASS)
    path = f"/v1/blobs/{kind}/{blob_hash}"
    try:
        try:
            principal = await identity.authorize(
                platform,
                _bearer_token(request_header(request, "authorization")),
                ABILITY,
                route_class=ROUTE_CLASS,
                on_rate_decision=reply.rate_decided,
            )
        except ApiError:
            if kind == UPLOAD:
                await _cancel(request.body)
            raise
        if kind == UPLOAD:
            return await _upload(request, platform, principal.user_id, blob_hash, reply)
        return await _download(request, platform, principal.user_id, blob_hash, reply)
    except ApiError as error:
        if error.status >= 500:
            log.error("request failed: %s → %s", path, error.code)
        return reply.problem(error, path)
    except Exception:
        log.exception("unhandled error (request %s)", reply.request_id)
        return reply.problem(internal_error(), path)
