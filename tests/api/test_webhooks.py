"""Integration webhooks: endpoints, Standard Webhooks deliveries verified with the
`standardwebhooks` library in a loopback receiver, retries on a controlled clock, disabling, the
SSRF guard, strict guardrail integers and cross-user 404s."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
import standardwebhooks

from fastest.config import Settings
from fastest.domain.ids import parse_iso
from fastest.platform import EDGE
from fastest.services import events, webhooks
from fastest.services.webhooks import delivery as webhooks_delivery
from fastest.services.webhooks.senders import senders
from tests.api.trees import new_project, snapshot, upload_tree
from tests.api.webhook_receiver import Answer, Receiver
from tests.conftest import assert_problem, count_rows, make_caller, run
from tests.edge_runtime import is_edge

BASE = "/v1/integrations/webhooks"


@pytest.fixture
def settings() -> Settings:
    return Settings(webhooks_allow_loopback_http="1")


@pytest.fixture
def receiver(platform):
    with Receiver(platform) as rx:
        yield rx


@pytest.fixture(autouse=True)
def no_in_task_retries(request):
    """The background task retries by itself when the next try is seconds away; here the clock is
    manual, so retries are driven by the sweep. (On edge the events the test records are sent by the
    Worker's cron, which does not retry within itself: nothing to change there.)"""
    if not is_edge():
        request.getfixturevalue("monkeypatch").setattr(webhooks_delivery, "SHORT_RETRY_SECONDS", -1)


class Names:
    """Host names that resolve as the test says: through the app's resolver (FakeDns) locally; on
    edge, through the DNS the Worker asks (the harness's), as a name owner's DNS would answer."""

    def __init__(self, platform):
        self.platform = platform
        if not is_edge():
            self.table: dict[str, list[str]] = {}
            platform.http = FakeDns(platform.http, self.table)

    def __setitem__(self, host: str, addresses: list[str]) -> None:
        if is_edge():
            self.platform.harness.register_host(host, addresses)
        else:
            self.table[host] = addresses


class FakeDns:
    """The platform's HttpClient with a resolver the test controls (DNS rebinding and the like)."""

    def __init__(self, inner, table: dict[str, list[str]]):
        self.inner, self.table = inner, table

    async def resolve(self, host: str, port: int) -> list[str]:
        return self.table[host] if host in self.table else await self.inner.resolve(host, port)

    async def request(self, *args, **kwargs):
        return await self.inner.request(*args, **kwargs)

    async def stream(self, *args, **kwargs):
        return await self.inner.stream(*args, **kwargs)


def create(client, caller, url: str, events_=("*",), **fields) -> tuple[dict, str]:
    response = client.post(BASE, headers=caller.headers, json={"url": url, "events": list(events_), **fields})
    assert response.status_code == 201, response.text
    return response.json()["webhook"], response.json()["secret"]


def emit(platform, project_id: str, user_id: str, type_: str = "snapshot.created", data: dict | None = None) -> None:
    """Record a project event the way writers do (in their batch), then let its first attempts run:
    in the test's background locally; on edge, by the Worker's cron (work deferred outside a Worker's
    invocation is left to it)."""

    async def go():
        await platform.db.batch(events.record(platform, project_id, user_id, type_, f"{type_} happened", data or {}))
        if not is_edge():
            await platform.background.drain()

    run(go())
    if is_edge():
        platform.harness.run_job("retry-webhook-deliveries", platform.clock)


def sweep(platform) -> int:
    """The retry job's run: how many attempts it made (on edge, the Worker's cron: counted in the
    deliveries log, one row per attempt)."""
    if not is_edge():
        return run(webhooks.sweep(platform))
    logged = "SELECT COUNT(*) AS n FROM webhook_deliveries"
    before = count_rows(platform, logged)
    platform.harness.run_job("retry-webhook-deliveries", platform.clock)
    return count_rows(platform, logged) - before


def deliveries(client, caller, webhook_id: str) -> list[dict]:
    response = client.get(f"{BASE}/{webhook_id}/deliveries", headers=caller.headers, params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def endpoint(client, caller, webhook_id: str) -> dict:
    listed = {w["id"]: w for w in client.get(BASE, headers=caller.headers).json()["webhooks"]}
    return listed[webhook_id]


# --- Deliveries, verified like a customer's receiver would -------------------------------------


def test_event_delivery_verifies_with_standard_webhooks(client, alice, platform, receiver):
    project = new_project(client, alice)
    hook, secret = create(client, alice, receiver.url(), ["snapshot.created"])
    assert secret.startswith("whsec_") and "secret" not in hook
    emit(platform, project["id"], alice.user_id, "snapshot.created", {"snapshot_id": "snp_x"})
    [got] = receiver.on("/hook")
    payload = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "snapshot.created"
    assert payload["data"]["snapshot_id"] == "snp_x" and payload["data"]["project_id"] == project["id"]
    assert set(payload) == {"type", "timestamp", "data"}
    assert got.headers["webhook-id"].startswith("msg_") and got.headers["content-type"] == "application/json"
    [log] = deliveries(client, alice, hook["id"])
    assert log["success"] and log["status_code"] == 200 and log["attempt"] == 1 and log["trigger"] == "event"
    assert log["event"] == "snapshot.created" and log["message_id"] == got.headers["webhook-id"]
    assert log["response_excerpt"] == "ok" and log["next_retry_at"] is None
    assert {"id", "event", "status_code", "response_excerpt", "duration_ms", "attempt", "next_retry_at", "created_at"} <= set(log)


def test_a_real_snapshot_reaches_the_endpoint_in_the_background(client, alice, receiver):
    project = new_project(client, alice)
    _, secret = create(client, alice, receiver.url())
    created = snapshot(client, alice, project["id"], upload_tree(client, alice, {"a.txt": b"hello"}))
    [got] = receiver.wait_for("/hook")
    payload = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "snapshot.created" and payload["data"]["snapshot_id"] == created["id"]


def test_internal_event_names_map_to_the_catalogue_and_others_are_not_sent(client, alice, platform, receiver):
    project = new_project(client, alice)
    create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id, "workspace.synced", {"sync_id": "syn_1"})
    emit(platform, project["id"], alice.user_id, "env_vars.set", {"keys": ["A"]})
    emit(platform, project["id"], alice.user_id, "deployment.ready", {"deployment_id": "dep_1"})
    types = [json.loads(r.body)["type"] for r in receiver.on("/hook")]
    assert types == ["sync.executed", "deployment.ready"]


def test_only_the_owners_subscribed_enabled_endpoints_in_scope_receive(client, alice, bob, platform, receiver):
    mine, other = new_project(client, alice, "mine"), new_project(client, alice, "other")
    bobs = new_project(client, bob, "bobs")
    create(client, alice, receiver.url("/all"))
    create(client, alice, receiver.url("/syncs"), ["sync.executed"])
    create(client, alice, receiver.url("/scoped"), ["*"], project_id=mine["id"])
    create(client, alice, receiver.url("/off"), ["*"], enabled=False)
    emit(platform, mine["id"], alice.user_id)
    emit(platform, other["id"], alice.user_id)
    emit(platform, bobs["id"], bob.user_id)
    assert len(receiver.on("/all")) == 2
    assert receiver.on("/syncs") == [] and receiver.on("/off") == []
    assert [json.loads(r.body)["data"]["project_id"] for r in receiver.on("/scoped")] == [mine["id"]]


def test_a_failed_batch_queues_nothing(client, alice, platform, receiver):
    project = new_project(client, alice)
    create(client, alice, receiver.url())

    async def go():
        statements = events.record(platform, project["id"], alice.user_id, "snapshot.created", "x")
        failing = platform.db.prepare("INSERT INTO projects (id) VALUES (NULL)")
        with pytest.raises(Exception):
            await platform.db.batch([*statements, failing])
        if not is_edge():
            await platform.background.drain()

    run(go())
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages") == 0 and receiver.received == []


# --- Retries, backoff and disabling, on a controlled clock ------------------------------------------


def test_retry_schedule_keeps_the_webhook_id_and_gives_up_after_the_last(client, alice, platform, clock, receiver):
    receiver.answers["/hook"] = Answer(status=500, body=b"boom")
    project = new_project(client, alice)
    hook, secret = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    expected = [5, 300, 1800, 7200, 18000, 36000, 36000]
    for attempt, delay in enumerate(expected, start=1):
        log = deliveries(client, alice, hook["id"])[0]
        assert log["attempt"] == attempt and not log["success"] and log["status_code"] == 500
        wait = (parse_iso(log["next_retry_at"]) - clock.now()).total_seconds()
        assert delay * 0.9 - 0.001 <= wait <= delay * 1.1 + 0.001, (attempt, wait)
        assert sweep(platform) == 0  # not due yet
        clock.advance(wait + 0.01)
        assert sweep(platform) == 1
    last = deliveries(client, alice, hook["id"])[0]
    assert last["attempt"] == 8 and last["next_retry_at"] is None
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages WHERE status = 'failed'") == 1
    clock.advance(48 * 3600)
    assert sweep(platform) == 0
    got = receiver.on("/hook")
    assert len(got) == 8 and len({r.headers["webhook-id"] for r in got}) == 1
    assert len({r.headers["webhook-timestamp"] for r in got}) == 8  # each attempt's own time
    signer = standardwebhooks.Webhook(secret)
    for r in got:  # every attempt signed with its own timestamp
        when = datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), tz=timezone.utc)
        assert signer.sign(r.headers["webhook-id"], when, r.body.decode()) == r.headers["webhook-signature"]


