"""The local runtime's embedding model: WordLlama's 256-dimension `l2_supercat` model, whose weights
and tokenizer ship inside the `wordllama` wheel. It is loaded from the package's own files (never
from a hub: nothing is downloaded at run time), once per process, and runs in-process on numpy."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Sequence

PROVIDER = "local"
MODEL = "wordllama-l2-supercat-256"

_lock = threading.Lock()
_loaded: list[Any] = []


def _load() -> Any:
    with _lock:
        if not _loaded:
            import wordllama
            from safetensors import safe_open
            from tokenizers import Tokenizer
            from wordllama.inference import WordLlamaInference

            root = Path(wordllama.__file__).parent
            tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
            with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np", device="cpu") as f:
                embedding = f.get_tensor("embedding.weight")
            _loaded.append(WordLlamaInference(embedding, tokenizer))
        return _loaded[0]


def available() -> bool:
    try:
        import wordllama  # noqa: F401
    except ImportError:
        return False
    return True


class LocalEmbedder:
    """The `EmbeddingModel` the local runtime ships (chat goes to the configured provider)."""

    provider = PROVIDER
    model = MODEL
    dimensions = 256

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = _load()
        if len(texts) <= 8:  # a query: faster inline than a hop to a thread
            vectors = model.embed(list(texts), norm=True)
        else:
            vectors = await asyncio.to_thread(model.embed, list(texts), norm=True)
        return [list(map(float, row)) for row in vectors]


def local_embedder() -> LocalEmbedder | None:
    return LocalEmbedder() if available() else None
