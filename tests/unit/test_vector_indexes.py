"""The VectorIndex port: the local SQLite index (exact cosine, only vectors of the same model) and the
Vectorize adapter against a fake binding shaped like the documented one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastest.config import Settings
from fastest.platform.cloudflare.vectorize import MAX_TOP_K, VectorizeIndex
from fastest.platform.local import open_local_platform


def test_local_index_ranks_by_cosine_and_never_mixes_models(tmp_path: Path):
    platform = open_local_platform(tmp_path / "data", Settings())
    index = platform.vectors

    async def scenario():
        await index.upsert("prj_a", "m1", [("x", [1.0, 0.0], {"concept_id": "cx"}), ("y", [0.6, 0.8], {"concept_id": "cy"})])
        await index.upsert("prj_a", "m2", [("z", [1.0, 0.0, 0.0], {"concept_id": "cz"})])
        await index.upsert("prj_b", "m1", [("w", [1.0, 0.0], {})])
        first = await index.query("prj_a", "m1", [0.0, 2.0], top_k=5)
        other_model = await index.query("prj_a", "m2", [0.0, 2.0], top_k=5)
        await index.delete("prj_a", "m1", ["y"])
        after = await index.query("prj_a", "m1", [0.0, 2.0], top_k=5)
        return first, other_model, after

    try:
        first, other_model, after = asyncio.run(scenario())
    finally:
        platform.close()
    assert [m.id for m in first] == ["y", "x"] and abs(first[0].score - 0.8) < 1e-6
    assert first[0].metadata == {"concept_id": "cy"}
    assert other_model == []  # a 2-dimension query is not compared with another model's vectors
    assert [m.id for m in after] == ["x"]


class FakeVectorize:
    def __init__(self, matches):
        self.calls = []
        self.matches = matches

    async def upsert(self, vectors):
        self.calls.append(("upsert", vectors))
        return {"mutationId": "m1"}

    async def query(self, vector, options):
        self.calls.append(("query", vector, options))
        return {"count": len(self.matches), "matches": self.matches}

    async def deleteByIds(self, ids):
        self.calls.append(("delete", ids))
        return {"mutationId": "m2"}


def test_vectorize_adapter_shapes_and_model_filter():
    fake = FakeVectorize([{"id": "a", "score": 0.9, "metadata": {"model": "bge", "concept_id": "ca"}},
                          {"id": "b", "score": 0.8, "metadata": {"model": "other"}}])
    index = VectorizeIndex(fake, convert=lambda value: value)

    async def scenario():
        await index.upsert("prj_a", "bge", [("a", [0.1, 0.2], {"concept_id": "ca"})])
        found = await index.query("prj_a", "bge", [0.1, 0.2], top_k=50)
        await index.delete("prj_a", "bge", ["a"])
        return found

    found = asyncio.run(scenario())
    assert fake.calls[0] == ("upsert", [{"id": "a", "values": [0.1, 0.2], "namespace": "prj_a",
                                         "metadata": {"concept_id": "ca", "model": "bge"}}])
    assert fake.calls[1][2] == {"topK": MAX_TOP_K, "namespace": "prj_a", "returnMetadata": "all"}
    assert [m.id for m in found] == ["a"]  # the other model's match is dropped
    assert fake.calls[2] == ("delete", ["a"])
