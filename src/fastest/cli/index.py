"""The local index, `.fastest/index`: path → (size, mtime_ns, hash), so unchanged files are not re-read,
and directory → its listing, so unchanged directories are not listed again.

A file whose size and modification time match its index entry is taken to have the recorded hash,
as git's index does. The catch is a "racily clean" file: one modified again within the timestamp
granularity of the moment it was hashed keeps the same (size, mtime) with new content. So an entry
is only recorded once the file's mtime is safely older than the moment hashing started (the window
covers coarse clocks: whole seconds on FAT/HFS+, a kernel tick elsewhere); a file too fresh to
trust is simply hashed again next time.

Directories work the same way (git's "untracked cache"): adding, removing or renaming an entry
updates the directory's mtime (POSIX requires it of creat, link, unlink, rename, mkdir, rmdir and
symlink), so a directory whose mtime is still the settled one recorded with its listing has the
same entries, and the walk only `lstat`s the files it listed instead of reading the directory and
asking the ignore rules about every name again. A listing is kept with the rules that filtered it
(`rules_key`): other rules, and every listing is dropped.

Every push and status loads the index, and a one-file push is meant to take a few times what
`git commit -am` does, so the file is `marshal`led behind a magic line (loads ~3× faster than JSON,
dumps ~2×), entries checked when used rather than on load, and each directory's entries
`{name: (size, mtime_ns, hash)}` are `marshal`led on their own and read only when the scan first
asks about that directory (a walk that vouches for a directory as a whole never does). It is a
private cache: anything unreadable or of another version is an empty index (everything is hashed
and listed once more). It is written only when something changed, and when only a few entries
did (the file edited since the last push, hashed again), they are appended to the file instead of
rewriting 10,000 entries:

    fastest-index 6\n + length of the base (8 bytes) + marshal(({directory: marshal(entries)},
                      listings, rules_key, sealed_root))
                      + appended updates, each: length (4 bytes) + marshal({path: entry, or None: gone}, …)

An update cut short by a crash is ignored (its entries are merely hashed again); once the updates
outgrow a quarter of the base, or a listing or the rules change, the whole file is rewritten.

A listing may also vouch for its files as a whole, for a push: its `seal` is a digest of what
`lstat` said of each file (size, mtime_ns, st_mode), recorded by a scan against a pushed tree
(`sealed_root`) once every file's index entry is settled and agrees with it and with that tree.
While the folder's pushed tree is `sealed_root`, a directory whose files' `lstat`s give its seal
again (built in C, one comparison per directory) holds its files as pushed: a clean file then
costs its `lstat` and nothing in Python. A seal that no longer matches is dropped; a scan against
another tree drops every seal it meets and seals afresh. A push that records a new tree from such a
scan moves `sealed_root` to it (`move_sealed_root`): the seals still standing are of directories it
did not change. Setting or dropping seals is appended like entries (an update is then
`marshal((entries update, {directory: seal or None}, sealed_root before, sealed_root after))`; an
update whose "before" is not the root so far leaves no root, and so no seal trusted).
"""

from __future__ import annotations

import marshal
import struct
from collections import namedtuple
from functools import partial
from pathlib import Path

from fastest.cli.fsutil import write_atomic
from fastest.cli.groups import Groups, join, split

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any, Collection, Mapping

INDEX_MAGIC = b"fastest-index 6\n"
_BASE_LENGTH = struct.Struct(">Q")
_UPDATE_LENGTH = struct.Struct(">I")
# How much older than the hashing moment an mtime must be before (size, mtime) is trusted.
FINE_CLOCK_WINDOW_NS = 50_000_000  # 50 ms: above a kernel tick (1-10 ms)
COARSE_CLOCK_WINDOW_NS = 2_000_000_000  # 2 s: file systems that store whole (or even) seconds


def is_settled(mtime_ns: int, hashed_at_ns: int) -> bool:
    """True when a later write could not have kept this mtime, so (size, mtime) identifies the content."""
    window = COARSE_CLOCK_WINDOW_NS if mtime_ns % 1_000_000_000 == 0 else FINE_CLOCK_WINDOW_NS
    return mtime_ns + window < hashed_at_ns


class Listing(namedtuple("Listing", ("files", "directories", "ignored", "symlinks", "special", "unencodable"))):
    """What the walk kept of one directory, by name, and what it skipped, by count."""

    __slots__ = ()
    files: tuple[str, ...]  # regular files, not ignored
    directories: tuple[str, ...]  # subdirectories to enter
    ignored: int
    symlinks: int
    special: int
    unencodable: tuple[str, ...]  # printable relative paths


# `Listing._make` without a Python-level call: the walk takes one per directory (a listing's length
# is checked with its entry's).
_new_listing = partial(tuple.__new__, Listing)


