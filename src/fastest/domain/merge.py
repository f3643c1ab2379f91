"""Three-way merge of trees (base, ours, theirs), of text files, and the mass-change safety valve.

In a sync, *ours* is the workspace and *theirs* is main; *base* is the tree of their merge base
(`dag.merge_base`). The result is expressed as changes to ours — what the workspace must take from
main — because that is what the workspace applies (`tree.update_manifests(ours_root, …, updates)`)
and what the sync preview lists.

Memory and time are bounded by what differs, the way git's merge-ort works: at every name the
three entries are compared by hash first, and a subtree equal on two sides is settled without being
read — equal on ours and theirs: keep it; unchanged on ours: take theirs (read only as far as the
diff from ours to theirs goes); unchanged on theirs: keep ours (not read at all). Only directories
that differ on all three sides are opened, and only the manifests on the current path are held.

Per path (a name where all three differ):

| base      | ours         | theirs       | outcome                                               |
|-----------|--------------|--------------|-------------------------------------------------------|
| file      | file'        | file''       | content and mode merged separately; both changed the content: `modify/modify` conflict (then try `merge_text` on the blobs) |
| —         | file         | file'        | `add/add` conflict (same content, other mode included) |
| file      | —            | file'        | `delete/modify` conflict                              |
| file      | file'        | —            | `modify/delete` conflict                              |
| dir       | dir' / —     | dir'' / —    | recurse (a deleted side is an empty directory)        |
| any       | file         | dir          | `file/directory` conflict                             |
| any       | dir          | file         | `directory/file` conflict                             |

A name that is gone on one side and replaced by the other type on the other side (base file, ours
deleted it, theirs put a directory there) is not a conflict: both removed what base had, and one
side added something new. Delete/delete, identical changes and one-sided changes are automatic.

A merge never drops a change silently: every path that ours or theirs changed ends up in the
merged tree (ours + `updates`) with that side's change, or lies at or under a `Conflict.path`. A
conflicted path keeps ours' version in `updates`' terms (nothing is taken from theirs there) until
the user decides.

Renames are detected only by identical content hash, never guessed from similar content: when one
side deleted a file the other modified, and the deleting side added a file with the base content
elsewhere, the conflict says where (`Conflict.renamed_to`); the merge does not move the other side's
modification there by itself. Files that theirs moved are reported in `MergeResult.renames`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Literal

from merge3 import Merge3

from .manifest import Entry, Manifest, entry_of_chunk, name_sort_key
from .tree import EMPTY_MANIFEST, EMPTY_TREE_HASH, FileRecord, ManifestLoader, diff, path_sort_key

ConflictKind = Literal["modify/modify", "add/add", "modify/delete", "delete/modify", "file/directory", "directory/file"]
"""`ours/theirs`: what each side did. `modify/delete`: ours modified, theirs deleted."""

Side = Literal["ours", "theirs"]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A path both sides changed incompatibly. `base`/`ours`/`theirs` are the entries at the path
    (a file, a directory for the file/directory kinds, or None where absent). Everything at and
    under `path` is undecided. `renamed_to`: for modify/delete and delete/modify, where the deleting
    side added a file with exactly the base content (a rename by content hash), if it did."""

    path: str
    kind: ConflictKind
    base: Entry | None
    ours: Entry | None
    theirs: Entry | None
    renamed_to: str | None = None


@dataclass(frozen=True, slots=True)
class Rename:
    """`side` removed `old_path` and added `new_path` with the same content hash."""

    side: Side
    old_path: str
    new_path: str
    hash: str


@dataclass(slots=True)
class MergeResult:
    """What the three-way merge decided.

    `updates`: the change set that turns ours into the merged tree (path → new record, or None to
    delete), for `tree.update_manifests(ours_root, ours_manifests, updates)`: every file taken from
    theirs, or combined from both (content from one side, mode from the other). Conflicted paths
    are not in it. `new_paths`: the paths of `updates` that ours lacks (files to add; the other
    records are files to update). `identical`: files both sides changed the same way (nothing to
    do). `combined`: the paths of `updates` that mixed both sides."""

    updates: dict[str, FileRecord | None] = field(default_factory=dict)
    new_paths: set[str] = field(default_factory=set)
    conflicts: list[Conflict] = field(default_factory=list)
    renames: list[Rename] = field(default_factory=list)
    identical: int = 0
    combined: int = 0

    @property
    def clean(self) -> bool:
        return not self.conflicts

    @property
    def added(self) -> int:
        return len(self.new_paths)

    @property
    def deleted(self) -> int:
        return sum(1 for record in self.updates.values() if record is None)

    @property
    def modified(self) -> int:
        return len(self.updates) - self.added - self.deleted


