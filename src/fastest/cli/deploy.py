"""`fastest deploy` and `fastest deployments`.

`fastest deploy` in a linked folder, one command from files to URL:
1. push the folder (a snapshot, as `fastest push`);
2. detect what it is (the same pure detection the server runs, over the folder's files) and read the
   workspace's deployment settings (build command and output directory overrides);
3. build here when needed (`--build` forces it, `--no-build` skips it): the deployment is opened with
   `build: client`, the build's output is streamed to the server's log through the deployment's
   signed status callback, and a failing build ends the deployment `failed` with its log;
4. push the output directory like a tree (content-addressed: a one-file change uploads one file;
   a plain static site's output is the pushed folder itself, so nothing more goes up);
5. deploy it, show the log as it grows, print the URL. Exit 1 with the failing step's log.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: `fastest --help` builds this parser
if TYPE_CHECKING:  # imported where used: building the parser must not load the HTTP client (nor pathlib)
    from pathlib import Path
    from typing import Any, Mapping

    from fastest.cli.client import ApiClient
    from fastest.cli.state import Folder, PushedTree, WorkspaceState
    from fastest.domain.detection import Detection

EXIT_OK, EXIT_FAILED = 0, 1
LOG_FLUSH_SECONDS = 0.5
LOG_FLUSH_LINES = 200
BUILD_TIMEOUT_SECONDS = 30 * 60
POLL_SECONDS = 0.25
DEPLOY_INDEX, DEPLOY_PUSHED, WORKER_BUNDLE = "deploy-index", "deploy-pushed", "worker-bundle"


class DeployFailed(Exception):
    def __init__(self, message: str, log: list[str] | None = None) -> None:
        super().__init__(message)
        self.log = log or []


def deploy_arguments(deploy: argparse.ArgumentParser) -> None:
    build = deploy.add_mutually_exclusive_group()
    build.add_argument("--build", dest="build", action="store_true", default=None, help="build here before deploying")
    build.add_argument("--no-build", dest="build", action="store_false", help="deploy the output directory as it is")
    deploy.add_argument("--provider", choices=("local", "cloudflare"), help="where to (default: the server's)")
    deploy.add_argument("--output-dir", metavar="DIR",
                        help="the directory to publish, relative to the folder; saved in the workspace's deployment "
                             "settings for the next deploys ('' forgets it)")
    deploy.add_argument("--build-command", metavar="COMMAND",
                        help="the build command; saved in the deployment settings likewise ('' forgets it)")
    deploy.add_argument("--dir", help="the folder (default: the one containing the current directory)")
    deploy.add_argument("--json", action="store_true", help="print the deployment as JSON")


def deployments_arguments(listing: argparse.ArgumentParser) -> None:
    listing.add_argument("-n", "--limit", type=int, default=20)
    listing.add_argument("--dir")
    listing.add_argument("--json", action="store_true")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------


def deploy(folder: Folder, state: WorkspaceState, api: ApiClient, *, build: bool | None, provider: str | None,
           settings_changes: dict[str, str | None] | None = None) -> dict[str, Any]:
    """`settings_changes`: `output_dir`/`build_command` to save in the deployment settings first (None forgets one)."""
    from fastest.cli.push import push
    from fastest.cli.state import PushedTree

    started = time.perf_counter()
    report = push(folder, state, api, message="deploy")
    _say(f"==> pushed: {report.blobs_uploaded} file(s) uploaded" + (" (nothing changed)" if report.nothing_to_push else ""))
    pushed = PushedTree.load(folder.pushed_file, state.manifest_hash)
    found = detect_folder(folder.root, list(pushed.records))
    settings_route = f"/v1/infrastructure/workspaces/{state.workspace_id}/deployment-settings"
    if settings_changes:
        settings = api.request("PUT", settings_route, json=settings_changes).json()["settings"]
        _say("==> saved in the deployment settings: " + ", ".join(
            f"{name} {settings_changes[name]}" if settings_changes[name] is not None else f"{name} forgotten"
            for name in sorted(settings_changes)))
    else:
        settings = api.get_json(settings_route)["settings"]
    build_command = settings.get("build_command") or found.build_command
    output_dir = settings.get("output_dir") or found.output_dir
    framework = found.framework or "unknown"
    _say(f"==> detected: {framework}" + (f" ({found.runtime})" if found.runtime and found.runtime != framework else "")
         + (f", build `{build_command}`" if build_command else ", no build")
         + (f", output {output_dir}" if output_dir else ""))
    for finding in found.resources:
        _say(f"==> needs {finding.details.get('type', finding.kind)} {finding.name} ({', '.join(finding.evidence)})")
    if found.env_vars:
        _say("==> env vars the code expects: " + ", ".join(f"{e.name} ({', '.join(e.evidence)})" for e in found.env_vars))
    # A note asking for an output directory is answered once the settings give one.
    notes = [note for note in found.notes if not (settings.get("output_dir") and "output directory" in note)]
    for note in notes:
        _say(f"==> note: {note}")
    do_build = build if build is not None else build_command is not None
    if do_build and not build_command:
        raise DeployFailed("no build command: detection found none; give one with fastest deploy --build-command "
                           "COMMAND (saved for the next deploys)")
    if not output_dir and not found.entry:
        raise DeployFailed("no output directory detected; give it with fastest deploy --output-dir DIR (saved for "
                           "the next deploys)" + (f" ({'; '.join(notes)})" if notes else ""))
    body: dict[str, Any] = {"workspace_id": state.workspace_id, "snapshot_id": state.head_snapshot_id, "source": "cli"}
    if provider:
        body["provider"] = provider
    uploaded = report.blobs_uploaded
    if do_build:
        opened = api.post_json(f"/v1/infrastructure/projects/{state.project_id}/deploy", {**body, "build": "client"},
                               idempotent_create=True).json()
        deployment_id, token = opened["deployment_id"], opened["callback_token"]
        if opened["status"] != "queued" or not token:
            return _finish(api, deployment_id, started, uploaded, known=opened.get("deployment"))
        _say(f"==> building {deployment_id}: {build_command}")
        callback = _Callback(api, deployment_id, token)
        callback.send("building", log=[f"$ {build_command}"])
        code, _ = run_build(build_command, folder.root, callback)
        if code != 0:
            error = f"build failed: `{build_command}` exited {code}"
            callback.send("failed", error=error)
            raise DeployFailed(f"{error} (deployment {deployment_id})")  # its output was shown as it ran
        try:
            bundle = bundle_worker(folder, found)
        except DeployFailed as exc:
            callback.send("failed", error=str(exc))
            raise
        output, sent = push_output(folder, api, output_dir, bundle)
        uploaded += sent
        _say(f"==> output: {sent} file(s) uploaded")
        callback.send("deploying", output_manifest_hash=output, log=[f"build done; output {output_dir}"])
        return _finish(api, deployment_id, started, uploaded, shown_steps={"build"})
    bundle = bundle_worker(folder, found)
    if output_dir in (".", "") and bundle is None:
        output = state.manifest_hash
    else:
        output, sent = push_output(folder, api, output_dir, bundle)
        uploaded += sent
    answer = api.post_json(f"/v1/infrastructure/projects/{state.project_id}/deploy",
                           {**body, "output_manifest_hash": output, "build": "none"}, idempotent_create=True).json()
    return _finish(api, answer["deployment_id"], started, uploaded, known=answer.get("deployment"))


def detect_folder(root: Path, paths: list[str]) -> Detection:
    from fastest.domain import detection as detecting

    contents: dict[str, str] = {}
    for path in detecting.files_to_read(paths):
        try:
            data = (root / path).read_bytes()[: detecting.MAX_READ_BYTES + 1]
        except OSError:
            continue
        if len(data) <= detecting.MAX_READ_BYTES:
            contents[path] = data.decode("utf-8", errors="replace")
    return detecting.detect(paths, contents)


class _Callback:
    """The deployment's status callback: each token works once; the answer carries the next."""

    def __init__(self, api: ApiClient, deployment_id: str, token: str) -> None:
        import threading

        self.api, self.deployment_id, self.token = api, deployment_id, token
        self.lock = threading.Lock()

    def send(self, status: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            response = self.api.request(
                "POST", f"/v1/infrastructure/deployments/{self.deployment_id}/status",
                json={"status": status, **{k: v for k, v in fields.items() if v is not None}},
                headers={"X-Deploy-Token": self.token})
            answer = response.json()
            self.token = answer.get("next_token") or self.token
            return answer


def run_build(command: str, cwd: Path, callback: _Callback) -> tuple[int, list[str]]:
    """Run the build in a shell, echo its output, and send it to the deployment's log in chunks."""
    import subprocess

    process = subprocess.Popen(command, shell=True, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", bufsize=1)
    lines: list[str] = []
    pending: list[str] = []
    last_flush = time.monotonic()
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    assert process.stdout is not None
    for line in process.stdout:
        line = line.rstrip("\n")
        _say(f"    {line}")
        lines.append(line)
        pending.append(line)
        if len(pending) >= LOG_FLUSH_LINES or time.monotonic() - last_flush > LOG_FLUSH_SECONDS:
            callback.send("building", log=pending)
            pending, last_flush = [], time.monotonic()
        if time.monotonic() > deadline:
            process.kill()
            lines.append(f"build timed out after {BUILD_TIMEOUT_SECONDS} s")
            break
    code = process.wait()
    if pending:
        callback.send("building", log=pending)
    return code, lines


def bundle_worker(folder: Folder, found: Detection) -> Path | None:
    """Bundle the Worker's JavaScript/TypeScript entry with esbuild, as wrangler does; the bundle's
    directory (under .fastest/), or None when the project has no such entry."""
    from fastest.domain import worker_modules

    if not found.entry or not worker_modules.is_bundled(found.entry):
        return None
    from fastest.platform.worker_bundler import BundleError, bundle

    out_dir = folder.state_dir / WORKER_BUNDLE
    try:
        names = bundle(folder.root, found.entry, out_dir, compatibility_flags=found.compatibility_flags,
                       minify=found.minify, keep_names=found.keep_names)
    except BundleError as exc:
        raise DeployFailed(f"bundling {found.entry} failed: {exc}") from exc
    size = sum((out_dir / name).stat().st_size for name in names)
    _say(f"==> bundled {found.entry} → {names[0]} ({size / 1024:.1f} KiB, esbuild)")
    return out_dir


def push_output(folder: Folder, api: ApiClient, output_dir: str | None, bundle: Path | None = None) -> tuple[str, int]:
    """Upload the output's tree (only what the server lacks): the output directory's files, and the
    Worker's bundle under `.worker/`; returns (root, blobs sent)."""
    import hashlib

    from fastest.cli.index import LocalIndex
    from fastest.cli.push import PushReport, changes_since, new_blobs, upload_missing
    from fastest.cli.ignore import IgnoreRules
    from fastest.cli.scan import scan
    from fastest.cli.state import PushedTree
    from fastest.domain.manifest import MODE_FILE
    from fastest.domain.tree import build_manifests
    from fastest.domain.worker_modules import BUNDLE_DIR

    records: dict[str, tuple[str, int, int]] = {}
    root = folder.root
    if output_dir is not None:
        root = (folder.root / output_dir).resolve()
        if not root.is_dir():
            raise DeployFailed(f"the output directory {output_dir} does not exist (did the build write it?)")
        index = LocalIndex.load(folder.state_dir / DEPLOY_INDEX)
        records.update(scan(root, index, rules=IgnoreRules.from_lines([]), progress=False).records)
        index.save()
        if not records and bundle is None:
            raise DeployFailed(f"the output directory {output_dir} is empty")
    prefix = BUNDLE_DIR + "/"
    for path in sorted(bundle.rglob("*")) if bundle is not None else ():
        if path.is_file():
            data = path.read_bytes()
            records[prefix + path.relative_to(bundle).as_posix()] = (hashlib.sha256(data).hexdigest(), len(data), MODE_FILE)
    records = dict(sorted(records.items()))
    tree = build_manifests([(path, *state) for path, state in records.items()])
    last = _load_last_output(folder)
    report = PushReport()
    blobs = new_blobs(changes_since(last.records, records), last)
    if bundle is not None:  # the bundle's files are read from its own directory (an absolute path)
        blobs = {digest: found._replace(path=str(bundle / found.path[len(prefix):])) if found.path.startswith(prefix)
                 else found for digest, found in blobs.items()}
    upload_missing(api, root, blobs, tree, last, report, progress=None)
    all_blobs = frozenset(s[0] for s in records.values())
    PushedTree(tree.root, records, all_blobs, tree.manifests).save(folder.state_dir / DEPLOY_PUSHED)
    return tree.root, report.blobs_uploaded


def _load_last_output(folder: Folder) -> PushedTree:
    from fastest.cli.state import PushedTree

    return PushedTree.load_saved(folder.state_dir / DEPLOY_PUSHED)


def _finish(api: ApiClient, deployment_id: str, started: float, uploaded: int,
            known: dict[str, Any] | None = None, shown_steps: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """Show the log as it grows until the deployment ends; the deployment, or DeployFailed.
    `known`: the deployment as an answer already gave it (when it has ended, nothing to wait for).
    `shown_steps`: steps whose lines were already shown as they happened (a build run here)."""
    terminal = ("ready", "failed", "canceled")
    if known is not None and known.get("status") in terminal:
        lines = api.get_json(f"/v1/infrastructure/deployments/{deployment_id}/logs")["logs"]
        for line in lines:
            _say(f"    [{line['step']}] {line['message']}")
        return _ended(dict(known), lines, started, uploaded)
    after = 0
    while True:
        page = api.get_json(f"/v1/infrastructure/deployments/{deployment_id}/logs", params={"after": after})
        for line in page["logs"]:
            if line["step"] not in shown_steps:
                _say(f"    [{line['step']}] {line['message']}")
        after = page["next_after"]
        if page["status"] in ("ready", "failed", "canceled") and not page["logs"]:
            break
        if page["status"] not in ("ready", "failed", "canceled"):
            time.sleep(POLL_SECONDS)
    deployment = api.get_json(f"/v1/infrastructure/deployments/{deployment_id}")["deployment"]
    lines = [] if deployment["status"] == "ready" else api.get_json(f"/v1/infrastructure/deployments/{deployment_id}/logs")["logs"]
    return _ended(deployment, lines, started, uploaded)


def _ended(deployment: dict[str, Any], lines: list[dict[str, Any]], started: float, uploaded: int) -> dict[str, Any]:
    deployment["files_uploaded"] = uploaded
    deployment["seconds"] = round(time.perf_counter() - started, 3)
    if deployment["status"] != "ready":
        raise DeployFailed(f"deployment {deployment['id']} {deployment['status']}: {deployment.get('error') or ''}".strip(),
                           [f"[{line['step']}] {line['message']}" for line in lines][-40:])
    return deployment


# --------------------------------------------------------------------------------------------------


def settings_changes(args: argparse.Namespace) -> dict[str, str | None]:
    """The deployment settings given on the command line; an empty value forgets the saved one."""
    given = {"output_dir": args.output_dir, "build_command": args.build_command}
    return {name: value.strip() or None for name, value in given.items() if value is not None}


def cmd_deploy(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from fastest.cli import config
    from fastest.cli.client import ApiClient
    from fastest.cli.state import find_folder

    from pathlib import Path

    folder = find_folder(Path(args.dir) if args.dir else Path.cwd())
    with folder.exclusive():
        state = folder.load()
        credentials = config.resolve(env, state.server)
        with ApiClient(credentials.server, credentials.token) as api:
            try:
                deployment = deploy(folder, state, api, build=args.build, provider=args.provider,
                                    settings_changes=settings_changes(args))
            except DeployFailed as exc:
                for line in exc.log:
                    print(f"    {line}", file=sys.stderr)
                print(f"fastest: {exc}", file=sys.stderr)
                return EXIT_FAILED
    if args.json:
        print(json.dumps(deployment, indent=2))
    else:
        print(f"deployed {deployment['id']} in {deployment['seconds']:.1f} s ({deployment['files_uploaded']} file(s) uploaded)")
        if deployment.get("fallback_url"):
            print(f"also at {deployment['fallback_url']}")
        if deployment.get("project_url"):
            print(f"the project's address (its latest deployment): {deployment['project_url']}")
        print(deployment["url"])
    return EXIT_OK


def cmd_deployments(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from fastest.cli import config
    from fastest.cli.client import ApiClient
    from fastest.cli.state import find_folder

    from pathlib import Path

    folder = find_folder(Path(args.dir) if args.dir else Path.cwd())
    state = folder.load()
    credentials = config.resolve(env, state.server)
    with ApiClient(credentials.server, credentials.token) as api:
        listing = api.get_json(f"/v1/infrastructure/workspaces/{state.workspace_id}/deployments",
                               params={"limit": max(1, min(args.limit, 100))})
    if args.json:
        print(json.dumps(listing, indent=2))
        return EXIT_OK
    if not listing["deployments"]:
        print("no deployments yet; run fastest deploy")
    for d in listing["deployments"]:
        print(f"{d['id']}  {d['status']:<9} {d['trigger']:<8} {d['started_at']}  {d['url'] or d['error'] or ''}")
    return EXIT_OK
