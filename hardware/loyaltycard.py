"""Our own contact smart-card layout: reading it at the till, personalising it at reception.

Layout (ISO 7816-4 commands, short APDUs, CLA 00):

    application   proprietary AID F0 4C 4F 59 41 4C 54 59 ("LOYALTY" after F0),
                  SELECT 00 A4 04 00 08 <AID>
    EF 0101       transparent, 32 bytes, SELECT 00 A4 02 0C 02 01 01:
                    byte 0      layout version (01; 00 = blank card)
                    byte 1      n, the length of the card number (1..30)
                    bytes 2..   the club card number, ASCII [0-9A-Z-]; the rest 00
                  READ BINARY 00 B0 00 00 20 is always allowed (the till reads it
                  unattended); UPDATE BINARY 00 D6 00 00 20 <32 bytes> needs the PIN
                  verified in this session once a PIN is set.
    PIN           reference 80, 4..8 ASCII digits, 3 tries:
                    VERIFY 00 20 00 80 <pin>   9000 | 63Cx (x tries left) | 6983 blocked
                    VERIFY 00 20 00 80         (no data) the status: 9000 | 63Cx | 6A88 no PIN
                    CHANGE REFERENCE DATA 00 24 01 80 <pin>  sets the PIN (only on a card
                    without one, or after VERIFY)

Everything talks to a `CardChannel`: anything with pyscard's `transmit(apdu) -> (data,
sw1, sw2)` (a pyscard CardConnection, or `hardware.pcsc.connect(...)`). This module never
opens a connection itself: it knows the card, not the readers. hardware.pcsc, which reads
cards through it, opens the connection (`pcsc.personalise(reader, ...)` at the reception
desk), so the arrow points one way, pcsc -> loyaltycard.

Promises: a blank card reads as ParseError "card_blank", never as a number; personalise
refuses a card that already holds a number unless told to overwrite. Must never: put a
card number or PIN in an exception message or a log line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from hardware.reads import ParseError, ReadError

AID = bytes.fromhex("F04C4F59414C5459")
EF_CARD_NUMBER = 0x0101
FILE_SIZE = 32
LAYOUT_VERSION = 1
PIN_REFERENCE = 0x80
PIN_TRIES = 3
_CARD_NUMBER = re.compile(r"[0-9A-Z-]{1,30}")
_PIN = re.compile(r"[0-9]{4,8}")


class CardChannel(Protocol):
    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]: ...


class CardError(ReadError):
    """The card refused an operation. Codes: not_loyalty_card, card_not_blank, pin_wrong,
    pin_blocked, pin_required, card_io."""


@dataclass(frozen=True)
class PinResult:
    ok: bool
    tries_left: int | None = None
    blocked: bool = False
    pin_set: bool = True


def select_aid() -> list[int]:
    return [0x00, 0xA4, 0x04, 0x00, len(AID), *AID]


def select_card_number_file() -> list[int]:
    return [0x00, 0xA4, 0x02, 0x0C, 0x02, EF_CARD_NUMBER >> 8, EF_CARD_NUMBER & 0xFF]


def read_binary(offset: int = 0, length: int = FILE_SIZE) -> list[int]:
    return [0x00, 0xB0, offset >> 8, offset & 0xFF, length]


def update_binary(data: bytes, offset: int = 0) -> list[int]:
    return [0x00, 0xD6, offset >> 8, offset & 0xFF, len(data), *data]


def verify(pin: str | None = None) -> list[int]:
    data = pin.encode("ascii") if pin is not None else b""
    return [0x00, 0x20, 0x00, PIN_REFERENCE, *([len(data), *data] if data else [])]


def set_pin_apdu(pin: str) -> list[int]:
    data = pin.encode("ascii")
    return [0x00, 0x24, 0x01, PIN_REFERENCE, len(data), *data]


def encode_card_number(card_number: str) -> bytes:
    """The 32-byte EF 0101 content for a card number."""
    if not _CARD_NUMBER.fullmatch(card_number):
        raise ValueError("a card number is 1-30 characters of 0-9, A-Z and '-'")
    body = bytes([LAYOUT_VERSION, len(card_number)]) + card_number.encode("ascii")
    return body.ljust(FILE_SIZE, b"\x00")


def decode_card_number(content: bytes) -> str:
    """The card number in EF 0101 content; ParseError card_blank / card_layout."""
    if not content or content[0] == 0:
        raise ParseError("card_blank", "the loyalty card has not been personalised")
    if content[0] != LAYOUT_VERSION or len(content) < 2 or len(content) < 2 + content[1]:
        raise ParseError("card_layout", f"unknown loyalty card layout version {content[0]}")
    raw = bytes(content[2 : 2 + content[1]])
    number = raw.decode("ascii", errors="replace")
    if not _CARD_NUMBER.fullmatch(number):
        raise ParseError("card_layout", "the card number on the card is malformed")
    return number


def select(channel: CardChannel) -> bool:
    """Select our application; False if the card does not have it."""
    _, sw1, sw2 = channel.transmit(select_aid())
    return (sw1, sw2) == (0x90, 0x00) or sw1 == 0x61


def read_card_number(channel: CardChannel) -> str:
    """The club card number on a loyalty card (CardError not_loyalty_card if not one)."""
    if not select(channel):
        raise CardError("not_loyalty_card", "the card has no loyalty application")
    _ok(channel.transmit(select_card_number_file()), "select the card number file")
    data = _ok(channel.transmit(read_binary()), "read the card number file")
    return decode_card_number(bytes(data))


def pin_status(channel: CardChannel) -> PinResult:
    """Whether a PIN is set and how many tries are left, without spending one."""
    _, sw1, sw2 = channel.transmit(verify())
    return _pin_result(sw1, sw2)


def verify_pin(channel: CardChannel, pin: str) -> PinResult:
    """VERIFY the PIN (the application must be selected: `select(channel)`)."""
    if not _PIN.fullmatch(pin):
        raise ValueError("a PIN is 4-8 digits")
    _, sw1, sw2 = channel.transmit(verify(pin))
    return _pin_result(sw1, sw2)


def check_personalisation(card_number: str, pin: str | None = None) -> bytes:
    """The EF 0101 content for `card_number`; ValueError for a malformed number or PIN.
    Nothing is sent to a card: a caller can refuse bad input before waiting for one."""
    content = encode_card_number(card_number)
    if pin is not None and not _PIN.fullmatch(pin):
        raise ValueError("a PIN is 4-8 digits")
    return content


def personalise(
    channel: CardChannel,
    card_number: str,
    pin: str | None = None,
    *,
    overwrite: bool = False,
    current_pin: str | None = None,
) -> None:
    """Write a card number (and set a PIN) on a blank loyalty card at the reception desk.

    A card that already holds a number is refused (CardError card_not_blank) unless
    `overwrite`, which needs `current_pin` when the card has a PIN. For a card in a PC/SC
    reader named by a substring, use `hardware.pcsc.personalise`.
    """
    content = check_personalisation(card_number, pin)
    _write(channel, content, pin, overwrite, current_pin)


def _write(
    channel: CardChannel, content: bytes, pin: str | None, overwrite: bool, current_pin: str | None
) -> None:
    if not select(channel):
        raise CardError("not_loyalty_card", "the card has no loyalty application")
    _ok(channel.transmit(select_card_number_file()), "select the card number file")
    existing = bytes(_ok(channel.transmit(read_binary()), "read the card number file"))
    if existing[:1] not in (b"", b"\x00") and not overwrite:
        raise CardError("card_not_blank", "the card already holds a card number")
    status = pin_status(channel)
    if status.pin_set and not status.ok:
        _unlock(channel, status, current_pin)
    _ok(channel.transmit(update_binary(content)), "write the card number file")
    if pin is not None:
        _ok(channel.transmit(set_pin_apdu(pin)), "set the PIN")


def _unlock(channel: CardChannel, status: PinResult, current_pin: str | None) -> None:
    if status.blocked:
        raise CardError("pin_blocked", "the card's PIN is blocked")
    if current_pin is None:
        raise CardError("pin_required", "the card has a PIN: give the current PIN to rewrite it")
    result = verify_pin(channel, current_pin)
    if not result.ok:
        code = "pin_blocked" if result.blocked else "pin_wrong"
        raise CardError(code, f"wrong PIN ({result.tries_left} tries left)")


def _pin_result(sw1: int, sw2: int) -> PinResult:
    if (sw1, sw2) == (0x90, 0x00):
        return PinResult(ok=True)
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        tries = sw2 & 0x0F
        return PinResult(ok=False, tries_left=tries, blocked=tries == 0)
    if (sw1, sw2) == (0x69, 0x83):
        return PinResult(ok=False, tries_left=0, blocked=True)
    if (sw1, sw2) == (0x6A, 0x88):
        return PinResult(ok=False, pin_set=False)
    raise CardError("card_io", f"unexpected PIN status {sw1:02X}{sw2:02X}")


def _ok(response: tuple[list[int], int, int], what: str) -> list[int]:
    data, sw1, sw2 = response
    if (sw1, sw2) == (0x69, 0x82):
        raise CardError("pin_required", f"the card refused to {what}: PIN not verified")
    if (sw1, sw2) != (0x90, 0x00):
        raise CardError("card_io", f"the card refused to {what} ({sw1:02X}{sw2:02X})")
    return list(data)
