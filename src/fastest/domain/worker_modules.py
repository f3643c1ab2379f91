"""A Worker's code as the modules of its upload, named and typed the way wrangler does.

- JavaScript and TypeScript are bundled (esbuild, with wrangler's options) into one ES module named
  after the entry (`src/index.ts` → `index.js`). The bundle travels inside the deployment's output
  tree, under `BUNDLE_DIR` (a hidden directory, so never an asset): its files are the modules.
- A Python Worker (`main = "src/entry.py"`) is not bundled: its module root is the entry's directory,
  each file there that a module rule matches is a module named by its path from that root (`*.py`
  Python, `*.txt`/`*.html`/`*.sql` text, `*.bin` data, `*.wasm` compiled WebAssembly), and the
  project's vendored `python_modules/` follows as data (its `workers/*.js` as ES modules).

Each module type is sent as its multipart part's Content-Type (`PART_TYPES`).
"""

from __future__ import annotations

import posixpath
from typing import Iterable, NamedTuple

BUNDLE_DIR = ".worker"
VENDOR_DIR = "python_modules"
PART_TYPES = {
    "esm": "application/javascript+module",
    "commonjs": "application/javascript",
    "compiled-wasm": "application/wasm",
    "data": "application/octet-stream",
    "text": "text/plain",
    "python": "text/x-python",
    "python-requirement": "text/x-python-requirement",
}
# wrangler's default module rules (first match wins), and the rule a Python entry adds.
_RULES = (("python", (".py",)), ("text", (".txt", ".html", ".sql")), ("data", (".bin",)),
          ("compiled-wasm", (".wasm",)))
_JS_EXTENSIONS = (".js", ".mjs")
JS_ENTRY_EXTENSIONS = (".js", ".mjs", ".cjs", ".ts", ".mts", ".cts", ".jsx", ".tsx")


class ModuleFile(NamedTuple):
    """One module of the upload: its name, the path of its bytes in the tree, its type."""

    name: str
    path: str
    type: str


def is_python(entry: str) -> bool:
    return entry.endswith(".py")


def is_bundled(entry: str) -> bool:
    return entry.endswith(JS_ENTRY_EXTENSIONS)


def bundle_main_module(entry: str) -> str:
    """The bundle's module name for an entry: its file name with `.js` (wrangler's `index.js`)."""
    return posixpath.splitext(posixpath.basename(entry))[0] + ".js"


def module_type(name: str, *, python: bool) -> str | None:
    for kind, extensions in _RULES:
        if name.endswith(extensions) and (python or kind != "python"):
            return kind
    if not python and name.endswith(_JS_EXTENSIONS):
        return "esm"
    return None


def bundle_modules(entry: str, names: Iterable[str]) -> list[ModuleFile]:
    """The modules of a bundle (paths relative to `BUNDLE_DIR`): the main module first."""
    main = bundle_main_module(entry)
    found = sorted(n for n in names if not n.endswith(".map"))
    if main not in found:
        return []
    ordered = [main, *(n for n in found if n != main)]
    modules = []
    for name in ordered:
        kind = module_type(name, python=False)
        if kind is not None:
            modules.append(ModuleFile(name, f"{BUNDLE_DIR}/{name}", kind))
    return modules


def python_modules(entry: str, paths: Iterable[str], config_path: str | None = None) -> list[ModuleFile]:
    """The modules of a Python Worker from the project's file paths: the entry first."""
    root = posixpath.dirname(entry)
    prefix = f"{root}/" if root else ""
    main = entry[len(prefix):]
    modules: list[ModuleFile] = [ModuleFile(main, entry, "python")]
    vendored: list[ModuleFile] = []
    for path in sorted(paths):
        if path == entry or path == config_path:
            continue
        if path.startswith(VENDOR_DIR + "/"):
            name = path[len(VENDOR_DIR) + 1:]
            kind = "esm" if name.startswith("workers/") and name.endswith(_JS_EXTENSIONS) else "data"
            vendored.append(ModuleFile(path, path, kind))
            continue
        if not path.startswith(prefix) or path.startswith(prefix + ".wrangler/"):
            continue
        kind = module_type(path, python=True)
        if kind is not None:
            modules.append(ModuleFile(path[len(prefix):], path, kind))
    return modules + vendored
