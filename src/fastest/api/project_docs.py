"""A project's documentation files, found in the workspaces' manifests."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from fastest.api.deps import PlatformDep, authorize
from fastest.api.path_ids import ProjectId
from fastest.schemas.common import problem_responses
from fastest.schemas.sync import DocContent, DocsList
from fastest.services.identity.accounts import Principal
from fastest.services.projects import project_docs

router = APIRouter(prefix="/v1/projects/{project_id}/docs", tags=["docs"], responses=problem_responses(401, 403, 404, 413, 422, 429))

read = authorize("projects:read")


@router.get("", response_model=DocsList, summary="Documentation files (.md, .mdx, .txt, .rst) across workspaces")
async def list_docs(*, project_id: ProjectId, principal: Principal = Depends(read), platform: PlatformDep):
    return await project_docs.list_docs(platform, principal.user_id, project_id)


@router.get("/content", response_model=DocContent, summary="One documentation file's text")
async def doc_content(
    *,
    project_id: ProjectId,
    workspace: str = Query(..., max_length=64, description="The workspace id."),
    path: str = Query(..., min_length=1, max_length=4096, description="The file's `/`-joined path."),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return await project_docs.content(platform, principal.user_id, project_id, workspace, path)
