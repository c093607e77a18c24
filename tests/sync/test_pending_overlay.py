"""Local facts HQ has not folded in yet stay visible on top of what a pull brings
(docs/design.md invariant 4), for identifier status changes too."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import customers, gifts
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import admin, credentials
from hq.api import create_app
from hq.chain import Chain
from schema.api import CustomerIn
from schema.errors import InvalidRequest
from sync.client import PassReport, greet, pull_new, run_once
from sync.router import RouterTransport
from web.serving import Background


def test_a_card_blocked_at_the_till_stays_blocked_when_an_older_hq_state_arrives(
        tmp_path: Path) -> None:
    chain = Chain(tmp_path / "hq.db", seed=default_documents())
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "A")
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    outlet = Outlet(tmp_path / "a.db", "A", chain=True)
    replica, link = OutletReplica(outlet), RouterTransport(server.url, token)
    try:
        run_once(replica, link)
        joined = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B"))
        run_once(replica, link)
        customers.set_identifier_status(outlet, "card", joined["card_number"], "blocked")
        admin.edit_customer(chain, joined["customer_id"], {"note": "seen at HQ"}, by=None)
        greet(replica, link)
        pull_new(replica, link, PassReport())  # HQ's state, without the block: not pushed yet
        status = outlet.db.scalar("SELECT status FROM identifiers WHERE value = ?",
                                  (joined["card_number"],))
        assert status == "blocked"
        note = outlet.db.scalar("SELECT note FROM customers WHERE customer_id = ?",
                                (joined["customer_id"],))
        assert note == "seen at HQ"
        run_once(replica, link)
        at_hq = chain.db.scalar("SELECT status FROM identifiers WHERE value = ?",
                                (joined["card_number"],))
        assert at_hq == "blocked"
    finally:
        link.close()
        server.stop()
        outlet.close()
        chain.close()


def test_a_stock_move_whose_sign_contradicts_its_reason_is_refused(outlet: Outlet) -> None:
    before = {g["sku"]: g["stock"] for g in gifts.stock(outlet)}
    with pytest.raises(InvalidRequest):
        gifts.move_stock(outlet, "GIFT-MUG", 5, "transfer_out")
    with pytest.raises(InvalidRequest):
        gifts.move_stock(outlet, "GIFT-MUG", -5, "receipt")
    assert {g["sku"]: g["stock"] for g in gifts.stock(outlet)} == before
    assert gifts.move_stock(outlet, "GIFT-MUG", -2, "transfer_out") == before["GIFT-MUG"] - 2


def test_a_chain_outlet_cannot_make_a_blocked_card_active_again(tmp_path: Path) -> None:
    from schema.errors import Forbidden

    outlet = Outlet(tmp_path / "c.db", "C", card_range=7, chain=True)
    try:
        with outlet.db.write() as conn:
            for kind, doc in default_documents():
                from agent.replica import put_master
                from schema.masterdata import DOCS, key_of

                put_master(conn, kind, key_of(kind, DOCS[kind].model_validate(doc)), doc)
        outlet.reload_programme()
        card = customers.register(outlet, CustomerIn(kind="person", given_name="A",
                                                     surname="B"))["card_number"]
        customers.set_identifier_status(outlet, "card", card, "lost")
        with pytest.raises(Forbidden):
            customers.set_identifier_status(outlet, "card", card, "active")
        assert outlet.db.scalar("SELECT status FROM identifiers WHERE value = ?", (card,)) == "lost"
    finally:
        outlet.close()
