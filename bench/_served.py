"""What bench/request_path.py serves and measures: a local platform seeded with one user, ten
projects and a token, the real app, and a bare FastAPI app answering the same JSON.

Run as a script it serves both from one uvicorn process (a path dispatcher in front of the two
apps: `/bare` is the bare handler, everything else the real app), prints `{"token", "bytes"}` as
one JSON line once it answers, and serves until terminated:

    python bench/_served.py DATA_DIR PORT
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from durable_objects.local import open_platform
from fastest.app import create_app
from fastest.config import Settings
from fastest.services import identity, projects

PROJECTS = 10
BARE_PATH = "/bare"
ROUTE = "/v1/projects"


async def seed(platform: Any) -> str:
    """One user with PROJECTS projects; returns a bearer token of theirs."""
    user = await identity.ensure_user(platform, "bench@example.com")
    for index in range(PROJECTS):
        await projects.create(platform, user["id"], f"project {index}")
    return (await identity.issue_token(platform, user["id"])).token


def open_seeded(data_dir: Path) -> tuple[Any, str, FastAPI]:
    """A seeded local platform (no rate limit in the way), a token, and the app serving it."""
    platform = open_platform(data_dir, Settings(rate_limit_per_minute=10**9))
    token = asyncio.run(seed(platform))
    return platform, token, create_app(lambda scope: platform)


def bare_app(payload: dict[str, Any]) -> FastAPI:
    """A FastAPI app whose one handler returns `payload` as a plain handler does: no response model,
    FastAPI's default encoding (`jsonable_encoder`)."""
    bare = FastAPI()

    @bare.get(BARE_PATH)
    async def bare_handler():  # noqa: ANN202 - no annotation: a return type would become a response model
        return payload

    return bare


async def _serve(app: FastAPI, token: str, port: int) -> None:
    import uvicorn

    payload: dict[str, Any] = {}
    bare = bare_app(payload)

    async def dispatch(scope: dict, receive: Any, send: Any) -> None:
        await (bare if scope.get("path") == BARE_PATH else app)(scope, receive, send)

    config = uvicorn.Config(dispatch, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    # The bare handler answers exactly the JSON the real route returns.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {ROUTE} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    payload.update(json.loads(await reader.readexactly(length)))
    writer.close()
    print(json.dumps({"token": token, "bytes": length}), flush=True)
    await task


if __name__ == "__main__":
    _, bench_token, fastest_app = open_seeded(Path(sys.argv[1]))
    asyncio.run(_serve(fastest_app, bench_token, int(sys.argv[2])))
