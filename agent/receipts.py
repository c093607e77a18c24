"""The loyalty part of a receipt: short lines a till printer prints as they are (pure).

Promises: every line is at most `WIDTH` characters (a note is wrapped at word boundaries);
a card number appears masked to its last 4 digits. Must never: print a full card number, a
PIN, or a customer's picture.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import date

from schema.errors import mask_card
from schema.money import money as format_money

WIDTH = 40


def money(minor: int) -> str:
    return format_money(minor, grouped=False)


def pair(left: str, right: str) -> str:
    room = WIDTH - len(right) - 1
    return f"{left[:room]:<{room}} {right}"


def points_notice(expiring: Sequence[tuple[date, int]], pending: int = 0) -> list[str]:
    """"N points expire on DATE" per day some expire soon, and the points still pending
    (docs/programme.md): printed only when there are such points."""
    lines = [pair("Points pending", str(pending))] if pending else []
    lines += [f"{points} points expire on {day.isoformat()}"[:WIDTH] for day, points in expiring]
    return lines


def header(outlet_id: str, card: str, at: str) -> list[str]:
    return [pair(f"Club card {mask_card(card)}", ""), pair(f"Outlet {outlet_id}", at[:16].replace("T", " "))]


def wrapped(text: str) -> list[str]:
    """A free text (an announcement) as receipt lines: its own line breaks kept, each
    paragraph wrapped at `WIDTH` (a word longer than that is cut)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(paragraph, WIDTH, break_long_words=True,
                               break_on_hyphens=False) or [""]
    return lines


def sale(outlet_id: str, card: str, at: str, priced_lines: Sequence[str],
         points_earned: int, points_balance: int, payments: Sequence[tuple[str, int]],
         notice: Sequence[str] = (), reference: str | None = None,
         notes: Sequence[str] = ()) -> list[str]:
    """The sale's receipt: `notice` (`points_notice`'s lines) follows the balance, then the
    receipt `reference` a return names it by (the POS prints it as a barcode too, and the
    sale's receipt code as a QR code): the last line but for `notes`, head office's
    announcements to print, which come last, each after an empty line."""
    lines = header(outlet_id, card, at) + [
        line[:WIDTH] for line in priced_lines if not line.startswith("Points to earn")]
    lines += [pair(f"Paid {mode}", money(amount)) for mode, amount in payments]
    lines += [pair("Points earned", str(points_earned)), pair("Points balance", str(points_balance))]
    lines += notice
    if reference:
        lines.append(pair("Receipt", reference))
    for note in notes:
        lines += ["", *wrapped(note)]
    return [line.rstrip() for line in lines]


def reversal(outlet_id: str, card: str, at: str, kind: str, reference: str | None,
             returned: Sequence[tuple[str, int, int, int, int]],
             refunds: Sequence[tuple[str, int, int]], points_reversed: int,
             points_withheld: int, points_balance: int) -> list[str]:
    """A return's (or a void's) receipt: what came back (`returned`: name, qty, unit price,
    gross, discount per line), the money refunded per mode (`refunds`: mode, amount,
    withheld), and the points: taken back, settled out of the refund, the balance now."""
    title = "Void" if kind == "void" else "Return"
    lines = header(outlet_id, card, at) + [pair(f"{title} of receipt", reference or "")]
    for name, qty, unit_price, gross, discount in returned:
        lines += [name[:WIDTH], pair(f"  {qty} x {money(unit_price)}", money(gross))]
        if discount:
            lines.append(pair("  Discount", money(-discount)))
    lines.append("-" * WIDTH)
    value = sum(gross - discount for _, _, _, gross, discount in returned)
    lines.append(pair("Returned", money(value)))
    for mode, amount, _ in refunds:
        lines.append(pair(f"Refund {mode}", money(amount)))
    withheld = sum(w for _, _, w in refunds)
    if withheld:
        lines.append(pair(f"Kept for {points_withheld} points spent", money(withheld)))
    lines += [pair("Points taken back", str(points_reversed)),
              pair("Points balance", str(points_balance))]
    if points_balance < 0:
        lines.append(pair("  (future points repay it)", ""))
    return [line.rstrip() for line in lines]


def gift_return(outlet_id: str, card: str, at: str, gift_name: str, qty: int,
                points_returned: int, points_balance: int) -> list[str]:
    lines = header(outlet_id, card, at) + [
        pair(f"Gift returned {qty} x {gift_name}", ""),
        pair("Points returned", str(points_returned)),
        pair("Points balance", str(points_balance)),
    ]
    return [line.rstrip() for line in lines]


def redemption(outlet_id: str, card: str, gift_name: str, qty: int, points_spent: int,
               points_balance: int, at: str, notice: Sequence[str] = ()) -> list[str]:
    lines = header(outlet_id, card, at) + [
        pair(f"Gift {qty} x {gift_name}", ""),
        pair("Points spent", str(points_spent)),
        pair("Points balance", str(points_balance)),
        *notice,
    ]
    return [line.rstrip() for line in lines]


def statement(outlet_id: str, card: str, at: str, name: str, category: str,
              stats: dict[str, object], points_balance: int, credit_owed: int,
              invoices: Sequence[dict[str, object]], notice: Sequence[str] = ()) -> list[str]:
    """The customer's total card status, printed at the desk on request."""
    expired = int(str(stats.get("total_points_expired", 0)))
    lines = header(outlet_id, card, at) + [
        pair("Card status", ""),
        pair(name, f"cat. {category}"),
        pair("Points balance", str(points_balance)),
        *notice,
        pair("Points earned", str(stats["total_points_earned"])),
        pair("Points used", str(stats["total_points_used"])),
        *([pair("Points expired", str(expired))] if expired else []),
        pair("Purchases", str(stats["purchases_count"])),
        pair("Total spent", money(int(str(stats["total_purchases"])))),
        pair("Discount received", money(int(str(stats["total_discount"])))),
        pair("Gifts collected", str(stats["gifts_collected"])),
        pair("Credit owed", money(credit_owed)),
    ]
    for invoice in invoices:
        owed = int(str(invoice["amount"])) - int(str(invoice["paid_amount"]))
        lines.append(pair(f"Inv {invoice['number']} {invoice['status']}", money(owed)))
    return [line.rstrip() for line in lines]
