"""Where a JavaScript or TypeScript import specifier leads inside the tree, as Node.js, bundlers and
the TypeScript compiler look: a relative path with or without its extension (TypeScript's `./x.js`
meaning `./x.ts`), a directory's `index` file, a package of the tree by its `package.json`
(`exports`, `module`, `main`), and `tsconfig.json` `paths` (with `baseUrl`)."""

from __future__ import annotations

import posixpath

_RESOLVE_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts")
_INDEX_FILES = tuple(f"index{ext}" for ext in (".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"))


def file_candidates(base: str) -> list[str]:
    """The files a path without resolution rules may mean: itself, with an extension, its index."""
    base = posixpath.normpath(base)
    if base.startswith("./"):
        base = base[2:]
    candidates: list[str] = []
    stem, ext = posixpath.splitext(base)
    if ext in (".js", ".jsx", ".mjs", ".cjs"):  # TypeScript's "./x.js" means ./x.ts
        candidates.append(base)
        ts_ext = {".mjs": (".mts",), ".cjs": (".cts",)}.get(ext, (".ts", ".tsx"))
        candidates += [stem + e for e in ts_ext]
    elif ext in _RESOLVE_EXTENSIONS or ext in (".json", ".css", ".vue", ".svelte"):
        candidates.append(base)
    candidates += [base + e for e in _RESOLVE_EXTENSIONS]
    candidates += [f"{base}/{index}" for index in _INDEX_FILES]
    return list(dict.fromkeys(c for c in candidates if c and not c.startswith("../") and c != ".."))


def import_candidates(path: str, spec: str) -> tuple[str, ...]:
    """The repository paths a relative specifier may mean (extensions, then index files)."""
    base = posixpath.normpath(posixpath.join(posixpath.dirname(path), spec))
    if base.startswith("../") or base == "..":
        return ()
    return tuple(file_candidates(base))


RESOLUTION_FILES = ("package.json", "tsconfig.json", "jsconfig.json")
_CONDITIONS = ("source", "import", "module", "browser", "node", "require", "default")


def resolution_config(path: str, data: bytes) -> dict | None:
    """What a `package.json` or `tsconfig.json`/`jsconfig.json` says about resolving imports (None
    for other files, or one that does not parse)."""
    name = posixpath.basename(path)
    if name not in RESOLUTION_FILES:
        return None
    try:
        document = _json_with_comments(data.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    if name == "package.json":
        config = {key: document[key] for key in ("name", "exports", "module", "main") if key in document}
        return {"package": config} if isinstance(config.get("name", ""), str) else None
    options = document.get("compilerOptions") if isinstance(document.get("compilerOptions"), dict) else {}
    paths = options.get("paths") if isinstance(options.get("paths"), dict) else {}
    base_url = options.get("baseUrl") if isinstance(options.get("baseUrl"), str) else None
    if not paths and base_url is None:
        return None
    return {"tsconfig": {"baseUrl": base_url, "paths": {k: [t for t in v if isinstance(t, str)] for k, v in paths.items()
                                                          if isinstance(k, str) and isinstance(v, list)}}}


def _json_with_comments(text: str):
    """tsconfig.json is JSON with comments and trailing commas."""
    import json

    from fastest.domain.detection import strip_jsonc

    return json.loads(strip_jsonc(text))


class Resolver:
    """Bare specifiers inside a tree: a workspace package by its `package.json` name (its `exports`
    map, else `module`/`main`, else the subpath), and `tsconfig.json` `paths` and `baseUrl` of the
    nearest config above the importing file."""

    def __init__(self, configs: dict[str, dict]) -> None:
        self.packages: dict[str, tuple[str, dict]] = {}  # name → (directory, package.json)
        self.tsconfigs: dict[str, dict] = {}  # directory → compilerOptions subset
        for path, config in sorted(configs.items()):
            directory = posixpath.dirname(path)
            if "package" in config and config["package"].get("name"):
                self.packages.setdefault(config["package"]["name"], (directory, config["package"]))
            elif "tsconfig" in config:
                self.tsconfigs.setdefault(directory, config["tsconfig"])

    def candidates(self, importer: str, spec: str) -> tuple[str, ...]:
        found: list[str] = []
        tsconfig_dir = self._nearest_tsconfig(importer)
        if tsconfig_dir is not None:
            found += self._tsconfig_candidates(tsconfig_dir, spec)
        package = spec.split("/")[0] if not spec.startswith("@") else "/".join(spec.split("/")[:2])
        if package in self.packages:
            directory, manifest = self.packages[package]
            found += self._package_candidates(directory, manifest, "." + spec[len(package):])
        return tuple(dict.fromkeys(found))

    def _nearest_tsconfig(self, importer: str) -> str | None:
        directory = posixpath.dirname(importer)
        while True:
            if directory in self.tsconfigs:
                return directory
            if not directory:
                return None
            directory = posixpath.dirname(directory)

    def _tsconfig_candidates(self, directory: str, spec: str) -> list[str]:
        config = self.tsconfigs[directory]
        base = posixpath.join(directory, config.get("baseUrl") or ".")
        found: list[str] = []
        best: tuple[int, list[str]] | None = None
        for pattern, targets in (config.get("paths") or {}).items():
            if "*" in pattern:
                prefix, _, suffix = pattern.partition("*")
                if spec.startswith(prefix) and spec.endswith(suffix) and len(spec) >= len(prefix) + len(suffix):
                    star = spec[len(prefix):len(spec) - len(suffix)]
                    if best is None or len(prefix) > best[0]:  # the longest prefix wins, as in tsc
                        best = (len(prefix), [t.replace("*", star) for t in targets])
            elif pattern == spec:
                best = (len(pattern) + 1, list(targets))
        if best is not None:
            for target in best[1]:
                found += file_candidates(posixpath.join(base, target))
        if config.get("baseUrl") is not None:
            found += file_candidates(posixpath.join(base, spec))
        return found

    def _package_candidates(self, directory: str, manifest: dict, subpath: str) -> list[str]:
        exports = manifest.get("exports")
        if exports is not None:
            target = _export_target(exports, subpath)
            return file_candidates(posixpath.join(directory, target)) if target else []
        if subpath == ".":
            entries = [manifest[key] for key in ("module", "main") if isinstance(manifest.get(key), str)]
            found = [c for entry in entries for c in file_candidates(posixpath.join(directory, entry))]
            return found + file_candidates(posixpath.join(directory, "index"))
        return file_candidates(posixpath.join(directory, subpath))


def _export_target(exports, subpath: str) -> str | None:
    """The file a package's `exports` gives for a subpath (conditions tried in a bundler's order)."""
    if isinstance(exports, (str, list)) or isinstance(exports, dict) and not any(k.startswith(".") for k in exports):
        exports = {".": exports}
    if not isinstance(exports, dict):
        return None
    if subpath in exports:
        return _condition(exports[subpath], "")
    for pattern, value in exports.items():
        if "*" in pattern:
            prefix, _, suffix = pattern.partition("*")
            if subpath.startswith(prefix) and subpath.endswith(suffix):
                return _condition(value, subpath[len(prefix):len(subpath) - len(suffix)])
    return None


def _condition(value, star: str) -> str | None:
    if isinstance(value, str):
        return value.replace("*", star)
    if isinstance(value, list):
        for item in value:
            found = _condition(item, star)
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key in _CONDITIONS:
            if key in value:
                found = _condition(value[key], star)
                if found:
                    return found
    return None
