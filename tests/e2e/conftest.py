"""The real `fastest` executable as a subprocess: a server on a free port, and admin tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import httpx

FASTEST = [sys.executable, "-m", "fastest.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(base_url: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{process.stdout.read()}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@contextmanager
def running_server(data_dir: Path, env: Mapping[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`fastest serve` on a free port over `data_dir`, healthy, killed on exit if still running."""
    port = free_port()
    process = subprocess.Popen(
        [*FASTEST, "serve", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process)
        yield base_url, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def admin_token(data_dir: Path, email: str, *abilities: str) -> str:
    command = [*FASTEST, "admin", "token", "--email", email, "--data-dir", str(data_dir)]
    if abilities:
        command += ["--abilities", *abilities]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    token = done.stdout.strip()
    assert token.startswith("fst_")
    return token
