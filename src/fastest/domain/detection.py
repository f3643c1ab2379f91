"""What a project needs to run, read from its files: framework, runtime, build, resources, env vars.

Pure: the caller gives the tree's paths and the text of the few files `files_to_read` names (the
server reads them from the snapshot's blobs, the CLI from the folder), and gets a `Detection` whose
every finding carries the paths it came from (`evidence`), so a person can check why.

Detected, in order of precedence for the framework:
- a Worker (`wrangler.toml` / `wrangler.jsonc` / `wrangler.json`): entry module, static assets
  directory, and the D1 / KV / R2 bindings it declares;
- Next.js (static export only when `output: 'export'` is set), Astro, Vite (node builds, output
  directory and the package manager from the lockfile);
- Python web apps (FastAPI, Flask, Django, Starlette) from requirements / pyproject;
- plain static HTML (an `index.html`, no build).
A database comes from an ORM schema too (Prisma's `datasource`, Drizzle's `dialect`), and env vars
from `.env.example` and its siblings and wrangler's `[vars]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from fastest.domain.untrusted_text import Unparseable, parse_json, parse_toml

MAX_READ_BYTES = 256 * 1024  # a config file bigger than this is not read (and not believed)

WRANGLER_FILES = ("wrangler.toml", "wrangler.jsonc", "wrangler.json")
ENV_EXAMPLE_FILES = (".env.example", ".env.sample", ".env.template", ".env.dist", ".dev.vars.example", "example.env")
NEXT_CONFIGS = ("next.config.js", "next.config.mjs", "next.config.ts", "next.config.cjs")
ASTRO_CONFIGS = ("astro.config.mjs", "astro.config.js", "astro.config.ts", "astro.config.cjs")
VITE_CONFIGS = ("vite.config.js", "vite.config.mjs", "vite.config.ts", "vite.config.cjs", "vite.config.mts")
DRIZZLE_CONFIGS = ("drizzle.config.ts", "drizzle.config.js", "drizzle.config.mjs", "drizzle.config.json")
PRISMA_SCHEMAS = ("prisma/schema.prisma", "schema.prisma")
PYTHON_FILES = ("requirements.txt", "pyproject.toml", "Pipfile", "manage.py")
LOCKFILES = (("pnpm-lock.yaml", "pnpm"), ("yarn.lock", "yarn"), ("bun.lockb", "bun"), ("bun.lock", "bun"),
             ("package-lock.json", "npm"))
PYTHON_FRAMEWORKS = (("django", "django"), ("fastapi", "fastapi"), ("flask", "flask"), ("starlette", "starlette"))
_ENV_NAME = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")
RESOURCE_TYPES = ("d1", "kv", "r2")
# Detection reads the root's names and these directories' names only (what it looks for is there),
# so a caller walking a stored tree reads a handful of manifests however large the tree is.
LOOKED_INTO = frozenset({"public", "prisma", "app"})


@dataclass(slots=True)
class Finding:
    """One thing found, with the paths that show it."""

    kind: str  # "resource" | "database" | "env_var"
    name: str
    evidence: list[str]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Detection:
    framework: str | None = None  # vite | nextjs | astro | static | worker | fastapi | flask | django | starlette
    runtime: str | None = None  # static | workers | node | python
    static: bool = False  # the build's output is a directory of files to serve as is
    build_command: str | None = None
    output_dir: str | None = None  # relative to the project root; "." for the root itself
    start_command: str | None = None
    package_manager: str | None = None
    entry: str | None = None  # a Worker's main module
    compatibility_date: str | None = None
    compatibility_flags: list[str] = field(default_factory=list)
    config_path: str | None = None  # the wrangler configuration file
    # A Worker's settings from its wrangler configuration, as `wrangler deploy` sends them: the
    # assets binding's name, the assets' `html_handling`/`not_found_handling`/`run_worker_first`,
    # `[vars]`, and the bundler's `minify`/`keep_names`.
    assets_binding: str | None = None
    assets_settings: dict[str, Any] = field(default_factory=dict)
    worker_vars: dict[str, Any] = field(default_factory=dict)
    minify: bool = False
    keep_names: bool = True
    evidence: dict[str, list[str]] = field(default_factory=dict)  # framework/runtime/build/output → paths
    resources: list[Finding] = field(default_factory=list)
    env_vars: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "framework": self.framework, "runtime": self.runtime, "static": self.static,
            "build_command": self.build_command, "output_dir": self.output_dir,
            "start_command": self.start_command, "package_manager": self.package_manager,
            "entry": self.entry, "compatibility_date": self.compatibility_date,
            "compatibility_flags": self.compatibility_flags,
            "evidence": self.evidence, "notes": self.notes,
        }

    def requirements(self) -> dict[str, Any]:
        return {
            "build": {"needed": self.build_command is not None, "command": self.build_command,
                      "output_dir": self.output_dir},
            "resources": [{"type": f.details.get("type", f.kind), "name": f.name, "evidence": f.evidence,
                           **{k: v for k, v in f.details.items() if k != "type"}} for f in self.resources],
            "env_vars": [{"name": f.name, "evidence": f.evidence} for f in self.env_vars],
        }

    def suggested_resources(self) -> list[dict[str, Any]]:
        """What can be provisioned for the findings: D1 / KV / R2 only (a Postgres schema is a
        requirement, listed with a note, not something we create)."""
        suggested = []
        seen: set[tuple[str, str]] = set()
        for finding in self.resources:
            kind = finding.details.get("type")
            if kind not in RESOURCE_TYPES or (kind, finding.name) in seen:
                continue
            seen.add((kind, finding.name))
            suggested.append({"type": kind, "name": finding.name, "binding": finding.details.get("binding"),
                              "reason": finding.details.get("reason", ""), "evidence": finding.evidence})
        return suggested


def files_to_read(paths: Iterable[str]) -> list[str]:
    """The paths (of `paths`) whose text `detect` needs: manifests and configs near the root."""
    wanted = {"package.json", "index.html", "public/index.html", *WRANGLER_FILES, *ENV_EXAMPLE_FILES,
              *NEXT_CONFIGS, *ASTRO_CONFIGS, *VITE_CONFIGS, *DRIZZLE_CONFIGS, *PRISMA_SCHEMAS, *PYTHON_FILES}
    return sorted(p for p in paths if p in wanted)


def detect(paths: Iterable[str], contents: Mapping[str, str]) -> Detection:
    """Detect from the tree's `paths` and the text of (some of) `files_to_read(paths)`.

    A file named but absent from `contents` (too big, unreadable) is taken as present but unknown.
    """
    present = set(paths)
    found = Detection()
    package = _json(contents.get("package.json"), "package.json", found.notes)
    deps = {**(package.get("dependencies") or {}), **(package.get("devDependencies") or {})} if package else {}
    scripts = (package.get("scripts") or {}) if package else {}
    if package is not None:
        found.package_manager = next((pm for lock, pm in LOCKFILES if lock in present), "npm")
    wrangler_path = next((p for p in WRANGLER_FILES if p in present), None)
    wrangler = _wrangler(wrangler_path, contents.get(wrangler_path or ""), found.notes) if wrangler_path else None

    if wrangler_path is not None:
        _detect_worker(found, wrangler_path, wrangler or {}, scripts)
    elif "next" in deps:
        _detect_next(found, present, contents, scripts)
    elif "astro" in deps:
        _detect_astro(found, present, contents, scripts)
    elif "vite" in deps or any(c in present for c in VITE_CONFIGS):
        _detect_vite(found, present, contents, scripts)
    elif (python := _python_framework(present, contents)) is not None:
        _detect_python(found, present, python)
    elif "index.html" in present or "public/index.html" in present:
        root = "." if "index.html" in present else "public"
        found.framework, found.runtime, found.static, found.output_dir = "static", "static", True, root
        found.evidence = {"framework": ["index.html" if root == "." else "public/index.html"]}
        if "build" in scripts:
            _set_build(found, scripts)
    elif package is not None and "build" in scripts:
        found.runtime = "node"
        found.notes.append("A package.json with a build script, but no framework we know; set the output directory.")
        _set_build(found, scripts)
    if found.build_command and package is not None and "build" in scripts:
        found.evidence.setdefault("build", ["package.json"])

    if wrangler is not None:
        _wrangler_resources(found, wrangler_path or "", wrangler)
    _orm_resources(found, present, contents)
    _env_vars(found, present, contents, wrangler, wrangler_path)
    return found


# --- frameworks ------------------------------------------------------------------------------


def _set_build(found: Detection, scripts: Mapping[str, Any]) -> None:
    if "build" in scripts:
        pm = found.package_manager or "npm"
        found.build_command = f"{pm} run build"


def _first(present: set[str], names: Iterable[str]) -> str | None:
    return next((n for n in names if n in present), None)


def _detect_next(found: Detection, present: set[str], contents: Mapping[str, str], scripts: Mapping[str, Any]) -> None:
    found.framework, found.evidence["framework"] = "nextjs", ["package.json"]
    config = _first(present, NEXT_CONFIGS)
    text = contents.get(config or "", "")
    _set_build(found, scripts)
    found.build_command = found.build_command or "npx next build"
    if config and re.search(r"""output\s*:\s*['"`]export['"`]""", text):
        found.runtime, found.static, found.output_dir = "static", True, "out"
        distdir = re.search(r"""distDir\s*:\s*['"`]([^'"`]+)['"`]""", text)
        if distdir:
            found.output_dir = distdir.group(1).strip("./") or "out"
        found.evidence["output"] = [config]
    else:
        found.runtime, found.start_command = "node", "npx next start"
        found.notes.append("Next.js without `output: 'export'` needs a Node server; only static exports deploy as files.")
        if config:
            found.evidence["runtime"] = [config]


