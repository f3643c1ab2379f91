"""Deployments: the forward-only pipeline (creating and running one), the signed callback, cancel,
rollback, auto-deploy. Reading deployments is `records`; a workspace's settings, `settings`.

A deployment deploys **artifacts**: a tree of the user's content-addressed blobs (the static output).
Where that tree comes from:
- the CLI builds on its machine, pushes the output like any tree, and hands over its manifest hash
  (a re-deploy after a one-file change has uploaded one blob);
- the source tree itself when detection says it needs no build (plain HTML, a Worker's assets);
- the local runtime's own build, when its operator turns builds on (`deploy_builds_enabled`).

Every status change is one `db.batch`: the guarded update (only from the status read, with the
callback number expected), its project events (`deployment.started`, `build.started`,
`build.completed`, `build.failed`, `deployment.ready`, `deployment.failed`, `deployment.canceled`)
and its log line land together, or not at all.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from datetime import timedelta
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from fastest.domain import deploy_pipeline, tree, worker_modules
from fastest.domain.detection import Detection
from fastest.domain.ids import iso
from fastest.domain.manifest import is_sha256_hex
from fastest.errors import Conflict, NotFound, Unauthenticated, ValidationFailed
from fastest.platform import Platform
from fastest.ports import DatabaseError, DeployError
from fastest.services import events, projects, storage
from fastest.services.billing import entitlements
from fastest.services.common import new_id, now_iso
from fastest.services.deployments import builds as deploy_builds
from fastest.services.deployments import detect as deploy_detect
from fastest.services.deployments import providers as deploy_providers
from fastest.services.deployments import resources as deploy_resources
from fastest.services.deployments.deploy_step import run_deploy_step
from fastest.services.deployments.records import deployment_view, get_owned, with_project_url
from fastest.services.deployments.settings import settings_row
from fastest.services.deployments.status import (
    append_log,
    by_id,
    event_statements,
    fail,
    log_statement,
    move,
)
from fastest.services.sync import snapshots, workspaces

log = logging.getLogger("fastest.deployments")

Spawn = Callable[[Callable[[], Awaitable[None]]], None]
SIGNING_KEY_NAME = "deploy-callback-key"
TRIGGERS = ("manual", "chat", "auto", "rollback", "cli")
# A deployment not finished that made no progress (no status change, no build report) for this long
# is failed by the `fail-stalled-deployments` job: its client (or build) is gone.
STALLED_AFTER_SECONDS = 60 * 60


# --- the callback token ----------------------------------------------------------------------


async def _signing_key(platform: Platform) -> bytes:
    """The server's key for callback tokens: configured, else made once and sealed in D1."""
    if platform.settings.deploy_signing_key:
        return platform.settings.deploy_signing_key.encode("utf-8")
    purpose = "server-secret"
    sealed = await platform.db.prepare("SELECT ciphertext FROM server_secrets WHERE name = ?").bind(
        SIGNING_KEY_NAME).first("ciphertext")
    if sealed is None:
        fresh = await platform.vault.encrypt(base64.b64encode(secrets.token_bytes(32)).decode(), owner="server",
                                             purpose=purpose)
        await platform.db.prepare(
            "INSERT INTO server_secrets (name, ciphertext, created_at) VALUES (?, ?, ?) ON CONFLICT(name) DO NOTHING"
        ).bind(SIGNING_KEY_NAME, fresh, now_iso(platform)).run()
        sealed = await platform.db.prepare("SELECT ciphertext FROM server_secrets WHERE name = ?").bind(
            SIGNING_KEY_NAME).first("ciphertext")
    return base64.b64decode(await platform.vault.decrypt(sealed, owner="server", purpose=purpose))


async def callback_token(platform: Platform, deployment_id: str, number: int) -> str:
    return deploy_pipeline.sign_callback(await _signing_key(platform), deployment_id, number)


# --- status changes --------------------------------------------------------------------------


# --- creating and running ----------------------------------------------------------------------


# The plan's `deployments` limit counts the projects a user has deployed (any deployment not failed
# or canceled): re-deploying, rolling back or auto-deploying a deployed project costs nothing more.
_DEPLOYED_PROJECTS = (
    "SELECT COUNT(DISTINCT project_id) AS deployed,"
    " COALESCE(MAX(project_id = ?2), 0) AS this_one"
    " FROM deployments WHERE user_id = ?1 AND status NOT IN ('failed', 'canceled')"
)


