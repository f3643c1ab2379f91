"""Detection over fixtures shaped like real projects (create-vite, create-next-app with static export,
create-astro, a plain HTML site, `npm create cloudflare` Workers, FastAPI/Django apps, Prisma and
Drizzle schemas). Each fixture gives the tree's paths and the text of the files detection reads."""

from __future__ import annotations

import json

from fastest.domain.detection import detect, files_to_read, strip_jsonc


def run(files: dict[str, str], extra_paths: tuple[str, ...] = ()):
    paths = [*files, *extra_paths]
    wanted = files_to_read(paths)
    return detect(paths, {p: files[p] for p in wanted if p in files})


def package(deps=None, dev=None, scripts=None) -> str:
    return json.dumps({"name": "app", "private": True, "scripts": scripts or {}, "dependencies": deps or {},
                       "devDependencies": dev or {}})


def test_vite_react_app():
    found = run({
        "package.json": package({"react": "^18.3.1"}, {"vite": "^5.4.0", "@vitejs/plugin-react": "^4.3.1"},
                                {"dev": "vite", "build": "tsc -b && vite build", "preview": "vite preview"}),
        "vite.config.ts": "import { defineConfig } from 'vite'\nexport default defineConfig({ plugins: [react()] })\n",
        "index.html": "<!doctype html><div id=root></div>",
    }, ("src/main.tsx", "src/App.tsx", "package-lock.json", "public/vite.svg"))
    assert (found.framework, found.runtime, found.static) == ("vite", "static", True)
    assert found.build_command == "npm run build" and found.output_dir == "dist"
    assert found.evidence["framework"] == ["package.json", "vite.config.ts"]
    assert found.package_manager == "npm"


def test_vite_with_custom_out_dir_and_pnpm():
    found = run({
        "package.json": package(dev={"vite": "5"}, scripts={"build": "vite build"}),
        "vite.config.js": "export default { build: { outDir: './build/' } }",
    }, ("pnpm-lock.yaml", "src/main.js"))
    assert found.output_dir == "build" and found.build_command == "pnpm run build"


def test_next_static_export():
    found = run({
        "package.json": package({"next": "14.2.5", "react": "^18"}, scripts={"build": "next build", "dev": "next dev"}),
        "next.config.mjs": "/** @type {import('next').NextConfig} */\nconst nextConfig = {\n  output: 'export',\n};\nexport default nextConfig;\n",
    }, ("app/page.tsx", "app/layout.tsx", "yarn.lock"))
    assert (found.framework, found.runtime, found.static, found.output_dir) == ("nextjs", "static", True, "out")
    assert found.build_command == "yarn run build"
    assert found.evidence["output"] == ["next.config.mjs"]


def test_next_without_export_is_a_node_server():
    found = run({"package.json": package({"next": "14"}, scripts={"build": "next build"}),
                 "next.config.js": "module.exports = { reactStrictMode: true }"})
    assert found.runtime == "node" and not found.static and found.start_command == "npx next start"
    assert any("output: 'export'" in n for n in found.notes)


def test_astro_site():
    found = run({
        "package.json": package({"astro": "^4.15.0"}, scripts={"dev": "astro dev", "build": "astro check && astro build"}),
        "astro.config.mjs": "import { defineConfig } from 'astro/config';\nexport default defineConfig({});\n",
    }, ("src/pages/index.astro", "public/favicon.svg"))
    assert (found.framework, found.static, found.output_dir, found.build_command) == ("astro", True, "dist", "npm run build")


def test_plain_static_html():
    found = run({"index.html": "<h1>hi</h1>"}, ("style.css", "img/logo.png", "about/index.html"))
    assert (found.framework, found.runtime, found.static, found.output_dir) == ("static", "static", True, ".")
    assert found.build_command is None
    assert found.evidence["framework"] == ["index.html"]


def test_worker_with_wrangler_toml_bindings_and_vars():
    found = run({
        "package.json": package(dev={"wrangler": "^3.78.0"}, scripts={"deploy": "wrangler deploy", "dev": "wrangler dev"}),
        "wrangler.toml": """
name = "my-worker"
main = "src/index.ts"
compatibility_date = "2024-09-23"

[vars]
API_HOST = "example.com"

[[d1_databases]]
binding = "DB"
database_name = "prod-db"
database_id = "xxxx"

[[kv_namespaces]]
binding = "SESSIONS"
id = "yyyy"

[[r2_buckets]]
binding = "UPLOADS"
bucket_name = "user-uploads"

[assets]
directory = "./public"
""",
    }, ("src/index.ts",))
    assert (found.framework, found.runtime, found.entry, found.compatibility_date) == ("worker", "workers", "src/index.ts", "2024-09-23")
    assert found.output_dir == "public" and not found.static
    assert [(r.details["type"], r.name, r.details["binding"]) for r in found.resources] == [
        ("d1", "prod-db", "DB"), ("kv", "SESSIONS", "SESSIONS"), ("r2", "user-uploads", "UPLOADS")]
    assert all(r.evidence == ["wrangler.toml"] for r in found.resources)
    assert [(e.name, e.evidence) for e in found.env_vars] == [("API_HOST", ["wrangler.toml"])]
    assert [s["type"] for s in found.suggested_resources()] == ["d1", "kv", "r2"]


