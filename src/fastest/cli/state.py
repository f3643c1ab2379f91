"""A folder's link to the server, kept in `.fastest/` at its root (like `.git/`).

    .fastest/workspace.json   {server, project_id, workspace_id, head_snapshot_id, manifest_hash}
    .fastest/head             the head (snapshot, manifest) each push moved to since workspace.json was written
    .fastest/index            path → (size, mtime_ns, hash): see `fastest.cli.index`
    .fastest/pushed           the last pushed tree: its files and manifests (see `PushedTree`)
    .fastest/manifests/<h>    manifests fetched from the server: immutable, so cached for good
    .fastest/lock             held while a push or sync changes the folder's link (`Folder.exclusive`)

`pushed` lets a re-push ask the server only about what is new: everything the head snapshot
references is kept by the server for as long as the snapshot exists. Should that ever be wrong,
snapshot creation says which hashes are missing and push falls back to checking everything.
"""

from __future__ import annotations

import json
import marshal
import os
import struct
from collections import namedtuple
from contextlib import contextmanager
from pathlib import Path

from fastest.cli.failures import UsageFailure
from fastest.cli.fsutil import write_atomic
from fastest.cli.pushed_records import PushedBlobs, PushedRecords, apply_changes
from fastest.cli.records import Record
from fastest.domain.manifest import is_sha256_hex, sha256_hex

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Iterator, Mapping

STATE_DIR = ".fastest"
WORKSPACE_FILE = "workspace.json"
HEAD_FILE = "head"
HEAD_FILE_MAX = 4096  # bytes: beyond, the head is folded back into workspace.json
PUSHED_MAGIC = b"fastest-pushed 5\n"
PUSHED_MAGIC_4 = b"fastest-pushed 4\n"  # records not grouped by directory: still read
_PUSHED_BASE_LENGTH = struct.Struct(">Q")
_PUSHED_UPDATE_LENGTH = struct.Struct(">I")
PUSHED_MAGIC_BEFORE = b"fastest-pushed 2\n"  # without directories: still read


class FolderBusy(Exception):
    """Another fastest process is pushing or syncing this folder."""


class NotAWorkspace(UsageFailure):
    """The folder (and its parents) has no `.fastest/workspace.json`: a usage problem (exit code 2)."""


class WorkspaceState(Record):
    __slots__ = ("server", "project_id", "workspace_id", "head_snapshot_id", "manifest_hash")
    DEFAULTS = {"head_snapshot_id": None, "manifest_hash": None}
    server: str
    project_id: str
    workspace_id: str
    head_snapshot_id: str | None
    manifest_hash: str | None


