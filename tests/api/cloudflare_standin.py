"""A loopback stand-in for Cloudflare's REST API (client/v4), made by the tests.

It checks each request against Cloudflare's documented shapes — method, path, the Authorization
header (the API token; the upload JWT for asset uploads), JSON fields, multipart parts — records
what it received, and answers in Cloudflare's envelope `{success, errors, messages, result}`.
A request it does not expect, or one of the wrong shape, is answered 400 in the error envelope and
recorded in `problems`, so a test can assert there were none. `fail` makes a path answer an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler

ACCOUNT = "0123456789abcdef0123456789abcdef"
TOKEN = "cf-test-token-Zx81"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]]:
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body)
    parts = []
    for part in message.iter_parts():
        parts.append((part.get_param("name", header="content-disposition"), part.get_filename(),
                      part.get_content_type(), part.get_payload(decode=True) or b""))
    return parts


class CloudflareStandIn(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.fail: dict[str, tuple[int, int, str]] = {}  # path fragment → (http status, cf code, message)
        self.assets: dict[str, bytes] = {}  # asset hash → bytes received
        self.resources: dict[str, dict[str, Any]] = {}
        self.scripts: dict[str, list[dict[str, Any]]] = {}  # script → versions (metadata + id)
        self.live: dict[str, str] = {}  # script → version id serving
        self._sessions: dict[str, set[str]] = {}  # upload jwt → hashes still expected
        super().__init__(self._handler())

    @property
    def base(self) -> str:
        return f"{self.origin}/client/v4"

    def calls(self, method: str | None = None, fragment: str = "") -> list[dict[str, Any]]:
        return [r for r in self.requests if (method is None or r["method"] == method) and fragment in r["path"]]

    # ------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        record = {"method": method, "path": path, "headers": headers, "body": body}
        self.requests.append(record)
        for fragment, (status, code, message) in self.fail.items():
            if fragment in path:
                return status, {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
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
            data = self._json(headers, body)
            field = {"/d1/database": "name", "/storage/kv/namespaces": "title", "/r2/buckets": "name"}[rest]
            if not isinstance(data, dict) or set(data) != {field} or not isinstance(data[field], str):
                return self._bad(f"{rest}: body must be {{{field}: string}}, got {data!r}")
            ident = data["name"] if rest == "/r2/buckets" else str(uuid.uuid4())
            self.resources[ident] = {"kind": rest, "name": data[field]}
            name = data[field]
            if rest == "/d1/database":
                result = {"uuid": ident, "name": name, "created_at": "2025-01-01T00:00:00Z", "version": "production"}
            elif rest == "/storage/kv/namespaces":
                result = {"id": ident, "title": name, "supports_url_encoding": True}
            else:
                result = {"name": ident, "creation_date": "2025-01-01T00:00:00Z", "location": "ENAM"}
            return 200, _ok(result)
        match = re.fullmatch(r"/(d1/database|storage/kv/namespaces|r2/buckets)/([^/]+)", rest)
        if method == "DELETE" and match:
            if self.resources.pop(match.group(2), None) is None:
                return 404, _error(10007, "resource not found")
            return 200, _ok(None)
        match = re.fullmatch(r"/workers/scripts/([a-z0-9-]+)(/assets-upload-session|/subdomain|/deployments)?", rest)
        if match:
            return self._script(method, match.group(1), match.group(2) or "", headers, body)
        if method == "GET" and rest == "/workers/subdomain":
            return 200, _ok({"subdomain": "acme"})
        return self._bad(f"unexpected {method} {path}")

    def _script(self, method: str, script: str, sub: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if sub == "/assets-upload-session" and method == "POST":
            data = self._json(headers, body)
            manifest = data.get("manifest") if isinstance(data, dict) else None
            if not isinstance(manifest, dict) or set(data) != {"manifest"}:
                return self._bad("assets-upload-session: body must be {manifest: {...}}")
            for key, value in manifest.items():
                if not key.startswith("/") or not isinstance(value, dict) or set(value) != {"hash", "size"} \
                        or not HEX32.match(str(value["hash"])) or type(value["size"]) is not int:
                    return self._bad(f"assets-upload-session: bad manifest entry {key!r}: {value!r}")
            missing = sorted({v["hash"] for v in manifest.values()} - set(self.assets))
            jwt = f"upload-{uuid.uuid4().hex}"
            if not missing:
                return 200, _ok({"jwt": f"completion-{uuid.uuid4().hex}", "buckets": []})
            self._sessions[jwt] = set(missing)
            return 200, _ok({"jwt": jwt, "buckets": [missing[i:i + 2] for i in range(0, len(missing), 2)]})
        if sub == "" and method == "PUT":
            content_type = headers.get("content-type", "")
            if not content_type.startswith("multipart/form-data"):
                return self._bad("script upload must be multipart/form-data")
            parts = {name: (filename, kind, data) for name, filename, kind, data in parse_multipart(content_type, body)}
            if "metadata" not in parts or parts["metadata"][1] != "application/json":
                return self._bad("script upload: no application/json metadata part")
            metadata = json.loads(parts["metadata"][2])
            main = metadata.get("main_module")
            if not isinstance(main, str) or main not in parts or "module" not in parts[main][1]:
                return self._bad(f"script upload: main_module {main!r} is not a module part")
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(metadata.get("compatibility_date"))):
                return self._bad("script upload: compatibility_date missing")
            jwt = (metadata.get("assets") or {}).get("jwt", "")
            if not str(jwt).startswith("completion-"):
                return self._bad("script upload: assets.jwt is not a completion token")
            for binding in metadata.get("bindings", []):
                need = {"assets": set(), "d1": {"id"}, "kv_namespace": {"namespace_id"}, "r2_bucket": {"bucket_name"}}.get(binding.get("type"))
                if need is None or not need <= set(binding) or not binding.get("name"):
                    return self._bad(f"script upload: bad binding {binding!r}")
            version = str(uuid.uuid4())
            self.scripts.setdefault(script, []).append({"id": version, "metadata": metadata})
            self.live[script] = version
            return 200, _ok({"id": script, "etag": uuid.uuid4().hex, "has_assets": True, "has_modules": True})
        if sub == "/subdomain" and method == "POST":
            if self._json(headers, body) != {"enabled": True}:
                return self._bad("subdomain: body must be {enabled: true}")
            return 200, _ok({"enabled": True})
        if sub == "/deployments" and method == "GET":
            if script not in self.live:
                return 404, _error(10007, "This Worker does not exist on your account.")
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
        return self._bad(f"unexpected {method} script route {sub!r}")

    def _upload(self, method: str, auth: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        jwt = auth.removeprefix("Bearer ")
        if method != "POST" or jwt not in self._sessions:
            return 401, _error(10001, "upload JWT required")
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._bad("asset upload must be multipart/form-data")
        for name, filename, _kind, data in parse_multipart(content_type, body):
            raw = base64.b64decode(data, validate=True)
            if name not in self._sessions[jwt] or hashlib.sha256(raw).hexdigest()[:32] != name or filename != name:
                return self._bad(f"asset upload: part {name!r} unexpected or its bytes do not match")
            self.assets[name] = raw
            self._sessions[jwt].discard(name)
        if not self._sessions[jwt]:
            return 201, _ok({"jwt": f"completion-{uuid.uuid4().hex}"})
        return 202, _ok({})

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
                status, payload = stand_in.handle(self.command, self.path, headers, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _any

        return Handler


def _ok(result: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result}


def _error(code: int, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
