"""Small helpers every service uses: new ids and timestamps from the platform's clock."""

from __future__ import annotations

import json
import secrets
from typing import Any

from fastest.domain.ids import ENTROPY_BYTES, iso, make_id, millis_of
from fastest.platform import Platform


def new_id(platform: Platform, prefix: str) -> str:
    return make_id(prefix, millis_of(platform.clock.now()), secrets.token_bytes(ENTROPY_BYTES))


def now_iso(platform: Platform) -> str:
    return iso(platform.clock.now())


def dumps(value: Any) -> str:
    """Compact JSON for TEXT columns."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
