"""The client commands: login, logout, whoami, token, init, push, status, log, checkout, sync, watch.

Each handler takes the parsed arguments and the environment, prints its result on stdout (human
text, or one JSON document with `--json`) and returns an exit code. Failures are raised as
exceptions and turned into one `fastest: …` line on stderr and an exit code by `run`
(`fastest.cli.context.run_reporting`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from fastest.cli import config
from fastest.cli.config import Credentials
from fastest.cli.context import (
    EXIT_FAILED, EXIT_OK, UsageError, client, emit, fail, held_workspace, linked_workspace, run_reporting,
)
from fastest.domain.manifest import ManifestError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping

    from fastest.cli.client import ApiClient
    from fastest.cli.push import PushReport
    from fastest.cli.state import Folder, WorkspaceState

    Env = Mapping[str, str]

# Each command imports what it needs when it runs (`fastest status` must not pay for checkout, sync,
# the device login or the server); tests/unit/test_cli_startup.py keeps it so.

NAME_MAX = 100  # project and workspace names (API schema)


def run(args: argparse.Namespace, env: Env | None = None) -> int:
    """Dispatch one client command; every expected failure ends as one stderr line and an exit code."""
    env = os.environ if env is None else env
    handlers: dict[str, Callable[[argparse.Namespace, Env], int]] = {
        "login": cmd_login, "logout": cmd_logout, "whoami": cmd_whoami, "token": cmd_token, "init": cmd_init, "push": cmd_push,
        "status": cmd_status, "log": cmd_log, "checkout": cmd_checkout, "sync": cmd_sync, "watch": cmd_watch,
        "deploy": _deploy_command("cmd_deploy"), "deployments": _deploy_command("cmd_deployments"),
    }
    handlers["items"] = cmd_items
    return run_reporting(handlers[args.command], args, env)


def _deploy_command(name: str) -> Callable[[argparse.Namespace, Env], int]:
    def handler(args: argparse.Namespace, env: Env) -> int:
        from fastest.cli import deploy

        return getattr(deploy, name)(args, env)

    return handler
def cmd_items(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli import items

    return items.run(args, env)


# --------------------------------------------------------------------------------------------------
# login


def cmd_login(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli.client import ApiClient, ApiError

    chosen = args.server or config.default_server(env)
    if not chosen:
        raise UsageError("which server? run fastest login --server URL")
    server = config.normalise_server(chosen)
    if args.token is None:
        return _device_login(server, args.scope, env)
    if args.scope:
        raise UsageError("--scope is for the browser sign-in; a given --token keeps its own abilities")
    token = sys.stdin.readline().strip() if args.token == "-" else args.token.strip()
    if not token:
        raise UsageError("empty token")
    with ApiClient(server, token) as api:
        try:
            user = api.get_json("/v1/auth/me")["user"]
        except ApiError as exc:
            if exc.status == 401:
                return fail(f"token rejected by {server}", EXIT_FAILED)
            raise
    replaced = config.replaced_device_token(env, server, token)
    path = config.save(env, Credentials(server, token))
    print(f"logged in to {server} as {user['email']} (saved in {path})")
    _revoke_replaced(server, replaced)
    return EXIT_OK


def _device_login(server: str, scope: str | None, env: Env) -> int:
    import socket

    from fastest.cli.client import ApiClient
    from fastest.cli.device_login import device_login

    def show(started: dict[str, Any]) -> None:
        print(f"To sign in, open {started['verification_uri']} and enter the code {started['user_code']}", flush=True)
        print(f"(or open {started['verification_uri_complete']})", flush=True)
        print("Waiting for approval… (Ctrl-C to give up)", flush=True)

    with ApiClient(server, None) as api:
        granted = device_login(api, client_name=f"fastest CLI on {socket.gethostname()}"[:100], scope=scope, on_code=show)
    replaced = config.replaced_device_token(env, server, granted["access_token"])
    path = config.save(env, Credentials(server, granted["access_token"], source="device"))
    user = granted.get("user") or {}
    print(f"logged in to {server} as {user.get('email', '?')} (saved in {path})")
    _revoke_replaced(server, replaced)
    return EXIT_OK


def _revoke_replaced(server: str, token: str | None) -> None:
    """Revoke the device-login token a new login replaced (it is forgotten, so nobody could use or
    revoke it later). Best effort: a failure is a warning, the new login stands."""
    if token is None:
        return
    from fastest.cli.client import ApiClient, ApiError

    with ApiClient(server, token) as api:
        try:
            api.request("POST", "/v1/auth/logout", ok=(204,), allow=(401,))
        except ApiError as exc:
            print(f"fastest: warning: could not revoke the previous token: {exc.message}", file=sys.stderr)


def cmd_logout(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli.client import ApiClient, ApiError

    saved = config.load_saved(env)
    if saved is None:
        emit(args.json, {"logged_out": False}, ["not logged in; nothing to do"])
        return EXIT_OK
    revoked = True
    with ApiClient(config.normalise_server(saved.server), saved.token) as api:
        try:
            api.request("POST", "/v1/auth/logout", ok=(204,))
        except ApiError as exc:
            if exc.status != 401:  # 401: already revoked or expired; forgetting it is all that is left
                raise
            revoked = False
    config.forget(env)
    emit(args.json, {"logged_out": True, "server": saved.server, "revoked": revoked},
          [f"logged out of {saved.server}" + ("" if revoked else " (the token was already invalid)")])
    return EXIT_OK


def cmd_whoami(args: argparse.Namespace, env: Env) -> int:
    credentials = config.resolve(env)
    with client(credentials) as api:
        user = api.get_json("/v1/auth/me")["user"]
    emit(args.json, {"server": credentials.server, "user": user},
          [f"{user['email']} ({user['id']}) on {credentials.server}"])
    return EXIT_OK


def cmd_token(args: argparse.Namespace, env: Env) -> int:
    """The token the other commands send (`$FASTEST_TOKEN`, else the saved one), for curl and scripts:
    `TOKEN=$(fastest token)`. On a terminal, a reminder that it is a credential goes to stderr."""
    credentials = config.resolve(env)
    if sys.stdout.isatty():
        print(f"fastest: this token signs in to {credentials.server} as you: keep it out of shared shells, "
              "logs and repositories", file=sys.stderr)
    print(credentials.token)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# init


def machine_id() -> str:
    """A stable, non-identifying id for this machine: a hash of the OS machine id (or MAC address)."""
    import hashlib
    import uuid

    for candidate in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            raw = Path(candidate).read_text().strip()
        except OSError:
            continue
        if raw:
            break
    else:
        raw = str(uuid.getnode())
    return hashlib.sha256(f"fastest:{raw}".encode()).hexdigest()[:32]


def clean_name(text: str, fallback: str) -> str:
    """A name the API accepts: no control characters, 1-100 characters."""
    cleaned = "".join(c for c in text if c.isprintable()).strip()[:NAME_MAX].strip()
    return cleaned or fallback


def find_project(api: ApiClient, name: str) -> dict[str, Any] | None:
    cursor: str | None = None
    while True:
        page = api.list_projects(limit=100, cursor=cursor)
        for project in page.get("projects", []):
            if project.get("name") == name:
                return project
        cursor = page.get("next_cursor")
        if not cursor:
            return None


def find_or_create_project(api: ApiClient, name: str) -> tuple[dict[str, Any], bool]:
    from fastest.cli.client import ApiError

    found = find_project(api, name)
    if found is not None:
        return found, False
    try:
        return api.create_project(name), True
    except ApiError as exc:
        if exc.status == 409:  # created meanwhile by someone else: use it
            found = find_project(api, name)
            if found is not None:
                return found, False
        raise


def cmd_init(args: argparse.Namespace, env: Env) -> int:
    import socket

    from fastest.cli.state import Folder, WorkspaceState

    root = Path(args.dir or ".").resolve()
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    folder = Folder(root)
    if folder.is_initialised():
        state = folder.load()
        emit(args.json, {"already_initialised": True, **state.to_json()},
              [f"{root} is already initialised (project {state.project_id}, workspace {state.workspace_id}); nothing changed"])
        return EXIT_OK
    credentials = config.resolve(env)
    with client(credentials) as api:
        if args.project_id:
            project, created = api.get_project(args.project_id)["project"], False
        else:
            project, created = find_or_create_project(api, clean_name(args.project or root.name, "project"))
        workspace_name = clean_name(args.workspace or f"{socket.gethostname()}:{root.name}", "workspace")
        workspace = api.create_workspace(project["id"], workspace_name, machine_id=machine_id(), local_path=str(root))
    state = WorkspaceState(server=credentials.server, project_id=project["id"], workspace_id=workspace["id"])
    folder.save(state)
    verb = "created" if created else "using"
    emit(args.json, {"already_initialised": False, "project_created": created, "project_name": project["name"],
                      "workspace_name": workspace["name"], **state.to_json()},
          [f"{verb} project {project['name']} ({project['id']})",
           f"created workspace {workspace['name']} ({workspace['id']})",
           f"initialised {root}; run fastest push"])
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# push, status, log


def cmd_push(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli import watch
    from fastest.cli.push import push

    with held_workspace(args, env) as (folder, state, api):
        only = _folder_paths(folder, args.paths) if args.paths else None
        # Named paths are the caller's business; otherwise a running watcher may know what changed.
        watched = watch.ask(folder) if only is None else None
        if watched is not None and not args.rescan:
            only = watched.paths
        report = push(folder, state, api, message=args.message, only=only)
        if watched is not None:
            watch.remember(folder, watched.token)
    emit(args.json, report.to_json(), push_lines(report))
    return EXIT_OK


def push_lines(report: PushReport) -> list[str]:
    from fastest.cli.progress import human_bytes

    lines = [
        f"scanned {report.files_scanned} files: {report.files_changed} changed since the last push"
        + f" ({report.files_hashed} hashed now)"
        + (f"; skipped {report.symlinks_skipped} symlink(s)" if report.symlinks_skipped else "")
        + (f", {report.special_skipped} special file(s)" if report.special_skipped else "")
    ]
    lines += [f"skipped {path!r}: not a UTF-8 name" for path in report.unencodable_skipped]
    if report.nothing_to_push:
        lines.append(f"nothing to push (at {report.snapshot_id})" if report.snapshot_id
                     else "nothing to push: the folder is empty")
    else:
        lines.append(
            f"uploaded {report.blobs_uploaded} blob(s) ({human_bytes(report.blob_bytes_uploaded)}), "
            f"{report.manifests_uploaded} of {report.manifests_total} manifest(s)"
        )
        lines.append(f"snapshot {report.snapshot_id} (tree {report.manifest_hash[:12]})")
    return lines


def _folder_paths(folder: Folder, paths: list[str]) -> list[str] | None:
    """PATH arguments as `/`-joined paths relative to the folder root; None when one is the root."""
    root = os.path.abspath(folder.root)
    relative = []
    for path in paths:
        absolute = os.path.abspath(path)
        inside = os.path.relpath(absolute, root)
        if inside == ".":
            return None  # the whole folder: a normal push
        if inside == ".." or inside.startswith(".." + os.sep) or os.path.isabs(inside):
            raise UsageError(f"{path} is outside the folder {root}")
        relative.append(inside.replace(os.sep, "/"))
    return relative


def cmd_status(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli import watch
    from fastest.cli.status import drift_line, short_lines, status

    folder, state, credentials = linked_workspace(args, env)
    watched = None if args.rescan else watch.ask(folder)
    with client(credentials) as api:
        report = status(folder, state, api, with_drift=not args.no_drift,
                        only=watched.paths if watched is not None else None)
    if state.head_snapshot_id:
        head = f"at {state.head_snapshot_id}; " + ("nothing changed since the last push" if report.clean
                                                   else f"{len(report.changes)} change(s):")
    else:
        head = "never pushed; " + ("the folder is empty" if report.clean else f"{len(report.changes)} file(s) to push:")
    lines = [head]
    lines += short_lines(report.changes)
    if not args.no_drift:
        lines.append(drift_line(report.drift) if report.drift is not None else f"drift unavailable ({report.drift_error})")
    emit(args.json, report.to_json(), lines)
    return EXIT_OK


def cmd_watch(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli import watch
    from fastest.cli.client import ApiError
    from fastest.cli.push import PushError, push
    from fastest.cli.state import FolderBusy, NotAWorkspace

    if not watch.supported():
        raise UsageError("fastest watch needs Linux (inotify); use fastest push")
    if args.delay < 0:
        raise UsageError("--delay must not be negative")
    folder, _, credentials = linked_workspace(args, env)
    with client(credentials) as api:

        def push_changes(watcher: watch.Watcher) -> bool:
            """Push what changed since the last push; a failure is reported and watching goes on.
            False when another push or sync holds the folder: try again later."""
            try:
                with folder.exclusive(wait=False):
                    answer = watcher.answer(watch.saved_token(folder))
                    report = push(folder, folder.load(), api, only=answer.paths, progress=False)
                    watch.remember(folder, answer.token)
            except FolderBusy:
                return False
            except (PushError, ApiError, ManifestError, OSError, NotAWorkspace) as exc:
                print(f"{_clock()} push failed: {exc}", flush=True)
                return True
            if not report.nothing_to_push:
                print(f"{_clock()} " + "; ".join(push_lines(report)[1:]), flush=True)
            return True

        def ready(watcher: watch.Watcher) -> None:
            what = "keeping track of changes" if args.no_push else f"pushing after {args.delay:g} s of quiet"
            print(f"watching {folder.root} ({len(watcher.directories)} directories), {what}; Ctrl-C stops",
                  flush=True)

        try:
            watch.run(folder, on_quiet=None if args.no_push else push_changes, quiet_seconds=args.delay,
                      on_ready=ready)
        except KeyboardInterrupt:
            print("stopped watching", flush=True)
    return EXIT_OK


def _clock() -> str:
    import time

    return time.strftime("%H:%M:%S")


def cmd_log(args: argparse.Namespace, env: Env) -> int:
    if not 1 <= args.limit <= 100:
        raise UsageError("-n must be between 1 and 100")
    folder, state, credentials = linked_workspace(args, env)
    with client(credentials) as api:
        snapshots = api.workspace_snapshots(state.workspace_id, limit=args.limit).get("snapshots", [])
    lines = []
    for snapshot in snapshots:
        mark = "*" if snapshot["id"] == state.head_snapshot_id else " "
        summary = snapshot.get("summary") or ""
        parents = ",".join(snapshot.get("parent_snapshot_ids") or []) or "-"
        lines.append(f"{mark} {snapshot['id']}  {snapshot.get('created_at', '')}  {snapshot.get('source', '')}"
                     f"  parent {parents}  {summary}".rstrip())
    if not snapshots:
        lines.append("no snapshots yet; run fastest push")
    emit(args.json, {"head_snapshot_id": state.head_snapshot_id, "snapshots": snapshots}, lines)
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# checkout


def cmd_checkout(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli.checkout import checkout
    from fastest.cli.progress import human_bytes
    from fastest.cli.state import ManifestCache, NotAWorkspace, PushedTree, find_folder

    folder: Folder | None
    try:
        folder = find_folder(Path.cwd())
        state: WorkspaceState | None = folder.load()
    except NotAWorkspace:
        folder, state = None, None
    credentials = config.resolve(env, state.server if state else None)
    target = Path(args.dir) if args.dir else Path.cwd() / args.snapshot
    cache = ManifestCache(folder.manifest_dir) if folder else None
    known = PushedTree.load(folder.pushed_file, state.manifest_hash).manifests if folder and state else {}
    with client(credentials) as api:
        report = checkout(api, args.snapshot, target, force=args.force, cache=cache, known=known)
    emit(args.json, report.to_json(),
          [f"checked out {report.snapshot_id} into {report.directory}: {report.files} files, {human_bytes(report.bytes)}"])
    return EXIT_OK


# --------------------------------------------------------------------------------------------------
# sync


def cmd_sync(args: argparse.Namespace, env: Env) -> int:
    from fastest.cli.sync import ask_on, report_lines, sync, undo

    decide: dict[str, str] = {}
    for item in args.decide:
        path, sep, option = item.partition("=")
        if not sep or not path or not option:
            raise UsageError(f"--decide takes PATH=OPTION, not {item!r}")
        decide[path] = option
    if args.force and not args.undo:
        raise UsageError("--force goes with --undo")
    # With --json, stdout carries only the document: progress and questions go to stderr.
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    with held_workspace(args, env) as (folder, state, api):
        if args.undo:
            report = undo(folder, state, api, force=args.force)
        else:
            report = sync(folder, state, api, prefer=args.prefer, decide=decide, confirm_mass_change=args.yes,
                          ask=ask_on(sys.stdin, sys.stderr if args.json else sys.stdout), say=say)
    emit(args.json, report.to_json(), report_lines(report))
    return EXIT_OK
