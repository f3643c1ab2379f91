"""Benchmark: authenticated `GET /v1/projects` against a bare FastAPI handler returning the same JSON.

Both are served by ONE uvicorn process (bench/_served.py: a path dispatcher in front of the two
apps) and loaded by `wrk`, a separate process written in C (Debian: `apt-get install wrk`), so the
figure measures the server rather than a Python load generator sharing its cores. Rounds alternate
bare / real so that drift on the machine hits both alike. Per round: requests per second, and the
server's CPU time per request (from /proc). The server is one process, busy on one core, so on an
idle machine its throughput is 1 / its CPU per request; on a shared one, req/s swing with whatever
else runs (rounds of 60% and 300% in one run), while the CPU per request barely moves. So the
verdict is the ratio of the medians of CPU per request (bare / real), where /proc exists, and the
median of the rounds' paired req/s ratios otherwise; both are printed.

Then the cost of each stage of one authenticated request, measured in this process without
sockets (CPU µs per call, median over rounds): the whole request through the ASGI app, the bare
handler, and the parts the request is made of — token lookup (with the ability check), rate limit,
the list query, the response model — plus what is left (middleware, routing, dependency
resolution).
A regression shows up there by name.

Budget: the real route ≥ 90% of the bare handler's throughput (as CPU per request, above). Exits 1
when over budget, 2 when `wrk` is missing.

    .venv/bin/python bench/request_path.py [--seconds 3] [--rounds 5] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

BUDGET = 0.90
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux), else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, seconds: float, connections: int, headers: dict[str, str]) -> tuple[int, float]:
    """One `wrk` run: (requests completed, seconds). Any non-2xx answer fails the benchmark."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run([*argv, url], check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit(f"wrk saw failed requests:\n{out}")
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if done is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    elapsed = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    return int(done.group(1)), elapsed


# --------------------------------------------------------------------------------------------------
# Load: wrk against the served process


def load_rounds(args: argparse.Namespace) -> tuple[dict[str, list[float]], dict[str, list[float]], int]:
    """Alternating rounds of wrk: req/s and server CPU µs per request, by name; and the body size."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="fastest-bench-http-") as tmp:
        server = subprocess.Popen([sys.executable, str(HERE / "_served.py"), tmp, str(port)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            info = json.loads(server.stdout.readline())
            targets = {
                "bare": (f"{base}/bare", {}),
                "fastest": (f"{base}/v1/projects", {"Authorization": f"Bearer {info['token']}"}),
            }
            for url, headers in targets.values():  # warm-up
                wrk(url, 1, args.connections, headers)
            rates: dict[str, list[float]] = {name: [] for name in targets}
            cpu: dict[str, list[float]] = {name: [] for name in targets}
            for _ in range(args.rounds):
                for name, (url, headers) in targets.items():
                    before = cpu_seconds(server.pid)
                    count, elapsed = wrk(url, args.seconds, args.connections, headers)
                    after = cpu_seconds(server.pid)
                    rates[name].append(count / elapsed)
                    if before is not None and after is not None:
                        cpu[name].append((after - before) / count * 1e6)
        finally:
            server.terminate()
            server.wait()
    return rates, cpu, info["bytes"]


# --------------------------------------------------------------------------------------------------
# Stages: one request's parts, in this process


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "headers": [(b"host", b"bench"), *headers], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}


async def _asgi_call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent


async def _per_call(action: Callable[[], Awaitable[Any]], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await action()
    return (time.process_time() - started) / calls * 1e6


def stage_costs(rounds: int, calls: int) -> dict[str, float]:
    """CPU µs per call of each stage, median over rounds (all stages measured in each round)."""
    sys.path.insert(0, str(HERE))
    from _served import BARE_PATH, ROUTE, bare_app, open_seeded

    from fastest.schemas.projects import ProjectList
    from fastest.services import identity, projects
    from fastest.services.safeguards import rate_limits

    with tempfile.TemporaryDirectory(prefix="fastest-bench-stages-") as tmp:
        platform, token, app = open_seeded(Path(tmp))
        authed = _scope(ROUTE, [(b"authorization", f"Bearer {token}".encode())])
        anonymous = _scope(ROUTE, [])
        payload: dict[str, Any] = {}
        bare = bare_app(payload)

        async def run() -> dict[str, list[float]]:
            answer = await _asgi_call(app, authed)
            assert answer[0]["status"] == 200, answer
            payload.update(json.loads(answer[1]["body"]))
            principal = await identity.authorize(platform, token, "projects:read")
            user_id = principal.user_id
            body = {"projects": (await projects.list_page(platform, user_id, limit=50))[0], "next_cursor": None}
            stages: dict[str, Callable[[], Awaitable[Any]]] = {
                "request": lambda: _asgi_call(app, authed),
                "bare": lambda: _asgi_call(bare, _scope(BARE_PATH, [])),
                "no token (401)": lambda: _asgi_call(app, anonymous),
                "authorize": lambda: identity.authorize(platform, token, "projects:read"),
                "rate limit": lambda: rate_limits.enforce(platform, user_id),
                "list query": lambda: projects.list_page(platform, user_id, limit=50),
                "response model": lambda: _model_json(ProjectList, body),
            }
            for action in stages.values():  # warm-up
                await _per_call(action, max(1, calls // 10))
            samples: dict[str, list[float]] = {name: [] for name in stages}
            for _ in range(rounds):
                for name, action in stages.items():
                    samples[name].append(await _per_call(action, calls))
            return samples

        try:
            samples = asyncio.run(run())
        finally:
            platform.close()
    return {name: statistics.median(values) for name, values in samples.items()}


async def _model_json(model: Any, body: dict[str, Any]) -> bytes:
    """What FastAPI does with a handler's return value: validate it against the response model, dump JSON."""
    return model.model_validate(body).model_dump_json().encode()


