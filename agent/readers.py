"""Card readers at the tills: each read identified and handed to its till's POS.

Promises: a read becomes one identification event on the till the reader is bound to
(`GET /v1/tills/{till}/identification`), carrying the customer found or the refusal
(`card_unknown`, `card_banned`, ...); a garbled read reaches the till as a `read_error`
so the cashier asks for another swipe; a broken device never blocks a till or the agent.
Must never: log a full card number, or turn an unknown card into a new customer.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from agent import identification
from agent.config import ReaderEntry
from agent.replica import set_meta
from hardware.readers import ReaderConfig, ReaderSet
from hardware.reads import CardRead
from schema.errors import ConfigError, LoyaltyError, mask_card

if TYPE_CHECKING:
    from agent.outlet import Outlet

log = logging.getLogger(__name__)

# A device or pcscd that is away is health (`GET /v1/status`), not a read for the cashier.
DEVICE_OUTAGES = frozenset({"device_lost", "device_unavailable", "device_error", "no_service"})


def identifier_kind(read: CardRead) -> str:
    """How the agent looks up what a reader delivered."""
    if read.kind == "smartcard":
        return "card" if read.detail.get("source") == "applet" else "smartcard"
    if read.kind in ("magstripe", "barcode"):
        return "card"  # searches club numbers first, then stripe/barcode identifiers
    return read.kind


class TillReaders:
    def __init__(self, outlet: Outlet, entries: list[ReaderEntry]) -> None:
        self.outlet = outlet
        self._tills: dict[str, str] = {}
        try:  # ReaderConfig checks what pydantic cannot (port or reader by kind, names)
            configs = [ReaderConfig.from_dict(entry.model_dump(exclude_none=True))
                       for entry in entries]
            self.readers = ReaderSet(configs, self.on_read, self.on_error)
        except ValueError as exc:
            raise ConfigError(f"readers: {exc}") from exc

    def start(self) -> None:
        self.readers.start()

    def stop(self) -> None:
        self.readers.stop()

    def on_read(self, read: CardRead) -> None:
        kind = identifier_kind(read)
        payload: dict[str, Any] = {
            "kind": kind,
            "value": read.value,
            "reader": read.reader,
            "till_id": read.till,
            "read_at": read.at.isoformat(),
            "detected_monotonic": read.monotonic,
        }
        try:
            payload["customer"] = identification.identify(self.outlet, kind, read.value, read.till)
        except LoyaltyError as exc:
            payload["error"] = exc.to_dict()
        log.info("till %s: %s read %s", read.till, read.kind, mask_card(read.value))
        self.outlet.tills.publish(read.till, payload)

    def on_error(self, reader: str, exc: Exception) -> None:
        code = getattr(exc, "code", "device_error")
        log.warning("reader %s: %s", reader, exc)
        till = self._till_of(reader)
        if till is not None and code not in DEVICE_OUTAGES:
            self.outlet.tills.publish(till, {"reader": reader, "till_id": till, "error": {
                "code": "read_error", "reason": code,
                "message": f"{exc} - read the card again"}})

    def _till_of(self, reader: str) -> str | None:
        for health in self.readers.health():
            if health.get("name") == reader:
                return str(health.get("till"))
        return None

    def health(self) -> list[dict[str, Any]]:
        return self.readers.health()

    def persist_health(self) -> None:
        """Keeps reader health in the replica so `loyalty status` in another process sees it."""
        with self.outlet.db.write() as conn:
            set_meta(conn, "readers_health", json.dumps(self.health()))
