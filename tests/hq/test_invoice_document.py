"""The invoice as a document (issue 13, item 2): the PDF read back with poppler, its EPC
QR code read back with zbar, the command and the admin API that serve it. The invoice as
printed is saved under tests/artefacts/invoices/ (PDF and PNG, not in git)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hqkit import STORES
from invoicekit import OUTLET, Buyer, make_hq, pdf_text, qr_of, with_payee
from testkit.processes import cli

from hq import credentials, invoicedoc, invoices, settings
from hq.api import create_app
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from schema.errors import InvalidRequest

ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts" / "invoices"
ZIGA = Buyer("Žiga", "Novak", address="Slovenska cesta 1; 1000 Ljubljana",
             sales=(1045, 2045, 3045, 4045, 5045))


@pytest.fixture(params=STORES)
def hq(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Chain, str]]:
    """HQ with Žiga's October invoiced, on each store (hqkit.STORES)."""
    url = request.getfixturevalue("hq_pg") if request.param == "postgresql" else None
    chain, numbers = make_hq(tmp_path / "hq.db", [ZIGA], url)
    yield chain, numbers[ZIGA.customer_id]
    chain.close()


def test_the_pdf_shows_number_dates_amount_term_period_purchases_and_reference(
        hq: tuple[Chain, str], tmp_path: Path) -> None:
    chain, number = hq
    with_payee(chain)
    pdf = invoicedoc.render(chain, number)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)  # for people to look at (not in git)
    (ARTEFACTS / f"invoice-{number}.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-singlefile",
                    str(ARTEFACTS / f"invoice-{number}.pdf"),
                    str(ARTEFACTS / f"invoice-{number}")], check=True, timeout=30)
    text = pdf_text(pdf, tmp_path)
    words = " ".join(text.split())
    for shown in (f"Invoice {number}", "Žiga Novak", "Slovenska cesta 1", "1000 Ljubljana",
                  "Issue date 2026-11-01", "Period 2026-10-01 to 2026-10-31",
                  "Payment term 14 days: due on 2026-11-15", "Amount EUR 152.25",
                  "Payment reference RF42 2026 0000 01", "Purchases on this invoice (5)",
                  f"2026-10-02 {OUTLET} 10.45", f"2026-10-06 {OUTLET} 50.45", "Total 152.25",
                  "Zvestoba d.o.o.", "IBAN SI56 1910 0000 0123 438", "BIC BAKOSI2X"):
        assert shown in words, f"{shown!r} not in the PDF:\n{text}"
    assert invoices.payment_reference(number) == "RF422026000001"


def test_the_qr_code_is_an_epc_transfer_of_what_is_still_owed(
        hq: tuple[Chain, str], tmp_path: Path) -> None:
    chain, number = hq
    with_payee(chain)
    assert qr_of(invoicedoc.render(chain, number), tmp_path) == "\n".join([
        "BCD", "002", "1", "SCT", "BAKOSI2X", "Zvestoba d.o.o.", "SI56191000000123438",
        "EUR152.25", "", "RF422026000001", "", f"Invoice {number}"])

    invoices.pay_at_bank(chain, number, 5225, "STMT-1 0001", by=COMMAND_LINE)
    part = invoicedoc.render(chain, number)
    assert "EUR100.00" in (qr_of(part, tmp_path) or "").splitlines()
    words = " ".join(pdf_text(part, tmp_path).split())
    assert "Paid so far EUR 52.25" in words and "Still to pay EUR 100.00" in words


def test_a_paid_invoice_and_an_invoice_without_payee_settings_have_no_qr_code(
        hq: tuple[Chain, str], tmp_path: Path) -> None:
    chain, number = hq
    unset = invoicedoc.render(chain, number)
    assert qr_of(unset, tmp_path) is None
    words = " ".join(pdf_text(unset, tmp_path).split())
    assert "Quote the payment reference" in words
    assert "Payment reference RF42 2026 0000 01" in words
    assert "IBAN" not in words

    with_payee(chain)
    invoices.pay_at_bank(chain, number, 15225, "STMT-1 0002", by=COMMAND_LINE)
    paid = invoicedoc.render(chain, number)
    assert qr_of(paid, tmp_path) is None
    assert "Paid. Thank you." in pdf_text(paid, tmp_path)