def test_worker_with_wrangler_jsonc():
    found = run({"wrangler.jsonc": """{
  // Generated by `npm create cloudflare`
  "$schema": "node_modules/wrangler/config-schema.json",
  "name": "assets-only",
  "compatibility_date": "2025-04-01",
  "assets": { "directory": "./dist", }, /* static only */
  "kv_namespaces": [ { "binding": "CACHE", "id": "abc//def" }, ],
}"""})
    assert found.framework == "worker" and found.output_dir == "dist" and found.static
    assert [(r.details["type"], r.name) for r in found.resources] == [("kv", "CACHE")]


def test_strip_jsonc_keeps_strings():
    assert json.loads(strip_jsonc('{"a": "x//y /* z */", // c\n "b": [1,],}')) == {"a": "x//y /* z */", "b": [1]}


def test_fastapi_app_with_requirements():
    found = run({"requirements.txt": "fastapi==0.115.0\nuvicorn[standard]\n", "main.py": "app = FastAPI()"})
    assert (found.framework, found.runtime) == ("fastapi", "python")
    assert found.start_command.startswith("uvicorn main:app")
    assert found.evidence["framework"] == ["requirements.txt"]


def test_django_project():
    found = run({"manage.py": "#!/usr/bin/env python", "pyproject.toml": '[project]\ndependencies = ["django>=5"]\n'},
                ("mysite/settings.py",))
    assert (found.framework, found.runtime) == ("django", "python")


def test_flask_in_pyproject():
    found = run({"pyproject.toml": '[project]\nname = "x"\ndependencies = ["flask>=3", "gunicorn"]\n', "app.py": ""})
    assert found.framework == "flask" and "flask --app app" in found.start_command


def test_prisma_sqlite_suggests_d1_and_env_example():
    found = run({
        "package.json": package({"next": "14", "@prisma/client": "5"}, scripts={"build": "next build"}),
        "prisma/schema.prisma": 'generator client {\n  provider = "prisma-client-js"\n}\n\ndatasource db {\n  provider = "sqlite"\n  url      = env("DATABASE_URL")\n}\n',
        ".env.example": "# copy to .env\nDATABASE_URL=\"file:./dev.db\"\nexport NEXTAUTH_SECRET=\nSTRIPE_KEY=sk_test\n",
    })
    assert [(r.details["type"], r.evidence) for r in found.resources] == [("d1", ["prisma/schema.prisma"])]
    assert [(e.name, e.evidence) for e in found.env_vars] == [
        ("DATABASE_URL", [".env.example"]), ("NEXTAUTH_SECRET", [".env.example"]), ("STRIPE_KEY", [".env.example"])]


def test_drizzle_postgres_is_a_requirement_not_a_suggestion():
    found = run({
        "package.json": package({"drizzle-orm": "0.33", "vite": "5"}, scripts={"build": "vite build"}),
        "drizzle.config.ts": "export default defineConfig({ schema: './src/db/schema.ts', dialect: 'postgresql' })",
    })
    requirements = found.requirements()
    assert requirements["resources"][0]["type"] == "database" and requirements["resources"][0]["engine"] == "postgresql"
    assert found.suggested_resources() == []
    assert requirements["build"] == {"needed": True, "command": "npm run build", "output_dir": "dist"}


def test_drizzle_d1_driver_maps_to_d1():
    found = run({"drizzle.config.ts": "export default { driver: 'd1-http', schema: 'x' }", "index.html": ""})
    assert [r.details["type"] for r in found.resources] == ["d1"] and found.framework == "static"


def test_nothing_recognisable():
    found = run({"README.md": "# notes"})
    assert found.framework is None and found.output_dir is None and not found.static


def test_a_workers_settings_as_wrangler_deploy_sends_them():
    config = json.dumps({
        "main": "./src/index.ts", "compatibility_date": "2025-06-01", "compatibility_flags": ["nodejs_compat"],
        "vars": {"GREETING": "hi", "LIMITS": {"max": 3}}, "minify": True, "keep_names": False,
        "assets": {"directory": "./public/", "binding": "ASSETS", "not_found_handling": "single-page-application",
                   "run_worker_first": ["/api/*"]},
    })
    found = detect(["wrangler.jsonc", "src/index.ts", "public/"], {"wrangler.jsonc": config})
    assert (found.entry, found.config_path, found.output_dir) == ("src/index.ts", "wrangler.jsonc", "public")
    assert found.compatibility_flags == ["nodejs_compat"] and found.to_json()["compatibility_flags"] == ["nodejs_compat"]
    assert found.worker_vars == {"GREETING": "hi", "LIMITS": {"max": 3}}
    assert (found.minify, found.keep_names, found.assets_binding) == (True, False, "ASSETS")
    assert found.assets_settings == {"not_found_handling": "single-page-application", "run_worker_first": ["/api/*"]}
    assert found.static is False and found.evidence["entry"] == ["wrangler.jsonc"]
    # An assets-only Worker has no assets binding (wrangler refuses one), and names no entry.
    static = detect(["wrangler.toml", "dist/"], {"wrangler.toml": '[assets]\ndirectory = "dist"\nbinding = "A"\n'})
    assert (static.entry, static.assets_binding, static.static, static.compatibility_flags) == (None, None, True, [])
