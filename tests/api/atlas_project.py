"""A small but real-looking project (a Python service and a TypeScript web app) for the Atlas tests."""

from __future__ import annotations

FILES: dict[str, bytes] = {
    "README.md": b"# Shop\nA Python API and a TypeScript web app.\n",
    "api/pyproject.toml": b"[project]\nname = \"shop-api\"\n",
    "api/shop/__init__.py": b'"""The shop API."""\n',
    "api/shop/app.py": b'''"""HTTP entry point: routes requests to the handlers."""
from .handlers import orders, payments
from .db import connect


def create_app(config):
    """Build the application and open the database."""
    db = connect(config["database_url"])
    return {"orders": orders.OrderHandler(db), "payments": payments.charge}
''',
    "api/shop/db.py": b'''"""Database access."""
import sqlite3

POOL_SIZE = 4


def connect(url: str):
    """Open a connection to the database at this URL."""
    return sqlite3.connect(url)
''',
    "api/shop/handlers/__init__.py": b"",
    "api/shop/handlers/orders.py": b'''"""Orders: create and list customer orders."""
from ..db import connect
from ..models import Order


class OrderHandler:
    """Handles order requests."""

    def __init__(self, db):
        self.db = db

    def create(self, payload) -> Order:
        """Validate the payload and store a new order."""
        return Order(**payload)

    def list_for_customer(self, customer_id):
        return []  # TODO paginate
''',
    "api/shop/handlers/payments.py": b'''"""Payments."""
from shop.models import Order


def charge(order: Order, card_token: str) -> bool:
    """Charge the customer's credit card for the order total and record the receipt."""
    return bool(card_token)


def refund(order: Order) -> bool:
    """Give the money back to the customer."""
    return True
''',
    "api/shop/models.py": b'''"""Domain models."""
from dataclasses import dataclass


@dataclass
class Order:
    id: str
    total_cents: int
''',
    "api/shop/broken.py": b"def oops(:\n    pass\n",
    "api/tests/test_orders.py": b"from shop.handlers.orders import OrderHandler\n\n\ndef test_create():\n    assert OrderHandler(None)\n",
    "web/package.json": b'{"name": "shop-web"}\n',
    "web/src/index.ts": b'''import { renderCart } from "./cart";
import { api } from "./lib/api";
export * from "./components";

export function main(root: HTMLElement): void {
  renderCart(root, api);
}
''',
    "web/src/cart.ts": b'''import type { Api } from "./lib/api";
import { Button } from "./components";

/** Shows the shopping cart with a checkout button. */
export function renderCart(root: HTMLElement, api: Api): void {
  root.append(Button("Checkout"));
}

export class CartStore {
  items: string[] = [];
  add(item: string) {
    this.items.push(item);
  }
}
''',
    "web/src/lib/api.ts": b'''export interface Api { get(path: string): Promise<unknown> }
export const api: Api = { get: (path) => fetch(path).then((r) => r.json()) };
export const BASE_URL = "/api";
''',
    "web/src/components/index.ts": b'export { Button } from "./button";\n',
    "web/src/components/button.ts": b'''export function Button(label: string): HTMLButtonElement {
  const b = document.createElement("button");
  b.textContent = label;
  return b;
}
''',
}
