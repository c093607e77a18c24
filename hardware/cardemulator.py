"""Emulated smart cards for the virtual PC/SC reader (vsmartcard's vpcd), for tests and demos.

vpcd (loaded by pcscd from /etc/reader.conf.d/vpcd) listens on TCP 35963 ("Virtual PCD 00
00") and 35964 ("Virtual PCD 00 01"). Whatever connects IS the inserted card; closing the
connection removes it. Each message either way is a 2-byte big-endian length and a body:
a 1-byte body from vpcd is a control message (0 power off, 1 power on, 2 reset, 4 send
the ATR), anything longer is a command APDU, answered with the response APDU.

Cards:
  ContactlessCard(uid)             answers GET UID (FF CA 00 00 00), as a contactless
                                   reader would for a MIFARE-like card
  LoyaltyCard(card_number, pin)    a contact card with our application (hardware.loyaltycard):
                                   SELECT, READ/UPDATE BINARY, VERIFY with a try counter,
                                   CHANGE REFERENCE DATA; card_number=None is a blank card

Usage:
    card = LoyaltyCard(card_number="2900010000015", pin="1234")
    inserted = insert(card, slot=0)   # needs pcscd with vpcd running
    ...
    inserted.remove()                 # the card keeps its data, like a real one

    python -m hardware.cardemulator contactless --uid 04A1B2C3D4E5F6 [--slot 0] [--seconds N]
    python -m hardware.cardemulator loyalty --card-number 2900010000015 [--pin 1234]

Promises: a card never crashes on a malformed or unknown APDU (it answers an ISO status
word). Must never: probe vpcd's ports (a connection is an insertion).
"""

from __future__ import annotations

import argparse
import socket
import struct
import threading
from dataclasses import dataclass, field
from functools import reduce
from typing import Protocol

from hardware import loyaltycard as layout

VPCD_HOST = "127.0.0.1"
VPCD_PORT = 35963
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4

OK = b"\x90\x00"
WRONG_LENGTH = b"\x67\x00"
SECURITY_NOT_SATISFIED = b"\x69\x82"
AUTH_BLOCKED = b"\x69\x83"
CONDITIONS_NOT_SATISFIED = b"\x69\x85"
NO_CURRENT_EF = b"\x69\x86"
FUNCTION_NOT_SUPPORTED = b"\x6a\x81"
FILE_NOT_FOUND = b"\x6a\x82"
WRONG_P1P2 = b"\x6b\x00"
REFERENCE_NOT_FOUND = b"\x6a\x88"
INS_NOT_SUPPORTED = b"\x6d\x00"
CLA_NOT_SUPPORTED = b"\x6e\x00"

# PC/SC part 3 ATR of a MIFARE Classic 1K seen through a contactless reader.
CONTACTLESS_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")


def contact_atr(historical: bytes) -> bytes:
    """A T=1 ATR with the given historical bytes (up to 15) and its TCK."""
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    return b"\x3b" + body + bytes([reduce(lambda a, b: a ^ b, body, 0)])


@dataclass(frozen=True)
class Apdu:
    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None


def parse_apdu(raw: bytes) -> Apdu | None:
    """A short command APDU, or None if malformed."""
    if len(raw) < 4:
        return None
    cla, ins, p1, p2 = raw[:4]
    rest = raw[4:]
    if not rest:
        return Apdu(cla, ins, p1, p2)
    if len(rest) == 1:
        return Apdu(cla, ins, p1, p2, le=rest[0] or 256)
    lc = rest[0]
    if lc == 0 or len(rest) not in (1 + lc, 2 + lc):
        return None
    le = (rest[1 + lc] or 256) if len(rest) == 2 + lc else None
    return Apdu(cla, ins, p1, p2, bytes(rest[1 : 1 + lc]), le)


