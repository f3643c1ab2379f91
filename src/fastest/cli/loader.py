"""Where the client reads manifests from: trees held locally, the local cache, then the server.

Manifests are immutable and named by their hash, so a downloaded one is verified once and cached in
`.fastest/manifests/` for good. Used by `status` (diff) and `checkout` (walk) with
`fastest.domain.tree`, whose loaders are async; the HTTP call inside is a plain blocking one, as
nothing else runs on that event loop.
"""

from __future__ import annotations

from typing import Mapping

from fastest.cli.client import ApiClient, ApiError
from fastest.cli.state import ManifestCache
from fastest.domain.manifest import Manifest, parse_manifest, sha256_hex
from fastest.domain.tree import ManifestLoader


def manifest_loader(api: ApiClient | None, cache: ManifestCache | None = None,
                    *local: Mapping[str, bytes]) -> ManifestLoader:
    """Look in each `local` mapping (trusted: built or verified here), then the cache, then the server."""
    parsed: dict[str, Manifest] = {}

    async def load(digest: str) -> Manifest:
        if digest in parsed:
            return parsed[digest]
        data = next((source[digest] for source in local if digest in source), None)
        if data is None and cache is not None:
            data = cache.get(digest)
        if data is None:
            if api is None:
                raise ApiError(0, "manifest_missing", f"manifest {digest} is not available offline")
            data = api.get_manifest(digest)
            if sha256_hex(data) != digest:
                raise ApiError(200, "hash_mismatch", f"manifest {digest} came back with different content")
            if cache is not None:
                cache.put(digest, data)
        parsed[digest] = manifest = parse_manifest(data)
        return manifest

    return load
