"""The local D1 behaves like D1: statement API, batch atomicity, limits and the authorizer."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

from fastest.platform.local.database import LocalDatabase, split_sql_script
from fastest.ports import (
    D1_MAX_SAFE_INTEGER,
    D1_MAX_VALUE_BYTES,
    ConstraintError,
    DatabaseError,
)

SCHEMA = """
CREATE TABLE parents (
  id    INTEGER PRIMARY KEY,
  name  TEXT NOT NULL UNIQUE
);
CREATE TABLE children (
  id         INTEGER PRIMARY KEY,
  parent_id  INTEGER NOT NULL REFERENCES parents(id) ON DELETE CASCADE,
  data       BLOB,
  flag       INTEGER CHECK (flag IN (0, 1))
);
"""


@pytest.fixture
def db(local_db: LocalDatabase) -> LocalDatabase:
    local_db.run_migration_script(SCHEMA)
    return local_db


async def count(db: LocalDatabase, table: str) -> int:
    return await db.prepare(f"SELECT count(*) AS n FROM {table}").first("n")


# -- statement API -------------------------------------------------------------------------------


def test_bind_returns_a_new_statement_and_leaves_the_original_unbound(db: LocalDatabase) -> None:
    async def scenario() -> None:
        unbound = db.prepare("SELECT ? AS a, ? AS b")
        bound = unbound.bind(1, "two")
        assert bound is not unbound
        assert await bound.first() == {"a": 1, "b": "two"}
        with pytest.raises(DatabaseError):
            await unbound.all()  # still has no parameters
        assert await unbound.bind(3, 4).first() == {"a": 3, "b": 4}

    asyncio.run(scenario())


def test_all_returns_dict_rows_and_run_returns_meta(db: LocalDatabase) -> None:
    async def scenario() -> None:
        insert = db.prepare("INSERT INTO parents (name) VALUES (?)")
        first = await insert.bind("ada").run()
        second = await insert.bind("bob").run()
        assert first.results == [] and first.changes == 1 and first.last_row_id == 1
        assert second.last_row_id == 2
        assert second.meta["changed_db"] is True
        assert {"changes", "last_row_id", "rows_read", "rows_written", "duration", "changed_db"} <= set(
            second.meta
        )

        listing = await db.prepare("SELECT id, name FROM parents ORDER BY id").all()
        assert listing.results == [{"id": 1, "name": "ada"}, {"id": 2, "name": "bob"}]
        assert listing.changes == 0 and listing.meta["changed_db"] is False

        updated = await db.prepare("UPDATE parents SET name = name || '!'").run()
        assert updated.changes == 2

    asyncio.run(scenario())


def test_first_returns_a_row_a_column_or_none(db: LocalDatabase) -> None:
    async def scenario() -> None:
        await db.prepare("INSERT INTO parents (id, name) VALUES (7, 'ada')").run()
        select = db.prepare("SELECT id, name FROM parents WHERE name = ?")
        assert await select.bind("ada").first() == {"id": 7, "name": "ada"}
        assert await select.bind("ada").first("id") == 7
        assert await select.bind("nobody").first() is None
        assert await select.bind("nobody").first("id") is None
        with pytest.raises(DatabaseError, match="Column not found"):
            await select.bind("ada").first("missing")

    asyncio.run(scenario())


def test_first_on_insert_returning_applies_the_whole_write(db: LocalDatabase) -> None:
    async def scenario() -> None:
        row = await db.prepare(
            "INSERT INTO parents (name) VALUES ('a'), ('b'), ('c') RETURNING id"
        ).first()
        assert row == {"id": 1}
        assert await count(db, "parents") == 3

    asyncio.run(scenario())


def test_values_round_trip_with_d1_types(db: LocalDatabase) -> None:
    async def scenario() -> None:
        await db.prepare("INSERT INTO parents (id, name) VALUES (1, 'p')").run()
        payload = bytes(range(256))
        await db.prepare("INSERT INTO children (parent_id, data, flag) VALUES (?, ?, ?)").bind(
            1, payload, True
        ).run()
        row = await db.prepare("SELECT data, flag FROM children").first()
        assert row == {"data": payload, "flag": 1}
        assert isinstance(row["data"], bytes)
        values = await db.prepare("SELECT ? AS n, ? AS f, ? AS s, ? AS z").bind(
            D1_MAX_SAFE_INTEGER, 1.5, "é", None
        ).first()
        assert values == {"n": D1_MAX_SAFE_INTEGER, "f": 1.5, "s": "é", "z": None}

    asyncio.run(scenario())


@pytest.mark.parametrize("value", [{"a": 1}, [1], datetime(2026, 1, 1), object()])
def test_unsupported_bind_types_are_refused(db: LocalDatabase, value: object) -> None:
    with pytest.raises(DatabaseError, match="D1_TYPE_ERROR"):
        db.prepare("SELECT ?").bind(value)


@pytest.mark.parametrize("value", [D1_MAX_SAFE_INTEGER + 1, -D1_MAX_SAFE_INTEGER - 1, 2**63])
def test_integers_beyond_2_pow_53_are_refused(db: LocalDatabase, value: int) -> None:
    with pytest.raises(DatabaseError):
        db.prepare("SELECT ?").bind(value)


def test_json_functions_work(db: LocalDatabase) -> None:
    async def scenario() -> None:
        value = await db.prepare("SELECT json_extract(?, '$.a[1]') AS v").bind('{"a": [1, 2]}').first("v")
        assert value == 2

    asyncio.run(scenario())


def test_more_than_one_statement_per_prepare_fails(db: LocalDatabase) -> None:
    with pytest.raises(DatabaseError):
        asyncio.run(db.prepare("SELECT 1; SELECT 2").all())


def test_wrong_number_of_bindings_fails(db: LocalDatabase) -> None:
    with pytest.raises(DatabaseError):
        asyncio.run(db.prepare("SELECT ?, ?").bind(1).all())


# -- limits ----------------------------------------------------------------------------------------


def test_100_bound_parameters_work_and_101_fail(db: LocalDatabase) -> None:
    async def scenario() -> None:
        hundred = db.prepare("SELECT " + ", ".join(f"? AS c{i}" for i in range(100))).bind(*range(100))
        assert await hundred.first() == {f"c{i}": i for i in range(100)}
        with pytest.raises(DatabaseError, match="too many SQL variables"):
            await db.prepare("SELECT " + ", ".join("?" for _ in range(101))).bind(*range(101)).all()
        # Numbered parameters are capped by their number too, as in SQLite/D1.
        with pytest.raises(DatabaseError, match=r"between \?1 and \?100"):
            await db.prepare("SELECT ?101").all()

    asyncio.run(scenario())


def test_statement_over_100_kb_fails(db: LocalDatabase) -> None:
    async def scenario() -> None:
        padding = 100_000 - len("SELECT 1 AS x") - 4
        fits = "SELECT 1 AS x" + " " * padding  # 99,996 bytes
        assert await db.prepare(fits).first("x") == 1
        with pytest.raises(DatabaseError, match="too long"):
            await db.prepare("SELECT 1 AS x" + " " * (padding + 10)).all()
        # Multi-byte characters count by their UTF-8 bytes, not by characters.
        with pytest.raises(DatabaseError, match="too long"):
            await db.prepare("SELECT '" + "é" * 50_001 + "'").all()

    asyncio.run(scenario())


def test_values_over_2_mb_fail(db: LocalDatabase) -> None:
    async def scenario() -> None:
        at_limit = "x" * D1_MAX_VALUE_BYTES
        assert await db.prepare("SELECT length(?) AS n").bind(at_limit).first("n") == D1_MAX_VALUE_BYTES
        with pytest.raises(DatabaseError, match="too big"):
            await db.prepare("SELECT length(?)").bind(at_limit + "x").all()
        with pytest.raises(DatabaseError, match="too big"):
            await db.prepare("SELECT length(?)").bind(b"\0" * (D1_MAX_VALUE_BYTES + 1)).all()
        with pytest.raises(DatabaseError, match="too big"):
            await db.prepare("SELECT length(?)").bind("é" * (D1_MAX_VALUE_BYTES // 2 + 1)).all()
        # Values built inside SQL hit the same ceiling.
        with pytest.raises(DatabaseError, match="too big"):
            await db.prepare("SELECT zeroblob(?)").bind(D1_MAX_VALUE_BYTES + 1).all()

    asyncio.run(scenario())


# -- constraints and batches ---------------------------------------------------------------------


def test_unique_violation_raises_constraint_error(db: LocalDatabase) -> None:
    async def scenario() -> None:
        insert = db.prepare("INSERT INTO parents (name) VALUES (?)")
        await insert.bind("ada").run()
        with pytest.raises(ConstraintError, match="UNIQUE constraint failed: parents.name"):
            await insert.bind("ada").run()

    asyncio.run(scenario())


def test_foreign_keys_are_enforced_and_cascade(db: LocalDatabase) -> None:
    async def scenario() -> None:
        with pytest.raises(ConstraintError, match="FOREIGN KEY"):
            await db.prepare("INSERT INTO children (parent_id) VALUES (99)").run()
        await db.prepare("INSERT INTO parents (id, name) VALUES (1, 'p')").run()
        await db.prepare("INSERT INTO children (parent_id) VALUES (1), (1)").run()
        deleted = await db.prepare("DELETE FROM parents WHERE id = 1").run()
        assert deleted.changes == 1
        assert deleted.meta["rows_written"] == 3  # the parent and its two cascaded children
        assert await count(db, "children") == 0

    asyncio.run(scenario())


def test_check_violation_raises_constraint_error(db: LocalDatabase) -> None:
    async def scenario() -> None:
        await db.prepare("INSERT INTO parents (id, name) VALUES (1, 'p')").run()
        with pytest.raises(ConstraintError, match="CHECK"):
            await db.prepare("INSERT INTO children (parent_id, flag) VALUES (1, 5)").run()

    asyncio.run(scenario())


def test_batch_returns_one_result_per_statement(db: LocalDatabase) -> None:
    async def scenario() -> None:
        results = await db.batch(
            [
                db.prepare("INSERT INTO parents (name) VALUES (?)").bind("a"),
                db.prepare("INSERT INTO parents (name) VALUES (?)").bind("b"),
                db.prepare("SELECT name FROM parents ORDER BY name"),
            ]
        )
        assert [r.changes for r in results[:2]] == [1, 1]
        assert results[2].results == [{"name": "a"}, {"name": "b"}]
        assert await db.batch([]) == []

    asyncio.run(scenario())


def test_batch_is_atomic_when_a_later_statement_fails(db: LocalDatabase) -> None:
    async def scenario() -> None:
        await db.prepare("INSERT INTO parents (name) VALUES ('taken')").run()
        with pytest.raises(ConstraintError):
            await db.batch(
                [
                    db.prepare("INSERT INTO parents (name) VALUES ('new')"),
                    db.prepare("UPDATE parents SET name = 'renamed' WHERE name = 'taken'"),
                    db.prepare("INSERT INTO parents (name) VALUES ('new')"),  # duplicate
                ]
            )
        names = await db.prepare("SELECT name FROM parents").all()
        assert names.results == [{"name": "taken"}]
        # The connection is back in autocommit: a plain write is durable on its own.
        await db.prepare("INSERT INTO parents (name) VALUES ('after')").run()
        raw = sqlite3.connect(str(db.path))
        try:
            assert raw.execute("SELECT count(*) FROM parents").fetchone() == (2,)
        finally:
            raw.close()

    asyncio.run(scenario())


def test_batch_rolls_back_when_a_limit_is_hit_mid_batch(db: LocalDatabase) -> None:
    async def scenario() -> None:
        with pytest.raises(DatabaseError, match="too many SQL variables"):
            await db.batch(
                [
                    db.prepare("INSERT INTO parents (name) VALUES ('a')"),
                    db.prepare("SELECT " + ", ".join("?" for _ in range(101))).bind(*range(101)),
                ]
            )
        assert await count(db, "parents") == 0

    asyncio.run(scenario())


def test_deferred_foreign_key_failure_at_commit_rolls_the_batch_back(db: LocalDatabase) -> None:
    async def scenario() -> None:
        with pytest.raises(ConstraintError, match="FOREIGN KEY"):
            await db.batch(
                [
                    db.prepare("PRAGMA defer_foreign_keys = ON"),
                    db.prepare("INSERT INTO parents (id, name) VALUES (1, 'p')"),
                    db.prepare("INSERT INTO children (parent_id) VALUES (42)"),
                ]
            )
        assert await count(db, "parents") == 0

    asyncio.run(scenario())


def test_deferred_foreign_keys_allow_out_of_order_inserts_in_a_batch(db: LocalDatabase) -> None:
    async def scenario() -> None:
        await db.batch(
            [
                db.prepare("PRAGMA defer_foreign_keys = ON"),
                db.prepare("INSERT INTO children (id, parent_id) VALUES (1, 5)"),
                db.prepare("INSERT INTO parents (id, name) VALUES (5, 'late')"),
            ]
        )
        assert await count(db, "children") == 1

    asyncio.run(scenario())


def test_batch_is_atomic_with_respect_to_other_coroutines(db: LocalDatabase) -> None:
    async def writer(tag: str) -> None:
        for index in range(20):
            await db.batch(
                [
                    db.prepare("INSERT INTO parents (name) VALUES (?)").bind(f"{tag}-{index}-a"),
                    db.prepare("INSERT INTO parents (name) VALUES (?)").bind(f"{tag}-{index}-b"),
                ]
            )
            await asyncio.sleep(0)

    async def reader(seen: list[int]) -> None:
        for _ in range(40):
            seen.append(await count(db, "parents"))
            await asyncio.sleep(0)

    async def scenario() -> None:
        seen: list[int] = []
        await asyncio.gather(writer("x"), writer("y"), reader(seen))
        assert all(n % 2 == 0 for n in seen)  # never half a batch
        assert await count(db, "parents") == 80

    asyncio.run(scenario())


def test_batch_refuses_statements_of_another_database(db: LocalDatabase, tmp_path: Path) -> None:
    other = LocalDatabase(tmp_path / "other.sqlite")
    try:
        with pytest.raises(TypeError):
            asyncio.run(db.batch([other.prepare("SELECT 1")]))
    finally:
        other.close()


# -- what D1's authorizer refuses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA journal_mode",
        "PRAGMA journal_mode = DELETE",
        "PRAGMA main.journal_mode",
        "PRAGMA synchronous = OFF",
        "PRAGMA writable_schema = ON",
        "SELECT * FROM pragma_journal_mode",
        "PRAGMA integrity_check",
        "PRAGMA user_version",
        "PRAGMA function_list",
        "SELECT sqlite_version()",
        "SELECT SQLITE_VERSION()",
        "SELECT sqlite_source_id()",
        "SELECT sqlite_compileoption_used('THREADSAFE')",
        "CREATE TEMP TABLE scratch (x)",
        "ATTACH DATABASE ':memory:' AS other",
        "DETACH DATABASE other",
        "BEGIN",
        "BEGIN IMMEDIATE",
        "BEGIN TRANSACTION",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT sp",
        "RELEASE sp",
    ],
)
def test_statements_d1_refuses_are_not_authorized(db: LocalDatabase, sql: str) -> None:
    with pytest.raises(DatabaseError, match="not authorized"):
        asyncio.run(db.prepare(sql).all())


def test_transaction_statements_stay_refused_after_batches_ran(db: LocalDatabase) -> None:
    """The adapter's own BEGIN/COMMIT must not leak an authorized, cached statement to user SQL."""

    async def scenario() -> None:
        await db.batch([db.prepare("INSERT INTO parents (name) VALUES ('a')")])
        for sql in ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"):
            with pytest.raises(DatabaseError, match="not authorized"):
                await db.prepare(sql).run()
        with pytest.raises(DatabaseError, match="not authorized"):
            await db.batch([db.prepare("SAVEPOINT inner_one")])

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA table_info(parents)",
        "PRAGMA table_xinfo(parents)",
        "PRAGMA table_list",
        "PRAGMA index_list(parents)",
        "PRAGMA foreign_key_list(children)",
        "PRAGMA foreign_key_check",
        "PRAGMA foreign_keys",
        "PRAGMA foreign_keys = ON",
        "PRAGMA data_version",
        "PRAGMA case_sensitive_like = OFF",
        "PRAGMA quick_check",
        "PRAGMA optimize",
        "SELECT name FROM pragma_table_info('parents')",
    ],
)
def test_pragmas_on_d1s_allow_list_work(db: LocalDatabase, sql: str) -> None:
    asyncio.run(db.prepare(sql).all())


