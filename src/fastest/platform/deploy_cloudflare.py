"""The cloudflare deploy provider: the user's own Cloudflare account through its REST API
(`cloudflare_api`, over the `HttpClient` port, so it runs on both runtimes and tests talk to a
loopback stand-in). It makes the calls `wrangler deploy` makes, in its order, with its payloads:

1. `GET …/workers/services/{script}`: does the Worker exist yet (404: a first deploy)?
2. the static assets (https://developers.cloudflare.com/workers/static-assets/direct-upload/):
   `POST …/workers/scripts/{script}/assets-upload-session` with the manifest `{"/path": {hash, size}}`
   answers an upload JWT and `buckets` of the keys Cloudflare lacks; each bucket is one
   `POST …/workers/assets/upload?base64=true` (multipart, a part per asset named by its key, its
   base64 text, its Content-Type), at most `UPLOAD_CONCURRENCY` at a time; the last answers the
   completion JWT. Keys, types and what is an asset: `domain.worker_assets`. What Cloudflare already
   has is never sent again, so a deploy that stopped half-way resumes where it stopped;
3. the Worker: multipart `metadata` (`main_module`, `bindings`, compatibility date and flags, the
   assets' JWT and configuration) and one part per module (`domain.worker_modules`). A first deploy
   is `PUT …/workers/scripts/{script}` and its answer's `deployment_id` is the new version; later ones
   upload a version (`POST …/versions`, its `id`) and deploy it at 100% (`POST …/deployments`). A
   project without Worker code is an assets-only Worker (metadata without modules or bindings);
4. workers.dev: the account's subdomain, then `POST …/workers/scripts/{script}/subdomain`
   `{enabled: true}`; the URL is `https://{script}.{subdomain}.workers.dev/`.

Rollback is one `POST …/deployments` naming the kept version at 100%.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from fastest.domain import worker_assets
from fastest.domain.worker_assets import AssetError, AssetSelection
from fastest.domain.worker_modules import PART_TYPES
from fastest.platform.cloudflare_api import NO_SUBDOMAIN, CloudflareApi, CloudflareError, Sleep, account_path
from fastest.ports import DeployAsset, DeployError, DeployOutcome, DeployRequest, HttpClient, ProvisionedResource

DEFAULT_COMPATIBILITY_DATE = "2025-01-01"
UPLOAD_CONCURRENCY = 3  # asset buckets in flight at once, as wrangler
READ_CONCURRENCY = 8
SCRIPT_API_DATE = "2025-08-01"
BINDING_TYPES = {"d1": ("d1", "id"), "kv": ("kv_namespace", "namespace_id"), "r2": ("r2_bucket", "bucket_name")}
# Asset keys by (blob hash, extension), for this isolate or process: a re-deploy reads only new files.
_KEY_CACHE_MAX = 100_000
_KEYS: dict[tuple[str, str], str] = {}


def encode_multipart(parts: Sequence[tuple[str, str | None, str | None, bytes]]) -> tuple[bytes, str]:
    """multipart/form-data from (name, filename, content type, bytes) parts; a part without a
    filename or type is a plain field (as the metadata is)."""
    boundary = "fastest-" + secrets.token_hex(12)
    chunks: list[bytes] = []
    for name, filename, content_type, data in parts:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
        head += f'; filename="{filename}"' if filename else ""
        head += f"\r\nContent-Type: {content_type}" if content_type else ""
        chunks += [(head + "\r\n\r\n").encode(), data, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class CloudflareDeployProvider:
    name = "cloudflare"

    def __init__(self, http: HttpClient, api_token: str, account_id: str, api_base: str, *,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.api = CloudflareApi(http, api_token, api_base, sleep=sleep)
        self.account_id = account_id
        self.api_base = self.api.api_base

    def __repr__(self) -> str:  # never the token
        return f"CloudflareDeployProvider(account_id={self.account_id!r})"

    def _account(self, rest: str) -> str:
        return account_path(self.account_id, rest)

    # --- credential --------------------------------------------------------------------------

    async def verify(self) -> Mapping[str, Any]:
        """The token must verify as active (a user token, or else an account-owned one)."""
        try:
            result = await self.api.call("GET", "/user/tokens/verify")
        except DeployError as first:
            try:
                result = await self.api.call("GET", self._account("/tokens/verify"))
            except DeployError:
                raise first from None
        if not isinstance(result, dict) or result.get("status") != "active":
            raise DeployError("The API token is not active.")
        return {"token_id": result.get("id"), "status": "active"}

    # --- resources ---------------------------------------------------------------------------

    async def create_resource(self, type: str, name: str) -> ProvisionedResource:
        if type == "d1":
            result = await self.api.call("POST", self._account("/d1/database"), json_body={"name": name})
            return ProvisionedResource(result["uuid"], {"database_id": result["uuid"], "name": name})
        if type == "kv":
            result = await self.api.call("POST", self._account("/storage/kv/namespaces"), json_body={"title": name})
            return ProvisionedResource(result["id"], {"namespace_id": result["id"], "title": name})
        if type == "r2":
            result = await self.api.call("POST", self._account("/r2/buckets"), json_body={"name": name})
            bucket = (result or {}).get("name", name)
            return ProvisionedResource(bucket, {"bucket_name": bucket})
        raise DeployError(f"Cloudflare resources of type {type!r} are not supported.")

    async def destroy_resource(self, type: str, external_id: str) -> None:
        ident = quote(external_id, safe="")
        path = {"d1": f"/d1/database/{ident}", "kv": f"/storage/kv/namespaces/{ident}", "r2": f"/r2/buckets/{ident}"}.get(type)
        if path is None:
            raise DeployError(f"Cloudflare resources of type {type!r} are not supported.")
        await self.api.call("DELETE", self._account(path))

    # --- deploys -----------------------------------------------------------------------------

    async def deploy(self, request: DeployRequest) -> DeployOutcome:
        script = request.project_slug
        if request.entry and request.worker is None:
            raise DeployError(f"The Worker's code ({request.entry}) was not bundled: run `fastest deploy` in the "
                              "project's folder (it bundles the code with esbuild on your machine), then deploy again.")
        exists = await self._exists(script)
        assets = await self._assets(request)
        completion, uploaded = (await self._upload_assets(request, script, assets)) if assets is not None else (None, 0)
        body, content_type = await self._script_form(request, completion)
        if exists:
            upload = await self.api.call("POST", self._account(f"/workers/scripts/{script}/versions?bindings_inherit=strict"),
                                         body=body, content_type=content_type)
            version = (upload or {}).get("id")
            if not version:
                raise DeployError("Cloudflare's answer to the version upload names no version.")
            await self._deploy_version(script, version, request.deployment_id)
        else:
            upload = await self.api.call(
                "PUT", self._account(f"/workers/scripts/{script}?excludeScript=true&bindings_inherit=strict"),
                body=body, content_type=content_type)
            version = (upload or {}).get("deployment_id")
        if request.log is not None:
            code = (f"{len(request.worker.modules)} module(s), main {request.worker.main_module}"
                    if request.worker is not None else "static assets only")
            await request.log(f"Worker {script}: {code}; version {version or '(none named)'} "
                              f"{'uploaded and deployed at 100%' if exists else 'created'}")
        url = await self._enable_workers_dev(script)
        return DeployOutcome(url=url, version=version, uploaded=uploaded)

    async def rollback(self, project_slug: str, version: str) -> DeployOutcome:
        await self._deploy_version(project_slug, version, None)
        return DeployOutcome(url=await self._workers_dev_url(project_slug), version=version, uploaded=0)

    async def _exists(self, script: str) -> bool:
        try:
            await self.api.call("GET", self._account(f"/workers/services/{script}"))
        except CloudflareError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def _deploy_version(self, script: str, version: str, deployment_id: str | None) -> None:
        body: dict[str, Any] = {"strategy": "percentage", "versions": [{"version_id": version, "percentage": 100}]}
        if deployment_id:
            body["annotations"] = {"workers/message": f"fastest {deployment_id}"}
        await self.api.call("POST", self._account(f"/workers/scripts/{script}/deployments"), json_body=body)

    async def _workers_dev_url(self, script: str) -> str:
        try:
            result = await self.api.call("GET", self._account("/workers/subdomain"))
        except CloudflareError as exc:
            if NO_SUBDOMAIN in exc.codes:
                raise DeployError(
                    "The Cloudflare account has no workers.dev subdomain yet: register one at "
                    f"https://dash.cloudflare.com/{self.account_id}/workers/onboarding, then deploy again.") from exc
            raise
        subdomain = (result or {}).get("subdomain")
        if not subdomain:
            raise DeployError("Cloudflare named no workers.dev subdomain for the account.")
        return f"https://{script}.{subdomain}.workers.dev/"

    async def _enable_workers_dev(self, script: str) -> str:
        url = await self._workers_dev_url(script)
        await self.api.call("GET", self._account(f"/workers/scripts/{script}/subdomain"))
        await self.api.call("POST", self._account(f"/workers/scripts/{script}/subdomain"), json_body={"enabled": True},
                            headers={"Cloudflare-Workers-Script-Api-Date": SCRIPT_API_DATE})
        return url

    # --- assets --------------------------------------------------------------------------------

    async def _text_file(self, request: DeployRequest, path: str) -> str | None:
        data = await request.read_output_file(path) if request.read_output_file is not None else None
        return data.decode("utf-8", errors="replace") if data is not None else None

    async def _assets(self, request: DeployRequest) -> list[DeployAsset] | None:
        """The files that are assets, or None when the Worker has code and no assets directory."""
        if request.worker is not None and not request.has_assets:
            return None
        selection = AssetSelection(await self._text_file(request, worker_assets.IGNORE_FILE))
        try:
            return [asset for asset in await request.list_assets() if selection.is_asset(asset.path)]
        except AssetError as exc:
            raise DeployError(str(exc)) from exc

    async def _keys(self, request: DeployRequest, assets: list[DeployAsset]) -> dict[str, str]:
        """path → asset key; files whose key this process already knows are not read."""
        keys: dict[str, str] = {}
        todo: list[DeployAsset] = []
        for asset in assets:
            known = _KEYS.get((asset.hash, worker_assets.extension(asset.path)))
            if known is None:
                todo.append(asset)
            else:
                keys[asset.path] = known
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def key_of(asset: DeployAsset) -> None:
            async with gate:
                data = await request.read_asset(asset.hash)
            key = worker_assets.asset_key(data, asset.path)
            keys[asset.path] = key
            if len(_KEYS) >= _KEY_CACHE_MAX:
                _KEYS.pop(next(iter(_KEYS)))
            _KEYS[(asset.hash, worker_assets.extension(asset.path))] = key

        await asyncio.gather(*(key_of(asset) for asset in todo))
        return keys

    async def _upload_assets(self, request: DeployRequest, script: str, assets: list[DeployAsset]) -> tuple[str, int]:
        """Upload what Cloudflare lacks; (completion JWT, files uploaded)."""
        say = request.log
        keys = await self._keys(request, assets)
        try:
            manifest = dict(worker_assets.manifest_entry(a.path, keys[a.path], a.size) for a in assets)
        except AssetError as exc:
            raise DeployError(str(exc)) from exc
        session = await self.api.call("POST", self._account(f"/workers/scripts/{script}/assets-upload-session"),
                                      json_body={"manifest": manifest}) or {}
        jwt, buckets = session.get("jwt"), session.get("buckets") or []
        wanted = [key for bucket in buckets for key in bucket]
        if not wanted:
            if not jwt:
                raise DeployError("Cloudflare returned no assets completion token.")
            if say is not None:
                await say(f"Assets: all {len(manifest)} files already on Cloudflare")
            return jwt, 0
        by_key = worker_assets.unique_keys((a.path, keys[a.path]) for a in assets)
        by_path = {a.path: a for a in assets}
        unknown = [key for key in wanted if key not in by_key]
        if unknown:
            raise DeployError(f"Cloudflare asked for an asset that is not in the manifest ({unknown[0]}).")
        gate = asyncio.Semaphore(UPLOAD_CONCURRENCY)
        completion: list[str] = []

        async def send(bucket: list[str]) -> None:
            async with gate:
                parts = []
                for key in bucket:
                    path = by_key[key]
                    data = await request.read_asset(by_path[path].hash)
                    kind = worker_assets.content_type(path) or worker_assets.NO_CONTENT_TYPE
                    parts.append((key, key, kind, base64.b64encode(data)))
                body, content_type = encode_multipart(parts)
                result = await self.api.call("POST", self._account("/workers/assets/upload?base64=true"), body=body,
                                             content_type=content_type, token=jwt)
                if isinstance(result, dict) and result.get("jwt"):
                    completion.append(result["jwt"])

        # Every bucket is tried to its end before a failure is raised: what got through is kept by
        # Cloudflare, and the next deploy's session asks only for the rest.
        failures = [r for r in await asyncio.gather(*(send(list(b)) for b in buckets), return_exceptions=True)
                    if isinstance(r, BaseException)]
        if failures:
            raise failures[0]
        if not completion:
            raise DeployError("Cloudflare returned no assets completion token.")
        if say is not None:
            await say(f"Assets: {len(wanted)} of {len(manifest)} files uploaded to Cloudflare")
        return completion[-1], len(wanted)

    # --- the Worker ----------------------------------------------------------------------------

    def _bindings(self, request: DeployRequest) -> list[dict[str, Any]]:
        bindings: list[dict[str, Any]] = []
        for name, value in request.worker_vars.items():
            bindings.append({"name": name, "type": "plain_text", "text": value} if isinstance(value, str)
                            else {"name": name, "type": "json", "json": value})
        for resource in request.resources:
            kind = BINDING_TYPES.get(str(resource.get("type")))
            if kind is None or not resource.get("binding"):
                continue
            bindings.append({"name": resource["binding"], "type": kind[0], kind[1]: resource["external_id"]})
        if request.assets_binding:
            bindings.append({"name": request.assets_binding, "type": "assets"})
        return bindings

    async def _script_form(self, request: DeployRequest, completion: str | None) -> tuple[bytes, str]:
        """The Worker's multipart upload: metadata, then its modules (main first)."""
        metadata: dict[str, Any] = {}
        if request.worker is not None:
            metadata["main_module"] = request.worker.main_module
            metadata["bindings"] = self._bindings(request)
        metadata["compatibility_date"] = request.compatibility_date or DEFAULT_COMPATIBILITY_DATE
        metadata["compatibility_flags"] = list(request.compatibility_flags)
        metadata["annotations"] = {"workers/message": f"fastest {request.deployment_id}"}
        if completion is not None:
            metadata["assets"] = {"jwt": completion, "config": worker_assets.assets_config(
                request.assets_settings,
                await self._text_file(request, worker_assets.HEADERS_FILE),
                await self._text_file(request, worker_assets.REDIRECTS_FILE))}
        parts: list[tuple[str, str | None, str | None, bytes]] = [
            ("metadata", None, None, json.dumps(metadata).encode())]
        for module in request.worker.modules if request.worker is not None else ():
            parts.append((module.name, module.name, PART_TYPES[module.type], await request.read_asset(module.hash)))
        return encode_multipart(parts)
