"""Cloudflare's REST client: a 429 waits what its `Retry-After` says, a 5xx or no answer backs off
exponentially, both up to five tries in all; errors carry Cloudflare's codes, never the token."""

from __future__ import annotations

import pytest

from fastest.platform.cloudflare_api import MAX_ATTEMPTS, CloudflareApi, CloudflareError, retry_delay
from fastest.platform.local.http import HttpxClient
from fastest.ports import DeployError
from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn
from tests.conftest import run


def test_retry_delay_honours_retry_after_else_backs_off():
    assert retry_delay(1, "7") == 7.0 and retry_delay(3, " 0 ") == 0.0
    assert retry_delay(1, "3600") == 60.0  # at most a minute
    assert [retry_delay(n, None) for n in (1, 2, 3, 4, 5, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0, 16.0]
    assert retry_delay(2, "Wed, 21 Oct 2026 07:28:00 GMT") == 2.0  # a date: backoff as without one


@pytest.fixture
def cf():
    with CloudflareStandIn() as stand_in:
        yield stand_in


def client(cf, slept: list[float], token: str = TOKEN) -> CloudflareApi:
    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    return CloudflareApi(HttpxClient(), token, cf.base, sleep=sleep)


def test_a_429_waits_for_retry_after_and_5xx_back_off(cf):
    slept: list[float] = []
    cf.flake("GET", "/workers/subdomain", 429, retry_after="7")
    cf.flake("GET", "/workers/subdomain", 502)
    cf.flake("GET", "/workers/subdomain", 503)
    result = run(client(cf, slept).call("GET", f"/accounts/{ACCOUNT}/workers/subdomain"))
    assert result == {"subdomain": "acme"}
    assert slept == [7.0, 2.0, 4.0]
    assert len(cf.calls("GET", "/workers/subdomain")) == 4


def test_retries_are_bounded_and_end_in_cloudflares_error(cf):
    slept: list[float] = []
    for _ in range(MAX_ATTEMPTS + 1):
        cf.flake("GET", "/workers/subdomain", 502)
    with pytest.raises(CloudflareError) as failed:
        run(client(cf, slept).call("GET", f"/accounts/{ACCOUNT}/workers/subdomain"))
    assert failed.value.status == 502 and failed.value.codes == [10013]
    assert len(cf.calls("GET", "/workers/subdomain")) == MAX_ATTEMPTS and len(slept) == MAX_ATTEMPTS - 1


def test_a_refusal_is_not_retried_and_never_shows_the_token(cf):
    slept: list[float] = []
    cf.fail["/d1/database"] = (400, 7400, f"bad request for {TOKEN}")
    with pytest.raises(CloudflareError) as failed:
        run(client(cf, slept).call("POST", f"/accounts/{ACCOUNT}/d1/database", json_body={"name": "x"}))
    assert str(failed.value) == f"Cloudflare refused POST /accounts/{ACCOUNT}/d1/database: bad request for [token] [code: 7400]"
    assert slept == [] and TOKEN not in repr(client(cf, slept))


def test_an_unreachable_api_is_retried_then_said_plainly():
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    api = CloudflareApi(HttpxClient(), TOKEN, "http://127.0.0.1:9/client/v4", sleep=sleep)
    with pytest.raises(DeployError, match=r"could not be reached for GET /user/tokens/verify \(\w+, 5 attempts\)"):
        run(api.call("GET", "/user/tokens/verify"))
    assert slept == [1.0, 2.0, 4.0, 8.0]
