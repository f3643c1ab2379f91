"""Arguments of the client commands (login, logout, whoami, token, init, push, status, log, checkout, sync, watch, …).

Kept apart from their handlers so that building the parser imports nothing heavy: `fastest serve`
should not pay for the HTTP client, nor `fastest push` for the server.
"""

from __future__ import annotations

import argparse

CLIENT_COMMANDS = frozenset({"login", "logout", "whoami", "token", "init", "push", "status", "log", "checkout", "sync",
                             "watch"})
CLIENT_COMMANDS = CLIENT_COMMANDS | {"deploy", "deployments"}  # fastest.cli.deploy
CLIENT_COMMANDS = CLIENT_COMMANDS | {"items"}  # fastest.cli.items


def add_client_commands(commands: argparse._SubParsersAction) -> None:
    """Register the client subcommands on the `fastest` parser."""
    login = commands.add_parser(
        "login", help="sign in: approve this device in a browser (or check a given token) and save the token"
    )
    login.add_argument("--server", help="e.g. https://api.example.com or http://127.0.0.1:8787 "
                       "(default: $FASTEST_SERVER or the server of the last login)")
    login.add_argument("--token", help="skip the browser: use this bearer token (fst_…); '-' reads it from stdin")
    login.add_argument("--scope", help="device flow: space-separated abilities to ask for (default: all but secrets:read)")

    logout = commands.add_parser("logout", help="revoke the saved token on the server and forget it")
    logout.add_argument("--json", action="store_true")

    whoami = commands.add_parser("whoami", help="the signed-in user and server")
    whoami.add_argument("--json", action="store_true")

    commands.add_parser("token", help="print the saved token, for scripts and curl (it is a password: keep it secret)")

    init = commands.add_parser("init", help="link this folder to a project and a new workspace")
    target = init.add_mutually_exclusive_group()
    target.add_argument("--project", help="project name, found or created (default: the folder's name)")
    target.add_argument("--project-id", help="an existing project's id (prj_…)")
    init.add_argument("--workspace", help="workspace name (default: <hostname>:<folder>)")
    init.add_argument("--dir", help="the folder (default: the current directory)")
    init.add_argument("--json", action="store_true", help="print the result as JSON")

    push_parser = commands.add_parser("push", help="upload the folder's changes as a new snapshot")
    push_parser.add_argument("-m", "--message", help="a short description, kept with the snapshot")
    push_parser.add_argument("paths", nargs="*", metavar="PATH",
                             help="look only at these files or directories (the rest is taken as last pushed): "
                                  "for editors and file watchers that know what changed")
    push_parser.add_argument("--rescan", action="store_true",
                             help="walk the whole folder even if `fastest watch` knows what changed")
    push_parser.add_argument("--dir", help="the folder (default: the one containing the current directory)")
    push_parser.add_argument("--json", action="store_true", help="print the report as JSON")

    status_parser = commands.add_parser("status", help="local changes since the last push, and drift from main")
    status_parser.add_argument("--rescan", action="store_true",
                               help="walk the whole folder even if `fastest watch` knows what changed")
    status_parser.add_argument("--dir")
    status_parser.add_argument("--no-drift", action="store_true", help="do not ask the server about drift")
    status_parser.add_argument("--json", action="store_true")

    log = commands.add_parser("log", help="the workspace's snapshots, newest first")
    log.add_argument("-n", "--limit", type=int, default=20, help="how many (1-100, default 20)")
    log.add_argument("--dir")
    log.add_argument("--json", action="store_true")

    checkout_parser = commands.add_parser("checkout", help="write a snapshot's files into a directory")
    checkout_parser.add_argument("snapshot", help="a snapshot id (snp_…)")
    checkout_parser.add_argument("dir", nargs="?", help="where (default: ./<snapshot id>); must be empty or absent")
    checkout_parser.add_argument("--force", action="store_true", help="replace a non-empty directory")
    checkout_parser.add_argument("--json", action="store_true")

    sync_parser = commands.add_parser("sync", help="merge main into this workspace and update the folder")
    sync_parser.add_argument("--prefer", choices=("workspace", "main"),
                             help="answer every decision with this side's version instead of asking")
    sync_parser.add_argument("--decide", action="append", default=[], metavar="PATH=OPTION",
                             help="answer one decision (keep_workspace, take_main, keep_both, ai_combined); repeatable")
    sync_parser.add_argument("--yes", action="store_true", help="go ahead even if most files are deleted or replaced")
    sync_parser.add_argument("--undo", action="store_true", help="undo the last sync (workspace and folder)")
    sync_parser.add_argument("--force", action="store_true", help="with --undo: even if the workspace moved since")
    sync_parser.add_argument("--dir")
    sync_parser.add_argument("--json", action="store_true")

    watch_parser = commands.add_parser(
        "watch", help="push changes as they happen (Linux), and tell push/status what changed so they skip the walk")
    watch_parser.add_argument("--no-push", action="store_true",
                              help="only keep track of changes for push and status; do not push by itself")
    watch_parser.add_argument("--delay", type=float, default=1.0, metavar="SECONDS",
                              help="push once the folder has been quiet this long (default 1)")
    watch_parser.add_argument("--dir")

    from fastest.cli import deploy as deploy_commands  # its top imports nothing heavy

    deploy_commands.add_arguments(commands)
    from fastest.cli.items import add_items_command  # argparse only: `fastest --help` stays fast

    add_items_command(commands)