def test_names_in_any_european_script_print_as_written(tmp_path: Path) -> None:
    buyers = [Buyer("Ελένη", "Παπαδοπούλου"), Buyer("Юлия", "Иванова"),
              Buyer("Łukasz", "Żółć", address="ul. Świętokrzyska 5; 00-001 Warszawa")]
    chain, numbers = make_hq(tmp_path / "hq.db", buyers)
    try:
        for buyer in buyers:
            text = pdf_text(invoicedoc.render(chain, numbers[buyer.customer_id]), tmp_path)
            assert f"{buyer.given_name} {buyer.surname}" in text
        assert "ul. Świętokrzyska 5" in text
    finally:
        chain.close()


def test_the_same_invoice_in_the_same_state_is_the_same_pdf(hq: tuple[Chain, str]) -> None:
    chain, number = hq
    with_payee(chain)
    assert invoicedoc.render(chain, number) == invoicedoc.render(chain, number)


def test_payee_settings_are_checked_when_set_and_a_bad_one_changes_nothing(
        hq: tuple[Chain, str]) -> None:
    chain, _ = hq
    with pytest.raises(InvalidRequest, match="payee.iban: 'SI56 1910 0000 0123 439': the"
                       " IBAN's check digits do not match"):
        settings.change(chain, {"payee.name": "X", "payee.iban": "SI56 1910 0000 0123 439"})
    with pytest.raises(InvalidRequest, match="smtp.port"):
        settings.change(chain, {"smtp.port": "70000"})
    with pytest.raises(InvalidRequest, match="no setting 'payee.ibna'"):
        settings.change(chain, {"payee.ibna": "x"})
    assert set(settings.shown(chain).values()) == {"-"}


def test_invoice_pdf_command_writes_the_pdf_and_refuses_an_unknown_invoice(
        hq: tuple[Chain, str], tmp_path: Path) -> None:
    chain, number = hq
    db = chain.db.where
    done = cli("hq", "invoice-pdf", "--db", db, number, "--out", str(tmp_path / "i.pdf"))
    assert done.returncode == 0, done.stderr
    assert f"Invoice {number}" in pdf_text((tmp_path / "i.pdf").read_bytes(), tmp_path)
    missing = cli("hq", "invoice-pdf", "--db", db, "2026-999999", "--out",
                  str(tmp_path / "x.pdf"))
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error [not_found]: no invoice 2026-999999"
    assert not (tmp_path / "x.pdf").exists()


def test_settings_command_takes_the_password_on_stdin_only_and_never_shows_it(
        hq: tuple[Chain, str]) -> None:
    chain, _ = hq
    db = chain.db.where
    refused = cli("hq", "settings", "--db", db, "--set", "smtp.password=hunter2")
    assert refused.returncode == 1 and "stdin" in refused.stderr
    done = cli("hq", "settings", "--db", db, "--set", "smtp.host=mail.example.com",
               "--set", "smtp.user=club", "--smtp-password-stdin", input="s3cret pass\n")
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    shown = dict(line.split(None, 1) for line in done.stdout.splitlines())
    assert shown["smtp.password"] == "(set)" and shown["smtp.host"] == "mail.example.com"
    bad = cli("hq", "settings", "--db", db, "--set", "payee.iban=DE00 0000")
    assert bad.returncode == 1
    assert bad.stderr.startswith("error [invalid_request]: payee.iban: 'DE00 0000' is not an"
                                 " IBAN")
    with chain.db.read() as conn:
        stored = settings.smtp(conn)
    assert stored is not None and stored.password.get_secret_value() == "s3cret pass"
    assert "s3cret" not in repr(stored)


def test_the_admin_api_answers_with_the_payment_reference_and_serves_the_pdf(
        hq: tuple[Chain, str]) -> None:
    chain, number = hq
    with chain.db.write() as conn:
        token = credentials.add_admin(conn, "test")
    client = TestClient(create_app(chain), headers={"Authorization": f"Bearer {token}"})
    one = client.get(f"/v1/admin/invoices/{number}").json()
    assert one["payment_reference"] == "RF422026000001"
    listed = client.get("/v1/admin/invoices").json()
    assert [i["payment_reference"] for i in listed] == ["RF422026000001"]
    pdf = client.get(f"/v1/admin/invoices/{number}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == invoicedoc.render(chain, number)
    missing = client.get("/v1/admin/invoices/2026-999999/pdf")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
