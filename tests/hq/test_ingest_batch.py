"""HQ's batched ingest is the event-by-event fold, exactly (docs/design.md invariants 2, 5, 7).

`hq.ingest` applies a push with set-based SQL: tally deltas combined per customer, one
upsert per customer and item, executemany for the ledger rows, one change-log bump per
entity. That is only safe if it leaves HQ in the state the events would leave it in one at
a time. The property: a random batch (registrations, sales, redemptions that overspend,
unknown customers, visits, identifier and profile facts, stock, repayments), pushed

- in ONE push through `push_json` (the HTTP path: one typed parse, batched projection),
- one event per push through `push_json`,
- in one push through the reference path (`push(..., batched=False)`: event by event),

gives the same HQ state (tallies, items, gifts, sales and lines, redemptions, stock,
customers, identifiers, flags, the ledger's rows and verdicts, the change log's order) and
the same answers, on top of the same earlier history. Stamps include ones HQ cannot use
(after its receive time, before the outlet existed, not a time): both paths book those at
HQ's receive time, on HQ's clock fixed here.

On PostgreSQL too (fewer examples: a database per chain): the ledger's numbers come from a
sequence there, with gaps where a batch was undone, so the state compares the ledger's
order (each `hq_seq` as its rank), which is what HQ promises on both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from testkit.postgres import Cluster

from hq import credentials, ingest, projection
from hq.chain import Chain
from hq.projection import HQ
from schema.errors import ProtocolError
from schema.events import (
    EVENT_TYPE,
    TYPE_OF,
    Body,
    CreditRepaid,
    CustomerRegistered,
    CustomerStatusChanged,
    CustomerUpdated,
    Event,
    GiftRedeemed,
    IdentifierAdded,
    IdentifierStatusChanged,
    Payment,
    PinSet,
    Profile,
    SaleLine,
    SaleRecorded,
    StockMoved,
    VisitRecorded,
    make_event,
    new_id,
    tally_of,
)
from schema.sync import PushRequest, PushResponse

OUTLET = "X"
CUSTOMERS = [f"0190c0de-0000-7000-8000-00000000000{i}" for i in range(6)]
SEEDED = CUSTOMERS[:3]  # registered (with some points) before the batch; the rest are not
INVOICE = "inv-1"  # 7.00 owed by SEEDED[0]: a second 5.00 payment is an overpayment (flagged)
CARDS = ["2900010000015", "2900010000022", "2900010000039", "2900010000046"]
SKUS = ["A", "B", "C"]
NAMES = ["apple", "Apple", "pear"]
TIMES = ["2026-01-01T10:00:00Z", "2026-01-01T10:00:00.5Z", "2026-01-02T09:00:00Z",
         "2031-01-01T00:00:00Z", "2001-01-01T00:00:00Z", "not-a-time"]
HQ_NOW = "2026-06-01T12:00:00.000000Z"  # HQ's clock: receive time of every push
VALUES = ["111", "222", "333"]

customer = st.sampled_from(CUSTOMERS)
line = st.builds(
    lambda sku, name, qty, price, division: SaleLine(
        sku=sku, name=name, qty=qty, unit_price=price, division=division, gross=qty * price,
        discount=0, net=qty * price),
    st.sampled_from(SKUS), st.sampled_from(NAMES), st.integers(1, 3),
    st.sampled_from([100, 250, 250, 900]), st.sampled_from([None, "food"]))


def _sale(cid: str, lines: list[SaleLine], modes: list[str], points: int) -> SaleRecorded:
    net = sum(ln.net for ln in lines)
    share = [net // len(modes)] * len(modes)
    share[0] += net - sum(share)
    return SaleRecorded(sale_id=new_id(), customer_id=cid, till_id="T1", currency="EUR",
                        lines=lines,
                        payments=[Payment(mode=m, amount=a) for m, a in zip(modes, share, strict=True)],  # type: ignore[arg-type]
                        total_gross=net, total_discount=0, total_net=net, points_earned=points)


sale = st.builds(_sale, customer, st.lists(line, min_size=1, max_size=4),
                 st.lists(st.sampled_from(["cash", "card", "credit"]), min_size=1, max_size=2),
                 st.sampled_from([0, 40, 50, 90, 130]))
redemption = st.builds(
    lambda cid, points, sku, qty: GiftRedeemed(redemption_id=new_id(), customer_id=cid,
                                               gift_sku=sku, gift_name="gift", qty=qty,
                                               points_spent=points),
    customer, st.sampled_from([0, 40, 50, 90, 200]), st.sampled_from(["G1", "G2"]), st.integers(1, 2))
registration = st.builds(
    lambda cid, card, name: CustomerRegistered(
        customer_id=cid, card_number=card,
        profile=Profile(kind="person", given_name=name, surname="Batch", category="B")),
    customer, st.sampled_from(CARDS), st.sampled_from(["Ana", "Iva"]))
visit = st.builds(lambda cid: VisitRecorded(customer_id=cid, via="card"), customer)
ident_added = st.builds(
    lambda cid, value, status: IdentifierAdded(customer_id=cid, kind="barcode", value=value,
                                               status=status),
    customer, st.sampled_from(VALUES), st.sampled_from(["active", "blocked"]))
ident_status = st.builds(
    lambda kind, value, status: IdentifierStatusChanged(kind=kind, value=value, status=status),
    st.sampled_from(["barcode", "card"]), st.sampled_from([*VALUES, *CARDS[:2]]),
    st.sampled_from(["active", "blocked", "lost"]))
updated = st.builds(
    lambda cid, phone: CustomerUpdated(customer_id=cid, changes=Profile(phone=phone)),
    customer, st.sampled_from(["+385 1", "+385 2"]))
pin = st.builds(lambda cid: PinSet(customer_id=cid, pin_hash="h-" + cid[-1]), customer)
status = st.builds(lambda cid: CustomerStatusChanged(customer_id=cid, status="banned"), customer)
repaid = st.builds(
    lambda cid, amount, invoice: CreditRepaid(payment_id=new_id(), customer_id=cid,
                                              amount=amount, invoice_id=invoice),
    customer, st.sampled_from([0, 500]),
    st.sampled_from([None, "no-such-invoice", INVOICE, INVOICE]))
stock = st.builds(lambda sku, qty: StockMoved(gift_sku=sku, qty=qty, reason="receipt"),
                  st.sampled_from(["G1", "G2"]), st.integers(1, 5))
# One strategy per registered event type (a new type fails the guard below until it has
# one), drawn with the weight beside it: sales are most of HQ's traffic, redemptions are
# what can overspend.
FACTS: dict[str, tuple[st.SearchStrategy[Body], int]] = {
    "sale.recorded": (sale, 3),
    "gift.redeemed": (redemption, 2),
    "customer.registered": (registration, 1),
    "visit.recorded": (visit, 1),
    "identifier.added": (ident_added, 1),
    "identifier.status_changed": (ident_status, 1),
    "customer.updated": (updated, 1),
    "pin.set": (pin, 1),
    "customer.status_changed": (status, 1),
    "credit.repaid": (repaid, 1),
    "stock.moved": (stock, 1),
}
fact = st.one_of(*(strategy for strategy, weight in FACTS.values() for _ in range(weight)))


def test_every_registered_event_type_has_a_strategy() -> None:
    assert set(FACTS) == set(EVENT_TYPE), (
        f"no strategy for {sorted(set(EVENT_TYPE) - set(FACTS))}, "
        f"strategy for unknown types {sorted(set(FACTS) - set(EVENT_TYPE))}")


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_each_strategy_draws_its_own_types_body(data: st.DataObject) -> None:
    for name, (strategy, _weight) in FACTS.items():
        assert TYPE_OF[type(data.draw(strategy))] == name


def seed_facts() -> list[tuple[Body, str]]:
    facts: list[tuple[Body, str]] = []
    for i, cid in enumerate(SEEDED):
        facts.append((CustomerRegistered(customer_id=cid, card_number=CARDS[i],
                                         profile=Profile(kind="person", given_name="Old",
                                                         surname="Seed", category="A")),
                      TIMES[0]))
        line = SaleLine(sku="A", name="apple", qty=1, unit_price=100 * (i + 1), gross=100 * (i + 1),
                        discount=0, net=100 * (i + 1))
        facts.append((_sale(cid, [line], ["cash"], 50 * i), TIMES[0]))
    return facts


@contextmanager
def new_chain(where: str = ":memory:") -> Iterator[Chain]:
    chain = Chain(where, clock=lambda: HQ_NOW)
    with chain.db.write() as conn:
        credentials.add_outlet(conn, OUTLET)
        # its facts are dated years back: the outlet has traded since 2020 (before that
        # HQ would book them at receipt, docs/sync.md "Outlet clocks")
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        conn.execute("INSERT INTO invoices (invoice_id, number, customer_id, period_from, "
                     "period_to, issued_on, due_on, amount) VALUES (?, '2026-000001', ?, "
                     "'2026-01-01', '2026-02-01', '2026-02-01', '2026-02-15', 700)",
                     (INVOICE, SEEDED[0]))
    try:
        yield chain
    finally:
        chain.close()


def wire(events: list[Event]) -> bytes:
    return PushRequest(outlet_id=OUTLET, events=events).model_dump_json().encode()


def answers(responses: list[PushResponse]) -> tuple[int, list[tuple[Any, ...]]]:
    results = [(r.event_id, r.seq, r.result, r.reason) for resp in responses for r in resp.results]
    return responses[-1].acked_through, results


def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql).fetchall()]


def state(chain: Chain) -> dict[str, Any]:
    with chain.db.read() as conn:
        return _state(conn)


def _ranked(rows: list[tuple[Any, ...]], column: int, rank: dict[int, int]
            ) -> list[tuple[Any, ...]]:
    return [(*r[:column], rank[r[column]], *r[column + 1:]) for r in rows]


def _state(conn: Any) -> dict[str, Any]:
    """Everything a push writes, without wall-clock times (received_at, flag times), with
    the change log as the order of entities (a batch's bumps are compacted) and each
    ledger number as its rank (see the module's docstring)."""
    ledger = []
    rank: dict[int, int] = {}
    for r in conn.execute("SELECT hq_seq, event_id, outlet_id, seq, type, version, customer_id,"
                          " at, received_at, booked_at, result, reason, event FROM events"
                          " ORDER BY hq_seq"):
        stored = Event.model_validate_json(r["event"])
        rank[r[0]] = len(rank) + 1
        ledger.append((rank[r[0]], *tuple(r)[1:-1], stored.event_id, stored.seq,
                       stored.customer_id, stored.parsed()))
    return {
        "ledger": ledger,
        "customers": rows(conn, "SELECT * FROM customers ORDER BY customer_id"),
        "identifiers": rows(conn, "SELECT * FROM identifiers ORDER BY kind, value"),
        "tally": rows(conn, "SELECT * FROM customer_tally ORDER BY customer_id"),
        "items": rows(conn, "SELECT * FROM customer_items ORDER BY customer_id, sku"),
        "gifts": rows(conn, "SELECT * FROM customer_gifts ORDER BY customer_id, sku"),
        "sales": _ranked(rows(conn, "SELECT sale_id, hq_seq, outlet_id, customer_id, till_id,"
                                    " at, total_gross, total_discount, total_net,"
                                    " points_earned, paid_credit FROM sales ORDER BY sale_id"),
                         1, rank),
        "lines": rows(conn, "SELECT * FROM sale_lines ORDER BY sale_id, line_no"),
        "redemptions": _ranked(rows(conn, "SELECT redemption_id, hq_seq, outlet_id, customer_id,"
                                          " gift_sku, gift_name, qty, points_spent, at"
                                          " FROM redemptions ORDER BY redemption_id"), 1, rank),
        "stock": rows(conn, "SELECT * FROM gift_stock ORDER BY outlet_id, gift_sku"),
        # the outlet's one clock flag is raised by the push that needed it: last
        "flags": rows(conn, "SELECT event_id, customer_id, outlet_id, reason, detail, at,"
                            " resolved_at FROM flags ORDER BY event_id IS NULL, flag_id"),
        "changes": rows(conn, "SELECT kind, key, urgent FROM changes ORDER BY seq"),
        "outlets": rows(conn, "SELECT outlet_id, last_seq, clock_offset_s, clock_redated,"
                              " clock_flag_id IS NOT NULL FROM outlets"),
        "invoices": rows(conn, "SELECT * FROM invoices"),
    }


def _paid(amount: int) -> tuple[Body, str]:
    return CreditRepaid(payment_id=new_id(), customer_id=SEEDED[0], amount=amount,
                        invoice_id=INVOICE), TIMES[1]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(facts=[_paid(500), _paid(500), _paid(100)], resend=0)  # an overpaid invoice
@given(facts=st.lists(st.tuples(fact, st.sampled_from(TIMES)), min_size=1, max_size=25),
       resend=st.integers(0, 2))
def test_one_batched_push_equals_one_event_per_push_and_the_reference(
        facts: list[tuple[Body, str]], resend: int) -> None:
    batched_equals_reference(facts, resend, new_chain)


@pytest.mark.slow
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@example(facts=[_paid(500), _paid(500), _paid(100)], resend=0)
@given(facts=st.lists(st.tuples(fact, st.sampled_from(TIMES)), min_size=1, max_size=25),
       resend=st.integers(0, 2))
def test_on_postgresql_one_batched_push_equals_one_event_per_push_and_the_reference(
        pg_cluster: Cluster, facts: list[tuple[Body, str]], resend: int) -> None:
    @contextmanager
    def pg_chain() -> Iterator[Chain]:
        url = pg_cluster.database(template=pg_cluster.template("hq", _migrated))
        try:
            with new_chain(url) as chain:
                yield chain
        finally:
            pg_cluster.drop(url)

    batched_equals_reference(facts, resend, pg_chain)


def _migrated(url: str) -> None:
    from hq.store.postgres import PgStore

    PgStore(url).close()


def batched_equals_reference(facts: list[tuple[Body, str]], resend: int,
                             chain_of: Callable[[], AbstractContextManager[Chain]]) -> None:
    seed = [make_event(OUTLET, i + 1, body, at) for i, (body, at) in enumerate(seed_facts())]
    first = len(seed) + 1
    batch = [make_event(OUTLET, first + i, body, at) for i, (body, at) in enumerate(facts)]
    # a batch may start with events HQ already has (a lost answer, at-least-once delivery)
    pushed = seed[len(seed) - resend:] + batch
    with chain_of() as one, chain_of() as each, chain_of() as ref:
        for chain in (one, each, ref):
            ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=seed), batched=False)
        got_one = answers([ingest.push_json(one, OUTLET, wire(pushed))])
        got_each = answers([ingest.push_json(each, OUTLET, wire([e])) for e in pushed])
        got_ref = answers([ingest.push(ref, OUTLET, PushRequest(outlet_id=OUTLET, events=pushed),
                                       batched=False)])
        assert got_one == got_ref
        assert got_each == got_ref
        want = state(ref)
        assert state(one) == want
        assert state(each) == want


