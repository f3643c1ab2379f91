"""The Atlas: a project's knowledge graph, extracted from file bytes by real parsers.

`extract(path, data)` → `FileFacts` (symbols, imports) for the languages indexed: Python (`ast`),
JavaScript, TypeScript, Go and Java (Pygments' lexers). Any other file is a module without symbols.
Each symbol is one per qualified name: overloads and merged declarations list their signatures.
"""

from __future__ import annotations

from dataclasses import replace

from .facts import FileFacts, Import, Symbol, count_todos, line_count, merge_symbols

PYTHON_EXTENSIONS = (".py", ".pyi")
MAX_SOURCE_BYTES = 512 * 1024  # larger files are modules without symbols (generated or vendored code)
SYSTEM_MARKERS = ("package.json", "pyproject.toml", "setup.py", "go.mod", "Cargo.toml", "pom.xml", "build.gradle",
                  "wrangler.toml", "Gemfile", "composer.json")


def language_of(path: str) -> str | None:
    from .javascript import language_of as js_language

    if path.endswith(PYTHON_EXTENSIONS):
        return "python"
    if path.endswith(".go"):
        return "go"
    if path.endswith(".java"):
        return "java"
    return js_language(path)


def is_test_path(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    parts = path.split("/")
    return (name.startswith("test_") or name.endswith(("_test.py", "_test.go", "Test.java", "Tests.java", ".test.ts", ".test.js", ".spec.ts", ".spec.js",
                                                        ".test.tsx", ".spec.tsx", ".test.jsx"))
            or any(p in ("tests", "test", "__tests__", "spec") for p in parts[:-1]))


def extract(path: str, data: bytes) -> FileFacts:
    """Symbols and imports of one file; a file that does not parse is a module without symbols
    whose `parse_error` says why; never raises for bad input."""
    language = language_of(path)
    if language is None:
        from .javascript_resolution import resolution_config

        config = resolution_config(path, data) if len(data) <= MAX_SOURCE_BYTES else None
        return FileFacts(path=path, language=None, lines=line_count(data), todo_count=count_todos(data),
                         extra={"resolution": config} if config else {})
    if len(data) > MAX_SOURCE_BYTES or b"\x00" in data[:8192]:
        return FileFacts(path=path, language=language, parse_error="too large or binary to parse",
                         lines=line_count(data), todo_count=0)
    if language == "python":
        from .python import extract as python_extract

        return python_extract(path, data)
    if language in ("go", "java"):
        from .golang import extract_go, extract_java

        try:
            facts = (extract_go if language == "go" else extract_java)(path, data)
            return replace(facts, symbols=tuple(merge_symbols(list(facts.symbols))))
        except Exception as exc:  # a lexer surprise must not fail an index
            return FileFacts(path=path, language=language, parse_error=f"lexer failed: {type(exc).__name__}",
                             lines=line_count(data), todo_count=count_todos(data))
    from .javascript import extract as js_extract

    return js_extract(path, data)


__all__ = ["FileFacts", "Import", "Symbol", "extract", "language_of", "is_test_path", "SYSTEM_MARKERS"]
