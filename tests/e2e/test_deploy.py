"""`fastest deploy` against the real server and the local provider: every file of the folder served
byte-identical at the printed URL (by `*.localhost` host and by the path fallback), a one-file
re-deploy uploads one file, a client build deploys its output, a failing build fails clearly."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import Cli, admin_token, write

SITE = {
    "index.html": "<!doctype html><link rel=stylesheet href=/assets/site.css><script src=/assets/app.js></script><h1>Hi</h1>",
    "assets/site.css": "body { font-family: sans-serif }",
    "assets/app.js": "document.title = 'deployed';",
    "blog/first/index.html": "<h1>First post</h1>",
    "img/dot.png": bytes(range(256)) * 4,
}


def fetch_by_host(base_url: str, url: str, path: str) -> httpx.Response:
    """GET `path` of the site at `url` (http://dep-….localhost:PORT/): connect to the server, send its Host."""
    host = urlsplit(url).netloc
    return httpx.get(f"{base_url}/{path}", headers={"Host": host}, timeout=10)


def site_folder(tmp_path: Path, name: str, files: dict) -> Path:
    folder = tmp_path / name
    for path, content in files.items():
        write(folder / path, content)
    return folder


def test_deploy_static_site_then_redeploy_one_change(logged_in: Cli, server, tmp_path: Path):
    base_url, _ = server
    folder = site_folder(tmp_path, "site", SITE)
    logged_in("init", "--project", "site", cwd=folder)
    done = logged_in("deploy", cwd=folder)
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith("http://dep-") and ".localhost:" in url, done.stdout
    assert "detected: static" in done.stderr
    slug = urlsplit(url).hostname.split(".")[0]
    for path in SITE:
        expected = (folder / path).read_bytes()
        by_host = fetch_by_host(base_url, url, path)
        assert by_host.status_code == 200 and by_host.content == expected, path
        by_path = httpx.get(f"{base_url}/_deployments/{slug}/{path}", timeout=10)
        assert by_path.status_code == 200 and by_path.content == expected, path
    assert fetch_by_host(base_url, url, "").content == (folder / "index.html").read_bytes()

    listing = logged_in.json("deployments", cwd=folder)
    assert [d["status"] for d in listing["deployments"]] == ["ready"]

    write(folder / "assets/app.js", "document.title = 'changed';")
    again = json.loads(logged_in("deploy", "--json", cwd=folder).stdout)
    assert again["status"] == "ready" and again["files_uploaded"] == 1
    assert fetch_by_host(base_url, again["url"], "assets/app.js").content == b"document.title = 'changed';"
    # The earlier deployment still serves its own files.
    assert fetch_by_host(base_url, url, "assets/app.js").content == SITE["assets/app.js"].encode()


def _settings(base_url: str, token: str, folder: Path, **fields) -> None:
    state = json.loads((folder / ".fastest" / "workspace.json").read_text())
    response = httpx.put(f"{base_url}/v1/infrastructure/workspaces/{state['workspace_id']}/deployment-settings",
                         headers={"Authorization": f"Bearer {token}"}, json=fields, timeout=10)
    assert response.status_code == 200, response.text


def test_client_build_deploys_its_output_and_a_failing_build_fails_clearly(server, tmp_path: Path):
    base_url, data_dir = server
    token = admin_token(data_dir, "builder@example.com")
    cli = Cli(tmp_path / "config")
    cli("login", "--server", base_url, "--token", token, cwd=tmp_path)
    folder = site_folder(tmp_path, "app", {"src/index.html": "<h1>built</h1>", "src/app.js": "1"})
    cli("init", "--project", "app", cwd=folder)
    _settings(base_url, token, folder, build_command="mkdir -p out && cp src/* out/ && echo copied", output_dir="out")
    done = cli("deploy", cwd=folder)
    url = done.stdout.strip().splitlines()[-1]
    assert "copied" in done.stderr
    assert fetch_by_host(base_url, url, "index.html").content == b"<h1>built</h1>"

    _settings(base_url, token, folder, build_command="echo compiling; echo 'Error: cannot find module x' >&2; exit 3")
    failed = cli("deploy", cwd=folder, check=False)
    assert failed.returncode == 1
    assert "build failed: `echo compiling;" in failed.stderr and "exited 3" in failed.stderr
    assert "Error: cannot find module x" in failed.stderr
    state = json.loads((folder / ".fastest" / "workspace.json").read_text())
    history = httpx.get(f"{base_url}/v1/infrastructure/workspaces/{state['workspace_id']}/deployments",
                        headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["deployments"]
    assert history[0]["status"] == "failed" and "exited 3" in history[0]["error"]
    logs = httpx.get(f"{base_url}/v1/infrastructure/deployments/{history[0]['id']}/logs",
                     headers={"Authorization": f"Bearer {token}"}, timeout=10).json()["logs"]
    assert any("cannot find module x" in line["message"] for line in logs)


def test_deploy_to_cloudflare_through_the_cli(tmp_path: Path):
    from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn, wrangler_key
    from tests.e2e.conftest import running_server

    with CloudflareStandIn() as cf, running_server(tmp_path / "data", {"FASTEST_CLOUDFLARE_API_BASE": cf.base}) as (base_url, _):
        token = admin_token(tmp_path / "data", "cf@example.com")
        cli = Cli(tmp_path / "config")
        cli("login", "--server", base_url, "--token", token, cwd=tmp_path)
        saved = httpx.post(f"{base_url}/v1/infrastructure/credentials", headers={"Authorization": f"Bearer {token}"},
                           json={"provider": "cloudflare", "api_token": TOKEN, "metadata": {"account_id": ACCOUNT}}, timeout=10)
        assert saved.status_code == 200, saved.text
        folder = site_folder(tmp_path, "site", SITE)
        cli("init", "--project", "Edge Site", cwd=folder)
        done = cli("deploy", "--provider", "cloudflare", cwd=folder)
        url = done.stdout.strip().splitlines()[-1]
        assert url.startswith("https://edge-site-") and url.endswith(".acme.workers.dev/"), done.stdout
        assert sorted(cf.assets.values()) == sorted((folder / p).read_bytes() for p in SITE)
        assert cf.problems == []
        write(folder / "assets/app.js", "changed();")
        again = json.loads(cli("deploy", "--provider", "cloudflare", "--json", cwd=folder).stdout)
        assert again["status"] == "ready" and again["files_uploaded"] == 1
        assert cf.assets[wrangler_key(base64.b64encode(b"changed();"), "assets/app.js")] == b"changed();"
        assert TOKEN not in done.stdout + done.stderr


def test_a_worker_whose_code_does_not_bundle_fails_with_esbuilds_message(logged_in: Cli, tmp_path: Path):
    esbuild = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        pytest.skip("esbuild is not installed: run `npm ci`")
    logged_in.env["FASTEST_ESBUILD"] = str(esbuild)
    folder = site_folder(tmp_path, "broken", {
        "wrangler.toml": 'name = "broken"\nmain = "src/index.ts"\ncompatibility_date = "2025-06-01"\n',
        "src/index.ts": "export default { fetch( };\n",
    })
    logged_in("init", "--project", "broken", cwd=folder)
    done = logged_in("deploy", cwd=folder, check=False)
    assert done.returncode == 1
    assert "bundling src/index.ts failed" in done.stderr and "src/index.ts:1:" in done.stderr
    assert logged_in.json("deployments", cwd=folder)["deployments"] == []
