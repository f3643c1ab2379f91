"""The CLI starts fast because it imports only what a command needs (figures: bench/cli.py, README).
These checks are not timed: they look at what a fresh interpreter has imported, so a heavy import
slipping back onto the common path (httpx, the app, the server's config and services) fails here
rather than silently costing every command 50-200 ms."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

# Never on a client command's start-up path: the web stack, the server side, the event loop.
HEAVY = ("httpx", "fastapi", "pydantic", "starlette", "uvicorn", "anyio", "asyncio", "jinja2", "yaml",
         "fastest.app", "fastest.api", "fastest.services", "fastest.platform", "fastest.config", "durable_objects")
# `fastest --help` builds the parser: no command's code, not even the HTTP client.
NOT_FOR_HELP = (*HEAVY, "fastest.cli.commands", "fastest.cli.client", "fastest.cli.transport", "fastest.cli.push",
                "fastest.cli.status", "fastest.cli.deploy", "fastest.cli.items", "fastest.cli.atlas", "socket")


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after running `code`."""
    script = textwrap.dedent(code) + "\nimport sys\nprint('--modules--', *sorted(sys.modules))\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split("--modules--", 1)[1].split())


def heavy_in(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_help_imports_only_the_parser() -> None:
    modules = loaded_after(
        """
        import contextlib, io
        from fastest.cli.main import main
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                main(["--help"])
            except SystemExit:
                pass
        """
    )
    assert "fastest.cli.main" in modules
    assert heavy_in(modules, NOT_FOR_HELP) == []


def test_the_status_and_push_paths_import_nothing_heavy() -> None:
    """Everything `fastest status` and `fastest push` (with a watcher) load, loaded at once."""
    modules = loaded_after(
        """
        from fastest.cli.main import build_parser
        from fastest.cli import commands, status, push, watch, client, transport, loader, state
        build_parser().parse_args(["status"]), build_parser().parse_args(["push"])
        """
    )
    assert {"fastest.cli.status", "fastest.cli.push", "fastest.cli.transport"} <= modules
    assert heavy_in(modules, HEAVY) == []
    # Plain HTTP and the watcher's question use `_socket`: `socket` makes enums of every constant.
    assert heavy_in(modules, ("socket", "encodings.idna", "datetime")) == []


def test_a_client_command_runs_without_them() -> None:
    """A client command that fails early (not a fastest folder) still went through `run`, the
    dispatcher, the config and the folder lookup without importing them."""
    modules = loaded_after(
        """
        import contextlib, io, os, tempfile
        from fastest.cli.main import main
        os.chdir(tempfile.mkdtemp())
        os.environ["FASTEST_CONFIG_DIR"] = tempfile.mkdtemp()
        with contextlib.redirect_stderr(io.StringIO()):
            assert main(["status"]) == 2
            assert main(["push"]) == 2
        """
    )
    assert "fastest.cli.commands" in modules
    assert heavy_in(modules, HEAVY) == []


def test_a_command_gets_its_arguments_when_it_is_used(capsys) -> None:
    """Each command's arguments are added when it runs or prints its help, not when the parser is
    built: they are all there by then, in their own command only."""
    from fastest.cli.main import build_parser, main

    for argv, expected in ((["push", "--help"], "--rescan"), (["deploy", "--help"], "--no-build"),
                           (["atlas", "search", "--help"], "--limit"), (["admin", "token", "--help"], "--abilities")):
        try:
            main(argv)
        except SystemExit as exit_:
            assert exit_.code == 0
        assert expected in capsys.readouterr().out, argv
    assert build_parser().parse_args(["push", "-m", "hi", "a.txt"]).paths == ["a.txt"]
    try:
        build_parser().parse_args(["status", "--message", "x"])  # push's option, not status's
    except SystemExit as exit_:
        assert exit_.code == 2
    else:
        raise AssertionError("status accepted --message")
    assert "unrecognized arguments: --message x" in capsys.readouterr().err


def test_the_quick_exit_flushes_everything_and_keeps_the_exit_code(tmp_path) -> None:
    """A brief command ends with `os._exit` (no interpreter finalisation): what it printed still
    arrives whole through a pipe, and the exit code is the command's; `serve`-like commands are not
    cut short (here `jobs list`, which exits the usual way)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")},
           "FASTEST_CONFIG_DIR": str(tmp_path / "config"), "COLUMNS": "100"}
    run = lambda *argv: subprocess.run([sys.executable, "-m", "fastest.cli.main", *argv], cwd=tmp_path,  # noqa: E731
                                       capture_output=True, text=True, env=env, timeout=60)
    helped = run("push", "--help")
    assert helped.returncode == 0 and "--rescan" in helped.stdout and helped.stdout.endswith("\n")
    refused = run("push", "--no-such-option")
    assert refused.returncode == 2 and "unrecognized arguments" in refused.stderr
    outside = run("status")
    assert outside.returncode == 2 and "fastest init" in outside.stderr
    whoami = run("whoami")
    assert whoami.returncode != 0 and whoami.stderr.strip()
    jobs = run("jobs", "list")
    assert jobs.returncode == 0 and jobs.stdout.strip()
