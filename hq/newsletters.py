"""Newsletters and catalogues: one message from head office to a segment of the customers
who consented to e-mail (docs/invoices.md, "Newsletters").

`send` (`POST /v1/admin/newsletters`, `loyalty hq newsletter`) records the newsletter and
decides its recipients at once: the customers with e-mail consent and a usable address,
not banned, in the segment asked for - a category, the outlet they registered at, active
(registered, visited, bought, took a gift or paid) in the last N days by HQ's clock - all
of them when no segment is given. Each recipient is a `notices` row (kind `newsletter`,
about the newsletter's id, outcome `pending`), whose unique key makes one newsletter reach
one customer at most once: sending the same newsletter id again adds nobody who has it
(the same text is answered as it was; another text under that id is a conflict).

`preview` counts who a newsletter would reach now, recording nothing (the back office's
preview, hq/office/newsletters.py); `listing` shows the latest newsletters with where their
messages are. With `by` (who sends it) `send` audits a newly recorded newsletter.

`queue_due` (HQ's mail run, hq/schedule.py, beside the notices) renders the pending ones a
batch at a time into the mail queue (hq/mailqueue.py), each with the customer's unsubscribe
link (hq/notices.py): `mailed`, or `no_consent` / `no_address` when the customer withdrew
consent or lost their address since. The worker sends them like every message; a customer
who withdraws consent after that is still never mailed (hq/mailqueue.py).
Promises: no newsletter is recorded before HQ can mail (`mail_not_configured`); the
request only decides and records, it never renders or sends a message. Must never: mail
a customer without consent at the moment their mail is rendered.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from hq import audit, mailqueue, notices, settings
from hq.audit import Actor
from hq.chain import Chain
from schema.customerstore import display_name
from schema.errors import Conflict, InvalidRequest, MailNotConfigured, NotFound
from schema.events import new_id
from schema.masterdata import CODE
from schema.timing import canonical, parse

KIND = "newsletter"
MAX_SUBJECT = 200
MAX_BODY = 100_000
MAX_ACTIVE_DAYS = 3660
BATCH = 500  # messages rendered per run at most: a run stays short, the next goes on
ACTIVE = ("customer.registered", "visit.recorded", "sale.recorded", "gift.redeemed",
          "credit.repaid")


def segment_of(category: str | None, outlet: str | None, active_days: int | None
               ) -> dict[str, Any]:
    return {"category": category, "outlet": outlet, "active_days": active_days}


def _recipients(conn: Any, segment: dict[str, Any], now: str) -> list[str]:
    where, params = ["c.email_consent = 1", "c.status = 'approved'"], []
    if segment["category"] is not None:
        where.append("c.category = ?")
        params.append(segment["category"])
    if segment["outlet"] is not None:
        where.append("c.origin_outlet = ?")
        params.append(segment["outlet"])
    if segment["active_days"] is not None:
        moment = parse(now)
        assert moment is not None
        since = canonical(moment - timedelta(days=segment["active_days"]))
        where.append(f"c.customer_id IN (SELECT customer_id FROM events WHERE type IN "
                     f"({', '.join('?' for _ in ACTIVE)}) AND COALESCE(booked_at, at) >= ?)")
        params += [*ACTIVE, since]
    rows = conn.execute(f"SELECT c.customer_id, c.email FROM customers c WHERE "
                        f"{' AND '.join(where)} ORDER BY c.customer_id", params)
    return [r[0] for r in rows if mailqueue.usable_address(r[1])]


def _check_segment(conn: Any, segment: dict[str, Any]) -> None:
    if segment["category"] is not None and conn.execute(
            "SELECT 1 FROM master WHERE kind = 'category' AND key = ?",
            (segment["category"],)).fetchone() is None:
        raise InvalidRequest(f"unknown category {segment['category']!r}: nothing was sent")
    if segment["outlet"] is not None and conn.execute(
            "SELECT 1 FROM outlets WHERE outlet_id = ?", (segment["outlet"],)).fetchone() is None:
        raise InvalidRequest(f"unknown outlet {segment['outlet']!r}: nothing was sent")


def _check_text(subject: str, body: str, active_days: int | None,
                newsletter_id: str | None) -> None:
    if newsletter_id is not None and not re.fullmatch(CODE, newsletter_id):
        raise InvalidRequest("newsletter_id: a code of 1 to 40 letters, digits, '_', '.' or "
                             "'-' (starting with a letter or digit)")
    if not subject.strip() or len(subject) > MAX_SUBJECT or any(ord(c) < 32 for c in subject):
        raise InvalidRequest(f"subject: one line of 1 to {MAX_SUBJECT} characters")
    if not body.strip() or len(body) > MAX_BODY:
        raise InvalidRequest(f"body: 1 to {MAX_BODY} characters of text")
    if active_days is not None and not 1 <= active_days <= MAX_ACTIVE_DAYS:
        raise InvalidRequest(f"active_days: 1 to {MAX_ACTIVE_DAYS} days")


def preview(chain: Chain, subject: str, body: str, *, category: str | None = None,
            outlet: str | None = None, active_days: int | None = None,
            newsletter_id: str | None = None) -> int:
    """How many customers this newsletter would reach if sent now (consenting, a usable
    address, not banned); records nothing. Refuses what `send` refuses, but for missing
    mail settings (`mail_ready` says so)."""
    _check_text(subject, body, active_days, newsletter_id)
    segment = segment_of(category, outlet, active_days)
    with chain.db.read() as conn:
        _check_segment(conn, segment)
        return len(_recipients(conn, segment, chain.clock()))


def mail_ready(chain: Chain) -> bool:
    """Whether HQ can mail: `mail.from` and `mail.public_url` are set."""
    with chain.db.read() as conn:
        return settings.mail(conn) is not None


def send(chain: Chain, subject: str, body: str, *, category: str | None = None,
         outlet: str | None = None, active_days: int | None = None,
         newsletter_id: str | None = None, by: Actor | None = None) -> dict[str, Any]:
    """Records a newsletter and its recipients (see the module docstring); returns
    `summary`. Nothing is mailed here: the mail run renders and sends it."""
    _check_text(subject, body, active_days, newsletter_id)
    subject = subject.strip()
    segment = segment_of(category, outlet, active_days)
    now = chain.clock()
    newsletter_id = newsletter_id or new_id()
    with chain.db.write() as conn:
        if settings.mail(conn) is None:
            raise MailNotConfigured(
                "mail is not set up: set mail.from and mail.public_url (and smtp.*) with "
                "`loyalty hq settings` first; nothing was sent")
        _check_segment(conn, segment)
        known = conn.execute("SELECT subject, body, segment FROM newsletters WHERE "
                             "newsletter_id = ?", (newsletter_id,)).fetchone()
        if known is not None:
            if (known["subject"], known["body"], json.loads(known["segment"])) != (
                    subject, body, segment):
                raise Conflict(f"newsletter {newsletter_id} was sent with another text or "
                               "segment: give a new id", newsletter=newsletter_id)
        else:
            recipients = _recipients(conn, segment, now)
            conn.execute("INSERT INTO newsletters (newsletter_id, subject, body, segment,"
                         " created_at, recipients) VALUES (?, ?, ?, ?, ?, ?)",
                         (newsletter_id, subject, body, json.dumps(segment), now,
                          len(recipients)))
            conn.executemany(
                "INSERT INTO notices (customer_id, kind, about, decided_at, outcome) "
                "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
                [(customer_id, KIND, newsletter_id, now) for customer_id in recipients])
            if by is not None:
                audit.record(conn, by, "newsletter.send", ("newsletter", newsletter_id), None,
                             {"subject": subject, **segment, "recipients": len(recipients)})
    return summary(chain, newsletter_id)


def summary(chain: Chain, newsletter_id: str) -> dict[str, Any]:
    """The newsletter, its segment, and where its messages are: `decided` counts the
    recipients by outcome (pending, mailed, no_consent, no_address), `mail` their messages
    by status (queued, sending, sent, failed)."""
    with chain.db.read() as conn:
        row = conn.execute("SELECT * FROM newsletters WHERE newsletter_id = ?",
                           (newsletter_id,)).fetchone()
        if row is None:
            raise NotFound(f"no newsletter {newsletter_id}", newsletter=newsletter_id)
        decided = dict(conn.execute(
            "SELECT outcome, COUNT(*) FROM notices WHERE kind = ? AND about = ? "
            "GROUP BY outcome", (KIND, newsletter_id)).fetchall())
        mail = dict(conn.execute(
            "SELECT status, COUNT(*) FROM mail_outbox WHERE kind = ? AND about = ? "
            "GROUP BY status", (KIND, newsletter_id)).fetchall())
    return {"newsletter_id": newsletter_id, "subject": row["subject"],
            **json.loads(row["segment"]), "created_at": row["created_at"],
            "recipients": row["recipients"], "decided": decided, "mail": mail}


def listing(chain: Chain, limit: int = 50) -> list[dict[str, Any]]:
    """The latest newsletters, newest first, each as `summary` gives it."""
    with chain.db.read() as conn:
        rows = conn.execute("SELECT * FROM newsletters ORDER BY created_at DESC, newsletter_id"
                            " DESC LIMIT ?", (limit,)).fetchall()
        ids = [r["newsletter_id"] for r in rows]
        marks = ", ".join("?" for _ in ids)
        decided: dict[str, dict[str, int]] = {i: {} for i in ids}
        mail: dict[str, dict[str, int]] = {i: {} for i in ids}
        if ids:
            for about, outcome, n in conn.execute(
                    f"SELECT about, outcome, COUNT(*) FROM notices WHERE kind = ? AND about IN"
                    f" ({marks}) GROUP BY about, outcome", (KIND, *ids)):
                decided[about][outcome] = n
            for about, status, n in conn.execute(
                    f"SELECT about, status, COUNT(*) FROM mail_outbox WHERE kind = ? AND about"
                    f" IN ({marks}) GROUP BY about, status", (KIND, *ids)):
                mail[about][status] = n
    return [{"newsletter_id": r["newsletter_id"], "subject": r["subject"],
             **json.loads(r["segment"]), "created_at": r["created_at"],
             "recipients": r["recipients"], "decided": decided[r["newsletter_id"]],
             "mail": mail[r["newsletter_id"]]} for r in rows]


def queue_due(chain: Chain) -> dict[str, int]:
    """Renders up to BATCH pending newsletter messages into the mail queue; returns how
    many of each outcome. Without mail settings they wait."""
    now = chain.clock()
    counts: dict[str, int] = {}
    with chain.db.read() as conn:
        mail = settings.mail(conn)
        pending = conn.execute(
            "SELECT customer_id, about FROM notices WHERE kind = ? AND outcome = 'pending' "
            "ORDER BY decided_at, about, customer_id LIMIT ?", (KIND, BATCH)).fetchall()
    if mail is None or not pending:
        return counts
    letters: dict[str, Any] = {}
    for customer_id, newsletter_id in pending:
        with chain.db.read() as conn:
            customer = conn.execute("SELECT * FROM customers WHERE customer_id = ?",
                                    (customer_id,)).fetchone()
            if newsletter_id not in letters:
                letters[newsletter_id] = conn.execute(
                    "SELECT subject, body FROM newsletters WHERE newsletter_id = ?",
                    (newsletter_id,)).fetchone()
        address = mailqueue.usable_address(customer["email"]) if customer else None
        outcome = ("no_consent" if customer is None or not customer["email_consent"] else
                   "no_address" if address is None else "mailed")
        with chain.db.write() as conn:
            if outcome == "mailed":
                assert customer is not None and address is not None
                message = _message(letters[newsletter_id], dict(customer), address, mail, now)
                notices.add_unsubscribe(message,
                                        notices.unsubscribe_link(conn, mail, customer_id))
            decided = conn.execute(
                "UPDATE notices SET outcome = ?, decided_at = ? WHERE customer_id = ? AND "
                "kind = ? AND about = ? AND outcome = 'pending'",
                (outcome, now, customer_id, KIND, newsletter_id)).rowcount
            if not decided:
                continue  # decided meanwhile (another run): never twice
            if outcome == "mailed":
                mail_id = mailqueue.enqueue(conn, message, customer_id=customer_id, kind=KIND,
                                            about=newsletter_id, now=now)
                conn.execute("UPDATE notices SET mail_id = ? WHERE customer_id = ? AND kind = ?"
                             " AND about = ?", (mail_id, customer_id, KIND, newsletter_id))
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _message(letter: Any, customer: dict[str, Any], address: str, mail: settings.Mail,
             now: str) -> EmailMessage:
    sender = settings.sender_address(mail.sender)
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(display_name=display_name(customer), addr_spec=address)
    message["Subject"] = letter["subject"]
    moment = parse(now)
    assert moment is not None
    message["Date"] = format_datetime(moment)
    message["Message-ID"] = mailqueue.message_id(sender.domain)
    message["Precedence"] = "bulk"  # RFC 2076: no vacation replies to a mailing
    message.set_content(letter["body"].rstrip("\n") + "\n")
    return message
