"""A pulled page is applied in slices (agent/replication.py, docs/sync.md "Sliced pull
application"), each its own short transaction, so a sale never waits long for the writer.

Between two slices the outlet must be a consistent replica: the cursor never passes a
change not yet applied (an agent stopped there pulls the rest again and converges), every
customer is HQ's state with this outlet's pending facts on top (invariant 4), and a sale
made between two slices to a customer of a later slice stays on top of HQ's state. HQ is
in this process on a real file; pages come from `hq.feed.pull`, as the sync routes send
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent import cardnumber, sales
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replica import meta_in
from agent.replication import OutletReplica
from hq import admin, credentials, feed, ingest
from hq.chain import Chain
from schema import tallystore
from schema.api import LineIn, QuoteIn, SaleIn
from schema.events import (
    CustomerRegistered,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.sync import PushRequest

CUSTOMERS = 30


class Stopped(Exception):
    """The agent stopped between two slices."""


class Sliced(OutletReplica):
    """A replica with slices of `size` changes that runs `between(k)` after slice k."""

    def __init__(self, outlet: Outlet, size: int, between: Callable[[int], None]) -> None:
        super().__init__(outlet, slice_changes=size)
        self.between = between
        self.slices = 0

    def _between_slices(self) -> None:
        self.slices += 1
        self.between(self.slices)
        super()._between_slices()


class World:
    def __init__(self, tmp: Path) -> None:
        self.hq = Chain(tmp / "hq.db", seed=default_documents())
        with self.hq.db.write() as conn:
            for outlet in ("A", "B"):
                credentials.add_outlet(conn, outlet)
        self.cards = [cardnumber.make(2, i + 1) for i in range(CUSTOMERS)]
        self.ids = [new_id() for _ in range(CUSTOMERS)]
        self.b_seq = 0
        self.b_push([CustomerRegistered(customer_id=cid, card_number=card, profile=Profile(
            kind="person", given_name="Slice", surname=f"N{i}", category="A"))
            for i, (cid, card) in enumerate(zip(self.ids, self.cards, strict=True))])
        self.a = Outlet(tmp / "a.db", "A", chain=True)
        self.pull_all(OutletReplica(self.a))

    def b_push(self, bodies: list[object]) -> None:
        events = []
        for body in bodies:
            self.b_seq += 1
            events.append(make_event("B", self.b_seq, body))  # type: ignore[arg-type]
        ingest.push(self.hq, "B", PushRequest(outlet_id="B", events=events))

    def sales_at_b(self) -> None:
        """B sells to every customer: HQ bumps them all (a re-pull for A)."""
        line = SaleLine(sku="X", name="thing", qty=1, unit_price=1000, gross=1000, discount=0,
                        net=1000)
        self.b_push([SaleRecorded(sale_id=new_id(), customer_id=cid, till_id="T", currency="EUR",
                                  lines=[line], payments=[Payment(mode="cash", amount=1000)],
                                  total_gross=1000, total_discount=0, total_net=1000,
                                  points_earned=10) for cid in self.ids])

    def pull_all(self, replica: OutletReplica, limit: int = 1000) -> None:
        while True:
            page = feed.pull(self.hq, "A", replica.cursor(), limit)
            replica.apply(page)
            if not page.more:
                return

    def cursor(self) -> int:
        return int(self.a.db.scalar("SELECT value FROM meta WHERE key = 'cursor'"))

    def sell_at_a(self, customer: int) -> int:
        """A sale at A's till; its net total."""
        card = self.cards[customer]
        lines = [LineIn(sku="Y", name="local", qty=1, unit_price=700)]
        quote = sales.quote(self.a, QuoteIn(card=card, lines=lines))
        sales.sell(self.a, SaleIn(card=card, lines=lines, payments=[
            {"mode": "cash", "amount": quote["total_net"]}]), new_id())  # type: ignore[list-item]
        return int(quote["total_net"])

    def hq_tally(self, customer: int) -> object:
        with self.hq.db.read() as conn:
            return tallystore.load(conn, self.ids[customer])

    def a_tally(self, customer: int) -> object:
        with self.a.db.read() as conn:
            return tallystore.load(conn, self.ids[customer])

    def change_seqs(self) -> dict[str, int]:
        with self.hq.db.read() as conn:
            return {r[0]: r[1] for r in conn.execute(
                "SELECT key, seq FROM changes WHERE kind = 'customer'")}

    def close(self) -> None:
        self.a.close()
        self.hq.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    here = World(tmp_path)
    yield here
    here.close()


