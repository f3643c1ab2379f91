"""Bundle a JavaScript/TypeScript Worker the way `wrangler deploy` does: esbuild (the npm package
wrangler itself runs), with wrangler's build options, into one ES module named after the entry
(`src/index.ts` → `index.js`). Runs where builds run (the CLI's machine; never on the Worker).

The options are wrangler's for a deploy: bundle, ES module format, target es2024, names kept (unless
the project's `keep_names = false`), minified only when it says `minify = true`, the `workerd`,
`worker` and `browser` export conditions, `process.env.NODE_ENV` defined as "production", `.js`
files read as JSX, a source map beside the bundle (only its `sourceMappingURL` line is uploaded),
and `cloudflare:*` imports left to the runtime. For the same project and esbuild version the bundle is
byte-identical to wrangler's. Differences: with `nodejs_compat`, Node built-ins are left to the
runtime (wrangler also injects polyfills for a few globals), and imported `.wasm`/`.txt`/`.bin`
files are not separate modules.

esbuild is found as `FASTEST_ESBUILD`, else the project's `node_modules/.bin/esbuild` (wrangler
brings it), else `esbuild` on the PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from fastest.domain import worker_modules

TIMEOUT_SECONDS = 300
NODE_ENV = '"production"'


class BundleError(Exception):
    """The Worker could not be bundled (no esbuild, or esbuild failed): the message says why."""


def find_esbuild(project: Path, env: Mapping[str, str]) -> str:
    configured = env.get("FASTEST_ESBUILD")
    if configured:
        return configured
    local = project / "node_modules" / ".bin" / "esbuild"
    if local.exists():
        return str(local)
    found = shutil.which("esbuild")
    if found:
        return found
    raise BundleError("esbuild was not found: install it in the project (`npm install --save-dev esbuild`; "
                      "wrangler brings it too) or set FASTEST_ESBUILD to its path")


def esbuild_arguments(entry: str, out_dir: Path, *, compatibility_flags: Sequence[str] = (), minify: bool = False,
                      keep_names: bool = True) -> list[str]:
    stem = Path(entry).stem
    arguments = [
        entry, "--bundle", "--format=esm", "--target=es2024", "--supported:import-source=true",
        "--sourcemap", f"--source-root={out_dir}", f"--outdir={out_dir}", f"--entry-names={stem}",
        "--conditions=workerd,worker,browser", "--loader:.js=jsx", "--loader:.mjs=jsx", "--loader:.cjs=jsx",
        f"--define:process.env.NODE_ENV={NODE_ENV}", f"--define:global.process.env.NODE_ENV={NODE_ENV}",
        f"--define:globalThis.process.env.NODE_ENV={NODE_ENV}",
        "--external:__STATIC_CONTENT_MANIFEST", "--external:cloudflare:*", "--log-level=warning",
    ]
    if keep_names:
        arguments.append("--keep-names")
    if minify:
        arguments.append("--minify")
    if any(flag in ("nodejs_compat", "nodejs_compat_v2", "nodejs_als") for flag in compatibility_flags):
        arguments.append("--external:node:*")
    return arguments


def bundle(project: Path, entry: str, out_dir: Path, *, env: Mapping[str, str] | None = None,
           compatibility_flags: Sequence[str] = (), minify: bool = False, keep_names: bool = True) -> list[str]:
    """Bundle `entry` (relative to the project) into `out_dir` (emptied first); returns the module
    file names, the main module first. Raises BundleError with esbuild's own messages."""
    esbuild = find_esbuild(project, env if env is not None else os.environ)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    command = [esbuild, *esbuild_arguments(entry, out_dir, compatibility_flags=compatibility_flags, minify=minify,
                                           keep_names=keep_names)]
    try:
        done = subprocess.run(command, cwd=project, capture_output=True, text=True, errors="replace",
                              timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise BundleError(f"esbuild could not be run ({esbuild})") from exc
    except subprocess.TimeoutExpired as exc:
        raise BundleError(f"esbuild took more than {TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0:
        raise BundleError(f"esbuild could not bundle {entry}:\n{(done.stderr or done.stdout).strip()}")
    names = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    modules = worker_modules.bundle_modules(entry, names)
    if not modules:
        raise BundleError(f"esbuild wrote no {worker_modules.bundle_main_module(entry)} for {entry}")
    for name in names:  # what is not a module (the source map, CSS) does not travel
        if name not in {m.name for m in modules}:
            (out_dir / name).unlink()
    return [m.name for m in modules]
