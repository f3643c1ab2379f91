"""Benchmark: the `fastest` command's start-up, as whole processes, against `python -c pass`.

Starts the real server (`fastest serve`) in a temporary data directory, signs in, initialises and
pushes a 1,000-file folder, starts `fastest watch --no-push` in it, then runs each command as a user
would (the `fastest` console script of this venv, a new process each time) in interleaved rounds,
so drift on the machine hits all alike:

  python -c pass              the interpreter's own start (same venv): the unit of the ratios
  fastest --help              budget ≤ 2.5×
  fastest status              budget ≤ 4×   (the watcher says what changed: no walk of the folder)
  fastest push  (one file)    budget ≤ 5×   (a line appended to one file before each round)
  fastest status --rescan     informational (walks the 1,000 files)

Each command's ratio is the median, over the rounds, of its time divided by `python -c pass`'s time in
the same round (paired, so a busy moment weighs on both); each command's median time is printed
beside it. Exit status 0 when every budget holds.

    .venv/bin/python bench/cli.py [--files 1000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

FASTEST = str(Path(sys.executable).with_name("fastest"))
BUDGETS = {"fastest --help": 2.5, "fastest status": 4.0, "fastest push (one file)": 5.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.1)


def generate(root: Path, files: int) -> list[str]:
    """`files` small text files in ~files/10 directories, two levels deep."""
    paths = []
    for index in range(files):
        path = f"pkg{index % 10:02d}/mod{index // 10 % 10:02d}/file{index:05d}.py"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"# {path}\n" + "value = 1\n" * (1 + index % 50))
        paths.append(path)
    return paths


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """One whole process, timed from spawn to exit; it must succeed."""
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fastest-bench-cli-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir, folder = tmp / "data", tmp / "folder"
        env = {**os.environ, "FASTEST_CONFIG_DIR": str(tmp / "config"), "FASTEST_RATE_LIMIT_PER_MINUTE": str(10**9)}
        env.pop("FASTEST_SERVER", None)
        # As installed for a user: modules compiled once and cached (__pycache__), not compiled at
        # every start. The warm-up runs below write the caches.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([FASTEST, "serve", "--port", str(port), "--data-dir", str(data_dir)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        watcher: subprocess.Popen | None = None
        try:
            wait_healthy(base_url, server)
            token = subprocess.run([FASTEST, "admin", "token", "--email", "bench@example.com", "--data-dir", str(data_dir)],
                                   env=env, check=True, capture_output=True, text=True).stdout.strip()
            paths = generate(folder, args.files)
            run([FASTEST, "login", "--server", base_url, "--token", token], tmp, env)
            run([FASTEST, "init", "--project", "bench-cli"], folder, env)
            run([FASTEST, "push", "-m", "first"], folder, env)
            watcher = subprocess.Popen([FASTEST, "watch", "--no-push"], cwd=folder, env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            assert watcher.stdout is not None and watcher.stdout.readline().startswith("watching"), "no watcher"
            run([FASTEST, "status"], folder, env)  # the first question to the watcher walks once
            run([FASTEST, "push"], folder, env)
            return measure(args, folder, env, paths)
        finally:
            for process in (watcher, server):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=15)


def measure(args: argparse.Namespace, folder: Path, env: dict[str, str], paths: list[str]) -> int:
    commands: dict[str, list[str]] = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "fastest --help": [FASTEST, "--help"],
        "fastest status": [FASTEST, "status"],
        "fastest push (one file)": [FASTEST, "push"],
        "fastest status --rescan": [FASTEST, "status", "--rescan"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():  # warm-up: bytecode caches written, files in the page cache
        if name != "fastest push (one file)":
            run(argv, folder, env)
    for round_index in range(args.rounds):
        for name, argv in commands.items():
            if name == "fastest push (one file)":
                with open(folder / paths[(round_index * 37) % len(paths)], "a") as handle:
                    handle.write(f"# round {round_index}\n")
            times[name].append(run(argv, folder, env))
    # The last push must have sent exactly the one changed file (checked once, untimed).
    with open(folder / paths[0], "a") as handle:
        handle.write("# check\n")
    report = json.loads(subprocess.run([FASTEST, "push", "--json"], cwd=folder, env=env, check=True,
                                       capture_output=True, text=True).stdout)
    assert report["blobs_uploaded"] == 1 and not report.get("folder_walked", False), report

    unit = times["python -c pass"]
    print(f"{args.files} files, {args.rounds} interleaved rounds (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}). Ratio: the median over rounds of (command / python -c pass of the same "
          f"round)")
    within = True
    for name, samples in times.items():
        ratio = statistics.median(t / u for t, u in zip(samples, unit))
        budget = BUDGETS.get(name)
        verdict = "" if budget is None else f"  budget ≤ {budget:g}x  " + ("ok" if ratio <= budget else "OVER")
        within &= budget is None or ratio <= budget
        print(f"  {name:26s} median {statistics.median(samples) * 1000:6.1f} ms  {ratio:5.2f}x{verdict}")
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
