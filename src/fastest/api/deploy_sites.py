"""The local provider's sites: a ready deployment's static output, served by the local server.

Two ways in, both answered from the deployment's output tree (the user's content-addressed blobs):
- its own origin, `http://<slug>.localhost:<port>/…` (browsers and curl resolve `*.localhost` to
  loopback; an origin per deployment keeps absolute asset paths such as `/assets/app.js` working);
- the path fallback `/_deployments/<slug>/…` on the server's own origin. That origin is the API's and
  the device page's, where a browser on this machine signs in as the local owner: a deployed script
  there could read the page's form token and approve a sign-in of its own. So the fallback is sent
  with `Content-Security-Policy: sandbox` without `allow-same-origin`: the browser gives the page an
  opaque origin of its own, which reads nothing of the server's origin and carries none of its
  cookies. Sites are never sent a `Set-Cookie`.

A project also has a stable origin, `http://<project-slug>.localhost:<port>/`, serving its latest
ready local deployment (a rollback is a new deployment, so it moves there too).

Only hosts shaped like these (`dep-<26 base32>.localhost`, `<name>-<8 base32>.localhost`) and paths
under `/_deployments/` are taken: the API on the main host is never shadowed. This wraps the app in the local server only
(`platform/local/server.py`); the Worker never serves local deployments.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections import OrderedDict
from typing import Any, Callable
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

from fastest.domain import tree
from fastest.domain.deploy_pipeline import is_served
from fastest.domain.manifest import Manifest
from fastest.errors import ApiError
from fastest.platform import Platform
from fastest.services import deployments, storage

HOST = re.compile(r"^(dep-[0-9a-z]{26})\.localhost(?::\d+)?$")
# A project's stable address: its latest ready local deployment (`<name>-<8 id chars>.localhost`).
PROJECT_HOST = re.compile(r"^([a-z0-9](?:[a-z0-9-]{0,40}[a-z0-9])?-[0-9a-z]{8})\.localhost(?::\d+)?$")
FALLBACK = re.compile(r"^/_deployments/(dep-[0-9a-z]{26})(/.*)?$")
MANIFEST_CACHE = 4096  # parsed manifests kept (they are immutable: keyed by hash)
SITE_CACHE, SITE_TTL = 1024, 10.0
# The path fallback's pages run as a sandboxed document: scripts, forms and popups work, but never as
# the server's origin (no `allow-same-origin`), nor can they navigate the tab they are in.
FALLBACK_SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"


def route(scope: Scope) -> tuple[str, str, str] | None:
    """(slug, path inside the site, prefix) when the request is for a deployment, else None."""
    host = ""
    for name, value in scope.get("headers", []):
        if name == b"host":
            host = value.decode("latin-1").lower()
            break
    matched = HOST.match(host) or PROJECT_HOST.match(host)
    if matched:
        return matched.group(1), scope.get("path", "/"), ""
    fallback = FALLBACK.match(scope.get("path", ""))
    if fallback:
        return fallback.group(1), fallback.group(2) or "", f"/_deployments/{fallback.group(1)}"
    return None


class DeploymentSites:
    def __init__(self, app: ASGIApp, platform_provider: Callable[[Scope], Platform]) -> None:
        self.app = app
        self.platform_provider = platform_provider
        self._manifests: OrderedDict[tuple[str, str], Manifest] = OrderedDict()
        # slug → (user id, output root, when looked up): a ready deployment never changes, but a
        # deleted project must stop serving, so an entry is believed for SITE_TTL seconds.
        self._sites: OrderedDict[str, tuple[str, str, float]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = route(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        slug, path, prefix = found
        if prefix and path == "":  # /_deployments/<slug> → /_deployments/<slug>/ (relative links)
            await _answer(send, 308, b"", {"location": prefix + "/"})
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"Method not allowed", {"allow": "GET, HEAD"})
            return
        platform = self.platform_provider(scope)
        status, body, headers = await self._serve(platform, slug, path, _header(scope, b"if-none-match"))
        if prefix:
            headers["content-security-policy"] = FALLBACK_SANDBOX
        await _answer(send, status, b"" if scope["method"] == "HEAD" else body, headers, length=len(body))

    async def _serve(self, platform: Platform, slug: str, path: str, if_none_match: str | None) -> tuple[int, bytes, dict[str, str]]:
        site = await self._site(platform, slug)
        if site is None:
            return 404, b"No such deployment.", {"content-type": "text/plain; charset=utf-8"}
        user_id, root = site
        load = self._loader(platform, user_id)
        relative = unquote(path).lstrip("/")
        if ".." in relative.split("/") or not is_served(relative):
            return 404, b"Not found.", {"content-type": "text/plain; charset=utf-8"}
        candidates = [relative + "index.html"] if relative == "" or relative.endswith("/") else [
            relative, relative + ".html", relative + "/index.html"]
        status = 200
        entry = None
        for candidate in candidates:
            entry = await tree.find(root, candidate, load)
            if entry is not None and entry.type == "file":
                break
            entry = None
        if entry is None:
            candidate, status = "404.html", 404
            entry = await tree.find(root, candidate, load)
            if entry is None or entry.type != "file":
                return 404, b"Not found.", {"content-type": "text/plain; charset=utf-8"}
        etag = f'"{entry.hash}"'
        headers = {"content-type": _content_type(candidate), "etag": etag, "cache-control": "no-cache",
                   "x-content-type-options": "nosniff"}
        if status == 200 and if_none_match is not None and etag in [t.strip() for t in if_none_match.split(",")]:
            return 304, b"", headers
        try:
            data = await storage.read_blob(platform, user_id, entry.hash)
        except ApiError:
            return 404, b"Not found.", {"content-type": "text/plain; charset=utf-8"}
        return status, data, headers

    async def _site(self, platform: Platform, slug: str) -> tuple[str, str] | None:
        if not slug.startswith("dep-"):  # a project's address moves with each deploy: not cached
            row = await deployments.live_for_project_slug(platform, slug)
            return (row["user_id"], row["output_manifest_hash"]) if row else None
        cached = self._sites.get(slug)
        if cached is not None and time.monotonic() - cached[2] < SITE_TTL:
            return cached[0], cached[1]
        row = await deployments.by_slug(platform, slug)
        if row is None or not row["output_manifest_hash"]:
            self._sites.pop(slug, None)
            return None
        self._sites[slug] = (row["user_id"], row["output_manifest_hash"], time.monotonic())
        self._sites.move_to_end(slug)
        if len(self._sites) > SITE_CACHE:
            self._sites.popitem(last=False)
        return row["user_id"], row["output_manifest_hash"]

    def _loader(self, platform: Platform, user_id: str) -> Callable[[str], Any]:
        async def load(manifest_hash: str) -> Manifest:
            key = (user_id, manifest_hash)
            cached = self._manifests.get(key)
            if cached is not None:
                self._manifests.move_to_end(key)
                return cached
            manifest = await storage.read_manifest(platform, user_id, manifest_hash)
            self._manifests[key] = manifest
            if len(self._manifests) > MANIFEST_CACHE:
                self._manifests.popitem(last=False)
            return manifest

        return load


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _content_type(path: str) -> str:
    guessed = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if guessed.startswith("text/") or guessed in ("application/javascript", "application/json", "image/svg+xml"):
        return f"{guessed}; charset=utf-8"
    return guessed


async def _answer(send: Send, status: int, body: bytes, headers: dict[str, str], *, length: int | None = None) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body) if length is None else length).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
