"""Opening the local runtime's small SQLite files (blob index, KV, session objects) the same way, and
keeping every one of them (the D1 database too) readable by the server's user alone."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable


def private_file(path: Path | str) -> None:
    """Create `path` (empty) with mode 0600 if it is missing, or make an existing one 0600, before
    SQLite opens it: SQLite gives the `-wal` and `-shm` files it makes the database file's mode."""
    if str(path) == ":memory:":
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def open_sqlite(path: Path | str, prepare: Callable[[sqlite3.Connection], None]) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL, `synchronous=NORMAL` (commits are atomic, and
    durable up to the last checkpoint) and a busy timeout for a second process on the same file.

    `check_same_thread=False`: each store guards its connection with its own lock (the test client
    runs the app on another thread). `prepare` creates the schema; on any failure the connection is
    closed rather than leaked.
    """
    private_file(path)
    connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        connection.execute("PRAGMA journal_mode=WAL").fetchall()
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        prepare(connection)
    except BaseException:
        connection.close()
        raise
    return connection
