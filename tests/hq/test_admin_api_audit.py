"""Every change staff make outside the back office is in the audit trail too (issue 12): the
admin API's master data (put and withdrawn) under the admin token's holder (`api:<label>`),
bank statements imported through the API or `loyalty hq import-statement` (`cli:<user>`)
and a suggested match confirmed, each with what it was before -> after. In process: the
admin API through TestClient, the command through click's runner, on real SQLite files and
on PostgreSQL."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from invoicekit import Buyer, make_hq

from hq import admin, audit, credentials, invoices
from hq import cli as hq_cli
from hq.api import create_app
from hq.chain import Chain

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "banking"))

from statementkit import Ntry, Tx, camt053

HQ_ON_BOTH_STORES = True  # every test on a SQLite file and on PostgreSQL (conftest.py)
ANA = Buyer("Ana", "Kovač", sales=(8_000,))
BOB = Buyer("Bob", "Marley", sales=(5_000,))


@pytest.fixture
def chain(hq_db: str, tmp_path: Path) -> Iterator[Chain]:
    """HQ at `hq_db` (made on SQLite, then moved there when it is PostgreSQL)."""
    url = hq_db if "://" in hq_db else None
    the_chain, _ = make_hq(tmp_path / "made.db" if url else Path(hq_db), [ANA, BOB], url)
    yield the_chain
    the_chain.close()


def client(chain: Chain, label: str) -> TestClient:
    with chain.db.write() as conn:
        token = credentials.add_admin(conn, label)
    return TestClient(create_app(chain), headers={"Authorization": f"Bearer {token}"})


def trail(chain: Chain, **wanted: Any) -> list[dict[str, Any]]:
    return audit.search(chain, audit.Search(**wanted))


def test_master_data_put_and_withdrawn_through_the_admin_api_is_audited_as_the_tokens_holder(
        chain: Chain) -> None:
    api = client(chain, "pricing-script")
    before = admin.master_docs(chain, "category")["A"]
    changed = {**before, "points_per_100": before["points_per_100"] + 5}
    assert api.put("/v1/admin/master/category", json=changed).status_code == 200
    gift = {"sku": "GIFT-CAP", "name": "Cap", "points_cost": 300}
    assert api.put("/v1/admin/master/gift", json=gift).status_code == 200
    assert api.delete("/v1/admin/master/gift/GIFT-CAP").status_code == 204

    [put] = trail(chain, action="category.put")
    assert (put["staff"], put["role"], put["subject_kind"], put["subject"]) == (
        "api:pricing-script", "administrator", "category", "A")
    assert put["changes"] == [("points_per_100", before["points_per_100"],
                               before["points_per_100"] + 5)]
    withdrawn, added = trail(chain, subject=("gift", "GIFT-CAP"))
    assert (added["action"], added["before"], added["after"]) == ("gift.put", None, gift)
    assert (withdrawn["action"], withdrawn["staff"]) == ("gift.delete", "api:pricing-script")
    assert (withdrawn["before"], withdrawn["after"]) == (gift, None)


def test_a_refused_master_document_leaves_no_audit_row(chain: Chain) -> None:
    api = client(chain, "pricing-script")
    assert api.put("/v1/admin/master/gift", json={"sku": "X"}).status_code == 422
    assert api.delete("/v1/admin/master/gift/NOPE").status_code == 404
    assert trail(chain) == []


def statement(numbers: dict[str, str]) -> bytes:
    ref = invoices.payment_reference
    return camt053(9, [
        Ntry("80.00", ntry_ref="1", acct_svcr_ref="2026031600001", txs=[
            Tx(ref=ref(numbers["Kovač"]), debtor="Ana Kovač")]),
        Ntry("50.00", ntry_ref="2", acct_svcr_ref="2026031600002", txs=[
            Tx(debtor="MARLEY BOB")]),
    ], opening="1000.00")


def _numbers(chain: Chain) -> dict[str, str]:
    return {row["surname"]: row["number"] for row in chain.db.all(
        "SELECT c.surname, i.number FROM invoices i JOIN customers c USING (customer_id)")}


def test_a_statement_imported_through_the_api_and_a_confirmed_match_are_audited(
        chain: Chain) -> None:
    api = client(chain, "bank-robot")
    numbers = _numbers(chain)
    report = api.post("/v1/admin/statements", content=statement(numbers)).json()
    [row] = trail(chain, action="statement.import")
    assert (row["staff"], row["subject_kind"]) == ("api:bank-robot", "statement")
    assert row["after"]["stamped"] == [numbers["Kovač"]]
    assert row["after"]["paid_amount"] == 8_000 and row["after"]["suggested"] == 1
    api.post("/v1/admin/statements", content=statement(numbers))  # again: changes nothing
    assert len(trail(chain, action="statement.import")) == 1

    [suggested] = [e for e in report["entries"] if e["status"] == "suggested"]
    assert api.post(f"/v1/admin/statement-matches/{suggested['entry_id']}/confirm"
                    ).status_code == 200
    [confirmed] = trail(chain, action="statement.confirm")
    assert confirmed["staff"] == "api:bank-robot"
    assert confirmed["changes"] == [("invoice", None, numbers["Marley"]),
                                    ("status", "suggested", "matched")]


def test_a_statement_imported_on_the_command_line_is_audited_as_the_users(
        chain: Chain, hq_db: str, tmp_path: Path) -> None:
    file = tmp_path / "march.xml"
    file.write_bytes(statement(_numbers(chain)))
    done = CliRunner().invoke(hq_cli.group(lambda: ()),
                              ["import-statement", "--db", hq_db, str(file)])
    assert done.exit_code == 0, done.output
    [row] = trail(chain, action="statement.import")
    assert row["staff"] == f"cli:{getpass.getuser()}"
    assert row["subject"] == "STMT-20260316-001" or row["subject"].startswith("STMT")
