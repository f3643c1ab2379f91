"""Which paths a push leaves out: `.fastestignore` (gitignore syntax) on top of built-in defaults.

Supported, as in gitignore: blank lines and `#` comments; `!pattern` re-includes; a trailing `/`
matches directories only; a pattern with a `/` at the start or in the middle is anchored at the
folder root, otherwise it matches a name at any depth; `*`, `?`, `[abc]`/`[!a-z]` within one path
segment; `**/` (any leading directories), `/**` (everything inside) and `/**/` (zero or more
directories). The last matching pattern wins. As in git, a file inside an ignored directory cannot
be re-included: the walk never enters that directory.

Only the `.fastestignore` at the folder root is read. `.git` and `.fastest` (a repository, the
client's own state), files or directories at any depth, are always left out, whatever the file
says: no tree may hold them (the server refuses them, `domain.manifest.RESERVED_NAMES`).

Matching runs once per path on every push, so the common shapes (`name`, `*.ext`) skip the regex.
"""

from __future__ import annotations

import re
from collections import namedtuple
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Callable, Iterable

IGNORE_FILE = ".fastestignore"
STATE_DIR = ".fastest"
DEFAULT_PATTERNS: tuple[str, ...] = (
    ".git/",
    ".fastest/",
    "node_modules/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.pyc",
    ".DS_Store",
    ".wrangler/",
)
# After the folder's own patterns, so that no `!` line re-includes them (the last match wins).
ENFORCED_PATTERNS: tuple[str, ...] = (".git", ".fastest")
_GLOB_CHARS = frozenset("*?[")


class Rule(namedtuple("Rule", ("pattern", "negated", "directory_only", "matches", "literal", "suffix"),
                      defaults=(None, None))):
    """One pattern line, compiled. `matches(path, name)` gets the `/`-joined path and its last part.

    `literal`/`suffix` are set for the two common shapes (`name`, `*.ext`), which need no regex.
    """

    __slots__ = ()
    pattern: str
    negated: bool
    directory_only: bool
    matches: Callable[[str, str], bool]
    literal: str | None
    suffix: str | None


def _segment_regex(glob: str) -> str:
    """Translate `*`, `?` and `[...]` (never crossing `/`) to a regex fragment."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and glob[j] in "!^":
                j += 1
            if j < n and glob[j] == "]":
                j += 1
            while j < n and glob[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal "["
                out.append(re.escape(c))
            else:
                body = glob[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(glob[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _path_regex(glob: str) -> str:
    """Translate an anchored pattern, with `**` handling, to a full-match regex."""
    parts = glob.split("/")
    out: list[str] = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            if last:
                out.append(".*")  # "a/**": everything inside a
            else:
                out.append("(?:[^/]+/)*")  # "**/" : zero or more directories
        else:
            out.append(_segment_regex(part) + ("" if last else "/"))
    return "".join(out)


def compile_rule(line: str) -> Rule | None:
    """Compile one line of an ignore file; None for blanks and comments."""
    text = line.rstrip("\n").rstrip("\r")
    # Trailing spaces are ignored unless escaped with a backslash.
    stripped = text.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(text):
        stripped += " "
    text = stripped
    if not text or text.startswith("#"):
        return None
    negated = text.startswith("!")
    if negated:
        text = text[1:]
    elif text.startswith("\\"):  # "\#file" or "\!file": a literal first character
        text = text[1:]
    directory_only = text.endswith("/")
    text = text.rstrip("/")
    if not text:
        return None
    anchored = "/" in text
    text = text.lstrip("/")
    if text.startswith("**/"):
        # "**/name" matches at any depth, like an unanchored "name".
        rest = text[3:]
        if "/" not in rest:
            text, anchored = rest, False
    literal = suffix = None
    if not anchored:
        if not _GLOB_CHARS.intersection(text) and "\\" not in text:
            literal = text
            matches = lambda path, name: name == literal  # noqa: E731
        elif text.startswith("*") and not _GLOB_CHARS.intersection(text[1:]) and "\\" not in text:
            suffix = text[1:]
            matches = lambda path, name: name.endswith(suffix)  # noqa: E731
        else:
            regex = re.compile(_segment_regex(text), re.DOTALL)
            matches = lambda path, name: regex.fullmatch(name) is not None  # noqa: E731
    else:
        regex = re.compile(_path_regex(text), re.DOTALL)
        matches = lambda path, name: regex.fullmatch(path) is not None  # noqa: E731
    return Rule(line.strip(), negated, directory_only, matches, literal, suffix)


class SimpleSets(namedtuple("SimpleSets", ("dir_names", "file_names", "dir_suffixes", "file_suffixes"))):
    """The whole rule set as name sets and suffix tuples, when it has that shape (see `simple_sets`)."""

    __slots__ = ()
    dir_names: frozenset[str]
    file_names: frozenset[str]
    dir_suffixes: tuple[str, ...]
    file_suffixes: tuple[str, ...]


class IgnoreRules:
    """An ordered list of rules; `is_ignored` answers for one path, the last matching rule deciding."""

    def __init__(self, rules: Iterable[Rule], *, key: str | None = None) -> None:
        self._rules = tuple(rules)
        # Tells rule sets apart (the index keeps directory listings per rule set): the source lines
        # when built from them, else the patterns.
        self.key = key if key is not None else "\n".join(rule.pattern for rule in self._rules)
        self._reversed = tuple(reversed(self._rules))
        # Without negations, order does not matter: the usual rule set is then a set lookup and one
        # `endswith` per path instead of a loop over every rule.
        simple = all(not r.negated and (r.literal is not None or r.suffix is not None) for r in self._rules)
        self._simple = SimpleSets(
            dir_names=frozenset(r.literal for r in self._rules if r.literal is not None),
            file_names=frozenset(r.literal for r in self._rules if r.literal is not None and not r.directory_only),
            dir_suffixes=tuple(r.suffix for r in self._rules if r.suffix is not None),
            file_suffixes=tuple(r.suffix for r in self._rules if r.suffix is not None and not r.directory_only),
        ) if simple else None

    @classmethod
    def from_lines(cls, lines: Iterable[str], *, defaults: bool = True) -> "IgnoreRules":
        source = [*DEFAULT_PATTERNS, *lines, *ENFORCED_PATTERNS] if defaults else [*lines, *ENFORCED_PATTERNS]
        return cls((rule for rule in map(compile_rule, source) if rule is not None), key="\n".join(source))

    @classmethod
    def for_folder(cls, root: Path) -> "IgnoreRules":
        """Defaults plus the folder's `.fastestignore`, if it has one."""
        path = root / IGNORE_FILE
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        return cls.from_lines(lines)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def simple_sets(self) -> SimpleSets | None:
        """The rules as sets, if they are only names and `*suffix` patterns without negation (the
        usual case): then `is_ignored` is a set lookup plus one `endswith`, and a hot loop can inline it."""
        return self._simple

    def is_ignored(self, path: str, *, is_dir: bool) -> bool:
        """`path` is `/`-joined and relative to the folder root, without a leading or trailing `/`."""
        name = path.rpartition("/")[2]
        if is_dir and path == STATE_DIR:
            return True
        simple = self._simple
        if simple is not None:
            if is_dir:
                return name in simple.dir_names or (bool(simple.dir_suffixes) and name.endswith(simple.dir_suffixes))
            return name in simple.file_names or (bool(simple.file_suffixes) and name.endswith(simple.file_suffixes))
        for rule in self._reversed:
            if rule.directory_only and not is_dir:
                continue
            if rule.matches(path, name):
                return not rule.negated
        return False
