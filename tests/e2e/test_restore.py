"""HQ restored from an older backup: the outlets notice, re-send, and nothing is lost.

Two ways HQ goes back in time: the documented one (copy the backup, then
`loyalty hq restore-epoch`: a new epoch) and a careless one (a plain file copy, same
epoch: the outlets see HQ holding fewer of their events than it acknowledged). Either way,
every event ends at HQ exactly once and HQ's balances are the fold of its events.
SQLite only: restoring HQ from a file backup is SQLite's; PostgreSQL's is PITR with its own
tools (its equivalent here, HQ killed and restarted on the same URL, is tests/sync/test_kill.py).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from chainkit import ChainRig, buy, cli, hq_ledger_check, until, wal_safe_copy

PRICE = 100_000   # 1800 points in category A


def replace_hq_file(rig: ChainRig, backup: Path) -> None:
    rig.hq.kill()
    for suffix in ("-wal", "-shm"):
        Path(str(rig.hq.db) + suffix).unlink(missing_ok=True)
    shutil.copy(backup, rig.hq.db)


def hq_count(rig: ChainRig) -> int:
    conn = sqlite3.connect(rig.hq.db, timeout=10)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def outbox_total(rig: ChainRig) -> int:
    return sum(agent.outbox_count() for agent in rig.outlets.values())


def resets(path: Path) -> int:
    conn = sqlite3.connect(path, timeout=10)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'hq_resets'").fetchone()
        return 0 if row is None else int(row[0])
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", ["restore-epoch", "plain-copy"])
def test_hq_restored_from_an_older_backup_loses_nothing(rig: ChainRig, how: str) -> None:
    rig.start(("A", "B"))
    a, b = rig.outlets["A"], rig.outlets["B"]
    ann = a.till.register("A", surname="Before")
    buy(a.till, ann["card_number"], PRICE)
    until(lambda: b.identify(ann["card_number"]).status_code == 200, 10)
    buy(b.till, ann["card_number"], PRICE)
    rig.settled()
    until(lambda: rig.hq.customer(ann["customer_id"])["points_balance"] == 3600, 10)

    backup = rig.root / "hq-backup.db"
    wal_safe_copy(rig.hq.db, backup)
    epoch_before = a.status()["hq_epoch"]

    # after the backup: more sales everywhere, and a card issued at B used at A
    buy(a.till, ann["card_number"], PRICE, sku="AFTER")
    bob = b.till.register("A", surname="After")
    until(lambda: a.identify(bob["card_number"]).status_code == 200, 10)
    buy(a.till, bob["card_number"], PRICE)
    buy(b.till, bob["card_number"], PRICE)
    rig.settled()
    until(lambda: hq_count(rig) == outbox_total(rig), 10)
    expected = {c: rig.hq.customer(c)["points_balance"]
                for c in (ann["customer_id"], bob["customer_id"])}
    assert expected == {ann["customer_id"]: 5400, bob["customer_id"]: 3600}

    replace_hq_file(rig, backup)
    assert hq_count(rig) < outbox_total(rig)          # HQ really went back in time
    if how == "restore-epoch":
        done = cli("hq", "restore-epoch", "--db", str(rig.hq.db))
        assert done.returncode == 0, done.stderr
        assert "new epoch" in done.stdout
    rig.hq.start()

    until(lambda: hq_count(rig) == outbox_total(rig), 30, every=0.1,
          what="every outlet event back at HQ")
    rig.settled()
    got = {c: rig.hq.customer(c)["points_balance"] for c in expected}
    assert got == expected
    summary = hq_ledger_check(rig.hq.db, {o: p.db for o, p in rig.outlets.items()})
    print(f"\n{how}: HQ holds {summary['events']} events after the restore")
    for agent in (a, b):
        assert resets(agent.db) == 1, f"{agent.outlet} did not notice HQ went back"
        for customer_id, points in expected.items():
            until(lambda ag=agent, c=customer_id, p=points: ag.balance(c) == p, 15,
                  what=f"{agent.outlet} converges")
    if how == "restore-epoch":
        assert a.status()["hq_epoch"] != epoch_before
    else:
        assert a.status()["hq_epoch"] == epoch_before
    # and the chain keeps working: a new card at A reaches B
    carl = a.till.register("A", surname="Later")
    until(lambda: b.identify(carl["card_number"]).status_code == 200, 5)
    rig.settled()
    hq_ledger_check(rig.hq.db, {o: p.db for o, p in rig.outlets.items()})