def test_only_2xx_succeeds_and_a_later_success_ends_the_retries(client, alice, platform, clock, receiver):
    receiver.answers["/hook"] = Answer(status=302, headers={"location": receiver.url("/elsewhere")})
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    first = deliveries(client, alice, hook["id"])[0]
    assert not first["success"] and "Redirect not followed" in first["error"] and receiver.on("/elsewhere") == []
    receiver.answers["/hook"] = Answer(status=204, body=b"")
    clock.advance(10)
    assert sweep(platform) == 1
    assert deliveries(client, alice, hook["id"])[0]["success"]
    clock.advance(3600)
    assert sweep(platform) == 0


def test_gone_disables_the_endpoint_at_once(client, alice, platform, clock, receiver):
    receiver.answers["/hook"] = Answer(status=410)
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    state = endpoint(client, alice, hook["id"])
    assert state["enabled"] is False and "410" in state["disabled_reason"]
    assert deliveries(client, alice, hook["id"])[0]["next_retry_at"] is None
    emit(platform, project["id"], alice.user_id)
    clock.advance(3600)
    sweep(platform)
    assert len(receiver.on("/hook")) == 1
    # Enabling it again clears the reason, and events flow again.
    receiver.answers["/hook"] = Answer()
    response = client.patch(f"{BASE}/{hook['id']}", headers=alice.headers, json={"enabled": True})
    assert response.json()["webhook"]["enabled"] is True and response.json()["webhook"]["disabled_reason"] is None
    emit(platform, project["id"], alice.user_id)
    assert len(receiver.on("/hook")) == 2


