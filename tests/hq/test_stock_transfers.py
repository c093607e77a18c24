"""Gift stock transfers ordered at HQ (issue 12; docs/backoffice.md, "Stock transfers"): the
order is HQ's own fact (`stock.transferred`), so an outlet speaks only for itself; it moves
the stock at HQ at once and at the two outlets when they next pull, once each, and no other
outlet learns of it; more than HQ knows the sender holds is refused and changes nothing.

In process, on real files: HQ served over loopback (on a SQLite file and on PostgreSQL),
three outlets syncing with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hqkit import ON_POSTGRES, at_once

from agent import gifts
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replica import set_meta
from agent.replication import OutletReplica
from hq import admin, audit, credentials, ingest, transfers
from hq.api import create_app
from hq.audit import Actor
from hq.chain import Chain
from schema.errors import InvalidRequest, TransferExceedsStock
from schema.events import StockTransferred, make_event
from schema.roles import Role
from schema.sync import PushRequest
from sync.client import run_once
from sync.router import RouterTransport
from web.serving import Background

HQ_ON_BOTH_STORES = True  # every test on HQ's SQLite file and on PostgreSQL (conftest.py)
MUG = "GIFT-MUG"
OLGA = Actor("olga", Role.operator)


class Rig:
    def __init__(self, db: str, tmp: Path) -> None:
        self.chain = Chain(db, seed=default_documents())
        self.server = Background(create_app(self.chain), on_exit=self.chain.waiters.close)
        self.outlets: dict[str, tuple[Outlet, OutletReplica, RouterTransport]] = {}
        for outlet_id in ("NORTH", "SOUTH", "EAST"):
            with self.chain.db.write() as conn:
                token, _ = credentials.add_outlet(conn, outlet_id)
            outlet = Outlet(tmp / f"{outlet_id.lower()}.db", outlet_id, chain=True)
            self.outlets[outlet_id] = (outlet, OutletReplica(outlet),
                                       RouterTransport(self.server.url, token))
            self.sync(outlet_id)

    def sync(self, *outlet_ids: str) -> None:
        for outlet_id in outlet_ids or tuple(self.outlets):
            _, replica, link = self.outlets[outlet_id]
            run_once(replica, link)

    def outlet(self, outlet_id: str) -> Outlet:
        return self.outlets[outlet_id][0]

    def stock_at(self, outlet_id: str) -> int:
        return {g["sku"]: g["stock"] for g in gifts.stock(self.outlet(outlet_id))}[MUG]

    def stock_at_hq(self) -> dict[str, int]:
        view = admin.gift_stock(self.chain)
        [row] = [r for r in view["rows"] if r["sku"] == MUG]
        return dict(zip(view["outlets"], row["per_outlet"], strict=True))

    def close(self) -> None:
        for outlet, _, link in self.outlets.values():
            link.close()
            outlet.close()
        self.server.stop()
        self.chain.close()


@pytest.fixture
def rig(hq_db: str, tmp_path: Path) -> Iterator[Rig]:
    """NORTH holds 12 more mugs than it started with, SOUTH 3 more; HQ has heard of both."""
    the_rig = Rig(hq_db, tmp_path)
    try:
        for outlet_id, qty in (("NORTH", 12), ("SOUTH", 3)):
            gifts.move_stock(the_rig.outlet(outlet_id), MUG, qty - the_rig.stock_at(outlet_id),
                             "receipt")
        the_rig.sync()
        assert the_rig.stock_at_hq() == {"EAST": 0, "NORTH": 12, "SOUTH": 3}
        yield the_rig
    finally:
        the_rig.close()


def state(chain: Chain) -> dict[str, Any]:
    return {table: chain.db.all(f"SELECT * FROM {table} ORDER BY 1") and
            [tuple(r) for r in chain.db.all(f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("events", "gift_stock", "audit", "changes")}


def test_the_preview_says_what_each_outlet_will_hold_and_changes_nothing(rig: Rig) -> None:
    before = state(rig.chain)
    preview = transfers.preview(rig.chain, MUG, "NORTH", "SOUTH", 5)
    assert preview["lines"] == ["NORTH: 12 → 7", "SOUTH: 3 → 8"]
    assert state(rig.chain) == before


def test_a_transfer_moves_stock_at_hq_at_once_and_at_both_outlets_once_and_is_audited(
        rig: Rig) -> None:
    transfer_id = transfers.transfer(rig.chain, MUG, "NORTH", "SOUTH", 5,
                                     reason="SOUTH runs out before Christmas", by=OLGA)
    assert rig.stock_at_hq() == {"EAST": 0, "NORTH": 7, "SOUTH": 8}
    [row] = audit.search(rig.chain, audit.Search(action="stock.transfer"))
    assert (row["staff"], row["event_id"], row["reason"]) == (
        "olga", transfer_id, "SOUTH runs out before Christmas")
    assert row["changes"] == [("NORTH", 12, 7), ("SOUTH", 3, 8)]

    rig.sync()
    assert (rig.stock_at("NORTH"), rig.stock_at("SOUTH"), rig.stock_at("EAST")) == (7, 8, 0)
    for outlet_id in rig.outlets:  # a pull from scratch brings the order again: applied once
        with rig.outlet(outlet_id).db.write() as conn:
            set_meta(conn, "cursor", 0)
    rig.sync()
    assert (rig.stock_at("NORTH"), rig.stock_at("SOUTH"), rig.stock_at("EAST")) == (7, 8, 0)
    assert rig.stock_at_hq() == {"EAST": 0, "NORTH": 7, "SOUTH": 8}  # nothing pushed back
    assert rig.outlet("EAST").db.scalar(
        "SELECT COUNT(*) FROM stock_transfers") == 0  # not its business


def test_more_than_hq_knows_the_sender_holds_is_refused_and_changes_nothing(rig: Rig) -> None:
    before = state(rig.chain)
    with pytest.raises(TransferExceedsStock) as refused:
        transfers.transfer(rig.chain, MUG, "NORTH", "SOUTH", 13, reason="too many", by=OLGA)
    assert refused.value.code == "transfer_exceeds_stock"
    assert "NORTH holds 12" in refused.value.message
    with pytest.raises(TransferExceedsStock):
        transfers.preview(rig.chain, MUG, "EAST", "SOUTH", 1)
    assert state(rig.chain) == before


@pytest.mark.parametrize("hq_db", [ON_POSTGRES], indirect=True)
def test_two_transfers_at_once_never_take_more_than_the_sender_holds(rig: Rig) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once) each send 10 of
    NORTH's 12 mugs: one transfer is made, the other is refused and records nothing."""
    done = at_once(rig.chain, *[lambda: transfers.transfer(
        rig.chain, MUG, "NORTH", "SOUTH", 10, reason="rush", by=OLGA)] * 2)
    assert sorted(type(d).__name__ for d in done) == ["TransferExceedsStock", "str"], done
    assert rig.stock_at_hq() == {"EAST": 0, "NORTH": 2, "SOUTH": 13}
    assert len(audit.search(rig.chain, audit.Search(action="stock.transfer"))) == 1


