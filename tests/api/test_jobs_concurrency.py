"""Every scheduled job is idempotent and safe to run twice at once (docs/jobs.md): each
test sets up work for one job, runs the job twice concurrently, and checks the end state is the one
a single run gives. A last test makes sure no job is left without such a test."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import threading
from datetime import timedelta

import pytest

from fastest.config import Settings
from fastest.services import events, storage, webhooks
from fastest.services.operations import jobs
from fastest.services.webhooks import delivery as webhooks_delivery
from tests.api.trees import new_project
from tests.api.webhook_receiver import Answer, Receiver
from tests.conftest import count_rows, make_caller, run
from tests.edge_runtime import is_edge

COVERED: set[str] = set()


@pytest.fixture
def settings() -> Settings:
    return Settings(webhooks_allow_loopback_http="1")


def twice_at_once(platform, name: str) -> list[int]:
    COVERED.add(name)

    async def both():
        return await asyncio.gather(jobs.run(platform, name), jobs.run(platform, name))

    results = run(both())
    assert all(r >= 0 for r in results)
    return results


def test_purge_idempotency_keys(client, alice, platform, clock):
    client.post("/v1/projects", headers={**alice.headers, "Idempotency-Key": "old"}, json={"name": "a"})
    clock.advance(timedelta(hours=23).total_seconds())
    client.post("/v1/projects", headers={**alice.headers, "Idempotency-Key": "new"}, json={"name": "b"})
    clock.advance(timedelta(hours=2).total_seconds())
    assert sum(twice_at_once(platform, "purge-idempotency-keys")) == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM idempotency_keys") == 1


def test_purge_device_codes(client, platform, clock):
    for _ in range(2):
        assert client.post("/v1/oauth/device").status_code == 200
    clock.advance(platform.settings.device_code_ttl_seconds + 86400 + 1)
    assert client.post("/v1/oauth/device").status_code == 200
    assert sum(twice_at_once(platform, "purge-device-codes")) == 2
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM device_codes") == 1


def test_collect_garbage(client, alice, platform, clock):
    content = b"orphan"
    digest = hashlib.sha256(content).hexdigest()
    assert client.put(f"/v1/blobs/upload/{digest}", headers=alice.headers, content=content).status_code == 201
    clock.advance(platform.settings.gc_grace_seconds + 1)
    assert sum(twice_at_once(platform, "collect-garbage")) >= 1
    assert client.get(f"/v1/blobs/download/{digest}", headers=alice.headers).status_code == 404
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM blob_refs") == 0
    assert twice_at_once(platform, "collect-garbage") == [0, 0]


def test_purge_expired_tokens(client, alice, platform, clock):
    clock.advance((platform.settings.token_ttl_days + 8) * 86400)
    fresh = make_caller(platform, "carol@example.com")
    assert sum(twice_at_once(platform, "purge-expired-tokens")) == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM auth_tokens") == 1
    assert client.get("/v1/auth/me", headers=fresh.headers).status_code == 200
    assert client.get("/v1/auth/me", headers=alice.headers).status_code == 401


def test_retry_webhook_deliveries_sends_each_due_message_once(client, alice, platform, clock, request):
    if not is_edge():  # on edge the first attempts are the Worker cron's, which does not retry within itself
        request.getfixturevalue("monkeypatch").setattr(webhooks_delivery, "SHORT_RETRY_SECONDS", -1)
    with Receiver(platform) as rx:
        rx.answers["/hook"] = Answer(status=500)
        project = new_project(client, alice)
        for path in ("/hook", "/other"):
            client.post("/v1/integrations/webhooks", headers=alice.headers, json={"url": rx.url(path), "events": ["*"]})

        async def emit():
            for _ in range(3):
                await platform.db.batch(events.record(platform, project["id"], alice.user_id, "snapshot.created", "x"))
            if not is_edge():
                await platform.background.drain()

        run(emit())
        if is_edge():  # the events recorded here are sent by the Worker's cron (nothing else runs them)
            platform.harness.run_job("retry-webhook-deliveries", clock)
        assert len(rx.on("/hook")) == 3 and len(rx.on("/other")) == 3
        rx.answers["/hook"] = Answer()
        clock.advance(10)
        assert sum(sends_twice_at_once(platform, clock)) == 3
        assert len(rx.on("/hook")) == 6 and len(rx.on("/other")) == 3
        assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages WHERE status = 'succeeded'") == 6
        assert sum(sends_twice_at_once(platform, clock)) == 0


def sends_twice_at_once(platform, clock) -> list[int]:
    """The retry job twice at once: in the test process locally; on edge, the Worker's cron trigger
    fired twice at once (the attempts counted in the deliveries log, one row each)."""
    if not is_edge():
        return twice_at_once(platform, "retry-webhook-deliveries")
    logged = "SELECT COUNT(*) AS n FROM webhook_deliveries"
    before = count_rows(platform, logged)
    crons = [threading.Thread(target=platform.harness.run_job, args=("retry-webhook-deliveries", clock)) for _ in range(2)]
    for cron in crons:
        cron.start()
    for cron in crons:
        cron.join(60)
    return [count_rows(platform, logged) - before]


def test_purge_webhook_deliveries(client, alice, platform, clock):
    with Receiver(platform) as rx:
        hook = client.post("/v1/integrations/webhooks", headers=alice.headers,
                           json={"url": rx.url(), "events": ["*"]}).json()["webhook"]
        for _ in range(2):
            client.post(f"/v1/integrations/webhooks/{hook['id']}/test", headers=alice.headers)
        clock.advance(31 * 86400)
        alice = make_caller(platform, alice.email)  # the first token has expired by now
        assert client.post(f"/v1/integrations/webhooks/{hook['id']}/test", headers=alice.headers).status_code == 200
    assert sum(twice_at_once(platform, "purge-webhook-deliveries")) == 4  # 2 attempts + their 2 messages
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_deliveries") == 1
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages") == 1


def test_recompute_storage_stats(client, alice, bob, platform):
    for content in (b"one", b"two!"):
        client.put(f"/v1/blobs/upload/{hashlib.sha256(content).hexdigest()}", headers=alice.headers, content=content)
    assert twice_at_once(platform, "recompute-storage-stats") == [2, 2]
    rows = {r["user_id"]: r for r in run(platform.db.prepare("SELECT * FROM storage_stats").all()).results}
    live = run(storage.stats(platform, alice.user_id))
    assert rows[alice.user_id]["blob_count"] == live["blobs"]["count"] == 2
    assert rows[alice.user_id]["blob_bytes"] == live["blobs"]["bytes"] == 7
    assert rows[bob.user_id]["blob_count"] == 0


def test_every_job_has_a_concurrency_test():
    """Every job is run twice at once by a test here, or (jobs of other features, e.g. billing) in
    their own test modules."""
    from pathlib import Path

    tests = Path(__file__).resolve().parents[1]
    sources = "\n".join(
        path.read_text(encoding="utf-8") for path in tests.rglob("test_*.py")
        if "twice" in path.read_text(encoding="utf-8") or "concurrent" in path.read_text(encoding="utf-8")
    )
    assert [name for name in jobs.JOBS if f'"{name}"' not in sources] == []


def test_jobs_list_names_every_job_with_its_schedule(tmp_path):
    done = subprocess.run([sys.executable, "-m", "fastest.cli.main", "jobs", "list"], capture_output=True, text=True)
    assert done.returncode == 0
    for name, cron, _ in jobs.describe():
        line = next(line for line in done.stdout.splitlines() if line.startswith(name + " "))
        assert cron in line
    assert "* * * * *" in done.stdout and "retry-webhook-deliveries" in done.stdout
