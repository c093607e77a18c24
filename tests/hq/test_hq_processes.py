"""Several `loyalty hq serve` processes on one PostgreSQL database (issue 15, docs/sync.md
"Several HQ processes").

Real processes on loopback over a throwaway cluster (tests/hq/conftest.py `hq_pg`): two HQ
processes, real agents pushing sales to different ones. What must hold whichever process
an outlet reaches: every event applied exactly once (an outlet's retry through the other
process, or the same push through both at once, is a duplicate there), the long polls of
one process woken by a change committed through the other (LISTEN/NOTIFY, not the
once-a-second look), and every outlet converging on HQ's state (testkit check_files).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chainkit import HQProcess, OutletProcess, buy, until
from hqkit import HQClient, registered, sale
from testkit.ledger import check_files

PRICE = 10_000


def two_hqs(url: str, folder: Path, *outlets: str) -> tuple[HQProcess, HQProcess]:
    one = HQProcess(url, stderr=folder / "hq1.stderr")
    two = HQProcess(url, stderr=folder / "hq2.stderr")
    for outlet_id in outlets:
        token = one.outlet_add(outlet_id)
        two.tokens[outlet_id] = token
    for hq in (one, two):  # side by side: python start-up dominates
        hq.spawn()
    for hq in (one, two):
        hq.wait_ready()
    return one, two


def test_a_push_through_either_process_or_both_at_once_is_applied_exactly_once(
        hq_pg: str, tmp_path: Path) -> None:
    one, two = two_hqs(hq_pg, tmp_path, "C")
    try:
        via_one = HQClient(one, "C", one.tokens["C"])
        via_two = HQClient(two, "C", two.tokens["C"])
        who = registered()
        events = via_one.events(who, *(sale(who.customer_id) for _ in range(20)))
        first = via_one.pushed(events[:11])
        assert [r["result"] for r in first["results"]] == ["applied"] * 11
        # the answer was lost; the outlet retries the whole batch through the other process
        retry = via_two.pushed(events)
        assert [r["result"] for r in retry["results"]] == ["duplicate"] * 11 + ["applied"] * 10
        assert retry["acked_through"] == events[-1].seq
        # the same new batch through both processes at once: one applies it, the other
        # finds it seen, whatever the order their transactions commit in
        more = via_one.events(*(sale(who.customer_id) for _ in range(30)))
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda c: c.pushed(more), (via_one, via_two)))
        verdicts = sorted(tuple({r["result"] for r in a["results"]}) for a in answers)
        assert verdicts == [("applied",), ("duplicate",)], answers
        rows = one.rows("SELECT COUNT(*), COUNT(DISTINCT event_id), MAX(seq) FROM events "
                        "WHERE outlet_id = 'C'")
        assert rows == [(51, 51, 51)]
        assert one.rows("SELECT purchases_count FROM customer_tally WHERE customer_id = ?",
                        (who.customer_id,)) == [(50,)]
    finally:
        one.kill()
        two.kill()


def test_a_long_poll_on_one_process_is_woken_by_a_push_through_the_other(
        hq_pg: str, tmp_path: Path) -> None:
    one, two = two_hqs(hq_pg, tmp_path, "C", "D")
    try:
        pusher = HQClient(one, "C", one.tokens["C"])
        puller = HQClient(two, "D", two.tokens["D"])
        cursor = int(puller.pull(0, limit=5000).json()["cursor"])
        woken = []
        for _ in range(5):
            answer: dict[str, Any] = {}

            def poll(at: int = cursor, into: dict[str, Any] = answer) -> None:
                got = puller.pull(at, wait=20)
                into["page"], into["at"] = got.json(), time.monotonic()

            waiting = threading.Thread(target=poll)
            waiting.start()
            time.sleep(0.3)  # the pull is waiting at process 2
            pusher.pushed(pusher.events(registered()))
            pushed_at = time.monotonic()
            waiting.join(30)
            assert answer["page"]["changes"], "the long poll ended without the change"
            woken.append(answer["at"] - pushed_at)
            cursor = int(answer["page"]["cursor"])
        print(f"\nprocess 2's long poll woken after a push to process 1: "
              f"{', '.join(f'{w:.3f}s' for w in woken)}")
        # process 2 would look at the change log once a second without the notification
        assert max(woken) < 0.5, woken
    finally:
        one.kill()
        two.kill()


def test_two_outlets_on_two_hq_processes_converge_and_a_kill_9_loses_nothing(
        hq_pg: str, tmp_path: Path) -> None:
    one, two = two_hqs(hq_pg, tmp_path, "A", "B")
    a = OutletProcess(tmp_path / "A.db", "A", one.url, one.tokens["A"])
    b = OutletProcess(tmp_path / "B.db", "B", two.url, two.tokens["B"])
    try:
        for agent in (a, b):
            agent.spawn()
        for agent in (a, b):
            agent.wait_ready()
            until(agent.met_hq, 15, what=f"{agent.outlet} meets HQ")
        card_a = a.till.register("A", surname="Novak")["card_number"]
        card_b = b.till.register("A", surname="Kral")["card_number"]
        for agent, card in ((a, card_b), (b, card_a)):  # each card reaches the other outlet
            until(lambda ag=agent, c=card: ag.identify(c).status_code == 200, 10,
                  what=f"{card} known at {agent.outlet}")
        stop = threading.Event()
        sold = {"A": 0, "B": 0}

        def sell(agent: OutletProcess, cards: tuple[str, str]) -> None:
            while not stop.is_set() and sold[agent.outlet] < 60:
                buy(agent.till, cards[sold[agent.outlet] % 2], PRICE)
                sold[agent.outlet] += 1

        tills = [threading.Thread(target=sell, args=(a, (card_a, card_b))),
                 threading.Thread(target=sell, args=(b, (card_b, card_a)))]
        for till in tills:
            till.start()
        until(lambda: sold["A"] >= 15, 30, what="A sells")
        one.kill()  # kill -9 of the process A pushes to, in the middle of its pushes
        until(lambda: sold["A"] >= 30, 30, what="A sells on while its HQ is down")
        for till in tills:
            till.join(60)
        assert sold == {"A": 60, "B": 60}
        # A moves to the other process: it re-sends what process 1 never answered
        a.stop()
        a = OutletProcess(tmp_path / "A.db", "A", two.url, two.tokens["A"], port=a.port)
        a.start()
        for agent in (a, b):
            until(agent.pushed_all, 60, every=0.1, what=f"{agent.outlet} pushed everything")
        figures: dict[str, Any] = {}

        def converged() -> bool:
            try:
                figures.update(check_files(hq_pg, {"A": a.db, "B": b.db}, floor_bound=False))
            except AssertionError:
                return False
            return True

        until(converged, 30, every=0.25, what="both outlets converge on HQ's state")
        # a card and 60 sales each (and what identifying a card records)
        assert min(figures["events_by_outlet"].values()) >= 61, figures
    finally:
        for process in (a, b, one, two):
            process.kill()
