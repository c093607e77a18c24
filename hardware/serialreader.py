"""Serial-line readers: magstripe, barcode, electronic key and caller-ID modem adapters.

A `SerialReader` owns one device opened with `serial.serial_for_url` (so a path, `loop://`
and `socket://host:port` all work), reads it on its own daemon thread, frames its output
into lines (CR, LF or CR LF), decodes each line with the parser for its kind and calls
`on_read(CardRead)` or `on_error(reader_name, ReadError | Exception)`.

Promises: when the device vanishes or cannot be opened the reader reports it once
(`DeviceError` "device_lost" / "device_unavailable") and retries with capped exponential
back-off until it is back; `health()` is always answerable; `stop()` returns within about
a second. Must never: let an exception escape its thread (a failing callback included),
block its caller, or log a full card number.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import serial

from hardware.barcode import parse_barcode
from hardware.callerid import CallerIdAssembler
from hardware.keyfob import parse_key
from hardware.magstripe import parse_swipe
from hardware.reads import CardRead, DeviceError, Kind, ParseError, mask, scrub

log = logging.getLogger(__name__)

OnRead = Callable[[CardRead], None]
OnError = Callable[[str, Exception], None]

SERIAL_KINDS = ("magstripe", "barcode", "callerid", "key")
MAX_LINE = 512
READ_TIMEOUT = 0.2  # bounds how long stop() waits for the reading thread
INIT_STRINGS = {"callerid": b"AT+VCID=1\r"}  # a modem reports caller ID only when asked


@dataclass(frozen=True)
class Decoded:
    kind: Kind
    value: str
    detail: dict[str, Any] = field(default_factory=dict)


class Decoder(Protocol):
    def __call__(self, line: str) -> list[Decoded]: ...


def decoder_for(kind: str) -> Decoder:
    """A fresh line decoder for a serial reader kind (caller ID decoders keep state)."""
    if kind == "magstripe":
        return _decode_swipe
    if kind == "barcode":
        return _decode_barcode
    if kind == "key":
        return _decode_key
    if kind == "callerid":
        return _CallerIdDecoder()
    raise ValueError(f"not a serial reader kind: {kind!r} (one of {', '.join(SERIAL_KINDS)})")


def _decode_swipe(line: str) -> list[Decoded]:
    swipe = parse_swipe(line)
    detail = dict(swipe.detail)
    if swipe.name:
        detail["name"] = swipe.name
    return [Decoded("magstripe", swipe.pan, detail)]


def _decode_barcode(line: str) -> list[Decoded]:
    code = parse_barcode(line)
    return [Decoded("barcode", code.value, {"symbology": code.symbology})]


def _decode_key(line: str) -> list[Decoded]:
    return [Decoded("key", parse_key(line))]


class _CallerIdDecoder:
    def __init__(self) -> None:
        self._assembler = CallerIdAssembler()

    def __call__(self, line: str) -> list[Decoded]:
        return [
            Decoded("phone", call.number, {"date": call.date, "time": call.time, "name": call.name})
            for call in self._assembler.feed(line)
        ]


class LineFramer:
    """Bytes in, lines out; a line longer than MAX_LINE becomes a ParseError and is dropped."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._overflow = False

    def feed(self, chunk: bytes) -> list[str | ParseError]:
        out: list[str | ParseError] = []
        for byte in chunk:
            if byte in b"\r\n":
                out.extend(self._end_line())
            elif len(self._buffer) < self._max_line:
                self._buffer.append(byte)
            else:
                self._overflow = True
        return out

    def _end_line(self) -> list[str | ParseError]:
        line, overflow = self._buffer.decode("latin-1"), self._overflow
        self._buffer.clear()
        self._overflow = False
        if overflow:
            return [ParseError("line_too_long", f"a line longer than {self._max_line} bytes")]
        return [line] if line else []


