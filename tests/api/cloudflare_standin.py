"""A loopback stand-in for Cloudflare's REST API (client/v4), made by the tests.

It judges each request by Cloudflare's rules, not ours: method, path, the Authorization header (the
API token; the upload JWT for asset uploads), JSON fields, multipart parts and their types. Asset
keys are checked the way Cloudflare's own client (wrangler) computes them: the BLAKE3 hash of the
uploaded base64 text followed by the file's extension, with the `blake3` package. A manifest naming
`_headers`, `_redirects` or `.assetsignore` is refused (those are configuration, not assets), as is
an asset whose size differs from its manifest entry, a module part of an unknown type, a main module
that is not a part, or a completion token it did not issue. It records what it received (assets
with their Content-Type, each version's metadata and modules) and answers in Cloudflare's envelope
`{success, errors, messages, result}`. A request it does not expect, or one of the wrong shape, is
answered 400 and recorded in `problems`, so a test can assert there were none.

`fail` makes matching paths fail every time; `flake(...)` makes the next matching request fail once
(a 429 with `Retry-After`, a 502), to prove the client retries. `upload_delay` slows asset uploads,
and `most_uploads_in_flight` says how many ran at once. Assets uploaded in a session that
never completed are kept, as Cloudflare keeps them: the next session asks only for the others.
"""

from __future__ import annotations

import base64
import json
import posixpath
import re
import threading
import time
import uuid
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any

from blake3 import blake3

from tests.loopback import LoopbackServer, QuietHandler

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cf-test-token-Zx81"
SUBDOMAIN = "acme"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
NOT_ASSETS = {"/_headers", "/_redirects", "/.assetsignore"}
MODULE_TYPES = {"application/javascript+module", "application/javascript", "text/x-python", "text/plain",
                "application/octet-stream", "application/wasm", "text/x-python-requirement", "application/source-map"}
