"""Benchmark: `fastest push` against git on the same 10,000-file tree, in the same run.

Starts the real server (`fastest serve`) on a free port in a temporary data directory, generates a
deterministic tree (10,000 files in ~1,000 directories, 200 B – 20 KB each, text-like), copies it,
then times:

  (a) a first push                          vs  `git init && git add -A && git commit`
      (`--first-rounds` times: each round a new user, so the server holds nothing yet, and a new
      `.git`)
  (b) a re-push after changing ONE file     vs  `git commit -am` after the same change
  (c) the same, naming the file (`fastest push FILE`, no folder scan; informational)
  (d) the same with `fastest watch --no-push` running: push asks the watcher what changed (as git
      with its fsmonitor would), instead of walking the folder

The push runs in-process (the same `fastest.cli.push.push` the command calls, over real HTTP to the
real server), so interpreter start-up is left out on our side as git's is tiny; the CLI's wall time
as a subprocess is printed too. For (b) the real HTTP work is checked: exactly one blob and the
manifests on the changed file's path, by the push report and by the server's storage stats.
Every figure is a median over rounds: of each side's times, and of the rounds' paired ratios
(ours / git in the same round), which is what the budgets judge. The CPU time each side spent
(client and server / git) is printed beside: on a shared machine it moves far less than wall time. Budgets: the first push ≤ 1.3×
git, the walked one-file push (b) ≤ 1.5×, the watched one (d) ≤ 1.0× (where inotify exists).

    .venv/bin/python bench/push.py [--files 10000] [--seed 7] [--rounds 11] [--first-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

import httpx

from fastest.cli import watch
from fastest.cli.client import ApiClient
from fastest.cli.ignore import STATE_DIR
from fastest.cli.push import PushReport, push
from fastest.cli.state import Folder

FASTEST = [sys.executable, "-m", "fastest.cli.main"]
BUDGET_FIRST = 1.3  # × git add -A && git commit
BUDGET_WALKED = 1.5  # × git commit -am, one file changed, walking the folder
BUDGET_WATCHED = 1.0  # × git commit -am, with `fastest watch` saying what changed
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


SERVER_PID: list[int] = []  # the benchmark's server, once started


def cpu_so_far() -> float:
    """CPU seconds (user + system) of this process's threads, its finished children (git) and the
    server: what a push or a commit costs, whatever else the machine is doing."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = time.process_time() + children.ru_utime + children.ru_stime
    for pid in SERVER_PID:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(action) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds as `cpu_so_far` counts them, result) of one action."""
    cpu_before = cpu_so_far()
    seconds, result = timed(action)
    return seconds, cpu_so_far() - cpu_before, result


@dataclass(frozen=True)
class Round:
    """One timed round: the file changed (None for a first push), both times, and the push's report."""

    changed: str | None
    push_s: float
    git_s: float
    report: PushReport
    push_cpu: float
    git_cpu: float

    @property
    def ratio(self) -> float:
        return self.push_s / self.git_s


@dataclass(frozen=True)
class Rounds:
    """Several rounds of one measurement: medians of each side and of the paired ratios."""

    rounds: list[Round]

    @property
    def push_s(self) -> float:
        return statistics.median(r.push_s for r in self.rounds)

    @property
    def git_s(self) -> float:
        return statistics.median(r.git_s for r in self.rounds)

    @property
    def ratio(self) -> float:
        return statistics.median(r.ratio for r in self.rounds)

    @property
    def last(self) -> Round:
        return self.rounds[-1]

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(r.push_cpu for r in self.rounds) / statistics.median(r.git_cpu for r in self.rounds)

    def line(self) -> str:
        return (f"medians of {len(self.rounds)}: fastest {self.push_s * 1000:6.0f} ms   git {self.git_s * 1000:6.0f} ms   "
                f"ratio {self.ratio:5.2f}x   (round ratios: {', '.join(f'{r.ratio:.2f}' for r in self.rounds)}); "
                f"CPU (client + server / git) {statistics.median(r.push_cpu for r in self.rounds) * 1000:.0f} / "
                f"{statistics.median(r.git_cpu for r in self.rounds) * 1000:.0f} ms = {self.cpu_ratio:.2f}x")


def one_file_rounds(rounds: int, rng: random.Random, paths: list[str], ours: Path, theirs: Path, label: str,
                    push_once: Callable[[str], PushReport], *,
                    check: Callable[[str, PushReport], None] | None = None) -> Rounds:
    """`rounds` times: append a line to one random file in both trees, time `push_once(path)` and
    `git commit -am`, assert exactly one blob went up (and `check`, untimed)."""
    done: list[Round] = []
    for round_index in range(rounds):
        changed = rng.choice(paths)
        line = f"\n# {label} {round_index}\n".encode()
        for root in (ours, theirs):
            with open(root / changed, "ab") as handle:
                handle.write(line)
        push_s, push_cpu, report = measured(lambda: push_once(changed))
        git_s, git_cpu, _ = measured(lambda: git(theirs, "commit", "-q", "-am", f"{label} {round_index}"))
        assert isinstance(report, PushReport) and report.blobs_uploaded == 1, report
        if check is not None:
            check(changed, report)
        done.append(Round(changed, push_s, git_s, report, push_cpu, git_cpu))
    return Rounds(done)


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
    parser.add_argument("--rounds", type=int, default=11, help="one-file rounds of (b), (c) and (d)")
    parser.add_argument("--first-rounds", type=int, default=3, help="first-push rounds of (a)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fastest-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [*FASTEST, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "FASTEST_RATE_LIMIT_PER_MINUTE": str(10**9)},
        )
        try:
            return bench(args, tmp, data_dir, base_url, server)
        finally:
            server.terminate()
            server.wait(timeout=15)


