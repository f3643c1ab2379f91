"""The README's walk-through runs as written: every ```sh block of README.md, in order, in one shell
(`set -euo pipefail`), against a fresh `fastest serve`, as a new user in a fresh home directory.

The test plays the person at the browser: when `fastest login` prints its code, it approves it as
the local owner would on the device page. Only two things differ from a reader's run: the server's
port (a free one instead of 8787) and blocks marked `<!-- not run by tests/e2e/test_readme.py: why -->`
(installing, serving), which the test has done itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.e2e.conftest import admin_token, running_server

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```sh\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SKIP = "<!-- not run by tests/e2e/test_readme.py"
USER_CODE = re.compile(r"user_code=([A-Z]{4}-[A-Z]{4})")


def runnable_blocks(text: str) -> list[str]:
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not before.startswith(SKIP):
            blocks.append(match.group(1))
    return blocks


def test_the_walk_through_blocks_are_found():
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert any("fastest login" in block for block in blocks) and any("fastest deploy" in block for block in blocks)
    assert not any("pip install" in block for block in blocks)


def test_the_readme_walk_through_runs_as_written(tmp_path: Path):
    env = {"FASTEST_RATE_LIMIT_PER_MINUTE": "100000", "FASTEST_DEVICE_POLL_INTERVAL_SECONDS": "1"}
    with running_server(tmp_path / "data", env) as (base_url, _):
        port = base_url.rsplit(":", 1)[1]
        owner = admin_token(tmp_path / "data", "owner@localhost")
        script = "set -euxo pipefail\n" + "\n".join(runnable_blocks(README.read_text(encoding="utf-8")))
        script = script.replace("127.0.0.1:8787", f"127.0.0.1:{port}")
        checkout = tmp_path / "repository"  # the reader's repository root: .venv is this interpreter's
        checkout.mkdir()
        (checkout / ".venv").symlink_to(sys.prefix)
        home = tmp_path / "home"
        home.mkdir()
        shell_env = {k: v for k, v in os.environ.items() if not k.startswith(("FASTEST_", "XDG_"))}
        shell_env["HOME"] = str(home)
        shell = subprocess.Popen(["bash", "-c", script], cwd=checkout, env=shell_env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output: list[str] = []

        def read() -> None:
            assert shell.stdout is not None
            for line in shell.stdout:
                output.append(line)
                code = USER_CODE.search(line)
                if code:  # the person at the browser approves the code
                    approved = httpx.post(f"{base_url}/v1/oauth/device/authorize", json={"user_code": code.group(1)},
                                          headers={"Authorization": f"Bearer {owner}"}, timeout=10)
                    assert approved.status_code == 200, approved.text

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            shell.wait(timeout=300)
        finally:
            if shell.poll() is None:
                shell.kill()
                shell.wait()
            reader.join(timeout=10)
        text = "".join(output)
        assert shell.returncode == 0, text[-6000:]
    assert f"logged in to {base_url} as owner@localhost" in text
    assert "synced with main" in text and "http://dep-" in text
