"""The `VectorIndex` port over a Vectorize binding (thin on purpose).

One Vectorize index per embedding model (its dimensions are fixed: ≤ 1,536), the project as the
namespace, the model id in each vector's metadata (matches of another model are dropped, so vectors
of different models are never compared). Limits minded: topK ≤ 20 when metadata is returned;
upserts are asynchronous (visible a few seconds later); ids ≤ 64 bytes (ours are 40).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from fastest.platform.cloudflare.interop import from_js
from fastest.ports import VectorMatch

MAX_TOP_K = 20
_BATCH = 500


def _js(value: Any) -> Any:
    from js import Object  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    return to_js(value, dict_converter=Object.fromEntries)


class VectorizeIndex:
    def __init__(self, binding: Any, *, convert: Any = None) -> None:
        self._binding = binding
        self._js = convert or _js  # tests pass a plain converter; on Workers, Pyodide's to_js

    async def upsert(self, namespace: str, model: str, items: Sequence[tuple[str, Sequence[float], Mapping[str, Any]]]) -> None:
        for start in range(0, len(items), _BATCH):
            await self._binding.upsert(self._js([
                {"id": item_id, "values": list(vector), "namespace": namespace, "metadata": {**metadata, "model": model}}
                for item_id, vector, metadata in items[start:start + _BATCH]
            ]))

    async def query(self, namespace: str, model: str, vector: Sequence[float], *, top_k: int = 20) -> list[VectorMatch]:
        result = from_js(await self._binding.query(self._js(list(vector)), self._js({
            "topK": min(top_k, MAX_TOP_K), "namespace": namespace, "returnMetadata": "all",
        })))
        matches = []
        for match in (result or {}).get("matches") or []:
            metadata = match.get("metadata") or {}
            if metadata.get("model") == model:
                matches.append(VectorMatch(str(match["id"]), float(match.get("score") or 0), metadata))
        return matches

    async def delete(self, namespace: str, model: str, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), _BATCH):
            await self._binding.deleteByIds(self._js(list(ids[start:start + _BATCH])))