@pytest.mark.parametrize(("sku", "sender", "receiver", "qty", "reason", "field"), [
    (MUG, "NORTH", "NORTH", 1, "why", "to_outlet"),
    (MUG, "NOWHERE", "SOUTH", 1, "why", "from_outlet"),
    (MUG, "NORTH", "NOWHERE", 1, "why", "to_outlet"),
    ("NO-SUCH-GIFT", "NORTH", "SOUTH", 1, "why", "gift_sku"),
    (MUG, "NORTH", "SOUTH", 0, "why", "qty"),
    (MUG, "NORTH", "SOUTH", -3, "why", "qty"),
    (MUG, "NORTH", "SOUTH", 1, "  ", "reason"),
])
def test_a_bad_transfer_names_its_field_and_changes_nothing(
        rig: Rig, sku: str, sender: str, receiver: str, qty: int, reason: str,
        field: str) -> None:
    before = state(rig.chain)
    with pytest.raises(InvalidRequest) as refused:
        transfers.transfer(rig.chain, sku, sender, receiver, qty, reason=reason, by=OLGA)
    assert refused.value.context.get("field") == field
    assert state(rig.chain) == before


def test_an_outlet_cannot_order_a_transfer_hq_flags_it_and_moves_nothing(rig: Rig) -> None:
    claim = StockTransferred(gift_sku=MUG, qty=5, from_outlet="SOUTH", to_outlet="NORTH",
                             reason="")
    last = rig.chain.db.scalar("SELECT last_seq FROM outlets WHERE outlet_id = 'NORTH'")
    ingest.push(rig.chain, "NORTH", PushRequest(outlet_id="NORTH", events=[
        make_event("NORTH", last + 1, claim)]))
    assert rig.stock_at_hq() == {"EAST": 0, "NORTH": 12, "SOUTH": 3}
    [flag] = ingest.flags(rig.chain)
    assert "only HQ" in str(flag["reason"])
