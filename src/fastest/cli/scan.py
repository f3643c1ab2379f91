"""Scan a folder: walk it (honouring ignore rules), then hash what the local index cannot vouch for.

The result is one `ScannedFile` per regular file, with its `/`-joined relative path, its SHA-256, size
and manifest mode, in path order. Symlinks and special files (sockets, FIFOs, devices) are skipped
and counted, as are names that are not valid UTF-8 (a manifest name must be).

Hashing reads each file once. When the files are big, a few threads hash them at once (hashlib
releases the GIL on large updates); thousands of small files are faster on one thread.
"""

from __future__ import annotations

import bisect
import hashlib
import marshal
import os
import stat
import time
from collections import namedtuple
from functools import partial
from operator import attrgetter
from pathlib import Path

from fastest.cli.ignore import STATE_DIR, IgnoreRules
from fastest.cli.index import Listing, LocalIndex
from fastest.cli.progress import Progress
from fastest.cli.pushed_records import with_changes
from fastest.cli.records import Record
from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Callable, Collection, Iterable, Mapping

HASH_THREADS = 4
PARALLEL_HASH_MIN_FILES = 16
PARALLEL_HASH_MIN_AVERAGE = 256 * 1024  # bytes per file
WHOLE_READ_MAX = 1024 * 1024
CHUNK_BYTES = 1024 * 1024
HASH_WITHOUT_INDEX_MAX = 16  # files: `scan_paths` hashes this many without loading the index


class FoundFile(namedtuple("FoundFile", ("path", "size", "mtime_ns", "mode"))):
    """A regular file the walk kept, with what `lstat` said about it.

    Named tuples rather than dataclasses here and below: a push creates one per file, 10,000s of
    them, and a tuple is several times cheaper to build.
    """

    __slots__ = ()
    path: str
    size: int
    mtime_ns: int
    mode: int


# `FoundFile._make` without a Python-level call (`partial` over `tuple.__new__` runs in C): the walk
# builds one per file, always from four fields.
_new_found_file = partial(tuple.__new__, FoundFile)


class ScannedFile(namedtuple("ScannedFile", ("path", "hash", "size", "mode"))):
    __slots__ = ()
    path: str
    hash: str
    size: int
    mode: int


# What a listing's seal holds of each file's `lstat` (see `fastest.cli.index`): read in C.
_stamp = attrgetter("st_size", "st_mtime_ns", "st_mode")


def _seal(stamps: tuple[Any, ...]) -> bytes:
    """The digest a listing's seal is, of its files' stamps, in C."""
    return hashlib.blake2b(marshal.dumps(stamps, 2), digest_size=16).digest()


class WalkResult(Record):
    __slots__ = ("files", "ignored", "symlinks", "special", "unencodable", "sealed", "sealed_files", "unsealed")
    DEFAULTS = {"files": list, "ignored": 0, "symlinks": 0, "special": 0, "unencodable": list, "sealed": list,
                "sealed_files": 0, "unsealed": list}
    files: list[FoundFile]
    ignored: int
    symlinks: int
    special: int
    unencodable: list[str]
    sealed: list[tuple[str, tuple[str, ...]]]  # (path/, file names) of directories whose files are as `against` has them
    sealed_files: int  # how many files those directories hold
    unsealed: list[tuple[str, str, tuple[str, ...]]]  # (directory, its path, file names): listed, not sealed


FileState = tuple[str, int, int]
"""(hash, size, mode) of one scanned file: what its manifest entry says besides its name."""


class ScanResult(namedtuple("ScanResult", ("records", "hashed", "reused", "hashed_bytes", "ignored", "symlinks",
                                           "special", "unencodable", "folder_walked", "changes"), defaults=(True, None))):
    __slots__ = ()
    records: dict[str, FileState]  # by `/`-joined relative path, in path order (unless scanned `against` a tree)
    hashed: int  # read and hashed this time
    reused: int  # taken from the index
    hashed_bytes: int
    ignored: int
    symlinks: int
    special: int
    unencodable: list[str]
    folder_walked: bool  # (default True) False: only some paths were looked at (`scan_paths`)
    changes: dict[str, FileState | None] | None  # (default None) with `scan(against=…)`: path -> new state, None if gone

    @property
    def files(self) -> list[ScannedFile]:
        return [ScannedFile(path, *state) for path, state in self.records.items()]

    def manifest_records(self) -> list[tuple[str, str, int, int]]:
        """What `fastest.domain.tree.build_manifests` takes: (path, hash, size, mode) per file."""
        return [(path, *state) for path, state in self.records.items()]