async def _require_deployment_allowance(platform: Platform, user_id: str, project_id: str) -> None:
    """402 `plan_limit_reached` before anything is recorded, when a new project would exceed the plan."""
    row = await platform.db.prepare(_DEPLOYED_PROJECTS).bind(user_id, project_id).first() or {}
    adding = 0 if row.get("this_one") else 1
    await entitlements.require(platform, user_id, "deployments", adding=adding, used=int(row.get("deployed") or 0))


async def create(platform: Platform, user_id: str, project: Mapping[str, Any], *, workspace_id: str | None,
                 snapshot_id: str | None, source_manifest_hash: str | None, provider: str, trigger: str,
                 conversation_id: str | None = None, rollback_of: str | None = None) -> dict[str, Any]:
    """A new `queued` deployment (and its `deployment.started` event)."""
    await _require_deployment_allowance(platform, user_id, project["id"])
    await deploy_providers.provider_for(platform, user_id, provider)  # 422 if unavailable / no credential
    deployment_id = new_id(platform, "dep")
    now = now_iso(platform)
    row = {"id": deployment_id, "project_id": project["id"], "user_id": user_id, "workspace_id": workspace_id,
           "provider": provider}
    await platform.db.batch([
        platform.db.prepare(
            "INSERT INTO deployments (id, user_id, project_id, workspace_id, conversation_id, snapshot_id, provider, "
            "status, trigger, slug, source_manifest_hash, rollback_of, created_at, started_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)"
        ).bind(deployment_id, user_id, project["id"], workspace_id, conversation_id, snapshot_id, provider, trigger,
               deploy_pipeline.slug_of(deployment_id), source_manifest_hash, rollback_of, now, now, now),
        log_statement(platform, deployment_id, "queue", f"Deployment queued ({trigger}, provider {provider})"),
        *event_statements(platform, row, ["deployment.started"], {"trigger": trigger, "status": "queued"}),
    ])
    return await by_id(platform, deployment_id)  # type: ignore[return-value]


async def _output_of(platform: Platform, user_id: str, root: str, output_dir: str | None) -> str | None:
    if output_dir in (None, "", "."):
        return root
    entry = await tree.find(root, output_dir.strip("/"), storage.manifest_loader(platform, user_id))
    return entry.hash if entry is not None and entry.type == "tree" else None


async def _check_output(platform: Platform, user_id: str, manifest_hash: str) -> None:
    if manifest_hash == tree.EMPTY_TREE_HASH:  # a Worker with code and no assets
        return
    if not is_sha256_hex(manifest_hash) or not await storage.manifest_exists(platform, user_id, manifest_hash):
        raise ValidationFailed("Upload the output's manifests and blobs before deploying them.", code="manifest_missing",
                               fields={"output_manifest_hash": "no such manifest"})
    await storage.verify_closure(platform, user_id, manifest_hash)


