"""The Atlas on what real projects do: overloads and merged declarations as one concept, a parse
failure reported wherever it was found, exact names found first, standard-library imports that a
package's own module of the same name does not capture, workspace packages and tsconfig paths, and
a whole graph read in a few pages."""

from __future__ import annotations

from tests.api.test_atlas import all_concepts, index, push, pushed
from tests.conftest import assert_problem

FILES = {
    "package.json": b'{"name": "mono", "private": true, "workspaces": ["packages/*", "apps/*"]}\n',
    "packages/ui/package.json": b'{"name": "@acme/ui", "exports": {".": {"import": "./src/index.ts"}, "./icons/*": "./src/icons/*.tsx"}}\n',
    "packages/ui/src/index.ts": b"export { Button } from './button';\n",
    "packages/ui/src/button.tsx": b"export function Button() { return <button />; }\n",
    "packages/ui/src/icons/star.tsx": b"export const Star = () => <svg />;\n",
    "apps/web/tsconfig.json": b'{\n  // the app\'s aliases\n  "compilerOptions": {"baseUrl": ".", "paths": {"@/*": ["src/*"]},},\n}\n',
    "apps/web/src/page.tsx": (b"import { Button } from '@acme/ui';\nimport { Star } from '@acme/ui/icons/star';\n"
                              b"import { api } from '@/lib/api';\nimport React from 'react';\n"
                              b"export default function Page() { return <Button />; }\n"),
    "apps/web/src/lib/api.ts": (b"export function get(path: string): Promise<string>;\nexport function get(path: URL): Promise<string>;\n"
                                b"export function get(path: string | URL) { return fetch(String(path)).then((r) => r.text()); }\n"
                                b"export interface Client { get: typeof get }\nexport class Client {\n"
                                b"  get size() { return 0; }\n  set size(value: number) {}\n}\n"),
    "tools/report/__init__.py": b"",
    "tools/report/abc.py": b"class Base:\n    pass\n",
    "tools/report/json.py": b"def dump(x):\n    return str(x)\n",
    "tools/report/render.py": (b"from abc import ABC\nimport json\nfrom . import json as local_json\n\n\n"
                               b"class Renderer(ABC):\n    @property\n    def width(self):\n        return 1\n\n"
                               b"    @width.setter\n    def width(self, value):\n        pass\n\n    def render(self):\n"
                               b"        return json.dumps({})\n\n\ndef render(x):\n    return Renderer().render()\n"),
    "tools/report/broken.py": b"def broken(:\n    pass\n",
}


def project_with(client, caller, files, name="mono"):
    return pushed(client, caller, files, name)


def imports_of(client, caller, project_id):
    concepts, edges, _ = all_concepts(client, caller, project_id, limit=1000)
    paths = {c["id"]: c["path"] for c in concepts}
    return concepts, {(paths[e["source_id"]], paths[e["target_id"]]) for e in edges if e["kind"] == "imports"}


def test_workspace_packages_and_tsconfig_paths_resolve_like_the_bundler(client, alice):
    project_id, _ = project_with(client, alice, FILES)
    index(client, alice, project_id)
    _, imports = imports_of(client, alice, project_id)
    page = "apps/web/src/page.tsx"
    assert {(page, "packages/ui/src/index.ts"), (page, "packages/ui/src/icons/star.tsx"),
            (page, "apps/web/src/lib/api.ts")} <= imports  # exports ".", exports "./icons/*", paths "@/*"
    assert not any(source == page and target.startswith("react") for source, target in imports)
    assert ("packages/ui/src/index.ts", "packages/ui/src/button.tsx") in imports


def test_python_absolute_imports_of_the_standard_library_never_link_a_sibling(client, alice):
    project_id, _ = project_with(client, alice, FILES)
    index(client, alice, project_id)
    _, imports = imports_of(client, alice, project_id)
    render = "tools/report/render.py"
    assert (render, "tools/report/abc.py") not in imports  # `from abc import ABC`: the standard library
    assert (render, "tools/report/json.py") in imports  # only through `from . import json`


def test_overloads_accessors_and_merged_declarations_are_one_concept(client, alice):
    project_id, _ = project_with(client, alice, FILES)
    index(client, alice, project_id)
    concepts, _ = imports_of(client, alice, project_id)
    code = {(c["path"], c["name"]): c for c in concepts if c["layer"] == "code"}
    assert not any(name.endswith("'") for _, name in code)
    get = code[("apps/web/src/lib/api.ts", "get")]
    assert get["kind"] == "function" and len(get["signatures"]) == 3 and (get["start_line"], get["end_line"]) == (1, 3)
    assert code[("apps/web/src/lib/api.ts", "Client")]["kind"] == "class"
    assert len(code[("apps/web/src/lib/api.ts", "Client")]["signatures"]) == 2
    assert len(code[("apps/web/src/lib/api.ts", "Client.size")]["signatures"]) == 2
    width = code[("tools/report/render.py", "Renderer.width")]
    assert width["kind"] == "method" and width["signatures"] == ["def width(self):", "def width(self, value):"]
    assert code[("tools/report/render.py", "render")]["signatures"] == ["def render(x):"]