class SerialReader:
    """One serial identification device bound to a till (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        port: str,
        till: str,
        on_read: OnRead,
        on_error: OnError,
        baudrate: int = 9600,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self.name, self.kind, self.port, self.till = name, kind, port, till
        self.baudrate = baudrate
        self._on_read, self._on_error = on_read, on_error
        self._decoder = decoder_for(kind)
        self._min_backoff, self._max_backoff = min_backoff, max_backoff
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = "stopped"
        self._last_error: str | None = None
        self._last_read_at: datetime | None = None
        self._reads = 0
        self._errors = 0
        self._reported_loss = False

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._set_state("reconnecting")
        self._thread = threading.Thread(target=self._run, name=f"reader-{self.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop without waiting for it."""
        self._stopping.set()

    def stop(self, timeout: float = 1.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set_state("stopped")

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {
                "name": self.name,
                "kind": self.kind,
                "till": self.till,
                "port": self.port,
                "state": self._state,
                "last_error": self._last_error,
                "last_read_at": self._last_read_at.isoformat() if self._last_read_at else None,
                "reads": self._reads,
                "errors": self._errors,
            }

    def _run(self) -> None:
        backoff = self._min_backoff
        while not self._stopping.is_set():
            opened_at = time.monotonic()
            try:
                self._serve()
            except (serial.SerialException, OSError, ValueError) as error:
                self._device_failed(error)
            except Exception as error:  # a bug must not kill the reader: report and retry
                log.exception("reader %s failed unexpectedly", self.name)
                self._device_failed(error)
            if time.monotonic() - opened_at > self._max_backoff:
                backoff = self._min_backoff  # it worked for a while: this is a fresh failure
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff)

    def _serve(self) -> None:
        device = serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=READ_TIMEOUT)
        try:
            init = INIT_STRINGS.get(self.kind)
            if init:
                device.write(init)
            self._decoder = decoder_for(self.kind)  # a new line starts a new caller-ID block
            self._connected()
            framer = LineFramer()
            while not self._stopping.is_set():
                chunk = device.read(device.in_waiting or 1)
                if chunk:
                    self._handle(framer.feed(chunk), time.monotonic())
        finally:
            device.close()

    def _handle(self, items: list[str | ParseError], monotonic: float) -> None:
        at = datetime.now(UTC)
        for item in items:
            for read in self._decode(item):
                card = CardRead(
                    read.kind, read.value, self.name, self.till, at, monotonic, read.detail
                )
                self._deliver(card)

    def _decode(self, item: str | ParseError) -> list[Decoded]:
        if isinstance(item, ParseError):
            self._report_error(item)
            return []
        try:
            return self._decoder(item)
        except ParseError as error:
            self._report_error(error)
        except Exception as error:  # a parser bug: report it, keep the device open
            log.exception("reader %s: parser failed", self.name)
            self._report_error(error)
        return []

    def _deliver(self, read: CardRead) -> None:
        with self._lock:
            self._reads += 1
            self._last_read_at = read.at
        log.info("reader %s: %s %s for till %s", self.name, read.kind, mask(read.value), self.till)
        try:
            self._on_read(read)
        except Exception as error:
            log.exception("reader %s: on_read failed", self.name)
            self._record_error(f"on_read failed: {error}")

    def _report_error(self, error: Exception) -> None:
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

    def _connected(self) -> None:
        with self._lock:
            self._state = "connected"
            self._reported_loss = False
        log.info("reader %s: connected to %s", self.name, self.port)

    def _device_failed(self, error: Exception) -> None:
        with self._lock:
            was_connected = self._state == "connected"
            first = not self._reported_loss
            self._reported_loss = True
            if not self._stopping.is_set():
                self._state = "reconnecting"
        if self._stopping.is_set():
            return
        code = "device_lost" if was_connected else "device_unavailable"
        failure = DeviceError(code, f"{self.port}: {error}")
        if first:
            self._report_error(failure)
        else:  # still away: keep the health current without flooding on_error
            with self._lock:
                self._last_error = str(failure)

    def _set_state(self, state: str) -> None:
        with self._lock:
            self._state = state
