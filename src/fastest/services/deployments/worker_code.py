"""A deployment's Worker code, as the modules its provider uploads (`domain.worker_modules`).

- A JavaScript/TypeScript entry's bundle was built where builds run (the CLI's machine, with
  esbuild) and travels in the output tree under `.worker/`: its files are the modules. The server
  never bundles: without that directory there is no code to deploy (None).
- A Python entry is not bundled: its modules are read from the pushed source tree (the entry's
  directory and the vendored `python_modules/`), so a deploy without the CLI has them too.
- No entry: None (a site of static assets).

Only the directories that hold modules are walked, whatever the tree's size.
"""

from __future__ import annotations

import posixpath

from fastest.domain import tree, worker_modules
from fastest.domain.detection import Detection
from fastest.domain.worker_modules import ModuleFile
from fastest.platform import Platform
from fastest.ports import WorkerCode, WorkerModule
from fastest.services import storage


async def _files_under(platform: Platform, user_id: str, root: str, directory: str) -> dict[str, str]:
    """path → blob hash of the files under `directory` of the tree (the whole tree for "")."""
    load = storage.manifest_loader(platform, user_id)
    if directory:
        entry = await tree.find(root, directory, load)
        if entry is None or entry.type != "tree":
            return {}
        start, prefix = entry.hash, directory + "/"
    else:
        start, prefix = root, ""
    return {path: entry.hash async for path, entry in tree.walk(start, load, prefix=prefix)}


def _code(modules: list[ModuleFile], hashes: dict[str, str]) -> WorkerCode | None:
    if not modules:
        return None
    return WorkerCode(modules[0].name, [WorkerModule(m.name, m.type, hashes[m.path]) for m in modules])


async def worker_code(platform: Platform, user_id: str, detection: Detection | None, *, source: str | None,
                      output: str) -> WorkerCode | None:
    entry = detection.entry if detection is not None else None
    if not entry:
        return None
    if worker_modules.is_python(entry):
        if source is None:
            return None
        hashes = await _files_under(platform, user_id, source, posixpath.dirname(entry))
        hashes.update(await _files_under(platform, user_id, source, worker_modules.VENDOR_DIR))
        if entry not in hashes:
            return None
        return _code(worker_modules.python_modules(entry, hashes, detection.config_path), hashes)
    if worker_modules.is_bundled(entry):
        hashes = await _files_under(platform, user_id, output, worker_modules.BUNDLE_DIR)
        names = [path.split("/", 1)[1] for path in hashes]
        return _code(worker_modules.bundle_modules(entry, names), hashes)
    return None
