"""Project environment variables: masked list, upsert, bulk set, delete, and the guarded reveal."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from fastest.api.deps import PlatformDep, authorize, request_context
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.projects import (
    EnvVarBulkResult,
    EnvVarBulkSet,
    EnvVarList,
    EnvVarSet,
    EnvVarValues,
)
from fastest.services.identity.accounts import Principal
from fastest.services.identity.audit import RequestContext
from fastest.services.projects import env_vars

router = APIRouter(
    prefix="/v1/projects/{project_id}/env-vars", tags=["env vars"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429)
)

read = authorize("projects:read")
write = authorize("projects:write")


@router.get("", response_model=EnvVarList, summary="List env vars (secret values masked)")
async def list_env_vars(
    *,
    project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep
):
    return {"variables": await env_vars.list_masked(platform, principal.user_id, project_id)}


@router.post("", response_model=Success, summary="Set one env var (upsert)")
async def set_env_var(
    *,
    body: EnvVarSet,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    async def produce():
        await env_vars.set_many(platform, principal.user_id, project_id, [(body.key, body.value, body.is_secret)])
        return 200, {"success": True}

    return await respond_once(request, platform, principal.user_id, produce)


@router.put("", response_model=EnvVarBulkResult, summary="Set many env vars at once (atomic)")
async def bulk_set_env_vars(
    *,
    body: EnvVarBulkSet,
    project_id: ProjectId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    triples = [(v.key, v.value, v.is_secret) for v in body.variables]
    return {"success": True, "count": await env_vars.set_many(platform, principal.user_id, project_id, triples)}


@router.get(
    "/values",
    response_model=EnvVarValues,
    summary="Reveal env var values (needs `secrets:read` and a fresh session)",
)
async def reveal_env_vars(
    *,
    project_id: ProjectId,
    principal: Principal = Depends(authorize("secrets:read", fresh=True)),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    return {"variables": await env_vars.reveal(platform, principal.user_id, project_id, context)}


@router.delete("/{key}", response_model=Success, summary="Delete an env var")
async def delete_env_var(
    *,
    key: str = Path(..., max_length=256),
    project_id: ProjectId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    await env_vars.delete(platform, principal.user_id, project_id, key)
    return {"success": True}
