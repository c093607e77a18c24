"""`loyalty hq ...` and `loyalty --version` as an operator runs them: subprocesses of this
venv on an HQ database made through HQ's own ingest (issue 9, item 16)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
from agentkit import LOYALTY
from chainkit import HQProcess
from hqkit import STORES
from testkit.waiting import wait_until

from agent.programme import default_documents
from hq import credentials, ingest, invoices
from hq.chain import Chain
from schema.events import (
    CustomerRegistered,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
)
from schema.sync import PushRequest

CARD = "2900010000015"
CUSTOMER = "0190c0de-0000-7000-8000-000000000001"


def loyalty(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOYALTY), *args], capture_output=True, text=True, timeout=60,
                          check=False, stdin=subprocess.DEVNULL)


def credit_sale(amount: int) -> SaleRecorded:
    line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=amount, gross=amount, discount=0,
                    net=amount)
    return SaleRecorded(sale_id="sale-1", customer_id=CUSTOMER, currency="EUR", lines=[line],
                        payments=[Payment(mode="credit", amount=amount)], total_gross=amount,
                        total_discount=0, total_net=amount, points_earned=0)


@pytest.fixture(params=STORES)
def hq_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path | str]:
    """HQ's database (its file, or on PostgreSQL its URL: hqkit.STORES) with one customer
    (card CARD) and a credit sale of 123.45 in October 2026."""
    path: Path | str = (request.getfixturevalue("hq_pg") if request.param == "postgresql"
                        else tmp_path / "hq.db")
    chain = Chain(path, seed=default_documents())
    try:
        with chain.db.write() as conn:
            credentials.add_outlet(conn, "X")
            # its facts are dated October: the outlet traded then (an outlet's stamps from
            # before its registration are booked at receipt, docs/sync.md "Outlet clocks")
            conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
        registered = CustomerRegistered(customer_id=CUSTOMER, card_number=CARD, profile=Profile(
            kind="person", given_name="Ana", surname="Novak", category="A"))
        ingest.push(chain, "X", PushRequest(outlet_id="X", events=[
            make_event("X", 1, registered, "2026-10-01T09:00:00Z"),
            make_event("X", 2, credit_sale(12_345), "2026-10-10T12:00:00Z")]))
    finally:
        chain.close()
    yield path


def status_of(db: Path | str) -> tuple[str, list[str]]:
    chain = Chain(db)
    try:
        status = chain.db.scalar("SELECT status FROM customers WHERE customer_id = ?",
                                 (CUSTOMER,))
        facts = [r[0] for r in chain.db.all(
            "SELECT event FROM events WHERE type = 'customer.status_changed' ORDER BY hq_seq")]
        return str(status), facts
    finally:
        chain.close()


def test_version_prints_the_installed_version() -> None:
    done = loyalty("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"loyalty {version('loyalty')}"


def test_ban_and_unban_take_a_card_number_or_an_id_and_are_facts(hq_db: Path | str) -> None:
    done = loyalty("hq", "ban", "--db", str(hq_db), CARD, "--reason", "fraud at the desk")
    assert done.returncode == 0, done.stderr
    assert "banned" in done.stdout and CARD not in done.stdout  # the card shown masked
    status, facts = status_of(hq_db)
    assert status == "banned" and "fraud at the desk" in facts[-1]

    done = loyalty("hq", "unban", "--db", str(hq_db), CUSTOMER, "--reason", "cleared")
    assert done.returncode == 0, done.stderr
    status, facts = status_of(hq_db)
    assert status == "approved" and len(facts) == 2 and "cleared" in facts[-1]

    done = loyalty("hq", "unban", "--db", str(hq_db), CARD)  # the reason is optional
    assert done.returncode == 0, done.stderr
    assert status_of(hq_db)[0] == "approved"


def test_customer_shows_the_customer_named_by_card_number(hq_db: Path | str) -> None:
    done = loyalty("hq", "customer", "--db", str(hq_db), CARD)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["customer_id"] == CUSTOMER


@pytest.mark.parametrize("command", ["ban", "unban", "customer"])
def test_an_unknown_customer_is_one_error_line_with_the_number_masked(
        hq_db: Path | str, command: str) -> None:
    done = loyalty("hq", command, "--db", str(hq_db), "2900019999993")
    assert done.returncode == 1
    assert done.stderr.startswith("error [customer_unknown]: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "2900019999993" not in done.stderr and "9993" in done.stderr
    assert status_of(hq_db) == ("approved", [])


def test_close_invoices_closes_a_month_like_the_admin_api_and_adds_nothing_twice(
        hq_db: Path | str) -> None:
    done = loyalty("hq", "close-invoices", "--db", str(hq_db), "--period", "2026-10",
                   "--issued-on", "2026-11-01")
    assert done.returncode == 0, done.stderr
    assert "2026-000001" in done.stdout and "123.45" in done.stdout
    chain = Chain(hq_db)
    try:
        made = invoices.invoices(chain)
    finally:
        chain.close()
    assert [(i["period_from"], i["period_to"], i["issued_on"], i["due_on"], i["amount"])
            for i in made] == [("2026-10-01", "2026-11-01", "2026-11-01", "2026-11-15", 12_345)]
    again = loyalty("hq", "close-invoices", "--db", str(hq_db), "--period", "2026-10",
                    "--issued-on", "2026-11-01")
    assert again.returncode == 0 and "no new invoices" in again.stdout


@pytest.mark.parametrize("args, says", [
    (["--period", "2026-13"], "--period"), (["--period", "October"], "--period"),
    (["--issued-on", "2026-11-31"], "--issued-on"), (["--period", "0001-01"], "period_from"),
])
def test_close_invoices_refuses_a_bad_period_with_one_error_line(
        hq_db: Path | str, args: list[str], says: str) -> None:
    done = loyalty("hq", "close-invoices", "--db", str(hq_db), *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [invalid_request]: "), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def adjustments(db: Path) -> list[dict[str, object]]:
    chain = Chain(db)
    try:
        return [json.loads(r[0])["body"] for r in chain.db.all(
            "SELECT event FROM events WHERE type = 'balance.adjusted' AND outlet_id = 'HQ' "
            "ORDER BY hq_seq")]
    finally:
        chain.close()


def test_adjust_takes_a_card_number_signed_points_and_a_typed_amount(hq_db: Path) -> None:
    done = loyalty("hq", "adjust", "--db", str(hq_db), CARD, "--points", "-40",
                   "--credit", "-1.234,50", "--reason", "double scan, receipt 0042")
    assert done.returncode == 0, done.stderr
    assert CARD not in done.stdout and "0015" in done.stdout  # the card shown masked
    assert "-40" in done.stdout and "-1,234.50" in done.stdout
    done = loyalty("hq", "adjust", "--db", str(hq_db), CUSTOMER, "--credit", "12.50",
                   "--reason", "goodwill")
    assert done.returncode == 0, done.stderr
    made = adjustments(hq_db)
    assert [(a["customer_id"], a.get("points", 0), a.get("credit", 0), a["reason"])
            for a in made] == [(CUSTOMER, -40, -123_450, "double scan, receipt 0042"),
                               (CUSTOMER, 0, 1250, "goodwill")]
    view = json.loads(loyalty("hq", "customer", "--db", str(hq_db), CARD).stdout)
    # the credit sale of 123.45 was owed; -1,234.50 owes more, 12.50 owes less
    assert view["credit_balance"] == 12_345 + 123_450 - 1250
    assert view["points_balance"] == -40


@pytest.mark.parametrize("args, code, says", [
    (["--points", "10"], "invalid_request", "--reason"),
    (["--points", "10", "--reason", "  "], "invalid_request", "--reason"),
    (["--reason", "nothing to change"], "invalid_request", "--points"),
    (["--points", "0", "--credit", "0", "--reason", "zero"], "invalid_request", "--points"),
    (["--credit", "12.345", "--reason", "r"], "invalid_request", "--credit"),
    (["--credit", "twelve", "--reason", "r"], "invalid_request", "--credit"),
    (["--points", "ten", "--reason", "r"], "invalid_request", "--points"),
])
def test_adjust_refuses_bad_input_with_one_error_line_and_changes_nothing(
        hq_db: Path, args: list[str], code: str, says: str) -> None:
    done = loyalty("hq", "adjust", "--db", str(hq_db), CARD, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith(f"error [{code}]: "), done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert adjustments(hq_db) == []


def test_adjust_names_an_unknown_customer_masked(hq_db: Path) -> None:
    done = loyalty("hq", "adjust", "--db", str(hq_db), "2900019999993", "--points", "5",
                   "--reason", "r")
    assert done.returncode == 1
    assert done.stderr.startswith("error [customer_unknown]: ") and "9993" in done.stderr
    assert "2900019999993" not in done.stderr
    assert adjustments(hq_db) == []


def test_outlets_and_flags_list_what_hq_holds(hq_db: Path | str) -> None:
    done = loyalty("hq", "outlets", "--db", str(hq_db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("X ") and "last_seq 2" in done.stdout
    done = loyalty("hq", "flags", "--db", str(hq_db))
    assert (done.returncode, done.stdout) == (0, ""), done.stderr


def test_expire_points_refuses_a_day_after_hqs_today_and_changes_nothing(hq_db: Path | str) -> None:
    done = loyalty("hq", "expire-points", "--db", str(hq_db), "--today", "2999-01-15")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.startswith("error [invalid_request]: "), done.stderr
    assert "after HQ's today" in done.stderr and "Traceback" not in done.stderr
    chain = Chain(hq_db)
    try:
        assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'points.expired'") == 0
    finally:
        chain.close()


def epoch_of(db: Path | str) -> str:
    chain = Chain(db)
    try:
        return chain.epoch
    finally:
        chain.close()


def test_restore_epoch_starts_a_new_epoch_on_a_file_and_on_a_url(hq_db: Path | str) -> None:
    # restoring PostgreSQL by point-in-time recovery takes HQ back in time just like a file
    # copy: outlets must be told by a new epoch on either store
    before = epoch_of(hq_db)
    done = loyalty("hq", "restore-epoch", "--db", str(hq_db))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("new epoch ")
    after = done.stdout.split()[-1]
    assert after != before and epoch_of(hq_db) == after


def test_restore_epoch_is_refused_while_hq_processes_serve_the_url_and_changes_nothing(
        hq_pg: str, tmp_path: Path) -> None:
    before = epoch_of(hq_pg)
    one = HQProcess(hq_pg, stderr=tmp_path / "hq1.stderr")
    two = HQProcess(hq_pg, stderr=tmp_path / "hq2.stderr")
    try:
        one.start()
        two.start()
        assert one.proc is not None and two.proc is not None
        done = loyalty("hq", "restore-epoch", "--db", hq_pg)
        assert done.returncode == 1, done.stdout + done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error [database_in_use]: "), done.stderr
        for hq in (one, two):  # each serving process named, as a file's lock names its one
            assert f"pid {hq.proc.pid}" in lines[0] and f"127.0.0.1:{hq.port}" in lines[0]
        assert "stop" in lines[0]
        assert epoch_of(hq_pg) == before
        # the server dropping the serving processes' connections (a restart, a failover):
        # each marks itself again, and a restore is still refused
        with psycopg.connect(hq_pg, autocommit=True) as conn:
            dropped = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "application_name LIKE 'loyalty hq serve pid %'").fetchall()
        assert len(dropped) == 2

        def marked_again() -> bool:
            with psycopg.connect(hq_pg) as conn:
                return conn.execute(
                    "SELECT COUNT(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                    "WHERE l.locktype = 'advisory' AND l.mode = 'ShareLock' AND "
                    "a.application_name LIKE 'loyalty hq serve pid %'").fetchone() == (2,)

        wait_until(marked_again, timeout=15, what="both HQ processes serving again")
        done = loyalty("hq", "restore-epoch", "--db", hq_pg)
        assert done.returncode == 1 and "database_in_use" in done.stderr, done.stderr
        assert epoch_of(hq_pg) == before
        one.kill()  # kill -9: the server drops what the process held with its connection
        two.stop()
        done = loyalty("hq", "restore-epoch", "--db", hq_pg)
        assert done.returncode == 0, done.stderr
        assert epoch_of(hq_pg) == done.stdout.split()[-1] != before
    finally:
        one.kill()
        two.kill()


def test_outlet_token_replaces_the_token_on_a_file_and_on_a_url(hq_db: Path | str) -> None:
    done = loyalty("hq", "outlet-token", "--db", str(hq_db), "X")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("lo_")
    chain = Chain(hq_db)
    try:
        assert credentials.outlet_for(chain.db, token) == "X"
    finally:
        chain.close()
