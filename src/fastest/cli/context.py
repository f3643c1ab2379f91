"""What every client command runs with: its exit codes, how it reports (one `fastest: …` line on
stderr for a failure; human lines or one JSON document on stdout), the linked folder it works in and
an API client for the right server.

Exit codes:

    0  success
    1  the operation failed (server said no, network, conflict, a file changed under us)
    2  usage: bad arguments, not logged in, not a fastest folder

Imported on every client command's path, so it imports only what `fastest status` needs anyway.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path

from fastest.cli import config
from fastest.cli.config import Credentials
from fastest.cli.failures import CommandFailure, UsageFailure
from fastest.domain.manifest import ManifestError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (start-up: fastest.cli.records)
if TYPE_CHECKING:
    import argparse
    from typing import Any, Callable, Iterator, Mapping

    from fastest.cli.client import ApiClient
    from fastest.cli.state import Folder, WorkspaceState

    Env = Mapping[str, str]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LOGIN_HINT = "the server rejected the token (expired or revoked?); run fastest login"


class UsageError(UsageFailure):
    """Wrong use of a command (exit code 2)."""


def run_reporting(handler: Callable[[argparse.Namespace, Env], int], args: argparse.Namespace, env: Env) -> int:
    """Run one command; every expected failure ends as one stderr line and an exit code."""
    try:
        return handler(args, env)
    except UsageFailure as exc:  # ConfigError, NotAWorkspace, UsageError
        return fail(str(exc), EXIT_USAGE)
    except CommandFailure as exc:  # ApiError, PushError, CheckoutError, SyncError, DeviceLoginError, WatchError
        if getattr(exc, "status", None) == 401:  # ApiError
            return fail(LOGIN_HINT, EXIT_FAILED)
        return fail(str(exc), EXIT_FAILED)
    except ManifestError as exc:
        return fail(f"cannot describe this folder: {exc}", EXIT_FAILED)
    except OSError as exc:
        return fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_FAILED)


def fail(message: str, code: int) -> int:
    print(f"fastest: {message}", file=sys.stderr)
    return code


def emit(as_json: bool, document: Any, lines: list[str]) -> None:
    """`--json`: the document; otherwise the human lines."""
    if as_json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for line in lines:
            print(line)


def folder_of(args: argparse.Namespace) -> Folder:
    """The linked folder containing `--dir`, else the current directory (NotAWorkspace if none)."""
    from fastest.cli.state import find_folder

    return find_folder(Path(args.dir) if getattr(args, "dir", None) else Path.cwd())


def client(credentials: Credentials) -> ApiClient:
    from fastest.cli.client import ApiClient

    return ApiClient(credentials.server, credentials.token)


def linked_workspace(args: argparse.Namespace, env: Env) -> tuple[Folder, WorkspaceState, Credentials]:
    """The linked folder, its workspace state and the credentials for its server."""
    folder = folder_of(args)
    state = folder.load()
    return folder, state, config.resolve(env, state.server)


def server_of_folder(args: argparse.Namespace) -> str | None:
    """The server of the linked folder, when the command runs in one; None elsewhere."""
    from fastest.cli.state import NotAWorkspace

    try:
        return folder_of(args).load().server
    except (NotAWorkspace, OSError, ValueError):
        return None


@contextmanager
def held_workspace(args: argparse.Namespace, env: Env) -> Iterator[tuple[Folder, WorkspaceState, ApiClient]]:
    """For a push or sync: the folder held (`Folder.exclusive`), its state read once held, a client."""
    folder = folder_of(args)
    with folder.exclusive():
        state = folder.load()
        with client(config.resolve(env, state.server)) as api:
            yield folder, state, api
