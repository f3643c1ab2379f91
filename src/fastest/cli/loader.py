"""Where the client reads manifests from: trees held locally, the local cache, then the server.

Manifests are immutable and named by their hash, so a downloaded one is verified once and cached in
`.fastest/manifests/` for good. Used by `status` (diff) and `checkout` (walk) with
`fastest.domain.tree`, whose loaders are async; the HTTP call inside is a plain blocking one, as
nothing else runs on that event loop.
"""

from __future__ import annotations

import io

from fastest.cli.client import MANIFEST_DOWNLOAD_BATCH, ApiClient, ApiError
from fastest.cli.state import ManifestCache
from fastest.domain.manifest import Manifest, parse_manifest, sha256_hex
from fastest.domain.tree import ManifestLoader

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Coroutine, Mapping, TypeVar

    T = TypeVar("T")


def manifest_loader(api: ApiClient | None, cache: ManifestCache | None = None,
                    *local: Mapping[str, bytes]) -> ManifestLoader:
    """Look in each `local` mapping, then the cache, then the server. Local bytes are used only if
    they are those of their hash (the pushed tree's manifests are checked here, when read)."""
    parsed: dict[str, Manifest] = {}

    async def load(digest: str) -> Manifest:
        if digest in parsed:
            return parsed[digest]
        data = next((source[digest] for source in local
                     if digest in source and sha256_hex(source[digest]) == digest), None)
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
        parsed[digest] = manifest = parse_manifest(data, allow_reserved=True)  # writers skip those paths
        return manifest

    return load


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine whose awaits never wait (the loaders above answer at once, their HTTP being
    blocking) to its end, without an event loop: `asyncio.run` would cost `fastest status` ~25 ms
    of start-up importing asyncio, and this is all it would do. A coroutine that does wait on
    something (a future, a sleep) is a programming error here."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("run_blocking: the coroutine waited on an event loop")


PREFETCH_BATCH = 1000


def prefetch_tree(api: ApiClient, root_hash: str, cache: ManifestCache | None = None,
                  *local: Mapping[str, bytes]) -> dict[str, bytes]:
    """Fetch every manifest of a tree a level at a time, one batch request per level (per 1,000), so a
    walk over 1,000 directories costs a handful of requests instead of 1,000. Each manifest's hash is
    verified as its frame arrives. Returns what was fetched (to pass as a `local` source to
    `manifest_loader`); an old server without the batch route gets {} and the loader fetches one by one.
    """
    fetched: dict[str, bytes] = {}

    def have(digest: str) -> bytes | None:
        if digest in fetched:
            return fetched[digest]
        for source in local:  # checked as the loader checks them
            if digest in source and sha256_hex(source[digest]) == digest:
                return source[digest]
        return cache.get(digest) if cache is not None else None

    level, seen = [root_hash], {root_hash}
    while level:
        wanted = [digest for digest in level if have(digest) is None]
        for start in range(0, len(wanted), PREFETCH_BATCH):
            chunk = wanted[start:start + PREFETCH_BATCH]
            sinks: dict[str, io.BytesIO] = {}

            def open_sink(digest: str) -> io.BytesIO:
                sinks[digest] = _KeptBuffer()
                return sinks[digest]

            def keep(digest: str, _size: int) -> None:
                fetched[digest] = sinks[digest].getvalue()
                if cache is not None:
                    cache.put(digest, fetched[digest])

            api.download_batch(chunk, open_sink, keep, route=MANIFEST_DOWNLOAD_BATCH)
        next_level = []
        for digest in level:
            data = have(digest)
            if data is None:
                continue  # the loader will ask for it alone and report it missing
            for entry in parse_manifest(data, allow_reserved=True).entries:
                if entry.type == "tree" and entry.hash not in seen:
                    seen.add(entry.hash)
                    next_level.append(entry.hash)
        level = next_level
    return fetched


class _KeptBuffer(io.BytesIO):
    """A BytesIO whose contents survive `close()` (the batch reader closes each sink)."""

    def close(self) -> None:
        self._kept = super().getvalue()
        super().close()

    def getvalue(self) -> bytes:
        return self._kept if self.closed else super().getvalue()
