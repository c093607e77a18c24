"""Bank statements imported at HQ: read, matched against the invoices, stamped, remembered.

`import_statement(chain, data)` reads a camt.053 or MT940 file (`banking.reader`), and in
ONE write transaction (under HQ's fact numbering, `ingest.making_hq_facts`: the same file
imported through two HQ processes at once is imported once, the other import finding it
imported): looks up which of its entries were imported before (by identity),
matches the rest against HQ's invoices (`banking.matching.match`: what each still owes,
paid ones as owing nothing so a payment to them is an overpayment), stamps every matched
payment through `hq.invoices.record_bank_payment` - the same function as the back office's
bank-payment form and the admin API - with the statement's reference, and stores every new
entry with what became of it. So a second import of the same file, or of another file
holding the same bookings, changes nothing; a file that cannot be read changes nothing.
Suggestions (amount and name fit, no reference) stamp nothing: a clerk confirms one with
`confirm` (admin API `POST /v1/admin/statement-matches/{id}/confirm`). Overpayments are
never stamped, only listed; part payments are stamped and leave the invoice open.
Both are made by someone (`by`: the admin token's holder, `cli:<user>`) and audited in the
same transaction (hq/audit.py): an import that stored anything new as `statement.import`
(what it stamped and suggested; an import that changed nothing records nothing), a
confirmation as `statement.confirm` (the invoice, suggested -> matched).
Promises: the report lists every entry of the file once. Must never: stamp an entry twice.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta

from pydantic import BaseModel, RootModel

from banking.matching import Allocation, Match, OpenInvoice, match
from banking.reader import parse_statements
from banking.statement import Statement
from hq import audit, invoices
from hq.audit import Actor
from hq.chain import Chain
from hq.ingest import making_hq_facts
from schema.customerstore import display_name
from schema.errors import Conflict, InvalidRequest, NotFound
from schema.money import money
from schema.timing import parse

GROUPS = ("matched", "suggested", "overpayment", "unmatched", "not_a_payment", "duplicate")
PAID_HORIZON = timedelta(days=400)  # a paid invoice older than this is not looked at


class StatementSummary(BaseModel):
    statement_id: str
    format: str
    account: str
    currency: str
    from_date: date | None
    to_date: date | None
    entries: int


class ReportEntry(BaseModel):
    """One entry of the file and what the import made of it; `entry_id` names it for a
    clerk's confirmation (a duplicate names the entry imported before)."""

    entry_id: int
    identity: str
    statement_id: str
    position: str
    booking_date: date | None
    amount: int
    currency: str
    direction: str
    debtor_name: str | None
    creditor_reference: str | None
    remittance: str
    statement_reference: str
    status: str
    via: str | None
    invoices: list[str]
    allocations: list[Allocation]
    part_payment: bool
    reason: str


class StatementMatches(RootModel[list[ReportEntry]]):
    """Suggested matches waiting for a clerk, oldest first."""


class StatementReport(BaseModel):
    statements: list[StatementSummary]
    entries: list[ReportEntry]
    counts: dict[str, int]


def _open_invoices(conn: sqlite3.Connection, since: date) -> list[OpenInvoice]:
    rows = conn.execute(
        "SELECT i.number, i.amount, i.paid_amount, c.kind, c.given_name, c.surname, c.name"
        " FROM invoices i LEFT JOIN customers c ON c.customer_id = i.customer_id"
        " WHERE i.status != 'paid' OR i.paid_on IS NULL OR i.paid_on >= ?",
        (since.isoformat(),)).fetchall()
    return [OpenInvoice(number=r["number"], reference=invoices.payment_reference(r["number"]),
                        owed=max(r["amount"] - r["paid_amount"], 0),
                        customer_name=display_name(dict(r)) or "-") for r in rows]


def _seen(conn: sqlite3.Connection, identities: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(identities), 500):
        chunk = identities[start:start + 500]
        found.update((r[0], r[1]) for r in conn.execute(
            f"SELECT identity, entry_id FROM statement_entries WHERE identity IN"
            f" ({','.join('?' * len(chunk))})", chunk))
    return found


