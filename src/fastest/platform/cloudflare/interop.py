"""The JavaScript boundary, in one place: small conversions the adapters use on binding results.

How values cross on Python Workers (workers-runtime-sdk, compatibility date ≥ 2026-04-21):

- **Arguments** go in as plain Python values. `WorkerEntrypoint`/`DurableObject` wrap `env`, and the
  wrapped D1/R2/KV/DO bindings convert arguments themselves (`None` → JS `null`, `bytes` →
  `Uint8Array`, dicts → objects); keyword arguments become the trailing options object of the JS
  call (`bucket.list(prefix="a/")` → `list({prefix: "a/"})`). Adapters therefore never build JS
  objects for bindings (only the Vault does, for WebCrypto, which is not a binding).
- **Results** arrive mostly converted already (plain objects as dicts, arrays as lists, `null` as
  `None`), but not always: class instances (R2 objects, streams, Dates, typed arrays) stay proxies.
  `from_js` and friends accept either form, so the adapters are unit-tested with plain Python fakes
  shaped like the documented results and run unchanged on the real runtime.

Nothing here imports `js` or `pyodide` at module level, so the package imports under CPython.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

_MISSING = object()


def _js_null() -> Any:
    """Pyodide's JS `null` sentinel, or a private object under CPython (where it cannot occur)."""
    try:
        from pyodide.ffi import jsnull  # type: ignore[import-not-found]
    except ImportError:
        return _MISSING
    return jsnull


def is_null(value: Any) -> bool:
    """JS `null` and `undefined` both mean "absent" to the adapters."""
    return value is None or value is _js_null()


def from_js(value: Any) -> Any:
    """A plain Python value (dict/list/str/number/bytes/None) from a converted or proxied JS value.

    Plain JS objects, Maps, arrays and typed arrays are converted; other class instances (an R2
    object, a stream) are returned as they are, for `field` to read.
    """
    if is_null(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): from_js(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_js(v) for v in value]
    if isinstance(value, (str, bytes, bool, int, float, datetime)):
        return value
    if isinstance(value, memoryview):
        return bytes(value)
    to_py = getattr(value, "to_py", None)
    if callable(to_py):  # a JsProxy
        converted = to_py()
        # Recurse only into what became plain data; an unconvertible instance comes back as a
        # (possibly re-wrapped) proxy and is returned unchanged.
        if converted is None or isinstance(converted, (Mapping, list, tuple, str, bytes, int, float)):
            return from_js(converted)
        if isinstance(converted, memoryview):
            return bytes(converted)
    return value


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` for dict-shaped results, `obj.name` for proxies; absent or null → `default`."""
    if isinstance(obj, Mapping):
        value = obj.get(name, default)
    else:
        value = getattr(obj, name, default)
    return default if is_null(value) else value


def to_bytes(value: Any) -> bytes:
    """Bytes from whatever carries them: bytes/memoryview, a JS buffer proxy, or a list of ints
    (how D1 returns a BLOB column)."""
    if is_null(value):
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return bytes(value)
    to_bytes_method = getattr(value, "to_bytes", None)
    if callable(to_bytes_method):  # JsBuffer: ArrayBuffer / Uint8Array proxy
        return bytes(to_bytes_method())
    to_py = getattr(value, "to_py", None)
    if callable(to_py):
        return to_bytes(to_py())
    raise TypeError(f"cannot read bytes from {type(value).__name__}")


def to_datetime(value: Any) -> datetime:
    """A timezone-aware UTC datetime from a JS Date proxy, a (naive UTC) datetime, epoch
    milliseconds, or an ISO-8601 string."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    get_time = getattr(value, "getTime", None)
    if callable(get_time):  # JS Date
        value = get_time()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")))
    raise TypeError(f"cannot read a time from {type(value).__name__}")


def to_str_dict(value: Any) -> dict[str, str]:
    """String metadata (R2 customMetadata, headers) as a plain dict."""
    converted = from_js(value)
    if not converted:
        return {}
    if isinstance(converted, Mapping):
        return {str(k): str(v) for k, v in converted.items()}
    return {str(k): str(v) for k, v in converted}  # an iterable of pairs (JS Headers)


def error_message(exc: BaseException) -> str:
    """The message of a JS error surfaced as a Python exception (`JsException.message`) or of any
    other exception."""
    message = getattr(exc, "message", None)
    return str(message) if isinstance(message, str) and message else str(exc)


def workers_response(body: Any, status: int, headers: dict[str, str]) -> Any:
    """A `workers.Response` (the runtime's), for the answers the Worker's edges build themselves."""
    from workers import Response  # runtime-only

    return Response(body, status=status, headers=headers)
