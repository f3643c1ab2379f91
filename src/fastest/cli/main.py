"""`fastest serve | migrate | jobs run | admin token`, and the client: `login | logout | whoami | init |
push | status | log | checkout`.

Server-side commands open the local runtime's data directory (`--data-dir`, else `$FASTEST_DATA_DIR`,
else `$XDG_DATA_HOME/fastest`, i.e. `~/.local/share/fastest`) directly; they are for whoever runs the
server. The data directory is kept out of project folders, which the client pushes.

Client commands (`fastest.cli.commands`) talk to a server over HTTP and import nothing server-side.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

from fastest.cli.arguments import CLIENT_COMMANDS, add_client_commands, command, elsewhere

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Callable, Sequence

    from fastest.config import Settings

# Start-up is on every command's path: this module imports only what building the parser needs
# (`fastest --help` stays within 3x of the interpreter's own start, see bench/cli.py); each command
# imports the rest when it runs.

DEFAULT_DATA_DIR = "$XDG_DATA_HOME/fastest"


def _data_dir(value: str | None) -> Path:
    from pathlib import Path

    chosen = value or os.environ.get("FASTEST_DATA_DIR")
    if chosen:
        return Path(chosen).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data_home) / "fastest").resolve()


def _settings() -> Settings:
    from fastest.config import Settings

    return Settings.from_mapping(os.environ)


def _serve_settings(host: str, port: int) -> Settings:
    """Without FASTEST_PUBLIC_URL, the server's own address is its public URL (the device flow's
    verification link points there)."""
    from dataclasses import replace

    settings = _settings()
    if os.environ.get("FASTEST_PUBLIC_URL"):
        return settings
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else (f"[{host}]" if ":" in host else host)
    return replace(settings, public_url=f"http://{shown}:{port}")


# argparse passes every message through gettext, which searches the locale directories again on
# each call (a miss is not remembered): three calls per parser, most of `fastest --help`'s own time.
# The catalogs cannot change while the command runs, so each message is translated once.
argparse._ = functools.lru_cache(maxsize=None)(argparse._)  # type: ignore[attr-defined]


class Parser(argparse.ArgumentParser):
    """The `fastest` parser and its subparsers (made of this class too).

    A subcommand's arguments are added when it is first used (`arguments.command`): parsing, or
    printing its usage or help. `fastest --help` lists ~30 commands and `fastest push` runs one, and
    neither builds the arguments of the others (each `add_argument` makes a formatter).

    argparse's default formatter imports shutil for the terminal's width: ~7 ms on every command.
    This asks the terminal directly (as shutil does: $COLUMNS, else the terminal, else 80)."""

    add_arguments_later: Callable[[argparse.ArgumentParser], None] | None = None

    def _add_arguments_now(self) -> None:
        add, self.add_arguments_later = self.add_arguments_later, None
        if add is not None:
            add(self)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None):  # type: ignore[override]
        self._add_arguments_now()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._add_arguments_now()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_arguments_now()
        return super().format_help()

    def _get_formatter(self) -> argparse.HelpFormatter:
        return self.formatter_class(prog=self.prog, width=_terminal_width() - 2)


def _terminal_width() -> int:
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fastest", description="Fastest: workspaces, snapshots, drift and merge.")
    commands = parser.add_subparsers(dest="command", required=True)
    command(commands, "serve", "run the local server (applies pending migrations first)", _serve_arguments)
    command(commands, "migrate", "apply pending database migrations and exit", _migrate_arguments)
    command(commands, "jobs", "background jobs (cron on Cloudflare)", _jobs_arguments)
    command(commands, "admin", "administer the local runtime", _admin_arguments)
    add_client_commands(commands)
    # Their handlers import the client when run.
    command(commands, "atlas", "the project's knowledge graph: index it, search it",
            elsewhere("fastest.cli.atlas", "atlas_arguments"))
    command(commands, "next", "next steps for the project: list them, generate new ones, start, finish or dismiss one",
            elsewhere("fastest.cli.atlas", "next_arguments"))
    return parser


def _serve_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--data-dir", help=f"where state lives (default $FASTEST_DATA_DIR or {DEFAULT_DATA_DIR})")


def _migrate_arguments(migrate: argparse.ArgumentParser) -> None:
    migrate.add_argument("--data-dir")


def _jobs_arguments(jobs: argparse.ArgumentParser) -> None:
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    run_job = jobs_commands.add_parser("run", help="run one job now")
    run_job.add_argument("name", help="e.g. purge-idempotency-keys")
    run_job.add_argument("--data-dir")
    jobs_commands.add_parser("list", help="every job, its cron schedule and what it does")


def _admin_arguments(admin: argparse.ArgumentParser) -> None:
    from fastest.domain import tokens

    admin_commands = admin.add_subparsers(dest="admin_command", required=True)
    token = admin_commands.add_parser("token", help="create the user if needed and print a new bearer token")
    token.add_argument("--email", required=True)
    token.add_argument(
        "--abilities",
        nargs="+",
        default=list(tokens.DEFAULT_ABILITIES),
        help=f"space- or comma-separated (default: all but secrets:read). Known: {' '.join(tokens.ABILITIES)}",
    )
    token.add_argument("--label", default="admin")
    token.add_argument("--data-dir")
    token.add_argument(
        "--sql",
        metavar="FILE",
        help="instead of the local database, write SQL for a Cloudflare D1 "
        "(`npx wrangler d1 execute fastest --remote --file FILE`)",
    )


# Commands that run for a moment: the cyclic garbage collector stays off for their whole run. Their
# imports and the parser make tens of thousands of objects and no garbage cycle worth collecting
# before the process exits (~5% of `fastest status`'s instructions went to collections). Everything
# else (the server, the watcher, the Atlas) gets it back once its arguments are parsed.
BRIEF_COMMANDS = frozenset({"login", "logout", "whoami", "token", "init", "push", "status", "log", "checkout", "sync",
                            "deployments", "items"})


def main(argv: Sequence[str] | None = None) -> int:
    return _run_parsed(_parse(argv))


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return build_parser().parse_args(argv)
    finally:
        if enabled:
            gc.enable()


def _run_parsed(args: argparse.Namespace) -> int:
    import gc

    if args.command in BRIEF_COMMANDS and gc.isenabled():
        gc.disable()
        try:
            return _run(args)
        finally:
            gc.enable()
    return _run(args)


def entry() -> None:
    """The `fastest` console script (and `python -m fastest.cli.main`): `main`, then the exit.

    After a brief command (or `--help`, or a usage error) the process ends with `os._exit` once
    stdout and stderr are flushed, skipping the interpreter's finalisation: a last full garbage
    collection and the teardown of every module, ~10% of a `fastest status` (bench/cli.py), for
    nothing (such a command leaves no thread running and no file open: each is closed by its
    `with` block). Other commands, and any uncaught exception, exit the usual way."""
    try:
        args = _parse(None)
    except SystemExit as exc:  # argparse's --help and usage errors
        if not (exc.code is None or isinstance(exc.code, int)):
            raise
        _exit_now(exc.code or 0)
    code = _run_parsed(args)
    if args.command not in BRIEF_COMMANDS:
        raise SystemExit(code)
    _exit_now(code)


def _exit_now(code: int) -> None:
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. stdout was a pipe closed early: as the interpreter would
        code = code or 120
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    if args.command in CLIENT_COMMANDS:
        from fastest.cli.commands import run

        return run(args)
    if args.command in ("atlas", "next"):
        from fastest.cli.atlas import run as run_atlas

        return run_atlas(args)
    if args.command == "serve":
        from fastest.cli.serve import serve

        return serve(host=args.host, port=args.port, data_dir=_data_dir(args.data_dir),
                     settings=_serve_settings(args.host, args.port))
    import asyncio

    if args.command == "migrate":
        return asyncio.run(_migrate(_data_dir(args.data_dir)))
    if args.command == "jobs" and args.jobs_command == "list":
        from fastest.cli.jobs import list_jobs

        return list_jobs()
    if args.command == "jobs" and args.jobs_command == "run":
        return asyncio.run(_run_job(_data_dir(args.data_dir), args.name))
    if args.command == "admin" and args.admin_command == "token":
        from fastest.domain import tokens

        try:
            abilities = tokens.parse_abilities(args.abilities)
        except ValueError as exc:
            print(f"fastest: {exc}", file=sys.stderr)
            return 2
        if args.sql:
            from pathlib import Path

            return _admin_token_sql(Path(args.sql), args.email, abilities, args.label)
        return asyncio.run(_admin_token(_data_dir(args.data_dir), args.email, abilities, args.label))
    return 2


async def _migrate(data_dir: Path) -> int:
    from fastest.platform.local import open_local_platform

    platform = open_local_platform(data_dir, _settings())
    platform.close()
    print(f"database at {data_dir} is up to date")
    return 0


async def _run_job(data_dir: Path, name: str) -> int:
    from durable_objects.local import open_platform as open_local_platform
    from fastest.services.operations import jobs

    if name not in jobs.JOBS:
        print(f"fastest: unknown job {name!r}; known: {', '.join(sorted(jobs.JOBS))}", file=sys.stderr)
        return 2
    platform = open_local_platform(data_dir, _settings())
    try:
        processed = await jobs.run(platform, name)
    finally:
        platform.close()
    print(f"{name}: {processed} item(s)")
    return 0


async def _admin_token(data_dir: Path, email: str, abilities: tuple[str, ...], label: str) -> int:
    from fastest.errors import ApiError
    from fastest.platform.local import open_local_platform
    from fastest.services import identity

    platform = open_local_platform(data_dir, _settings())
    try:
        user = await identity.ensure_user(platform, email)
        issued = await identity.issue_token(platform, user["id"], abilities=abilities, label=label)
    except ApiError as exc:
        print(f"fastest: {exc.message}", file=sys.stderr)
        return 2
    finally:
        platform.close()
    print(issued.token)
    print(f"user {user['id']} <{user['email']}>, abilities: {' '.join(abilities)}, expires {issued.expires_at}", file=sys.stderr)
    return 0


def _admin_token_sql(path: Path, email: str, abilities: tuple[str, ...], label: str) -> int:
    from datetime import datetime, timezone

    from fastest.errors import ApiError
    from fastest.services.identity.accounts import bootstrap_token_sql

    try:
        token, sql = bootstrap_token_sql(
            email, abilities=abilities, label=label, now=datetime.now(timezone.utc), ttl_days=_settings().token_ttl_days
        )
    except ApiError as exc:
        print(f"fastest: {exc.message}", file=sys.stderr)
        return 2
    path.write_text(sql, encoding="utf-8")
    print(token)
    print(f"token for {email}: run `npx wrangler d1 execute fastest --remote --file {path}` to install it", file=sys.stderr)
    return 0


if __name__ == "__main__":
    entry()
