"""Python files through the standard library's `ast` (the same parser on both runtimes).

Symbols: module-level classes, functions and constants (UPPER_CASE names), also those defined under
a module-level `if`/`try`/`with`, and the methods of classes (nested classes too); a name defined
twice (a property's setter, `@overload`s, alternatives under `try`/`except`) is one symbol listing
its signatures. Imports: `import a.b`, `from a.b import c` (absolute: candidates under a source root,
never for the standard library), `from . import x` and `from ..pkg import y` (relative to the
file's package).
"""

from __future__ import annotations

import ast
import posixpath
import sys
import warnings

from .facts import FileFacts, Import, Symbol, count_todos, doc_detail, first_line, first_paragraph, line_count, merge_symbols

LANGUAGE = "python"


def _signature(node: ast.AST, source_line: str) -> str:
    line = source_line.strip()
    return line[:200]


def _module_candidates(dotted: str) -> tuple[str, ...]:
    base = dotted.replace(".", "/")
    return (f"{base}.py", f"{base}/__init__.py")


def is_standard_library(dotted: str) -> bool:
    """An absolute import of the standard library: Python 3 finds it there first, never in the tree."""
    return dotted.split(".")[0] in sys.stdlib_module_names


def _imports(tree: ast.Module, path: str) -> tuple[list[Import], list[str]]:
    imports: list[Import] = []
    external: list[str] = []
    package = posixpath.dirname(path)
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                standard = is_standard_library(alias.name)
                imports.append(Import(spec=alias.name, candidates=() if standard else _module_candidates(alias.name),
                                      suffix=not standard, names=(alias.asname or alias.name,)))
                external.append(alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = posixpath.dirname(base)
                module = (node.module or "").replace(".", "/")
                target = (posixpath.join(base, module) if module else base).lstrip("/")
                spec = "." * node.level + (node.module or "")
                suffix = False
            elif node.module:
                external.append(node.module.split(".")[0])
                if is_standard_library(node.module):
                    imports += [Import(spec=node.module, candidates=(), names=(name,)) for name in names]
                    continue
                target = node.module.replace(".", "/")
                spec = node.module
                suffix = True
            else:
                continue
            module_candidates = [f"{target}.py", f"{target}/__init__.py"] if target else ["__init__.py"]
            # Each imported name may be a submodule (`from . import views`); else it comes from the module.
            for name in names:
                if name == "*":
                    candidates = module_candidates
                else:
                    sub = f"{target}/{name}" if target else name
                    candidates = [f"{sub}.py", f"{sub}/__init__.py", *module_candidates]
                imports.append(Import(spec=spec, candidates=tuple(candidates), suffix=suffix, names=(name,)))
    return imports, external


def _statements(body: list[ast.stmt]):
    """Every statement, nested ones included (imports under `if TYPE_CHECKING:`, `try:`, in
    functions), without walking into expressions."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        for name in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, name, None)
            if children:
                stack.extend(reversed(children))
        for case in getattr(node, "cases", ()) or ():
            stack.extend(reversed(case.body))


def _module_level(body: list[ast.stmt]):
    """The statements that bind module-level names: the module's own and those under a
    module-level `if`, `try` or `with` (`if TYPE_CHECKING:`, `try: … except ImportError:`)."""
    for node in body:
        if isinstance(node, (ast.If, ast.Try, getattr(ast, "TryStar", ast.Try), ast.With)):
            for name in ("body", "orelse", "finalbody"):
                yield from _module_level(getattr(node, name, None) or [])
            for handler in getattr(node, "handlers", ()) or ():
                yield from _module_level(handler.body)
        else:
            yield node


def _constant_names(node: ast.stmt) -> list[str]:
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign):
        targets = [node.target]
    names = []
    for target in targets:
        if isinstance(target, ast.Name) and target.id.isupper() and len(target.id) > 1:
            names.append(target.id)
    return names


def extract(path: str, data: bytes) -> FileFacts:
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for odd escapes is not our business
            tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        return FileFacts(path=path, language=LANGUAGE, parse_error=f"{type(exc).__name__}: {getattr(exc, 'msg', str(exc))}{where}",
                         lines=line_count(data), todo_count=count_todos(data))
    symbols: list[Symbol] = []

    def line_of(node: ast.AST) -> str:
        index = getattr(node, "lineno", 1) - 1
        return lines[index] if 0 <= index < len(lines) else ""

    def visit_class(node: ast.ClassDef, prefix: str, parent: str | None) -> None:
        name = prefix + node.name
        symbols.append(Symbol(name=name, kind="class", start_line=node.lineno, end_line=node.end_lineno or node.lineno,
                              signature=_signature(node, line_of(node)), doc=first_paragraph(ast.get_docstring(node)), detail=doc_detail(ast.get_docstring(node)),
                              exported=not node.name.startswith("_"), parent=parent))
        for child in node.body:
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                symbols.append(Symbol(name=f"{name}.{child.name}", kind="method", start_line=child.lineno,
                                      end_line=child.end_lineno or child.lineno, signature=_signature(child, line_of(child)),
                                      doc=first_paragraph(ast.get_docstring(child)), detail=doc_detail(ast.get_docstring(child)),
                                      exported=not child.name.startswith("_") or child.name == "__init__", parent=name))
            elif isinstance(child, ast.ClassDef):
                visit_class(child, name + ".", name)

    for node in _module_level(tree.body):
        if isinstance(node, ast.ClassDef):
            visit_class(node, "", None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            symbols.append(Symbol(name=node.name, kind="function", start_line=node.lineno,
                                  end_line=node.end_lineno or node.lineno, signature=_signature(node, line_of(node)),
                                  doc=first_paragraph(ast.get_docstring(node)), detail=doc_detail(ast.get_docstring(node)), exported=not node.name.startswith("_")))
        else:
            for constant in _constant_names(node):
                symbols.append(Symbol(name=constant, kind="constant", start_line=node.lineno,
                                      end_line=node.end_lineno or node.lineno, signature=line_of(node).strip()[:200]))
    imports, external = _imports(tree, path)
    return FileFacts(path=path, language=LANGUAGE, symbols=tuple(merge_symbols(symbols)), imports=tuple(imports),
                     external=tuple(sorted(set(external))), lines=line_count(data), todo_count=count_todos(data),
                     doc=first_line(ast.get_docstring(tree)))
