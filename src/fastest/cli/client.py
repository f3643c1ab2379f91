"""The HTTP client of the API: one session (keep-alive), one method per route the CLI uses.

The session is `fastest.cli.transport.Session` (HTTP/1.1 over the standard library's sockets: the CLI
starts fast without httpx or `http.client`), or an `httpx.Client` behind a proxy or over a transport a
test passes in (the app in process).

Failures become one `ApiError` carrying the server's problem+json `error.code` and `error.message`,
so commands print one clear line. Transient trouble is retried: connection errors, 429 (after
`Retry-After`), 502/503/504, and a 409 `*_being_collected` (an upload of a hash the server's GC is
deleting: after `Retry-After`). Every request made here is safe to repeat: reads, uploads keyed by
content hash, creations with an `Idempotency-Key` (or a client-chosen `snapshot_id`), and the
compare-and-set on the workspace manifest, whose caller recognises its own earlier success.
"""

from __future__ import annotations

import hashlib
import time
from collections import namedtuple
from pathlib import Path
from urllib.parse import quote

from fastest.cli.failures import CommandFailure
from fastest.cli.frames import FrameReader, FramingError
from fastest.cli.transport import Session, TransportError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, BinaryIO, Callable, Mapping

    import httpx

    from fastest.cli.transport import Response

USER_AGENT = "fastest-cli/0.1.0"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_ATTEMPTS = 5
MAX_RETRY_WAIT_SECONDS = 60.0
DOWNLOAD_CHUNK_BYTES = 256 * 1024
EXISTS_BATCH = 100  # the server answers at most 100 hashes per exists call
# Rejection codes (of a 409, or of one batch frame) that mean: send it again after Retry-After.
BEING_COLLECTED = frozenset({"blob_being_collected", "manifest_being_collected"})
DEFAULT_COLLECTED_WAIT_SECONDS = 5.0
NO_ROUTE_MESSAGE = "No such route."  # the server's 404 for a path it has no route for
BLOB_DOWNLOAD_BATCH = "/v1/blobs/download/batch"
MANIFEST_DOWNLOAD_BATCH = "/v1/blobs/manifests/download/batch"
# What stays as it is in a request path: `/` between segments and RFC 3986's unreserved characters.
# Everything else an id given on the command line may hold (CR/LF, spaces, `?`, `#`, `%`, non-ASCII)
# is percent-encoded, so it stays inside its segment and the request line stays one line.
PATH_SAFE = "/"


class ApiError(CommandFailure):
    """A request that failed for good: HTTP status (0 when the server was unreachable), code, message."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class ExistsAnswer(namedtuple("ExistsAnswer", ("missing", "existing"))):
    __slots__ = ()
    missing: list[str]
    existing: list[str]


class BatchAnswer(namedtuple("BatchAnswer", ("stored", "existing", "rejected", "retry_after"), defaults=(None,))):
    """A batch upload's answer; `retry_after`: the server's `Retry-After`, when it sent one."""

    __slots__ = ()
    stored: list[str]
    existing: list[str]
    rejected: list[dict[str, str]]
    retry_after: float | None

    @classmethod
    def of(cls, response: Response | httpx.Response) -> "BatchAnswer":
        body = response.json()
        try:
            retry_after: float | None = float(response.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        return cls(list(body.get("stored", [])), list(body.get("existing", [])), list(body.get("rejected", [])),
                   retry_after)


def problem_of(response: Response | httpx.Response) -> ApiError:
    """The server's own words from a problem+json body, else the status line."""
    body: Any = None
    code, message = "http_error", f"{response.status_code} {response.reason_phrase}"
    try:
        body = response.json()
    except ValueError:
        pass
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or body.get("detail") or message)
            fields = error.get("fields")
            if isinstance(fields, dict) and fields:
                message += " (" + "; ".join(f"{k}: {v}" for k, v in fields.items()) + ")"
        elif isinstance(body.get("detail"), str):
            message = body["detail"]
    return ApiError(response.status_code, code, message, body)