def _detect_astro(found: Detection, present: set[str], contents: Mapping[str, str], scripts: Mapping[str, Any]) -> None:
    found.framework, found.evidence["framework"] = "astro", ["package.json"]
    config = _first(present, ASTRO_CONFIGS)
    text = contents.get(config or "", "")
    _set_build(found, scripts)
    found.build_command = found.build_command or "npx astro build"
    out = re.search(r"""outDir\s*:\s*['"`]([^'"`]+)['"`]""", text)
    found.output_dir = _clean_dir(out.group(1)) if out else "dist"
    if re.search(r"""output\s*:\s*['"`](server|hybrid)['"`]""", text):
        found.runtime = "node"
        found.notes.append("Astro with server output needs an adapter's runtime; only static output deploys as files.")
    else:
        found.runtime, found.static = "static", True
    if config:
        found.evidence["output"] = [config]


def _detect_vite(found: Detection, present: set[str], contents: Mapping[str, str], scripts: Mapping[str, Any]) -> None:
    config = _first(present, VITE_CONFIGS)
    found.framework = "vite"
    found.evidence["framework"] = [p for p in ("package.json", config) if p and p in present]
    _set_build(found, scripts)
    found.build_command = found.build_command or "npx vite build"
    out = re.search(r"""outDir\s*:\s*['"`]([^'"`]+)['"`]""", contents.get(config or "", ""))
    found.output_dir = _clean_dir(out.group(1)) if out else "dist"
    found.runtime, found.static = "static", True
    if config:
        found.evidence["output"] = [config]


