"""The chain's bank account as invoices print it, and the EPC QR code that pays into it (pure).

`Payee` is who customers pay: a name, an IBAN (checked: ISO 13616 MOD 97-10), a BIC
(optional, 8 or 11 characters) and the country of the chain. `epc_qr(...)` is the text of
the European Payments Council's QR code for a SEPA credit transfer (EPC069-12 version
002, "GiroCode"): a banking app that scans it fills in payee, IBAN, amount and the
structured RF reference, so nobody types a reference wrong.
Promises: an IBAN or BIC that fails its check is refused with `invalid_request` saying
which field; an EPC text is never longer than the 331 bytes the standard allows and always
carries the structured reference, never free text beside it (the note for the payer is
shortened to fit). Must never: round an amount.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

from banking import creditorref
from banking.statement import shown
from schema.errors import InvalidRequest

_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_COUNTRY = re.compile(r"[A-Z]{2}")
EPC_MAX_BYTES = 331
EPC_MAX_AMOUNT = 999_999_999_99  # EUR 999,999,999.99 in cents
EPC_NAME_MAX = 70
EPC_NOTE_MAX = 70


def iban(text: str) -> str:
    """The electronic form of an IBAN (upper case, no spaces), or `invalid_request`."""
    compact = "".join(text.split()).upper()
    if not compact.isascii() or not _IBAN.fullmatch(compact):
        raise InvalidRequest(f"{text.strip()!r} is not an IBAN: two letters (the country), two"
                             " check digits and up to 30 letters and digits")
    digits = "".join(str(int(c, 36)) for c in compact[4:] + compact[:4])
    if int(digits) % 97 != 1:
        raise InvalidRequest(f"{text.strip()!r}: the IBAN's check digits do not match; check"
                             " it for a typing error")
    return compact


def printed_iban(text: str) -> str:
    """An IBAN in groups of four, as people read it: `DE89 3704 0044 0532 0130 00`."""
    compact = iban(text)
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))


def bic(text: str) -> str:
    compact = text.strip().upper()
    if not compact.isascii() or not _BIC.fullmatch(compact):
        raise InvalidRequest(f"{text.strip()!r} is not a BIC: 8 or 11 letters and digits"
                             " (bank, country, location[, branch])")
    return compact


class Payee(BaseModel):
    """Who customers pay (HQ's settings `payee.*`, docs/invoices.md)."""

    model_config = ConfigDict(frozen=True)

    name: str
    iban: str
    bic: str = ""
    country: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or len(value) > EPC_NAME_MAX:
            raise ValueError(f"payee.name: 1 to {EPC_NAME_MAX} characters (what the bank"
                             " transfer names as the beneficiary)")
        return value

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        try:
            return iban(value)
        except InvalidRequest as error:
            raise ValueError(error.message) from None

    @field_validator("bic")
    @classmethod
    def _bic(cls, value: str) -> str:
        try:
            return bic(value) if value.strip() else ""
        except InvalidRequest as error:
            raise ValueError(error.message) from None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        value = value.strip().upper()
        if not _COUNTRY.fullmatch(value) or not value.isascii():
            raise ValueError("payee.country: the ISO 3166 two-letter code, e.g. SI or DE")
        return value


def epc_qr(payee: Payee, amount: int, currency: str, reference: str, note: str = "") -> str:
    """The EPC QR text for paying `amount` minor units with creditor reference `reference`:
    `BCD`, version `002`, character set `1` (UTF-8), `SCT`, BIC, name, IBAN, `EUR12.34`,
    purpose (empty), the RF reference, no unstructured text, `note` as the information for
    the payer (shown by the app, not sent to the bank). SEPA transfers are in euro only."""
    if currency != "EUR":
        raise InvalidRequest(f"an EPC QR code pays euro only, not {currency}")
    if not 1 <= amount <= EPC_MAX_AMOUNT:
        raise InvalidRequest("an EPC QR code pays from EUR 0.01 to EUR 999,999,999.99")
    lines = ["BCD", "002", "1", "SCT", payee.bic, payee.name, payee.iban,
             f"EUR{shown(amount, 'EUR')}", "", creditorref.validate(reference), "", ""]
    text = "\n".join(lines)  # ends with the line of the note, still empty
    # the note is what gives way when the other fields, in UTF-8, leave it too little room
    room = EPC_MAX_BYTES - len(text.encode())
    shortened = " ".join(note.split())[:EPC_NOTE_MAX]
    while len(shortened.encode()) > room:
        shortened = shortened[:-1]
    return (text + shortened).rstrip("\n")
