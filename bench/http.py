"""Benchmark: authenticated `GET /v1/projects` vs a bare FastAPI handler returning the same JSON.

Both are served by ONE uvicorn process (a path dispatcher in front of the two apps) and measured in
the same run by the same load generator, alternating rounds so drift on the machine hits both alike.
Budget (DESIGN.md §9): Fastest ≥ 60% of the bare handler's throughput.

    .venv/bin/python bench/http.py [--seconds 3] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

SERVER = textwrap.dedent(
    """
    import asyncio, json, sys
    from pathlib import Path
    import uvicorn
    from fastapi import FastAPI
    from fastest.app import create_app
    from fastest.config import Settings
    from durable_objects.local import open_platform as open_local_platform
    from fastest.services import identity, projects

    data_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    platform = open_local_platform(data_dir, Settings(rate_limit_per_minute=10**9))

    async def seed():
        user = await identity.ensure_user(platform, "bench@example.com")
        for i in range(10):
            await projects.create(platform, user["id"], f"project {i}")
        return (await identity.issue_token(platform, user["id"])).token

    token = asyncio.run(seed())
    fastest_app = create_app(lambda scope: platform)
    bare = FastAPI()
    payload = {}

    @bare.get("/bare")
    async def bare_handler():
        return payload

    async def dispatch(scope, receive, send):
        app = bare if scope.get("path") == "/bare" else fastest_app
        await app(scope, receive, send)

    async def main():
        config = uvicorn.Config(dispatch, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        # Give the bare handler exactly the JSON the real route returns.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /v1/projects HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer {token}\\r\\n\\r\\n".encode())
        head = await reader.readuntil(b"\\r\\n\\r\\n")
        length = int([l for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
        payload.update(json.loads(await reader.readexactly(length)))
        writer.close()
        print(json.dumps({"token": token, "bytes": length}), flush=True)
        await task

    asyncio.run(main())
    """
)


async def _connection(port: int, request: bytes, deadline: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.decode(errors="replace"))
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _measure(port: int, request: bytes, seconds: float, connections: int) -> float:
    start = time.perf_counter()
    counts = await asyncio.gather(*(_connection(port, request, start + seconds) for _ in range(connections)))
    return sum(counts) / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        server = subprocess.Popen([sys.executable, "-c", SERVER, tmp, str(port)], stdout=subprocess.PIPE, text=True)
        try:
            info = json.loads(server.stdout.readline())
            real = f"GET /v1/projects HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {info['token']}\r\n\r\n".encode()
            bare = b"GET /bare HTTP/1.1\r\nHost: bench\r\n\r\n"
            asyncio.run(_measure(port, real, 1.0, args.connections))  # warm-up
            asyncio.run(_measure(port, bare, 1.0, args.connections))
            results: dict[str, list[float]] = {"fastest": [], "bare": []}
            for _ in range(args.rounds):
                results["fastest"].append(asyncio.run(_measure(port, real, args.seconds, args.connections)))
                results["bare"].append(asyncio.run(_measure(port, bare, args.seconds, args.connections)))
        finally:
            server.terminate()
            server.wait()

    best = {name: max(values) for name, values in results.items()}
    ratio = best["fastest"] / best["bare"]
    print(f"response: {info['bytes']} bytes of JSON (10 projects); {args.connections} keep-alive connections")
    print(f"bare FastAPI handler      : {best['bare']:8.0f} req/s  (rounds: {', '.join(f'{v:.0f}' for v in results['bare'])})")
    print(f"GET /v1/projects (authed) : {best['fastest']:8.0f} req/s  (rounds: {', '.join(f'{v:.0f}' for v in results['fastest'])})")
    print(f"ratio                     : {ratio:8.1%}  (budget ≥ 60%)")
    return 0 if ratio >= 0.6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
