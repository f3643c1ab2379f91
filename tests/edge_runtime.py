"""The `edge` runtime of the HTTP-level tests: the Worker on the edge harness (edge-harness/).

`FASTEST_TEST_RUNTIME=edge` makes the `platform` and `client` fixtures (tests/conftest.py) talk to one
harness per test session: `src/entry.py` under Pyodide with miniflare's D1, R2, KV and the
conversation's Durable Object. Each test starts from empty storage, with its own `Settings` as the
Worker's vars and the test's clock as the Worker's clock (sent with each request).

The test's own `platform` (what a test reads and writes directly: tokens, rows, blobs, jobs) is the
Cloudflare adapters (`fastest.platform.cloudflare`) over the harness's bindings, reached by one small
call per binding method, and its conversation objects are the Worker's own; what a Worker has no
binding for (the vault's key, outbound HTTP, models) is the local runtime's, with the vault key shared
with the Worker. Work it defers is left to the Worker's cron (`EdgeHarness.scheduled`), as the Worker
leaves work deferred outside an invocation.

A test points the Worker at its loopback model server through settings (`use_model`), which become
the Worker's vars; its webhook receivers are public HTTPS hosts (`tests/loopback.py`,
`EdgeHarness.register_host`).
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
from typing import Any, Iterator

import httpx

from fastest.config import Settings
from fastest.platform import EDGE, Platform
from fastest.platform.cloudflare.background import WaitUntilBackground
from fastest.platform.cloudflare.d1 import D1Database
from fastest.platform.cloudflare.kv import WorkersKV
from fastest.platform.cloudflare.r2 import R2BlobStore
from fastest.ports import SessionRequest, SessionResponse

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = os.environ.get("FASTEST_TEST_RUNTIME", "local")
NOW_HEADER = "x-edge-harness-now"
LOG = ROOT / ".edge" / "harness.log"
# The caller's address as the app records it: Starlette's in-process client, or loopback through the
# harness (which sets CF-Connecting-IP as Cloudflare's edge does).
CLIENT_IP = "127.0.0.1" if RUNTIME == "edge" else "testclient"


def is_edge() -> bool:
    return RUNTIME == "edge"


# The tests that do not run on `edge`, each with its reason: a test file, one test (its node id,
# without parameters for all of them, or with them for one case). Besides these, a test is skipped
# where it hands the platform an object of its own (IN_PROCESS_ONLY). Everything else under tests/api
# and tests/contract runs on both runtimes.
EDGE_SKIPS: dict[str, str] = {
    # Features of the local runtime alone (by design, not offered by the Worker).
    # The local runtime's own deploy provider and the local server that serves its sites (on the
    # Worker, deployments go to Cloudflare's API: tests/api/deploy_target.py, test_deploy_cloudflare.py).
    "tests/api/test_deployments.py::test_the_local_server_serves_every_file_by_host_and_by_path":
        "the local server serving the local provider's sites (the Worker deploys to Cloudflare, which serves them)",
    "tests/api/test_deployments.py::test_the_project_address_serves_its_latest_deployment":
        "the project's stable address is the local server's (on Cloudflare the Worker's own address is per project)",
    "tests/api/test_deployments.py::test_a_worker_with_code_deploys_its_assets_and_says_so":
        "the local provider serves a Worker's assets without its code (Cloudflare runs it: test_deploy_cloudflare.py)",
    "tests/api/test_deploy_server_builds.py":
        "server-side builds run the project's build command on the local server; the Worker runs no commands (by design)",
    "tests/api/test_audit_and_secrets_at_rest.py::test_the_audited_ip_is_the_edges_header_only_where_the_platform_has_one":
        "builds its own in-process apps, one per platform capability, to compare them",
    # The local owner's sign-in on the device page exists on the local runtime alone (the Worker
    # refuses it: test_local_owner_is_refused_on_the_worker_runtime runs on both).
    "tests/api/test_device_page.py::test_local_owner_approves_from_the_page":
        "the local owner's sign-in from this machine is a local runtime feature (the Worker refuses it)",
    "tests/api/test_device_page.py::test_local_owner_can_deny_from_the_page":
        "the local owner's sign-in from this machine is a local runtime feature (the Worker refuses it)",
    "tests/api/test_device_page.py::test_local_owner_is_refused_to_a_browser_on_another_machine":
        "needs a caller that is not on loopback; every request reaches the harness from loopback",
    "tests/api/test_blobs.py::test_oversize_upload_is_413_and_leaves_nothing":
        "sends a chunked body: the Worker's streaming upload needs Content-Length (411, documented)",
    # Run in-process on edge they would pass, but through the app's ASGI upload route, which the
    # Worker never takes for uploads (its entry streams them: fastest/edge/blob_stream.py); and the
    # harness reads a request's whole body before it calls the Worker, so a client that vanishes
    # midway never reaches the Worker at all.
    **{f"tests/api/test_blobs.py::{name}":
       "cuts an upload's body short in an in-process app (the Worker's streaming upload is not reachable that way)"
       for name in ("test_client_disconnect_midway_stores_nothing", "test_client_stream_raising_midway_stores_nothing")},
    "tests/api/test_audit_and_secrets_at_rest.py::test_the_database_file_holds_no_plaintext_token_device_code_or_key":
        "reads the local database file",
    "tests/api/test_webhooks.py::test_plain_http_to_loopback_needs_the_operator_setting":
        "the operator's plain-HTTP-to-loopback exception exists on the local runtime only (the Worker refuses it: "
        "test_the_setting_never_opens_loopback_on_the_edge)",
    "tests/api/test_atlas.py::test_a_large_tree_answers_202_and_finishes_in_the_background":
        "on the Worker the index goes on by the atlas-index cron job, not a deferred task (by design)",
    "tests/api/test_atlas.py::test_search_by_described_behaviour_with_the_local_embedding_model":
        "the local runtime's in-process embedding model (wordllama, a server-only package) by design; the Worker "
        "embeds with the provider's model into Vectorize, which the harness does not have",
    "tests/api/test_atlas_diagrams.py::test_a_big_system_is_aggregated_within_mermaids_limits":
        "more than a minute of CPU under Pyodide here for one request (over a Worker's CPU limit; a known cost)",
    # What the test does cannot reach the Worker.
    **{f"tests/api/test_gc.py::{name}":
       "interleaves requests inside the GC's own blob-store calls (a hook in the app's store, in-process only)"
       for name in ("test_gc_condemning_a_tree_before_the_closure_check_makes_the_check_fail",
                    "test_an_upload_racing_gc_waits_then_succeeds", "test_two_runs_at_once_delete_only_their_own_claims",
                    "test_a_crashed_run_is_finished_by_a_later_one")},
    "tests/api/test_conventions.py::test_unexpected_errors_are_500_without_leaks":
        "builds its own in-process app with a failing route",
    # They change the app's code in the test process (monkeypatch) where the Worker runs it. (Tests
    # that patch code running in the test process itself, the CLI or a service they call, run on both.)
    "tests/api/test_action_item_runs.py::test_a_lost_compare_and_set_applies_nothing":
        "moves the workspace between the apply's read and its batch by patching the service the Worker runs",
    "tests/api/test_action_items.py::test_scans_are_kept_per_blob_and_big_trees_wait_for_the_job":
        "lowers the Worker's lazy-scan threshold (a module constant) in the test process",
    "tests/api/test_atlas.py::test_a_big_index_compacts_the_text_index_and_search_still_works":
        "lowers the Worker's compaction threshold (a module constant) in the test process",
    "tests/api/test_blob_batches.py::test_download_batch_refuses_an_answer_beyond_the_size_bound":
        "lowers the Worker's download-batch bound (a module constant) in the test process",
    "tests/api/test_conversations.py::test_the_timeline_is_the_last_events_without_deltas":
        "lowers the Durable Object's timeline length (a module constant) in the test process",
    # workerd keeps its own time.
    "tests/api/test_sync.py::test_expired_and_unknown_previews_are_gone":
        "a preview expires by its KV TTL, which workerd counts on its real clock, not the test's",
}


def edge_skip_reason(nodeid: str) -> str | None:
    """Why the test with this node id does not run on `edge` (None: it runs)."""
    bare = nodeid.split("[", 1)[0]
    return EDGE_SKIPS.get(nodeid) or EDGE_SKIPS.get(bare) or EDGE_SKIPS.get(bare.split("::", 1)[0])


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

    def register_host(self, name: str, addresses: list[str], *, port: int | None = None, ca: str | None = None) -> None:
        """A host on the Internet the Worker's fetch sees (edge-harness/network.mjs): `name` resolves
        to `addresses` (DNS over HTTPS) and, given a loopback `port`, is served there over HTTPS with
        a certificate from `ca`; without one nothing answers at its address. Until the next reset."""
        self.call("hosts", {"name": name, "addresses": addresses, "port": port, "ca": ca})

    def scheduled(self, cron: str, clock: Any) -> None:
        """The Worker's cron handler for `cron`, at the test's time; returns once its work settled."""
        self.call("scheduled", {"cron": cron, "now": int(clock.now().timestamp() * 1000)})

    def run_job(self, name: str, clock: Any) -> None:
        """The Worker's cron trigger that runs the job `name` (wrangler.toml's crons)."""
        from fastest.services.operations.jobs import SCHEDULE

        self.scheduled(next(cron for cron, names in SCHEDULE.items() if name in names), clock)

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


class RemoteSessions:
    """The CONVERSATIONS namespace for the test's own platform: a request the test process makes to
    a conversation's object (a job, a revoked token closing its streams) reaches the Worker's object
    in workerd, through the binding as the Worker's own requests do."""

    def __init__(self, harness: EdgeHarness) -> None:
        self.harness = harness

    def get(self, name: str) -> "RemoteSession":
        return RemoteSession(self.harness, name)


