"""Receipts as evidence for a return, and what an outlet may refund on evidence it cannot
check (pure: no I/O, no clock). docs/programme.md, "A sale from another outlet", has the
decision and the arithmetic.

- **The reference** printed on every sale receipt (and as its barcode): 12 symbols of
  Crockford's base32 and a check symbol, `068A-3CP3-TJNW-M`, made from the sale's UUIDv7
  (its 48-bit millisecond and 12 bits after it), so it needs no counter and no storage:
  `sale_id_prefix` turns it back into the first 18 characters of the sale id, an indexed
  prefix lookup at the outlet that made the sale. The check (Luhn mod 32) catches every
  single mistyped symbol and nearly every swap of neighbours; O, I and L read as 0, 1, 1.
  Unique among one outlet's sales (one agent's UUIDv7 milliseconds never repeat); across
  outlets the receipt also names the outlet.
- **The receipt code** (a QR code's text: `LR1:` and RFC 4648 base32, all in the QR
  alphanumeric set) carries the sale as recorded (lines, payments, points, customer,
  outlet, time) to an outlet that cannot see it, offline. A 40-bit SHA-256 check catches
  a damaged scan; it is not a signature: a forged code is possible, and costs no more than
  `floor_returns` allows, like any return an outlet cannot check.
- **The bound**: `check_floor_returns` refuses a refund on another outlet's sale that
  would take this outlet's refunds of such sales for the card, over the return window,
  beyond the category's `floor_returns` (and the outlet's, beyond `outlet_floor`).
  `worst_loss` is what those limits promise: the most a chain can lose to returns that
  outlets could not check.

Must never: accept a code whose check fails, compute on a field before checking its type
and bounds (a forged code is refused as `receipt_invalid`, never a 500), inflate a code beyond `MAX_INFLATED` bytes, or
read the clock.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from schema.errors import OfflineLimitExceeded, ReceiptInvalid
from schema.events import MAX_POINTS, Payment, SaleLine, SaleRecorded
from schema.money import MAX_AMOUNT, money

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
"""Crockford's base32: no I, L, O (read as 1, 1, 0) and no U."""

_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_SYMBOLS = 12
EXAMPLE = "068A-3CP3-TJNW-M"


def _luhn32(symbols: str) -> int:
    """Luhn mod 32 over `symbols`: the sum that a valid string (check included) makes 0."""
    total, factor = 0, 1
    for c in reversed(symbols):
        addend = factor * ALPHABET.index(c)
        factor = 3 - factor
        total += addend // 32 + addend % 32
    return total % 32


def reference(sale_id: str) -> str:
    """The receipt reference of the sale `sale_id` (a UUIDv7, as `new_id` makes them)."""
    number = UUID(sale_id).int
    if (number >> 76) & 0xF != 7:
        raise ValueError(f"sale id {sale_id} is not a UUIDv7: it has no receipt reference")
    value = ((number >> 80) << 12) | ((number >> 64) & 0xFFF)
    plain = "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(_SYMBOLS)))
    check = ALPHABET[(32 - _luhn32(plain + "0")) % 32]
    text = plain + check
    return "-".join(text[i:i + 4] for i in range(0, 16, 4))


def parse_reference(text: str) -> str:
    """`text` as a person typed or a scanner read it, checked and in its printed form;
    `receipt_invalid` when it is not a reference or its check symbol does not match."""
    plain = "".join(text.split()).replace("-", "").upper().translate(_ALIASES)
    if len(plain) != _SYMBOLS + 1 or any(c not in ALPHABET for c in plain):
        raise ReceiptInvalid(f"{text.strip()[:40]!r} is not a receipt reference: it has 13 "
                             f"letters and digits, like {EXAMPLE}; or scan the receipt's code")
    if _luhn32(plain):
        raise ReceiptInvalid(f"receipt reference {text.strip()[:40]!r} has a typo (its last "
                             "symbol does not match): type it again as printed, or scan the "
                             "receipt's code")
    return "-".join(plain[i:i + 4] for i in range(0, 16, 4))


