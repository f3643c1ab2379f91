"""Does a changed file still parse? One checker per file extension.

`PARSE_CHECKERS` maps an extension to a function that raises on a file that does not parse. The
Atlas branch registers its parsers here after merging (e.g. `PARSE_CHECKERS.update(atlas_checkers)`
for JavaScript/TypeScript through its tree-sitter parsers), so a run's checks cover what the Atlas
parses without this module knowing about it.
"""

from __future__ import annotations

import json
import posixpath
import tomllib
from typing import Callable

ParseChecker = Callable[[str, str], None]  # (path, text) -> None, raises when it does not parse


def _python(path: str, text: str) -> None:
    compile(text, path, "exec", dont_inherit=True)


def _json(path: str, text: str) -> None:
    json.loads(text)


def _toml(path: str, text: str) -> None:
    tomllib.loads(text)


def _yaml(path: str, text: str) -> None:
    import yaml  # a Pyodide package; only loaded when a YAML file is checked

    list(yaml.safe_load_all(text))


PARSE_CHECKERS: dict[str, ParseChecker] = {
    "py": _python, "pyi": _python, "json": _json, "toml": _toml, "yaml": _yaml, "yml": _yaml,
}


def extension(path: str) -> str:
    name = posixpath.basename(path)
    return name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""


def check_parses(path: str, data: bytes) -> str | None:
    """Why the file at `path` does not parse, or None when it does (or no checker knows its kind)."""
    checker = PARSE_CHECKERS.get(extension(path))
    if checker is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8 text"
    try:
        checker(path, text)
    except Exception as exc:  # any parser error is a failed check
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        return f"does not parse as {extension(path).upper()}: {type(exc).__name__}{where}: {str(exc)[:200]}"
    return None
