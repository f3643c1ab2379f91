"""Paddle's Billing API through the `HttpClient` port: the few calls billing makes.

Requests carry `Authorization: Bearer <FASTEST_PADDLE_API_KEY>` and JSON bodies; answers are Paddle's
envelope, `{data, meta: {request_id}}`, or `{error: {type, code, detail, documentation_url}, meta}`.
A refusal or an unreachable Paddle becomes a 502 `payment_provider_error` naming Paddle's error code
and request id (for support), never the key.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping
from urllib.parse import quote

from fastest.errors import PaymentProviderError, Unavailable
from fastest.platform import Platform

log = logging.getLogger("fastest.billing")

TIMEOUT_SECONDS = 10.0
_CUSTOMER_ID = re.compile(r"\bctm_[a-z\d]{26}\b")


class PaddleRefused(PaymentProviderError):
    """Paddle answered with an error. `provider_code`/`provider_detail` stay server-side."""

    def __init__(self, message: str, *, status: int, code: str, detail: str, request_id: str | None) -> None:
        super().__init__(message, extra={"provider": {"status": status, "code": code, "request_id": request_id}})
        self.provider_status = status
        self.provider_code = code
        self.provider_detail = detail


def configured(platform: Platform) -> bool:
    return bool(platform.settings.paddle_api_key.strip()) and platform.http is not None


async def call(platform: Platform, method: str, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One request; Paddle's `data` member (a dict) on success."""
    settings = platform.settings
    key = settings.paddle_api_key.strip()
    if not key or platform.http is None:
        raise Unavailable("Paid plans are not available: Paddle is not configured on this server.",
                          code="billing_not_configured")
    url = settings.paddle_api_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    payload = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    try:
        response = await platform.http.request(method, url, headers=headers, body=payload, timeout=TIMEOUT_SECONDS)
    except Exception as exc:  # connection refused, timeout, TLS: nothing of the request is echoed
        log.warning("Paddle %s %s unreachable: %s", method, path, type(exc).__name__)
        raise PaymentProviderError("Paddle could not be reached; nothing was charged. Retry shortly.") from None
    try:
        answer = json.loads(response.body or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise PaymentProviderError(f"Paddle answered {response.status} with a body that is not its JSON envelope.")
    meta = answer.get("meta") if isinstance(answer.get("meta"), dict) else {}
    request_id = meta.get("request_id") if isinstance(meta.get("request_id"), str) else None
    if response.status >= 400:
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        code = str(error.get("code") or "unknown_error")[:100]
        detail = str(error.get("detail") or "")[:500]
        log.warning("Paddle %s %s refused: %s %s (request %s)", method, path, response.status, code, request_id)
        raise PaddleRefused(
            f"Paddle refused the request ({response.status} {code}).",
            status=response.status, code=code, detail=detail, request_id=request_id,
        )
    data = answer.get("data")
    if not isinstance(data, dict):
        raise PaymentProviderError("Paddle's answer has no `data` object.")
    return data


async def customer_for_email(platform: Platform, email: str) -> str:
    """The Paddle customer (`ctm_…`) for this email: created, or the existing one Paddle names when
    it answers 409 `customer_already_exists`."""
    try:
        customer = await call(platform, "POST", "/customers", {"email": email})
    except PaddleRefused as exc:
        found = _CUSTOMER_ID.search(exc.provider_detail) if exc.provider_code == "customer_already_exists" else None
        if found is None:
            raise
        return found.group(0)
    customer_id = customer.get("id")
    if not isinstance(customer_id, str) or not customer_id:
        raise PaymentProviderError("Paddle created a customer without an id.")
    return customer_id


async def create_transaction(
    platform: Platform, *, price_id: str, customer_id: str, custom_data: Mapping[str, str]
) -> tuple[str, str]:
    """An automatically-collected transaction for one unit of the price: (`txn_…`, checkout URL)."""
    data = await call(platform, "POST", "/transactions", {
        "items": [{"price_id": price_id, "quantity": 1}],
        "customer_id": customer_id,
        "collection_mode": "automatic",
        "custom_data": dict(custom_data),
    })
    transaction_id = data.get("id")
    checkout = data.get("checkout") if isinstance(data.get("checkout"), dict) else {}
    url = checkout.get("url")
    if not isinstance(transaction_id, str) or not transaction_id:
        raise PaymentProviderError("Paddle created a transaction without an id.")
    if not isinstance(url, str) or not url.startswith("https://"):
        raise PaymentProviderError(
            "Paddle returned no checkout URL for the transaction: set a default payment link in Paddle "
            "(Checkout settings)."
        )
    return transaction_id, url


async def get_subscription(platform: Platform, subscription_id: str) -> dict[str, Any]:
    return await call(platform, "GET", "/subscriptions/" + quote(subscription_id, safe=""))
