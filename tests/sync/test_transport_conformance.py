"""Every link to HQ carries the protocol the same way (sync/transport.py).

One suite, parametrised over transports through `transport_factory`: each parameter is a
function `(hq_url, token) -> Transport` talking to a REAL HQ process. Only the router link
(HTTP, `RouterTransport`) and the modem link (`ModemTransport`: a dial-up call through the
line simulator process to the same HQ process answering on a two-line modem bank) run it.
The modem link has no long poll (a call is short; HQ answers a pull at once): the two
long-poll tests are the router's alone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chainkit import HQProcess, free_port
from modemkit import LazyModemLink, LineSimProcess, ModemHQ

from schema.errors import LoyaltyError
from schema.events import (
    CustomerRegistered,
    Event,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.sync import PushRequest
from sync.router import RouterTransport
from sync.transport import LinkDown, Transport

Factory = Callable[[str, str], Transport]


def router(url: str, token: str) -> Transport:
    return RouterTransport(url, token, timeout=5)


def modem(url: str, token: str) -> Transport:
    """A dial-up call to HQ through the line simulator process (HQ answers on a two-line
    modem bank); a URL other than HQ's dials a number nobody answers."""
    return LazyModemLink(LINE["sim"], LINE["hq_url"], url, token)


LINE: dict[str, Any] = {}


@pytest.fixture(params=[router, modem], ids=["router", "modem"])
def transport_factory(request: pytest.FixtureRequest) -> Factory:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HQProcess]:
    root = tmp_path_factory.mktemp("conformance")
    sim = LineSimProcess.bank(root, lines=2, outlets=4, speed_bps=115_200).start()
    process = ModemHQ(root / "hq.db", sim.hq_paths())
    LINE.update(sim=sim, hq_url=process.url)
    for outlet_id in ("A", "B"):
        process.outlet_add(outlet_id)
    _ = process.admin_token
    process.start()
    yield process
    process.kill()
    sim.stop()


@pytest.fixture
def links(hq: HQProcess, transport_factory: Factory) -> Iterator[dict[str, Transport]]:
    made = {o: transport_factory(hq.url, t) for o, t in hq.tokens.items()}
    yield made
    for link in made.values():
        link.close()


def customer() -> CustomerRegistered:
    return CustomerRegistered(customer_id=new_id(), card_number=new_id()[-12:],
                              profile=Profile(kind="person", given_name="Con", surname="Form",
                                              category="A"))


def sale(customer_id: str) -> SaleRecorded:
    return SaleRecorded(sale_id=new_id(), customer_id=customer_id, currency="EUR",
                        lines=[SaleLine(sku="X", name="X", qty=1, unit_price=1000, gross=1000,
                                        discount=0, net=1000)],
                        payments=[Payment(mode="cash", amount=1000)], total_gross=1000,
                        total_discount=0, total_net=1000, points_earned=20)


def batch(link: Transport, outlet: str, *bodies: Any) -> list[Event]:
    first = link.hello().last_seq + 1
    return [make_event(outlet, first + i, body) for i, body in enumerate(bodies)]


def push(link: Transport, outlet: str, events: list[Event]) -> Any:
    return link.push(PushRequest(outlet_id=outlet, events=events))


def head_of(link: Transport) -> int:
    return link.hello().head


def test_hello_says_who_and_where(links: dict[str, Transport], hq: HQProcess) -> None:
    a, b = links["A"].hello(), links["B"].hello()
    assert (a.outlet_id, b.outlet_id) == ("A", "B")
    assert a.epoch == b.epoch and len(a.epoch) >= 16
    assert a.card_range != b.card_range
    conn = sqlite3.connect(hq.db)
    try:
        assert a.last_seq == conn.execute("SELECT last_seq FROM outlets WHERE outlet_id = 'A'"
                                          ).fetchone()[0]
        assert a.head == conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0]
    finally:
        conn.close()


def test_push_acks_and_a_repush_is_duplicates(links: dict[str, Transport]) -> None:
    link = links["A"]
    who = customer()
    events = batch(link, "A", who, sale(who.customer_id), sale(who.customer_id))
    answer = push(link, "A", events)
    assert answer.acked_through == events[-1].seq
    assert [(r.event_id, r.seq, r.result) for r in answer.results] == \
        [(e.event_id, e.seq, "applied") for e in events]
    assert answer.epoch == link.hello().epoch
    again = push(link, "A", events)
    assert again.acked_through == events[-1].seq
    assert [r.result for r in again.results] == ["duplicate"] * 3
    assert link.hello().last_seq == events[-1].seq
    flagged = push(link, "A", batch(link, "A", sale(new_id())))
    assert flagged.results[0].result == "flagged" and flagged.results[0].reason