def file_mode(st_mode: int) -> int:
    """420 or 493: the owner's execute bit decides, as in git."""
    return MODE_EXECUTABLE if st_mode & stat.S_IXUSR else MODE_FILE


def _valid_name(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode's surrogate escapes for non-UTF-8 bytes
        return False
    return True


def walk(root: Path, rules: IgnoreRules, *, start: str = "", index: LocalIndex | None = None,
         clean: dict[str, FileState] | None = None, against: Mapping[str, FileState] | None = None,
         against_root: str | None = None) -> WalkResult:
    """Every regular, non-ignored file under `root` (or under its subdirectory `start`, a `/`-joined
    relative path), without following symlinks.

    With an `index`, a directory whose mtime is that of its recorded listing is not read again:
    only the files it listed are `lstat`ed (see `fastest.cli.index`), and fresh listings are recorded.
    With `clean` too, the files of such a directory that the index vouches for (same size and
    mtime) go into `clean` as their (hash, size, mode), not into `files`: the usual file of a big
    folder then costs its `lstat` and one comparison, nothing more. (Threads would not help: the
    GIL is handed over far more slowly than an `lstat` takes, measured with `bench/push.py`.)

    With `against` too (the pushed tree's records, `against_root` its root), a listed directory
    whose files still give its listing's seal (see `fastest.cli.index`), sealed against that tree,
    is only counted (`sealed`): its files go nowhere. The other listed directories are named in
    `unsealed`, for `scan` to seal once their files are hashed. Seals made against another tree
    are dropped.
    """
    result = WalkResult()
    walk_started_ns = time.time_ns()
    reached: list[str] = []
    if index is not None:
        index.use_rules(rules.key)
    pending: list[tuple[str, str]] = [(os.path.join(root, start), start + "/") if start else (str(root), "")]
    first = True
    seals_hold = against is not None and against_root is not None and index is not None and index.sealed_root == against_root
    listing_and_seal = index.listing_and_seal if index is not None else None
    sealed = result.sealed
    while pending:
        directory, prefix = pending.pop()
        name = prefix[:-1]
        mtime_ns = fd = None
        if index is not None:
            try:
                fd, info = _open_directory(directory, follow=first)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while we walked
            if info.st_mode & 0o170000 != stat.S_IFDIR:
                continue  # now a symlink or a file
            mtime_ns = info.st_mtime_ns
            reached.append(name)
        first = False
        try:
            listing, seal = listing_and_seal(name, mtime_ns) if listing_and_seal is not None else (None, None)
            if seals_hold and seal is not None and _sealed(directory, listing.files, seal, fd):
                # The usual directory of a big folder, so handled here rather than in a call.
                sealed.append((prefix, listing.files))
                result.sealed_files += len(listing.files)
            else:
                listing = _walk_directory(result, directory, prefix, name, mtime_ns, listing, seal, rules, index,
                                          clean, walk_started_ns)
                if listing is None:
                    continue  # removed while we walked
        finally:
            if fd is not None:
                os.close(fd)
        if listing.ignored or listing.symlinks or listing.special or listing.unencodable:
            result.ignored += listing.ignored
            result.symlinks += listing.symlinks
            result.special += listing.special
            result.unencodable += listing.unencodable
        if listing.directories:
            base = directory + os.sep
            pending += [(base + sub, prefix + sub + "/") for sub in listing.directories]
    if index is not None and not start:
        index.retain_listings(reached)
    result.files.sort()
    return result


def _walk_directory(result: WalkResult, directory: str, prefix: str, name: str, mtime_ns: int | None,
                    listing: Listing | None, seal: bytes | None, rules: IgnoreRules, index: LocalIndex | None,
                    clean: dict[str, FileState] | None, walk_started_ns: int) -> Listing | None:
    """The files of one directory of `walk` that is not sealed, into `result`; returns its listing
    (None if the directory is gone). `listing` and `seal`: what the index recorded for it, if its
    mtime is the same."""
    if listing is None:
        found = None
    else:
        if seal is not None:
            index.set_seal(name, None)
        found = _stat_listed(directory, prefix, listing.files, index.entries_in(name) if clean is not None else None, clean)
        if found is None and clean is not None:  # listed again below: what it found stands alone
            for file_name in listing.files:
                clean.pop(prefix + file_name, None)
    if found is None:
        listed = _list_directory(directory, prefix, rules)
        if listed is None:
            return None
        found, listing = listed
        if index is not None:
            index.record_listing(name, mtime_ns, listing, walk_started_ns)
    if clean is not None and listing.files:
        result.unsealed.append((directory, prefix, listing.files))
    result.files += found
    return listing


# Directories are opened (a symlink is not followed) and their files `lstat`ed relative to them:
# one path component to resolve per file rather than the whole path, a sixth of a big walk's time.
# Where `dir_fd` is not supported (Windows), files are `lstat`ed by their whole path.
_RELATIVE_LSTAT = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW")
_DIRECTORY_FLAGS = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
                    | getattr(os, "O_PATH", 0))  # O_PATH (Linux): no read permission needed, nothing read


