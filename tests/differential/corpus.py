"""The differential tests' corpus: real packages from the registries, installed by the test set-up
(`npm ci --prefix tests/differential` for npm, the test dependency group for PyPI), never fetched at
test time. Each entry is a package directory, the folders of it read, and what they are."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

NODE_MODULES = Path(__file__).parent / "node_modules"


@dataclass(frozen=True)
class Part:
    package: str  # npm or PyPI name
    folders: tuple[str, ...]  # under the package's directory
    extensions: tuple[str, ...]
    what: str

    def root(self) -> Path | None:
        if self.extensions == (".py",):
            spec = importlib.util.find_spec(self.package)
            return Path(spec.origin).parent.parent if spec and spec.origin else None
        root = NODE_MODULES / self.package
        return root if root.is_dir() else None

    def files(self) -> list[str]:
        """Paths relative to root(), sorted; declaration files (.d.ts) and minified bundles left out."""
        root = self.root()
        if root is None:
            return []
        found = []
        for folder in self.folders:
            for directory, _, names in os.walk(root / folder):
                for name in names:
                    if name.endswith(self.extensions) and not name.endswith((".d.ts", ".d.mts", ".d.cts")) \
                            and ".min." not in name:
                        found.append(str((Path(directory) / name).relative_to(root)))
        return sorted(found)


TYPESCRIPT = (
    Part("rxjs", ("src",), (".ts",), "a TypeScript library's sources"),
    Part("@tanstack/react-query", ("src",), (".ts", ".tsx"), "a React library's TypeScript and TSX sources"),
    Part("@tanstack/query-core", ("src",), (".ts",), "TypeScript sources with overloads and private fields"),
)
JAVASCRIPT = (
    Part("hono", ("dist",), (".js",), "a web framework's esbuild output (ESM and CommonJS)"),
    Part("@tanstack/react-query", ("build/modern",), (".js", ".cjs"), "tsup output"),
    Part("zod", ("lib",), (".js", ".mjs"), "tsc output and a rollup bundle (.mjs)"),
    Part("axios", ("lib", "dist/esm"), (".js",), "hand-written ES modules and a rollup bundle"),
)
PYTHON = (
    Part("rich", ("rich",), (".py",), "a terminal library with its own abc.py and json.py"),
    Part("jinja2", ("jinja2",), (".py",), "a template engine"),
)
