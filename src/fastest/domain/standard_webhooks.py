"""Standard Webhooks signing (https://www.standardwebhooks.com/, the scheme Svix uses).

A delivery carries three headers: `webhook-id` (the message id, the same on every retry: the
receiver's idempotency key), `webhook-timestamp` (the attempt's Unix seconds) and
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed by the secret's bytes.
The secret is shown to the user as `whsec_<base64 of the bytes>`, the form the libraries take.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24  # Svix's size; the spec asks for 24 to 64 bytes


def encode_secret(raw: bytes) -> str:
    if not 24 <= len(raw) <= 64:
        raise ValueError("a signing secret is 24 to 64 bytes")
    return SECRET_PREFIX + base64.b64encode(raw).decode("ascii")


def secret_bytes(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a whsec_ secret")
    return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    signed = message_id.encode("utf-8") + b"." + str(int(timestamp)).encode("ascii") + b"." + body
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp)),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "user-agent": "Fastest-Webhooks/1",
    }
