"""The last pushed tree's files, path -> (hash, size, mode), read a directory at a time.

`.fastest/pushed` keeps them grouped by directory (`fastest.cli.groups`): a one-file push on a
folder of 10,000 files reads the few groups on its path and those a walk could not vouch for.
Reading everything (iterating, or `PushedBlobs`) still works, for the rarer commands and code
paths that need it.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from fastest.cli.groups import Groups, join, split

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Iterable, Iterator

Record = tuple[str, int, int]


class PushedRecords(Mapping):
    """path -> (hash, size, mode), grouped by directory (`Groups`): as loaded, each group read on
    first use, or as given."""

    __slots__ = ("_groups", "_count")

    def __init__(self, groups: dict[str, bytes] | None = None, count: int = 0) -> None:
        self._groups = Groups(groups)
        self._count = count

    @classmethod
    def of(cls, records: Mapping[str, Record]) -> "PushedRecords":
        """The same records, grouped by directory."""
        grouped = cls()
        for path, record in records.items():
            grouped[path] = record
        return grouped

    def __getitem__(self, path: str) -> Record:
        directory, name = split(path)
        return self._groups.of(directory)[name]

    def get(self, path: str, default: Record | None = None) -> Record | None:
        directory, name = split(path)
        return self._groups.of(directory).get(name, default)

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        directory, name = split(path)
        return name in self._groups.of(directory)

    def __len__(self) -> int:
        return self._count

    def by_directory(self) -> dict[str, dict[str, Record]]:
        """directory -> {name: record}, every group read."""
        return self._groups.read_all()

    def __iter__(self) -> Iterator[str]:
        """Every path, in path order (reads every group)."""
        return iter(sorted(join(directory, name) for directory, records in self.by_directory().items()
                           for name in records))

    def __setitem__(self, path: str, record: Record) -> None:
        directory, name = split(path)
        records = self._groups.of(directory)
        if name not in records:
            self._count += 1
        records[name] = record

    def pop(self, path: str, default: Record | None = None) -> Record | None:
        directory, name = split(path)
        record = self._groups.of(directory).pop(name, None)
        if record is None:
            return default
        self._count -= 1
        return record

    def with_changes(self, changes: Mapping[str, Record | None]) -> "PushedRecords":
        """A copy with `changes` applied (path -> new record, None: gone); the groups not
        changed are shared, still unread."""
        changed = PushedRecords(count=self._count)
        changed._groups = self._groups.copy()
        apply_changes(changed, changes)
        return changed

    def groups(self) -> dict[str, bytes]:
        """Every non-empty directory's group, `marshal`led, for saving (unread ones as loaded)."""
        return self._groups.dump()


def with_changes(records: Mapping[str, Record], changes: Mapping[str, Record | None]) -> Mapping[str, Record]:
    """`records` with `changes` applied (path -> new record, None: gone), as a new mapping: grouped
    records stay grouped (their unchanged groups unread), others become a dict."""
    if isinstance(records, PushedRecords):
        return records.with_changes(changes)
    changed = dict(records)
    apply_changes(changed, changes)
    return changed


def apply_changes(records: dict[str, Record] | PushedRecords, changes: Mapping[str, Record | None]) -> None:
    """Apply `changes` to `records` in place: path -> new record, or None when the file is gone."""
    for path, record in changes.items():
        if record is None:
            records.pop(path, None)
        else:
            records[path] = record


class PushedBlobs(Set):
    """The blob hashes of a tree's records, found the first time they are asked about (which
    reads every record)."""

    __slots__ = ("_records", "_hashes")

    def __init__(self, records: PushedRecords) -> None:
        self._records = records
        self._hashes: frozenset[str] | None = None

    def _all(self) -> frozenset[str]:
        if self._hashes is None:
            self._hashes = frozenset(record[0] for records in self._records.by_directory().values()
                                     for record in records.values())
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
