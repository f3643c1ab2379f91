"""Drift: how far a workspace's tree has moved from another (usually main), in a few numbers.

`summarize` consumes the `Change`s of `tree.diff` one at a time (it never needs them all at once),
so a 100,000-file drift costs the diff plus a bounded list of example paths.

Definitions (the API reports these; they are stable):

- `bytes_changed`: added file → its size; deleted file → its old size; modified file → the larger
  of its two sizes, or 0 if only its mode changed. Content addressing tells us *that* a file was
  replaced, not how much of it changed, so a modified file counts as a whole file; the larger
  version bounds what a reviewer has to read, never counts a file twice, and keeps the measure
  symmetric (the drift from A to B has the same bytes as from B to A).
- `overlap_ratio`: the share of all paths (the union of both trees) that are identical on both
  sides: unchanged / union. 1.0 for identical trees (two empty trees included), 0.0 when nothing
  is shared.
- `risk_level`: see `assess_risk` and the thresholds below.
- `counts_by_extension`: changed files by lowercase extension of their name (`.py`; "" for none;
  `archive.tar.gz` counts as `.gz`, `.gitignore` as "").
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, AsyncIterable, Iterable, Literal, TypedDict

from .tree import Change

RiskLevel = Literal["none", "low", "medium", "high"]
StalenessLevel = Literal["fresh", "stale", "very_stale"]

# --- risk thresholds -------------------------------------------------------------------------
# Risk is about what a sync could silently lose or what nobody can review, so it looks at the share
# of the tree that differs, the share of files deleted, and the absolute number of changed files.
#
# high when any of:
#   - the drift empties a non-empty tree (DESIGN.md §5: emptying always needs confirmation);
#   - at least HIGH_CHANGED_FILES files changed (more than anyone reviews);
#   - (trees of at least RATIO_MIN_FILES paths) overlap below HIGH_MIN_OVERLAP, i.e. most paths
#     differ — the same 50% line as the sync safety valve (DESIGN.md §5) — or more than
#     HIGH_MAX_DELETED_SHARE of the old files deleted.
# medium when any of:
#   - at least MEDIUM_CHANGED_FILES files changed (a long review);
#   - (trees of at least RATIO_MIN_FILES paths) overlap below MEDIUM_MIN_OVERLAP or more than
#     MEDIUM_MAX_DELETED_SHARE of the old files deleted.
# low: anything else that changed. none: nothing changed.
#
# Share rules need a population: in a 3-file project one edit is a third of the tree, which is
# routine, not risky. So below RATIO_MIN_FILES paths only the counts and "emptied" apply.
# Comparisons: counts are "at least", overlap is "strictly below", deleted share "strictly above";
# shares are compared as exact fractions, so a boundary is never decided by float rounding.

HIGH_CHANGED_FILES = 1000
HIGH_MIN_OVERLAP = Fraction(1, 2)
HIGH_MAX_DELETED_SHARE = Fraction(1, 4)
MEDIUM_CHANGED_FILES = 100
MEDIUM_MIN_OVERLAP = Fraction(4, 5)
MEDIUM_MAX_DELETED_SHARE = Fraction(1, 20)
RATIO_MIN_FILES = 20

# --- staleness thresholds --------------------------------------------------------------------
# A workspace whose base main has moved past gets riskier to sync the longer it lives apart:
# a day of divergence is normal work in progress, a week usually means conflicts.
STALE_AFTER = timedelta(days=1)
VERY_STALE_AFTER = timedelta(days=7)

DEFAULT_PATH_LIMIT = 1000


@dataclass
class DriftSummary:
    """The drift between two trees. The path lists hold the first `path_limit` changed paths in
    tree order (all three lists together); `truncated` says some were left out."""

    files_added: int
    files_modified: int
    files_deleted: int
    files_unchanged: int
    bytes_changed: int
    overlap_ratio: float
    risk_level: RiskLevel
    counts_by_extension: dict[str, int]
    added_paths: list[str] = field(default_factory=list)
    modified_paths: list[str] = field(default_factory=list)
    deleted_paths: list[str] = field(default_factory=list)
    truncated: bool = False

    @property
    def files_changed(self) -> int:
        return self.files_added + self.files_modified + self.files_deleted

    def to_json(self) -> dict[str, Any]:
        return {
            "files_added": self.files_added,
            "files_modified": self.files_modified,
            "files_deleted": self.files_deleted,
            "files_unchanged": self.files_unchanged,
            "bytes_changed": self.bytes_changed,
            "overlap_ratio": self.overlap_ratio,
            "risk_level": self.risk_level,
            "counts_by_extension": dict(self.counts_by_extension),
            "paths": {
                "added": list(self.added_paths),
                "modified": list(self.modified_paths),
                "deleted": list(self.deleted_paths),
            },
            "truncated": self.truncated,
        }


def change_bytes(change: Change) -> int:
    """What one change adds to `bytes_changed` (see the module docstring for why)."""
    old_size = (change.old.size or 0) if change.old is not None else 0
    new_size = (change.new.size or 0) if change.new is not None else 0
    if change.kind == "modified" and change.old is not None and change.new is not None:
        if change.old.hash == change.new.hash:
            return 0  # mode only
        return max(old_size, new_size)
    return old_size + new_size  # exactly one side is present


def extension(path: str) -> str:
    """The lowercase extension of a path's last component, "" if it has none."""
    return posixpath.splitext(path.rpartition("/")[2])[1].lower()


def overlap_ratio(*, files_added: int, files_modified: int, files_deleted: int, old_file_count: int) -> float:
    """Unchanged paths / paths in either tree (1.0 for two empty trees: they are identical)."""
    return float(_overlap(files_added, files_modified, files_deleted, old_file_count))


