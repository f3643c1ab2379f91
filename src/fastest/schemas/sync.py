"""Workspaces, snapshots and drift."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from fastest.schemas.common import Name, RequestModel, ResponseModel

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SnapshotId = Annotated[str, StringConstraints(pattern=r"^snp_[0-9A-HJKMNP-TV-Z]{26}$")]
WorkspaceId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]
ShortText = Annotated[str, StringConstraints(max_length=2000)]
Label = Annotated[str, StringConstraints(max_length=500)]


class Snapshot(ResponseModel):
    id: str
    project_id: str
    workspace_id: str | None
    manifest_hash: str
    parent_snapshot_ids: list[str]
    source: str
    summary: str | None
    created_at: str


class SnapshotCreate(RequestModel):
    manifest_hash: Sha256
    snapshot_id: SnapshotId | None = None
    parent_snapshot_ids: Annotated[list[SnapshotId], Field(max_length=8)] = []
    workspace_id: WorkspaceId | None = None
    source: Literal["cli", "web", "agent", "sync", "merge", "deploy", "api"] = "cli"
    summary: ShortText | None = None


class SnapshotCreated(ResponseModel):
    snapshot: Snapshot
    created: bool


class SnapshotResponse(ResponseModel):
    snapshot: Snapshot


class SnapshotList(ResponseModel):
    snapshots: list[Snapshot]
    next_cursor: str | None


class SnapshotRestore(RequestModel):
    workspace_id: WorkspaceId | None = None


class SnapshotRestored(ResponseModel):
    success: bool
    snapshot: Snapshot
    before_restore_snapshot_id: str | None
    restored_from: str
    workspace_id: str


class SnapshotCompare(RequestModel):
    against: Annotated[str, StringConstraints(pattern=r"^(current|snp_[0-9A-HJKMNP-TV-Z]{26})$")]


class SnapshotComparison(ResponseModel):
    snapshot_id: str
    against: str
    base_manifest_hash: str | None
    target_manifest_hash: str
    diff: dict[str, Any]


class WorkspaceCreate(RequestModel):
    name: Name
    machine_id: Label | None = None
    base_snapshot_id: SnapshotId | None = None
    local_path: Annotated[str, StringConstraints(max_length=4096)] | None = None


class Workspace(ResponseModel):
    id: str
    project_id: str
    name: str
    machine_id: str | None
    local_path: str | None
    base_snapshot_id: str | None
    current_snapshot_id: str | None
    current_manifest_hash: str | None
    version: int
    last_seen_at: str | None
    created_at: str
    updated_at: str
    is_main: bool


class WorkspaceResponse(ResponseModel):
    workspace: Workspace


class WorkspaceWithDrift(Workspace):
    latest_drift: dict[str, Any] | None


class WorkspaceList(ResponseModel):
    workspaces: list[WorkspaceWithDrift]


class WorkspaceDetail(ResponseModel):
    workspace: Workspace
    drift: dict[str, Any] | None


class Heartbeat(ResponseModel):
    success: bool
    last_seen_at: str


class CurrentManifestUpdate(RequestModel):
    manifest_hash: Sha256
    previous_manifest_hash: Sha256 | None = None


class CurrentManifestUpdated(ResponseModel):
    updated: bool
    current_manifest_hash: str


class DriftReportCreate(RequestModel):
    files_added: Count
    files_modified: Count
    files_deleted: Count
    bytes_changed: Count
    summary: ShortText | None = None


class DriftReportResponse(ResponseModel):
    drift_report: dict[str, Any]


class DriftHistory(ResponseModel):
    drift_reports: list[dict[str, Any]]
    latest: dict[str, Any] | None
    next_cursor: str | None


class DriftComparison(ResponseModel):
    drift: dict[str, Any]
    is_main_workspace: bool
    source_workspace: Workspace


class MainWorkspace(ResponseModel):
    success: bool
    main_workspace_id: str


class DocFile(ResponseModel):
    path: str
    size: int | None
    hash: str


class WorkspaceDocs(ResponseModel):
    workspace_id: str
    workspace_name: str
    files: list[DocFile]


class DocsList(ResponseModel):
    workspaces: list[WorkspaceDocs]
    total_files: int


class DocContent(ResponseModel):
    content: str
    path: str
    workspace_id: str
    workspace_name: str
    size: int


# --- sync: prepare, execute, undo -----------------------------------------------------------------

SyncOption = Literal["keep_workspace", "take_main", "keep_both", "ai_combined"]
PreviewId = Annotated[str, StringConstraints(pattern=r"^syp_[0-9A-HJKMNP-TV-Z]{26}$")]
FilePath = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class SyncAction(ResponseModel):
    path: str
    action: Literal["add", "update", "delete", "merge"] = Field(
        description="What happens to the workspace's file: main's version added or taken, deleted as main "
                    "deleted it, or both versions merged line by line."
    )
    source: Literal["main", "both"]


class SyncOptionView(ResponseModel):
    id: SyncOption
    description: str


class SyncDecision(ResponseModel):
    path: str
    kind: Literal["modify/modify", "add/add", "modify/delete", "delete/modify", "file/directory", "directory/file"]
    reason: str
    options: list[SyncOptionView]


class SyncRename(ResponseModel):
    side: Literal["workspace", "main"]
    from_: str = Field(alias="from")
    to: str


class SyncSummary(ResponseModel):
    up_to_date: bool
    auto: int
    decisions: int
    files_to_update: int
    files_to_add: int
    files_to_delete: int
    line_merged: int
    identical: int
    renames: int
    requires_mass_change_confirmation: bool


class SyncAiStatus(ResponseModel):
    engine: str
    available: bool = Field(description="False with the builtin engine: no model, so no `ai_combined` option.")
    offered: int
    message: str


class SyncPreview(ResponseModel):
    id: str
    workspace_id: str
    created_at: str
    expires_at: str
    base_snapshot_id: str | None
    workspace_snapshot_id: str | None
    main_snapshot_id: str | None
    main_workspace_id: str
    auto_actions: list[SyncAction]
    decisions_needed: list[SyncDecision]
    files_to_update: list[str]
    files_to_add: list[str]
    files_to_delete: list[str]
    renames: list[SyncRename]
    summary: SyncSummary
    ai: SyncAiStatus


class SyncPreviewResponse(ResponseModel):
    preview: SyncPreview


class SyncExecute(RequestModel):
    preview_id: PreviewId
    decisions: Annotated[dict[FilePath, SyncOption], Field(max_length=10_000)] = {}
    create_snapshot_before: bool = Field(
        False, description="Record the pre-sync state as its own snapshot even when the workspace has no "
                           "unsnapshotted changes (with changes, it is always recorded).")
    create_snapshot_after: bool = Field(
        True, description="Accepted for compatibility; the merge snapshot (parents: both heads) is always created.")
    confirm_mass_change: bool = False
    summary: ShortText | None = None


class SyncExecuted(ResponseModel):
    success: bool
    sync_id: str
    snapshot_id: str
    manifest_hash: str
    pre_sync_snapshot_id: str
    files_updated: int
    files_added: int
    files_deleted: int


class SyncUndo(RequestModel):
    force: bool = Field(False, description="Undo even if the workspace moved since the sync (its state is kept as a snapshot).")


class SyncUndone(ResponseModel):
    success: bool
    reverted_to_snapshot_id: str
    manifest_hash: str
    undone_sync_id: str
    before_undo_snapshot_id: str | None
