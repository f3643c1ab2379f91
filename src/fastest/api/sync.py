"""Sync of a workspace with main: prepare a preview, execute it, undo it."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends

from fastest.api.deps import PlatformDep, authorize
from fastest.api.path_ids import WorkspaceId
from fastest.schemas.common import problem_responses
from fastest.schemas.sync import (
    SyncExecute,
    SyncExecuted,
    SyncPreviewResponse,
    SyncUndo,
    SyncUndone,
)
from fastest.services import sync
from fastest.services.identity.accounts import Principal

router = APIRouter(tags=["sync"], responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429))

may_sync = authorize("sync")


@router.post(
    "/v1/workspaces/{workspace_id}/sync/prepare",
    response_model=SyncPreviewResponse,
    summary="Merge main into the workspace as a preview (kept 30 minutes)",
)
async def prepare(
    *,
    workspace_id: WorkspaceId, principal: Principal = Depends(may_sync), platform: PlatformDep
):
    return {"preview": await sync.prepare(platform, principal.user_id, workspace_id)}


@router.post(
    "/v1/workspaces/{workspace_id}/sync/execute",
    response_model=SyncExecuted,
    responses=problem_responses(410),
    summary="Apply a preview with the answers to its decisions",
)
async def execute(
    *,
    body: SyncExecute,
    workspace_id: WorkspaceId,
    principal: Principal = Depends(may_sync),
    platform: PlatformDep,
):
    return await sync.execute(
        platform, principal.user_id, workspace_id, preview_id=body.preview_id, decisions=body.decisions,
        create_snapshot_before=body.create_snapshot_before, confirm_mass_change=body.confirm_mass_change,
        summary=body.summary,
    )


@router.post("/v1/workspaces/{workspace_id}/sync/undo", response_model=SyncUndone, summary="Undo the last sync")
async def undo(
    *,
    body: SyncUndo | None = Body(None),
    workspace_id: WorkspaceId,
    principal: Principal = Depends(may_sync),
    platform: PlatformDep,
):
    return await sync.undo(platform, principal.user_id, workspace_id, force=bool(body and body.force))