async def merge_trees(base_root: str | None, ours_root: str, theirs_root: str, load: ManifestLoader) -> MergeResult:
    """Three-way merge of the trees `ours_root` and `theirs_root` from `base_root` (None: no common
    history, the empty tree). See the module docstring for the rules; `load` reads a manifest."""
    merge = _TreeMerge(load)
    base = base_root or EMPTY_TREE_HASH
    await merge.name("", _root(base), _root(ours_root), _root(theirs_root))
    merge.theirs_renames()
    await merge.rename_hints()
    return merge.result


def _root(root_hash: str) -> Entry:
    return Entry(name="", type="tree", hash=root_hash)


def _tree_hash(entry: Entry | None) -> str:
    """The directory an entry stands for: itself if it is one, else the empty directory."""
    return entry.hash if entry is not None and entry.type == "tree" else EMPTY_TREE_HASH


def _same(x: Entry | None, y: Entry | None) -> bool:
    """Equal as tree content (the names are equal by construction)."""
    if x is None or y is None:
        return x is y
    return x.hash == y.hash and x.type == y.type and x.mode == y.mode and x.size == y.size


class _TreeMerge:
    """One merge in progress: the loader, the result, and what rename hints need.

    Rename hints (`rename_hints`) ask: which files did a side add (a file where base had none),
    by content hash? The walk records the additions it sees anyway, and the subtrees where it
    did not look at a side's changes (`unseen`); only when a hint is needed are those read."""

    def __init__(self, load: ManifestLoader) -> None:
        self.load = load
        self.result = MergeResult()
        self.theirs_deleted: dict[str, str] = {}  # path -> content hash, of files theirs deleted
        self.added: dict[Side, dict[str, list[str]]] = {"ours": {}, "theirs": {}}  # content hash -> paths
        self.unseen: dict[Side, list[tuple[str, Entry | None, Entry | None]]] = {"ours": [], "theirs": []}

    def saw_added(self, side: Side, path: str, entry: Entry | None) -> None:
        if entry is not None and entry.type == "file":
            self.added[side].setdefault(entry.hash, []).append(path)

    async def name(self, path: str, base: Entry | None, ours: Entry | None, theirs: Entry | None) -> None:
        """Merge what the three sides have under one name (`path`; "" is the root)."""
        if _same(ours, theirs):
            if not _same(base, ours):
                async for file_path, old, new in _changes(path, base, ours, self.load):
                    self.result.identical += 1
                    if old is None:
                        self.saw_added("ours", file_path, new)
                        self.saw_added("theirs", file_path, new)
            return
        if _same(base, ours):
            await self.take_theirs(path, ours, theirs)
            return
        if _same(base, theirs):
            self.unseen["ours"].append((path, base, ours))
            return  # ours as it is
        # All three differ.
        ours_is_tree = ours is not None and ours.type == "tree"
        theirs_is_tree = theirs is not None and theirs.type == "tree"
        if ours is not None and theirs is not None and ours_is_tree != theirs_is_tree:
            kind: ConflictKind = "directory/file" if ours_is_tree else "file/directory"
            self.result.conflicts.append(Conflict(path, kind, base, ours, theirs))
            self.unseen["ours"].append((path, base, ours))
            self.unseen["theirs"].append((path, base, theirs))
        elif ours_is_tree or theirs_is_tree:
            # Both directories, or a directory and a deletion: merge name by name (a deleted side
            # is an empty directory; a base file here was removed by both sides).
            await self.directories(path, _tree_hash(base), _tree_hash(ours), _tree_hash(theirs))
        elif base is None or base.type == "tree":
            # Files or nothing on both sides, and no base file: both removed what base had here.
            self.saw_added("ours", path, ours)
            if ours is not None and theirs is not None:
                self.result.conflicts.append(Conflict(path, "add/add", base, ours, theirs))
                self.saw_added("theirs", path, theirs)
            elif ours is None:
                await self.take_theirs(path, None, theirs)  # only theirs put a file there
        elif ours is None or theirs is None:
            kind = "delete/modify" if ours is None else "modify/delete"
            self.result.conflicts.append(Conflict(path, kind, base, ours, theirs))
        else:
            self.files(path, base, ours, theirs)

    def files(self, path: str, base: Entry, ours: Entry, theirs: Entry) -> None:
        """Three different versions of one file: merge content (hash, size) and mode separately."""
        content = _pick(base.hash, ours.hash, theirs.hash)
        mode = merge_mode(base.mode, ours.mode, theirs.mode)
        if content is None or mode is None:
            self.result.conflicts.append(Conflict(path, "modify/modify", base, ours, theirs))
            return
        source = ours if content == ours.hash else theirs
        if source is ours and mode == ours.mode:
            return  # theirs only repeated part of ours' change
        self.result.updates[path] = (path, source.hash, source.size, mode)  # type: ignore[arg-type]
        self.result.combined += 1  # one side changed the content, the other the mode

    async def directories(self, path: str, base_hash: str, ours_hash: str, theirs_hash: str) -> None:
        """Merge three versions of one directory, name by name, in manifest order. A name whose
        entry is the same on all three sides has the same bytes in all three manifests: those are
        set aside as bytes (in C) and only the names that differ somewhere are parsed and merged."""
        base = (await _read(base_hash, self.load)).entry_chunks()
        ours = (await _read(ours_hash, self.load)).entry_chunks()
        theirs = (await _read(theirs_hash, self.load)).entry_chunks()
        in_base, in_ours, in_theirs = set(base), set(ours), set(theirs)
        everywhere = in_base & in_ours & in_theirs
        sides: dict[str, list[Entry | None]] = {}
        for chunk in (in_base | in_ours | in_theirs) - everywhere:
            entry = entry_of_chunk(chunk)
            found = sides.setdefault(entry.name, [None, None, None])
            for index, side in enumerate((in_base, in_ours, in_theirs)):
                if chunk in side:
                    found[index] = entry
        prefix = f"{path}/" if path else ""
        for name in sorted(sides, key=name_sort_key):
            await self.name(prefix + name, *sides[name])

    async def take_theirs(self, path: str, ours: Entry | None, theirs: Entry | None) -> None:
        """Ours did not change this name (or removed all base had there): take theirs' version."""
        updates, new_paths = self.result.updates, self.result.new_paths
        async for file_path, old, new in _changes(path, ours, theirs, self.load):
            if new is None:
                updates[file_path] = None
                if old is not None:
                    self.theirs_deleted[file_path] = old.hash
            else:
                updates[file_path] = (file_path, new.hash, new.size, new.mode)  # type: ignore[assignment]
                if old is None:
                    new_paths.add(file_path)
                    self.saw_added("theirs", file_path, new)  # ours is base here, so theirs added it

    def theirs_renames(self) -> None:
        """Files theirs moved (deleted here, added there, same content) among what ours takes."""
        added: dict[str, str] = {}
        for path in sorted(self.result.new_paths, key=path_sort_key):
            added.setdefault(self.result.updates[path][1], path)  # type: ignore[index]
        for path, content in self.theirs_deleted.items():
            if content in added:
                self.result.renames.append(Rename("theirs", path, added[content], content))

    async def rename_hints(self) -> None:
        """For a file one side modified and the other deleted: did the deleting side add the base
        content elsewhere? The first such path in tree order is the hint. Reads the subtrees the
        walk did not look into only when there is such a conflict."""
        conflicts = self.result.conflicts
        for side, kind in (("ours", "delete/modify"), ("theirs", "modify/delete")):
            wanted: dict[str, list[int]] = {}
            for index, conflict in enumerate(conflicts):
                if conflict.kind == kind and conflict.base is not None:
                    wanted.setdefault(conflict.base.hash, []).append(index)
            if not wanted:
                continue
            found = {content: list(self.added[side].get(content, ())) for content in wanted}  # type: ignore[index]
            for path, base, entry in self.unseen[side]:  # type: ignore[index]
                async for file_path, old, new in _changes(path, base, entry, self.load):
                    if old is None and new is not None and new.hash in found:
                        found[new.hash].append(file_path)
            for content, indexes in wanted.items():
                if not found[content]:
                    continue
                target = min(found[content], key=path_sort_key)
                for index in indexes:
                    c = conflicts[index]
                    conflicts[index] = Conflict(c.path, c.kind, c.base, c.ours, c.theirs, renamed_to=target)
                    self.result.renames.append(Rename(side, c.path, target, content))  # type: ignore[arg-type]


