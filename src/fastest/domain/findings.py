"""Code analyses over a workspace's tree, as findings a user can act on.

Pure functions over a listing of the tree (`FileInfo`: path and size) and the text of the files
the analyses asked for (`wants_text`). The service walks the tree, reads those files, and calls
`analyze`; a run's checks call the same functions on the run's result, so "the finding no longer
fires" means exactly what firing meant.

Each finding has a `kind`, a `subject` (what it is about: a file, a directory) and a `magnitude`
(how bad: how many secrets, how many untested modules); its fingerprint is kind + workspace +
subject, so it stays the same while the problem does, and a dismissal holds until the magnitude
grows.

| kind               | severity | subject      | magnitude                      |
|--------------------|----------|--------------|--------------------------------|
| `secrets`          | critical | the file     | distinct secrets in it         |
| `missing-lockfile` | medium   | the manifest | 1                              |
| `oversized-binary` | medium   | the file     | size in MiB (rounded up)       |
| `untested-modules` | low      | a directory  | modules there without a test   |
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from fastest.domain.secrets import SecretHit, scan_text
from fastest.domain.untrusted_text import Unparseable, parse_toml

SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
SECRETS_MAX_FILE_BYTES = 512 * 1024
BINARY_MIN_BYTES = 5 * 1024 * 1024

# Dependency manifests and the lockfiles that pin them (any one will do), per ecosystem.
LOCKFILES: dict[str, tuple[str, ...]] = {
    "package.json": ("package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb", "bun.lock"),
    "pyproject.toml": ("uv.lock", "poetry.lock", "pdm.lock", "pylock.toml", "requirements.lock"),
    "Pipfile": ("Pipfile.lock",),
    "Gemfile": ("Gemfile.lock",),
    "Cargo.toml": ("Cargo.lock",),
    "go.mod": ("go.sum",),
    "composer.json": ("composer.lock",),
}
VENDORED_DIRS = {"node_modules", ".venv", "venv", "vendor", ".git", "dist", "build", "__pycache__", "site-packages"}
TEXT_EXTENSIONS = {
    "py", "js", "mjs", "cjs", "ts", "tsx", "jsx", "json", "toml", "yaml", "yml", "md", "txt", "rst", "html", "css",
    "scss", "sql", "sh", "go", "rs", "rb", "php", "java", "kt", "c", "h", "cc", "cpp", "hpp", "cs", "swift", "xml",
    "csv", "tsv", "ini", "cfg", "conf", "env", "lock", "svg", "graphql", "proto", "tf", "vue", "svelte",
}
SECRET_SKIP_NAMES = {name for names in LOCKFILES.values() for name in names}
SOURCE_EXTENSIONS = {"py", "js", "jsx", "ts", "tsx", "mjs", "cjs"}
NOT_MODULES = {"__init__.py", "__main__.py", "setup.py", "conftest.py", "manage.py", "noxfile.py", "tasks.py"}


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size: int


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    subject: str
    severity: str
    magnitude: int
    title: str
    description: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def fingerprint(self, workspace_id: str) -> str:
        return f"{self.kind}:{workspace_id}:{self.subject}"


def _extension(path: str) -> str:
    name = posixpath.basename(path)
    return name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else ""


def _vendored(path: str) -> bool:
    return any(part in VENDORED_DIRS for part in path.split("/")[:-1])


def wants_text(info: FileInfo) -> bool:
    """Whether `analyze` needs this file's text: candidates for the secret scan, and Python
    project manifests (to know whether they declare dependencies)."""
    if _vendored(info.path) or info.size > SECRETS_MAX_FILE_BYTES:
        return False
    name = posixpath.basename(info.path)
    if name in SECRET_SKIP_NAMES:
        return False
    extension = _extension(info.path)
    return extension in TEXT_EXTENSIONS or extension == "" or name.startswith(".env")


def analyze(files: Iterable[FileInfo], texts: Mapping[str, str],
            secret_hits: Mapping[str, list[SecretHit]] | None = None) -> list[Finding]:
    """Every finding on this tree, sorted by severity then subject. `secret_hits`: the secret scan
    done already (by path; e.g. from a cache by content hash), instead of scanning `texts`."""
    listing = [info for info in files if not _vendored(info.path)]
    findings = [
        *(secret_findings(secret_hits) if secret_hits is not None else find_secrets(texts)),
        *find_missing_lockfiles([info.path for info in listing], texts),
        *find_oversized_binaries(listing),
        *find_untested_modules([info.path for info in listing]),
    ]
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.kind, f.subject))


def needs_text(path: str) -> bool:
    """Files whose text the lockfile analysis reads (to know whether they declare dependencies)."""
    return posixpath.basename(path) == "pyproject.toml" and not _vendored(path)


def find_secrets(texts: Mapping[str, str]) -> list[Finding]:
    return secret_findings({
        path: scan_text(path, text) for path, text in texts.items()
        if posixpath.basename(path) not in SECRET_SKIP_NAMES and not _vendored(path)
    })


def secret_findings(hits_by_path: Mapping[str, list[SecretHit]]) -> list[Finding]:
    """One critical finding per file with secrets."""
    findings = []
    for path in sorted(hits_by_path):
        hits = hits_by_path[path]
        if not hits:
            continue
        rules = sorted({hit.rule for hit in hits})
        findings.append(Finding(
            kind="secrets", subject=path, severity="critical", magnitude=len(hits),
            title=f"{len(hits)} committed secret{'s' if len(hits) > 1 else ''} in {path}",
            description=(f"{path} holds what looks like {', '.join(rules)}. Anyone with the code has it: revoke it, "
                         "move it to an environment variable or a secret store, and remove it from the file."),
            data={"path": path, "rules": rules,
                  "secrets": [{"rule": h.rule, "line": h.line, "sha256": h.secret_sha256} for h in hits]},
        ))
    return findings


def _declares_python_dependencies(text: str | None) -> bool:
    if text is None:
        return True  # not read: assume it does (a lockfile is cheap insurance)
    try:
        data = parse_toml(text)
    except Unparseable:
        return False
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    poetry = data.get("tool", {}).get("poetry", {}) if isinstance(data.get("tool"), dict) else {}
    poetry_deps = {k for k in (poetry.get("dependencies") or {}) if k != "python"} if isinstance(poetry, dict) else set()
    return bool(project.get("dependencies")) or bool(poetry_deps)


def find_missing_lockfiles(paths: Iterable[str], texts: Mapping[str, str] | None = None) -> list[Finding]:
    """A dependency manifest with no lockfile of its ecosystem beside it or in a directory above
    (a monorepo pins its packages at the root)."""
    texts = texts or {}
    present = set(paths)
    findings = []
    for path in sorted(present):
        name = posixpath.basename(path)
        lockfiles = LOCKFILES.get(name)
        if lockfiles is None:
            continue
        if name == "pyproject.toml" and not _declares_python_dependencies(texts.get(path)):
            continue
        directory = posixpath.dirname(path)
        locked = False
        while True:
            if any(posixpath.join(directory, lock) in present for lock in lockfiles):
                locked = True
                break
            if not directory:
                break
            directory = posixpath.dirname(directory)
        if locked:
            continue
        findings.append(Finding(
            kind="missing-lockfile", subject=path, severity="medium", magnitude=1,
            title=f"{path} has no lockfile",
            description=(f"{path} declares dependencies but no lockfile ({', '.join(lockfiles[:3])}, …) pins them: "
                         "two installs may get different versions. Generate one and commit it."),
            data={"path": path, "expected": list(lockfiles)},
        ))
    return findings


def find_oversized_binaries(files: Iterable[FileInfo], *, threshold: int = BINARY_MIN_BYTES) -> list[Finding]:
    findings = []
    for info in sorted(files, key=lambda i: i.path):
        if info.size < threshold or _extension(info.path) in TEXT_EXTENSIONS:
            continue
        mib = -(-info.size // (1024 * 1024))
        findings.append(Finding(
            kind="oversized-binary", subject=info.path, severity="medium", magnitude=mib,
            title=f"{info.path} is a {mib} MiB binary in the tree",
            description=(f"{info.path} ({info.size} bytes) is stored with every snapshot. Keep large binaries out of "
                         "the tree (build them, download them, or use an artifact store) and ignore the path."),
            data={"path": info.path, "size": info.size},
        ))
    return findings


_TEST_NAME = re.compile(r"^(test_.+\.py|.+_test\.py|.+\.(test|spec)\.(js|jsx|ts|tsx|mjs|cjs))$")


def _is_test(path: str) -> bool:
    parts = path.split("/")
    return bool(_TEST_NAME.match(parts[-1])) or any(p in ("tests", "test", "__tests__", "spec") for p in parts[:-1])


def _module_stem(name: str) -> str:
    stem = name.rsplit(".", 1)[0]
    return stem


def untested_module_paths(paths: Iterable[str]) -> list[str]:
    """Source modules (Python, JavaScript, TypeScript) that no test file names: `test_x.py`,
    `x_test.py`, `x.test.ts`, `x.spec.js`… anywhere in the tree. The one rule for "untested": the
    action items and the project's next steps count the same modules for the same tree."""
    paths = list(paths)
    tested: set[str] = set()
    for path in paths:
        if not _is_test(path):
            continue
        name = posixpath.basename(path)
        stem = _module_stem(name)
        stem = re.sub(r"\.(test|spec)$", "", stem)
        stem = stem[5:] if stem.startswith("test_") else stem
        stem = stem[:-5] if stem.endswith("_test") else stem
        tested.add(stem.lower())
    untested: list[str] = []
    for path in paths:
        name = posixpath.basename(path)
        if _extension(path) not in SOURCE_EXTENSIONS or _is_test(path) or name in NOT_MODULES:
            continue
        if name.endswith(".d.ts") or name.startswith(".") or re.search(r"\.config\.[cm]?[jt]s$", name):
            continue
        if _module_stem(name).lower() in tested:
            continue
        untested.append(path)
    return untested


def find_untested_modules(paths: Iterable[str]) -> list[Finding]:
    """`untested_module_paths`, one finding per directory."""
    untested: dict[str, list[str]] = {}
    for path in untested_module_paths(paths):
        untested.setdefault(posixpath.dirname(path), []).append(path)
    findings = []
    for directory in sorted(untested):
        modules = sorted(untested[directory])
        where = directory or "the root directory"
        findings.append(Finding(
            kind="untested-modules", subject=directory or ".", severity="low", magnitude=len(modules),
            title=f"{len(modules)} module{'s' if len(modules) > 1 else ''} without tests in {where}",
            description=(f"No test file names {', '.join(posixpath.basename(m) for m in modules[:5])}"
                         f"{'…' if len(modules) > 5 else ''}. Add tests (test_<module>.py, <module>.test.ts…)."),
            data={"directory": directory, "modules": modules[:200]},
        ))
    return findings
