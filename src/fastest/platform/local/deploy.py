"""The local deploy provider: deployments served by the local server itself, resources as files.

A deployment's static output is already in the user's content-addressed blobs (the CLI pushed it
like any tree), so deploying copies nothing: the local server answers `http://<slug>.localhost:<port>/`
(and `/_deployments/<slug>/…`) from the output tree (`fastest.api.deploy_sites`). Re-deploying a
one-file change therefore moves exactly that one file.

Resources live under `<data dir>/deployments/`: a SQLite database file for `d1`, a SQLite key-value
file for `kv`, a directory for `r2`. Their connection info is the path (sealed at rest, masked in lists).
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from fastest.platform.local.sqlite_files import private_file
from fastest.ports import DeployError, DeployOutcome, DeployRequest, ProvisionedResource


class LocalDeployProvider:
    name = "local"

    def __init__(self, root: Path, public_url: str) -> None:
        self.root = Path(root)
        parts = urlsplit(public_url)
        self.scheme = parts.scheme or "http"
        self.port = parts.port
        self.public_url = public_url.rstrip("/")

    def site_url(self, slug: str) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{slug}.localhost{port}/"

    def fallback_url(self, slug: str) -> str:
        return f"{self.public_url}/_deployments/{slug}/"

    async def verify(self) -> Mapping[str, Any]:
        return {}

    async def create_resource(self, type: str, name: str) -> ProvisionedResource:
        directory = self.root / "resources"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        external_id = f"{type}-{secrets.token_hex(8)}"
        if type == "d1":
            path = directory / f"{external_id}.sqlite"
            private_file(path)
        elif type == "kv":
            path = directory / f"{external_id}.kv.sqlite"
            private_file(path)
            with sqlite3.connect(path) as connection:
                connection.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, expires_at INTEGER)")
            connection.close()
        elif type == "r2":
            path = directory / external_id
            path.mkdir(mode=0o700)
        else:
            raise DeployError(f"The local provider has no {type!r} resources.")
        return ProvisionedResource(external_id=external_id, connection={"path": str(path)})

    async def destroy_resource(self, type: str, external_id: str) -> None:
        directory = self.root / "resources"
        if "/" in external_id or external_id.startswith("."):
            raise DeployError("Not a local resource id.")
        for candidate in (directory / f"{external_id}.sqlite", directory / f"{external_id}.kv.sqlite"):
            candidate.unlink(missing_ok=True)
        shutil.rmtree(directory / external_id, ignore_errors=True)

    async def deploy(self, request: DeployRequest) -> DeployOutcome:
        if request.log is not None:
            await request.log("Served from the content store: nothing to copy")
        return DeployOutcome(url=self.site_url(request.slug), version=request.output_manifest_hash, uploaded=0)

    async def rollback(self, project_slug: str, version: str) -> DeployOutcome:
        raise DeployError("The local provider redeploys the earlier output instead.")
