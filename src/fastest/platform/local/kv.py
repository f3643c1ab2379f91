"""Workers KV on the local runtime: one SQLite table with expiry times, limits as on the platform.

KV is a cache here (sync previews, JWKS): values may be stale and must never be used as counters or
locks. The local store is strongly consistent, which is allowed; what it must not be is more
permissive than KV, so TTLs under 60 s, oversized values and oversized keys fail as they do on KV.
Expired keys disappear from `get` and `list` at once and are purged lazily.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fastest.platform.local.blobs import decode_cursor, encode_cursor, successor
from fastest.platform.local.sqlite_files import open_sqlite
from fastest.ports import (
    KV_MAX_KEY_BYTES,
    KV_MAX_VALUE_BYTES,
    KV_MIN_TTL_SECONDS,
    Clock,
    KeyListing,
)

KV_MAX_LIST_LIMIT = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key         TEXT PRIMARY KEY,   -- BINARY collation: KV lists keys in UTF-8 byte order
    value       TEXT NOT NULL,
    expires_at  REAL                -- unix seconds; NULL = never
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv(expires_at) WHERE expires_at IS NOT NULL;
"""


def _validate_key(key: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("KV key must be a non-empty string")
    if key in (".", ".."):
        raise ValueError("KV key must not be '.' or '..'")
    if len(key.encode("utf-8", "surrogatepass")) > KV_MAX_KEY_BYTES:
        raise ValueError(f"KV key longer than {KV_MAX_KEY_BYTES} bytes")


class LocalKeyValue:
    """The `KeyValue` port over its own SQLite file."""

    def __init__(self, path: Path | str, clock: Clock) -> None:
        self._clock = clock
        self._connection = open_sqlite(path, lambda connection: connection.executescript(_SCHEMA))
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def get(self, key: str) -> str | None:
        _validate_key(key)
        now = self._now()
        with self._lock:
            row = self._connection.execute(
                "SELECT value, expires_at FROM kv WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            value, expires_at = row
            if expires_at is not None and expires_at <= now:
                self._connection.execute("DELETE FROM kv WHERE key = ? AND expires_at <= ?", (key, now))
                return None
        return value

    async def put(self, key: str, value: str, *, expiration_ttl: int | None = None) -> None:
        _validate_key(key)
        if not isinstance(value, str):
            raise TypeError("KV values are strings")
        if len(value) * 4 > KV_MAX_VALUE_BYTES and len(value.encode("utf-8")) > KV_MAX_VALUE_BYTES:
            raise ValueError(f"KV value larger than {KV_MAX_VALUE_BYTES} bytes")
        expires_at: float | None = None
        if expiration_ttl is not None:
            if isinstance(expiration_ttl, bool) or not isinstance(expiration_ttl, int):
                raise ValueError("expiration_ttl must be a whole number of seconds")
            if expiration_ttl < KV_MIN_TTL_SECONDS:
                raise ValueError(f"expiration_ttl must be at least {KV_MIN_TTL_SECONDS} seconds")
            expires_at = self._now() + expiration_ttl
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires_at) VALUES (?, ?, ?)",
                (key, value, expires_at),
            )
            self._purge_expired_locked()

    async def delete(self, key: str) -> None:
        _validate_key(key)
        with self._lock:
            self._connection.execute("DELETE FROM kv WHERE key = ?", (key,))

    async def list(self, *, prefix: str = "", cursor: str | None = None, limit: int = 1000) -> KeyListing:
        if not 1 <= limit <= KV_MAX_LIST_LIMIT:
            raise ValueError(f"list limit must be between 1 and {KV_MAX_LIST_LIMIT}")
        op, start = decode_cursor(cursor) if cursor else ("ge", prefix)
        sql = f"SELECT key FROM kv WHERE key {'>' if op == 'gt' else '>='} ? AND key >= ?"
        params: list[object] = [start, prefix]
        upper = successor(prefix)
        if upper is not None:
            sql += " AND key < ?"
            params.append(upper)
        sql += " AND (expires_at IS NULL OR expires_at > ?) ORDER BY key LIMIT ?"
        params += [self._now(), limit + 1]
        with self._lock:
            self._purge_expired_locked()
            rows = self._connection.execute(sql, params).fetchall()
        keys = [row[0] for row in rows[:limit]]
        complete = len(rows) <= limit
        return KeyListing(
            keys=keys,
            cursor=None if complete else encode_cursor(("gt", keys[-1])),
            list_complete=complete,
        )

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _purge_expired_locked(self) -> None:
        # Bounded, index-driven delete: expired entries never pile up, and no single call pays for
        # a long backlog.
        self._connection.execute(
            "DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires_at <= ? LIMIT 100)",
            (self._now(),),
        )
