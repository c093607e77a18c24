"""Group commit of pushes (hq/committer.py, docs/sync.md "Group commit").

Pushes from several outlets that wait at the same time share one write transaction. Each
must get exactly the answer it would get alone, pushed in the same order, and leave the
same state; a push that is refused (a gap, a reused event id, an outlet speaking for
another) changes nothing and refuses no other push of its group. The pushes are made to
wait together deterministically: the test holds HQ's writer (hqkit.hold_the_writer) while
they queue, one after another, then lets them go. On both stores (HQ_ON_BOTH_STORES; the
property with fewer examples on PostgreSQL); the committer's own failure test is SQLite's.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hqkit import hold_the_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ingest_batch import CARDS, HQ_NOW, SEEDED, TIMES, _sale, fact, seed_facts, state

from hq import credentials, ingest
from hq.chain import Chain
from hq.committer import GroupCommit
from schema.database import Database
from schema.errors import OutletMismatch, ProtocolError, SyncGap
from schema.events import (
    Body,
    CustomerRegistered,
    Event,
    GiftRedeemed,
    Profile,
    SaleLine,
    VisitRecorded,
    make_event,
    new_id,
)
from schema.hq_tables import migrations
from schema.sync import PushRequest, PushResponse

HQ_ON_BOTH_STORES = True  # tests taking `hq_db` run on SQLite and PostgreSQL (conftest.py)
OUTLETS = ("A", "B", "C", "D", "E", "L")
Push = tuple[str, bytes]  # (the token's outlet, the request as it came over HTTP)
Outcome = tuple[str, Any]  # ("answer", the answer's fields) or ("refused", type, message)


@contextmanager
def chain_of(path: str) -> Iterator[Chain]:
    """HQ with OUTLETS registered and SEEDED customers known (pushed by outlet A)."""
    chain = Chain(path, clock=lambda: HQ_NOW)
    with chain.db.write() as conn:
        for outlet in OUTLETS:
            credentials.add_outlet(conn, outlet)
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    try:
        yield chain
    finally:
        chain.close()


def request(outlet: str, events: list[Event], claimed: str | None = None) -> Push:
    return outlet, PushRequest(outlet_id=claimed or outlet,
                               events=events).model_dump_json().encode()


def outcome(chain: Chain, push: Push) -> Outcome:
    try:
        answer: PushResponse = ingest.push_json(chain, *push)
    except (ProtocolError, SyncGap, OutletMismatch) as exc:
        return "refused", (type(exc).__name__, str(exc))
    return "answer", (answer.acked_through,
                      [(r.event_id, r.seq, r.result, r.reason) for r in answer.results])


def one_by_one(chain: Chain, pushes: list[Push]) -> list[Outcome]:
    return [outcome(chain, push) for push in pushes]


def together(chain: Chain, pushes: list[Push]) -> list[Outcome]:
    """The pushes, queued in this order while HQ's writer is held, then let go at once."""
    got: list[Outcome | None] = [None] * len(pushes)
    groups, jobs = chain.pushes.groups, chain.pushes.jobs

    def send(i: int) -> None:
        got[i] = outcome(chain, pushes[i])

    threads = []
    queued = 0
    with chain.db.write() as conn:  # holds the writer: the first push's group cannot commit
        hold_the_writer(conn)
        for i in range(len(pushes)):
            threads.append(threading.Thread(target=send, args=(i,)))
            threads[-1].start()
            # queued, or refused before it reached the queue (an outlet speaking for another)
            wait_for(lambda i=i, queued=queued: (  # type: ignore[misc]
                chain.pushes.pending() == queued + 1 or got[i] is not None))
            queued += got[i] is None
    for thread in threads:
        thread.join(30)
    # the first push may have taken its group before the others queued: at most 2 groups
    assert chain.pushes.jobs - jobs == queued
    assert chain.pushes.groups - groups <= 2
    assert chain.pushes.largest >= queued - 1  # what GET /v1/admin/push-groups reports
    assert all(o is not None for o in got)
    return [o for o in got if o is not None]


def wait_for(check: Callable[[], bool]) -> None:
    done = threading.Event()
    for _ in range(3000):
        if check():
            return
        done.wait(0.001)
    raise AssertionError("the push never queued")


def lead() -> Push:
    """A push that goes first: it may take the first group alone (it leads before the
    others queue), so the pushes under test share the next one."""
    return request("L", [make_event("L", 1, VisitRecorded(customer_id=SEEDED[0], via="card"))])


def seed(outlet: str = "A") -> list[Event]:
    return [make_event(outlet, i + 1, body, at) for i, (body, at) in enumerate(seed_facts())]


def sale(outlet: str, seq: int, customer: str, points: int) -> Event:
    line = SaleLine(sku="A", name="apple", qty=2, unit_price=300, gross=600, discount=0, net=600)
    return make_event(outlet, seq, _sale(customer, [line], ["card"], points), TIMES[1])


