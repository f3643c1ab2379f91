"""Projects, their events, brief and environment variables."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from fastest.schemas.common import Name, RequestModel, ResponseModel

# Env var names as shells accept them.
EnvKey = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
EnvValue = Annotated[str, StringConstraints(max_length=65_536)]
LongText = Annotated[str, StringConstraints(max_length=20_000)]


class ProjectCreate(RequestModel):
    name: Name


class ProjectUpdate(RequestModel):
    name: Name


class Project(ResponseModel):
    id: str
    user_id: str
    name: str
    intent: str | None
    brief: str | None
    main_workspace_id: str | None
    last_snapshot_id: str | None
    created_at: str
    updated_at: str
    last_activity_at: str


class ProjectResponse(ResponseModel):
    project: Project


class ProjectList(ResponseModel):
    projects: list[Project]
    next_cursor: str | None


class Event(ResponseModel):
    id: str
    type: str
    actor: str
    summary: str
    data: dict[str, Any]
    created_at: str


class EventList(ResponseModel):
    events: list[Event]
    next_cursor: str | None


class SnapshotInsights(ResponseModel):
    total_snapshots: int
    last_snapshot_at: str | None
    last_merge_at: str | None
    snapshots_since_merge: int
    last_deploy_at: str | None
    snapshots_since_deploy: int


class ProjectDetail(ResponseModel):
    project: Project
    workspaces: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    events: list[Event]
    snapshot_insights: SnapshotInsights


class ProjectStatus(ResponseModel):
    last_snapshot_id: str | None
    updated_at: str
    last_activity: str


class BriefUpdate(RequestModel):
    intent: LongText | None = None
    brief: LongText | None = None


class Brief(ResponseModel):
    id: str
    intent: str | None
    brief: str | None


class BriefResponse(ResponseModel):
    project: Brief


class EnvVarSet(RequestModel):
    key: EnvKey
    value: EnvValue
    is_secret: bool = False


class EnvVarBulkSet(RequestModel):
    variables: Annotated[list[EnvVarSet], Field(min_length=1, max_length=100)]


class EnvVar(ResponseModel):
    id: str
    project_id: str
    key: str
    value: str
    is_secret: bool
    created_at: str
    updated_at: str


class EnvVarList(ResponseModel):
    variables: list[EnvVar]


class EnvVarBulkResult(ResponseModel):
    success: bool = True
    count: int


class EnvVarValue(ResponseModel):
    key: str
    value: str
    is_secret: bool


class EnvVarValues(ResponseModel):
    variables: list[EnvVarValue]