class Folder(namedtuple("Folder", ("root",))):
    """A workspace folder and the paths of its state files."""

    __slots__ = ()
    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def workspace_file(self) -> Path:
        return self.state_dir / WORKSPACE_FILE

    @property
    def head_file(self) -> Path:
        return self.state_dir / HEAD_FILE

    @property
    def index_file(self) -> Path:
        return self.state_dir / "index"

    @property
    def pushed_file(self) -> Path:
        return self.state_dir / "pushed"

    @property
    def manifest_dir(self) -> Path:
        return self.state_dir / "manifests"

    def is_initialised(self) -> bool:
        return self.workspace_file.is_file()

    def load(self) -> WorkspaceState:
        try:
            document = json.loads(self.workspace_file.read_text(encoding="utf-8"))
            head = _last_head(self.head_file, document.get("workspace_id"))
            if head is not None:
                document["head_snapshot_id"], document["manifest_hash"] = head
            return WorkspaceState(**{name: document.get(name) for name in WorkspaceState.__slots__})
        except FileNotFoundError as exc:
            raise NotAWorkspace(f"{self.root} is not a fastest folder; run fastest init") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise NotAWorkspace(f"cannot read {self.workspace_file}: {exc}") from exc

    @contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[None]:
        """Held while a command moves the folder's link to the server (push, sync), so that a
        watcher's push and a manual one take turns instead of losing a compare-and-set to each
        other. Load the state inside it. `wait=False`: raise FolderBusy rather than wait. Where
        `fcntl` is missing (Windows), nothing is locked and the server's compare-and-set decides."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        self.state_dir.mkdir(exist_ok=True)
        with open(self.state_dir / "lock", "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError as exc:
                raise FolderBusy(f"{self.root} is being pushed or synced by another fastest process") from exc
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def save(self, state: WorkspaceState) -> None:
        """Write the folder's link. A push that only moved the head appends it to `.fastest/head`
        (replacing workspace.json by a rename costs ~1-2 ms on ext4, which flushes the new file's
        data first: a twentieth of a one-file push); every HEAD_FILE_MAX bytes, and whenever the link
        itself changes, workspace.json is written whole and the head file removed."""
        self.state_dir.mkdir(exist_ok=True)
        if state.head_snapshot_id and state.manifest_hash and self._links_to(state):
            line = f"{state.workspace_id} {state.head_snapshot_id} {state.manifest_hash}\n".encode("ascii")
            if _append_head(self.head_file, line):
                return
        write_atomic(self.workspace_file, (json.dumps(state.to_json(), indent=2) + "\n").encode("utf-8"))
        self.head_file.unlink(missing_ok=True)

    def _links_to(self, state: WorkspaceState) -> bool:
        """True if workspace.json already names this server, project and workspace."""
        try:
            saved = json.loads(self.workspace_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return isinstance(saved, dict) and all(saved.get(name) == getattr(state, name)
                                               for name in ("server", "project_id", "workspace_id"))


def _append_head(path: Path, line: bytes) -> bool:
    """Append one head line; False when the file has grown past HEAD_FILE_MAX (or cannot be written)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return False
    try:
        if os.fstat(fd).st_size + len(line) > HEAD_FILE_MAX:
            return False
        return os.write(fd, line) == len(line)
    except OSError:
        return False
    finally:
        os.close(fd)


def _last_head(path: Path, workspace_id: object) -> tuple[str, str] | None:
    """(head snapshot id, manifest hash) of the last whole line of the head file that is for
    `workspace_id`; None if there is none (a line cut short by a crash is not whole)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    for line in reversed(data.split(b"\n")[:-1]):  # what follows the last newline is not whole
        fields = line.decode("ascii", "replace").split(" ")
        if (len(fields) == 3 and fields[0] == workspace_id and fields[1].startswith("snp_")
                and is_sha256_hex(fields[2])):
            return fields[1], fields[2]
    return None


def find_folder(start: Path) -> Folder:
    """The nearest enclosing workspace folder, so commands work from subdirectories as git's do."""
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / STATE_DIR / WORKSPACE_FILE).is_file():
            return Folder(candidate)
    raise NotAWorkspace(f"{here} is not inside a fastest folder; run fastest init")


