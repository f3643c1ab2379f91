"""A working tree checked out to a directory on this machine, for an agent that edits files itself
(OpenCode): write the conversation's files there, and find what the agent changed.

`scan` hashes every file (a file whose size and modification time did not change since it was last
hashed is not read again) and leaves out what a push leaves out by default: version-control and
tool directories, so an agent's `npm install` or a `.git` it made never becomes part of the tree.
File work runs in a thread: the server keeps answering while a big tree is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from pathlib import Path

from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE

# Left out of the tree, as `fastest push` leaves them out by default.
IGNORED_DIRECTORIES = frozenset({".git", ".fastest", "node_modules", ".venv", "venv", "__pycache__", ".wrangler"})
IGNORED_SUFFIXES = (".pyc",)
IGNORED_NAMES = frozenset({".DS_Store"})


def ignored(path: str) -> bool:
    """Whether a `/`-joined relative path is left out of the tree."""
    *directories, name = path.split("/")
    return (any(part in IGNORED_DIRECTORIES for part in directories) or name in IGNORED_NAMES
            or name.endswith(IGNORED_SUFFIXES))


class LocalWorkdir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._hashes: dict[str, tuple[int, int, str]] = {}  # path → (size, mtime_ns, sha256)

    def keeps(self, path: str) -> bool:
        return not ignored(path)

    def _path(self, path: str) -> Path:
        target = (self.root / path).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise ValueError(f"{path!r} is outside the working directory")
        return target

    async def scan(self) -> dict[str, tuple[str, int, int]]:
        """Every file kept: path → (sha256, size, mode)."""
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> dict[str, tuple[str, int, int]]:
        files: dict[str, tuple[str, int, int]] = {}
        root = str(self.root)
        for directory, subdirectories, names in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if d not in IGNORED_DIRECTORIES]
            for name in names:
                full = os.path.join(directory, name)
                path = os.path.relpath(full, root).replace(os.sep, "/")
                if ignored(path):
                    continue
                info = os.lstat(full)
                if not stat.S_ISREG(info.st_mode):
                    continue  # symlinks, sockets: not files of a tree
                cached = self._hashes.get(path)
                if cached is not None and cached[:2] == (info.st_size, info.st_mtime_ns):
                    digest = cached[2]
                else:
                    digest = _sha256_file(full)
                    self._hashes[path] = (info.st_size, info.st_mtime_ns, digest)
                mode = MODE_EXECUTABLE if info.st_mode & 0o111 else MODE_FILE
                files[path] = (digest, info.st_size, mode)
        return files

    async def write(self, path: str, data: bytes, mode: int) -> None:
        await asyncio.to_thread(self._write, path, data, mode)

    def _write(self, path: str, data: bytes, mode: int) -> None:
        target = self._path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.is_dir():
            raise ValueError(f"{path!r} is not a file here")
        target.write_bytes(data)
        target.chmod(mode)

    async def remove(self, path: str) -> None:
        await asyncio.to_thread(self._remove, path)

    def _remove(self, path: str) -> None:
        target = self._path(path)
        if target.is_file() or target.is_symlink():
            target.unlink()
        self._hashes.pop(path, None)

    async def read(self, path: str) -> bytes:
        return await asyncio.to_thread(self._path(path).read_bytes)


def _sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
