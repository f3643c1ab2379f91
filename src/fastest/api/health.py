"""`GET /health`: liveness without auth; `?deep=1` also checks D1, R2 and KV."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from fastest.api.deps import PlatformDep, public
from fastest.services.operations import health

router = APIRouter(tags=["health"])


@router.get("/health", summary="Health check", openapi_extra=public("load balancers and uptime checks call it without a token"))
async def get_health(
    *,
    deep: bool = Query(False, description="Also check that D1, R2 and KV answer."),
    platform: PlatformDep,
) -> Any:
    body = await health.report(platform, deep=deep)
    status = 200 if body["status"] == "ok" else 503
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
