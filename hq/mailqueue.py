"""HQ's outgoing mail, store-and-forward: queued in the database, submitted by a worker.

A message is rendered whole when it is queued (`enqueue`, inside the caller's transaction:
the notice and its mail are one decision) and stored with a stable Message-ID. The worker
(`send_due`, run by HQ's scheduler, hq/schedule.py; never by a request, least of all a
till's) submits due messages over SMTP: STARTTLS with the certificate checked, then a login
(hq/settings.py `smtp.*`), one connection per run, one message at a time.

Exactly once, as far as SMTP allows (docs/invoices.md, "Sending"): before a message is
handed to the server it is marked `sending` by this run (committed), and after the server
accepted it (250 to DATA) it is marked `sent` (committed). A crash between the two leaves
it `sending` under a run that no longer exists; the next run sends it again - the same
bytes, the same Message-ID - so the receiver may get it twice, and a receiver or mail
client that drops a second message with a Message-ID it has seen shows it once. At most
one message per crash can be sent twice: the one in flight. Refusals: a 4xx reply or a
broken connection is tried again after a capped back-off (`backoff_s`), a 5xx reply marks
the message `failed` (a bounce at submission) with the server's words; after
`MAX_ATTEMPTS` tries it is `failed` too, and so is a message whose customer withdrew
consent after it was queued (it is never sent). Either way the customer's mail list shows it.
Promises: the SMTP password is never logged or stored outside HQ's settings; a message is
never `sent` before the server accepted it. Must never: send from a request path.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from hq import settings
from hq.chain import Chain
from schema.dialect import dialect_of
from schema.events import new_id
from schema.timing import canonical, parse

log = logging.getLogger(__name__)

RUN_ID = uuid.uuid4().hex  # this process: a `sending` message of another run was cut off
BACKOFF_BASE_S = 60
BACKOFF_CAP_S = 6 * 3600
MAX_ATTEMPTS = 12  # 1 min, 2, 4 ... then every 6 h: about 26 hours of trying
TIMEOUT_S = 30.0
WITHDRAWN = "not sent: the customer withdrew e-mail consent after it was queued"
BATCH = 200  # messages per run at most: a run stays short, the next run goes on
OTHER_RUN = "(claimed_by IS NULL OR claimed_by <> ?)"  # `IS NOT ?`, which PostgreSQL refuses


def backoff_s(attempts: int) -> int:
    """Seconds to wait after the `attempts`-th failed try: doubling from a minute, at most
    six hours."""
    return int(min(BACKOFF_BASE_S * 2 ** max(attempts - 1, 0), BACKOFF_CAP_S))


def message_id(domain: str) -> str:
    """A new Message-ID under the sender's domain, unique (a UUIDv7) and kept with the
    message: every try sends this same one."""
    return f"<{new_id()}@{domain}>"


def usable_address(text: str | None) -> str | None:
    """A customer's e-mail as a recipient (`name@example.com`), or None when it cannot be
    one (empty, several, spaces or line breaks, not ASCII): that customer gets post."""
    value = (text or "").strip()
    user, at, domain = value.rpartition("@")
    if (not at or not user or "." not in domain or value.count("@") != 1
            or not value.isascii() or any(c.isspace() or c in "<>,;\"()[]\\" for c in value)
            or len(value) > 254 or domain.startswith(".") or domain.endswith(".")):
        return None
    return value


def enqueue(conn: Any, message: EmailMessage, *, customer_id: str | None, kind: str,
            about: str, now: str) -> int:
    """Queues `message` (with its Message-ID and To set) inside the caller's write
    transaction; returns its mail id."""
    raw = message.as_bytes(policy=SMTP_POLICY)
    cur = conn.execute(
        "INSERT INTO mail_outbox (message_id, customer_id, kind, about, recipient, subject,"
        " message, size, queued_at, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)"
        " RETURNING mail_id",
        (message["Message-ID"], customer_id, kind, about, message["To"].addresses[0].addr_spec,
         str(message["Subject"]), raw, len(raw), now, now))
    return int(cur.fetchone()[0])


@dataclass
class Run:
    """What one run of the worker did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    waiting: int = 0  # due but not tried (mail not configured, the server unreachable)
    problem: str = ""
    ids: list[str] = field(default_factory=list)  # Message-IDs sent