def test_foreign_keys_are_on(db: LocalDatabase) -> None:
    assert asyncio.run(db.prepare("PRAGMA foreign_keys").first("foreign_keys")) == 1


def test_database_file_uses_wal_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "d1.sqlite"
    db = LocalDatabase(path)
    try:
        db.run_migration_script(SCHEMA)
        asyncio.run(db.prepare("INSERT INTO parents (name) VALUES ('kept')").run())
    finally:
        db.close()
    raw = sqlite3.connect(str(path))
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()
    reopened = LocalDatabase(path)
    try:
        assert asyncio.run(reopened.prepare("SELECT name FROM parents").first("name")) == "kept"
    finally:
        reopened.close()


def test_error_messages_never_quote_bound_values(db: LocalDatabase) -> None:
    secret = "sk_live_do_not_print_me"
    with pytest.raises(DatabaseError) as caught:
        db.prepare("SELECT ?").bind({"token": secret})
    assert secret not in str(caught.value)
    assert secret not in repr(db.prepare("SELECT ?").bind(secret))


def test_split_sql_script_keeps_triggers_and_ignores_semicolons_in_comments_and_strings() -> None:
    script = """
    -- a comment; with a semicolon
    CREATE TABLE t (x TEXT DEFAULT 'a;b');
    /* block; comment */
    CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN
      UPDATE t SET x = x || ';';
      DELETE FROM t WHERE x = '';
    END;
    INSERT INTO t (x) VALUES ('no trailing semicolon')
    """
    statements = split_sql_script(script)
    assert len(statements) == 3
    assert statements[0].endswith("DEFAULT 'a;b');")
    assert "END;" in statements[1] and statements[1].count("CREATE TRIGGER") == 1
    assert statements[2].startswith("INSERT")
