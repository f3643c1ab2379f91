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

**Alarms**, held to Cloudflare's semantics (`ctx.storage.setAlarm/getAlarm/deleteAlarm` and the
object's `alarm()` handler): one alarm per object (setting it again replaces it); the alarm lives
in the object's own SQLite file, so it survives a restart; the namespace's scheduler (an asyncio
task, started by the first request or by `start_alarms()`) calls `alarm()` when it is due, under
the object's lock like a request. Delivery is at-least-once: an alarm is removed only once its
handler returned (unless the handler set a new one); a handler that raises is retried with
exponential backoff (2 s, 4 s, … up to `ALARM_MAX_RETRIES` times, then dropped, as on Cloudflare);
an alarm whose handler was running when the process died fires again at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fastest.platform import session_values
from fastest.platform.local.blobs import successor
from fastest.platform.local.sqlite_files import open_sqlite
from fastest.ports import SessionRequest, SessionResponse

log = logging.getLogger("fastest.sessions")

ALARM_MAX_RETRIES = 6  # Cloudflare retries a failing alarm handler up to six times
ALARM_RETRY_BASE_SECONDS = 2.0
ALARM_POLL_SECONDS = 1.0  # the scheduler looks at the clock at least this often

_ALARM_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alarm (id INTEGER PRIMARY KEY CHECK (id = 1), name TEXT NOT NULL, "
    "scheduled_ms INTEGER NOT NULL, retries INTEGER NOT NULL DEFAULT 0, running INTEGER NOT NULL DEFAULT 0, "
    "generation INTEGER NOT NULL DEFAULT 0)"
)


def _prepare(connection) -> None:
    connection.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    connection.execute(_ALARM_SCHEMA)


class LocalSessionStorage:
    """One object's storage (DO `ctx.storage`): JSON-serialisable values by string key, stored as
    the same JSON text as on Cloudflare (`fastest.platform.session_values`)."""

    def __init__(self, path: Path | str, name: str = "", on_alarm: Callable[[str, int | None], None] | None = None) -> None:
        self.path = Path(path)
        self.name = name
        self._on_alarm = on_alarm
        self._connection = open_sqlite(path, _prepare)
        self._lock = threading.Lock()

    # --- alarms (DO `ctx.storage.setAlarm/getAlarm/deleteAlarm`) ------------------------------------

    async def set_alarm(self, scheduled_ms: int) -> None:
        """Schedule the object's one alarm at `scheduled_ms` (ms since the epoch), replacing any."""
        if isinstance(scheduled_ms, bool) or not isinstance(scheduled_ms, (int, float)):
            raise TypeError("an alarm time is a number of milliseconds since the epoch")
        with self._lock:
            self._connection.execute(
                "INSERT INTO alarm (id, name, scheduled_ms, retries, running, generation) VALUES (1, ?, ?, 0, 0, 1) "
                "ON CONFLICT (id) DO UPDATE SET scheduled_ms = excluded.scheduled_ms, retries = 0, running = 0, "
                "generation = alarm.generation + 1", (self.name, int(scheduled_ms)),
            )
        if self._on_alarm is not None:
            self._on_alarm(self.name, int(scheduled_ms))

    async def get_alarm(self) -> int | None:
        """The scheduled time, or None (also while its own handler runs, unless it set a new one)."""
        with self._lock:
            row = self._connection.execute("SELECT scheduled_ms, running FROM alarm WHERE id = 1").fetchone()
        return None if row is None or row[1] else row[0]

    async def delete_alarm(self) -> None:
        with self._lock:
            self._connection.execute("DELETE FROM alarm WHERE id = 1")
        if self._on_alarm is not None:
            self._on_alarm(self.name, None)

    def _alarm_row(self) -> tuple[int, int, int, int] | None:
        with self._lock:
            return self._connection.execute(
                "SELECT scheduled_ms, retries, running, generation FROM alarm WHERE id = 1"
            ).fetchone()

    def begin_alarm(self) -> int | None:
        """Mark the alarm as running (kept, so a crash fires it again); its generation, or None."""
        with self._lock:
            row = self._connection.execute("SELECT generation FROM alarm WHERE id = 1").fetchone()
            if row is None:
                return None
            self._connection.execute("UPDATE alarm SET running = 1 WHERE id = 1")
            return row[0]

    def end_alarm(self, generation: int, *, failed: bool, now_ms: int) -> int | None:
        """After the handler: remove the alarm it ran (success), or reschedule it with backoff
        (failure); an alarm the handler set meanwhile stays. The next time, or None."""
        with self._lock:
            row = self._connection.execute("SELECT scheduled_ms, retries, generation FROM alarm WHERE id = 1").fetchone()
            if row is None:
                return None
            if row[2] != generation:
                return row[0]
            if not failed or row[1] >= ALARM_MAX_RETRIES:
                if failed:
                    log.error("alarm of session %s failed %d times; dropped", self.name, row[1] + 1)
                self._connection.execute("DELETE FROM alarm WHERE id = 1")
                return None
            retry_at = now_ms + int(ALARM_RETRY_BASE_SECONDS * 1000 * (2 ** row[1]))
            self._connection.execute(
                "UPDATE alarm SET scheduled_ms = ?, retries = retries + 1, running = 0 WHERE id = 1", (retry_at,)
            )
            return retry_at

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
        self._namespace.start_alarms()
        live = self._namespace._live_object(self.name)
        async with live.lock:
            return await live.instance.fetch(request)