class PushedTree(namedtuple("PushedTree", ("root", "records", "blobs", "manifests", "directories"), defaults=(None,))):
    """The last pushed tree: its root, its files, their blob hashes, its manifests and its directories.

    The server keeps all of it while the head snapshot exists, so a push only asks about the rest,
    and `status` diffs against these manifests without a request. A scan is compared with `records`
    (path -> (hash, size, mode)) to find what changed since, and only the directories on those
    paths are rebuilt (`update_tree`, which finds the untouched manifests through `directories`:
    path -> manifest hash). One file, `marshal`led behind a magic line (a private cache, loaded on
    every push and status: several times faster than JSON), its records grouped by directory and
    read a directory at a time (`PushedRecords`). A push appends what it changed rather than
    rewriting the whole tree (10,000 records, 1,000 manifests for one changed file):

        fastest-pushed 5\n + length of the base (8 bytes) + marshal((root, {directory: marshal({name:
                             record})}, number of records, manifests, directories))
                           + updates, each: length (4 bytes) + marshal((from root, to root,
                             {path: record or None}, {hash: added manifest}, [removed manifest
                             hashes], {directory: hash or None}))

    An update applies only to the tree it names as its `from root`; one cut short by a crash is
    ignored, and then the file's tree is not the folder's last pushed one, so it is not used at all.
    Once the updates outgrow a quarter of the base, the file is rewritten whole.

    Files of versions 4 (records not grouped) and 2 (no directories either: derived from the
    manifests) are still read.
    The manifests' bytes are checked against their hashes where they are parsed, not when loaded:
    a damaged one is never used (the loader then asks the server), and only its hash is relied on.
    """

    __slots__ = ()
    root: str | None
    records: Mapping[str, tuple[str, int, int]]
    blobs: frozenset[str]
    manifests: Mapping[str, bytes]
    directories: Mapping[str, str] | None  # None: not known yet (`with_directories` derives them)

    @classmethod
    def empty(cls) -> "PushedTree":
        return cls(None, {}, frozenset(), {}, {})

    def with_directories(self) -> "PushedTree":
        """This tree, with `directories` derived from its manifests if they were not given."""
        if self.directories is not None:
            return self
        if self.root is None:
            return self._replace(directories={})
        from fastest.domain.tree import directories_of

        return self._replace(directories=directories_of(self.root, self.manifests))

    @classmethod
    def load_saved(cls, path: Path) -> "PushedTree":
        """Whatever tree is saved at `path`, if intact (for a file whose root nothing else records)."""
        return cls.load(path, None, any_root=True)

    @classmethod
    def load(cls, path: Path, expected_root: str | None, *, any_root: bool = False) -> "PushedTree":
        """The saved tree if it is `expected_root` (the folder's last pushed manifest) and intact; else empty."""
        try:
            data = path.read_bytes()
            if not expected_root and not any_root:
                return cls.empty()
            directories = None
            if data.startswith((PUSHED_MAGIC, PUSHED_MAGIC_4)):
                root, records, manifests, directories = _read_pushed(data)
                if type(directories) is not dict or directories.get("") != root:
                    return cls.empty()
            elif data.startswith(PUSHED_MAGIC_BEFORE):
                root, records, manifests = marshal.loads(data[len(PUSHED_MAGIC_BEFORE):])
            else:
                return cls.empty()
            if any_root:
                expected_root = root
            if root != expected_root or type(root) is not str or type(manifests) is not dict:
                return cls.empty()
            if type(records) is dict:  # of an older version
                records = PushedRecords.of(records)
            elif type(records) is not PushedRecords:
                return cls.empty()
            blobs = PushedBlobs(records)  # found when first asked about
        except (OSError, ValueError, EOFError, TypeError, IndexError, KeyError, AttributeError, struct.error):
            return cls.empty()
        # The manifests are not all hashed here (a tenth of a one-file push on a big folder): each is
        # checked against its hash where it is read (`update_tree`, `directories_of`, the loader).
        tree = cls(expected_root, records, blobs, manifests, directories)
        if directories is None:  # version 2
            try:
                return tree.with_directories()
            except (ValueError, KeyError):  # ManifestError is a ValueError
                return cls.empty()
        if not manifests.keys() >= set(directories.values()):
            return cls.empty()
        return tree

    def save(self, path: Path) -> None:
        """Writes the root, records, manifests and directories; `blobs` are the records' hashes,
        derived on load (marshalling a set of 10,000 hashes costs ten times deriving it)."""
        tree = self.with_directories()
        save_pushed(path, tree.root, tree.records, tree.manifests, tree.directories or {})


