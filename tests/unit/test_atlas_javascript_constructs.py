"""Each JavaScript/TypeScript construct that real code (bundler output, libraries) uses and that once
made Atlas lose symbols or whole files, on a tiny input; the differential test
(tests/differential) checks the same against the TypeScript compiler on real packages."""

from __future__ import annotations

from fastest.domain.atlas import extract


def symbols(path: str, source: str) -> dict[str, object]:
    facts = extract(path, source.encode())
    assert facts.parse_error is None, facts.parse_error
    return {s.name: s for s in facts.symbols}


def test_a_class_assigned_to_a_var_as_bundlers_emit_it():
    found = symbols("dist/hono-base.js", (
        "var notFound = (c) => c.text('404');\n"
        "var Hono = class {\n"
        "  get;\n"
        "  #path = '/';\n"
        "  constructor(options = {}) { this.router = options.router; }\n"
        "  route(path, app) { return this; }\n"
        "  #dispatch(request) { return notFound(request); }\n"
        "};\n"
        "var HTTPException = class extends Error {\n"
        "  res;\n"
        "  getResponse() { return this.res; }\n"
        "};\n"
        "export { HTTPException, Hono };\n"))
    assert found["Hono"].kind == "class" and found["Hono"].exported and (found["Hono"].start_line, found["Hono"].end_line) == (2, 8)
    assert {"Hono.constructor", "Hono.route", "Hono.#dispatch"} <= found.keys()
    assert found["Hono.route"].parent == "Hono" and not found["Hono.#dispatch"].exported
    assert found["HTTPException"].kind == "class" and found["HTTPException.getResponse"].kind == "method"
    assert found["notFound"].kind == "function"
    assert "Hono.get" not in found  # a field, not a method


def test_a_template_literal_holding_an_object_literal():
    found = symbols("src/url.ts", (
        "export const link = (p: string) => `${base({ path: p, query: { a: 1 } })}/x`;\n"
        "export function after() { return `a${`b${c}`}`; }\n"))
    assert found["link"].kind == "function" and found["after"].kind == "function"


def test_names_exported_later_under_another_name():
    found = symbols("lib/index.mjs", (
        "var version = '1.0';\n"
        "var util;\n"
        "(function (util) { util.x = 1; })(util || (util = {}));\n"
        "const hidden = 2;\n"
        "export { version as VERSION, util };\n"))
    assert found["version"].kind == "constant" and found["version"].exported
    assert found["util"].exported and "hidden" not in found


def test_an_anonymous_default_export():
    assert symbols("src/a.ts", "export default function () {\n  return 1;\n}\n")["default"].kind == "function"
    assert symbols("src/b.js", "export default async function* () {}\n")["default"].kind == "function"
    assert symbols("src/c.ts", "export default class extends Base { run() {} }\n")["default.run"].kind == "method"


def test_members_named_like_keywords():
    found = symbols("src/map.ts", (
        "export class Store {\n"
        "  readonly size = 0;\n"
        "  get(key: string) { return 1; }\n"
        "  set(key: string, value: number) {}\n"
        "  static() {}\n"
        "  readonly() {}\n"
        "  delete(key: string) {}\n"
        "  static get default() { return new Store(); }\n"
        "  async *[Symbol.asyncIterator]() {}\n"
        "}\n"))
    assert {"Store.get", "Store.set", "Store.static", "Store.readonly", "Store.delete", "Store.default"} <= found.keys()
    assert "Store.size" not in found and all(s.kind == "method" for n, s in found.items() if n.startswith("Store."))


def test_const_type_parameters_are_not_constants():
    found = symbols("src/infer.ts", "export function tuple<const T extends readonly unknown[]>(...xs: T): T {\n  return xs;\n}\n"
                                    "export class Box<const V> { constructor(readonly v: V) {} }\n")
    assert set(found) == {"tuple", "Box", "Box.constructor"}


