"""Snapshots: create/list under a project, read, restore, compare."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId, SnapshotIdParam
from fastest.schemas.common import problem_responses
from fastest.schemas.sync import (
    SnapshotCompare,
    SnapshotComparison,
    SnapshotCreate,
    SnapshotCreated,
    SnapshotList,
    SnapshotResponse,
    SnapshotRestore,
    SnapshotRestored,
)
from fastest.services.identity.accounts import Principal
from fastest.services.sync import snapshots

router = APIRouter(tags=["snapshots"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429))



@router.post(
    "/v1/projects/{project_id}/snapshots",
    response_model=SnapshotCreated,
    status_code=201,
    responses={200: {"model": SnapshotCreated, "description": "Already recorded (same `snapshot_id`)"}, **problem_responses(409)},
    summary="Record a snapshot (idempotent on snapshot_id; checks the manifest's closure)",
)
async def create_snapshot(
    *,
    body: SnapshotCreate,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(authorize("sync")),
    platform: PlatformDep,
):
    async def produce():
        snapshot, created = await snapshots.create(
            platform, principal.user_id, project_id, manifest_hash=body.manifest_hash, snapshot_id=body.snapshot_id,
            parent_ids=body.parent_snapshot_ids, workspace_id=body.workspace_id, source=body.source, summary=body.summary,
        )
        return (201 if created else 200), {"snapshot": snapshot, "created": created}

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("/v1/projects/{project_id}/snapshots", response_model=SnapshotList, summary="A project's snapshots, newest first")
async def list_project_snapshots(
    *,
    project_id: ProjectId,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(authorize("projects:read")),
    platform: PlatformDep,
):
    key = page.key(int)
    items, next_cursor = await snapshots.list_for_project(
        platform, principal.user_id, project_id, limit=page.limit, before=key[0] if key else None
    )
    return {"snapshots": items, "next_cursor": next_cursor}


@router.get("/v1/snapshots/{snapshot_id}", response_model=SnapshotResponse, summary="A snapshot")
async def get_snapshot(
    *,
    snapshot_id: SnapshotIdParam,
    principal: Principal = Depends(authorize("projects:read")),
    platform: PlatformDep,
):
    return {"snapshot": await snapshots.get_owned(platform, principal.user_id, snapshot_id)}


@router.post(
    "/v1/snapshots/{snapshot_id}/restore",
    response_model=SnapshotRestored,
    summary="Set a workspace back to this snapshot (recording a 'before restore' snapshot first)",
)
async def restore_snapshot(
    *,
    body: SnapshotRestore,
    request: Request,
    snapshot_id: SnapshotIdParam,
    principal: Principal = Depends(authorize("sync")),
    platform: PlatformDep,
):
    async def produce():
        return 200, await snapshots.restore(platform, principal.user_id, snapshot_id, workspace_id=body.workspace_id)

    return await respond_once(request, platform, principal.user_id, produce)


@router.post(
    "/v1/snapshots/{snapshot_id}/compare",
    response_model=SnapshotComparison,
    summary="File-level diff from another snapshot (or the workspace's current state) to this one",
)
async def compare_snapshot(
    *,
    body: SnapshotCompare,
    snapshot_id: SnapshotIdParam,
    principal: Principal = Depends(authorize("projects:read")),
    platform: PlatformDep,
):
    return await snapshots.compare(platform, principal.user_id, snapshot_id, body.against)
