"""D1 on the local runtime: one SQLite file, held to D1's semantics and limits.

What makes this more than "sqlite3 with async methods":

- **Limits are enforced** (`ports.D1_*`): > 100 bound parameters, a statement over 100 KB, a string or
  blob over 2 MB, an integer outside ±(2^53 − 1) all fail here as they fail on D1, so a query that
  cannot run in production cannot pass a test either. SQLite's own limits are lowered to the same
  values as a backstop for values computed inside SQL (`zeroblob`, string concatenation, row size).
- **An authorizer refuses what D1 refuses**: ATTACH/DETACH, temp tables, transaction statements (D1
  has no interactive transactions; `batch()` is the only atomic unit), PRAGMAs outside D1's
  allow-list, and `sqlite_version()` & co. The lists below were checked against local D1 (wrangler).
- **`batch()` is one transaction**: BEGIN IMMEDIATE … COMMIT, ROLLBACK on any failure. The methods are
  `async` for the port's sake but run SQLite synchronously: the local server is one event loop and
  nothing awaits between BEGIN and COMMIT, so a batch is atomic with respect to every other coroutine.
  A re-entrant lock additionally keeps a batch whole if two threads share the database (e.g. a test
  client running the app on its own thread).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from fastest.platform.local.sqlite_files import private_file
from fastest.ports import (
    D1_MAX_BOUND_PARAMETERS,
    D1_MAX_SAFE_INTEGER,
    D1_MAX_STATEMENT_BYTES,
    D1_MAX_VALUE_BYTES,
    ConstraintError,
    DatabaseError,
    QueryResult,
)

# PRAGMAs D1 documents as supported ("Compatible PRAGMA statements"), checked one by one against
# local D1 (wrangler): these pass, and e.g. integrity_check, journal_mode, user_version, page_count,
# synchronous, function_list are "not authorized". Every PRAGMA not listed here is refused.
D1_ALLOWED_PRAGMAS = frozenset(
    {
        "data_version",
        "table_list",
        "table_info",
        "table_xinfo",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "foreign_keys",
        "defer_foreign_keys",
        "quick_check",
        "optimize",
        "case_sensitive_like",
        "ignore_check_constraints",
        "legacy_alter_table",
        "recursive_triggers",
        "reverse_unordered_selects",
    }
)

# SQL functions D1's authorizer refuses ("not authorized to use function", seen on local D1).
D1_REFUSED_FUNCTIONS = frozenset(
    {
        "sqlite_version",
        "sqlite_source_id",
        "sqlite_compileoption_used",
        "sqlite_compileoption_get",
        "load_extension",
    }
)

_TRANSACTION_ACTIONS = frozenset({sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT})
# ATTACH/DETACH, and anything in the `temp` schema: D1 has one database per binding.
_REFUSED_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_ATTACH,
        sqlite3.SQLITE_DETACH,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
    }
)


def _d1_error_text(message: str, code: str) -> str:
    """D1 reports SQLite errors as `D1_ERROR: <sqlite message>: <SQLITE_CODE>`; keep that shape."""
    return f"D1_ERROR: {message}: {code}"


def _translate(exc: sqlite3.Error) -> DatabaseError:
    """Turn a sqlite3 exception into the port's error family (constraint failures are their own type)."""
    code = getattr(exc, "sqlite_errorname", None) or "SQLITE_ERROR"
    text = _d1_error_text(str(exc), code)
    if isinstance(exc, sqlite3.IntegrityError):
        return ConstraintError(text)
    return DatabaseError(text)


def _bindable(value: Any) -> Any:
    """Check one bound value against the types D1 accepts, and normalise it.

    Called from `bind()` because D1 rejects an unsupported type there too. Error messages never quote
    the value: bound values can be secrets (ciphertexts, token hashes).
    """
    if value is None:
        return None
    if isinstance(value, bool):  # before int: bool is an int subclass; D1 stores booleans as 0/1
        return int(value)
    if isinstance(value, int):
        if not -D1_MAX_SAFE_INTEGER <= value <= D1_MAX_SAFE_INTEGER:
            # D1 values cross the JavaScript boundary as doubles: larger integers would lose digits.
            raise DatabaseError("D1_TYPE_ERROR: integer outside the safe range ±(2^53 - 1)")
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise DatabaseError(f"D1_TYPE_ERROR: Type '{type(value).__name__}' not supported for a bound value")