@dataclass
class ContactlessCard:
    """A contactless card: the (virtual) reader answers GET UID with its UID."""

    uid: bytes
    atr: bytes = CONTACTLESS_ATR

    def reset(self) -> None:
        pass

    def respond(self, raw: bytes) -> bytes:
        apdu = parse_apdu(raw)
        if apdu is None:
            return WRONG_LENGTH
        if (apdu.cla, apdu.ins) == (0xFF, 0xCA):
            return self.uid + OK if apdu.p1 == 0 else WRONG_P1P2
        if apdu.ins == 0xA4:
            return FILE_NOT_FOUND
        return CLA_NOT_SUPPORTED if apdu.cla != 0 else INS_NOT_SUPPORTED


@dataclass
class LoyaltyCard:
    """A contact card with our loyalty application; blank when card_number is None."""

    card_number: str | None = None
    pin: str | None = None
    tries_left: int = layout.PIN_TRIES
    uid: bytes | None = None
    atr: bytes = field(default_factory=lambda: contact_atr(b"LOYALTY\x01"))
    content: bytearray = field(init=False)
    _selected_app: bool = field(default=False, init=False)
    _selected_ef: bool = field(default=False, init=False)
    _verified: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.content = bytearray(layout.FILE_SIZE)
        if self.card_number is not None:
            self.content[:] = layout.encode_card_number(self.card_number)

    def reset(self) -> None:
        self._selected_app = self._selected_ef = self._verified = False

    def respond(self, raw: bytes) -> bytes:
        apdu = parse_apdu(raw)
        if apdu is None:
            return WRONG_LENGTH
        if apdu.cla == 0xFF:
            return self._get_uid(apdu)
        if apdu.cla != 0x00:
            return CLA_NOT_SUPPORTED
        handler = {
            0xA4: self._select,
            0xB0: self._read_binary,
            0xD6: self._update_binary,
            0x20: self._verify,
            0x24: self._change_reference_data,
        }.get(apdu.ins)
        return handler(apdu) if handler else INS_NOT_SUPPORTED

    def _get_uid(self, apdu: Apdu) -> bytes:
        if apdu.ins != 0xCA or self.uid is None:
            return FUNCTION_NOT_SUPPORTED
        return self.uid + OK

    def _select(self, apdu: Apdu) -> bytes:
        if apdu.p1 == 0x04:
            self._selected_app = apdu.data == layout.AID
            self._selected_ef = False
            return OK if self._selected_app else FILE_NOT_FOUND
        if apdu.p1 in (0x00, 0x02) and self._selected_app:
            self._selected_ef = apdu.data == layout.EF_CARD_NUMBER.to_bytes(2, "big")
            return OK if self._selected_ef else FILE_NOT_FOUND
        return FILE_NOT_FOUND

    def _read_binary(self, apdu: Apdu) -> bytes:
        if not self._selected_ef:
            return NO_CURRENT_EF
        offset = (apdu.p1 << 8) | apdu.p2
        if apdu.p1 & 0x80 or offset >= len(self.content):
            return WRONG_P1P2
        length = apdu.le if apdu.le is not None else 256
        return bytes(self.content[offset : offset + length]) + OK

    def _update_binary(self, apdu: Apdu) -> bytes:
        if not self._selected_ef:
            return NO_CURRENT_EF
        if self.pin is not None and not self._verified:
            return SECURITY_NOT_SATISFIED
        offset = (apdu.p1 << 8) | apdu.p2
        if apdu.p1 & 0x80 or not apdu.data or offset + len(apdu.data) > len(self.content):
            return WRONG_P1P2
        self.content[offset : offset + len(apdu.data)] = apdu.data
        return OK

    def _verify(self, apdu: Apdu) -> bytes:
        if not self._selected_app:
            return CONDITIONS_NOT_SATISFIED
        if apdu.p2 != layout.PIN_REFERENCE or self.pin is None:
            return REFERENCE_NOT_FOUND
        if self.tries_left == 0:
            return AUTH_BLOCKED
        if not apdu.data:
            return OK if self._verified else bytes([0x63, 0xC0 | self.tries_left])
        if apdu.data == self.pin.encode("ascii"):
            self.tries_left, self._verified = layout.PIN_TRIES, True
            return OK
        self.tries_left -= 1
        self._verified = False
        return bytes([0x63, 0xC0 | self.tries_left])

    def _change_reference_data(self, apdu: Apdu) -> bytes:
        if not self._selected_app:
            return CONDITIONS_NOT_SATISFIED
        if apdu.p1 != 0x01 or apdu.p2 != layout.PIN_REFERENCE or not apdu.data:
            return WRONG_P1P2
        if self.pin is not None and not self._verified:
            return SECURITY_NOT_SATISFIED
        self.pin = apdu.data.decode("ascii", errors="replace")
        self.tries_left, self._verified = layout.PIN_TRIES, True
        return OK

    @property
    def stored_number(self) -> str | None:
        """What EF 0101 holds now (None when blank), for tests."""
        try:
            return layout.decode_card_number(bytes(self.content))
        except ValueError:
            return None


