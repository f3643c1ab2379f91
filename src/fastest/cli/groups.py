"""Per-directory groups of a state file's per-file records, read a directory at a time.

`.fastest/index` (each file's size, mtime and hash) and `.fastest/pushed` (each file's hash, size and
mode as last pushed) hold one record per file of the folder. Loading 10,000 of them costs ~2 ms
each, a twentieth of a one-file push that needs the records of a few directories, so both files keep
them grouped by directory ("" for the root), each group `marshal`led on its own, and a group is read
the first time its directory is asked about.
"""

from __future__ import annotations

import marshal

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Any


class Groups:
    """directory -> {file name: record}: `marshal`led as loaded until first asked about. A group
    that cannot be read is empty, as any damaged part of these private caches is."""

    __slots__ = ("_unread", "_read")

    def __init__(self, unread: dict[str, bytes] | None = None) -> None:
        self._unread = unread if unread is not None else {}
        self._read: dict[str, dict[str, Any]] = {}

    def of(self, directory: str) -> dict[str, Any]:
        """The records of the files directly in `directory`, by name (changes to it are kept)."""
        records = self._read.get(directory)
        if records is None:
            group = self._unread.pop(directory, None)
            try:
                records = marshal.loads(group) if group is not None else {}
            except (ValueError, EOFError, TypeError):
                records = {}
            if type(records) is not dict:
                records = {}
            self._read[directory] = records
        return records

    def directories(self) -> set[str]:
        return self._unread.keys() | self._read.keys()

    def read(self) -> dict[str, dict[str, Any]]:
        """directory -> the records of its files: the groups read so far."""
        return self._read

    def read_all(self) -> dict[str, dict[str, Any]]:
        for directory in [*self._unread]:
            self.of(directory)
        return self._read

    def drop(self, directory: str) -> dict[str, Any]:
        """Forget a directory's group; returns its records."""
        records = self.of(directory)
        del self._read[directory]
        return records

    def copy(self) -> "Groups":
        """A copy sharing the unread groups (bytes, immutable); read ones copied."""
        copied = Groups(dict(self._unread))
        copied._read = {directory: dict(records) for directory, records in self._read.items()}
        return copied

    def dump(self) -> dict[str, bytes]:
        """Every non-empty group, `marshal`led (unread ones as loaded), for saving."""
        dumped = dict(self._unread)
        dumped.update((directory, marshal.dumps(records, 2)) for directory, records in self._read.items() if records)
        return dumped


def split(path: str) -> tuple[str, str]:
    """(directory, name) of a `/`-joined relative path; the root directory is ""."""
    directory, _, name = path.rpartition("/")
    return directory, name


def join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name
