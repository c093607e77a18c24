"""`loyalty demo`: a scripted day at a small chain, over the real till API.

Runs on temporary SQLite files and prints what a cashier and a manager would see.
Promises: exits 0 only if every step gave the answer a real till would expect.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from agent import serving
from agent.api import create_app
from agent.cli import render_status
from agent.outlet import Outlet

Out = Callable[[str], None]


class DemoFailed(AssertionError):
    pass


class Till:
    """A POS talking to one agent over HTTP, as a real till would."""

    def __init__(self, url: str, till_id: str) -> None:
        self.url = url
        self.till_id = till_id
        self.http = requests.Session()

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        answer = self.http.request(method, self.url + path, timeout=10, **kw)
        if answer.status_code != expect:
            raise DemoFailed(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json() if answer.content else None


def receipt(out: Out, title: str, lines: list[str]) -> None:
    out(f"  +{'-' * 42}+")
    out(f"  | {title:<40} |")
    for line in lines:
        out(f"  | {line:<40} |")
    out(f"  +{'-' * 42}+")


def run_demo(link: str = "router", out: Out = print) -> None:
    with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as tmp:
        outlet = Outlet(Path(tmp) / "outlet-north.db", "NORTH")
        server = serving.Background(create_app(outlet))
        try:
            _day(Till(server.url, "T1"), out)
            out("\nStore manager's status:")
            out(render_status(Till(server.url, "T1").call("GET", "/v1/status", 200)))
        finally:
            server.stop()
            outlet.close()


def _day(till: Till, out: Out) -> None:
    out("Reception desk: a new customer joins the club.")
    joined = till.call("POST", "/v1/customers", 201, json={
        "kind": "person", "given_name": "Ana", "surname": "Novak", "category": "B",
        "email": "ana@example.com", "email_consent": True})
    card = joined["card_number"]
    out(f"  card issued: ****{card[-4:]}")

    who = till.call("POST", "/v1/identify", 200, json={"kind": "card", "value": card, "till_id": "T1"})
    out(f"Till T1: identified {who['display_name']} (category {who['category']}, "
        f"{who['points_balance']} points)")

    basket = [
        {"sku": "W-001", "name": "Merlot 2019", "qty": 2, "unit_price": 1290, "division": "wine"},
        {"sku": "B-100", "name": "Sourdough loaf", "qty": 1, "unit_price": 450},
        {"sku": "C-200", "name": "Espresso beans 1kg", "qty": 3, "unit_price": 2399},
    ]
    quote = till.call("POST", "/v1/quotes", 201, json={"card": card, "lines": basket})
    sale = till.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": "demo-sale-1"}, json={
        "quote_id": quote["quote_id"], "till_id": "T1",
        "payments": [{"mode": "card", "amount": quote["total_net"]}]})
    again = till.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": "demo-sale-1"}, json={
        "quote_id": quote["quote_id"], "till_id": "T1",
        "payments": [{"mode": "card", "amount": quote["total_net"]}]})
    if again["sale_id"] != sale["sale_id"]:
        raise DemoFailed("a retried sale was recorded twice")
    receipt(out, "SALE", sale["receipt_lines"])

    for n in range(6):
        q = till.call("POST", "/v1/quotes", 201, json={"card": card, "lines": [
            {"sku": "G-900", "name": "Gift hamper", "qty": 1, "unit_price": 9900}]})
        till.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": f"demo-hamper-{n}"},
                  json={"quote_id": q["quote_id"], "payments": [{"mode": "cash", "amount": q["total_net"]}]})

    gift = till.call("POST", "/v1/redemptions", 201, headers={"Idempotency-Key": "demo-gift-1"},
                     json={"card": card, "gift_sku": "GIFT-MUG", "qty": 1, "till_id": "T1"})
    receipt(out, "GIFT", gift["receipt_lines"])

    profile = till.call("GET", f"/v1/customers/{joined['customer_id']}", 200)
    stats = profile["statistics"]
    out(f"Customer card: {stats['purchases_count']} purchases, {stats['items_bought']} items, "
        f"balance {profile['points_balance']} points, discount received {stats['total_discount']}")
