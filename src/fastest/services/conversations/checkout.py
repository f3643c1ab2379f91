"""A conversation's working tree on disk, for an agent that edits files itself (OpenCode): check the
tree out into the agent's directory before a turn, and take what the agent changed there back into
the tree after it.

Only the difference moves: a file already there with the same content is not written again, and
after the turn only the files whose content changed are read and stored (as blobs, like every
pushed file). Paths the directory leaves out (`.git/`, `node_modules/`, …) are neither written nor
taken back.
"""

from __future__ import annotations

from typing import Any

from fastest.domain import tree as trees
from fastest.ports import Workdir
from fastest.services import storage

FileState = tuple[str, int, int]  # (sha256, size, mode)


async def files_of(working: Any) -> dict[str, FileState]:
    """Every file of the working tree now (its base with the overlay on top)."""
    files: dict[str, FileState] = {}
    if working.base is not None:
        async for path, entry in trees.walk(working.base, working.load):
            files[path] = (entry.hash, entry.size, entry.mode)
    for path, change in (await working.overlay()).items():
        if change.get("deleted"):
            files.pop(path, None)
        else:
            files[path] = (change["hash"], change["size"], change["mode"])
    return files


async def check_out(working: Any, workdir: Workdir) -> dict[str, FileState]:
    """Make `workdir` hold exactly the tree's files; returns them (what a later `take_changes`
    compares with)."""
    wanted = {path: state for path, state in (await files_of(working)).items() if workdir.keeps(path)}
    present = await workdir.scan()
    for path, (digest, _size, mode) in wanted.items():
        if present.get(path) != (digest, _size, mode):
            await workdir.write(path, await storage.read_blob(working.platform, working.user_id, digest), mode)
    for path in present.keys() - wanted.keys():
        await workdir.remove(path)
    return wanted


async def take_changes(working: Any, workdir: Workdir, before: dict[str, FileState]) -> list[dict[str, Any]]:
    """Store what changed in `workdir` since `check_out` into the tree's overlay; the changes as
    `file.changed` event data (path, action, and the new hash and size)."""
    after = await workdir.scan()
    changes: list[dict[str, Any]] = []
    for path in sorted(after.keys() | before.keys(), key=trees.path_sort_key):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if new is None:
            await working.delete_file(path)
            changes.append({"path": path, "action": "deleted"})
            continue
        written = await working.write_bytes(path, await workdir.read(path), new[2])
        changes.append({"path": written["path"], "action": "created" if old is None else "modified",
                        "hash": written["hash"], "size": written["size"]})
    return changes