def _pick(base: object, ours: object, theirs: object) -> object | None:
    """The three-way rule for one value: the side that changed it wins; None if both changed it differently."""
    if ours == theirs or theirs == base:
        return ours
    if ours == base:
        return theirs
    return None


def merge_mode(base: int | None, ours: int | None, theirs: int | None) -> int | None:
    """The merged mode of a file both sides kept (the side that changed it wins), or None if both
    changed it differently (impossible with two modes, but stated for the service's decisions)."""
    return _pick(base, ours, theirs)  # type: ignore[return-value]


async def _read(manifest_hash: str, load: ManifestLoader) -> Manifest:
    return EMPTY_MANIFEST if manifest_hash == EMPTY_TREE_HASH else await load(manifest_hash)


async def _changes(path: str, old: Entry | None, new: Entry | None,
                   load: ManifestLoader) -> AsyncIterator[tuple[str, Entry | None, Entry | None]]:
    """The files that turn `old` into `new` at `path`, as (path, old file, new file); None where
    absent. Deletions come first, so that applying them in order, a file replacing a directory (or
    the reverse) never meets the other."""
    old_file = old if old is not None and old.type == "file" else None
    new_file = new if new is not None and new.type == "file" else None
    if old_file is not None and new_file is None:
        yield path, old_file, None
    prefix = f"{path}/" if path else ""
    additions: list[tuple[str, Entry | None, Entry | None]] = []
    async for change in diff(_tree_hash(old), _tree_hash(new), load):
        if change.new is None:
            yield prefix + change.path, change.old, None
        else:
            additions.append((prefix + change.path, change.old, change.new))
    for item in additions:
        yield item
    if new_file is not None and not _same(new_file, old_file):
        yield path, old_file, new_file


