"""How a session object's values are stored, shared by both `SessionStorage` adapters: compact JSON
text, checked against Durable Object storage's limits before it is written.

Text, not the value itself, because on Cloudflare a Python dict or list handed to `ctx.storage.put`
crosses into JavaScript as a proxy (PyProxy), which the runtime would have to structured-clone; a
string crosses as a plain JS string. The local SQLite storage keeps the same text, so both runtimes
accept and refuse the same values.
"""

from __future__ import annotations

import json
from typing import Any

# SQLite-backed Durable Objects: "key and value combined cannot exceed 2 MB".
MAX_ENTRY_BYTES = 2_000_000


def check_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("session storage keys must be non-empty strings")


def encode(key: str, value: Any) -> str:
    """The stored text of `value` under `key`; ValueError for a bad key, a value that is not JSON
    (sets, NaN, objects) or an entry past the limit."""
    check_key(key)
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError("session storage values must be JSON-serialisable") from exc
    if len(key.encode("utf-8")) + len(text.encode("utf-8")) > MAX_ENTRY_BYTES:
        raise ValueError(f"session storage entry larger than {MAX_ENTRY_BYTES} bytes")
    return text


def decode(text: str) -> Any:
    return json.loads(text)
