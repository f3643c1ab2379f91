"""A stand-in for Paddle's Billing API on loopback (a real HTTP server in a thread), made by the tests.

It answers in Paddle's envelope (`{data, meta: {request_id}}`; errors `{error: {type, code, detail,
documentation_url}, meta}`) and checks each request against Paddle's documented shapes: Bearer
authentication with the configured key, JSON bodies, `POST /customers {email}`, `POST /transactions
{items: [{price_id, quantity}], customer_id, custom_data, collection_mode}`, `GET /subscriptions/{id}`.
Anything off is appended to `problems` (tests assert it stays empty) and refused like Paddle would.
"""

from __future__ import annotations

import json
import secrets
import string
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler

API_KEY = "pdl_sdbx_apikey_01test000000000000000000000_secretpart"
PRICE_PRO = "pri_01hpro0000000000000000000a"
PRICE_TEAM = "pri_01hteam000000000000000000b"
WEBHOOK_SECRET = "pdl_ntf_01testsecret0000000000000000_AbCdEf"

_ALPHABET = string.ascii_lowercase + string.digits


def paddle_id(prefix: str) -> str:
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(26))


class FakePaddle(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.customers: dict[str, str] = {}  # email → ctm id
        self.transactions: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.fail_transactions: tuple[int, str, str] | None = None  # (status, code, detail)
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return f"{self.origin}"

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == method and r["path"] == path]

    # -- answers ---------------------------------------------------------------------------------

    @staticmethod
    def envelope(data: Any) -> dict[str, Any]:
        return {"data": data, "meta": {"request_id": paddle_id("req")}}

    @staticmethod
    def error(code: str, detail: str, type_: str = "request_error") -> dict[str, Any]:
        return {
            "error": {"type": type_, "code": code, "detail": detail,
                      "documentation_url": f"https://developer.paddle.com/v1/errors/shared/{code}"},
            "meta": {"request_id": paddle_id("req")},
        }

    def _check(self, condition: bool, problem: str) -> bool:
        if not condition:
            self.problems.append(problem)
        return condition

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        with self._lock:
            record: dict[str, Any] = {"method": method, "path": path, "headers": headers, "json": None}
            self.requests.append(record)
            if headers.get("authorization") != f"Bearer {API_KEY}":
                self.problems.append(f"{method} {path}: not Bearer-authenticated with the API key")
                return 403, self.error("forbidden", "You aren't permitted to perform this request.")
            payload: Any = None
            if method == "POST":
                self._check(headers.get("content-type", "").startswith("application/json"),
                            f"{method} {path}: Content-Type is not JSON")
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.problems.append(f"{method} {path}: body is not JSON")
                    return 400, self.error("bad_request", "Invalid request.")
                record["json"] = payload
            if method == "POST" and path == "/customers":
                return self._create_customer(payload)
            if method == "POST" and path == "/transactions":
                return self._create_transaction(payload)
            if method == "GET" and path.startswith("/subscriptions/"):
                found = self.subscriptions.get(path.rsplit("/", 1)[1])
                if found is None:
                    return 404, self.error("not_found", "Entity not found.")
                return 200, self.envelope(found)
            self.problems.append(f"unexpected {method} {path}")
            return 404, self.error("not_found", "Entity not found.")

    def _create_customer(self, payload: Any) -> tuple[int, dict[str, Any]]:
        if not self._check(isinstance(payload, dict) and isinstance(payload.get("email"), str) and
                           set(payload) <= {"email", "name", "custom_data", "locale"},
                           f"POST /customers: body {payload!r} is not {{email, name?, custom_data?, locale?}}"):
            return 400, self.error("bad_request", "Invalid request.")
        email = payload["email"].lower()
        if email in self.customers:
            return 409, self.error("customer_already_exists",
                                   f"customer email conflicts with customer of id {self.customers[email]}")
        customer_id = paddle_id("ctm")
        self.customers[email] = customer_id
        return 201, self.envelope({"id": customer_id, "email": email, "name": None, "status": "active",
                                   "marketing_consent": False, "custom_data": None, "locale": "en"})

    def _create_transaction(self, payload: Any) -> tuple[int, dict[str, Any]]:
        ok = self._check(isinstance(payload, dict), "POST /transactions: body is not an object")
        items = payload.get("items") if ok else None
        ok = ok and self._check(
            isinstance(items, list) and len(items) >= 1 and all(
                isinstance(i, dict) and set(i) == {"price_id", "quantity"} and isinstance(i["price_id"], str)
                and i["price_id"].startswith("pri_") and type(i["quantity"]) is int and i["quantity"] >= 1
                for i in items),
            f"POST /transactions: items {items!r} are not [{{price_id, quantity}}]")
        ok = ok and self._check(isinstance(payload.get("customer_id"), str) and payload["customer_id"].startswith("ctm_"),
                                "POST /transactions: no customer_id")
        ok = ok and self._check(isinstance(payload.get("custom_data"), dict), "POST /transactions: no custom_data object")
        ok = ok and self._check(payload.get("collection_mode") in (None, "automatic", "manual"),
                                "POST /transactions: bad collection_mode")
        ok = ok and self._check(set(payload) <= {"items", "customer_id", "address_id", "business_id", "custom_data",
                                                 "currency_code", "collection_mode", "discount_id", "billing_details",
                                                 "billing_period", "checkout", "status"},
                                f"POST /transactions: unknown fields {sorted(payload)}")
        if not ok:
            return 400, self.error("bad_request", "Invalid request.")
        if self.fail_transactions is not None:
            status, code, detail = self.fail_transactions
            return status, self.error(code, detail)
        transaction_id = paddle_id("txn")
        transaction = {
            "id": transaction_id, "status": "draft", "customer_id": payload["customer_id"], "address_id": None,
            "custom_data": payload["custom_data"], "currency_code": "USD", "origin": "api", "subscription_id": None,
            "collection_mode": payload.get("collection_mode") or "automatic",
            "items": [{"price": {"id": i["price_id"]}, "quantity": i["quantity"]} for i in payload["items"]],
            "checkout": {"url": f"https://pay.example.test/checkout?_ptxn={transaction_id}"},
        }
        self.transactions[transaction_id] = transaction
        return 201, self.envelope(transaction)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                body = self.body()
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = fake.handle(self.command, self.path, headers, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve  # noqa: N815

        return Handler
