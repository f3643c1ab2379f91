"""`HttpClient` on Workers: the global `fetch`, with a timeout through `AbortSignal.timeout`.

Thin by design: the request goes out as given, and the response comes back as status, lower-cased
headers and the whole body (the callers fetch small JSON documents such as a JWKS).
"""

from __future__ import annotations

from typing import Any, Mapping

from fastest.platform.cloudflare.interop import to_str_dict
from fastest.ports import HttpResponse


class FetchHttpClient:
    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = 10.0,
    ) -> HttpResponse:
        from js import AbortSignal, Object, fetch  # type: ignore[import-not-found]
        from pyodide.ffi import to_js  # type: ignore[import-not-found]

        init: dict[str, Any] = {
            "method": method,
            "headers": to_js(dict(headers or {}), dict_converter=Object.fromEntries),
            "redirect": "manual",
            "signal": AbortSignal.timeout(int(timeout * 1000)),
        }
        if body is not None:
            init["body"] = to_js(body)
        response = await fetch(url, to_js(init, dict_converter=Object.fromEntries))
        payload = await response.arrayBuffer()
        # Headers → a plain object → a dict (JS header names are already lower-case).
        headers_out = {k.lower(): v for k, v in to_str_dict(Object.fromEntries(response.headers.entries())).items()}
        return HttpResponse(status=int(response.status), headers=headers_out, body=payload.to_bytes())
