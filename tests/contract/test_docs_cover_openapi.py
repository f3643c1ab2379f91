"""The API reference in docs/api/ and `/openapi.json` describe the same routes.

Each route is documented under one heading of the form

    ### `POST /v1/projects/{project_id}/workspaces`

(METHOD, one space, the path exactly as in `/openapi.json`), in the group's file `docs/api/<group>.md`.
This fails when a route of `/openapi.json` has no such heading, when a heading names a route that no
longer exists, or when a section's **Auth** line contradicts the route's `x-fastest-ability`. And no
document of the repository (README.md, docs/) links to a file outside it or to one that is missing.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from fastest.api.deps import ABILITY_EXTENSION, ANY_ABILITY, PUBLIC_EXTENSION
from fastest.app import create_app

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "api"
HEADING = re.compile(r"^### `([A-Z]+) (/[^`\s]*)`\s*$", re.MULTILINE)
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def openapi_routes() -> dict[tuple[str, str], dict]:
    schema = create_app(lambda scope: None).openapi()
    return {
        (method.upper(), path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def documented() -> dict[tuple[str, str], tuple[Path, str]]:
    """(METHOD, path) → (file, the section's text up to the next heading)."""
    sections: dict[tuple[str, str], tuple[Path, str]] = {}
    seen: Counter = Counter()
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        matches = list(HEADING.finditer(text))
        for i, match in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            key = (match.group(1), match.group(2))
            seen[key] += 1
            sections[key] = (path, text[match.end():end])
    twice = [f"{m} {p}" for (m, p), n in seen.items() if n > 1]
    assert not twice, f"routes documented more than once in docs/api/: {twice}"
    return sections


def test_every_route_is_documented_and_every_documented_route_exists():
    routes, docs = openapi_routes(), documented()
    missing = sorted(f"{m} {p}" for m, p in routes.keys() - docs.keys())
    stale = sorted(f"{m} {p} ({docs[(m, p)][0].name})" for m, p in docs.keys() - routes.keys())
    assert not missing, (
        "routes in /openapi.json without a section in docs/api/ (add ### `METHOD /path` to the group's file): "
        f"{missing}"
    )
    assert not stale, f"docs/api/ documents routes that /openapi.json does not have: {stale}"


def test_documented_auth_matches_the_route():
    """Where a section has an **Auth:** line, it says what `/openapi.json` says."""
    routes = openapi_routes()
    wrong = []
    for key, (path, section) in documented().items():
        operation = routes.get(key)
        line = next((l for l in section.splitlines() if l.startswith("**Auth:**")), None)
        if operation is None or line is None:
            continue
        if PUBLIC_EXTENSION in operation:
            ok = line.startswith("**Auth:** none")
        elif operation.get(ABILITY_EXTENSION) == ANY_ABILITY:
            ok = "any valid token" in line
        else:
            ok = f"`{operation.get(ABILITY_EXTENSION)}`" in line
        if operation.get("x-fastest-fresh") and "fresh" not in line:
            ok = False
        if not ok:
            wrong.append(f"{key[0]} {key[1]} ({path.name}): {line}")
    assert not wrong, f"Auth lines that contradict x-fastest-ability / x-fastest-public / x-fastest-fresh: {wrong}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def test_the_documents_link_only_to_files_inside_the_repository():
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    bad = []
    for document in documents:
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # a URL or an anchor in the same page
            resolved = (document.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                bad.append(f"{document.relative_to(ROOT)} → {target}")
    assert not bad, f"links to files outside the repository or missing: {bad}"