# --- text files both sides changed -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextMerge:
    """A line-level three-way merge. `clean`: no overlapping changes, `content` is the result.
    Otherwise `content` is None and `conflict_markers` holds the merge with diff3-style markers
    (`<<<<<<< workspace` … `=======` … `>>>>>>> main`); when clean it equals `content`. `binary`:
    one of the inputs is not text (a NUL byte or invalid UTF-8), so nothing was merged."""

    clean: bool
    content: bytes | None
    conflict_markers: bytes
    binary: bool = False


def is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def split_lines(data: bytes) -> list[bytes]:
    """Lines ending in "\\n" (kept), the last one possibly without; "\\r" is part of a line, as in git."""
    lines = data.split(b"\n")
    last = lines.pop()
    result = [line + b"\n" for line in lines]
    if last:
        result.append(last)
    return result


def merge_text(base: bytes, ours: bytes, theirs: bytes, *, ours_label: str = "workspace",
               theirs_label: str = "main") -> TextMerge:
    """Merge two edits of a text file line by line (`merge3`, the diff3 algorithm)."""
    if not (is_text(base) and is_text(ours) and is_text(theirs)):
        return TextMerge(clean=False, content=None, conflict_markers=b"", binary=True)
    merger = Merge3(split_lines(base), split_lines(ours), split_lines(theirs))
    clean = True
    out: list[bytes] = []
    for group in merger.merge_groups():
        if group[0] != "conflict":
            out.extend(group[1])
            continue
        clean = False
        _, _, ours_lines, theirs_lines = group
        out.append(f"<<<<<<< {ours_label}\n".encode())
        out.extend(_terminated(ours_lines))
        out.append(b"=======\n")
        out.extend(_terminated(theirs_lines))
        out.append(f">>>>>>> {theirs_label}\n".encode())
    merged = b"".join(out)
    return TextMerge(clean=clean, content=merged if clean else None, conflict_markers=merged)


def _terminated(lines: list[bytes] | tuple[bytes, ...]) -> list[bytes]:
    """The lines of one conflict side, the last given a newline so a marker starts its own line."""
    result = list(lines)
    if result and not result[-1].endswith(b"\n"):
        result[-1] += b"\n"
    return result


# --- safety valve ----------------------------------------------------------------------------

DEFAULT_MASS_CHANGE_SHARE = 0.5


def mass_change(base_file_count: int, deleted_or_replaced: int, *, threshold: float = DEFAULT_MASS_CHANGE_SHARE,
                result_file_count: int | None = None) -> bool:
    """Whether a sync needs `confirm_mass_change`: it deletes or replaces more than `threshold` of
    the workspace's `base_file_count` files, or it empties a non-empty workspace (all its files
    deleted, or `result_file_count == 0`), whatever the threshold."""
    if not 0 < threshold <= 1:
        raise ValueError("threshold is a share in (0, 1].")
    if base_file_count <= 0:
        return False
    if deleted_or_replaced >= base_file_count or result_file_count == 0:
        return True
    return deleted_or_replaced > threshold * base_file_count