def import_statement(chain: Chain, data: bytes, by: Actor) -> StatementReport:
    """Imports a statement file (see the module's docstring); `invalid_statement` if it
    cannot be read, and then nothing changes. With `by` (who imports it: the back office's
    operator, the command line, the admin API) every payment it stamps is audited."""
    statements = parse_statements(data)
    entries = [entry for statement in statements for entry in statement.entries]
    now = chain.clock()
    today = parse(now)
    days = [e.booking_date for e in entries if e.booking_date] or [
        today.date() if today else date.min + PAID_HORIZON]
    reported: list[ReportEntry] = []
    # the same file imported through another HQ process at once: after it, seeing it
    with making_hq_facts(chain) as conn:
        seen = _seen(conn, [e.identity for e in entries])
        matches = match(entries, _open_invoices(conn, min(days) - PAID_HORIZON),
                        currency=invoices.CURRENCY, seen=seen)
        stored: dict[str, int] = {}
        for found in matches:
            if found.status == "duplicate":
                entry_id = seen.get(found.identity) or stored.get(found.identity, 0)
            else:
                for allocation in found.allocations if found.status == "matched" else ():
                    invoices.record_bank_payment(
                        chain, conn, allocation.number, allocation.amount,
                        found.entry.statement_reference, by=by,
                        how=f"statement import, entry {found.entry.position}")
                entry_id = _store(conn, found, now)
                stored[found.identity] = entry_id
            reported.append(_reported(found, entry_id))
        if stored:
            _audit_import(conn, by, statements, [r for r in reported
                                                 if r.status != "duplicate"])
    chain.waiters.notify()
    counts = {group: sum(1 for e in reported if e.status == group) for group in GROUPS}
    return StatementReport(
        statements=[StatementSummary(
            statement_id=s.statement_id, format=s.format, account=s.account,
            currency=s.currency, from_date=s.from_date, to_date=s.to_date,
            entries=len(s.entries)) for s in statements],
        entries=reported, counts=counts)


def _audit_import(conn: sqlite3.Connection, by: Actor, statements: list[Statement],
                  new: list[ReportEntry]) -> None:
    """One audit row for an import that stored new entries: what it stamped (invoice
    numbers, the amount), how many it suggested and left unmatched."""
    stamped = sorted({a.number for e in new for a in e.allocations if e.status == "matched"})
    paid = sum(a.amount for e in new for a in e.allocations if e.status == "matched")
    audit.record(conn, by, "statement.import",
                 ("statement", ", ".join(s.statement_id for s in statements)[:200]), None,
                 {"entries": len(new), "stamped": stamped, "paid_amount": paid,
                  "suggested": sum(1 for e in new if e.status == "suggested"),
                  "overpayments": sum(1 for e in new if e.status == "overpayment"),
                  "unmatched": sum(1 for e in new if e.status == "unmatched")})


def _store(conn: sqlite3.Connection, found: Match, now: str) -> int:
    entry = found.entry
    cur = conn.execute(
        "INSERT INTO statement_entries (identity, imported_at, statement_id, account, position,"
        " statement_reference, booking_date, amount, currency, direction, debtor_name,"
        " remittance, creditor_reference, status, via, invoices, allocations, part_payment,"
        " reason) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING entry_id",
        (entry.identity, now, entry.statement_id, entry.account, entry.position,
         entry.statement_reference,
         entry.booking_date.isoformat() if entry.booking_date else None, entry.amount,
         entry.currency, entry.direction, entry.debtor_name, entry.remittance,
         entry.creditor_reference, found.status, found.via, json.dumps(list(found.invoices)),
         json.dumps([a.model_dump() for a in found.allocations]), int(found.part_payment),
         found.reason))
    return int(cur.fetchone()[0])


