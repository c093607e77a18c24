"""Snapshot bootstrap with real processes: `loyalty hq serve`, `loyalty sync`,
`loyalty agent bootstrap`, agents selling, kill -9 at the moments that matter.

- a download killed midway leaves the outlet's database as it was (empty, retryable) and
  the next `loyalty sync` resumes the download where it stopped (HTTP Range);
- a bootstrap killed during the swap (after unpacking, after stamping, after the rename)
  or at random moments leaves either the old database or the new one, never a mix;
- a snapshot taken while outlets push and HQ edits, plus the increments pulled after it,
  gives exactly what a pull from cursor 0 gives, which is HQ's state;
- a file carried by hand (`loyalty agent bootstrap --from FILE`), then the router link
  brings only what changed after it.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from agentkit import LOYALTY
from chainkit import ChainRig, HQProcess, OutletProcess, buy, cli, until
from snapshotkit import (
    as_hq_sees_it,
    hq_state,
    pulled_from_zero,
    push_registrations,
    replica_state,
)

from agent.outlet import Outlet
from agent.replica import set_meta
from schema.snapshotfile import read_header

pytestmark = pytest.mark.slow

CUSTOMERS = 15_000  # a snapshot of ~1.5 MB: more than one chunk of the download


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainRig]:
    """HQ with CUSTOMERS customers (pushed by outlet R) and a snapshot of them."""
    rig = ChainRig(tmp_path_factory.mktemp("big"))
    try:
        rig.register("R", "N1", "N2", "N3", "N4", "N5")
        rig.hq.start()
        push_registrations(rig.hq.url, rig.tokens["R"], "R", 1, CUSTOMERS)
        rig.hq.admin("POST", "/v1/admin/snapshot", 201)
        yield rig
    finally:
        rig.close()


def fresh_outlet(rig: ChainRig, outlet: str) -> Path:
    """A new outlet database that knows its HQ and token (as `agent serve` leaves it)."""
    path = rig.root / f"{outlet}.db"
    shop = Outlet(path, outlet, chain=True)
    with shop.db.write() as conn:
        set_meta(conn, "hq_url", rig.hq.url)
        set_meta(conn, "hq_token", rig.tokens[outlet])
        set_meta(conn, "link", "router")
    shop.close()
    return path


def stalled(args: list[str], stage: str, log: Path) -> subprocess.Popen[bytes]:
    """`loyalty ARGS` that stops at `stage` (LOYALTY_TEST_SNAPSHOT_STALL); returns once
    it says so."""
    with open(log, "wb") as err:
        proc = subprocess.Popen([str(LOYALTY), *args], stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL,
                                env={**os.environ, "LOYALTY_TEST_SNAPSHOT_STALL": stage})
    until(lambda: f"snapshot stage {stage}" in log.read_text(errors="replace")
          or proc.poll() is not None, 60, 0.02, what=f"stage {stage}")
    assert proc.poll() is None, log.read_text()
    return proc


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def look(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        customers = conn.execute("SELECT COUNT(*) FROM customers").fetchone()[0]
    finally:
        conn.close()
    return {"meta": meta, "customers": customers}


def test_a_download_killed_midway_resumes_and_nothing_is_half_applied(big: ChainRig) -> None:
    db = fresh_outlet(big, "N1")
    before = look(db)
    proc = stalled(["sync", "--db", str(db)], "download", big.root / "n1-first.stderr")
    kill9(proc)
    after = look(db)
    assert after == before and after["customers"] == 0  # old state: empty, retryable
    part = Path(f"{db}.snapshot.part")
    total = read_header(next(big.hq.db.parent.glob("hq.db.snapshots/*.snapshot"))).file_bytes
    assert 0 < part.stat().st_size < total
    done = cli("sync", "--db", str(db), timeout=120)
    assert done.returncode == 0, done.stderr
    assert "the download resumed" in done.stderr
    assert not part.exists()
    assert look(db)["customers"] == CUSTOMERS
    assert as_hq_sees_it(replica_state(db)) == hq_state(big.hq.db)


@pytest.mark.parametrize("stage,outcome", [("unpacked", "old"), ("stamped", "old"),
                                           ("swapped", "new")])
def test_a_bootstrap_killed_during_the_swap_leaves_the_old_database_or_the_new_one(
        big: ChainRig, stage: str, outcome: str) -> None:
    snap = next(big.hq.db.parent.glob("hq.db.snapshots/*.snapshot"))
    outlet = {"unpacked": "N2", "stamped": "N3", "swapped": "N4"}[stage]
    db = fresh_outlet(big, outlet)
    before = look(db)
    proc = stalled(["agent", "bootstrap", "--db", str(db), "--from", str(snap)], stage,
                   big.root / f"{outlet}-{stage}.stderr")
    kill9(proc)
    after = look(db)
    if outcome == "old":
        assert after == before
    else:
        assert after["customers"] == CUSTOMERS
        assert after["meta"]["outlet_id"] == outlet
        assert after["meta"]["hq_token"] == big.tokens[outlet]  # stamped before the rename
    done = cli("agent", "bootstrap", "--db", str(db), "--from", str(snap))
    assert done.returncode == 0, done.stderr
    assert look(db)["customers"] == CUSTOMERS
    assert not [p for p in db.parent.glob(f"{db.name}.snapshot-new*")]


def test_an_agent_started_on_an_empty_database_starts_from_hqs_snapshot(
        big: ChainRig) -> None:
    agent = big.outlet("N5", start=False)
    assert not agent.db.exists()
    agent.start(timeout=60)
    assert agent.status()["counts"]["customers"] == CUSTOMERS  # before any page was pulled
    assert "started from HQ's snapshot" in agent.stderr()
    agent.stop()
    assert look(agent.db)["meta"]["hq_token"] == big.tokens["N5"]


def test_a_bootstrap_killed_at_random_moments_never_leaves_a_mix(big: ChainRig,
                                                                 tmp_path: Path) -> None:
    snap = next(big.hq.db.parent.glob("hq.db.snapshots/*.snapshot"))
    rng = random.Random(14)
    db = tmp_path / "r.db"
    started = time.monotonic()
    assert cli("agent", "bootstrap", "--db", str(db), "--from", str(snap), "--outlet",
               "N1").returncode == 0
    took = time.monotonic() - started
    seen = set()
    for _ in range(6):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        fresh = Outlet(db, "N1", chain=True)
        fresh.close()
        proc = subprocess.Popen([str(LOYALTY), "agent", "bootstrap", "--db", str(db), "--from",
                                 str(snap)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 1.0) * took)
        if proc.poll() is None:
            kill9(proc)
        state = look(db)
        assert state["customers"] in (0, CUSTOMERS)
        assert state["meta"]["outlet_id"] == "N1"
        seen.add(state["customers"])
        done = cli("agent", "bootstrap", "--db", str(db), "--from", str(snap))
        assert done.returncode == 0, done.stderr
        assert look(db)["customers"] == CUSTOMERS
    print(f"random kills left: {sorted(seen)}")


def test_a_snapshot_taken_while_outlets_push_and_hq_edits_converges_with_the_increments(
        rig: ChainRig) -> None:
    rig.register("C", "Z")
    rig.start(("A", "B"))
    stop = threading.Event()
    cards: dict[str, list[tuple[str, str]]] = {"A": [], "B": []}
    errors: list[BaseException] = []

    def shop(outlet: str) -> None:
        till = rig.outlets[outlet].till
        rng = random.Random(outlet)
        try:
            while not stop.is_set():
                if not cards[outlet] or rng.random() < 0.3:
                    made = till.register(category=rng.choice("ABC"))
                    cards[outlet].append((made["customer_id"], made["card_number"]))
                else:
                    try:
                        buy(till, rng.choice(cards[outlet])[1], rng.randrange(100, 5000))
                    except AssertionError as exc:  # HQ banned the customer meanwhile
                        if "card_banned" not in str(exc):
                            raise
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            errors.append(exc)

    def head_office() -> None:
        rng = random.Random(7)
        try:
            n = 0
            while not stop.is_set():
                n += 1
                known = cards["A"] + cards["B"]
                answer = None
                if known and n % 3 == 0:
                    customer, _card = rng.choice(known)
                    answer = rig.hq.admin("POST", f"/v1/admin/customers/{customer}/ban",
                                          None, json={"reason": "test"})
                elif known and n % 3 == 1:
                    customer, _card = rng.choice(known)
                    answer = rig.hq.admin("PATCH", f"/v1/admin/customers/{customer}", None,
                                          json={"phone": f"+385 {n}"})
                else:
                    rig.hq.admin("PUT", "/v1/admin/master/gift",
                                 json={"sku": f"GIFT-E{n}", "name": "Edit", "points_cost": n})
                # a customer the outlet has not pushed yet is unknown at HQ: fine
                assert answer is None or answer.status_code in (200, 404), answer.text
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the test
            errors.append(exc)

    workers = [threading.Thread(target=shop, args=(o,)) for o in ("A", "B")]
    workers.append(threading.Thread(target=head_office))
    for worker in workers:
        worker.start()
    try:
        time.sleep(2.0)
        first = rig.hq.admin("POST", "/v1/admin/snapshot", 201)  # while all of them write
        time.sleep(1.5)
        second = rig.hq.admin("POST", "/v1/admin/snapshot", 201)
        time.sleep(1.5)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    assert not errors, errors
    rig.settled()
    assert second["cursor"] > first["cursor"] > 0
    with rig.hq.db_conn() as conn:
        head = conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0]
    assert head > second["cursor"]  # there are increments after the snapshot
    db = fresh_outlet(rig, "C")
    done = cli("sync", "--db", str(db), timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"started from HQ's snapshot at cursor {second['cursor']}" in done.stderr
    started = replica_state(db)
    assert started == pulled_from_zero(rig.hq.db, "Z", rig.root / "Z.db")
    assert as_hq_sees_it(started) == hq_state(rig.hq.db)
    assert started["meta"]["cursor"] == str(head)


def test_a_hand_carried_snapshot_then_the_router_brings_only_what_changed(rig: ChainRig) -> None:
    rig.register("N")
    rig.start(("A",))
    a = rig.outlets["A"]
    before = [a.till.register(category="A") for _ in range(5)]
    rig.settled()
    snap = rig.root / "carried.snapshot"
    made = cli("hq", "snapshot", "--db", str(rig.hq.db), "--out", str(snap))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip().splitlines()[-1] == str(snap)
    after = a.till.register(category="B")
    buy(a.till, before[0]["card_number"], 2500)
    rig.settled()
    db = rig.root / "N.db"
    done = cli("agent", "bootstrap", "--db", str(db), "--from", str(snap), "--outlet", "N")
    assert done.returncode == 0, done.stderr
    carried = look(db)
    assert carried["customers"] == 5
    header = read_header(snap)
    n = OutletProcess(db, "N", rig.hq.url, rig.tokens["N"])
    rig.outlets["N"] = n
    n.start()
    until(lambda: n.identify(after["card_number"]).status_code == 200, 20,
          what="a customer made after the snapshot reaches N")
    until(lambda: n.balance(before[0]["customer_id"]) == a.balance(before[0]["customer_id"]),
          20, what="a sale made after the snapshot reaches N")
    with rig.hq.db_conn() as conn:
        moved = conn.execute("SELECT COUNT(*) FROM changes WHERE seq > ?",
                             (header.cursor,)).fetchone()[0]
    assert moved == 2  # the new customer and the one who bought: all N had to pull
    n.stop()
    assert as_hq_sees_it(replica_state(db)) == hq_state(rig.hq.db)


class EagerHQ(HQProcess):
    """`loyalty hq serve --snapshot-changes 1`: a snapshot as soon as anything changed."""

    def command(self) -> list[str]:
        return [*super().command(), "--snapshot-changes", "1"]


def test_hq_builds_its_snapshot_by_itself_and_serves_it_with_range(tmp_path: Path) -> None:
    hq = EagerHQ(tmp_path / "hq.db")
    try:
        token = hq.outlet_add("N")
        hq.start()
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {token}"
        _took, manifest = until(lambda: (r := http.get(hq.url + "/v1/sync/snapshot",
                                                       timeout=5)).ok and r.json(),
                                30, 0.1, what="HQ's first snapshot")
        url = f"{hq.url}/v1/sync/snapshot/{manifest['sha256']}"
        whole = http.get(url, timeout=10)
        assert whole.status_code == 200 and len(whole.content) == manifest["file_bytes"]
        tail = http.get(url, headers={"Range": "bytes=100-"}, timeout=10)
        assert tail.status_code == 206 and tail.content == whole.content[100:]
        assert http.get(f"{hq.url}/v1/sync/snapshot/{'0' * 64}", timeout=5).status_code == 404
        admin = requests.get(hq.url + "/v1/sync/snapshot", timeout=5,
                             headers={"Authorization": f"Bearer {hq.admin_token}"})
        assert admin.status_code == 403
        assert requests.get(url, timeout=5).status_code == 401
        http.close()
    finally:
        hq.kill()
