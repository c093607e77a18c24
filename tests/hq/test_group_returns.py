"""Group commit folds the way back exactly as one push at a time does.

HQ writes the pushes that wait together in one transaction (hq/committer.py): their
tallies, items, gifts, stock and change-log bumps are summed in memory (hq/projection.py
`Sums`) and written once, and the customers a return touched are restated from what they
still hold only after that (`Sums.flush`); point lots are read and written per batch. The
property: pushes from several outlets (sales, partial returns and voids of sales made
before, in an earlier push of the same group, or still to come, redemptions, gifts given
back, stock, every other type, head-office-only facts an outlet sends), some refused (a
gap, a reused event id, an outlet speaking for another), with head office's own facts (a
merge, a correction, a transfer) before or between the groups, applied

- one push per transaction (each push alone, as HQ writes a push nobody waits beside), and
- as commit groups of 2-5 pushes, each group ONE transaction of the committer's own
  (`GroupCommit._commit`: savepoint per push, the group's sums written once),

give the same answers and the same HQ state after every group: ledger, tallies (with the
restated best purchase, item prices and last purchase), items, gifts, lots and what
redemptions took, sales, returns, stock, the change log's order, flags. The groups are
made by the test, not by threads racing for the writer: `Gathering` keeps each push's job
(as `GroupCommit.run` would queue it) and commits them together.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_group_commit import Outcome, Push, outcome, request
from test_ingest_batch import (
    CUSTOMERS,
    HQ_NOW,
    INVOICE,
    LATE_SALE,
    PROGRAMMES,
    SEEDED,
    TIMES,
    _return,
    assert_tallies_are_settled,
    fact,
    returned,
    seed_facts,
    state,
)

from hq import credentials, ingest, projection
from hq.chain import GROUP_EVENTS, Chain
from hq.committer import GroupCommit, Job, _Waiting
from schema.database import Database
from schema.errors import OutletMismatch, ProtocolError, SyncGap
from schema.events import (
    HQ_OUTLET,
    BalanceAdjusted,
    Body,
    CustomersMerged,
    Event,
    Refund,
    ReturnedLine,
    ReturnRecorded,
    SaleRecorded,
    StockTransferred,
    make_event,
    new_id,
)

OUTLETS = ("A", "B", "C")
SEEDER = "S"  # pushes the seeded customers and their sales first, in every chain
R = TypeVar("R")
S = TypeVar("S", bound=Any)


class Gathering(GroupCommit):
    """The chain's group commit with its groups made by the test: `run` keeps the push's
    job as the committer queues it (the push's answer is read from the group after it
    committed); `commit` writes what was kept as ONE group through the committer's own
    transaction, savepoints and shared sums (`GroupCommit._commit`)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db, max_weight=GROUP_EVENTS)
        self.kept: list[_Waiting[Any, Any]] = []

    def run(self, job: Job[S, R], shared: Callable[[], S], weight: int = 1) -> R:
        self.kept.append(_Waiting(job, shared, max(1, weight)))
        return cast(R, None)

    def commit(self) -> list[_Waiting[Any, Any]]:
        group, self.kept = self.kept, []
        groups = self.groups
        self._commit(group)
        assert self.groups == groups + 1  # one transaction, committed
        return group


@contextmanager
def chain_at(path: Path | str, programme: dict[str, Any]) -> Iterator[Chain]:
    """HQ on a real file (or PostgreSQL database), its outlets registered, an invoice to pay, the programme's
    settings, and the seeded customers with their sales (pushed by SEEDER)."""
    chain = Chain(path, clock=lambda: HQ_NOW)
    with chain.db.write() as conn:
        if programme:
            chain.put_master(conn, "programme", programme)
        for outlet in (*OUTLETS, SEEDER):
            credentials.add_outlet(conn, outlet)
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        conn.execute("INSERT INTO invoices (invoice_id, number, customer_id, period_from, "
                     "period_to, issued_on, due_on, amount) VALUES (?, '2026-000001', ?, "
                     "'2026-01-01', '2026-02-01', '2026-02-01', '2026-02-15', 700)",
                     (INVOICE, SEEDED[0]))
    try:
        yield chain
    finally:
        chain.close()


SEED = [make_event(SEEDER, i + 1, body, at) for i, (body, at) in enumerate(seed_facts())]


def hq_fact(chain: Chain, event: Event) -> None:
    """Head office's own fact, as `ingest.record_hq_fact` folds one (a batch of one in
    its own transaction), with the same event in every chain."""
    with chain.db.write() as conn:
        batch = projection.Batch(conn, HQ_NOW, [event])
        batch.add(event, event.parsed(), HQ_NOW, None)
        batch.flush()


# --- the plan: groups of pushes, head office's facts between them -------------------------

Step = tuple[str, Any]  # ("group", [Push, ...]) or ("hq", Event)


