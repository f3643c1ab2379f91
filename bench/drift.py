"""Benchmark: drift between two 100,000-file trees with 1% of the files changed.

Budget: `tree.diff` + `drift.summarize` in < 1 s wall time and < 64 MB peak (tracemalloc), and at
most 2× `git diff-tree -r` on the same trees where git is installed. Times are medians over
`--rounds` runs; the ratio to git is taken on CPU time (user + system, git's process included),
which other work on a shared machine barely moves, and the wall times are printed beside it. With a loader that parses each manifest from bytes held in memory, as the server
does after reading R2. Building the trees is not measured. The changed files are spread at random
over the whole tree — the worst case for skipping subtrees (real edits cluster in a few
directories) — so most leaf directories differ.

If git is on PATH, the same two trees are committed in a temporary repository (git fast-import)
and `git diff-tree -r --name-status` between them is timed (`--name-status`, not `--stat`: like
drift, it compares trees without reading blobs).

    .venv/bin/python bench/drift.py [--files 100000] [--seed 1] [--rounds 5]

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
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _trees import (  # noqa: E402
    CountingLoader, Timing, base_tree, fast_import_stream, median_command_time, median_time, records, traced_peak,
)
from fastest.domain.drift import DriftSummary, summarize_async  # noqa: E402
from fastest.domain.tree import build_manifests, diff  # noqa: E402

BUDGET_SECONDS = 1.0
BUDGET_BYTES = 64 * 2**20
BUDGET_GIT_RATIO = 2.0
CHANGED_SHARE = 0.01
ADDED, DELETED = 50, 50  # of the changed files; the rest are modified


@dataclass
class Trees:
    """Two versions of one tree: path → content, for the manifests and for git."""

    old: dict[str, bytes]
    new: dict[str, bytes]


def generate(files: int, seed: int) -> Trees:
    rng = random.Random(seed)
    old, leaves = base_tree(rng, files)
    new = dict(old)
    changed = rng.sample(sorted(old), int(files * CHANGED_SHARE))
    for path in changed[:DELETED]:
        del new[path]
    for path in changed[DELETED:]:
        new[path] = new[path] + b"edited\n"
    for index in range(ADDED):
        directory = rng.choice(leaves)
        new[f"{directory}/added_{index:03d}.py"] = f"new file {index}\n".encode()
    return Trees(old, new)


async def drift(
    old_root: str, new_root: str, manifests: dict[str, bytes], old_count: int, new_count: int, *, validate: bool = False
) -> tuple[DriftSummary, int]:
    load = CountingLoader(manifests, validate=validate)
    summary = await summarize_async(diff(old_root, new_root, load), old_file_count=old_count, new_file_count=new_count)
    return summary, load.loads


def run_drift(*args: object, **kwargs: object) -> tuple[DriftSummary, int]:
    return asyncio.run(drift(*args, **kwargs))  # type: ignore[arg-type]


def git_diff_tree(trees: Trees, rounds: int) -> Timing | None:
    """Commit both trees with git fast-import; the median time of `git diff-tree -r` between them."""
    if shutil.which("git") is None:
        return None
    with tempfile.TemporaryDirectory() as workdir:
        run = lambda *args, **kw: subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True, **kw)  # noqa: E731
        run("init", "-q", "--bare")
        run("fast-import", "--quiet", input=fast_import_stream(trees.old, {"new": trees.new}, base_ref="old"))
        return median_command_time(["git", "diff-tree", "-r", "--name-status", "refs/heads/old", "refs/heads/new"],
                                   workdir, rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each side; medians are compared")
    args = parser.parse_args()

    trees = generate(args.files, args.seed)
    old_built, new_built = build_manifests(records(trees.old)), build_manifests(records(trees.new))
    manifests = {**old_built.manifests, **new_built.manifests}
    print(f"trees: {len(trees.old):,} → {len(trees.new):,} files, {len(old_built.manifests):,} + "
          f"{len(new_built.manifests):,} manifests ({sum(map(len, manifests.values())) / 2**20:.1f} MiB)")

    # The server's path: manifests read back from its own storage are only checked against their
    # hash (parse_stored_manifest); they were fully validated once, on upload.
    server_run = partial(run_drift, old_built.root, new_built.root, manifests, len(trees.old), len(trees.new))
    validating_run = partial(server_run, validate=True)
    summary, loads = server_run()
    timing, peak = median_time(server_run, args.rounds), traced_peak(server_run)
    seconds = timing.wall
    validating_seconds = median_time(validating_run, 1).wall
    print(f"drift: {summary.files_added} added, {summary.files_modified} modified, {summary.files_deleted} deleted, "
          f"{summary.bytes_changed:,} bytes, overlap {summary.overlap_ratio:.4f}, risk {summary.risk_level}; "
          f"{loads:,} manifests loaded")
    print(f"time: {seconds * 1000:.0f} ms wall, {timing.cpu * 1000:.0f} ms CPU, medians of {args.rounds} (budget {BUDGET_SECONDS * 1000:.0f} ms, "
          f"{seconds / BUDGET_SECONDS:.0%} of budget; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"peak: {peak / 2**20:.1f} MiB (budget {BUDGET_BYTES / 2**20:.0f} MiB, {peak / BUDGET_BYTES:.0%} of budget)")
    print(f"re-validating every manifest read (parse_manifest): {validating_seconds * 1000:.0f} ms (informational)")

    git = git_diff_tree(trees, args.rounds)
    over = seconds > BUDGET_SECONDS or peak > BUDGET_BYTES
    if git is None:
        print("git: not found, no comparison")
    else:
        ratio = timing.cpu / git.cpu
        print(f"git diff-tree -r --name-status (process start included): {git.wall * 1000:.1f} ms wall, "
              f"{git.cpu * 1000:.1f} ms CPU, medians of {args.rounds}")
        print(f"ours / git: {ratio:.2f}× in CPU time (budget ≤ {BUDGET_GIT_RATIO:g}×), {seconds / git.wall:.2f}× in wall time")
        over = over or ratio > BUDGET_GIT_RATIO
    print("OVER BUDGET" if over else "within budget")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
