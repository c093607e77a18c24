"""The change log under concurrent writers and pullers, on both stores (issue 15): no change
is ever skipped, none is seen twice, and every pull page is one snapshot.

Writers: threads, each with transactions that bump a few entities of their own (each
bumped once: a skip would show) and one of a few hot ones (bumped again and again), and
write into each entity's data the change number it just took. Pullers: threads, each an
outlet following the log page by page from cursor 0, as an outlet does.

- never skipped: once every writer is done, each puller's replica (the latest of each
  entity it was sent) is exactly the change log; with a plain sequence, a number that
  commits after a higher one was read is passed for ever (measured: 24-31 % lost);
- never seen twice: the numbers a puller is sent only grow;
- one snapshot: an entity's data says the number it was changed under, the one the page
  gives it (a page read over several snapshots pairs an older number with newer data),
  and no number in a page is past the page's `head`.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any

import pytest
from hqkit import STORES

from hq import credentials, feed
from hq.chain import Chain

WRITERS = 6
TRANSACTIONS = 30
PULLERS = 3
HOT = [f"hot{i}" for i in range(3)]


def _write(chain: Chain, writer: int, errors: list[BaseException]) -> None:
    rng = random.Random(writer)
    try:
        for n in range(TRANSACTIONS):
            keys = [f"w{writer}-{n}-{i}" for i in range(rng.randint(1, 3))] + [rng.choice(HOT)]

            def change(conn: Any, keys: list[str] = keys) -> None:
                for key in keys:
                    seq = chain.bump(conn, "product", key)
                    conn.execute("INSERT INTO master (kind, key, data) VALUES ('product', ?, ?) "
                                 "ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data",
                                 (key, json.dumps({"seq": seq})))

            chain.db.transact(change)
            chain.waiters.notify()
    except BaseException as exc:  # noqa: BLE001 - the test reports it
        errors.append(exc)


def _pull(chain: Chain, outlet: str, done: threading.Event, replica: dict[str, int],
          problems: list[str]) -> None:
    cursor = 0
    last_seen = 0
    while True:
        finished = done.is_set()  # read before the page: a page after it sees every commit
        page = json.loads(feed.pull_json(chain, outlet, cursor, limit=7).body)
        for change in page["changes"]:
            seq = change["seq"]
            if seq <= last_seen:
                problems.append(f"{outlet}: seq {seq} came after {last_seen}")
            last_seen = seq
            if seq > page["head"]:
                problems.append(f"{outlet}: seq {seq} is past the page's head {page['head']}")
            if change["data"] != {"seq": seq}:
                problems.append(f"{outlet}: {change['key']} at seq {seq} came with the data "
                                f"of {change['data']} (not one snapshot)")
            replica[change["key"]] = seq
        cursor = page["cursor"]
        if finished and not page["more"]:
            return


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_concurrent_writers_and_pullers_never_skip_or_repeat_a_change(hq_db: str) -> None:
    chain = Chain(hq_db)
    try:
        with chain.db.write() as conn:
            for p in range(PULLERS):
                credentials.add_outlet(conn, f"P{p}")
        errors: list[BaseException] = []
        problems: list[str] = []
        done = threading.Event()
        replicas: list[dict[str, int]] = [{} for _ in range(PULLERS)]
        pullers = [threading.Thread(target=_pull, args=(chain, f"P{p}", done, replicas[p],
                                                        problems)) for p in range(PULLERS)]
        writers = [threading.Thread(target=_write, args=(chain, w, errors))
                   for w in range(WRITERS)]
        for t in pullers + writers:
            t.start()
        for t in writers:
            t.join()
        done.set()
        for t in pullers:
            t.join(timeout=120)
        assert not errors, errors
        assert not problems, problems[:10]
        log = {r["key"]: r["seq"] for r in chain.db.all("SELECT key, seq FROM changes")}
        assert len(log) > WRITERS * TRANSACTIONS
        for p, replica in enumerate(replicas):
            missed = {k: s for k, s in log.items() if replica.get(k) != s}
            assert not missed, f"puller P{p} never got {len(missed)} change(s): {missed}"
    finally:
        chain.close()
