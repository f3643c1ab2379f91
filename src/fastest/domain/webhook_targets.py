"""Where a webhook may be sent (SSRF guard), and when a failed delivery is tried again.

The address rules follow Svix's sender and the `ipaddress` properties: a target must resolve only to
public unicast addresses. Refused: private (RFC 1918, IPv6 ULA fc00::/7), loopback, link-local
(169.254/16 — cloud metadata — and fe80::/10), CGNAT 100.64/10, multicast, unspecified, reserved
and documentation ranges, and IPv4 addresses hidden in IPv6 forms (IPv4-mapped ::ffff:a.b.c.d,
IPv4-compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo), which are judged by the
IPv4 address they carry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048

# The Standard Webhooks / Svix retry schedule: the delay before attempt 2, 3, … after a failure.
# Attempt 1 is immediate; after the last entry the message is given up (marked failed).
RETRY_DELAYS_SECONDS: tuple[int, ...] = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
JITTER = 0.1  # ± this share of each delay, so a failing receiver is not hit by a synchronized herd

# An endpoint whose attempts have all failed for this long is disabled, with a reason.
DISABLE_AFTER_SECONDS = 3 * 24 * 3600

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_BENCHMARK = ipaddress.ip_network("198.18.0.0/15")


class TargetRefused(ValueError):
    """The URL or one of its addresses is not a place webhooks may go. The message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    scheme: str
    host: str  # lower-case; IPv6 without brackets
    port: int
    loopback_http: bool  # the operator-allowed plain-HTTP-to-loopback exception


def retry_delay(attempts_made: int, random_unit: float) -> int | None:
    """Seconds until the next attempt after `attempts_made` failed ones (None: give up).
    `random_unit` in [0, 1) spreads it by ±JITTER."""
    if attempts_made < 1 or attempts_made > len(RETRY_DELAYS_SECONDS):
        return None
    base = RETRY_DELAYS_SECONDS[attempts_made - 1]
    return max(1, round(base * (1 - JITTER + 2 * JITTER * random_unit)))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the transition forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.teredo is not None:
        return address.teredo[1]
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # IPv4-compatible ::a.b.c.d (deprecated, still routable by some stacks)
        return ipaddress.IPv4Address(packed)
    return None


def address_refusal(text: str) -> str | None:
    """Why this address may not be a webhook target, or None when it is public unicast."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return "not an IP address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            reason = address_refusal(str(inner))
            return f"{reason} (in an IPv6 form)" if reason else None
        if address in ipaddress.ip_network("fc00::/7"):
            return "a private (unique local) address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if isinstance(address, ipaddress.IPv4Address) and (address in _CGNAT or address in _BENCHMARK):
        return "a shared (carrier-grade NAT) or benchmarking address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def is_loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def parse_target(url: str, *, allow_loopback_http: bool) -> Target:
    """Check the URL itself (not its DNS): HTTPS only, no credentials, a real host; plain HTTP only
    to a loopback host when the operator allows it (`FASTEST_WEBHOOKS_ALLOW_LOOPBACK_HTTP`, local
    runtime only). An IP-literal host is judged here; a name is judged when resolved."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise TargetRefused("The URL contains whitespace or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise TargetRefused("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL may not carry credentials.")
    if parts.fragment:
        raise TargetRefused("The URL may not have a fragment.")
    loopback_name = host == "localhost" or host.endswith(".localhost")
    literal = is_ip_literal(host)
    loopback = loopback_name or (literal and is_loopback(host))
    if scheme == "http":
        if not (allow_loopback_http and loopback):
            raise TargetRefused("Webhook URLs must use https.")
        return Target(url=url, scheme="http", host=host, port=port or 80, loopback_http=True)
    if scheme != "https":
        raise TargetRefused("Webhook URLs must use https.")
    if loopback_name:
        raise TargetRefused("The host is a loopback name.")
    if literal:
        reason = address_refusal(host)
        if reason:
            raise TargetRefused(f"The host is {reason}.")
    return Target(url=url, scheme="https", host=host, port=port or 443, loopback_http=False)


def check_addresses(target: Target, addresses: list[str]) -> str:
    """The address to connect to, after checking every address the host resolved to: one refused
    address refuses the target (a name that also points inside is not trusted at all)."""
    if not addresses:
        raise TargetRefused(f"The host {target.host} did not resolve.")
    for address in addresses:
        if target.loopback_http:
            if not is_loopback(address):
                raise TargetRefused(f"{target.host} resolves to {address}, not a loopback address.")
            continue
        reason = address_refusal(address)
        if reason:
            raise TargetRefused(f"{target.host} resolves to {reason}.")
    return addresses[0]


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        return False
