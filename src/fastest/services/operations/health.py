"""Liveness, and with `deep` a reachability check of each binding."""

from __future__ import annotations

import time
from typing import Any

from fastest.domain.ids import iso
from fastest.platform import Platform


async def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await check()
    except Exception as exc:  # a health check reports failures, it does not raise them
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


async def report(platform: Platform, *, deep: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "ok", "timestamp": iso(platform.clock.now())}
    if deep:
        checks = {
            "d1": await _timed(lambda: platform.db.prepare("SELECT 1 AS ok").first()),
            "r2": await _timed(lambda: platform.blobs.head("health/probe")),
            "kv": await _timed(lambda: platform.kv.get("health:probe")),
        }
        body["checks"] = checks
        if not all(c["ok"] for c in checks.values()):
            body["status"] = "degraded"
    return body