def test_disabled_after_three_days_of_failures_and_a_success_resets_the_streak(client, alice, platform, clock, receiver):
    receiver.answers["/hook"] = Answer(status=500)
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    clock.advance(2 * 24 * 3600)
    receiver.answers["/hook"] = Answer(status=200)
    emit(platform, project["id"], alice.user_id)  # a success: the streak starts over
    receiver.answers["/hook"] = Answer(status=500)
    clock.advance(3600)
    emit(platform, project["id"], alice.user_id)
    clock.advance(2 * 24 * 3600)
    emit(platform, project["id"], alice.user_id)
    assert endpoint(client, alice, hook["id"])["enabled"] is True
    clock.advance(24 * 3600)
    emit(platform, project["id"], alice.user_id)  # three days and an hour into the streak
    state = endpoint(client, alice, hook["id"])
    assert state["enabled"] is False and "3 days" in state["disabled_reason"] and "HTTP 500" in state["disabled_reason"]
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages WHERE status = 'pending'") == 0


@pytest.mark.parametrize("status, header", [(429, "3600"), (503, None)])
def test_retry_after_is_honoured(client, alice, platform, clock, receiver, status, header):
    retry_at = clock.now() + timedelta(hours=2)
    value = header or retry_at.strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.answers["/hook"] = Answer(status=status, headers={"retry-after": value})
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    wait = (parse_iso(deliveries(client, alice, hook["id"])[0]["next_retry_at"]) - clock.now()).total_seconds()
    assert wait >= (3600 if header else 7200) - 1
    receiver.answers["/hook"] = Answer()
    emit(platform, project["id"], alice.user_id)  # the endpoint is paused: this one waits too
    assert len(receiver.on("/hook")) == 1
    clock.advance(wait + 1)
    assert sweep(platform) == 2


