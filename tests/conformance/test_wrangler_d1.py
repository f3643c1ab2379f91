"""Every migration applies to real local D1 (wrangler's workerd + D1 authorizer), and is recorded in
`d1_migrations` the way the local runtime records it.

`--persist-to` keeps wrangler's local state in a temp directory instead of the repo's `.wrangler/`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WRANGLER = REPO / "node_modules" / ".bin" / "wrangler"
MIGRATIONS = REPO / "migrations"
DATABASE = "fastest"  # database_name in wrangler.toml

pytestmark = [
    pytest.mark.wrangler,
    pytest.mark.skipif(not WRANGLER.exists(), reason="wrangler is not installed: run `npm ci`"),
]


def wrangler_env(home: Path) -> dict[str, str]:
    """No telemetry, no prompts, and wrangler's config/state under a temp home, not the repo's."""
    return {
        **os.environ,
        "CI": "true",
        "WRANGLER_SEND_METRICS": "false",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="module")
def local_d1(tmp_path_factory: pytest.TempPathFactory):
    """Apply all migrations to a fresh local D1; return a function running SQL against it."""
    work = tmp_path_factory.mktemp("wrangler-d1")
    state = work / "state"
    env = wrangler_env(work / "home")

    def wrangler(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["npx", "--no", "wrangler", "d1", *args, "--local", "--persist-to", str(state)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    applied = wrangler("migrations", "apply", DATABASE)
    assert applied.returncode == 0, f"migrations failed:\n{applied.stdout}\n{applied.stderr}"

    def query(sql: str) -> list[dict]:
        done = wrangler("execute", DATABASE, "--command", sql, "--json")
        assert done.returncode == 0, f"{sql!r} failed:\n{done.stdout}\n{done.stderr}"
        batches = json.loads(done.stdout)
        assert all(batch["success"] for batch in batches)
        return [row for batch in batches for row in batch["results"]]

    return query


def migration_files() -> list[str]:
    return sorted(p.name for p in MIGRATIONS.glob("*.sql"))


def test_every_migration_is_recorded(local_d1) -> None:
    recorded = [row["name"] for row in local_d1("SELECT name FROM d1_migrations ORDER BY id")]
    assert migration_files(), "no migrations found"
    assert recorded == migration_files()


def test_tables_of_the_first_migration_exist(local_d1) -> None:
    sql = (MIGRATIONS / "0001_init.sql").read_text(encoding="utf-8")
    expected = set(re.findall(r"^\s*CREATE TABLE\s+(?:IF NOT EXISTS\s+)?(\w+)", sql, re.MULTILINE | re.IGNORECASE))
    assert expected, "0001_init.sql defines no tables?"
    tables = {row["name"] for row in local_d1("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert expected <= tables, sorted(expected - tables)


def test_foreign_keys_are_enforced(local_d1) -> None:
    """The local Database mirrors this (DESIGN §3): D1 runs with foreign keys on."""
    rows = local_d1("PRAGMA foreign_keys")
    assert rows and list(rows[0].values())[0] == 1


def test_bootstrap_token_sql_runs_on_real_d1(local_d1) -> None:
    """`fastest admin token --sql` output is accepted by D1 as-is, and rerunning it adds a token only."""
    from datetime import datetime, timezone

    from fastest.domain.tokens import DEFAULT_ABILITIES, token_hash
    from fastest.services.identity.accounts import bootstrap_token_sql

    hashes = []
    for _ in range(2):
        token, sql = bootstrap_token_sql(
            "boot@example.com", abilities=DEFAULT_ABILITIES, label="boot", now=datetime.now(timezone.utc), ttl_days=30
        )
        local_d1(sql)
        hashes.append(token_hash(token))
    rows = local_d1(
        "SELECT u.email, t.token_hash FROM auth_tokens t JOIN users u ON u.id = t.user_id "
        "WHERE u.email = 'boot@example.com' ORDER BY t.created_at, t.id"
    )
    assert sorted(r["token_hash"] for r in rows) == sorted(hashes)
    assert local_d1("SELECT COUNT(*) AS n FROM users WHERE email = 'boot@example.com'") == [{"n": 1}]


def test_a_guarded_change_and_its_conditional_audit_record_behave_on_real_d1(local_d1) -> None:
    """The identity services write an audit event only if the guarded statement before it changed a
    row (`INSERT … SELECT … WHERE changes() = 1`, `services.audit.record(if_changed=True)`): D1 runs
    it as the local runtime does, so a repeated revoke leaves one record."""
    local_d1(
        "INSERT INTO users (id, email, created_at, updated_at) VALUES ('usr_guard', 'guard@example.com', 't', 't');"
        "INSERT INTO auth_tokens (id, user_id, token_hash, abilities, created_at, authenticated_at, expires_at) "
        "VALUES ('tok_guard', 'usr_guard', 'h-guard', '[]', 't', 't', 't')"
    )
    for attempt in ("1", "2"):
        local_d1(
            "UPDATE auth_tokens SET revoked_at = 'now' WHERE id = 'tok_guard' AND revoked_at IS NULL;"
            "INSERT INTO security_events (id, user_id, type, summary, data, created_at) "
            f"SELECT 'aud_guard_{attempt}', 'usr_guard', 'token.revoked', 's', '{{}}', 'now' WHERE changes() = 1"
        )
    assert local_d1("SELECT id FROM security_events WHERE user_id = 'usr_guard'") == [{"id": "aud_guard_1"}]
