"""Reads ISO 20022 camt.053 bank-to-customer statements into `Statement`s (pure).

Any version from camt.053.001.02 on: elements are found by their local names, so the
version's namespace only has to say camt.053; what moved between versions is read in
both places (`Sts` or `Sts/Cd`, `Dbtr/Nm` or `Dbtr/Pty/Nm`, a transaction's `Amt` or
`AmtDtls/TxAmt/Amt`). A batch entry with several `TxDtls` becomes one entry per
transaction when each has its amount (they must add up to the entry); when the bank did
not itemise the amounts it stays one entry (`transaction` 0) for a clerk to split.
XML is read with defusedxml and any DTD is refused: a statement never has one, and a DTD is
how entity bombs (billion laughs) and external entities (reading local files) get in.
Promises: a malformed file is refused with InvalidStatement naming the statement, the
entry (`3` or `3.2`) and the element. Must never: expand an entity, fetch anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import NoReturn
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from banking.statement import (
    Direction,
    Entry,
    Statement,
    check_balances,
    entry_identity,
    minor_units,
    shown,
    unique_identities,
)
from schema.errors import InvalidStatement

_NAMESPACE = re.compile(
    r"urn:iso:std:iso:20022:tech:xsd:(?P<message>[a-z]{4}\.\d{3})\.\d{3}\.(?P<version>\d{2})")
_KNOWN = {
    "camt.052": "an account report (camt.052)",
    "camt.054": "a debit/credit notification (camt.054)",
    "pain.001": "a payment order (pain.001)",
    "pain.008": "a direct debit order (pain.008)",
    "pain.002": "a payment status report (pain.002)",
}
_NOT_PROVIDED = "NOTPROVIDED"


class _Where:
    """Where in the file we are, for error messages: statement, entry, transaction."""

    def __init__(self, statement: str, entry: int | None = None,
                 transaction: int | None = None) -> None:
        self.statement, self.entry, self.transaction = statement, entry, transaction

    def position(self) -> str | None:
        if self.entry is None:
            return None
        return f"{self.entry}.{self.transaction}" if self.transaction else str(self.entry)

    def __str__(self) -> str:
        position = self.position()
        return f"statement {self.statement}" + (f", entry {position}" if position else "")

    def fail(self, tag: str, message: str) -> NoReturn:
        raise InvalidStatement(f"{self}, <{tag}>: {message}", statement=self.statement,
                               entry=self.position(), tag=tag)


def _local(element: Element) -> str:
    return element.tag.rpartition("}")[2]


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if _local(child) == name)


def _child(element: Element | None, *path: str) -> Element | None:
    for name in path:
        if element is None:
            return None
        element = next(_children(element, name), None)
    return element


def _text(element: Element | None, *path: str) -> str | None:
    found = _child(element, *path)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def _date(element: Element | None, where: _Where, tag: str) -> date | None:
    """`Dt` (2026-03-15) or `DtTm` (2026-03-15T10:30:00+01:00): the bank's calendar date."""
    text = _text(element, "Dt") or _text(element, "DtTm")
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        where.fail(tag, f"{text!r} is not a date")


def _amount(element: Element | None, where: _Where, tag: str = "Amt",
            currency: str | None = None) -> tuple[int, str]:
    if element is None or element.text is None:
        where.fail(tag, "the amount is missing")
    found = element.get("Ccy")
    if found is None:
        where.fail(tag, "the amount has no currency (Ccy)")
    if currency is not None and found != currency:
        where.fail(tag, f"the amount is in {found}, the account in {currency}")
    try:
        return minor_units(element.text, found), found
    except InvalidStatement as error:
        where.fail(tag, error.message)


def _direction(text: str | None, where: _Where) -> Direction:
    if text == "CRDT":
        return "credit"
    if text == "DBIT":
        return "debit"
    where.fail("CdtDbtInd", "CRDT or DBIT is needed" + (f", not {text!r}" if text else ""))