def test_failure_backoff_holds_back_only_that_endpoint(client, alice, platform, clock, receiver):
    receiver.answers["/bad"] = Answer(status=500)
    project = new_project(client, alice)
    bad, _ = create(client, alice, receiver.url("/bad"), failure_backoff_seconds=600)
    create(client, alice, receiver.url("/good"))
    emit(platform, project["id"], alice.user_id)
    wait = (parse_iso(deliveries(client, alice, bad["id"])[0]["next_retry_at"]) - clock.now()).total_seconds()
    assert wait >= 600
    emit(platform, project["id"], alice.user_id)
    assert len(receiver.on("/bad")) == 1 and len(receiver.on("/good")) == 2
    clock.advance(601)
    assert sweep(platform) == 2 and len(receiver.on("/bad")) == 3


def test_rate_limit_per_minute_defers_the_rest(client, alice, platform, clock, receiver):
    project = new_project(client, alice)
    create(client, alice, receiver.url(), rate_limit_per_minute=2)
    for _ in range(3):
        emit(platform, project["id"], alice.user_id)
    assert len(receiver.on("/hook")) == 2
    assert count_rows(platform, "SELECT COUNT(*) AS n FROM webhook_messages WHERE status = 'pending'") == 1
    clock.advance(61)
    assert sweep(platform) == 1 and len(receiver.on("/hook")) == 3


def test_a_stuck_endpoint_does_not_delay_another(client, alice, platform, receiver):
    release = threading.Event()
    project = new_project(client, alice)
    create(client, alice, receiver.url("/stuck"))
    create(client, alice, receiver.url("/good"))
    # The stuck receiver holds its answer until released.
    answer = receiver.server.RequestHandlerClass.do_POST

    def do_post(self):
        if self.path == "/stuck":
            release.wait(10)
        answer(self)

    receiver.server.RequestHandlerClass.do_POST = do_post

    if is_edge():  # the event recorded here is sent by the Worker's cron, which runs meanwhile
        run(platform.db.batch(events.record(platform, project["id"], alice.user_id, "snapshot.created", "x")))
        sending = threading.Thread(target=sweep, args=(platform,))
        sending.start()
        good_done_while_stuck = bool(receiver.wait_for("/good")) and not release.is_set()
        release.set()
        sending.join(30)
        assert good_done_while_stuck and len(receiver.on("/stuck")) == 1
        return

    async def go():
        await platform.db.batch(events.record(platform, project["id"], alice.user_id, "snapshot.created", "x"))
        for _ in range(1000):  # the healthy endpoint is served while the other one hangs
            if receiver.on("/good"):
                break
            await asyncio.sleep(0.01)
        good_done_while_stuck = bool(receiver.on("/good")) and not release.is_set()
        release.set()
        await platform.background.drain()
        return good_done_while_stuck

    assert run(go()) is True
    assert len(receiver.on("/stuck")) == 1


# --- Manual sends ---------------------------------------------------------------------------------


def test_test_delivery_and_redeliver_keep_the_message_id(client, alice, platform, receiver):
    hook, secret = create(client, alice, receiver.url())
    tested = client.post(f"{BASE}/{hook['id']}/test", headers=alice.headers)
    assert tested.status_code == 200 and tested.json()["delivery"]["trigger"] == "test"
    again = client.post(f"{BASE}/deliveries/{tested.json()['delivery']['id']}/redeliver", headers=alice.headers)
    assert again.status_code == 200, again.text
    assert again.json()["delivery"]["trigger"] == "redeliver" and again.json()["delivery"]["attempt"] == 2
    first, second = receiver.on("/hook")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] and first.body == second.body
    assert standardwebhooks.Webhook(secret).verify(second.body, second.headers)["type"] == "webhook.test"


def test_deliveries_are_paginated_newest_first(client, alice, receiver):
    hook, _ = create(client, alice, receiver.url())
    ids = [client.post(f"{BASE}/{hook['id']}/test", headers=alice.headers).json()["delivery"]["id"] for _ in range(3)]
    first = client.get(f"{BASE}/{hook['id']}/deliveries", headers=alice.headers, params={"limit": 2}).json()
    assert [d["id"] for d in first["deliveries"]] == ids[::-1][:2] and first["next_cursor"]
    rest = client.get(f"{BASE}/{hook['id']}/deliveries", headers=alice.headers,
                      params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["id"] for d in rest["deliveries"]] == [ids[0]] and rest["next_cursor"] is None


