"""Action items and their runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fastest.schemas.common import RequestModel, ResponseModel

RunStatus = Literal["queued", "running", "ready", "failed", "applied"]


class ActionItem(ResponseModel):
    id: str
    type: str = Field(description="`secrets`, `missing-lockfile`, `oversized-binary`, `untested-modules`, `drift-stale`, `drift-risky`, …")
    category: str
    severity: Literal["critical", "high", "medium", "low"]
    magnitude: int = Field(description="How bad (e.g. how many secrets); a dismissal holds until it grows.")
    fingerprint: str
    workspace_id: str
    project_id: str
    snapshot_id: str | None
    manifest_hash: str | None
    title: str
    description: str
    action_label: str
    action_type: str
    action_data: dict[str, Any]
    dismissed: bool
    created_at: str


class ActionItemList(ResponseModel):
    items: list[ActionItem]
    agent_available: bool = Field(description="Whether an agent run can fix `run` items for you (an AI model is "
                                              "configured); without one a run fails at once with `model_not_configured`.")


class ActionItemResponse(ResponseModel):
    item: ActionItem


class RunCreate(RequestModel):
    instructions: str | None = Field(default=None, max_length=4000, description="Extra guidance for the agent.")


class RunCheck(ResponseModel):
    name: str
    path: str | None = None
    ok: bool
    detail: str | None = None


class Run(ResponseModel):
    id: str
    action_item_id: str
    workspace_id: str
    project_id: str
    status: RunStatus
    attempt_count: int
    max_attempts: int
    summary: str | None
    report: str | None
    patch: str | None
    checks: list[RunCheck]
    error: dict[str, Any] | None
    base_snapshot_id: str | None
    base_manifest_hash: str | None
    applied_snapshot_id: str | None
    created_at: str
    updated_at: str


class RunResponse(ResponseModel):
    run: Run


class RunList(ResponseModel):
    runs: list[Run]


class RunApplied(ResponseModel):
    success: bool = True
    run: Run
    snapshot_id: str
    manifest_hash: str
    merged: bool = Field(description="The workspace had moved since the run started: the change was three-way merged.")
