"""`GET /docs`: a self-contained reference page rendered from the OpenAPI document (no CDN scripts)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from fastest.templates import render

router = APIRouter(include_in_schema=False)

_METHODS = ("get", "post", "put", "patch", "delete")


@router.get("/docs")
async def docs_page(request: Request) -> HTMLResponse:
    spec = request.app.openapi()
    operations = [
        {"method": method.upper(), "path": path, "summary": op.get("summary", ""), "tag": (op.get("tags") or ["other"])[0]}
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in _METHODS
    ]
    html = render("docs.html", title=spec["info"]["title"], version=spec["info"]["version"],
                  description=spec["info"].get("description", ""), operations=operations)
    return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})
