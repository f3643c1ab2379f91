"""Benchmark: drift between two 100,000-file trees with 1% of the files changed.

Budget (DESIGN.md §9): `tree.diff` + `drift.summarize` in < 1 s wall time and < 64 MB peak
(tracemalloc), with a loader that parses each manifest from bytes held in memory, as the server
does after reading R2. Building the trees is not measured. The changed files are spread at random
over the whole tree — the worst case for skipping subtrees (real edits cluster in a few
directories) — so most leaf directories differ.

If git is on PATH, the same two trees are committed in a temporary repository (git fast-import)
and `git diff-tree -r --name-status` between them is timed, for the ratio DESIGN.md §9 asks to
report (`--name-status`, not `--stat`: like drift, it compares trees without reading blobs).

    .venv/bin/python bench/drift.py [--files 100000] [--seed 1]

Exits non-zero when over budget.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _trees import CountingLoader, base_tree, best_time, fast_import_stream, records, traced_peak  # noqa: E402
from fastest.domain.drift import DriftSummary, summarize_async  # noqa: E402
from fastest.domain.tree import build_manifests, diff  # noqa: E402

BUDGET_SECONDS = 1.0
BUDGET_BYTES = 64 * 2**20
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


def git_diff_tree(trees: Trees) -> float | None:
    """Commit both trees with git fast-import; best-of-5 time of `git diff-tree -r` between them."""
    if shutil.which("git") is None:
        return None
    with tempfile.TemporaryDirectory() as workdir:
        run = lambda *args, **kw: subprocess.run(["git", *args], cwd=workdir, check=True, capture_output=True, **kw)  # noqa: E731
        run("init", "-q", "--bare")
        run("fast-import", "--quiet", input=fast_import_stream(trees.old, {"new": trees.new}, base_ref="old"))
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            run("diff-tree", "-r", "--name-status", "refs/heads/old", "refs/heads/new")
            timings.append(time.perf_counter() - started)
        return min(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
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
    seconds, peak = best_time(server_run), traced_peak(server_run)
    validating_seconds = best_time(validating_run, repeat=1)
    print(f"drift: {summary.files_added} added, {summary.files_modified} modified, {summary.files_deleted} deleted, "
          f"{summary.bytes_changed:,} bytes, overlap {summary.overlap_ratio:.4f}, risk {summary.risk_level}; "
          f"{loads:,} manifests loaded")
    print(f"time: {seconds * 1000:.0f} ms (budget {BUDGET_SECONDS * 1000:.0f} ms, {seconds / BUDGET_SECONDS:.0%} of budget)")
    print(f"peak: {peak / 2**20:.1f} MiB (budget {BUDGET_BYTES / 2**20:.0f} MiB, {peak / BUDGET_BYTES:.0%} of budget)")
    print(f"re-validating every manifest read (parse_manifest): {validating_seconds * 1000:.0f} ms (informational)")

    git_seconds = git_diff_tree(trees)
    if git_seconds is None:
        print("git: not found, no comparison")
    else:
        print(f"git diff-tree -r --name-status (process start included): {git_seconds * 1000:.1f} ms; "
              f"ours is {seconds / git_seconds:.1f}× git (informational)")

    over = seconds > BUDGET_SECONDS or peak > BUDGET_BYTES
    print("OVER BUDGET" if over else "within budget")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
