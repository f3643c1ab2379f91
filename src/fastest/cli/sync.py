"""`fastest sync`: merge main into this workspace, and bring the folder along; `fastest sync --undo`.

    1. push what changed locally, so the server merges exactly what is in the folder;
    2. prepare: the server merges and answers with a preview (automatic actions, decisions);
    3. answer each decision: `--prefer workspace|main`, `--decide PATH=OPTION`, or asked on stdin;
    4. execute, then update the folder from the old tree to the merged one: every new or changed
       file is downloaded (hash-verified) into `.fastest/staging/` first, and only when all arrived
       are they moved into place and the deleted files removed — a failed download changes nothing.

`--undo` asks the server to put the workspace back at its pre-sync snapshot and updates the folder
the same way; it refuses when the folder has changes that were not pushed (they would be lost).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from fastest.cli.checkout import materialise
from fastest.cli.client import ApiClient, ApiError
from fastest.cli.failures import CommandFailure
from fastest.cli.loader import manifest_loader
from fastest.cli.push import push, scan_folder
from fastest.cli.state import Folder, ManifestCache, PushedTree, WorkspaceState
from fastest.cli.writable import writable
from fastest.domain.manifest import Entry, ManifestError
from fastest.domain.tree import Change, build_manifests, diff, update_manifests

OPTIONS_BY_SIDE = {"workspace": "keep_workspace", "main": "take_main"}


class SyncError(CommandFailure):
    """A sync that cannot go on; one line for the user (exit code 1)."""


@dataclass(slots=True)
class SyncReport:
    preview_id: str | None = None
    is_main: bool = False  # the folder is the main workspace: there is nothing to merge into it
    up_to_date: bool = False
    pushed_snapshot_id: str | None = None
    auto_actions: int = 0
    decisions: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    manifest_hash: str | None = None
    files_written: int = 0
    files_deleted: int = 0
    undone_sync_id: str | None = None
    ai: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


Ask = Callable[[str], str | None]
"""Ask the user one question; None when there is no one to ask (stdin closed)."""


def ask_on(stream: TextIO, out: TextIO) -> Ask:
    def ask(question: str) -> str | None:
        out.write(question)
        out.flush()
        line = stream.readline()
        return line.strip() if line else None

    return ask


def sync(folder: Folder, state: WorkspaceState, api: ApiClient, *, prefer: str | None = None,
         decide: dict[str, str] | None = None, confirm_mass_change: bool = False, ask: Ask | None = None,
         say: Callable[[str], None] = print, progress: bool | None = None) -> SyncReport:
    report = SyncReport()
    if api.get_json(f"/v1/workspaces/{state.workspace_id}")["workspace"]["is_main"]:
        report.is_main = True
        return report
    pushed = push(folder, state, api, message="Before sync with main", progress=progress)
    if not pushed.nothing_to_push:
        report.pushed_snapshot_id = pushed.snapshot_id
        say(f"pushed local changes as {pushed.snapshot_id}")
    preview = api.post_json(f"/v1/workspaces/{state.workspace_id}/sync/prepare", {}).json()["preview"]
    report.preview_id = preview["id"]
    report.ai = preview["ai"]
    report.auto_actions = len(preview["auto_actions"])
    if preview["summary"]["up_to_date"]:
        report.up_to_date = True
        say("already up to date with main")
        return report
    for line in describe(preview):
        say(line)
    answers = choose(preview["decisions_needed"], prefer=prefer, decide=decide or {}, ask=ask, say=say)
    report.decisions = answers
    confirm = confirm_mass_change
    if preview["summary"]["requires_mass_change_confirmation"] and not confirm:
        confirm = _confirm_mass_change(ask)
    body = {"preview_id": preview["id"], "decisions": answers, "confirm_mass_change": confirm}
    try:
        result = api.post_json(f"/v1/workspaces/{state.workspace_id}/sync/execute", body).json()
    except ApiError as exc:
        if exc.code != "mass_change_unconfirmed" or confirm or not _confirm_mass_change(ask):
            raise
        body["confirm_mass_change"] = True
        result = api.post_json(f"/v1/workspaces/{state.workspace_id}/sync/execute", body).json()
    report.snapshot_id, report.manifest_hash = result["snapshot_id"], result["manifest_hash"]
    report.files_written, report.files_deleted = update_folder(folder, state, api, result["manifest_hash"],
                                                               result["snapshot_id"], progress=progress)
    return report


def undo(folder: Folder, state: WorkspaceState, api: ApiClient, *, force: bool = False,
         progress: bool | None = None) -> SyncReport:
    pushed = PushedTree.load(folder.pushed_file, state.manifest_hash)
    _, tree, changes, _ = scan_folder(folder, pushed, progress=progress)
    if tree.root != state.manifest_hash:
        raise SyncError(f"{len(changes)} local change(s) not pushed; push them (or discard them) before undoing a sync")
    result = api.post_json(f"/v1/workspaces/{state.workspace_id}/sync/undo", {"force": force}).json()
    report = SyncReport(undone_sync_id=result["undone_sync_id"], snapshot_id=result["reverted_to_snapshot_id"],
                        manifest_hash=result["manifest_hash"])
    report.files_written, report.files_deleted = update_folder(
        folder, state, api, result["manifest_hash"], result["reverted_to_snapshot_id"], progress=progress)
    return report


def describe(preview: dict[str, Any]) -> list[str]:
    summary = preview["summary"]
    lines = [
        f"from main: {summary['files_to_add']} to add, {summary['files_to_update']} to update "
        f"({summary['line_merged']} merged line by line), {summary['files_to_delete']} to delete; "
        f"{summary['decisions']} decision(s) needed"
    ]
    if preview["decisions_needed"] and not preview["ai"]["available"]:
        lines.append(preview["ai"]["message"])
    return lines


def choose(decisions: list[dict[str, Any]], *, prefer: str | None, decide: dict[str, str], ask: Ask | None,
           say: Callable[[str], None]) -> dict[str, str]:
    """An answer for every decision: `decide` first, then `prefer`, then the user."""
    answers: dict[str, str] = {}
    unknown = set(decide) - {d["path"] for d in decisions}
    if unknown:
        raise SyncError(f"--decide names path(s) with no decision: {', '.join(sorted(unknown))}")
    for number, decision in enumerate(decisions, 1):
        path, offered = decision["path"], [o["id"] for o in decision["options"]]
        if path in decide:
            if decide[path] not in offered:
                raise SyncError(f"{path}: {decide[path]!r} is not offered; choose one of {', '.join(offered)}")
            answers[path] = decide[path]
        elif prefer is not None:
            answers[path] = OPTIONS_BY_SIDE[prefer]
        else:
            answers[path] = _ask_decision(number, len(decisions), decision, ask, say)
    return answers


def _ask_decision(number: int, total: int, decision: dict[str, Any], ask: Ask | None, say: Callable[[str], None]) -> str:
    offered = [o["id"] for o in decision["options"]]
    say(f"decision {number}/{total}: {decision['path']} ({decision['kind']})")
    say(f"  {decision['reason']}")
    for index, option in enumerate(decision["options"], 1):
        say(f"  [{index}] {option['id']:<15} {option['description']}")
    while True:
        reply = ask(f"choose 1-{len(offered)}: ") if ask else None
        if reply is None:
            raise SyncError(f"{decision['path']} needs a decision: run interactively, or pass --prefer workspace|main "
                            "or --decide PATH=OPTION")
        if reply.isdigit() and 1 <= int(reply) <= len(offered):
            return offered[int(reply) - 1]
        if reply in offered:
            return reply
        say(f"  answer a number from 1 to {len(offered)}, or an option name")


def _confirm_mass_change(ask: Ask | None) -> bool:
    reply = ask("this sync deletes or replaces most of the workspace's files; go ahead? [y/N] ") if ask else None
    if reply is None or reply.lower() not in ("y", "yes"):
        raise SyncError("the sync would delete or replace most of the workspace; pass --yes to go ahead")
    return True


# --------------------------------------------------------------------------------------------------
# bringing the folder along


def update_folder(folder: Folder, state: WorkspaceState, api: ApiClient, new_root: str, snapshot_id: str, *,
                  progress: bool | None = None) -> tuple[int, int]:
    """Turn the folder from the last pushed tree into `new_root`; returns (files written, deleted)."""
    old_root = state.manifest_hash
    pushed = PushedTree.load(folder.pushed_file, old_root)
    load = manifest_loader(api, ManifestCache(folder.manifest_dir), pushed.manifests)

    async def changes() -> list[Change]:
        return [change async for change in diff(old_root, new_root, load)]

    found = asyncio.run(changes())
    applied = writable(found, lambda change: change.path)
    written = [(c.path, c.new) for c in applied if c.new is not None]
    deleted = [c.path for c in applied if c.new is None]
    staging = folder.state_dir / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        materialise(api, staging, written, progress=progress)  # type: ignore[arg-type]
        for path in deleted:
            _remove_file(folder.root, path)
        for path, _ in written:
            _place(staging / path, folder.root / path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remember(folder, state, pushed, found, new_root, snapshot_id)
    return len(written), len(deleted)


def _remove_file(root: Path, path: str) -> None:
    target = root / path
    try:
        target.unlink()
    except FileNotFoundError:
        pass
    parent = target.parent
    while parent != root:  # directories emptied by the deletion go too, as git does
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _place(source: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        try:
            target.rmdir()  # a directory main replaced by a file: its files were deleted just before
        except OSError:
            raise SyncError(f"{target} is a directory with files the sync did not expect; move it away and retry") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)


def _remember(folder: Folder, state: WorkspaceState, pushed: PushedTree, found: list[Change], new_root: str,
              snapshot_id: str) -> None:
    """Save the new head, and the new tree for the next push, if it rebuilds to the server's root."""
    state.head_snapshot_id, old_root, state.manifest_hash = snapshot_id, state.manifest_hash, new_root
    folder.save(state)
    if old_root is not None and pushed.root is None:
        return  # the last pushed tree is not known here: the next push walks and compares everything
    records = dict(pushed.records)
    updates: dict[str, Any] = {}
    for change in found:
        entry: Entry | None = change.new
        if entry is None:
            records.pop(change.path, None)
            updates[change.path] = None
        else:
            records[change.path] = (entry.hash, entry.size or 0, entry.mode or 0o644)
            updates[change.path] = (change.path, entry.hash, entry.size or 0, entry.mode or 0o644)
    try:
        if old_root is None:  # a workspace never pushed: the merge wrote its first tree
            tree = build_manifests([(path, *record) for path, record in sorted(records.items())])
        else:
            tree = update_manifests(old_root, pushed.manifests, updates)
    except ManifestError:
        return
    if tree.root == new_root:
        PushedTree(new_root, records, frozenset(r[0] for r in records.values()), tree.manifests).save(folder.pushed_file)


def report_lines(report: SyncReport) -> list[str]:
    if report.undone_sync_id:
        return [f"undid sync {report.undone_sync_id}: back at {report.snapshot_id} "
                f"({report.files_written} file(s) written, {report.files_deleted} deleted)"]
    if report.is_main:
        return ["this folder is the project's main workspace: there is nothing to merge into it",
                "(record its changes with fastest push; other folders take them with fastest sync)"]
    if report.up_to_date:
        return []
    return [f"synced with main: snapshot {report.snapshot_id} "
            f"({report.files_written} file(s) written, {report.files_deleted} deleted)"]
