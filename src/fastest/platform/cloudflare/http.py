"""The `HttpClient` port on Workers: the runtime's `fetch`, with an AbortSignal timeout.

A streamed body is read chunk by chunk from `response.body.getReader()` (each `read()` bounded by
the timeout), so a model's server-sent events reach the conversation as they arrive.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Mapping

from fastest.platform.cloudflare.interop import field, from_js, to_bytes
from fastest.ports import HttpResponse, HttpStream


def _headers(js_headers: Any) -> dict[str, str]:
    entries = from_js(js_headers.entries()) if hasattr(js_headers, "entries") else []
    return {str(k).lower(): str(v) for k, v in (entries or [])}


async def _fetch(method: str, url: str, headers: Mapping[str, str] | None, body: bytes | None, timeout: float) -> Any:
    from js import AbortSignal, Object, fetch  # type: ignore[import-not-found]
    from pyodide.ffi import to_js  # type: ignore[import-not-found]

    # "manual": a 3xx comes back as it is, never followed (as locally; a webhook target must not
    # bounce the request elsewhere).
    options: dict[str, Any] = {"method": method, "headers": dict(headers or {}), "redirect": "manual"}
    if body is not None:
        options["body"] = to_js(body)
    options["signal"] = AbortSignal.timeout(int(timeout * 1000))
    return await fetch(url, to_js(options, dict_converter=Object.fromEntries))


class WorkersFetchClient:
    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None, timeout: float = 10.0
    ) -> HttpResponse:
        response = await _fetch(method, url, headers, body, timeout)
        data = to_bytes(await response.arrayBuffer())
        return HttpResponse(status=int(field(response, "status")), headers=_headers(field(response, "headers")), body=data)

    async def stream(
        self, method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None,
        timeout: float = 10.0, pin: str | None = None,
    ) -> HttpStream:
        # `pin` cannot be honoured: Workers' fetch resolves the host itself and has no way to name
        # the address to connect to. What protects the edge instead: the target's addresses are
        # checked (resolve below) just before the fetch, IP-literal hosts are judged directly, and
        # Workers cannot reach private networks or Cloudflare-internal addresses from fetch at all.
        # The fetch's own AbortSignal would cut a long stream; chunks are bounded one by one below.
        response = await _fetch(method, url, headers, body, max(timeout, 3600.0))
        # A response without a body (204, 304, a HEAD's answer) has `body` null in the Fetch API.
        stream = field(response, "body")
        reader = stream.getReader() if stream is not None else None

        async def chunks() -> AsyncIterator[bytes]:
            while reader is not None:
                result = await asyncio.wait_for(reader.read(), timeout)
                if field(result, "done"):
                    return
                yield to_bytes(field(result, "value"))

        async def close() -> None:
            if reader is None:
                return
            try:
                await reader.cancel()
            except Exception:
                pass

        return HttpStream(status=int(field(response, "status")), headers=_headers(field(response, "headers")), chunks=chunks(), close=close)

    async def resolve(self, host: str, port: int) -> list[str]:
        """A and AAAA records through DNS over HTTPS (Workers have no resolver API)."""
        import ipaddress
        import json
        from urllib.parse import quote

        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        found: list[str] = []
        for record_type, code in (("A", 1), ("AAAA", 28)):
            response = await self.request(
                "GET", f"https://cloudflare-dns.com/dns-query?name={quote(host)}&type={record_type}",
                headers={"accept": "application/dns-json"}, timeout=5.0,
            )
            if response.status != 200:
                continue
            answers = json.loads(response.body or b"{}").get("Answer") or []
            found += [str(a.get("data")) for a in answers if a.get("type") == code]
        return list(dict.fromkeys(found))
