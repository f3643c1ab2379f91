"""The deployed bundle holds the Worker entry, the app package and the Durable Object module, under
names that import, and nothing else from the repository.

`wrangler deploy --dry-run --outdir DIR` (offline) writes exactly the modules it would upload. Its
module root is `src/`, so `durable_objects/` only gets in through the `[build]` command, which copies
it to `python_modules/` (see wrangler.toml and durable_objects/_vendor.py). The second test imports
the entry from that output alone, in a fresh interpreter without site-packages' editable-install
hooks, with stand-ins for the runtime-only modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WRANGLER = REPO / "node_modules" / ".bin" / "wrangler"

pytestmark = [
    pytest.mark.wrangler,
    pytest.mark.skipif(not WRANGLER.exists(), reason="wrangler is not installed: run `npm ci`"),
]

# Top-level entries of the repository that must never be uploaded.
NOT_UPLOADED = {
    "tests", "migrations", "node_modules", "bench", ".venv", ".ci", ".git", "src", "durable_objects",
    "wrangler.toml", "pyproject.toml", "package.json", "package-lock.json",
}
# wrangler writes this note into --outdir; it is not a module.
OUTDIR_NOTE = "README.md"


def wrangler_env(home: Path) -> dict[str, str]:
    """No telemetry, no prompts, and wrangler's config/state under a temp home, not the repo's."""
    return {
        **os.environ,
        "CI": "true",
        "WRANGLER_SEND_METRICS": "false",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "NO_COLOR": "1",
    }


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the dry-run once for this module; return its output directory."""
    work = tmp_path_factory.mktemp("wrangler-bundle")
    outdir = work / "out"
    done = subprocess.run(
        ["npx", "--no", "wrangler", "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=REPO,
        env=wrangler_env(work / "home"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"wrangler dry-run failed:\n{done.stdout}\n{done.stderr}"
    return outdir


def bundled_files(outdir: Path) -> set[str]:
    return {
        p.relative_to(outdir).as_posix()
        for p in outdir.rglob("*")
        if p.is_file() and p.relative_to(outdir).as_posix() != OUTDIR_NOTE
    }


def test_bundle_holds_entry_app_and_durable_objects(bundle: Path) -> None:
    files = bundled_files(bundle)

    assert "entry.py" in files
    assert {"fastest/__init__.py", "fastest/app.py", "fastest/ports.py"} <= files
    assert {"python_modules/durable_objects/__init__.py", "python_modules/durable_objects/cloudflare.py"} <= files

    # Every file of src/ is there under its path from src/: modules, and templates too (a file type
    # no wrangler rule matches would be dropped silently; add a `[[rules]]` entry for it) ...
    source_files = {
        p.relative_to(REPO / "src").as_posix()
        for p in (REPO / "src").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert source_files <= files, sorted(source_files - files)
    # ... and every module of durable_objects/ under python_modules/, except the build helper.
    do_modules = {
        "python_modules/durable_objects/" + p.relative_to(REPO / "durable_objects").as_posix()
        for p in (REPO / "durable_objects").rglob("*.py")
        if "__pycache__" not in p.parts and p.name != "_vendor.py"
    }
    assert do_modules <= files, sorted(do_modules - files)
    assert "python_modules/durable_objects/_vendor.py" not in files


def test_bundle_holds_nothing_else_from_the_repository(bundle: Path) -> None:
    files = bundled_files(bundle)
    for name in files:
        parts = name.split("/")
        assert name == "entry.py" or parts[0] in {"fastest", "python_modules"}, name
        assert parts[0] not in NOT_UPLOADED, name
        if parts[0] == "python_modules":
            # Vendored packages only (pywrangler's dependencies, durable_objects): not repo folders.
            assert parts[1] not in NOT_UPLOADED - {"durable_objects"}, name
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name


IMPORT_CHECK = textwrap.dedent(
    """
    import importlib.abc, importlib.machinery, json, sys, types

    outdir, vendored, site_packages = sys.argv[1:4]
    repo = sys.argv[4]
    # The bundle first, as on Workers; then the third-party packages (pywrangler vendors those into
    # python_modules/ for a real deploy); then the standard library. Not the repo, not '' (cwd).
    stdlib = [p for p in sys.path if p and not p.startswith(repo)]
    sys.path[:] = [outdir, vendored, site_packages, *stdlib]

    # Runtime-only modules. `workers` provides the base classes the entry subclasses at import time;
    # `js` and `pyodide` must only be imported lazily, inside handlers, so they are recorded.
    workers = types.ModuleType("workers")
    class WorkerEntrypoint:
        def __init__(self, ctx=None, env=None):
            self.ctx, self.env = ctx, env
    class DurableObject:
        def __init__(self, ctx=None, env=None):
            self.ctx, self.env = ctx, env
    workers.WorkerEntrypoint, workers.DurableObject = WorkerEntrypoint, DurableObject
    sys.modules["workers"] = workers

    eager = []
    class RuntimeOnly(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("js", "pyodide"):
                eager.append(name)
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        def create_module(self, spec):
            return types.ModuleType(spec.name)
        def exec_module(self, module):
            pass
    sys.meta_path.insert(0, RuntimeOnly())

    import entry
    import fastest.app
    import fastest.platform.cloudflare
    import durable_objects
    import durable_objects.cloudflare
    app = entry._asgi_app()  # builds the FastAPI app from the bundle (no request, no platform yet)

    print(json.dumps({
        "default": issubclass(entry.Default, WorkerEntrypoint),
        "session": issubclass(entry.ConversationSession, DurableObject),
        "session_module": entry.ConversationSession.__module__,
        "app_type": type(app).__name__,
        "files": {
            "entry": entry.__file__,
            "fastest.app": fastest.app.__file__,
            "fastest.platform.cloudflare": fastest.platform.cloudflare.__file__,
            "durable_objects": durable_objects.__file__,
            "durable_objects.cloudflare": durable_objects.cloudflare.__file__,
        },
        "eager_runtime_imports": eager,
    }))
    """
)


def test_bundle_names_import(bundle: Path, tmp_path: Path) -> None:
    outdir = bundle.resolve()
    vendored = outdir / "python_modules"
    done = subprocess.run(
        [
            sys.executable, "-S", "-c", IMPORT_CHECK,
            str(outdir), str(vendored), sysconfig.get_paths()["purelib"], str(REPO),
        ],
        cwd=tmp_path,  # an empty directory: nothing importable by accident
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["default"] and report["session"]
    assert report["session_module"] == "durable_objects.cloudflare"
    assert report["app_type"] == "FastAPI"
    files = {name: Path(path) for name, path in report["files"].items()}
    for name in ("entry", "fastest.app", "fastest.platform.cloudflare"):
        assert files[name].is_relative_to(outdir) and not files[name].is_relative_to(vendored), (name, files[name])
    for name in ("durable_objects", "durable_objects.cloudflare"):
        assert files[name].is_relative_to(vendored), (name, files[name])
    assert report["eager_runtime_imports"] == [], "js/pyodide must be imported inside handlers only"
