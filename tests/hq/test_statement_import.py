"""Bank statements imported at HQ (issue 13, item 5): camt.053 and MT940 files written by
tests/banking/statementkit.py, imported through `loyalty hq import-statement` and the admin
API, stamping HQ's invoices with the same payment facts as the bank-payment form."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hqkit import ON_POSTGRES, STORES, at_once
from invoicekit import Buyer, make_hq
from testkit.processes import cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "banking"))

from statementkit import Line, Ntry, Tx, camt053, mt940

from hq import credentials, invoices, statements
from hq.api import create_app
from hq.audit import COMMAND_LINE
from hq.chain import Chain

MUELLER = Buyer("Jürgen", "Müller", sales=(123_450,))
SVENSSON = Buyer("Anna", "Svensson", sales=(30_000,))
ZOLC = Buyer("Łukasz", "Żółć", sales=(15_000,))
KOVAC = Buyer("Ana", "Kovač", sales=(8_000,))


@pytest.fixture(params=STORES)
def hq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Chain, dict[str, str]]]:
    """HQ with October invoiced, on each store (hqkit.STORES)."""
    url = request.getfixturevalue("hq_pg") if request.param == "postgresql" else None
    chain, numbers = make_hq(tmp_path / "hq.db", [MUELLER, SVENSSON, ZOLC, KOVAC], url)
    named = {b.surname: numbers[b.customer_id] for b in (MUELLER, SVENSSON, ZOLC, KOVAC)}
    yield chain, named
    chain.close()


def march(numbers: dict[str, str]) -> bytes:
    """A statement of 15 March: a payment by structured reference, a part payment by
    reference in the text, an overpayment, one by amount and name only, a reference to no
    invoice of ours, the bank's fee and a reversal."""
    ref = invoices.payment_reference
    return camt053(8, [
        Ntry("1234.5", ntry_ref="1", acct_svcr_ref="2026031500001", txs=[
            Tx(ref=ref(numbers["Müller"]), debtor="Jürgen Müller", ustrd="Rechnung")]),
        Ntry("100.00", ntry_ref="2", acct_svcr_ref="2026031500002", txs=[
            Tx(debtor="Anna Svensson",
               ustrd=f"part of {ref(numbers['Svensson'])[:4]} {ref(numbers['Svensson'])[4:]}")]),
        Ntry("200.00", ntry_ref="3", acct_svcr_ref="2026031500003", txs=[
            Tx(ref=ref(numbers["Żółć"]), debtor="Łukasz Żółć")]),
        Ntry("80.00", ntry_ref="4", acct_svcr_ref="2026031500004", txs=[
            Tx(debtor="KOVAC ANA")]),
        Ntry("55.00", ntry_ref="5", acct_svcr_ref="2026031500005", txs=[
            Tx(ref="RF18539007547034", debtor="Somebody Else")]),
        Ntry("25.00", direction="DBIT", ntry_ref="6", acct_svcr_ref="2026031500006", txs=[
            Tx(ustrd="Kontofuehrung 03/2026")]),
        Ntry("50.00", direction="DBIT", reversal=True, ntry_ref="7",
             acct_svcr_ref="2026031500007", txs=[Tx(ref=ref(numbers["Müller"]))]),
    ], opening="5000.00")


def state(chain: Chain) -> dict[str, Any]:
    """Everything an import may change."""
    with chain.db.read() as conn:
        return {
            "invoices": conn.execute("SELECT number, paid_amount, status, paid_via,"
                                     " bank_reference FROM invoices ORDER BY number").fetchall(),
            "events": conn.execute("SELECT COUNT(*) FROM events").fetchone()[0],
            "entries": conn.execute("SELECT * FROM statement_entries ORDER BY entry_id")
            .fetchall(),
            "changes": conn.execute("SELECT MAX(seq) FROM changes").fetchone()[0],
        }


