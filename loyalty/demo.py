"""`loyalty demo`: a scripted day at a small chain, over the real APIs.

HQ and two outlets (NORTH, SOUTH) run on temporary SQLite files, each served over HTTP on
loopback; the outlets sync with HQ over the router link (or, with `--link modem`, over
simulated dial-up lines). The day: a card issued at NORTH, sales there, the card used at
SOUTH, gifts redeemed with points earned elsewhere, a sync, a ban at HQ enforced at both
outlets. Promises: exits 0 only if every step gave the answer a real till would expect.
"""

from __future__ import annotations

import secrets
import shlex
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import requests

from agent.api import create_app
from agent.config import ModemEntry
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replica import set_meta
from agent.replication import OutletReplica
from agent.runtime import modem_dialer
from agent.sales import CURRENCY
from agent.status import render_status
from hq import credentials, staff
from hq.api import create_app as create_hq_app
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from hq.modembank import LineSettings, ModemBank
from schema.errors import DirectoryNotEmpty, mask_card
from schema.money import money
from schema.roles import Role
from sync.client import run_once
from sync.dialer import Dialer
from sync.linesim import LineSimulator, Timing
from sync.loop import RouterLoop
from sync.router import RouterTransport
from web import serving

Out = Callable[[str], None]


class DemoFailed(AssertionError):
    pass


class Client:
    """A POS (or a head-office script) talking to one service over HTTP."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url
        self.http = requests.Session()
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, expect: int, **kw: Any) -> Any:
        answer = self.http.request(method, self.url + path, timeout=10, **kw)
        if answer.status_code != expect:
            raise DemoFailed(f"{method} {path}: expected {expect}, got {answer.status_code} "
                             f"{answer.text}")
        return answer.json() if answer.content else None


def receipt(out: Out, title: str, lines: list[str]) -> None:
    out(f"  +{'-' * 42}+")
    out(f"  | {title:<40} |")
    for line in lines:
        out(f"  | {line:<40} |")
    out(f"  +{'-' * 42}+")


def until(what: str, check: Callable[[], bool], limit_s: float = 10.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit_s:
            raise DemoFailed(f"{what} did not happen within {limit_s:.0f} s")
        time.sleep(0.01)
    return time.monotonic() - started


HQ_NUMBER = "5550100"
MODEM_INIT = ("ATZ", "ATE0V1", "ATS12=10")  # 0.2 s escape guard: quick hang-ups
GUARD_S = 0.2


class Chainlet:
    """HQ plus outlets, each a real HTTP service, on temporary files; with the modem link,
    HQ answers on two simulated modem lines and every outlet has its own modem."""

    def __init__(self, tmp: Path, stack: ExitStack, link: str) -> None:
        self.chain = Chain(tmp / "hq.db", seed=default_documents())
        stack.callback(self.chain.close)
        with self.chain.db.write() as conn:
            self.admin_token = credentials.add_admin(conn, "demo")
        self.hq = serving.Background(create_hq_app(self.chain), on_exit=self.chain.waiters.close)
        stack.callback(self.hq.stop)
        self.stack, self.tmp, self.link = stack, tmp, link
        self.outlets: dict[str, Outlet] = {}
        self.tokens: dict[str, str] = {}
        self.dialers: list[Dialer] = []
        if link == "modem":
            self.line = LineSimulator(speed_bps=33_600, timing=Timing(
                dial_delay_s=0.1, ring_interval_s=0.3, connect_delay_s=0.1))
            self.line.start()
            stack.callback(self.line.stop)
            lines = [LineSettings(self.line.add_modem(f"hq{n}"), MODEM_INIT, GUARD_S)
                     for n in (1, 2)]
            self.line.register_number(HQ_NUMBER, ["hq1", "hq2"])
            bank = ModemBank(self.chain, lines)
            bank.start()
            stack.callback(bank.stop)

    def sync(self) -> None:
        """With the modem link, every outlet dials HQ now (in the field: on its schedule)."""
        for dialer in self.dialers:
            dialer.call()

    def open_outlet(self, outlet_id: str) -> Client:
        with self.chain.db.write() as conn:
            token, _ = credentials.add_outlet(conn, outlet_id)
        self.tokens[outlet_id] = token
        outlet = Outlet(self.tmp / f"{outlet_id.lower()}.db", outlet_id, chain=True)
        self.stack.callback(outlet.close)
        with outlet.db.write() as conn:
            set_meta(conn, "link", self.link)
        replica = OutletReplica(outlet)
        if self.link == "router":
            loop = RouterLoop(replica, lambda: RouterTransport(self.hq.url, token), long_poll=5)
            outlet.on_commit(loop.kick)
            loop.start()
            self.stack.callback(loop.stop)
            self.stack.callback(self.chain.waiters.close)  # runs first: ends the long poll
            run_once(replica, RouterTransport(self.hq.url, token))  # range and programme
        else:
            entry = ModemEntry(port=self.line.add_modem(outlet_id.lower()), number=HQ_NUMBER,
                               init=list(MODEM_INIT), guard_s=GUARD_S)
            dialer = modem_dialer(outlet, entry, token)
            self.dialers.append(dialer)
            dialer.call()  # the first call: card range and programme
        server = serving.Background(create_app(outlet))
        self.stack.callback(server.stop)
        self.outlets[outlet_id] = outlet
        return Client(server.url)


def _refuses(client: Client, card: str) -> Callable[[], bool]:
    def check() -> bool:
        answer = client.http.post(client.url + "/v1/identify",
                                  json={"kind": "card", "value": card}, timeout=5)
        return answer.status_code == 403
    return check


HQ_PORT = 8700
AGENT_PORTS = {"NORTH": 8701, "SOUTH": 8702}


@contextmanager
def _directory(keep: Path | None) -> Iterator[str]:
    """Where the chain's files go: `keep` (new or empty) or a temporary directory."""
    if keep is None:
        with tempfile.TemporaryDirectory(prefix="loyalty-demo-") as tmp:
            yield tmp
        return
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise DirectoryNotEmpty(f"{keep} already exists and is not an empty directory: give "
                                "--keep a new or empty directory (nothing was written)")
    keep.mkdir(parents=True, exist_ok=True)
    yield str(keep)


