"""The last pushed tree's files, path -> (hash, size, mode), read a directory at a time.

`.fastest/pushed` keeps them grouped by directory, each group `marshal`led on its own, and a group
is read the first time a path of its directory is asked about: a one-file push on a folder of
10,000 files reads the few groups on its path (and those a walk could not vouch for), not 10,000
records, which cost a twentieth of that push. Reading everything (iterating, or `blobs`) still
works, for the rarer commands and code paths that need it.
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping, Set

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Iterable, Iterator

Record = tuple[str, int, int]


class PushedRecords(Mapping):
    """path -> (hash, size, mode), kept per directory ("" for the root): as loaded (`marshal`led
    groups, read on first use) or as given. A group that cannot be read is taken as empty, as any
    damaged part of this private cache is."""

    __slots__ = ("_groups", "_files", "_count")

    def __init__(self, groups: dict[str, bytes] | None = None, count: int = 0) -> None:
        self._groups = groups if groups is not None else {}  # directory -> marshal({name: record})
        self._files: dict[str, dict[str, Record]] = {}  # directory -> {name: record}, read or changed
        self._count = count

    @classmethod
    def of(cls, records: Mapping[str, Record]) -> "PushedRecords":
        """The same records, grouped by directory."""
        grouped = cls()
        for path, record in records.items():
            grouped[path] = record
        return grouped

    def _in(self, directory: str) -> dict[str, Record]:
        files = self._files.get(directory)
        if files is None:
            group = self._groups.pop(directory, None)
            try:
                files = marshal.loads(group) if group is not None else {}
            except (ValueError, EOFError, TypeError):
                files = {}
            if type(files) is not dict:
                files = {}
            self._files[directory] = files
        return files

    def __getitem__(self, path: str) -> Record:
        directory, _, name = path.rpartition("/")
        return self._in(directory)[name]

    def get(self, path: str, default: Record | None = None) -> Record | None:
        directory, _, name = path.rpartition("/")
        return self._in(directory).get(name, default)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        directory, _, name = path.rpartition("/")
        return name in self._in(directory)

    def __len__(self) -> int:
        return self._count

    def by_directory(self) -> dict[str, dict[str, Record]]:
        """directory -> {name: record}, every group read."""
        for directory in [*self._groups]:
            self._in(directory)
        return self._files

    def __iter__(self) -> Iterator[str]:
        """Every path, in path order (reads every group)."""
        return iter(sorted(f"{directory}/{name}" if directory else name
                           for directory, files in self.by_directory().items() for name in files))

    def __setitem__(self, path: str, record: Record) -> None:
        directory, _, name = path.rpartition("/")
        files = self._in(directory)
        if name not in files:
            self._count += 1
        files[name] = record

    def __delitem__(self, path: str) -> None:
        directory, _, name = path.rpartition("/")
        del self._in(directory)[name]
        self._count -= 1

    def pop(self, path: str, default: Record | None = None) -> Record | None:
        directory, _, name = path.rpartition("/")
        record = self._in(directory).pop(name, None)
        if record is None:
            return default
        self._count -= 1
        return record

    def with_changes(self, changes: Mapping[str, Record | None]) -> "PushedRecords":
        """A copy with `changes` applied (path -> new record, None: gone); the groups not
        changed are shared, still unread."""
        changed = PushedRecords(dict(self._groups), self._count)
        changed._files = {directory: dict(files) for directory, files in self._files.items()}
        for path, record in changes.items():
            if record is None:
                changed.pop(path)
            else:
                changed[path] = record
        return changed

    def groups(self) -> dict[str, bytes]:
        """Every non-empty directory's group, `marshal`led, for saving (unread ones as loaded)."""
        groups = dict(self._groups)
        groups.update((directory, marshal.dumps(files, 2)) for directory, files in self._files.items() if files)
        return groups


def with_changes(records: Mapping[str, Record], changes: Mapping[str, Record | None]) -> Mapping[str, Record]:
    """`records` with `changes` applied (path -> new record, None: gone), as a new mapping: grouped
    records stay grouped (their unchanged groups unread), others become a dict."""
    if isinstance(records, PushedRecords):
        return records.with_changes(changes)
    changed = dict(records)
    for path, record in changes.items():
        if record is None:
            changed.pop(path, None)
        else:
            changed[path] = record
    return changed


class PushedBlobs(Set):
    """The blob hashes of a tree's records, found the first time they are asked about (which
    reads every record)."""

    __slots__ = ("_records", "_hashes")

    def __init__(self, records: Mapping[str, Record]) -> None:
        self._records = records
        self._hashes: frozenset[str] | None = None

    def _all(self) -> frozenset[str]:
        if self._hashes is None:
            records = self._records
            if isinstance(records, PushedRecords):
                self._hashes = frozenset(record[0] for files in records.by_directory().values() for record in files.values())
            else:
                self._hashes = frozenset(record[0] for record in records.values())
        return self._hashes

    def __contains__(self, digest: object) -> bool:
        return digest in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    @classmethod
    def _from_iterable(cls, hashes: Iterable[str]) -> frozenset[str]:  # what Set's operators build
        return frozenset(hashes)