def group(stdout: str, title: str) -> list[str]:
    """The lines listed under a group's title in the command's output."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    return [line for line in lines[start + 1:] if line.startswith("  #")][
        :int(lines[start].rsplit("(", 1)[1].rstrip(")"))]


def test_a_camt053_import_stamps_what_it_can_and_lists_the_rest(
        hq: tuple[Chain, dict[str, str]], tmp_path: Path) -> None:
    chain, numbers = hq
    statement = tmp_path / "camt053-20260315.xml"
    statement.write_bytes(march(numbers))
    done = cli("hq", "import-statement", "--db", chain.db.where, str(statement))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.splitlines()[0] == ("statement STMT-20260315-001 (camt.053), account"
                                   " DE89370400440532013000, EUR, 2026-03-15..2026-03-15:"
                                   " 7 entries")
    stamped = group(out, "stamped paid")
    assert len(stamped) == 2
    assert f"-> {numbers['Müller']} 1,234.50" in stamped[0]
    assert f"-> {numbers['Svensson']} 100.00" in stamped[1] and "(part payment)" in stamped[1]
    [suggested] = group(out, "suggested")
    assert "KOVAC ANA" in suggested and f"-> {numbers['Kovač']}" in suggested
    [over] = group(out, "overpayments")
    assert "200.00 EUR" in over and "still owes 150.00" in over
    [unmatched] = group(out, "not matched")
    assert "RF18539007547034 names no open invoice" in unmatched
    assert len(group(out, "not payments")) == 2
    assert out.splitlines()[-1] == ("2 stamped, 1 suggested, 1 overpaid, 1 not matched,"
                                    " 2 not payments, 0 already imported")

    paid = invoices.invoice(chain, numbers["Müller"])
    assert (paid["status"], paid["paid_amount"], paid["paid_via"]) == ("paid", 123_450, "bank")
    assert paid["bank_reference"] == "STMT-20260315-001 2026031500001"
    part = invoices.invoice(chain, numbers["Svensson"])
    assert (part["status"], part["paid_amount"]) == ("unpaid", 10_000)
    for untouched in ("Żółć", "Kovač"):
        assert invoices.invoice(chain, numbers[untouched])["paid_amount"] == 0
    facts = chain.db.all("SELECT outlet_id, event FROM events WHERE type = 'credit.repaid'")
    assert [f["outlet_id"] for f in facts] == ["HQ", "HQ"]  # the bank-payment form's fact


def test_importing_the_same_statement_again_changes_nothing(
        hq: tuple[Chain, dict[str, str]], tmp_path: Path) -> None:
    chain, numbers = hq
    statement = tmp_path / "statement.xml"
    statement.write_bytes(march(numbers))
    assert cli("hq", "import-statement", "--db", chain.db.where, str(statement)).returncode == 0
    before = state(chain)
    again = cli("hq", "import-statement", "--db", chain.db.where, str(statement))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == ("0 stamped, 0 suggested, 0 overpaid,"
                                             " 0 not matched, 0 not payments, 7 already"
                                             " imported")
    assert state(chain) == before


@pytest.mark.parametrize("hq", [ON_POSTGRES], indirect=True)
def test_one_statement_imported_twice_at_once_stamps_once_and_the_other_is_already_imported(
        hq: tuple[Chain, dict[str, str]]) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once) import the same file:
    one stamps what it can, the other finds every entry already imported (never an
    overpayment, never a payment twice)."""
    chain, numbers = hq
    data = march(numbers)
    done = at_once(chain, *[lambda: statements.import_statement(chain, data, COMMAND_LINE)] * 2)
    assert all(not isinstance(d, Exception) for d in done), done
    assert sorted(d.counts["duplicate"] for d in done) == [0, 7]
    assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'credit.repaid'") == 2
    # and a clerk's confirmation of the suggested match clicked twice at once: paid once
    [suggested] = [e for d in done for e in d.entries if e.status == "suggested"]
    twice = at_once(chain, *[lambda: statements.confirm(chain, suggested.entry_id,
                                                        by=COMMAND_LINE)] * 2)
    assert all(not isinstance(d, Exception) for d in twice), twice
    assert twice[0] == twice[1]
    assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'credit.repaid'") == 3


def test_a_file_that_cannot_be_read_is_refused_and_changes_nothing(
        hq: tuple[Chain, dict[str, str]], tmp_path: Path) -> None:
    chain, numbers = hq
    before = state(chain)
    truncated = tmp_path / "truncated.xml"
    truncated.write_bytes(march(numbers).replace(b"<Amt Ccy=\"EUR\">80.00</Amt>",
                                                 b"<Amt Ccy=\"EUR\">80.005</Amt>"))
    refused = cli("hq", "import-statement", "--db", chain.db.where, str(truncated))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error [invalid_statement]: statement STMT-20260315-001,"
                                     " entry 4, <Amt>: '80.005' has more decimals than EUR")
    missing = cli("hq", "import-statement", "--db", chain.db.where, str(tmp_path / "none.xml"))
    assert missing.returncode == 1 and missing.stderr.startswith("error [not_found]: no file")
    assert state(chain) == before


