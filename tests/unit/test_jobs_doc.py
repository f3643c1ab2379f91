"""docs/jobs.md lists every background job with the schedule it really runs on: its table is compared
with what `fastest jobs list` prints from the schedule itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

JOBS_DOC = Path(__file__).resolve().parents[2] / "docs" / "jobs.md"
ROW = re.compile(r"^\| `([a-z-]+)` \| `([^`]+)` ", re.MULTILINE)


def scheduled() -> dict[str, str]:
    """job name → its cron strings, as `fastest jobs list` prints them."""
    done = subprocess.run([sys.executable, "-m", "fastest.cli.main", "jobs", "list"], capture_output=True, text=True,
                          check=True, timeout=60)
    rows = {}
    for line in done.stdout.splitlines()[1:]:
        name, rest = line.split(None, 1)
        rows[name] = re.split(r"\s{2,}", rest.strip(), maxsplit=1)[0]
    return rows


def test_the_jobs_table_is_the_schedule():
    documented = {name: cron for name, cron in ROW.findall(JOBS_DOC.read_text(encoding="utf-8"))}
    assert documented == scheduled()
