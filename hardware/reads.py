"""Normalised identification reads and the errors a reader reports.

Every device adapter turns what it reads into one `CardRead` bound to a till, or reports
a `ReadError` (a `ParseError` for content it could not understand, a `DeviceError` when the
device or middleware failed). Promises: a `ReadError`'s `code` is a stable, documented
string the agent may branch on; its message never contains a full card or phone number
(every run of 5+ digits is masked to its last 4), and neither does a `CardRead`'s repr.
Must never: import anything outside the standard library.

Stable codes:
  track_garbled, track_no_sentinel, track_mismatch, track_lrc   (magnetic stripe)
  barcode_empty, barcode_garbled, barcode_unknown_format, check_digit   (barcodes)
  callerid_garbled, callerid_bad_number, callerid_withheld, callerid_incomplete
  key_garbled, key_checksum   (electronic keys)
  line_too_long   (any serial reader: no line terminator within the limit)
  card_blank, card_layout, card_unreadable, card_mute   (smart cards)
  device_lost, device_unavailable, no_service   (DeviceError: serial device or pcscd)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal["card", "magstripe", "smartcard", "key", "barcode", "phone"]
KINDS: tuple[str, ...] = ("card", "magstripe", "smartcard", "key", "barcode", "phone")

_LONG_DIGITS = re.compile(r"[0-9]{5,}")
_LONG_HEX = re.compile(r"\b[0-9A-Fa-f]{9,}\b")


def mask(value: str) -> str:
    """Four stars and the last 4 characters ("2900010000015" -> "****0015"; 4 or fewer: all
    stars): the same form as schema.errors.mask_card, which hardware/ may not import."""
    return "****" if len(value) <= 4 else "****" + value[-4:]


def scrub(text: str) -> str:
    """Text with every long digit run (and long hex run, e.g. a UID) masked."""
    text = _LONG_DIGITS.sub(lambda m: mask(m.group()), text)
    return _LONG_HEX.sub(lambda m: mask(m.group()), text)


class ReadError(Exception):
    """A read that produced no identification. `code` is stable; the message is scrubbed."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = scrub(message)
        super().__init__(f"{code}: {self.message}")


class ParseError(ReadError, ValueError):
    """What the device delivered could not be understood (garbled, partial, bad check)."""


class DeviceError(ReadError, OSError):
    """The device or its middleware failed (unplugged, pcscd not running, card pulled)."""


@dataclass(frozen=True, repr=False)
class CardRead:
    """One identification read: what the agent hands to the till's POS.

    `monotonic` is time.monotonic() when the device reported the read (the line terminator
    arrived, or pcscd reported the card present), for latency measurement.
    """

    kind: Kind
    value: str
    reader: str
    till: str
    at: datetime
    monotonic: float
    detail: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"CardRead(kind={self.kind!r}, value={mask(self.value)!r}, reader={self.reader!r}, "
            f"till={self.till!r}, at={self.at.isoformat()!r}, detail={self.detail!r})"
        )

    __str__ = __repr__