def run_demo(link: str = "router", out: Out = print, keep: Path | None = None) -> None:
    with _directory(keep) as tmp, ExitStack() as stack:
        chainlet = Chainlet(Path(tmp), stack, link)
        hq = Client(chainlet.hq.url, chainlet.admin_token)
        north, south = chainlet.open_outlet("NORTH"), chainlet.open_outlet("SOUTH")
        out(f"Headquarters and outlets NORTH, SOUTH are up (link: {link}).\n")
        _day(out, hq, north, south, chainlet.sync)
        out("\nStore managers' status:")
        for name, client in (("NORTH", north), ("SOUTH", south)):
            out(render_status(client.call("GET", "/v1/status", 200)))
            out("")
        if keep is not None:
            _keep(out, chainlet, keep)


def _keep(out: Out, chainlet: Chainlet, where: Path) -> None:
    """Makes the staff logins and prints how to serve the kept chain (docs/operations.md,
    "The demo's chain, kept")."""
    logins = {"admin": (Role.administrator, secrets.token_urlsafe(12)),
              "desk": (Role.desk, secrets.token_urlsafe(12))}
    with chainlet.chain.db.write() as conn:
        for username, (role, password) in logins.items():
            staff.add(conn, username, password, role=role, by=COMMAND_LINE,
                      reason="loyalty demo --keep")
    hq_url = f"http://127.0.0.1:{HQ_PORT}"
    out(f"The demo's chain is kept in {where}. Serve it, each in a terminal of its own:")
    out(f"  loyalty hq serve --db {shlex.quote(str(where / 'hq.db'))} --port {HQ_PORT}")
    for outlet_id, token in chainlet.tokens.items():
        db = shlex.quote(str(where / f"{outlet_id.lower()}.db"))
        out(f"  loyalty agent serve --db {db} --outlet {outlet_id} --hq {hq_url} "
            f"--token {token} --port {AGENT_PORTS[outlet_id]}")
    out("Staff logins (passwords shown only now):")
    role, password = logins["admin"]
    out(f"  back office {hq_url}/office/ as an {role}: username admin, password {password}")
    role, password = logins["desk"]
    desks = ", ".join(f"http://127.0.0.1:{port}/desk/" for port in AGENT_PORTS.values())
    out(f"  reception desks {desks} (once synced) as {role}: username desk, "
        f"password {password}")


