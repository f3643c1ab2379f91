"""`fastest atlas index|search` and `fastest next [list|generate]`: the project's Atlas and next steps,
for the project of the linked folder (or `--project-id`).

Only argparse is imported at module level (its `*_arguments` build the parsers of `fastest atlas` and `next`);
the HTTP client and the client commands' helpers are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing: `fastest --help` builds this parser
if TYPE_CHECKING:
    from typing import Mapping

COMMANDS = frozenset({"atlas", "next"})
STEP_VERBS = {"start": "started", "finish": "completed", "dismiss": "dismissed"}  # verb → the status it sets
POLL_SECONDS = 1.0


def atlas_arguments(atlas: argparse.ArgumentParser) -> None:
    atlas_commands = atlas.add_subparsers(dest="atlas_command", required=True)
    index = atlas_commands.add_parser("index", help="index the project's latest snapshot (incremental), with progress")
    index.add_argument("--embed", action="store_true", help="also embed the source for searching by meaning")
    index.add_argument("--snapshot", help="index this snapshot (snp_…) instead of main's head")
    search = atlas_commands.add_parser("search", help="search concepts by name or described behaviour")
    search.add_argument("query", nargs="+", help="words, a symbol name, or what the code does")
    search.add_argument("-n", "--limit", type=int, default=10, help="how many results (1-100, default 10)")
    for parser in (index, search):
        parser.add_argument("--project-id", help="the project (default: the linked folder's)")
        parser.add_argument("--dir", help="the linked folder (default: the one containing the current directory)")
        parser.add_argument("--json", action="store_true")


def next_arguments(next_parser: argparse.ArgumentParser) -> None:
    next_parser.add_argument("action", nargs="?", choices=("list", "generate", *STEP_VERBS), default="list")
    next_parser.add_argument("step_id", nargs="?", metavar="STEP", help="with start, finish or dismiss: the step (nxs_…)")
    next_parser.add_argument("--status", default="pending", choices=("pending", "started", "completed", "dismissed"))
    next_parser.add_argument("--project-id")
    next_parser.add_argument("--dir")
    next_parser.add_argument("--json", action="store_true")


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    from fastest.cli.context import run_reporting

    env = os.environ if env is None else env
    if args.command == "next":
        return run_reporting(_next, args, env)
    return run_reporting(_index_noting_interrupt if args.atlas_command == "index" else _search, args, env)


def _index_noting_interrupt(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    try:
        return _index(args, env)
    except KeyboardInterrupt:
        from fastest.cli.context import EXIT_FAILED, fail

        return fail("interrupted (indexing goes on on the server)", EXIT_FAILED)


def _project(args: argparse.Namespace, env: Mapping[str, str]):
    from fastest.cli import config
    from fastest.cli.context import linked_workspace

    if args.project_id:
        return args.project_id, config.resolve(env)
    _, state, credentials = linked_workspace(args, env)
    return state.project_id, credentials


def _index(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from fastest.cli.context import EXIT_FAILED, EXIT_OK, client, emit, fail

    project_id, credentials = _project(args, env)
    params = {**({"embed": "true"} if args.embed else {}), **({"snapshot_id": args.snapshot} if args.snapshot else {})}
    with client(credentials) as api:
        result = api.request("POST", f"/v1/projects/{project_id}/atlas/index", params=params, ok=(200, 202)).json()
        started = time.monotonic()
        still = 0
        shown = False  # a progress line is on stderr, to be ended before the result
        while result["status"] == "running":
            progress = result.get("progress") or {}
            if not args.json:
                shown = True
                print(f"\rindexing… {progress.get('files_done', 0)} files, {progress.get('directories_pending', 0)} "
                      f"directories to go ({time.monotonic() - started:.0f} s)", end="", file=sys.stderr, flush=True)
            api.pause(POLL_SECONDS)
            previous = progress.get("files_done")
            result = api.get_json(f"/v1/projects/{project_id}/atlas", params={"limit": 1})["index"]
            still = still + 1 if (result.get("progress") or {}).get("files_done") == previous else 0
            if result["status"] == "running" and still >= 3:
                # Nothing moves in the background (on the edge, between cron runs): asking again
                # does the next bounded step in this request.
                result = api.request("POST", f"/v1/projects/{project_id}/atlas/index", params=params, ok=(200, 202)).json()
                still = 0
        if shown:
            print("", file=sys.stderr)
    if result["status"] == "failed":
        return fail(f"indexing failed: {result.get('error')}", EXIT_FAILED)
    reused = result["reused"]
    lines = [
        f"indexed {result['snapshot_id']}: {result['concepts_created']} concepts, {result['edges_created']} edges written"
        + (f", {result['embeddings_created']} chunks embedded" if result.get("embeddings_created") else ""),
        f"reused {reused['directories']} unchanged directories ({reused['files']} files not read again)",
    ]
    if result.get("parse_errors"):
        lines.append(f"{result['parse_errors']} file(s) did not parse: indexed without symbols")
        failures = result.get("parse_failures") or []
        lines += [f"  {failure['path']}: {failure['parse_error']}" for failure in failures]
        if len(failures) < result["parse_errors"]:
            lines.append(f"  … and {result['parse_errors'] - len(failures)} more")
    emit(args.json, result, lines)
    return EXIT_OK


def _search(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from fastest.cli.context import EXIT_OK, UsageError, client, emit

    if not 1 <= args.limit <= 100:
        raise UsageError("-n must be between 1 and 100")
    project_id, credentials = _project(args, env)
    with client(credentials) as api:
        found = api.request("POST", f"/v1/projects/{project_id}/atlas/search",
                            json={"query": " ".join(args.query), "limit": args.limit}).json()
    lines = []
    for result in found["results"]:
        where = result["path"] + (f":{result['start_line']}" if result.get("start_line") and result["layer"] == "code" else "")
        lines.append(f"{result['layer']:<6} {result['name']:<40} {where}  [{'+'.join(result['matched_by'])}]")
        if result["description"]:
            lines.append(f"       {result['description'][:100]}")
    if not found["results"]:
        lines.append("nothing found (is the Atlas indexed? run fastest atlas index)")
    emit(args.json, found, lines)
    return EXIT_OK


def _next(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from fastest.cli.context import EXIT_OK, UsageError, client, emit

    if (args.action in STEP_VERBS) != (args.step_id is not None):
        raise UsageError(f"fastest next {args.action} takes a step id (nxs_…)" if args.action in STEP_VERBS
                         else f"fastest next {args.action} takes no step id")
    project_id, credentials = _project(args, env)
    with client(credentials) as api:
        if args.action in STEP_VERBS:
            status = STEP_VERBS[args.action]
            api.request("PATCH", f"/v1/projects/{project_id}/next-steps/{args.step_id}", json={"status": status})
            emit(args.json, {"id": args.step_id, "status": status}, [f"{args.step_id} is {status}"])
            return EXIT_OK
        if args.action == "generate":
            document = api.post_json(f"/v1/projects/{project_id}/next-steps/generate", {}, idempotent_create=True).json()
            steps = document["next_steps"]
            source = document["source"]
            header = [f"{document['generated_count']} new step(s) from "
                      + (f"the model {source['provider']}:{source['model']}" if source["kind"] == "model" else "rules")
                      + (f" ({source['note']})" if source.get("note") else "")]
        else:
            document = api.get_json(f"/v1/projects/{project_id}/next-steps", params={"status": args.status})
            steps = document["next_steps"]
            header = [] if steps else [f"no {args.status} next steps; run fastest next generate"]
    lines = header + [f"[{s['priority']:<6}] {s['title']}  ({s['category']}, {s['id']})" for s in steps]
    emit(args.json, document, lines)
    return EXIT_OK
