"""Go and Java through Pygments' lexers (pure Python, the same on both runtimes), read from the token
stream with a brace-depth tracker, like `javascript.py`.

Go: top-level `func` (functions; with a receiver, methods of the receiver's type), `type` (structs
as classes, interfaces, other types), `const` (single and grouped); exported = capitalised. Imports
name packages, i.e. directories: `dir:` candidates resolved by path suffix (the module path of
`go.mod` is a prefix the tree does not have), so `example.com/shop/internal/store` finds
`internal/store/`.

Java: classes, interfaces, enums and records (nested ones too), methods and constructors (Pygments
marks them `Name.Function`), `static final` constants; exported = `public`. Imports: `a.b.C` →
`a/b/C.java` under any source root (`src/main/java/…`), `a.b.*` → the directory.
"""

from __future__ import annotations

from .facts import FileFacts, Import, Symbol, count_todos, first_line, line_count


def _tokens(lexer, text: str) -> tuple[list[tuple[str, str, int]], dict[int, str], int]:
    """(tokens, comments by the line they end on, the first line with a character the lexer could not
    read — 0 when none)."""
    tokens: list[tuple[str, str, int]] = []
    comments: dict[int, str] = {}
    errors = 0
    line = 1
    for _, ttype, value in lexer.get_tokens_unprocessed(text):
        name = str(ttype)
        newlines = value.count("\n")
        if name.startswith("Token.Comment"):
            comments[line + newlines] = value
        elif name.startswith("Token.Error"):
            errors = errors or line
        elif value.strip():
            tokens.append((name, value.strip(), line))
        line += newlines
    return tokens, comments, errors


def _doc(comments: dict[int, str], line: int) -> str:
    comment = comments.get(line - 1)
    return first_line(comment.strip("/* \n")) if comment else ""


def _unbalanced(tokens: list[tuple[str, str, int]]) -> str:
    """Where the braces stop matching: "line N: unexpected `}`" or "line N: `{` is never closed"."""
    opened: list[int] = []
    for name, value, line in tokens:
        if "Punctuation" in name and value in ("{", "}"):
            if value == "{":
                opened.append(line)
            elif not opened:
                return f"line {line}: unexpected `}}`"
            else:
                opened.pop()
    return f"line {opened[0]}: `{{` is never closed" if opened else "braces do not match"


def _finish(path: str, language: str, data: bytes, symbols: list[Symbol], imports: list[Import], external: set[str],
            errors: int, depth: int, comments: dict[int, str], tokens: list[tuple[str, str, int]]) -> FileFacts:
    if errors or depth != 0:
        why = (f"line {errors}: a character the {language} lexer could not read" if errors
               else f"braces do not match: {_unbalanced(list(tokens))}")
        return FileFacts(path=path, language=language, lines=line_count(data), todo_count=count_todos(data), parse_error=why)
    doc = first_line(comments[min(comments)].strip("/* \n")) if comments and min(comments) <= 3 else ""
    return FileFacts(path=path, language=language, symbols=tuple(symbols), imports=tuple(imports),
                     external=tuple(sorted(external)), lines=line_count(data), todo_count=count_todos(data), doc=doc)


def _closer(symbols: list[Symbol], open_symbols: list[tuple[int, int]], depth: int, line: int) -> None:
    while open_symbols and open_symbols[-1][1] == depth:
        index, _ = open_symbols.pop()
        s = symbols[index]
        symbols[index] = Symbol(s.name, s.kind, s.start_line, max(line, s.start_line), s.signature, s.doc, s.exported, s.parent)


def extract_go(path: str, data: bytes) -> FileFacts:
    from pygments.lexers.go import GoLexer

    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    tokens, comments, errors = _tokens(GoLexer(stripnl=False, ensurenl=False), text)
    symbols: list[Symbol] = []
    imports: list[Import] = []
    external: set[str] = set()
    open_symbols: list[tuple[int, int]] = []
    depth = paren = 0
    block: str | None = None  # "import" | "const" while inside `import ( … )` / `const ( … )`
    last_line = 0
    n = len(tokens)

    def sig(line: int) -> str:
        return lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""

    def add_import(raw: str) -> None:
        spec = raw.strip('"`')
        if "." in spec.split("/")[0]:
            imports.append(Import(spec=spec, candidates=(f"dir:{spec}",), suffix=True))
        else:
            external.add(spec)

    i = 0
    while i < n:
        kind, value, line = tokens[i]
        if value == "{":
            depth += 1
        elif value == "}":
            depth -= 1
            _closer(symbols, open_symbols, depth, line)
        elif value == "(":
            paren += 1
        elif value == ")":
            paren -= 1
            if paren == 0:
                block = None
        top = depth == 0
        if top and value == "import" and i + 1 < n:
            if tokens[i + 1][1] == "(":
                block = "import"
            elif "String" in tokens[i + 1][0]:
                add_import(tokens[i + 1][1])
        elif top and block == "import" and "String" in kind:
            add_import(value)
        elif top and value == "const" and i + 1 < n:
            if tokens[i + 1][1] == "(":
                block = "const"
            elif "Name" in tokens[i + 1][0]:
                name = tokens[i + 1][1]
                symbols.append(Symbol(name, "constant", line, line, sig(line), _doc(comments, line), name[:1].isupper()))
        elif top and block == "const" and paren == 1 and "Name" in kind and line != last_line and tokens[i - 1][2] != line:
            symbols.append(Symbol(value, "constant", line, line, sig(line), _doc(comments, line), value[:1].isupper()))
        elif top and paren == 0 and value == "type" and i + 2 < n and "Name" in tokens[i + 1][0]:
            name, what = tokens[i + 1][1], tokens[i + 2][1]
            symbol_kind = "class" if what == "struct" else "interface" if what == "interface" else "type"
            symbols.append(Symbol(name, symbol_kind, line, line, sig(line), _doc(comments, line), name[:1].isupper()))
            if symbol_kind != "type":
                open_symbols.append((len(symbols) - 1, 0))
        elif top and paren == 0 and value == "func" and i + 1 < n:
            j, receiver = i + 1, None
            if tokens[j][1] == "(":  # a method: func (r *Type) Name(
                level, k = 0, j
                while k < n:
                    if tokens[k][1] == "(":
                        level += 1
                    elif tokens[k][1] == ")":
                        level -= 1
                        if level == 0:
                            break
                    elif "Name" in tokens[k][0]:
                        receiver = tokens[k][1]
                    k += 1
                j = k + 1
            if j < n and "Name" in tokens[j][0]:
                name = tokens[j][1]
                qualified = f"{receiver}.{name}" if receiver else name
                symbols.append(Symbol(qualified, "method" if receiver else "function", line, line, sig(line),
                                      _doc(comments, line), name[:1].isupper(), receiver))
                open_symbols.append((len(symbols) - 1, 0))
        last_line = line
        i += 1
    return _finish(path, "go", data, symbols, imports, external, errors, depth, comments, tokens)


