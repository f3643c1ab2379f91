"""Committed secrets, found with the rules of a well-kept scanner: Yelp's `detect-secrets` plugins.

Only its *pattern* plugins are used (keys with a recognisable shape: AWS, GitHub, Slack, Stripe,
private keys, …); the entropy and keyword heuristics are left out, because an action item must be
worth a user's attention and those flag every hash and test fixture. The plugins are imported by
name (not discovered by listing the package directory, which a Worker bundle may not allow), and
each `analyze_line` call is pure: no settings file, no network (verification is never asked for).

A hit never carries the secret itself: only the rule, the line, and a SHA-256 of the value (what
`detect-secrets` baselines store too), so a finding can say *which* secret without repeating it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any

# (module, class) of each detect-secrets plugin we use: those matching a documented key format.
PATTERN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("aws", "AWSKeyDetector"),
    ("artifactory", "ArtifactoryDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("basic_auth", "BasicAuthDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("npm", "NpmDetector"),
    ("openai", "OpenAIDetector"),
    ("private_key", "PrivateKeyDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)
MAX_LINE_CHARS = 4000  # minified files: a line longer than this is skipped, not scanned
MASK = "[redacted]"
# A line the pattern plugins could flag holds a long key-like run with a digit in it (keys are
# random: long identifiers such as `handle_payment_request` are not), a private key's armour, or a
# password in a URL: this spares the plugins (~40 µs a line) nearly every line of code.
_RUN = re.compile(r"[A-Za-z0-9+/_=.-]{16,}")
_ARMOUR_OR_URL_PASSWORD = re.compile(r"PRIVATE KEY|://[^\s/:@]+:[^\s/@]+@")


def _may_hold_a_secret(text: str) -> bool:
    if _ARMOUR_OR_URL_PASSWORD.search(text) is not None:
        return True
    return any(any(c.isdigit() for c in run) for run in _RUN.findall(text))


@dataclass(frozen=True, slots=True)
class SecretHit:
    rule: str          # the plugin's secret type, e.g. "AWS Access Key"
    line: int          # 1-based
    secret_sha256: str  # of the value, never the value


@lru_cache(maxsize=1)
def _plugins() -> tuple[Any, ...]:
    plugins = []
    for module, name in PATTERN_PLUGINS:
        plugins.append(getattr(import_module(f"detect_secrets.plugins.{module}"), name)())
    return tuple(plugins)


def scan_text(path: str, text: str) -> list[SecretHit]:
    """Every secret the pattern plugins find in `text` (the file at `path`), once per (rule, value)."""
    hits: dict[tuple[str, str], SecretHit] = {}
    plugins = _plugins()
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS or not line.strip():
            continue
        for plugin in plugins:
            for found in plugin.analyze_line(filename=path, line=line, line_number=number):
                value = found.secret_value or ""
                digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
                hits.setdefault((found.type, digest), SecretHit(found.type, number, digest))
    return sorted(hits.values(), key=lambda hit: (hit.line, hit.rule))


def mask_secrets(text: str, *, code: bool = False) -> str:
    """`text` with every value the pattern plugins flag replaced by `[redacted]`: for what is kept
    or shown beyond the file itself (the Atlas's signatures, descriptions and text index).

    `code`: `text` is code (a signature), where a value can only be a string literal, so text
    without a quote is left as it is unscanned."""
    if not text or (code and not any(quote in text for quote in "'\"`")) or not _may_hold_a_secret(text):
        return text
    values: set[str] = set()
    plugins = _plugins()
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS or not _may_hold_a_secret(line):
            continue
        for plugin in plugins:
            for found in plugin.analyze_line(filename="", line=line, line_number=number):
                if found.secret_value:
                    values.add(found.secret_value)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return text
