"""Caller ID from a voice modem (`AT+VCID=1` formatted output), line by line (pure).

A modem reports an incoming call as lines between rings:

    RING
    DATE = 1122        month and day
    TIME = 0830        hour and minute
    NMBR = 5551234     the caller's number; P = private (withheld), O = unavailable
    NAME = JOHN DOE    optional, before or after NMBR
    RING

`CallerIdAssembler.feed(line)` returns the calls completed by that line: a call is
complete when NMBR arrives (its number is all the till needs, so a NAME arriving later is
not waited for), and a block that saw DATE/TIME but no NMBR before the next RING is
reported as incomplete. Modem chatter (OK, NO CARRIER, AT echoes, blank lines) is ignored.

Promises: a `Call`'s number is normalised to digits with an optional leading '+'.
Must never: raise anything but `ParseError` (garbled lines, a withheld or malformed number).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hardware.reads import ParseError

_FIELD = re.compile(r"([A-Z]{3,4})\s*=\s*(.*)")
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_NUMBER_NOISE = re.compile(r"[\s\-().]")
_WITHHELD = {"P": "private", "O": "unavailable"}
_KNOWN = {"DATE", "TIME", "NMBR", "NAME", "DDN", "MESG"}
_STARTS_A_CALL = {"DATE", "TIME", "NMBR"}


@dataclass(frozen=True)
class Call:
    number: str
    date: str | None = None
    time: str | None = None
    name: str | None = None


@dataclass
class CallerIdAssembler:
    """Stateful: feed it the modem's lines in order; it returns completed calls."""

    _fields: dict[str, str] = field(default_factory=dict)
    _reported: bool = False

    def feed(self, line: str) -> list[Call]:
        line = line.strip()
        if line == "RING":
            return self._ring()
        parsed = parse_line(line)
        if parsed is None:
            return []
        key, value = parsed
        if self._reported and key not in _STARTS_A_CALL:
            return []  # e.g. NAME after NMBR: the call was already reported
        self._reported = False
        self._fields[key] = value
        if key != "NMBR":
            return []
        fields, self._fields, self._reported = self._fields, {}, True
        return [_call(fields)]

    def _ring(self) -> list[Call]:
        fields, self._fields, self._reported = self._fields, {}, False
        if fields.keys() & {"DATE", "TIME"}:
            raise ParseError("callerid_incomplete", "caller ID block without a number (NMBR)")
        return []


def parse_line(line: str) -> tuple[str, str] | None:
    """(key, value) of a caller-ID field line; None for modem chatter; ParseError if garbled."""
    line = line.strip()
    if not line.isascii() or not line.isprintable():
        raise ParseError("callerid_garbled", "the modem sent unprintable characters")
    match = _FIELD.fullmatch(line)
    if not match or match.group(1) not in _KNOWN:
        return None
    return match.group(1), match.group(2).strip()


def parse_block(text: str) -> Call:
    """The call in one block of modem output; ParseError if it holds no usable number."""
    assembler = CallerIdAssembler()
    for line in text.splitlines():
        calls = assembler.feed(line)
        if calls:
            return calls[0]
    raise ParseError("callerid_incomplete", "no NMBR line in the caller ID block")


def _call(fields: dict[str, str]) -> Call:
    raw = fields["NMBR"]
    if raw in _WITHHELD:
        raise ParseError("callerid_withheld", f"the caller's number is {_WITHHELD[raw]}")
    number = _NUMBER_NOISE.sub("", raw)
    if not _NUMBER.fullmatch(number):
        raise ParseError("callerid_bad_number", "NMBR is not a phone number")
    return Call(
        number=number,
        date=_four_digits(fields.get("DATE")),
        time=_four_digits(fields.get("TIME")),
        name=fields.get("NAME") or None,
    )


def _four_digits(value: str | None) -> str | None:
    return value if value is not None and re.fullmatch(r"[0-9]{4}", value) else None
