"""Unified diffs of file changes, in git's extended format, so that both `git apply` and
`patch -p1` accept them: `diff --git a/P b/P`, `new file mode` / `deleted file mode` for added and
removed files, `--- a/P` / `+++ b/P` (or `/dev/null`), and `\\ No newline at end of file` after a
last line that has none."""

from __future__ import annotations

import difflib

NO_NEWLINE = "\\ No newline at end of file\n"


class NotText(ValueError):
    """A change to a binary (non-UTF-8) file: a text patch cannot carry it."""


def _lines(data: bytes | None, path: str) -> list[str]:
    if data is None:
        return []
    try:
        return data.decode("utf-8").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise NotText(f"{path} is not UTF-8 text") from None


def file_diff(path: str, old: bytes | None, new: bytes | None, *, mode: int = 0o644) -> str:
    """The diff turning `old` into `new` at `path` (None: absent). Empty when they are equal."""
    if old == new:
        return ""
    before, after = _lines(old, path), _lines(new, path)
    header = [f"diff --git a/{path} b/{path}\n"]
    if old is None:
        header.append(f"new file mode 100{mode:o}\n")
    elif new is None:
        header.append(f"deleted file mode 100{mode:o}\n")
    body = list(difflib.unified_diff(
        before, after, fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}", lineterm="", n=3,
    ))
    out = list(header)
    for index, line in enumerate(body):
        if index < 2 or line.startswith("@@"):
            out.append(line + "\n")
        elif line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n" + NO_NEWLINE)
    return "".join(out)


def unified_patch(changes: list[tuple[str, bytes | None, bytes | None]]) -> str:
    """One patch for several files: (path, old, new) in the order given."""
    return "".join(file_diff(path, old, new) for path, old, new in changes)
