"""A Worker's static assets as wrangler prepares them for Cloudflare: which files of the assets
directory are assets, the key Cloudflare stores each one under, its Content-Type, and the assets
configuration that travels with the Worker's metadata.

- Key: the BLAKE3 hash of the file's base64 text followed by its extension (`index.html` → `html`),
  first 32 hex digits. The extension is part of the key, so equal bytes under two extensions
  (`same.html`, `same.txt`) are two assets, each served with its own type.
- Content-Type: the `mime` package's type for the extension (`media_types`), with
  `; charset=utf-8` added to `text/*` types; none for an extension it does not know (wrangler then
  sends `application/null`, which Cloudflare reads as "no Content-Type").
- Not assets: `_headers`, `_redirects` and `.assetsignore` at the root (the first two go into the
  configuration as text, and Cloudflare applies their rules), and whatever `.assetsignore` lists
  (gitignore syntax). A `_worker.js` among the assets is refused unless `.assetsignore` exists, as
  wrangler refuses it: it would publish a Pages Worker's server code.
"""

from __future__ import annotations

import base64
import posixpath
from typing import Any, Iterable, Mapping

import pathspec

from fastest.domain.media_types import TYPES

HEADERS_FILE = "_headers"
REDIRECTS_FILE = "_redirects"
IGNORE_FILE = ".assetsignore"
PAGES_WORKER = "_worker.js"
MAX_ASSET_BYTES = 25 * 1024 * 1024
NO_CONTENT_TYPE = "application/null"  # wrangler's way of saying "none" in a multipart part

try:  # the native package where it installs (the local runtime); the pure one elsewhere (Pyodide)
    from blake3 import blake3 as _native_blake3

    def _blake3(data: bytes) -> bytes:
        return _native_blake3(data).digest()
except ImportError:  # pragma: no cover - exercised on the Worker, and by test_worker_assets
    from fastest.domain.blake3 import blake3 as _blake3


class AssetError(ValueError):
    """The assets directory cannot be deployed as it is (wrangler refuses it the same way)."""


def extension(path: str) -> str:
    """The extension without its dot, as Node's `path.extname` finds it (`.htaccess` has none)."""
    return posixpath.splitext(posixpath.basename(path))[1][1:]


def asset_key(data: bytes, path: str) -> str:
    """The key Cloudflare keeps the asset under, as wrangler computes it."""
    return _blake3(base64.b64encode(data) + extension(path).encode("utf-8")).hex()[:32]


def media_type(path: str) -> str | None:
    """The `mime` package's answer for a path: by its extension, none for a name without one."""
    name = posixpath.basename(path).lower()
    head, dot, ext = name.rpartition(".")
    if not dot or not head:
        return None
    return TYPES.get(ext)


def content_type(path: str) -> str | None:
    """The Content-Type the asset is served with (text types say UTF-8), or None."""
    kind = media_type(path)
    if kind is not None and kind.startswith("text/") and "charset" not in kind:
        kind += "; charset=utf-8"
    return kind


class AssetSelection:
    """Which files of the assets directory are assets, from its `.assetsignore` (None: no such file)."""

    def __init__(self, ignore_text: str | None) -> None:
        lines = [f"/{IGNORE_FILE}", f"/{REDIRECTS_FILE}", f"/{HEADERS_FILE}"]
        if ignore_text is not None:
            lines += ignore_text.split("\n")
        self.has_ignore_file = ignore_text is not None
        self._spec = pathspec.GitIgnoreSpec.from_lines(lines)

    def is_asset(self, path: str) -> bool:
        if self._spec.match_file(path):
            return False
        if not self.has_ignore_file and (path == PAGES_WORKER or path.startswith(PAGES_WORKER + "/")):
            raise AssetError(f"{path} would be published as an asset (a Pages Worker's code, made public); "
                             f"remove it, or list it in an {IGNORE_FILE} file at the root of the assets")
        return True


def manifest_entry(path: str, key: str, size: int) -> tuple[str, dict[str, Any]]:
    """One line of the upload session's manifest: `/path` → `{hash, size}`."""
    if size > MAX_ASSET_BYTES:
        raise AssetError(f"{path} is {size} bytes; Cloudflare takes assets of up to {MAX_ASSET_BYTES} bytes")
    return "/" + path, {"hash": key, "size": size}


def assets_config(settings: Mapping[str, Any], headers: str | None, redirects: str | None) -> dict[str, Any]:
    """The `assets.config` of the Worker's metadata: what the project's wrangler configuration sets
    (`html_handling`, `not_found_handling`, `run_worker_first`) and the text of `_redirects` and
    `_headers`. Unset fields are left out, as wrangler leaves them out."""
    config = {key: settings.get(key) for key in ("html_handling", "not_found_handling", "run_worker_first")}
    config.update({"_redirects": redirects, "_headers": headers})
    return {key: value for key, value in config.items() if value is not None}


def unique_keys(entries: Iterable[tuple[str, str]]) -> dict[str, str]:
    """key → the first path carrying it (one upload per key, whatever the number of paths)."""
    first: dict[str, str] = {}
    for path, key in entries:
        first.setdefault(key, path)
    return first
