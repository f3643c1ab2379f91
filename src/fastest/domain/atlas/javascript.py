"""JavaScript and TypeScript: declarations, class members, imports and exports, read from the token
stream (`javascript_tokens`) statement by statement, skipping whole bracketed groups by their
matched partners — no regular expressions over source text.

Symbols: top-level `function`s (anonymous `export default function` is `default`), classes (also
`var X = class … {}`, how bundlers emit them) with their methods, accessors and constructors,
`interface`s, `type`s, `enum`s, and `const/let/var` bindings: a function when the value is an arrow
or `function` expression, a class for a class expression, else a constant when exported (also later,
by `export { x as y }`) or named in UPPER_CASE. Overloads and merged declarations are one symbol.
Imports: `import … from`, `import 'x'`, `import x = require()`, `export … from` (re-exports), and
`require('x')` / `import('x')` anywhere. Where a specifier leads is decided against the tree
(`javascript_resolution`).

A file whose brackets do not match does not parse: a module without symbols whose `parse_error` says
where (line and bracket).
"""

from __future__ import annotations

from dataclasses import replace

from .facts import FileFacts, Import, Symbol, count_todos, doc_detail, first_line, first_paragraph, line_count, merge_symbols
from .javascript_resolution import import_candidates
from .javascript_tokens import Token, Tokens, tokenize

