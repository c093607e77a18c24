"""Snapshots as HQ builds them (hq/snapshot.py), in process on real SQLite files.

The property: whatever the chain went through (registrations, sales with items, gift
redemptions, credit sales and their invoices and payments, bans, blocked cards, profile
edits with pictures, master data added and withdrawn, returns and voids, head office's
corrections and point expiry), and wherever in that history the
snapshot is taken, an outlet started from it that then pulls what changed after its
cursor holds exactly what an outlet that pulled everything from cursor 0 holds, and that
is HQ's state. The network is a `Transport` that calls hq/feed.py directly.
"""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hqkit import redeemed, registered, sale
from hypothesis import HealthCheck, given, settings
from snapshotkit import Direct, as_hq_sees_it, hq_state, replica_state
from testkit.processes import cli

from agent import snapshot as outlet_snapshot
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import admin, credentials, expiry, ingest, invoices
from hq import snapshot as hq_snapshot
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from schema import snapshotfile
from schema.events import Payment, SaleLine, SaleRecorded, make_event, new_id
from schema.reversal import ReturnsSettings, plan_void
from schema.sync import PushRequest
from sync import client

OUTLETS = ("A", "B")


def _png() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 200, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


class History:
    """A chain at HQ that things happen to, as outlets' facts and HQ's own decisions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.chain = Chain(root / "hq.db", seed=default_documents())
        with self.chain.db.write() as conn:
            for outlet in (*OUTLETS, "NEW", "ZERO"):
                credentials.add_outlet(conn, outlet)
        self.seq = dict.fromkeys(OUTLETS, 0)
        self.customers: list[tuple[str, str]] = []  # (customer id, card)
        self.sales: list[tuple[str, SaleRecorded]] = []  # (outlet, sale) not returned yet
        self.gifts = 0
        # points expire: the lots carry dates, and an expiry run has something to expire
        admin.put_master(self.chain, "programme", {
            "expiry": {"kind": "end_of_month", "months": 1, "since": "2020-01-01"}}, by=None)

    def push(self, outlet: str, *bodies: Any) -> None:
        events = []
        for body in bodies:
            self.seq[outlet] += 1
            events.append(make_event(outlet, self.seq[outlet], body))
        answer = ingest.push(self.chain, outlet, PushRequest(outlet_id=outlet, events=events))
        assert answer.acked_through == self.seq[outlet]

    def pick(self, n: int) -> tuple[str, str] | None:
        return self.customers[n % len(self.customers)] if self.customers else None

    def do(self, op: str, n: int) -> None:
        outlet = OUTLETS[n % 2]
        who = self.pick(n)
        if op == "register" or who is None:
            body = registered(f"N{n}")
            self.push(outlet, body)
            self.customers.append((body.customer_id, body.card_number))
        elif op == "sale":
            sold = sale(who[0], net=1000 + n, points=10 + n)
            self.push(outlet, sold)
            self.sales.append((outlet, sold))
        elif op == "return" and self.sales:
            where, sold = self.sales.pop(n % len(self.sales))
            self.push(where, plan_void(sold, [], return_id=new_id(), balance=0,
                                       settings=ReturnsSettings(), reason="test"))
        elif op == "adjust":
            admin.adjust(self.chain, who[0], points=(n % 7) - 3 or 5, reason="test", by=None)
        elif op == "expire":
            day = datetime.now(UTC).date() + timedelta(days=40 + n)
            real = self.chain.clock                 # HQ's day moves on to the run's day
            self.chain.clock = lambda: f"{day.isoformat()}T23:59:59.000000Z"
            try:
                expiry.run(self.chain, day)
            finally:
                self.chain.clock = real
        elif op == "credit_sale":
            net = 500 + n
            self.push(outlet, SaleRecorded(
                sale_id=new_id(), customer_id=who[0], currency="EUR",
                lines=[SaleLine(sku=f"S{n % 3}", name="Thing", qty=1, unit_price=net,
                                gross=net, discount=0, net=net)],
                payments=[Payment(mode="credit", amount=net)], total_gross=net,
                total_discount=0, total_net=net, points_earned=0))
        elif op == "redeem":
            self.push(outlet, redeemed(who[0], 5))
        elif op == "ban":
            admin.set_status(self.chain, who[0], "banned" if n % 3 else "approved", "test", by=None)
        elif op == "block_card":
            admin.set_identifier_status(self.chain, "card", who[1],
                                        ("blocked", "lost", "active")[n % 3], by=None)
        elif op == "edit":
            changes: dict[str, Any] = {"phone": f"+385 1 {n}", "category": "ABCD"[n % 4]}
            if n % 2:
                changes["picture"] = _png()
            admin.edit_customer(self.chain, who[0], changes, by=None)
        elif op == "gift":
            self.gifts += 1
            admin.put_master(self.chain, "gift", {"sku": f"GIFT-T{self.gifts}",
                                                  "name": f"Test {n}", "points_cost": 10 + n}, by=None)
        elif op == "withdraw":
            key = "GIFT-MUG" if n % 2 else "HAPPY"
            kind = "gift" if n % 2 else "promo_category"
            if self.chain.db.scalar("SELECT 1 FROM master WHERE kind = ? AND key = ?",
                                    (kind, key)):
                admin.delete_master(self.chain, kind, key, by=None)
        elif op == "invoice":
            today = datetime.now(UTC).date()
            made = invoices.close_period(self.chain, today - timedelta(days=40),
                                         today + timedelta(days=1), today)
            if made and n % 2:
                first = made[0]
                invoices.pay_at_bank(self.chain, first["number"], max(1, first["amount"] // 2),
                                     f"REF{n}", by=COMMAND_LINE)

    def outlet_from_zero(self, outlet: str) -> Path:
        path = self.root / f"{outlet}.db"
        shop = Outlet(path, outlet, chain=True)
        try:
            client.run_once(OutletReplica(shop), Direct(self.chain, outlet))
        finally:
            shop.close()
        return path

    def outlet_from_snapshot(self, outlet: str, snapshot: Path) -> Path:
        path = self.root / f"{outlet}.db"
        outlet_snapshot.apply(path, snapshot, outlet_id=outlet)
        shop = Outlet(path)
        try:
            client.run_once(OutletReplica(shop), Direct(self.chain, outlet))
        finally:
            shop.close()
        return path

    def close(self) -> None:
        self.chain.close()


OPS = st.sampled_from(["register", "register", "sale", "sale", "credit_sale", "redeem",
                       "ban", "block_card", "edit", "gift", "withdraw", "invoice", "return",
                       "adjust", "expire"])


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(before=st.lists(st.tuples(OPS, st.integers(0, 50)), min_size=1, max_size=25),
       after=st.lists(st.tuples(OPS, st.integers(0, 50)), max_size=25))
def test_a_snapshot_plus_its_increments_equals_a_pull_from_zero_and_hqs_state(
        before: list[tuple[str, int]], after: list[tuple[str, int]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="loyalty-snap-"))
    history = History(root)
    try:
        for op, n in before:
            history.do(op, n)
        snap = root / "chain.snapshot"
        hq_snapshot.build(root / "hq.db", snap)
        for op, n in after:
            history.do(op, n)
        started = replica_state(history.outlet_from_snapshot("NEW", snap))
        pulled = replica_state(history.outlet_from_zero("ZERO"))
        assert started == pulled
        assert as_hq_sees_it(started) == hq_state(root / "hq.db")
    finally:
        history.close()
        shutil.rmtree(root, ignore_errors=True)


def test_a_snapshot_says_its_epoch_cursor_and_size_and_holds_the_chain(tmp_path: Path) -> None:
    history = History(tmp_path)
    try:
        for n in range(5):
            history.do("register", n)
        history.do("sale", 1)
        header = hq_snapshot.build(tmp_path / "hq.db", tmp_path / "s.snapshot")
        with history.chain.db.read() as conn:
            head = history.chain.head(conn)
    finally:
        history.close()
    assert (header.epoch, header.cursor, header.customers) == (history.chain.epoch, head, 5)
    assert header.file_bytes == (tmp_path / "s.snapshot").stat().st_size
    assert snapshotfile.checksum(tmp_path / "s.snapshot") == header.sha256
    assert header.migrations == sorted(header.migrations)  # m001..., in order


def test_hq_builds_a_new_snapshot_only_when_the_change_log_moved_enough(tmp_path: Path) -> None:
    history = History(tmp_path)
    try:
        shots = hq_snapshot.Snapshots(history.chain, every=3)
        first = shots.refresh()  # the seeded master data is 11 changes: due
        assert first is not None and shots.current() == first
        history.do("register", 1)
        history.do("register", 2)
        assert shots.refresh() is None  # 2 changes since: not yet
        history.do("register", 3)
        second = shots.refresh()
        assert second is not None and second.header.cursor == first.header.cursor + 3
        history.do("register", 4)
        history.do("sale", 4)
        history.do("register", 5)
        third = shots.refresh()
        assert third is not None
        kept = sorted(p.name for p in shots.dir.glob("*.snapshot"))
        assert kept == sorted([second.path.name, third.path.name])  # the one before stays
        assert shots.find(second.header.sha256) is not None
        assert shots.find(first.header.sha256) is None
    finally:
        history.close()


def test_snapshots_of_another_epoch_are_not_offered(tmp_path: Path) -> None:
    history = History(tmp_path)
    try:
        shots = hq_snapshot.Snapshots(history.chain, every=1)
        assert shots.refresh() is not None
        history.chain.restore_epoch()
        assert shots.current() is None
        assert shots.refresh() is not None  # a new one of the new epoch
        assert shots.current() is not None
    finally:
        history.close()


def test_build_never_writes_hqs_database(tmp_path: Path) -> None:
    history = History(tmp_path)
    try:
        history.do("register", 1)
        history.do("credit_sale", 1)
    finally:
        history.close()
    before = hq_state(tmp_path / "hq.db")
    mtime = (tmp_path / "hq.db").stat().st_mtime_ns
    hq_snapshot.build(tmp_path / "hq.db", tmp_path / "s.snapshot")
    assert hq_state(tmp_path / "hq.db") == before
    assert (tmp_path / "hq.db").stat().st_mtime_ns == mtime


def test_an_outlet_started_from_a_snapshot_signs_in_the_desk_accounts_made_before_it(
        tmp_path: Path) -> None:
    """A desk account travels to outlets (docs/backoffice.md): one made before a snapshot
    is in it, so a new outlet's desk works offline from its first minute."""
    from agent.deskstaff import DeskLogins
    from hq import staff
    from schema.roles import Role

    history = History(tmp_path)
    try:
        with history.chain.db.write() as conn:
            staff.add(conn, "desk.ana", "a long desk secret", role=Role.desk)
            staff.add(conn, "head.office", "another long secret", role=Role.operator)
        hq_snapshot.build(tmp_path / "hq.db", tmp_path / "s.snapshot")
    finally:
        history.close()
    outlet_snapshot.apply(tmp_path / "new.db", tmp_path / "s.snapshot", outlet_id="NEW")
    shop = Outlet(tmp_path / "new.db")
    try:
        assert DeskLogins(shop.db).sign_in("desk.ana", "a long desk secret").role == "desk"
        names = [r[0] for r in shop.db.all("SELECT username FROM desk_accounts")]
        assert names == ["desk.ana"]  # back-office accounts never travel to outlets
    finally:
        shop.close()


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_snapshot_built_from_hq_on_postgresql_holds_what_one_built_from_its_file_holds(
        tmp_path: Path, hq_pg: str) -> None:
    from hq.store.migrate import migrate

    history = History(tmp_path)
    try:
        for n, op in enumerate(["register", "register", "register", "sale", "credit_sale",
                                "redeem", "ban", "block_card", "edit", "edit", "gift",
                                "withdraw", "invoice", "register", "credit_sale", "invoice"]):
            history.do(op, n)
    finally:
        history.close()
    from_file = hq_snapshot.build(tmp_path / "hq.db", tmp_path / "file.snapshot")
    migrate(tmp_path / "hq.db", hq_pg)  # the chain moves onto PostgreSQL
    on_postgres = Chain(hq_pg)
    try:
        shots = hq_snapshot.Snapshots(on_postgres, every=1, where=tmp_path / "served")
        offer = shots.build_now()
    finally:
        on_postgres.close()
    assert (offer.header.epoch, offer.header.cursor, offer.header.customers) == (
        from_file.epoch, from_file.cursor, from_file.customers)
    made = cli("hq", "snapshot", "--db", hq_pg, "--out", str(tmp_path / "cli.snapshot"))
    assert made.returncode == 0, made.stderr
    replicas = []
    for name, snap in (("F", tmp_path / "file.snapshot"), ("P", offer.path),
                       ("C", tmp_path / "cli.snapshot")):
        outlet_snapshot.apply(tmp_path / f"{name}.db", snap, outlet_id="NEW")
        replicas.append(replica_state(tmp_path / f"{name}.db"))
    assert replicas[0] == replicas[1] == replicas[2]
    assert as_hq_sees_it(replicas[1]) == hq_state(tmp_path / "hq.db")