def test_secret_is_shown_once_sealed_at_rest_replayed_by_idempotency_and_rotated(client, alice, platform, receiver, caplog):
    body = {"url": receiver.url(), "events": ["*"]}
    headers = {**alice.headers, "Idempotency-Key": "hook-1"}
    first = client.post(BASE, headers=headers, json=body)
    replay = client.post(BASE, headers=headers, json=body)
    assert first.status_code == replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    secret = first.json()["secret"]
    hook_id = first.json()["webhook"]["id"]
    stored = run(platform.db.prepare("SELECT secret_sealed FROM webhook_endpoints").first("secret_sealed"))
    idem = run(platform.db.prepare("SELECT response_body FROM idempotency_keys").first("response_body"))
    raw = secret.removeprefix("whsec_")
    assert raw not in stored and raw not in idem
    assert client.get(BASE, headers=alice.headers).text.find(raw) == -1
    rotated = client.post(f"{BASE}/{hook_id}/rotate-secret", headers=alice.headers)
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    client.post(f"{BASE}/{hook_id}/test", headers=alice.headers)
    got = receiver.on("/hook")[-1]
    standardwebhooks.Webhook(new_secret).verify(got.body, got.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert raw not in caplog.text and new_secret.removeprefix("whsec_") not in caplog.text
    assert client.delete(f"{BASE}/{hook_id}", headers=alice.headers).json() == {"success": True}
    audit = client.get("/v1/audit", headers=alice.headers).json()["events"]
    types = [e["type"] for e in audit]
    assert {"webhook.created", "webhook.secret_rotated", "webhook.deleted"} <= set(types)
    assert raw not in json.dumps(audit)


# --- Validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("rate_limit_per_minute", 1.5), ("rate_limit_per_minute", "4abc"), ("rate_limit_per_minute", "4"),
    ("rate_limit_per_minute", True), ("rate_limit_per_minute", 0), ("failure_backoff_seconds", 2.5),
    ("failure_backoff_seconds", "4abc"), ("failure_backoff_seconds", -1),
])
def test_guardrails_are_strict_integers(client, alice, receiver, field, value):
    response = client.post(BASE, headers=alice.headers, json={"url": receiver.url(), "events": ["*"], field: value})
    assert_problem(response, 422, "validation_failed")
    hook, _ = create(client, alice, receiver.url())
    patched = client.patch(f"{BASE}/{hook['id']}", headers=alice.headers, json={field: value})
    assert_problem(patched, 422, "validation_failed")
    ok = client.patch(f"{BASE}/{hook['id']}", headers=alice.headers, json={field: 30})
    assert ok.status_code == 200 and ok.json()["webhook"][field] == 30


def test_unknown_event_types_are_refused(client, alice, receiver):
    response = client.post(BASE, headers=alice.headers, json={"url": receiver.url(), "events": ["snapshot.deleted"]})
    assert_problem(response, 422, "validation_failed")


# --- SSRF -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://example.com/hook",  # not https
    "ftp://example.com/hook",
    "https://10.0.0.1/hook",  # private
    "https://192.168.1.1/hook",
    "https://127.0.0.1/hook",  # loopback
    "https://localhost/hook",
    "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
    "https://100.64.0.1/hook",  # CGNAT
    "https://224.0.0.1/hook",  # multicast
    "https://240.0.0.1/hook",  # reserved
    "https://0.0.0.0/hook",
    "https://[::1]/hook",
    "https://[fd00::1]/hook",  # IPv6 ULA
    "https://[fe80::1]/hook",
    "https://[::ffff:127.0.0.1]/hook",  # IPv4-mapped
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::127.0.0.1]/hook",  # IPv4-compatible
    "https://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "https://[2002:a00:1::1]/hook",  # 6to4 of 10.0.0.1
    "https://user:pass@example.com/hook",
])
def test_unsafe_targets_are_refused_at_creation(client, alice, url):
    response = client.post(BASE, headers=alice.headers, json={"url": url, "events": ["*"]})
    assert_problem(response, 422, "webhook_url_refused")


