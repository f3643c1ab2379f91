"""The SSRF guard's address rules, URL rules, the retry schedule, and Standard Webhooks signing
checked against the reference library."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import standardwebhooks

from fastest.domain import standard_webhooks as sw
from fastest.domain.webhook_targets import (
    RETRY_DELAYS_SECONDS,
    TargetRefused,
    address_refusal,
    check_addresses,
    parse_target,
    retry_delay,
)


@pytest.mark.parametrize("address", [
    "10.0.0.1", "172.16.5.4", "192.168.0.1", "127.0.0.1", "127.8.8.8", "169.254.169.254", "100.64.0.1",
    "100.127.255.254", "0.0.0.0", "224.0.0.251", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "192.0.2.1", "198.18.0.1", "::", "::1", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "::10.0.0.1",
    "64:ff9b::a9fe:a9fe", "2002:c0a8:101::1", "2001:db8::1",
])
def test_inside_addresses_are_refused(address):
    assert address_refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34"])
def test_public_addresses_pass(address):
    assert address_refusal(address) is None


def test_url_rules():
    assert parse_target("https://example.com/hook", allow_loopback_http=False).port == 443
    for url in ("http://example.com/", "https://user@example.com/", "https:///x", "https://example.com/#frag",
                "https://localhost/", "https://app.localhost/", "javascript:alert(1)", "https://exa mple.com/"):
        with pytest.raises(TargetRefused):
            parse_target(url, allow_loopback_http=False)
    with pytest.raises(TargetRefused):
        parse_target("http://127.0.0.1:8000/", allow_loopback_http=False)
    target = parse_target("http://127.0.0.1:8000/", allow_loopback_http=True)
    assert target.loopback_http
    with pytest.raises(TargetRefused):  # the exception is loopback only
        parse_target("http://example.com/", allow_loopback_http=True)
    with pytest.raises(TargetRefused):  # …and only for hosts that resolve to loopback
        check_addresses(parse_target("http://localhost:1/", allow_loopback_http=True), ["10.0.0.1"])


def test_every_resolved_address_is_checked():
    target = parse_target("https://example.com/", allow_loopback_http=False)
    assert check_addresses(target, ["93.184.216.34"]) == "93.184.216.34"
    with pytest.raises(TargetRefused):
        check_addresses(target, ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(TargetRefused):
        check_addresses(target, [])


def test_retry_schedule_is_standard_webhooks_with_jitter():
    assert RETRY_DELAYS_SECONDS == (5, 300, 1800, 7200, 18000, 36000, 36000)
    for attempts, base in enumerate(RETRY_DELAYS_SECONDS, start=1):
        assert retry_delay(attempts, 0.0) == max(1, round(base * 0.9))
        assert retry_delay(attempts, 0.5) == base
        assert retry_delay(attempts, 0.9999) <= round(base * 1.1)
    assert retry_delay(len(RETRY_DELAYS_SECONDS) + 1, 0.5) is None


def test_signature_matches_the_reference_library():
    secret = sw.encode_secret(bytes(range(24)))
    body = b'{"type":"snapshot.created","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    now = int(datetime.now(timezone.utc).timestamp())
    headers = sw.headers(secret, "msg_1", now, body)
    reference = standardwebhooks.Webhook(secret)
    assert reference.sign("msg_1", datetime.fromtimestamp(now, tz=timezone.utc), body.decode()) == headers["webhook-signature"]
    assert reference.verify(body, headers)["type"] == "snapshot.created"
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        reference.verify(body + b" ", headers)


def test_workers_background_hands_work_to_the_invocations_wait_until():
    import asyncio

    from fastest.platform.cloudflare.background import WaitUntilBackground, invocation

    class Ctx:
        def __init__(self):
            self.promises = []

        def waitUntil(self, promise):  # noqa: N802 — the Workers API's name
            self.promises.append(promise)

    done = []

    async def work():
        done.append(True)

    async def go():
        background, ctx = WaitUntilBackground(), Ctx()
        assert background.defer(work()) is False  # outside an invocation: left to the cron
        with invocation(ctx):
            assert background.defer(work()) is True
        await asyncio.gather(*ctx.promises)
        return ctx

    ctx = asyncio.run(go())
    assert len(ctx.promises) == 1 and done == [True]