def _reported(found: Match, entry_id: int) -> ReportEntry:
    entry = found.entry
    return ReportEntry(
        entry_id=entry_id, identity=entry.identity, statement_id=entry.statement_id,
        position=entry.position, booking_date=entry.booking_date, amount=entry.amount,
        currency=entry.currency, direction=entry.direction, debtor_name=entry.debtor_name,
        creditor_reference=entry.creditor_reference, remittance=entry.remittance,
        statement_reference=entry.statement_reference, status=found.status, via=found.via,
        invoices=list(found.invoices), allocations=list(found.allocations),
        part_payment=found.part_payment, reason=found.reason)


def _row_entry(row: sqlite3.Row) -> ReportEntry:
    return ReportEntry(
        entry_id=row["entry_id"], identity=row["identity"], statement_id=row["statement_id"],
        position=row["position"],
        booking_date=date.fromisoformat(row["booking_date"]) if row["booking_date"] else None,
        amount=row["amount"], currency=row["currency"], direction=row["direction"],
        debtor_name=row["debtor_name"], creditor_reference=row["creditor_reference"],
        remittance=row["remittance"], statement_reference=row["statement_reference"],
        status=row["status"], via=row["via"], invoices=json.loads(row["invoices"]),
        allocations=[Allocation.model_validate(a) for a in json.loads(row["allocations"])],
        part_payment=bool(row["part_payment"]), reason=row["reason"])


def suggestions(chain: Chain) -> list[ReportEntry]:
    """Suggested matches no clerk has confirmed yet, oldest first."""
    rows = chain.db.all("SELECT * FROM statement_entries WHERE status = 'suggested' "
                        "ORDER BY entry_id")
    return [_row_entry(r) for r in rows]


def confirm(chain: Chain, entry_id: int, number: str | None = None, *,
            by: Actor) -> ReportEntry:
    """A clerk (`by`) confirms a suggested match: the payment is stamped on `number` (which
    may be left out when one invoice was suggested) like any bank payment, audited with
    who confirmed it. Confirming the same again answers the same and changes nothing; an
    invoice paid meanwhile is `overpayment` and nothing changes."""
    with making_hq_facts(chain) as conn:  # a double click reaching two HQ processes: once
        row = conn.execute("SELECT * FROM statement_entries WHERE entry_id = ?",
                           (entry_id,)).fetchone()
        if row is None:
            raise NotFound(f"no imported statement entry {entry_id}")
        if row["confirmed_at"] is not None:
            if number in (None, row["confirmed_invoice"]):
                return _row_entry(row)
            raise Conflict(f"entry {entry_id} was confirmed for invoice "
                           f"{row['confirmed_invoice']} already", entry=entry_id)
        if row["status"] != "suggested":
            raise Conflict(f"entry {entry_id} is {row['status'].replace('_', ' ')}: only a"
                           " suggested match is confirmed", entry=entry_id)
        candidates: list[str] = json.loads(row["invoices"])
        if number is None:
            if len(candidates) != 1:
                raise InvalidRequest(f"entry {entry_id} fits several invoices: name one of"
                                     f" {', '.join(candidates)}", entry=entry_id)
            number = candidates[0]
        elif number not in candidates:
            raise InvalidRequest(f"invoice {number} was not suggested for entry {entry_id}:"
                                 f" name one of {', '.join(candidates)}", entry=entry_id)
        invoices.record_bank_payment(
            chain, conn, number, row["amount"], row["statement_reference"], by=by,
            how=f"confirmed suggestion #{entry_id} (entry {row['position']}: amount and name)")
        conn.execute(
            "UPDATE statement_entries SET status = 'matched', allocations = ?,"
            " confirmed_at = ?, confirmed_invoice = ? WHERE entry_id = ?",
            (json.dumps([{"number": number, "amount": row["amount"]}]), chain.clock(),
             number, entry_id))
        done = conn.execute("SELECT * FROM statement_entries WHERE entry_id = ?",
                            (entry_id,)).fetchone()
        audit.record(conn, by, "statement.confirm", ("statement_entry", str(entry_id)),
                     {"status": "suggested", "invoice": None},
                     {"status": "matched", "invoice": number},
                     f"{money(row['amount'])} paid at the bank, reference "
                     f"{row['statement_reference']}")
    chain.waiters.notify()
    return _row_entry(done)

