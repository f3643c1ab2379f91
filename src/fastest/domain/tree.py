"""Walking, diffing and building Merkle trees of manifests (one manifest per directory).

A snapshot's tree can hold 100,000 files, and the Worker has 128 MB. So nothing here materializes a
whole tree: `walk` and `diff` are async generators that hold only the manifests on the current path
(memory bounded by depth × directory size), and `diff` never loads a subtree whose hash is the same
on both sides — the way git's merge-ort skips unchanged trees. A one-file change deep in a big tree
costs the manifests on that file's path, nothing else.

Order. Everything is yielded in *tree order*: depth first, entries of a directory by the UTF-8 bytes
of their names (the manifest order). That is the order of `path_sort_key`, which compares paths
component by component; it differs from plain string order (`a/b` comes before `a-c`, because the
directory `a` sorts before the file `a-c`).

Loading is the caller's business (the service reads R2 and parses; tests read a dict), passed in as
a `ManifestLoader`, so this module stays pure.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Awaitable, Callable

# Neither typing nor dataclasses at run time (the CLI's start-up, see `domain.manifest`).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import AsyncIterator, Iterable, Iterator, Literal, Mapping

    ChangeKind = Literal["added", "modified", "deleted"]

from .manifest import (
    MAX_SIZE,
    MODES,
    Entry,
    Manifest,
    ManifestError,
    canonical_bytes,
    entry_of_chunk,
    is_sha256_hex,
    name_sort_key,
    parse_manifest,
    parse_stored_manifest,
    sha256_hex,
    validate_name,
)

ManifestLoader = Callable[[str], Awaitable[Manifest]]
"""Fetch and parse the manifest with this hash (async: the service reads it from R2)."""

EMPTY_MANIFEST = Manifest(entries=())
EMPTY_TREE_HASH = EMPTY_MANIFEST.hash
"""The root of a tree with no files (empty directories are not recorded, so that is every empty tree)."""

class Change(namedtuple("Change", ("path", "kind", "old", "new"))):
    """One file that differs between two trees: `path`, `kind` ("added", "modified" or "deleted"),
    and `old`/`new`, the file entries (leaf name in `.name`); `old` is None for an added file, `new`
    is None for a deleted one. A change of mode alone is `modified`. Directories never appear: a
    file that became a directory is the file `deleted` plus every file of the new subtree `added`
    (and the reverse)."""

    __slots__ = ()
    path: str
    kind: ChangeKind
    old: Entry | None
    new: Entry | None


def path_sort_key(path: str) -> tuple[bytes, ...]:
    """The tree order of `/`-joined paths: component by component, by UTF-8 bytes."""
    return tuple(name_sort_key(part) for part in path.split("/"))


# --- walking ---------------------------------------------------------------------------------


async def walk(root_hash: str, load: ManifestLoader, *, prefix: str = "") -> AsyncIterator[tuple[str, Entry]]:
    """Yield every file under `root_hash` as (full path, entry), in tree order.

    An explicit stack of entry iterators rather than nested generators: one level of Python per
    file instead of one per directory level, and what is held is exactly the manifests on the
    current path. `prefix` is prepended to every path (e.g. "src/" when walking a subtree)."""
    stack: list[tuple[str, Iterator[Entry]]] = [(prefix, iter((await _read(root_hash, load)).entries))]
    while stack:
        directory, entries = stack[-1]
        for entry in entries:
            if entry.type == "tree":
                child = await _read(entry.hash, load)
                stack.append((f"{directory}{entry.name}/", iter(child.entries)))
                break
            yield directory + entry.name, entry
        else:
            stack.pop()


async def find(root_hash: str, path: str, load: ManifestLoader) -> Entry | None:
    """The entry (file or directory) at a `/`-joined path, or None if there is none; loads only the
    manifests from the root down to it."""
    names = path.split("/")
    directory = root_hash
    entry: Entry | None = None
    for depth, name in enumerate(names):
        manifest = await _read(directory, load)
        entry = next((candidate for candidate in manifest.entries if candidate.name == name), None)
        if entry is None or (depth < len(names) - 1 and entry.type != "tree"):
            return None
        directory = entry.hash
    return entry


# --- diffing ---------------------------------------------------------------------------------


async def diff(old_root: str | None, new_root: str | None, load: ManifestLoader) -> AsyncIterator[Change]:
    """Yield the file changes that turn tree `old_root` into tree `new_root`, in tree order.

    None stands for the empty tree. Equal hashes (the roots, or any pair of subtrees) are skipped
    without being loaded: diffing a tree against itself loads nothing."""
    if old_root == new_root:
        return
    old = EMPTY_MANIFEST if old_root is None else await _read(old_root, load)
    new = EMPTY_MANIFEST if new_root is None else await _read(new_root, load)
    async for change in _diff_directories("", old, new, load):
        yield change


async def _read(manifest_hash: str, load: ManifestLoader) -> Manifest:
    """Load a manifest; the empty one is known without asking (storage need not hold it)."""
    return EMPTY_MANIFEST if manifest_hash == EMPTY_TREE_HASH else await load(manifest_hash)


def _differing_pairs(old: Manifest, new: Manifest) -> Iterator[tuple[Entry | None, Entry | None]]:
    """Pair two directories' entries by name, yielding only the names whose entries differ, in
    name order. Equal entries have equal bytes in the canonical encoding, so the two sides' entry
    chunks are compared as sets (in C) and only the few that differ are parsed: this runs once per
    directory that changed, where a changed directory usually differs in one entry of many."""
    old_chunks, new_chunks = _differing_chunks(old.entry_chunks(), new.entry_chunks())
    old_entries = sorted([entry_of_chunk(c) for c in old_chunks], key=_entry_name_key)
    new_entries = sorted([entry_of_chunk(c) for c in new_chunks], key=_entry_name_key)
    i = j = 0
    while i < len(old_entries) and j < len(new_entries):
        a, b = old_entries[i], new_entries[j]
        if a.name == b.name:
            if a != b:  # always, for canonical bytes
                yield a, b
            i += 1
            j += 1
        elif name_sort_key(a.name) < name_sort_key(b.name):
            yield a, None
            i += 1
        else:
            yield None, b
            j += 1
    for a in old_entries[i:]:
        yield a, None
    for b in new_entries[j:]:
        yield None, b


_FEW = 8


def _differing_chunks(old: list[bytes], new: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """The chunks of each side that the other lacks, or a few more (those are parsed and compared).
    Most changed directories keep their names, so their chunks are compared side by side first, an
    equality test each; names added or removed shift the rest, and then the sides are compared as
    sets (hashing every chunk)."""
    if len(old) == len(new):
        pairs = [(x, y) for x, y in zip(old, new) if x != y]
        if len(pairs) <= _FEW:
            return [x for x, _ in pairs], [y for _, y in pairs]
    old_set, new_set = set(old), set(new)
    return list(old_set - new_set), list(new_set - old_set)


def _entry_name_key(entry: Entry) -> bytes:
    return entry.name.encode("utf-8")


async def _diff_directories(prefix: str, old: Manifest, new: Manifest, load: ManifestLoader) -> AsyncIterator[Change]:
    """The changes between two versions of one directory, name by name. A file on both sides, or
    on one side with nothing on the other (nearly every name that differs) is answered here, without
    an async generator of its own."""
    for a, b in _differing_pairs(old, new):
        if a is None:
            if b.type == "file":  # type: ignore[union-attr]
                yield Change(prefix + b.name, "added", None, b)  # type: ignore[union-attr]
                continue
        elif b is None:
            if a.type == "file":
                yield Change(prefix + a.name, "deleted", a, None)
                continue
        elif a.type == "file" and b.type == "file":
            yield Change(prefix + a.name, "modified", a, b)
            continue
        async for change in _diff_entry(prefix, a, b, load):
            yield change


async def _diff_entry(prefix: str, a: Entry | None, b: Entry | None, load: ManifestLoader) -> AsyncIterator[Change]:
    """The changes under one name that differs. Order matters for tree order: the name itself
    (a file) comes before anything below it (a directory's files)."""
    path = prefix + (a or b).name  # type: ignore[union-attr]  # never both None
    if a is not None and b is not None and a.type == "tree" and b.type == "tree":
        old_dir, new_dir = await _read(a.hash, load), await _read(b.hash, load)
        async for change in _diff_directories(path + "/", old_dir, new_dir, load):
            yield change
        return
    if a is not None and a.type == "file" and b is not None and b.type == "file":
        yield Change(path, "modified", a, b)
        return
    # Everything else is one side's file and/or subtree going away or appearing.
    if a is not None and a.type == "file":
        yield Change(path, "deleted", a, None)
    if b is not None and b.type == "file":
        yield Change(path, "added", None, b)
    if a is not None and a.type == "tree":
        async for sub_path, entry in walk(a.hash, load, prefix=path + "/"):
            yield Change(sub_path, "deleted", entry, None)
    if b is not None and b.type == "tree":
        async for sub_path, entry in walk(b.hash, load, prefix=path + "/"):
            yield Change(sub_path, "added", None, entry)


# --- building --------------------------------------------------------------------------------

FileRecord = tuple[str, str, int, int]
"""(path, blob hash, size, mode) of one file; the path is `/`-joined and relative."""


class BuiltTree(namedtuple("BuiltTree", ("root", "manifests"))):
    """A tree's root hash and every manifest's canonical bytes by hash, children before parents
    (the order to upload them in, so a parent never arrives before what it points at)."""

    __slots__ = ()
    root: str
    manifests: dict[str, bytes]


class _Directory:
    """A directory being built: its children by name (files as entries, directories nested)."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: dict[str, Entry | _Directory] = {}


def build_manifests(files: Iterable[FileRecord]) -> BuiltTree:
    """Build the manifests of a tree, bottom-up, from a flat list of files.

    Used by the CLI (push), tests and benchmarks. Empty directories cannot be expressed and are not
    recorded; no files at all gives the empty manifest as root. Raises ManifestError for a bad
    name, hash, size or mode, a duplicate path, or a path that is both a file and a directory."""
    return build_tree(files)[0]


def build_tree(files: Iterable[FileRecord]) -> tuple[BuiltTree, dict[str, str]]:
    """`build_manifests`, and the manifest hash of each directory by path ("" for the root): what
    `update_tree` takes to update the tree again without reading the untouched rest."""
    root = _Directory()
    for index, record in enumerate(files):
        _insert(root, index, record)
    manifests: dict[str, bytes] = {}
    sealed: dict[str, str | None] = {}
    built = BuiltTree(_seal(root, manifests, sealed), manifests)
    return built, {path: digest for path, digest in sealed.items() if digest is not None}


def _insert(root: _Directory, index: int, record: FileRecord) -> None:
    path, blob_hash, size, mode = record
    where = f"files.{index}"
    *directories, name = _checked(record, where)
    directory = root
    for part in directories:
        child = directory.children.setdefault(part, _Directory())
        if not isinstance(child, _Directory):
            raise ManifestError(f"{path!r} is below a path that is a file.", field=f"{where}.path")
        directory = child
    if name in directory.children:
        what = "a duplicate" if isinstance(directory.children[name], Entry) else "also a directory"
        raise ManifestError(f"{path!r} is {what}.", field=f"{where}.path")
    directory.children[name] = Entry(name=name, type="file", hash=blob_hash, size=size, mode=mode)


def _checked(record: FileRecord, where: str) -> list[str]:
    """Validate one file record; return its path's components."""
    path, blob_hash, size, mode = record
    if not isinstance(path, str):
        raise ManifestError("A file path must be a string.", field=f"{where}.path")
    if not is_sha256_hex(blob_hash):
        raise ManifestError("A file hash is 64 lowercase hex digits (SHA-256).", field=f"{where}.hash")
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise ManifestError("A file size is a non-negative integer.", field=f"{where}.size")
    if type(mode) is not int or mode not in MODES:
        raise ManifestError("A file mode is 420 (0644) or 493 (0755).", field=f"{where}.mode")
    return [validate_name(part, f"{where}.path") for part in path.split("/")]


def _seal(root: _Directory, manifests: dict[str, bytes], sealed: dict[str, str | None] | None = None) -> str:
    """Encode every directory after its subdirectories (post-order, iteratively so that deep trees
    cannot hit the recursion limit); record each manifest once; return the root's hash.

    A directory left with nothing in it (possible only in `update_manifests`) is dropped from its
    parent, as empty directories are not recorded; an empty root is the empty manifest. `sealed`,
    if given, receives each encoded directory's path ("" for the root) and hash (None: dropped)."""
    hashes: dict[int, str | None] = {}  # id(directory) -> its manifest hash (None: empty), while its parent is pending
    stack: list[tuple[_Directory, bool, str]] = [(root, False, "")]
    while stack:
        directory, children_done, path = stack.pop()
        if not children_done:
            stack.append((directory, True, path))
            prefix = path + "/" if path else ""
            stack.extend((child, False, prefix + name) for name, child in directory.children.items()
                         if isinstance(child, _Directory))
            continue
        entries = []
        for name, child in directory.children.items():
            if isinstance(child, Entry):
                entries.append(child)
            elif (child_hash := hashes.pop(id(child))) is not None:
                entries.append(Entry(name=name, type="tree", hash=child_hash))
        if not entries and directory is not root:
            hashes[id(directory)] = None
            if sealed is not None:
                sealed[path] = None
            continue
        data = canonical_bytes(entries)
        digest = sha256_hex(data)
        manifests.setdefault(digest, data)
        hashes[id(directory)] = digest
        if sealed is not None:
            sealed[path] = digest
    return hashes[id(root)]  # type: ignore[return-value]  # the root is never None


# --- updating --------------------------------------------------------------------------------

_TREE_ENTRY = re.compile(rb'\{"hash":"([0-9a-f]{64})","name":"')
"""A tree entry in canonical bytes: keys are sorted, and a file entry has "mode" between "hash" and
"name". Names are JSON strings (a quote inside one is escaped), so this cannot match inside a name."""


def update_manifests(old_root: str, old_manifests: Mapping[str, bytes],
                     changes: Mapping[str, FileRecord | None]) -> BuiltTree:
    """The tree that `build_manifests` would build from tree `old_root`'s files with `changes` applied.

    `changes` maps a path to its new record (added or modified; the record's path must be that
    path) or to None (deleted; a path that is not a file of the old tree is ignored). Only the
    directories on changed paths are read and rebuilt; every other subtree keeps its hash unread. A
    directory emptied by deletions disappears, and a file may replace a directory (all of whose
    files are deleted) or the reverse. `old_manifests` must hold the whole old tree, as
    `BuiltTree.manifests` does; the result's manifests are the new tree's, children before parents.
    Raises ManifestError for a bad record, or a path that ends up both a file and a directory."""
    rebuilt = rebuild_manifests(old_root, old_manifests, changes)
    return BuiltTree(rebuilt.root, _reachable(rebuilt.root, rebuilt.manifests, old_manifests))


def rebuild_manifests(old_root: str, old_manifests: Mapping[str, bytes],
                      changes: Mapping[str, FileRecord | None]) -> BuiltTree:
    """`update_manifests` without the untouched rest: the new root and only the manifests rebuilt
    on changed paths (children before parents; some may equal old ones). `old_manifests` needs
    only the directories on changed paths — what a server holding nothing else in memory reads
    from storage (see `directories_on_paths`)."""
    built: dict[str, bytes] = {}
    return BuiltTree(_seal(_changed(old_root, old_manifests, changes), built), built)


def update_tree(old_root: str, old_manifests: Mapping[str, bytes], old_directories: Mapping[str, str],
                changes: Mapping[str, FileRecord | None]) -> tuple[BuiltTree, dict[str, str]]:
    """`update_manifests` for a caller that keeps the tree's directories (path -> manifest hash, as
    `build_tree` gives them): the untouched manifests are found through them, not by reading every
    manifest of the tree, so a one-file change costs the directories on its path. Returns the new
    tree (children before parents) and its directories."""
    built: dict[str, bytes] = {}
    sealed: dict[str, str | None] = {}
    new_root = _seal(_changed(old_root, old_manifests, changes), built, sealed)
    directories = dict(old_directories)
    gone = [path for path, digest in sealed.items() if digest is None]
    gone += [path for path, record in changes.items() if record is not None and path in directories]  # a file where a directory was
    if gone:
        prefixes = tuple(path + "/" for path in gone)
        for path in [path for path in directories if path.startswith(prefixes)]:
            del directories[path]
        for path in gone:
            directories.pop(path, None)
    directories.update((path, digest) for path, digest in sealed.items() if digest is not None)
    live = set(directories.values())
    # Old manifests keep their places (each after its children, which are old and live too), and
    # the rebuilt ones follow in the order they were sealed (children first).
    manifests = {digest: data for digest, data in old_manifests.items() if digest in live}
    for digest, data in built.items():
        manifests.setdefault(digest, data)
    return BuiltTree(new_root, manifests), directories


def directories_of(root: str, manifests: Mapping[str, bytes]) -> dict[str, str]:
    """Each directory's manifest hash by path ("" for the root), read from the tree's manifests."""
    directories = {"": root}
    stack = [("", root)]
    while stack:
        path, digest = stack.pop()
        if digest == EMPTY_TREE_HASH and path == "":
            continue
        prefix = path + "/" if path else ""
        for entry in parse_stored_manifest(manifests[digest], digest).entries:
            if entry.type == "tree":
                directories[prefix + entry.name] = entry.hash
                stack.append((prefix + entry.name, entry.hash))
    return directories


def _changed(old_root: str, old_manifests: Mapping[str, bytes], changes: Mapping[str, FileRecord | None]) -> _Directory:
    """The old tree's root, opened, with `changes` applied to the directories on their paths."""
    root = _opened(old_root, old_manifests)
    additions: list[tuple[int, FileRecord]] = []
    for index, (path, record) in enumerate(changes.items()):
        if record is None:
            _remove(root, path, old_manifests)
        elif record[0] != path:
            raise ManifestError(f"The record for {path!r} is for {record[0]!r}.", field=f"changes.{index}.path")
        else:
            additions.append((index, record))
    for index, record in additions:
        _put(root, index, record, old_manifests)
    return root


async def directories_on_paths(root_hash: str, paths: Iterable[str], load_bytes: Callable[[str], Awaitable[bytes]]) -> dict[str, bytes]:
    """The manifests (by hash, raw bytes) of the root and every existing directory on the way to
    `paths` (a path's own directory included) in the tree `root_hash`: what `rebuild_manifests`
    opens for changes at those paths."""
    found: dict[str, bytes] = {}
    parsed: dict[str, dict[str, Entry]] = {}

    async def children(manifest_hash: str) -> dict[str, Entry]:
        if manifest_hash not in parsed:
            data = found[manifest_hash] = await load_bytes(manifest_hash)
            parsed[manifest_hash] = {e.name: e for e in parse_stored_manifest(data, manifest_hash).entries}
        return parsed[manifest_hash]

    if root_hash == EMPTY_TREE_HASH:
        return found
    await children(root_hash)  # the root is always opened, even for no changes
    for path in paths:
        directory = await children(root_hash)
        for part in path.split("/"):
            entry = directory.get(part)
            if entry is None or entry.type != "tree":
                break
            directory = await children(entry.hash)
    return found


def _opened(manifest_hash: str, manifests: Mapping[str, bytes]) -> _Directory:
    """A directory of the old tree, ready to be changed."""
    directory = _Directory()
    if manifest_hash != EMPTY_TREE_HASH:
        try:
            data = manifests[manifest_hash]
        except KeyError:
            raise ManifestError(f"Manifest {manifest_hash} is missing.", code="manifest_missing", field=manifest_hash) from None
        directory.children = {entry.name: entry for entry in parse_stored_manifest(data, manifest_hash).entries}
    return directory


def _child(directory: _Directory, name: str, manifests: Mapping[str, bytes]) -> Entry | _Directory | None:
    """What `name` is in `directory`, a subdirectory being opened for change."""
    child = directory.children.get(name)
    if isinstance(child, Entry) and child.type == "tree":
        child = directory.children[name] = _opened(child.hash, manifests)
    return child


def _remove(root: _Directory, path: str, manifests: Mapping[str, bytes]) -> None:
    *directories, name = path.split("/")
    directory = root
    for part in directories:
        child = _child(directory, part, manifests)
        if not isinstance(child, _Directory):
            return
        directory = child
    child = directory.children.get(name)
    if isinstance(child, Entry) and child.type == "file":
        del directory.children[name]


def _put(root: _Directory, index: int, record: FileRecord, manifests: Mapping[str, bytes]) -> None:
    path, blob_hash, size, mode = record
    where = f"changes.{index}"
    *directories, name = _checked(record, where)
    directory = root
    for part in directories:
        child = _child(directory, part, manifests)
        if child is None:
            child = directory.children[part] = _Directory()
        elif not isinstance(child, _Directory):
            raise ManifestError(f"{path!r} is below a path that is a file.", field=f"{where}.path")
        directory = child
    existing = _child(directory, name, manifests)
    if isinstance(existing, _Directory) and not _is_empty(existing):
        raise ManifestError(f"{path!r} is also a directory.", field=f"{where}.path")
    directory.children[name] = Entry(name=name, type="file", hash=blob_hash, size=size, mode=mode)


def _is_empty(directory: _Directory) -> bool:
    """True when nothing but (recursively) empty directories is left in it."""
    return all(isinstance(child, _Directory) and _is_empty(child) for child in directory.children.values())


def _reachable(root: str, built: Mapping[str, bytes], old: Mapping[str, bytes]) -> dict[str, bytes]:
    """Every manifest of the tree `root` (from `built`, else `old`), children before parents."""
    ordered: dict[str, bytes] = {}
    stack: list[tuple[str, bytes | None]] = [(root, None)]
    while stack:
        digest, data = stack.pop()
        if digest in ordered:
            continue
        if data is not None:  # its children are done
            ordered[digest] = data
            continue
        data = built[digest] if digest in built else old[digest]
        stack.append((digest, data))
        stack.extend((child.decode("ascii"), None) for child in _TREE_ENTRY.findall(data))
    return ordered


def memory_loader(manifests: Mapping[str, bytes], *, validate: bool = True) -> ManifestLoader:
    """A loader over manifests held in memory by hash (tests, benchmarks, the CLI's local tree).

    `validate=True` checks everything, as for bytes from a client (`parse_manifest`);
    `validate=False` only checks the hash, as the service does for what it stored itself
    (`parse_stored_manifest`). A missing hash raises ManifestError `manifest_missing`; bytes that
    are not those of their hash raise ManifestError `manifest_corrupt`."""

    async def load(manifest_hash: str) -> Manifest:
        try:
            data = manifests[manifest_hash]
        except KeyError:
            raise ManifestError(f"Manifest {manifest_hash} is missing.", code="manifest_missing", field=manifest_hash) from None
        if not validate:
            return parse_stored_manifest(data, manifest_hash)
        manifest = parse_manifest(data)
        if sha256_hex(data) != manifest_hash:
            raise ManifestError(f"Manifest {manifest_hash} does not match its hash.", code="manifest_corrupt", field=manifest_hash)
        return manifest

    return load