def sale_id_prefix(ref: str) -> str:
    """The first 18 characters of the sale id behind the reference `ref` (checked)."""
    plain = parse_reference(ref).replace("-", "")[:_SYMBOLS]
    value = 0
    for c in plain:
        value = value * 32 + ALPHABET.index(c)
    millis, rand_a = value >> 12, value & 0xFFF
    digits = f"{millis:012x}"
    return f"{digits[:8]}-{digits[8:]}-7{rand_a:03x}"


# --- the receipt code -----------------------------------------------------------------

CODE_PREFIX = "LR1:"
MAX_CODE = 4000
"""Characters: a QR code holds 4,296 alphanumeric ones. A bigger sale has no code and is
returned where it was bought."""
MAX_INFLATED = 262_144
_CHECK = 5


@dataclass(frozen=True)
class ReceiptData:
    """What a receipt code says: the sale as recorded, where and when it was made."""

    outlet_id: str
    at: str
    sale: SaleRecorded


def encode(outlet_id: str, at: str, sale: SaleRecorded) -> str | None:
    """The receipt code of `sale`, made at `outlet_id` at `at`; None when it would be longer
    than MAX_CODE. Line action names are left out (they change no amount)."""
    payload = [1, outlet_id, at, sale.sale_id, sale.customer_id, sale.till_id, sale.currency,
               sale.points_earned,
               [[ln.sku, ln.name, ln.qty, ln.unit_price, ln.discount, ln.division]
                for ln in sale.lines],
               [[p.mode, p.amount] for p in sale.payments]]
    raw = zlib.compress(json.dumps(payload, separators=(",", ":"),
                                   ensure_ascii=False).encode(), 9)
    body = raw + hashlib.sha256(raw).digest()[:_CHECK]
    code = CODE_PREFIX + base64.b32encode(body).decode().rstrip("=")
    return code if len(code) <= MAX_CODE else None


def _unreadable(why: str) -> ReceiptInvalid:
    return ReceiptInvalid(f"the receipt code cannot be read ({why}): scan it again, or type "
                          "the receipt reference at the outlet that made the sale")


def decode(text: str) -> ReceiptData:
    """The sale a receipt code carries; `receipt_invalid` if it is damaged or not a code."""
    code = "".join(text.split()).upper()
    if not code.startswith(CODE_PREFIX):
        raise _unreadable(f"it does not start with {CODE_PREFIX}")
    if len(code) > MAX_CODE:
        raise _unreadable("it is too long")
    letters = code[len(CODE_PREFIX):]
    try:
        body = base64.b32decode(letters + "=" * (-len(letters) % 8))
    except (binascii.Error, ValueError):
        raise _unreadable("it has characters a code does not have") from None
    raw, check = body[:-_CHECK], body[-_CHECK:]
    if len(body) <= _CHECK or hashlib.sha256(raw).digest()[:_CHECK] != check:
        raise _unreadable("its check does not match")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(raw, MAX_INFLATED)
    except zlib.error:
        raise _unreadable("it is not compressed data") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise _unreadable("it is bigger than any sale")
    try:
        return _sale_of(json.loads(data))
    except (ValueError, TypeError, IndexError, ValidationError, RecursionError, MemoryError):
        raise _unreadable("what it says is not a sale") from None


MAX_QTY = 100_000
"""Units on one line, as a sale at the till allows."""


def _whole(value: Any, low: int, high: int, what: str) -> int:
    """`value` when it is an integer (not a bool) in [low, high]: checked before any
    arithmetic, so a forged code can neither crash nor allocate (review 11, finding 2)."""
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} is not a whole number from {low} to {high}")
    return value


def _text(value: Any, what: str, *, optional: bool = False) -> Any:
    if not (isinstance(value, str) or (optional and value is None)) or (
            isinstance(value, str) and len(value) > 200):
        raise ValueError(f"{what} is not text")
    return value