def _open_directory(directory: str, *, follow: bool) -> tuple[int | None, os.stat_result]:
    """(an open descriptor of `directory` or None, what it is), not following a symlink unless
    `follow`. The descriptor is None where relative `lstat` is not supported or the directory
    cannot be opened (then its files are `lstat`ed by path); its caller closes it."""
    if _RELATIVE_LSTAT:
        try:
            fd = os.open(directory, _DIRECTORY_FLAGS if follow else _DIRECTORY_FLAGS | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            raise
        except OSError:  # a symlink (ELOOP), or not readable without O_PATH: look at it by path
            pass
        else:
            try:
                return fd, os.fstat(fd)
            except BaseException:
                os.close(fd)
                raise
    return None, (os.stat(directory) if follow else os.lstat(directory))


def _stamps(directory: str, names: tuple[str, ...], fd: int | None = None) -> tuple[Any, ...] | None:
    """What `lstat` says of each file `names` of `directory` (opened as `fd`, if given) for a seal;
    None if one is gone."""
    try:
        if fd is not None:
            lstat = os.lstat
            return tuple([_stamp(lstat(name, dir_fd=fd)) for name in names])
        return tuple(map(_stamp, map(os.lstat, map((directory + os.sep).__add__, names))))
    except (FileNotFoundError, NotADirectoryError):
        return None


def _sealed(directory: str, names: tuple[str, ...], seal: bytes, fd: int | None = None) -> bool:
    """True if the files `names` of `directory` (opened as `fd`, if given) give the listing's
    `seal` again."""
    stamps = _stamps(directory, names, fd)
    return stamps is not None and _seal(stamps) == seal


def _seal_of(directory: str, prefix: str, names: tuple[str, ...], index: LocalIndex,
             states: Mapping[str, FileState], against: Mapping[str, FileState]) -> bytes | None:
    """The seal for a directory's listing, once every file's index entry is settled and agrees
    with what `lstat` says now, with its scanned state and with `against`; else None."""
    stamps = _stamps(directory, names)
    if stamps is None:
        return None
    entries = index.entries_in(prefix[:-1])
    for name, (size, mtime_ns, st_mode) in zip(names, stamps):
        path = prefix + name
        entry, state = entries.get(name), states.get(path)
        if (st_mode & 0o170000 != stat.S_IFREG or state is None or entry != (size, mtime_ns, state[0])
                or state[1:] != (size, file_mode(st_mode)) or against.get(path) != state):
            return None
    return _seal(stamps)


def _stat_listed(directory: str, prefix: str, names: tuple[str, ...], entries: Mapping[str, Any] | None = None,
                 clean: dict[str, FileState] | None = None) -> list[FoundFile] | None:
    """`lstat` the files a recorded listing names; None if one is gone or no longer a regular file
    (the directory changed under us after its mtime was read: list it again).

    With the index's `entries` of the directory (by file name) and `clean`, the files whose entry
    (size, mtime_ns, hash) still matches go into `clean`, and only the others are returned. On None, `clean` may hold some of the
    directory's files (the caller drops them)."""
    found: list[FoundFile] = []
    lstat = os.lstat
    get = entries.get if entries is not None and clean is not None else {}.get
    new_file = _new_found_file
    base = directory + os.sep
    for name in names:
        try:
            info = lstat(base + name)
        except (FileNotFoundError, NotADirectoryError):
            return None
        st_mode = info.st_mode
        if st_mode & 0o170000 != stat.S_IFREG:
            return None
        path = prefix + name
        entry = get(name)
        size = info.st_size
        # (the index is a private cache, but its entries are checked as `LocalIndex.lookup` does)
        if (entry.__class__ is tuple and len(entry) == 3 and entry[0] == size and entry[1] == info.st_mtime_ns
                and entry[2].__class__ is str and len(entry[2]) == 64):
            clean[path] = (entry[2], size, MODE_EXECUTABLE if st_mode & stat.S_IXUSR else MODE_FILE)  # type: ignore[index]
        else:
            found.append(new_file((path, size, info.st_mtime_ns,
                                   MODE_EXECUTABLE if st_mode & stat.S_IXUSR else MODE_FILE)))
    return found


def _list_directory(directory: str, prefix: str, rules: IgnoreRules) -> tuple[list[FoundFile], Listing] | None:
    """Read one directory: its regular, non-ignored files (with what `lstat` said) and its listing.
    None if the directory is gone.

    The loop body runs once per file whenever a directory changed, so regular files take the first
    branch, and the usual ignore rules (names and suffixes, no negation) are checked inline.
    """
    found: list[FoundFile] = []
    file_names: list[str] = []
    directories: list[str] = []
    unencodable: list[str] = []
    ignored = symlinks = special = 0
    is_ignored = rules.is_ignored
    simple = rules.simple_sets()
    simple_names, simple_suffixes = (simple.file_names, simple.file_suffixes) if simple else (frozenset(), ())
    new_file = _new_found_file
    try:
        scanner = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with scanner:
        for item in scanner:
            name = item.name
            path = prefix + name
            try:
                if item.is_file(follow_symlinks=False):
                    if simple is not None:
                        skip = name in simple_names or (simple_suffixes and name.endswith(simple_suffixes))
                    else:
                        skip = is_ignored(path, is_dir=False)
                    if skip:
                        ignored += 1
                        continue
                    if not name.isascii() and not _valid_name(name):
                        unencodable.append(_printable(path))
                        continue
                    info = item.stat(follow_symlinks=False)
                    st_mode = info.st_mode
                    if st_mode & 0o170000 == stat.S_IFREG:  # still a regular file
                        found.append(new_file((path, info.st_size, info.st_mtime_ns,
                                               MODE_EXECUTABLE if st_mode & stat.S_IXUSR else MODE_FILE)))
                        file_names.append(name)
                    continue
                if item.is_dir(follow_symlinks=False):
                    if is_ignored(path, is_dir=True):
                        if path != STATE_DIR:
                            ignored += 1
                    elif not _valid_name(name):
                        unencodable.append(_printable(path))
                    else:
                        directories.append(name)
                    continue
                if is_ignored(path, is_dir=False):
                    continue
                if item.is_symlink():
                    symlinks += 1
                else:
                    special += 1
            except FileNotFoundError:
                continue
    return found, Listing(tuple(file_names), tuple(directories), ignored, symlinks, special, tuple(unencodable))


def _printable(path: str) -> str:
    """A path with undecodable bytes shown as U+FFFD, for messages."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def hash_file(path: str) -> tuple[str, int, int]:
    """(sha256 hex, bytes read, mtime_ns at open). Bytes read may differ from lstat's size if the file is changing.

    Small files are read in one call. (`hashlib.file_digest` allocates a 256 KiB buffer per file,
    which dominates when hashing 10,000 files of a few KB.) Large ones are streamed in chunks.
    """
    with open(path, "rb", buffering=0) as handle:
        info = os.fstat(handle.fileno())
        if info.st_size <= WHOLE_READ_MAX:
            data = handle.readall()
            return hashlib.sha256(data).hexdigest(), len(data), info.st_mtime_ns
        hasher = hashlib.sha256()
        size = 0
        while chunk := handle.read(CHUNK_BYTES):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size, info.st_mtime_ns


def scan(root: Path, index: LocalIndex, *, rules: IgnoreRules | None = None, progress: bool | None = None,
         against: Mapping[str, FileState] | None = None, against_root: str | None = None,
         seal: bool = False) -> ScanResult:
    """Walk `root`, reuse index hashes for unchanged files, hash the rest, and update the index (unsaved).

    `against`: the pushed tree's records (`against_root`: its root). The walk then leaves out the
    files of directories the index has sealed as that tree has them (see `walk`), the result's
    `changes` say how the folder differs from `against`, its `records` are `against` with those
    changes, and the index's seals hold for `against_root`."""
    known: dict[str, FileState] = {}  # what the index vouches for
    walked = walk(root, rules or IgnoreRules.for_folder(root), index=index, clean=known, against=against,
                  against_root=against_root)
    to_hash: list[FoundFile] = []
    lookup = index.lookup
    for found in walked.files:
        digest = lookup(found[0], found[1], found[2])
        if digest is None:
            to_hash.append(found)
        else:
            known[found[0]] = (digest, found[1], found[3])

    base = str(root)
    fresh: dict[str, tuple[str, int]] = {}
    vanished: set[str] = set()
    hashed_bytes = 0
    bar_bytes = sum(f.size for f in to_hash)
    with Progress("hashing", len(to_hash), total_bytes=bar_bytes, enabled=progress) as bar:

        def one(found: FoundFile) -> None:
            started_ns = time.time_ns()
            try:
                digest, size, mtime_ns = hash_file(os.path.join(base, found.path))
            except FileNotFoundError:
                vanished.add(found.path)
                return
            fresh[found.path] = (digest, size)
            if size == found.size and mtime_ns == found.mtime_ns:
                index.record(found.path, size, mtime_ns, digest, started_ns)
            bar.advance(1, size)

        # Threads pay off only for big files: hashlib releases the GIL while hashing, but opening
        # thousands of small files is Python-bound, and threads then only contend for the GIL.
        if len(to_hash) >= PARALLEL_HASH_MIN_FILES and bar_bytes >= PARALLEL_HASH_MIN_AVERAGE * len(to_hash):
            from concurrent.futures import ThreadPoolExecutor  # here: most scans hash a few files

            with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
                list(pool.map(one, to_hash))
        else:
            for found in to_hash:
                one(found)

    for path, _, _, mode in to_hash:
        if path in fresh:
            digest, size = fresh[path]
            hashed_bytes += size
            known[path] = (digest, size, mode)
        else:  # vanished
            known.pop(path, None)
    reused = walked.sealed_files + len(known) - len(fresh)
    changes = None
    if against is None:
        paths = sorted(known)
        records = dict(zip(paths, map(known.__getitem__, paths)))
        # With `seal`, as the tree just found: they hold once a push records it (`move_sealed_root` from None).
        sealed_as, index.sealed_root = (records if seal else None), None
    else:
        changes = _changes_against(against, known, walked.sealed, walked.sealed_files)
        records = with_changes(against, changes)
        sealed_as, index.sealed_root = against, against_root
    if sealed_as is not None:
        for directory, prefix, names in walked.unsealed:
            index.set_seal(prefix[:-1], _seal_of(directory, prefix, names, index, known, sealed_as))
    index.retain(records)
    return ScanResult(
        records=records,
        hashed=len(fresh),
        reused=reused,
        hashed_bytes=hashed_bytes,
        ignored=walked.ignored,
        symlinks=walked.symlinks,
        special=walked.special,
        unencodable=walked.unencodable,
        changes=changes,
    )


def _changes_against(against: Mapping[str, FileState], known: dict[str, FileState],
                     sealed: list[tuple[str, tuple[str, ...]]], sealed_files: int) -> dict[str, FileState | None]:
    """How the folder differs from `against`, given the files outside the sealed directories
    (`known`): each changed or added path with its state, each gone one with None."""
    changes: dict[str, FileState | None] = {path: state for path, state in known.items() if against.get(path) != state}
    if len(against) != sealed_files + len(known) - sum(1 for path in changes if path not in against):
        # some paths of `against` are neither in a sealed directory nor found (else spared: the usual case)
        inside = {prefix + name for prefix, names in sealed for name in names}
        for path in against:
            if path not in known and path not in inside:
                changes[path] = None
    return changes


def scan_paths(root: Path, index: LocalIndex | Callable[[], LocalIndex], known: Mapping[str, FileState],
               paths: Iterable[str], *, rules: IgnoreRules | None = None,
               directories: Collection[str] | None = None) -> tuple[dict[str, FileState | None], int]:
    """Look again at `paths` only (files or directories, `/`-joined and relative to `root`); every
    other file is taken to be as `known` says (the last pushed tree). Returns the changes against
    `known` (path → new state, or None when gone) and how many files were hashed. `directories`,
    the directories of `known`'s tree if at hand, spares sorting `known` for a path that was not one.

    `index` may be a function that loads it: then it is loaded only when a named path is a
    directory or more than HASH_WITHOUT_INDEX_MAX files are named (hashing a few files costs less
    than loading the index of a big folder, and a file a watcher reports has usually changed anyway).

    This is how an editor or a file watcher that knows what it changed pushes without a scan of
    the whole folder (`fastest push PATH…`)."""
    rules = rules or IgnoreRules.for_folder(root)
    changes: dict[str, FileState | None] = {}
    known_sorted: list[str] | None = None  # for finding what was under a path, by bisection
    found: dict[str, FoundFile] = {}
    directory_named = False
    for path in paths:
        parts = path.split("/")
        if any(rules.is_ignored("/".join(parts[:n]), is_dir=True) for n in range(1, len(parts))):
            continue
        try:
            info = os.lstat(os.path.join(root, path))
        except FileNotFoundError:
            info = None
        here: dict[str, FoundFile] = {}
        if info is not None and stat.S_ISDIR(info.st_mode):
            if not rules.is_ignored(path, is_dir=True):
                here = {f.path: f for f in walk(root, rules, start=path).files}
                directory_named = True
        elif info is not None and stat.S_ISREG(info.st_mode) and not rules.is_ignored(path, is_dir=False):
            here = {path: FoundFile(path, info.st_size, info.st_mtime_ns,
                                    MODE_EXECUTABLE if info.st_mode & stat.S_IXUSR else MODE_FILE)}
        if directories is not None and path not in directories:
            before = [path] if path in known else []  # a file, or nothing, in the known tree
        else:
            if known_sorted is None:
                known_sorted = sorted(known)
            before = _at_or_under(known_sorted, path)
        for old in before:
            if old not in here and old not in found:
                changes[old] = None
        found.update(here)
        for found_path in here:
            changes.pop(found_path, None)  # found after all (named twice, or under a path named earlier)
    if callable(index):
        index = index() if directory_named or len(found) > HASH_WITHOUT_INDEX_MAX else None
    hashed = 0
    for file in found.values():
        digest = index.lookup(file.path, file.size, file.mtime_ns) if index is not None else None
        if digest is None:
            started_ns = time.time_ns()
            try:
                digest, size, mtime_ns = hash_file(os.path.join(root, file.path))
            except FileNotFoundError:  # gone since it was found
                if file.path in known:
                    changes[file.path] = None
                continue
            hashed += 1
            if index is not None and size == file.size and mtime_ns == file.mtime_ns:
                index.record(file.path, size, mtime_ns, digest, started_ns)
            file = file._replace(size=size)
        state = (digest, file.size, file.mode)
        if known.get(file.path) != state:
            changes[file.path] = state
    return changes, hashed


def _at_or_under(sorted_paths: list[str], path: str) -> list[str]:
    """The paths of `sorted_paths` equal to `path` or inside it (`path/…`): two bisections, not a scan."""
    found: list[str] = []
    at = bisect.bisect_left(sorted_paths, path)
    if at < len(sorted_paths) and sorted_paths[at] == path:
        found.append(path)
    prefix = path + "/"
    under = bisect.bisect_left(sorted_paths, prefix)
    while under < len(sorted_paths) and sorted_paths[under].startswith(prefix):
        found.append(sorted_paths[under])
        under += 1
    return found
