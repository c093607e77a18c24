"""Reads a bank statement file of either format into `Statement`s (pure).

The one entry point for importing: `parse_statements(data)` looks at the bytes (XML is
camt.053, `:20:` tags or a SWIFT envelope are MT940) and hands them to `banking.camt053`
or `banking.mt940`. Promises: anything else is refused with InvalidStatement saying what
is accepted. Must never: guess a format from a file name.
"""

from __future__ import annotations

import re

from banking import camt053, mt940
from banking.statement import Statement
from schema.errors import InvalidStatement

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
_MT940 = re.compile(rb"(?m)^\s*(\{1:|:20:)")


def parse_statements(data: bytes) -> list[Statement]:
    """Every statement in the file (a file may hold several accounts or days)."""
    head = data
    for bom in _BOMS:
        head = head.removeprefix(bom)
    head = head.lstrip().replace(b"\x00", b"")
    if not head:
        raise InvalidStatement("the statement file is empty")
    if head.startswith(b"<"):
        return camt053.parse(data)
    if _MT940.match(head) or _MT940.search(head[:4096]):
        return mt940.parse(data)
    raise InvalidStatement(
        "not a bank statement this system reads: expected an ISO 20022 camt.053 file (XML)"
        " or an MT940 file (:20:, :25:, :61: ... tags)")


def parse_statement(data: bytes) -> Statement:
    """The one statement in the file; refused when there are several (use
    `parse_statements`)."""
    statements = parse_statements(data)
    if len(statements) != 1:
        raise InvalidStatement(
            f"the file holds {len(statements)} statements, not one",
            statements=len(statements))
    return statements[0]