def return_of(sale: SaleRecorded) -> st.SearchStrategy[ReturnRecorded]:
    """A return or void of part (or all, or more) of one line of `sale`, by its customer
    (or by another one), taking back some of its points."""
    def build(line_no: int, qty: int, cid: str, points: int, mode: str, kind: str,
              closes: bool) -> ReturnRecorded:
        line = sale.lines[line_no]
        value = qty * line.unit_price
        return ReturnRecorded(
            return_id=new_id(), sale_id=sale.sale_id, customer_id=cid, kind=kind,
            till_id="T1", reason="group", lines=[ReturnedLine(
                line=line_no, sku=line.sku, name=line.name, qty=qty, unit_price=line.unit_price,
                gross=value, discount=0, net=value)],
            refunds=[Refund(mode=mode, amount=value)],
            value=value, points_reversed=points, closes_sale=closes)

    return st.integers(0, len(sale.lines) - 1).flatmap(lambda i: st.builds(
        build, st.just(i), st.integers(1, sale.lines[i].qty + 1),
        st.sampled_from([sale.customer_id] * 3 + [CUSTOMERS[4]]),
        st.sampled_from([0, sale.points_earned, sale.points_earned // 2, 60]),
        st.sampled_from(["cash", "card", "credit"]), st.sampled_from(["return", "void"]),
        st.booleans()))


def before_its_sale(sale_id: str) -> st.SearchStrategy[ReturnRecorded]:
    """A return of a sale HQ gets later (from another push of the group, or never)."""
    return st.builds(_return, st.just(sale_id), st.sampled_from(CUSTOMERS), st.just("A"),
                     st.integers(1, 2), st.sampled_from([100, 250]), st.integers(0, 60),
                     st.just("cash"), st.sampled_from(["return", "void"]), st.booleans())


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, list[Step]]:
    programme = draw(st.integers(0, len(PROGRAMMES) - 1))
    sold: list[SaleRecorded] = []  # every sale drawn so far (applied or not)
    promised: list[str] = []  # sales returned before they are drawn
    late_used = False
    logs: dict[str, list[Event]] = {o: [] for o in OUTLETS}
    hq_seq = 0
    steps: list[Step] = []

    def hq(body: Body) -> None:
        nonlocal hq_seq
        hq_seq += 1
        steps.append(("hq", make_event(HQ_OUTLET, hq_seq, body, at=HQ_NOW)))

    def hq_fact_between() -> None:
        which = draw(st.sampled_from(["none", "none", "merge", "merge", "adjust", "transfer"]))
        if which == "merge":
            known = st.sampled_from([*SEEDED, *SEEDED, *CUSTOMERS[3:]])  # mostly applied
            hq(CustomersMerged(customer_id=draw(known), merged=draw(known), reason="one person"))
        elif which == "adjust":
            hq(BalanceAdjusted(adjustment_id=new_id(), customer_id=draw(st.sampled_from(
                CUSTOMERS)), points=draw(st.sampled_from([-70, 30])), reason="goodwill"))
        elif which == "transfer":
            hq(StockTransferred(gift_sku=draw(st.sampled_from(["G1", "G2"])),
                                qty=draw(st.integers(1, 3)), from_outlet="A", to_outlet="B"))

    def body() -> Body:
        nonlocal late_used
        how = draw(st.sampled_from(["any", "any", "any", "sold", "sold", "later"]))
        if how == "sold" and sold:
            return draw(return_of(draw(st.sampled_from(sold))))
        if how == "later":
            sale_id = new_id()
            promised.append(sale_id)
            return draw(before_its_sale(sale_id))
        got = draw(fact)
        if isinstance(got, SaleRecorded):
            if got.sale_id == LATE_SALE:
                if late_used:
                    got = got.model_copy(update={"sale_id": new_id()})
                late_used = True
            elif promised and draw(st.sampled_from([True, False])):  # a return came first
                got = got.model_copy(update={"sale_id": promised.pop(0)})
            sold.append(got)
        return got

    if draw(st.booleans()):
        hq_fact_between()  # head office's fact before any push
    for _ in range(draw(st.integers(1, 3))):
        pushes: list[Push] = []
        for _ in range(draw(st.integers(2, 5))):
            outlet = draw(st.sampled_from(OUTLETS))
            log = logs[outlet]
            how = draw(st.sampled_from(["next"] * 6 + ["gap", "again", "reused", "claims"]))
            start = len(log) + 1 + (2 if how == "gap" else 0)
            new = [make_event(outlet, start + i, body(), draw(st.sampled_from(TIMES)))
                   for i in range(draw(st.integers(1, 6)))]
            if how == "reused":  # a new event with the id of one HQ has (or was sent)
                used = [e for events in logs.values() for e in events] + SEED
                new[-1] = new[-1].model_copy(update={
                    "event_id": draw(st.sampled_from(used)).event_id})
            if how == "claims":  # the token's outlet is another one
                other = draw(st.sampled_from([o for o in OUTLETS if o != outlet]))
                pushes.append(request(other, new, claimed=outlet))
                continue
            pushes.append(request(outlet, (log[-2:] if how == "again" else []) + new))
            if how in ("next", "again"):
                log += new
        steps.append(("group", pushes))
        hq_fact_between()
    if draw(st.booleans()):  # a return some outlet made of a sale no push brings
        outlet = draw(st.sampled_from(OUTLETS))
        ret = draw(returned)
        steps.append(("group", [request(outlet, [make_event(outlet, len(logs[outlet]) + 1, ret,
                                                            TIMES[0])]),
                                request(outlet, [make_event(outlet, len(logs[outlet]) + 2,
                                                            draw(fact), TIMES[2])])]))
    return programme, steps


# --- applying the plan both ways -------------------------------------------------------------


def grouped(chain: Chain, pushes: list[Push]) -> list[Outcome]:
    """The pushes as one commit group: each is parsed and checked as it arrives (an outlet
    speaking for another is refused then), the rest committed together."""
    gathering = chain.pushes
    assert isinstance(gathering, Gathering)
    early: dict[int, Outcome] = {}
    queued: list[int] = []
    for i, push in enumerate(pushes):
        try:
            ingest.push_json(chain, *push)  # kept by `Gathering.run`, not yet applied
        except (ProtocolError, SyncGap, OutletMismatch) as exc:
            early[i] = "refused", (type(exc).__name__, str(exc))
        else:
            queued.append(i)
    group = gathering.commit()
    assert len(group) == len(queued)
    late = dict(zip(queued, group, strict=True))
    return [early[i] if i in early else answered(late[i]) for i in range(len(pushes))]


def answered(waiting: _Waiting[Any, Any]) -> Outcome:
    """A queued push's outcome as `test_group_commit.outcome` gives it."""
    if waiting.error is not None:
        exc = waiting.error
        return "refused", (type(exc).__name__, str(exc))
    answer = waiting.answer
    assert answer is not None
    return "answer", (answer.acked_through,
                      [(r.event_id, r.seq, r.result, r.reason) for r in answer.results])


def scratch() -> str | None:
    """Real SQLite files, on tmpfs where there is one (no fsync: the property is about
    what is written, not whether it survives a power cut)."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def note_what_happened(chain: Chain, base: int, outcomes: list[Outcome]) -> None:
    """What the group held, for `--hypothesis-show-statistics`."""
    if chain.db.one("SELECT 1 FROM returns r JOIN sales s USING (sale_id) WHERE r.hq_seq > ?"
                    " AND s.hq_seq > ? AND s.hq_seq < r.hq_seq", (base, base)):
        event("a return of a sale made earlier in its group")
    if chain.db.one("SELECT 1 FROM returns r JOIN sales s USING (sale_id) WHERE r.hq_seq > ?"
                    " AND s.hq_seq > r.hq_seq", (base,)):
        event("a return in the group before its sale")
    kinds = {o[0] for o in outcomes}
    if kinds == {"answer", "refused"}:
        event("a refused push beside applied ones")


def lots_add_up(chain: Chain) -> None:
    """Every customer's lots hold exactly its balance (and a merged profile's nothing)."""
    lots = {r[0]: r[1] for r in chain.db.all("SELECT customer_id, SUM(points) FROM customer_lots"
                                             " GROUP BY customer_id")}
    balances = {r[0]: r[1] for r in chain.db.all("SELECT customer_id, points_earned - points_used"
                                                 " - points_expired FROM customer_tally")}
    for cid in set(lots) | set(balances):
        assert lots.get(cid, 0) == balances.get(cid, 0), cid


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=plans())
def test_groups_of_pushes_with_returns_lots_merges_and_corrections_fold_as_one_by_one(
        plan: tuple[int, list[Step]]) -> None:
    with tempfile.TemporaryDirectory(dir=scratch()) as tmp:
        names = iter(("grouped.db", "alone.db"))
        groups_fold_as_one_by_one(plan, lambda: Path(tmp) / next(names))


@settings(max_examples=8, deadline=None,  # two HQ databases per example: ~1 s each
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(plan=plans())
def test_on_postgresql_groups_with_returns_lots_merges_and_corrections_fold_as_one_by_one(
        hq_pg_dbs: Callable[[], str], plan: tuple[int, list[Step]]) -> None:
    groups_fold_as_one_by_one(plan, hq_pg_dbs)


def groups_fold_as_one_by_one(plan: tuple[int, list[Step]],
                              new_db: Callable[[], Path | str]) -> None:
    programme, steps = plan
    settings_ = cast(dict[str, Any], PROGRAMMES[programme])
    with chain_at(new_db(), settings_) as together, chain_at(new_db(), settings_) as alone:
        for chain in (together, alone):
            ingest.push_json(chain, SEEDER, request(SEEDER, SEED)[1])
        together.pushes = Gathering(together.db)
        for kind, step in steps:
            if kind == "hq":
                hq_fact(together, step)
                hq_fact(alone, step)
                continue
            base = together.db.scalar("SELECT COALESCE(MAX(hq_seq), 0) FROM events")
            got = grouped(together, step)
            want = [outcome(alone, push) for push in step]
            assert got == want
            assert state(together) == state(alone)
            note_what_happened(together, base, got)
        if together.db.scalar("SELECT 1 FROM events WHERE outlet_id = 'HQ' AND type ="
                              " 'customers.merged' AND result = 'applied'"):
            event("head office merged two customers")
        assert_tallies_are_settled(together)
        lots_add_up(together)
        lots_add_up(alone)
