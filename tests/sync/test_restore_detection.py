"""HQ restored from a backup by a plain file copy (no restore-epoch): the outlet must still
notice, from what HQ had acknowledged, and send the lost facts again."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from agent import customers, sales
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import admin, credentials
from hq.api import create_app
from hq.chain import Chain
from schema.api import CustomerIn, PaymentIn, QuoteIn, SaleIn
from sync.client import run_once
from sync.router import RouterTransport
from web.serving import Background


def sell(outlet: Outlet, card: str, key: str) -> None:
    quote = sales.quote(outlet, QuoteIn.model_validate(
        {"card": card, "lines": [{"sku": "X", "name": "X", "qty": 1, "unit_price": 5000}]}))
    sales.sell(outlet, SaleIn(quote_id=quote["quote_id"],
                              payments=[PaymentIn(mode="cash", amount=quote["total_net"])]), key)


def sync(outlet: Outlet, chain: Chain, token: str) -> None:
    server = Background(create_app(chain), on_exit=chain.waiters.close)
    link = RouterTransport(server.url, token)
    try:
        run_once(OutletReplica(outlet), link)
    finally:
        link.close()
        server.stop()


def test_a_restored_hq_whose_change_log_grew_again_still_gets_the_lost_facts(tmp_path: Path) -> None:
    hq_path, backup = tmp_path / "hq.db", tmp_path / "backup.db"
    chain = Chain(hq_path, seed=default_documents())
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "A")
    outlet = Outlet(tmp_path / "a.db", "A", chain=True)
    sync(outlet, chain, token)
    card = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B"))[
        "card_number"]
    sync(outlet, chain, token)
    chain.db.checkpoint()
    chain.close()
    shutil.copy(hq_path, backup)

    chain = Chain(hq_path)
    for n in range(3):
        sell(outlet, card, f"k{n}")
    sync(outlet, chain, token)
    events_at_outlet = outlet.db.scalar("SELECT COUNT(*) FROM outbox")
    assert chain.db.scalar("SELECT COUNT(*) FROM events") == events_at_outlet
    chain.close()

    for suffix in ("-wal", "-shm"):
        Path(f"{hq_path}{suffix}").unlink(missing_ok=True)
    shutil.copy(backup, hq_path)  # the restore, by hand: same epoch as before
    chain = Chain(hq_path)
    cursor = int(outlet.db.scalar("SELECT value FROM meta WHERE key = 'cursor'"))
    for n in range(cursor + 5):  # head passes the outlet's cursor: that check cannot see it
        admin.put_master(chain, "gift", {"sku": f"G{n}", "name": f"Gift {n}", "points_cost": 10}, by=None)
    lost = events_at_outlet - chain.db.scalar("SELECT COUNT(*) FROM events")
    assert lost > 0

    sync(outlet, chain, token)

    at_hq = sqlite3.connect(hq_path)
    ids = {r[0] for r in at_hq.execute("SELECT event_id FROM events WHERE outlet_id = 'A'")}
    mine = {r[0] for r in outlet.db.all("SELECT event_id FROM outbox")}
    assert ids == mine
    earned = at_hq.execute("SELECT points_earned FROM customer_tally").fetchone()[0]
    assert earned == outlet.db.scalar("SELECT points_earned FROM customer_tally")
    at_hq.close()
    chain.close()
    outlet.close()


def test_an_outlet_restored_from_its_own_backup_renumbers_its_new_facts_and_loses_none(
        tmp_path: Path) -> None:
    chain = Chain(tmp_path / "hq.db", seed=default_documents())
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "A")
    a_path, a_backup = tmp_path / "a.db", tmp_path / "a-backup.db"
    outlet = Outlet(a_path, "A", chain=True)
    sync(outlet, chain, token)
    card = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B"))[
        "card_number"]
    sync(outlet, chain, token)
    outlet.db.checkpoint()
    outlet.close()
    shutil.copy(a_path, a_backup)  # the outlet's nightly backup

    outlet = Outlet(a_path, "A")
    for n in range(3):
        sell(outlet, card, f"before-{n}")
    sync(outlet, chain, token)
    outlet.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{a_path}{suffix}").unlink(missing_ok=True)
    shutil.copy(a_backup, a_path)  # the disk died; the backup comes back

    outlet = Outlet(a_path, "A")
    for n in range(2):  # the till sells before the outlet has talked to HQ again
        sell(outlet, card, f"after-{n}")
    new_sales = {r["sale_id"] for r in outlet.db.all("SELECT sale_id FROM sales")}
    sync(outlet, chain, token)

    assert outlet.db.scalar("SELECT COUNT(*) FROM outbox WHERE acked = 0") == 0
    at_hq = {r["sale_id"] for r in chain.db.all("SELECT sale_id FROM sales")}
    assert new_sales <= at_hq and len(at_hq) == 5  # 3 from before the restore, 2 after
    seqs = [r["seq"] for r in chain.db.all("SELECT seq FROM events WHERE outlet_id = 'A' "
                                           "ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))  # gap-free, nothing doubled
    ids = [r["event_id"] for r in chain.db.all("SELECT event_id FROM events")]
    assert len(ids) == len(set(ids))
    mine = {r["seq"]: r["event_id"] for r in outlet.db.all("SELECT seq, event_id FROM outbox")}
    theirs = {r["seq"]: r["event_id"] for r in chain.db.all(
        "SELECT seq, event_id FROM events WHERE outlet_id = 'A'")}
    assert all(theirs[seq] == event_id for seq, event_id in mine.items())
    outlet.close()
    chain.close()
