"""Quotes a till asked for, kept in memory until they are sold or expire.

A quote is a priced basket bound to one customer; `POST /v1/sales` with its `quote_id`
sells exactly what was quoted. Promises: a quote lives `TTL_S` seconds and is forgotten
after; a restart forgets all quotes (the POS re-quotes on `quote_unknown`). Must never:
be the only record of anything sold (sales are in the database).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from schema.errors import QuoteUnknown
from schema.events import new_id

TTL_S = 15 * 60
MAX_QUOTES = 10_000


@dataclass(frozen=True)
class HeldQuote:
    quote_id: str
    customer_id: str
    card: str
    priced: Any  # agent.pricing.Quote: the basket as priced, sold as it is
    created: float


class QuoteBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._quotes: dict[str, HeldQuote] = {}

    def hold(self, customer_id: str, card: str, priced: Any) -> HeldQuote:
        quote = HeldQuote(new_id(), customer_id, card, priced, time.monotonic())
        with self._lock:
            self._expire()
            self._quotes[quote.quote_id] = quote
        return quote

    def get(self, quote_id: str) -> HeldQuote:
        with self._lock:
            quote = self._quotes.get(quote_id)
        if quote is None or time.monotonic() - quote.created > TTL_S:
            raise QuoteUnknown("no such quote (expired or from before a restart): quote again")
        return quote

    def forget(self, quote_id: str) -> None:
        """A sold quote cannot be sold again (a retry must carry its Idempotency-Key)."""
        with self._lock:
            self._quotes.pop(quote_id, None)

    def _expire(self) -> None:
        # Quotes are held in creation order: only the oldest can have expired.
        now = time.monotonic()
        while self._quotes:
            oldest = next(iter(self._quotes.values()))
            if now - oldest.created <= TTL_S and len(self._quotes) < MAX_QUOTES:
                return
            del self._quotes[oldest.quote_id]