def test_a_name_resolving_inside_is_refused(client, alice, platform):
    Names(platform)["inside.example"] = ["93.184.216.34", "10.1.2.3"]
    response = client.post(BASE, headers=alice.headers, json={"url": "https://inside.example/hook", "events": ["*"]})
    assert_problem(response, 422, "webhook_url_refused")


def test_plain_http_to_loopback_needs_the_operator_setting(client, alice, platform, receiver):
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())  # allowed here (fixture setting)
    platform.settings = dataclasses.replace(platform.settings, webhooks_allow_loopback_http="")
    response = client.post(BASE, headers=alice.headers, json={"url": receiver.url(), "events": ["*"]})
    assert_problem(response, 422, "webhook_url_refused")
    emit(platform, project["id"], alice.user_id)  # checked again at send: refused and logged
    log = deliveries(client, alice, hook["id"])[0]
    assert not log["success"] and log["status_code"] is None and "Target refused" in log["error"]
    assert receiver.received == []


def test_the_setting_never_opens_loopback_on_the_edge(platform):
    platform.capabilities = EDGE
    assert webhooks.loopback_http_allowed(platform) is False


def test_dns_rebinding_is_refused_at_send_and_logged(client, alice, platform, receiver):
    table = Names(platform)
    table["hooks.example"] = ["93.184.216.34"]
    project = new_project(client, alice)
    hook, _ = create(client, alice, "https://hooks.example/hook")
    for inside in (["10.0.0.7"], ["127.0.0.1"], ["169.254.169.254"], ["::ffff:192.168.0.1"]):
        table["hooks.example"] = inside
        emit(platform, project["id"], alice.user_id)
        log = deliveries(client, alice, hook["id"])[0]
        assert log["status_code"] is None and "Target refused" in log["error"], log
    assert receiver.received == []


def test_redirects_are_not_followed_and_logged(client, alice, platform, receiver):
    receiver.answers["/hook"] = Answer(status=307, headers={"location": "http://169.254.169.254/latest"})
    project = new_project(client, alice)
    hook, _ = create(client, alice, receiver.url())
    emit(platform, project["id"], alice.user_id)
    log = deliveries(client, alice, hook["id"])[0]
    assert log["status_code"] == 307 and not log["success"] and "169.254.169.254" in log["error"]
    assert log["next_retry_at"] is not None


def test_response_excerpt_is_capped(client, alice, receiver):
    receiver.answers["/hook"] = Answer(body=b"x" * 200_000)
    hook, _ = create(client, alice, receiver.url())
    delivery = client.post(f"{BASE}/{hook['id']}/test", headers=alice.headers).json()["delivery"]
    assert delivery["success"] and len(delivery["response_excerpt"]) == webhooks.EXCERPT_BYTES


# --- Ownership ----------------------------------------------------------------------------------------


def test_another_users_endpoint_and_deliveries_are_404(client, alice, bob, receiver):
    hook, _ = create(client, alice, receiver.url())
    delivery = client.post(f"{BASE}/{hook['id']}/test", headers=alice.headers).json()["delivery"]
    calls = [
        ("patch", f"{BASE}/{hook['id']}", {"json": {"enabled": False}}),
        ("delete", f"{BASE}/{hook['id']}", {}),
        ("post", f"{BASE}/{hook['id']}/test", {}),
        ("post", f"{BASE}/{hook['id']}/rotate-secret", {}),
        ("get", f"{BASE}/{hook['id']}/deliveries", {}),
        ("post", f"{BASE}/deliveries/{delivery['id']}/redeliver", {}),
    ]
    for method, path, kwargs in calls:
        assert_problem(getattr(client, method)(path, headers=bob.headers, **kwargs), 404, "not_found")
        missing = path.replace(hook["id"], "whk_01JD0000000000000000000000").replace(delivery["id"], "whd_01JD0000000000000000000000")
        assert_problem(getattr(client, method)(missing, headers=alice.headers, **kwargs), 404, "not_found")
    assert client.get(BASE, headers=bob.headers).json() == {"webhooks": []}
    other_project = new_project(client, bob)
    scoped = client.post(BASE, headers=alice.headers, json={"url": receiver.url(), "events": ["*"], "project_id": other_project["id"]})
    assert_problem(scoped, 404, "not_found")
    assert len(receiver.received) == 1 and endpoint(client, alice, hook["id"])["enabled"] is True


