"""Benchmark: `fastest deploy` of a 1,000-file static site to the local provider.

Starts the real server (`fastest serve`) on a free port in a temporary data directory, generates a
deterministic static site (1,000 files: HTML pages, CSS, JS, small images), then measures:

  (a) the first deploy: time until the deployment is `ready` (push + detect + deploy, in-process over
      real HTTP, as `fastest deploy` runs it), then the time until the URL serves every file
      byte-identical (each fetched through the server with the deployment's `*.localhost` Host);
  (b) a re-deploy after changing ONE file: files uploaded (must be 1) and time, median of --rounds;
  (c) a one-file `fastest push` of the same folder, median of --rounds, for the ratio;
  (d) a Worker with code (TypeScript entry importing 20 modules, `--worker-assets` static files)
      deployed to a loopback Cloudflare stand-in with `--provider cloudflare`, then ONE source file
      changed and re-deployed: the re-deploy must upload one module (the bundle) and no asset to
      Cloudflare; its time, median of --rounds (esbuild bundles each time, as `wrangler deploy` does).
Budget: (b) ≤ 2× (c), medians; (d) one module and no asset per re-deploy.

    .venv/bin/python bench/deploy.py [--files 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from fastest.cli.client import ApiClient
from fastest.cli.deploy import deploy
from fastest.cli.push import push
from fastest.cli.state import Folder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' Cloudflare stand-in  # noqa: E402

from tests.api.cloudflare_standin import ACCOUNT, TOKEN, CloudflareStandIn  # noqa: E402

FASTEST = [sys.executable, "-m", "fastest.cli.main"]
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
BUDGET = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def generate_site(root: Path, files: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    paths = ["index.html", "404.html"]
    kinds = [("html", 0.55), ("css", 0.1), ("js", 0.2), ("svg", 0.15)]
    while len(paths) < files:
        kind = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        section = f"section{rng.randrange(20):02d}"
        paths.append(f"{section}/page{len(paths):04d}/index.html" if kind == "html" else f"assets/{section}/f{len(paths):04d}.{kind}")
    for path in paths:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        body = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz <>/=\n") for _ in range(rng.randrange(200, 4000)))
        target.write_text(f"<!-- {path} -->\n{body}", encoding="utf-8")
    return paths


def wait_healthy(base_url: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not start")
        time.sleep(0.1)


def quiet_deploy(folder: Folder, api: ApiClient, provider: str | None = None) -> dict:
    with contextlib.redirect_stderr(io.StringIO()):
        return deploy(folder, folder.load(), api, build=False, provider=provider)


def serve_all(base_url: str, url: str, root: Path, paths: list[str]) -> float:
    """Seconds until every path is served byte-identical from the deployment."""
    host = urlsplit(url).netloc
    started = time.perf_counter()
    with httpx.Client(base_url=base_url, headers={"Host": host}, timeout=10) as client:
        pending = list(paths)
        while pending:
            pending = [p for p in pending if client.get("/" + p).content != (root / p).read_bytes()]
            if pending and time.perf_counter() - started > 60:
                raise SystemExit(f"{len(pending)} files never served identically, e.g. {pending[0]}")
    return time.perf_counter() - started


def generate_worker(root: Path, assets: int, seed: int) -> list[str]:
    """A Worker project: wrangler.toml, src/index.ts importing src/lib/m00.ts … m19.ts, public/."""
    rng = random.Random(seed)
    modules = [f"src/lib/m{i:02d}.ts" for i in range(20)]
    files = {
        "wrangler.toml": 'name = "bench"\nmain = "src/index.ts"\ncompatibility_date = "2025-06-01"\n'
                         '[assets]\ndirectory = "public"\nbinding = "ASSETS"\n',
        "src/index.ts": "".join(f'import {{ f{i:02d} }} from "./lib/m{i:02d}";\n' for i in range(20))
        + "export default { async fetch(request: Request, env: { ASSETS: Fetcher }): Promise<Response> {\n"
        + '  if (new URL(request.url).pathname === "/api") return Response.json(['
        + ", ".join(f"f{i:02d}()" for i in range(20)) + "]);\n  return env.ASSETS.fetch(request);\n} };\n",
        **{m: f"export function f{i:02d}(): number {{ return {rng.randrange(1000)}; }}\n" for i, m in enumerate(modules)},
    }
    for n in range(assets):
        files[f"public/page{n:04d}.html"] = f"<h1>{n}</h1>" + "".join(rng.choice("abcdef \n") for _ in range(400))
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return modules


def worker_case(base_url: str, token: str, tmp: Path, cf: CloudflareStandIn, env: dict, args: argparse.Namespace) -> bool:
    """(d): deploy a Worker with code to the stand-in, then time one-source-file re-deploys."""
    saved = httpx.post(f"{base_url}/v1/infrastructure/credentials", headers={"Authorization": f"Bearer {token}"},
                       json={"provider": "cloudflare", "api_token": TOKEN, "metadata": {"account_id": ACCOUNT}}, timeout=10)
    saved.raise_for_status()
    project = tmp / "worker"
    modules = generate_worker(project, args.worker_assets, args.seed)
    subprocess.run([*FASTEST, "init", "--project", "worker"], cwd=project, env=env, check=True, capture_output=True)
    folder = Folder(project)
    rng = random.Random(args.seed)
    os.environ.setdefault("FASTEST_ESBUILD", str(ESBUILD))
    with ApiClient(base_url, token) as api:
        started = time.perf_counter()
        first = quiet_deploy(folder, api, provider="cloudflare")
        print(f"(d) Worker with code: first deploy to the Cloudflare stand-in ready in {time.perf_counter() - started:.2f} s "
              f"({len(cf.assets)} assets on Cloudflare, status {first['status']})")
        times, sent = [], []
        for round_ in range(args.rounds):
            path = project / rng.choice(modules)
            path.write_text(path.read_text(encoding="utf-8").replace("return ", f"return {round_ + 1} + "), encoding="utf-8")
            before = len(cf.requests)
            started = time.perf_counter()
            again = quiet_deploy(folder, api, provider="cloudflare")
            times.append(time.perf_counter() - started)
            calls = cf.requests[before:]
            version = next(r for r in calls if r["method"] == "POST" and r["path"].split("?")[0].endswith("/versions"))
            sent.append((sum(1 for r in calls if "/workers/assets/upload" in r["path"]),
                         version["body"].count(b"application/javascript+module"), again["files_uploaded"]))
    print(f"    one-source-file re-deploy: {statistics.median(times) * 1000:.0f} ms, median of {args.rounds} "
          f"(per round: asset uploads, modules in the version, files pushed to the server = {sent})")
    ok = all(assets == 0 and modules_sent == 1 for assets, modules_sent, _ in sent) and not cf.problems
    print(f"    one module and no asset per re-deploy: {'OK' if ok else 'NO'}")
    return ok


def change_one(root: Path, path: str, round_: int) -> None:
    target = root / path
    target.write_text(target.read_text(encoding="utf-8") + f"\n<!-- change {round_} {time.time_ns()} -->", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--worker-assets", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fastest-bench-deploy-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir, config_dir, site = tmp / "data", tmp / "config", tmp / "site"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        cf = CloudflareStandIn().__enter__()
        server = subprocess.Popen([*FASTEST, "serve", "--port", str(port), "--data-dir", str(data_dir)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  env={**os.environ, "FASTEST_RATE_LIMIT_PER_MINUTE": str(10**9),
                                       "FASTEST_CLOUDFLARE_API_BASE": cf.base})
        try:
            wait_healthy(base_url, server)
            token = subprocess.run([*FASTEST, "admin", "token", "--email", "bench@example.com", "--data-dir", str(data_dir)],
                                   check=True, capture_output=True, text=True).stdout.strip()
            paths = generate_site(site, args.files, args.seed)
            env = {**os.environ, "FASTEST_CONFIG_DIR": str(config_dir)}
            subprocess.run([*FASTEST, "login", "--server", base_url, "--token", token], cwd=tmp, env=env, check=True,
                           capture_output=True)
            subprocess.run([*FASTEST, "init", "--project", "site"], cwd=site, env=env, check=True, capture_output=True)
            folder = Folder(site)
            time.sleep(0.1)
            rng = random.Random(args.seed)
            with ApiClient(base_url, token) as api:
                started = time.perf_counter()
                first = quiet_deploy(folder, api)
                ready = time.perf_counter() - started
                served = serve_all(base_url, first["url"], site, paths)
                print(f"site: {len(paths)} files, {sum((site / p).stat().st_size for p in paths) / 1e6:.1f} MB")
                print(f"(a) first deploy: ready in {ready:.2f} s ({first['files_uploaded']} files uploaded); "
                      f"every file served byte-identical {served:.2f} s later")
                deploy_times, uploads = [], []
                for round_ in range(args.rounds):
                    change_one(site, rng.choice(paths), round_)
                    started = time.perf_counter()
                    again = quiet_deploy(folder, api)
                    deploy_times.append(time.perf_counter() - started)
                    uploads.append(again["files_uploaded"])
                changed = rng.choice(paths)
                change_one(site, changed, 99)
                final = quiet_deploy(folder, api)
                assert serve_all(base_url, final["url"], site, [changed]) < 60
                push_times = []
                for round_ in range(args.rounds):
                    change_one(site, rng.choice(paths), 100 + round_)
                    state = folder.load()
                    started = time.perf_counter()
                    push(folder, state, api, progress=False)
                    push_times.append(time.perf_counter() - started)
            deploy_s, push_s = statistics.median(deploy_times), statistics.median(push_times)
            print(f"(b) one-file re-deploy: {deploy_s * 1000:.0f} ms, median of {args.rounds} "
                  f"(files uploaded per round: {uploads})")
            print(f"(c) one-file push:      {push_s * 1000:.0f} ms, median of {args.rounds}")
            ratio = deploy_s / push_s
            verdict = "OK" if ratio <= BUDGET and all(u == 1 for u in uploads) else "OVER BUDGET"
            print(f"re-deploy / push = {ratio:.2f}x (budget {BUDGET:.0f}x): {verdict}")
            worker_ok = worker_case(base_url, token, tmp, cf, env, args)
            return 0 if verdict == "OK" and worker_ok else 1
        finally:
            server.terminate()
            server.wait(timeout=15)
            cf.__exit__(None, None, None)


if __name__ == "__main__":
    raise SystemExit(main())
