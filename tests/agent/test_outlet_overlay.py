"""The outlet overlay (agent/overlay.py): every event type says what a pending local fact
puts back over HQ's confirmed row, and the replica applies it (invariant 4), on a real file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent import credit, customers, outbox
from agent.outlet import Outlet
from agent.overlay import OUTLET
from agent.replication import OutletReplica
from schema import tallystore
from schema.api import CustomerIn, CustomerPatch, IdentifierIn
from schema.customerstore import entity
from schema.events import BODIES
from schema.sync import Change, PullResponse


def test_every_event_type_has_an_outlet_entry() -> None:
    names = {name for name, _version in BODIES}
    assert not names - set(OUTLET), f"no OUTLET entry for {sorted(names - set(OUTLET))}"
    assert not set(OUTLET) - names, f"OUTLET entries for unknown types {sorted(set(OUTLET) - names)}"


def pull(outlet: Outlet, through: int, change: Change) -> None:
    """Applies a page from HQ that had folded in this outlet's facts up to `through`."""
    OutletReplica(outlet).apply(PullResponse(epoch="e1", cursor=change.seq, head=change.seq,
                                             more=False, incorporated_through=through,
                                             changes=[change]))


def last_seq(outlet: Outlet) -> int:
    with outlet.db.read() as conn:
        return outbox.last_seq(conn)


def register(outlet: Outlet) -> tuple[str, str]:
    joined = customers.register(outlet, CustomerIn(kind="person", given_name="A", surname="B"))
    return joined["card_number"], joined["customer_id"]


def hq_row(outlet: Outlet, customer_id: str) -> Change:
    """The customer as HQ would publish it now: its confirmed row."""
    with outlet.db.read() as conn:
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                           (customer_id,)).fetchone()
        doc = entity(conn, row, tallystore.load(conn, customer_id).to_dict())
    return Change(kind="customer", key=customer_id, seq=1, data=doc)


Look = Callable[[Outlet, str, str], Any]  # (outlet, card, customer_id) -> what the till sees
EDITS: dict[str, tuple[Callable[[Outlet, str, str], object], Look]] = {
    "customer.updated": (
        lambda o, card, cid: customers.update(o, cid, CustomerPatch(surname="Married-Name")),
        lambda o, card, cid: o.db.scalar("SELECT surname FROM customers WHERE customer_id = ?",
                                         (cid,))),
    "identifier.added": (
        lambda o, card, cid: customers.add_identifier(
            o, cid, IdentifierIn(kind="phone", value="+420777000111")),
        lambda o, card, cid: o.db.scalar("SELECT COUNT(*) FROM identifiers WHERE kind = 'phone'"
                                         " AND customer_id = ?", (cid,))),
    "identifier.status_changed": (
        lambda o, card, cid: customers.set_identifier_status(o, "card", card, "blocked"),
        lambda o, card, cid: o.db.scalar("SELECT status FROM identifiers WHERE value = ?",
                                         (card,))),
    "pin.set": (
        lambda o, card, cid: customers.set_pin(o, cid, "4711"),
        lambda o, card, cid: o.db.scalar("SELECT pin_hash FROM customers WHERE customer_id = ?",
                                         (cid,))),
}


@pytest.mark.parametrize("event_type", sorted(EDITS))
def test_a_pending_local_edit_stays_visible_over_hqs_older_row(outlet: Outlet,
                                                                event_type: str) -> None:
    edit, look = EDITS[event_type]
    card, customer_id = register(outlet)
    registered = last_seq(outlet)
    older = hq_row(outlet, customer_id)  # HQ's row holds the registration only
    edit(outlet, card, customer_id)      # the next fact, not yet at HQ
    with outlet.db.read() as conn:
        assert [e.type for e in outbox.events_for(conn, customer_id, registered)] == [event_type]
    edited = look(outlet, card, customer_id)

    pull(outlet, registered, older)
    assert look(outlet, card, customer_id) == edited

    # the control: had HQ folded the edit in, its row would be the truth
    pull(outlet, registered + 1, older)
    assert look(outlet, card, customer_id) != edited


