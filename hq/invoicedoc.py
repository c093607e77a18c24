"""A consolidated invoice as a document: one PDF, printable at head office and the desk and
attached to the "invoice issued" e-mail (docs/invoices.md).

It shows what the seeds list - number, issue date, amount, payment term and due date, the
period, every purchase on it (date, outlet, amount), every return credited on it (date,
outlet, the sale's receipt reference, a negative amount) - and how to pay: the RF creditor
reference (`banking.creditorref.for_invoice`) and, once HQ's payee settings are complete
(hq/settings.py), the bank account and an EPC QR code ("GiroCode", EPC069-12) drawn as
vector squares, so a banking app fills in account, amount and reference. The QR pays what
is still owed; an invoice that is paid shows no QR. Text is set in DejaVu Sans, shipped in
hq/fonts (Latin, Greek and Cyrillic): `Žiga Čeh`, `Ærøskøbing`, `Ελένη`, `Юлия` print as
written; nothing is fetched. Written with fpdf2 (pure Python, on Pillow, defusedxml and
fontTools; TrueType subsetting built in), the QR matrix made by segno.
Promises: the same invoice in the same state gives the same bytes (the PDF's dates are the
invoice's issue date, not the clock). Must never: read the wall clock or the network.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from banking import creditorref
from banking.payee import Payee, epc_qr, printed_iban
from hq import invoices, settings
from hq.chain import Chain
from schema.customerstore import display_name
from schema.money import money

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
QR_SIZE_MM = 40.0  # with its quiet zone; banking apps read it easily from paper
_GREY = (90, 90, 90)


def render(chain: Chain, number: str) -> bytes:
    """The PDF of invoice `number` as it stands now (`not_found` if there is none): what
    `loyalty hq invoice-pdf`, the back office and the desk print and the mail attaches."""
    doc = invoices.invoice(chain, number)
    with chain.db.read() as conn:
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                           (doc["customer_id"],)).fetchone()
        customer = {"customer_id": doc["customer_id"], **(dict(row) if row else {})}
        return document(doc, customer, settings.payee(conn))


def epc_text(invoice: dict[str, Any], payee: Payee | None) -> str | None:
    """The EPC QR text paying what `invoice` still owes, or None (no payee set, nothing
    owed, or not in euro)."""
    owed = invoice["amount"] - invoice["paid_amount"]
    if payee is None or owed <= 0 or invoices.CURRENCY != "EUR":
        return None
    return epc_qr(payee, owed, invoices.CURRENCY, invoice["payment_reference"],
                  f"Invoice {invoice['number']}")


def last_day(invoice: dict[str, Any]) -> date:
    """The period's last day (`period_to` is the first day after it)."""
    return date.fromisoformat(invoice["period_to"]) - timedelta(days=1)


