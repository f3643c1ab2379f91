"""Benchmark: three-way merge of 100,000-file trees with 1% of the files changed on each side.

Budget: `merge.merge_trees` in < 1 s wall time and < 64 MB peak (tracemalloc), and at most the
time of `git merge-tree --write-tree` on the same trees where git is installed. Times are medians
over `--rounds` runs; the ratio to git is taken on CPU time (user + system, git's process
included), which other work on a shared machine barely moves, with the wall times beside it. With a loader that parses each manifest from bytes held in memory as the server does
for what it stored itself (`memory_loader(..., validate=False)` → `parse_stored_manifest`).
Building the three trees is not measured. Applying the result to ours as sync execute does
(`tree.directories_on_paths` + `tree.rebuild_manifests`) is timed separately, for information.

The trees have the shape of bench/drift.py (~1,400 leaf directories at depth 3–4). Ours and
theirs each change a different random 1% of the base files (modified, plus a few added and
deleted), spread over the whole tree — the worst case for skipping subtrees. A small overlap is
changed by both sides: some identically, some differently (modify/modify: a clean line merge when
the edits are at different ends of the file, a text conflict when at the same end), and some
modified on one side and deleted on the other (modify/delete, delete/modify).

If git is on PATH, the same three trees are committed in a temporary repository (git fast-import)
and `git merge-tree --write-tree ours theirs` is timed (git computes the merge base itself; 2.39
has no `--merge-base`). Git merges file contents as part of
the merge; merge_trees reports modify/modify and leaves the line merge to the service, so the
modify/modify conflicts are also run through `merge_text` (not timed) to compare counts.

    .venv/bin/python bench/merge.py [--files 100000] [--seed 1] [--rounds 5]

Exits non-zero when over budget.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _trees import (  # noqa: E402
    CountingLoader, Timing, base_tree, fast_import_stream, median_command_time, median_time, records, traced_peak,
)
from fastest.domain.merge import MergeResult, merge_text, merge_trees  # noqa: E402
from fastest.domain.tree import (  # noqa: E402
    BuiltTree, build_manifests, directories_on_paths, rebuild_manifests, update_manifests,
)

BUDGET_SECONDS = 1.0
BUDGET_BYTES = 64 * 2**20
BUDGET_GIT_RATIO = 1.0
CHANGED_SHARE = 0.01
ADDED, DELETED = 50, 50  # per side, of its changed files; the rest are modified
# The overlap, changed by both sides (counts of base files):
BOTH_IDENTICAL = 10  # the same edit on both sides: automatic
BOTH_CLEAN = 10  # ours edits the end, theirs the start: modify/modify, clean line merge
BOTH_CONFLICT = 10  # both edit the end differently: modify/modify, text conflict
MODIFY_DELETE = 5  # ours modifies, theirs deletes
DELETE_MODIFY = 5  # ours deletes, theirs modifies


@dataclass
class Trees:
    """Three versions of one tree: path → content, for the manifests and for git."""

    base: dict[str, bytes]
    ours: dict[str, bytes]
    theirs: dict[str, bytes]


def generate(files: int, seed: int) -> Trees:
    rng = random.Random(seed)
    base, leaves = base_tree(rng, files)
    ours, theirs = dict(base), dict(base)
    per_side = int(files * CHANGED_SHARE)
    overlap = BOTH_IDENTICAL + BOTH_CLEAN + BOTH_CONFLICT + MODIFY_DELETE + DELETE_MODIFY
    picked = rng.sample(sorted(base), 2 * (per_side - overlap) + overlap)
    shared, picked = picked[:overlap], picked[overlap:]
    only_ours, only_theirs = picked[: per_side - overlap], picked[per_side - overlap:]

    for side, name, paths in ((ours, "ours", only_ours), (theirs, "theirs", only_theirs)):
        for path in paths[:DELETED]:
            del side[path]
        for path in paths[DELETED:]:
            side[path] += f"edited by {name}\n".encode()
        for index in range(ADDED):
            side[f"{rng.choice(leaves)}/added_{name}_{index:03d}.py"] = f"new file {index} from {name}\n".encode()

    cut = iter(shared)
    for path in [next(cut) for _ in range(BOTH_IDENTICAL)]:
        ours[path] = theirs[path] = base[path] + b"same edit\n"
    for path in [next(cut) for _ in range(BOTH_CLEAN)]:
        ours[path] = base[path] + b"ours at the end\n"
        theirs[path] = b"theirs at the start\n" + base[path]
    for path in [next(cut) for _ in range(BOTH_CONFLICT)]:
        ours[path] = base[path] + b"ours at the end\n"
        theirs[path] = base[path] + b"theirs at the end\n"
    for path in [next(cut) for _ in range(MODIFY_DELETE)]:
        ours[path] = base[path] + b"ours edit\n"
        del theirs[path]
    for path in [next(cut) for _ in range(DELETE_MODIFY)]:
        del ours[path]
        theirs[path] = base[path] + b"theirs edit\n"
    return Trees(base, ours, theirs)


async def merge(base: str, ours: str, theirs: str, manifests: dict[str, bytes]) -> tuple[MergeResult, int]:
    load = CountingLoader(manifests)
    return await merge_trees(base, ours, theirs, load), load.loads


def run_merge(*args: object) -> tuple[MergeResult, int]:
    return asyncio.run(merge(*args))  # type: ignore[arg-type]


def run_apply(root: str, manifests: dict[str, bytes], updates) -> tuple[BuiltTree, int]:
    """What sync execute does with a merge: fetch the directories on changed paths, rebuild them."""
    async def load_bytes(digest: str) -> bytes:
        return manifests[digest]

    needed = asyncio.run(directories_on_paths(root, updates.keys(), load_bytes))
    return rebuild_manifests(root, needed, updates), len(needed)


def text_outcomes(result: MergeResult, trees: Trees) -> Counter[str]:
    """What the service would do next with the modify/modify conflicts: `merge_text` on the blobs."""
    outcomes: Counter[str] = Counter()
    for conflict in result.conflicts:
        if conflict.kind == "modify/modify":
            merged = merge_text(trees.base[conflict.path], trees.ours[conflict.path], trees.theirs[conflict.path])
            outcomes["clean" if merged.clean else "conflict"] += 1
    return outcomes


@dataclass
class GitMerge:
    time: Timing
    conflicted_paths: int
    auto_merging: int
    conflict_messages: Counter[str]


def git_merge_tree(trees: Trees, rounds: int) -> GitMerge | None:
    """Commit the three trees with git fast-import; the median time of `git merge-tree --write-tree`."""
    if shutil.which("git") is None:
        return None
    with tempfile.TemporaryDirectory() as workdir:
        def git(*args: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(["git", *args], cwd=workdir, check=check, capture_output=True, **kw)  # type: ignore[call-overload]

        git("init", "-q", "--bare")
        git("fast-import", "--quiet", input=fast_import_stream(trees.base, {"ours": trees.ours, "theirs": trees.theirs}, base_ref="base"))
        command = ("merge-tree", "--write-tree", "--name-only", "--messages", "refs/heads/ours", "refs/heads/theirs")
        timing = median_command_time(["git", *command], workdir, rounds)
        completed = git(*command, check=False)
        if completed.returncode not in (0, 1):
            raise RuntimeError(f"git merge-tree failed: {completed.stderr.decode()}")
        # Output: the tree id, the conflicted paths (one a line), a blank line, the messages.
        head, _, messages = completed.stdout.decode().partition("\n\n")
        conflicted = head.splitlines()[1:]
        kinds: Counter[str] = Counter()
        auto = 0
        for line in messages.splitlines():
            if line.startswith("Auto-merging "):
                auto += 1
            elif line.startswith("CONFLICT ("):
                kinds[line[len("CONFLICT ("): line.index(")")]] += 1
        return GitMerge(timing, len(conflicted), auto, kinds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each side; medians are compared")
    args = parser.parse_args()

    trees = generate(args.files, args.seed)
    built = [build_manifests(records(tree)) for tree in (trees.base, trees.ours, trees.theirs)]
    base_built, ours_built, theirs_built = built
    manifests = {key: value for tree in built for key, value in tree.manifests.items()}
    print(f"trees: base {len(trees.base):,}, ours {len(trees.ours):,}, theirs {len(trees.theirs):,} files; "
          f"{len(base_built.manifests):,} manifests per tree, {len(manifests):,} distinct "
          f"({sum(map(len, manifests.values())) / 2**20:.1f} MiB)")

    server_run = partial(run_merge, base_built.root, ours_built.root, theirs_built.root, manifests)
    result, loads = server_run()
    timing, peak = median_time(server_run, args.rounds), traced_peak(server_run)
    seconds = timing.wall
    kinds = Counter(conflict.kind for conflict in result.conflicts)
    print(f"merge_trees: {len(result.updates):,} updates to ours ({result.added} added, {result.modified} modified, "
          f"{result.deleted} deleted), {result.identical} identical, {result.combined} combined, "
          f"{len(result.renames)} renames, {len(result.conflicts)} conflicts "
          f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}); {loads:,} manifests loaded")
    text = text_outcomes(result, trees)
    print(f"  modify/modify through merge_text (not timed): {text['clean']} clean, {text['conflict']} conflict")
    print(f"time: {seconds * 1000:.0f} ms wall, {timing.cpu * 1000:.0f} ms CPU, medians of {args.rounds} (budget "
          f"{BUDGET_SECONDS * 1000:.0f} ms, {seconds / BUDGET_SECONDS:.0%} of budget; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"peak: {peak / 2**20:.1f} MiB (budget {BUDGET_BYTES / 2**20:.0f} MiB, {peak / BUDGET_BYTES:.0%} of budget)")

    apply = partial(run_apply, ours_built.root, ours_built.manifests, result.updates)
    rebuilt, read = apply()
    apply_seconds, apply_peak = median_time(apply, args.rounds).wall, traced_peak(apply)
    assert rebuilt.root == update_manifests(ours_built.root, ours_built.manifests, result.updates).root
    print(f"apply as sync execute does (read the directories on changed paths, rebuild them): "
          f"{apply_seconds * 1000:.0f} ms, peak {apply_peak / 2**20:.1f} MiB; {read:,} manifests read, "
          f"{len(rebuilt.manifests):,} rebuilt (informational)")

    git = git_merge_tree(trees, args.rounds)
    over = seconds > BUDGET_SECONDS or peak > BUDGET_BYTES
    if git is None:
        print("git: not found, no comparison")
    else:
        ratio = timing.cpu / git.time.cpu
        print(f"git merge-tree --write-tree (process start included, merge base computed by git): "
              f"{git.time.wall * 1000:.1f} ms wall, {git.time.cpu * 1000:.1f} ms CPU, medians of {args.rounds}")
        print(f"ours / git: {ratio:.2f}× in CPU time (budget ≤ {BUDGET_GIT_RATIO:g}×), "
              f"{seconds / git.time.wall:.2f}× in wall time")
        over = over or ratio > BUDGET_GIT_RATIO
        print(f"  git: {git.conflicted_paths} conflicted paths, {git.auto_merging} auto-merging messages, conflicts: "
              f"{', '.join(f'{n} {k}' for k, n in sorted(git.conflict_messages.items())) or 'none'}")
        print(f"  fastest: {len(result.conflicts)} conflicted paths by merge_trees, "
              f"{text['conflict'] + len(result.conflicts) - sum(text.values())} left after merge_text; "
              f"{sum(text.values())} modify/modify sent to merge_text (git's auto-merging)")

    print("OVER BUDGET" if over else "within budget")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
