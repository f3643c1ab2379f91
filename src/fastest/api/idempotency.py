"""Run a creating request under its `Idempotency-Key`, if the client sent one (docs/api/README.md)."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from fastest.platform import Platform
from fastest.services.safeguards import idempotency

HEADER = "Idempotency-Key"


async def respond_once(
    request: Request,
    platform: Platform,
    user_id: str,
    produce: Callable[[], Awaitable[tuple[int, Any]]],
) -> JSONResponse:
    """Call `produce()` → (status, body) and answer with it — or replay the stored answer.

    Only successes are stored: a request that failed changed nothing, so its key is released and a
    retry runs again (and fails again the same way if nothing else changed).
    """
    key = request.headers.get(HEADER)
    if key is None:
        status_code, body = await produce()
        return JSONResponse(jsonable_encoder(body), status_code=status_code)
    request_fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
    stored = await idempotency.begin(platform, user_id, key, request_fingerprint)
    if stored is not None:
        return JSONResponse(stored.body, status_code=stored.status, headers={"Idempotent-Replayed": "true"})
    try:
        status_code, produced = await produce()
        body = jsonable_encoder(produced)
    except BaseException:
        await idempotency.release(platform, user_id, key)
        raise
    await idempotency.complete(platform, user_id, key, status_code, body)
    return JSONResponse(body, status_code=status_code)