def test_pushes_grouped_in_one_transaction_each_get_their_own_answer_and_refusals_stay_alone(
        hq_dbs: Callable[[], str]) -> None:
    first = seed()
    n = len(first)
    reused = make_event("C", 2, VisitRecorded(customer_id=SEEDED[1], via="card"))
    reused = reused.model_copy(update={"event_id": first[0].event_id})
    new_customer = "0190c0de-0000-7000-8000-0000000000ff"
    pushes = [
        lead(),
        # A: new sales, one of them earning the points E spends below in the same group
        request("A", [*first[-2:], sale("A", n + 1, SEEDED[2], 400), sale("A", n + 2, SEEDED[0], 5)]),
        # B: a gap (HQ has nothing of B): refused, nothing of it kept
        request("B", [sale("B", 3, SEEDED[0], 10)]),
        # C: its second event reuses an event id A already used: the whole push refused
        request("C", [sale("C", 1, SEEDED[1], 10), reused]),
        # D speaks for A: refused before it reaches the group
        request("D", [sale("A", n + 3, SEEDED[1], 10)], claimed="A"),
        # E: registers a customer, sells to it, and spends SEEDED[2]'s points, earned by
        # A's sale of this group (not yet written when E's push runs): not overspent
        request("E", [
            make_event("E", 1, CustomerRegistered(
                customer_id=new_customer, card_number=CARDS[3],
                profile=Profile(kind="person", given_name="Iva", surname="Group", category="B")),
                TIMES[0]),
            sale("E", 2, new_customer, 20),
            make_event("E", 3, GiftRedeemed(redemption_id=new_id(), customer_id=SEEDED[2],
                                             gift_sku="G1", gift_name="gift", qty=1,
                                             points_spent=500), TIMES[2])]),
        # A again: the rest of its seed, then more (its earlier push is in the group)
        request("A", [*first[:2], sale("A", n + 3, SEEDED[1], 10)]),
    ]
    with chain_of(hq_dbs()) as grouped, chain_of(hq_dbs()) as alone:
        for chain in (grouped, alone):
            ingest.push_json(chain, *request("A", first[:-2]))
        got = together(grouped, pushes)
        want = one_by_one(alone, pushes)
        assert got == want
        assert [o[0] for o in got] == ["answer", "answer", "refused", "refused", "refused",
                                       "answer", "answer"]
        assert got[2][1][0] == "SyncGap"
        assert got[3][1] == ("ProtocolError",
                             f"protocol_error: event id {first[0].event_id} was already used")
        assert got[4][1][0] == "OutletMismatch"
        assert [r[2] for r in got[5][1][1]] == ["applied", "applied", "applied"]
        assert state(grouped) == state(alone)
        assert grouped.db.scalar("SELECT COUNT(*) FROM events WHERE outlet_id IN ('B', 'C', 'D')"
                                 " OR seq > 3 AND outlet_id = 'E'") == 0
        for outlet, last in (("B", 0), ("C", 0), ("D", 0), ("E", 3), ("A", n + 3)):
            assert grouped.db.scalar("SELECT last_seq FROM outlets WHERE outlet_id = ?",
                                     (outlet,)) == last


pushes_of_outlets = st.lists(
    st.tuples(st.sampled_from(OUTLETS[:3]),
              st.lists(st.tuples(fact, st.sampled_from(TIMES)), min_size=1, max_size=6),
              st.sampled_from(["next", "next", "next", "gap", "again"])),
    min_size=2, max_size=6)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(plan=pushes_of_outlets)
def test_any_pushes_grouped_leave_the_state_and_answers_of_the_same_pushes_one_by_one(
        plan: list[tuple[str, list[tuple[Body, str]], str]]) -> None:
    """Random pushes of every event type from three outlets, some starting past a gap,
    some sending again what the outlet sent before: grouped == one by one."""
    grouped_equals_one_by_one(plan, lambda: ":memory:")


