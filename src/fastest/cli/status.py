"""`fastest status`: what changed locally since the last push, and how far the workspace drifted from main.

Local changes are a tree diff (`fastest.domain.tree.diff`) between the last pushed manifest and the
tree the folder has now. The diff skips every subtree whose hash is unchanged; the new tree's
manifests are in memory and the pushed tree's are kept locally, so a status normally makes no
request for the diff (the server is asked only for manifests missing locally, then cached).
"""

from __future__ import annotations

from fastest.cli.client import ApiClient, ApiError
from fastest.cli.collector import collector_paused
from fastest.cli.loader import manifest_loader, run_blocking
from fastest.cli.push import scan_folder
from fastest.cli.state import Folder, ManifestCache, PushedTree, WorkspaceState
from fastest.cli.records import Record
from fastest.domain.tree import Change, ManifestLoader, diff

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Sequence

SHORT_CODES = {"added": "A", "modified": "M", "deleted": "D"}


class StatusReport(Record):
    __slots__ = ("head_snapshot_id", "pushed_manifest_hash", "local_manifest_hash", "changes", "drift", "drift_error",
                 "folder_walked", "workspace_id", "project_id")
    DEFAULTS = {"changes": list, "drift": None, "drift_error": None, "folder_walked": True, "workspace_id": None,
                "project_id": None}
    head_snapshot_id: str | None
    pushed_manifest_hash: str | None
    local_manifest_hash: str
    changes: list[Change]
    drift: dict[str, Any] | None
    drift_error: str | None
    folder_walked: bool  # False: only what `fastest watch` reported was looked at
    workspace_id: str | None  # the folder's workspace and project, for scripts
    project_id: str | None

    @property
    def clean(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id,
            "project_id": self.project_id,
            "head_snapshot_id": self.head_snapshot_id,
            "pushed_manifest_hash": self.pushed_manifest_hash,
            "local_manifest_hash": self.local_manifest_hash,
            "clean": self.clean,
            "changes": [{"path": c.path, "kind": c.kind} for c in self.changes],
            "drift": self.drift,
            "drift_error": self.drift_error,
            "folder_walked": self.folder_walked,
        }


def local_changes(old_root: str | None, new_root: str, load: ManifestLoader) -> list[Change]:
    async def collect() -> list[Change]:
        return [change async for change in diff(old_root, new_root, load)]

    return run_blocking(collect())


def status(folder: Folder, state: WorkspaceState, api: ApiClient, *, progress: bool | None = None,
           with_drift: bool = True, only: Sequence[str] | None = None) -> StatusReport:
    """`only`: look at these paths alone (what `fastest watch` says changed), as `push` does."""
    with collector_paused():
        pushed = PushedTree.load(folder.pushed_file, state.manifest_hash)
        scanned, tree, _, _ = scan_folder(folder, pushed, progress=progress, only=only)
    load = manifest_loader(api, ManifestCache(folder.manifest_dir), tree.manifests, pushed.manifests)
    report = StatusReport(state.head_snapshot_id, state.manifest_hash, tree.root, folder_walked=scanned.folder_walked,
                          workspace_id=state.workspace_id, project_id=state.project_id)
    report.changes = local_changes(state.manifest_hash, tree.root, load)
    if with_drift:
        try:
            report.drift = api.drift_compare(state.workspace_id)
        except ApiError as exc:
            if exc.status == 401:  # a rejected token is the caller's problem, not drift's
                raise
            report.drift_error = exc.message
    return report


def short_lines(changes: list[Change]) -> list[str]:
    """`git status --short` style: one `X path` line per file."""
    return [f"{SHORT_CODES[c.kind]} {c.path}" for c in changes]


def drift_line(answer: dict[str, Any]) -> str:
    """One line from `GET /v1/workspaces/{id}/drift/compare`."""
    if answer.get("is_main_workspace"):
        return "drift: this is the main workspace"
    drift = answer.get("drift") or {}
    source = answer.get("source_workspace") or {}
    against = source.get("name") or source.get("id") or "main"
    parts = [
        f"+{drift.get('files_added', 0)}",
        f"~{drift.get('files_modified', 0)}",
        f"-{drift.get('files_deleted', 0)}",
    ]
    line = f"drift vs {against}: {' '.join(parts)} files"
    if drift.get("bytes_changed") is not None:
        line += f", {drift['bytes_changed']} bytes changed"
    if drift.get("overlap_ratio") is not None:
        line += f", overlap {float(drift['overlap_ratio']):.0%}"
    if drift.get("risk_level"):
        line += f", risk {drift['risk_level']}"
    return line