def test_a_payment_taken_here_counts_on_hqs_invoice_until_hq_has_it(outlet: Outlet) -> None:
    _card, customer_id = register(outlet)
    n = last_seq(outlet)
    invoice = {"invoice_id": "inv-1", "number": "2024-0001", "customer_id": customer_id,
               "period_from": "2024-01-01", "period_to": "2024-01-31", "issued_on": "2024-02-01",
               "due_on": "2024-02-15", "amount": 10000, "paid_amount": 0, "status": "unpaid"}
    pull(outlet, n, Change(kind="invoice", key="inv-1", seq=2, data=invoice))
    credit.pay(outlet, "2024-0001", 4000, None)  # seq n + 1
    credit.pay(outlet, "2024-0001", 6000, None)  # seq n + 2

    def shown() -> tuple[int, str]:
        row = outlet.db.all("SELECT paid_amount, status FROM invoices")[0]
        return row["paid_amount"], row["status"]

    pull(outlet, n, Change(kind="invoice", key="inv-1", seq=3, data=invoice))
    assert shown() == (10000, "paid")  # HQ has neither payment: both still count here
    pull(outlet, n + 1, Change(kind="invoice", key="inv-1", seq=4,
                           data=dict(invoice, paid_amount=4000)))
    assert shown() == (10000, "paid")  # HQ has the first: only the second is added
    pull(outlet, n + 2, Change(kind="invoice", key="inv-1", seq=5,
                           data=dict(invoice, paid_amount=4000)))
    assert shown() == (4000, "unpaid")  # HQ says it has both: its word stands, nothing doubled


def test_a_sale_pending_on_a_profile_hq_merged_counts_for_the_survivor_once(
        outlet: Outlet) -> None:
    """HQ merged B into A while this outlet sold to B offline: once the merge arrives, B's
    card identifies A and A's view holds B's pending sale; when HQ has folded the sale in
    (for A), A's row is HQ's word and the sale is not counted twice."""
    from agent import identification, sales
    from schema.api import LineIn, QuoteIn, SaleIn

    _card_a, a = register(outlet)
    card_b, b = register(outlet)
    registered = last_seq(outlet)
    hq_a, hq_b = hq_row(outlet, a), hq_row(outlet, b)  # before the sale: HQ's rows
    lines = [LineIn(sku="S1", name="Wine", qty=2, unit_price=1250)]
    total = sales.quote(outlet, QuoteIn(card=card_b, lines=lines))["total_net"]
    sales.sell(outlet, SaleIn(card=card_b, lines=lines, payments=[
        {"mode": "cash", "amount": total}]), None)  # type: ignore[list-item]

    def purchases(cid: str) -> int:
        with outlet.db.read() as conn:
            return tallystore.load(conn, cid).purchases_total

    assert a != b and purchases(b) == total
    # HQ's merge: B's card and tally are A's, B names A (published in this order)
    assert hq_a.data is not None and hq_b.data is not None
    merged_b = dict(hq_b.data, merged_into=a, identifiers=[])
    survivor = dict(hq_a.data, identifiers=hq_a.data["identifiers"] + hq_b.data["identifiers"])
    page = [Change(kind="customer", key=b, seq=2, data=merged_b),
            Change(kind="customer", key=a, seq=3, data=survivor)]

    def pull_page(through: int, changes: list[Change]) -> None:
        OutletReplica(outlet).apply(PullResponse(
            epoch="e1", cursor=changes[-1].seq, head=changes[-1].seq, more=False,
            incorporated_through=through, changes=changes))

    pull_page(registered, page)
    with outlet.db.read() as conn:
        assert identification.resolve(conn, "card", card_b)["customer_id"] == a
    assert (purchases(a), purchases(b)) == (total, 0)
    # HQ folded the sale in, for A: its row is the truth, nothing counted twice
    folded = dict(survivor, tally=dict(survivor["tally"], purchases_total=total))
    pull_page(registered + 1, [Change(kind="customer", key=a, seq=4, data=folded)])
    assert (purchases(a), purchases(b)) == (total, 0)
