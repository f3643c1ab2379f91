"""Copy this package into `python_modules/` so the Worker bundle can import it.

Why: a Python Worker's module root is `dirname(main)` = `src/`, so wrangler uploads nothing from the
top-level `durable_objects/` package. The one other directory wrangler uploads is a project-root
`python_modules/` (where `pywrangler sync` vendors dependencies); its files become
`python_modules/...` modules, and that directory is on the Worker's `sys.path`. Symlinks are not
followed, so the package is copied.

wrangler runs this as the `[build] command` (wrangler.toml) before every bundle, `--dry-run` included,
and `pywrangler deploy` syncs dependencies before it calls wrangler, so the copy is never wiped
between the two. Run from anywhere: paths are taken from this file's location.

    python3 durable_objects/_vendor.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE.parent
TARGET = PROJECT_ROOT / "python_modules" / PACKAGE.name

# Never shipped: bytecode, and this build helper itself.
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", Path(__file__).name)


def vendor(source: Path = PACKAGE, target: Path = TARGET) -> Path:
    """Replace `target` with a fresh copy of `source` (a stale module must not survive a rename)."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, ignore=IGNORE)
    return target


def main() -> int:
    target = vendor()
    count = sum(1 for _ in target.rglob("*.py"))
    print(f"vendored {count} module(s) of {PACKAGE.name}/ into {target.relative_to(PROJECT_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