class EmulatedCard(Protocol):
    """What `insert` accepts: ContactlessCard, LoyaltyCard or any card alike."""

    @property
    def atr(self) -> bytes: ...

    def reset(self) -> None: ...

    def respond(self, raw: bytes) -> bytes: ...


class InsertedCard:
    """A card in a virtual reader slot, served on a thread until removed or pcscd stops."""

    def __init__(self, card: EmulatedCard, sock: socket.socket) -> None:
        self.card = card
        self._sock = sock
        self._removed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="emulated-card", daemon=True)
        self._thread.start()

    @property
    def inserted(self) -> bool:
        return not self._removed.is_set()

    def remove(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(2.0)

    def wait_removed(self, timeout: float) -> bool:
        """True once the connection ended (removed, or vpcd went away with pcscd)."""
        return self._removed.wait(timeout)

    def _serve(self) -> None:
        self.card.reset()
        try:
            while True:
                message = self._receive()
                if message is None:
                    return
                answer = self._answer(message)
                if answer is not None:
                    self._sock.sendall(struct.pack("!H", len(answer)) + answer)
        except OSError:
            return
        finally:
            self._removed.set()

    def _answer(self, message: bytes) -> bytes | None:
        if len(message) != 1:
            return self.card.respond(message)
        if message[0] == CTRL_ATR:
            return self.card.atr
        if message[0] in (CTRL_OFF, CTRL_ON, CTRL_RESET):
            self.card.reset()
        return None

    def _receive(self) -> bytes | None:
        header = self._exactly(2)
        if header is None:
            return None
        return self._exactly(struct.unpack("!H", header)[0])

    def _exactly(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            # vpcd writes a message's length and body separately with Nagle on: without a
            # quick ACK each APDU would wait ~40 ms for our delayed ACK.
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = self._sock.recv(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)


def insert(card: EmulatedCard, slot: int = 0, host: str = VPCD_HOST) -> InsertedCard:
    """Insert a card into "Virtual PCD 00 0<slot>" (ConnectionRefusedError if no pcscd/vpcd)."""
    sock = socket.create_connection((host, VPCD_PORT + slot), timeout=5)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return InsertedCard(card, sock)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hardware.cardemulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("type", choices=["contactless", "loyalty"])
    parser.add_argument("--uid", default="04A1B2C3D4E5F6", help="contactless UID, hex")
    parser.add_argument("--card-number", help="loyalty card number (omit for a blank card)")
    parser.add_argument("--pin", help="loyalty card PIN (4-8 digits)")
    parser.add_argument("--slot", type=int, default=0, choices=[0, 1])
    parser.add_argument("--seconds", type=float, help="remove the card after this long")
    args = parser.parse_args(argv)
    card: ContactlessCard | LoyaltyCard
    if args.type == "contactless":
        card = ContactlessCard(bytes.fromhex(args.uid))
    else:
        card = LoyaltyCard(card_number=args.card_number, pin=args.pin)
    inserted = insert(card, slot=args.slot)
    print(f"card inserted in Virtual PCD 00 0{args.slot}; Ctrl-C removes it", flush=True)
    try:
        inserted.wait_removed(args.seconds if args.seconds is not None else 10**9)
    except KeyboardInterrupt:
        pass
    inserted.remove()
    print("card removed", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
