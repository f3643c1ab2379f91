"""Workspaces: create/list under a project, read, heartbeat, current-manifest compare-and-set, drift
reports and comparison, set-as-main, and the workspace's snapshots."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId, WorkspaceId
from fastest.schemas.common import problem_responses
from fastest.schemas.sync import (
    CurrentManifestUpdate,
    CurrentManifestUpdated,
    DriftComparison,
    DriftHistory,
    DriftReportCreate,
    DriftReportResponse,
    Heartbeat,
    MainWorkspace,
    SnapshotList,
    WorkspaceCreate,
    WorkspaceDetail,
    WorkspaceList,
    WorkspaceResponse,
)
from fastest.services.identity.accounts import Principal
from fastest.services.sync import snapshots, workspaces

router = APIRouter(tags=["workspaces"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429))

read = authorize("projects:read")
sync = authorize("sync")


@router.post("/v1/projects/{project_id}/workspaces", response_model=WorkspaceResponse, status_code=201, summary="Create a workspace")
async def create_workspace(
    *,
    body: WorkspaceCreate,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(authorize("projects:write")),
    platform: PlatformDep,
):
    async def produce():
        workspace = await workspaces.create(
            platform, principal.user_id, project_id, name=body.name, machine_id=body.machine_id,
            base_snapshot_id=body.base_snapshot_id, local_path=body.local_path,
        )
        return 201, {"workspace": workspace}

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("/v1/projects/{project_id}/workspaces", response_model=WorkspaceList, summary="A project's workspaces with their latest drift")
async def list_workspaces(
    *,
    project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep
):
    return {"workspaces": await workspaces.list_for_project(platform, principal.user_id, project_id)}


@router.get("/v1/workspaces/{workspace_id}", response_model=WorkspaceDetail, summary="A workspace and its latest drift")
async def get_workspace(
    *,
    workspace_id: WorkspaceId, principal: Principal = Depends(read), platform: PlatformDep
):
    workspace = await workspaces.view(platform, principal.user_id, workspace_id)
    return {"workspace": workspace, "drift": await workspaces.latest_drift(platform, workspace_id)}


@router.post("/v1/workspaces/{workspace_id}/heartbeat", response_model=Heartbeat, summary="Mark the workspace as seen")
async def heartbeat(
    *,
    workspace_id: WorkspaceId, principal: Principal = Depends(sync), platform: PlatformDep
):
    return {"success": True, "last_seen_at": await workspaces.heartbeat(platform, principal.user_id, workspace_id)}


@router.post(
    "/v1/workspaces/{workspace_id}/current-manifest",
    response_model=CurrentManifestUpdated,
    responses=problem_responses(409),
    summary="Move the current manifest (compare-and-set on previous_manifest_hash)",
)
async def set_current_manifest(
    *,
    body: CurrentManifestUpdate,
    workspace_id: WorkspaceId,
    principal: Principal = Depends(sync),
    platform: PlatformDep,
):
    current = await workspaces.set_current_manifest(
        platform, principal.user_id, workspace_id, manifest_hash=body.manifest_hash,
        previous=body.previous_manifest_hash, check_previous="previous_manifest_hash" in body.model_fields_set,
    )
    return {"updated": True, "current_manifest_hash": current}


@router.post("/v1/workspaces/{workspace_id}/drift", response_model=DriftReportResponse, status_code=201, summary="Report drift metrics")
async def report_drift(
    *,
    body: DriftReportCreate,
    workspace_id: WorkspaceId,
    principal: Principal = Depends(sync),
    platform: PlatformDep,
):
    counts = body.model_dump(exclude={"summary"})
    report = await workspaces.report_drift(platform, principal.user_id, workspace_id, counts=counts, summary=body.summary)
    return {"drift_report": report}


@router.get("/v1/workspaces/{workspace_id}/drift", response_model=DriftHistory, summary="Drift report history, newest first")
async def drift_history(
    *,
    workspace_id: WorkspaceId,
    page: PageParams = Depends(page_params(10)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    key = page.key(int)
    reports, next_cursor = await workspaces.drift_history(
        platform, principal.user_id, workspace_id, limit=page.limit, before_seq=key[0] if key else None
    )
    latest = await workspaces.latest_drift(platform, workspace_id)
    return {"drift_reports": reports, "latest": latest, "next_cursor": next_cursor}


@router.get(
    "/v1/workspaces/{workspace_id}/drift/compare",
    response_model=DriftComparison,
    summary="Compare with another workspace (default: main) from the manifests",
)
async def compare_drift(
    *,
    workspace_id: WorkspaceId,
    source_workspace_id: str | None = Query(None, max_length=64, description="Compare against this workspace instead of main."),
    include_dirty: bool = Query(False, description="Use current (unsnapshotted) manifests where set."),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return await workspaces.compare(
        platform, principal.user_id, workspace_id, source_workspace_id=source_workspace_id, include_dirty=include_dirty
    )


@router.post("/v1/workspaces/{workspace_id}/set-as-main", response_model=MainWorkspace, summary="Make this the project's main workspace")
async def set_as_main(
    *,
    workspace_id: WorkspaceId,
    principal: Principal = Depends(authorize("projects:write")),
    platform: PlatformDep,
):
    return {"success": True, "main_workspace_id": await workspaces.set_as_main(platform, principal.user_id, workspace_id)}


@router.get("/v1/workspaces/{workspace_id}/snapshots", response_model=SnapshotList, summary="A workspace's snapshots, newest first")
async def list_workspace_snapshots(
    *,
    workspace_id: WorkspaceId,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    await workspaces.get_owned(platform, principal.user_id, workspace_id)
    key = page.key(int)
    items, next_cursor = await snapshots.list_for_workspace(
        platform, workspace_id, limit=page.limit, before=key[0] if key else None
    )
    return {"snapshots": items, "next_cursor": next_cursor}