def _due(conn: Any, now: str, run_id: str) -> list[int]:
    return [r[0] for r in conn.execute(
        "SELECT mail_id FROM mail_outbox WHERE (status = 'queued' AND next_attempt_at <= ?) "
        f"OR (status = 'sending' AND {OTHER_RUN}) ORDER BY mail_id LIMIT ?",
        (now, run_id, BATCH))]


def send_due(chain: Chain, now: datetime | None = None, run_id: str = RUN_ID) -> Run:
    """Submits every due message (queued and due, or left `sending` by a run that ended)."""
    moment = now or parse(chain.clock())
    assert moment is not None
    stamp = canonical(moment)
    run = Run()
    with chain.db.read() as conn:
        due = _due(conn, stamp, run_id)
        server = settings.smtp(conn)
        mail = settings.mail(conn)
    if not due:
        return run
    if server is None or mail is None:
        run.waiting, run.problem = len(due), "mail is not configured (smtp.*, mail.from)"
        return run
    try:
        smtp = _connect(server)
    except (smtplib.SMTPException, OSError, ssl.SSLError) as error:
        run.waiting, run.problem = len(due), _describe(error)
        log.warning("mail: cannot submit to %s:%s as %s: %s; %d message(s) wait",
                    server.host, server.port, server.user, run.problem, len(due))
        return run
    sender = settings.sender_address(mail.sender).addr_spec
    try:
        for mail_id in due:
            if not _send_one(chain, smtp, mail_id, sender, moment, run_id, run):
                run.waiting += len(due) - due.index(mail_id) - 1
                break
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()
    if run.sent or run.failed or run.retrying:
        log.info("mail: %d sent, %d to retry, %d failed", run.sent, run.retrying, run.failed)
    return run


def _connect(server: settings.Smtp) -> smtplib.SMTP:
    """Submission: connect, STARTTLS with the server's certificate checked, log in."""
    context = ssl.create_default_context(cafile=server.ca_file)
    smtp = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_S,
                        local_hostname=socket.gethostname())
    try:
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise smtplib.SMTPNotSupportedError(
                "the server offers no STARTTLS: HQ sends no password in the clear")
        smtp.starttls(context=context)
        smtp.ehlo()
        smtp.login(server.user, server.password.get_secret_value())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _send_one(chain: Chain, smtp: smtplib.SMTP, mail_id: int, sender: str, moment: datetime,
              run_id: str, run: Run) -> bool:
    """One message: claim, submit, mark. False when the connection is gone.

    On PostgreSQL, where several HQ processes share the queue, the claim is a row lock
    (`FOR UPDATE SKIP LOCKED`) held from the claim until the outcome is marked, in one
    transaction around the submission: another process's run passes the message over
    instead of taking it too, and a process that dies mid-submission leaves the message
    as it was before the claim (its transaction is rolled back), so the next run sends it
    again, the same bytes - the same promise as a crash on SQLite. On SQLite the claim is
    committed before the submission (one process per file: the write lock is never held
    while the server talks)."""
    holding = chain.db.dialect.postgres
    with chain.db.write() if holding else contextlib.nullcontext():
        return _claim_and_submit(chain, smtp, mail_id, sender, moment, run_id, run)


def claim(conn: Any, mail_id: int, run_id: str, stamp: str) -> Any:
    """Marks message `mail_id` `sending` by run `run_id` when it is due (queued and due, or
    left `sending` by another run), inside the caller's write transaction; its message,
    recipient, Message-ID and attempts, or None when it is not to be sent by this run now
    (sent, not due, or - on PostgreSQL - claimed by another process's open transaction:
    passed over, never waited for)."""
    return conn.execute(
        "UPDATE mail_outbox SET status = 'sending', attempts = attempts + 1,"
        " claimed_by = ?, sending_since = ? WHERE mail_id = (SELECT mail_id FROM"
        " mail_outbox WHERE mail_id = ? AND ((status = 'queued' AND next_attempt_at <= ?)"
        f" OR (status = 'sending' AND {OTHER_RUN})){dialect_of(conn).skip_locked})"
        " RETURNING message, recipient, message_id, attempts",
        (run_id, stamp, mail_id, stamp, run_id)).fetchone()