def assess_risk(*, files_added: int, files_modified: int, files_deleted: int, old_file_count: int) -> RiskLevel:
    """The risk level of a drift, from its counts alone (so a drift report posted by the CLI,
    which has only counts, can be rated the same way). Thresholds: the module constants."""
    changed = files_added + files_modified + files_deleted
    if changed == 0:
        return "none"
    new_file_count = old_file_count - files_deleted + files_added
    union = old_file_count + files_added
    overlap = _overlap(files_added, files_modified, files_deleted, old_file_count)
    deleted_share = Fraction(files_deleted, old_file_count) if old_file_count else Fraction(0)
    ratios_apply = union >= RATIO_MIN_FILES
    if (
        (old_file_count > 0 and new_file_count == 0)
        or changed >= HIGH_CHANGED_FILES
        or (ratios_apply and (overlap < HIGH_MIN_OVERLAP or deleted_share > HIGH_MAX_DELETED_SHARE))
    ):
        return "high"
    if changed >= MEDIUM_CHANGED_FILES or (
        ratios_apply and (overlap < MEDIUM_MIN_OVERLAP or deleted_share > MEDIUM_MAX_DELETED_SHARE)
    ):
        return "medium"
    return "low"


def _overlap(files_added: int, files_modified: int, files_deleted: int, old_file_count: int) -> Fraction:
    unchanged = old_file_count - files_deleted - files_modified
    union = old_file_count + files_added
    return Fraction(unchanged, union) if union else Fraction(1)  # two empty trees are identical


class _Tally:
    """Accumulates changes one at a time; shared by the sync and async `summarize`."""

    def __init__(self, path_limit: int) -> None:
        if path_limit < 0:
            raise ValueError("path_limit must be >= 0")
        self.path_limit = path_limit
        self.counts = {"added": 0, "modified": 0, "deleted": 0}
        self.paths: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}
        self.listed = 0
        self.bytes_changed = 0
        self.by_extension: dict[str, int] = {}

    def add(self, change: Change) -> None:
        self.counts[change.kind] += 1
        self.bytes_changed += change_bytes(change)
        suffix = extension(change.path)
        self.by_extension[suffix] = self.by_extension.get(suffix, 0) + 1
        if self.listed < self.path_limit:
            self.paths[change.kind].append(change.path)
            self.listed += 1

    def finish(self, old_file_count: int, new_file_count: int) -> DriftSummary:
        added, modified, deleted = self.counts["added"], self.counts["modified"], self.counts["deleted"]
        if old_file_count < deleted + modified or new_file_count != old_file_count - deleted + added:
            raise ValueError(
                f"File counts disagree with the changes: {old_file_count} old files, {new_file_count} new, "
                f"{added} added, {modified} modified, {deleted} deleted."
            )
        counts = dict(files_added=added, files_modified=modified, files_deleted=deleted, old_file_count=old_file_count)
        return DriftSummary(
            files_added=added,
            files_modified=modified,
            files_deleted=deleted,
            files_unchanged=old_file_count - deleted - modified,
            bytes_changed=self.bytes_changed,
            overlap_ratio=overlap_ratio(**counts),
            risk_level=assess_risk(**counts),
            counts_by_extension=dict(sorted(self.by_extension.items())),
            added_paths=self.paths["added"],
            modified_paths=self.paths["modified"],
            deleted_paths=self.paths["deleted"],
            truncated=added + modified + deleted > self.listed,
        )


def summarize(
    changes: Iterable[Change], *, old_file_count: int, new_file_count: int, path_limit: int = DEFAULT_PATH_LIMIT
) -> DriftSummary:
    """Summarize the changes from a tree of `old_file_count` files to one of `new_file_count`.

    The counts must agree with the changes (new = old − deleted + added), else ValueError: a
    disagreement means the counts and the diff describe different trees."""
    tally = _Tally(path_limit)
    for change in changes:
        tally.add(change)
    return tally.finish(old_file_count, new_file_count)


async def summarize_async(
    changes: AsyncIterable[Change], *, old_file_count: int, new_file_count: int, path_limit: int = DEFAULT_PATH_LIMIT
) -> DriftSummary:
    """`summarize` over an async stream, e.g. straight from `tree.diff`, one change in memory at a time."""
    tally = _Tally(path_limit)
    async for change in changes:
        tally.add(change)
    return tally.finish(old_file_count, new_file_count)


class Staleness(TypedDict):
    behind_main: bool
    seconds_behind: int
    level: StalenessLevel


def staleness(base_created_at: datetime | None, main_head_created_at: datetime | None, now: datetime) -> Staleness:
    """How stale a workspace's base is relative to main's head (all datetimes timezone-aware).

    The workspace is behind when main's head is newer than its base (or it has no base and main
    has a head). `seconds_behind` is then the age of the base at `now` — how long the workspace has
    lived on a base that main has since moved past — or, with no base at all, the age of main's
    head. Not behind → 0 and "fresh", however old the base: being on the latest main is current.
    Levels: stale from STALE_AFTER, very stale from VERY_STALE_AFTER (inclusive)."""
    if main_head_created_at is None or (base_created_at is not None and base_created_at >= main_head_created_at):
        return {"behind_main": False, "seconds_behind": 0, "level": "fresh"}
    since = base_created_at if base_created_at is not None else main_head_created_at
    behind = max(timedelta(0), now - since)  # a clock skew must not make it negative
    level: StalenessLevel = "very_stale" if behind >= VERY_STALE_AFTER else "stale" if behind >= STALE_AFTER else "fresh"
    return {"behind_main": True, "seconds_behind": behind // timedelta(seconds=1), "level": level}