class LocalIndex:
    """In-memory view of the index file; `save` writes it back atomically, only if something changed."""

    def __init__(self, path: Path, listings: dict[str, tuple[Any, ...]] | None = None, rules_key: str | None = None,
                 groups: dict[str, bytes] | None = None) -> None:
        self.path = path
        # directory ("" for the root) -> its files' entries {name: (size, mtime_ns, hash)}
        self._entries = Groups(dict(groups or {}))
        # directory ("" for the root) -> (mtime_ns, *Listing, seal), plain tuples as marshal wants them
        self._listings: dict[str, tuple[Any, ...]] = dict(listings or {})
        self._rules_key = rules_key
        self._dirty = False  # something beyond entries changed (a listing, the rules): rewrite it all
        self._updated: dict[str, tuple[Any, ...] | None] = {}  # entries changed since load (None: gone)
        self._sealed: dict[str, bytes | None] = {}  # listings' seals set or dropped since load
        self.sealed_root: str | None = None  # the pushed tree the seals hold for (see the module's doc)
        self._loaded_root: str | None = None
        self._base_bytes = 0  # of the file as loaded: its base, and the updates appended to it
        self._appended_bytes = 0

    @classmethod
    def load(cls, path: Path) -> "LocalIndex":
        """Read the index; a missing or unreadable one is an empty index (it is only a cache)."""
        try:
            data = path.read_bytes()
            if not data.startswith(INDEX_MAGIC):
                return cls(path)
            start = len(INDEX_MAGIC) + _BASE_LENGTH.size
            (base_length,) = _BASE_LENGTH.unpack_from(data, len(INDEX_MAGIC))
            groups, listings, rules_key, sealed_root = marshal.loads(data[start:start + base_length])
            if type(groups) is not dict or type(listings) is not dict or type(rules_key) is not str:
                return cls(path)
            index = cls(path, listings, rules_key, groups)
            at = start + base_length
            while at + _UPDATE_LENGTH.size <= len(data):
                (length,) = _UPDATE_LENGTH.unpack_from(data, at)
                at += _UPDATE_LENGTH.size
                if at + length > len(data):
                    break  # cut short by a crash: those entries are hashed again
                update, sealed, root_before, root_after = marshal.loads(data[at:at + length])
                if type(update) is not dict or type(sealed) is not dict:
                    return cls(path)
                sealed_root = root_after if root_before == sealed_root else None
                at += length
                for file_path, entry in update.items():
                    directory, name = split(file_path)
                    files = index._entries.of(directory)
                    if entry is None:
                        files.pop(name, None)
                    else:
                        files[name] = entry
                for directory, seal in sealed.items():
                    listing = index._listings.get(directory)
                    if type(listing) is tuple and len(listing) == 8:
                        index._listings[directory] = listing[:7] + (seal,)
        except (OSError, ValueError, EOFError, TypeError, AttributeError, struct.error):
            return cls(path)
        index.sealed_root = index._loaded_root = sealed_root if type(sealed_root) is str else None
        index._base_bytes, index._appended_bytes = start + base_length, at - start - base_length
        return index

    def entries_in(self, directory: str) -> Mapping[str, Any]:
        """The entries of the files directly in `directory` ("" for the root), by name: (size,
        mtime_ns, hash) as recorded (unchecked: check an entry as `lookup` does). Only the
        directories asked about are read from the file."""
        return self._entries.of(directory)

    def paths(self) -> set[str]:
        """Every file with an entry (reads them all)."""
        return {join(directory, name) for directory, files in self._entries.read_all().items() for name in files}

    def __len__(self) -> int:
        return len(self.paths())

    def lookup(self, path: str, size: int, mtime_ns: int) -> str | None:
        """The recorded hash if the file still has the recorded size and mtime, else None."""
        directory, name = split(path)
        entry = self._entries.of(directory).get(name)
        if type(entry) is tuple and len(entry) == 3 and entry[0] == size and entry[1] == mtime_ns:
            digest = entry[2]
            if type(digest) is str and len(digest) == 64:  # looks like a SHA-256 (checked inline: once per file)
                return digest
        return None

    def record(self, path: str, size: int, mtime_ns: int, digest: str, hashed_at_ns: int) -> None:
        """Remember a freshly computed hash, unless the file is too fresh for (size, mtime) to be trusted."""
        directory, name = split(path)
        files = self._entries.of(directory)
        if is_settled(mtime_ns, hashed_at_ns):
            entry = (size, mtime_ns, digest)
            if files.get(name) != entry:
                files[name] = self._updated[path] = entry
        else:
            # Forgotten in memory only: the saved entry no longer matches the file's (size, mtime)
            # either, so it cannot be trusted by mistake, and a one-file push need not write the index.
            files.pop(name, None)
            self._updated.pop(path, None)

    def use_rules(self, rules_key: str) -> None:
        """Listings are only good for the ignore rules that filtered them: forget them if these differ."""
        if rules_key != self._rules_key:
            self._rules_key = rules_key
            if self._listings:
                self._listings.clear()
            self._dirty = True

    def record_listing(self, directory: str, mtime_ns: int, listing: Listing, listed_at_ns: int) -> None:
        """Remember a fresh listing, unless the directory changed too recently for its mtime to tell."""
        if is_settled(mtime_ns, listed_at_ns):
            entry = (mtime_ns, *listing, None)
            if self._listings.get(directory) != entry:
                self._listings[directory] = entry
                self._dirty = True
        elif self._listings.pop(directory, None) is not None:
            self._dirty = True

    def listing_and_seal(self, directory: str, mtime_ns: int | None) -> tuple[Listing | None, bytes | None]:
        """The recorded listing of `directory` if its mtime is still the recorded one, else None;
        and the listing's seal (see the module's doc), if it has one."""
        entry = self._listings.get(directory)
        if entry.__class__ is tuple and len(entry) == 8 and entry[0] == mtime_ns:
            return _new_listing(entry[1:7]), entry[7] if entry[7].__class__ is bytes else None
        return None, None

    def set_seal(self, directory: str, seal: bytes | None) -> None:
        """Set (or, with None, drop) the seal of a directory's recorded listing."""
        entry = self._listings.get(directory)
        if type(entry) is not tuple or len(entry) != 8 or entry[7] == seal:
            return
        self._listings[directory] = entry[:7] + (seal,)
        self._sealed[directory] = seal

    def retain_listings(self, directories: Collection[str]) -> None:
        """Forget directories the walk no longer reached: their listings and their files' entries."""
        reached = set(directories)
        for directory in self._entries.directories() - reached:
            for name in self._entries.drop(directory):
                self._updated[join(directory, name)] = None
        if len(reached) == len(self._listings) and self._listings.keys() <= reached:
            return
        stale = [d for d in self._listings if d not in reached]
        for directory in stale:
            del self._listings[directory]
        self._dirty = self._dirty or bool(stale)

    def retain(self, files: Mapping[str, Any]) -> None:
        """Forget files that are not among `files` (by path): gone, or now ignored. Only the
        directories read from the file are looked at: the others were not walked into file by file,
        their files unchanged as a whole (sealed), and a removed directory is forgotten by
        `retain_listings`."""
        for directory, entries in self._entries.read().items():
            stale = [name for name in entries if join(directory, name) not in files]
            for name in stale:
                del entries[name]
                self._updated[join(directory, name)] = None

    def save(self) -> None:
        """Write what changed: the updated entries appended, or the whole index rewritten."""
        if not self._dirty and not self._updated and not self._sealed and self.sealed_root == self._loaded_root:
            return
        if not self._dirty and self._base_bytes:
            update = marshal.dumps((self._updated, self._sealed, self._loaded_root, self.sealed_root), 2)
            if (self._appended_bytes + len(update)) * 4 <= self._base_bytes and self._append(update):
                self._updated, self._sealed, self._loaded_root = {}, {}, self.sealed_root
                return
        base = marshal.dumps((self._entries.dump(), self._listings, self._rules_key or "", self.sealed_root), 2)
        write_atomic(self.path, INDEX_MAGIC + _BASE_LENGTH.pack(len(base)) + base)
        self._dirty, self._updated, self._sealed, self._loaded_root = False, {}, {}, self.sealed_root
        self._base_bytes, self._appended_bytes = len(INDEX_MAGIC) + _BASE_LENGTH.size + len(base), 0

    def _append(self, update: bytes) -> bool:
        """Append one update to the file as loaded; False if it is no longer there (then rewrite)."""
        if not _append_update(self.path, update):
            return False
        self._appended_bytes += _UPDATE_LENGTH.size + len(update)
        return True

    @staticmethod
    def move_sealed_root(path: Path, before: str | None, after: str) -> None:
        """After a push recorded `after` from a scan against `before` (None: a scan that sealed
        what it found, against no tree), the seals hold for `after` (see the module's doc): say so
        in the index file at `path`, without loading it."""
        _append_update(path, marshal.dumps(({}, {}, before, after), 2))


def _append_update(path: Path, update: bytes) -> bool:
    try:
        with open(path, "r+b") as handle:
            if handle.read(len(INDEX_MAGIC)) != INDEX_MAGIC:
                return False
            handle.seek(0, 2)
            handle.write(_UPDATE_LENGTH.pack(len(update)) + update)
    except OSError:
        return False
    return True