def extract_java(path: str, data: bytes) -> FileFacts:
    from pygments.lexers.jvm import JavaLexer

    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    tokens, comments, errors = _tokens(JavaLexer(stripnl=False, ensurenl=False), text)
    symbols: list[Symbol] = []
    imports: list[Import] = []
    external: set[str] = set()
    open_symbols: list[tuple[int, int]] = []
    classes: list[tuple[str, int]] = []  # (qualified class name, body depth)
    depth = 0
    statement: list[str] = []  # the current statement's words, for modifiers
    pending_class: tuple[int, int] | None = None

    def sig(line: int) -> str:
        return lines[line - 1].strip()[:200] if 0 < line <= len(lines) else ""

    n = len(tokens)
    for i, (kind, value, line) in enumerate(tokens):
        if value == "{":
            depth += 1
            if pending_class is not None:
                index, _ = pending_class
                classes.append((symbols[index].name, depth))
                open_symbols.append((index, depth - 1))
                pending_class = None
            elif open_symbols and symbols[open_symbols[-1][0]].kind == "method" and open_symbols[-1][1] == -1:
                index, _ = open_symbols.pop()
                open_symbols.append((index, depth - 1))
            statement = []
            continue
        if value == "}":
            depth -= 1
            _closer(symbols, open_symbols, depth, line)
            while classes and classes[-1][1] > depth:
                classes.pop()
            statement = []
            continue
        if value == ";":
            if open_symbols and open_symbols[-1][1] == -1:  # an abstract or interface method: no body
                open_symbols.pop()
            statement = []
            continue
        if kind == "Token.Keyword.Namespace" and value.startswith("import") and i + 1 < n:
            dotted = tokens[i + 1][1]
            if dotted.startswith(("java.", "javax.", "jdk.", "sun.")):
                external.add(".".join(dotted.split(".")[:2]))
            elif dotted.endswith(".*"):
                imports.append(Import(spec=dotted, candidates=(f"dir:{dotted[:-2].replace('.', '/')}",), suffix=True))
            else:
                parts = dotted.split(".")
                candidates = [f"{'/'.join(parts)}.java"]
                if "static" in value and len(parts) > 1:
                    candidates.append(f"{'/'.join(parts[:-1])}.java")
                imports.append(Import(spec=dotted, candidates=tuple(candidates), suffix=True, names=(parts[-1],)))
            continue
        statement.append(value)
        body_depth = classes[-1][1] if classes else 0
        parent = classes[-1][0] if classes else None
        if value in ("class", "interface", "enum", "record") and kind.startswith("Token.Keyword") and i + 1 < n \
                and tokens[i + 1][0].startswith("Token.Name") and depth == body_depth:
            name = tokens[i + 1][1]
            qualified = f"{parent}.{name}" if parent else name
            symbol_kind = "class" if value in ("class", "record") else value
            symbols.append(Symbol(qualified, symbol_kind, line, line, sig(line), _doc(comments, line),
                                  "public" in statement or parent is not None, parent))
            pending_class = (len(symbols) - 1, depth)
        elif kind == "Token.Name.Function" and classes and depth == body_depth and parent is not None:
            symbols.append(Symbol(f"{parent}.{value}", "method", line, line, sig(line), _doc(comments, line),
                                  "public" in statement or "protected" in statement, parent))
            open_symbols.append((len(symbols) - 1, -1))  # its `{` (or `;`) decides
        elif classes and depth == body_depth and parent is not None and kind.startswith("Token.Name") \
                and i + 1 < n and tokens[i + 1][1] == "=" and "static" in statement and "final" in statement:
            symbols.append(Symbol(f"{parent}.{value}", "constant", line, line, sig(line), _doc(comments, line),
                                  "public" in statement, parent))
    return _finish(path, "java", data, symbols, imports, external, errors, depth, comments, tokens)
