"""Durable Objects on the local runtime: in-process instances, one SQLite file of storage each.

The guarantees the application relies on, as on Cloudflare:

- **One instance per name.** `get(name)` may be called any number of times; every stub for a name
  reaches the same live object, created lazily on its first request.
- **Requests to one instance are serialized.** Each instance has an `asyncio.Lock` held for the whole
  `fetch`, so a conversation never interleaves two turns. Different instances run concurrently.
- **Storage survives restarts.** An object's storage is its own SQLite file under `root`, named by the
  SHA-256 of the object's name (names are user-influenced; file names must not be).

Instances are kept for the life of the namespace (the local server's process): unlike the edge, the
local runtime does not evict idle objects, because an object may hold live WebSockets.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastest.platform import session_values
from fastest.platform.local.blobs import successor
from fastest.platform.local.sqlite_files import open_sqlite
from fastest.ports import SessionRequest, SessionResponse


class LocalSessionStorage:
    """One object's storage (DO `ctx.storage`): JSON-serialisable values by string key, stored as
    the same JSON text as on Cloudflare (`fastest.platform.session_values`)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._connection = open_sqlite(
            path,
            lambda connection: connection.execute(
                "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID"
            ),
        )
        self._lock = threading.Lock()

    async def get(self, key: str) -> Any:
        session_values.check_key(key)
        with self._lock:
            row = self._connection.execute("SELECT value FROM entries WHERE key = ?", (key,)).fetchone()
        return session_values.decode(row[0]) if row is not None else None

    async def put(self, key: str, value: Any) -> None:
        encoded = session_values.encode(key, value)
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO entries (key, value) VALUES (?, ?)", (key, encoded)
            )

    async def delete(self, key: str) -> bool:
        session_values.check_key(key)
        with self._lock:
            cursor = self._connection.execute("DELETE FROM entries WHERE key = ?", (key,))
        return cursor.rowcount > 0

    async def list(
        self, *, prefix: str = "", start: str | None = None, end: str | None = None,
        reverse: bool = False, limit: int | None = None,
    ) -> dict[str, Any]:
        """The entries whose key starts with `prefix`, from `start` (inclusive) to `end` (exclusive),
        in key order, or descending with `reverse` (as DO storage lists them: `reverse` keeps what
        `start` and `end` mean, so the first entries returned are the last before `end`), at most
        `limit` of them."""
        if limit is not None and limit < 1:
            raise ValueError("limit must be positive")
        lower = max(prefix, start) if start is not None else prefix
        bounds = [bound for bound in (successor(prefix) if prefix else None, end) if bound is not None]
        sql = "SELECT key, value FROM entries WHERE key >= ?"
        params: list[Any] = [lower]
        if bounds:
            sql += " AND key < ?"
            params.append(min(bounds))
        sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            rows = self._connection.execute(sql, params).fetchall()
        return {key: session_values.decode(value) for key, value in rows}

    def close(self) -> None:
        with self._lock:
            self._connection.close()


SessionFactory = Callable[[str, LocalSessionStorage], Any]


@dataclass(slots=True)
class _LiveObject:
    instance: Any
    storage: LocalSessionStorage
    lock: asyncio.Lock


class LocalSessionStub:
    """What `namespace.get(name)` returns: cheap, stateless, any number of them per name."""

    __slots__ = ("_namespace", "name")

    def __init__(self, namespace: LocalSessionNamespace, name: str) -> None:
        self._namespace = namespace
        self.name = name

    async def fetch(self, request: SessionRequest) -> SessionResponse:
        live = self._namespace._live_object(self.name)
        async with live.lock:
            return await live.instance.fetch(request)


class LocalSessionNamespace:
    """The `SessionNamespace` port: named objects created by `factory(name, storage)`."""

    def __init__(self, root: Path, factory: SessionFactory) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._factory = factory
        self._objects: dict[str, _LiveObject] = {}

    def get(self, name: str) -> LocalSessionStub:
        if not isinstance(name, str) or not name:
            raise ValueError("session names must be non-empty strings")
        return LocalSessionStub(self, name)

    def instance(self, name: str) -> Any:
        """The live object for `name`, for the local WebSocket bridge, which hands frames to the same
        instance that serves `fetch` (on Cloudflare the runtime does this)."""
        return self._live_object(name).instance

    def storage_path(self, name: str) -> Path:
        return self.root / f"{hashlib.sha256(name.encode('utf-8')).hexdigest()}.sqlite"

    def _live_object(self, name: str) -> _LiveObject:
        # No await between the lookup and the insert: two first requests cannot create two objects.
        live = self._objects.get(name)
        if live is None:
            storage = LocalSessionStorage(self.storage_path(name))
            try:
                instance = self._factory(name, storage)
            except BaseException:
                storage.close()
                raise
            live = _LiveObject(instance=instance, storage=storage, lock=asyncio.Lock())
            self._objects[name] = live
        return live

    def close(self) -> None:
        objects, self._objects = self._objects, {}
        for live in objects.values():
            live.storage.close()
