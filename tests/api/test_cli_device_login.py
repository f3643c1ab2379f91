"""The CLI's side of the device flow against the real app (in process): it polls no faster than the
interval, backs off for good on `slow_down`, and stops on a refusal."""

from __future__ import annotations

import json

import httpx
import pytest

from fastest.cli.client import ApiClient
from fastest.cli.device_login import DeviceLoginError, device_login
from tests.api.app_transport import AppTransport
from tests.conftest import make_caller


class Approving(httpx.BaseTransport):
    """Passes requests to the app; after `polls_before` token polls, approves (or denies) the code."""

    def __init__(self, client, approver, *, polls_before: int, approve: bool = True) -> None:
        self.client, self.inner, self.approver = client, AppTransport(client), approver
        self.polls_before, self.approve = polls_before, approve
        self.user_code: str | None = None
        self.answers: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/oauth/token":
            if len(self.answers) == self.polls_before:
                route = "authorize" if self.approve else "deny"
                self.client.post(f"/v1/oauth/device/{route}", headers=self.approver.headers, json={"user_code": self.user_code})
            response = self.inner.handle_request(request)
            response.read()
            self.answers.append(json.loads(response.content).get("error", "token"))
            return response
        return self.inner.handle_request(request)


def test_polls_at_the_interval_and_honours_slow_down(client, clock, platform):
    approver = make_caller(platform, "me@example.com")
    transport = Approving(client, approver, polls_before=3)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        # The first wait is cut short (as if the CLI's clock ran fast): the server says slow_down.
        clock.advance(seconds if len(slept) != 2 else 1)

    def on_code(started):
        transport.user_code = started["user_code"]

    with ApiClient(str(client.base_url).rstrip("/"), None, transport=transport, sleep=lambda s: None) as api:
        granted = device_login(api, client_name="test", on_code=on_code, sleep=sleep)
    assert granted["user"]["email"] == "me@example.com"
    assert transport.answers == ["authorization_pending", "slow_down", "authorization_pending", "token"]
    assert slept == [5, 5, 10, 10]  # raised by 5 s after slow_down, and kept


def test_a_denial_ends_the_login(client, clock, platform):
    approver = make_caller(platform, "me@example.com")
    transport = Approving(client, approver, polls_before=1, approve=False)

    def on_code(started):
        transport.user_code = started["user_code"]

    with ApiClient(str(client.base_url).rstrip("/"), None, transport=transport) as api:
        with pytest.raises(DeviceLoginError, match="denied"):
            device_login(api, client_name="test", on_code=on_code, sleep=clock.advance)


def test_an_unapproved_code_runs_out(client, clock):
    with ApiClient(str(client.base_url).rstrip("/"), None, transport=AppTransport(client)) as api:
        with pytest.raises(DeviceLoginError, match="expired"):
            device_login(api, client_name="test", on_code=lambda s: None, sleep=clock.advance)
