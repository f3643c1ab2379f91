"""Two workspaces of one project, edited in parallel, synced through the real CLI and server.

A (main) and B start from the same files; each edits the same file on different lines and on one
same line, adds and deletes files. `fastest sync` in B merges the clean parts, asks about the
conflict on stdin, updates B's folder; `fastest sync --undo` brings B back exactly.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e.conftest import FASTEST, Cli, write


def files_of(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".fastest" not in path.relative_to(root).parts
    }


APP = "".join(f"line {n}\n" for n in range(1, 11))


def test_two_workspaces_edit_in_parallel_and_sync(logged_in: Cli, tmp_path: Path):
    cli = logged_in
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "app.py", APP)
    write(a / "conf.txt", "mode = base\n")
    write(a / "old.txt", "to be deleted on main\n")
    write(a / "other.txt", "to be deleted in B\n")
    project_id = cli.json("init", "--project", "parallel", cwd=a)["project_id"]
    cli("push", cwd=a)

    b.mkdir()
    cli("init", "--project-id", project_id, "--workspace", "b", cwd=b)
    first = cli.json("sync", cwd=b)  # an empty workspace takes everything from main
    assert first["files_written"] == 4 and files_of(b) == files_of(a)

    # In parallel: main edits line 1 and the conf line, adds and deletes; B edits line 10 and the
    # same conf line differently, adds and deletes.
    write(a / "app.py", APP.replace("line 1\n", "line 1 (main)\n"))
    write(a / "conf.txt", "mode = main\n")
    write(a / "added-on-main.txt", "hello from main\n")
    (a / "old.txt").unlink()
    cli("push", "-m", "main work", cwd=a)
    write(b / "app.py", APP.replace("line 10\n", "line 10 (b)\n"))
    write(b / "conf.txt", "mode = b\n")
    write(b / "added-in-b.txt", "hello from b\n")
    (b / "other.txt").unlink()
    before_sync = files_of(b)

    # The conflict is asked on stdin: "1" keeps the workspace's version.
    done = subprocess.run([*FASTEST, "sync"], cwd=b, env=cli.env, input="1\n", capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conf.txt (modify/modify)" in done.stdout and "[2] take_main" in done.stdout
    assert "No AI model is configured" in done.stdout
    merged = files_of(b)
    assert merged == {
        "added-in-b.txt": b"hello from b\n",
        "added-on-main.txt": b"hello from main\n",
        "app.py": APP.replace("line 1\n", "line 1 (main)\n").replace("line 10\n", "line 10 (b)\n").encode(),
        "conf.txt": b"mode = b\n",
    }
    status = cli.json("status", "--no-drift", cwd=b)
    assert status["changes"] == []  # the folder is exactly the merged snapshot

    # Undo: the workspace and the folder go back to what B had before the sync.
    undone = cli.json("sync", "--undo", cwd=b)
    assert undone["undone_sync_id"]
    assert files_of(b) == before_sync
    assert cli.json("status", "--no-drift", cwd=b)["changes"] == []

    # Sync again, this time taking main's side of the conflict non-interactively: three of B's four
    # files replaced or deleted is past the safety valve's 50%, so it needs --yes.
    refused = cli("sync", "--decide", "conf.txt=take_main", cwd=b, check=False)
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    again = cli.json("sync", "--decide", "conf.txt=take_main", "--yes", cwd=b)
    assert again["decisions"] == {"conf.txt": "take_main"}
    assert files_of(b)["conf.txt"] == b"mode = main\n"


def test_sync_without_an_answer_fails_and_changes_nothing(logged_in: Cli, tmp_path: Path):
    cli = logged_in
    a, b = tmp_path / "a", tmp_path / "b"
    write(a / "conf.txt", "base\n")
    project_id = cli.json("init", "--project", "noanswer", cwd=a)["project_id"]
    cli("push", cwd=a)
    b.mkdir()
    cli("init", "--project-id", project_id, "--workspace", "b", cwd=b)
    cli("sync", cwd=b)
    write(a / "conf.txt", "main\n")
    cli("push", cwd=a)
    write(b / "conf.txt", "b\n")
    done = subprocess.run([*FASTEST, "sync"], cwd=b, env=cli.env, input="", capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "conf.txt needs a decision" in done.stderr
    assert (b / "conf.txt").read_text() == "b\n"
    bad = cli("sync", "--decide", "conf.txt=merge_somehow", cwd=b, check=False)
    assert bad.returncode == 1 and "not offered" in bad.stderr