def _day(out: Out, hq: Client, north: Client, south: Client, sync: Callable[[], None]) -> None:
    out("NORTH reception desk: a new customer joins the club.")
    joined = north.call("POST", "/v1/customers", 201, json={
        "kind": "person", "given_name": "Ana", "surname": "Novak", "category": "B",
        "email": "ana@example.com", "email_consent": True})
    card, customer_id = joined["card_number"], joined["customer_id"]
    out(f"  card issued: {mask_card(card)}")

    who = north.call("POST", "/v1/identify", 200, json={"kind": "card", "value": card, "till_id": "T1"})
    out(f"NORTH till T1: {who['display_name']}, category {who['category']}, "
        f"{who['points_balance']} points")
    basket = [
        {"sku": "W-001", "name": "Merlot 2019", "qty": 2, "unit_price": 1290, "division": "wine"},
        {"sku": "B-100", "name": "Sourdough loaf", "qty": 1, "unit_price": 450},
        {"sku": "C-200", "name": "Espresso beans 1kg", "qty": 3, "unit_price": 2399},
    ]
    quote = north.call("POST", "/v1/quotes", 201, json={"card": card, "lines": basket})
    body = {"quote_id": quote["quote_id"], "till_id": "T1",
            "payments": [{"mode": "card", "amount": quote["total_net"]}]}
    sale = north.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": "n-1"}, json=body)
    if north.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": "n-1"}, json=body)[
            "sale_id"] != sale["sale_id"]:
        raise DemoFailed("a retried sale was recorded twice")
    receipt(out, "NORTH - SALE", sale["receipt_lines"])
    for n in range(3):
        q = north.call("POST", "/v1/quotes", 201, json={"card": card, "lines": [
            {"sku": "G-900", "name": "Gift hamper", "qty": 1, "unit_price": 9900}]})
        north.call("POST", "/v1/sales", 201, headers={"Idempotency-Key": f"n-hamper-{n}"},
                   json={"quote_id": q["quote_id"], "payments": [{"mode": "cash", "amount": q["total_net"]}]})
    balance = north.call("GET", f"/v1/customers/{customer_id}", 200)["points_balance"]
    out(f"NORTH: 4 sales, {balance} points on the card.")

    sync()
    seen = until("the card reaching SOUTH", lambda: south.http.post(
        south.url + "/v1/identify", json={"kind": "card", "value": card}, timeout=5).status_code == 200)
    until("NORTH's points reaching SOUTH", lambda: south.call(
        "GET", f"/v1/customers/{customer_id}", 200)["points_balance"] == balance)
    out(f"SOUTH: the card works {seen * 1000:.0f} ms after the sync, with {balance} points.")

    south.call("POST", "/v1/gifts/GIFT-MUG/stock", 200, json={"qty": 5, "reason": "receipt",
                                                              "reference": "delivery 7"})
    gift = south.call("POST", "/v1/redemptions", 201, headers={"Idempotency-Key": "s-gift-1"},
                      json={"card": card, "gift_sku": "GIFT-MUG", "qty": 1, "till_id": "S1"})
    receipt(out, "SOUTH - GIFT", gift["receipt_lines"])

    sync()
    until("every outlet's facts reaching HQ", lambda: all(
        c.call("GET", "/v1/status", 200)["pending_events"] == 0 for c in (north, south)))
    view = hq.call("GET", f"/v1/admin/customers/{customer_id}", 200)
    stats = view["statistics"]
    out(f"HQ after sync: {stats['purchases_count']} purchases, {stats['items_bought']} items, "
        f"{view['points_balance']} points, discount given {money(stats['total_discount'])} "
        f"{CURRENCY}")
    if view["points_balance"] != gift["points_balance"]:
        raise DemoFailed(f"HQ balance {view['points_balance']} != SOUTH {gift['points_balance']}")

    hq.call("POST", f"/v1/admin/customers/{customer_id}/ban", 200, json={"reason": "demo"})
    sync()
    for name, client in (("NORTH", north), ("SOUTH", south)):
        took = until(f"the ban reaching {name}", _refuses(client, card))
        refusal = client.http.post(client.url + "/v1/identify", json={"kind": "card", "value": card})
        out(f"{name}: after the ban at HQ ({took * 1000:.0f} ms): "
            f"{refusal.json()['error']['code']}")