def test_abilities(client, platform, receiver):
    from tests.conftest import make_caller

    reader = make_caller(platform, "reader@example.com", ("projects:read",))
    assert client.get(BASE, headers=reader.headers).status_code == 200
    assert_problem(client.post(BASE, headers=reader.headers, json={"url": receiver.url(), "events": ["*"]}), 403, "forbidden")


def test_a_conversation_turn_reaches_the_endpoint(client, alice, receiver):
    from tests.api.trees import new_workspace

    project = new_project(client, alice)
    workspace = new_workspace(client, alice, project["id"])
    _, secret = create(client, alice, receiver.url(), ["conversation.turn.completed"])
    conversation = client.post("/v1/conversations", headers=alice.headers, json={"workspace_id": workspace["id"]}).json()["conversation"]
    sent = client.post(f"/v1/conversations/{conversation['id']}/messages", headers=alice.headers, json={"prompt": "hello"})
    assert sent.status_code == 202, sent.text
    [got] = receiver.wait_for("/hook")
    payload = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert payload["type"] == "conversation.turn.completed"
    assert payload["data"]["conversation_id"] == conversation["id"] and payload["data"]["turn_id"]


def test_combined_result_writes_fall_back_to_one_batch_each(platform, alice):
    """Attempts finishing together share a batch; a failing one does not take the others down."""

    def insert(name: str):
        return platform.db.prepare(
            "INSERT INTO security_events (id, user_id, type, summary, data, created_at) VALUES (?, ?, 'x', ?, '{}', 'now')"
        ).bind(name, alice.user_id, name)

    async def go():
        return await asyncio.gather(
            senders(platform).write([insert("aud_a")]),
            senders(platform).write([insert("aud_b"), insert("aud_b")]),  # a duplicate id: this unit fails
            senders(platform).write([insert("aud_c")]),
            return_exceptions=True,
        )

    results = run(go())
    assert results[0] is None and results[2] is None and isinstance(results[1], Exception)
    rows = run(platform.db.prepare("SELECT id FROM security_events WHERE id LIKE 'aud_%' ORDER BY id").all()).results
    assert [r["id"] for r in rows] == ["aud_a", "aud_c"]


def test_an_endpoints_slots_hold_however_many_other_endpoints_come_and_go(platform):
    """Four sends to one endpoint hold its four slots; 20,000 other endpoints' senders come and go
    meanwhile; a fifth send to the first endpoint still waits for a slot. Once everyone left, nothing
    is kept."""

    async def go():
        shared = senders(platform)
        holding = [shared.endpoint_slot("whk_busy") for _ in range(4)]
        for slot in holding:
            assert await slot.__aenter__() is True
        for n in range(20_000):
            async with shared.endpoint_slot(f"whk_{n}") as held:
                assert held
        fifth_slot = shared.endpoint_slot("whk_busy")
        fifth = asyncio.ensure_future(fifth_slot.__aenter__())
        await asyncio.sleep(0.01)
        waited = not fifth.done()
        await holding[0].__aexit__(None, None, None)
        assert await asyncio.wait_for(fifth, 1) is True
        for slot in holding[1:]:
            await slot.__aexit__(None, None, None)
        tracked = [shared.endpoints_tracked()]
        await fifth_slot.__aexit__(None, None, None)
        return waited, tracked + [shared.endpoints_tracked()]

    waited, tracked = run(go())
    assert waited  # the busy endpoint's slots were not dropped
    assert tracked == [1, 0]  # while its fifth sender holds a slot; then nothing


def test_rotating_a_secret_needs_a_fresh_session(client, platform, clock, alice, receiver):
    hook, _ = create(client, alice, receiver.url())
    sealed = "SELECT secret_sealed FROM webhook_endpoints"
    before = run(platform.db.prepare(sealed).first("secret_sealed"))
    clock.advance(2 * 3600)  # alice's token is two hours old
    assert_problem(client.post(f"{BASE}/{hook['id']}/rotate-secret", headers=alice.headers), 403, "reauthentication_required")
    assert run(platform.db.prepare(sealed).first("secret_sealed")) == before
    fresh = make_caller(platform, alice.email)
    assert client.post(f"{BASE}/{hook['id']}/rotate-secret", headers=fresh.headers).status_code == 200
