"""Billing routes: plans, checkout, status, the user's
subscription, and Paddle's webhook."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from fastest.api.deps import (
    PlatformDep,
    authorize,
    limit_by_ip,
    optional_bearer,
    public,
    request_context,
)
from fastest.api.idempotency import HEADER, respond_once
from fastest.api.path_ids import CheckoutId
from fastest.errors import ValidationFailed
from fastest.schemas.billing import (
    CheckoutCreate,
    CheckoutCreated,
    CheckoutStatus,
    PlanList,
    SubscriptionView,
    WebhookReceived,
)
from fastest.schemas.common import problem_responses
from fastest.services import billing, identity
from fastest.services.identity.accounts import Principal
from fastest.services.identity.audit import RequestContext
from fastest.services.safeguards import idempotency

router = APIRouter(tags=["billing"], responses=problem_responses(400, 422, 429))



@router.get(
    "/v1/billing/plans",
    response_model=PlanList,
    summary="Plans, their Paddle price ids and limits (public)",
    openapi_extra=public("the public commerce edge: anyone may see the plans"),
)
async def list_plans(request: Request, platform: PlatformDep):
    await limit_by_ip(request, platform)
    return billing.plans_view(platform)


@router.post(
    "/v1/billing/checkout",
    status_code=201,
    response_model=CheckoutCreated,
    responses=problem_responses(401, 403, 409, 502, 503),
    summary="Start a Paddle checkout for a plan (signed in, or anonymously with an email)",
    openapi_extra=public("the public commerce edge: anonymous with an email, or signed in with `billing`"),
)
async def create_checkout(
    *,
    body: CheckoutCreate,
    request: Request,
    token: str | None = Depends(optional_bearer),
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    if token is not None:
        def report(decision) -> None:
            request.state.rate_limit = ("default", decision)

        principal = await identity.authorize(platform, token, "billing", on_rate_decision=report)
        if body.email is not None:
            raise ValidationFailed("Signed in, the checkout is billed to your account's email; leave `email` out.",
                                   fields={"email": "only for anonymous checkouts"})

        async def produce():
            return 201, await billing.checkout_for_user(platform, principal.user_id, body.plan, context)

        return await respond_once(request, platform, principal.user_id, produce)
    await limit_by_ip(request, platform)
    if body.email is None:
        raise ValidationFailed("Sign in, or give the `email` Paddle bills.", fields={"email": "required when not signed in"})
    fingerprint = idempotency.fingerprint(request.method, request.url.path, await request.body())
    answer, replayed = await billing.checkout_anonymous(
        platform, body.plan, body.email, context, idempotency_key=request.headers.get(HEADER), fingerprint=fingerprint
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(jsonable_encoder(answer), status_code=201, headers=headers)


@router.get(
    "/v1/billing/status/{checkout_id}",
    response_model=CheckoutStatus,
    responses=problem_responses(404),
    summary="A checkout's status and plan (public; nothing personal)",
    openapi_extra=public("the buyer may be anonymous; the answer holds nothing personal"),
)
async def checkout_status(request: Request, checkout_id: CheckoutId, platform: PlatformDep):
    await limit_by_ip(request, platform)
    return await billing.checkout_status(platform, checkout_id)


@router.get(
    "/v1/billing/subscription",
    response_model=SubscriptionView,
    responses=problem_responses(401, 403),
    summary="Your plan, its status and period, limits and usage",
)
async def get_subscription(
    *,
    principal: Principal = Depends(authorize("billing")), platform: PlatformDep
):
    return await billing.subscription_view(platform, principal.user_id)


@router.post(
    "/v1/webhooks/paddle",
    response_model=WebhookReceived,
    summary="Paddle's notifications (signed with Paddle-Signature; verified before parsing)",
    openapi_extra={
        **public("Paddle calls it, authenticated by Paddle-Signature"),
        "requestBody": {
            "required": True,
            "description": "A Paddle event (`event_id`, `event_type`, `occurred_at`, `notification_id`, `data`), "
                           "signed in the `Paddle-Signature` header.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def paddle_webhook(
    request: Request,
    platform: PlatformDep,
    context: RequestContext = Depends(request_context),
):
    raw = await request.body()
    return await billing.receive_webhook(platform, raw, request.headers.get("paddle-signature"), context)
