"""Notices to customers by e-mail: invoice issued (with its PDF), invoice overdue, card
reported lost - each at most once, only with consent, each with a working unsubscribe link.

`queue_due` (HQ's scheduler, before each mail run) finds what has happened and has no
notice yet, and decides each once: a row in `notices` keyed by customer, kind and what it
is about - the invoice (its number) for the invoice notices, the card for a lost card. The
key is unique, so a notice is never made twice, whatever runs again or in parallel. The
outcome is `mailed` (queued in the same transaction, hq/mailqueue.py), `no_consent` (no
e-mail consent), `no_address` (consent but no usable address) or `unknown_customer` (a
credit sale of a customer HQ has not seen registered). An invoice that is not
mailed - or whose mail failed - is listed to print and post (`to_post`) until it is marked
posted. Points expiring (`queue_expiring`, once a day on HQ's schedule, after the night's
expiry): "N points expire on DATE" to a consenting customer with points whose last valid
day is within `EXPIRING_DAYS`, keyed by customer and that day (the lot-expiry period), so
once per period whatever runs again; only consenting customers are looked at (the
others get no row: there are many, and nothing to post).
Unsubscribing: every mail carries a link `<mail.public_url>/unsubscribe/<token>`, the token
signed with HQ's key (HMAC-SHA256), so nobody can unsubscribe another customer; the link
does not expire. Withdrawing consent is HQ's own `customer.updated` fact, so it reaches
every outlet like any profile change.
Promises: no mail without consent and an address at the moment it is decided; one notice
per customer, kind and invoice or card. Must never: send anything itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import sqlite3
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from banking import creditorref
from banking.payee import Payee, printed_iban
from hq import admin, invoicedoc, invoices, mailqueue, settings
from hq.chain import Chain
from schema import lotstore, tallystore
from schema.customerstore import display_name
from schema.errors import NotFound, mask_card
from schema.lots import ExpiryRule, expiring
from schema.masterdata import programme_of
from schema.money import money
from schema.timing import parse

KINDS = ("invoice_issued", "invoice_overdue", "card_lost", "points_expiring")
EXPIRING_DAYS = 30  # points whose last valid day is at most this far are told about
BATCH = 200  # notices decided per run at most (each may render a PDF)
_PURPOSE = b"unsubscribe:"


# --- unsubscribe tokens --------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token(key: bytes, customer_id: str) -> str:
    """`<customer id>.<signature>`, both URL-safe base64."""
    mac = hmac.new(key, _PURPOSE + customer_id.encode(), hashlib.sha256).digest()[:16]
    return f"{_b64(customer_id.encode())}.{_b64(mac)}"


def customer_of(conn: sqlite3.Connection, text: str) -> str | None:
    """The customer an unsubscribe token was made for, or None if it is not one of ours."""
    key = settings.unsubscribe_key(conn)
    head, dot, _ = text.partition(".")
    if key is None or not dot or len(text) > 400:
        return None
    try:
        customer_id = _unb64(head).decode()
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(token(key, customer_id), text):
        return None
    return customer_id


def withdraw_consent(chain: Chain, customer_id: str) -> bool:
    """The customer wants no more e-mail: HQ's `customer.updated` fact with consent off
    (it reaches every outlet). False when consent was already off (nothing recorded)."""
    with chain.db.read() as conn:
        row = conn.execute("SELECT email_consent FROM customers WHERE customer_id = ?",
                           (customer_id,)).fetchone()
    if row is None or not row[0]:
        return False
    admin.edit_customer(chain, customer_id, {"email_consent": False},
                        by=None)  # the customer's own link: no member of staff
    return True


# --- deciding notices ----------------------------------------------------------------------
_CAUSES = {  # kind: (what happened, as rows of customer and what it is about)
    "invoice_issued": "SELECT i.customer_id, i.number AS about FROM invoices i WHERE 1 = 1",
    "invoice_overdue": "SELECT i.customer_id, i.number AS about FROM invoices i"
                       " WHERE i.status IN ('overdue', 'past_term')",
    "card_lost": "SELECT i.customer_id, i.value AS about FROM identifiers i"
                 " WHERE i.kind = 'card' AND i.status = 'lost'",
}


def _due(conn: sqlite3.Connection, mail_ready: bool) -> list[tuple[str, str, str]]:
    """(kind, customer, about) of everything that happened and has no notice yet; without
    mail settings, not those of consenting customers (they wait for the settings, and must
    not fill the batch so that the others are never decided)."""
    waits = "" if mail_ready else (" AND NOT EXISTS (SELECT 1 FROM customers w WHERE"
                                   " w.customer_id = c.customer_id AND w.email_consent = 1)")
    found: list[tuple[str, str, str]] = []
    for kind, sql in _CAUSES.items():
        rows = conn.execute(
            f"SELECT * FROM ({sql}) c WHERE NOT EXISTS (SELECT 1 FROM notices n WHERE"
            f" n.customer_id = c.customer_id AND n.kind = ? AND n.about = c.about){waits}"
            " LIMIT ?", (kind, BATCH)).fetchall()
        found += [(kind, r[0], r[1]) for r in rows]
    return found[:BATCH]


def queue_due(chain: Chain) -> dict[str, int]:
    """Decides every notice that is due (see the module's docstring); returns how many of
    each outcome. Without `mail.from` and `mail.public_url` nothing can be mailed: only the
    notices that would not be mailed anyway are decided, the rest wait."""
    now = chain.clock()
    counts: dict[str, int] = {}
    with chain.db.read() as conn:
        mail = settings.mail(conn)
        payee = settings.payee(conn)
        due = _due(conn, mail is not None)
    for kind, customer_id, about in due:
        with chain.db.read() as conn:
            customer = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                                    (customer_id,)).fetchone()
        address = mailqueue.usable_address(customer["email"]) if customer else None
        outcome = ("unknown_customer" if customer is None else
                   "no_consent" if not customer["email_consent"] else
                   "no_address" if address is None else "mailed")
        if outcome == "mailed" and mail is None:
            continue  # waits for the mail settings
        message = None
        if outcome == "mailed":
            assert mail is not None and address is not None and customer is not None
            message = _message(chain, kind, about, dict(customer), address, mail, payee, now)
            if message is None:  # what it was about is gone (an invoice paid meanwhile)
                continue
        with chain.db.write() as conn:
            if conn.execute(
                    "INSERT INTO notices (customer_id, kind, about, decided_at, outcome) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (customer_id, kind, about, now, outcome)).rowcount == 0:
                continue  # decided meanwhile (another run): never twice
            if message is not None:
                assert mail is not None
                add_unsubscribe(message, unsubscribe_link(conn, mail, customer_id))
                mail_id = mailqueue.enqueue(conn, message, customer_id=customer_id, kind=kind,
                                            about=about, now=now)
                conn.execute("UPDATE notices SET mail_id = ? WHERE customer_id = ? AND kind = ?"
                             " AND about = ?", (mail_id, customer_id, kind, about))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _message(chain: Chain, kind: str, about: str, customer: dict[str, Any], address: str,
             mail: settings.Mail, payee: Payee | None, now: str) -> EmailMessage | None:
    name = display_name(customer) or "customer"
    signature = payee.name if payee else (settings.sender_address(mail.sender).display_name
                                          or "Your loyalty club")
    pdf = None
    if kind == "card_lost":
        subject = f"Your club card {mask_card(about)} was reported lost"
        body = (f"Dear {name},\n\nyour club card {mask_card(about)} has been reported lost and"
                " is blocked: nobody can use it any more, and your points and balance are"
                " safe. Ask at any of our shops for a new card.\n\nIf you did not report it"
                " lost, please tell us.\n")
    else:
        invoice = invoices.invoice(chain, about)
        owed = invoice["amount"] - invoice["paid_amount"]
        if kind == "invoice_overdue" and (owed <= 0 or invoice["status"] == "paid"):
            return None
        reference = creditorref.printed(invoice["payment_reference"])
        pay = (f"Pay to: {payee.name}, IBAN {printed_iban(payee.iban)}"
               + (f", BIC {payee.bic}" if payee.bic else "") + "\n") if payee else ""
        currency = invoices.CURRENCY
        attached = (f"Dear {name},\n\nattached is your invoice {about} for your purchases on"
                    f" account from {invoice['period_from']} to"
                    f" {invoicedoc.last_day(invoice).isoformat()}.\n\n")
        if kind == "invoice_issued" and invoice["amount"] == 0:
            # the period's returns credited all of it: the invoice is issued paid (tax
            # evidence of the purchases and credits), and nothing asks for a payment
            subject = f"Invoice {about}: nothing to pay"
            body = (attached + "The goods you returned are credited against them in full:"
                    " there is nothing to pay, and nothing for you to do.\n")
            pdf = invoicedoc.document(invoice, customer, payee)
        elif kind == "invoice_issued":
            subject = (f"Invoice {about}: {currency} {money(invoice['amount'])}, due"
                       f" {invoice['due_on']}")
            body = (attached +
                    f"Amount: {currency} {money(invoice['amount'])}\n"
                    f"Due on: {invoice['due_on']}\n{pay}"
                    f"Payment reference: {reference}\n\n"
                    "Please give the payment reference exactly as written, in the reference"
                    " field of your transfer"
                    + (", or scan the QR code on the invoice with your banking app" if payee
                       else "") + ".\n")
            pdf = invoicedoc.document(invoice, customer, payee)
        else:
            subject = f"Reminder: invoice {about} is overdue"
            body = (f"Dear {name},\n\nour invoice {about} was due on {invoice['due_on']} and"
                    f" {currency} {money(owed)} of it is still open.\n\n{pay}"
                    f"Payment reference: {reference}\n\nIf you have paid in the last few days,"
                    " thank you, and please disregard this reminder.\n")
    message = _envelope(customer, address, mail, subject, f"{body}\nKind regards,\n{signature}\n",
                        now)
    if pdf is not None:
        message.add_attachment(pdf, maintype="application", subtype="pdf",
                               filename=f"invoice-{about}.pdf")
    return message


def _envelope(customer: dict[str, Any], address: str, mail: settings.Mail, subject: str,
              text: str, now: str) -> EmailMessage:
    """A notice's message: from the chain's sender to the customer, dated `now`."""
    sender = settings.sender_address(mail.sender)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(display_name=display_name(customer), addr_spec=address)
    message["Subject"] = subject
    moment = parse(now) or datetime.now(UTC)
    message["Date"] = format_datetime(moment)
    message["Message-ID"] = mailqueue.message_id(sender.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to it
    message.set_content(text)
    return message


# --- points expiring -------------------------------------------------------------------------
def queue_expiring(chain: Chain, today: date) -> dict[str, int]:
    """Decides the points-expiring notices due on `today` (see the module's docstring):
    how many of each outcome. Without mail settings nothing is decided (the next day's run
    decides what is still due)."""
    now = chain.clock()
    counts: dict[str, int] = {}
    with chain.db.read() as conn:
        mail = settings.mail(conn)
    if mail is None:
        return counts
    after = ""
    while True:
        with chain.db.read() as conn:
            rule = programme_of(conn).expiry
            # under "never" only a lot given its own date when it was earned can expire
            dated = " AND l.expires_on IS NOT NULL" if rule.kind == "never" else ""
            found = [r[0] for r in conn.execute(
                "SELECT DISTINCT l.customer_id FROM customer_lots l JOIN customers c ON"
                " c.customer_id = l.customer_id WHERE l.points > 0 AND c.email_consent = 1"
                f"{dated} AND l.customer_id > ? ORDER BY l.customer_id LIMIT ?",
                (after, BATCH))]
        for customer_id in found:
            for outcome in _expiring_for(chain, customer_id, today, rule, mail, now):
                counts[outcome] = counts.get(outcome, 0) + 1
        if len(found) < BATCH:
            return counts
        after = found[-1]


def _expiring_for(chain: Chain, customer_id: str, today: date, rule: ExpiryRule,
                  mail: settings.Mail, now: str) -> list[str]:
    """One customer's points-expiring notices, each decided once (one transaction)."""
    outcomes = []
    with chain.db.write() as conn:
        row = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                           (customer_id,)).fetchone()
        if row is None or not row["email_consent"]:
            return []
        customer = dict(row)
        last = tallystore.load_last_purchase(conn, customer_id)
        soon = expiring(lotstore.load(conn, customer_id), today, EXPIRING_DAYS, rule,
                        date.fromisoformat(last[:10]) if last else None)
        address = mailqueue.usable_address(customer["email"])
        for day, points in soon:
            about = day.isoformat()
            outcome = "mailed" if address is not None else "no_address"
            if conn.execute(
                    "INSERT INTO notices (customer_id, kind, about, decided_at, outcome) "
                    "VALUES (?, 'points_expiring', ?, ?, ?) ON CONFLICT DO NOTHING",
                    (customer_id, about, now, outcome)).rowcount == 0:
                continue  # told already for this day
            outcomes.append(outcome)
            if address is None:
                continue
            name = display_name(customer) or "customer"
            signature = (settings.sender_address(mail.sender).display_name
                         or "Your loyalty club")
            message = _envelope(
                customer, address, mail, f"{points:,} points expire on {about}",
                f"Dear {name},\n\n{points:,} of your club points expire on {about}: spend"
                " them before then at any of our shops, or they are gone.\n\n"
                f"Kind regards,\n{signature}\n", now)
            add_unsubscribe(message, unsubscribe_link(conn, mail, customer_id))
            mail_id = mailqueue.enqueue(conn, message, customer_id=customer_id,
                                        kind="points_expiring", about=about, now=now)
            conn.execute("UPDATE notices SET mail_id = ? WHERE customer_id = ? AND kind = ?"
                         " AND about = ?", (mail_id, customer_id, "points_expiring", about))
    return outcomes


def unsubscribe_link(conn: sqlite3.Connection, mail: settings.Mail, customer_id: str) -> str:
    """The customer's unsubscribe link (the signing key is made on first use, inside the
    caller's write transaction)."""
    key = settings.unsubscribe_key(conn, make=True)
    assert key is not None
    return f"{mail.public_url}/unsubscribe/{token(key, customer_id)}"


def add_unsubscribe(message: EmailMessage, link: str) -> None:
    """The link in the text and as List-Unsubscribe (RFC 2369) with one-click POST (RFC
    8058), which mail programs show as an "unsubscribe" button."""
    message["List-Unsubscribe"] = f"<{link}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    text = message.get_body(("plain",))
    assert isinstance(text, EmailMessage)
    content = text.get_content()
    text.set_content(f"{content}\n-- \nYou receive these e-mails because you agreed to. To"
                     f" receive no more, open:\n{link}\n")


# --- invoices to post ------------------------------------------------------------------------
def to_post(chain: Chain) -> list[dict[str, Any]]:
    """Invoices to print and post: their customer has no e-mail consent or no usable
    address, or their mail failed; until marked posted. While mail is not set up at all,
    new invoices are listed too."""
    with chain.db.read() as conn:
        mail_ready = settings.mail(conn) is not None
        rows = conn.execute(
            "SELECT i.number, i.customer_id, i.amount, i.paid_amount, i.due_on, i.status,"
            " n.outcome, m.status AS mail_status, m.last_error FROM invoices i"
            " LEFT JOIN notices n ON n.customer_id = i.customer_id"
            " AND n.kind = 'invoice_issued' AND n.about = i.number"
            " LEFT JOIN mail_outbox m ON m.mail_id = n.mail_id"
            " WHERE n.posted_at IS NULL AND (n.outcome IN ('no_consent', 'no_address',"
            " 'unknown_customer')"
            " OR m.status = 'failed' OR (n.outcome IS NULL AND ? = 1))"
            " ORDER BY i.number", (not mail_ready,)).fetchall()
        listed = []
        for row in rows:
            customer = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                                    (row["customer_id"],)).fetchone()
            why = {"no_consent": "no e-mail consent", "no_address": "no usable e-mail address",
                   "unknown_customer": "HQ does not know the customer",
                   None: "mail is not set up"}.get(row["outcome"], "")
            if row["mail_status"] == "failed":
                why = f"the e-mail failed: {row['last_error']}"
            listed.append({**dict(row), "name": display_name(customer) if customer else "",
                           "address": (customer["address"] or "") if customer else "",
                           "why": why})
    return listed


def mark_posted(chain: Chain, numbers: list[str]) -> int:
    """Records that these invoices went out by post; they leave the list."""
    now = chain.clock()
    done = 0
    with chain.db.write() as conn:
        for number in numbers:
            row = conn.execute("SELECT customer_id FROM invoices WHERE number = ?",
                               (number,)).fetchone()
            if row is None:
                raise NotFound(f"no invoice {number}: nothing was marked posted",
                               invoice=number)
            conn.execute(
                "INSERT INTO notices (customer_id, kind, about, decided_at, outcome, posted_at)"
                " VALUES (?, 'invoice_issued', ?, ?, 'posted', ?)"
                " ON CONFLICT (customer_id, kind, about) DO UPDATE SET"
                " posted_at = excluded.posted_at", (row[0], number, now, now))
            done += 1
    return done
