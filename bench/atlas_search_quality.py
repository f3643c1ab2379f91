"""Benchmark: does Atlas search find what a person asks for? Natural-language questions about three
real packages (bench/atlas_search_queries.json: rich and jinja2, the installed Python packages, and
rxjs's TypeScript sources from the differential tests' corpus), each with the symbols that answer
it; the figure is the share of questions answered in the top 5. A held-out set, written after the
ranking was tuned on the first, is reported apart (no goal: it says how far the tuning carries).

Each package is pushed as a project on the local runtime and indexed twice: without embeddings
(text-only search: BM25 and exact names) and with the bundled WordLlama model (hybrid search).

Goals: top-5 rate ≥ 90 % hybrid, ≥ 75 % text-only.

    .venv/bin/python bench/atlas_search_quality.py [--show-misses]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from fastest.config import Settings  # noqa: E402
from fastest.platform.local import open_local_platform  # noqa: E402
from fastest.services import identity, projects  # noqa: E402
from fastest.services.intelligence import atlas, atlas_search  # noqa: E402
from fastest.services.sync import snapshots, workspaces  # noqa: E402

HERE = Path(__file__).resolve().parent


def _store_tree():
    """bench/atlas.py's helper that stores a tree's blobs and manifests."""
    spec = importlib.util.spec_from_file_location("bench_atlas", HERE / "atlas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.store_tree


store_tree = _store_tree()
QUERIES = HERE / "atlas_search_queries.json"
RXJS = HERE.parent / "tests" / "differential" / "node_modules" / "rxjs"


def package_files(name: str) -> dict[str, bytes]:
    if name == "rxjs":
        root, folder = RXJS, RXJS / "src"
        if not folder.is_dir():
            raise SystemExit("rxjs is missing: run `npm ci --prefix tests/differential` first")
        suffixes = (".ts",)
    else:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{name} is not installed")
        folder = Path(spec.origin).parent
        root = folder.parent
        suffixes = (".py",)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name.endswith(suffixes) and not p.name.endswith(".d.ts")}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    document = json.loads(QUERIES.read_text())
    questions = document["packages"]
    held_out = document.get("held_out", {})
    hits = {"text-only": 0, "hybrid": 0}
    held_hits = {"text-only": 0, "hybrid": 0}
    total = 0
    with tempfile.TemporaryDirectory() as work:
        platform = open_local_platform(Path(work) / "data", Settings(atlas_request_files=10**9, atlas_step_files=10**9))
        try:
            user = await identity.ensure_user(platform, "bench@example.com")
            for package, asked in questions.items():
                files = package_files(package)
                root = await store_tree(platform, user["id"], files)
                for mode, embed in (("text-only", False), ("hybrid", True)):
                    project = await projects.create(platform, user["id"], f"{package}-{mode}")
                    workspace = await workspaces.create(platform, user["id"], project["id"], name="main", machine_id=None,
                                                        base_snapshot_id=None, local_path=None)
                    await snapshots.create(platform, user["id"], project["id"], manifest_hash=root, workspace_id=workspace["id"])
                    status, body = await atlas.start(platform, user["id"], project["id"], snapshot_id=None, embed=embed)
                    while body["status"] == "running":
                        body = atlas.index_view(await atlas.run_to_end(platform, project["id"]))
                    found_here = 0
                    for question, answers in asked:
                        results = (await atlas_search.search(platform, user["id"], project["id"], question, 5))["results"]
                        names = [r["name"] for r in results]
                        if any(name in answers for name in names):
                            found_here += 1
                        elif args.show_misses:
                            print(f"  miss [{mode}] {package}: {question!r} → {names}")
                    hits[mode] += found_here
                    print(f"{package:<7} {mode:<9} {found_here}/{len(asked)} in the top 5 ({len(files)} files, "
                          f"{body['concepts_created']} concepts)")
                    for question, answers in held_out.get(package, []):
                        results = (await atlas_search.search(platform, user["id"], project["id"], question, 5))["results"]
                        if any(r["name"] in answers for r in results):
                            held_hits[mode] += 1
                        elif args.show_misses:
                            print(f"  held-out miss [{mode}] {package}: {question!r} → {[r['name'] for r in results]}")
                total += len(asked)
        finally:
            platform.close()
    rates = {mode: hits[mode] / total for mode in hits}
    print(f"top-5 rate over {total} questions: hybrid {rates['hybrid']:.0%}, text-only {rates['text-only']:.0%}")
    held = sum(len(v) for v in held_out.values())
    if held:
        print(f"held-out questions (never tuned on), {held}: hybrid {held_hits['hybrid'] / held:.0%}, "
              f"text-only {held_hits['text-only'] / held:.0%}")
    verdict = {"hybrid ≥ 90 %": rates["hybrid"] >= 0.90, "text-only ≥ 75 %": rates["text-only"] >= 0.75}
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in verdict.items()))
    return 0 if all(verdict.values()) else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
