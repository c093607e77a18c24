"""The modem link end to end (issue 5, "Done means"): both ends as REAL processes joined
by the line simulator process over pseudo-terminals.

`python -m sync.linesim` plays the modems and the telephone line (HQ's lines behind one
number: a hunt group); `loyalty hq serve --modem ... --modem ...` answers on a two-line
modem bank; the outlets are `loyalty agent serve --config` with a `[modem]` table and dial
when `loyalty sync --db` says so (the store manager's "dial now", exit 0 only when
everything pending was acknowledged) or when their schedule fires. Faults come through the
simulator's stdin (`ber`, `drop`, `dialtone`) and by holding HQ's lines or stopping HQ.
After healing, the chain is checked with the router link's checks
(`faultproxy.check_files`: every outlet event at HQ exactly once and gap-free, HQ tallies
= fold of its events, every outlet = HQ).
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import serial
from chainkit import OutletProcess, until
from faultproxy import Ledger, Till, check_files
from modemkit import (
    GUARD_S,
    HQ_NUMBER,
    INIT,
    ModemRig,
    hq_events,
    outbox_flags,
    shop_day,
    wait_for,
)

from schema.sync import PushRequest
from sync.compression import encode_message
from sync.hayes import HayesModem

OUTLETS = ["A", "B"]


def tills(rig: ModemRig, ledger: Ledger, seed: int) -> dict[str, Till]:
    """faultproxy's tills (retrying, recording what they were told) on the modem outlets."""
    shim = SimpleNamespace(agents=rig.outlets)
    return {o: Till(shim, o, random.Random(f"{seed}/{o}"), ledger)  # type: ignore[arg-type]
            for o in rig.outlets}


def trade(till: Till, ledger: Ledger, rounds: int) -> None:
    """Registrations, sales (some big: points to spend) and gift redemptions at one till."""
    own = [c for c, (_, cat) in ledger.cards.items() if cat]  # any card of the chain
    for _ in range(rounds):
        card = till.register(till.rng.choice("AAC"))
        if card is not None:
            own.append(card)
        card = till.rng.choice(own)
        till.sell(card, big=True)
        till.sell(till.rng.choice(own))
        till.redeem(card)


