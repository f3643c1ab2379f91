"""The local runtime's `VectorIndex`: vectors in SQLite (float32 blobs), searched by exact cosine
similarity. Each namespace × model is held in memory once read (numpy when present), and dropped
when written, so a search is one matrix product."""

from __future__ import annotations

import json
import math
import struct
from typing import Any, Mapping, Sequence

from fastest.ports import Database, VectorMatch

_BATCH = 50


def _pack(vector: Sequence[float]) -> bytes:
    return struct.pack(f"<{len(vector)}f", *vector)


def _unpack(data: bytes) -> tuple[float, ...]:
    return struct.unpack(f"<{len(data) // 4}f", data)


class SqliteVectorIndex:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[tuple[str, str], tuple[list[str], list[dict], Any]] = {}

    async def upsert(self, namespace: str, model: str, items: Sequence[tuple[str, Sequence[float], Mapping[str, Any]]]) -> None:
        self._cache.pop((namespace, model), None)
        for start in range(0, len(items), _BATCH):
            await self._db.batch([
                self._db.prepare(
                    "INSERT INTO vectors (namespace, model, id, dimensions, vector, metadata) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (namespace, model, id) DO UPDATE SET dimensions = excluded.dimensions, "
                    "vector = excluded.vector, metadata = excluded.metadata"
                ).bind(namespace, model, item_id, len(vector), _pack(vector), json.dumps(dict(metadata)))
                for item_id, vector, metadata in items[start:start + _BATCH]
            ])

    async def delete(self, namespace: str, model: str, ids: Sequence[str]) -> None:
        self._cache.pop((namespace, model), None)
        for start in range(0, len(ids), 90):
            part = list(ids[start:start + 90])
            await self._db.prepare(
                "DELETE FROM vectors WHERE namespace = ? AND model = ? AND id IN (SELECT value FROM json_each(?))"
            ).bind(namespace, model, json.dumps(part)).run()

    async def _matrix(self, namespace: str, model: str) -> tuple[list[str], list[dict], Any]:
        cached = self._cache.get((namespace, model))
        if cached is not None:
            return cached
        rows = (await self._db.prepare(
            "SELECT id, vector, metadata FROM vectors WHERE namespace = ? AND model = ? ORDER BY id"
        ).bind(namespace, model).all()).results
        ids = [row["id"] for row in rows]
        metadata = [json.loads(row["metadata"]) for row in rows]
        try:
            import numpy

            matrix: Any = numpy.frombuffer(b"".join(row["vector"] for row in rows), dtype="<f4")
            matrix = matrix.reshape(len(rows), -1) if rows else matrix.reshape(0, 0)
            norms = numpy.linalg.norm(matrix, axis=1, keepdims=True) if rows else None
            if rows:
                matrix = matrix / numpy.where(norms == 0, 1, norms)
        except ImportError:
            matrix = [_normalized(_unpack(row["vector"])) for row in rows]
        entry = (ids, metadata, matrix)
        self._cache[(namespace, model)] = entry
        return entry

    async def query(self, namespace: str, model: str, vector: Sequence[float], *, top_k: int = 20) -> list[VectorMatch]:
        ids, metadata, matrix = await self._matrix(namespace, model)
        if not ids:
            return []
        query = _normalized(vector)
        if isinstance(matrix, list):
            scores = [sum(a * b for a, b in zip(row, query)) for row in matrix]
            order = sorted(range(len(ids)), key=lambda i: -scores[i])[:top_k]
            return [VectorMatch(ids[i], float(scores[i]), metadata[i]) for i in order]
        import numpy

        if matrix.shape[1] != len(query):
            return []
        scores = matrix @ numpy.asarray(query, dtype="<f4")
        k = min(top_k, len(ids))
        best = numpy.argpartition(-scores, k - 1)[:k]
        best = best[numpy.argsort(-scores[best], kind="stable")]
        return [VectorMatch(ids[i], float(scores[i]), metadata[i]) for i in best]


def _normalized(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
