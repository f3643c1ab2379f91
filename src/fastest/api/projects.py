"""Projects: create, list, read, rename, delete, status, events, brief & intent."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.projects import (
    BriefResponse,
    BriefUpdate,
    EventList,
    ProjectCreate,
    ProjectDetail,
    ProjectList,
    ProjectResponse,
    ProjectStatus,
    ProjectUpdate,
)
from fastest.services import projects
from fastest.services.identity.accounts import Principal

router = APIRouter(prefix="/v1/projects", tags=["projects"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429))

read = authorize("projects:read")
write = authorize("projects:write")


@router.post("", status_code=201, response_model=ProjectResponse, responses=problem_responses(409), summary="Create a project")
async def create_project(
    *,
    body: ProjectCreate,
    request: Request,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    async def produce():
        return 201, {"project": await projects.create(platform, principal.user_id, body.name)}

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("", response_model=ProjectList, summary="List projects, most recently updated first")
async def list_projects(
    *,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    key = page.key(str, str)
    items, next_cursor = await projects.list_page(
        platform, principal.user_id, limit=page.limit, after=(key[0], key[1]) if key else None
    )
    return {"projects": items, "next_cursor": next_cursor}


@router.get("/{project_id}", response_model=ProjectDetail, summary="A project with workspaces, recent snapshots and events")
async def get_project(
    *,
    project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep
):
    return await projects.detail(platform, principal.user_id, project_id)


@router.patch("/{project_id}", response_model=ProjectResponse, responses=problem_responses(409), summary="Rename a project")
async def update_project(
    *,
    body: ProjectUpdate,
    project_id: ProjectId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    return {"project": await projects.rename(platform, principal.user_id, project_id, body.name)}


@router.delete(
    "/{project_id}", status_code=204, response_class=Response, summary="Delete a project and everything in it (fresh session)"
)
async def delete_project(
    *,
    project_id: ProjectId,
    principal: Principal = Depends(authorize("projects:write", fresh=True)),
    platform: PlatformDep,
):
    await projects.delete(platform, principal.user_id, project_id)
    return Response(status_code=204)


@router.get("/{project_id}/status", response_model=ProjectStatus, summary="Lightweight project status")
async def project_status(
    *,
    project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep
):
    return await projects.status(platform, principal.user_id, project_id)


@router.get("/{project_id}/events", response_model=EventList, summary="Project activity, newest first")
async def project_events(
    *,
    project_id: ProjectId,
    page: PageParams = Depends(page_params(20)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    key = page.key(int)
    items, next_cursor = await projects.events_page(
        platform, principal.user_id, project_id, limit=page.limit, before_seq=key[0] if key else None
    )
    return {"events": items, "next_cursor": next_cursor}


@router.get("/{project_id}/brief", response_model=BriefResponse, summary="The project brief and intent")
async def get_brief(
    *,
    project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep
):
    return {"project": await projects.brief(platform, principal.user_id, project_id)}


@router.patch("/{project_id}/brief", response_model=Success, summary="Update the brief and/or intent")
async def update_brief(
    *,
    body: BriefUpdate,
    project_id: ProjectId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    await projects.update_brief(platform, principal.user_id, project_id, body.model_dump(exclude_unset=True))
    return {"success": True}
