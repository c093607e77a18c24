"""kill -9 the real agent during a stream of sales; after restart nothing is lost or doubled.

Several seeded rounds: three till threads post sales (each with its own Idempotency-Key) to
a real `loyalty agent serve` process, which is SIGKILLed at a random moment and restarted
on the same SQLite file. Then, on the file itself: every sale answered 201 exists exactly
once with its outbox event exactly once; no sale row lacks its event, lines, payments or
ledger rows; no sale event lacks its sale row; the customers' tallies equal the sum of
their sales. Retrying each unanswered key after the restart makes at most one sale.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests
from agentkit import AgentProcess, connect, line

SEED = 20240611
ROUNDS = 4
THREADS = 3


def check_replica(db: Path, answered: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Checks the invariants on the file; returns {idempotency_key: sale_id} of all sales."""
    conn = connect(db)
    try:
        sales = {r["sale_id"]: r for r in conn.execute("SELECT * FROM sales")}
        keys = Counter(r["idempotency_key"] for r in sales.values())
        assert all(n == 1 for n in keys.values()), "one sale per Idempotency-Key"
        events = {r["seq"]: json.loads(r["event"]) for r in conn.execute(
            "SELECT seq, event FROM outbox WHERE type = 'sale.recorded'")}
        event_sales = Counter(e["body"]["sale_id"] for e in events.values())
        assert all(n == 1 for n in event_sales.values()), "one outbox event per sale"
        assert set(event_sales) == set(sales), "no sale without its event, no event without its sale"
        seqs = [r[0] for r in conn.execute("SELECT seq FROM outbox ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "outbox sequence is gap-free"

        by_key = {r["idempotency_key"]: sale_id for sale_id, r in sales.items()}
        for key, answer in answered.items():
            assert by_key.get(key) == answer["sale_id"], f"answered sale {key} lost or changed"
            stored = sales[answer["sale_id"]]
            assert stored["total_net"] == answer["total_net"]
            assert stored["points_earned"] == answer["points_earned"]

        for sale_id, row in sales.items():
            assert events[row["seq"]]["body"]["sale_id"] == sale_id
            body = events[row["seq"]]["body"]
            n_lines = conn.execute("SELECT COUNT(*) FROM sale_lines WHERE sale_id = ?",
                                   (sale_id,)).fetchone()[0]
            assert n_lines == len(body["lines"]) > 0, f"sale {sale_id} without its lines"
            paid = conn.execute("SELECT COALESCE(SUM(amount), 0) FROM payments WHERE sale_id = ?",
                                (sale_id,)).fetchone()[0]
            assert paid == row["total_net"], f"sale {sale_id} without its payments"
            ledger = {r["kind"]: (r["points"], r["amount"]) for r in conn.execute(
                "SELECT kind, points, amount FROM ledger WHERE seq = ?", (row["seq"],))}
            assert ledger.get("points_earned") == (row["points_earned"], 0), sale_id
            assert ledger.get("discount") == (0, row["total_discount"]), sale_id

        for tally in conn.execute("SELECT * FROM customer_tally"):
            count, total, points = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(total_net), 0), COALESCE(SUM(points_earned), 0) "
                "FROM sales WHERE customer_id = ?", (tally["customer_id"],)).fetchone()
            assert (tally["purchases_count"], tally["purchases_total"], tally["points_earned"]) \
                == (count, total, points), "a customer's tally equals the sum of their sales"
        return by_key
    finally:
        conn.close()


def test_sales_answered_201_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    agent = AgentProcess(tmp_path / "outlet.db", "T").start()
    try:
        till = agent.till()
        baskets = []
        for n in range(THREADS):
            card = till.register(category="ABC"[n])["card_number"]
            lines = [line(f"CR-{n}-{i}", 150 + 97 * i, 1 + i % 3) for i in range(1 + n)]
            total = till.quote(card, lines)["total_net"]
            baskets.append({"card": card, "lines": lines,
                            "payments": [{"mode": "cash" if n % 2 else "card", "amount": total}]})
        answered: dict[str, dict[str, Any]] = {}
        unanswered: dict[str, dict[str, Any]] = {}
        lock = threading.Lock()

        for round_no in range(ROUNDS):
            stop = threading.Event()

            def stream(worker: int, round_no: int = round_no, stop: threading.Event = stop) -> None:
                session = requests.Session()
                body = {**baskets[worker], "till_id": f"T{worker}"}
                i = 0
                while not stop.is_set():
                    key = f"r{round_no}-w{worker}-{i}"
                    i += 1
                    try:
                        answer = session.post(agent.url + "/v1/sales", json=body, timeout=10,
                                              headers={"Idempotency-Key": key})
                    except requests.RequestException:
                        with lock:
                            unanswered[key] = body
                        return
                    with lock:
                        if answer.status_code == 201:
                            answered[key] = answer.json()
                        else:
                            unanswered[key] = body

            threads = [threading.Thread(target=stream, args=(w,)) for w in range(THREADS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 1.2))
            agent.kill()
            stop.set()
            for t in threads:
                t.join(timeout=30)
            check_replica(agent.db, answered)  # the file as the crash left it
            agent.start()

        assert len(answered) > 10 * ROUNDS, "the stream made sales before each kill"
        by_key = check_replica(agent.db, answered)
        print(f"{len(answered)} answered, {len(unanswered)} unanswered, "
              f"{sum(k in by_key for k in unanswered)} of those committed before the kill")
        # a POS retries what it never got an answer for: at most one sale per key
        for key, body in unanswered.items():
            committed = by_key.get(key)
            retry = till.post("/v1/sales", body, headers={"Idempotency-Key": key})
            assert retry.status_code == 201, retry.text
            if committed is not None:  # it was written before the kill: replayed, not resold
                assert retry.json()["sale_id"] == committed
                assert retry.headers.get("Idempotent-Replayed") == "true"
            answered[key] = retry.json()
        by_key = check_replica(agent.db, answered)
        assert set(by_key) == set(answered), "every key made exactly one sale, no other sales"
    finally:
        agent.kill()