def _detect_worker(found: Detection, path: str, config: Mapping[str, Any], scripts: Mapping[str, Any]) -> None:
    found.framework, found.runtime = "worker", "workers"
    found.evidence["framework"] = [path]
    found.config_path = path
    main = config.get("main")
    found.entry = _clean_dir(main) if isinstance(main, str) and main.strip() else None
    date = config.get("compatibility_date")
    found.compatibility_date = date if isinstance(date, str) else None
    flags = config.get("compatibility_flags")
    found.compatibility_flags = [f for f in flags if isinstance(f, str)] if isinstance(flags, list) else []
    variables = config.get("vars")
    found.worker_vars = dict(variables) if isinstance(variables, Mapping) else {}
    found.minify = config.get("minify") is True
    found.keep_names = config.get("keep_names") is not False
    if found.entry is not None:
        found.evidence["entry"] = [path]
    assets = config.get("assets")
    if isinstance(assets, Mapping):
        if isinstance(assets.get("binding"), str) and found.entry is not None:
            found.assets_binding = assets["binding"]
        found.assets_settings = {key: assets[key] for key in ("html_handling", "not_found_handling", "run_worker_first")
                                 if isinstance(assets.get(key), (str, bool, list))}
    if isinstance(assets, Mapping) and isinstance(assets.get("directory"), str):
        found.output_dir = _clean_dir(assets["directory"])
        found.evidence["output"] = [path]
        found.static = found.entry is None  # assets only: a static site served by a Worker
    site = config.get("site")
    if found.output_dir is None and isinstance(site, Mapping) and isinstance(site.get("bucket"), str):
        found.output_dir = _clean_dir(site["bucket"])
        found.evidence["output"] = [path]
    _set_build(found, scripts)
    build = config.get("build")
    if isinstance(build, Mapping) and isinstance(build.get("command"), str):
        found.build_command = build["command"]
        found.evidence["build"] = [path]


def _python_framework(present: set[str], contents: Mapping[str, str]) -> tuple[str, str] | None:
    if "manage.py" in present:
        return "django", "manage.py"
    for path in ("requirements.txt", "pyproject.toml", "Pipfile"):
        text = contents.get(path, "").lower()
        for needle, name in PYTHON_FRAMEWORKS:
            if re.search(rf"(^|[\s\"'\[,]){needle}\b", text, re.MULTILINE):
                return name, path
    return None


