"""`fastest login` without a token: the OAuth device flow (RFC 8628) from the client's side.

Ask the server for a device code and a user code, show the person where to approve, then poll the
token endpoint no faster than `interval`, adding 5 s for good whenever the server says `slow_down`,
until it answers with a token, a refusal, or the code expires.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from fastest.cli.client import ApiClient
from fastest.cli.failures import CommandFailure
from fastest.domain.device_codes import GRANT_TYPE, SLOW_DOWN_STEP_SECONDS

_REFUSALS = {
    "access_denied": "the sign-in was denied on the verification page",
    "expired_token": "the code expired before it was approved; run fastest login again",
    "invalid_grant": "the server no longer knows this code; run fastest login again",
}


class DeviceLoginError(CommandFailure):
    """The device flow ended without a token."""


def device_login(
    api: ApiClient,
    *,
    client_name: str,
    scope: str | None = None,
    on_code: Callable[[dict[str, Any]], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Run the flow; returns the token response (`access_token`, `user`, …)."""
    body: dict[str, Any] = {"client_name": client_name}
    if scope:
        body["scope"] = scope
    started = api.request("POST", "/v1/oauth/device", json=body).json()
    on_code(started)
    interval = max(1, int(started.get("interval") or 5))
    remaining = float(started.get("expires_in") or 900)
    while remaining > 0:
        sleep(interval)
        remaining -= interval
        response = api.request(
            "POST", "/v1/oauth/token", json={"grant_type": GRANT_TYPE, "device_code": started["device_code"]},
            allow=(400,),
        )
        if response.status_code == 200:
            return response.json()
        answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            suggested = answer.get("interval")
            interval = max(interval + SLOW_DOWN_STEP_SECONDS, suggested if isinstance(suggested, int) else 0)
            continue
        raise DeviceLoginError(_REFUSALS.get(error, f"the server refused the sign-in ({error or response.status_code})"))
    raise DeviceLoginError(_REFUSALS["expired_token"])
