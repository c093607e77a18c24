"""Staff roles and the audit trail at HQ, in process on a real database file (hq/staff.py,
hq/audit.py, migration m008): existing accounts become administrators on upgrade; every
change staff make is recorded with who, before -> after and why, in the change's own
transaction (a refused change leaves no row); the trail is searchable and append-only; the
last administrator stays; only desk accounts are rendered for the outlets, as hashes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from click.testing import CliRunner, Result
from hqkit import STORES, registered, sale

from hq import admin, audit, credentials, feed, ingest, invoices, staff
from hq import cli as hq_cli
from hq.audit import COMMAND_LINE, Actor
from hq.chain import Chain
from hq.store import DB_ERRORS
from schema.errors import Conflict, InvalidRequest, NotFound, Overpayment
from schema.events import Payment, make_event
from schema.hq_tables import migrations
from schema.roles import DESK_ACCOUNT_KIND, Role
from schema.sync import PushRequest

PASSWORD = "a long enough password"
ALICE = Actor("alice", Role.operator)
ROOT = Actor("root", Role.administrator)


@pytest.fixture(params=STORES)
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    """Outlet A; a customer with a credit sale of 120.00 on an open invoice; an open flag
    (a sale for a customer HQ does not know); administrator `root`. On each store."""
    the_chain = Chain(request.getfixturevalue("hq_pg") if request.param == "postgresql"
                      else tmp_path / "hq.db")
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        staff.add(conn, "root", PASSWORD)
    who = registered("Ana")
    credit = sale(who.customer_id, net=12_000).model_copy(
        update={"payments": [Payment(mode="credit", amount=12_000)]})
    bodies = [who, credit, sale("nobody-0001")]
    ingest.push(the_chain, "A", PushRequest(outlet_id="A", events=[
        make_event("A", i, body) for i, body in enumerate(bodies, start=1)]))
    today = datetime.now(UTC).date()
    invoices.close_period(the_chain, today - timedelta(days=1), today + timedelta(days=1), today)
    yield the_chain
    the_chain.close()


def trail(chain: Chain, **wanted: str) -> list[dict[str, Any]]:
    return audit.search(chain, audit.Search(**wanted))  # type: ignore[arg-type]


def test_existing_accounts_become_administrators_on_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old-hq.db"
    old = sqlite_utils.Database(sqlite3.connect(path))
    migrations.apply(old, stop_before="m008_staff_roles_audit")
    old.execute("INSERT INTO staff (username, password_hash, created_at) VALUES "
                "('alice', 'scrypt$x', '2026-01-01T00:00:00Z')")
    old.conn.commit()
    old.conn.close()
    upgraded = Chain(path)
    try:
        assert staff.role(upgraded.db, "alice") is Role.administrator
        assert staff.accounts(upgraded)[0]["role"] == "administrator"
    finally:
        upgraded.close()


def test_the_audit_trail_cannot_be_changed_or_deleted(chain: Chain) -> None:
    staff.set_role(chain, ROOT, "root", Role.administrator)  # no change: no row
    with chain.db.write() as conn:
        staff.add(conn, "bob", PASSWORD, role=Role.viewer, by=ROOT)
    (row,) = trail(chain, staff="root")
    for sql in ("UPDATE audit SET staff = 'mallory'", "DELETE FROM audit"):
        with pytest.raises(DB_ERRORS, match="append-only"), chain.db.write() as conn:
            conn.execute(sql)
    assert trail(chain, staff="root") == [row]


def test_the_command_line_makes_an_administrator_unless_told_and_replace_keeps_the_role(
        chain: Chain) -> None:
    """`loyalty hq staff-add` (its click command, in this process)."""
    command, db = hq_cli.group(lambda: ()), chain.db.where

    def staff_add(*args: str, password: str = PASSWORD) -> Result:
        return CliRunner().invoke(command, ["staff-add", "--db", db, "--password-stdin", *args],
                                  input=password + "\n")

    done = staff_add("--role", "desk", "clerk")
    assert done.exit_code == 0, done.output
    done = staff_add("--replace", "clerk", password=PASSWORD + "!")
    assert done.exit_code == 0, done.output
    assert staff.role(chain.db, "clerk") is Role.desk
    refused = staff_add("--role", "root", "eve")
    assert refused.exit_code != 0 and "'root' is not one of" in refused.output
    assert staff_add("second").exit_code == 0
    assert staff.role(chain.db, "second") is Role.administrator
    made, replaced = _by_action(chain, "clerk")
    assert made["changes"] == [("disabled", None, False), ("password", None, "set"),
                               ("role", None, "desk")]
    assert replaced["changes"] == [("password", "old", "new")]


def _by_action(chain: Chain, username: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = audit.search(chain, audit.Search(subject=("staff", username)))
    assert [r["staff"] for r in rows] == [COMMAND_LINE.username] * 2
    return rows[1], rows[0]  # oldest first


def test_every_account_change_is_audited_and_no_password_or_hash_is_kept(chain: Chain) -> None:
    staff.create(chain, ROOT, "bob", Role.viewer, PASSWORD, "new accountant")
    staff.set_role(chain, ROOT, "bob", Role.operator, "takes payments now")
    staff.set_disabled(chain, ROOT, "bob", True, "left the company")
    staff.set_disabled(chain, ROOT, "bob", False, "came back")
    staff.set_password(chain, ROOT, "bob", PASSWORD + "2", "forgot it")
    rows = trail(chain, staff="root")
    assert [(r["action"], r["reason"]) for r in rows] == [
        ("staff.password", "forgot it"), ("staff.enable", "came back"),
        ("staff.disable", "left the company"), ("staff.role", "takes payments now"),
        ("staff.add", "new accountant")]
    assert rows[3]["changes"] == [("role", "viewer", "operator")]
    assert rows[2]["changes"] == [("disabled", False, True)]
    assert {r["subject_kind"] for r in rows} == {"staff"} and {r["role"] for r in rows} == {
        "administrator"}
    stored = chain.db.all("SELECT before, after FROM audit")
    text = json.dumps([tuple(r) for r in stored])
    assert PASSWORD not in text and "scrypt" not in text


def test_the_last_active_administrator_stays(chain: Chain) -> None:
    before = trail(chain)
    with pytest.raises(Conflict, match="last active administrator"):
        staff.set_role(chain, ROOT, "root", Role.operator)
    with pytest.raises(Conflict, match="last active administrator"):
        staff.set_disabled(chain, ROOT, "root", True)
    with pytest.raises(Conflict), chain.db.write() as conn:
        staff.add(conn, "root", PASSWORD, replace=True, role=Role.viewer)
    assert staff.role(chain.db, "root") is Role.administrator and trail(chain) == before
    staff.create(chain, ROOT, "deputy", Role.administrator, PASSWORD)
    staff.set_role(chain, ROOT, "root", Role.operator, "stepping down")
    assert staff.role(chain.db, "root") is Role.operator


def test_disabling_ends_sessions_and_enabling_again_does_not_revive_them(chain: Chain) -> None:
    staff.create(chain, ROOT, "bob", Role.operator, PASSWORD)
    generation = staff.authenticate(chain.db, "bob", PASSWORD)
    assert generation is not None and staff.session_gen(chain.db, "bob") == generation
    staff.set_disabled(chain, ROOT, "bob", True)
    assert staff.session_gen(chain.db, "bob") is None and staff.role(chain.db, "bob") is None
    assert staff.authenticate(chain.db, "bob", PASSWORD) is None
    staff.set_disabled(chain, ROOT, "bob", False)
    assert staff.session_gen(chain.db, "bob") not in (None, generation)  # old cookies stay dead


def test_bad_account_input_is_refused_and_changes_nothing(chain: Chain) -> None:
    before = (staff.accounts(chain), trail(chain))
    for call in (lambda: staff.create(chain, ROOT, "-rf", Role.viewer, PASSWORD),
                 lambda: staff.create(chain, ROOT, "bob", Role.viewer, "short"),
                 lambda: staff.set_password(chain, ROOT, "root", "short")):
        with pytest.raises(InvalidRequest):
            call()
    with pytest.raises(Conflict):
        staff.create(chain, ROOT, "root", Role.viewer, PASSWORD)
    with pytest.raises(NotFound):
        staff.set_role(chain, ROOT, "nobody", Role.viewer)
    assert (staff.accounts(chain), trail(chain)) == before


def test_a_bank_payment_by_staff_is_audited_with_the_fact_it_recorded(chain: Chain) -> None:
    (inv,) = invoices.invoices(chain)
    invoices.pay_at_bank(chain, inv["number"], 5_000, "STMT-9 0001", by=ALICE)
    (row,) = trail(chain, staff="alice")
    assert row["action"] == "invoice.bank_payment" and row["role"] == "operator"
    assert (row["subject_kind"], row["subject"]) == ("invoice", inv["number"])
    assert row["customer_id"] == inv["customer_id"]
    assert row["changes"] == [("bank_reference", None, "STMT-9 0001"),
                              ("paid_amount", 0, 5_000)]
    assert row["reason"] == "paid 50.00 at the bank, statement STMT-9 0001"
    fact = chain.db.one("SELECT type, outlet_id, event FROM events WHERE event_id = ?",
                        (row["event_id"],))
    assert fact is not None
    assert fact["type"] == "credit.repaid" and fact["outlet_id"] == "HQ"
    assert "alice" not in fact["event"]  # the fact's body is as the contract fixes it
    invoices.pay_at_bank(chain, inv["number"], 7_000, "STMT-9 0002", by=ALICE)
    paid = trail(chain, staff="alice")[0]
    assert ("status", "unpaid", "paid") in paid["changes"]
    assert audit.shown("paid_amount", 12_000) == "120.00"


def test_a_refused_payment_leaves_no_audit_row(chain: Chain) -> None:
    (inv,) = invoices.invoices(chain)
    with pytest.raises(Overpayment):
        invoices.pay_at_bank(chain, inv["number"], 12_001, "STMT-X", by=ALICE)
    assert trail(chain, staff="alice") == []


def test_resolving_a_flag_is_audited_for_its_customer(chain: Chain) -> None:
    (flag,) = ingest.flags(chain)
    admin.resolve_flag(chain, int(str(flag["flag_id"])), "told the outlet", by=ALICE)
    (row,) = trail(chain, action="flag.resolve")
    assert row["reason"] == "told the outlet" and row["customer_id"] == flag["customer_id"]
    assert [c[0] for c in row["changes"]] == ["detail", "resolved_at"]
    assert str(row["changes"][0][2]).endswith("[alice] told the outlet")


def test_the_trail_is_searchable_per_customer_staff_action_and_period(chain: Chain) -> None:
    (inv,) = invoices.invoices(chain)
    (flag,) = ingest.flags(chain)
    invoices.pay_at_bank(chain, inv["number"], 1_000, "STMT-1", by=ALICE)
    admin.resolve_flag(chain, int(str(flag["flag_id"])), "ok", by=Actor("bob", Role.operator))
    staff.create(chain, ROOT, "carol", Role.viewer, PASSWORD)
    assert [r["action"] for r in trail(chain, customer_id=inv["customer_id"])] == [
        "invoice.bank_payment"]
    assert [r["action"] for r in trail(chain, staff="bob")] == ["flag.resolve"]
    assert [r["subject"] for r in trail(chain, action="staff.add")] == ["carol", "root"]
    today = datetime.now(UTC).date()
    assert len(trail(chain, date_from=today.isoformat(), date_to=today.isoformat())) == 4
    assert trail(chain, date_to=(today - timedelta(days=1)).isoformat()) == []
    with pytest.raises(InvalidRequest, match="From: enter a date"):
        trail(chain, date_from="2026-13-01")
    assert audit.choices(chain)["people"] == sorted(["alice", "bob", COMMAND_LINE.username, "root"])


def test_only_desk_accounts_reach_the_outlets_and_only_as_hashes(chain: Chain) -> None:
    staff.create(chain, ROOT, "bob", Role.operator, PASSWORD)
    staff.create(chain, ROOT, "clerk", Role.desk, PASSWORD)
    with chain.db.read() as conn:
        sent = conn.execute("SELECT key, urgent FROM changes WHERE kind = ?",
                            (DESK_ACCOUNT_KIND,)).fetchall()
        assert [tuple(r) for r in sent] == [("clerk", 1)]  # no back-office name leaves HQ
        doc = feed.render(conn, DESK_ACCOUNT_KIND, "clerk")
        assert feed.render(conn, DESK_ACCOUNT_KIND, "bob") is None
    assert doc is not None and set(doc) == {"username", "role", "password_hash", "session_gen"}
    assert doc["password_hash"].startswith("scrypt$") and PASSWORD not in json.dumps(doc)
    staff.set_role(chain, ROOT, "clerk", Role.viewer)  # no longer a desk account: withdrawn
    with chain.db.read() as conn:
        assert feed.render(conn, DESK_ACCOUNT_KIND, "clerk") is None
    seq = chain.db.scalar("SELECT seq FROM changes WHERE kind = ? AND key = 'clerk'",
                          (DESK_ACCOUNT_KIND,))
    page = feed.pull(chain, "A", seq - 1)
    assert [(c.kind, c.key, c.data) for c in page.changes] == [(DESK_ACCOUNT_KIND, "clerk", None)]
