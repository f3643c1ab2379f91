"""Who the client talks to: `{server, token}` in `$FASTEST_CONFIG_DIR/config.json`, overridable by env.

`source` records where the saved token came from: `"device"` when `fastest login` minted it with the
device flow (so the next login on the same server may revoke it: nobody else holds it), absent for a
token given with `--token` (it may be in use elsewhere, so it is never revoked for you).

The directory defaults to `$XDG_CONFIG_HOME/fastest` (`~/.config/fastest`). The token is a bearer
credential, so the directory is 0700 and the file 0600 from the moment it exists (created with that
mode, never chmod-ed afterwards). `FASTEST_SERVER` and `FASTEST_TOKEN` take precedence, for CI and
scripts that should not write a file.
"""

from __future__ import annotations

import json
import os
from collections import namedtuple
from pathlib import Path
from urllib.parse import urlsplit

from fastest.cli.failures import UsageFailure
from fastest.cli.fsutil import write_atomic

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    from typing import Mapping

CONFIG_FILE = "config.json"


class ConfigError(UsageFailure):
    """Not logged in, or a malformed setting: a usage problem (exit code 2)."""


class Credentials(namedtuple("Credentials", ("server", "token", "source"), defaults=(None,))):
    """`source` is "device" for a token `fastest login` minted with the device flow, else None."""

    __slots__ = ()


def config_dir(env: Mapping[str, str]) -> Path:
    chosen = env.get("FASTEST_CONFIG_DIR")
    if chosen:
        return Path(chosen).expanduser()
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "fastest"


def normalise_server(url: str) -> str:
    """`http(s)://host[:port][/prefix]` without a trailing slash; anything else is refused."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"not a server URL: {url!r} (expected e.g. https://api.example.com)")
    return text


def load_saved(env: Mapping[str, str]) -> Credentials | None:
    path = config_dir(env) / CONFIG_FILE
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    server, token = document.get("server"), document.get("token")
    if not isinstance(server, str) or not isinstance(token, str):
        raise ConfigError(f"{path} is missing 'server' or 'token'; run fastest login")
    source = document.get("source")
    return Credentials(server=server, token=token, source=source if isinstance(source, str) else None)


def save(env: Mapping[str, str], credentials: Credentials) -> Path:
    directory = config_dir(env)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # also when it existed: it holds a credential
    path = directory / CONFIG_FILE
    document = {"server": credentials.server, "token": credentials.token}
    if credentials.source:
        document["source"] = credentials.source
    body = json.dumps(document, indent=2) + "\n"
    write_atomic(path, body.encode("utf-8"), mode=0o600)
    return path


def replaced_device_token(env: Mapping[str, str], server: str, new_token: str) -> str | None:
    """The saved token a new login on `server` replaces, if `fastest login` minted it with the device
    flow on that same server (so it is ours to revoke); None otherwise, or when unreadable."""
    try:
        saved = load_saved(env)
    except ConfigError:
        return None
    if saved is None or saved.source != "device" or saved.token == new_token:
        return None
    try:
        same_server = normalise_server(saved.server) == normalise_server(server)
    except ConfigError:
        return None
    return saved.token if same_server else None


def forget(env: Mapping[str, str]) -> bool:
    """Remove the saved login (the token file); False when there was none."""
    try:
        (config_dir(env) / CONFIG_FILE).unlink()
    except FileNotFoundError:
        return False
    return True


def default_server(env: Mapping[str, str]) -> str | None:
    """The server to log in to when none is given: `FASTEST_SERVER`, else the last login's."""
    if env.get("FASTEST_SERVER"):
        return env["FASTEST_SERVER"]
    try:
        saved = load_saved(env)
    except ConfigError:
        return None
    return saved.server if saved else None


def resolve(env: Mapping[str, str], workspace_server: str | None = None) -> Credentials:
    """The server and token to use: env first, then the folder's server, then the saved login.

    A folder initialised against one server must not silently send its files to another, and a
    token saved for one server must not be sent to another: both mismatches are errors.
    """
    saved = load_saved(env)
    token = env.get("FASTEST_TOKEN") or (saved.token if saved else None)
    server = env.get("FASTEST_SERVER") or workspace_server or (saved.server if saved else None)
    if not server or not token:
        raise ConfigError("not logged in; run fastest login --server URL")
    server = normalise_server(server)
    if workspace_server and normalise_server(workspace_server) != server:
        raise ConfigError(f"this folder belongs to {workspace_server}, not {server}")
    if not env.get("FASTEST_TOKEN") and saved and normalise_server(saved.server) != server:
        raise ConfigError(f"logged in to {saved.server}, not {server}; run fastest login --server {server}")
    return Credentials(server=server, token=token)