def parse(data: bytes) -> list[Statement]:
    """Every statement (`Stmt`) in a camt.053 document, in file order."""
    trimmed = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if trimmed.startswith(b"<"):  # blank lines before <?xml: harmless, not well-formed XML
        data = trimmed
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise InvalidStatement(
            "the file declares a DTD or entities (<!DOCTYPE ...>): a camt.053 statement never"
            " does, and such a file is not read (entity bombs, external files)") from None
    except ParseError as error:
        raise InvalidStatement(f"the XML is not well-formed ({error}): the file is damaged or"
                               " not a camt.053 statement") from None
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    kind = _NAMESPACE.fullmatch(namespace)
    if kind is None or _local(root) != "Document":
        raise InvalidStatement(
            "not a camt.053 statement: its root is not an ISO 20022 Document in a"
            f" camt.053 namespace (found {root.tag!r})")
    if kind.group("message") != "camt.053":
        what = _KNOWN.get(kind.group("message"), kind.group("message"))
        raise InvalidStatement(f"this file is {what}, not a camt.053 bank statement: ask the"
                               " bank for the statement (camt.053)")
    body = _child(root, "BkToCstmrStmt")
    statements = list(_children(body, "Stmt")) if body is not None else []
    if not statements:
        raise InvalidStatement("the camt.053 document holds no statement (Stmt)")
    return [_statement(element, n) for n, element in enumerate(statements, 1)]


@dataclass(frozen=True)
class _Account:
    statement_id: str
    account: str
    key: str  # what makes the statement unique, for derived entry identities


@dataclass(frozen=True)
class _Tx:
    """What one `TxDtls` says (all optional)."""

    reference: str | None = None  # its AcctSvcrRef
    end_to_end_id: str | None = None
    creditor_reference: str | None = None
    remittance: str = ""
    debtor_name: str | None = None


def _statement(element: Element, n: int) -> Statement:
    statement_id = _text(element, "Id")
    where = _Where(statement_id or f"#{n}")
    if statement_id is None:
        where.fail("Id", "the statement has no Id")
    account_id = _child(element, "Acct", "Id")
    account = _text(account_id, "IBAN") or _text(account_id, "Othr", "Id")
    if account is None:
        where.fail("Acct", "the statement names no account (Acct/Id/IBAN or Othr/Id)")
    currency = _text(element, "Acct", "Ccy")
    balances: dict[str, int] = {}
    for balance in _children(element, "Bal"):
        code = _text(balance, "Tp", "CdOrPrtry", "Cd") or ""
        if code in ("OPBD", "PRCD", "CLBD"):
            value, found = _amount(_child(balance, "Amt"), where, "Bal", currency)
            currency = currency or found
            if _direction(_text(balance, "CdtDbtInd"), where) == "debit":
                value = -value
            balances.setdefault("close" if code == "CLBD" else "open", value)
    ntries = list(_children(element, "Ntry"))
    first_amount = _child(ntries[0], "Amt") if ntries else None
    currency = currency or (first_amount.get("Ccy") if first_amount is not None else None)
    if currency is None:
        where.fail("Acct", "the statement has no currency (Acct/Ccy)")
    key = "|".join([statement_id, _text(element, "ElctrncSeqNb") or "",
                    _text(element, "LglSeqNb") or "", account])
    context = _Account(statement_id, account, key)
    entries = [entry for index, ntry in enumerate(ntries, 1)
               for entry in _entry(ntry, _Where(statement_id, index), context)]
    period = _child(element, "FrToDt")
    dates = [_text(period, "FrDtTm"), _text(period, "ToDtTm")]
    try:
        from_date, to_date = (date.fromisoformat(d[:10]) if d else None for d in dates)
    except ValueError:
        where.fail("FrToDt", f"{dates[0]!r} .. {dates[1]!r} is not a period")
    statement = Statement(format="camt.053", statement_id=statement_id, account=account,
                          currency=currency, from_date=from_date, to_date=to_date,
                          opening_balance=balances.get("open"),
                          closing_balance=balances.get("close"),
                          entries=tuple(unique_identities(entries)))
    check_balances(statement, str(where))
    return statement


