"""Pairs a statement's entries with open invoices (pure): what to stamp, what a clerk
confirms, what is listed.

`match(entries, open_invoices, currency=...)` gives one `Match` per entry, in the entries'
order, with a status:
- `matched`: a booked credit naming open invoices, by its structured creditor reference
  (`RmtInf/Strd/CdtrRefInf/Ref`) or, failing that, by an RF reference or invoice number
  written in its text (remittance and end-to-end id). An RF reference counts only when its
  check digits are right and it is an open invoice's; an invoice number only as whole
  words (`2026-000123`, `2026/000123`, `2026 000123`, `2026000123`), never as part of a
  longer number or of a mistyped RF reference. A payment below what is owed is a part
  payment; one payment naming several invoices pays them when it is exactly their total.
  `allocations` say what to stamp (they add up to the entry's amount).
- `overpayment`: it names invoices but pays more than they still owe (after the other
  entries of the same import): never stamped, never turned into credit; listed.
- `suggested`: no usable reference, but the amount is exactly what an open invoice still
  owes and the debtor's name is similar to the customer's (`similar_names`; an entry
  without a debtor name, as MT940 free text, is searched for the customer's name): a clerk
  confirms one of `invoices`. Nothing is stamped.
- `unmatched` (with why), `not_a_payment` (a debit, a reversal, a pending entry, a zero
  amount), `duplicate` (its identity is in `seen`: imported before).
Promises: the outcome for each entry does not depend on the order of the entries
(entries are taken by booking date, then identity); never more is allocated to an invoice
than it owes; a debit or reversal is never a payment. Must never: read a database or clock.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from banking import creditorref
from banking.statement import Entry, shown
from schema.errors import InvalidCreditorReference, InvalidRequest

Status = Literal["matched", "suggested", "unmatched", "overpayment", "not_a_payment",
                 "duplicate"]
Via = Literal["creditor_reference", "reference_in_text", "invoice_number_in_text",
              "amount_and_name"]


class OpenInvoice(BaseModel):
    """An invoice a payment may be for: its RF reference (as printed on it) and what it
    still owes (0 for one already paid: a payment to it is an overpayment)."""

    model_config = ConfigDict(frozen=True)

    number: str
    reference: str
    owed: int = Field(ge=0, description="minor units still owed")
    customer_name: str

    @field_validator("reference")
    @classmethod
    def _electronic(cls, value: str) -> str:
        try:
            return creditorref.validate(value)
        except InvalidCreditorReference as error:
            raise ValueError(error.message) from None


class Allocation(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: str
    amount: int = Field(gt=0)


class Match(BaseModel):
    model_config = ConfigDict(frozen=True)

    entry: Entry
    status: Status
    via: Via | None = None
    invoices: tuple[str, ...] = ()
    allocations: tuple[Allocation, ...] = ()
    part_payment: bool = False
    reason: str = ""

    @property
    def identity(self) -> str:
        return self.entry.identity


def match(entries: Iterable[Entry], open_invoices: Iterable[OpenInvoice], *, currency: str,
          seen: Collection[str] = ()) -> list[Match]:
    """One Match per entry, in the order given. `currency` is the invoices' currency;
    `seen` the identities of entries imported before."""
    entries = list(entries)
    book = _Book.of(open_invoices)
    decided: dict[int, Match] = {}
    unreferenced: list[tuple[int, Entry, list[str]]] = []
    taken: set[str] = set(seen)
    order = sorted(range(len(entries)), key=lambda i: (
        entries[i].booking_date or date.min, entries[i].value_date or date.min,
        entries[i].identity, i))
    for i in order:
        entry = entries[i]
        refused = _not_payable(entry, currency, taken)
        taken.add(entry.identity)
        if refused is not None:
            decided[i] = refused
            continue
        named, via, notes = book.named_by(entry)
        if named:
            decided[i] = book.allocate(entry, named, via, notes)
        else:
            unreferenced.append((i, entry, notes))
    for i, entry, notes in unreferenced:  # against what is owed after every match
        decided[i] = book.suggest(entry, notes)
    return [decided[i] for i in range(len(entries))]


def _not_payable(entry: Entry, currency: str, taken: set[str]) -> Match | None:
    def listed(status: Status, reason: str) -> Match:
        return Match(entry=entry, status=status, reason=reason)

    if entry.identity in taken:
        return listed("duplicate", "imported before: changes nothing")
    if entry.direction == "debit":
        return listed("not_a_payment", "a reversal of a credit (money taken back)"
                      if entry.reversal else "a debit (money paid out)")
    if entry.reversal:
        return listed("not_a_payment", "a reversal of a debit (money returned to us), not a"
                      " customer's payment")
    if not entry.booked:
        return listed("not_a_payment", "pending, not booked yet: the statement that books"
                      " it will match it")
    if entry.amount == 0:
        return listed("not_a_payment", "an amount of zero")
    if entry.currency != currency:
        return listed("unmatched", f"in {entry.currency}; invoices are in {currency}: a clerk"
                      " decides")
    if entry.transaction == 0:
        return listed("unmatched", f"a batch of {entry.batch_size} payments the bank did not"
                      " itemise: a clerk splits it")
    return None


@dataclass
class _Book:
    """The open invoices, indexed for lookups, and what each still owes as entries are
    matched one after another."""

    invoices: dict[str, OpenInvoice]
    by_reference: dict[str, str]
    by_body: dict[str, str]
    owed: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, open_invoices: Iterable[OpenInvoice]) -> _Book:
        invoices: dict[str, OpenInvoice] = {}
        for invoice in open_invoices:
            if invoice.number in invoices:
                raise InvalidRequest(f"invoice {invoice.number} is given twice",
                                     invoice=invoice.number)
            invoices[invoice.number] = invoice
        return cls(invoices=invoices,
                   by_reference={i.reference: i.number for i in invoices.values()},
                   by_body={_body(i.number): i.number for i in invoices.values()},
                   owed={i.number: i.owed for i in invoices.values()})

    def named_by(self, entry: Entry) -> tuple[list[str], Via | None, list[str]]:
        """The invoices the entry names, how, and notes for the clerk."""
        notes: list[str] = []
        structured = entry.creditor_reference
        if structured:
            try:
                reference = creditorref.validate(structured)
            except InvalidCreditorReference as error:
                notes.append(f"structured reference: {error.message}")
            else:
                if reference in self.by_reference:
                    return [self.by_reference[reference]], "creditor_reference", notes
                notes.append(f"structured reference {reference} names no open invoice")
        text = "\n".join(t for t in (entry.remittance, entry.end_to_end_id) if t)
        runs = _runs(text)
        by_reference = self._references_in(runs, notes)
        if by_reference:
            return by_reference, "reference_in_text", notes
        by_number = self._numbers_in(runs)
        return by_number, "invoice_number_in_text" if by_number else None, notes

    def _references_in(self, runs: list[_Run], notes: list[str]) -> list[str]:
        found: list[str] = []
        for start, run in enumerate(runs):
            if not _RF.match(run.text):
                continue
            head, body, valid = run.text[:4].upper(), run.text[4:].upper(), []
            written = [run.text]
            for following in [None, *runs[start + 1:]]:
                if following is not None:
                    if not following.after_space or len(body) >= creditorref.MAX_BODY:
                        break
                    body += following.text.upper()
                    written.append(following.text)
                if body and creditorref.is_valid(head + body):
                    valid.append(head + body)
            named = [self.by_reference[r] for r in valid if r in self.by_reference]
            if named:
                found.extend(n for n in named if n not in found)
            elif valid:
                notes.append(f"{valid[0]} in the text names no open invoice")
            else:
                notes.append(f"{' '.join(written)!r} in the text is not a valid creditor"
                             " reference")
        return found

    def _numbers_in(self, runs: list[_Run]) -> list[str]:
        longest = max((len(b) for b in self.by_body), default=0)
        found: list[str] = []
        for start in range(len(runs)):
            after_rf = start > 0 and runs[start].joined and _RF.fullmatch(
                runs[start - 1].text)
            body = ""
            for run in runs[start:]:
                if body and not run.joined:
                    break
                body += run.text.upper()
                if len(body) > longest:
                    break
                number = self.by_body.get(body)
                if number and not after_rf and number not in found:
                    found.append(number)
        return found

    def allocate(self, entry: Entry, named: list[str], via: Via | None,
                 notes: list[str]) -> Match:
        named = sorted(named)
        owed = sum(self.owed[n] for n in named)
        listed = ", ".join(named)
        if entry.amount > owed:
            return Match(entry=entry, status="overpayment", via=via, invoices=tuple(named),
                         reason=_joined(notes, f"pays {shown(entry.amount, entry.currency)} but"
                                        f" {listed} still owe{'s' if len(named) == 1 else ''}"
                                        f" {shown(owed, entry.currency)}: not stamped; a clerk"
                                        " refunds or settles it"))
        if len(named) > 1 and entry.amount < owed:
            return Match(entry=entry, status="unmatched", via=via, invoices=tuple(named),
                         reason=_joined(notes, f"names {listed} and pays less than their total"
                                        f" {shown(owed, entry.currency)}: a clerk splits it"))
        allocations = tuple(Allocation(number=n, amount=self.owed[n])
                            for n in named if self.owed[n]) \
            if len(named) > 1 else (Allocation(number=named[0], amount=entry.amount),)
        for allocation in allocations:
            self.owed[allocation.number] -= allocation.amount
        return Match(entry=entry, status="matched", via=via, invoices=tuple(named),
                     allocations=allocations, part_payment=entry.amount < owed,
                     reason=_joined(notes, ""))

    def suggest(self, entry: Entry, notes: list[str]) -> Match:
        fits = sorted(n for n, owed in self.owed.items() if owed == entry.amount)
        payer = entry.debtor_name or entry.remittance  # MT940 free text: the name is in it
        named = [n for n in fits
                 if payer and similar_names(payer, self.invoices[n].customer_name)]
        if named:
            return Match(entry=entry, status="suggested", via="amount_and_name",
                         invoices=tuple(named),
                         reason=_joined(notes, "no reference; the amount and the payer's name"
                                        " fit: a clerk confirms"))
        why = "no reference to an open invoice"
        if fits:
            why += (f"; the amount is what {', '.join(fits)} still owe"
                    f"{'s' if len(fits) == 1 else ''}, but the payer's name"
                    f" ({entry.debtor_name or 'none given'}) is not the customer's")
        return Match(entry=entry, status="unmatched", reason=_joined(notes, why))


def _joined(notes: list[str], last: str) -> str:
    return "; ".join([*notes, last] if last else notes)


# --- words in payment texts ------------------------------------------------------------

_RF = re.compile(r"[Rr][Ff][0-9]{2}")  # how an RF reference starts
_WORD = re.compile(r"[0-9A-Za-z]+")
_JOIN = re.compile(r"\s*[-/.]?\s*")


@dataclass(frozen=True)
class _Run:
    """A run of ASCII letters and digits in a text; `joined`: only spaces or one of - / .
    separate it from the run before (so the two may be one number); `after_space`: only
    whitespace does (so the two may be one printed RF reference)."""

    text: str
    joined: bool
    after_space: bool


def _runs(text: str) -> list[_Run]:
    runs: list[_Run] = []
    end = None
    for word in _WORD.finditer(text):
        gap = text[end:word.start()] if end is not None else None
        runs.append(_Run(word.group(), joined=gap is not None and bool(_JOIN.fullmatch(gap)),
                         after_space=gap is not None and gap != "" and gap.isspace()))
        end = word.end()
    return runs


def _body(number: str) -> str:
    """An invoice number's letters and digits, as `_numbers_in` assembles them."""
    return "".join(_WORD.findall(number)).upper()


