"""`Database` over the D1 binding (`env.DB`).

The port is shaped like D1, so this adapter only converts: rows to plain dicts (BLOB columns arrive
as lists of ints and become `bytes`), results to `QueryResult`, and JS errors to `DatabaseError` /
`ConstraintError`. Limits (100 parameters, statement size, 2 MB values) are D1's own; the local
Database reproduces them so they are met in tests first.
"""

from __future__ import annotations

from typing import Any, Sequence

from fastest.platform.cloudflare.interop import error_message, field, from_js
from fastest.ports import ConstraintError, DatabaseError, QueryResult

# Kept from D1's `meta`: what callers and logs use. (D1 also reports served_by, size_after, …)
META_FIELDS = ("changes", "last_row_id", "duration", "rows_read", "rows_written", "changed_db")


def _database_error(exc: BaseException) -> DatabaseError:
    """D1 reports every failure as an Error whose message carries SQLite's text, e.g.
    `D1_ERROR: UNIQUE constraint failed: users.email: SQLITE_CONSTRAINT`."""
    message = error_message(exc)
    if "constraint" in message.lower():
        return ConstraintError(message)
    return DatabaseError(message)


def _row(row: Any) -> dict[str, Any]:
    """A result row as a dict; a list value can only be a BLOB (D1 returns text for JSON)."""
    return {name: bytes(value) if isinstance(value, list) else value for name, value in from_js(row).items()}


def _value(value: Any) -> Any:
    value = from_js(value)
    return bytes(value) if isinstance(value, list) else value


def query_result(result: Any) -> QueryResult:
    """`QueryResult` from D1's `{results: [...], success, meta: {...}}`."""
    rows = field(result, "results") or []
    meta = from_js(field(result, "meta")) or {}
    return QueryResult(
        results=[_row(r) for r in from_js(rows)],
        meta={k: meta[k] for k in META_FIELDS if k in meta},
    )


class D1Statement:
    """A prepared statement with its parameters. `bind` returns a new statement (D1 semantics):
    the JS statement is prepared and bound only when it runs, so a statement can be reused."""

    __slots__ = ("_binding", "sql", "params")

    def __init__(self, binding: Any, sql: str, params: tuple[Any, ...] = ()) -> None:
        self._binding = binding
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> "D1Statement":
        return D1Statement(self._binding, self.sql, params)

    def to_js(self) -> Any:
        """The D1PreparedStatement this stands for (what `batch` sends)."""
        statement = self._binding.prepare(self.sql)
        return statement.bind(*self.params) if self.params else statement

    async def all(self) -> QueryResult:
        try:
            result = await self.to_js().all()
        except Exception as exc:  # only the binding call: a JS error → a DatabaseError value
            raise _database_error(exc) from exc
        return query_result(result)

    async def run(self) -> QueryResult:
        try:
            result = await self.to_js().run()
        except Exception as exc:
            raise _database_error(exc) from exc
        return query_result(result)

    async def first(self, column: str | None = None) -> Any:
        """The first row as a dict (or None), or with `column` that row's value (D1 fails when the
        column does not exist)."""
        try:
            statement = self.to_js()
            result = await (statement.first(column) if column is not None else statement.first())
        except Exception as exc:
            raise _database_error(exc) from exc
        value = from_js(result)
        if value is None:
            return None
        return _value(value) if column is not None else _row(value)


class D1Database:
    """`Database` over a D1 binding."""

    def __init__(self, binding: Any) -> None:
        self._binding = binding

    def prepare(self, sql: str) -> D1Statement:
        return D1Statement(self._binding, sql)

    async def batch(self, statements: Sequence[D1Statement]) -> list[QueryResult]:
        """All statements in one implicit transaction: D1's only atomic unit."""
        if not statements:
            return []
        try:
            results = await self._binding.batch([s.to_js() for s in statements])
        except Exception as exc:
            raise _database_error(exc) from exc
        return [query_result(r) for r in (from_js(results) or [])]