def test_a_sale_made_between_two_slices_stays_on_top_of_hqs_newer_state(world: World) -> None:
    world.sales_at_b()
    last = max(range(CUSTOMERS), key=lambda i: world.change_seqs()[world.ids[i]])

    sold: list[int] = []

    def sell_to_a_customer_of_a_later_slice(k: int) -> None:
        if k == 1:
            sold.append(world.sell_at_a(last))

    world.pull_all(Sliced(world.a, 5, sell_to_a_customer_of_a_later_slice))
    hq, here = world.hq_tally(last), world.a_tally(last)
    assert here.purchases_count == hq.purchases_count + 1  # type: ignore[attr-defined]
    assert here.purchases_total == hq.purchases_total + sold[0]  # type: ignore[attr-defined]
    assert set(here.items) == {"X", "Y"}  # type: ignore[attr-defined]


def test_an_agent_stopped_between_slices_kept_every_change_below_its_cursor_and_pulls_the_rest(
        world: World) -> None:
    before = world.cursor()
    world.sales_at_b()
    banned = world.ids[3]
    admin.set_status(world.hq, banned, "banned", by=None)  # urgent: rides at the head of every page
    seqs = world.change_seqs()
    cursors: list[int] = []

    def stop_after_two(k: int) -> None:
        cursors.append(world.cursor())
        # every change at or below the cursor is applied, whole
        for i, cid in enumerate(world.ids):
            if seqs[cid] <= cursors[-1]:
                assert world.a_tally(i) == world.hq_tally(i), i
        # the urgent ban came with the first slice, ahead of the cursor
        assert world.a.db.scalar("SELECT status FROM customers WHERE customer_id = ?",
                                 (banned,)) == "banned"
        if k == 2:
            raise Stopped

    page = feed.pull(world.hq, "A", before, 12)
    assert page.changes[0].key == banned and page.changes[0].seq > page.cursor
    with pytest.raises(Stopped):
        Sliced(world.a, 4, stop_after_two).apply(page)
    # slice 1: the ban and 3 changes; slice 2: 4 more: the cursor is just before the 8th
    assert cursors == [page.changes[4].seq - 1, page.changes[8].seq - 1]
    assert world.cursor() == cursors[-1] < seqs[banned]
    world.pull_all(OutletReplica(world.a))
    assert world.cursor() == world.hq.db.scalar("SELECT MAX(seq) FROM changes")
    for i in range(CUSTOMERS):
        assert world.a_tally(i) == world.hq_tally(i), i


def test_a_page_whose_cursor_was_reset_meanwhile_is_not_finished(world: World) -> None:
    """A hello that found HQ went back resets the cursor to 0 while the pull thread is
    between two slices: the rest of the page must not move it forward again."""
    world.sales_at_b()

    def reset(k: int) -> None:
        if k == 1:
            with world.a.db.write() as conn:
                conn.execute("UPDATE meta SET value = '0' WHERE key = 'cursor'")

    page = feed.pull(world.hq, "A", world.cursor(), 20)
    Sliced(world.a, 5, reset).apply(page)
    assert meta_in(world.a.db.conn, "cursor") == "0"


def test_a_sale_waiting_for_the_writer_goes_between_two_slices(world: World) -> None:
    """The pull thread would take the writer back at once (a lock is not fair): between
    two slices it lets a waiting sale go first."""
    import threading

    world.sales_at_b()
    done: list[int] = []
    seen: list[int] = []
    till = threading.Thread(target=lambda: done.append(world.sell_at_a(0)))

    def sale_arrives(k: int) -> None:
        if k == 1:
            with world.a.db.read():  # the sale queues for the writer while this slice ends
                till.start()
                deadline = time.monotonic() + 10
                while not world.a.db.others_waiting() and time.monotonic() < deadline:
                    time.sleep(0.001)
        elif done and not seen:
            seen.append(k)

    world.pull_all(Sliced(world.a, 1, sale_arrives))
    till.join(10)
    # it went at the first boundaries (one, or a few under load), not after the page's
    # 30 slices (before the pull thread let it in: after 26)
    assert done and seen and seen[0] <= 5, seen
