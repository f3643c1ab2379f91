"""Migrations apply once, atomically, recorded in wrangler's `d1_migrations`; the platform opens."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from fastest.config import Settings
from fastest.platform.local import open_local_platform
from fastest.platform.local.database import LocalDatabase
from fastest.platform.local.migrations import (
    applied_migrations,
    apply_migrations,
    default_migrations_dir,
    migration_files,
)
from fastest.ports import DatabaseError


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql, encoding="utf-8")


def table_names(db: LocalDatabase) -> set[str]:
    rows = db.execute_sync(db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")).results
    return {row["name"] for row in rows}


def test_default_migrations_dir_is_the_repositorys() -> None:
    directory = default_migrations_dir()
    assert directory == Path(__file__).resolve().parents[2] / "migrations"
    assert (directory / "0001_init.sql").is_file()


def test_repository_migrations_apply_once_and_are_recorded(local_db: LocalDatabase) -> None:
    expected = [path.name for path in migration_files(default_migrations_dir())]
    assert apply_migrations(local_db, default_migrations_dir()) == expected
    assert apply_migrations(local_db, default_migrations_dir()) == []
    assert applied_migrations(local_db) == expected
    rows = local_db.execute_sync(local_db.prepare("SELECT id, name, applied_at FROM d1_migrations")).results
    assert [row["name"] for row in rows] == expected
    assert all(row["applied_at"] for row in rows)
    assert {"users", "projects", "idempotency_keys"} <= table_names(local_db)


def test_d1_migrations_has_wranglers_shape(local_db: LocalDatabase) -> None:
    applied_migrations(local_db)  # creates the table
    columns = local_db.execute_sync(local_db.prepare("PRAGMA table_info(d1_migrations)")).results
    assert [(c["name"], c["type"], c["notnull"], c["pk"]) for c in columns] == [
        ("id", "INTEGER", 0, 1),
        ("name", "TEXT", 0, 0),
        ("applied_at", "TIMESTAMP", 1, 0),
    ]


def test_pending_migrations_apply_in_order(local_db: LocalDatabase, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    write(migrations, "0002_second.sql", "ALTER TABLE a ADD COLUMN y TEXT;")
    write(migrations, "0001_first.sql", "CREATE TABLE a (x INTEGER);")
    assert apply_migrations(local_db, migrations) == ["0001_first.sql", "0002_second.sql"]
    write(migrations, "0003_third.sql", "CREATE TABLE c (z INTEGER);\nINSERT INTO c VALUES (1);")
    assert apply_migrations(local_db, migrations) == ["0003_third.sql"]
    assert asyncio.run(local_db.prepare("SELECT z FROM c").first("z")) == 1


def test_a_failing_migration_applies_nothing_and_is_not_recorded(
    local_db: LocalDatabase, tmp_path: Path
) -> None:
    migrations = tmp_path / "migrations"
    write(migrations, "0001_first.sql", "CREATE TABLE a (x INTEGER);")
    write(migrations, "0002_broken.sql", "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);")
    with pytest.raises(DatabaseError, match="no such table"):
        apply_migrations(local_db, migrations)
    assert applied_migrations(local_db) == ["0001_first.sql"]
    assert "b" not in table_names(local_db)

    write(migrations, "0002_broken.sql", "CREATE TABLE b (x INTEGER);")
    assert apply_migrations(local_db, migrations) == ["0002_broken.sql"]
    assert "b" in table_names(local_db)


def test_a_migration_d1_would_refuse_fails_locally(local_db: LocalDatabase, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    write(migrations, "0001_wal.sql", "CREATE TABLE a (x INTEGER);\nPRAGMA journal_mode = DELETE;")
    with pytest.raises(DatabaseError, match="not authorized"):
        apply_migrations(local_db, migrations)
    write(migrations, "0001_wal.sql", "BEGIN;\nCREATE TABLE a (x INTEGER);\nCOMMIT;")
    with pytest.raises(DatabaseError, match="not authorized"):
        apply_migrations(local_db, migrations)
    assert applied_migrations(local_db) == []
    assert "a" not in table_names(local_db)


def test_misnamed_migration_files_are_refused(local_db: LocalDatabase, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    write(migrations, "init.sql", "CREATE TABLE a (x INTEGER);")
    with pytest.raises(ValueError, match="NNNN_"):
        apply_migrations(local_db, migrations)


def test_open_local_platform_creates_its_layout_and_migrates(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    class Echo:
        def __init__(self, name: str, storage: object) -> None:
            self.name = name

    platform = open_local_platform(data_dir, Settings(), env={}, session_factory=Echo)
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for name in ("d1.sqlite", "kv.sqlite", "r2", "sessions", "vault.key"):
            assert (data_dir / name).exists(), name
        names = asyncio.run(platform.db.prepare("SELECT name FROM d1_migrations").all()).results
        assert [row["name"] for row in names] == [p.name for p in migration_files(default_migrations_dir())]
    finally:
        platform.close()

    reopened = open_local_platform(data_dir, Settings(), env={}, session_factory=Echo)
    try:
        count = asyncio.run(reopened.db.prepare("SELECT count(*) AS n FROM d1_migrations").first("n"))
        assert count == len(migration_files(default_migrations_dir()))
    finally:
        reopened.close()