def test_pull_pages_with_cursor_more_and_head(links: dict[str, Transport]) -> None:
    link = links["B"]
    people = [customer() for _ in range(23)]
    push(link, "B", batch(link, "B", *people))
    head = head_of(link)
    cursor, pages, keys = 0, 0, set()
    while True:
        page = link.pull(cursor, 10, 0)
        pages += 1
        assert page.head == head
        assert len(page.changes) <= 10
        assert page.cursor > cursor or not page.changes
        assert [c.seq for c in page.changes] == sorted(c.seq for c in page.changes)
        assert all(cursor < c.seq <= page.cursor for c in page.changes)
        assert page.incorporated_through == link.hello().last_seq
        keys |= {c.key for c in page.changes if c.kind == "customer"}
        cursor = page.cursor
        if not page.more:
            break
        assert pages < 1000
    assert cursor == head and pages >= head // 10
    assert {p.customer_id for p in people} <= keys
    kinds = {c.kind for c in link.pull(0, 5000, 0).changes}
    assert {"customer", "category", "gift"} <= kinds
    empty = link.pull(head, 10, 0)                      # at the head: nothing, not more
    assert (empty.changes, empty.more, empty.cursor) == ([], False, head)
    pulled = link.pull(head - 1, 10, 0)
    assert len(pulled.changes) == 1 and pulled.changes[0].data is not None


def test_a_long_poll_wakes_within_half_a_second_of_a_change(links: dict[str, Transport],
                                                          hq: HQProcess,
                                                          transport_factory: Factory) -> None:
    if transport_factory is modem:
        pytest.skip("no long poll on a dial-up call (docs/design.md §3: near-real-time is the router's)")
    a, b = links["A"], links["B"]
    who = customer()
    push(a, "A", batch(a, "A", who))
    head = head_of(b)
    got: dict[str, Any] = {}

    def wait() -> None:
        got["page"] = b.pull(head, 100, 10)
        got["at"] = time.monotonic()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.4)                                      # the pull is parked at HQ
    assert "page" not in got
    changed = time.monotonic()
    hq.admin("POST", f"/v1/admin/customers/{who.customer_id}/ban")
    waiter.join(5)
    assert "page" in got, "the long poll did not wake"
    latency = got["at"] - changed
    print(f"\nlong poll woke {latency * 1000:.0f} ms after the ban")
    assert latency < 0.5
    change = next(c for c in got["page"].changes if c.key == who.customer_id)
    assert change.data is not None and change.data["status"] == "banned"


def test_a_long_poll_returns_empty_after_the_wait(links: dict[str, Transport],
                                                 transport_factory: Factory) -> None:
    if transport_factory is modem:
        pytest.skip("no long poll on a dial-up call (docs/design.md §3: near-real-time is the router's)")
    link = links["A"]
    head = head_of(link)
    start = time.monotonic()
    page = link.pull(head, 100, 1.0)
    took = time.monotonic() - start
    assert 0.9 <= took < 3.0, took
    assert page.changes == [] and page.cursor == head and not page.more


def test_errors_map_to_the_same_codes(links: dict[str, Transport], hq: HQProcess,
                                      transport_factory: Factory) -> None:
    link = links["A"]
    who = customer()
    first = link.hello().last_seq + 1

    def code_of(call: Callable[[], Any]) -> str:
        with pytest.raises(LoyaltyError) as caught:
            call()
        return caught.value.code

    gap = [make_event("A", first + 1, who)]
    assert code_of(lambda: push(link, "A", gap)) == "sync_gap"
    forged = [make_event("B", first, who)]
    assert code_of(lambda: push(link, "A", forged)) == "outlet_mismatch"
    assert code_of(lambda: push(link, "B", [make_event("B", 1, who)])) == "outlet_mismatch"
    good = make_event("A", first, who)
    push(link, "A", [good])
    reused = [make_event("A", first, sale(who.customer_id))]
    assert code_of(lambda: push(link, "A", reused)) == "seq_reused"
    odd = make_event("A", first + 1, sale(who.customer_id)).model_copy(update={"version": 7})
    assert code_of(lambda: push(link, "A", [odd])) == "protocol_error"
    stranger = transport_factory(hq.url, "lo_" + "1" * 48)
    try:
        assert code_of(stranger.hello) == "unauthorized"
        assert code_of(lambda: stranger.pull(0, 10, 0)) == "unauthorized"
    finally:
        stranger.close()
    admin = transport_factory(hq.url, hq.admin_token)
    try:
        assert code_of(admin.hello) == "forbidden"
    finally:
        admin.close()
    nowhere = transport_factory(f"http://127.0.0.1:{free_port()}", hq.tokens["A"])
    try:
        with pytest.raises(LinkDown) as down:
            nowhere.hello()
        assert down.value.code == "hq_unreachable"
        with pytest.raises(LinkDown):
            push(nowhere, "A", [make_event("A", first + 1, sale(who.customer_id))])
    finally:
        nowhere.close()
