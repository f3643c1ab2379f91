"""The one family of errors services raise. `fastest.api.errors` turns each into problem+json.

A code is a stable snake_case string clients can branch on; the message is for people and never
carries secrets, SQL or stack traces. `fields` maps a field path to what is wrong with it.
"""

from __future__ import annotations

from typing import Any, Mapping


class ApiError(Exception):
    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or self.title
        if code is not None:
            self.code = code
        self.fields = dict(fields) if fields else None
        # Extra top-level members of the problem document (e.g. current_manifest_hash on a 409).
        self.extra = dict(extra) if extra else {}
        self.headers = dict(headers) if headers else {}
        super().__init__(self.message)


class InvalidJson(ApiError):
    status, code, title = 400, "invalid_json", "Malformed JSON"


class Unauthenticated(ApiError):
    status, code, title = 401, "unauthenticated", "Authentication required"

    def __init__(self, message: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="fastest"'})
        super().__init__(message, **kwargs)


class Forbidden(ApiError):
    status, code, title = 403, "forbidden", "Forbidden"


class ReauthenticationRequired(Forbidden):
    code, title = "reauthentication_required", "A fresh sign-in is required"


class NotFound(ApiError):
    status, code, title = 404, "not_found", "Not found"


class MethodNotAllowed(ApiError):
    status, code, title = 405, "method_not_allowed", "Method not allowed"


class Conflict(ApiError):
    status, code, title = 409, "conflict", "Conflict"


class Gone(ApiError):
    status, code, title = 410, "gone", "Gone"


class PreconditionFailed(ApiError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class LengthRequired(ApiError):
    status, code, title = 411, "length_required", "Length required"


class PayloadTooLarge(ApiError):
    status, code, title = 413, "payload_too_large", "Payload too large"


class ValidationFailed(ApiError):
    status, code, title = 422, "validation_failed", "Validation failed"


class RateLimited(ApiError):
    status, code, title = 429, "rate_limited", "Too many requests"


class Internal(ApiError):
    status, code, title = 500, "internal", "Internal error"


class Unavailable(ApiError):
    status, code, title = 503, "unavailable", "Service unavailable"


class AIRateLimited(ApiError):
    """The user's AI budget for the current window is spent. The problem
    carries `ai_rate_limit: {resets_at, used, limit}`."""

    status, code, title = 429, "ai_rate_limited", "AI budget exhausted"


class PlanLimitReached(ApiError):
    """A plan's limit would be passed. The problem carries `plan_limit: {plan, limit_name,
    limit, used, adding}` and `upgrade: {plans, checkout}`: the plans that allow more and the route
    that buys one."""

    status, code, title = 402, "plan_limit_reached", "Plan limit reached"


class PaymentProviderError(ApiError):
    """Paddle refused or failed a request we made (checkout, reconciliation). The message names
    Paddle's error code, never the API key."""

    status, code, title = 502, "payment_provider_error", "Payment provider error"
