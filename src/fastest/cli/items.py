"""`fastest items`: what needs attention across your workspaces, and fixing it with an agent.

    fastest items                 list the action items, critical first
    fastest items fix ITEM        start a run on the item, follow it, show its diff
    fastest items apply RUN       apply a ready run; in the run's workspace folder, update the folder
                                  as `fastest sync` does (local changes are pushed first, so the
                                  server merges them with the run's change)

Only `argparse` is imported at module level: `fastest items` builds this parser, and must start fast.
"""

from __future__ import annotations

import argparse
import time
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: `fastest --help` builds this parser
if TYPE_CHECKING:
    from typing import Any

COMMAND = "items"
FOLLOW_SECONDS = 15 * 60
POLL_SECONDS = 1.0


def items_arguments(items: argparse.ArgumentParser) -> None:
    items.add_argument("--all", action="store_true", help="also list dismissed items")
    items.add_argument("--json", action="store_true")
    items.add_argument("--dir")
    sub = items.add_subparsers(dest="items_command")
    fix = sub.add_parser("fix", help="start a run that fixes ITEM, follow it, and show the diff")
    fix.add_argument("item_id", metavar="ITEM")
    fix.add_argument("--instructions", help="extra guidance for the agent")
    fix.add_argument("--no-follow", action="store_true", help="start the run and return")
    fix.add_argument("--json", action="store_true")
    fix.add_argument("--dir")
    apply = sub.add_parser("apply", help="apply a ready run and update this folder")
    apply.add_argument("run_id", metavar="RUN")
    apply.add_argument("--json", action="store_true")
    apply.add_argument("--dir")
    dismiss = sub.add_parser("dismiss", help="hide ITEM until it gets worse")
    dismiss.add_argument("item_id", metavar="ITEM")
    dismiss.add_argument("--dir")


def run(args: argparse.Namespace, env: Any) -> int:
    """Dispatch `fastest items …` (called by `fastest.cli.commands.run`, which turns errors into
    one stderr line)."""
    from fastest.cli.context import EXIT_OK

    command = getattr(args, "items_command", None)
    if command == "fix":
        return _fix(args, env)
    if command == "apply":
        return _apply(args, env)
    if command == "dismiss":
        with _api(args, env) as api:
            api.post_json(f"/v1/action-items/{args.item_id}/dismiss", {})
        print(f"dismissed {args.item_id} (it comes back if it gets worse)")
        return EXIT_OK
    return _list(args, env)


def _api(args: argparse.Namespace, env: Any):
    """A client for the folder's server when run in a linked folder, else the default server."""
    from fastest.cli import config
    from fastest.cli.context import client, server_of_folder

    return client(config.resolve(env, server_of_folder(args)))


def item_lines(items: list[dict[str, Any]], workspaces: dict[str, str], *, agent_available: bool = True) -> list[str]:
    """The items under a heading per workspace (`workspaces`: id → "project / workspace"), in the
    server's order (critical first); each with what to do about it."""
    if not items:
        return ["nothing needs attention"]
    by_workspace: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_workspace.setdefault(item["workspace_id"], []).append(item)
    lines = []
    for workspace_id, group in by_workspace.items():
        lines.append(f"{workspaces.get(workspace_id, workspace_id)} ({workspace_id})")
        for item in group:
            dismissed = " (dismissed)" if item.get("dismissed") else ""
            lines.append(f"  {item['severity']:<8} {item['id']}  {item['title']}{dismissed}")
            lines.append(f"           {_action(item, agent_available)}")
    return lines


def _action(item: dict[str, Any], agent_available: bool) -> str:
    if item["action_type"] == "run":
        if agent_available:
            return f"{item['action_label']}: fastest items fix {item['id']}"
        return f"{item['description']} (an agent could fix it once the server has an AI model)"
    if item["action_type"] == "sync":
        return f"{item['action_label']}: fastest sync, in that workspace's folder"
    return item["description"]


def workspace_names(api: Any, workspace_ids: list[str]) -> dict[str, str]:
    """`project / workspace` for each workspace id (one request per workspace and per project)."""
    names: dict[str, str] = {}
    projects: dict[str, str] = {}
    for workspace_id in dict.fromkeys(workspace_ids):
        workspace = api.get_json(f"/v1/workspaces/{workspace_id}")["workspace"]
        project_id = workspace["project_id"]
        if project_id not in projects:
            projects[project_id] = api.get_json(f"/v1/projects/{project_id}")["project"]["name"]
        names[workspace_id] = f"{projects[project_id]} / {workspace['name']}"
    return names


