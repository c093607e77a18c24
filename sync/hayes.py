"""The outlet's and headquarters' side of a Hayes-compatible modem on a serial port.

Promises: `initialize` puts the modem in a known state (init commands, each answered OK);
`dial` returns a `Connection` on `CONNECT` or raises a typed `ModemError` whose `code` is
stable (`modem_busy`, `modem_no_carrier`, `modem_no_answer`, `modem_no_dialtone`,
`modem_timeout`, `modem_command_error`) and `retriable` says whether the schedule should
try again; `wait_for_call` answers (`ATS0=n` auto-answer, or `RING` then `ATA`) and returns
a `Connection`; `hangup` leaves the modem on hook in command mode (guard time, `+++`, guard
time, `ATH`), also after the line already dropped. In data mode the port belongs to the
`Connection` (its `port` is what a `ModemChannel` reads and writes); bytes the client read
past `CONNECT` are handed over, never lost.

Synchronous by design (a lock, no reader thread): pyserial's threaded `ATProtocol` keeps
a thread reading the port, which would compete with the channel for data-mode bytes. The
only fixed waits are the Hayes guard times around `+++`, which the modem requires.
Must never: send a command while another one is waiting for its result, or leave a dial
in progress when it gives up (a key press aborts it).
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from schema.errors import DeviceError

DEFAULT_INIT = ("ATZ", "ATE0V1Q0X4")
NO_CARRIER_IN_DATA = b"\r\nNO CARRIER\r"
_CONNECT = re.compile(r"^CONNECT(?:\s+(\d+))?")


class ModemError(DeviceError):
    code = "modem_error"
    retriable = False


class ModemBusy(ModemError):
    code = "modem_busy"
    retriable = True


class ModemNoCarrier(ModemError):
    code = "modem_no_carrier"
    retriable = True


class ModemNoAnswer(ModemError):
    code = "modem_no_answer"
    retriable = True


class ModemNoDialtone(ModemError):
    code = "modem_no_dialtone"
    retriable = True


class ModemTimeout(ModemError):
    code = "modem_timeout"
    retriable = True


class ModemCommandError(ModemError):
    """The modem answered ERROR: a wrong init string, usually a configuration problem."""

    code = "modem_command_error"


FAILURES: dict[str, type[ModemError]] = {
    "BUSY": ModemBusy,
    "NO CARRIER": ModemNoCarrier,
    "NO ANSWER": ModemNoAnswer,
    "NO DIALTONE": ModemNoDialtone,
    "ERROR": ModemCommandError,
}


class SerialPort(Protocol):
    timeout: float | None

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes, /) -> int | None: ...


class DataPort:
    """The port in data mode: first the bytes read past CONNECT, then the port itself.

    Also watches for the modem's in-band NO CARRIER so `hangup` knows the modem is
    already back in command mode.
    """

    def __init__(self, port: SerialPort, leftover: bytes, skip_lf: bool = True) -> None:
        self._port = port
        self._leftover = leftover
        self._skip_lf = skip_lf  # the LF of CONNECT's CR LF may come after the CR
        self._tail = b""
        self.carrier_lost = False

    @property
    def timeout(self) -> float | None:
        return self._port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._port.timeout = value

    def read(self, size: int = 1) -> bytes:
        if self._leftover:
            data, self._leftover = self._leftover[:size], self._leftover[size:]
        else:
            data = self._port.read(size)
        if self._skip_lf and data:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        window = self._tail + data
        if NO_CARRIER_IN_DATA in window:
            self.carrier_lost = True
        self._tail = window[-len(NO_CARRIER_IN_DATA) :]
        return data

    def write(self, data: bytes, /) -> int | None:
        return self._port.write(data)


@dataclass
class Connection:
    speed_bps: int | None
    port: DataPort


class HayesModem:
    """An AT-command client for one modem. Thread-safe (one command at a time)."""

    def __init__(
        self,
        port: SerialPort,
        init: Sequence[str] = DEFAULT_INIT,
        guard_s: float = 1.0,
        command_timeout_s: float = 5.0,
        poll_s: float = 0.05,
    ) -> None:
        self.port = port
        self.init = tuple(init)
        self.guard_s = guard_s
        self.command_timeout_s = command_timeout_s
        self.rings_seen = 0
        self._poll_s = poll_s
        self._buf = bytearray()
        self._lock = threading.RLock()
        self._data: DataPort | None = None
        self._last_end = b""

    # --- command mode ------------------------------------------------------------------

    def initialize(self) -> None:
        """Sends each init command; ModemCommandError names the one the modem refused.
        A modem left online (the program stopped mid-call) is first escaped to command
        mode; the init's ATZ then hangs it up."""
        with self._lock:
            try:
                self.command("AT", timeout=1.0)
            except ModemTimeout:
                self._escape()
                self._send("")
                self._drain(0.2)
            for command in self.init:
                self.command(command)

    def command(self, command: str, timeout: float | None = None) -> list[str]:
        """Sends one AT command; returns its information lines when the modem says OK."""
        with self._lock:
            self._send(command)
            deadline = time.monotonic() + (timeout or self.command_timeout_s)
            lines: list[str] = []
            while True:
                line = self._read_line(deadline)
                if line is None:
                    raise ModemTimeout(f"no answer to {command}", command=command)
                if line == "OK":
                    return lines
                if line in FAILURES:
                    raise FAILURES[line](f"{command} answered {line}", command=command)
                if line == "RING":
                    self.rings_seen += 1
                elif line.upper() != command.upper():  # an echo when E1 is on
                    lines.append(line)

    def dial(self, number: str, timeout: float = 60.0, tone: bool = True) -> Connection:
        """Dials and waits for CONNECT; the modem itself gives up after `timeout` (S7)."""
        with self._lock:
            self.command(f"ATS7={max(1, min(255, math.ceil(timeout)))}")
            command = f"ATD{'T' if tone else 'P'}{number}"
            self._send(command)
            return self._await_connect(time.monotonic() + timeout + 5.0, command, number)

    def answer_mode(self, auto: bool = True, rings: int = 1) -> None:
        """Auto-answer after `rings` rings (ATS0=n), or not at all (ATS0=0)."""
        self.command(f"ATS0={max(1, rings) if auto else 0}")

    def wait_for_call(self, timeout: float, answer_after_rings: int | None = None) -> Connection:
        """Waits for a call until CONNECT. With `answer_after_rings`, answers with ATA
        after that many RINGs (use it with answer_mode(auto=False))."""
        with self._lock:
            deadline = time.monotonic() + timeout
            rings = 0
            while True:
                line = self._read_line(deadline)
                if line is None:
                    raise ModemTimeout("no call arrived", timeout=timeout)
                if line == "RING":
                    rings += 1
                    self.rings_seen += 1
                    if answer_after_rings is not None and rings >= answer_after_rings:
                        self._send("ATA")
                        return self._await_connect(deadline + 60.0, "ATA", None)
                    continue
                if rings == 0 and line in FAILURES:
                    continue  # e.g. the NO CARRIER that ended the previous call
                connection = self._connection_from(line, "RING", None)
                if connection is not None:
                    return connection

    def answer(self, timeout: float = 60.0) -> Connection:
        """ATA now (a RING was seen elsewhere)."""
        with self._lock:
            self._send("ATA")
            return self._await_connect(time.monotonic() + timeout, "ATA", None)

    def hangup(self) -> None:
        """Back to command mode if online (guard, +++, guard), then ATH."""
        with self._lock:
            data, self._data = self._data, None
            if data is not None and not data.carrier_lost:
                self._escape()
            self._buf.clear()
            self._send("")  # ends any half-typed line, e.g. a '+++' typed in command mode
            self._drain(0.2)
            try:
                self.command("ATH")
            except ModemNoCarrier:
                pass

    # --- helpers -----------------------------------------------------------------------

    def _escape(self) -> None:
        time.sleep(self.guard_s)  # Hayes guard time: the modem needs this silence
        self.port.write(b"+++")
        deadline = time.monotonic() + self.guard_s + 2.0
        self._buf.clear()
        while True:
            line = self._read_line(deadline)
            if line is None or line in ("OK", "NO CARRIER"):
                return

    def _await_connect(self, deadline: float, command: str, number: str | None) -> Connection:
        while True:
            line = self._read_line(deadline)
            if line is None:
                self.port.write(b"\r")  # any key aborts a dial or an answer in progress
                self._drain(1.0)
                raise ModemTimeout(f"{command} got no CONNECT in time", number=number)
            connection = self._connection_from(line, command, number)
            if connection is not None:
                return connection

    def _connection_from(self, line: str, command: str, number: str | None) -> Connection | None:
        """A Connection for CONNECT, an error for a failure, None for anything else."""
        match = _CONNECT.match(line)
        if match:
            speed = int(match.group(1)) if match.group(1) else None
            self._data = DataPort(self.port, bytes(self._buf), self._last_end == b"\r")
            self._buf.clear()
            return Connection(speed, self._data)
        if line in FAILURES:
            raise FAILURES[line](f"{command} answered {line}", number=number)
        if line == "RING":
            self.rings_seen += 1
        return None

    def _send(self, command: str) -> None:
        self.port.write(command.encode("ascii") + b"\r")

    def _read_line(self, deadline: float) -> str | None:
        """The next non-empty line (ended by CR or LF), or None at the deadline."""
        self._set_poll()
        while True:
            cut = _first_line_end(self._buf)
            if cut is not None:
                raw = bytes(self._buf[:cut])
                self._last_end = bytes(self._buf[cut : cut + 1])
                del self._buf[: cut + 1]
                text = raw.decode("latin-1").strip()
                if text:
                    return text
                continue
            if time.monotonic() > deadline:
                return None
            self._buf += self.port.read(1 if not self._buf else 64)

    def _set_poll(self) -> None:
        if self.port.timeout != self._poll_s:  # pyserial reconfigures the tty on every set
            self.port.timeout = self._poll_s

    def _drain(self, seconds: float) -> None:
        """Reads and forgets what the modem still says for a moment."""
        end = time.monotonic() + seconds
        self._set_poll()
        while time.monotonic() < end:
            self.port.read(256)
        self._buf.clear()


def _first_line_end(buf: bytearray) -> int | None:
    positions = [p for p in (buf.find(b"\r"), buf.find(b"\n")) if p >= 0]
    return min(positions) if positions else None
