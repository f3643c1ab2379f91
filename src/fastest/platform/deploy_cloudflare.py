"""The cloudflare deploy provider: the user's own Cloudflare account, through its REST API over the
`HttpClient` port (so it runs on both runtimes, and tests talk to a loopback stand-in).

Every call answers in Cloudflare's envelope `{success, errors, messages, result}`; a failed call
(`success: false` or a non-2xx status) raises DeployError with Cloudflare's own messages, which
become the deployment's error. The API token goes only into the Authorization header.

A deployment is a Worker with static assets (https://developers.cloudflare.com/workers/static-assets/direct-upload/):
1. `POST /accounts/{id}/workers/scripts/{script}/assets-upload-session` with the manifest
   `{"/path": {hash, size}}` → an upload JWT and `buckets` of the hashes Cloudflare lacks;
2. each bucket → `POST /accounts/{id}/workers/assets/upload?base64=true` (multipart, one part per
   file named by its hash, base64 content, authorised by the upload JWT) → the completion JWT;
3. `PUT /accounts/{id}/workers/scripts/{script}` (multipart: `metadata` with `main_module`,
   `compatibility_date`, `bindings`, `assets: {jwt, config}`, and the module);
4. the workers.dev route is enabled and the URL is `https://{script}.{subdomain}.workers.dev/`;
   the version serving it (the latest deployment's) is kept, so rollback is one
   `POST …/deployments` naming that version at 100%.
The asset hash is the first 32 hex characters of the file's SHA-256 (our blob hash): an unchanged
file is never sent again.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import secrets
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from fastest.ports import DeployError, DeployOutcome, DeployRequest, HttpClient, ProvisionedResource

DEFAULT_COMPATIBILITY_DATE = "2025-01-01"
TIMEOUT = 30.0
# A Worker that serves its static assets (assets-only deployments and projects whose own Worker
# code would need a bundler): the assets binding answers every request.
SHIM_MODULE = "fastest-assets.js"
SHIM = b"export default { async fetch(request, env) { return env.ASSETS.fetch(request); } };\n"
BINDING_TYPES = {"d1": "d1", "kv": "kv_namespace", "r2": "r2_bucket"}


def asset_hash(sha256_hex: str) -> str:
    return sha256_hex[:32]


def encode_multipart(parts: Sequence[tuple[str, str | None, str, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data from (name, filename, content type, bytes) parts."""
    boundary = "fastest-" + secrets.token_hex(12)
    chunks: list[bytes] = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class CloudflareDeployProvider:
    name = "cloudflare"

    def __init__(self, http: HttpClient, api_token: str, account_id: str, api_base: str) -> None:
        self._http = http
        self._token = api_token
        self.account_id = account_id
        self.api_base = api_base.rstrip("/")

    def __repr__(self) -> str:  # never the token
        return f"CloudflareDeployProvider(account_id={self.account_id!r})"

    # --- plumbing ----------------------------------------------------------------------------

    async def _call(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                    content_type: str | None = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token or self._token}"}
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            response = await self._http.request(method, self.api_base + path, headers=headers, body=body, timeout=TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - unreachable, timeout: one clear error
            raise DeployError(f"Cloudflare could not be reached ({type(exc).__name__}).") from exc
        try:
            envelope = json.loads(response.body or b"{}")
        except ValueError:
            envelope = {}
        if not isinstance(envelope, dict):
            envelope = {}
        if response.status >= 400 or envelope.get("success") is not True:
            errors = envelope.get("errors") or []
            messages = "; ".join(f"{e.get('message', '')} ({e.get('code')})" for e in errors if isinstance(e, dict))
            raise DeployError(f"Cloudflare API error on {method} {path.split('?')[0]}: "
                              f"{messages or f'HTTP {response.status}'}")
        return envelope.get("result")

    def _account(self, rest: str) -> str:
        return f"/accounts/{quote(self.account_id, safe='')}{rest}"

    # --- credential --------------------------------------------------------------------------

    async def verify(self) -> Mapping[str, Any]:
        """The token must verify as active (a user token, or else an account-owned one)."""
        try:
            result = await self._call("GET", "/user/tokens/verify")
        except DeployError as first:
            try:
                result = await self._call("GET", self._account("/tokens/verify"))
            except DeployError:
                raise first from None
        if not isinstance(result, dict) or result.get("status") != "active":
            raise DeployError("The API token is not active.")
        return {"token_id": result.get("id"), "status": "active"}

    # --- resources ---------------------------------------------------------------------------

    async def create_resource(self, type: str, name: str) -> ProvisionedResource:
        if type == "d1":
            result = await self._call("POST", self._account("/d1/database"), json_body={"name": name})
            return ProvisionedResource(result["uuid"], {"database_id": result["uuid"], "name": name})
        if type == "kv":
            result = await self._call("POST", self._account("/storage/kv/namespaces"), json_body={"title": name})
            return ProvisionedResource(result["id"], {"namespace_id": result["id"], "title": name})
        if type == "r2":
            result = await self._call("POST", self._account("/r2/buckets"), json_body={"name": name})
            bucket = (result or {}).get("name", name)
            return ProvisionedResource(bucket, {"bucket_name": bucket})
        raise DeployError(f"Cloudflare resources of type {type!r} are not supported.")

    async def destroy_resource(self, type: str, external_id: str) -> None:
        ident = quote(external_id, safe="")
        path = {"d1": f"/d1/database/{ident}", "kv": f"/storage/kv/namespaces/{ident}", "r2": f"/r2/buckets/{ident}"}.get(type)
        if path is None:
            raise DeployError(f"Cloudflare resources of type {type!r} are not supported.")
        await self._call("DELETE", self._account(path))

    # --- deploys -----------------------------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> DeployOutcome:
        script = request.project_slug
        say = request.log
        assets = await request.list_assets()
        by_hash = {asset_hash(a.hash): a for a in assets}
        manifest = {"/" + a.path: {"hash": asset_hash(a.hash), "size": a.size} for a in assets}
        session = await self._call("POST", self._account(f"/workers/scripts/{script}/assets-upload-session"),
                                   json_body={"manifest": manifest})
        jwt, buckets = session.get("jwt"), session.get("buckets") or []
        uploaded = 0
        for bucket in buckets:
            parts = []
            for short in bucket:
                asset = by_hash.get(short)
                if asset is None:
                    raise DeployError(f"Cloudflare asked for an unknown asset {short}.")
                data = await request.read_asset(asset.hash)
                kind = mimetypes.guess_type(asset.path)[0] or "application/octet-stream"
                parts.append((short, short, kind, base64.b64encode(data)))
            body, content_type = encode_multipart(parts)
            result = await self._call("POST", self._account("/workers/assets/upload?base64=true"), body=body,
                                      content_type=content_type, token=jwt)
            uploaded += len(bucket)
            if isinstance(result, dict) and result.get("jwt"):
                jwt = result["jwt"]
        if say is not None:
            await say(f"Assets: {uploaded} of {len(manifest)} files uploaded to Cloudflare")
        if not jwt:
            raise DeployError("Cloudflare returned no assets completion token.")
        bindings: list[dict[str, Any]] = [{"type": "assets", "name": "ASSETS"}]
        for resource in request.resources:
            kind = BINDING_TYPES.get(str(resource.get("type")))
            binding = resource.get("binding")
            if kind is None or not binding:
                continue
            ident = {"d1": "id", "kv": "namespace_id", "r2": "bucket_name"}[str(resource["type"])]
            bindings.append({"type": kind, "name": binding, ident: resource["external_id"]})
        metadata = {
            "main_module": SHIM_MODULE,
            "compatibility_date": request.compatibility_date or DEFAULT_COMPATIBILITY_DATE,
            "bindings": bindings,
            "assets": {"jwt": jwt, "config": {"html_handling": "auto-trailing-slash", "not_found_handling": "404-page"}},
        }
        body, content_type = encode_multipart([
            ("metadata", None, "application/json", json.dumps(metadata).encode()),
            (SHIM_MODULE, SHIM_MODULE, "application/javascript+module", SHIM),
        ])
        await self._call("PUT", self._account(f"/workers/scripts/{script}"), body=body, content_type=content_type)
        await self._call("POST", self._account(f"/workers/scripts/{script}/subdomain"), json_body={"enabled": True})
        subdomain = (await self._call("GET", self._account("/workers/subdomain")) or {}).get("subdomain")
        if not subdomain:
            raise DeployError("The account has no workers.dev subdomain yet; choose one in the Cloudflare dashboard.")
        listing = await self._call("GET", self._account(f"/workers/scripts/{script}/deployments")) or {}
        deployments = listing.get("deployments") or []
        version = None
        if deployments and deployments[0].get("versions"):
            version = deployments[0]["versions"][0].get("version_id")
        return DeployOutcome(url=f"https://{script}.{subdomain}.workers.dev/", version=version, uploaded=uploaded)

    async def rollback(self, project_slug: str, version: str) -> DeployOutcome:
        await self._call("POST", self._account(f"/workers/scripts/{project_slug}/deployments"),
                         json_body={"strategy": "percentage", "versions": [{"percentage": 100, "version_id": version}]})
        subdomain = (await self._call("GET", self._account("/workers/subdomain")) or {}).get("subdomain")
        return DeployOutcome(url=f"https://{project_slug}.{subdomain}.workers.dev/", version=version, uploaded=0)
