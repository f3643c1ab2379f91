"""The storage and service contracts the application is written against.

Each port is shaped like the Cloudflare API it stands for (D1, R2, KV, Durable Objects, Workers AI),
so the Cloudflare adapters stay thin and the local adapters can be held to the platform's semantics,
limits included. Nothing above `fastest.platform` knows which implementation it is talking to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Protocol, Sequence, runtime_checkable


# --------------------------------------------------------------------------------------------------
# Database (D1)
# --------------------------------------------------------------------------------------------------

# D1's documented limits. The local Database enforces them so a limit is found in a test.
D1_MAX_BOUND_PARAMETERS = 100
D1_MAX_STATEMENT_BYTES = 100_000
D1_MAX_VALUE_BYTES = 2_000_000
D1_MAX_SAFE_INTEGER = 2**53 - 1  # values cross the JS boundary as doubles


class DatabaseError(Exception):
    """A statement failed: bad SQL, a constraint, or a platform limit (message like D1's)."""


class ConstraintError(DatabaseError):
    """A UNIQUE / FOREIGN KEY / CHECK constraint refused the write."""


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What D1 returns from `all()`/`run()`: rows as dicts plus `meta` (changes, last_row_id…)."""

    results: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return int(self.meta.get("changes", 0))

    @property
    def last_row_id(self) -> int:
        return int(self.meta.get("last_row_id", 0))


class Statement(Protocol):
    """A prepared statement. `bind` returns a new bound statement (D1 semantics)."""

    def bind(self, *params: Any) -> "Statement": ...

    async def all(self) -> QueryResult: ...

    async def first(self, column: str | None = None) -> Any: ...

    async def run(self) -> QueryResult: ...


class Database(Protocol):
    """D1: `prepare(sql).bind(*args)` → `all()/first()/run()`.

    `batch([...])` is the **only** atomic unit: D1 has no interactive transactions, so a use case that
    must change several rows together builds its statements first and sends them in one batch.
    """

    def prepare(self, sql: str) -> Statement: ...

    async def batch(self, statements: Sequence[Statement]) -> list[QueryResult]: ...


# --------------------------------------------------------------------------------------------------
# BlobStore (R2)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """An object's metadata (R2's `R2Object` without the body)."""

    key: str
    size: int
    etag: str
    uploaded: datetime
    custom_metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A ranged read: `offset` and `length` (length None = to the end), like R2's `range` option."""

    offset: int
    length: int | None = None


