"""The deployment pipeline's rules, without I/O: which status may follow which, what each move is
called in the project's event log, and the signed tokens the pipeline's callback presents.

Status moves forward only: `queued → building → deploying → ready | failed | canceled` (steps may be
skipped: a deployment of ready-made files goes `queued → deploying`). A terminal status never changes.

A callback token is `dct.<deployment id>.<n>.<mac>`: the HMAC-SHA256, under the server's key, of the
deployment id and the callback's number `n`. The server accepts a token only when `n` is the number
it expects next and then expects `n + 1`, handing out that token in its answer: a forged token fails
the MAC, a replayed one names a number already spent, and neither changes anything.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import NamedTuple

STATUSES = ("queued", "building", "deploying", "ready", "failed", "canceled")
TERMINAL = frozenset({"ready", "failed", "canceled"})
_RANK = {"queued": 0, "building": 1, "deploying": 2, "ready": 3, "failed": 3, "canceled": 3}
TOKEN_PREFIX = "dct"


class InvalidTransition(ValueError):
    """A move backwards, sideways, or out of a terminal status."""


def transition(current: str, target: str) -> list[str]:
    """The project event types that record the move `current → target` (in order), or
    InvalidTransition. Staying put is not a transition (the caller appends logs instead)."""
    if current not in _RANK or target not in _RANK:
        raise InvalidTransition(f"unknown status {target if current in _RANK else current!r}")
    if current in TERMINAL:
        raise InvalidTransition(f"the deployment is already {current}")
    if _RANK[target] <= _RANK[current]:
        raise InvalidTransition(f"status cannot go from {current} to {target}")
    if target == "building":
        return ["build.started"]
    if target == "deploying":
        return ["build.completed"] if current == "building" else []
    if target == "ready":
        return ["deployment.ready"]
    if target == "failed":
        return ["build.failed", "deployment.failed"] if current == "building" else ["deployment.failed"]
    return ["deployment.canceled"]


def is_forward(current: str, target: str) -> bool:
    try:
        transition(current, target)
    except InvalidTransition:
        return False
    return True


class CallbackToken(NamedTuple):
    deployment_id: str
    number: int


def _mac(key: bytes, deployment_id: str, number: int) -> str:
    digest = hmac.new(key, f"deploy-callback\x00{deployment_id}\x00{number}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_callback(key: bytes, deployment_id: str, number: int) -> str:
    return f"{TOKEN_PREFIX}.{deployment_id}.{number}.{_mac(key, deployment_id, number)}"


def verify_callback(key: bytes, token: str) -> CallbackToken | None:
    """The token's deployment and number if its MAC is right, else None (never raises)."""
    parts = token.split(".")
    if len(parts) != 4 or parts[0] != TOKEN_PREFIX or not parts[2].isdigit() or len(parts[2]) > 12:
        return None
    deployment_id, number = parts[1], int(parts[2])
    if not hmac.compare_digest(parts[3], _mac(key, deployment_id, number)):
        return None
    return CallbackToken(deployment_id, number)


def slug_of(deployment_id: str) -> str:
    """A DNS label for the deployment (`dep_01J…` → `dep-01j…`): lowercase letters, digits, `-`."""
    return deployment_id.lower().replace("_", "-")


def project_slug(name: str, project_id: str) -> str:
    """A DNS label (≤ 63) for a project: its name's letters and digits, then its id's tail."""
    base = "".join(c if c.isascii() and c.isalnum() else "-" for c in name.lower()).strip("-")
    base = "-".join(part for part in base.split("-") if part)[:40] or "project"
    return f"{base}-{project_id[-8:].lower()}"


def is_served(path: str) -> bool:
    """Whether a file of a deployment's output is published. Hidden files and directories (`.env`,
    `.git/…`, `.fastestignore`) are not: a plain site deploys its folder as is, and a secret kept
    beside it must not become a URL. `.well-known/` is the exception the web needs."""
    return not any(part.startswith(".") and part != ".well-known" for part in path.split("/"))
