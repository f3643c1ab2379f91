"""Next steps, decisions and drift analysis. The routes that may ask the model
are in the AI rate class and spend the AI budget when a model answers."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from fastest.api.deps import PlatformDep, authorize
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import ProjectId, StepId, WorkspaceId
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.intelligence import (
    DecisionList,
    DecisionsExtracted,
    DriftAnalysisResponse,
    NextStepFeedback,
    NextStepList,
    NextStepsGenerated,
    NextStepUpdate,
    StepStatus,
)
from fastest.services.identity.accounts import Principal
from fastest.services.intelligence import decisions, drift_analysis, next_steps

router = APIRouter(tags=["intelligence"], responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 429))

read = authorize("projects:read")
write = authorize("projects:write")
ai_write = authorize("projects:write", route_class="ai")


@router.get("/v1/projects/{project_id}/next-steps", response_model=NextStepList, summary="Next steps by status (pending by default)")
async def list_next_steps(
    *,
    project_id: ProjectId,
    status: StepStatus = Query("pending", description="pending | started | completed | dismissed"),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return {"next_steps": await next_steps.list_steps(platform, principal.user_id, project_id, status)}


@router.post("/v1/projects/{project_id}/next-steps/generate", response_model=NextStepsGenerated, status_code=201,
             summary="Generate next steps (the model when configured, else rules over the project's signals)")
async def generate_next_steps(
    *,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(ai_write),
    platform: PlatformDep,
):
    async def produce():
        return 201, await next_steps.generate(platform, principal.user_id, project_id)

    return await respond_once(request, platform, principal.user_id, produce)


@router.patch("/v1/projects/{project_id}/next-steps/{next_step_id}", response_model=Success, summary="Change a next step's status")
async def update_next_step(
    *,
    body: NextStepUpdate,
    project_id: ProjectId,
    next_step_id: StepId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    await next_steps.set_status(platform, principal.user_id, project_id, next_step_id, body.status)
    return {"success": True}


@router.post("/v1/projects/{project_id}/next-steps/{next_step_id}/feedback", response_model=Success,
             summary="Say whether a next step helped (steers the next generation)")
async def next_step_feedback(
    *,
    body: NextStepFeedback,
    project_id: ProjectId,
    next_step_id: StepId,
    principal: Principal = Depends(write),
    platform: PlatformDep,
):
    await next_steps.feedback(platform, principal.user_id, project_id, next_step_id, body.helpful)
    return {"success": True}


@router.get("/v1/projects/{project_id}/decisions", response_model=DecisionList, summary="The project's decisions")
async def list_decisions(
    *,
    project_id: ProjectId,
    include_links: bool = Query(False, description="Add the Atlas concepts each decision is linked to."),
    principal: Principal = Depends(read),
    platform: PlatformDep,
):
    return {"decisions": await decisions.list_decisions(platform, principal.user_id, project_id, include_links=include_links)}


@router.post("/v1/projects/{project_id}/decisions/extract", response_model=DecisionsExtracted, status_code=201,
             summary="Extract decisions from the conversations since the last extraction")
async def extract_decisions(
    *,
    request: Request,
    project_id: ProjectId,
    principal: Principal = Depends(ai_write),
    platform: PlatformDep,
):
    async def produce():
        return 201, await decisions.extract(platform, principal.user_id, project_id)

    return await respond_once(request, platform, principal.user_id, produce)


@router.post("/v1/workspaces/{workspace_id}/drift/analyze", response_model=DriftAnalysisResponse,
             summary="Analyse a workspace's drift: a dry run of the sync merge, risk, and a recommendation")
async def analyze_drift(
    *,
    workspace_id: WorkspaceId,
    include_dirty: bool = Query(False, description="Use the workspace's current (unsnapshotted) manifest."),
    principal: Principal = Depends(authorize("projects:read", route_class="ai")),
    platform: PlatformDep,
):
    return {"analysis": await drift_analysis.analyze(platform, principal.user_id, workspace_id, include_dirty=include_dirty)}
