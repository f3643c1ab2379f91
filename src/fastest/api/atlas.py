"""The Atlas: index a snapshot into a knowledge graph, read it, search it, draw diagrams."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request

from fastest.api.deps import PageParams, PlatformDep, authorize, page_params
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId
from fastest.schemas.common import problem_responses
from fastest.schemas.intelligence import (
    AtlasGraph,
    AtlasIndexResult,
    AtlasSearch,
    AtlasSearchResults,
    DiagramCreate,
    DiagramList,
    DiagramResponse,
    Layer,
)
from fastest.services.identity.accounts import Principal
from fastest.services.intelligence import atlas, atlas_search, diagrams

router = APIRouter(prefix="/v1/projects/{project_id}/atlas", tags=["atlas"],
                   responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429))

read = authorize("projects:read")
write = authorize("projects:write")


@router.post("/index", response_model=AtlasIndexResult, responses={202: {"model": AtlasIndexResult, "description": "Indexing goes on in the background"}},
             summary="Index a snapshot into the Atlas (incremental; large trees continue in the background)")
async def index(
    *,
    request: Request,
    background: BackgroundTasks,
    project_id: ProjectId,
    embed: bool = Query(False, description="Also chunk the source and embed the chunks."),
    snapshot_id: str | None = Query(None, max_length=64, description="The snapshot to index (default: main's head)."),
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    async def produce():
        status, body = await atlas.start(platform, principal.user_id, project_id, snapshot_id=snapshot_id, embed=embed)
        if status == 202 and platform.capabilities.long_background_work:
            background.add_task(atlas.run_to_end, platform, project_id)
        return status, body

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("", response_model=AtlasGraph, summary="The Atlas graph: concepts (by layer, paginated) and their edges")
async def get_graph(
    *,
    project_id: ProjectId,
    layer: Layer | None = Query(None, description="Only concepts of this layer."),
    page: PageParams = Depends(page_params(100, maximum=1000)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    after = page.key(int)
    return await atlas.graph(platform, principal.user_id, project_id, layer=layer, after=after[0] if after else None,
                             limit=page.limit)


@router.post("/search", response_model=AtlasSearchResults, summary="Search the Atlas (BM25 text search, hybrid with embeddings)")
async def search(
    *,
    body: AtlasSearch,
    project_id: ProjectId,
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return await atlas_search.search(platform, principal.user_id, project_id, body.query, body.limit)


@router.get("/diagrams", response_model=DiagramList, summary="The project's stored diagrams, newest first")
async def list_diagrams(
    *,
    project_id: ProjectId,
    page: PageParams = Depends(page_params(50)),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    before = page.key(int)
    return await diagrams.list_page(platform, principal.user_id, project_id, before=before[0] if before else None,
                                    limit=page.limit)


@router.post("/diagrams", response_model=DiagramResponse, status_code=201,
             summary="Draw a diagram (dependency/component from the graph; flow/sequence may use the model)")
async def create_diagram(
    *,
    body: DiagramCreate,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(authorize("projects:write", route_class="ai")),
    platform: PlatformDep,
):
    async def produce():
        return 201, {"diagram": await diagrams.create(platform, principal.user_id, project_id, body.type, body.concept_id)}

    return await respond_once(request, platform, principal.user_id, produce)