def _list(args: argparse.Namespace, env: Any) -> int:
    from fastest.cli.context import EXIT_OK, emit

    with _api(args, env) as api:
        listing = api.get_json("/v1/action-items", params={"include_dismissed": "true"} if args.all else None)
        items = listing["items"]
        names = {} if args.json else workspace_names(api, [item["workspace_id"] for item in items])
    emit(args.json, listing, item_lines(items, names, agent_available=listing.get("agent_available", True)))
    return EXIT_OK


def _fix(args: argparse.Namespace, env: Any) -> int:
    from fastest.cli.context import EXIT_FAILED, EXIT_OK, emit

    body = {"instructions": args.instructions} if args.instructions else {}
    with _api(args, env) as api:
        run_ = api.post_json(f"/v1/action-items/{args.item_id}/runs", body, idempotent_create=True, ok=(202,)).json()["run"]
        say = print if not args.json else (lambda line: None)
        say(f"run {run_['id']} started")
        if not args.no_follow:
            run_ = follow(api, run_, say)
    if args.json:
        emit(True, {"run": run_}, [])
        return EXIT_OK
    for line in run_lines(run_):
        print(line)
    return EXIT_OK if run_["status"] in ("ready", "queued", "running") else EXIT_FAILED


def follow(api: Any, run_: dict[str, Any], say: Any, *, timeout: float = FOLLOW_SECONDS, poll: float = POLL_SECONDS) -> dict[str, Any]:
    """Poll the run until it is ready or failed, saying when an attempt starts and why one is retried
    (a run that fails for good, e.g. without a model, says so once, in `run_lines`)."""
    seen = run_["attempt_count"]
    deadline = time.monotonic() + timeout
    while run_["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(poll)
        run_ = api.get_json(f"/v1/action-items/runs/{run_['id']}")["run"]
        if run_["status"] == "running" and run_["attempt_count"] != seen:
            seen = run_["attempt_count"]
            if seen > 1 and run_.get("error"):
                say(f"attempt {seen - 1} did not work ({run_['error']['message']}); "
                    f"trying again ({seen} of at most {run_['max_attempts']})")
            else:
                say(f"attempt {seen} of at most {run_['max_attempts']}")
    return run_


def run_lines(run_: dict[str, Any]) -> list[str]:
    lines = [f"run {run_['id']}: {run_['status']}"]
    if run_["status"] == "ready":
        lines.append(run_["summary"] or "")
        lines += [f"  check {'ok  ' if c['ok'] else 'FAIL'} {c['name']} {c.get('path') or ''}".rstrip() for c in run_["checks"]]
        lines += ["", run_["patch"] or "", f"apply it with: fastest items apply {run_['id']}"]
    elif run_["status"] == "failed" and run_.get("error"):
        lines.append(f"{run_['error']['code']}: {run_['error']['message']}")
    elif run_["status"] in ("queued", "running"):
        lines.append(f"still {run_['status']}; see it with: fastest items fix … or GET /v1/action-items/runs/{run_['id']}")
    return lines


def _apply(args: argparse.Namespace, env: Any) -> int:
    from fastest.cli.context import EXIT_OK, emit, folder_of, held_workspace
    from fastest.cli.push import push
    from fastest.cli.state import NotAWorkspace
    from fastest.cli.sync import update_folder

    try:
        folder = folder_of(args)
        folder.load()
    except NotAWorkspace:
        folder = None
    if folder is not None:
        with held_workspace(args, env) as (folder, state, api):
            run_ = api.get_json(f"/v1/action-items/runs/{args.run_id}")["run"]
            mine = run_["workspace_id"] == state.workspace_id
            if mine:  # the server merges what the folder holds now with the run's change
                pushed = push(folder, state, api, message="Before applying an action-item run")
                if not pushed.nothing_to_push:
                    print(f"pushed local changes as {pushed.snapshot_id}")
            result = api.post_json(f"/v1/action-items/runs/{args.run_id}/apply", {}).json()
            written = deleted = 0
            if mine:
                written, deleted = update_folder(folder, state, api, result["manifest_hash"], result["snapshot_id"])
    else:
        with _api(args, env) as api:
            result = api.post_json(f"/v1/action-items/runs/{args.run_id}/apply", {}).json()
        mine, written, deleted = False, 0, 0
    lines = [f"applied as snapshot {result['snapshot_id']}" + (" (merged with the workspace's changes)" if result["merged"] else "")]
    if mine:
        lines.append(f"folder updated: {written} file(s) written, {deleted} deleted")
    else:
        lines.append("this folder is not the run's workspace: check it out or sync there to get the change")
    emit(args.json, {**result, "files_written": written, "files_deleted": deleted}, lines)
    return EXIT_OK
