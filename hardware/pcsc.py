"""Smart cards through PC/SC (pcscd + pyscard's low-level `smartcard.scard` API).

`PcscWatcher` watches the readers whose name contains a configured substring
(case-insensitive) and reads every card inserted into them, on its own daemon thread:

  * a contact card with our application (hardware.loyaltycard) reads as its card number;
  * any other card reads as its UID (`FF CA 00 00 00`, answered by contactless readers),
    uppercase hex;
  * a blank loyalty card, a mute card or one that answers neither is reported as an error.

It waits in SCardGetStatusChange (readers plus the PnP pseudo-reader, so readers plugged in
or pulled out are noticed), and `stop()` cancels that wait with SCardCancel (pyscard's
CardMonitor can hang for a minute on teardown without it). A CardRead's `monotonic` is taken
the moment pcscd reports the card present. With no pcscd, or when it stops, the watcher
reports "no_service" once and re-establishes its context with capped exponential back-off.

Promises: never raises out of its thread, never blocks its caller, never logs a full card
number or UID. `connect(substring)` gives a channel to the card in a reader, and
`personalise(substring, ...)` writes our application's card number (and PIN) through it at
the reception desk. This module imports hardware.loyaltycard (the card's layout), never the
other way round: the layout knows channels, not readers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from smartcard import scard

from hardware import loyaltycard
from hardware.reads import CardRead, DeviceError, ReadError, mask, scrub

log = logging.getLogger(__name__)

PNP_READER = "\\\\?PnP?\\Notification"
GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
# PC/SC part 3 ATR prefix of memory cards (MIFARE Classic, Ultralight...) seen through a
# contactless reader: they have no applications, so go straight to GET UID.
STORAGE_CARD_ATR = bytes.fromhex("3B8F8001804F")
POLL_MS = 1000  # upper bound on a wait when SCardCancel is not honoured
_GONE = scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE | scard.SCARD_STATE_IGNORE
_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1

OnRead = Callable[[CardRead], None]
OnError = Callable[[str, Exception], None]


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{hresult & 0xFFFFFFFF:08X})"


class ScardChannel:
    """A connected card: `transmit(apdu) -> (data, sw1, sw2)` like pyscard's CardConnection."""

    def __init__(self, hcard: int, protocol: int) -> None:
        self._hcard, self._protocol = hcard, protocol

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        hresult, response = scard.SCardTransmit(self._hcard, self._protocol, apdu)
        if hresult != scard.SCARD_S_SUCCESS or len(response) < 2:
            raise DeviceError("card_unreadable", f"transmit failed: {_message(hresult)}")
        return list(response[:-2]), response[-2], response[-1]


def establish() -> int:
    """A PC/SC context; DeviceError "no_service" when pcscd is not running."""
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        raise DeviceError("no_service", f"cannot reach pcscd: {_message(hresult)}")
    return int(context)


def list_readers(context: int) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        raise DeviceError("no_service", f"cannot list readers: {_message(hresult)}")
    return list(names)


def matches(substring: str, reader: str) -> bool:
    return substring.casefold() in reader.casefold()


@contextmanager
def card_channel(context: int, reader: str) -> Iterator[ScardChannel]:
    """A shared connection to the card in `reader`, disconnected (card left as is) after."""
    hresult, hcard, protocol = scard.SCardConnect(
        context, reader, scard.SCARD_SHARE_SHARED, _PROTOCOLS
    )
    if hresult != scard.SCARD_S_SUCCESS:
        raise DeviceError("card_unreadable", f"cannot connect to the card: {_message(hresult)}")
    try:
        yield ScardChannel(hcard, protocol)
    finally:
        scard.SCardDisconnect(hcard, scard.SCARD_LEAVE_CARD)


@contextmanager
def connect(reader_substring: str, timeout: float = 5.0) -> Iterator[ScardChannel]:
    """A channel to the card in the first matching reader holding one (waits up to timeout)."""
    context = establish()
    try:
        reader = _reader_with_card(context, reader_substring, timeout)
        with card_channel(context, reader) as channel:
            yield channel
    finally:
        scard.SCardReleaseContext(context)


