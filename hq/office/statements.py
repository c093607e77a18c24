"""Bank statements in the back office, for operators (docs/statements.md, "The upload page"):
upload a camt.053 or MT940 file and see what was read (statements, entries, credits and
debits, account, period), what was stamped paid, the suggestions a clerk confirms (one
click each, with the reason and the invoice's customer beside the payer), overpayments,
what could not be matched and what is no payment; the suggestions no clerk has confirmed
yet, from every import.

The page calls what `loyalty hq import-statement` and the admin API call:
`hq.statements.import_statement` (one transaction: the same file again changes nothing, and
the page says so; a file that cannot be read is `invalid_statement`, shown with its
message, and nothing changes) and `hq.statements.confirm`. Every payment stamped here is
audited with the operator who uploaded or confirmed it."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response

from banking.statement import decimals, shown
from hq import admin, invoices, statements
from hq.audit import Actor
from hq.office.context import Office, see_other
from schema.errors import Conflict, InvalidRequest, NotFound
from schema.roles import Role
from web.office import money

# the report's groups in the order a clerk deals with them, with their headings
GROUPS = {
    "matched": "Stamped paid",
    "suggested": "Suggested: confirm each one",
    "overpayment": "Overpayments: not stamped, refund or settle by hand",
    "unmatched": "Not matched",
    "not_a_payment": "Not payments",
    "duplicate": "Imported before: nothing changed",
}
MAX_ENTRY_ID = 2**63 - 1


def amount(minor: int, currency: str) -> str:
    """An amount of a statement as the invoices show money (1,234.50), in the file's own
    decimals for a currency with another minor unit."""
    return money(minor) if decimals(currency) == 2 else shown(minor, currency)


def read_summary(report: statements.StatementReport) -> dict[str, Any]:
    """What was read: per statement its entries, credits and debits; totals when the file
    holds one currency."""
    rows: list[dict[str, Any]] = []
    for s in report.statements:
        mine = [e for e in report.entries if e.statement_id == s.statement_id]
        credits = sum(e.amount for e in mine if e.direction == "credit")
        debits = sum(e.amount for e in mine if e.direction == "debit")
        rows.append({"s": s, "entries": s.entries, "credits": amount(credits, s.currency),
                     "debits": amount(debits, s.currency)})
    currencies = {s.currency for s in report.statements}
    total = None
    if len(currencies) == 1:
        currency = currencies.pop()
        every = report.entries
        total = {"entries": len(every), "currency": currency,
                 "credits": amount(sum(e.amount for e in every if e.direction == "credit"),
                                   currency),
                 "debits": amount(sum(e.amount for e in every if e.direction == "debit"),
                                  currency)}
    return {"rows": rows, "total": total}


def router(office: Office) -> APIRouter:
    routes = office.router(role=Role.operator)
    chain = office.chain
    Operator = Annotated[Actor, Depends(office.form(Role.operator))]

    def candidates(entries: list[statements.ReportEntry]) -> dict[str, dict[str, Any]]:
        """The invoices named by suggestions: their customer's name and what they owe."""
        found: dict[str, dict[str, Any]] = {}
        for e in entries:
            for number in e.invoices:
                if number not in found:
                    try:
                        found[number] = invoices.invoice(chain, number)
                    except NotFound:
                        continue
        names = admin.customer_names(chain, [i["customer_id"] for i in found.values()])
        return {n: {"customer": names.get(i["customer_id"], ""), "status": i["status"],
                    "owed": max(i["amount"] - i["paid_amount"], 0)} for n, i in found.items()}

    def page(request: Request, http_status: int = 200, *,
             report: statements.StatementReport | None = None, file_name: str = "",
             error: str | None = None, done: str | None = None) -> HTMLResponse:
        waiting = [] if report is not None else statements.suggestions(chain)
        shown_entries = (report.entries if report is not None else []) + waiting
        groups = {}
        if report is not None:
            groups = {g: [e for e in report.entries if e.status == g] for g in GROUPS}
        return office.page(
            request, "statements.html", http_status, title="Bank statements", report=report,
            read=read_summary(report) if report is not None else None, file_name=file_name,
            groups=groups, titles=GROUPS, waiting=waiting,
            invoices_of=candidates([e for e in shown_entries if e.status == "suggested"]),
            amount=amount, error=error, done=done)

    @routes.get("/statements")
    def statement_page(request: Request,
                       confirmed: Annotated[int | None, Query(ge=1, le=MAX_ENTRY_ID)] = None,
                       invoice: Annotated[str, Query(max_length=40)] = "") -> HTMLResponse:
        done = (f"Suggestion #{confirmed} confirmed: invoice {invoice} is stamped with the "
                "payment." if confirmed and invoice else None)
        return page(request, done=done)

    @routes.post("/statements")
    def statement_upload(request: Request, actor: Operator,
                         statement: Annotated[UploadFile | None, File()] = None) -> Response:
        if statement is None:
            return page(request, 422, error="choose the statement file (camt.053 or MT940) "
                        "the bank sent, then Import [invalid_request]")
        data = statement.file.read()
        name = statement.filename or ""
        try:
            report = statements.import_statement(chain, data, by=actor)
        except InvalidRequest as exc:  # invalid_statement: nothing of the file was used
            return page(request, exc.status, file_name=name,
                        error=f"{name}: {exc.message} [{exc.code}]" if name else
                        f"{exc.message} [{exc.code}]")
        return page(request, report=report, file_name=name)

    @routes.post("/statements/matches/{entry_id}/confirm")
    def statement_confirm(request: Request, entry_id: int, actor: Operator,
                          invoice: Annotated[str, Form(max_length=40)] = "") -> Response:
        if not 1 <= entry_id <= MAX_ENTRY_ID:
            raise NotFound(f"no imported statement entry {entry_id}")
        try:
            done = statements.confirm(chain, entry_id, invoice or None, by=actor)
        except (InvalidRequest, Conflict, NotFound) as exc:  # overpayment is a Conflict
            return page(request, exc.status, error=f"{exc.message} [{exc.code}]")
        number = done.allocations[0].number if done.allocations else invoice
        return see_other(request, f"/statements?confirmed={entry_id}&invoice={quote(number)}")

    return routes
