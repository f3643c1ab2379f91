"""Atlas extraction on real-looking sources: Python (ast) and JavaScript/TypeScript (Pygments tokens)."""

from __future__ import annotations

from fastest.domain.atlas import extract, is_test_path
from fastest.domain.atlas.chunks import MAX_TOKENS, chunk_file, token_estimate
from fastest.domain.atlas.graph import PathIndex, aggregate, pagerank

PYTHON = b'''"""Billing: invoices and their totals."""
from __future__ import annotations

import json
import os.path
from decimal import Decimal

from . import tax
from .models import Invoice, Line
from ..shared.money import round_cents
from billing.currency import convert

DEFAULT_CURRENCY = "EUR"
MAX_LINES: int = 500
_cache = {}


class InvoiceService:
    """Creates and totals invoices."""

    def __init__(self, repo):
        self.repo = repo

    async def total(self, invoice: Invoice) -> Decimal:
        """Sum of the lines, with tax."""
        return round_cents(sum(l.amount for l in invoice.lines))  # TODO: discounts

    class Error(Exception):
        pass


def parse_invoice(raw: str) -> Invoice:
    """Read an invoice from JSON."""
    return Invoice(**json.loads(raw))


def _private_helper():
    pass
'''

TYPESCRIPT = b'''/** Widgets: the UI building blocks. */
import { render, type Props } from "./render";
import * as path from "node:path";
import React from 'react';
import { Store } from "../store/index.js";
export { Button, default as Link } from "./button";
export * from "./icons";
const legacy = require("./legacy");

/** Adds two numbers. */
export async function add(a: number, b: number): Promise<number> {
  return a + b; // FIXME overflow
}

export default class Widget extends Base implements Drawable {
  private count = 0;
  constructor(private readonly store: Store) { super(); }
  async draw(ctx: Context): Promise<void> {
    if (this.count > 0) { ctx.fill(); }
  }
  static of(store: Store) {
    return new Widget(store);
  }
}

export const MAX_WIDGETS = 100;
export interface WidgetProps { title: string }
export type WidgetId = string;
export enum Size { Small, Large }
export const useWidget = (id: WidgetId) => {
  return React.useMemo(() => id, [id]);
};
const double = (x: number) => x * 2;
function internal() {}
export { internal };
'''


def names(facts):
    return {s.name: s for s in facts.symbols}


def test_python_classes_functions_methods_constants():
    facts = extract("src/billing/invoices.py", PYTHON)
    assert facts.parse_error is None and facts.language == "python"
    symbols = names(facts)
    assert symbols["InvoiceService"].kind == "class" and symbols["InvoiceService"].doc == "Creates and totals invoices."
    assert symbols["InvoiceService.total"].kind == "method" and symbols["InvoiceService.total"].parent == "InvoiceService"
    assert symbols["InvoiceService.total"].start_line == 24 and symbols["InvoiceService.total"].end_line == 26
    assert symbols["InvoiceService.Error"].kind == "class"
    assert symbols["parse_invoice"].kind == "function" and symbols["parse_invoice"].doc == "Read an invoice from JSON."
    assert {"DEFAULT_CURRENCY", "MAX_LINES"} <= symbols.keys() and "_cache" not in symbols
    assert symbols["_private_helper"].exported is False
    assert facts.todo_count == 1 and facts.doc == "Billing: invoices and their totals."


def test_python_imports_absolute_and_relative_resolve_in_the_tree():
    facts = extract("src/billing/invoices.py", PYTHON)
    tree = PathIndex(["src/billing/__init__.py", "src/billing/tax.py", "src/billing/models.py", "src/shared/money.py",
                      "src/billing/currency.py", "src/billing/invoices.py"])
    resolved: dict[str, set] = {}
    for i in facts.imports:
        resolved.setdefault(i.spec, set()).add(tree.resolve(i.candidates, suffix=i.suffix))
    assert resolved["."] == {"src/billing/tax.py"}  # from . import tax: a submodule
    assert resolved[".models"] == {"src/billing/models.py"}  # names defined in the module
    assert resolved["..shared.money"] == {"src/shared/money.py"}
    assert resolved["billing.currency"] == {"src/billing/currency.py"}  # absolute, under the src/ root
    assert resolved["json"] == {None} and resolved["decimal"] == {None}


def test_python_syntax_error_is_a_module_without_symbols():
    facts = extract("app/broken.py", b"def ok():\n    pass\n\ndef broken(:\n    pass\n")
    assert facts.symbols == () and facts.parse_error and "line 4" in facts.parse_error


