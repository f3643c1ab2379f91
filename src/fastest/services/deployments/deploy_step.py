"""The `deploying` step: the output tree, the Worker's code (`worker_code`) and the project's resources
handed to the provider."""

from __future__ import annotations

import logging
from typing import Any

from fastest.domain import deploy_pipeline, tree
from fastest.domain.detection import Detection
from fastest.platform import Platform
from fastest.ports import DeployAsset, DeployError, DeployRequest
from fastest.services import storage
from fastest.services.deployments import providers as deploy_providers
from fastest.services.deployments import resources as deploy_resources
from fastest.services.deployments.detect import detect_tree
from fastest.services.deployments.worker_code import worker_code
from fastest.services.deployments.status import append_log, by_id, fail, move

log = logging.getLogger("fastest.deployments")
MAX_ASSETS = 20_000


async def _assets(platform: Platform, user_id: str, root: str) -> list[DeployAsset]:
    assets: list[DeployAsset] = []
    async for path, entry in tree.walk(root, storage.manifest_loader(platform, user_id)):
        if not deploy_pipeline.is_served(path):
            continue
        assets.append(DeployAsset(path, entry.hash, entry.size or 0))
        if len(assets) > MAX_ASSETS:
            raise DeployError(f"The output has more than {MAX_ASSETS} files.")
    return assets


async def run_deploy_step(platform: Platform, deployment_id: str, detection: Detection | None = None) -> dict[str, Any]:
    """The `deploying` step: hand the output tree (and bindings) to the provider; `ready` or `failed`."""
    row = await by_id(platform, deployment_id)
    assert row is not None and row["status"] == "deploying" and row["output_manifest_hash"]
    user_id = row["user_id"]

    async def say(message: str) -> None:
        await append_log(platform, deployment_id, "deploy", message)

    try:
        provider = await deploy_providers.provider_for(platform, user_id, row["provider"])
        await say(f"Deploying tree {row['output_manifest_hash'][:12]} to {row['provider']}")
        project = await platform.db.prepare("SELECT name FROM projects WHERE id = ?").bind(row["project_id"]).first()
        resources = [
            {"type": r["type"], "name": r["name"], "binding": r["binding"], "external_id": r["external_id"]}
            for r in await deploy_resources.rows_for(platform, row["project_id"], row["provider"])
        ]

        async def read_asset(blob_hash: str) -> bytes:
            return await storage.read_blob(platform, user_id, blob_hash)

        output = row["output_manifest_hash"]

        async def read_output_file(path: str) -> bytes | None:
            found = await tree.find(output, path, storage.manifest_loader(platform, user_id))
            return await read_asset(found.hash) if found is not None and found.type == "file" else None

        if detection is None and row["source_manifest_hash"]:
            detection = await detect_tree(platform, user_id, row["source_manifest_hash"])
        worker = await worker_code(platform, user_id, detection, source=row["source_manifest_hash"], output=output)
        if detection is not None and detection.entry and row["provider"] == "local":
            await say(f"The local provider serves the static assets only; the Worker's code ({detection.entry}) "
                      "runs when deployed with --provider cloudflare (or locally with `npx wrangler dev`)")
        outcome = await provider.deploy(DeployRequest(
            deployment_id=deployment_id, slug=row["slug"],
            project_slug=deploy_pipeline.project_slug(project["name"] if project else "project", row["project_id"]),
            output_manifest_hash=output,
            list_assets=lambda: _assets(platform, user_id, output),
            read_asset=read_asset,
            resources=resources, entry=detection.entry if detection else None,
            compatibility_date=detection.compatibility_date if detection else None, log=say,
            worker=worker, compatibility_flags=detection.compatibility_flags if detection else (),
            has_assets=bool(detection is None or detection.entry is None or detection.output_dir),
            assets_binding=detection.assets_binding if detection else None,
            assets_settings=detection.assets_settings if detection else {},
            worker_vars=detection.worker_vars if detection else {}, read_output_file=read_output_file,
        ))
    except DeployError as exc:
        return await fail(platform, deployment_id, "deploy", f"Deploy failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - a pipeline never stays stuck in `deploying`
        log.exception("deployment %s failed", deployment_id)
        return await fail(platform, deployment_id, "deploy", f"Deploy failed: internal error ({type(exc).__name__})")
    row = await by_id(platform, deployment_id)
    assert row is not None
    if row["status"] != "deploying":  # canceled meanwhile
        return row
    return await move(platform, row, "ready", step="deploy",
                      message=f"Live at {outcome.url} ({outcome.uploaded} files uploaded to the provider)",
                      url=outcome.url, version=outcome.version)