@settings(max_examples=8, deadline=None,  # two HQ databases per example: ~1 s each
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(plan=pushes_of_outlets)
def test_on_postgresql_any_pushes_grouped_leave_the_state_and_answers_of_one_by_one(
        hq_pg_dbs: Callable[[], str], plan: list[tuple[str, list[tuple[Body, str]], str]]
        ) -> None:
    grouped_equals_one_by_one(plan, hq_pg_dbs)


def grouped_equals_one_by_one(plan: list[tuple[str, list[tuple[Body, str]], str]],
                              new_db: Callable[[], str]) -> None:
    sent: dict[str, list[Event]] = {o: [] for o in OUTLETS}
    pushes = [lead()]
    for outlet, facts, how in plan:
        log = sent[outlet]
        start = len(log) + 1 + (2 if how == "gap" else 0)
        new = [make_event(outlet, start + i, body, at) for i, (body, at) in enumerate(facts)]
        pushes.append(request(outlet, (log[-2:] if how == "again" else []) + new))
        if how != "gap":
            log += new
    seeded = request("E", seed("E"))
    with chain_of(new_db()) as grouped, chain_of(new_db()) as alone:
        for chain in (grouped, alone):
            ingest.push_json(chain, *seeded)
        assert together(grouped, pushes) == one_by_one(alone, pushes)
        assert state(grouped) == state(alone)


# --- the committer itself, on a real file --------------------------------------------------


class Rows:
    """A `Shared` for these tests: values added up and written once, before the commit."""

    def __init__(self) -> None:
        self.values: list[int] = []

    def merge(self, part: Rows) -> None:
        self.values += part.values

    def flush(self, conn: sqlite3.Connection) -> None:
        conn.executemany("INSERT INTO t (v) VALUES (?)", [(v,) for v in self.values])


def test_when_the_transaction_itself_fails_every_job_of_the_group_fails_and_nothing_stays(
        tmp_path: Path) -> None:
    db = Database(tmp_path / "c.db", migrations)
    db.conn.execute("CREATE TABLE t (v INTEGER NOT NULL)")
    commits = GroupCommit(db, max_weight=100)
    results: dict[int, Any] = {}

    def job(value: int) -> Callable[[sqlite3.Connection, Rows], tuple[int, Rows]]:
        def run(conn: sqlite3.Connection, shared: Rows) -> tuple[int, Rows]:
            conn.execute("INSERT INTO t (v) VALUES (?)", (value,))
            if value == 2:  # what a storage fault does: SQLite undid the whole transaction
                conn.execute("ROLLBACK")
                raise sqlite3.OperationalError("disk I/O error")
            mine = Rows()
            mine.values.append(-value)
            return value, mine
        return run

    def send(value: int) -> None:
        try:
            results[value] = commits.run(job(value), Rows)
        except sqlite3.Error as exc:
            results[value] = str(exc)

    with db.read():
        threads = []
        for value in (1, 2, 3):
            threads.append(threading.Thread(target=send, args=(value,)))
            threads[-1].start()
            wait_for(lambda v=value: commits.pending() == v)  # type: ignore[misc]
    for thread in threads:
        thread.join(10)
    rows = db.all("SELECT v FROM t")
    if commits.groups == 1:  # job 1 led a group of its own, committed before the others
        assert results == {1: 1, 2: "disk I/O error", 3: "disk I/O error"}
        assert sorted(r[0] for r in rows) == [-1, 1]
    else:
        assert results == {1: "disk I/O error", 2: "disk I/O error", 3: "disk I/O error"}
        assert rows == []
    assert commits.run(job(4), Rows) == 4  # the next group is unaffected
    db.close()


def test_a_push_made_inside_an_open_write_joins_it_instead_of_queueing_behind_a_group(
        hq_db: str) -> None:
    """Another outlet's push leads a group that waits for the writer this thread holds:
    queueing behind it would wait forever."""
    with chain_of(hq_db) as chain:
        other: list[Outcome] = []
        leader = threading.Thread(target=lambda: other.append(
            outcome(chain, request("B", seed("B")[:1]))))
        with chain.db.write() as conn:
            hold_the_writer(conn)
            leader.start()
            wait_for(lambda: chain.pushes.pending() == 1)
            answer = ingest.push_json(chain, *request("A", seed()[:1]))
        leader.join(10)
        assert answer.acked_through == 1
        assert other[0][0] == "answer"
        assert chain.db.scalar("SELECT COUNT(*) FROM events") == 2


@pytest.mark.parametrize("bad", ["gap", "reused"])
def test_a_refused_push_alone_changes_nothing(hq_db: str, bad: str) -> None:
    with chain_of(hq_db) as chain:
        first = seed()
        ingest.push_json(chain, *request("A", first))
        before = state(chain)
        if bad == "gap":
            push = request("B", [sale("B", 2, SEEDED[0], 1)])
        else:
            again = make_event("B", 2, VisitRecorded(customer_id=SEEDED[0], via="card"))
            push = request("B", [sale("B", 1, SEEDED[0], 1),
                                 again.model_copy(update={"event_id": first[0].event_id})])
        assert outcome(chain, push)[0] == "refused"
        assert state(chain) == before


def test_an_outlets_token_is_checked_while_a_group_is_being_written(hq_db: str) -> None:
    """A push's token is looked up on what is committed, beside the writer: pushes that
    arrive while a group commits are parsed and ready for the next group meanwhile."""
    with chain_of(hq_db) as chain:
        with chain.db.write() as conn:
            token, _ = credentials.add_outlet(conn, "N")
        found: list[str] = []
        with chain.db.write() as conn:  # a long write, as a group's
            conn.execute("UPDATE outlets SET last_push_at = 'now'")
            looker = threading.Thread(target=lambda: found.append(
                credentials.outlet_for(chain.db, token)))
            looker.start()
            looker.join(5)
            assert found == ["N"]
