"""HQ databases with customers and consolidated invoices, made through HQ's own ingest, for
the invoice document, mail and bank statement tests (tests/hq).

`Buyer`: a customer (name, e-mail, consent, postal address) and the credit purchases it
made in October 2026 at outlet LJ-CENTER. `make_hq(path, buyers)` writes them and closes
October (issued 2026-11-01, due 2026-11-15); it returns the open `Chain` and each buyer's
invoice number. With `url` (a PostgreSQL database with HQ's tables and no rows), the
history written to `path` is then moved there as a running chain moves
(`loyalty hq migrate`, hq/store/migrate.py) and the `Chain` returned is HQ on PostgreSQL;
`close=False` leaves October open. `PAYEE` is a complete set of payee settings; `pdf_text` / `qr_of` read a
PDF back with poppler (pdftotext) and zbar (pdftoppm + zbarimg).
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from agent.programme import default_documents
from hq import credentials, ingest, invoices, settings
from hq.chain import Chain
from schema.events import (
    CustomerRegistered,
    Event,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.sync import PushRequest

OUTLET = "LJ-CENTER"
PAYEE = {"payee.name": "Zvestoba d.o.o.", "payee.iban": "SI56 1910 0000 0123 438",
         "payee.bic": "BAKOSI2X", "payee.country": "SI"}


@dataclass
class Buyer:
    given_name: str
    surname: str
    email: str | None = None
    consent: bool = False
    address: str | None = None
    sales: tuple[int, ...] = (12_345,)
    customer_id: str = field(default_factory=new_id)
    card: str = ""


def make_hq(path: Path, buyers: list[Buyer], url: str | None = None, close: bool = True
            ) -> tuple[Chain, dict[str, str]]:
    chain = Chain(path, seed=default_documents())
    with chain.db.write() as conn:
        credentials.add_outlet(conn, OUTLET)
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    events: list[Event] = []
    for n, buyer in enumerate(buyers):
        buyer.card = buyer.card or f"29000100{n:05d}"
        profile = Profile(kind="person", given_name=buyer.given_name, surname=buyer.surname,
                          category="A", email=buyer.email, email_consent=buyer.consent,
                          address=buyer.address)
        events.append(make_event(OUTLET, len(events) + 1, CustomerRegistered(
            customer_id=buyer.customer_id, card_number=buyer.card, profile=profile),
            "2026-10-01T08:00:00Z"))
        for day, amount in enumerate(buyer.sales, start=2):
            line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=amount, gross=amount,
                            discount=0, net=amount)
            events.append(make_event(OUTLET, len(events) + 1, SaleRecorded(
                sale_id=new_id(), customer_id=buyer.customer_id, currency="EUR", lines=[line],
                payments=[Payment(mode="credit", amount=amount)], total_gross=amount,
                total_discount=0, total_net=amount, points_earned=0),
                f"2026-10-{day:02d}T12:00:00Z"))
    ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=events))
    if url is not None:
        from hq.store.migrate import migrate  # psycopg: only where PostgreSQL is asked for

        chain.close()
        migrate(path, url)
        chain = Chain(url, seed=default_documents())
    if not close:
        return chain, {}
    made = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1), date(2026, 11, 1))
    return chain, {m["customer_id"]: m["number"] for m in made}


def with_payee(chain: Chain) -> None:
    settings.change(chain, PAYEE)


def pdf_text(pdf: bytes, tmp: Path) -> str:
    path = tmp / "read.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          check=True, timeout=30)
    return done.stdout.decode()


def qr_of(pdf: bytes, tmp: Path) -> str | None:
    """The text of the QR code on the PDF's first page, or None when it has none."""
    tmp = Path(tempfile.mkdtemp(dir=tmp))
    path = tmp / "qr.pdf"
    path.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-f", "1", "-l", "1", str(path),
                    str(tmp / "qr")], check=True, timeout=30)
    page = next(tmp.glob("qr-*1.png"))
    done = subprocess.run(["zbarimg", "-q", "--raw", "-Sbinary", str(page)],
                          capture_output=True, timeout=30, check=False)
    if done.returncode == 4:  # zbarimg: no symbol found
        return None
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().rstrip("\n")
