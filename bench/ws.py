"""Benchmark: 100 WebSocket clients on one conversation, one streamed reply.

A real `fastest serve` process talks to a bench-made OpenAI-compatible model server on loopback that
streams `--deltas` chunks, each carrying the wall-clock time it was written. Every client records,
for each `message.delta` frame, the delay from the model writing the chunk to the client reading
the frame (model → server → session object → event log → fan-out → client), and the run reports
p50/p99 of those delays and the frames per second delivered to all clients together.
Budget (DESIGN.md §9): p99 < 50 ms.

    .venv/bin/python bench/ws.py [--clients 100] [--deltas 200] [--interval-ms 10]
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

import httpx  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.conftest import admin_token, running_server  # noqa: E402

BUDGET_P99_MS = 50.0


def model_server(deltas: int, interval: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.end_headers()
            for _ in range(deltas):
                chunk = {"model": "bench", "choices": [{"index": 0, "delta": {"content": f"{time.time():.6f} "}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                time.sleep(interval)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def client(url: str, ready: asyncio.Event, count: list[int], latencies: list[float], frames: list[int]) -> None:
    async with connect(url, max_queue=None) as ws:
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "ready":
                count[0] += 1
                if count[0] == count[1]:
                    ready.set()
                continue
            received = time.time()
            frames[0] += 1
            if frame["type"] == "message.delta":
                latencies.append((received - float(frame["data"]["delta"])) * 1000)
            elif frame["type"] in ("turn.completed", "turn.failed"):
                return


async def run(base_url: str, cid: str, token: str, clients: int) -> tuple[list[float], int, float]:
    url = f"ws{base_url[4:]}/v1/conversations/{cid}/stream?token={token}"
    ready, count, latencies, frames = asyncio.Event(), [0, clients], [], [0]
    tasks = [asyncio.create_task(client(url, ready, count, latencies, frames)) for _ in range(clients)]
    await asyncio.wait_for(ready.wait(), 60)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.post(f"/v1/conversations/{cid}/messages", json={"prompt": "stream"})
        assert response.status_code == 202, response.text
    await asyncio.wait_for(asyncio.gather(*tasks), 300)
    return latencies, frames[0], time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--deltas", type=int, default=200)
    # 10 ms apart = 100 deltas/s, a fast model's token rate.
    parser.add_argument("--interval-ms", type=float, default=10.0)
    args = parser.parse_args()
    model = model_server(args.deltas, args.interval_ms / 1000)
    env = {
        "FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_AI_RATE_LIMIT_PER_MINUTE": "100000",
        "FASTEST_AI_PROVIDER": "openai", "FASTEST_AI_MODEL": "bench",
        "FASTEST_AI_BASE_URL": f"http://127.0.0.1:{model.server_address[1]}/v1",
    }
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp) / "data", env) as (base_url, _):
        token = admin_token(Path(tmp) / "data", "bench@example.com")
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
            project = http.post("/v1/projects", json={"name": "bench"}).json()["project"]
            workspace = http.post(f"/v1/projects/{project['id']}/workspaces", json={"name": "w"}).json()["workspace"]
            cid = http.post("/v1/conversations", json={"workspace_id": workspace["id"]}).json()["conversation"]["id"]
        latencies, frames, seconds = asyncio.run(run(base_url, cid, token, args.clients))
    model.shutdown()
    expected = args.clients * args.deltas
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    print(f"{args.clients} clients, {args.deltas} deltas each ({args.interval_ms:g} ms apart): "
          f"{len(latencies)}/{expected} deltas delivered")
    print(f"delta delivery latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms (budget p99 < {BUDGET_P99_MS:g} ms)")
    print(f"{frames} frames in {seconds:.2f} s = {frames / seconds:,.0f} frames/s to all clients")
    ok = len(latencies) == expected and p99 < BUDGET_P99_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