def save_pushed(path: Path, root: str | None, records: Mapping[str, tuple[str, int, int]], manifests: Mapping[str, bytes],
                directories: Mapping[str, str], *, since: PushedTree | None = None,
                changes: Mapping[str, tuple[str, int, int] | None] | None = None) -> None:
    """`PushedTree(root, records, …).save(path)` without deriving the blobs it does not write.

    `since` (the tree loaded from `path`, which nobody else has written since: the folder's lock)
    and `changes` (the records that differ from it): append the difference instead, if the file
    still has room for updates."""
    if since is not None and since.root is not None and since.directories is not None and changes is not None:
        old_manifests, old_directories = since.manifests, since.directories
        update = (
            since.root, root, dict(changes),
            {digest: data for digest, data in manifests.items() if digest not in old_manifests},
            [digest for digest in old_manifests if digest not in manifests],
            {**{name: digest for name, digest in directories.items() if old_directories.get(name) != digest},
             **{name: None for name in old_directories if name not in directories}},
        )
        if _append_update(path, marshal.dumps(update, 2)):
            return
    grouped = records if isinstance(records, PushedRecords) else PushedRecords.of(records)
    document = (root, grouped.groups(), len(grouped), dict(manifests), dict(directories))
    base = marshal.dumps(document, 2)
    write_atomic(path, PUSHED_MAGIC + _PUSHED_BASE_LENGTH.pack(len(base)) + base)


def _append_update(path: Path, update: bytes) -> bool:
    """Append one update to a file of this version with room for it; False: rewrite the file."""
    try:
        with open(path, "r+b") as handle:
            head = handle.read(len(PUSHED_MAGIC) + _PUSHED_BASE_LENGTH.size)
            if not head.startswith(PUSHED_MAGIC) or len(head) < len(PUSHED_MAGIC) + _PUSHED_BASE_LENGTH.size:
                return False
            (base_length,) = _PUSHED_BASE_LENGTH.unpack_from(head, len(PUSHED_MAGIC))
            appended = handle.seek(0, 2) - len(head) - base_length
            if appended < 0 or (appended + _PUSHED_UPDATE_LENGTH.size + len(update)) * 4 > base_length:
                return False
            handle.write(_PUSHED_UPDATE_LENGTH.pack(len(update)) + update)
    except OSError:
        return False
    return True


def _read_pushed(data: bytes) -> tuple[Any, Any, Any, Any]:
    """(root, records, manifests, directories) of a file of this version, its updates applied."""
    start = len(PUSHED_MAGIC) + _PUSHED_BASE_LENGTH.size
    (base_length,) = _PUSHED_BASE_LENGTH.unpack_from(data, len(PUSHED_MAGIC))
    if data.startswith(PUSHED_MAGIC):
        root, groups, count, manifests, directories = marshal.loads(data[start:start + base_length])
        if type(groups) is not dict or type(count) is not int:
            raise ValueError("not a pushed tree")
        records = PushedRecords(groups, count)
    else:
        root, records, manifests, directories = marshal.loads(data[start:start + base_length])
        if type(records) is not dict:
            raise ValueError("not a pushed tree")
    at = start + base_length
    while at + _PUSHED_UPDATE_LENGTH.size <= len(data):
        (length,) = _PUSHED_UPDATE_LENGTH.unpack_from(data, at)
        at += _PUSHED_UPDATE_LENGTH.size
        if at + length > len(data):
            break  # cut short: the tree is the one before it (not the folder's last pushed one)
        from_root, to_root, changed, added, removed, moved = marshal.loads(data[at:at + length])
        at += length
        if from_root != root:
            break
        apply_changes(records, changed)
        for digest in removed:
            manifests.pop(digest, None)
        manifests.update(added)
        for name, digest in moved.items():
            if digest is None:
                directories.pop(name, None)
            else:
                directories[name] = digest
        root = to_root
    return root, records, manifests, directories


class ManifestCache:
    """Manifests by hash under `.fastest/manifests/`; a corrupt file is treated as absent."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def get(self, digest: str) -> bytes | None:
        if not is_sha256_hex(digest):
            return None
        try:
            data = (self.directory / digest).read_bytes()
        except OSError:
            return None
        return data if sha256_hex(data) == digest else None

    def put(self, digest: str, data: bytes) -> None:
        path = self.directory / digest
        if not path.exists():
            write_atomic(path, data)