def print_stages(costs: dict[str, float]) -> None:
    total = costs["request"]
    # `authorize` is the token lookup, the rate limit and the ability check; the rate limit alone
    # is measured too, and the token lookup is the difference.
    costs = {**costs, "token lookup": costs["authorize"] - costs["rate limit"]}
    parts = ("token lookup", "rate limit", "list query", "response model")
    rest = total - sum(costs[name] for name in parts)
    print("per-stage CPU µs per call, in process (no sockets), median over rounds:")
    print(f"  authenticated GET /v1/projects   {total:7.1f} µs   (bare handler {costs['bare']:.1f} µs; "
          f"the same route without a token, answered 401: {costs['no token (401)']:.1f} µs)")
    for name in parts:
        print(f"    {name:30s} {costs[name]:7.1f} µs  {costs[name] / total:5.1%}")
    print(f"    {'middleware, routing, deps':30s} {rest:7.1f} µs  {rest / total:5.1%}  (the rest)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--stage-calls", type=int, default=2000, help="calls per stage and round")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("bench/request_path.py needs wrk (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    load = os.getloadavg()
    rates, cpu, size = load_rounds(args)
    ratios = [real / bare for real, bare in zip(rates["fastest"], rates["bare"])]
    ratio = statistics.median(ratios)
    print(f"response: {size} bytes of JSON (10 projects); wrk, 1 thread, {args.connections} keep-alive connections, "
          f"{args.rounds} rounds of {args.seconds:g} s each, alternating; load average before: "
          f"{load[0]:.1f} on {os.cpu_count()} CPUs")
    for name, label in (("bare", "bare FastAPI handler"), ("fastest", "GET /v1/projects (authed)")):
        cpu_text = f"; server CPU {statistics.median(cpu[name]):5.0f} µs/request" if cpu[name] else ""
        print(f"  {label:26s} median {statistics.median(rates[name]):7.0f} req/s{cpu_text}   "
              f"(rounds: {', '.join(f'{v:.0f}' for v in rates[name])})")
    print(f"  req/s, real / bare: {ratio:.1%} (median of the rounds: {', '.join(f'{r:.0%}' for r in ratios)})")
    if cpu["bare"] and cpu["fastest"]:
        ratio = statistics.median(cpu["bare"]) / statistics.median(cpu["fastest"])
        print(f"  CPU per request, bare / real: {ratio:.1%}   budget ≥ {BUDGET:.0%}")
    else:
        print(f"  (no /proc: the req/s ratio is judged)   budget ≥ {BUDGET:.0%}")
    print()
    print_stages(stage_costs(args.rounds, args.stage_calls))
    within = ratio >= BUDGET
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    raise SystemExit(main())