def test_parse_errors_are_counted_over_the_whole_index_and_say_why(client, alice):
    project_id, workspace_id = project_with(client, alice, FILES)
    first = index(client, alice, project_id)
    failure = {"path": "tools/report/broken.py", "parse_error": "SyntaxError: invalid syntax (line 1)"}
    assert first["parse_errors"] == 1 and first["parse_failures"] == [failure]
    changed = {**FILES, "apps/web/src/page.tsx": FILES["apps/web/src/page.tsx"] + b"export const x = 1;\n",
               "apps/web/src/bad.ts": b"export function f( {\n  return 1;\n"}
    push(client, alice, project_id, workspace_id, changed)
    again = index(client, alice, project_id)
    assert again["read"]["files"] == 2  # the broken Python file was not read again, and still counts
    assert again["parse_errors"] == 2
    assert again["parse_failures"] == [{"path": "apps/web/src/bad.ts",
                                        "parse_error": "brackets do not match: line 1: `(` is never closed"}, failure]
    status = client.get(f"/v1/projects/{project_id}/atlas", headers=alice.headers, params={"limit": 1}).json()["index"]
    assert status["parse_errors"] == 2 and status["parse_failures"] == again["parse_failures"]


def search(client, caller, project_id, query, **body):
    response = client.post(f"/v1/projects/{project_id}/atlas/search", headers=caller.headers, json={"query": query, **body})
    assert response.status_code == 200, response.text
    return [(r["name"], r["kind"]) for r in response.json()["results"]]


def test_search_puts_the_exact_name_first_and_a_class_above_its_members(client, alice):
    files = {"app/env.py": b'"""Environment handling."""\n\n\nclass Environment:\n    """The environment of templates."""\n\n'
                           b'    def environment_name(self):\n        """The environment\'s name: environment environment."""\n\n'
                           b'    def get_environment(self):\n        return self\n\n\n'
                           b'def environment():\n    """Make an environment (environment environment environment)."""\n',
             "app/console.py": b"class Console:\n    def print(self, text):\n        pass\n\n    def log(self, text):\n"
                               b"        self.print(text)\n\n\ndef print_all(console):\n    console.print('all')\n"}
    project_id, _ = project_with(client, alice, files, "names")
    index(client, alice, project_id)
    assert search(client, alice, project_id, "Environment")[:2] == [("Environment", "class"), ("environment", "function")]
    assert search(client, alice, project_id, "environment")[0] == ("Environment", "class")
    assert search(client, alice, project_id, "console.PRINT")[0] == ("Console.print", "method")
    assert search(client, alice, project_id, "Console")[0] == ("Console", "class")


def test_a_blank_search_is_422_and_changes_nothing(client, alice):
    project_id, _ = project_with(client, alice, FILES)
    index(client, alice, project_id)
    for query in ("", "   ", "\n\t "):
        assert_problem(client.post(f"/v1/projects/{project_id}/atlas/search", headers=alice.headers,
                                   json={"query": query}), 422, "validation_failed")


def test_the_graph_pages_by_up_to_a_thousand_concepts(client, alice):
    files = {f"pkg/m{i}.py": "".join(f"def f{j}():\n    return {j}\n\n\n" for j in range(12)).encode() for i in range(100)}
    project_id, _ = project_with(client, alice, files, "wide")
    index(client, alice, project_id)
    first = client.get(f"/v1/projects/{project_id}/atlas", headers=alice.headers, params={"limit": 1000}).json()
    assert len(first["concepts"]) == 1000 and first["next_cursor"]
    second = client.get(f"/v1/projects/{project_id}/atlas", headers=alice.headers,
                        params={"limit": 1000, "cursor": first["next_cursor"]}).json()
    assert len(second["concepts"]) == 1 + 100 + 1200 - 1000 and second["next_cursor"] is None
    assert_problem(client.get(f"/v1/projects/{project_id}/atlas", headers=alice.headers, params={"limit": 1001}), 422,
                   "validation_failed")


def test_a_question_finds_the_class_its_words_name_and_the_class_its_matches_share(client, alice):
    files = {"lib/markdown.py": b'"""Markdown."""\n\n\nclass Markdown:\n    """A document to show."""\n\n'
                                b'    def heading(self):\n        """Render a heading of the markdown document."""\n\n'
                                b'    def paragraph(self):\n        """Render a paragraph of the markdown document."""\n\n\n'
                                b'def render(text):\n    """Render text in the terminal."""\n',
             "lib/interval.ts": b"/** Emits numbers, one each period. */\nexport function interval(period: number) { return period; }\n",
             "lib/timer.ts": b"/** Clocks: wait, then emit. */\nimport { interval } from './interval';\n\n"
                             b"export function timer() { return interval(1); }\n"}
    project_id, _ = project_with(client, alice, files, "questions")
    index(client, alice, project_id)
    # "markdown" is a class's whole name: the class first, not its members nor `render`.
    assert search(client, alice, project_id, "render markdown in the terminal")[0] == ("Markdown", "class")
    # Members that share a class bring the class above them.
    found = search(client, alice, project_id, "render a heading and a paragraph of the document")
    assert found.index(("Markdown", "class")) < found.index(("Markdown.heading", "method"))
    # A module that matches (here by its doc) is followed by the symbol it is named after.
    found = search(client, alice, project_id, "clocks wait then emit")
    assert found[0] == ("lib/timer.ts", "module") and found[1] == ("timer", "function")
