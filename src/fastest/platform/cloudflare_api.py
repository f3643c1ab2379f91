"""Cloudflare's REST API (client/v4) over the `HttpClient` port: requests, its answer envelope,
its errors, and retries.

Every answer is `{success, errors: [{code, message}], messages, result}`. A call that fails
(`success: false`, or a non-2xx status) raises `CloudflareError` carrying Cloudflare's codes and
messages, which is what a person sees. The API token goes into the Authorization header only and
is scrubbed from any message.

Retries: a 429 or a 5xx answer, or no answer at all (unreachable, timed out), is tried again, up to
`MAX_ATTEMPTS` times in all, after the delay the answer's `Retry-After` asks for (seconds, at most
`MAX_RETRY_AFTER`), else after an exponential backoff (`base_delay`, doubling, at most `MAX_BACKOFF`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import quote

from fastest.ports import DeployError, HttpClient

TIMEOUT = 60.0
MAX_ATTEMPTS = 5
BASE_DELAY = 1.0
MAX_BACKOFF = 16.0
MAX_RETRY_AFTER = 60.0
# Cloudflare's codes the deploy reads: no such Worker, no workers.dev subdomain on the account.
WORKER_NOT_FOUND = 10090
NO_SUBDOMAIN = 10007

Sleep = Callable[[float], Awaitable[Any]]


class CloudflareError(DeployError):
    """Cloudflare refused a call: its `(code, message)` pairs, the HTTP status, the call."""

    def __init__(self, method: str, path: str, status: int, errors: list[tuple[int | None, str]]) -> None:
        self.method, self.path, self.status, self.errors = method, path, status, errors
        self.codes = [code for code, _ in errors]
        said = "; ".join(f"{message} [code: {code}]" if code is not None else message for code, message in errors)
        super().__init__(f"Cloudflare refused {method} {path}: {said or f'HTTP {status}'}")


def is_retryable(status: int) -> bool:
    return status == 429 or status >= 500


def retry_delay(attempt: int, retry_after: str | None, base_delay: float = BASE_DELAY) -> float:
    """Seconds to wait before try `attempt + 1` (attempt counts from 1): `Retry-After` when the
    answer gave seconds, else `base_delay` doubling per attempt."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after.strip()), 0.0), MAX_RETRY_AFTER)
        except ValueError:
            pass  # an HTTP date: back off as without one
    return min(base_delay * 2 ** (attempt - 1), MAX_BACKOFF)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((value for key, value in headers.items() if key.lower() == name), None)


class CloudflareApi:
    def __init__(self, http: HttpClient, api_token: str, api_base: str, *, sleep: Sleep = asyncio.sleep,
                 base_delay: float = BASE_DELAY) -> None:
        self._http = http
        self._token = api_token
        self.api_base = api_base.rstrip("/")
        self._sleep = sleep
        self._base_delay = base_delay

    def __repr__(self) -> str:  # never the token
        return f"CloudflareApi({self.api_base!r})"

    async def call(self, method: str, path: str, *, json_body: Any = None, body: bytes | None = None,
                   content_type: str | None = None, token: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Any:
        """`result` of the answer, after retries; CloudflareError when Cloudflare refuses, DeployError
        when it cannot be reached."""
        sent = {"Authorization": f"Bearer {token or self._token}", **(headers or {})}
        if json_body is not None:
            body, content_type = json.dumps(json_body).encode(), "application/json"
        if content_type:
            sent["Content-Type"] = content_type
        shown = path.split("?")[0]
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(method, self.api_base + path, headers=sent, body=body,
                                                     timeout=TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - unreachable, timeout: retried, then one clear error
                if attempt >= MAX_ATTEMPTS:
                    raise DeployError(f"Cloudflare could not be reached for {method} {shown} "
                                      f"({type(exc).__name__}, {attempt} attempts).") from exc
                await self._sleep(retry_delay(attempt, None, self._base_delay))
                continue
            if is_retryable(response.status) and attempt < MAX_ATTEMPTS:
                await self._sleep(retry_delay(attempt, _header(response.headers, "retry-after"), self._base_delay))
                continue
            return self._result(method, shown, response.status, response.body)

    def _result(self, method: str, path: str, status: int, raw: bytes) -> Any:
        try:
            envelope = json.loads(raw or b"{}")
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            envelope = {}
        if status < 400 and envelope.get("success") is True:
            return envelope.get("result")
        errors = [(e.get("code") if isinstance(e.get("code"), int) else None, self._scrub(str(e.get("message", ""))))
                  for e in envelope.get("errors") or [] if isinstance(e, dict)]
        raise CloudflareError(method, path, status, errors)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "[token]") if self._token else text


def account_path(account_id: str, rest: str) -> str:
    return f"/accounts/{quote(account_id, safe='')}{rest}"
