"""Where Atlas imports lead inside a tree: JavaScript/TypeScript bare specifiers through workspace
package.json files and tsconfig.json, Python absolute imports through source roots only."""

from __future__ import annotations

from fastest.domain.atlas import extract
from fastest.domain.atlas.graph import PathIndex
from fastest.domain.atlas.javascript_resolution import Resolver, resolution_config


def resolver(files: dict[str, bytes]) -> Resolver:
    return Resolver({path: config for path, data in files.items() if (config := resolution_config(path, data))})


def test_package_exports_conditions_patterns_main_and_subpaths():
    configs = resolver({
        "libs/a/package.json": b'{"name": "a", "exports": {".": [{"types": "./a.d.ts", "import": "./src/a.ts"}], '
                               b'"./feature/*": {"node": "./src/features/*.ts"}, "./package.json": "./package.json"}}',
        "libs/b/package.json": b'{"name": "@s/b", "module": "esm/index.js", "main": "cjs/index.js"}',
        "libs/c/package.json": b'{"name": "c"}',
        "libs/broken/package.json": b'{"name": ',
    })
    tree = PathIndex(["libs/a/src/a.ts", "libs/a/src/features/x.ts", "libs/b/esm/index.js", "libs/b/cjs/index.js",
                      "libs/b/util/path.js", "libs/c/index.ts"])
    at = "app/main.ts"
    assert tree.resolve(configs.candidates(at, "a"), suffix=False) == "libs/a/src/a.ts"
    assert tree.resolve(configs.candidates(at, "a/feature/x"), suffix=False) == "libs/a/src/features/x.ts"
    assert configs.candidates(at, "a/not-exported") == ()  # `exports` closes everything else
    assert tree.resolve(configs.candidates(at, "@s/b"), suffix=False) == "libs/b/esm/index.js"  # module before main
    assert tree.resolve(configs.candidates(at, "@s/b/util/path"), suffix=False) == "libs/b/util/path.js"
    assert tree.resolve(configs.candidates(at, "c"), suffix=False) == "libs/c/index.ts"
    assert configs.candidates(at, "react") == ()


def test_the_nearest_tsconfig_paths_longest_prefix_then_base_url():
    configs = resolver({
        "tsconfig.json": b'{"compilerOptions": {"paths": {"@/*": ["src/*"]}}}',
        "web/tsconfig.json": b'/* web */ {"compilerOptions": {"baseUrl": "src", "paths": {"@/*": ["app/*"], '
                             b'"@/ui/*": ["design/*", "app/ui/*"], "env": ["config/env.ts"],},},}',
    })
    tree = PathIndex(["src/x.ts", "web/src/app/x.ts", "web/src/app/ui/button.tsx", "web/src/config/env.ts",
                      "web/src/lib/date.ts"])
    assert tree.resolve(configs.candidates("src/main.ts", "@/x"), suffix=False) == "src/x.ts"
    assert tree.resolve(configs.candidates("web/src/main.ts", "@/x"), suffix=False) == "web/src/app/x.ts"
    assert tree.resolve(configs.candidates("web/src/main.ts", "@/ui/button"), suffix=False) == "web/src/app/ui/button.tsx"
    assert tree.resolve(configs.candidates("web/src/main.ts", "env"), suffix=False) == "web/src/config/env.ts"
    assert tree.resolve(configs.candidates("web/src/main.ts", "lib/date"), suffix=False) == "web/src/lib/date.ts"  # baseUrl


def test_python_absolute_imports_resolve_from_source_roots_only():
    tree = PathIndex(["src/shop/__init__.py", "src/shop/json.py", "src/shop/models.py", "src/shop/yaml.py",
                      "src/shop/api/__init__.py", "src/shop/api/orders.py", "tools/json.py"])
    facts = extract("src/shop/api/orders.py", b"import json\nimport yaml\nfrom shop import models\nimport shop.json\n")
    resolved = {i.spec: tree.resolve(i.candidates, suffix=i.suffix) for i in facts.imports}
    assert resolved["json"] is None  # the standard library, never a package's own json.py
    assert resolved["yaml"] is None  # an installed package: `shop/` is a package, not a source root
    assert resolved["shop"] == "src/shop/models.py" and resolved["shop.json"] == "src/shop/json.py"
