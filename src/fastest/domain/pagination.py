"""Opaque keyset cursors.

A cursor is the sort key of the last row a page returned, base64url-encoded JSON. Keyset pagination
(`WHERE (sort, id) < (:sort, :id)`) never repeats or skips a row that existed when paging began,
however many rows are inserted meanwhile — unlike OFFSET.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from fastest.domain.untrusted_text import parse_json


class InvalidCursor(ValueError):
    pass


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """Decode a cursor whose key has exactly these element types (e.g. `str, str`)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = parse_json(raw)
    except (ValueError, TypeError) as exc:  # Unparseable is a ValueError
        raise InvalidCursor("malformed cursor") from exc
    if (
        not isinstance(key, list)
        or len(key) != len(types)
        or not all(type(k) is t for k, t in zip(key, types))  # exact: bool is not an int here
    ):
        raise InvalidCursor("malformed cursor")
    return key
