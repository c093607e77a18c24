"""Club card numbers: unique across the chain even when issued offline (pure).

A card number is an EAN-13 in the restricted-circulation range, so any barcode scanner
reads it and its last digit is a check digit:

    29 RRRR SSSSSS C
    |  |    |      `- EAN-13 check digit
    |  |    `-------- serial within the outlet's range (000001-999999)
    |  `------------- the outlet's card range (0001-9999), assigned by HQ per outlet
    `---------------- in-store prefix ("29": numbers a chain may assign itself)

Two outlets never share a range, and one outlet takes serials from a gap-free local
counter, so two offline outlets cannot issue the same number. A used-up range is
`card_range_exhausted` (HQ gives the outlet another range; its serials start after the
highest this outlet's replica knows in it). Must never: accept a number whose check digit
is wrong, or issue past the end of a range.
"""

from __future__ import annotations

import sqlite3

from schema.errors import CardRangeExhausted

PREFIX = "29"
RANGE_DIGITS = 4
SERIAL_DIGITS = 6
MAX_RANGE = 10**RANGE_DIGITS - 1
MAX_SERIAL = 10**SERIAL_DIGITS - 1
LENGTH = 13


class CardNumberError(ValueError):
    code = "invalid_card_number"


def check_digit(first12: str) -> str:
    """The EAN-13 check digit of 12 digits (weights 1,3,1,3,... from the left)."""
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(first12))
    return str((10 - total % 10) % 10)


def make(card_range: int, serial: int) -> str:
    if not 1 <= card_range <= MAX_RANGE:
        raise CardNumberError(f"card range {card_range} outside 1..{MAX_RANGE}")
    if serial > MAX_SERIAL:
        raise CardRangeExhausted(
            f"every card number of range {card_range} is issued: ask HQ for a new card range "
            "and restart the agent with --card-range N", card_range=card_range)
    if serial < 1:
        raise CardNumberError(f"serial {serial} outside 1..{MAX_SERIAL}")
    body = f"{PREFIX}{card_range:0{RANGE_DIGITS}d}{serial:0{SERIAL_DIGITS}d}"
    return body + check_digit(body)


def issued_in(conn: sqlite3.Connection, card_range: int) -> int:
    """The highest serial of `card_range` among the club cards this replica knows (0 if
    none): where a range given to this outlet continues."""
    prefix = f"{PREFIX}{card_range:0{RANGE_DIGITS}d}"
    row = conn.execute("SELECT MAX(value) FROM identifiers WHERE kind = 'card' AND value >= ? "
                       "AND value < ?", (prefix, f"{prefix}:")).fetchone()
    return int(row[0][6:12]) if row[0] and is_valid(row[0]) else 0


def is_valid(number: str) -> bool:
    return (
        len(number) == LENGTH
        and number.isascii()
        and number.isdigit()
        and number.startswith(PREFIX)
        and check_digit(number[:12]) == number[12]
    )


def parse(number: str) -> tuple[int, int]:
    """(range, serial) of a valid card number; CardNumberError otherwise."""
    number = number.strip()
    if not is_valid(number):
        raise CardNumberError("not a club card number (13 digits starting 29, check digit)")
    return int(number[2:6]), int(number[6:12])
