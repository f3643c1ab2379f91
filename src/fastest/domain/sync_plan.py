"""What a sync offers and applies: decisions with their options, and the change set a choice makes.

`merge.merge_trees` says what merges by itself (`MergeResult.updates`) and where both sides
collide (`Conflict`s). A sync preview turns each collision into a *decision* whose options are
complete change sets (path → new file record, or None to delete) for the paths at and under the
conflict, relative to the workspace's tree (ours):

| option           | meaning                                                                    |
|------------------|----------------------------------------------------------------------------|
| `keep_workspace` | leave the workspace's version (no change)                                  |
| `take_main`      | replace it with main's version (deleting what main deleted)                 |
| `keep_both`      | keep the workspace's version and put main's next to it, at a "conflict copy" path (`app.main.py`); offered when both sides have something there |
| `ai_combined`    | a combination proposed by the AI port and checked (see `accept_combination`) |

A decision's option ids are what execute accepts; the answers' change sets are merged with the
automatic ones into one change set for `tree.rebuild_manifests`. Everything here is pure: the
service lists the files of directory sides, finds free copy paths and asks the AI port.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from .merge import Conflict, is_text
from .tree import FileRecord

OptionId = str
KEEP_WORKSPACE, TAKE_MAIN, KEEP_BOTH, AI_COMBINED = "keep_workspace", "take_main", "keep_both", "ai_combined"
OPTION_ORDER = (KEEP_WORKSPACE, TAKE_MAIN, AI_COMBINED, KEEP_BOTH)
COPY_SUFFIX = "main"

Changes = dict[str, "FileRecord | None"]


@dataclass(frozen=True, slots=True)
class Option:
    id: OptionId
    description: str
    changes: Changes = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "description": self.description,
                "changes": {path: list(record) if record else None for path, record in self.changes.items()}}

    @classmethod
    def from_json(cls, data: Mapping) -> "Option":
        changes = {path: tuple(record) if record else None for path, record in data["changes"].items()}
        return cls(data["id"], data["description"], changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Decision:
    """A path both sides changed incompatibly, and what the user may choose there."""

    path: str
    kind: str
    reason: str
    options: tuple[Option, ...]

    @property
    def option_ids(self) -> list[OptionId]:
        return [option.id for option in self.options]

    def option(self, option_id: str) -> Option | None:
        return next((option for option in self.options if option.id == option_id), None)

    def to_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "reason": self.reason,
                "options": [option.to_json() for option in self.options]}

    @classmethod
    def from_json(cls, data: Mapping) -> "Decision":
        return cls(data["path"], data["kind"], data["reason"], tuple(Option.from_json(o) for o in data["options"]))


def conflict_copy_path(path: str, taken: Callable[[str], bool]) -> str:
    """Where `keep_both` puts main's version: the name with `.main` before its extension
    (`src/app.py` → `src/app.main.py`; `Makefile` → `Makefile.main`; `.env` → `.env.main`), then
    `.main-2`, `.main-3`… until `taken(path)` is false."""
    directory, _, name = path.rpartition("/")
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem:  # no extension, or a dotfile such as ".env"
        stem, extension = name, ""
    attempt = 1
    while True:
        suffix = COPY_SUFFIX if attempt == 1 else f"{COPY_SUFFIX}-{attempt}"
        candidate_name = f"{stem}.{suffix}" + (f".{extension}" if extension else "")
        candidate = f"{directory}/{candidate_name}" if directory else candidate_name
        if not taken(candidate):
            return candidate
        attempt += 1


def _record(path: str, entry) -> FileRecord:
    return (path, entry.hash, entry.size, entry.mode)


REASONS = {
    "modify/modify": "Both the workspace and main changed this file, and the changes overlap.",
    "add/add": "The workspace and main each added a different file here.",
    "modify/delete": "The workspace changed this file; main deleted it.",
    "delete/modify": "The workspace deleted this file; main changed it.",
    "file/directory": "The workspace has a file here; main has a directory.",
    "directory/file": "The workspace has a directory here; main has a file.",
}


def decision_for(
    conflict: Conflict,
    *,
    ours_files: Iterable[FileRecord] = (),
    theirs_files: Iterable[FileRecord] = (),
    copy_path: str | None = None,
    combined: FileRecord | None = None,
    binary: bool = False,
) -> Decision:
    """The decision for one conflict. `ours_files`/`theirs_files`: the files of a side that is a
    directory at `conflict.path` (full paths); `copy_path`: a free conflict-copy path (None: no
    `keep_both`); `combined`: an accepted AI combination for the path (None: no `ai_combined`)."""
    path, kind = conflict.path, conflict.kind
    ours, theirs = conflict.ours, conflict.theirs
    reason = REASONS[kind]
    if kind == "modify/modify" and binary:
        reason = "Both the workspace and main changed this file, which is not text, so it cannot be merged by lines."
    ours_list, theirs_list = list(ours_files), list(theirs_files)
    if conflict.renamed_to:
        reason += f" The deleting side has the original content at {conflict.renamed_to}."

    remove_ours: Changes = {}
    if ours is not None and ours.type == "file":
        remove_ours[path] = None
    remove_ours.update((record[0], None) for record in ours_list)
    put_theirs: Changes = {}
    if theirs is not None and theirs.type == "file":
        put_theirs[path] = _record(path, theirs)
    put_theirs.update((record[0], record) for record in theirs_list)

    options = [Option(KEEP_WORKSPACE, _describe_keep(ours))]
    options.append(Option(TAKE_MAIN, _describe_take(theirs), {**remove_ours, **put_theirs}))
    if combined is not None:
        options.append(Option(AI_COMBINED, "Use the combination of both versions proposed by the AI model.",
                              {path: (path, combined[1], combined[2], combined[3])}))
    if copy_path is not None and ours is not None and theirs is not None:
        moved = {_moved(record[0], path, copy_path): record for record in put_theirs.values() if record}
        options.append(Option(KEEP_BOTH, f"Keep the workspace's version here and main's at {copy_path}.",
                              {p: (p, r[1], r[2], r[3]) for p, r in moved.items()}))
    return Decision(path, kind, reason, tuple(options))


def _moved(file_path: str, old_prefix: str, new_prefix: str) -> str:
    return new_prefix + file_path[len(old_prefix):]


def _describe_keep(entry) -> str:
    if entry is None:
        return "Keep the workspace as it is (the file stays deleted)."
    return "Keep the workspace's version."


def _describe_take(entry) -> str:
    if entry is None:
        return "Take main's change: delete it here too."
    return "Take main's version."


class UnansweredDecisions(ValueError):
    """Answers that do not settle a preview: `problems` maps a path to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        super().__init__("Some decisions are missing or invalid.")
        self.problems = dict(problems)


