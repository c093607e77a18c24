"""One outlet's running state: its replica, programme, quotes, tills and commit listeners.

The operations live in their own modules (customers, identification, sales, gifts) and
take an `Outlet`; this object only holds what they share, and the policies that need it
(categories, credit limits, offline floor limits). Promises: after every committed local
fact the commit listeners run (the sync pushes from there), outside the transaction and
never able to fail the till's request. `clock` is the outlet's clock (an aware UTC
datetime; schema.events.now by default) and `zone` its time zone (None: the machine's):
`local_now`/`today` are the outlet's local time and date, by which greetings and
announcements go (docs/greetings.md); tests set both. Must never: perform network I/O
itself.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import date, datetime, tzinfo
from pathlib import Path

from agent import cardnumber
from agent.programme import Programme, seed_defaults
from agent.quotes import QuoteBook
from agent.replica import get_meta, meta_in, open_replica, set_meta
from agent.tills import TillBoard
from schema import events
from schema.errors import InvalidRequest, NotReady, OfflineLimitExceeded
from schema.money import money

log = logging.getLogger(__name__)

DEFAULT_CARD_RANGE = 1


class Outlet:
    def __init__(self, path: str | Path, outlet_id: str | None = None,
                 card_range: int | None = None, chain: bool = False) -> None:
        self.db = open_replica(path, outlet_id)
        self.outlet_id = str(get_meta(self.db, "outlet_id"))
        with self.db.write() as conn:
            if card_range is not None and meta_in(conn, "card_range") != str(card_range):
                set_meta(conn, "card_range", card_range)
                # serials count per range: a new range starts after what it already issued
                set_meta(conn, "card_serial", cardnumber.issued_in(conn, card_range))
            if chain:
                set_meta(conn, "chain", 1)
            elif meta_in(conn, "chain") is None:
                seed_defaults(conn, self.outlet_id)
        self._programme = Programme.load(self.db)
        self._programme_version = self._master_version()
        self.quotes = QuoteBook()
        self.tills = TillBoard()
        self._listeners: list[Callable[[], None]] = []
        self.clock: Callable[[], datetime] = events.now
        self.zone: tzinfo | None = None

    # --- the outlet's time ----------------------------------------------------------------
    def local_now(self) -> datetime:
        """Now in the outlet's time zone (the machine's unless `zone` is set)."""
        return self.clock().astimezone(self.zone)

    def today(self) -> date:
        """The outlet's local date: a birthday or an announcement's day starts at its midnight."""
        return self.local_now().date()

    # --- commit listeners -------------------------------------------------------------
    def on_commit(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def committed(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a listener must never fail a sale that is already durable
                log.exception("commit listener failed")

    # --- programme --------------------------------------------------------------------
    @property
    def programme(self) -> Programme:
        """The programme in force; reloaded when master data changed, even when another
        process (`loyalty sync`) wrote it."""
        version = self._master_version()
        if version != self._programme_version:
            self._programme = Programme.load(self.db)
            self._programme_version = version
        return self._programme

    def _master_version(self) -> str | None:
        return get_meta(self.db, "master_version")

    def reload_programme(self) -> None:
        self._programme = Programme.load(self.db)
        self._programme_version = self._master_version()

    def default_category(self) -> str:
        return self.programme.default_category

    def require_category(self, category: str, promo: str | None = None) -> None:
        if not self.programme.categories:
            raise NotReady("this outlet has no programme yet: it waits for its first sync "
                           "with HQ (see loyalty status)", outlet=self.outlet_id)
        if category not in self.programme.categories:
            known = ", ".join(sorted(self.programme.categories))
            raise InvalidRequest(f"unknown category {category!r} (known: {known})")
        if promo is not None and self.programme.rules.promotion(promo) is None:
            raise InvalidRequest(f"unknown promotion category {promo!r}")

    def credit_limit(self, category: str) -> int:
        doc = self.programme.categories.get(category)
        return 0 if doc is None else doc.credit_limit

    def card_range(self, conn: sqlite3.Connection) -> int:
        """This outlet's card number range; a chain outlet learns it from HQ's hello."""
        known = meta_in(conn, "card_range")
        if known is None and self.is_chain(conn):
            raise NotReady("this outlet has not reached HQ yet, so it has no card number "
                           "range: wait for its first sync or start it with --card-range",
                           outlet=self.outlet_id)
        return int(known or DEFAULT_CARD_RANGE)

    # --- offline floor limits (docs/design.md invariant 5) ----------------------------------
    def is_chain(self, conn: sqlite3.Connection) -> bool:
        return meta_in(conn, "chain") is not None

    def _unconfirmed(self, conn: sqlite3.Connection, customer: sqlite3.Row, kind: str,
                     column: str) -> int:
        row = conn.execute(
            f"SELECT COALESCE(SUM(ABS({column})), 0) FROM ledger "
            "WHERE customer_id = ? AND kind = ? AND seq > ?",
            (customer["customer_id"], kind, customer["confirmed_through"])).fetchone()
        return int(row[0])

    def _floors(self, customer: sqlite3.Row) -> tuple[int, int]:
        """(points, credit) floors of the customer's category; none for a category HQ has
        withdrawn (spending then waits for HQ rather than failing)."""
        doc = self.programme.categories.get(customer["category"])
        return (0, 0) if doc is None else (doc.floor_points, doc.floor_credit)

    def check_offline_points(self, conn: sqlite3.Connection, customer: sqlite3.Row,
                             points: int) -> None:
        """Refuses spending more points than HQ has confirmed plus the card's floor limit."""
        if not self.is_chain(conn):
            return
        floor = self._floors(customer)[0]
        spent = self._unconfirmed(conn, customer, "points_spent", "points")
        if spent + points > floor:
            raise OfflineLimitExceeded(
                f"{spent + points} points not yet confirmed by HQ; offline limit is {floor}: "
                "wait for the sync or ask HQ", floor_points=floor)

    def check_offline_credit(self, conn: sqlite3.Connection, customer: sqlite3.Row,
                             amount: int) -> None:
        if not self.is_chain(conn):
            return
        floor = self._floors(customer)[1]
        charged = self._unconfirmed(conn, customer, "credit_charge", "amount")
        if charged + amount > floor:
            raise OfflineLimitExceeded(
                f"{money(charged + amount)} of internal credit not yet confirmed by HQ; this "
                f"card's offline limit is {money(floor)}: wait for the sync or ask HQ",
                floor_credit=floor)

    def close(self) -> None:
        self.db.close()