async def deploy_project(
    platform: Platform, user_id: str, project_id: str, *, workspace_id: str | None = None, trigger: str = "manual",
    provider: str | None = None, snapshot_id: str | None = None, output_manifest_hash: str | None = None,
    build: str = "auto", conversation_id: str | None = None, source_manifest_hash: str | None = None,
    spawn: Spawn | None = None,
) -> dict[str, Any]:
    """Detect → provision what is missing → deploy. `build`: "client" (the caller builds and reports
    through the callback), "server" (the local runtime builds, if allowed), "none" (deploy the
    source's output directory as is), "auto" (none when no build is needed, else server).

    Returns `{success, deployment_id, url, resources, provisioned_resources, error}` plus
    `status`, `deployment` and `callback_token` (for a client build)."""
    project = await projects.get_owned(platform, user_id, project_id)
    workspace_id = workspace_id or project["main_workspace_id"]
    workspace = await workspaces.get_owned(platform, user_id, workspace_id) if workspace_id else None
    if workspace is not None and workspace["project_id"] != project_id:
        raise NotFound("Workspace not found.")
    settings = await settings_row(platform, workspace_id)
    provider = provider or settings.get("provider") or deploy_providers.default_provider(platform)
    if output_manifest_hash is not None:
        await _check_output(platform, user_id, output_manifest_hash)
    if snapshot_id is not None:
        chosen = await _snapshot_of_project(platform, user_id, project_id, snapshot_id)
        source_manifest_hash = source_manifest_hash or chosen["manifest_hash"]
    if source_manifest_hash is None and workspace is not None:
        source_manifest_hash = await workspaces.tree_of(platform, workspace, include_dirty=True)
        snapshot_id = snapshot_id or workspace["current_snapshot_id"]
    if source_manifest_hash is None and output_manifest_hash is None:
        raise ValidationFailed("Nothing to deploy: push the folder first.", code="nothing_to_deploy")

    detection = await deploy_detect.detect_tree(platform, user_id, source_manifest_hash) if source_manifest_hash else None
    row = await create(platform, user_id, project, workspace_id=workspace_id, snapshot_id=snapshot_id,
                       source_manifest_hash=source_manifest_hash, provider=provider, trigger=trigger,
                       conversation_id=conversation_id)
    deployment_id = row["id"]
    provisioned: list[dict[str, Any]] = []
    try:
        if detection is not None and detection.suggested_resources():
            provider_impl = await deploy_providers.provider_for(platform, user_id, provider)
            provisioned = await deploy_resources.provision(
                platform, user_id, project_id, provider_impl, provider, detection.suggested_resources(),
                deploy_pipeline.project_slug(project["name"], project_id))
            for made in provisioned:
                await append_log(platform, deployment_id, "provision", f"Provisioned {made['type']} {made['name']}")
    except DeployError as exc:
        row = await fail(platform, deployment_id, "provision", f"Provisioning failed: {exc}")

    token = None
    if row["status"] == "queued":
        row, token = await _continue(platform, row, detection, settings, build=build,
                                     output_manifest_hash=output_manifest_hash, spawn=spawn)
    resources = await deploy_resources.list_masked(platform, user_id, project_id)
    return {"success": row["status"] not in ("failed", "canceled"), "deployment_id": deployment_id, "url": row["url"],
            "resources": resources, "provisioned_resources": provisioned, "error": row["error"],
            "status": row["status"], "deployment": await with_project_url(platform, deployment_view(row, platform)),
            "callback_token": token}


async def _continue(platform: Platform, row: dict[str, Any], detection: Detection | None, settings: Mapping[str, Any],
                    *, build: str, output_manifest_hash: str | None, spawn: Spawn | None) -> tuple[dict[str, Any], str | None]:
    """From `queued`: deploy the given output, or the source's own output directory, or build."""
    deployment_id = row["id"]
    if output_manifest_hash is not None:
        row = await move(platform, row, "deploying", step="upload", message="Output received; deploying",
                         output=output_manifest_hash)
        return await run_deploy_step(platform, deployment_id, detection), None
    if build == "client":
        return row, await callback_token(platform, deployment_id, row["callback_seq"])
    output_dir = settings.get("output_dir") or (detection.output_dir if detection else None)
    build_command = settings.get("build_command") or (detection.build_command if detection else None)
    entry = detection.entry if detection is not None else None
    # A JavaScript Worker is bundled where builds run: here, when this server runs builds.
    bundles_here = bool(entry and worker_modules.is_bundled(entry) and build != "none"
                        and platform.settings.deploy_builds_enabled and getattr(platform, "deploy_builder", None))
    needs_build = (build_command is not None and build != "none") or bundles_here
    if not needs_build:
        if output_dir is None and not (entry and worker_modules.is_python(entry)):
            reason = "; ".join(detection.notes) if detection and detection.notes else "no static output was detected"
            return await fail(platform, deployment_id, "queue", f"Nothing to serve: {reason}. Set output_dir in the "
                               "deployment settings."), None
        if entry and worker_modules.is_bundled(entry):
            await append_log(platform, deployment_id, "queue", f"The Worker's code ({entry}) is bundled where builds "
                             "run (`fastest deploy` bundles it on your machine); the server does not bundle it")
        output = (tree.EMPTY_TREE_HASH if output_dir is None
                  else await _output_of(platform, row["user_id"], row["source_manifest_hash"], output_dir))
        if output is None:
            return await fail(platform, deployment_id, "queue",
                               f"The output directory {output_dir!r} is not in the pushed files."), None
        await move(platform, row, "deploying", step="upload", message=f"Deploying {output_dir} as is (no build)", output=output)
        return await run_deploy_step(platform, deployment_id, detection), None
    builder = getattr(platform, "deploy_builder", None)
    if not platform.settings.deploy_builds_enabled or builder is None:
        return await fail(platform, deployment_id, "build",
                           f"This project needs a build ({build_command}), and this server does not run builds: "
                           "run `fastest deploy` in the folder (it builds on your machine)."), None
    async def job() -> None:
        await deploy_builds.build_and_deploy(platform, deployment_id, build_command,
                                             output_dir or (None if bundles_here else "."), detection)

    if spawn is None:
        await job()
    else:
        spawn(job)
    return (await by_id(platform, deployment_id)), None  # type: ignore[return-value]