@dataclasses.dataclass
class RemoteSession:
    harness: EdgeHarness
    name: str

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        answer = self.harness.call("session", {
            "name": self.name, "method": request.method, "path": request.path, "headers": dict(request.headers or {}),
            "body": base64.b64encode(bytes(request.body)).decode() if request.body else None,
        })
        return SessionResponse(status=answer["status"], body=base64.b64decode(answer["body"]), headers=answer["headers"])


# --- The fixtures' pieces -------------------------------------------------------------------------


def worker_vars(settings: Settings, vault_key: str) -> dict[str, str]:
    """The test's settings as the Worker's vars (FASTEST_<FIELD>, strings), and the vault key secret."""
    values = {"FASTEST_" + f.name.upper(): str(getattr(settings, f.name)) for f in dataclasses.fields(Settings)}
    values["FASTEST_VAULT_KEY"] = vault_key
    return values


# Platform fields a test may replace with an object of its own: on `edge` the Worker builds its own
# from the settings, so such a test is skipped where it does that (a test that only needs a model
# configures one by settings instead: tests/api/json_model_server.py's `use_model`).
IN_PROCESS_ONLY = frozenset({"model_factory", "embedder_factory", "http", "deploy_providers", "deploy_builder", "blobs"})


class EdgePlatform(Platform):
    """The test's `Platform` on `edge`: new settings given to it (a test pointing the app at its
    loopback model server) become the Worker's vars too, as a redeploy with new vars would."""

    def __setattr__(self, name: str, value: Any) -> None:
        harness = getattr(self, "harness", None)
        if harness is not None and name in IN_PROCESS_ONLY:
            import pytest

            pytest.skip(f"not on edge: gives the app an in-process object ({name}), which the Worker cannot reach")
        object.__setattr__(self, name, value)
        if name == "settings" and harness is not None:
            harness.call("configure", {"vars": worker_vars(value, self._vault_key)})