def refused_here(exc: BaseException, server: str) -> bool:
    """Whether `exc` is a refused connection to this machine: nothing listens on that port, and
    asking again will not change that (a remote host may be restarting; this one says so at once)."""
    from urllib.parse import urlsplit

    host = (urlsplit(server).hostname or "").lower()
    if not (host == "localhost" or host == "::1" or host.startswith("127.")):
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _path_of(server: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(server).path.rstrip("/")


def _idempotency_key() -> str:
    """A random UUID (version 4), as `uuid.uuid4()` makes, without importing uuid at start-up."""
    import uuid

    return str(uuid.uuid4())


def _retry_after(response: Response | httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after", "")
    try:
        wait = float(header)
    except ValueError:
        wait = 0.5 * 2**attempt
    return min(max(wait, 0.0), MAX_RETRY_WAIT_SECONDS)


def uses_proxy(server: str, env: Mapping[str, str] | None = None) -> bool:
    """Whether requests to `server` go through a proxy by the environment: `<scheme>_proxy` or
    `all_proxy` (either case) is set and `no_proxy` does not list the host (`*`, the host, or a
    domain it ends in)."""
    import os
    from urllib.parse import urlsplit

    env = os.environ if env is None else env
    values = {key.lower(): value for key, value in env.items() if key.lower().endswith("_proxy") and value}
    url = urlsplit(server)
    if not (values.get(f"{url.scheme}_proxy") or values.get("all_proxy")):
        return False
    host = (url.hostname or "").lower()
    for entry in values.get("no_proxy", "").split(","):
        entry = entry.strip().lower().lstrip(".")
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return False
    return True


class ApiClient:
    def __init__(self, server: str, token: str | None, *, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep, max_connections: int = 8) -> None:
        """`token=None`: an anonymous client (the device flow, before there is a token). `transport`:
        an httpx transport to send through instead of the network (tests: the app in process).
        Behind an HTTP proxy (`HTTPS_PROXY` and friends, as httpx reads them) the client is httpx's,
        which speaks to proxies; otherwise the socket transport, which starts faster."""
        self.server = server
        self._sleep = sleep
        headers = {"User-Agent": USER_AGENT}
        if token is not None:
            headers["Authorization"] = f"Bearer {_header_value('the token', token)}"
        self._http: Any
        self._transport_errors: tuple[type[Exception], ...]
        if transport is None and not uses_proxy(server):
            self._http = Session(server, headers=headers, connect_timeout=10.0, timeout=120.0,
                                 max_connections=max_connections)
            self._transport_errors = (TransportError,)
        else:
            import httpx

            self._http = httpx.Client(
                base_url=server,
                headers=headers,
                timeout=httpx.Timeout(120.0, connect=10.0),
                limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
                transport=transport,
            )
            self._transport_errors = (httpx.TransportError, TransportError)
        self.requests_sent = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------------------------------
    # plumbing

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201), allow: tuple[int, ...] = (),
                content_factory: Callable[[], Any] | None = None, **kwargs: Any) -> Response:
        """Send with retries; return the response if its status is in `ok` or `allow`, else raise ApiError.

        `content_factory` builds a fresh body per attempt (a file object cannot be replayed).
        """
        path = quote(path, safe=PATH_SAFE)
        for name, value in (kwargs.get("headers") or {}).items():
            _header_value(name, value)
        for attempt in range(MAX_ATTEMPTS):
            last = attempt == MAX_ATTEMPTS - 1
            if content_factory is not None:
                kwargs["content"] = content_factory()
            try:
                self.requests_sent += 1
                response = self._http.request(method, path, **kwargs)
            except self._transport_errors as exc:
                if refused_here(exc, self.server):
                    raise ApiError(0, "unreachable", f"cannot reach {self.server}: connection refused "
                                   "(is `fastest serve` running on that port?)") from exc
                if last:
                    raise ApiError(0, "unreachable", f"cannot reach {self.server}: {exc or type(exc).__name__}") from exc
                self._sleep(0.25 * 2**attempt)
                continue
            finally:
                closer = getattr(kwargs.get("content"), "close", None)
                if content_factory is not None and callable(closer):
                    closer()
            if response.status_code in ok or response.status_code in allow:
                return response
            if response.status_code in RETRY_STATUSES and not last:
                self._sleep(_retry_after(response, attempt))
                continue
            problem = problem_of(response)
            if response.status_code == 409 and problem.code in BEING_COLLECTED and not last:
                self._sleep(_retry_after(response, attempt))
                continue
            if problem.message == NO_ROUTE_MESSAGE and _path_of(self.server):
                problem = ApiError(404, problem.code, f"no such route at {self.server}: the server URL is the "
                                   f"server's root, without a path (e.g. {self.server[: -len(_path_of(self.server))]})",
                                   problem.body)
            raise problem
        raise AssertionError("unreachable")  # pragma: no cover

    def pause(self, seconds: float) -> None:
        """Wait as this client waits between retries (tests pass a `sleep` that records instead)."""
        self._sleep(min(max(seconds, 0.0), MAX_RETRY_WAIT_SECONDS))

    def get_json(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return self.request("GET", path, **kwargs).json()

    def post_json(self, path: str, body: dict[str, Any], *, idempotent_create: bool = False, **kwargs: Any) -> Response:
        headers = {"Idempotency-Key": _idempotency_key()} if idempotent_create else {}
        return self.request("POST", path, json=body, headers=headers, **kwargs)

    # ----------------------------------------------------------------------------------------------
    # projects and workspaces

    def list_projects(self, *, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return self.get_json("/v1/projects", params=params)

    def create_project(self, name: str) -> dict[str, Any]:
        return self.post_json("/v1/projects", {"name": name}, idempotent_create=True).json()["project"]

    def get_project(self, project_id: str) -> dict[str, Any]:
        return self.get_json(f"/v1/projects/{project_id}")

    def create_workspace(self, project_id: str, name: str, *, machine_id: str | None = None,
                         local_path: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if machine_id:
            body["machine_id"] = machine_id
        if local_path:
            body["local_path"] = local_path
        return self.post_json(f"/v1/projects/{project_id}/workspaces", body, idempotent_create=True).json()["workspace"]

    def workspace_snapshots(self, workspace_id: str, *, limit: int) -> dict[str, Any]:
        return self.get_json(f"/v1/workspaces/{workspace_id}/snapshots", params={"limit": limit})

    def drift_compare(self, workspace_id: str) -> dict[str, Any]:
        return self.get_json(f"/v1/workspaces/{workspace_id}/drift/compare")

    def set_current_manifest(self, workspace_id: str, manifest_hash: str, previous: str | None) -> Response:
        """The compare-and-set; returns 200 or 409 responses for the caller to read."""
        return self.post_json(
            f"/v1/workspaces/{workspace_id}/current-manifest",
            {"manifest_hash": manifest_hash, "previous_manifest_hash": previous},
            allow=(409,),
        )

    # ----------------------------------------------------------------------------------------------
    # snapshots

    def create_snapshot(self, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.post_json(f"/v1/projects/{project_id}/snapshots", body).json()

    def get_snapshot(self, snapshot_id: str) -> dict[str, Any]:
        return self.get_json(f"/v1/snapshots/{snapshot_id}")["snapshot"]

    # ----------------------------------------------------------------------------------------------
    # blobs and manifests

    def _exists(self, path: str, hashes: list[str]) -> ExistsAnswer:
        missing: list[str] = []
        existing: list[str] = []
        for start in range(0, len(hashes), EXISTS_BATCH):
            answer = self.post_json(path, {"hashes": hashes[start : start + EXISTS_BATCH]}).json()
            missing.extend(answer.get("missing", []))
            existing.extend(answer.get("existing", []))
        return ExistsAnswer(missing, existing)

    def blobs_exist(self, hashes: list[str]) -> ExistsAnswer:
        return self._exists("/v1/blobs/exists", hashes)

    def manifests_exist(self, hashes: list[str]) -> ExistsAnswer:
        return self._exists("/v1/blobs/manifests/exists", hashes)

    def upload_batch(self, body: bytes) -> BatchAnswer:
        return BatchAnswer.of(self.request(
            "POST", "/v1/blobs/batch", content=body, headers={"Content-Type": "application/octet-stream"}
        ))

    def upload_manifest_batch(self, body: bytes) -> BatchAnswer:
        """Many manifests in one request, as `POST /v1/blobs/batch` frames."""
        return BatchAnswer.of(self.request(
            "POST", "/v1/blobs/manifests/batch", content=body, headers={"Content-Type": "application/octet-stream"}
        ))

    def upload_blob_file(self, digest: str, path: Path) -> dict[str, Any]:
        """Stream one file; the server checks the hash (422 `hash_mismatch` if it changed meanwhile)."""
        return self.request(
            "PUT",
            f"/v1/blobs/upload/{digest}",
            content_factory=lambda: open(path, "rb"),
            headers={"Content-Type": "application/octet-stream"},
        ).json()

    def get_manifest(self, digest: str) -> bytes:
        return self.request("GET", f"/v1/blobs/manifests/{digest}").content

    def download_blob(self, digest: str, sink: BinaryIO) -> int:
        """Stream a blob into `sink`, verifying its hash; returns its size. Retries restart from the top."""
        for attempt in range(MAX_ATTEMPTS):
            sink.seek(0)
            sink.truncate()
            hasher = hashlib.sha256()
            size = 0
            try:
                self.requests_sent += 1
                with self._http.stream("GET", f"/v1/blobs/download/{digest}") as response:
                    if response.status_code in RETRY_STATUSES and attempt < MAX_ATTEMPTS - 1:
                        self._sleep(_retry_after(response, attempt))
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise problem_of(response)
                    for chunk in response.iter_bytes(DOWNLOAD_CHUNK_BYTES):
                        hasher.update(chunk)
                        sink.write(chunk)
                        size += len(chunk)
            except self._transport_errors as exc:
                if attempt == MAX_ATTEMPTS - 1:
                    raise ApiError(0, "unreachable", f"cannot reach {self.server}: {exc}") from exc
                self._sleep(0.25 * 2**attempt)
                continue
            if hasher.hexdigest() != digest:
                raise ApiError(200, "hash_mismatch", f"blob {digest} came back with different content")
            return size
        raise ApiError(0, "unreachable", f"gave up downloading blob {digest}")

    def download_batch(self, hashes: list[str], open_sink: Callable[[str], BinaryIO],
                       on_done: Callable[[str, int], None], *, route: str = BLOB_DOWNLOAD_BATCH) -> list[str]:
        """Stream many blobs in one request (`POST /v1/blobs/download/batch`, or the manifests' twin
        with `route=MANIFEST_DOWNLOAD_BATCH`), frame by frame.

        Each frame's bytes go into `open_sink(hash)` (closed here), are verified against the hash,
        and then `on_done(hash, size)` is called. A broken connection or a transient status retries
        the blobs not received yet. Returns the hashes the server did not send (it does not have
        them).
        """
        remaining = list(dict.fromkeys(hashes))
        for attempt in range(MAX_ATTEMPTS):
            last = attempt == MAX_ATTEMPTS - 1
            received: set[str] = set()
            try:
                self.requests_sent += 1
                with self._http.stream("POST", route, json={"hashes": remaining}) as response:
                    if response.status_code in RETRY_STATUSES and not last:
                        self._sleep(_retry_after(response, attempt))
                        continue
                    if response.status_code != 200:
                        response.read()
                        raise problem_of(response)
                    _read_download_frames(response, remaining, received, open_sink, on_done)
                return [h for h in remaining if h not in received]
            except (*self._transport_errors, FramingError) as exc:
                if isinstance(exc, FramingError) and not exc.truncated:
                    raise ApiError(200, "invalid_batch_response", f"malformed batch answer: {exc}") from exc
                remaining = [h for h in remaining if h not in received]
                if not remaining:  # it broke after the last frame: nothing is missing
                    return []
                if last:
                    raise ApiError(0, "unreachable", f"cannot reach {self.server}: {exc}") from exc
                self._sleep(0.25 * 2**attempt)
        raise ApiError(0, "unreachable", f"gave up downloading {len(remaining)} blob(s)")


def _read_download_frames(response: Response | httpx.Response, expected: list[str], received: set[str],
                          open_sink: Callable[[str], BinaryIO], on_done: Callable[[str, int], None]) -> None:
    """Check and store each frame of a batch download: only hashes asked for, in the order asked."""
    position = {digest: index for index, digest in enumerate(expected)}
    next_index = 0
    reader = FrameReader(response.iter_bytes())  # as it arrives: what was received is kept if the stream breaks
    while (header := reader.header()) is not None:
        digest, length = header
        index = position.get(digest)
        if index is None or index < next_index:
            raise ApiError(200, "invalid_batch_response", f"the server sent blob {digest}, not asked for at that point")
        next_index = index + 1
        hasher = hashlib.sha256()
        sink = open_sink(digest)
        try:
            for piece in reader.body(length):
                hasher.update(piece)
                sink.write(piece)
        finally:
            sink.close()
        if hasher.hexdigest() != digest:
            raise ApiError(200, "hash_mismatch", f"blob {digest} came back with different content")
        received.add(digest)
        on_done(digest, length)


def _header_value(what: str, value: str) -> str:
    """`value` if a header can carry it as it is; otherwise one line saying why (never a header
    injected by a line break, nor a traceback from a character outside Latin-1)."""
    if any(c in value for c in "\r\n\x00") or not value.isascii() or not value.isprintable():
        raise ApiError(0, "invalid_header", f"{what} cannot be sent: it holds a line break or a character outside printable ASCII")
    return value