def acc_state(acc: projection.Acc) -> dict[str, Any]:
    return {name: getattr(acc, name) for name in projection.Acc.__slots__}


@settings(max_examples=150, deadline=None)
@given(facts=st.lists(st.tuples(fact, st.sampled_from(TIMES)), max_size=12))
def test_a_types_fast_accumulate_adds_exactly_its_tally(facts: list[tuple[Body, str]]) -> None:
    """HQ folds a sale without building its Tally (`HqEntry.accumulate`); on top of any
    earlier facts that must add what the type's declared tally adds."""
    fast, slow = projection.Acc(), projection.Acc()
    for body, at in facts:
        accumulate = HQ[TYPE_OF[type(body)]].accumulate
        if accumulate is None:
            fast.add(tally_of(body, at))
        else:
            accumulate(fast, body, at)
        slow.add(tally_of(body, at))
    assert acc_state(fast) == acc_state(slow)


def test_a_reused_event_id_refuses_the_whole_batch_as_before() -> None:
    """The batched path fails on the ledger's UNIQUE index; the reference then gives the
    exact refusal, and nothing of the batch stays."""
    with new_chain() as chain:
        seed = [make_event(OUTLET, i + 1, body, at) for i, (body, at) in enumerate(seed_facts())]
        ingest.push_json(chain, OUTLET, wire(seed))
        before = state(chain)
        n = len(seed)
        good = make_event(OUTLET, n + 1, _sale(SEEDED[0], [SaleLine(
            sku="A", name="a", qty=1, unit_price=1, gross=1, discount=0, net=1)], ["cash"], 1))
        reused = make_event(OUTLET, n + 2, VisitRecorded(customer_id=SEEDED[0], via="card"))
        reused = reused.model_copy(update={"event_id": seed[0].event_id})
        with pytest.raises(ProtocolError, match=f"event id {seed[0].event_id} was already used"):
            ingest.push_json(chain, OUTLET, wire([good, reused]))
        assert state(chain) == before


def test_a_body_that_does_not_parse_gets_the_reference_refusal() -> None:
    with new_chain() as chain:
        event = make_event(OUTLET, 1, VisitRecorded(customer_id=SEEDED[0], via="card"))
        bad = event.model_copy(update={"body": {"customer_id": SEEDED[0], "via": "telepathy"}})
        with pytest.raises(ProtocolError, match="malformed visit.recorded body"):
            ingest.push_json(chain, OUTLET, wire([bad]))
        newer = event.model_copy(update={"version": 9})
        with pytest.raises(ProtocolError, match="unknown event type 'visit.recorded' version 9"):
            ingest.push_json(chain, OUTLET, wire([newer]))
        with pytest.raises(ProtocolError, match="malformed push batch"):
            ingest.push_json(chain, OUTLET, b'{"outlet_id": "X", "events": [')
