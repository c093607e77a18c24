"""A hypothesis state machine over the sync protocol, on a simulated network.

In-process and single-threaded: HQ is an `hq.chain.Chain` on a real SQLite file, the
outlets are `agent.outlet.Outlet`s with their `agent.replication.OutletReplica`, and the
network is `SimNet`, a `sync.transport.Transport` that calls `hq.ingest.push`,
`hq.feed.pull` and a hello builder directly. Rules make local facts (register, sell,
redeem; return part of a sale at its outlet or, from its receipt code, at another; void a
sale at its outlet; give a gift back), run sync passes whose requests or responses the
network may lose (a lost response was applied at HQ; the outlet gets an exception), replay
an old push, ban at HQ, correct a balance at HQ, run HQ's point expiry as of a later day
(the programme expires points at the end of the month after they were earned), snapshot
HQ's file and later restore HQ from such a snapshot with a new epoch. One rule sells and
voids at once between two clean syncs: HQ must then hold the customer exactly as before
(balances and every statistic). Pulled pages are applied in slices (1 and 3 changes at A
and B, fitted at C); between two slices the model checks invariant 4 at that outlet and
may sell there, or stop the agent (the rest of the page comes again on a later pass).

After every step: HQ's ledger holds each event once and, per outlet, exactly a prefix of
that outlet's outbox (same ids); HQ's tallies are the fold of its events (restated from
what each customer still holds once a return is among them: schema.reversal `settle`), and
its point lots the fold of the same events in HQ's order (schema.lots.apply), adding up to
the balance; every outlet shows HQ's confirmed state plus its own pending facts, each local
fact counted once (invariant 4), its lots adding up to its balance; every page HQ sends
reflects exactly the outlet's events up to its `incorporated_through`. So any interleaving
of sales, returns, voids, redemptions, corrections and expiries folds to the same balances
at HQ and at every outlet. At teardown, after healing: full convergence, lots included
(`faultproxy.check_files`).

Profile `LOYALTY_MODEL_PROFILE=long` runs many more examples. `TestPgProtocolModel` runs
the model with HQ on PostgreSQL (slow tier; see `PgProtocolModel` for what it leaves out).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

import hypothesis.strategies as st
import pytest
from faultproxy import Ledger, check_files
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from testkit.postgres import Cluster, missing

from agent import customers, gifts, giftstock, outbox, returns, sales
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import admin, credentials, expiry, feed, ingest
from hq.chain import Chain
from schema import lots as lotmath
from schema import lotstore, tallystore
from schema.api import (
    CustomerIn,
    GiftReturnIn,
    PaymentIn,
    RedemptionIn,
    ReturnIn,
    SaleIn,
    VoidIn,
)
from schema.errors import ConfigError, LoyaltyError
from schema.events import Event, counts, fold
from schema.ledger import Tally
from schema.lots import Book, Lots
from schema.masterdata import programme_of
from schema.reversal import settle
from schema.sync import Hello, PullResponse, PushRequest, PushResponse
from sync import client
from sync.transport import LinkDown

settings.register_profile("ci", max_examples=40, stateful_step_count=40, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("long", max_examples=300, stateful_step_count=60, deadline=None,
                          suppress_health_check=list(HealthCheck))
settings.register_profile("ci-postgresql", max_examples=15, stateful_step_count=40,
                          deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("LOYALTY_MODEL_PROFILE", "ci")
# on PostgreSQL an example costs ~1.3 s (a database per example): fewer in CI's 30 minutes
PG_PROFILE = "ci-postgresql" if PROFILE == "ci" else PROFILE

OUTLETS = ("A", "B", "C")
FAULT = st.sampled_from(["ok", "ok", "ok", "lose_request", "lose_response"])
# what happens between two slices of a pulled page: nothing, a sale at that outlet, or the
# agent stops there (the rest of the page is pulled again later)
BETWEEN = st.sampled_from(["go", "go", "sell", "stop"])
SLICES = {"A": 1, "B": 3, "C": None}  # changes per slice of a pulled page (None: fitted)


class SlicedReplica(OutletReplica):
    """The outlet's replica, checking invariant 4 between the slices of every pulled page
    and doing there what the rule drew (`ProtocolModel.between`)."""

    def __init__(self, model: ProtocolModel, outlet: Outlet) -> None:
        super().__init__(outlet, slice_changes=SLICES[outlet.outlet_id])
        self.model = model

    def _between_slices(self) -> None:
        self.model.outlet_shows_confirmed_plus_pending(self.outlet_id)
        plan = self.model.between[self.outlet_id]
        step = plan.pop(0) if plan else "go"
        if step == "sell" and self.model.cards:
            self.model.sell(self.outlet_id, len(plan) * 7919, 350 + len(plan), False)
        elif step == "stop":
            raise LinkDown("the agent stopped between two slices of a page")
        super()._between_slices()
# points expire at the end of the month after the month they were earned in
PROGRAMME = {"expiry": {"kind": "end_of_month", "months": 1, "since": "2020-01-01"}}


class SimNet:
    """One outlet's link to HQ. `faults` is consumed one per exchange; then all is well."""

    def __init__(self, model: ProtocolModel, outlet_id: str, faults: list[str]) -> None:
        self.model, self.outlet_id, self.faults = model, outlet_id, list(faults)

    def _exchange(self, call: Any) -> Any:
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "lose_request":
            raise LinkDown("request lost")
        answer = call()
        if fault == "lose_response":
            raise LinkDown("response lost (HQ acted on it)")
        return answer

    def hello(self) -> Hello:
        def call() -> Hello:
            chain = self.model.hq
            with chain.db.read() as conn:
                row = conn.execute("SELECT last_seq, card_range FROM outlets WHERE outlet_id = ?",
                                   (self.outlet_id,)).fetchone()
                head = chain.head(conn)
            return Hello(outlet_id=self.outlet_id, epoch=chain.epoch, last_seq=row["last_seq"],
                         head=head, card_range=row["card_range"])

        return self._exchange(call)  # type: ignore[no-any-return]

    def push(self, request: PushRequest) -> PushResponse:
        # what travels is JSON: the model keeps it to replay later, as a network may
        wire = request.model_dump_json()
        self.model.sent.append((self.outlet_id, wire))
        return self._exchange(  # type: ignore[no-any-return]
            lambda: ingest.push(self.model.hq, self.outlet_id, PushRequest.model_validate_json(wire)))

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse:
        def call() -> PullResponse:
            page = feed.pull(self.model.hq, self.outlet_id, cursor, min(limit, 7))
            self.model.check_page(self.outlet_id, page)
            return PullResponse.model_validate_json(page.model_dump_json())

        return self._exchange(call)  # type: ignore[no-any-return]

    def close(self) -> None:
        pass


class ProtocolModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="loyalty-model-", dir=_tmp_root()))
        self.hq_path = self.dir / "hq.db"
        self.hq_db = self.new_hq_database()
        self.hq = Chain(self.hq_db, seed=default_documents())
        admin.put_master(self.hq, "programme", PROGRAMME, by=None)
        with self.hq.db.write() as conn:
            for outlet in OUTLETS:
                credentials.add_outlet(conn, outlet)
        self.outlets = {o: Outlet(self.dir / f"{o}.db", o, chain=True) for o in OUTLETS}
        self.replicas = {o: SlicedReplica(self, shop) for o, shop in self.outlets.items()}
        self.between: dict[str, list[str]] = {o: [] for o in OUTLETS}
        self.cards: list[str] = []
        self.sold: list[tuple[str, dict[str, Any], str, str]] = []  # (outlet, answer, card, sku)
        self.handed: list[tuple[str, str]] = []  # (outlet, redemption id)
        self.sent: list[tuple[str, str]] = []
        self.snapshots: list[Path] = []
        self.ledger = Ledger()
        self.restored = False
        for outlet in OUTLETS:  # every outlet met HQ once: programme and card range
            client.run_once(self.replicas[outlet], SimNet(self, outlet, []))
        for outlet in OUTLETS:
            with self.outlets[outlet].db.write() as conn:
                giftstock.receive(conn, outlet, "GIFT-MUG", 100, "receipt")

    # --- local facts -------------------------------------------------------------------
    @rule(outlet=st.sampled_from(OUTLETS), category=st.sampled_from(["A", "C", "D"]))
    def register(self, outlet: str, category: str) -> None:
        try:
            doc = customers.register(self.outlets[outlet], CustomerIn(
                kind="person", given_name="Model", surname=outlet, category=category))
        except ConfigError:
            return
        self.cards.append(doc["card_number"])

    @precondition(lambda self: self.cards)
    @rule(outlet=st.sampled_from(OUTLETS), pick=st.integers(0, 10**6),
          price=st.integers(100, 80_000), credit=st.booleans())
    def sell(self, outlet: str, pick: int, price: int, credit: bool) -> None:
        card = self.cards[pick % len(self.cards)]
        shop = self.outlets[outlet]
        try:
            quote = sales.quote(shop, _quote_in(card, price))
            pay = [{"mode": "cash", "amount": quote["total_net"]}]
            if credit and quote["total_net"] > 1:
                half = quote["total_net"] // 2
                pay = [{"mode": "credit", "amount": half},
                       {"mode": "cash", "amount": quote["total_net"] - half}]
            answer, fresh = sales.sell(shop, SaleIn(card=card, lines=_lines(price),
                                                    payments=pay), f"k{len(self.sent)}{pick}")
        except LoyaltyError:
            return
        if fresh:
            self.ledger.sales[outlet].append(answer["sale_id"])
            self.sold.append((outlet, answer, card, _lines(price)[0].sku))

    @precondition(lambda self: self.cards)
    @rule(outlet=st.sampled_from(OUTLETS), pick=st.integers(0, 10**6))
    def redeem(self, outlet: str, pick: int) -> None:
        card = self.cards[pick % len(self.cards)]
        try:
            answer, _ = gifts.redeem(self.outlets[outlet], RedemptionIn(card=card,
                                                                        gift_sku="GIFT-MUG"), None)
        except LoyaltyError:
            return
        self.ledger.redemptions[outlet].append(answer["redemption_id"])
        self.handed.append((outlet, answer["redemption_id"]))

    # --- the way back ------------------------------------------------------------------
    @precondition(lambda self: self.sold)
    @rule(outlet=st.sampled_from(OUTLETS), pick=st.integers(0, 10**6), qty=st.integers(1, 3),
          by_code=st.booleans())
    def give_back(self, outlet: str, pick: int, qty: int, by_code: bool) -> None:
        """Part of a sale back: at its outlet by sale id, or anywhere from its code."""
        home, sale, card, sku = self.sold[pick % len(self.sold)]
        lines = [{"sku": sku, "qty": qty}]
        if outlet == home and not by_code:
            body = ReturnIn.model_validate({"sale_id": sale["sale_id"], "lines": lines})
        else:
            body = ReturnIn.model_validate({"receipt": sale["receipt_code"], "card": card,
                                            "lines": lines})
        try:
            answer, fresh = returns.give_back(self.outlets[outlet], body, f"r{pick}-{qty}")
        except LoyaltyError:
            return
        if fresh:
            self.ledger.returns[outlet].append(answer["return_id"])

    @precondition(lambda self: self.sold)
    @rule(pick=st.integers(0, 10**6))
    def void(self, pick: int) -> None:
        home, sale, _card, _sku = self.sold[pick % len(self.sold)]
        try:
            answer, _ = returns.void(self.outlets[home], sale["sale_id"],
                                     VoidIn(till_id="T1", reason="model"), None)
        except LoyaltyError:
            return
        self.ledger.returns[home].append(answer["return_id"])

    @precondition(lambda self: self.handed)
    @rule(pick=st.integers(0, 10**6))
    def give_gift_back(self, pick: int) -> None:
        outlet, redemption_id = self.handed[pick % len(self.handed)]
        try:
            returns.give_gift_back(self.outlets[outlet], redemption_id, GiftReturnIn(), None)
        except LoyaltyError:
            pass

    @precondition(lambda self: self.cards)
    @rule(outlet=st.sampled_from(OUTLETS), pick=st.integers(0, 10**6),
          price=st.integers(100, 80_000), credit=st.booleans())
    def sell_and_void_leave_the_customer_as_they_were(self, outlet: str, pick: int, price: int,
                                                      credit: bool) -> None:
        """A full return with nothing spent in between: HQ holds the customer exactly as it
        did before the sale (balances and every statistic), once both have reached it."""
        card = self.cards[pick % len(self.cards)]
        shop, replica = self.outlets[outlet], self.replicas[outlet]
        # HQ's `before` must already hold every earlier fact of this outlet: a pass that
        # meets a restored HQ re-bases and queues them again, the next one sends them
        for _ in range(3):
            try:
                client.run_once(replica, SimNet(self, outlet, []))
            except (LinkDown, client.EpochChanged, ingest.SyncGap):
                return
            with shop.db.read() as conn:
                if outbox.pending_count(conn) == 0:
                    break
        else:
            return
        with shop.db.read() as conn:
            row = conn.execute("SELECT customer_id FROM identifiers WHERE kind = 'card' AND "
                               "value = ?", (card,)).fetchone()
        if row is None:
            return
        with self.hq.db.read() as conn:
            before = tallystore.load(conn, row[0])
        try:
            quote = sales.quote(shop, _quote_in(card, price))
            pay = [PaymentIn(mode="credit" if credit else "card", amount=quote["total_net"])]
            answer, _ = sales.sell(shop, SaleIn(card=card, lines=_lines(price), payments=pay),
                                   None)
        except LoyaltyError:
            return
        self.ledger.sales[outlet].append(answer["sale_id"])
        void, _ = returns.void(shop, answer["sale_id"], VoidIn(till_id="T1", reason="undo"),
                               None)
        self.ledger.returns[outlet].append(void["return_id"])
        client.run_once(replica, SimNet(self, outlet, []))
        with self.hq.db.read() as conn:
            after = tallystore.load(conn, row[0])
        assert after.statistics() == before.statistics()
        assert (after.points_balance, after.credit_outstanding) == (
            before.points_balance, before.credit_outstanding)

    # --- the network -------------------------------------------------------------------
    @rule(outlet=st.sampled_from(OUTLETS), faults=st.lists(FAULT, max_size=5),
          between=st.lists(BETWEEN, max_size=6))
    def sync_pass(self, outlet: str, faults: list[str], between: list[str]) -> None:
        self.between[outlet] = between
        try:
            client.run_once(self.replicas[outlet], SimNet(self, outlet, faults))
        except (LinkDown, client.EpochChanged, ingest.SyncGap):
            pass

    @precondition(lambda self: self.sent)
    @rule(pick=st.integers(0, 10**6))
    def replay_old_push(self, pick: int) -> None:
        """A push the network delayed arrives again (maybe at a restored HQ)."""
        outlet, wire = self.sent[pick % len(self.sent)]
        try:
            ingest.push(self.hq, outlet, PushRequest.model_validate_json(wire))
        except ingest.SyncGap:
            pass  # the restored HQ lacks what comes before: refused whole, nothing applied

    def new_hq_database(self) -> str:
        """HQ's --db: its SQLite file (PgProtocolModel: a PostgreSQL database)."""
        return str(self.hq_path)

    def drop_hq_database(self) -> None:
        """HQ's file goes with the model's folder."""

    # --- HQ ----------------------------------------------------------------------------
    @precondition(lambda self: self.cards)
    @rule(pick=st.integers(0, 10**6), banned=st.booleans())
    def ban(self, pick: int, banned: bool) -> None:
        with self.hq.db.read() as conn:
            ids = [r[0] for r in conn.execute("SELECT customer_id FROM customers ORDER BY 1")]
        if ids:
            admin.set_status(self.hq, ids[pick % len(ids)], "banned" if banned else "approved", by=None)

    @precondition(lambda self: self.cards)
    @rule(pick=st.integers(0, 10**6), points=st.integers(-400, 400), credit=st.booleans())
    def adjust(self, pick: int, points: int, credit: bool) -> None:
        """Head office corrects a balance (it reaches the outlets with their next pull)."""
        with self.hq.db.read() as conn:
            ids = [r[0] for r in conn.execute("SELECT customer_id FROM customers ORDER BY 1")]
        if ids and (points or credit):
            admin.adjust(self.hq, ids[pick % len(ids)], points=points,
                         credit=-250 if credit else 0, reason="model correction", by=None)

    def _hq_holds_points(self) -> bool:
        with self.hq.db.read() as conn:
            return conn.execute("SELECT 1 FROM customer_lots WHERE points > 0").fetchone() \
                is not None

    @precondition(_hq_holds_points)
    @rule(days=st.integers(0, 100))
    def expire(self, days: int) -> None:
        """HQ's expiry run, as of a day up to 100 days from today."""
        day = date.fromisoformat(self.hq.clock()[:10]) + timedelta(days=days)
        real = self.hq.clock                        # HQ's day moves on to the run's day:
        self.hq.clock = lambda: f"{day.isoformat()}T23:59:59.000000Z"  # never ahead of it
        try:
            expiry.run(self.hq, day)
        finally:
            self.hq.clock = real

    @rule()
    def snapshot(self) -> None:
        path = self.dir / f"snap{len(self.snapshots)}.db"
        target = sqlite3.connect(path)
        with self.hq.db.read() as conn:
            conn.backup(target)
        target.close()
        self.snapshots.append(path)

    @precondition(lambda self: self.snapshots)
    @rule(pick=st.integers(0, 10**6))
    def restore_hq(self, pick: int) -> None:
        self.hq.close()
        for suffix in ("-wal", "-shm"):
            Path(f"{self.hq_path}{suffix}").unlink(missing_ok=True)
        shutil.copy(self.snapshots[pick % len(self.snapshots)], self.hq_path)
        self.hq = Chain(self.hq_path, seed=default_documents())
        self.hq.restore_epoch()
        self.restored = True

    # --- invariants ----------------------------------------------------------------------
    def check_page(self, outlet: str, page: PullResponse) -> None:
        """HQ's promise: each customer in the page is the fold of HQ's events about it, and
        holds exactly this outlet's events up to `incorporated_through`."""
        with self.hq.db.read() as conn:
            last = conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                (outlet,)).fetchone()[0]
            assert page.incorporated_through == last
            settings = programme_of(conn)
            for change in page.changes:
                if change.kind != "customer" or change.data is None:
                    continue
                events = _hq_events(conn, change.key)
                assert Tally.from_dict(change.data["tally"]) == settle(
                    (e.parsed(), e.at) for e in events if counts(e))
                assert lotstore.from_wire(change.data["lots"]) == \
                    _lots_fold(conn, change.key, settings)
                mine = sorted(e.seq for e in events if e.outlet_id == outlet)
                assert all(s <= page.incorporated_through for s in mine)

    @invariant()
    def hq_ledger_is_each_outlets_prefix_once(self) -> None:
        with self.hq.db.read() as conn:
            rows = conn.execute("SELECT event_id, outlet_id, seq FROM events").fetchall()
            last = dict(conn.execute("SELECT outlet_id, last_seq FROM outlets").fetchall())
        assert len({r[0] for r in rows}) == len(rows)
        for outlet, shop in self.outlets.items():
            at_hq = sorted((r[2], r[0]) for r in rows if r[1] == outlet)
            with shop.db.read() as conn:
                local = [(r[0], r[1]) for r in conn.execute(
                    "SELECT seq, event_id FROM outbox WHERE seq <= ? ORDER BY seq",
                    (last[outlet],))]
            assert at_hq == local, f"HQ's events of {outlet} are not its outbox 1..{last[outlet]}"

    @invariant()
    def hq_tallies_are_the_fold(self) -> None:
        with self.hq.db.read() as conn:
            ids = {r[0] for r in conn.execute(
                "SELECT customer_id FROM events WHERE customer_id IS NOT NULL")}
            ids |= {r[0] for r in conn.execute("SELECT customer_id FROM customer_tally")}
            for cid in ids:
                assert tallystore.load(conn, cid) == settle(
                    (e.parsed(), e.at) for e in _hq_events(conn, cid) if counts(e)), cid

    @invariant()
    def hq_lots_are_the_fold_in_hqs_order(self) -> None:
        with self.hq.db.read() as conn:
            settings = programme_of(conn)
            for (cid,) in conn.execute("SELECT customer_id FROM customers").fetchall():
                held = lotstore.load(conn, cid)
                assert held == _lots_fold(conn, cid, settings), cid
                assert sum(lot.points for lot in held) == tallystore.points_balance(conn, cid)

    @invariant()
    def outlet_lots_add_up_to_its_balance(self) -> None:
        for outlet, shop in self.outlets.items():
            with shop.db.read() as conn:
                for (cid,) in conn.execute("SELECT customer_id FROM customers").fetchall():
                    held = lotstore.load(conn, cid)
                    assert sum(lot.points for lot in held) == \
                        tallystore.points_balance(conn, cid), (outlet, cid)

    @invariant()
    def outlet_view_is_confirmed_plus_pending(self) -> None:
        """Invariant 4: every local fact counted once, before and after HQ confirms it
        (checked between the slices of every pulled page too: `SlicedReplica`)."""
        for outlet in OUTLETS:
            self.outlet_shows_confirmed_plus_pending(outlet)

    def outlet_shows_confirmed_plus_pending(self, outlet: str) -> None:
        import json

        with self.outlets[outlet].db.read() as conn:
            mine: dict[str, list[Event]] = defaultdict(list)
            for (raw,) in conn.execute("SELECT event FROM outbox ORDER BY seq"):
                event = Event.model_validate_json(raw)
                if event.customer_id:
                    mine[event.customer_id].append(event)
            for row in conn.execute("SELECT customer_id, confirmed_through, confirmed_tally "
                                    "FROM customers").fetchall():
                cid, through = row[0], row[1]
                confirmed = Tally.from_dict(json.loads(row[2]))
                pending = [e for e in mine.get(cid, []) if e.seq > through]
                expected = confirmed.combine(fold(pending))
                assert tallystore.load(conn, cid) == expected, (outlet, cid)

    def teardown(self) -> None:
        try:
            if getattr(self, "hq", None) is None:
                return
            # heal: full passes, no faults, until nothing moves
            self.between = {o: [] for o in OUTLETS}
            for _ in range(4):
                for outlet in OUTLETS:
                    client.run_once(self.replicas[outlet], SimNet(self, outlet, []))
            for shop in self.outlets.values():
                shop.db.checkpoint()
            self.hq.db.checkpoint()
            check_files(self.hq_db, {o: self.dir / f"{o}.db" for o in OUTLETS}, self.ledger,
                        floor_bound=not self.restored)
        finally:
            for shop in self.outlets.values():
                shop.close()
            self.hq.close()
            self.drop_hq_database()
            shutil.rmtree(self.dir, ignore_errors=True)


