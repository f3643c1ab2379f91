"""Action items and their runs: findings across the user's workspaces,
dismissals, background runs that fix an item on a copy of the files, and applying a run."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends, Query, Request

from fastest.api.deps import PlatformDep, authorize
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ItemId, RunId
from fastest.schemas.action_items import (
    ActionItemList,
    ActionItemResponse,
    RunApplied,
    RunCreate,
    RunList,
    RunResponse,
)
from fastest.schemas.common import Success, problem_responses
from fastest.services import action_items
from fastest.services.action_items import runs as action_item_runs
from fastest.services.identity.accounts import Principal

router = APIRouter(tags=["action-items"], responses=problem_responses(400, 401, 403, 404, 422, 429))

read = authorize("projects:read")
write = authorize("projects:write")


@router.get("/v1/action-items", response_model=ActionItemList, summary="What needs attention across your workspaces")
async def list_items(
    *,
    include_dismissed: bool = Query(False, description="Also list dismissed items (marked `dismissed: true`)."),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return {"items": await action_items.list_items(platform, principal.user_id, include_dismissed=include_dismissed),
            "agent_available": await action_items.agent_available(platform, principal.user_id)}


@router.get("/v1/action-items/{item_id}", response_model=ActionItemResponse, summary="One action item")
async def get_item(*, item_id: ItemId, principal: Principal = Depends(read), platform: PlatformDep):
    return {"item": await action_items.get_item(platform, principal.user_id, item_id)}


@router.post("/v1/action-items/{item_id}/dismiss", response_model=Success, summary="Dismiss an item until it gets worse")
async def dismiss(*, item_id: ItemId, principal: Principal = Depends(write), platform: PlatformDep):
    await action_items.dismiss(platform, principal.user_id, item_id)
    return {"success": True}


@router.post(
    "/v1/action-items/{item_id}/runs", response_model=RunResponse, status_code=202,
    responses=problem_responses(409), summary="Start a background run that fixes the item",
)
async def create_run(
    *,
    request: Request,
    body: RunCreate | None = Body(None),
    item_id: ItemId,
    principal: Principal = Depends(authorize("conversations", route_class="ai")),
    platform: PlatformDep,
):
    async def produce():
        run = await action_item_runs.start(
            platform, principal.user_id, item_id, instructions=body.instructions if body else None
        )
        return 202, {"run": run}

    return await respond_once(request, platform, principal.user_id, produce)


@router.get("/v1/action-items/{item_id}/runs", response_model=RunList, summary="An item's runs, newest first")
async def list_runs(*, item_id: ItemId, principal: Principal = Depends(read), platform: PlatformDep):
    return {"runs": await action_item_runs.list_for_item(platform, principal.user_id, item_id)}


@router.get("/v1/action-items/runs/{run_id}", response_model=RunResponse, summary="A run with its summary, report, patch and checks")
async def get_run(*, run_id: RunId, principal: Principal = Depends(read), platform: PlatformDep):
    return {"run": await action_item_runs.get(platform, principal.user_id, run_id)}


@router.post(
    "/v1/action-items/runs/{run_id}/apply", response_model=RunApplied, responses=problem_responses(409),
    summary="Apply a ready run to its workspace as a new snapshot",
)
async def apply_run(*, run_id: RunId, principal: Principal = Depends(authorize("sync")), platform: PlatformDep):
    return await action_item_runs.apply(platform, principal.user_id, run_id)
