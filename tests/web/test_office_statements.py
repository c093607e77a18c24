"""The bank statement page of HQ's back office (issue 13, item 5; hq/office/statements.py),
in process over a real HQ file: an operator uploads the camt.053 statement of
tests/hq/test_statement_import.py (`march`), sees what was read, what was stamped paid,
the suggestions to confirm with their reason, and what was not matched; the same file
again changes nothing and says so; a file that cannot be read shows `invalid_statement`
and changes nothing; a confirmation is one click, stamps the invoice like the admin API
does and is audited with the operator's name; a viewer may not upload."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hq"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "banking"))

from invoicekit import Buyer, make_hq
from statementkit import mt940
from test_statement_import import march, state
from testkit.office import PASSWORD, csrf_of, signed_in

from hq import invoices, staff
from hq.chain import Chain
from schema.roles import Role

BUYERS = (("Jürgen", "Müller", 123_450), ("Anna", "Svensson", 30_000),
          ("Łukasz", "Żółć", 15_000), ("Ana", "Kovač", 8_000))


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def bank(request: pytest.FixtureRequest, tmp_path: Path
         ) -> Iterator[tuple[Chain, dict[str, str]]]:
    buyers = [Buyer(given, surname, sales=(amount,)) for given, surname, amount in BUYERS]
    url = request.getfixturevalue("pg_database") if request.param == "postgresql" else None
    chain, numbers = make_hq(tmp_path / "hq.db", buyers, url)
    with chain.db.write() as conn:
        staff.add(conn, "olga", PASSWORD, role=Role.operator)
        staff.add(conn, "vera", PASSWORD, role=Role.viewer)
    yield chain, {b.surname: numbers[b.customer_id] for b in buyers}
    chain.close()




def upload(client: TestClient, data: bytes, name: str = "camt053-20260315.xml"
           ) -> tuple[int, str]:
    csrf = csrf_of(client, "/office/statements")
    answer = client.post("/office/statements", data={"csrf": csrf},
                         files={"statement": (name, data, "application/xml")})
    return answer.status_code, answer.text


def section(page: str, element_id: str) -> str:
    """The text of the element with this id (up to the next section)."""
    start = page.index(f'id="{element_id}"')
    return page[start:page.find("</section>", start)]


def test_an_uploaded_statement_stamps_what_it_can_and_shows_every_group(
        bank: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = bank
    status, page = upload(signed_in(chain, "olga"), march(numbers))
    assert status == 200, page
    read = section(page, "statement-read")
    assert "STMT-20260315-001" in read and "DE89370400440532013000" in read
    assert "2026-03-15" in read and "camt.053" in read
    assert re.search(r'id="read-entries"[^>]*>7<', read), read
    assert re.search(r'id="read-credits"[^>]*>1,669.50<', read), read  # 1234.50+100+200+80+55
    stamped = section(page, "group-matched")
    assert numbers["Müller"] in stamped and numbers["Svensson"] in stamped
    assert "part payment" in stamped
    suggested = section(page, "group-suggested")
    assert "KOVAC ANA" in suggested and numbers["Kovač"] in suggested
    assert "the amount and the payer&#39;s name fit" in suggested  # the reason, shown
    assert 'class="confirm"' in suggested
    assert "still owes 150.00" in section(page, "group-overpayment")
    assert "RF18539007547034 names no open invoice" in section(page, "group-unmatched")
    assert invoices.invoice(chain, numbers["Müller"])["status"] == "paid"
    assert invoices.invoice(chain, numbers["Kovač"])["paid_amount"] == 0
    stamps = chain.db.all("SELECT staff, subject FROM audit WHERE action = 'invoice.bank_payment'")
    assert sorted(tuple(r) for r in stamps) == sorted(
        [("olga", numbers["Müller"]), ("olga", numbers["Svensson"])])


def test_the_same_statement_again_changes_nothing_and_says_so(
        bank: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = bank
    client = signed_in(chain, "olga")
    assert upload(client, march(numbers))[0] == 200
    before = state(chain)
    status, page = upload(client, march(numbers), "the-same-again.xml")
    assert status == 200
    assert 'id="imported-before"' in page
    assert "imported before: nothing changed" in page
    assert state(chain) == before


def test_a_file_that_cannot_be_read_shows_the_code_and_changes_nothing(
        bank: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = bank
    client = signed_in(chain, "olga")
    before = state(chain)
    broken = march(numbers).replace(b'<Amt Ccy="EUR">80.00</Amt>', b'<Amt Ccy="EUR">80.005</Amt>')
    status, page = upload(client, broken)
    assert status == 422
    error = section(page, "statement-error")
    assert "invalid_statement" in error and "&#39;80.005&#39; has more decimals than EUR" in error
    status, page = upload(client, b"%PDF-1.4 not a statement", "statement.pdf")
    assert status == 422 and "invalid_statement" in section(page, "statement-error")
    status, page = upload(client, b"", "empty.xml")
    assert status == 422 and "invalid_statement" in section(page, "statement-error")
    assert state(chain) == before


def test_a_suggestion_is_confirmed_with_one_click_and_audited(
        bank: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = bank
    client = signed_in(chain, "olga")
    upload(client, march(numbers))
    waiting = client.get("/office/statements").text
    suggested = section(waiting, "waiting")
    assert "KOVAC ANA" in suggested and numbers["Kovač"] in suggested
    action = re.search(r'action="(/office/statements/matches/(\d+)/confirm)"', suggested)
    assert action
    csrf = csrf_of(client, "/office/statements")
    confirmed = client.post(action.group(1), data={"csrf": csrf, "invoice": numbers["Kovač"]},
                            follow_redirects=False)
    assert confirmed.status_code == 303, confirmed.text
    kovac = invoices.invoice(chain, numbers["Kovač"])
    assert (kovac["status"], kovac["bank_reference"]) == ("paid",
                                                          "STMT-20260315-001 2026031500004")
    [row] = chain.db.all("SELECT staff, role, reason FROM audit WHERE subject = ?",
                         (numbers["Kovač"],))
    assert (row["staff"], row["role"]) == ("olga", "operator")
    assert "confirmed" in row["reason"] and f"#{action.group(2)}" in row["reason"]
    after = client.get(confirmed.headers["location"].removeprefix("http://127.0.0.1")).text
    assert 'id="done"' in after and numbers["Kovač"] in after
    assert 'id="waiting"' not in after  # nothing left to confirm
    before = state(chain)
    again = client.post(action.group(1), data={"csrf": csrf, "invoice": numbers["Kovač"]},
                        follow_redirects=False)  # a second click: the same, nothing new
    assert again.status_code == 303 and state(chain) == before


def test_a_viewer_may_not_open_the_page_or_post_a_statement(
        bank: tuple[Chain, dict[str, str]]) -> None:
    chain, numbers = bank
    client = signed_in(chain, "vera")
    page = client.get("/office/statements")
    assert page.status_code == 403
    before = state(chain)
    refused = client.post("/office/statements", data={"csrf": "x"},
                          files={"statement": ("s.xml", march(numbers), "application/xml")})
    assert refused.status_code == 403
    assert state(chain) == before


def test_an_mt940_file_is_read_on_the_same_page(bank: tuple[Chain, dict[str, str]]) -> None:
    chain, _ = bank
    status, page = upload(signed_in(chain, "olga"), mt940().encode(), "STARTUMS.sta")
    assert status == 200, page
    read = section(page, "statement-read")
    assert "STARTUMS" in read and "mt940" in read and "STARTUMS.sta" in page
    assert re.search(r'id="read-entries"[^>]*>7<', read), read
    assert 'id="group-unmatched"' in page  # none of its references is one of our invoices
