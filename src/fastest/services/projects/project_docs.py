"""A project's documentation: the Markdown, text and reStructuredText files of each workspace's
current tree, found by walking manifests (no blob is read until one is asked for)."""

from __future__ import annotations

from typing import Any

from fastest.domain import tree
from fastest.errors import NotFound, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.services import storage
from fastest.services.projects import registry as projects

DOC_EXTENSIONS = (".md", ".mdx", ".markdown", ".txt", ".rst")
MAX_FILES_PER_WORKSPACE = 2000
MAX_CONTENT_BYTES = 1024 * 1024


def is_doc(path: str) -> bool:
    return path.lower().endswith(DOC_EXTENSIONS)


async def _workspaces_with_trees(platform: Platform, project_id: str) -> list[dict[str, Any]]:
    rows = await platform.db.prepare(
        "SELECT w.id, w.name, COALESCE(w.current_manifest_hash, s.manifest_hash) AS manifest_hash FROM workspaces w "
        "LEFT JOIN snapshots s ON s.id = w.current_snapshot_id WHERE w.project_id = ? ORDER BY w.rowid"
    ).bind(project_id).all()
    return rows.results


async def list_docs(platform: Platform, user_id: str, project_id: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    listed = []
    for workspace in await _workspaces_with_trees(platform, project_id):
        files: list[dict[str, Any]] = []
        if workspace["manifest_hash"]:
            async for path, entry in tree.walk(workspace["manifest_hash"], storage.manifest_loader(platform, user_id)):
                if is_doc(path):
                    files.append({"path": path, "size": entry.size, "hash": entry.hash})
                    if len(files) >= MAX_FILES_PER_WORKSPACE:
                        break
        listed.append({"workspace_id": workspace["id"], "workspace_name": workspace["name"], "files": files})
    return {"workspaces": listed, "total_files": sum(len(w["files"]) for w in listed)}


async def content(platform: Platform, user_id: str, project_id: str, workspace_id: str, path: str) -> dict[str, Any]:
    await projects.get_owned(platform, user_id, project_id)
    workspace = next((w for w in await _workspaces_with_trees(platform, project_id) if w["id"] == workspace_id), None)
    if workspace is None:
        raise NotFound("Workspace not found.")
    if not is_doc(path):
        raise ValidationFailed("Only documentation files can be read here.", fields={"path": "not a doc file"})
    entry = await tree.find(workspace["manifest_hash"], path, storage.manifest_loader(platform, user_id)) if workspace["manifest_hash"] else None
    if entry is None or entry.is_tree:
        raise NotFound(f"No file {path!r} in this workspace.")
    if entry.size is not None and entry.size > MAX_CONTENT_BYTES:
        raise PayloadTooLarge(f"{path} is larger than {MAX_CONTENT_BYTES} bytes; download the blob instead.")
    data = await storage.read_blob(platform, user_id, entry.hash)
    return {
        "content": data.decode("utf-8", errors="replace"),
        "path": path,
        "workspace_id": workspace["id"],
        "workspace_name": workspace["name"],
        "size": len(data),
    }