def session(db: Path) -> dict[str, Any]:
    """The last modem session as `loyalty status --json` shows it (the agent may be down)."""
    from chainkit import cli

    done = cli("status", "--db", str(db), "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["link"] == "modem"
    return figures["last_session"]


def failed(done: subprocess.CompletedProcess[str], code: str) -> None:
    """`loyalty sync` failed with a clear error naming `code` (a dropped line is reported
    as `error [hq_unreachable]: modem line lost: modem_carrier_lost: ...`)."""
    assert done.returncode != 0, done.stdout
    assert done.stderr.startswith("error [") and code in done.stderr, done.stderr


def push_bytes(db: Path, outlet: str, first_seq: int) -> int:
    """Bytes of the compressed push of this outlet's events from `first_seq` (frames not
    counted): what a call would send if it re-sent all of them."""
    import sqlite3

    from schema.events import Event
    from schema.modemcall import request

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        events = [Event.model_validate_json(r[0]) for r in conn.execute(
            "SELECT event FROM outbox WHERE seq >= ? ORDER BY seq", (first_seq,))]
    finally:
        conn.close()
    total = 0
    for i in range(0, len(events), 1000):  # the dialer's batches
        batch = PushRequest(outlet_id=outlet, events=events[i:i + 1000])
        total += len(encode_message(request("push", batch=batch.model_dump(mode="json"))))
    return total


class LineHolder:
    """A test-side modem that dials HQ and stays on the line (occupies one HQ line)."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, timeout=0.05)
        self.modem = HayesModem(self.port, init=INIT, guard_s=GUARD_S)
        self.modem.initialize()
        self.modem.dial(HQ_NUMBER, timeout=5)

    def release(self) -> None:
        self.modem.hangup()
        self.port.close()


@pytest.mark.slow
def test_calls_converge_after_bit_errors_drop_busy_no_dialtone_and_no_answer(
        tmp_path: Path) -> None:
    rig = ModemRig(tmp_path, OUTLETS, lines=2, extra=("hold1", "hold2"), speed_bps=115_200)
    clock = {"start": time.monotonic()}
    try:
        rig.start()
        assert rig.hq is not None
        a, b = rig.outlets["A"], rig.outlets["B"]
        rig.synced_all()  # both at once: the hunt group gives each a line; card ranges
        assert a.status()["hq_epoch"] == b.status()["hq_epoch"] is not None
        ledger = Ledger()
        till = tills(rig, ledger, seed=5)
        for outlet in OUTLETS:
            till[outlet].stock("GIFT-MUG", 100)
        trade(till["A"], ledger, 3)
        trade(till["B"], ledger, 3)
        clock["setup"] = time.monotonic()

        # 1. noisy lines: 1e-5, then 1e-4 (a 512-byte frame is hit ~1 time in 3)
        for rate in (1e-5, 1e-4):
            rig.sim.ber(rate)
            rig.synced_all()
            trade(till["A"], ledger, 2)
            trade(till["B"], ledger, 2)
        rig.sim.ber(0)
        rig.synced_all()
        clock["noise"] = time.monotonic()

        # 2. the carrier drops in the middle of a big push (two batches of the dialer's 1000)
        a.stop(grace=10)
        before = hq_events(rig.hq.db, "A")
        assert outbox_flags(a.db) == (before, 0)
        shop_day(a.db, "A", 1_595, lines=1, customers=5, seed=7)
        total = before + 1_600
        full_resend = push_bytes(a.db, "A", before + 1)
        call = subprocess.Popen([str(a.command()[0]), "sync", "--db", str(a.db)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: outbox_flags(a.db)[0] >= before + 1_000, 120, 0.01,
                 "the outlet has HQ's acknowledgement of the first batch")
        assert rig.sim.drop("o1"), "the call was over before the drop"
        out, err = call.communicate(timeout=60)
        failed(subprocess.CompletedProcess(call.args, call.returncode, out, err),
               "modem_carrier_lost")
        acked, pending = outbox_flags(a.db)
        at_hq = hq_events(rig.hq.db, "A")
        assert acked >= before + 1_000 and acked + pending == total
        assert acked <= at_hq < total, (acked, at_hq, total)  # HQ may hold a batch unacked
        dropped = session(a.db)
        assert "modem_carrier_lost" in dropped["result"] and dropped["bytes_sent"] > 0
        a.synced()
        resumed = session(a.db)
        assert resumed["result"] == "ok"
        assert resumed["pushed"] == total - at_hq, resumed  # only what HQ lacked is new
        assert resumed["bytes_sent"] < full_resend * 0.6, (resumed, full_resend)
        assert hq_events(rig.hq.db, "A") == total and outbox_flags(a.db) == (total, 0)
        print(f"\ndrop: HQ had {at_hq - before}/1600 of the big push, outlet had acked "
              f"{acked - before}; resumed call sent {resumed['bytes_sent']} bytes "
              f"(a full re-send: {full_resend}); dropped call had sent {dropped['bytes_sent']}")
        a.start()
        clock["drop"] = time.monotonic()

        # 3. NO DIALTONE at B: a clear error, the till keeps selling
        rig.sim.dialtone("o2", False)
        pending_b = b.status()["pending_events"]
        failed(b.sync(), "modem_no_dialtone")
        trade(till["B"], ledger, 1)
        assert b.status()["pending_events"] > pending_b
        assert b.status()["last_session"]["result"].startswith("modem_no_dialtone")
        rig.sim.dialtone("o2", True)

        # 4. BUSY: both HQ lines held by other callers
        holders = [LineHolder(rig.sim.paths["hold1"]), LineHolder(rig.sim.paths["hold2"])]
        try:
            trade(till["A"], ledger, 1)
            failed(a.sync(), "modem_busy")
            assert a.status()["last_session"]["result"].startswith("modem_busy")
        finally:
            for holder in holders:
                holder.release()

        # 5. NO ANSWER: HQ stopped (its modems stop answering)
        rig.hq.stop(grace=20)
        failed(b.sync(), "modem_no_answer")
        trade(till["B"], ledger, 1)
        trade(till["A"], ledger, 1)
        rig.hq.start()
        clock["faults"] = time.monotonic()

        # healed: every outlet calls, then once more to pull what the other pushed
        rig.synced_all(["A"])
        rig.synced_all(["B"])
        rig.synced_all(["A"])
        figures = check_files(rig.hq.db, {o: rig.outlets[o].db for o in OUTLETS}, ledger)
        assert figures["hq_events"] == outbox_flags(a.db)[0] + outbox_flags(b.db)[0]
        clock["heal"] = time.monotonic()
        names = list(clock)
        print(f"phases: { {n: round(clock[n] - clock[p], 1) for p, n in itertools.pairwise(names)} }"
              f" {figures} line {rig.sim.stats()['calls_made']} calls")
    except BaseException:
        print(rig.logs())
        raise
    finally:
        rig.close()


@pytest.mark.slow
def test_router_and_modem_outlets_converge_and_the_schedule_dials_by_itself(
        tmp_path: Path) -> None:
    """R on the router link, M on a modem dialling every minute (APScheduler in the agent)."""
    from agentkit import expect_error
    from chainkit import buy, cli

    rig = ModemRig(tmp_path, ["M"], lines=1, speed_bps=33_600, schedules={"M": "every 1m"})
    try:
        rig.start()
        hq, m = rig.hq, rig.outlets["M"]
        assert hq is not None
        hq.outlet_add("R")
        r = OutletProcess(tmp_path / "R.db", "R", hq.url, hq.tokens["R"])
        rig.others.append(r)
        r.start()
        before = m.status()
        assert before["link"] == "modem" and before["last_session"] is None
        scheduled_at = before["next_dial_at"]
        assert scheduled_at, before

        m.synced()  # "dial now": the first call brings the card range and master data
        first = m.status()["last_session"]
        assert first["result"] == "ok" and first["connect_bps"] == 33_600
        assert m.status()["next_dial_at"] == scheduled_at  # a call now keeps the schedule
        until(lambda: r.status().get("hq_epoch"), 15, what="R meets HQ")

        issued = m.till.register("A", surname="Dialup")
        card, cid = issued["card_number"], issued["customer_id"]
        assert buy(m.till, card, 100_000)["points_earned"] == 1_800
        router_card = r.till.register("A", surname="Router")["card_number"]
        assert r.identify(card).status_code == 404  # not before M calls

        # the schedule fires by itself one minute after the agent started
        def scheduled() -> dict[str, Any] | None:
            session_ = m.status()["last_session"]
            return session_ if session_["started_at"] > first["started_at"] else None

        took, call = until(scheduled, 100, every=0.5, what="the scheduled call")
        assert call["result"] == "ok" and call["pushed"] == 2, call
        assert call["bytes_sent"] > 0 and call["bytes_received"] > 0, call
        status = m.status()
        assert status["next_dial_at"] > scheduled_at, status  # the next window, a minute on
        assert status["pending_events"] == 0
        shown = cli("status", "--db", str(m.db))
        assert "Next dial" in shown.stdout and "Last call" in shown.stdout, shown.stdout
        print(f"\nscheduled call {took:.0f}s into the wait: {call}")

        # the card issued at M is known at R (long poll) right after M's call, with points
        elapsed, _ = until(lambda: r.identify(card).status_code == 200, 5, every=0.01)
        until(lambda: r.balance(cid) == 1_800, 5)
        assert m.identify(router_card).status_code == 200  # pulled by the same call
        print(f"card issued at M -> identified at R {elapsed:.3f}s after M's call ended")

        # a ban at HQ reaches M at its next call (and R at once)
        hq.admin("POST", f"/v1/admin/customers/{cid}/ban", json={"reason": "fraud"})
        until(lambda: r.identify(card).status_code == 403, 5, what="ban at R")
        assert m.identify(card).status_code == 200  # M does not know before it calls
        m.synced()
        expect_error(m.identify(card), 403, "card_banned")

        head = until(lambda: r.status()["cursor"] == m.status()["cursor"] and
                     r.status()["cursor"], 10, what="R at HQ's head")[1]
        figures = check_files(hq.db, {"R": r.db, "M": m.db})
        assert figures["customers"] == 2 and head > 0
    except BaseException:
        print(rig.logs())
        raise
    finally:
        rig.close()


# --- the dial window, in process: Dialer.window() on the in-process simulator -------------
def _modem_link(path: str, token: str = "lo_nobody") -> Any:
    from sync.modem import ModemSettings, ModemTransport

    return ModemTransport(ModemSettings(path, HQ_NUMBER, INIT, GUARD_S, dial_timeout_s=1.0),
                          token)


def test_dialer_retries_busy_with_back_off_and_gives_up_at_the_window_end(
        modem_line: Any, modem_port: Any) -> None:
    from modem_fixtures import read_until

    from sync.dialer import Dialer

    hq_path = modem_line.add_modem("hq")
    modem_line.register_number(HQ_NUMBER, ["hq"])
    out_path = modem_line.add_modem("out")
    hq = modem_port(hq_path)
    hq.write(b"ATH1\r")  # off hook: every call to the number is BUSY
    assert read_until(hq, b"OK\r\n").endswith(b"OK\r\n")
    starts: list[float] = []
    ends: list[float] = []
    records: list[dict[str, Any]] = []

    def connect() -> Any:
        starts.append(time.monotonic())
        return _modem_link(out_path)

    def record(figures: dict[str, Any]) -> None:
        ends.append(time.monotonic())
        records.append(figures)

    window_s = 5.0
    dialer = Dialer(None, connect, record, window_s=window_s,  # type: ignore[arg-type]
                    first_retry_s=0.2, max_retry_s=0.8)
    began = time.monotonic()
    assert dialer.window() is None
    took = time.monotonic() - began
    waits = [round(s - e, 2) for e, s in zip(ends, starts[1:])]
    print(f"\nBUSY: {len(starts)} attempts in {took:.2f}s, waits {waits}")
    assert all(r["last_session"]["result"].startswith("modem_busy") for r in records), records
    assert len(starts) >= 4
    for wait, planned in zip(waits, [0.2, 0.4, 0.8, 0.8, 0.8]):
        assert planned - 0.05 <= wait <= planned + 0.3, waits  # doubling, capped
    assert starts[-1] - began <= window_s  # no attempt starts after the window
    assert took <= window_s + 1.5


def test_dialer_retries_no_answer_until_hq_answers_within_the_window(
        modem_line: Any, tmp_path: Path) -> None:
    from agent.outlet import Outlet
    from agent.programme import default_documents
    from agent.replication import OutletReplica
    from hq import credentials
    from hq.chain import Chain
    from hq.modembank import LineSettings, ModemLine
    from sync.dialer import Dialer

    hq_path = modem_line.add_modem("hq")
    modem_line.register_number(HQ_NUMBER, ["hq"])
    out_path = modem_line.add_modem("out")
    chain = Chain(tmp_path / "hq.db", seed=default_documents())
    with chain.db.write() as conn:
        token, _ = credentials.add_outlet(conn, "A")
    shop = Outlet(tmp_path / "A.db", "A", chain=True)
    records: list[dict[str, Any]] = []
    line = ModemLine(chain, LineSettings(hq_path, INIT, GUARD_S))
    later = threading.Timer(2.0, line.start)  # HQ's modem answers from then on
    later.start()
    try:
        dialer = Dialer(OutletReplica(shop), lambda: _modem_link(out_path, token),
                        records.append, window_s=30, first_retry_s=0.3, max_retry_s=1.0)
        report = dialer.window()
        assert report is not None and report.pulled > 0 and report.pending_after == 0
        results = [r["last_session"]["result"] for r in records]
        print(f"\nNO ANSWER then answered: {results}")
        assert results[-1] == "ok" and len(results) >= 2
        assert all(x.startswith("modem_no_answer") for x in results[:-1]), results
    finally:
        later.cancel()
        line.stop()
        shop.close()
        chain.close()