class LocalSessionNamespace:
    """The `SessionNamespace` port: named objects created by `factory(name, storage)`."""

    def __init__(self, root: Path, factory: SessionFactory, *, now_ms: Callable[[], int] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._factory = factory
        self._objects: dict[str, _LiveObject] = {}
        self._now_ms = now_ms or (lambda: int(time.time() * 1000))
        self._alarms: dict[str, int] = {}  # name -> when, for every object with an alarm not running now
        self._firing: set[str] = set()
        self._scheduler: asyncio.Task | None = None
        self._scheduler_loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

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
            storage = LocalSessionStorage(self.storage_path(name), name, self._alarm_changed)
            try:
                instance = self._factory(name, storage)
            except BaseException:
                storage.close()
                raise
            live = _LiveObject(instance=instance, storage=storage, lock=asyncio.Lock())
            self._objects[name] = live
        return live

    def close(self) -> None:
        self._stop_alarms()
        objects, self._objects = self._objects, {}
        for live in objects.values():
            live.storage.close()

    # --- the alarm scheduler ------------------------------------------------------------------------

    def start_alarms(self) -> None:
        """Start the scheduler in the running event loop (once): it first picks up every alarm the
        objects' files hold (those of a previous process included), then fires them when due."""
        if self._scheduler is not None and not self._scheduler.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._alarms.update(self._stored_alarms())
        self._wake = asyncio.Event()
        self._scheduler_loop = loop
        self._scheduler = loop.create_task(self._run_alarms())

    def _stored_alarms(self) -> dict[str, int]:
        """Every alarm recorded in the objects' files: a running one (its process died) is due now."""
        found: dict[str, int] = {}
        for path in sorted(self.root.glob("*.sqlite")):
            try:
                with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
                    row = connection.execute("SELECT name, scheduled_ms, running FROM alarm WHERE id = 1").fetchone()
            except sqlite3.Error:
                continue
            if row is not None and row[0] and self.storage_path(row[0]) == path:
                found[row[0]] = 0 if row[2] else row[1]
        return found

    def _alarm_changed(self, name: str, scheduled_ms: int | None) -> None:
        if scheduled_ms is None:
            self._alarms.pop(name, None)
        else:
            self._alarms[name] = scheduled_ms
        self.start_alarms()
        self._poke()

    def _poke(self) -> None:
        wake, loop = self._wake, self._scheduler_loop
        if wake is None or loop is None or loop.is_closed():
            return
        _call_in(loop, wake.set)

    async def _run_alarms(self) -> None:
        assert self._wake is not None
        while True:
            now = self._now_ms()
            for name, when in list(self._alarms.items()):
                if when <= now and name not in self._firing:
                    self._alarms.pop(name, None)
                    self._firing.add(name)
                    asyncio.get_running_loop().create_task(self._fire(name))
            upcoming = [when for name, when in self._alarms.items() if name not in self._firing]
            delay = min([ALARM_POLL_SECONDS, *((when - now) / 1000 for when in upcoming)])
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(delay, 0.001))

    async def _fire(self, name: str) -> None:
        try:
            live = self._live_object(name)
            handler = getattr(live.instance, "alarm", None)
            async with live.lock:
                generation = live.storage.begin_alarm()
                if generation is None:
                    return
                failed = False
                try:
                    if handler is not None:
                        await handler()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("alarm of session %s failed; it will be retried", name)
                    failed = True
                following = live.storage.end_alarm(generation, failed=failed, now_ms=self._now_ms())
            if following is not None:
                self._alarms[name] = following
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("alarm of session %s could not run", name)
        finally:
            self._firing.discard(name)
            self._poke()

    def _stop_alarms(self) -> None:
        task, loop = self._scheduler, self._scheduler_loop
        self._scheduler = self._scheduler_loop = self._wake = None
        if task is None or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            _call_in(loop, task.cancel)


def _call_in(loop: asyncio.AbstractEventLoop, function: Callable[[], Any]) -> None:
    """Call `function` on `loop`: now when we are on it, else soon, from whichever thread we are on
    (the scheduler's events belong to its loop; closing can happen from another)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        function()
    else:
        loop.call_soon_threadsafe(function)
