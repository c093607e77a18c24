"""Concurrent pushes through two HQs on one PostgreSQL database (issue 15, docs/sync.md
"Several HQ processes"), in this process: two `Chain`s stand for two HQ processes (each
its own pool, group commit and listener), threads for outlets pushing at once.

The pushes share customers, so concurrent transactions update the same tallies, items
and the change log's counter; one outlet sends every batch through both HQs at once (a
retry racing its original). Every event must be in the ledger once, each outlet's a gap-
free prefix, every tally the fold of its customer's events, and every answer `applied`
or `duplicate`, never an error.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hqkit import at_once, hold_the_change_log, registered, sale

from agent.programme import default_documents
from hq import credentials, ingest
from hq.chain import Chain
from schema import tallystore
from schema.events import (
    Event,
    Payment,
    SaleLine,
    SaleRecorded,
    fold,
    make_event,
    new_id,
)
from schema.reversal import Asked, ReturnsSettings, plan_return
from schema.sync import PushRequest, PushResponse

OUTLETS = ("P1", "P2", "P3", "P4", "P5")
RACER = "P5"  # pushes each batch through both HQs at once
BATCHES = 6
PER_BATCH = 40


@pytest.fixture
def two_hqs(hq_pg: str) -> Iterator[tuple[Chain, Chain]]:
    one = Chain(hq_pg, seed=default_documents())
    two = Chain(hq_pg, seed=default_documents())
    try:
        yield one, two
    finally:
        one.close()
        two.close()


def test_concurrent_pushes_through_two_hqs_apply_every_event_once_and_keep_the_fold(
        two_hqs: tuple[Chain, Chain]) -> None:
    one, two = two_hqs
    with one.db.write() as conn:
        for outlet in OUTLETS:
            credentials.add_outlet(conn, outlet)
    people = [registered(f"P{i}") for i in range(12)]
    ingest.push(one, OUTLETS[0], PushRequest(outlet_id=OUTLETS[0], events=[
        make_event(OUTLETS[0], i + 1, body) for i, body in enumerate(people)]))
    rng = random.Random(15)
    plans: dict[str, list[list[Event]]] = {}
    for outlet in OUTLETS:
        first = 1 + (len(people) if outlet == OUTLETS[0] else 0)
        events = [make_event(outlet, first + i,
                             sale(rng.choice(people).customer_id, net=100 + i, points=i % 7))
                  for i in range(BATCHES * PER_BATCH)]
        plans[outlet] = [events[k:k + PER_BATCH] for k in range(0, len(events), PER_BATCH)]
    results: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(OUTLETS) + 1)

    def push(chain: Chain, outlet: str, batch: list[Event]) -> None:
        answer = ingest.push(chain, outlet, PushRequest(outlet_id=outlet, events=batch))
        assert answer.acked_through == batch[-1].seq
        with lock:
            results.update(r.result for r in answer.results)

    def outlet_pushes(index: int, outlet: str) -> None:
        try:
            start.wait()
            for k, batch in enumerate(plans[outlet]):
                if outlet == RACER:
                    racing = [threading.Thread(target=push, args=(chain, outlet, batch))
                              for chain in (one, two)]
                    for thread in racing:
                        thread.start()
                    for thread in racing:
                        thread.join()
                else:
                    push((one, two)[(index + k) % 2], outlet, batch)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=outlet_pushes, args=(i, o)) for i, o in enumerate(OUTLETS)]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    total = len(OUTLETS) * BATCHES * PER_BATCH
    assert results == {"applied": total, "duplicate": BATCHES * PER_BATCH}
    with one.db.read() as conn:
        rows = conn.execute("SELECT event_id, outlet_id, seq, event FROM events").fetchall()
        assert len({r[0] for r in rows}) == len(rows) == total + len(people)
        for outlet in OUTLETS:
            seqs = sorted(r[2] for r in rows if r[1] == outlet)
            assert seqs == list(range(1, len(seqs) + 1)), f"{outlet}'s events are not 1..n"
            assert conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                (outlet,)).fetchone()[0] == len(seqs)
        events = [Event.model_validate_json(r[3]) for r in rows]
        for person in people:
            mine = [e for e in events if e.customer_id == person.customer_id]
            assert tallystore.load(conn, person.customer_id) == fold(mine), person.customer_id


def test_two_returns_of_one_sale_through_two_hqs_at_once_fold_as_one_after_the_other(
        two_hqs: tuple[Chain, Chain], tmp_path: Path) -> None:
    """Outlets P1 and P2 each take back part of one sale, their pushes reaching two HQ
    processes at once (both held at the change log's counter, which each takes last, until
    both wait): each restates the customer from what it holds, so neither may lose the
    other's return. HQ must end as it would after the two pushes one after the other: the
    customer's tally, and the second return flagged for giving back more than was sold."""
    one, two = two_hqs
    alone = Chain(tmp_path / "alone.db", seed=default_documents())
    who = registered("Ret")
    line = SaleLine(sku="W", name="Wine", qty=4, unit_price=1000, gross=4000, discount=0,
                    net=4000)
    sold = SaleRecorded(sale_id=new_id(), customer_id=who.customer_id, currency="EUR",
                        lines=[line], payments=[Payment(mode="cash", amount=4000)],
                        total_gross=4000, total_discount=0, total_net=4000, points_earned=40)
    back = [plan_return(sold, [], [Asked("W", 3)], return_id=new_id(), balance=40,
                        settings=ReturnsSettings(), reason="broken") for _ in OUTLETS[:2]]
    pushes = [(outlet, [make_event(outlet, 1, ret)]) for outlet, ret in zip(OUTLETS, back,
                                                                            strict=False)]
    try:
        for chain in (one, alone):
            with chain.db.write() as conn:
                for outlet in ("P0", *OUTLETS[:2]):
                    credentials.add_outlet(conn, outlet)
                conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
            ingest.push(chain, "P0", PushRequest(outlet_id="P0", events=[
                make_event("P0", 1, who), make_event("P0", 2, sold)]))
        answers = at_once(one, *[lambda chain=chain, outlet=outlet, events=events: ingest.push(
            chain, outlet, PushRequest(outlet_id=outlet, events=events))
            for chain, (outlet, events) in zip((one, two), pushes, strict=True)],
            hold=hold_the_change_log)
        assert all(isinstance(a, PushResponse) for a in answers), answers
        for outlet, events in pushes:
            ingest.push(alone, outlet, PushRequest(outlet_id=outlet, events=events))
        verdicts = sorted(a.results[0].result for a in answers)
        assert verdicts == ["applied", "flagged"]
        with one.db.read() as conn, alone.db.read() as ref:
            assert tallystore.load(conn, who.customer_id) == tallystore.load(
                ref, who.customer_id)
    finally:
        alone.close()
