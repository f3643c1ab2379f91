"""Credentials never reach the local server's log.

uvicorn logs every request line, WebSocket handshakes included, with its query string, and a
WebSocket or an EventSource passes its bearer token as `?token=` (the documented way: neither can
send an `Authorization` header from a browser). This filter rewrites each record of uvicorn's
loggers before any handler formats it: the values of credential query parameters, and anything
shaped like one of our tokens, become `[redacted]`. Failed attempts are redacted the same way.
"""

from __future__ import annotations

import logging
import re

# Query parameters that carry a credential, and our token's shape wherever else it turns up.
_QUERY_CREDENTIAL = re.compile(r"(?i)([?&](?:token|access_token|device_code|code|credential|id_token)=)[^&\s\"']*")
_TOKEN = re.compile(r"\bfst_[A-Za-z0-9_-]+")
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def redact(text: str) -> str:
    return _TOKEN.sub("fst_[redacted]", _QUERY_CREDENTIAL.sub(r"\1[redacted]", text))


class RedactCredentials(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {key: redact(value) if isinstance(value, str) else value for key, value in record.args.items()}
        return True


def install() -> None:
    """Redact on uvicorn's loggers (call after uvicorn configured logging: it replaces handlers, not filters)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactCredentials) for f in logger.filters):
            logger.addFilter(RedactCredentials())
