"""How secrets are shown in lists: never whole, never enough to be useful to someone else."""

from __future__ import annotations

SECRET_MASK = "••••••••"


def mask_secret(value: str | None = None, *, visible: int = 0) -> str:
    """A fixed-width mask, optionally followed by the last `visible` characters.

    The last characters are shown only for values long enough that they give nothing away
    (at least 3× what is shown), so short secrets are masked entirely.
    """
    if visible and value and len(value) >= 3 * visible:
        return SECRET_MASK + value[-visible:]
    return SECRET_MASK
