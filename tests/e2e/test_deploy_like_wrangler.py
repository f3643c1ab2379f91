"""`fastest deploy --provider cloudflare` and `wrangler deploy` of the same Worker folder, against the
same Cloudflare stand-in: wrangler is the judge of what a deploy sends. A TypeScript Worker (static
assets, `_headers`/`_redirects`, an `.assetsignore`, D1 and KV bindings) and a Python Worker (its
modules, vendored `python_modules/`, assets). Both runs must make the same calls and send the same
asset manifest, the same assets under the same keys with the same Content-Types, the same Worker
metadata (binding ids aside: ours are the databases the deploy provisioned) and byte-identical modules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn, parse_multipart
from tests.e2e.conftest import Cli, admin_token, running_server, write

REPO = Path(__file__).resolve().parents[2]
WRANGLER = REPO / "node_modules" / ".bin" / "wrangler"
ESBUILD = REPO / "node_modules" / ".bin" / "esbuild"

pytestmark = [
    pytest.mark.wrangler,
    pytest.mark.skipif(not WRANGLER.exists(), reason="wrangler is not installed: run `npm ci`"),
]

# One file per extension a site commonly has: each one's Content-Type is compared with wrangler's.
EXTENSIONS = ("js", "mjs", "json", "svg", "png", "jpg", "gif", "webp", "avif", "ico", "woff", "woff2", "ttf",
              "wasm", "xml", "webmanifest", "md", "csv", "txt", "map", "pdf", "mp4", "webm", "mp3", "ts", "zip")
FOLDER = {
    "wrangler.toml": 'name = "shop"\nmain = "src/index.ts"\ncompatibility_date = "2025-06-01"\n'
                     '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n'
                     '[[d1_databases]]\nbinding = "DB"\ndatabase_name = "main"\n'
                     'database_id = "11111111-2222-3333-4444-555555555555"\n'
                     '[[kv_namespaces]]\nbinding = "CACHE"\nid = "0123456789abcdef0123456789abcdef"\n',
    "src/index.ts": 'import { greet } from "./greet";\n'
                    "export default {\n"
                    "  async fetch(request: Request, env: { ASSETS: Fetcher }): Promise<Response> {\n"
                    '    if (new URL(request.url).pathname === "/api/hello") return new Response(greet("world"));\n'
                    "    return env.ASSETS.fetch(request);\n  },\n};\n",
    "src/greet.ts": "export const greet = (name: string): string => `hello, ${name}`;\n",
    "public/index.html": "<h1>héllo</h1>",
    "public/same.html": "same",
    "public/same.txt": "same",
    "public/sub/app.css": "a{}",
    "public/data.unknownext": "\x01",
    "public/_headers": "/*\n  X-Frame-Options: DENY\n",
    "public/_redirects": "/old /new 301\n",
    "public/.assetsignore": "private/\n",
    "public/private/notes.txt": "not for the web",
    **{f"public/files/sample.{ext}": f"sample {ext}" for ext in EXTENSIONS},
}
# The calls that make a deploy (wrangler also reads the Worker's settings and its deployments).
COMPARED = re.compile(r"/(workers/services/|workers/scripts/[^/?]+(/assets-upload-session|/versions|/deployments|/subdomain)?"
                      r"(\?|$)|workers/assets/upload|workers/subdomain)")


def wrangler_env(home: Path, api_base: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("FASTEST_")},
            "CI": "true", "WRANGLER_SEND_METRICS": "false", "NO_UPDATE_NOTIFIER": "1", "NO_COLOR": "1",
            "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
            "CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_ACCOUNT_ID": ACCOUNT, "CLOUDFLARE_API_BASE_URL": api_base}


def sent(requests: list[dict], script: str) -> dict:
    """What one deploy of `script` sent: its calls, manifest, assets, metadata and modules."""
    mine = [r for r in requests if f"/scripts/{script}" in r["path"] or f"/services/{script}" in r["path"]
            or "/workers/assets/upload" in r["path"] or r["path"].endswith("/workers/subdomain")]
    calls = [(r["method"], r["path"].replace(script, "SCRIPT")) for r in mine if COMPARED.search(r["path"])
             and not (r["method"] == "GET" and r["path"].endswith("/deployments"))]
    session = next(r for r in mine if r["path"].endswith("/assets-upload-session"))
    assets = {}
    for upload in (r for r in mine if "/workers/assets/upload" in r["path"]):
        for name, filename, declared, data in parse_multipart(upload["headers"]["content-type"], upload["body"]):
            assets[name] = (filename, declared, data)
    [worker] = [r for r in mine if r["method"] == "PUT" and f"/scripts/{script}?" in r["path"]]
    parts = {name: (filename, declared, data) for name, filename, declared, data
             in parse_multipart(worker["headers"]["content-type"], worker["body"])}
    metadata = json.loads(parts.pop("metadata")[2])
    return {"calls": calls, "manifest": json.loads(session["body"])["manifest"], "assets": assets,
            "metadata": metadata, "modules": parts}


def comparable(metadata: dict) -> dict:
    """The metadata without what differs by design: binding ids, the assets' JWT, our annotation."""
    bindings = sorted(({"name": b["name"], "type": b["type"]} for b in metadata["bindings"]), key=lambda b: b["name"])
    assets = {**metadata["assets"], "jwt": "…"}
    return {**{k: v for k, v in metadata.items() if k != "annotations"}, "bindings": bindings, "assets": assets}


