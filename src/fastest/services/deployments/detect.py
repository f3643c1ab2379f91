"""Detection over a stored tree: its paths from the manifests, the few files detection reads from the
blobs, then the pure `domain.detection.detect`."""

from __future__ import annotations

from typing import Any

from fastest.domain import detection, tree
from fastest.domain.manifest import is_sha256_hex
from fastest.errors import NotFound, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.services import projects, storage
from fastest.services.sync import workspaces


async def detect_tree(platform: Platform, user_id: str, root: str) -> detection.Detection:
    """Detect over a stored tree. Detection looks at the root's names and a few directories
    (`detection.LOOKED_INTO`), so only those manifests are read, whatever the tree's size."""
    load = storage.manifest_loader(platform, user_id)
    top = await load(root) if root != tree.EMPTY_TREE_HASH else None
    paths: list[str] = []
    files: dict[str, str] = {}  # path → blob hash
    for entry in top.entries if top is not None else ():
        if entry.type == "file":
            paths.append(entry.name)
            files[entry.name] = entry.hash
        elif entry.name in detection.LOOKED_INTO:
            paths.append(entry.name + "/")
            for child in (await load(entry.hash)).entries:
                path = f"{entry.name}/{child.name}"
                paths.append(path if child.type == "file" else path + "/")
                if child.type == "file":
                    files[path] = child.hash
    contents: dict[str, str] = {}
    for path in detection.files_to_read(paths):
        try:
            data = await storage.read_blob(platform, user_id, files[path], max_bytes=detection.MAX_READ_BYTES)
        except (NotFound, PayloadTooLarge):
            continue
        contents[path] = data.decode("utf-8", errors="replace")
    return detection.detect(paths, contents)


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
