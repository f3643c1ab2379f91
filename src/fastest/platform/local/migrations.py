"""Applies `migrations/NNNN_*.sql` to the local D1, bookkept exactly as wrangler does.

`wrangler d1 migrations apply` records each applied file by name in `d1_migrations`; using the same
table and columns means a database file can move between the local runtime and wrangler's local D1
(or be checked against it) without re-applying anything. Each migration and its record commit
together, so a failed migration leaves neither a half-applied schema nor a record of it.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastest.platform.local.database import LocalDatabase

# wrangler's bookkeeping table, column for column.
D1_MIGRATIONS_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS d1_migrations(
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT UNIQUE,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
)
"""

MIGRATION_FILE_PATTERN = re.compile(r"^\d{4}_.+\.sql$")


def default_migrations_dir() -> Path:
    """The repository's `migrations/` directory (this file is `<repo>/src/fastest/platform/local/…`)."""
    return Path(__file__).resolve().parents[4] / "migrations"


def migration_files(migrations_dir: Path) -> list[Path]:
    """The migration files in order of their number (the order wrangler applies them in)."""
    if not migrations_dir.is_dir():
        raise FileNotFoundError(f"no migrations directory at {migrations_dir}")
    files = sorted(path for path in migrations_dir.iterdir() if path.suffix == ".sql")
    # wrangler would apply a misnamed file anyway; refuse it loudly rather than skip it silently.
    misnamed = [path.name for path in files if not MIGRATION_FILE_PATTERN.match(path.name)]
    if misnamed:
        raise ValueError(f"migration files must be named NNNN_description.sql: {misnamed}")
    return files


def applied_migrations(db: LocalDatabase) -> list[str]:
    db.execute_sync(db.prepare(D1_MIGRATIONS_TABLE_SQL))
    rows = db.execute_sync(db.prepare("SELECT name FROM d1_migrations ORDER BY id")).results
    return [row["name"] for row in rows]


def apply_migrations(db: LocalDatabase, migrations_dir: Path) -> list[str]:
    """Apply the pending migrations in order; return the names applied (empty if up to date)."""
    done = set(applied_migrations(db))
    applied: list[str] = []
    for path in migration_files(migrations_dir):
        if path.name in done:
            continue
        record = db.prepare("INSERT INTO d1_migrations (name) VALUES (?)").bind(path.name)
        db.run_migration_script(path.read_text(encoding="utf-8"), then=[record])
        applied.append(path.name)
    return applied