def _claim_and_submit(chain: Chain, smtp: smtplib.SMTP, mail_id: int, sender: str,
                      moment: datetime, run_id: str, run: Run) -> bool:
    stamp = canonical(moment)
    with chain.db.write() as conn:
        claimed = claim(conn, mail_id, run_id, stamp)
    if claimed is None:
        return True
    if not _consents(chain, mail_id):
        with chain.db.write() as conn:
            conn.execute("UPDATE mail_outbox SET status = 'failed', last_error = ? WHERE"
                         " mail_id = ?", (WITHDRAWN, mail_id))
        run.failed += 1
        return True
    alive = True
    try:
        smtp.sendmail(sender, [claimed["recipient"]], claimed["message"])
    except smtplib.SMTPRecipientsRefused as error:
        code, reply = next(iter(error.recipients.values()))
        outcome, why = _refused(code, reply)
    except smtplib.SMTPSenderRefused as error:  # our sender (mail.from), not the customer
        outcome, why = "retry", _describe(error)
    except smtplib.SMTPDataError as error:
        outcome, why = _refused(error.smtp_code, error.smtp_error)
    except (smtplib.SMTPException, OSError) as error:  # cut off: did the server take it?
        outcome, why, alive = "retry", _describe(error), False
    else:
        outcome, why = "sent", ""
    attempts = int(claimed["attempts"])
    if outcome == "retry" and attempts >= MAX_ATTEMPTS:
        outcome, why = "failed", f"gave up after {attempts} tries: {why}"
    with chain.db.write() as conn:
        if outcome == "sent":
            conn.execute("UPDATE mail_outbox SET status = 'sent', sent_at = ?, message = NULL,"
                         " last_error = NULL WHERE mail_id = ?", (stamp, mail_id))
            run.sent += 1
            run.ids.append(claimed["message_id"])
        elif outcome == "failed":
            conn.execute("UPDATE mail_outbox SET status = 'failed', last_error = ? "
                         "WHERE mail_id = ?", (why, mail_id))
            run.failed += 1
        else:
            later = canonical(moment + timedelta(seconds=backoff_s(attempts)))
            conn.execute("UPDATE mail_outbox SET status = 'queued', next_attempt_at = ?,"
                         " last_error = ? WHERE mail_id = ?", (later, why, mail_id))
            run.retrying += 1
    if outcome != "sent":
        log.warning("mail %s to %s: %s (%s)", claimed["message_id"], claimed["recipient"],
                    outcome, why)
    return alive


def _consents(chain: Chain, mail_id: int) -> bool:
    """Whether the customer still wants e-mail (consent may have gone since it was queued)."""
    row = chain.db.one("SELECT m.customer_id, c.email_consent FROM mail_outbox m LEFT JOIN"
                       " customers c ON c.customer_id = m.customer_id WHERE m.mail_id = ?",
                       (mail_id,))
    if row is None or row["customer_id"] is None:
        return True
    return bool(row["email_consent"])


def _refused(code: int, reply: bytes | str) -> tuple[str, str]:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    why = f"{code} {' '.join(text.split())}"
    return ("failed" if 500 <= code < 600 else "retry"), why


def _describe(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _refused(error.smtp_code, error.smtp_error)[1]
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def listing(chain: Chain, customer_id: str | None = None, limit: int = 200
            ) -> list[dict[str, Any]]:
    """The latest messages (a customer's, or all), newest first, without their bytes."""
    where, params = ("WHERE customer_id = ?", [customer_id]) if customer_id else ("", [])
    rows = chain.db.all(
        "SELECT mail_id, message_id, customer_id, kind, about, recipient, subject, status,"
        f" attempts, queued_at, next_attempt_at, sent_at, last_error FROM mail_outbox {where}"
        " ORDER BY mail_id DESC LIMIT ?", [*params, limit])
    return [dict(r) for r in rows]