EXTENSIONS = (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")

# Words that can never name a declaration; contextual ones (`from`, `get`, `type`, `async`…) can.
_RESERVED = {"break", "case", "catch", "class", "const", "continue", "debugger", "default", "delete", "do", "else",
             "export", "extends", "finally", "for", "function", "if", "import", "in", "instanceof", "new", "return",
             "super", "switch", "this", "throw", "try", "typeof", "var", "void", "while", "with", "null", "true",
             "false", "enum"}
_MEMBER_MODIFIERS = {"static", "public", "private", "protected", "readonly", "abstract", "override", "declare",
                     "async", "get", "set", "accessor"}
_STATEMENT_WORDS = {"const", "let", "var", "function", "class", "export", "import", "interface", "type", "enum",
                    "declare", "abstract", "async", "namespace", "module", "if", "for", "while", "do", "return",
                    "switch", "try", "throw"}
_DECLARATION_WORDS = {"export", "import", "const", "let", "var", "function", "class", "interface", "type", "enum",
                      "declare", "abstract", "namespace"}
_CONTINUES = {".", "?.", "?", ":", ",", "=", "=>", "(", "[", "{", "+", "-", "*", "/", "%", "&&", "||", "??", "&", "|",
              "^", "<", ">", "<=", ">=", "==", "===", "!=", "!==", "in", "instanceof", "as", "satisfies", "extends",
              "**", "<<", ">>", ">>>", "!", "~"}
_TYPE_OPENERS = {"<", ",", ":", "|", "&", "=", "=>", "(", "[", "extends", "implements", "keyof", "typeof", "?", "readonly"}


def language_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith((".ts", ".tsx", ".mts", ".cts")):
        return "typescript"
    if lower.endswith((".js", ".jsx", ".mjs", ".cjs")):
        return "javascript"
    return None


def _dialect(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".tsx"):
        return "tsx"
    if lower.endswith(".jsx"):
        return "jsx"
    return "typescript" if language_of(path) == "typescript" else "javascript"


def _is_name(token: Token | None) -> bool:
    return token is not None and (token.kind == "name" or token.kind == "keyword" and token.value.isidentifier()
                                  and token.value not in _RESERVED) and token.value[:1] != "@"


def _unquote(token: Token) -> str | None:
    value = token.value.strip()
    if token.kind in ("string", "template") and len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"`":
        inner = value[1:-1]
        return None if value[0] == "`" and "${" in inner else inner
    return None


def _upper(name: str) -> bool:
    return name.upper() == name and name.lower() != name


class _Reader:
    def __init__(self, path: str, text: str, tokens: Tokens) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.t = tokens.items
        self.n = len(self.t)
        self.partner = tokens.partner
        self.comments = tokens.comments
        self.symbols: list[Symbol] = []
        self.imports: list[Import] = []
        self.external: set[str] = set()
        self.exported_later: set[str] = set()
        self.local_constants: list[Symbol] = []  # lowercase, unexported: kept only if exported later

    # --- helpers --------------------------------------------------------------------------------

    def at(self, i: int) -> Token | None:
        return self.t[i] if 0 <= i < self.n else None

    def value(self, i: int) -> str:
        return self.t[i].value if 0 <= i < self.n else ""

    def skip_group(self, i: int) -> int:
        """The index after the bracketed group opening at i, or after the token at i."""
        return self.partner.get(i, i) + 1 if self.value(i) in ("{", "(", "[") and self.t[i].kind == "punct" else i + 1

    def skip_angles(self, i: int) -> int:
        """After a `<…>` type parameter/argument list starting at i."""
        if self.value(i) != "<":
            return i
        level = 0
        while i < self.n:
            value = self.t[i].value
            if value in ("(", "[", "{") and self.t[i].kind == "punct":
                i = self.skip_group(i)
                continue
            if value == "<":
                level += 1
            elif value in (">", ">>", ">>>"):
                level -= len(value)
                if level <= 0:
                    return i + 1
            elif value in (";",) or value == "=>" and level <= 0:
                return i
            i += 1
        return i

    def statement_ends(self, prev: int, i: int) -> bool:
        """Whether a statement may end between tokens prev and i (a `;`, or a line break that
        automatic semicolon insertion would honour)."""
        if i >= self.n:
            return True
        if self.t[prev].value == ";":
            return True
        if self.t[i].line == self.t[prev].line:
            return False
        before = self.t[prev]
        nxt = self.t[i]
        if before.value in (">", ">>", ">>>") and nxt.value in _DECLARATION_WORDS:
            return True  # `x as Map<K, V>` at a line's end, then a declaration: no comparison goes on
        if before.value == "!" and prev > 0 and self.t[prev - 1].line == before.line \
                and (self.t[prev - 1].kind in ("name", "keyword") or self.t[prev - 1].value in (")", "]")):
            before = self.t[prev - 1]  # `x!`: a non-null assertion ends what it follows
        if before.value in _CONTINUES or before.kind == "op" and before.value not in ("++", "--") \
                and not before.value.isalpha():  # `void` may end a type
            return False
        if nxt.value in _CONTINUES or nxt.kind == "op" and nxt.value not in ("++", "--", "!", "~"):
            return False
        return nxt.kind in ("name", "keyword", "string", "number", "decorator", "template", "punct", "regex")

    def end_of_statement(self, i: int) -> int:
        """From inside a statement at i, the index of its `;` or the first token after it."""
        while i < self.n:
            if self.t[i].value == ";":
                return i
            nxt = self.skip_group(i)
            if nxt < self.n and self.statement_ends(nxt - 1, nxt):
                return nxt
            i = nxt
        return i

    def type_end(self, i: int) -> int:
        """From inside a type alias at i, the index of its `;` or the first token after it (a `>`
        closing type arguments ends a line like a bracket does)."""
        while i < self.n:
            if self.t[i].value == ";":
                return i
            angle = self.t[i].value == "<"
            nxt = self.skip_angles(i) if angle else self.skip_group(i)
            if nxt < self.n and (self.statement_ends(nxt - 1, nxt) or angle and self.closes_line(nxt)):
                return nxt
            i = max(nxt, i + 1)
        return i

    def doc_before(self, line: int) -> str:
        comment = self.comments.get(line - 1)
        return first_paragraph(comment) if comment else ""

    def source_line(self, line: int) -> str:
        return self.lines[line - 1].strip()[:200] if 0 < line <= len(self.lines) else ""

    def add(self, name: str, kind: str, start: Token, end_line: int, exported: bool, parent: str | None = None) -> None:
        comment = self.comments.get(start.line - 1)
        self.symbols.append(Symbol(name=name, kind=kind, start_line=start.line, end_line=max(end_line, start.line),
                                   signature=self.source_line(start.line), doc=self.doc_before(start.line),
                                   exported=exported, parent=parent, detail=doc_detail(comment)))

    def add_import(self, spec: str, names: tuple[str, ...] = (), reexport: bool = False) -> None:
        if spec.startswith("."):
            self.imports.append(Import(spec=spec, candidates=import_candidates(self.path, spec), names=names, reexport=reexport))
        else:
            package = spec.split("/")[0] if not spec.startswith("@") else "/".join(spec.split("/")[:2])
            if package:
                self.external.add(package)
            self.imports.append(Import(spec=spec, candidates=(), names=names, reexport=reexport))

    # --- the file ---------------------------------------------------------------------------------

    def read(self) -> None:
        i = 0
        prev = -1
        fresh = True  # a statement was just read: the next token starts one
        while i < self.n:
            start = fresh or self.statement_ends(prev, i) or self.value(prev) in ("}", ";")
            nxt = self.statement(i) if start else None
            if nxt is None or nxt <= i:
                prev, i, fresh = self.skip_group(i) - 1, self.skip_group(i), False
            else:
                prev, i, fresh = nxt - 1, nxt, True
        self.dynamic_imports()

    def dynamic_imports(self) -> None:
        """`require('x')` and `import('x')` anywhere (also `typeof import('x')` in types)."""
        t = self.t
        for i in range(self.n - 3):
            token = t[i]
            if (token.value == "require" and token.kind == "name" or token.value == "import" and token.kind == "keyword") \
                    and t[i + 1].value == "(" and (i == 0 or t[i - 1].value not in (".", "?.")):
                spec = _unquote(t[i + 2])
                if spec is not None and t[i + 3].value in (")", ","):
                    self.add_import(spec)

    def statement(self, i: int) -> int | None:
        """Read the declaration or import/export statement at i; the index after it, or None when
        it is none of those (the caller steps over it token by token)."""
        token = self.t[i]
        value = token.value
        if token.kind == "decorator":
            j = i + 1
            while self.value(j) == "." or self.at(j) is not None and self.t[j].kind == "name" and self.value(j - 1) == ".":
                j += 1
            return self.skip_group(j) if self.value(j) == "(" else j
        if token.kind not in ("keyword", "name"):
            return None
        if value == "import" and self.value(i + 1) not in ("(", "."):
            return self.import_statement(i)
        if value == "export":
            return self.export_statement(i)
        return self.declaration(i, exported=False, default=False)

    def import_statement(self, i: int) -> int:
        j = i + 1
        nxt = self.at(j)
        spec = _unquote(nxt) if nxt is not None else None
        if spec is not None:
            self.add_import(spec)
            return self.after_attributes(j + 1)
        if self.value(j) == "type" and self.value(j + 1) not in ("from", ","):
            j += 1
        if _is_name(self.at(j)) and self.value(j + 1) == "=":  # import x = require("y") / import x = A.B
            return self.end_of_statement(j)
        names: list[str] = []
        while j < self.n and not (self.value(j) == "from" and self.at(j + 1) is not None and _unquote(self.t[j + 1]) is not None):
            token = self.t[j]
            if token.value == ";" or (token.kind == "keyword" and token.value in _STATEMENT_WORDS
                                      and token.line != self.t[j - 1].line):
                return j
            if token.value == "{" and token.kind == "punct":
                end = self.skip_group(j)
                names += [t.value for t in self.t[j + 1:end - 1] if t.kind in ("name", "keyword") and t.value not in ("as", "type")]
                j = end
                continue
            if token.kind in ("name", "keyword") and token.value not in ("as", "type", "typeof"):
                names.append(token.value)
            j += 1
        if j >= self.n:
            return j
        self.add_import(_unquote(self.t[j + 1]) or "", tuple(names))
        return self.after_attributes(j + 2)

    def after_attributes(self, j: int) -> int:
        """Past `with { type: "json" }` / `assert {…}` and the `;`."""
        if self.value(j) in ("with", "assert") and self.value(j + 1) == "{":
            j = self.skip_group(j + 1)
        return j + 1 if self.value(j) == ";" else j

    def export_statement(self, i: int) -> int:
        j = i + 1
        value = self.value(j)
        if value == "type" and self.value(j + 1) in ("{", "*"):
            j += 1
            value = self.value(j)
        if value in ("{", "*"):
            names: list[str] = []
            local: list[str] = []
            end = self.skip_group(j) if value == "{" else j + 1
            if value == "{":
                k = j + 1
                while k < end - 1:
                    if self.t[k].kind in ("name", "keyword") and self.value(k) not in ("as", "type", "default"):
                        if self.value(k - 1) == "as":
                            names[-1:] = [self.value(k)]
                        else:
                            names.append(self.value(k))
                            local.append(self.value(k))
                    k += 1
            elif self.value(end) == "as":
                names.append(self.value(end + 1))
                end += 2
            if self.value(end) == "from" and self.at(end + 1) is not None and _unquote(self.t[end + 1]) is not None:
                self.add_import(_unquote(self.t[end + 1]) or "", tuple(names) or ("*",), reexport=True)
                return self.after_attributes(end + 2)
            self.exported_later.update(local)
            return end + 1 if self.value(end) == ";" else end
        if value == "=":  # export = X
            if _is_name(self.at(j + 1)):
                self.exported_later.add(self.value(j + 1))
            return self.end_of_statement(j)
        if value == "as":  # export as namespace X
            return self.end_of_statement(j)
        if value == "import":
            return self.import_statement(j)
        if value == "default":
            nxt = self.declaration(j + 1, exported=True, default=True)
            if nxt is not None:
                return nxt
            if _is_name(self.at(j + 1)) and (self.value(j + 2) == ";" or self.statement_ends(j + 1, j + 2)):
                self.exported_later.add(self.value(j + 1))
            return self.end_of_statement(j + 1)
        nxt = self.declaration(j, exported=True, default=False)
        return nxt if nxt is not None else j

    def declaration(self, i: int, *, exported: bool, default: bool) -> int | None:
        j = i
        while self.value(j) in ("declare", "abstract", "async") and self.at(j + 1) is not None \
                and self.t[j + 1].line == self.t[j].line and self.value(j + 1) in ("function", "class", "abstract", "const",
                                                                                    "let", "var", "enum", "interface",
                                                                                    "type", "namespace", "module", "global"):
            j += 1
        value = self.value(j)
        if j >= self.n or self.t[j].kind not in ("keyword", "name"):
            return None
        if value == "function":
            return self.function(i, j + 1, exported=exported, default=default)
        if value == "class":
            return self.klass(i, j + 1, exported=exported, default=default)
        if value in ("interface", "enum") or value == "const" and self.value(j + 1) == "enum":
            k = j + 2 if value == "const" else j + 1
            if not _is_name(self.at(k)):
                return None
            body = k + 1
            while body < self.n and self.value(body) != "{" and self.value(body) != ";":
                body = self.skip_group(body) if self.value(body) in ("(", "[") else body + 1
            end = self.skip_group(body) if self.value(body) == "{" else body + 1
            self.add(self.value(k), "interface" if value == "interface" else "enum", self.t[i], self.t[end - 1].line, exported)
            return end
        if value == "type" and _is_name(self.at(j + 1)) and self.value(j + 2) in ("=", "<"):
            end = self.type_end(j + 2)
            self.add(self.value(j + 1), "type", self.t[i], self.t[min(end, self.n) - 1].line, exported)
            return end + 1 if self.value(end) == ";" else end
        if value in ("namespace", "module", "global") and (j > i or value != "global") \
                and self.at(j + 1) is not None and (_is_name(self.t[j + 1]) or _unquote(self.t[j + 1]) is not None or value == "global"):
            k = j + 1
            while k < self.n and self.value(k) not in ("{", ";") and self.t[k].line == self.t[j].line:
                k += 1
            return self.skip_group(k) if self.value(k) == "{" else k
        if value in ("const", "let", "var") and not default:
            return self.variables(i, j + 1, exported=exported)
        return None

    def body_after_signature(self, j: int) -> tuple[int | None, int]:
        """From the token after a function's name (type parameters, then parameters): (the index of
        its body's `{`, or None for a signature without body — an overload, abstract or declared —
        and the index of the signature's last token)."""
        j = self.skip_angles(j)
        if self.value(j) != "(":
            return None, j
        j = self.skip_group(j)
        while j < self.n:
            token = self.t[j]
            if token.value == "{" and token.kind == "punct":
                if self.value(j - 1) in _TYPE_OPENERS:
                    j = self.skip_group(j)
                    continue
                return j, self.partner.get(j, j)
            if token.value == ";":
                return None, j
            if token.value in ("}", ")", "]") or self.statement_ends(j - 1, j):
                return None, j - 1
            if token.value in ("(", "[") and token.kind == "punct":
                j = self.skip_group(j)
            elif token.value == "<":
                j = self.skip_angles(j)
            else:
                j += 1
        return None, self.n - 1

    def function(self, i: int, j: int, *, exported: bool, default: bool, parent: str | None = None) -> int:
        if self.value(j) == "*":
            j += 1
        if _is_name(self.at(j)):
            name, j = self.value(j), j + 1
        elif default:
            name = "default"
        else:
            return j
        _, last = self.body_after_signature(j)  # no body: an overload's signature
        self.add(name, "function", self.t[i], self.t[min(last, self.n - 1)].line, exported)
        return last + 1

    def class_body(self, j: int) -> int | None:
        """From after `class [Name]`, the index of the body's `{`."""
        j = self.skip_angles(j)
        while j < self.n:
            token = self.t[j]
            if token.kind == "punct" and token.value == "{":
                if self.value(j - 1) in _TYPE_OPENERS and j > 0 and self.value(j - 1) not in ("extends", "implements"):
                    j = self.skip_group(j)
                    continue
                return j
            if token.kind == "punct" and token.value in ("(", "["):
                j = self.skip_group(j)
            elif token.value == "<":
                j = self.skip_angles(j)
            elif token.value in (";", "}", ")"):
                return None
            else:
                j += 1
        return None

    def klass(self, i: int, j: int, *, exported: bool, default: bool, name: str | None = None,
              start: Token | None = None) -> int:
        if name is None:
            if _is_name(self.at(j)) and self.value(j) not in ("extends", "implements"):
                name, j = self.value(j), j + 1
            elif default:
                name = "default"
            else:
                return j
        elif _is_name(self.at(j)) and self.value(j) not in ("extends", "implements"):
            j += 1  # `var A = class B {}`: the binding names it
        body = self.class_body(j)
        if body is None:
            return j
        close = self.partner.get(body, body)
        self.add(name, "class", start or self.t[i], self.t[close].line, exported)
        self.members(name, body + 1, close, exported)
        return close + 1

    def members(self, klass: str, i: int, end: int, exported: bool) -> None:
        while i < end:
            token = self.t[i]
            if token.value in (";", ",") or token.kind in ("other",):
                i += 1
                continue
            start = i
            if token.kind == "decorator":
                i += 1
                while self.value(i) == "." or self.t[i].kind == "name" and self.value(i - 1) == ".":
                    i += 1
                if self.value(i) == "(":
                    i = self.skip_group(i)
                continue
            private = False
            while i < end and self.value(i) in _MEMBER_MODIFIERS and self.member_name_follows(i + 1):
                private = private or self.value(i) == "private"
                i += 1
            if self.value(i) == "*":
                i += 1
            if self.value(i) == "{":  # static { … }
                i = self.skip_group(i)
                continue
            name_token = self.t[i]
            computed = name_token.value == "["
            name = None
            if computed:
                i = self.skip_group(i)
            elif name_token.kind in ("name", "keyword", "string", "number") or name_token.value.startswith("#") \
                    or name_token.kind == "op" and name_token.value.isalpha():  # delete(), in()
                name = _unquote(name_token) if name_token.kind == "string" else name_token.value
                i += 1
            else:
                i += 1
                continue
            if self.value(i) in ("?", "!"):
                i += 1
            if self.value(i) in ("(", "<"):
                _, close = self.body_after_signature(i)
                close = min(close, end - 1)
                if name is not None:
                    method = "constructor" if name == "constructor" else name
                    self.add(f"{klass}.{method}", "method", self.t[start], self.t[close].line,
                             exported and not private and not method.startswith("#"), parent=klass)
                i = close + 1
                continue
            # a property: up to its `;` or the line break that ends it
            typed = self.value(i) == ":"  # its type annotation, until `=`, may hold `<…>`
            while i < end:
                if self.value(i) == ";":
                    i += 1
                    break
                typed = typed and self.value(i) != "="
                angle = typed and self.value(i) == "<"
                nxt = self.skip_angles(i) if angle else self.skip_group(i)
                if nxt < end and (self.statement_ends(nxt - 1, nxt) or angle and self.closes_line(nxt)) \
                        and self.value(nxt - 1) != "=>":
                    i = nxt
                    break
                i = nxt

    def closes_line(self, i: int) -> bool:
        """After a `>` closing type arguments: whether the token at i starts the next line's own
        statement or member."""
        return i < self.n and self.t[i].line != self.t[i - 1].line and self.t[i].value not in _CONTINUES \
            and (self.t[i].kind in ("name", "keyword", "decorator") or self.t[i].value.startswith("#"))

    def member_name_follows(self, i: int) -> bool:
        token = self.at(i)
        return token is not None and (token.kind in ("name", "keyword", "string", "number") or token.value in ("[", "*", "{")
                                      or token.value.startswith("#")) and token.value not in ("(", "<", "=", ";", ":", "?", "!")

    def variables(self, i: int, j: int, *, exported: bool) -> int:
        while j < self.n:
            start = self.t[j]
            if start.value in ("{", "[") and start.kind == "punct":  # destructuring: not indexed
                name = None
                j = self.skip_group(j)
            elif _is_name(start):
                name = start.value
                j += 1
            else:
                return j
            if self.value(j) == "!":
                j += 1
            if self.value(j) == ":":  # a type annotation
                j += 1
                while j < self.n and self.value(j) not in ("=", ",", ";"):
                    if self.value(j) == "<":
                        j = self.skip_angles(j)
                    else:
                        nxt = self.skip_group(j)
                        if nxt < self.n and self.statement_ends(nxt - 1, nxt) and self.value(nxt) != "=":
                            j = nxt
                            break
                        j = nxt
            kind, end = "constant", j
            if self.value(j) == "=":
                kind, end = self.initializer(name, j + 1, exported, self.t[i])
            if name is not None and kind == "constant":
                symbol_start = self.t[i]
                end_line = self.t[min(end, self.n) - 1].line if end > j else symbol_start.line
                if exported or _upper(name):
                    self.add(name, "constant", symbol_start, end_line, exported)
                else:
                    self.add(name, "constant", symbol_start, end_line, exported=False)
                    self.local_constants.append(self.symbols.pop())
            j = end
            if self.value(j) == ",":
                j += 1
                continue
            return j + 1 if self.value(j) == ";" else j
        return j

    def initializer(self, name: str | None, j: int, exported: bool, start: Token) -> tuple[str, int]:
        """Classify and step over a binding's value: (symbol kind created or "constant", index
        after the value: at its `,`, `;` or the statement's end)."""
        k = j
        closers: list[int] = []  # the parentheses around the whole value: (class {…}), (<T>(x: T) => …)
        while self.value(k) == "(" and self.arrow(k) is None and self.partner.get(k, 0) > k + 1 \
                and self.value_end(self.partner[k] + 1) == self.partner[k] + 1:
            closers.append(self.partner[k])
            k += 1
        if self.value(k) == "async" and (self.value(k + 1) in ("function", "(", "<")
                                         or _is_name(self.at(k + 1)) and self.value(k + 2) == "="):
            k += 1
        whole = closers[-1] if closers else None  # where the construct must end to be the value

        def ends_value(after: int) -> bool:
            return whole is None or after == whole

        value = self.value(k)
        if name is not None and value == "class" and self.t[k].kind == "keyword":
            count = len(self.symbols)
            after = self.klass(k, k + 1, exported=exported, default=False, name=name, start=start)
            if ends_value(after):
                return "class", self.value_end(after)
            del self.symbols[count:]  # (class {…}).method(): a value made from a class
        if name is not None and value == "function":
            m = k + 1
            if self.value(m) == "*":
                m += 1
            if _is_name(self.at(m)):
                m += 1
            body, close = self.body_after_signature(m)
            if body is not None and ends_value(close + 1):
                self.add(name, "function", start, self.t[close].line, exported)
                return "function", self.value_end(close + 1)
        if name is not None:
            arrow = self.arrow(k)
            if arrow is not None:
                body = arrow + 1
                if self.value(body) == "{":
                    close = self.partner.get(body, body)
                    if ends_value(close + 1):
                        self.add(name, "function", start, self.t[close].line, exported)
                        return "function", self.value_end(close + 1)
                else:
                    end = self.value_end(body)
                    if ends_value(end):
                        self.add(name, "function", start, self.t[max(end - 1, body)].line if end - 1 < self.n else start.line,
                                 exported)
                        return "function", end
        return "constant", self.value_end(j)

    def arrow(self, k: int) -> int | None:
        """The index of `=>` when the expression at k is an arrow function."""
        if self.value(k) == "<":
            k = self.skip_angles(k)
        if _is_name(self.at(k)) and self.value(k + 1) == "=>":
            return k + 1
        if self.value(k) != "(":
            return None
        k = self.skip_group(k)
        if self.value(k) == "=>":
            return k
        if self.value(k) == ":":  # a return type
            m = k + 1
            while m < self.n and m < k + 200:
                if self.value(m) == "=>" and self.value(m + 1) != ">":
                    # `(a): (b: T) => U => …`: the last arrow of the type is not ours; the first one
                    # outside the type's brackets is.
                    return m
                if self.value(m) in (";", ",", ")", "}", "]"):
                    return None
                m = self.skip_group(m) if self.value(m) in ("(", "[", "{") else self.skip_angles(m) if self.value(m) == "<" else m + 1
        return None

    def value_end(self, j: int) -> int:
        """From inside a value at j, the index of the `,` or `;` ending it, or the statement's end."""
        prev = j - 1
        while j < self.n:
            token = self.t[j]
            if token.kind == "punct" and token.value in (",", ";", ")", "]", "}"):
                return j
            if prev >= 0 and self.t[prev].line != token.line and self.statement_ends(prev, j):
                return j
            nxt = self.skip_group(j)
            prev, j = nxt - 1, nxt
        return j

    def facts(self) -> tuple[list[Symbol], list[Import]]:
        later = self.exported_later
        symbols = [s if s.exported or s.name not in later else _exported(s) for s in self.symbols]
        symbols += [_exported(s) for s in self.local_constants if s.name in later]
        return merge_symbols(symbols), self.imports


def _exported(symbol: Symbol) -> Symbol:
    return replace(symbol, exported=True)


def extract(path: str, data: bytes) -> FileFacts:
    language = language_of(path) or "javascript"
    text = data.decode("utf-8", errors="replace")
    dialect = _dialect(path)
    try:
        tokens = tokenize(text, dialect)
        if tokens.unbalanced and dialect == "javascript":  # JSX in a .js file
            jsx = tokenize(text, "jsx")
            if not jsx.unbalanced:
                tokens = jsx
    except Exception as exc:  # a lexer bug must not fail an index
        return FileFacts(path=path, language=language, parse_error=f"lexer failed: {type(exc).__name__}",
                         lines=line_count(data), todo_count=count_todos(data))
    if tokens.unbalanced:
        return FileFacts(path=path, language=language, parse_error=f"brackets do not match: {tokens.unbalanced}",
                         lines=line_count(data), todo_count=count_todos(data))
    reader = _Reader(path, text, tokens)
    reader.read()
    symbols, imports = reader.facts()
    file_doc = ""
    if tokens.comments and min(tokens.comments) <= 3:
        file_doc = first_line(tokens.comments[min(tokens.comments)].strip("/* \n"))
    return FileFacts(path=path, language=language, symbols=tuple(symbols), imports=tuple(imports),
                     external=tuple(sorted(reader.external)), lines=line_count(data), todo_count=count_todos(data),
                     doc=file_doc)
