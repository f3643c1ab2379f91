"""Parsing text someone else wrote (a committed file, a request body): any failure is a value, never
an exception that stops the caller.

Python's JSON and TOML parsers recurse: a document nested a few thousand levels deep raises
`RecursionError` (not the parser's own error), which a caller catching `ValueError` lets through,
and one hostile file then stops the analysis of a whole tree, or a request answers 500. These
helpers catch everything a parser can raise on bad input.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

# What parsing hostile text can raise: the parsers' own errors (ValueError subclasses), recursion
# too deep for the interpreter, and memory exhausted by a huge document.
PARSE_ERRORS = (ValueError, RecursionError, MemoryError, UnicodeDecodeError)


class Unparseable(ValueError):
    """The text is not a document of that format (including one nested too deep to parse)."""


def parse_json(text: str | bytes) -> Any:
    """`json.loads`, raising `Unparseable` for anything it cannot turn into a value."""
    try:
        return json.loads(text)
    except PARSE_ERRORS as exc:
        raise Unparseable(f"not JSON: {_reason(exc)}") from None


def parse_toml(text: str) -> dict[str, Any]:
    """`tomllib.loads`, raising `Unparseable` for anything it cannot turn into a table."""
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
