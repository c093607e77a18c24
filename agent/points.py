"""The outlet's view of a customer's points as dated lots (schema/lots.py), and what the
till says about them.

The view is HQ's confirmed lots (from its customer document) with this outlet's pending
facts applied in their local order, on the day each was made, under the programme's
settings as this outlet has them (docs/design.md invariant 4; schema/lotstore.py stores
them). Its sum is always the tally's balance. A local fact moves the view in the same
transaction as its tally (`record`); a page from HQ replaces it (`overlay`). What a fact
does to lots is schema.lots.apply's alone: a gift given back here refills nothing until
HQ's lots come (the outlet does not hold what HQ's redemptions took), which changes which
lots hold the points, never how many.

`notice` is what receipts and the card statement print: the points that expire within
`NOTICE_DAYS` days, by date. What the till may spend is the balance less `pending`, the
points still pending (docs/programme.md "Pending points").
Must never: read the clock (the caller's `at` or `today` is the day), or move lots without
the fact's tally.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import date

from schema import lots as lotmath
from schema import lotstore, tallystore
from schema.events import Body, Event, tally_of
from schema.ledger import Tally
from schema.lots import Book, Lots
from schema.masterdata import ProgrammeDoc

NOTICE_DAYS = 60
"""Receipts and the statement name the points that expire within this many days."""


def day_of(at: str) -> date:
    """The UTC day of a time stamp (facts are stamped in UTC, schema.events.utc_now)."""
    return date.fromisoformat(at[:10])


def last_purchase(tally: Tally) -> date | None:
    """The customer's last purchase day (the `inactivity` rule's clock)."""
    return day_of(tally.last_purchase_at) if tally.last_purchase_at else None


def _last_purchase_in(conn: sqlite3.Connection, settings: ProgrammeDoc,
                      customer_id: str) -> date | None:
    """The stored last purchase day, read only when the expiry rule depends on it."""
    if settings.expiry.kind != "inactivity":
        return None
    last = tallystore.load_last_purchase(conn, customer_id)
    return day_of(last) if last else None


def record(conn: sqlite3.Connection, settings: ProgrammeDoc, customer_id: str, body: Body,
           at: str) -> Lots:
    """The customer's view after this outlet's fact `body` made at `at`, called before the
    fact's tally is added (the last purchase it sees is the one before it). Returns the
    lots."""
    return lotstore.apply(conn, customer_id, body, day_of(at), settings.expiry,
                          settings.pending_days, _last_purchase_in(conn, settings, customer_id))


def overlay(settings: ProgrammeDoc, confirmed: Lots, tally: Tally,
            pending: Iterable[tuple[Event, Body]]) -> Lots:
    """HQ's `confirmed` lots with the `pending` facts applied in order; `tally` is HQ's
    confirmed tally (the last purchase each fact sees)."""
    book = Book(confirmed)
    for event, body in pending:
        book = lotmath.apply(book, body, day_of(event.at), settings.expiry,
                             pending_days=settings.pending_days,
                             last_purchase=last_purchase(tally))
        tally = tally.combine(tally_of(body, event.at))
    return book.lots


def notice(conn: sqlite3.Connection, settings: ProgrammeDoc, customer_id: str, held: Lots,
           today: date) -> list[tuple[date, int]]:
    """(day, points) of the customer's `held` lots that expire from `today` to
    `NOTICE_DAYS` days later, by day (after the fact's tally is added)."""
    return lotmath.expiring(held, today, NOTICE_DAYS, settings.expiry,
                            _last_purchase_in(conn, settings, customer_id))


def pending(held: Lots, today: date) -> int:
    """Points of `held` not spendable yet on `today` (the balance less them may be spent)."""
    return lotmath.pending(held, today)