def _utf8_length_exceeds(text: str, limit: int) -> bool:
    """Whether `text` is longer than `limit` bytes in UTF-8, without encoding short strings."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def split_sql_script(script: str) -> list[str]:
    """Split a SQL script into complete statements (trigger bodies and comments handled by SQLite).

    Each statement is executed on its own, so D1's per-statement limits apply to each, as they do
    when wrangler applies a migration.
    """
    statements: list[str] = []
    start = 0
    for index, char in enumerate(script):
        if char == ";":
            candidate = script[start : index + 1]
            if sqlite3.complete_statement(candidate):
                statements.append(candidate.strip())
                start = index + 1
    rest = script[start:].strip()
    if rest:
        statements.append(rest)
    return statements


class LocalStatement:
    """A prepared statement with its bound parameters. Immutable: `bind` returns a new statement."""

    __slots__ = ("_database", "sql", "params")

    def __init__(self, database: LocalDatabase, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._database = database
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> LocalStatement:
        return LocalStatement(self._database, self.sql, tuple(_bindable(p) for p in params))

    async def all(self) -> QueryResult:
        return self._database.execute_sync(self)

    async def first(self, column: str | None = None) -> Any:
        row = self._database._first_row(self)
        if row is None:
            return None
        if column is None:
            return row
        if column not in row:
            raise DatabaseError(f"D1_COLUMN_NOTFOUND: Column not found ({column})")
        return row[column]

    async def run(self) -> QueryResult:
        result = self._database.execute_sync(self)
        return QueryResult(results=[], meta=result.meta)

    def __repr__(self) -> str:  # parameters left out on purpose: they may be secrets
        return f"LocalStatement({self.sql!r}, {len(self.params)} params)"


class LocalDatabase:
    """The `Database` port over one SQLite file (WAL, foreign keys on, D1's authorizer and limits)."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000) -> None:
        self.path = Path(path) if str(path) != ":memory:" else None
        private_file(path)
        connection = sqlite3.connect(
            str(path),
            isolation_level=None,  # no implicit transactions: autocommit, except inside our batches
            check_same_thread=False,  # guarded by self._lock instead
        )
        try:
            # Connection settings first: these PRAGMAs are refused once the authorizer is installed.
            connection.execute("PRAGMA journal_mode=WAL").fetchall()
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, D1_MAX_BOUND_PARAMETERS)
            connection.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, D1_MAX_STATEMENT_BYTES)
            connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, D1_MAX_VALUE_BYTES)
            connection.set_authorizer(self._authorize)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._lock = threading.RLock()
        # The authorizer lets transaction statements through only while this flag is set, i.e. while
        # the adapter itself issues BEGIN/COMMIT/ROLLBACK. sqlite3 caches prepared statements by their
        # text, and a cached statement is not re-authorized, so our control statements carry a token
        # that user SQL cannot reproduce: a user's "BEGIN IMMEDIATE" never hits our cached, allowed one.
        self._transaction_control_allowed = False
        self._control_tag = f"/* fastest-batch {secrets.token_hex(8)} */"

    # -- the port ----------------------------------------------------------------------------------

    def prepare(self, sql: str) -> LocalStatement:
        if not isinstance(sql, str):
            raise TypeError("prepare() takes SQL text")
        return LocalStatement(self, sql)

    async def batch(self, statements: Sequence[LocalStatement]) -> list[QueryResult]:
        """Run all statements in one transaction: all of them apply, or (on any error) none."""
        owned = [self._owned(statement) for statement in statements]
        with self._lock:
            self._begin()
            try:
                results = [self._execute_locked(statement) for statement in owned]
                self._commit()
            except BaseException:
                self._rollback()
                raise
        return results

    # -- for start-up code and the migration runner --------------------------------------------------

    def execute_sync(self, statement: LocalStatement) -> QueryResult:
        """Run one statement now (autocommit). Used by the async methods and by start-up code
        (migrations, admin commands) that runs before or outside the event loop."""
        statement = self._owned(statement)
        with self._lock:
            return self._execute_locked(statement)

    def run_migration_script(self, script: str, *, then: Sequence[LocalStatement] = ()) -> None:
        """Apply a migration file and its bookkeeping statements (`then`) in ONE transaction.

        Only for the migration runner. The script's statements still go through the authorizer and
        the limits (a migration that D1 would refuse fails here too); what is relaxed is only that the
        adapter itself wraps them in BEGIN/COMMIT, as wrangler does when it applies a migration.
        """
        statements = [self.prepare(sql) for sql in split_sql_script(script)]
        owned = [self._owned(statement) for statement in then]
        with self._lock:
            self._begin()
            try:
                for statement in [*statements, *owned]:
                    self._execute_locked(statement)
                self._commit()
            except BaseException:
                self._rollback()
                raise

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # -- internals ---------------------------------------------------------------------------------

    def _owned(self, statement: LocalStatement) -> LocalStatement:
        if not isinstance(statement, LocalStatement) or statement._database is not self:
            raise TypeError("statement was not prepared by this database")
        return statement

    def _authorize(
        self, action: int, arg1: str | None, arg2: str | None, db_name: str | None, source: str | None
    ) -> int:
        if action in _REFUSED_ACTIONS:
            return sqlite3.SQLITE_DENY
        if action in _TRANSACTION_ACTIONS:
            return sqlite3.SQLITE_OK if self._transaction_control_allowed else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_PRAGMA:
            return sqlite3.SQLITE_OK if (arg1 or "").lower() in D1_ALLOWED_PRAGMAS else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in D1_REFUSED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _control(self, verb: str) -> None:
        self._transaction_control_allowed = True
        try:
            self._connection.execute(f"{verb} {self._control_tag}")
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        finally:
            self._transaction_control_allowed = False

    def _begin(self) -> None:
        # IMMEDIATE takes the write lock up front, so another process (e.g. `fastest migrate`) cannot
        # make the batch fail half-way with SQLITE_BUSY on its first write.
        self._control("BEGIN IMMEDIATE")

    def _commit(self) -> None:
        self._control("COMMIT")  # may fail on deferred foreign keys; the caller then rolls back

    def _rollback(self) -> None:
        if self._connection.in_transaction:
            try:
                self._control("ROLLBACK")
            except DatabaseError:
                pass  # the original error is the one worth reporting

    def _check_limits(self, statement: LocalStatement) -> None:
        if _utf8_length_exceeds(statement.sql, D1_MAX_STATEMENT_BYTES):
            raise DatabaseError(_d1_error_text("statement too long", "SQLITE_TOOBIG"))
        if len(statement.params) > D1_MAX_BOUND_PARAMETERS:
            raise DatabaseError(_d1_error_text("too many SQL variables", "SQLITE_ERROR"))
        for value in statement.params:
            if isinstance(value, str):
                too_big = _utf8_length_exceeds(value, D1_MAX_VALUE_BYTES)
            elif isinstance(value, bytes):
                too_big = len(value) > D1_MAX_VALUE_BYTES
            else:
                continue
            if too_big:
                raise DatabaseError(_d1_error_text("string or blob too big", "SQLITE_TOOBIG"))

    def _execute_locked(self, statement: LocalStatement) -> QueryResult:
        rows, meta = self._query_locked(statement, first_only=False)
        return QueryResult(results=rows, meta=meta)

    def _first_row(self, statement: LocalStatement) -> dict[str, Any] | None:
        statement = self._owned(statement)
        with self._lock:
            rows, _ = self._query_locked(statement, first_only=True)
        return rows[0] if rows else None

    def _query_locked(
        self, statement: LocalStatement, *, first_only: bool
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        self._check_limits(statement)
        started = time.perf_counter()
        total_before = self._connection.total_changes
        try:
            cursor = self._connection.execute(statement.sql, statement.params)
            try:
                # `first()` stops after one row; a write's changes all happen on the first step, so
                # stopping early never leaves a write half done.
                raw_rows = cursor.fetchmany(1) if first_only else cursor.fetchall()
                names = [column[0] for column in cursor.description or ()]
                row_count = cursor.rowcount
                last_row_id = cursor.lastrowid
            finally:
                cursor.close()
        except sqlite3.Error as exc:
            raise _translate(exc) from exc
        except UnicodeEncodeError as exc:  # a str holding lone surrogates cannot become UTF-8 text
            raise DatabaseError("D1_TYPE_ERROR: string is not valid Unicode text") from exc
        rows = [dict(zip(names, raw)) for raw in raw_rows]
        written = self._connection.total_changes - total_before
        meta = {
            "changes": max(row_count, 0),
            "last_row_id": last_row_id or 0,
            "changed_db": written > 0,
            # D1 counts rows scanned; SQLite's counters are not reachable from Python, so these are
            # approximations: rows returned, and rows changed (cascades included).
            "rows_read": len(rows),
            "rows_written": written,
            "duration": (time.perf_counter() - started) * 1000.0,
        }
        return rows, meta