class BlobBody(Protocol):
    """An object with its body (R2's `R2ObjectBody`). The body streams; `read()` buffers it."""

    info: BlobInfo
    range: ByteRange | None

    def stream(self) -> AsyncIterator[bytes]: ...

    def native_stream(self) -> Any:
        """The body as the runtime's responses take it, to send without copying through Python (a JS
        ReadableStream on Workers; `stream()` elsewhere). Like `stream()`, it can be consumed once."""
        ...

    async def read(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class BlobListing:
    objects: list[BlobInfo]
    delimited_prefixes: list[str]
    truncated: bool
    cursor: str | None


class ChecksumMismatch(Exception):
    """A `put_stream` whose body's SHA-256 is not the one given; nothing was stored. `actual`: the
    SHA-256 the store computed, when it says (else None)."""

    def __init__(self, message: str, *, actual: str | None = None) -> None:
        super().__init__(message)
        self.actual = actual


class BlobStore(Protocol):
    """R2. A `put` is atomic: readers see the whole object or nothing, never a partial write."""

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterator[bytes],
        *,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> BlobInfo: ...

    async def put_stream(
        self,
        key: str,
        stream: Any,
        *,
        sha256: str,
        custom_metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> BlobInfo:
        """Put a request body as it arrives (the runtime's own stream: a JS ReadableStream on Workers,
        async byte chunks elsewhere), checked against `sha256` by the store itself: on a mismatch
        nothing is stored and ChecksumMismatch is raised."""
        ...

    async def get(self, key: str, *, range: ByteRange | None = None) -> BlobBody | None: ...

    async def head(self, key: str) -> BlobInfo | None: ...

    async def delete(self, keys: str | Sequence[str]) -> None: ...

    async def list(
        self,
        *,
        prefix: str = "",
        cursor: str | None = None,
        delimiter: str | None = None,
        limit: int = 1000,
    ) -> BlobListing: ...


# --------------------------------------------------------------------------------------------------
# KeyValue (Workers KV)
# --------------------------------------------------------------------------------------------------

KV_MIN_TTL_SECONDS = 60
KV_MAX_VALUE_BYTES = 25 * 1024 * 1024
KV_MAX_KEY_BYTES = 512


@dataclass(frozen=True, slots=True)
class KeyListing:
    keys: list[str]
    cursor: str | None
    list_complete: bool


class KeyValue(Protocol):
    """Workers KV: eventually consistent, for caches only (never counters or locks).

    `expiration_ttl` must be at least 60 seconds, as on the platform.
    """

    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, *, expiration_ttl: int | None = None) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(self, *, prefix: str = "", cursor: str | None = None, limit: int = 1000) -> KeyListing: ...


# --------------------------------------------------------------------------------------------------
# SessionNamespace (Durable Objects)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """A request to one session object: the shape of a DO `fetch`, without a JS Request."""

    method: str
    path: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class SessionStub(Protocol):
    async def fetch(self, request: SessionRequest) -> SessionResponse: ...


class SessionNamespace(Protocol):
    """One instance per id; requests to one instance are serialized; its storage survives restarts."""

    def get(self, name: str) -> SessionStub: ...


class SessionStorage(Protocol):
    """A session object's own storage (DO `ctx.storage`): small JSON-able values by key."""

    async def get(self, key: str) -> Any: ...

    async def put(self, key: str, value: Any) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def list(
        self, *, prefix: str = "", start: str | None = None, end: str | None = None,
        reverse: bool = False, limit: int | None = None,
    ) -> dict[str, Any]:
        """Entries whose key starts with `prefix` and lies in [`start`, `end`), in key order (descending
        with `reverse`: the last ones first), at most `limit` of them (DO storage's
        `list({prefix, start, end, reverse, limit})`; `reverse` does not change what `start` and `end`
        mean). A dict, in that order."""
        ...


class SessionAlarms(Protocol):
    """A session object's alarm (DO `ctx.storage.setAlarm/getAlarm/deleteAlarm`), offered by its
    storage. One alarm per object: setting it replaces the previous one. When it is due the runtime
    calls the object's `alarm()` (serialized with its requests); delivery is at-least-once: a
    handler that raises, or whose process dies, is called again (with backoff after an error).
    Times are milliseconds since the epoch."""

    async def set_alarm(self, scheduled_ms: int) -> None: ...

    async def get_alarm(self) -> int | None: ...

    async def delete_alarm(self) -> None: ...


# --------------------------------------------------------------------------------------------------
# Vault, Clock, RateLimiter, HttpClient, SignatureVerifier, AIModel
# --------------------------------------------------------------------------------------------------


class VaultError(Exception):
    """A ciphertext could not be opened: wrong key, wrong owner/purpose, or tampered."""


class Vault(Protocol):
    """AES-GCM with a 96-bit random nonce; the associated data binds owner + purpose, so a ciphertext
    copied to another row or another user does not decrypt. Ciphertexts carry their key id."""

    async def encrypt(self, plaintext: str, *, owner: str, purpose: str) -> str: ...

    async def decrypt(self, ciphertext: str, *, owner: str, purpose: str) -> str: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
        ...


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window frees a slot


class RateLimiter(Protocol):
    """Counts hits per key inside a window. Approximate on the edge is fine for abuse limits."""

    async def hit(self, key: str, *, limit: int, window_seconds: int) -> RateDecision: ...


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class HttpStream:
    """A response whose body arrives in chunks (a model's server-sent events). `close()` must be
    awaited when done, read to the end or not, to release the connection."""

    status: int
    headers: Mapping[str, str]
    chunks: AsyncIterator[bytes]
    close: Callable[[], Awaitable[None]]


class HttpClient(Protocol):
    """Outbound HTTP, only to configured hosts, always with a timeout. Redirects are never followed
    (a 3xx is answered as it came), on either runtime."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse: ...

    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
        pin: str | None = None,
    ) -> HttpStream:
        """Send the request and return as soon as the status and headers are in; `timeout` bounds
        the wait for each chunk, not the whole body.

        `pin`: connect to this IP address instead of resolving the URL's host again (the host still
        names the TLS server and the Host header), so an address checked beforehand is the one used
        (no DNS rebinding in between). Where the runtime cannot pin (Workers' fetch), it is ignored."""
        ...

    async def resolve(self, host: str, port: int) -> list[str]:
        """The IP addresses `host` resolves to (an IP literal resolves to itself)."""
        ...


class Background(Protocol):
    """Work that goes on after the response (`ctx.waitUntil` on Workers, a tracked task locally)."""

    def defer(self, work: Coroutine[Any, Any, Any]) -> bool:
        """Start `work` in the background. False (and `work` closed, unstarted) when this runtime
        cannot run it now: the caller then relies on a cron job to pick the work up."""
        ...


class AIError(Exception):
    """The model provider failed or refused (unreachable, bad key, malformed answer). The message is
    for people and never carries the key."""


class SignatureVerifier(Protocol):
    """Public-key signature checks (ID tokens): `cryptography` locally, WebCrypto on Workers.

    `verify_rs256` checks an RSASSA-PKCS1-v1_5 / SHA-256 signature with the RSA public key given as
    a JWK (`n`, `e` base64url). It answers False for a bad signature or an unusable key; it never
    raises for those, so a forged token and a broken key look the same to the caller.
    """

    async def verify_rs256(self, jwk: Mapping[str, Any], message: bytes, signature: bytes) -> bool: ...


@runtime_checkable
class AIModel(Protocol):
    """A chat model: completion, whole or streamed. The answer names the provider/model that produced it.

    Messages are in OpenAI's chat format (`role`, `content`, and for tool use `tool_calls` /
    `tool_call_id`); tools in OpenAI's function-calling format
    (`{"type": "function", "function": {"name", "description", "parameters"}}`).
    """

    provider: str
    model: str

    async def complete(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> Mapping[str, Any]:
        """The whole answer: at least `{content, model, provider}` (plus `tool_calls` when asked to
        use tools)."""
        ...

    def stream(
        self, messages: Sequence[Mapping[str, Any]], *, tools: Sequence[Mapping[str, Any]] | None = None, **options: Any
    ) -> AsyncIterator[Mapping[str, Any]]:
        """The answer as it is produced, as events:

        - `{"type": "delta", "content": str}`: more text;
        - `{"type": "tool_call", "id": str, "name": str, "arguments": str}`: a complete tool call
          (arguments are the JSON text the model wrote);
        - `{"type": "done", "model": str, "provider": str, "finish_reason": str | None}`: last.

        Raises AIError when the provider fails."""
        ...


class EmbeddingModel(Protocol):
    """An embedding model (the Atlas's search by meaning): texts in, one vector each, all of the
    model's dimension. Vectors of different models (`provider:model`) are never compared."""

    provider: str
    model: str

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


# --------------------------------------------------------------------------------------------------
# VectorIndex (Vectorize)
# --------------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------------
# OpenCode as the conversation's agent
# --------------------------------------------------------------------------------------------------


class Workdir(Protocol):
    """A working tree checked out to a directory an agent edits itself (the local runtime's
    OpenCode). Paths are relative and `/`-joined; `scan` leaves out what a push leaves out."""

    def keeps(self, path: str) -> bool:
        """Whether `path` is part of the tree here (not under `.git/`, `node_modules/`, …)."""
        ...

    async def scan(self) -> dict[str, tuple[str, int, int]]:
        """Every file kept: path → (sha256 hex, size, mode)."""
        ...

    async def write(self, path: str, data: bytes, mode: int) -> None: ...

    async def remove(self, path: str) -> None: ...

    async def read(self, path: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class OpenCodeServer:
    """A running OpenCode server (`opencode serve`): where it answers, the headers that sign in to
    it, and the directory it works in (its `?directory=`; None: the server's own). `files` is that
    directory when this runtime reaches it (the local runtime), else None; `alive()` says whether
    its process still runs (None: not ours to watch)."""

    url: str
    directory: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    files: Workdir | None = None
    alive: Callable[[], bool] | None = None

    def running(self) -> bool:
        return True if self.alive is None else bool(self.alive())


class OpenCodeHost(Protocol):
    """Where conversations' OpenCode servers run: processes this machine starts (local), or the
    server its operator runs (`FASTEST_OPENCODE_URL`, the Worker)."""

    async def server(self, name: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> OpenCodeServer:
        """The server for conversation `name`, started if this host starts them and it is not
        running (or runs with another configuration). `config` is OpenCode's `opencode.json`;
        `secrets` are environment variables it refers to (`{env:NAME}`), never written to disk."""
        ...

    def done(self, name: str) -> None:
        """A turn of conversation `name` ended (a host that starts servers may stop an idle one)."""
        ...


@dataclass(frozen=True, slots=True)
class VectorMatch:
    id: str
    score: float  # cosine similarity
    metadata: Mapping[str, Any] = field(default_factory=dict)


class VectorIndex(Protocol):
    """Vectorize: vectors by namespace (a project), each carrying the id of the model that made it;
    a query compares only vectors of the same model. Writes may become visible a little later (on
    Vectorize upserts are asynchronous)."""

    async def upsert(self, namespace: str, model: str, items: Sequence[tuple[str, Sequence[float], Mapping[str, Any]]]) -> None: ...

    async def query(self, namespace: str, model: str, vector: Sequence[float], *, top_k: int = 20) -> list[VectorMatch]: ...

    async def delete(self, namespace: str, model: str, ids: Sequence[str]) -> None: ...
# DeployProvider (where deployments go: the local runtime itself, or the user's Cloudflare account)
# --------------------------------------------------------------------------------------------------


class DeployError(Exception):
    """The provider refused or failed (bad credential, API error). The message is for people (it
    becomes the deployment's `error`) and never carries the credential."""


@dataclass(frozen=True, slots=True)
class DeployAsset:
    """One file of a deployment's static output: its path under the output root and content hash."""

    path: str
    hash: str  # SHA-256 hex of the bytes (our blob hash)
    size: int


@dataclass(frozen=True, slots=True)
class ProvisionedResource:
    external_id: str
    connection: Mapping[str, Any]  # sealed at rest, masked in listings


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    url: str
    version: str | None = None  # the provider's version id, kept for rollback
    uploaded: int = 0  # how many asset files the provider had to receive


@dataclass(frozen=True, slots=True)
class WorkerModule:
    """One module of a Worker's upload: its name, its type (`domain.worker_modules.PART_TYPES`) and
    the blob holding its bytes."""

    name: str
    type: str
    hash: str  # SHA-256 hex of the bytes (our blob hash)


@dataclass(frozen=True, slots=True)
class WorkerCode:
    main_module: str
    modules: Sequence[WorkerModule]  # the main module first


@dataclass(frozen=True, slots=True)
class DeployRequest:
    deployment_id: str
    slug: str  # a DNS label unique to the deployment
    project_slug: str  # a DNS label for the project (a Worker's script name)
    output_manifest_hash: str
    list_assets: Callable[[], Awaitable[Sequence[DeployAsset]]]  # every file of the output (walks the tree)
    read_asset: Callable[[str], Awaitable[bytes]]  # hash → bytes (from the user's blobs)
    resources: Sequence[Mapping[str, Any]] = ()  # {type, name, binding, external_id}
    entry: str | None = None  # the Worker's entry, when the project has code
    compatibility_date: str | None = None
    log: Callable[[str], Awaitable[None]] | None = None
    worker: WorkerCode | None = None  # the entry's modules (None: not bundled, or no code)
    compatibility_flags: Sequence[str] = ()
    has_assets: bool = True  # False: a Worker with code and no assets directory
    assets_binding: str | None = None
    assets_settings: Mapping[str, Any] = field(default_factory=dict)
    worker_vars: Mapping[str, Any] = field(default_factory=dict)
    # The bytes of a file of the output tree by its path (hidden ones too), None if there is none.
    read_output_file: Callable[[str], Awaitable[bytes | None]] | None = None


class DeployProvider(Protocol):
    """A place deployments go. `verify` checks a credential; resources are created and destroyed
    by type (`d1`, `kv`, `r2`); `deploy` makes the static output (and a Worker, when there is one)
    live and returns its URL; `rollback` makes an earlier version live again."""

    name: str

    async def verify(self) -> Mapping[str, Any]: ...

    async def create_resource(self, type: str, name: str) -> ProvisionedResource: ...

    async def destroy_resource(self, type: str, external_id: str) -> None: ...

    async def deploy(self, request: DeployRequest) -> DeployOutcome: ...

    async def rollback(self, project_slug: str, version: str) -> DeployOutcome: ...
