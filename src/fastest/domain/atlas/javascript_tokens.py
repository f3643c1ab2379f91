"""JavaScript and TypeScript tokens from Pygments' lexers (pure Python, in Pyodide's package list, so
a snapshot's index is the same on both runtimes), with what the extractor needs on top: template
literals whose `${…}` holds braces (`${f({a: 1})}`), multi-brace punctuation split into single
braces, and every bracket matched to its partner.

Why not a real parser: Pyodide ships tree-sitter with the Python, Go and Java grammars only, not the
JavaScript or TypeScript ones, so the Worker could not run it and the two runtimes would disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from pygments.lexers.javascript import JavascriptLexer, TypeScriptLexer
from pygments.token import Operator, Punctuation, String

try:  # Pygments ≥ 2.19
    from pygments.lexers.jsx import JsxLexer, TsxLexer
except ImportError:  # pragma: no cover - older Pygments: JSX is read as plain script
    JsxLexer, TsxLexer = JavascriptLexer, TypeScriptLexer

# `${ … }` may hold any expression, braces included: count them instead of ending at the first `}`.
_NESTED_INTERPOLATION = {
    "interp-inside": [
        (r"\}", String.Interpol, "#pop"),
        (r"\{", Punctuation, "interp-braces"),
        ("root-include", None),
    ],
    "interp-braces": [
        (r"\}", Punctuation, "#pop"),
        (r"\{", Punctuation, "#push"),
        ("root-include", None),
    ],
}


# TypeScript's non-null assertion `x!` is not a `!` before an expression: a `/` after it divides.
_NON_NULL = (r"(?<=[\w$)\]])!(?!=)", Operator)


def _with_nested_interpolation(base):
    from pygments.lexer import include, inherit

    tokens = {state: [include("root") if rule[0] == "root-include" else rule for rule in rules]
              for state, rules in _NESTED_INTERPOLATION.items()}
    # A regular expression may follow `=>` (`(s) => /x/.test(s)`): read it as one, not as division.
    tokens["root"] = [(r"=>", Punctuation, "slashstartsregex"), inherit]
    if issubclass(base, TypeScriptLexer):
        tokens["root"].insert(0, _NON_NULL)
    return type(f"Nested{base.__name__}", (base,), {"tokens": tokens, "__module__": __name__})


_LEXERS: dict[str, type] = {}


def _lexer_class(dialect: str) -> type:
    lexer = _LEXERS.get(dialect)
    if lexer is None:
        base = {"typescript": TypeScriptLexer, "tsx": TsxLexer, "jsx": JsxLexer}.get(dialect, JavascriptLexer)
        lexer = _LEXERS[dialect] = _with_nested_interpolation(base)
    return lexer


@dataclass(slots=True)
class Token:
    kind: str  # name | keyword | string | template | punct | op | number | regex | decorator | other
    value: str
    line: int


_KINDS: dict = {}


def _kind_of(ttype) -> str:
    kind = _KINDS.get(ttype)
    if kind is None:
        name = str(ttype)
        kind = ("comment" if name.startswith("Token.Comment") else "error" if name.startswith("Token.Error")
                else "template" if name in ("Token.Literal.String.Backtick", "Token.Literal.String.Interpol")
                else "regex" if name == "Token.Literal.String.Regex"
                else "string" if "String" in name else "number" if "Number" in name
                else "keyword" if "Keyword" in name else "name" if "Name" in name
                else "punct" if "Punctuation" in name else "op" if "Operator" in name
                else "space" if name.startswith(("Token.Text", "Token.Whitespace")) else "other")
        _KINDS[ttype] = kind
    return kind


@dataclass(slots=True)
class Tokens:
    items: list[Token]
    comments: dict[int, str]  # the comment ending on each line
    partner: dict[int, int]  # index of each bracket → index of its partner
    errors: int  # characters the lexer could not read
    unbalanced: str | None  # why the brackets do not match: "line N: …"


def tokenize(text: str, dialect: str) -> Tokens:
    """`dialect`: javascript, typescript, jsx or tsx."""
    items: list[Token] = []
    comments: dict[int, str] = {}
    errors = 0
    line = 1
    template: Token | None = None  # the template literal being read (no `${` seen yet)
    for _, ttype, value in _lexer_class(dialect)(stripnl=False, ensurenl=False).get_tokens_unprocessed(text):
        kind = _kind_of(ttype)
        newlines = value.count("\n")
        if kind == "template":
            if value == "${" or (value == "}" and template is None):
                template = None
                items.append(Token("template", value, line))
            elif template is not None:
                template.value += value
            else:
                template = Token("template", value, line)
                items.append(template)
            line += newlines
            continue
        template = None
        if kind == "comment":
            comments[line + newlines] = value
        elif kind == "error":
            errors += 1
        elif kind == "space":
            if value.strip():
                items.append(Token("other", value.strip(), line))
        elif kind == "punct" and len(value) > 1 and set(value) <= set("{}"):
            items.extend(Token("punct", brace, line) for brace in value)
        elif kind == "keyword" and value.startswith("@"):
            items.append(Token("decorator", value, line))
        else:
            items.append(Token(kind, value if kind in ("string", "regex") else value.strip(), line))
        line += newlines
    partner, unbalanced = _match(items)
    return Tokens(items, comments, partner, errors, unbalanced)


_CLOSE = {"}": "{", ")": "(", "]": "["}


def _match(items: list[Token]) -> tuple[dict[int, int], str | None]:
    partner: dict[int, int] = {}
    stack: list[int] = []
    for index, token in enumerate(items):
        if token.kind != "punct":
            continue
        value = token.value
        if value in ("{", "(", "["):
            stack.append(index)
        elif value in _CLOSE:
            if not stack or items[stack[-1]].value != _CLOSE[value]:
                opened = f" (`{items[stack[-1]].value}` opened on line {items[stack[-1]].line})" if stack else ""
                return partner, f"line {token.line}: unexpected `{value}`{opened}"
            start = stack.pop()
            partner[start] = index
            partner[index] = start
    if stack:  # the outermost bracket left open is where the reader lost its way
        token = items[stack[0]]
        return partner, f"line {token.line}: `{token.value}` is never closed"
    return partner, None
