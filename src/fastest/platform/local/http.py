"""`HttpClient` on the local runtime: httpx, one short-lived client per request.

Outbound calls are rare (a JWKS refresh, a provider call), so a client per request costs little and
never outlives the event loop it was made on (tests run several loops over one platform).
"""

from __future__ import annotations

from typing import Mapping

import httpx

from fastest.ports import HttpResponse


class HttpxClient:
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            response = await client.request(method, url, headers=dict(headers or {}), content=body)
            return HttpResponse(
                status=response.status_code,
                headers={k.lower(): v for k, v in response.headers.items()},
                body=response.content,
            )
