"""Detection over a stored tree: its paths from the manifests, the few files detection reads from the
blobs, then the pure `domain.detection.detect`."""

from __future__ import annotations

from typing import Any

from fastest.domain import detection, tree
from fastest.domain.manifest import is_sha256_hex
from fastest.errors import NotFound, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.services import projects, storage, workspaces

MAX_PATHS = 100_000  # beyond this, detection looks at the first paths only (and says so)


async def detect_tree(platform: Platform, user_id: str, root: str) -> detection.Detection:
    load = storage.manifest_loader(platform, user_id)
    paths: list[str] = []
    truncated = False
    async for path, _entry in tree.walk(root, load):
        paths.append(path)
        if len(paths) >= MAX_PATHS:
            truncated = True
            break
    contents: dict[str, str] = {}
    for path in detection.files_to_read(paths):
        entry = await tree.find(root, path, load)
        if entry is None or entry.type != "file":
            continue
        try:
            data = await storage.read_blob(platform, user_id, entry.hash, max_bytes=detection.MAX_READ_BYTES)
        except (NotFound, PayloadTooLarge):
            continue
        contents[path] = data.decode("utf-8", errors="replace")
    found = detection.detect(paths, contents)
    if truncated:
        found.notes.append(f"Only the first {MAX_PATHS} paths were looked at.")
    return found


async def default_root(platform: Platform, user_id: str, project_id: str) -> str | None:
    """The tree a project deploys by default: its main workspace's current manifest."""
    project = await projects.get_owned(platform, user_id, project_id)
    if project["main_workspace_id"] is None:
        return None
    workspace = await workspaces.get_owned(platform, user_id, project["main_workspace_id"])
    return await workspaces.tree_of(platform, workspace, include_dirty=True)


async def detect_project(platform: Platform, user_id: str, project_id: str, manifest_hash: str | None) -> dict[str, Any]:
    """`GET …/projects/:id/detect`: `{requirements, suggested_resources, detection}`."""
    await projects.get_owned(platform, user_id, project_id)
    if manifest_hash is not None:
        if not is_sha256_hex(manifest_hash) or not await storage.manifest_exists(platform, user_id, manifest_hash):
            raise NotFound("Manifest not found.")
        root = manifest_hash
    else:
        root = await default_root(platform, user_id, project_id)
        if root is None:
            raise ValidationFailed("The project has no pushed files yet: push first, or pass ?manifest_hash=.",
                                   code="nothing_to_detect")
    found = await detect_tree(platform, user_id, root)
    return {"requirements": found.requirements(), "suggested_resources": found.suggested_resources(),
            "detection": {**found.to_json(), "manifest_hash": root}}
