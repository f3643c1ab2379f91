"""Deployments: credentials, settings, deployments, logs, resources, detection, deploy."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

Hash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Command = Annotated[str, StringConstraints(max_length=1000)]
Provider = Literal["local", "cloudflare"]


class CredentialSave(RequestModel):
    provider: Literal["cloudflare"]
    api_token: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    metadata: dict[str, Any] = Field(default_factory=dict, description="Cloudflare: `{account_id}`.")


class Credential(ResponseModel):
    id: str
    user_id: str
    provider: str
    metadata: dict[str, Any]
    created_at: str
    updated_at: str


class CredentialList(ResponseModel):
    credentials: list[Credential]


class CredentialSaved(ResponseModel):
    success: bool = True
    id: str


class SettingsUpdate(RequestModel):
    auto_deploy: bool | None = None
    runtime_override: Annotated[str, StringConstraints(max_length=50)] | None = None
    build_command: Command | None = None
    start_command: Command | None = None
    output_dir: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] | None = None
    provider: Provider | None = None


class DeploymentSettings(ResponseModel):
    workspace_id: str
    auto_deploy: bool
    runtime_override: str | None
    build_command: str | None
    start_command: str | None
    output_dir: str | None = None
    provider: str | None = None


class SettingsResponse(ResponseModel):
    settings: DeploymentSettings


class Deployment(ResponseModel):
    id: str
    workspace_id: str | None
    project_id: str
    snapshot_id: str | None
    provider: str
    status: Literal["queued", "building", "deploying", "ready", "failed", "canceled"]
    trigger: str
    url: str | None
    error: str | None
    started_at: str
    completed_at: str | None


class DeploymentResponse(ResponseModel):
    deployment: Deployment


class DeploymentList(ResponseModel):
    deployments: list[Deployment]
    next_cursor: str | None = None


class LogLine(ResponseModel):
    seq: int
    step: str
    message: str
    created_at: str


class DeploymentLogPage(ResponseModel):
    logs: list[LogLine]
    status: str
    next_after: int


class StatusCallback(RequestModel):
    status: Literal["queued", "building", "deploying", "ready", "failed", "canceled"]
    url: Annotated[str, StringConstraints(max_length=2000)] | None = None
    error: Annotated[str, StringConstraints(max_length=4000)] | None = None
    completed_at: Annotated[str, StringConstraints(max_length=40)] | None = None
    output_manifest_hash: Hash | None = None
    log: list[Annotated[str, StringConstraints(max_length=4000)]] = Field(default_factory=list, max_length=500)


class CallbackAnswer(ResponseModel):
    success: bool = True
    status: str
    next_token: str | None = Field(description="The token for the next callback (each token works once).")


class Resource(ResponseModel):
    id: str
    project_id: str
    type: str
    provider: str
    name: str
    status: str
    connection_info: dict[str, str]


class ResourceList(ResponseModel):
    resources: list[Resource]


class ResourceResponse(ResponseModel):
    resource: Resource


class DetectResponse(ResponseModel):
    requirements: dict[str, Any]
    suggested_resources: list[dict[str, Any]]
    detection: dict[str, Any]


class ProjectDeploy(RequestModel):
    workspace_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    source: Literal["manual", "chat", "auto", "cli"] = "manual"
    provider: Provider | None = None
    snapshot_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    output_manifest_hash: Hash | None = Field(None, description="A built output tree already uploaded (the CLI's build).")
    build: Literal["auto", "client", "server", "none"] = "auto"


class ProjectDeployResult(ResponseModel):
    success: bool
    deployment_id: str
    url: str | None
    resources: list[dict[str, Any]]
    provisioned_resources: list[dict[str, Any]]
    error: str | None
    status: str
    deployment: Deployment
    callback_token: str | None = Field(None, description="With `build: client`: the token for the first status callback.")


class WorkspaceDeployResult(ResponseModel):
    deployment_id: str
    status: str
    url: str | None = None
    error: str | None = None
