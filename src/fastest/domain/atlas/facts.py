"""What the Atlas knows about one file, from its bytes alone: its symbols and what it imports.

Pure data, produced by the language extractors (`python.py`, `javascript.py`) and consumed by the
service that stores concepts and edges. Import targets are *candidates* (repository paths the import
may mean, in preference order); which one exists is decided against the tree (`resolve.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SymbolKind = str  # class | function | method | constant | interface | type | enum


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str  # qualified within the file: "Widget.render"
    kind: SymbolKind
    start_line: int
    end_line: int
    signature: str = ""
    doc: str = ""
    exported: bool = True
    parent: str | None = None  # the qualified name of the enclosing class
    signatures: tuple[str, ...] = ()  # every declaration's first line, when several make one symbol
    detail: str = ""  # the rest of its documentation, for search (up to DETAIL_MAX characters)

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class Import:
    spec: str  # as written: "..models", "./util", "fastest.domain.tree"
    candidates: tuple[str, ...]  # repository paths it may resolve to, best first
    suffix: bool = False  # an absolute Python import: a candidate may sit under a source root (src/…)
    names: tuple[str, ...] = ()
    reexport: bool = False


@dataclass(frozen=True, slots=True)
class FileFacts:
    path: str
    language: str | None  # None: not a source file the Atlas parses (still a module)
    symbols: tuple[Symbol, ...] = ()
    imports: tuple[Import, ...] = ()
    external: tuple[str, ...] = ()  # packages imported from outside the tree ("react", "numpy")
    parse_error: str | None = None  # the file did not parse: a module without symbols
    lines: int = 0
    todo_count: int = 0
    doc: str = ""
    extra: dict = field(default_factory=dict)


# When one name is declared several times (overloads, a getter and its setter, an interface merged
# with a class), the symbol takes the most telling kind.
_KIND_ORDER = ("class", "function", "method", "enum", "interface", "type", "constant")


def merge_symbols(symbols: list[Symbol]) -> list[Symbol]:
    """One symbol per qualified name: overloads, accessors and merged declarations become one, spanning
    all of them, with every declaration's signature listed."""
    merged: dict[str, Symbol] = {}
    for symbol in symbols:
        first = merged.get(symbol.name)
        if first is None:
            merged[symbol.name] = symbol
            continue
        kinds = sorted((first.kind, symbol.kind), key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else len(_KIND_ORDER))
        signatures = first.signatures or (first.signature,)
        if symbol.signature not in signatures:
            signatures += (symbol.signature,)
        lead = first if first.kind == kinds[0] else symbol
        merged[symbol.name] = Symbol(
            name=first.name, kind=kinds[0], start_line=min(first.start_line, symbol.start_line),
            end_line=max(first.end_line, symbol.end_line), signature=lead.signature, doc=first.doc or symbol.doc,
            exported=first.exported or symbol.exported, parent=first.parent, signatures=signatures,
            detail=first.detail or symbol.detail)
    return list(merged.values())


_TODO = re.compile(rb"\b(?:TODO|FIXME)\b")


def count_todos(data: bytes) -> int:
    return len(_TODO.findall(data))


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def first_paragraph(text: str | None, limit: int = 300) -> str:
    """A docstring's or doc comment's first paragraph on one line: what search reads and a result
    shows (up to a blank line or the first `@tag`)."""
    if not text:
        return ""
    words: list[str] = []
    for line in text.strip().splitlines():
        line = line.strip().lstrip("/*").rstrip("*/").strip()
        if not line:
            if words:
                break
            continue
        if line.startswith("@"):
            break
        words.append(line)
    joined = " ".join(words)
    return joined if len(joined) <= limit else joined[: limit - 1].rsplit(" ", 1)[0] + "…"


DETAIL_MAX = 300


def doc_detail(text: str | None, limit: int = DETAIL_MAX) -> str:
    """A docstring's or doc comment's text after its first paragraph, on one line, without `@tag`
    lines: more words for search to find the symbol by."""
    if not text:
        return ""
    lines = [line.strip().lstrip("/*").rstrip("*/").strip() for line in text.strip().splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    rest = lines[next((i for i, line in enumerate(lines) if not line), len(lines)):]
    joined = " ".join(line for line in rest if line and not line.startswith("@"))
    return joined[:limit]


def first_line(text: str | None, limit: int = 200) -> str:
    if not text:
        return ""
    for line in text.strip().splitlines():
        line = line.strip().strip("*/ ").strip()
        if line:
            return line[:limit]
    return ""
