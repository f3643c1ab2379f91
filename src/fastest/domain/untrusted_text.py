"""Parsing text someone else wrote (a committed file, a request body): any failure is a value, never
an exception that stops the caller.

Python's JSON and TOML parsers recurse: a document nested a few thousand levels deep raises
`RecursionError` (not the parser's own error), which a caller catching `ValueError` lets through,
and one hostile file then stops the analysis of a whole tree, or a request answers 500. These
helpers catch everything a parser can raise on bad input.
"""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the CLI's start-up (see domain.manifest)
if TYPE_CHECKING:
    from typing import Any

# What parsing hostile text can raise: the parsers' own errors (ValueError subclasses), recursion
# too deep for the interpreter, and memory exhausted by a huge document.
PARSE_ERRORS = (ValueError, RecursionError, MemoryError, UnicodeDecodeError)


# Deeper than any document this service reads, and shallow enough for every parser's stack. On the
# Worker (Pyodide) the WebAssembly stack runs out long before Python's recursion limit, and that
# overflow is fatal to the whole isolate rather than a RecursionError: so depth is checked before
# parsing, not left to the parser.
MAX_JSON_DEPTH = 512

_JSON_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = re.compile(rb"[^\[\]{}]+")


class Unparseable(ValueError):
    """The text is not a document of that format (including one nested too deep to parse)."""


def json_too_deep(data: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects more than `limit` levels deep (brackets inside
    strings do not count). Linear, and free for documents with fewer brackets than `limit`."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _NOT_BRACKETS.sub(b"", _JSON_STRINGS.sub(b"", raw)):
        depth += 1 if byte in b"[{" else -1
        if depth > limit:
            return True
    return False


def parse_json(text: str | bytes) -> Any:
    """`json.loads`, raising `Unparseable` for anything it cannot turn into a value."""
    if json_too_deep(text):
        raise Unparseable("not JSON: nested too deeply")
    try:
        return json.loads(text)
    except PARSE_ERRORS as exc:
        raise Unparseable(f"not JSON: {_reason(exc)}") from None


def parse_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, raising `Unparseable` for anything it cannot turn into a table."""
    import tomllib  # imported here: it imports datetime, which the CLI's push and status never need

    try:
        return tomllib.loads(text)
    except PARSE_ERRORS as exc:
        raise Unparseable(f"not TOML: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if isinstance(exc, MemoryError):
        return "too large"
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