def _row(value: Any, size: int) -> list[Any]:
    if not isinstance(value, list) or len(value) != size:
        raise ValueError(f"not a list of {size}")
    return value


def _sale_of(payload: Any) -> ReceiptData:
    if not isinstance(payload, list) or len(payload) != 10 or payload[0] != 1:
        raise ValueError("not a version 1 receipt")
    (_v, outlet_id, at, sale_id, customer_id, till_id, currency, points, lines,
     payments) = payload
    _text(outlet_id, "outlet")
    _text(at, "time")
    if not isinstance(lines, list) or not isinstance(payments, list):
        raise TypeError("lines and payments are lists")
    sold = []
    for row in lines:
        sku, name, qty, price, discount, division = _row(row, 6)
        qty = _whole(qty, 1, MAX_QTY, "qty")
        price = _whole(price, 0, MAX_AMOUNT, "unit price")
        discount = _whole(discount, 0, MAX_AMOUNT, "discount")
        sold.append(SaleLine(sku=_text(sku, "sku"), name=_text(name, "name"), qty=qty,
                             unit_price=price, division=_text(division, "division",
                                                              optional=True),
                             gross=qty * price, discount=discount, net=qty * price - discount))
    paid = []
    for row in payments:
        mode, amount = _row(row, 2)
        paid.append(Payment(mode=mode, amount=_whole(amount, 0, MAX_AMOUNT, "payment")))
    sale = SaleRecorded(
        sale_id=sale_id, customer_id=customer_id, till_id=till_id, currency=currency,
        lines=sold, payments=paid,
        total_gross=sum(ln.gross for ln in sold), total_discount=sum(ln.discount for ln in sold),
        total_net=sum(ln.net for ln in sold),
        points_earned=_whole(points, 0, MAX_POINTS, "points"))
    return ReceiptData(outlet_id, at, sale)


# --- the bound ------------------------------------------------------------------------


def check_floor_returns(refunded: int, refund: int, floor: int, *, outlet_refunded: int = 0,
                        outlet_floor: int | None = None) -> None:
    """Refuses (`offline_limit_exceeded`) a `refund` on another outlet's sale when this
    outlet's refunds on other outlets' sales over the return window would pass the card's
    category `floor` (`refunded` so far for the card) or the outlet's `outlet_floor`
    (`outlet_refunded` so far, every card)."""
    if refunded + refund > floor:
        raise OfflineLimitExceeded(
            f"{money(refunded + refund)} refunded on this card for sales made at other outlets "
            f"within the return window; the card's limit here is {money(floor)}: return it at "
            "the outlet where it was bought", floor_returns=floor, refunded=refunded)
    if outlet_floor is not None and outlet_refunded + refund > outlet_floor:
        raise OfflineLimitExceeded(
            f"{money(outlet_refunded + refund)} refunded at this outlet for sales made at other "
            f"outlets within the return window; its limit is {money(outlet_floor)}: return it "
            "at the outlet where it was bought", outlet_floor_returns=outlet_floor,
            outlet_refunded=outlet_refunded)


@dataclass(frozen=True)
class Exposure:
    """The most the limits let a chain lose to returns no outlet could check, in minor units:
    for one card, and for `cards` cards together."""

    per_card: int
    per_chain: int


def worst_loss(outlets: int, floor_returns: int, days: int, *, window_days: int = 30,
               cards: int = 1, outlet_floor: int | None = None) -> Exposure:
    """The bound for `outlets` outlets that cannot see each other's returns for `days` days:
    each may refund `floor_returns` per card (at most `outlet_floor` over every card) on
    other outlets' sales in any `window_days`, all of it possibly a second refund."""
    periods = max(1, -(-days // window_days))
    per_outlet = cards * floor_returns
    if outlet_floor is not None:
        per_outlet = min(per_outlet, outlet_floor)
    return Exposure(per_card=outlets * floor_returns * periods,
                    per_chain=outlets * per_outlet * periods)