# --- names -----------------------------------------------------------------------------

# two ways banks and people write letters plain ASCII has not: spelled out (Müller ->
# mueller, Søn -> soen) and stripped (muller, son); words are the same in either
_SPELLED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "æ": "ae", "ø": "oe", "œ": "oe",
                          "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})
_STRIPPED = str.maketrans({"æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "ð": "d",
                           "þ": "th", "ı": "i"})
_NOT_A_NAME = frozenset([  # legal forms, "and", titles: not part of who pays
    "gmbh", "mbh", "ag", "kg", "ohg", "ug", "gbr", "ev", "ek", "co", "ltd", "limited", "llc",
    "inc", "corp", "plc", "bv", "nv", "sa", "sas", "sarl", "srl", "spa", "aps", "as", "ab",
    "oy", "oyj", "sro", "kft", "zrt", "sp", "zoo", "und", "and", "og", "och", "et", "y", "mr",
    "mrs", "ms", "dr", "prof", "herr", "frau",
])


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _name_words(name: str) -> list[tuple[str, str]]:
    """Each word of a name in its spelled-out and its stripped form."""
    folded = name.casefold()
    spelled = re.findall(r"[a-z0-9]+", _plain(folded.translate(_SPELLED)))
    stripped = re.findall(r"[a-z0-9]+", _plain(folded.translate(_STRIPPED)))
    if len(spelled) != len(stripped):  # cannot happen with the maps above; be safe
        stripped = spelled
    return [(a, b) for a, b in zip(spelled, stripped, strict=True) if a not in _NOT_A_NAME]


def _same_word(a: tuple[str, str], b: tuple[str, str]) -> bool:
    return any(_same_spelling(x, y) for x in a for y in b)


def _same_spelling(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:  # an initial
        return a[0] == b[0]
    return min(len(a), len(b)) >= 4 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def similar_names(a: str, b: str) -> bool:
    """Whether two names are probably the same party, as a bank and a customer record write
    them: case, accents and transliteration (ü/ue), word order, initials, titles, legal
    forms and small typing differences do not matter; every word of the shorter name must
    be in the longer one, and a one-word name is similar only to a one-word name."""
    words_a, words_b = _name_words(a), _name_words(b)
    if not words_a or not words_b:
        return False
    short, long = sorted((words_a, words_b), key=len)
    if len(short) == 1 and len(long) > 1:
        return False
    if all(len(w[0]) == 1 for w in short):
        return False
    free = list(long)
    for word in short:
        same = next((w for w in free if _same_word(word, w)), None)
        if same is None:
            return False
        free.remove(same)
    return True
