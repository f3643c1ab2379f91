"""`GET /device`: the page a person opens from the CLI's `verification_uri` to approve a sign-in.

The person enters (or confirms) the code, sees what is asking and with which abilities, proves who
they are, and approves or denies. Who they are:

- **Google** (the edge, and any server with `FASTEST_GOOGLE_CLIENT_IDS`): a plain link to Google's
  OpenID Connect authorization endpoint (`response_type=id_token`, `response_mode=form_post`), which
  posts the ID token back to `/device/google`; no script is loaded from anywhere. The link carries a
  fresh `nonce` kept server-side for this code (`services/device_google`): the callback and the
  approve/deny post accept only an ID token carrying it, and the decision spends it.
- **Local owner** (local runtime only, see `device_flow.local_owner_allowed`): a browser on the same
  machine signs in as `FASTEST_LOCAL_OWNER_EMAIL`.

The approve/deny forms carry a same-origin form token (double-submit: a `SameSite=Strict`,
`HttpOnly` cookie plus a hidden field, compared in constant time), and cross-site posts are refused
by `Origin` / `Sec-Fetch-Site`, so another site cannot make a signed-in browser approve its code.
The page may not be framed (`X-Frame-Options: DENY`, `frame-ancestors 'none'`).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from fastest.api.deps import PlatformDep, client_ip, request_context
from fastest.errors import ApiError, Forbidden
from fastest.platform import Platform
from fastest.services import identity
from fastest.services.identity import device_flow, device_google, google
from fastest.services.identity.audit import RequestContext
from fastest.templates import render

router = APIRouter(include_in_schema=False)

CSRF_COOKIE = "fastest_device_form"
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_FORM_BYTES = 16 * 1024


def _page(request: Request, status: int = 200, *, form_token: str | None = None, **context: Any) -> HTMLResponse:
    platform: Platform = request.state.platform
    html = render("device.html", **context)
    response = HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})
    if form_token is not None:
        response.set_cookie(
            CSRF_COOKIE, form_token, httponly=True, samesite="strict", path="/device",
            secure=request.url.scheme == "https" or platform.settings.public_url.startswith("https://"),
            max_age=platform.settings.device_code_ttl_seconds,
        )
    return response


def _form_token(request: Request) -> str:
    existing = request.cookies.get(CSRF_COOKIE, "")
    return existing if 32 <= len(existing) <= 64 else secrets.token_urlsafe(32)


async def _google_link(platform: Platform, user_code: str) -> str | None:
    audiences = sorted(platform.settings.google_audiences)
    if not audiences:
        return None
    nonce = await device_google.issue(platform, user_code)
    query = urlencode(
        {
            "client_id": audiences[0],
            "response_type": "id_token",
            "response_mode": "form_post",
            "scope": "openid email profile",
            "redirect_uri": platform.settings.public_url.rstrip("/") + "/device/google",
            "nonce": nonce,
            "state": user_code,
            "prompt": "select_account",
        }
    )
    return f"{platform.settings.google_authorize_url}?{query}"


def _error_page(request: Request, error: ApiError, user_code: str = "") -> HTMLResponse:
    return _page(request, error.status, view="enter", error=error.message, user_code=user_code,
                 form_token=None)


async def _confirm_page(
    request: Request, platform: Platform, user_code: str, context: RequestContext, *, credential: str | None = None,
    signed_in_as: str | None = None,
) -> HTMLResponse:
    try:
        device = await device_flow.lookup(platform, user_code, context)
    except ApiError as exc:
        return _error_page(request, exc, user_code)
    token = _form_token(request)
    local_owner = device_flow.local_owner_allowed(platform, client_ip(request))
    return _page(
        request, view="confirm", device=device, form_token=token, csrf=token, credential=credential,
        signed_in_as=signed_in_as or (platform.settings.local_owner_email if local_owner else None),
        local_owner=local_owner and credential is None,
        google_link=None if credential else await _google_link(platform, device.user_code),
    )


@router.get("/device")
async def device_page(
    request: Request, platform: PlatformDep, context: RequestContext = Depends(request_context)
) -> HTMLResponse:
    user_code = request.query_params.get("user_code", "")
    if not user_code:
        return _page(request, view="enter", user_code="")
    return await _confirm_page(request, platform, user_code[:32], context)


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Forbidden("The form is too large.")
    try:
        return {k: v[0] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    except UnicodeDecodeError as exc:
        raise Forbidden("The form could not be read.") from exc


def _same_origin(request: Request, platform: Platform) -> bool:
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True  # the form token still has to match; browsers send Origin on form posts
    own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
    public = urlsplit(platform.settings.public_url)
    own.add(f"{public.scheme}://{public.netloc}")
    return origin in own


@router.post("/device/google")
async def google_callback(
    request: Request, platform: PlatformDep, context: RequestContext = Depends(request_context)
) -> HTMLResponse:
    """Google posts the ID token here (cross-site, so no form token yet): check it and show the
    confirmation, where the person still has to press Approve."""
    form: dict[str, str] = {}
    try:
        form = await _form(request)
        person = await google.verify_id_token(platform, form.get("id_token", ""))
        await device_google.check(platform, person.nonce, form.get("state", ""))
    except ApiError as exc:
        return _error_page(request, exc, form.get("state", ""))
    return await _confirm_page(
        request, platform, form.get("state", "")[:32], context, credential=form.get("id_token"),
        signed_in_as=person.email,
    )


async def _decide(request: Request, platform: Platform, context: RequestContext, *, approve: bool) -> HTMLResponse:
    form: dict[str, str] = {}
    try:
        form = await _form(request)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = form.get("csrf_token", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()) or not _same_origin(request, platform):
            raise Forbidden("This form was not sent from this page. Open the link from your terminal again.")
        credential = form.get("credential") or None
        if credential is not None:
            person = await google.verify_id_token(platform, credential)
            await device_google.spend(platform, person.nonce, form.get("user_code", ""))
            user, method = await identity.ensure_user(platform, person.email, name=person.name), "google"
        elif device_flow.local_owner_allowed(platform, client_ip(request)):
            user, method = await identity.ensure_user(platform, platform.settings.local_owner_email), "local-owner"
        else:
            raise Forbidden("Sign in first.")
        device = await device_flow.decide(
            platform, user["id"], form.get("user_code", ""), approve=approve, context=context, method=method
        )
    except ApiError as exc:
        return _error_page(request, exc, form.get("user_code", ""))
    return _page(request, view="done", approved=approve, device=device, email=user["email"])


@router.post("/device/approve")
async def approve(
    request: Request, platform: PlatformDep, context: RequestContext = Depends(request_context)
) -> HTMLResponse:
    return await _decide(request, platform, context, approve=True)


@router.post("/device/deny")
async def deny(
    request: Request, platform: PlatformDep, context: RequestContext = Depends(request_context)
) -> HTMLResponse:
    return await _decide(request, platform, context, approve=False)