def admin_token(data_dir: Path, email: str) -> str:
    return subprocess.run(
        [*FASTEST, "admin", "token", "--email", email, "--data-dir", str(data_dir)],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def first_push_rounds(args: argparse.Namespace, tmp: Path, data_dir: Path, base_url: str, ours: Path,
                      theirs: Path) -> tuple[Rounds, str, Path]:
    """(a), `--first-rounds` times: each round a new user (the server holds none of its blobs) who
    signs in, links the folder afresh and pushes it, against a new `.git` committing the copy.
    Returns the rounds, and the last round's token and config directory (the later steps use them)."""
    done: list[Round] = []
    token, config_dir = "", tmp
    for round_index in range(args.first_rounds):
        token = admin_token(data_dir, f"bench{round_index}@example.com")
        config_dir = tmp / f"config{round_index}"
        shutil.rmtree(ours / STATE_DIR, ignore_errors=True)
        shutil.rmtree(theirs / ".git", ignore_errors=True)
        run_cli(config_dir, tmp, "login", "--server", base_url, "--token", token)
        run_cli(config_dir, ours, "init", "--project", "bench")
        folder = Folder(ours)
        time.sleep(0.1)  # let the newest files age past the index's racy-clean window, as they would in life
        with ApiClient(base_url, token) as api:
            state = folder.load()
            push_s, push_cpu, report = measured(lambda: push(folder, state, api, progress=False))
        git_s, git_cpu, _ = measured(lambda: git_first_commit(theirs))
        assert isinstance(report, PushReport) and report.blobs_uploaded == args.files, report
        done.append(Round(None, push_s, git_s, report, push_cpu, git_cpu))
    return Rounds(done), token, config_dir


def bench(args: argparse.Namespace, tmp: Path, data_dir: Path, base_url: str, server: subprocess.Popen) -> int:
    SERVER_PID.append(server.pid)
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

    ours, theirs = tmp / "tree", tmp / "git-tree"
    started = time.perf_counter()
    paths = generate_tree(ours, args.files, args.seed)
    shutil.copytree(ours, theirs)
    size = sum(p.stat().st_size for p in ours.rglob("*") if p.is_file())
    dir_count = sum(1 for p in ours.rglob("*") if p.is_dir())
    print(f"tree: {len(paths)} files, {dir_count} directories, {size / 1e6:.1f} MB "
          f"(generated in {time.perf_counter() - started:.1f} s); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")

    # (a) first push
    a, token, config_dir = first_push_rounds(args, tmp, data_dir, base_url, ours, theirs)
    print()
    print(f"(a) first push vs git add -A && git commit: {a.line()}   budget ≤ {BUDGET_FIRST:g}x")
    print(f"    uploaded {a.last.report.blobs_uploaded} blobs ({a.last.report.blob_bytes_uploaded / 1e6:.1f} MB), "
          f"{a.last.report.manifests_uploaded} manifests in {a.last.report.requests} requests")
    print(f"    phases of the last round (ms): {a.last.report.timings_ms}")
    folder = Folder(ours)

    with ApiClient(base_url, token) as api:
        # (b) re-push after changing one file (a different file each round)
        rng = random.Random(args.seed + 1)
        one_file = partial(one_file_rounds, args.rounds, rng, paths, ours, theirs)
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
        changed = b.last.changed or ""
        print(f"(b) one-file push, walking the folder, vs git commit -am: {b.line()}   budget ≤ {BUDGET_WALKED:g}x")
        print(f"    last round changed {changed}: uploaded {b.last.report.blobs_uploaded} blob, "
              f"{b.last.report.manifests_uploaded} manifests (the path's {changed.count('/') + 1} directories), "
              f"hashed {b.last.report.files_hashed} file(s), {b.last.report.requests} requests"
              + ("; confirmed by /v1/blobs/stats" if stats[-1] else ""))
        print(f"    phases of the last round (ms): {b.last.report.timings_ms}")

        # (c) the same, naming the changed file (`fastest push FILE`, as an editor would): no scan
        # of the folder. For information.
        c = one_file("named change", lambda changed: push(folder, folder.load(), api, progress=False, only=[changed]))
        print(f"(c) named-file push vs git commit -am: {c.line()}   (informational)")
        print(f"    phases of the last round (ms): {c.last.report.timings_ms}")

        # (d) the same with a watcher running (Linux): the push asks it what changed since the last push
        d: Rounds | None = None
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
                print(f"(d) watched push (`fastest watch` running) vs git commit -am: {d.line()}   "
                      f"budget ≤ {BUDGET_WATCHED:g}x")
                print(f"    phases of the last round (ms): {d.last.report.timings_ms}")
            finally:
                watcher.terminate()
                watcher.wait(timeout=10)

    # The command as a user runs it (interpreter start-up and imports included), for information.
    with open(ours / changed, "ab") as handle:
        handle.write(b"\n# one more\n")
    cli_b, done = timed(lambda: run_cli(config_dir, ours, "push", "--json"))
    cli_report = json.loads(done.stdout)
    print(f"    `fastest push` as a command: {cli_b * 1000:.0f} ms wall "
          f"({cli_report['blobs_uploaded']} blob, {cli_report['manifests_uploaded']} manifests)")
    verdicts = {"(a)": a.ratio <= BUDGET_FIRST, "(b)": b.ratio <= BUDGET_WALKED}
    if d is not None:
        verdicts["(d)"] = d.ratio <= BUDGET_WATCHED
    over = [name for name, ok in verdicts.items() if not ok]
    print("within budget" if not over else f"OVER BUDGET: {', '.join(over)}")
    return 0 if not over else 1


if __name__ == "__main__":
    raise SystemExit(main())
