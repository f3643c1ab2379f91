"""What a new user meets in their first hour with the `fastest` command, each as they would meet it:
the real CLI against a real server, both as processes."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx

from fastest.cli.client import ApiClient, ApiError
from tests.e2e.conftest import Cli, admin_token, write


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_to_this_machine_is_said_at_once():
    """Nothing listens on a loopback port: asking again will not change that, so no retries."""
    waits: list[float] = []
    api = ApiClient(f"http://127.0.0.1:{closed_port()}", None, sleep=waits.append)
    try:
        api.get_json("/v1/auth/me")
    except ApiError as exc:
        assert exc.status == 0 and "connection refused" in exc.message and "fastest serve" in exc.message
    else:
        raise AssertionError("no error")
    assert waits == [] and api.requests_sent == 1


def test_a_wrong_port_fails_with_one_line(cli: Cli, tmp_path: Path):
    done = cli("login", "--server", f"http://127.0.0.1:{closed_port()}", "--token", "fst_x", cwd=tmp_path, check=False)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "connection refused" in done.stderr


def test_a_server_url_with_a_path_says_the_url_must_be_the_root(server, cli: Cli, tmp_path: Path):
    base_url, data_dir = server
    token = admin_token(data_dir, "first@example.com")
    done = cli("login", "--server", f"{base_url}/api", "--token", token, cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert "the server URL is the server's root" in done.stderr and f"(e.g. {base_url})" in done.stderr
    assert not (tmp_path / "config" / "config.json").exists()


def test_login_with_a_token_says_who_you_are(server, cli: Cli, tmp_path: Path):
    base_url, data_dir = server
    done = cli("login", "--server", base_url, "--token", admin_token(data_dir, "first@example.com"), cwd=tmp_path)
    assert done.stdout.startswith(f"logged in to {base_url} as first@example.com ")


def test_status_with_a_rejected_token_gives_the_login_hint(logged_in: Cli, server, tmp_path: Path):
    base_url, _ = server
    folder = tmp_path / "app"
    write(folder / "a.txt", "a\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    token = (Path(logged_in.env["FASTEST_CONFIG_DIR"]) / "config.json").read_text()
    token = token.split('"token": "')[1].split('"')[0]
    assert httpx.post(f"{base_url}/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}).status_code == 204
    done = logged_in("status", cwd=folder, check=False)
    assert done.returncode == 1 and "run fastest login" in done.stderr and done.stdout == ""


def test_atlas_index_prints_no_empty_line(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "app"
    write(folder / "app.py", "def main():\n    return 1\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    done = logged_in("atlas", "index", cwd=folder)
    assert done.stdout.startswith("indexed snp_") and done.stderr == ""


def test_sync_in_the_main_workspace_is_a_friendly_no_op(logged_in: Cli, tmp_path: Path):
    main = tmp_path / "app"
    write(main / "a.txt", "a\n")
    logged_in("init", cwd=main)
    logged_in("push", cwd=main)
    write(main / "a.txt", "changed\n")
    done = logged_in("sync", cwd=main)
    assert done.stdout.startswith("this folder is the project's main workspace: there is nothing to merge into it")
    assert logged_in.json("sync", cwd=main)["is_main"] is True
    assert len(logged_in.json("log", cwd=main)["snapshots"]) == 1  # nothing recorded, nothing pushed


def test_a_new_empty_workspace_says_so_and_its_first_sync_records_no_empty_snapshot(logged_in: Cli, tmp_path: Path):
    main = tmp_path / "app"
    write(main / "a.txt", "a\n")
    logged_in("init", cwd=main)
    logged_in("push", cwd=main)

    second = tmp_path / "laptop" / "app"
    second.mkdir(parents=True)
    logged_in("init", cwd=second)
    assert logged_in("status", "--no-drift", cwd=second).stdout == "never pushed; the folder is empty\n"
    assert logged_in("push", cwd=second).stdout.splitlines()[-1] == "nothing to push: the folder is empty"
    synced = logged_in("sync", cwd=second)
    assert "pushed local changes" not in synced.stdout and "1 file(s) written" in synced.stdout
    assert (second / "a.txt").read_text() == "a\n"
    snapshots = logged_in.json("log", cwd=second)["snapshots"]
    # The merge, and the server's undo point (the empty workspace); nothing pushed by the CLI.
    assert [s["source"] for s in snapshots] == ["merge", "sync"]

    write(second / "b.txt", "b\n")  # the sync remembered what it wrote: the next push sends only the new file
    pushed = logged_in("push", cwd=second).stdout.splitlines()
    assert pushed[0].startswith("scanned 2 files: 1 changed since the last push")
    assert pushed[1] == "uploaded 1 blob(s) (2 B), 1 of 1 manifest(s)"
    third = tmp_path / "other" / "app"
    write(third / "c.txt", "c\n")
    logged_in("init", cwd=third)
    assert logged_in("status", "--no-drift", cwd=third).stdout == "never pushed; 1 file(s) to push:\nA c.txt\n"


def test_push_counts_the_changes_a_status_already_hashed(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "app"
    for name in ("a.txt", "b.txt", "c.txt"):
        write(folder / name, f"{name}\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    write(folder / "b.txt", "edited, and longer\n")
    # A second old: an edit made within the clock tick of the hashing is hashed again next time (the
    # racy-clean rule), and a status can start within that tick.
    moment = time.time() - 1
    os.utime(folder / "b.txt", (moment, moment))
    logged_in("status", cwd=folder)  # hashes the edit and remembers it
    pushed = logged_in("push", cwd=folder)
    assert pushed.stdout.splitlines()[0] == "scanned 3 files: 1 changed since the last push (0 hashed now)"
    assert "uploaded 1 blob(s)" in pushed.stdout


def test_walked_pushes_find_each_change_in_directories_sealed_by_earlier_pushes(logged_in: Cli, tmp_path: Path):
    """A walked push takes a directory whose files' `lstat`s still give its seal as pushed; the seal
    outlives pushes that did not touch the directory, and a change of content or mode in it is found."""
    folder = tmp_path / "app"
    for name in ("a/x.txt", "a/y.txt", "b/z.txt"):
        write(folder / name, f"{name}\n")

    def age(*names: str, seconds: float = 10.0) -> None:  # old enough for the index to trust
        moment = time.time() - seconds
        for name in names:
            os.utime(folder / name, (moment, moment))

    age("a/x.txt", "a/y.txt", "b/z.txt", "a", "b", ".")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    assert logged_in("push", cwd=folder).stdout.splitlines()[-1].startswith("nothing to push")  # a and b sealed
    write(folder / "a/x.txt", "x, edited\n")
    age("a/x.txt", "a", seconds=5.0)
    assert logged_in("push", cwd=folder).stdout.splitlines()[0] == "scanned 3 files: 1 changed since the last push (1 hashed now)"
    (folder / "b/z.txt").chmod(0o755)  # b is sealed from the push before last: only its mode changes
    assert logged_in("push", cwd=folder).stdout.splitlines()[0] == "scanned 3 files: 1 changed since the last push (0 hashed now)"
    write(folder / "a/y.txt", "y, edited\n")
    age("a/y.txt", "a", seconds=3.0)
    assert logged_in("push", cwd=folder).stdout.splitlines()[0] == "scanned 3 files: 1 changed since the last push (1 hashed now)"
    assert logged_in("push", cwd=folder).stdout.splitlines()[-1].startswith("nothing to push")
    checked = tmp_path / "checked"
    logged_in("checkout", logged_in.json("log", cwd=folder)["head_snapshot_id"], str(checked), cwd=folder)
    assert (checked / "a/y.txt").read_text() == "y, edited\n" and os.stat(checked / "b/z.txt").st_mode & 0o100


def test_token_prints_the_saved_token_for_curl(logged_in: Cli, server, tmp_path: Path):
    base_url, _ = server
    done = logged_in("token", cwd=tmp_path)
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.startswith("fst_") and done.stderr == ""  # not a terminal: no warning
    me = httpx.get(f"{base_url}/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["user"]["email"] == "cli@example.com"
    logged_in("logout", cwd=tmp_path)
    gone = logged_in("token", cwd=tmp_path, check=False)
    assert gone.returncode == 2 and "not logged in" in gone.stderr and gone.stdout == ""


def test_deploy_takes_its_output_dir_and_build_command_and_shows_the_build_once(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "tool"
    write(folder / "package.json", '{"name": "tool", "scripts": {"build": "node build.js"}}')
    write(folder / "src/page.html", "<h1>built</h1>")
    logged_in("init", cwd=folder)
    unset = logged_in("deploy", "--no-build", cwd=folder, check=False)
    assert unset.returncode == 1 and "fastest deploy --output-dir DIR" in unset.stderr

    build = "mkdir -p out && cp src/page.html out/index.html && echo compiled the page"
    done = logged_in("deploy", "--output-dir", "out", "--build-command", build, cwd=folder)
    assert f"saved in the deployment settings: build_command {build}, output_dir out" in done.stderr
    assert done.stderr.splitlines().count("    compiled the page") == 1 and "[build]" not in done.stderr
    assert "output directory" not in done.stderr  # detection's request for one was answered
    again = logged_in("deploy", cwd=folder)  # the saved settings, no flags
    assert again.stderr.splitlines().count("    compiled the page") == 1 and f"build `{build}`, output out" in again.stderr
    assert again.stdout.strip().splitlines()[-1].startswith("http://dep-")


def test_deploy_names_what_it_detected_once(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "site"
    write(folder / "index.html", "<h1>hi</h1>")
    logged_in("init", cwd=folder)
    done = logged_in("deploy", cwd=folder)
    assert "==> detected: static, no build, output ." in done.stderr


def test_items_name_their_project_and_workspace(logged_in: Cli, tmp_path: Path):
    for machine in ("desk", "laptop"):
        folder = tmp_path / machine / "shop"
        write(folder / "shop/cart.py", "def total(items):\n    return sum(items)\n")
        logged_in("init", "--workspace", machine, cwd=folder)
        logged_in("push", cwd=folder)
    listed = logged_in("items", cwd=tmp_path).stdout.splitlines()
    headings = [line for line in listed if not line.startswith(" ")]
    assert sorted(h.split(" (wsp_")[0] for h in headings) == ["shop / desk", "shop / laptop"]
    assert all(line.startswith(("shop / ", "  ")) for line in listed)  # no bare marks such as "."
    assert sum("module without tests" in line for line in listed) == 2  # one under each workspace
    # No model on this server: no agent is offered, the item says what to do by hand.
    assert not any("Fix with an agent" in line for line in listed)
    assert sum("an agent could fix it once the server has an AI model" in line for line in listed) == 2


def test_next_starts_finishes_and_dismisses_a_step(logged_in: Cli, tmp_path: Path):
    folder = tmp_path / "shop"
    write(folder / "app.py", "# TODO: say more\nprint('hi')\n")
    logged_in("init", cwd=folder)
    logged_in("push", cwd=folder)
    logged_in("atlas", "index", cwd=folder)
    steps = logged_in.json("next", "generate", cwd=folder)["next_steps"]
    assert len(steps) >= 2
    first, second = steps[0]["id"], steps[1]["id"]
    assert logged_in("next", "start", first, cwd=folder).stdout == f"{first} is started\n"
    assert [s["id"] for s in logged_in.json("next", "--status", "started", cwd=folder)["next_steps"]] == [first]
    logged_in("next", "finish", first, cwd=folder)
    assert [s["id"] for s in logged_in.json("next", "--status", "completed", cwd=folder)["next_steps"]] == [first]
    logged_in("next", "dismiss", second, cwd=folder)
    assert second not in [s["id"] for s in logged_in.json("next", cwd=folder)["next_steps"]]
    missing = logged_in("next", "start", cwd=folder, check=False)
    assert missing.returncode == 2 and "takes a step id" in missing.stderr
    unknown = logged_in("next", "finish", "nxs_00000000000000000000000000", cwd=folder, check=False)
    assert unknown.returncode == 1 and unknown.stderr.startswith("fastest: ")