MAIN_TYPES = {"application/javascript+module", "application/javascript", "text/x-python"}
ASSET_CONFIG_KEYS = {"html_handling", "not_found_handling", "run_worker_first", "_redirects", "_headers", "serve_directly"}
BINDING_FIELDS = {"assets": set(), "d1": {"id"}, "kv_namespace": {"namespace_id"}, "r2_bucket": {"bucket_name"},
                  "plain_text": {"text"}, "json": {"json"}, "secret_text": {"text"}}


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, declared Content-Type or None, bytes) of each part."""
    message = BytesParser().parsebytes(  # compat32: header values exactly as sent
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    parts = []
    for part in message.get_payload():
        declared = part["content-type"]
        parts.append((part.get_param("name", header="content-disposition"), part.get_filename(),
                      str(declared) if declared is not None else None, part.get_payload(decode=True) or b""))
    return parts


def wrangler_key(base64_text: bytes, path: str) -> str:
    """An asset's key as Cloudflare's client computes it."""
    extension = posixpath.splitext(posixpath.basename(path))[1][1:]
    return blake3(base64_text + extension.encode()).hexdigest()[:32]


class CloudflareStandIn(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.fail: dict[str, tuple[int, int, str]] = {}  # path fragment → (http status, cf code, message)
        self._flakes: list[tuple[str, str, bytes, int, dict[str, str]]] = []
        self.assets: dict[str, bytes] = {}  # asset key → bytes received
        self.asset_types: dict[str, str | None] = {}  # asset key → the Content-Type it is served with
        self.resources: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, list[dict[str, Any]]] = {}  # script → versions {id, metadata, modules}
        self.live: dict[str, str] = {}  # script → version id serving
        self.workers_dev: dict[str, bool] = {}
        self.subdomain: str | None = SUBDOMAIN
        self._sessions: dict[str, dict[str, Any]] = {}  # upload jwt → {manifest, missing}
        self._completions: set[str] = set()
        self._lock = threading.Lock()
        self.upload_delay = 0.0  # seconds each asset upload takes (to see how many run at once)
        self.uploads_in_flight = self.most_uploads_in_flight = 0
        self._in_flight_lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def base(self) -> str:
        return f"{self.origin}/client/v4"

    def calls(self, method: str | None = None, fragment: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests if (method is None or r["method"] == method) and fragment in r["path"]]

    def flake(self, method: str, fragment: str, status: int, *, retry_after: str | None = None,
              body_has: bytes = b"") -> None:
        """The next `method` request whose path holds `fragment` (and whose body holds `body_has`)
        is answered `status`, once."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self._flakes.append((method, fragment, body_has, status, headers))

    def served_type(self, path: str, script: str) -> str | None:
        """The Content-Type the live version of `script` serves `/path` with."""
        version = next(v for v in self.scripts[script] if v["id"] == self.live[script])
        return self.asset_types[version["assets"]["/" + path.lstrip("/")]["hash"]]

    # ------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            for index, (flaky_method, fragment, body_has, status, extra) in enumerate(self._flakes):
                if flaky_method == method and fragment in path and body_has in body:
                    del self._flakes[index]
                    return status, _error(10013 if status >= 500 else 10429, "try again later"), extra
            for fragment, (status, code, message) in self.fail.items():
                if fragment in path:
                    return status, _error(code, message), {}
            status, payload = self._route(method, path, headers, body)
            return status, payload, {}

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        auth = headers.get("authorization", "")
        prefix = f"/client/v4/accounts/{ACCOUNT}"
        if path == "/client/v4/user/tokens/verify" or path == f"{prefix}/tokens/verify":
            if method != "GET" or auth != f"Bearer {TOKEN}":
                return 401, _error(1000, "Invalid API Token")
            return 200, _ok({"id": "tok-1", "status": "active", "not_before": None, "expires_on": None})
        if not path.startswith(prefix + "/"):
            return self._bad(f"unexpected path {method} {path}")
        rest = path[len(prefix):]
        if rest == "/workers/assets/upload?base64=true":
            return self._upload(method, auth, headers, body)
        if auth != f"Bearer {TOKEN}":
            return self._bad(f"{method} {path}: Authorization is not the API token")
        if method == "POST" and rest in ("/d1/database", "/storage/kv/namespaces", "/r2/buckets"):
            return self._create(rest, headers, body)
        match = re.fullmatch(r"/(d1/database|storage/kv/namespaces|r2/buckets)/([^/]+)", rest)
        if method == "DELETE" and match:
            if self.resources.pop(match.group(2), None) is None:
                return 404, _error(10007, "resource not found")
            return 200, _ok(None)
        if method == "GET" and rest == "/workers/subdomain":
            if self.subdomain is None:
                return 404, _error(10007, "This account does not have a workers.dev subdomain.")
            return 200, _ok({"subdomain": self.subdomain})
        match = re.fullmatch(r"/workers/services/([a-z0-9-]+)", rest)
        if method == "GET" and match:
            if match.group(1) not in self.scripts:
                return 404, _error(10090, "This Worker does not exist on your account.")
            return 200, _ok({"id": match.group(1), "default_environment": {
                "environment": "production", "script": {"tag": match.group(1), "tags": [], "last_deployed_from": "wrangler"}}})
        match = re.fullmatch(r"/workers/scripts/([a-z0-9-]+)(/[a-z-]+)?(\?.*)?", rest)
        if match:
            return self._script(method, match.group(1), match.group(2) or "", match.group(3) or "", headers, body)
        return self._bad(f"unexpected {method} {path}")

    def _create(self, rest: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        data = self._json(headers, body)
        field = {"/d1/database": "name", "/storage/kv/namespaces": "title", "/r2/buckets": "name"}[rest]
        if not isinstance(data, dict) or set(data) != {field} or not isinstance(data[field], str):
            return self._bad(f"{rest}: body must be {{{field}: string}}, got {data!r}")
        ident = data["name"] if rest == "/r2/buckets" else str(uuid.uuid4())
        self.resources[ident] = {"kind": rest, "name": data[field]}
        name = data[field]
        if rest == "/d1/database":
            return 200, _ok({"uuid": ident, "name": name, "created_at": "2025-01-01T00:00:00Z", "version": "production"})
        if rest == "/storage/kv/namespaces":
            return 200, _ok({"id": ident, "title": name, "supports_url_encoding": True})
        return 200, _ok({"name": ident, "creation_date": "2025-01-01T00:00:00Z", "location": "ENAM"})

    def _script(self, method: str, script: str, sub: str, query: str, headers: dict[str, str],
                body: bytes) -> tuple[int, Any]:
        if sub == "/assets-upload-session" and method == "POST":
            return self._session(headers, body)
        if sub == "" and method == "PUT":
            if query not in ("", "?excludeScript=true&bindings_inherit=strict"):
                return self._bad(f"script upload: unexpected query {query!r}")
            version = self._version(script, headers, body)
            if isinstance(version, tuple):
                return version
            self.live[script] = version["id"]
            return 200, _ok({"id": script, "etag": uuid.uuid4().hex, "deployment_id": version["id"],
                             "startup_time_ms": 1, "has_assets": "assets" in version["metadata"],
                             "has_modules": bool(version["modules"])})
        if sub == "/versions" and method == "POST":
            if script not in self.scripts:
                return 404, _error(10090, "This Worker does not exist on your account.")
            version = self._version(script, headers, body)
            if isinstance(version, tuple):
                return version
            return 200, _ok({"id": version["id"], "number": len(self.scripts[script]),
                             "resources": {"script": {"etag": uuid.uuid4().hex}}, "startup_time_ms": 1})
        if sub == "/subdomain" and method == "GET":
            return 200, _ok({"enabled": self.workers_dev.get(script, False), "previews_enabled": False})
        if sub == "/subdomain" and method == "POST":
            data = self._json(headers, body)
            if not isinstance(data, dict) or data.get("enabled") is not True:
                return self._bad("subdomain: body must be {enabled: true}")
            self.workers_dev[script] = True
            return 200, _ok({"enabled": True, "previews_enabled": False})
        if sub == "/deployments" and method == "GET":
            if script not in self.live:
                return 200, _ok({"deployments": []})
            return 200, _ok({"deployments": [{"id": str(uuid.uuid4()), "source": "api", "strategy": "percentage",
                                               "versions": [{"version_id": self.live[script], "percentage": 100}]}]})
        if sub == "/deployments" and method == "POST":
            data = self._json(headers, body)
            versions = data.get("versions") if isinstance(data, dict) else None
            known = {v["id"] for v in self.scripts.get(script, [])}
            if data.get("strategy") != "percentage" or not versions or versions[0].get("percentage") != 100 \
                    or versions[0].get("version_id") not in known:
                return self._bad(f"deployments: bad body {data!r}")
            self.live[script] = versions[0]["version_id"]
            return 200, _ok({"id": str(uuid.uuid4()), "strategy": "percentage", "versions": versions})
        if sub in ("/settings", "/script-settings") and method in ("GET", "PATCH"):  # wrangler reads and sets these
            return 200, _ok({"logpush": False, "tail_consumers": None, "observability": {"enabled": False}, "tags": []})
        return self._bad(f"unexpected {method} script route {sub!r}")

    def _session(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        data = self._json(headers, body)
        manifest = data.get("manifest") if isinstance(data, dict) else None
        if not isinstance(manifest, dict) or set(data) != {"manifest"}:
            return self._bad("assets-upload-session: body must be {manifest: {...}}")
        for key, value in manifest.items():
            if not key.startswith("/") or not isinstance(value, dict) or set(value) != {"hash", "size"} \
                    or not HEX32.match(str(value["hash"])) or type(value["size"]) is not int:
                return self._bad(f"assets-upload-session: bad manifest entry {key!r}: {value!r}")
            if key in NOT_ASSETS:
                return self._bad(f"assets-upload-session: {key} is configuration, not an asset")
        missing = sorted({v["hash"] for v in manifest.values()} - set(self.assets))
        if not missing:
            completion = f"completion-{uuid.uuid4().hex}"
            self._completions.add(completion)
            self._sessions[completion] = {"manifest": manifest, "missing": set()}
            return 200, _ok({"jwt": completion, "buckets": []})
        jwt = f"upload-{uuid.uuid4().hex}"
        self._sessions[jwt] = {"manifest": manifest, "missing": set(missing)}
        return 200, _ok({"jwt": jwt, "buckets": [missing[i:i + 2] for i in range(0, len(missing), 2)]})

    def _upload(self, method: str, auth: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        jwt = auth.removeprefix("Bearer ")
        session = self._sessions.get(jwt)
        if method != "POST" or session is None or jwt in self._completions:
            return 401, _error(10001, "upload JWT required")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._bad("asset upload must be multipart/form-data")
        for name, filename, declared, data in parse_multipart(content_type, body):
            paths = [p for p, v in session["manifest"].items() if v["hash"] == name]
            if name not in session["missing"] or filename != name or not paths:
                return self._bad(f"asset upload: part {name!r} was not asked for")
            if wrangler_key(data, paths[0]) != name:
                return self._bad(f"asset upload: {paths[0]} does not hash to {name} as Cloudflare's client hashes it")
            raw = base64.b64decode(data, validate=True)
            if len(raw) != session["manifest"][paths[0]]["size"]:
                return self._bad(f"asset upload: {paths[0]} is not the size its manifest entry says")
            self.assets[name] = raw
            self.asset_types[name] = None if declared in (None, "application/null") else declared
            session["missing"].discard(name)
        if not session["missing"]:
            completion = f"completion-{uuid.uuid4().hex}"
            self._completions.add(completion)
            self._sessions[completion] = session
            return 201, _ok({"jwt": completion})
        return 202, _ok({})

    def _version(self, script: str, headers: dict[str, str], body: bytes) -> dict[str, Any] | tuple[int, Any]:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._bad("script upload must be multipart/form-data")
        parts = {name: (filename, kind, data) for name, filename, kind, data in parse_multipart(content_type, body)}
        if "metadata" not in parts or parts["metadata"][1] not in (None, "application/json"):
            return self._bad("script upload: no metadata part")
        metadata = json.loads(parts.pop("metadata")[2])
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(metadata.get("compatibility_date"))):
            return self._bad("script upload: compatibility_date missing")
        for name, (filename, kind, _data) in parts.items():
            if kind not in MODULE_TYPES or filename != name:
                return self._bad(f"script upload: part {name!r} of type {kind!r} is not a module")
        main = metadata.get("main_module")
        assets = metadata.get("assets")
        if main is None:
            if parts or metadata.get("bindings") or not assets:
                return self._bad("script upload: an assets-only Worker has assets and no modules or bindings")
        elif main not in parts or parts[main][1] not in MAIN_TYPES:
            return self._bad(f"script upload: main_module {main!r} is not a module part")
        elif parts[main][1] == "text/x-python" and "python_workers" not in metadata.get("compatibility_flags", []):
            return self._bad("script upload: a Python main module needs the python_workers flag")
        manifest = None
        if assets is not None:
            if assets.get("jwt") not in self._completions:
                return self._bad("script upload: assets.jwt is not a completion token")
            if not set(assets.get("config") or {}) <= ASSET_CONFIG_KEYS:
                return self._bad(f"script upload: unknown assets.config keys {sorted(assets['config'])}")
            manifest = self._sessions[assets["jwt"]]["manifest"]
        for binding in metadata.get("bindings", []):
            need = BINDING_FIELDS.get(binding.get("type"))
            if need is None or not need <= set(binding) or not binding.get("name"):
                return self._bad(f"script upload: bad binding {binding!r}")
            if binding["type"] == "assets" and assets is None:
                return self._bad("script upload: an assets binding without assets")
        version = {"id": str(uuid.uuid4()), "metadata": metadata, "assets": manifest,
                   "modules": {name: (kind, data) for name, (_f, kind, data) in parts.items()}}
        self.scripts.setdefault(script, []).append(version)
        return version

    def _json(self, headers: dict[str, str], body: bytes) -> Any:
        if headers.get("content-type") != "application/json":
            self.problems.append("a JSON body without Content-Type: application/json")
        try:
            return json.loads(body)
        except ValueError:
            return None

    def _bad(self, problem: str) -> tuple[int, Any]:
        self.problems.append(problem)
        return 400, _error(10000, problem)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                body = self.body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if "/workers/assets/upload" in self.path:
                    with stand_in._in_flight_lock:
                        stand_in.uploads_in_flight += 1
                        stand_in.most_uploads_in_flight = max(stand_in.most_uploads_in_flight, stand_in.uploads_in_flight)
                    time.sleep(stand_in.upload_delay)
                    with stand_in._in_flight_lock:
                        stand_in.uploads_in_flight -= 1
                status, payload, extra = stand_in.handle(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        return Handler


def _ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