def test_typescript_declarations_exports_methods():
    facts = extract("src/ui/widgets.ts", TYPESCRIPT)
    assert facts.parse_error is None and facts.language == "typescript"
    symbols = names(facts)
    assert symbols["add"].kind == "function" and symbols["add"].exported and symbols["add"].doc == "Adds two numbers."
    assert (symbols["add"].start_line, symbols["add"].end_line) == (11, 13)
    assert symbols["Widget"].kind == "class" and symbols["Widget"].exported
    assert {"Widget.constructor", "Widget.draw", "Widget.of"} <= symbols.keys()
    assert symbols["Widget.draw"].end_line == 20 and symbols["Widget"].end_line == 24
    assert symbols["MAX_WIDGETS"].kind == "constant"
    assert symbols["WidgetProps"].kind == "interface" and symbols["WidgetId"].kind == "type" and symbols["Size"].kind == "enum"
    assert symbols["useWidget"].kind == "function" and symbols["useWidget"].end_line == 32
    assert symbols["double"].kind == "function" and not symbols["double"].exported
    assert symbols["internal"].exported  # exported by `export { internal }`
    assert facts.todo_count == 1 and facts.doc.startswith("Widgets")


def test_typescript_imports_reexports_index_files_and_extensions():
    facts = extract("src/ui/widgets.ts", TYPESCRIPT)
    by_spec = {i.spec: i for i in facts.imports}
    assert by_spec["./button"].reexport and by_spec["./icons"].reexport and by_spec["./icons"].names == ("*",)
    assert not by_spec["./render"].reexport
    assert set(facts.external) == {"node:path", "react"}
    tree = PathIndex(["src/ui/render.tsx", "src/store/index.ts", "src/ui/button/index.tsx", "src/ui/icons.ts",
                      "src/ui/legacy.js"])
    resolved = {spec: tree.resolve(i.candidates, suffix=i.suffix) for spec, i in by_spec.items()}
    assert resolved["./render"] == "src/ui/render.tsx"
    assert resolved["../store/index.js"] == "src/store/index.ts"  # TypeScript's .js specifier means the .ts file
    assert resolved["./button"] == "src/ui/button/index.tsx"
    assert resolved["./icons"] == "src/ui/icons.ts"
    assert resolved["./legacy"] == "src/ui/legacy.js"  # require()
    assert resolved["react"] is None


def test_javascript_commonjs_and_syntax_error():
    facts = extract("lib/server.js", b"const express = require('express');\nconst routes = require('./routes');\n"
                                     b"function start(port) {\n  return express().listen(port);\n}\nmodule.exports = { start };\n")
    assert facts.parse_error is None and names(facts)["start"].kind == "function"
    assert [i.spec for i in facts.imports] == ["express", "./routes"]
    broken = extract("lib/bad.js", b"export function broken( {\n  return 1;\n")
    assert broken.symbols == () and broken.parse_error


def test_other_files_are_modules_without_symbols():
    facts = extract("README.md", b"# Hello\nTODO: write docs\n")
    assert facts.language is None and facts.symbols == () and facts.parse_error is None and facts.todo_count == 1


def test_pagerank_favours_what_everyone_imports():
    nodes = ["a", "b", "c", "core"]
    ranks = pagerank(nodes, [("a", "core"), ("b", "core"), ("c", "core"), ("c", "a")])
    assert max(ranks, key=ranks.get) == "core"
    assert abs(sum(ranks.values()) - 1) < 1e-6 and ranks["a"] > ranks["b"]
    assert aggregate([("x/1", "y/2"), ("x/3", "y/2"), ("x/1", "x/3")], {"x/1": "x", "x/3": "x", "y/2": "y"}) == {("x", "y"): 2}


def test_chunks_follow_symbols_and_stay_under_the_limit():
    facts = extract("src/billing/invoices.py", PYTHON)
    chunks = chunk_file("src/billing/invoices.py", PYTHON.decode(), facts.symbols)
    assert any(c.symbol == "InvoiceService" for c in chunks) and any(c.symbol == "parse_invoice" for c in chunks)
    big = "class Huge:\n" + "".join(f"    def m{i}(self):\n" + "        x = 1 + 2 + 3\n" * 40 for i in range(20))
    facts = extract("huge.py", big.encode())
    chunks = chunk_file("huge.py", big, facts.symbols)
    assert len(chunks) >= 20 and all(token_estimate(c.text) <= MAX_TOKENS for c in chunks)