def document(invoice: dict[str, Any], customer: dict[str, Any], payee: Payee | None) -> bytes:
    """The PDF of `invoice` (as `hq.invoices.invoice` answers) for `customer` (a customers
    row) payable to `payee`."""
    pdf = _Pdf(invoice["number"], payee)
    pdf.set_creation_date(datetime.fromisoformat(invoice["issued_on"]).replace(tzinfo=UTC))
    pdf.set_title(f"Invoice {invoice['number']}")
    pdf.set_author(payee.name if payee else "Loyalty club")
    pdf.add_page()
    currency = invoices.CURRENCY
    top = pdf.get_y()

    pdf.set_font(FONT, "B", 10)
    pdf.cell(100, 5, "Bill to", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    lines = [display_name(customer) or customer["customer_id"]]
    if customer.get("kind") == "organisation" and customer.get("contact_person"):
        lines.append(f"Attn. {customer['contact_person']}")
    lines += [part.strip() for part in (customer.get("address") or "").replace(";", "\n")
              .splitlines() if part.strip()]
    for line in lines:
        pdf.cell(100, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)

    owed = invoice["amount"] - invoice["paid_amount"]
    term = (date.fromisoformat(invoice["due_on"]) - date.fromisoformat(invoice["issued_on"]))
    facts = [
        ("Invoice number", invoice["number"]),
        ("Issue date", invoice["issued_on"]),
        ("Period", f"{invoice['period_from']} to {last_day(invoice).isoformat()}"),
        ("Payment term", f"{term.days} days: due on {invoice['due_on']}"),
        ("Amount", f"{currency} {money(invoice['amount'])}"),
    ]
    if invoice["paid_amount"]:
        facts += [("Paid so far", f"{currency} {money(invoice['paid_amount'])}"),
                  ("Still to pay", f"{currency} {money(max(owed, 0))}")]
    facts.append(("Payment reference", creditorref.printed(invoice["payment_reference"])))
    for label, value in facts:
        pdf.set_font(FONT, "", 10)
        pdf.cell(38, 6, label)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(62, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    after_facts = pdf.get_y()

    _how_to_pay(pdf, invoice, payee, owed, top)
    pdf.set_y(max(after_facts, pdf.get_y()) + 6)

    pdf.set_font(FONT, "B", 11)
    count = len(invoice["items"])
    credits = invoice.get("credits", [])
    pdf.cell(0, 7, f"Purchases on this invoice ({count})", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    with pdf.table(col_widths=(40, 90, 40), text_align=("LEFT", "LEFT", "RIGHT"),
                   line_height=6, first_row_as_headings=True) as table:
        table.row(("Date", "Outlet", f"Amount ({currency})"))
        for item in invoice["items"]:
            table.row((item["at"][:10], item["outlet_id"], money(item["amount"])))
        if credits:
            table.row(("", "Purchases", money(sum(i["amount"] for i in invoice["items"]))))
        else:
            table.row(("", "Total", money(invoice["amount"])))
    if credits:  # returns' credit refunds, each naming its sale's receipt (docs/invoices.md)
        pdf.ln(3)
        pdf.set_font(FONT, "B", 11)
        pdf.cell(0, 7, f"Returns credited on this invoice ({len(credits)})",
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 10)
        with pdf.table(col_widths=(40, 90, 40), text_align=("LEFT", "LEFT", "RIGHT"),
                       line_height=6, first_row_as_headings=True) as table:
            table.row(("Date", "Returned at, for the sale", f"Amount ({currency})"))
            for credit in credits:
                table.row((credit["at"][:10],
                           f"{credit['outlet_id']}, receipt {credit['receipt_reference']}",
                           money(credit["amount"])))
            table.row(("", "Total", money(invoice["amount"])))
    return bytes(pdf.output())


def _how_to_pay(pdf: FPDF, invoice: dict[str, Any], payee: Payee | None, owed: int,
                top: float) -> None:
    """The right-hand box: the account and the QR code, or why there is none."""
    x = 120.0
    pdf.set_xy(x, top)
    pdf.set_font(FONT, "B", 10)
    if owed <= 0:
        pdf.cell(70, 5, "Paid. Thank you.", new_x=XPos.LEFT, new_y=YPos.NEXT)
        return
    pdf.cell(70, 5, "How to pay", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    reference = creditorref.printed(invoice["payment_reference"])
    if payee is None:
        pdf.multi_cell(70, 4.5, f"Quote the payment reference {reference} with your payment"
                       " so it reaches this invoice.", align="L")
        return
    for line in (payee.name, f"IBAN {printed_iban(payee.iban)}",
                 f"BIC {payee.bic}" if payee.bic else "", f"Reference {reference}"):
        if line:
            pdf.cell(70, 4.5, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
    text = epc_text(invoice, payee)
    if text is None:
        return
    y = pdf.get_y() + 2
    _qr(pdf, text, x, y, QR_SIZE_MM)
    pdf.set_xy(x + QR_SIZE_MM + 2, y + QR_SIZE_MM / 2 - 7)
    pdf.set_text_color(*_GREY)
    pdf.set_font(FONT, "", 8)
    pdf.multi_cell(70 - QR_SIZE_MM - 2, 3.5, "Scan with your banking app: account, amount"
                   " and reference are filled in.", align="L")
    pdf.set_text_color(0, 0, 0)
    pdf.set_xy(pdf.l_margin, y + QR_SIZE_MM)


def _qr(pdf: FPDF, text: str, x: float, y: float, size: float) -> None:
    """The EPC QR code (error correction M, as EPC069-12 asks) as filled squares: sharp at
    any zoom and in print; each dark run of a row is one rectangle."""
    code = segno.make(text, error="m", micro=False, boost_error=False)
    rows = [list(row) for row in code.matrix_iter(scale=1, border=4)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(x + start * module, y + r * module, (c - start) * module, module,
                     style="F")


class _Pdf(FPDF):
    """A4 with the chain's name and the invoice number on every page, page numbers below."""

    def __init__(self, number: str, payee: Payee | None) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.number = number
        self.payee = payee
        self.add_font(FONT, "", str(FONTS / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
        self.set_margins(20, 18, 20)
        self.set_auto_page_break(True, margin=20)

    def header(self) -> None:
        self.set_font(FONT, "B", 15)
        self.cell(110, 9, self.payee.name if self.payee else "Loyalty club")
        self.set_font(FONT, "B", 15)
        self.cell(0, 9, f"Invoice {self.number}", align="R", new_x=XPos.LMARGIN,
                  new_y=YPos.NEXT)
        self.set_draw_color(160, 160, 160)
        self.line(self.l_margin, self.get_y() + 1, self.w - self.r_margin, self.get_y() + 1)
        self.ln(7)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_font(FONT, "", 8)
        self.set_text_color(*_GREY)
        self.cell(0, 5, f"Invoice {self.number} - page {self.page_no()} of {{nb}}",
                  align="C")
        self.set_text_color(0, 0, 0)
