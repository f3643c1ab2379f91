"""Builds on the server (the local runtime, when its operator turns them on): the source tree's files
go to the platform's builder, its output comes back as blobs and manifests, then the deploy step."""

from __future__ import annotations

import hashlib
import logging

from fastest.domain import tree, worker_modules
from fastest.domain.detection import Detection
from fastest.platform import Platform
from fastest.services import storage
from fastest.services.deployments.deploy_step import run_deploy_step
from fastest.services.deployments.status import by_id, fail, log_statement, move

log = logging.getLogger("fastest.deployments")
MAX_SOURCE_BYTES = 512 * 1024 * 1024


async def build_and_deploy(platform: Platform, deployment_id: str, command: str | None, output_dir: str | None,
                           detection: Detection | None) -> None:
    try:
        await _build_and_deploy(platform, deployment_id, command, output_dir, detection)
    except Exception as exc:  # noqa: BLE001 - a background build never leaves a deployment stuck
        log.exception("build of %s failed", deployment_id)
        await fail(platform, deployment_id, "build", f"Build failed: internal error ({type(exc).__name__})")


async def _build_and_deploy(platform: Platform, deployment_id: str, command: str | None, output_dir: str | None,
                            detection: Detection | None) -> None:
    row = await by_id(platform, deployment_id)
    if row is None or row["status"] != "queued":
        return
    user_id = row["user_id"]
    worker_entry = detection.entry if detection is not None else None
    worker = detection if worker_entry and worker_modules.is_bundled(worker_entry) else None
    started = f"$ {command}" if command else f"Bundling {worker_entry} with esbuild"
    row = await move(platform, row, "building", step="build", message=started)
    files: list[tuple[str, bytes, int]] = []
    total = 0
    async for path, entry in tree.walk(row["source_manifest_hash"], storage.manifest_loader(platform, user_id)):
        data = await storage.read_blob(platform, user_id, entry.hash)
        total += len(data)
        if total > MAX_SOURCE_BYTES:
            await fail(platform, deployment_id, "build", "The project is too large to build here.")
            return
        files.append((path, data, entry.mode or 0o644))

    async def on_lines(lines: list[str]) -> None:
        await platform.db.batch([log_statement(platform, deployment_id, "build", line) for line in lines])

    settings = platform.settings
    result = await platform.deploy_builder.run(
        files, command, output_dir, timeout=settings.deploy_build_timeout_seconds,
        max_output_bytes=settings.deploy_build_max_output_bytes, on_lines=on_lines, worker=worker)
    if result.exit_code != 0:
        reason = result.error or f"`{command}` exited {result.exit_code}"
        await fail(platform, deployment_id, "build", f"Build failed: {reason}")
        return
    blobs = {hashlib.sha256(data).hexdigest(): data for _, data, _ in result.outputs}
    built = tree.build_manifests([(path, hashlib.sha256(data).hexdigest(), len(data), mode)
                                  for path, data, mode in result.outputs])
    await storage.store_objects(platform, user_id, blobs=blobs, manifests=built.manifests)
    row = await by_id(platform, deployment_id)
    if row is None or row["status"] != "building":
        return
    await move(platform, row, "deploying", step="build", output=built.root,
               message=f"Build done: {len(result.outputs)} files" + (f" in {output_dir}" if output_dir else ""))
    await run_deploy_step(platform, deployment_id, detection)