def test_overloads_setters_and_merged_declarations_are_one_symbol():
    found = symbols("src/parse.ts", (
        "export function parse(text: string): Doc;\n"
        "export function parse(bytes: Uint8Array): Doc;\n"
        "export function parse(input: string | Uint8Array): Doc {\n"
        "  return new Doc(input);\n"
        "}\n"
        "export interface Doc { title: string }\n"
        "export class Doc {\n"
        "  get title() { return ''; }\n"
        "  set title(value: string) {}\n"
        "  at(i: number): string\n"
        "  at(i: string): string\n"
        "  at(i: any) { return i; }\n"
        "}\n"))
    assert found["parse"].kind == "function" and (found["parse"].start_line, found["parse"].end_line) == (1, 5)
    assert found["parse"].signatures == ("export function parse(text: string): Doc;", "export function parse(bytes: Uint8Array): Doc;",
                                         "export function parse(input: string | Uint8Array): Doc {")
    assert found["Doc"].kind == "class" and len(found["Doc"].signatures) == 2
    assert found["Doc.title"].kind == "method" and len(found["Doc.title"].signatures) == 2
    assert len(found["Doc.at"].signatures) == 3
    assert not any(name.endswith("'") for name in found)


def test_a_broken_file_says_where():
    facts = extract("src/bad.ts", b"export function ok() {}\nexport function broken( {\n  return 1;\n")
    assert facts.symbols == () and facts.parse_error == "brackets do not match: line 2: `(` is never closed"
    facts = extract("src/bad.js", b"const a = 1;\n}\n")
    assert facts.parse_error == "brackets do not match: line 2: unexpected `}`"


def test_jsx_in_a_js_file_and_tsx_generics():
    found = symbols("src/App.js", "export function App() {\n  return <div className='a'>{items.map((i) => <Item key={i} />)}</div>;\n}\n"
                                  "export const Item = ({ key }) => <span>{key}</span>;\n")
    assert found["App"].kind == "function" and found["Item"].kind == "function"
    found = symbols("src/List.tsx", "export function List<T>({ items }: { items: T[] }) {\n  const [s, setS] = useState<string>('');\n"
                                    "  return <ul>{items.map((i) => <li>{String(i)}</li>)}</ul>;\n}\nexport type Row = { id: string };\n")
    assert set(found) == {"List", "Row"}


def test_imports_of_every_form():
    facts = extract("src/all.ts", (
        b"import a from './a';\nimport * as b from './b.js';\nimport { type C, d as e } from './c';\nimport './side';\n"
        b"import type { F } from './f';\nimport g = require('./g');\nexport * from './h';\nexport * as i from './i';\n"
        b"export type { J } from './j';\nexport { k } from './k';\nconst l = await import('./l');\nconst m = require('./m');\n"
        b"type N = typeof import('./n');\nimport data from './data.json' with { type: 'json' };\n"
        b"const notAnImport = obj.require('./x');\n"))
    assert [i.spec for i in facts.imports] == ["./a", "./b.js", "./c", "./side", "./f", "./h", "./i", "./j", "./k",
                                               "./data.json", "./g", "./l", "./m", "./n"]
    assert {i.spec for i in facts.imports if i.reexport} == {"./h", "./i", "./j", "./k"}


def test_values_that_only_look_like_functions_or_classes():
    found = symbols("src/lodash.js", (
        "export var baseCreate = (function() {\n  function object() {}\n  return function(proto) { return proto; };\n}());\n"
        "var render = (function (x) { return x; });\n"
        "export const isDraftTyped = isDraft as <T>(\n  value: T | Draft<T>,\n) => value is Draft<T>\n\n"
        "export function after() {}\n"
        "export const runTask = async <T>(task: () => Promise<T>): Promise<T> => {\n  return task();\n};\n"))
    assert found["baseCreate"].kind == "constant"  # an IIFE's result is a value, not the function called
    assert found["render"].kind == "function" and found["runTask"].kind == "function"
    assert found["isDraftTyped"].kind == "constant" and found["after"].kind == "function"
