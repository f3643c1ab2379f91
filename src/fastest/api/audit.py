"""`GET /v1/audit`: the caller's security events, newest first."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.schemas.auth import AuditList
from fastest.schemas.common import problem_responses
from fastest.services.identity import audit
from fastest.services.identity.accounts import Principal

router = APIRouter(prefix="/v1/audit", tags=["audit"], responses=problem_responses(400, 401, 422, 429))


@router.get("", response_model=AuditList, summary="Your security events: sign-ins, tokens, keys, reveals, devices")
async def list_audit_events(
    *,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(authorize(None)),
    platform: PlatformDep,
):
    key = page.key(int)
    items, next_cursor = await audit.page(platform, principal.user_id, limit=page.limit, before_seq=key[0] if key else None)
    return {"events": items, "next_cursor": next_cursor}
