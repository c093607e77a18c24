"""One model of a bank statement, whichever format it came in (camt.053 or MT940) (pure).

A `Statement` is one account's statement: its id, account (the IBAN when the bank gives
one), currency, period, opening and closing balances and its `Entry`s. An entry is one
payment: a camt.053 batch entry (`Ntry` with several `TxDtls`) becomes one `Entry` per
transaction, numbered `index.transaction`. Amounts are integer minor units, never floats:
`minor_units` converts the file's decimal text exactly and refuses digits below the
currency's minor unit. Every entry has an `identity` that is the same each time the same
statement is read, so importing a statement twice can change nothing: built from the
bank's own reference (`AcctSvcrRef`, MT940 `//` reference) when there is one, otherwise a
hash of the statement, the entry's position, amount and date.
Promises: a statement whose booked entries do not lead from its opening to its closing
balance is refused (a truncated or altered file); entry identities are unique within a
statement. Must never: do I/O, read the clock, hold a float.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schema.errors import InvalidStatement

Direction = Literal["credit", "debit"]
Format = Literal["camt.053", "mt940"]

#: ISO 4217 currencies whose minor unit is not the hundredth; every other is 2 decimals.
CURRENCY_DECIMALS = {
    **dict.fromkeys(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}
MAX_DIGITS = 18  # camt.053's totalDigits; MT940 allows 15
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = {".": re.compile(r"([0-9]+)(?:\.([0-9]*))?"),  # ASCII digits: \d takes any script's
           ",": re.compile(r"([0-9]+)(?:,([0-9]*))?")}


def decimals(currency: str) -> int:
    return CURRENCY_DECIMALS.get(currency, 2)


def minor_units(text: str, currency: str, *, separator: str = ".") -> int:
    """`1234.5` EUR -> 123450, exactly. Refuses signs, exponents, other separators and
    non-zero digits below the currency's minor unit (`0.001` EUR); trailing zeros are
    harmless (`1.230` EUR is 123). The caller adds where the amount stood."""
    if not _CURRENCY.fullmatch(currency):
        raise InvalidStatement(f"{currency!r} is not an ISO 4217 currency code")
    found = _AMOUNT[separator].fullmatch(text.strip())
    if found is None:
        raise InvalidStatement(
            f"{text!r} is not an amount (digits, {separator!r} before the decimals)")
    whole, fraction = found.group(1), found.group(2) or ""
    if len(whole.lstrip("0")) + len(fraction.rstrip("0")) > MAX_DIGITS:
        raise InvalidStatement(f"{text!r} has more than {MAX_DIGITS} digits")
    places = decimals(currency)
    if fraction[places:].strip("0"):
        raise InvalidStatement(
            f"{text!r} has more decimals than {currency} has ({places}): not a whole"
            " number of minor units")
    return int(whole) * 10**places + int(fraction[:places].ljust(places, "0") or "0")


def shown(minor: int, currency: str) -> str:
    """Minor units as the file would write them, for messages: 123450 EUR -> `1234.50`."""
    places = decimals(currency)
    sign = "-" if minor < 0 else ""
    whole, part = divmod(abs(minor), 10**places)
    return f"{sign}{whole}.{part:0{places}d}" if places else f"{sign}{whole}"


class Entry(BaseModel):
    """One payment on a statement. `direction` is where the money went (a reversal of a
    credit is a debit); `reversal` marks entries that undo an earlier one."""

    model_config = ConfigDict(frozen=True)

    identity: str
    statement_id: str
    account: str
    index: int = Field(ge=1, description="the entry's position in its statement, from 1")
    transaction: int = Field(ge=0, description="position in a batch entry, from 1; 0 for a "
                             "batch whose transactions the bank did not itemise")
    batch_size: int = Field(ge=1)
    booked: bool = True
    booking_date: date | None
    value_date: date | None
    amount: int = Field(ge=0, description="minor units of `currency`")
    currency: str
    direction: Direction
    reversal: bool = False
    bank_reference: str | None = None
    entry_reference: str | None = None
    end_to_end_id: str | None = None
    creditor_reference: str | None = None
    remittance: str = ""
    debtor_name: str | None = None

    @property
    def position(self) -> str:
        """Where the entry stands, for people: `3` or `3.2` inside a batch."""
        return f"{self.index}.{self.transaction}" if self.batch_size > 1 else str(self.index)

    @property
    def statement_reference(self) -> str:
        """What an invoice paid by this entry is stamped with: the statement and the bank's
        reference (or the entry's position): `STMT-20260315-001 2026031500001`."""
        return f"{self.statement_id} {self.bank_reference or f'entry {self.position}'}"

    @property
    def mark(self) -> str:
        """MT940's debit/credit mark: C, D, RC (reversal of a credit: a debit), RD."""
        if self.reversal:
            return "RD" if self.direction == "credit" else "RC"
        return "C" if self.direction == "credit" else "D"


class Statement(BaseModel):
    model_config = ConfigDict(frozen=True)

    format: Format
    statement_id: str
    account: str
    currency: str
    from_date: date | None = None
    to_date: date | None = None
    opening_balance: int | None = Field(None, description="signed minor units")
    closing_balance: int | None = Field(None, description="signed minor units")
    entries: tuple[Entry, ...] = ()


def entry_identity(*, statement_key: str, account: str, bank_reference: str | None,
                   index: int, transaction: int, batch_size: int, mark: str, amount: int,
                   booking_date: date | None) -> str:
    """The entry's dedupe key. With the bank's reference: `bank:<account>/<reference>`
    (+ `#<transaction>` inside a batch that shares one reference, + `/<mark>` so that a
    reversal carrying its original's reference stays apart). Without: `hash:` and a
    SHA-256 of the statement, the position, mark, amount and date."""
    if bank_reference:
        where = f"#{transaction}" if batch_size > 1 else ""
        return f"bank:{account}/{bank_reference}{where}/{mark}"
    parts = [statement_key, account, str(index), str(transaction), mark, str(amount),
             booking_date.isoformat() if booking_date else ""]
    return "hash:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def unique_identities(entries: list[Entry]) -> list[Entry]:
    """A bank that gives two entries one reference in one statement: those entries get
    their position appended, so every identity in a statement is unique (and still the
    same on every reading)."""
    seen: dict[str, int] = {}
    for entry in entries:
        seen[entry.identity] = seen.get(entry.identity, 0) + 1
    return [entry.model_copy(update={"identity": f"{entry.identity}@{entry.position}"})
            if seen[entry.identity] > 1 else entry for entry in entries]


def check_balances(statement: Statement, where: str) -> None:
    """Refuses a statement whose booked entries do not lead from the opening balance to the
    closing one (when the file states both): the file is truncated or was altered."""
    if statement.opening_balance is None or statement.closing_balance is None:
        return
    moved = sum(entry.amount if entry.direction == "credit" else -entry.amount
                for entry in statement.entries if entry.booked)
    if statement.opening_balance + moved != statement.closing_balance:
        opening, closing = statement.opening_balance, statement.closing_balance
        raise InvalidStatement(
            f"{where}: the entries do not add up: opening balance"
            f" {shown(opening, statement.currency)} plus the entries"
            f" ({shown(moved, statement.currency)}) is not the closing balance"
            f" {shown(closing, statement.currency)} {statement.currency}; the file is"
            " incomplete or was altered: ask the bank for it again",
            statement=statement.statement_id)
