"""Billing request and response bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from fastest.schemas.common import RequestModel, ResponseModel

PlanName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]
Email = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")]


class CheckoutCreate(RequestModel):
    plan: PlanName = Field(description="The plan to buy (a name from `GET /v1/billing/plans`).")
    email: Email | None = Field(
        default=None, description="Anonymous checkouts only: who Paddle bills. Signed in, your account's email is used."
    )


class PlanLimits(ResponseModel):
    storage_bytes: int | None
    ai_budget_calls: int | None
    deployments: int | None
    conversations: int | None


class PlanView(ResponseModel):
    name: str
    price_id: str | None = Field(description="The Paddle price id (null: free, or not purchasable here).")
    purchasable: bool
    limits: PlanLimits = Field(description="Per-plan limits; null is unlimited.")


class PlanList(ResponseModel):
    plans: list[PlanView]
    paddle_configured: bool


class CheckoutCreated(ResponseModel):
    checkout_id: str
    checkout_url: str = Field(description="Paddle's hosted checkout for the transaction.")
    plan: str
    status: str


class CheckoutStatus(ResponseModel):
    checkout_id: str
    status: str = Field(description="`creating`, `open`, `completed` or `failed`.")
    plan: str


class SubscriptionSummary(ResponseModel):
    id: str
    plan: str
    status: str
    current_period_end: str | None


class Entitlements(ResponseModel):
    limits: PlanLimits
    usage: dict[str, int]


class SubscriptionView(ResponseModel):
    plan: str
    status: str
    current_period_end: str | None
    subscription_id: str | None
    entitlements: Entitlements
    subscriptions: list[SubscriptionSummary]


class WebhookReceived(ResponseModel):
    received: bool
    duplicate: bool
    outcome: str = Field(description="`applied`, `stale` (older than the state held), `duplicate`, `ignored` or `unmatched`.")