def _entry(ntry: Element, where: _Where, context: _Account) -> list[Entry]:
    amount, currency = _amount(_child(ntry, "Amt"), where)
    direction = _direction(_text(ntry, "CdtDbtInd"), where)
    reversal = (_text(ntry, "RvslInd") or "").lower() in ("true", "1")
    status = _text(ntry, "Sts", "Cd") or _text(ntry, "Sts", "Prtry") or _text(ntry, "Sts")
    if status is None:
        where.fail("Sts", "the entry has no status (BOOK, PDNG, INFO)")
    index = where.entry or 0
    booking_date = _date(_child(ntry, "BookgDt"), where, "BookgDt")
    value_date = _date(_child(ntry, "ValDt"), where, "ValDt")
    entry_reference = _text(ntry, "AcctSvcrRef")

    def make(transaction: int, batch_size: int, amount: int, direction: Direction, tx: _Tx,
             bank_reference: str | None) -> Entry:
        mark = ("RD" if direction == "credit" else "RC") if reversal else direction[0].upper()
        identity = entry_identity(
            statement_key=context.key, account=context.account, bank_reference=bank_reference,
            index=index, transaction=transaction, batch_size=batch_size, mark=mark,
            amount=amount, booking_date=booking_date)
        return Entry(
            identity=identity, statement_id=context.statement_id, account=context.account,
            index=index, transaction=transaction, batch_size=batch_size,
            booked=status == "BOOK", booking_date=booking_date, value_date=value_date,
            amount=amount, currency=currency, direction=direction, reversal=reversal,
            bank_reference=bank_reference, entry_reference=_text(ntry, "NtryRef"),
            end_to_end_id=tx.end_to_end_id, creditor_reference=tx.creditor_reference,
            remittance=tx.remittance, debtor_name=tx.debtor_name)

    txs = [tx for details in _children(ntry, "NtryDtls") for tx in _children(details, "TxDtls")]
    announced = max([int(n) for details in _children(ntry, "NtryDtls")
                     if (n := _text(details, "Btch", "NbOfTxs")) and n.isdigit()] or [1])
    if len(txs) <= 1:
        tx = _transaction(txs[0]) if txs else _Tx()
        if announced > 1:  # a batch the bank did not itemise at all
            return [make(0, announced, amount, direction, _unitemised([]), entry_reference)]
        return [make(1, 1, amount, direction, tx, entry_reference or tx.reference)]
    owns = [_tx_amount(tx, currency, _Where(where.statement, index, t), direction)
            for t, tx in enumerate(txs, 1)]
    itemised = [own for own in owns if own is not None]
    if len(itemised) < len(owns):
        return [make(0, len(txs), amount, direction, _unitemised(txs), entry_reference)]
    signed = sum(a if d == "credit" else -a for a, d in itemised)
    if signed != (amount if direction == "credit" else -amount):
        where.fail("TxDtls", f"its {len(txs)} transactions add up to {shown(signed, currency)},"
                   f" the entry says {shown(amount, currency)} {currency} ({direction})")
    made = []
    for t, (tx_xml, (tx_amount, tx_direction)) in enumerate(zip(txs, itemised, strict=True), 1):
        tx = _transaction(tx_xml)
        made.append(make(t, len(txs), tx_amount, tx_direction, tx,
                         tx.reference or entry_reference))
    return made


def _tx_amount(tx: Element, currency: str, where: _Where,
               direction: Direction) -> tuple[int, Direction] | None:
    """A transaction's own amount in the account's currency (`Amt` from .04, `AmtDtls/TxAmt/
    Amt` in every version), or None when the bank did not give one."""
    for path in (("Amt",), ("AmtDtls", "TxAmt", "Amt")):
        found = _child(tx, *path)
        if found is not None and found.get("Ccy") == currency:
            own = _text(tx, "CdtDbtInd")
            return _amount(found, where)[0], _direction(own, where) if own else direction
    return None


def _transaction(tx: Element) -> _Tx:
    refs = _child(tx, "Refs")
    end_to_end = _text(refs, "EndToEndId")
    remittance = _child(tx, "RmtInf")
    texts: list[str] = []
    references: list[str] = []
    if remittance is not None:
        texts = [el.text.strip() for el in _children(remittance, "Ustrd")
                 if el.text and el.text.strip()]
        references = [ref for strd in _children(remittance, "Strd")
                      if (ref := _text(strd, "CdtrRefInf", "Ref"))]
    debtor = _child(tx, "RltdPties", "Dbtr")
    return _Tx(reference=_text(refs, "AcctSvcrRef"),
               end_to_end_id=None if end_to_end == _NOT_PROVIDED else end_to_end,
               creditor_reference=references[0] if references else None,
               remittance="\n".join(texts + references[1:]),
               debtor_name=_text(debtor, "Nm") or _text(debtor, "Pty", "Nm"))


def _unitemised(txs: list[Element]) -> _Tx:
    """A batch without amounts per transaction: its texts, nothing that could match alone."""
    return _Tx(remittance="\n".join(t for tx in txs if (t := _transaction(tx).remittance)))
