"""A conversation's working tree: the workspace's manifest (its *base*) with an overlay of the
agent's edits on top, kept in the conversation's own storage.

The overlay maps a path to the file now there (`{hash, size, mode}`) or to a deletion. File bodies
go to the user's blob store as soon as they are written (content-addressed, like every pushed file),
so freezing the tree into a snapshot (`conversations.snapshot`) only builds manifests.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Mapping

from fastest.domain import tree
from fastest.domain.manifest import MODE_FILE, ManifestError, sha256_hex, validate_name
from fastest.errors import NotFound, PayloadTooLarge, ValidationFailed
from fastest.platform import Platform
from fastest.ports import SessionStorage
from fastest.services import storage

OVERLAY_PREFIX = "file:"
# What a tool may read back into a prompt, and list: a model's context is not a download.
READ_LIMIT_BYTES = 256 * 1024
LIST_LIMIT = 2000


def normalize_path(path: Any) -> str:
    """A relative `/`-joined file path ("./a//b" → "a/b"); 422 for anything that escapes or is empty."""
    if not isinstance(path, str):
        raise ValidationFailed("A path is a string.", fields={"path": "not a string"})
    parts = [part for part in path.strip().strip("/").split("/") if part not in ("", ".")]
    if not parts:
        raise ValidationFailed("A file path is required.", fields={"path": "empty"})
    try:
        return "/".join(validate_name(part, "path") for part in parts)
    except ManifestError as exc:
        raise ValidationFailed(f"Invalid path {path!r}: {exc}", fields={"path": str(exc)}) from exc


class WorkingTree:
    def __init__(self, platform: Platform, storage_: SessionStorage, user_id: str, base: str | None,
                 holder: str | None = None) -> None:
        """`holder`: the conversation (or `run:<id>`) whose edits these are, so GC keeps their blobs."""
        self.platform = platform
        self.holder = holder
        self.storage = storage_
        self.user_id = user_id
        self.base = base
        self.load = storage.manifest_loader(platform, user_id)

    async def overlay(self) -> dict[str, dict[str, Any]]:
        entries = await self.storage.list(prefix=OVERLAY_PREFIX)
        return {key[len(OVERLAY_PREFIX):]: value for key, value in entries.items()}

    async def _entry(self, path: str) -> dict[str, Any] | None:
        """The file at `path` now: overlay first, then the base tree."""
        changed = await self.storage.get(OVERLAY_PREFIX + path)
        if changed is not None:
            return None if changed.get("deleted") else changed
        if self.base is None:
            return None
        entry = await tree.find(self.base, path, self.load)
        if entry is None or entry.type != "file":
            return None
        return {"hash": entry.hash, "size": entry.size, "mode": entry.mode}

    async def list_files(self, directory: str = "") -> list[dict[str, Any]]:
        prefix = normalize_path(directory) + "/" if directory and directory.strip("./ ") else ""
        overlay = await self.overlay()
        files: dict[str, dict[str, Any]] = {}
        root = self.base
        if root is not None and prefix:  # walk only that directory's subtree
            found = await tree.find(root, prefix[:-1], self.load)
            root = found.hash if found is not None and found.type == "tree" else None
        if root is not None:
            async for path, entry in tree.walk(root, self.load, prefix=prefix):
                files[path] = {"path": path, "size": entry.size}
                if len(files) > LIST_LIMIT:
                    break
        for path, change in overlay.items():
            if not path.startswith(prefix):
                continue
            if change.get("deleted"):
                files.pop(path, None)
            else:
                files[path] = {"path": path, "size": change["size"]}
        return [files[path] for path in sorted(files, key=tree.path_sort_key)][:LIST_LIMIT]

    async def read_file(self, path: str) -> str:
        path = normalize_path(path)
        entry = await self._entry(path)
        if entry is None:
            raise NotFound(f"No file {path}.")
        if entry["size"] > READ_LIMIT_BYTES:
            raise PayloadTooLarge(f"{path} is {entry['size']} bytes, more than the {READ_LIMIT_BYTES} a tool may read.")
        data = await storage.read_blob(self.platform, self.user_id, entry["hash"])
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationFailed(f"{path} is a binary file ({len(data)} bytes).", code="binary_file") from None

    async def write_file(self, path: str, content: Any) -> dict[str, Any]:
        if not isinstance(content, str):
            raise ValidationFailed("File content is a string.", fields={"content": "not a string"})
        return await self.write_bytes(path, content.encode("utf-8"))

    async def write_bytes(self, path: str, data: bytes, mode: int | None = None) -> dict[str, Any]:
        """Store `data` as the file at `path` (its mode kept, unless `mode` is given)."""
        path = normalize_path(path)
        if len(data) > self.platform.settings.blob_max_bytes:
            raise PayloadTooLarge(f"A file may hold at most {self.platform.settings.blob_max_bytes} bytes.")
        digest = sha256_hex(data)

        async def body() -> AsyncIterator[bytes]:
            yield data

        await storage.upload_blob(self.platform, self.user_id, digest, body(), declared_length=len(data))
        if self.holder is not None:
            await storage.hold_blob(self.platform, self.user_id, self.holder, digest)
        existing = await self._entry(path)
        record = {"hash": digest, "size": len(data), "mode": mode or (existing["mode"] if existing else MODE_FILE)}
        await self.storage.put(OVERLAY_PREFIX + path, record)
        return {"path": path, **record, "created": existing is None}

    async def delete_file(self, path: str) -> dict[str, Any]:
        path = normalize_path(path)
        if await self._entry(path) is None:
            raise NotFound(f"No file {path}.")
        await self.storage.put(OVERLAY_PREFIX + path, {"deleted": True})
        return {"path": path, "deleted": True}

    async def rebase(self, frozen: dict[str, Any]) -> None:
        """After a snapshot froze `frozen` (the overlay as it was then): drop those entries that are
        still the same, so edits made since stay on top of the new base."""
        overlay = await self.overlay()
        for path, change in frozen.items():
            if path in overlay and overlay[path] == change:
                await self.storage.delete(OVERLAY_PREFIX + path)


def as_changes(overlay: Mapping[str, Any]) -> dict[str, tree.FileRecord | None]:
    """An overlay as tree changes: path → (path, hash, size, mode), or None where deleted."""
    return {
        path: None if change.get("deleted") else (path, change["hash"], change["size"], change["mode"])
        for path, change in overlay.items()
    }