def deploy_both(tmp_path: Path, files: dict, project: str) -> tuple[dict, dict, CloudflareStandIn, str]:
    """Deploy the folder with `fastest deploy`, then with `wrangler deploy`; what each sent."""
    folder = tmp_path / project
    for path, content in files.items():
        write(folder / path, content)
    with CloudflareStandIn() as cf, running_server(tmp_path / "data", {"FASTEST_CLOUDFLARE_API_BASE": cf.base}) as (base_url, _):
        token = admin_token(tmp_path / "data", f"{project}@example.com")
        cli = Cli(tmp_path / "config")
        cli.env["FASTEST_ESBUILD"] = str(ESBUILD)
        cli("login", "--server", base_url, "--token", token, cwd=tmp_path)
        saved = httpx.post(f"{base_url}/v1/infrastructure/credentials", headers={"Authorization": f"Bearer {token}"},
                           json={"provider": "cloudflare", "api_token": TOKEN, "metadata": {"account_id": ACCOUNT}},
                           timeout=10)
        assert saved.status_code == 200, saved.text
        cli("init", "--project", project, cwd=folder)
        done = cli("deploy", "--provider", "cloudflare", cwd=folder)
        url = done.stdout.strip().splitlines()[-1]
        ours = sent(cf.requests, url.removeprefix("https://").split(".")[0])

        cf.assets.clear()  # so that wrangler uploads every asset too, and its parts can be compared
        requests_before = len(cf.requests)
        wrangler = subprocess.run([str(WRANGLER), "deploy"], cwd=folder, env=wrangler_env(tmp_path / "home", cf.base),
                                  capture_output=True, text=True, timeout=300)
        assert wrangler.returncode == 0, wrangler.stdout + wrangler.stderr
        theirs = sent(cf.requests[requests_before:], project)
    return ours, theirs, cf, done.stderr


def assert_same(ours: dict, theirs: dict) -> None:
    assert ours["calls"][:2] == theirs["calls"][:2]  # the Worker looked up, the assets' session opened
    assert sorted(ours["calls"]) == sorted(theirs["calls"])  # uploads run in parallel: their order varies
    assert ours["manifest"] == theirs["manifest"]
    assert ours["assets"] == theirs["assets"]  # keys, Content-Types and base64 bodies
    assert comparable(ours["metadata"]) == comparable(theirs["metadata"])
    assert ours["modules"] == theirs["modules"]  # names, types and bytes


def test_a_typescript_worker_is_sent_as_wrangler_sends_it(tmp_path: Path):
    ours, theirs, cf, said = deploy_both(tmp_path, FOLDER, "shop")
    assert cf.problems == []
    assert "bundled src/index.ts → index.js" in said
    assert_same(ours, theirs)
    assert "/_headers" not in ours["manifest"] and "/private/notes.txt" not in ours["manifest"]
    assert len(ours["assets"]) == len(EXTENSIONS) + 5
    assert list(ours["modules"]) == ["index.js"] and b"hello, ${name}" in ours["modules"]["index.js"][2]


PYTHON = {
    "wrangler.toml": 'name = "pyshop"\nmain = "src/entry.py"\ncompatibility_date = "2026-04-21"\n'
                     'compatibility_flags = ["python_workers"]\n[vars]\nGREETING = "hi"\n'
                     '[assets]\ndirectory = "public"\n',
    "src/entry.py": "from workers import WorkerEntrypoint, Response\nfrom shop.pages import page\n\n"
                    "class Default(WorkerEntrypoint):\n    async def fetch(self, request):\n"
                    "        return Response(page())\n",
    "src/shop/__init__.py": "",
    "src/shop/pages.py": "def page():\n    return 'hi'\n",
    "src/shop/template.html": "<p>{{ x }}</p>",
    "src/shop/notes.md": "not a module",
    "python_modules/tinylib/__init__.py": "VALUE = 1\n",
    "python_modules/tinylib/data.json": "{}",
    "python_modules/workers/shim.js": "export const shim = 1;\n",
    "public/index.html": "<h1>py</h1>",
    "public/style.css": "h1{}",
}


def test_a_python_worker_is_sent_as_wrangler_sends_it(tmp_path: Path):
    ours, theirs, cf, _ = deploy_both(tmp_path, PYTHON, "pyshop")
    assert cf.problems == []
    assert_same(ours, theirs)
    assert ours["modules"]["entry.py"][1] == "text/x-python"
    assert ours["modules"]["python_modules/workers/shim.js"][1] == "application/javascript+module"