def _hq_events(conn: sqlite3.Connection, customer_id: str) -> list[Event]:
    return [Event.model_validate_json(r[0]) for r in conn.execute(
        "SELECT event FROM events WHERE customer_id = ? ORDER BY hq_seq", (customer_id,))]


def _lots_fold(conn: sqlite3.Connection, customer_id: str, settings: Any) -> Lots:
    """The customer's lots as schema.lots folds HQ's facts about them, in HQ's order, each
    on its booking day (the model's settings never change after the start)."""
    book, tally = Book(), Tally()
    for (raw, booked) in conn.execute("SELECT event, booked_at FROM events WHERE customer_id = ?"
                                      " ORDER BY hq_seq", (customer_id,)).fetchall():
        event = Event.model_validate_json(raw)
        if not counts(event):
            continue
        body = event.parsed()
        last = tally.last_purchase_at
        book = lotmath.apply(book, body, date.fromisoformat((booked or event.at)[:10]),
                             settings.expiry, pending_days=settings.pending_days,
                             last_purchase=date.fromisoformat(last[:10]) if last else None)
        tally = tally.combine(fold([event]))
    return book.lots


def _lines(price: int) -> list[Any]:
    from schema.api import LineIn

    return [LineIn(sku=f"S{price % 5}", name="Thing", qty=1 + price % 3, unit_price=price)]


