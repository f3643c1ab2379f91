"""The layering of DESIGN.md §2 is checked by a machine: the `[tool.importlinter]` contracts of
pyproject.toml (layers from the edges down to the leaves, the two platforms independent, only the
Cloudflare platform and the Durable Object's Cloudflare face importing `js`/`workers`) must hold.

A broken contract prints the offending import chains; fix the import (move what is needed down, or
the caller up), don't add an exception to the contract.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def test_the_import_contracts_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_runtime_contract_sees_lazy_imports() -> None:
    """The `js`/`workers` contract is not vacuous: imports inside functions (how the Cloudflare
    adapters reach the runtime) are in the graph it checks."""
    graph = grimp.build_graph("fastest", "durable_objects", include_external_packages=True, cache_dir=None)
    importers = graph.find_modules_that_directly_import("workers") | graph.find_modules_that_directly_import("js")
    assert importers and all(m.startswith(("fastest.platform.cloudflare", "durable_objects.cloudflare")) for m in importers)
    assert "fastest.platform.cloudflare.interop" in graph.find_modules_that_directly_import("workers")