def _detect_python(found: Detection, present: set[str], framework: tuple[str, str]) -> None:
    name, path = framework
    found.framework, found.runtime = name, "python"
    found.evidence["framework"] = [path]
    module = next((m for m in ("main", "app", "server", "api") if f"{m}.py" in present or f"app/{m}.py" in present), "main")
    found.start_command = {
        "django": "python manage.py runserver 0.0.0.0:$PORT",
        "flask": f"flask --app {module} run --host 0.0.0.0 --port $PORT",
    }.get(name, f"uvicorn {module}:app --host 0.0.0.0 --port $PORT")
    found.notes.append("A Python web app runs as a server: deploy it on a host with a Python runtime "
                       "(Python Workers need an entry module and wrangler.toml).")


# --- resources and env vars ------------------------------------------------------------------


def _wrangler_resources(found: Detection, path: str, config: Mapping[str, Any]) -> None:
    for key, kind, name_key in (("d1_databases", "d1", "database_name"), ("kv_namespaces", "kv", "binding"),
                                ("r2_buckets", "r2", "bucket_name")):
        for binding in config.get(key) or []:
            if not isinstance(binding, Mapping) or not isinstance(binding.get("binding"), str):
                continue
            name = binding.get(name_key) if isinstance(binding.get(name_key), str) else binding["binding"]
            found.resources.append(Finding("resource", name, [path], {
                "type": kind, "binding": binding["binding"], "reason": f"wrangler binding {binding['binding']}"}))


def _orm_resources(found: Detection, present: set[str], contents: Mapping[str, str]) -> None:
    schema = _first(present, PRISMA_SCHEMAS)
    if schema is not None:
        text = contents.get(schema, "")
        source = re.search(r"datasource\s+\w+\s*\{[^}]*provider\s*=\s*\"(\w+)\"", text, re.DOTALL)
        engine = source.group(1) if source else "unknown"
        _database(found, engine, schema, "Prisma datasource")
    config = _first(present, DRIZZLE_CONFIGS)
    if config is not None:
        text = contents.get(config, "")
        dialect = re.search(r"""(?:dialect|driver)["']?\s*:\s*['"`]([\w-]+)['"`]""", text)
        engine = dialect.group(1) if dialect else "unknown"
        if "d1" in engine:
            engine = "sqlite"
        _database(found, engine, config, "Drizzle config")


def _database(found: Detection, engine: str, path: str, what: str) -> None:
    engine = {"postgres": "postgresql", "pg": "postgresql", "turso": "sqlite", "libsql": "sqlite"}.get(engine, engine)
    if engine == "sqlite":
        if not any(f.details.get("type") == "d1" for f in found.resources):
            found.resources.append(Finding("database", "db", [path], {"type": "d1", "binding": "DB", "engine": engine,
                                                                       "reason": f"{what} uses SQLite"}))
        else:
            next(f for f in found.resources if f.details.get("type") == "d1").evidence.append(path)
    else:
        found.resources.append(Finding("database", "db", [path], {"type": "database", "engine": engine,
                                                                   "reason": f"{what} uses {engine}"}))
        found.notes.append(f"The {what} uses {engine}: provide its connection string as an env var "
                           "(only SQLite maps to a D1 database).")


def _env_vars(found: Detection, present: set[str], contents: Mapping[str, str],
              wrangler: Mapping[str, Any] | None, wrangler_path: str | None) -> None:
    names: dict[str, list[str]] = {}
    for path in ENV_EXAMPLE_FILES:
        if path not in present:
            continue
        for line in contents.get(path, "").splitlines():
            match = _ENV_NAME.match(line)
            if match and not line.lstrip().startswith("#"):
                names.setdefault(match.group(1), []).append(path)
    if wrangler and isinstance(wrangler.get("vars"), Mapping) and wrangler_path:
        for name in wrangler["vars"]:
            names.setdefault(str(name), []).append(wrangler_path)
    found.env_vars = [Finding("env_var", name, evidence) for name, evidence in sorted(names.items())]


# --- parsing helpers -------------------------------------------------------------------------


def _clean_dir(value: str) -> str:
    cleaned = value.strip().removeprefix("./").rstrip("/")
    return cleaned or "."


def _json(text: str | None, path: str, notes: list[str]) -> dict[str, Any] | None:
    """A JSON config's object; {} (and a note naming the file) when it does not parse."""
    if text is None:
        return None
    try:
        value = parse_json(text)
    except Unparseable as exc:
        notes.append(f"{path} could not be read ({exc}): detected from the other files.")
        return {}
    return value if isinstance(value, dict) else {}


def _wrangler(path: str, text: str | None, notes: list[str]) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        if path.endswith(".toml"):
            return parse_toml(text)
        value = parse_json(strip_jsonc(text))
        return value if isinstance(value, dict) else {}
    except Unparseable as exc:
        notes.append(f"{path} could not be read ({exc}): detected from the other files.")
        return {}


def strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas (wrangler.jsonc) → JSON. Strings are kept intact."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i + 2)
            i = n if i < 0 else i + 2
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))
