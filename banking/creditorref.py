"""ISO 11649 RF creditor references: made from an invoice number, checked, printed (pure).

A reference is `RF`, two check digits and a body of 1-21 letters or digits (25 characters
at most). The check is ISO 7064 MOD 97-10 over the numeric expansion (digits stay, A=10 ..
Z=35) of the body followed by `RF` and the check digits: the result is 1. The electronic
form is upper case without spaces (`RF18539007547034`), the printed form is in groups of
four (`RF18 5390 0754 7034`); input is accepted in either, any case, any spacing.
An invoice number becomes the body by dropping its separators (`2026-000123` ->
`RF462026000123`). What the check catches (docs/statements.md): every change of a digit
for a digit or a letter for a letter, every adjacent swap except B1/1B, M2/2M, X3/3X; a
digit changed into a letter slips through about once in 97. Must never: accept a
reference whose check fails.
"""

from __future__ import annotations

import re

from schema.errors import InvalidCreditorReference

MAX_LENGTH = 25
MAX_BODY = MAX_LENGTH - 4
_BODY = re.compile(r"[0-9A-Z]+")
_SEPARATORS = re.compile(r"[-/. ]")


def _expansion(text: str) -> int:
    """The number ISO 7064 computes on: each digit as itself, each letter as 10..35."""
    return int("".join(str(int(c, 36)) for c in text))


def _checked_body(body: str) -> str:
    if not body.isascii():  # before upper(): "ﬁ".upper() is "FI"
        raise InvalidCreditorReference(
            "a creditor reference holds only letters and digits (A-Z, 0-9)", body=body)
    body = body.upper()
    if not 1 <= len(body) <= MAX_BODY:
        raise InvalidCreditorReference(
            f"a creditor reference holds 1 to {MAX_BODY} characters after RF and the check"
            f" digits, not {len(body)}", body=body)
    if not _BODY.fullmatch(body):
        raise InvalidCreditorReference(
            "a creditor reference holds only letters and digits (A-Z, 0-9)", body=body)
    return body


def check_digits(body: str) -> str:
    """The two check digits for `body` (98 minus the expansion of body+RF00, mod 97)."""
    body = _checked_body(body)
    return f"{98 - _expansion(body + 'RF00') % 97:02d}"


def from_body(body: str) -> str:
    """The electronic reference `RFcc<body>` for a body of 1-21 letters and digits."""
    body = _checked_body(body)
    return f"RF{check_digits(body)}{body}"


def for_invoice(number: str) -> str:
    """The reference printed on invoice `number`: its letters and digits, separators
    (`- / .` and spaces) dropped, so `2026-000123` -> `RF462026000123`."""
    body = _SEPARATORS.sub("", number)
    if not body:
        raise InvalidCreditorReference("an invoice number is needed to make its reference")
    return from_body(body)


def validate(text: str) -> str:
    """The electronic form of `text`, or InvalidCreditorReference saying what is wrong.
    Spaces anywhere and lower case are accepted."""
    shown = text.strip()
    if not shown.isascii():  # before upper(): "ﬁ".upper() is "FI"
        raise InvalidCreditorReference(
            f"{shown!r}: a creditor reference holds only letters and digits (A-Z, 0-9)",
            reference=shown)
    compact = "".join(text.split()).upper()
    if not compact:
        raise InvalidCreditorReference("a creditor reference is empty")
    if len(compact) <= 4:
        raise InvalidCreditorReference(
            f"{shown!r} is too short for a creditor reference (RF, two check digits and"
            " at least one character)", reference=shown)
    if len(compact) > MAX_LENGTH:
        raise InvalidCreditorReference(
            f"{shown!r} is too long: a creditor reference is at most 25 characters",
            reference=shown)
    if not compact.startswith("RF"):
        raise InvalidCreditorReference(
            f"{shown!r} is not a creditor reference: it starts with RF", reference=shown)
    if not compact[2:4].isdigit() or not compact[2:4].isascii():
        raise InvalidCreditorReference(
            f"{shown!r}: RF is followed by two check digits", reference=shown)
    if not _BODY.fullmatch(compact[4:]):
        raise InvalidCreditorReference(
            f"{shown!r}: a creditor reference holds only letters and digits (A-Z, 0-9)",
            reference=shown)
    if _expansion(compact[4:] + compact[:4]) % 97 != 1:
        raise InvalidCreditorReference(
            f"{shown!r}: the check digits do not match the reference; check it for a typing"
            " error", reference=shown)
    return compact


def is_valid(text: str) -> bool:
    try:
        validate(text)
    except InvalidCreditorReference:
        return False
    return True


def printed(text: str) -> str:
    """The printed form, in groups of four: `RF18 5390 0754 7034`."""
    compact = validate(text)
    return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