def personalise(
    reader_substring: str,
    card_number: str,
    pin: str | None = None,
    *,
    overwrite: bool = False,
    current_pin: str | None = None,
    timeout: float = 5.0,
) -> None:
    """hardware.loyaltycard.personalise on the card in the first matching reader holding one
    (waits up to `timeout`). A malformed number or PIN is refused (ValueError) before that."""
    loyaltycard.check_personalisation(card_number, pin)
    with connect(reader_substring, timeout) as channel:
        loyaltycard.personalise(channel, card_number, pin, overwrite=overwrite,
                                current_pin=current_pin)


def _reader_with_card(context: int, substring: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        readers = [r for r in list_readers(context) if matches(substring, r)]
        states = [(r, scard.SCARD_STATE_UNAWARE) for r in readers]
        if states:
            hresult, found = scard.SCardGetStatusChange(context, 0, states)
            if hresult == scard.SCARD_S_SUCCESS:
                for reader, event, _ in found:
                    if event & scard.SCARD_STATE_PRESENT and not event & scard.SCARD_STATE_MUTE:
                        return str(reader)
        if time.monotonic() >= deadline:
            raise DeviceError("card_unreadable", f"no card in a reader matching {substring!r}")
        time.sleep(0.05)  # a short poll: the reception desk waits for a person, not a test


def identify(channel: loyaltycard.CardChannel, atr: bytes) -> tuple[str, dict[str, Any]]:
    """(value, detail) for a card: our application's card number, else the UID."""
    if not atr.startswith(STORAGE_CARD_ATR):
        try:
            return loyaltycard.read_card_number(channel), {"source": "applet"}
        except loyaltycard.CardError as error:
            if error.code != "not_loyalty_card":
                raise
    data, sw1, sw2 = channel.transmit(GET_UID)
    if (sw1, sw2) != (0x90, 0x00) or not data:
        raise loyaltycard.CardError(
            "card_unreadable", f"neither a loyalty card nor a UID ({sw1:02X}{sw2:02X})"
        )
    return bytes(data).hex().upper(), {"source": "uid"}


class PcscWatcher:
    """Reads every card inserted into the readers matching `reader` (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        reader: str,
        till: str,
        on_read: OnRead,
        on_error: OnError,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.name, self.reader, self.till = name, reader, till
        self._on_read, self._on_error = on_read, on_error
        self._min_backoff, self._max_backoff = min_backoff, max_backoff
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._context: int | None = None
        self._state = "stopped"
        self._readers: list[str] = []
        self._last_error: str | None = None
        self._last_read_at: datetime | None = None
        self._reads = 0
        self._errors = 0
        self._reported_outage = False

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._set(state="reconnecting")
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop (cancelling its wait in pcscd) without waiting for it."""
        self._stopping.set()
        with self._lock:
            if self._context is not None:
                scard.SCardCancel(self._context)

    def stop(self, timeout: float = 1.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set(state="stopped")

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "kind": "pcsc",
                "till": self.till,
                "reader": self.reader,
                "readers": list(self._readers),
                "state": self._state,
                "last_error": self._last_error,
                "last_read_at": self._last_read_at.isoformat() if self._last_read_at else None,
                "reads": self._reads,
                "errors": self._errors,
            }

    def _run(self) -> None:
        backoff = self._min_backoff
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._session()
            except ReadError as error:
                self._outage(error)
            except Exception as error:  # a bug must not kill the watcher: report and retry
                log.exception("reader %s failed unexpectedly", self.name)
                self._outage(DeviceError("no_service", f"watcher failed: {error!r}"))
            if time.monotonic() - started > self._max_backoff:
                backoff = self._min_backoff
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _session(self) -> None:
        context = establish()
        with self._lock:
            self._context = context
        try:
            if not self._stopping.is_set():
                self._watch(context)
        finally:
            with self._lock:
                self._context = None
                scard.SCardReleaseContext(context)

    def _watch(self, context: int) -> None:
        states = self._reader_states(context, {})
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not self._stopping.is_set():
            wanted = [(r, s) for r, s in states.items()] + [(PNP_READER, pnp_state)]
            hresult, events = scard.SCardGetStatusChange(context, POLL_MS, wanted)
            now = time.monotonic()
            if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_E_CANCELLED):
                continue
            if hresult == scard.SCARD_E_UNKNOWN_READER:
                states = self._reader_states(context, states)
                continue
            if hresult != scard.SCARD_S_SUCCESS:
                raise DeviceError("no_service", f"pcscd stopped answering: {_message(hresult)}")
            relist = False
            for reader, event, atr in events:
                if reader == PNP_READER:
                    relist = relist or bool(event & scard.SCARD_STATE_CHANGED)
                    pnp_state = event & ~scard.SCARD_STATE_CHANGED
                    continue
                old, states[reader] = states[reader], event & ~scard.SCARD_STATE_CHANGED
                if event & _GONE:
                    relist = True
                elif _inserted(old, event):
                    self._read_card(context, reader, bytes(atr), now)
                elif event & scard.SCARD_STATE_MUTE and not old & scard.SCARD_STATE_MUTE:
                    self._report(DeviceError("card_mute", f"{reader}: the card does not answer"))
            if relist:
                states = self._reader_states(context, states)

    def _reader_states(self, context: int, known: dict[str, int]) -> dict[str, int]:
        readers = [r for r in list_readers(context) if matches(self.reader, r)]
        with self._lock:
            self._readers = readers
            self._state = "connected" if readers else "reconnecting"
            self._reported_outage = False
            if not readers:
                self._last_error = f"no reader matching {self.reader!r}"
        if readers and readers != list(known):
            log.info("reader %s: watching %s", self.name, ", ".join(readers))
        return {r: known.get(r, scard.SCARD_STATE_UNAWARE) for r in readers}

    def _read_card(self, context: int, reader: str, atr: bytes, monotonic: float) -> None:
        try:
            with card_channel(context, reader) as channel:
                value, detail = identify(channel, atr)
        except ReadError as error:
            self._report(error)
            return
        detail.update({"pcsc_reader": reader, "atr": atr.hex().upper()})
        read = CardRead(
            "smartcard", value, self.name, self.till, datetime.now(UTC), monotonic, detail
        )
        with self._lock:
            self._reads += 1
            self._last_read_at = read.at
        log.info("reader %s: smartcard %s for till %s", self.name, mask(value), self.till)
        try:
            self._on_read(read)
        except Exception as error:
            log.exception("reader %s: on_read failed", self.name)
            self._record_error(f"on_read failed: {error}")

    def _outage(self, error: ReadError) -> None:
        with self._lock:
            first = not self._reported_outage
            self._reported_outage = True
            self._readers = []
            if not self._stopping.is_set():
                self._state = "reconnecting"
        if self._stopping.is_set():
            return
        if first:
            self._report(error)
        else:
            with self._lock:
                self._last_error = scrub(str(error))

    def _report(self, error: Exception) -> None:
        self._record_error(str(error))
        log.warning("reader %s: %s", self.name, scrub(str(error)))
        try:
            self._on_error(self.name, error)
        except Exception:
            log.exception("reader %s: on_error failed", self.name)

    def _record_error(self, message: str) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = scrub(message)

    def _set(self, *, state: str) -> None:
        with self._lock:
            self._state = state


def _inserted(old: int, event: int) -> bool:
    """A card became present (or was swapped between two polls: pcsc-lite's event counter)."""
    if not event & scard.SCARD_STATE_PRESENT or event & scard.SCARD_STATE_MUTE:
        return False
    if not old & scard.SCARD_STATE_PRESENT:
        return True
    return (event >> 16) != (old >> 16)
