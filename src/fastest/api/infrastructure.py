"""Deployments (`/v1/infrastructure/…`, `POST /v1/workspaces/{workspace_id}/deploy`): provider
credentials, deployment settings, deployments with their logs, the pipeline's status callback,
rollback, resources, detection and the project deploy."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Path, Query, Request

from fastest.api.deps import (
    PageParams,
    PlatformDep,
    authorize,
    limit_by_ip,
    page_params,
    public,
)
from fastest.api.idempotency import respond_once
from fastest.api.path_ids import DeploymentId, ProjectId, WorkspaceId
from fastest.schemas.common import Success, problem_responses
from fastest.schemas.deployments import (
    CallbackAnswer,
    CredentialList,
    CredentialSave,
    CredentialSaved,
    DeploymentList,
    DeploymentLogPage,
    DeploymentResponse,
    DetectResponse,
    ProjectDeploy,
    ProjectDeployResult,
    ResourceList,
    ResourceResponse,
    SettingsResponse,
    SettingsUpdate,
    StatusCallback,
    WorkspaceDeployResult,
)
from fastest.services import deployments
from fastest.services.conversations import deploys as conversation_deploys
from fastest.services.deployments import detect as deploy_detect
from fastest.services.deployments import providers as deploy_providers
from fastest.services.deployments import resources as deploy_resources
from fastest.services.identity.accounts import Principal

router = APIRouter(tags=["deployments"], responses=problem_responses(400, 401, 403, 404, 413, 422, 429))

INFRA = "/v1/infrastructure"
deploy = authorize("deploy")
deploy_fresh = authorize("deploy", fresh=True)


def _spawn(background: BackgroundTasks) -> deployments.Spawn:
    return lambda job: background.add_task(job)


# --- credentials -----------------------------------------------------------------------------


@router.get(f"{INFRA}/credentials", response_model=CredentialList, summary="List provider credentials (never their tokens)")
async def list_credentials(*, principal: Principal = Depends(deploy), platform: PlatformDep):
    return {"credentials": await deploy_providers.list_credentials(platform, principal.user_id)}


@router.post(f"{INFRA}/credentials", response_model=CredentialSaved,
             summary="Add or update a provider credential (verified by the provider first; fresh session)")
async def save_credential(*, body: CredentialSave, request: Request, principal: Principal = Depends(deploy_fresh),
                          platform: PlatformDep):
    async def produce():
        credential_id = await deploy_providers.save_credential(
            platform, principal.user_id, body.provider, body.api_token, body.metadata)
        return 200, {"success": True, "id": credential_id}

    return await respond_once(request, platform, principal.user_id, produce)


@router.delete(f"{INFRA}/credentials/{{provider}}", response_model=Success, summary="Remove a provider credential (fresh session)")
async def delete_credential(*, provider: str = Path(..., max_length=32), principal: Principal = Depends(deploy_fresh),
                            platform: PlatformDep):
    await deploy_providers.delete_credential(platform, principal.user_id, provider)
    return {"success": True}


# --- settings --------------------------------------------------------------------------------


@router.get(f"{INFRA}/workspaces/{{workspace_id}}/deployment-settings", response_model=SettingsResponse,
            summary="A workspace's deployment settings")
async def get_settings(*, workspace_id: WorkspaceId, principal: Principal = Depends(deploy),
                       platform: PlatformDep):
    return {"settings": await deployments.get_settings(platform, principal.user_id, workspace_id)}


@router.put(f"{INFRA}/workspaces/{{workspace_id}}/deployment-settings", response_model=SettingsResponse,
            summary="Update a workspace's deployment settings")
async def put_settings(*, body: SettingsUpdate, workspace_id: WorkspaceId, principal: Principal = Depends(deploy),
                       platform: PlatformDep):
    changes = body.model_dump(exclude_unset=True)
    return {"settings": await deployments.update_settings(platform, principal.user_id, workspace_id, changes)}


# --- deployments -----------------------------------------------------------------------------


@router.get(f"{INFRA}/workspaces/{{workspace_id}}/deployments", response_model=DeploymentList,
            summary="A workspace's deployment history, newest first")
async def list_deployments(*, workspace_id: WorkspaceId, page: PageParams = Depends(page_params(30)),
                           principal: Principal = Depends(deploy), platform: PlatformDep):
    key = page.key(int)
    items, cursor = await deployments.list_for_workspace(platform, principal.user_id, workspace_id, limit=page.limit,
                                                         before_seq=key[0] if key else None)
    return {"deployments": items, "next_cursor": cursor}


@router.get(f"{INFRA}/deployments/{{deployment_id}}", response_model=DeploymentResponse, summary="One deployment")
async def get_deployment(*, deployment_id: DeploymentId, principal: Principal = Depends(deploy),
                         platform: PlatformDep):
    row = await deployments.get_owned(platform, principal.user_id, deployment_id)
    return {"deployment": await deployments.with_project_url(platform, deployments.deployment_view(row, platform))}


@router.get(f"{INFRA}/deployments/{{deployment_id}}/logs", response_model=DeploymentLogPage,
            summary="A deployment's log lines after `after` (readable while it runs)")
async def get_logs(*, deployment_id: DeploymentId, after: int = Query(0, ge=0, le=2**53),
                   limit: int = Query(500, ge=1, le=1000), principal: Principal = Depends(deploy),
                   platform: PlatformDep):
    return await deployments.logs(platform, principal.user_id, deployment_id, after=after, limit=limit)


@router.post(f"{INFRA}/deployments/{{deployment_id}}/status", response_model=CallbackAnswer,
             summary="The pipeline's status callback (authenticated by the deployment's callback token)",
             openapi_extra=public("the build pipeline calls it with the deployment's signed callback token, not a user's"))
async def status_callback(*, body: StatusCallback, request: Request, deployment_id: DeploymentId,
                          authorization: str | None = Header(None, include_in_schema=False),
                          x_deploy_token: str | None = Header(None, description="The callback token (or as Bearer)."),
                          platform: PlatformDep):
    await limit_by_ip(request, platform)
    token = x_deploy_token
    if token is None and authorization and authorization.lower().startswith("bearer "):
        token = authorization[7:].strip()
    return await deployments.callback(platform, deployment_id, token, body.model_dump(exclude_unset=True))


@router.post(f"{INFRA}/deployments/{{deployment_id}}/cancel", response_model=DeploymentResponse,
             responses=problem_responses(409), summary="Cancel a deployment that has not finished")
async def cancel_deployment(*, deployment_id: DeploymentId, principal: Principal = Depends(deploy),
                            platform: PlatformDep):
    return {"deployment": await deployments.cancel(platform, principal.user_id, deployment_id)}


@router.post(f"{INFRA}/deployments/{{deployment_id}}/rollback", response_model=DeploymentResponse,
             responses=problem_responses(409), summary="Make an earlier deployment live again")
async def rollback_deployment(*, request: Request, deployment_id: DeploymentId, principal: Principal = Depends(deploy),
                              platform: PlatformDep):
    async def produce():
        return 200, {"deployment": await deployments.rollback(platform, principal.user_id, deployment_id)}

    return await respond_once(request, platform, principal.user_id, produce)


# --- resources -------------------------------------------------------------------------------


@router.get(f"{INFRA}/projects/{{project_id}}/resources", response_model=ResourceList,
            summary="A project's resources (connection info masked)")
async def list_resources(*, project_id: ProjectId, principal: Principal = Depends(deploy),
                         platform: PlatformDep):
    return {"resources": await deploy_resources.list_masked(platform, principal.user_id, project_id)}


@router.get(f"{INFRA}/projects/{{project_id}}/resources/{{resource_id}}", response_model=ResourceResponse,
            summary="One resource (connection info masked)")
async def get_resource(*, project_id: ProjectId, resource_id: str = Path(..., max_length=64),
                       principal: Principal = Depends(deploy), platform: PlatformDep):
    return {"resource": await deploy_resources.get_masked(platform, principal.user_id, project_id, resource_id)}


@router.delete(f"{INFRA}/projects/{{project_id}}/resources/{{resource_id}}", response_model=Success,
               responses=problem_responses(503), summary="Destroy a resource in its provider, then forget it")
async def delete_resource(*, project_id: ProjectId, resource_id: str = Path(..., max_length=64),
                          principal: Principal = Depends(deploy), platform: PlatformDep):
    await deploy_resources.delete(platform, principal.user_id, project_id, resource_id)
    return {"success": True}


# --- detection and deploy --------------------------------------------------------------------


@router.get(f"{INFRA}/projects/{{project_id}}/detect", response_model=DetectResponse,
            summary="What the project needs: framework, runtime, build, output, resources, env vars (with evidence)")
async def detect(*, project_id: ProjectId,
                 manifest_hash: str | None = Query(None, max_length=64, description="A tree to look at (default: main's)."),
                 principal: Principal = Depends(deploy), platform: PlatformDep):
    return await deploy_detect.detect_project(platform, principal.user_id, project_id, manifest_hash)


@router.post(f"{INFRA}/projects/{{project_id}}/deploy", response_model=ProjectDeployResult,
             summary="Detect, provision what is missing, deploy")
async def deploy_project(*, body: ProjectDeploy, request: Request, background: BackgroundTasks,
                         project_id: ProjectId, principal: Principal = Depends(deploy),
                         platform: PlatformDep):
    async def produce():
        return 200, await deployments.deploy_project(
            platform, principal.user_id, project_id, workspace_id=body.workspace_id, trigger=body.source,
            provider=body.provider, snapshot_id=body.snapshot_id, output_manifest_hash=body.output_manifest_hash,
            build=body.build, spawn=_spawn(background))

    return await respond_once(request, platform, principal.user_id, produce)


@router.post("/v1/workspaces/{workspace_id}/deploy", response_model=WorkspaceDeployResult,
             summary="Deploy a workspace's current files")
async def deploy_workspace(*, request: Request, background: BackgroundTasks, workspace_id: WorkspaceId,
                           principal: Principal = Depends(deploy), platform: PlatformDep):
    async def produce():
        return 200, await deployments.deploy_workspace(platform, principal.user_id, workspace_id,
                                                       spawn=_spawn(background))

    return await respond_once(request, platform, principal.user_id, produce)


@router.post("/v1/conversations/{conversation_id}/deploy", response_model=ProjectDeployResult,
             summary="Deploy the conversation's working tree (frozen into a snapshot when it has edits)")
async def deploy_conversation(*, request: Request, background: BackgroundTasks,
                              conversation_id: str = Path(..., max_length=64, description="A conversation id (`cnv_…`)."),
                              principal: Principal = Depends(deploy), platform: PlatformDep):
    async def produce():
        return 200, await conversation_deploys.deploy(platform, principal.user_id, conversation_id,
                                                      spawn=_spawn(background))

    return await respond_once(request, platform, principal.user_id, produce)
