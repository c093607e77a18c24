"""Reads SWIFT MT940 customer statements into `Statement`s (pure).

The tags are read by the mt-940 library (maintained, typed, no dependencies of its own;
it knows the German `?`-structured :86: with its SEPA keywords EREF+, SVWZ+) with all its
fixes switched on (`Options.all()`), and always from a text stream, so it never takes the
data for a file name. This module adds what the library lets through: the mandatory tags
(:25:, :60F:/:60M:, :62F:/:62M:) must be there; every :61: must become its own entry (the
library silently adds a line without its transaction type to the one before); amounts
must be exact in the currency's minor units; an unreadable line is named by its entry.
The :86: details are read in three shapes: German `?`-fields (via the library), the
`/CODE/value` fields of Dutch and Belgian banks (/EREF/, /REMI/USTD// or
/REMI/STRD/CUR/<reference>, /NAME/), else free text kept as written.
Marks: C credit, D debit, RC reversal of a credit (money leaves: a debit), RD reversal of
a debit (money comes back: a credit). A line without an entry date is booked on its value
date. Bytes are UTF-8, else Windows-1252; a SWIFT FIN envelope ({1:...}{4: ... -}) is
unwrapped, and a file may hold several statements (each starts at :20:).
Must never: read a file, accept an amount it cannot convert exactly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import mt940 as swift

from banking.statement import (
    Direction,
    Entry,
    Statement,
    check_balances,
    entry_identity,
    minor_units,
    unique_identities,
)
from schema.errors import InvalidStatement

_OPTIONS = swift.Options.all()
_STATEMENT = re.compile(r"(?m)^:20:")
_LINE = re.compile(r"(?m)^:61:")
_CLOSING = re.compile(r"(?m)^:6[2-5][FM]?:")
_BLOCK4 = re.compile(r"\{4:[ \t]*\n(.*?)\n-\}", re.DOTALL)
_GERMAN = re.compile(r"^\d{3}\?\d\d")
_SLASH_CODES = ("CDTRREFTP", "CDTRREF", "EREF", "REMI", "NAME", "IBAN", "BIC", "ADDR", "TRCD",
                "CSID", "MARF", "RTRN", "PREF", "ORDP", "BENM", "ULTC", "ULTD", "PURP", "ISDT",
                "CNTP", "SVCL", "EXCH", "CHGS", "TRTP")
_SLASH = re.compile(f"/({'|'.join(_SLASH_CODES)})/")
_MARKS: dict[str, tuple[Direction, bool]] = {
    "C": ("credit", False), "D": ("debit", False), "RC": ("debit", True), "RD": ("credit", True)}
_OPENING = ("final_opening_balance", "intermediate_opening_balance", "opening_balance")
_CLOSED = ("final_closing_balance", "intermediate_closing_balance", "closing_balance")
_NOT_PROVIDED = "NOTPROVIDED"


def _keep_details(_transactions: Any, _tag: Any, tag_dict: dict[str, Any]) -> dict[str, Any]:
    """Keeps the :86: text as written; the library replaces it by its ?-fields."""
    tag_dict["details_as_written"] = tag_dict.get("transaction_details") or ""
    return tag_dict


_PROCESSORS: dict[str, list[Callable[..., dict[str, Any]]]] = {
    "pre_transaction_details": [_keep_details]}


def parse(data: bytes) -> list[Statement]:
    """Every statement in the MT940 file, in file order."""
    text = _unwrap(_decode(data))
    starts = [m.start() for m in _STATEMENT.finditer(text)]
    if not starts:
        raise InvalidStatement("no :20: tag: this is not an MT940 statement")
    blocks = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]
    return [_statement(block, n) for n, block in enumerate(blocks, 1)]


def _decode(data: bytes) -> str:
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _unwrap(text: str) -> str:
    """The text blocks of SWIFT FIN envelopes; a file without envelopes as it is."""
    if "{1:" not in text and "{4:" not in text:
        return text
    blocks = _BLOCK4.findall(text)
    if not blocks:
        raise InvalidStatement("a SWIFT envelope without its text block ({4: ... -}): the"
                               " file is incomplete: ask the bank for it again")
    return "\n".join(blocks)


def _refusal(where: str, message: str, *, entry: int | None = None,
             tag: str | None = None) -> InvalidStatement:
    """`where` is "statement <:20: reference>"; the context names the statement alone."""
    return InvalidStatement(message, statement=where.removeprefix("statement "),
                            entry=str(entry) if entry else None, tag=tag)


def _read(block: str) -> swift.models.Transactions:
    return swift.parse(io.StringIO(block), options=_OPTIONS, processors=_PROCESSORS)


def _statement(block: str, n: int) -> Statement:
    block = "\n".join(line for line in block.split("\n")
                      if line.strip() not in ("-", "-}")).strip()
    reference = block.split("\n", 1)[0][4:].strip()
    where = f"statement {reference or f'#{n}'}"
    try:
        parsed = _read(block)
    except Exception as error:  # noqa: BLE001 - the library raises whatever its parsers do
        raise _located(block, where, error) from None
    data = parsed.data
    account = str(data.get("account_identification") or "").strip()
    opening = next((data[key] for key in _OPENING if data.get(key)), None)
    closing = next((data[key] for key in _CLOSED if data.get(key)), None)
    for tag, missing in ((":25:", not account), (":60F:", opening is None),
                         (":62F:", closing is None)):
        if missing:
            raise _refusal(where, f"{where}: the mandatory tag {tag} is missing or empty",
                           tag=tag)
    assert opening is not None and closing is not None
    currency = str(opening.amount.currency or "")
    open_minor = _balance(opening, currency, where, ":60F:")
    statement_id = "/".join(part for part in (
        reference, data.get("statement_number"), data.get("sequence_number")) if part)
    key = "|".join([statement_id, account, str(opening.date), str(open_minor)])

    lines = len(_LINE.findall(block))
    if lines != len(parsed.transactions):
        raise _refusal(
            where, f"{where}: {lines} :61: lines but {len(parsed.transactions)} entries could be"
            " read: a :61: line lacks its transaction type (such as NTRF), so the next line"
            " would be taken as part of it", tag=":61:")
    entries = [_entry(tx.data, index, where, statement_id, account, currency, key)
               for index, tx in enumerate(parsed.transactions, 1)]
    statement = Statement(
        format="mt940", statement_id=statement_id, account=account, currency=currency,
        from_date=_date(opening.date), to_date=_date(closing.date),
        opening_balance=open_minor, closing_balance=_balance(closing, currency, where, ":62F:"),
        entries=tuple(unique_identities(entries)))
    check_balances(statement, where)
    return statement


def _date(value: date | None) -> date | None:
    return date(value.year, value.month, value.day) if value is not None else None


def _minor(value: Any, currency: str, where: str, tag: str, entry: int | None = None) -> int:
    try:
        return minor_units(format(abs(value), "f"), currency)
    except InvalidStatement as error:
        at = f"{where}, entry {entry}" if entry else where
        raise _refusal(where, f"{at}, {tag}: {error.message}", entry=entry, tag=tag) from None


def _balance(balance: Any, currency: str, where: str, tag: str) -> int:
    value = _minor(balance.amount.amount, currency, where, tag)
    return -value if str(balance.status).upper() == "D" else value


def _entry(t: dict[str, Any], index: int, where: str, statement_id: str, account: str,
           currency: str, key: str) -> Entry:
    mark = str(t.get("status") or "").upper()
    if mark not in _MARKS:
        raise _refusal(where, f"{where}, entry {index}, :61:: {mark!r} is not a mark (C, D, RC,"
                       " RD)", entry=index, tag=":61:")
    direction, reversal = _MARKS[mark]
    entry_currency = str(t.get("currency") or currency)
    amount = _minor(t["amount"].amount, entry_currency, where, ":61:", index)
    value_date = _date(t.get("date"))
    booking_date = _date(t.get("entry_date")) or value_date
    bank_reference = str(t.get("bank_reference") or "").strip() or None
    details = _details(t)
    end_to_end = details.get("end_to_end_id")
    return Entry(
        identity=entry_identity(
            statement_key=key, account=account, bank_reference=bank_reference, index=index,
            transaction=1, batch_size=1, mark=mark, amount=amount, booking_date=booking_date),
        statement_id=statement_id, account=account, index=index, transaction=1, batch_size=1,
        booking_date=booking_date, value_date=value_date, amount=amount,
        currency=entry_currency, direction=direction, reversal=reversal,
        bank_reference=bank_reference,
        end_to_end_id=None if end_to_end == _NOT_PROVIDED else end_to_end,
        creditor_reference=details.get("creditor_reference"),
        remittance=details.get("remittance") or "", debtor_name=details.get("debtor_name"))


def _details(t: dict[str, Any]) -> dict[str, str | None]:
    """What the :86: field says, in whichever of the three shapes it came."""
    written = str(t.get("details_as_written") or "").strip()
    if _GERMAN.match(written):
        return {"remittance": t.get("purpose"), "debtor_name": t.get("applicant_name"),
                "end_to_end_id": t.get("end_to_end_reference")}
    if written.startswith("/") and _SLASH.search(written):
        parts = _SLASH.split(written.replace("\n", ""))
        fields = {code: value.removesuffix("/").strip()
                  for code, value in zip(parts[1::2], parts[2::2], strict=True)}
        remittance, reference = fields.get("REMI", ""), None
        if remittance.startswith("STRD/"):
            remittance, reference = "", remittance.rpartition("/")[2] or None
        elif remittance.startswith("USTD/"):
            remittance = remittance[5:].lstrip("/")
        return {"remittance": remittance, "creditor_reference": reference,
                "debtor_name": fields.get("NAME") or None,
                "end_to_end_id": fields.get("EREF") or None}
    return {"remittance": written}


def _located(block: str, where: str, error: Exception) -> InvalidStatement:
    """The library's failure, named by the entry whose line it could not read: found by
    bisecting on how many :61: lines a prefix of the statement holds."""
    starts = [m.start() for m in _LINE.finditer(block)]
    trailer = next((m.start() for m in _CLOSING.finditer(block, starts[-1])), len(block)) \
        if starts else len(block)
    cuts = [*starts, trailer]  # cuts[k]: the statement up to (without) entry k + 1

    def reads(k: int) -> bool:
        try:
            _read(block[:cuts[k]])
        except Exception:  # noqa: BLE001
            return False
        return True

    if isinstance(error, ArithmeticError):
        detail = "an amount is not a number"
    elif isinstance(error, RuntimeError) and len(error.args) >= 3:
        detail = f"{error.args[2]!r} cannot be read"
    else:
        detail = str(error)
    if not reads(0):
        return _refusal(where, f"{where}, the statement's opening tags: {detail}")
    good, bad = 0, len(cuts) - 1
    if reads(bad):
        return _refusal(where, f"{where}, the closing tags (:62F: ...): {detail}")
    while bad - good > 1:
        middle = (good + bad) // 2
        good, bad = (middle, bad) if reads(middle) else (good, middle)
    return _refusal(where, f"{where}, entry {bad} (:61:): {detail}", entry=bad, tag=":61:")
