"""The real `fastest` executable as a subprocess: a server on a free port, admin tokens, and the client
logged in to it with its own config directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import httpx
import pytest

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


@pytest.fixture
def server(tmp_path: Path):
    with running_server(tmp_path / "data", {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000"}) as (base_url, _):
        yield base_url, tmp_path / "data"


class Cli:
    """Runs `fastest …` with its own config directory, like a user on their own machine."""

    def __init__(self, config_dir: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")}
        self.env["FASTEST_CONFIG_DIR"] = str(config_dir)

    def __call__(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*FASTEST, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"fastest {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def json(self, *args: str, cwd: Path) -> dict:
        done = self(*args, "--json", cwd=cwd)
        return json.loads(done.stdout)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "config")


@pytest.fixture
def logged_in(server, cli: Cli, tmp_path: Path) -> Cli:
    base_url, data_dir = server
    cli("login", "--server", base_url, "--token", admin_token(data_dir, "cli@example.com"), cwd=tmp_path)
    return cli


def write(path: Path, content: bytes | str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    if mode is not None:
        path.chmod(mode)
