"""JavaScript and TypeScript through Pygments' lexers (pure Python, in Pyodide's package list, so the
index of a snapshot is the same on both runtimes), reading declarations, exports and imports from
the token stream with a brace-depth tracker — no regular expressions over source text.

Symbols: top-level `function`, `class`, `const/let/var` (a function when its value is an arrow or
`function` expression, else a constant), `interface`, `type`, `enum`; methods of classes. Exports:
`export` before a declaration, `export default`, `export { a, b }`. Imports: `import … from 'x'`,
`import 'x'`, `export … from 'x'` (re-exports), `require('x')`, `import('x')`. Relative specifiers
resolve to files of the tree with the usual extensions and index files; bare ones are packages.

A lexer never fails on bad input (it emits `Error` tokens); unbalanced braces or error tokens make
the file "did not parse": a module without symbols.
"""

from __future__ import annotations

import posixpath
from .facts import FileFacts, Import, Symbol, count_todos, first_line, line_count

EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_RESOLVE_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_INDEX_FILES = tuple(f"index{ext}" for ext in (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"))
_DECLARATIONS = {"function": "function", "class": "class", "interface": "interface", "enum": "enum", "type": "type",
                 "const": "constant", "let": "constant", "var": "constant"}
# Words that really are keywords; Pygments also marks some identifiers as keywords (`double`, types).
_RESERVED = {"break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else",
             "export", "extends", "finally", "for", "function", "if", "import", "in", "instanceof", "new", "return",
             "super", "switch", "this", "throw", "try", "typeof", "var", "void", "while", "with", "yield", "let",
             "static", "enum", "await", "implements", "package", "protected", "interface", "private", "public",
             "async", "from", "as", "type", "declare", "abstract", "readonly"}
_METHOD_MODIFIERS = {"async", "static", "get", "set", "public", "private", "protected", "readonly", "override",
                     "abstract", "*"}


def language_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith((".ts", ".tsx", ".mts", ".cts")):
        return "typescript"
    if lower.endswith((".js", ".jsx", ".mjs", ".cjs")):
        return "javascript"
    return None


def _lexer(language: str):
    if language == "typescript":
        from pygments.lexers.javascript import TypeScriptLexer

        return TypeScriptLexer(stripnl=False, ensurenl=False)
    from pygments.lexers.javascript import JavascriptLexer

    return JavascriptLexer(stripnl=False, ensurenl=False)


def import_candidates(path: str, spec: str) -> tuple[str, ...]:
    """The repository paths a relative specifier may mean (extensions, then index files)."""
    base = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
    if base.startswith("../") or base == "..":
        return ()
    base = base.lstrip("./") if base.startswith("./") else base
    candidates: list[str] = []
    stem, ext = posixpath.splitext(base)
    if ext in (".js", ".jsx", ".mjs", ".cjs"):  # TypeScript's "./x.js" means ./x.ts
        candidates.append(base)
        candidates += [stem + e for e in (".ts", ".tsx", ".mts", ".cts")]
    elif ext in _RESOLVE_EXTENSIONS or ext in (".json", ".css", ".vue", ".svelte"):
        candidates.append(base)
    candidates += [base + e for e in _RESOLVE_EXTENSIONS]
    candidates += [f"{base}/{index}" for index in _INDEX_FILES]
    seen: dict[str, None] = {}
    for candidate in candidates:
        seen.setdefault(candidate, None)
    return tuple(seen)


_KINDS: dict = {}


def _kind_of(ttype) -> str:
    """The coarse kind of a Pygments token type (cached: there are few types)."""
    kind = _KINDS.get(ttype)
    if kind is None:
        name = str(ttype)
        kind = ("comment" if name.startswith("Token.Comment") else "error" if name.startswith("Token.Error")
                else "string" if "String" in name else "keyword" if "Keyword" in name else "name" if "Name" in name
                else "punct" if "Punctuation" in name else "op" if "Operator" in name
                else "space" if name.startswith(("Token.Text", "Token.Whitespace")) else "other")
        _KINDS[ttype] = kind
    return kind


def _significant(language: str, text: str) -> tuple[list[tuple[str, str, int]], dict[int, str], int]:
    """(tokens as (kind, value, line), the comment ending on each line, error token count)."""
    tokens: list[tuple[str, str, int]] = []
    comments: dict[int, str] = {}
    errors = 0
    line = 1
    for _, ttype, value in _lexer(language).get_tokens_unprocessed(text):
        kind = _kind_of(ttype)
        newlines = value.count("\n")
        if kind == "comment":
            comments[line + newlines] = value
        elif kind == "error":
            errors += 1
        elif kind == "space":
            if value.strip():
                tokens.append(("other", value.strip(), line))
        else:
            tokens.append((kind, value if kind == "string" else value.strip(), line))
        line += newlines
    return tokens, comments, errors


def _unquote(value: str) -> str | None:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`":
        inner = value[1:-1]
        return None if "${" in inner else inner
    return None


def extract(path: str, data: bytes) -> FileFacts:
    language = language_of(path) or "javascript"
    text = data.decode("utf-8", errors="replace")
    try:
        tokens, comments, errors = _significant(language, text)
    except Exception as exc:  # a lexer bug must not fail an index
        return FileFacts(path=path, language=language, parse_error=f"lexer failed: {type(exc).__name__}",
                         lines=line_count(data), todo_count=count_todos(data))
    lines = text.splitlines()
    symbols: list[Symbol] = []
    imports: list[Import] = []
    external: set[str] = set()
    exported_names: set[str] = set()
    depth = 0
    paren = 0
    open_symbols: list[tuple[int, int]] = []  # (index into symbols, depth it closes at)
    classes: list[tuple[str, int]] = []  # (class name, body depth)
    pending_export = False
    pending_default = False
    n = len(tokens)

    def add_import(spec: str, names: tuple[str, ...] = (), reexport: bool = False) -> None:
        if spec.startswith("."):
            imports.append(Import(spec=spec, candidates=import_candidates(path, spec), names=names, reexport=reexport))
        else:
            package = spec.split("/")[0] if not spec.startswith("@") else "/".join(spec.split("/")[:2])
            external.add(package)
            imports.append(Import(spec=spec, candidates=(), names=names, reexport=reexport))

    def doc_before(line: int) -> str:
        comment = comments.get(line - 1)
        return first_line(comment.strip("/* \n")) if comment else ""

    def source_line(line: int) -> str:
        return lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""

    def read_names(i: int) -> tuple[tuple[str, ...], int]:
        """Names of an import/export clause up to `from` or `;`; returns (names, index of `from`/end)."""
        names: list[str] = []
        while i < n and not (tokens[i][0] == "keyword" and tokens[i][1] == "from") and tokens[i][1] != ";":
            kind, value, _ = tokens[i]
            if kind == "string" and i > 0 and tokens[i - 1][1] in ("import", "export"):
                break
            if kind in ("name", "keyword") and value not in ("as", "type", "import", "export", "typeof"):
                if not (i > 0 and tokens[i - 1][1] == "as"):
                    names.append(value)
                else:
                    names[-1:] = [value]
            i += 1
            if tokens[i - 1][1] == "}" and (i >= n or tokens[i][1] != ","):
                if i < n and tokens[i][1] != "from":
                    break
        return tuple(names), i

    i = 0
    while i < n:
        kind, value, line = tokens[i]
        if value == "{" and kind == "punct":
            depth += 1
        elif value == "}" and kind == "punct":
            depth -= 1
            while open_symbols and open_symbols[-1][1] == depth:
                index, _ = open_symbols.pop()
                symbols[index] = _with_end(symbols[index], line)
            while classes and classes[-1][1] > depth:
                classes.pop()
        elif value in ("(", "[") and kind == "punct":
            paren += 1
        elif value in (")", "]") and kind == "punct":
            paren -= 1
        if depth < 0:
            break
        at_top = depth == 0 and paren == 0
        if kind == "keyword" and value == "import" and at_top:
            nxt = tokens[i + 1] if i + 1 < n else ("", "", 0)
            if nxt[0] == "string":
                spec = _unquote(nxt[1])
                if spec is not None:
                    add_import(spec)
                i += 2
                continue
            if nxt[1] != "(":
                names, j = read_names(i + 1)
                if j + 1 < n and tokens[j][1] == "from" and tokens[j + 1][0] == "string":
                    spec = _unquote(tokens[j + 1][1])
                    if spec is not None:
                        add_import(spec, names)
                    i = j + 2
                    continue
        if kind == "keyword" and value == "export" and at_top:
            nxt = tokens[i + 1] if i + 1 < n else ("", "", 0)
            if nxt[1] in ("{", "*"):
                names, j = read_names(i + 1)
                if j + 1 < n and tokens[j][1] == "from" and tokens[j + 1][0] == "string":
                    spec = _unquote(tokens[j + 1][1])
                    if spec is not None:
                        add_import(spec, names or ("*",), reexport=True)
                    i = j + 2
                    continue
                exported_names.update(names)
                # fall through: the braces are counted as we go
            else:
                pending_export = True
                i += 1
                continue
        if kind == "keyword" and value == "default" and pending_export:
            pending_default = True
            i += 1
            continue
        if (kind == "name" and value == "require" or kind == "keyword" and value == "import") and i + 2 < n \
                and tokens[i + 1][1] == "(" and tokens[i + 2][0] == "string":
            spec = _unquote(tokens[i + 2][1])
            if spec is not None:
                add_import(spec)
        declared = _DECLARATIONS.get(value) if kind == "keyword" and at_top else None
        if declared == "type" and not (i + 1 < n and _is_name(tokens[i + 1]) and i + 2 < n and tokens[i + 2][1] in ("=", "<")):
            declared = None
        if declared is not None and i + 1 < n:
            j = i + 1
            if tokens[j][1] == "*":  # function*
                j += 1
            if _is_name(tokens[j]) or (declared == "class" and tokens[j][1] == "{"):
                name = tokens[j][1] if _is_name(tokens[j]) else "default"
                symbol_kind = declared
                braced = declared in ("function", "class", "interface", "enum")
                if declared == "constant":
                    shape = _value_shape(tokens, j + 1)
                    if shape is not None:
                        symbol_kind, braced = "function", shape
                    elif not name.isupper() and not pending_export:
                        symbol_kind = ""  # a plain local binding at module level: not a concept
                if symbol_kind:
                    symbols.append(Symbol(name=name, kind=symbol_kind, start_line=line, end_line=line,
                                          signature=source_line(line), doc=doc_before(line),
                                          exported=pending_export or name in exported_names))
                    if braced:
                        open_symbols.append((len(symbols) - 1, depth))
                    if symbol_kind == "class":
                        classes.append((name, depth + 1))
                pending_export = pending_default = False
                i = j + 1
                continue
        if pending_default and kind != "keyword":  # `export default <expression>`
            pending_export = pending_default = False
        if classes and depth == classes[-1][1] and paren == 0 and kind in ("name", "keyword") \
                and value not in _METHOD_MODIFIERS and i + 1 < n and tokens[i + 1][1] in ("(", "<") \
                and (i == 0 or tokens[i - 1][1] in _METHOD_MODIFIERS | {";", "}", "{"}):
            class_name = classes[-1][0]
            symbols.append(Symbol(name=f"{class_name}.{value}", kind="method", start_line=line, end_line=line,
                                  signature=source_line(line), doc=doc_before(line),
                                  exported=not value.startswith("#") and (i == 0 or tokens[i - 1][1] != "private"),
                                  parent=class_name))
            open_symbols.append((len(symbols) - 1, depth))
        if pending_export and not (kind == "keyword" and value in ("async", "declare", "abstract")):
            pending_export = False
        i += 1
    parse_error = None
    if errors or depth != 0:
        parse_error = f"{errors} token(s) the {language} lexer could not read" if errors else "unbalanced braces"
    if parse_error:
        return FileFacts(path=path, language=language, parse_error=parse_error, lines=line_count(data),
                         todo_count=count_todos(data))
    if exported_names:
        symbols = [s if s.exported or s.name not in exported_names else _exported(s) for s in symbols]
    file_doc = ""
    if comments and min(comments) <= 3:
        file_doc = first_line(comments[min(comments)].strip("/* \n"))
    return FileFacts(path=path, language=language, symbols=tuple(symbols), imports=tuple(imports),
                     external=tuple(sorted(external)), lines=line_count(data), todo_count=count_todos(data), doc=file_doc)


def _is_name(token: tuple[str, str, int]) -> bool:
    kind, value, _ = token
    return kind == "name" or (kind == "keyword" and value.isidentifier() and value not in _RESERVED)


def _value_shape(tokens: list[tuple[str, str, int]], start: int) -> bool | None:
    """After a `const NAME`: None when the value is not a function; else whether its body is a
    `{ … }` block (an arrow with an expression body has none)."""
    n = len(tokens)
    k = start
    while k < n and k < start + 40 and tokens[k][1] not in ("=", ";"):
        k += 1  # a type annotation
    if k >= n or tokens[k][1] != "=":
        return None
    k += 1
    if k < n and tokens[k][1] == "async":
        k += 1
    if k < n and tokens[k][1] == "function":
        return True
    level = 0
    for m in range(k, min(n, k + 400)):
        value = tokens[m][1]
        if value in ("(", "<") and tokens[m][0] in ("punct", "op"):
            level += 1
        elif value in (")", ">") and tokens[m][0] in ("punct", "op"):
            level -= 1
        elif value == "=>" and level <= 0:
            return m + 1 < n and tokens[m + 1][1] == "{"
        elif level <= 0 and value in (";", "{", "}") or (m == k and tokens[m][0] != "punct" and tokens[m + 1][1] != "=>"):
            return None
    return None


def _with_end(symbol: Symbol, line: int) -> Symbol:
    return Symbol(name=symbol.name, kind=symbol.kind, start_line=symbol.start_line, end_line=max(line, symbol.start_line),
                  signature=symbol.signature, doc=symbol.doc, exported=symbol.exported, parent=symbol.parent)


def _exported(symbol: Symbol) -> Symbol:
    return Symbol(name=symbol.name, kind=symbol.kind, start_line=symbol.start_line, end_line=symbol.end_line,
                  signature=symbol.signature, doc=symbol.doc, exported=True, parent=symbol.parent)
