"""The first token of a fresh deployment, minted as SQL (`fastest admin token --sql`)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import assert_problem, run


def test_sql_token_authenticates_once_installed(tmp_path, client, platform):
    sql_file = tmp_path / "token.sql"
    done = subprocess.run(
        [sys.executable, "-m", "fastest.cli.main", "admin", "token", "--email", "ops@example.com", "--sql", str(sql_file)],
        capture_output=True, text=True, check=True,
    )
    token = done.stdout.strip()
    sql = sql_file.read_text()
    assert token.startswith("fst_") and token not in sql  # only the hash travels
    headers = {"Authorization": f"Bearer {token}"}
    assert_problem(client.get("/v1/projects", headers=headers), 401, "invalid_token")
    for statement in filter(None, (s.strip() for s in sql.split(";\n"))):
        run(platform.db.prepare(statement).run())
    assert client.get("/v1/projects", headers=headers).status_code == 200


def test_sql_token_rejects_a_bad_email(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "fastest.cli.main", "admin", "token", "--email", "nobody", "--sql", str(tmp_path / "t.sql")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2 and "valid email" in done.stderr
    assert not (tmp_path / "t.sql").exists()