def open_edge_platform(harness: EdgeHarness, data_dir: Path, settings: Settings, clock: Any) -> Platform:
    """A fresh start on the harness for one test, and the test's own `Platform` over its storage."""
    from durable_objects.local import open_platform

    vault_key = base64.b64encode(secrets.token_bytes(32)).decode()
    harness.call("reset")
    harness.call("configure", {"vars": worker_vars(settings, vault_key)})
    local = open_platform(data_dir, settings, clock=clock, env={"FASTEST_VAULT_KEY": vault_key})
    values = {f.name: getattr(local, f.name) for f in dataclasses.fields(local)}
    # Work the test's own calls defer (a webhook's first attempts after an event the test records
    # itself) is deferred as the Worker does outside an invocation: not run, left to the cron, which
    # the test runs on the Worker (`EdgeHarness.scheduled`). The test process is no runtime.
    values.update(db=D1Database(RemoteD1(harness)), blobs=R2BlobStore(RemoteR2(harness)), kv=WorkersKV(RemoteKV(harness)),
                  sessions=RemoteSessions(harness), capabilities=EDGE, background=WaitUntilBackground())
    platform = EdgePlatform(**values)
    object.__setattr__(platform, "_vault_key", vault_key)
    object.__setattr__(platform, "harness", harness)
    return platform


def concurrent_client(platform: Platform, clock: Any) -> httpx.AsyncClient:
    """An async HTTP client of the API, for requests sent at once: the app in-process (local), or the
    Worker on the harness (edge), its requests carrying the test's clock."""
    harness = getattr(platform, "harness", None)
    if harness is None:
        from fastest.app import create_app

        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(lambda scope: platform)), base_url="http://test")
    return httpx.AsyncClient(base_url=harness.url, timeout=60,
                             headers={NOW_HEADER: str(int(clock.now().timestamp() * 1000))})


def edge_client(harness: EdgeHarness, clock: Any) -> Iterator[Any]:
    """An HTTP client of the Worker, shaped like Starlette's TestClient (follows redirects, has
    `websocket_connect`); each request carries the test's clock."""
    client = EdgeClient(base_url=harness.url, follow_redirects=True, timeout=60)
    client.clock = clock
    client.event_hooks = {"request": [client.stamp], "response": []}
    return client


class EdgeClient(httpx.Client):
    clock: Any = None

    def stamp(self, request: httpx.Request) -> None:
        """The test's clock, for the Worker (the harness sets its time from this header)."""
        request.headers[NOW_HEADER] = str(int(self.clock.now().timestamp() * 1000))

    def websocket_connect(self, url: str, headers: dict[str, str] | None = None, subprotocols: list[str] | None = None, **_: Any):
        from tests.edge_sockets import EdgeWebSocket

        target = str(self.base_url).rstrip("/").replace("http://", "ws://", 1) + url
        sent = {**(headers or {}), NOW_HEADER: str(int(self.clock.now().timestamp() * 1000))}
        return EdgeWebSocket(target, sent, subprotocols)
