"""Opaque, type-prefixed, time-sortable identifiers (`prj_01JD…`), ULID-shaped.

48 bits of milliseconds then 80 bits of entropy, in Crockford base32: ids sort by creation time as
plain strings, which keeps keyset pagination and "latest first" queries simple.
"""

from __future__ import annotations

# datetime is imported where a timestamp is handled: `fastest push` makes its snapshot's id here and
# would otherwise load it for nothing (~2% of the command's start-up).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from datetime import datetime

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ENTROPY_BYTES = 10

PREFIXES = frozenset(
    {"usr", "tok", "prj", "wsp", "snp", "evt", "env", "req", "drf", "cnv", "dep", "act", "run", "key",
     "aud", "dev",  # audit events, device codes
     "chk",  # billing checkouts
     "syp", "syn", "snu",  # sync previews, sync runs, sync undos
     "msg", "trn", "que",  # conversation messages, turns, questions
     "crd", "res"}  # provider credentials, deployment resources (deployments use "dep")
)
PREFIXES = PREFIXES | {"dgm", "nxs", "dcs"}  # Atlas diagrams, next steps, decisions
PREFIXES |= {"whk", "whd", "tst"}  # integration webhook endpoints, delivery attempts, test events


def make_id(prefix: str, millis: int, entropy: bytes) -> str:
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    if len(entropy) != ENTROPY_BYTES or not 0 <= millis < 2**48:
        raise ValueError("an id needs 48 bits of time and 80 bits of entropy")
    value = (millis << 80) | int.from_bytes(entropy, "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def has_prefix(value: str, prefix: str) -> bool:
    """A cheap shape check before a lookup: the right prefix and 26 base32 characters."""
    head, sep, body = value.partition("_")
    return head == prefix and sep == "_" and len(body) == 26 and all(c in _CROCKFORD for c in body)


def millis_of(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def iso(moment: datetime) -> str:
    """ISO-8601 UTC with milliseconds and `Z`: the one timestamp format of the API and the database."""
    from datetime import timezone

    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))
