"""What of a tree the client writes into a folder: never a path through `.git` or `.fastest`, and
files only as 0644 or 0755.

Whatever a server sends: a tree holding `.git/config` or `.git/hooks/…` would make the folder's
git run its commands on the next `git status`, and one holding `.fastest/…` would rewrite this
client's own state. The server refuses such trees now, but may hold some stored before it did.
Those paths are skipped (neither written nor deleted), each with a warning on stderr.
"""

from __future__ import annotations

import sys

from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE, reserved_component

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Callable, Sequence, TypeVar

    T = TypeVar("T")


def writable(items: Sequence[T], path_of: Callable[[T], str], *, warn: Callable[[str], None] | None = None) -> list[T]:
    """`items` without those whose path goes through `.git` or `.fastest` (warned about, once each)."""
    kept = []
    for item in items:
        path = path_of(item)
        reserved = reserved_component(path)
        if reserved is None:
            kept.append(item)
        else:
            (warn or _warn)(f"fastest: warning: skipped {path}: nothing is written into a folder's {reserved}/")
    return kept


def file_mode(mode: int | None) -> int:
    """The mode a written file gets: executable or not, nothing else (no setuid, no world-writable)."""
    return MODE_EXECUTABLE if mode == MODE_EXECUTABLE else MODE_FILE


def _warn(message: str) -> None:
    print(message, file=sys.stderr)
