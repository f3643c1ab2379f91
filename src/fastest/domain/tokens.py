"""Bearer tokens and abilities.

A token is `fst_` + 36 base62 characters of entropy + a 6-character base62 CRC32 of them. The
checksum lets us (and secret scanners) reject a mistyped or made-up token without a database read;
only the SHA-256 of a token is ever stored.
"""

from __future__ import annotations

import zlib

PREFIX = "fst_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_CHARS = 36
CHECKSUM_CHARS = 6
ENTROPY_BYTES = 27  # 216 bits, fits in 36 base62 characters

ABILITIES = (
    "projects:read",
    "projects:write",
    "sync",
    "conversations",
    "deploy",
    "secrets:read",
    "keys:write",
    "billing",
)
# Sign-in tokens get everything but secret reveals unless asked for (docs/api/README.md, abilities).
DEFAULT_ABILITIES = tuple(a for a in ABILITIES if a != "secrets:read")


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        chars.append(_BASE62[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_CHARS)


def format_token(entropy: bytes) -> str:
    if len(entropy) != ENTROPY_BYTES:
        raise ValueError(f"a token needs {ENTROPY_BYTES} bytes of entropy")
    body = _base62(int.from_bytes(entropy, "big"), BODY_CHARS)
    return PREFIX + body + _checksum(body)


def is_well_formed(token: str) -> bool:
    """Right prefix, length, alphabet and checksum: the checks that need no database."""
    if not token.startswith(PREFIX) or len(token) != len(PREFIX) + BODY_CHARS + CHECKSUM_CHARS:
        return False
    rest = token[len(PREFIX) :]
    if any(c not in _BASE62 for c in rest):
        return False
    return _checksum(rest[:BODY_CHARS]) == rest[BODY_CHARS:]


def token_hash(token: str) -> str:
    import hashlib  # here, not at the top: `fastest --help` reads the abilities above, and starts fast

    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_abilities(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate and de-duplicate, keeping the canonical order. Unknown ability → ValueError."""
    wanted = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item not in ABILITIES:
                raise ValueError(f"unknown ability {item!r}; known: {', '.join(ABILITIES)}")
            wanted.add(item)
    return tuple(a for a in ABILITIES if a in wanted)
