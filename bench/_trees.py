"""What the tree benchmarks (drift, merge) share: the generated monorepo shape, manifest records,
a counting loader, timing and tracemalloc helpers, and git fast-import streams for the comparison.

Imported by the benchmark scripts, which put `src/` on sys.path before importing this module.
"""

from __future__ import annotations

import gc
import hashlib
import random
import resource
import statistics
import subprocess
import time
import tracemalloc
from typing import Callable, Mapping, NamedTuple

from fastest.domain.manifest import MODE_EXECUTABLE, MODE_FILE
from fastest.domain.tree import ManifestLoader, memory_loader

EXTENSIONS = (".py", ".ts", ".tsx", ".md", ".json", ".css", ".txt", "")


def directories(rng: random.Random, count: int) -> list[str]:
    """~`count` leaf directories at depth 3–4 (pkg/module/area[/sub]), like a large monorepo."""
    leaves: list[str] = []
    for top in range(10):
        for middle in range(10):
            for area in range(count // 100):
                base = f"pkg{top}/module{middle:02d}/area{area:02d}"
                leaves.append(f"{base}/sub" if rng.random() < 0.3 else base)
    return leaves


def base_tree(rng: random.Random, files: int) -> tuple[dict[str, bytes], list[str]]:
    """A tree of `files` files spread over ~files/100 leaf directories: (path → content, leaves)."""
    leaves = directories(rng, max(100, files // 100))
    tree: dict[str, bytes] = {}
    for index in range(files):
        directory = leaves[index % len(leaves)]
        path = f"{directory}/file_{index:06d}{rng.choice(EXTENSIONS)}"
        tree[path] = f"content of {path}\n".encode() * rng.randint(1, 40)
    return tree, leaves


def records(tree: Mapping[str, bytes]) -> list[tuple[str, str, int, int]]:
    """`build_manifests` input for a path → content tree."""
    return [
        (path, hashlib.sha256(data).hexdigest(), len(data), MODE_EXECUTABLE if path.endswith(".sh") else MODE_FILE)
        for path, data in tree.items()
    ]


class CountingLoader:
    """The server's read + parse of stored manifests (from memory here), counting the loads."""

    def __init__(self, manifests: Mapping[str, bytes], *, validate: bool = False) -> None:
        self.loads = 0
        self._parse: ManifestLoader = memory_loader(manifests, validate=validate)

    async def __call__(self, manifest_hash: str):
        self.loads += 1
        return await self._parse(manifest_hash)


class Timing(NamedTuple):
    """Medians over rounds: wall time, and CPU time (user + system), which other work sharing the
    machine barely moves: the ratios to git are taken on it."""

    wall: float
    cpu: float


def median_time(run: Callable[[], object], rounds: int = 5) -> Timing:
    """Median wall and CPU time of `rounds` runs in this process (a collection before each, so none
    pays for another's garbage)."""
    walls, cpus = [], []
    for _ in range(rounds):
        gc.collect()
        started, cpu_started = time.perf_counter(), time.process_time()
        run()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu_started)
    return Timing(statistics.median(walls), statistics.median(cpus))


def median_command_time(argv: list[str], cwd: str, rounds: int = 5) -> Timing:
    """Median wall and CPU time of a command run `rounds` times (process start included); it must
    succeed (exit 0, or 1 for `git merge-tree`'s "conflicts")."""
    walls, cpus = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()}")
    return Timing(statistics.median(walls), statistics.median(cpus))


def traced_peak(run: Callable[[], object]) -> int:
    """Peak traced allocation of one run (a separate run: tracing slows Python several times)."""
    gc.collect()
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def delta(base: Mapping[str, bytes], side: Mapping[str, bytes]) -> list[tuple[str, bytes | None]]:
    """What a commit of `side` on top of `base` writes: changed or added files, and deletions (None)."""
    return [(p, d) for p, d in side.items() if base.get(p) != d] + [(p, None) for p in base if p not in side]


def fast_import_stream(base: Mapping[str, bytes], branches: Mapping[str, Mapping[str, bytes]], *, base_ref: str) -> bytes:
    """A `git fast-import` stream: `base_ref` with every file, then each branch as a child of it
    carrying only its differences (so git stores each file once)."""
    out: list[bytes] = []

    def commit(ref: str, mark: int, parent: int | None, files: list[tuple[str, bytes | None]]) -> None:
        out.append(f"commit refs/heads/{ref}\nmark :{mark}\ncommitter bench <b@x> 0 +0000\ndata 0\n".encode())
        if parent is not None:
            out.append(f"from :{parent}\n".encode())
        for path, data in files:
            if data is None:
                out.append(f"D {path}\n".encode())
            else:
                out.append(f"M 100644 inline {path}\ndata {len(data)}\n".encode() + data + b"\n")
        out.append(b"\n")

    commit(base_ref, 1, None, list(base.items()))
    for mark, (ref, side) in enumerate(branches.items(), start=2):
        commit(ref, mark, 1, delta(base, side))
    return b"".join(out)