def test_a_suggestion_is_stamped_only_when_a_clerk_confirms_it_and_uploads_report_as_json(
        hq: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = hq
    with chain.db.write() as conn:
        token = credentials.add_admin(conn, "clerk")
    client = TestClient(create_app(chain), headers={"Authorization": f"Bearer {token}"})
    uploaded = client.post("/v1/admin/statements", content=march(numbers),
                           headers={"Content-Type": "application/xml"})
    assert uploaded.status_code == 200, uploaded.text
    report = uploaded.json()
    assert report["counts"] == {"matched": 2, "suggested": 1, "overpayment": 1,
                                "unmatched": 1, "not_a_payment": 2, "duplicate": 0}
    [suggested] = [e for e in report["entries"] if e["status"] == "suggested"]
    assert suggested["invoices"] == [numbers["Kovač"]] and suggested["amount"] == 8_000
    assert client.get("/v1/admin/statement-matches").json() == [suggested]
    assert invoices.invoice(chain, numbers["Kovač"])["paid_amount"] == 0

    wrong = client.post(f"/v1/admin/statement-matches/{suggested['entry_id']}/confirm",
                        json={"invoice": numbers["Müller"]})
    assert wrong.status_code == 422 and "was not suggested" in wrong.json()["error"]["message"]
    confirmed = client.post(f"/v1/admin/statement-matches/{suggested['entry_id']}/confirm")
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "matched"
    kovac = invoices.invoice(chain, numbers["Kovač"])
    assert kovac["status"] == "paid"
    assert kovac["bank_reference"] == "STMT-20260315-001 2026031500004"
    audited = chain.db.all("SELECT staff, subject FROM audit WHERE action = "
                           "'invoice.bank_payment' ORDER BY audit_id")
    assert [tuple(r) for r in audited][-1] == ("api:clerk", numbers["Kovač"])
    events = chain.db.scalar("SELECT COUNT(*) FROM events")
    again = client.post(f"/v1/admin/statement-matches/{suggested['entry_id']}/confirm")
    assert again.status_code == 200 and chain.db.scalar("SELECT COUNT(*) FROM events") == events
    assert client.get("/v1/admin/statement-matches").json() == []
    [over] = [e for e in report["entries"] if e["status"] == "overpayment"]
    not_suggested = client.post(f"/v1/admin/statement-matches/{over['entry_id']}/confirm")
    assert not_suggested.status_code == 409
    assert not_suggested.json()["error"]["code"] == "conflict"
    assert client.post("/v1/admin/statement-matches/999/confirm").status_code == 404

    bad = client.post("/v1/admin/statements", content=b"%PDF-1.4 not a statement")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_statement"


def test_an_mt940_file_pays_the_rest_and_the_same_booking_in_camt053_is_already_imported(
        hq: tuple[Chain, dict[str, str]], tmp_path: Path) -> None:
    chain, numbers = hq
    rest = invoices.payment_reference(numbers["Svensson"])
    (tmp_path / "mt940.sta").write_text(mt940([Line(
        "C", "300,00", bank_reference="2026031600001",
        details=f"/EREF/E2E-1/REMI/STRD/CUR/{rest}/NAME/Anna Svensson/")]))
    done = cli("hq", "import-statement", "--db", chain.db.where, str(tmp_path / "mt940.sta"))
    assert done.returncode == 0, done.stderr
    assert invoices.invoice(chain, numbers["Svensson"])["status"] == "paid"
    again = camt053(8, [Ntry("300.00", acct_svcr_ref="2026031600001", direction="CRDT",
                             txs=[Tx(ref=rest, debtor="Anna Svensson")])])
    (tmp_path / "camt.xml").write_bytes(again)
    later = cli("hq", "import-statement", "--db", chain.db.where, str(tmp_path / "camt.xml"))
    assert later.returncode == 0, later.stderr
    assert later.stdout.splitlines()[-1].endswith("1 already imported")
    assert invoices.invoice(chain, numbers["Svensson"])["paid_amount"] == 30_000
