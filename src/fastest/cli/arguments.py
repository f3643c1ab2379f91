"""Arguments of the client commands (login, logout, whoami, token, init, push, status, log, checkout, sync,
watch, and those whose handlers live in deploy, items and atlas).

Kept apart from their handlers so that building the parser imports nothing heavy: `fastest serve`
should not pay for the HTTP client, nor `fastest push` for the server. And a command's arguments are
added only when that command runs or prints its help (`command`): `fastest --help` needs the
commands' names and one line each, and `fastest push` the arguments of push alone.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Callable

CLIENT_COMMANDS = frozenset({"login", "logout", "whoami", "token", "init", "push", "status", "log", "checkout", "sync",
                             "watch"})
CLIENT_COMMANDS = CLIENT_COMMANDS | {"deploy", "deployments"}  # fastest.cli.deploy
CLIENT_COMMANDS = CLIENT_COMMANDS | {"items"}  # fastest.cli.items


def command(commands: argparse._SubParsersAction, name: str, help: str,
            arguments: Callable[[argparse.ArgumentParser], None]) -> argparse.ArgumentParser:
    """Register the subcommand `name` with its one-line help; `arguments(parser)` adds its arguments
    the first time the parser is used (`fastest.cli.main.Parser`)."""
    parser = commands.add_parser(name, help=help)
    parser.add_arguments_later = arguments  # type: ignore[attr-defined]
    return parser


def elsewhere(module: str, function: str) -> Callable[[argparse.ArgumentParser], None]:
    """`arguments` for `command` that live in another module, imported only when they are needed."""

    def add(parser: argparse.ArgumentParser) -> None:
        from importlib import import_module

        getattr(import_module(module), function)(parser)

    return add


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Register the client subcommands on the `fastest` parser."""
    command(commands, "login",
            "sign in: approve this device in a browser (or check a given token) and save the token", _login_arguments)
    command(commands, "logout", "revoke the saved token on the server and forget it", _logout_arguments)
    command(commands, "whoami", "the signed-in user and server", _whoami_arguments)
    command(commands, "token", "print the saved token, for scripts and curl (it is a password: keep it secret)",
            _no_arguments)
    command(commands, "init", "link this folder to a project and a new workspace", _init_arguments)
    command(commands, "push", "upload the folder's changes as a new snapshot", _push_arguments)
    command(commands, "status", "local changes since the last push, and drift from main", _status_arguments)
    command(commands, "log", "the workspace's snapshots, newest first", _log_arguments)
    command(commands, "checkout", "write a snapshot's files into a directory", _checkout_arguments)
    command(commands, "sync", "merge main into this workspace and update the folder", _sync_arguments)
    command(commands, "watch",
            "push changes as they happen (Linux), and tell push/status what changed so they skip the walk",
            _watch_arguments)
    command(commands, "deploy", "push, build if needed, and deploy this folder; prints its URL",
            elsewhere("fastest.cli.deploy", "deploy_arguments"))
    command(commands, "deployments", "this workspace's deployments, newest first",
            elsewhere("fastest.cli.deploy", "deployments_arguments"))
    command(commands, "items", "action items across your workspaces; fix them with an agent",
            elsewhere("fastest.cli.items", "items_arguments"))


def _login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", help="e.g. https://api.example.com or http://127.0.0.1:8787 "
                        "(default: $FASTEST_SERVER or the server of the last login)")
    parser.add_argument("--token", help="skip the browser: use this bearer token (fst_…); '-' reads it from stdin")
    parser.add_argument("--scope", help="device flow: space-separated abilities to ask for (default: all but secrets:read)")


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def _logout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def _whoami_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--project", help="project name, found or created (default: the folder's name)")
    target.add_argument("--project-id", help="an existing project's id (prj_…)")
    parser.add_argument("--workspace", help="workspace name (default: <hostname>:<folder>)")
    parser.add_argument("--dir", help="the folder (default: the current directory)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--message", help="a short description, kept with the snapshot")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="look only at these files or directories (the rest is taken as last pushed): "
                        "for editors and file watchers that know what changed")
    parser.add_argument("--rescan", action="store_true",
                        help="walk the whole folder even if `fastest watch` knows what changed")
    parser.add_argument("--dir", help="the folder (default: the one containing the current directory)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rescan", action="store_true",
                        help="walk the whole folder even if `fastest watch` knows what changed")
    parser.add_argument("--dir")
    parser.add_argument("--no-drift", action="store_true", help="do not ask the server about drift")
    parser.add_argument("--json", action="store_true")


def _log_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--limit", type=int, default=20, help="how many (1-100, default 20)")
    parser.add_argument("--dir")
    parser.add_argument("--json", action="store_true")


def _checkout_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("snapshot", help="a snapshot id (snp_…)")
    parser.add_argument("dir", nargs="?", help="where (default: ./<snapshot id>); must be empty or absent")
    parser.add_argument("--force", action="store_true", help="replace a non-empty directory")
    parser.add_argument("--json", action="store_true")


def _sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefer", choices=("workspace", "main"),
                        help="answer every decision with this side's version instead of asking")
    parser.add_argument("--decide", action="append", default=[], metavar="PATH=OPTION",
                        help="answer one decision (keep_workspace, take_main, keep_both, ai_combined); repeatable")
    parser.add_argument("--yes", action="store_true", help="go ahead even if most files are deleted or replaced")
    parser.add_argument("--undo", action="store_true", help="undo the last sync (workspace and folder)")
    parser.add_argument("--force", action="store_true", help="with --undo: even if the workspace moved since")
    parser.add_argument("--dir")
    parser.add_argument("--json", action="store_true")


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-push", action="store_true",
                        help="only keep track of changes for push and status; do not push by itself")
    parser.add_argument("--delay", type=float, default=1.0, metavar="SECONDS",
                        help="push once the folder has been quiet this long (default 1)")
    parser.add_argument("--dir")
