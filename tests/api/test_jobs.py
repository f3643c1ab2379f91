"""Background jobs: the cron schedule matches wrangler.toml, and each job does its work once."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from datetime import timedelta
from pathlib import Path

from fastest.services.operations import jobs
from tests.conftest import count_rows, run

REPO = Path(__file__).resolve().parents[2]


def test_schedule_covers_exactly_the_wrangler_crons():
    crons = tomllib.loads((REPO / "wrangler.toml").read_text())["triggers"]["crons"]
    assert sorted(crons) == sorted(jobs.SCHEDULE)
    assert all(name in jobs.JOBS for names in jobs.SCHEDULE.values() for name in names)


def test_purge_drops_only_expired_idempotency_keys(client, alice, platform, clock):
    client.post("/v1/projects", headers={**alice.headers, "Idempotency-Key": "old"}, json={"name": "a"})
    clock.advance(timedelta(hours=23).total_seconds())
    client.post("/v1/projects", headers={**alice.headers, "Idempotency-Key": "new"}, json={"name": "b"})
    clock.advance(timedelta(hours=2).total_seconds())
    assert run(jobs.run_due(platform, "0 3 * * *"))["purge-idempotency-keys"] == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM idempotency_keys") == 1
    assert run(jobs.run_due(platform, "0 3 * * *"))["purge-idempotency-keys"] == 0  # idempotent


def test_nightly_gc_collects_unreachable_old_blobs(client, alice, platform, clock):
    import hashlib

    content = b"orphan"
    digest = hashlib.sha256(content).hexdigest()
    assert client.put(f"/v1/blobs/upload/{digest}", headers=alice.headers, content=content).status_code == 201
    assert run(jobs.run_due(platform, "0 3 * * *"))["collect-garbage"] == 0  # within the grace period
    clock.advance(platform.settings.gc_grace_seconds + 1)
    assert run(jobs.run_due(platform, "0 3 * * *"))["collect-garbage"] >= 1
    assert client.get(f"/v1/blobs/download/{digest}", headers=alice.headers).status_code == 404


def test_unknown_cron_runs_nothing(platform):
    assert run(jobs.run_due(platform, "1 2 3 4 5")) == {}


def test_jobs_run_from_the_cli(tmp_path):
    base = [sys.executable, "-m", "fastest.cli.main", "jobs", "run"]
    done = subprocess.run([*base, "purge-idempotency-keys", "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0 and "purge-idempotency-keys: 0 item(s)" in done.stdout
    unknown = subprocess.run([*base, "nope", "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert unknown.returncode == 2 and "unknown job" in unknown.stderr
