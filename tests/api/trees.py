"""Helpers for tests that need real trees on the server: upload files and manifests over HTTP."""

from __future__ import annotations

import hashlib
from typing import Mapping

from fastest.domain.manifest import MODE_FILE
from fastest.domain.tree import build_manifests


def upload_blobs(client, caller, files: Mapping[str, bytes | tuple[bytes, int]]) -> list[tuple[str, str, int, int]]:
    """Upload every blob of this {path: content | (content, mode)} tree; its (path, hash, size, mode) records."""
    records = []
    for path, value in files.items():
        content, mode = value if isinstance(value, tuple) else (value, MODE_FILE)
        digest = hashlib.sha256(content).hexdigest()
        response = client.put(f"/v1/blobs/upload/{digest}", headers=caller.headers, content=content)
        assert response.status_code in (200, 201), response.text
        records.append((path, digest, len(content), mode))
    return records


def upload_tree(client, caller, files: Mapping[str, bytes | tuple[bytes, int]]) -> str:
    """Upload every blob and manifest of this {path: content | (content, mode)} tree; return the root."""
    built = build_manifests(upload_blobs(client, caller, files))
    for digest, data in built.manifests.items():
        response = client.put(f"/v1/blobs/manifests/{digest}", headers=caller.headers, content=data)
        assert response.status_code in (200, 201), response.text
    return built.root


def new_project(client, caller, name: str = "P") -> dict:
    response = client.post("/v1/projects", headers=caller.headers, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["project"]


def new_workspace(client, caller, project_id: str, name: str = "laptop", **fields) -> dict:
    response = client.post(f"/v1/projects/{project_id}/workspaces", headers=caller.headers, json={"name": name, **fields})
    assert response.status_code == 201, response.text
    return response.json()["workspace"]


def snapshot(client, caller, project_id: str, root: str, **fields) -> dict:
    response = client.post(f"/v1/projects/{project_id}/snapshots", headers=caller.headers, json={"manifest_hash": root, **fields})
    assert response.status_code in (200, 201), response.text
    return response.json()["snapshot"]
