"""Atlas's Python extraction against the language's own tools on real packages: symbols against a walk
of `ast`, and import edges against Python 3's own finder (`importlib.machinery.PathFinder` with the
package's parent as the only `sys.path` entry), so a package's `abc.py` is never what `from abc
import ABC` means."""

from __future__ import annotations

import ast
import importlib.machinery
import importlib.util
from pathlib import Path

from fastest.domain.atlas import extract
from fastest.domain.atlas.graph import PathIndex

from .corpus import PYTHON
from .test_javascript_typescript import Score


def module_level(body):
    for node in body:
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in (node.body, getattr(node, "orelse", []), getattr(node, "finalbody", [])):
                yield from module_level(block)
            for handler in getattr(node, "handlers", []):
                yield from module_level(handler.body)
        else:
            yield node


def ast_symbols(tree: ast.Module) -> set[tuple[str, str]]:
    found: dict[str, str] = {}

    def visit_class(node: ast.ClassDef, prefix: str) -> None:
        name = prefix + node.name
        found.setdefault(name, "class")
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(f"{name}.{child.name}", "method")
            elif isinstance(child, ast.ClassDef):
                visit_class(child, name + ".")

    for node in module_level(tree.body):
        if isinstance(node, ast.ClassDef):
            visit_class(node, "")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.setdefault(node.name, "function")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and target.id.isupper() and len(target.id) > 1:
                    found.setdefault(target.id, "constant")
    return set(found.items())


def python_finds(module: str, root: Path) -> Path | None:
    """The file Python 3 imports for `module` when `root` is the only entry of sys.path."""
    path, spec = [str(root)], None
    parts = module.split(".")
    for i in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: i + 1]), path)
        if spec is None:
            return None
        path = list(spec.submodule_search_locations or [])
    return Path(spec.origin) if spec and spec.origin else None


def python_edges(relative: str, tree: ast.Module, root: Path, files: set[str]) -> set[str]:
    package = relative[: -len(".py")].replace("/", ".")
    package = package[: -len(".__init__")] if relative.endswith("/__init__.py") else package.rsplit(".", 1)[0]
    modules: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level else node.module
            for alias in node.names:  # a name may be a submodule, else it comes from the module
                sub = f"{base}.{alias.name}"
                modules.append(sub if alias.name != "*" and python_finds(sub, root) else base)
    found = {python_finds(m, root) for m in modules}
    return {str(f.relative_to(root)) for f in found if f is not None and str(f.relative_to(root)) in files} - {relative}


def test_atlas_agrees_with_python_ast_and_importlib(capsys):
    symbols, edges = Score(), Score()
    for part in PYTHON:
        root, paths = part.root(), part.files()
        assert root is not None and paths, f"{part.package} is not installed"
        index = PathIndex(paths)
        for path in paths:
            data = (root / path).read_bytes()
            tree = ast.parse(data)
            facts = extract(path, data)
            symbols.add({(s.name, s.kind) for s in facts.symbols}, ast_symbols(tree), path)
            got = {index.resolve(i.candidates, suffix=i.suffix) for i in facts.imports} - {None, path}
            edges.add(got, python_edges(path, tree, root, set(paths)), path)
    with capsys.disabled():
        print(f"\nPython symbols: {symbols}\nPython import edges: {edges}")
    assert symbols.recall >= 0.99 and symbols.precision >= 0.99, (str(symbols), symbols.examples[:20])
    assert edges.precision == 1.0 and edges.recall >= 0.99, (str(edges), edges.examples[:20])
