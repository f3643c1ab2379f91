"""Small helpers every service uses: new ids and timestamps from the platform's clock."""

from __future__ import annotations

import json
import secrets
from typing import Any, Callable, Mapping, Sequence

from fastest.domain.ids import ENTROPY_BYTES, iso, make_id, millis_of
from fastest.domain.pagination import encode_cursor
from fastest.platform import Platform


def new_id(platform: Platform, prefix: str) -> str:
    return make_id(prefix, millis_of(platform.clock.now()), secrets.token_bytes(ENTROPY_BYTES))


def now_iso(platform: Platform) -> str:
    return iso(platform.clock.now())


def dumps(value: Any) -> str:
    """Compact JSON for TEXT columns."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def split_page(
    rows: Sequence[Mapping[str, Any]], limit: int, cursor_of: Callable[[Mapping[str, Any]], Sequence[Any]]
) -> tuple[Sequence[Mapping[str, Any]], str | None]:
    """Keyset pagination's last step. Queries fetch `limit + 1` rows: the extra row only says there
    is a next page, whose cursor is the sort key of the last row returned."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], encode_cursor(*cursor_of(rows[limit - 1]))