def _quote_in(card: str, price: int) -> Any:
    from schema.api import QuoteIn

    return QuoteIn(card=card, lines=_lines(price))


def _tmp_root() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class PgProtocolModel(ProtocolModel):
    """The same model with HQ on PostgreSQL: a new database of a throwaway cluster (one
    per test run, tests/testkit/postgres.py) per example. Without three rules: HQ's
    snapshot and restore copy its file (on PostgreSQL that is its own tools' work,
    docs/operations.md), and a ban is audited, which is not on PostgreSQL yet."""

    cluster: ClassVar[Cluster | None] = None

    def new_hq_database(self) -> str:
        if PgProtocolModel.cluster is None:
            reason = missing()
            if reason is not None:
                pytest.skip(reason)
            PgProtocolModel.cluster = Cluster.start()  # stopped at exit
        cluster = PgProtocolModel.cluster
        return cluster.database(template=cluster.template("hq", _migrated_hq))

    def drop_hq_database(self) -> None:
        if PgProtocolModel.cluster is not None:
            PgProtocolModel.cluster.drop(self.hq_db)

    def ban(self, pick: int, banned: bool) -> None:  # not a rule here (see the class)
        raise AssertionError("not a rule on PostgreSQL")

    def snapshot(self) -> None:  # not a rule here
        raise AssertionError("not a rule on PostgreSQL")

    def restore_hq(self, pick: int) -> None:  # not a rule here
        raise AssertionError("not a rule on PostgreSQL")


def _migrated_hq(url: str) -> None:
    from hq.store.postgres import PgStore

    PgStore(url).close()


ProtocolModel.TestCase.settings = settings.get_profile(PROFILE)
TestProtocolModel = ProtocolModel.TestCase
PgProtocolModel.TestCase.settings = settings.get_profile(PG_PROFILE)
TestPgProtocolModel = pytest.mark.slow(PgProtocolModel.TestCase)
