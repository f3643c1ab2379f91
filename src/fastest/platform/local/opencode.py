"""`opencode serve` on this machine, one process per conversation (`FASTEST_AI_PROVIDER=opencode`).

Each conversation gets a directory under the data dir: `tree/`, its working tree checked out to disk
(OpenCode reads and edits files there), and `home/`, OpenCode's own home (its configuration, its
database of sessions and messages, its caches), so conversations share nothing and OpenCode finds
its sessions again after a restart. The process is started by a turn when none runs, listens on a
free loopback port behind a password only this server knows, gets no environment of ours (no secret
of the server's reaches it), and is stopped when idle for a while, or with the server (or by the
kernel when the server dies).

Nothing it does may need the network: the configuration switches off update checks and sharing, the
flags below switch off model-list downloads, plugin and LSP installs; and its configuration
directory is handed over with OpenCode's plugin dependency already recorded, so it does not run the
npm install it otherwise starts for a fresh one.

The binary comes from npm (`opencode-ai`, whose platform package `opencode-linux-x64` carries it):
`FASTEST_OPENCODE_BIN` names one, else the copy `install` put under the data dir (`fastest serve`
installs it when this engine is chosen).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets as random_tokens
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from fastest.platform.ai.opencode import USERNAME, OpenCodeError, basic_auth
from fastest.platform.local.workdir import LocalWorkdir
from fastest.ports import OpenCodeServer

log = logging.getLogger("fastest.opencode")

OPENCODE_VERSION = "1.18.33"
NPM_PACKAGE = "opencode-ai"
START_TIMEOUT_SECONDS = 60.0
# A conversation's server with no turn for this long is stopped (FASTEST_OPENCODE_IDLE_SECONDS).
IDLE_SECONDS = 600.0
_LISTENING = re.compile(rb"listening on (http://127\.0\.0\.1:\d+)")

# OpenCode's switches for what would reach the network or the machine's other configuration.
OFFLINE_FLAGS = {
    "OPENCODE_DISABLE_AUTOUPDATE": "1",
    "OPENCODE_DISABLE_SHARE": "1",
    "OPENCODE_DISABLE_MODELS_FETCH": "1",
    "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
    "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    "OPENCODE_DISABLE_CLAUDE_CODE": "1",
    "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
    "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    "OPENCODE_ENABLE_QUESTION_TOOL": "1",
}
# What OpenCode's own processes (its shell tool) still need from ours, and the proxy an operator may
# send outbound traffic through.
_PASSED_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
# Where a conversation's server says how to reach it (its URL and password, readable by this user
# alone): for its operator (`opencode attach`), and for tests that compare with what OpenCode says.
SERVER_FILE = "server.json"


class OpenCodeUnavailable(OpenCodeError):
    """No OpenCode binary here, or its server would not start; the message says what to do."""


def npm_prefix(data_dir: Path) -> Path:
    """Where `install` puts OpenCode for a server over `data_dir`."""
    return data_dir / "opencode" / "npm"


def installed_binary(prefix: Path) -> Path:
    return prefix / "node_modules" / ".bin" / "opencode"


def find_binary(prefix: Path, configured: str = "") -> Path | None:
    """FASTEST_OPENCODE_BIN when set, else the copy `install` put under `prefix`."""
    if configured:
        return Path(configured)
    binary = installed_binary(prefix)
    return binary if binary.exists() else None


async def install(prefix: Path, version: str = OPENCODE_VERSION) -> Path:
    """`npm install opencode-ai@version` into `prefix` (once; the registry is npm's)."""
    binary = installed_binary(prefix)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise OpenCodeUnavailable("OpenCode is installed with npm, which is not on PATH: install Node.js, or set FASTEST_OPENCODE_BIN.")
    prefix.mkdir(parents=True, exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--no-save", f"{NPM_PACKAGE}@{version}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    output, _ = await process.communicate()
    if process.returncode != 0 or not binary.exists():
        raise OpenCodeUnavailable(f"npm could not install {NPM_PACKAGE}@{version}: {output.decode(errors='replace')[-500:]}")
    return binary


def seed_config_dir(config_dir: Path, config: Mapping[str, Any]) -> None:
    """OpenCode's configuration directory: our `opencode.json`, and the plugin dependency OpenCode
    installs into a fresh one already recorded (its check finds nothing missing, so no npm run)."""
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "node_modules").mkdir(exist_ok=True)
    dependency = {"@opencode-ai/plugin": OPENCODE_VERSION}
    (config_dir / "package.json").write_text(json.dumps({"dependencies": dependency}))
    (config_dir / "package-lock.json").write_text(json.dumps({"packages": {"": {"dependencies": dependency}}}))
    (config_dir / "opencode.json").write_text(json.dumps(config, indent=1))


@dataclass(slots=True)
class _Running:
    process: asyncio.subprocess.Process
    server: OpenCodeServer
    config: str
    reader: asyncio.Task
    idle_since: float | None = None  # None while a turn uses it


class LocalOpenCodeHost:
    """The OpenCode servers of this process's conversations, by conversation id."""

    def __init__(self, root: Path, binary: Callable[[], Path | None], *, env: Mapping[str, str] | None = None,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.root = root
        self._binary = binary
        self.idle_seconds = idle_seconds
        self._env = dict(os.environ if env is None else env)
        self._running: dict[str, _Running] = {}
        self._starting: dict[str, asyncio.Lock] = {}

    def _home(self, name: str) -> Path:
        # Conversation ids are ours, but a directory name is derived, never taken from input.
        return self.root / hashlib.sha256(name.encode()).hexdigest()[:32]

    async def server(self, name: str, config: Mapping[str, Any], secrets: Mapping[str, str]) -> OpenCodeServer:
        """The conversation's running server; started (again) when it is not running, or when its
        configuration changed (another model, another key)."""
        lock = self._starting.setdefault(name, asyncio.Lock())
        async with lock:
            text = json.dumps([config, hashlib.sha256(json.dumps(secrets, sort_keys=True).encode()).hexdigest()], sort_keys=True)
            running = self._running.get(name)
            if running is not None and running.process.returncode is None and running.config == text:
                running.idle_since = None
                return running.server
            if running is not None:
                await self.stop(name)
            self._running[name] = await self._start(name, config, secrets, text)
            return self._running[name].server

    async def _start(self, name: str, config: Mapping[str, Any], secrets: Mapping[str, str], text: str) -> _Running:
        binary = self._binary()
        if binary is None or not binary.exists():
            raise OpenCodeUnavailable("OpenCode is not installed: start the server with `fastest serve` (it installs it for "
                                      "FASTEST_AI_PROVIDER=opencode) or set FASTEST_OPENCODE_BIN.")
        home = self._home(name)
        tree = home / "tree"
        tree.mkdir(parents=True, exist_ok=True)
        xdg = {"XDG_CONFIG_HOME": home / "config", "XDG_DATA_HOME": home / "data", "XDG_CACHE_HOME": home / "cache",
               "XDG_STATE_HOME": home / "state"}
        seed_config_dir(xdg["XDG_CONFIG_HOME"] / "opencode", config)
        password = random_tokens.token_urlsafe(24)
        env = {key: self._env[key] for key in _PASSED_ENV if key in self._env}
        env.update({"HOME": str(home), **{k: str(v) for k, v in xdg.items()}, **OFFLINE_FLAGS,
                    "OPENCODE_SERVER_USERNAME": USERNAME, "OPENCODE_SERVER_PASSWORD": password, **secrets})
        process = await asyncio.create_subprocess_exec(
            str(binary), "serve", "--hostname", "127.0.0.1", "--port", "0", cwd=tree, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True, preexec_fn=_die_with_parent)
        try:
            url = await asyncio.wait_for(_listening(process), START_TIMEOUT_SECONDS)
        except (asyncio.TimeoutError, OpenCodeUnavailable) as exc:
            _kill(process)
            raise OpenCodeUnavailable(f"The OpenCode server did not start: {exc}") from exc
        reader = asyncio.ensure_future(_drain(process))
        _write_private(home / SERVER_FILE, json.dumps({"url": url, "username": USERNAME, "password": password, "pid": process.pid}))
        server = OpenCodeServer(url=url, directory=str(tree), headers=basic_auth(USERNAME, password),
                                files=LocalWorkdir(tree), alive=lambda: process.returncode is None)
        log.info("conversation %s: OpenCode server %s (pid %s)", name, url, process.pid)
        return _Running(process, server, text, reader)

    def done(self, name: str) -> None:
        """A turn of conversation `name` ended: its server stops once idle for `idle_seconds` (a
        server holds a few hundred MB; the next turn starts it again, in the same session)."""
        running = self._running.get(name)
        if running is None:
            return
        running.idle_since = idle_since = time.monotonic()

        def stop_if_still_idle() -> None:
            current = self._running.get(name)
            if current is running and current.idle_since == idle_since:
                asyncio.ensure_future(self.stop(name))

        asyncio.get_running_loop().call_later(self.idle_seconds, stop_if_still_idle)

    async def stop(self, name: str) -> None:
        running = self._running.pop(name, None)
        if running is None:
            return
        _kill(running.process)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running.process.wait(), 10)
        running.reader.cancel()

    def close(self) -> None:
        """Stop every server (the local platform's closer)."""
        for running in self._running.values():
            _kill(running.process)
        self._running.clear()


async def _listening(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    while True:
        line = await process.stdout.readline()
        if not line:
            raise OpenCodeUnavailable(f"it exited with status {await process.wait()}")
        if match := _LISTENING.search(line):
            return match.group(1).decode()


async def _drain(process: asyncio.subprocess.Process) -> None:
    """Read what the server prints (a full pipe would stall it) into our log."""
    assert process.stdout is not None
    while line := await process.stdout.readline():
        log.debug("opencode[%s]: %s", process.pid, line.decode(errors="replace").rstrip())


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)


def _die_with_parent() -> None:
    """In the child, before OpenCode starts: Linux kills it when this server's process dies, however
    it dies (a crash, a `kill -9`), so no server is left running a conversation no one follows."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