async def deploy_workspace(platform: Platform, user_id: str, workspace_id: str, *, spawn: Spawn | None = None,
                           trigger: str = "manual") -> dict[str, Any]:
    workspace = await workspaces.get_owned(platform, user_id, workspace_id)
    result = await deploy_project(platform, user_id, workspace["project_id"], workspace_id=workspace_id,
                                  trigger=trigger, spawn=spawn)
    return {"deployment_id": result["deployment_id"], "status": result["status"], "url": result["url"],
            "error": result["error"]}


# Server builds started by an auto-deploy run beside the push that triggered them (not inside its
# request). The set only holds running tasks (each removes itself when done), so the event loop
# cannot drop one half-way; it is empty whenever no build runs.
_RUNNING: set[asyncio.Task[None]] = set()


def _detached(job: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.get_running_loop().create_task(job())
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


async def auto_deploy(platform: Platform, moved: events.Event) -> None:
    """The reaction to a moved workspace (`events.WORKSPACE_MOVED`): deploy it when it is the
    project's main workspace and its settings say so."""
    user_id, workspace_id = moved.actor, moved.data["workspace_id"]
    snapshot_id, manifest_hash = moved.data["snapshot_id"], moved.data["manifest_hash"]
    try:
        settings = await settings_row(platform, workspace_id)
        if not settings.get("auto_deploy"):
            return
        workspace = await workspaces.get_owned(platform, user_id, workspace_id)
        if workspace["main_workspace_id"] != workspace_id:
            return
        await deploy_project(platform, user_id, workspace["project_id"], workspace_id=workspace_id, trigger="auto",
                             snapshot_id=snapshot_id, source_manifest_hash=manifest_hash, spawn=_detached)
    except Exception:  # noqa: BLE001 - the push that triggered it has succeeded; say why here
        log.exception("auto-deploy of workspace %s failed to start", workspace_id)


# --- the callback, cancel, rollback ----------------------------------------------------------


async def _snapshot_of_project(platform: Platform, user_id: str, project_id: str, snapshot_id: str) -> dict[str, Any]:
    """The snapshot a deploy names, if it is one of this project's; else 422 (never stored unchecked)."""
    try:
        found = await snapshots.get_owned(platform, user_id, snapshot_id)
    except NotFound:
        found = None
    if found is None or found["project_id"] != project_id:
        raise ValidationFailed("snapshot_id is not a snapshot of this project.",
                               fields={"snapshot_id": "not a snapshot of this project"})
    return found


def _check_site_url(url: Any) -> None:
    """A deployment's URL is a web address people open: http(s) with a host, nothing else
    (`javascript:` or `data:` would run in whoever clicks it)."""
    if url is None:
        return
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValidationFailed("url must be an http(s) address.", fields={"url": "not an http(s) URL"})


async def fail_stalled(platform: Platform, *, stalled_after_seconds: int = STALLED_AFTER_SECONDS) -> int:
    """Fail deployments that made no progress for `stalled_after_seconds` (a client build whose
    client died leaves one `queued` or `building` for good), each with a log line saying why."""
    cutoff = iso(platform.clock.now() - timedelta(seconds=stalled_after_seconds))
    rows = (await platform.db.prepare(
        "SELECT id FROM deployments WHERE status IN ('queued', 'building', 'deploying') AND updated_at < ? "
        "ORDER BY updated_at LIMIT 500"
    ).bind(cutoff).all()).results
    minutes = stalled_after_seconds // 60
    failed = 0
    for row in rows:
        try:
            moved = await fail(platform, row["id"], "pipeline",
                               f"No progress for {minutes} minutes (the build stopped reporting): failed by the "
                               "fail-stalled-deployments job. Deploy again.")
        except Conflict:  # it moved meanwhile: not stalled after all
            continue
        failed += moved["status"] == "failed"
    return failed


async def callback(platform: Platform, deployment_id: str, token: str | None, body: Mapping[str, Any]) -> dict[str, Any]:
    """`POST …/deployments/:id/status` with the pipeline's token. A bad, spent or foreign token is
    401 and a backwards status 409; neither changes anything. Same status: log lines only."""
    parsed = deploy_pipeline.verify_callback(await _signing_key(platform), token or "")
    if parsed is None or parsed.deployment_id != deployment_id:
        raise Unauthenticated("A valid deployment callback token is required.", code="invalid_callback_token")
    row = await by_id(platform, deployment_id)
    if row is None or parsed.number != row["callback_seq"]:
        raise Unauthenticated("This callback token was already used.", code="invalid_callback_token")
    target = body["status"]
    lines = [str(line) for line in body.get("log") or []]
    if target == row["status"] and target not in deploy_pipeline.TERMINAL:
        statements = [platform.db.prepare(
            "UPDATE deployments SET callback_seq = callback_seq + 1, updated_at = ? WHERE id = ? AND callback_seq = ?"
        ).bind(now_iso(platform), deployment_id, row["callback_seq"]),
            platform.db.prepare("SELECT CASE WHEN changes() = 1 THEN 1 ELSE json('stale') END AS ok")]
        statements += [log_statement(platform, deployment_id, "build", line) for line in lines]
        try:
            await platform.db.batch(statements)
        except DatabaseError as exc:
            raise Unauthenticated("This callback token was already used.", code="invalid_callback_token") from exc
        return {"success": True, "status": target,
                "next_token": await callback_token(platform, deployment_id, row["callback_seq"] + 1)}
    output = body.get("output_manifest_hash")
    if target == "deploying" and output is None:
        raise ValidationFailed("Moving to deploying needs output_manifest_hash.", fields={"output_manifest_hash": "required"})
    if target == "ready" and output is None and not row["output_manifest_hash"]:
        raise ValidationFailed("A deployment is ready only with an output: report output_manifest_hash.",
                               fields={"output_manifest_hash": "required"})
    _check_site_url(body.get("url"))
    if output is not None:
        await _check_output(platform, row["user_id"], output)
    if lines:
        for line in lines[:-1]:
            await append_log(platform, deployment_id, "build", line)
    message = lines[-1] if lines else f"Status {target}"
    step = "build" if target in ("building", "deploying") or row["status"] == "building" else "deploy"
    error = body.get("error") if target == "failed" else None
    moved = await move(platform, row, target, step=step, message=message, url=body.get("url"),
                       error=(error or "failed") if target == "failed" else None, output=output, spend_callback=True)
    if target == "deploying":
        detection = (await deploy_detect.detect_tree(platform, moved["user_id"], moved["source_manifest_hash"])
                     if moved["source_manifest_hash"] else None)
        moved = await run_deploy_step(platform, deployment_id, detection)
    return {"success": True, "status": moved["status"],
            "next_token": None if moved["status"] in deploy_pipeline.TERMINAL
            else await callback_token(platform, deployment_id, row["callback_seq"] + 1)}


async def cancel(platform: Platform, user_id: str, deployment_id: str) -> dict[str, Any]:
    row = await get_owned(platform, user_id, deployment_id)
    return deployment_view(await move(platform, row, "canceled", step="queue", message="Canceled by the user"), platform)


async def rollback(platform: Platform, user_id: str, deployment_id: str) -> dict[str, Any]:
    """Make an earlier ready deployment's output live again, as a new deployment (trigger rollback):
    the provider's kept version when it has one (one call, nothing uploaded), else the same output."""
    old = await get_owned(platform, user_id, deployment_id)
    if not old["output_manifest_hash"] or old["status"] != "ready":
        raise Conflict("Only a deployment that went live can be rolled back to.", code="not_rollbackable")
    project = await projects.get_owned(platform, user_id, old["project_id"])
    row = await create(platform, user_id, project, workspace_id=old["workspace_id"], snapshot_id=old["snapshot_id"],
                       source_manifest_hash=old["source_manifest_hash"], provider=old["provider"], trigger="rollback",
                       rollback_of=old["id"])
    provider = await deploy_providers.provider_for(platform, user_id, old["provider"])
    if old["provider_version"] and old["provider"] != "local":
        row = await move(platform, row, "deploying", step="deploy", message=f"Rolling back to {old['id']}",
                         output=old["output_manifest_hash"])
        try:
            outcome = await provider.rollback(deploy_pipeline.project_slug(project["name"], project["id"]),
                                              old["provider_version"])
        except DeployError as exc:
            row = await fail(platform, row["id"], "deploy", f"Rollback failed: {exc}")
        else:
            row = await move(platform, row, "ready", step="deploy", message=f"Live at {outcome.url}", url=outcome.url,
                             version=old["provider_version"])
    else:
        await move(platform, row, "deploying", step="deploy", message=f"Rolling back to {old['id']}",
                   output=old["output_manifest_hash"])
        row = await run_deploy_step(platform, row["id"])
    return deployment_view(row, platform)


