"""`fastest jobs list`: every background job, when it runs (cron, as in wrangler.toml) and what it does."""

from __future__ import annotations


def list_jobs() -> int:
    from fastest.services.operations import jobs

    rows = jobs.describe()
    width_name = max(len(r[0]) for r in rows)
    width_cron = max(len(r[1]) for r in rows)
    print(f"{'NAME'.ljust(width_name)}  {'SCHEDULE'.ljust(width_cron)}  DESCRIPTION")
    for name, cron, description in rows:
        print(f"{name.ljust(width_name)}  {cron.ljust(width_cron)}  {description}")
    return 0