def chosen_changes(auto: Mapping[str, FileRecord | None], decisions: Iterable[Decision],
                   answers: Mapping[str, str]) -> Changes:
    """The whole change set: the automatic changes plus each decision's chosen option. Every
    decision must be answered with one of its options, and nothing else answered."""
    problems: dict[str, str] = {}
    changes: Changes = dict(auto)
    known: set[str] = set()
    for decision in decisions:
        known.add(decision.path)
        answer = answers.get(decision.path)
        option = decision.option(answer) if answer is not None else None
        if option is None:
            offered = ", ".join(decision.option_ids)
            problems[decision.path] = (f"not answered; choose one of: {offered}" if answer is None
                                       else f"{answer!r} is not offered here; choose one of: {offered}")
            continue
        changes.update(option.changes)
    for path in answers.keys() - known:
        problems[path] = "no decision is needed at this path"
    if problems:
        raise UnansweredDecisions(problems)
    return changes


def prefer(decisions: Iterable[Decision], side: str) -> dict[str, str]:
    """Answers taking one side everywhere (`workspace` → keep_workspace, `main` → take_main)."""
    option = {"workspace": KEEP_WORKSPACE, "main": TAKE_MAIN}[side]
    return {decision.path: option for decision in decisions}


# --- AI combinations ----------------------------------------------------------------------------

CONFLICT_MARKERS = (b"<<<<<<<", b"=======", b">>>>>>>", b"|||||||")


def accept_combination(path: str, proposal: bytes) -> str | None:
    """Why an AI proposal for `path` is refused, or None when it is acceptable: valid UTF-8 text,
    no conflict markers at the start of a line, and still parsing when the file is JSON, TOML or
    YAML (by extension)."""
    if not is_text(proposal):
        return "not UTF-8 text"
    if any(line.startswith(CONFLICT_MARKERS) for line in proposal.splitlines()):
        return "contains conflict markers"
    text = proposal.decode("utf-8")
    extension = path.rsplit(".", 1)[-1].lower() if "." in path.rsplit("/", 1)[-1] else ""
    try:
        if extension == "json":
            json.loads(text)
        elif extension == "toml":
            tomllib.loads(text)
        elif extension in ("yaml", "yml"):
            import yaml  # only when needed: a Pyodide package, not used elsewhere

            list(yaml.safe_load_all(text))
    except Exception as exc:  # any parse error refuses the proposal
        return f"does not parse as {extension.upper()}: {type(exc).__name__}"
    return None


def strip_code_fence(answer: str) -> str:
    """Models often wrap a file in a Markdown fence despite being asked not to; take what is inside."""
    stripped = answer.strip("\n")
    lines = stripped.split("\n")
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        return "\n".join(lines[1:-1]) + "\n"
    return answer
