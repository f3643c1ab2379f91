"""The `edge` runtime of the HTTP-level tests: the Worker on the edge harness (edge-harness/).

`FASTEST_TEST_RUNTIME=edge` makes the `platform` and `client` fixtures (tests/conftest.py) talk to one
harness per test session: `src/entry.py` under Pyodide with miniflare's D1, R2, KV and the
conversation's Durable Object. Each test starts from empty storage, with its own `Settings` as the
Worker's vars and the test's clock as the Worker's clock (sent with each request).

The test's own `platform` (what a test reads and writes directly: tokens, rows, blobs, jobs) is the
Cloudflare adapters (`fastest.platform.cloudflare`) over the harness's bindings, reached by one small
call per binding method; what a Worker has no binding for (the vault's key, outbound HTTP, models)
is the local runtime's, with the vault key shared with the Worker.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import subprocess
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import httpx

from fastest.config import Settings
from fastest.platform import Platform
from fastest.platform.cloudflare.d1 import D1Database
from fastest.platform.cloudflare.kv import WorkersKV
from fastest.platform.cloudflare.r2 import R2BlobStore

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = os.environ.get("FASTEST_TEST_RUNTIME", "local")
NOW_HEADER = "x-edge-harness-now"
LOG = ROOT / ".edge" / "harness.log"


def is_edge() -> bool:
    return RUNTIME == "edge"


# The tests that do not run on `edge`, each with its reason: a test file, or one test (its node id
# without parameters). Everything else under tests/api and tests/contract runs on both runtimes.
EDGE_SKIPS: dict[str, str] = {
    "tests/api/test_sync.py::test_two_executes_of_one_preview_racing_one_wins":
        "builds its own in-process app around the test's platform to race two requests",
    "tests/api/test_sync.py::test_expired_and_unknown_previews_are_gone":
        "a preview expires by its KV TTL, which workerd counts on its real clock, not the test's",
}


# And every test that uses `monkeypatch`: what it patches lives in the test process, not in the Worker.
PATCHING = "patches the app's code in the test process (monkeypatch), which the Worker does not share"


def edge_skip_reason(nodeid: str, fixtures: Iterable[str] = ()) -> str | None:
    """Why the test with this node id does not run on `edge` (None: it runs)."""
    bare = nodeid.split("[", 1)[0]
    listed = EDGE_SKIPS.get(bare) or EDGE_SKIPS.get(bare.split("::", 1)[0])
    return listed or (PATCHING if "monkeypatch" in fixtures else None)


class HarnessError(RuntimeError):
    """The harness refused a storage call: carries workerd's error message, as a JS error would."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EdgeHarness:
    """One `node edge-harness/harness.mjs` for the test session."""

    def __init__(self) -> None:
        # The harness's own log (the Worker's tracebacks among it) goes to .edge/harness.log.
        LOG.parent.mkdir(exist_ok=True)
        self._log = LOG.open("w")
        self._process = subprocess.Popen(
            ["node", str(ROOT / "edge-harness/harness.mjs"), "--port", "0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        line = self._process.stdout.readline() if self._process.stdout else ""
        if "listening on " not in line:
            self._process.kill()
            raise RuntimeError(f"the edge harness did not start (see {LOG}):\n{line}")
        self.url = line.split("listening on ", 1)[1].split()[0]

    def call(self, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + "/__edge_harness/" + path, data=json.dumps(body or {}).encode(), method="POST",
            headers={"content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise HarnessError(json.loads(error.read() or b"{}").get("error", str(error))) from None

    def storage(self, binding: str, method: str, *args: Any) -> Any:
        return decode(self.call("storage", {"binding": binding, "method": method, "args": encode(list(args))})["result"])

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._log.close()


def encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$bytes" in value:
            return base64.b64decode(value["$bytes"])
        if "$date" in value:
            return datetime.fromtimestamp(value["$date"] / 1000, tz=timezone.utc)
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# --- The bindings as the test process sees them: each method one call into the harness ------------


class _Statement:
    def __init__(self, harness: EdgeHarness, sql: str, params: tuple[Any, ...] = ()) -> None:
        self.harness, self.sql, self.params = harness, sql, params

    def bind(self, *params: Any) -> "_Statement":
        return _Statement(self.harness, self.sql, params)

    async def _run(self, method: str, *extra: Any) -> Any:
        return self.harness.storage("DB", method, self.sql, list(self.params), *extra)

    async def all(self) -> Any:
        return await self._run("all")

    async def run(self) -> Any:
        return await self._run("run")

    async def first(self, column: str | None = None) -> Any:
        return await (self._run("first", column) if column is not None else self._run("first"))


class RemoteD1:
    def __init__(self, harness: EdgeHarness) -> None:
        self.harness = harness

    def prepare(self, sql: str) -> _Statement:
        return _Statement(self.harness, sql)

    async def batch(self, statements: list[_Statement]) -> Any:
        return self.harness.storage("DB", "batch", [[s.sql, list(s.params)] for s in statements])


class _Stream:
    """An R2 object's body, read whole by the harness, handed out in one chunk."""

    def __init__(self, data: bytes) -> None:
        self._chunks = [data] if data else []

    def getReader(self) -> "_Stream":
        return self

    async def read(self) -> dict[str, Any]:
        return {"done": False, "value": self._chunks.pop(0)} if self._chunks else {"done": True}


class RemoteR2:
    def __init__(self, harness: EdgeHarness) -> None:
        self.harness = harness

    def _object(self, found: Any) -> Any:
        if isinstance(found, dict) and "bodyBytes" in found:
            found["body"] = _Stream(found.pop("bodyBytes"))
        return found

    async def get(self, key: str, **options: Any) -> Any:
        return self._object(self.harness.storage("BLOBS", "get", key, *([options] if options else [])))

    async def head(self, key: str) -> Any:
        return self.harness.storage("BLOBS", "head", key)

    async def put(self, key: str, value: Any, **options: Any) -> Any:
        return self.harness.storage("BLOBS", "put", key, value, options)

    async def delete(self, keys: Any) -> Any:
        return self.harness.storage("BLOBS", "delete", keys)

    async def list(self, **options: Any) -> Any:
        return self.harness.storage("BLOBS", "list", options)


class RemoteKV:
    def __init__(self, harness: EdgeHarness) -> None:
        self.harness = harness

    async def get(self, key: str) -> Any:
        return self.harness.storage("CACHE", "get", key)

    async def put(self, key: str, value: str, **options: Any) -> Any:
        return self.harness.storage("CACHE", "put", key, value, *([options] if options else []))

    async def delete(self, key: str) -> Any:
        return self.harness.storage("CACHE", "delete", key)

    async def list(self, **options: Any) -> Any:
        return self.harness.storage("CACHE", "list", options)


# --- The fixtures' pieces -------------------------------------------------------------------------


def worker_vars(settings: Settings, vault_key: str) -> dict[str, str]:
    """The test's settings as the Worker's vars (FASTEST_<FIELD>, strings), and the vault key secret."""
    values = {"FASTEST_" + f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}
    values["FASTEST_VAULT_KEY"] = vault_key
    return values


class EdgePlatform(Platform):
    """The test's `Platform` on `edge`: new settings given to it (a test pointing the app at its
    loopback model server) become the Worker's vars too, as a redeploy with new vars would."""

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "settings" and getattr(self, "_harness", None) is not None:
            self._harness.call("configure", {"vars": worker_vars(value, self._vault_key)})


def open_edge_platform(harness: EdgeHarness, data_dir: Path, settings: Settings, clock: Any) -> Platform:
    """A fresh start on the harness for one test, and the test's own `Platform` over its storage."""
    from durable_objects.local import open_platform

    vault_key = base64.b64encode(secrets.token_bytes(32)).decode()
    harness.call("reset")
    harness.call("configure", {"vars": worker_vars(settings, vault_key)})
    local = open_platform(data_dir, settings, clock=clock, env={"FASTEST_VAULT_KEY": vault_key})
    values = {f.name: getattr(local, f.name) for f in dataclasses.fields(local)}
    values.update(db=D1Database(RemoteD1(harness)), blobs=R2BlobStore(RemoteR2(harness)), kv=WorkersKV(RemoteKV(harness)),
                  runtime="cloudflare")
    platform = EdgePlatform(**values)
    object.__setattr__(platform, "_vault_key", vault_key)
    object.__setattr__(platform, "_harness", harness)
    return platform


def edge_client(harness: EdgeHarness, clock: Any) -> Iterator[Any]:
    """An HTTP client of the Worker, shaped like Starlette's TestClient (follows redirects, has
    `websocket_connect`); each request carries the test's clock."""
    def stamp(request: httpx.Request) -> None:
        request.headers[NOW_HEADER] = str(int(clock.now().timestamp() * 1000))

    client = EdgeClient(base_url=harness.url, follow_redirects=True, event_hooks={"request": [stamp]}, timeout=60)
    client.clock = clock
    return client


class EdgeClient(httpx.Client):
    clock: Any = None

    def websocket_connect(self, url: str, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None, **_: Any):
        from tests.edge_sockets import EdgeWebSocket

        target = str(self.base_url).rstrip("/").replace("http://", "ws://", 1) + url
        sent = dict(headers or {})
        sent[NOW_HEADER] = str(int(self.clock.now().timestamp() * 1000))
        return EdgeWebSocket(target, sent, subprotocols)