def test_test_paths():
    assert is_test_path("tests/test_x.py") and is_test_path("src/a.test.ts") and not is_test_path("src/a.ts")


GO = b'''// Package server serves the shop over HTTP.
package server

import (
	"fmt"
	h "net/http"

	"example.com/shop/internal/store"
)

import "example.com/shop/pkg/money"

const MaxConns = 10

const (
	defaultPort = 8080
	Version     = "1.2"
)

// Server holds the routes.
type Server struct {
	store *store.Store
}

type Handler interface {
	Serve(w h.ResponseWriter)
}

type ID string

// New makes a server.
func New(s *store.Store) *Server {
	return &Server{store: s}
}

// Start listens on the port.
func (s *Server) Start(port int) error {
	fmt.Println(money.Format(port)) // TODO: real logging
	return nil
}
'''

JAVA = b'''package com.shop.service;

import com.shop.model.Order;
import com.shop.util.*;
import static com.shop.util.Money.round;
import java.util.List;

/** Handles orders. */
public class OrderService extends Base implements Service {
    public static final int MAX_ORDERS = 10;
    private final Repo repo;

    public OrderService(Repo repo) { this.repo = repo; }

    /** Creates an order. */
    public Order create(String id) {
        return new Order(id);
    }

    private static <T> List<T> list(int n) {
        return null;
    }

    interface Listener {
        void on(Order o);
    }
}
'''


def test_go_functions_methods_types_constants_and_package_imports():
    facts = extract("cmd/server/server.go", GO)
    assert facts.parse_error is None and facts.language == "go"
    symbols = names(facts)
    assert symbols["Server"].kind == "class" and symbols["Server"].doc == "Server holds the routes."
    assert (symbols["Server"].start_line, symbols["Server"].end_line) == (21, 23)
    assert symbols["Handler"].kind == "interface" and symbols["ID"].kind == "type"
    assert symbols["New"].kind == "function" and symbols["New"].exported and symbols["New"].doc == "New makes a server."
    assert symbols["Server.Start"].kind == "method" and symbols["Server.Start"].parent == "Server"
    assert symbols["Server.Start"].end_line == 40
    assert {"MaxConns", "defaultPort", "Version"} <= symbols.keys() and not symbols["defaultPort"].exported
    assert facts.external == ("fmt", "net/http") and facts.todo_count == 1
    tree = PathIndex(["internal/store/store.go", "internal/store/store_test.go", "pkg/money/format.go", "cmd/server/server.go"])
    resolved = {i.spec: tree.resolve(i.candidates, suffix=i.suffix) for i in facts.imports}
    assert resolved == {"example.com/shop/internal/store": "internal/store/store.go",
                        "example.com/shop/pkg/money": "pkg/money/format.go"}


def test_java_classes_methods_constants_and_imports():
    facts = extract("src/main/java/com/shop/service/OrderService.java", JAVA)
    assert facts.parse_error is None and facts.language == "java"
    symbols = names(facts)
    assert symbols["OrderService"].kind == "class" and symbols["OrderService"].doc == "Handles orders."
    assert symbols["OrderService"].exported and symbols["OrderService"].end_line == 27
    assert symbols["OrderService.create"].kind == "method" and symbols["OrderService.create"].doc == "Creates an order."
    assert (symbols["OrderService.create"].start_line, symbols["OrderService.create"].end_line) == (16, 18)
    assert symbols["OrderService.OrderService"].kind == "method"  # the constructor
    assert not symbols["OrderService.list"].exported
    assert symbols["OrderService.MAX_ORDERS"].kind == "constant"
    assert symbols["OrderService.Listener"].kind == "interface" and "OrderService.Listener.on" in symbols
    root = "src/main/java/com/shop/"
    tree = PathIndex([root + "model/Order.java", root + "util/Money.java", root + "service/OrderService.java"])
    resolved = {i.spec: tree.resolve(i.candidates, suffix=i.suffix) for i in facts.imports}
    assert resolved == {"com.shop.model.Order": root + "model/Order.java", "com.shop.util.*": root + "util/Money.java",
                        "com.shop.util.Money.round": root + "util/Money.java"}
    assert facts.external == ("java.util",)


def test_go_and_java_that_do_not_parse_say_where():
    assert extract("a.go", b"package a\nfunc Broken( {\n").parse_error == "braces do not match: line 2: `{` is never closed"
    assert extract("A.java", b"class A { void m() {\n").parse_error == "braces do not match: line 1: `{` is never closed"
    assert extract("B.java", b"class B { }\n}\n").parse_error == "braces do not match: line 2: unexpected `}`"
