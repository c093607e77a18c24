"""Helpers for the hardware tests: waiting on events, pseudo-terminals, pcscd.

Tests wait by polling with a deadline (`wait_for`, which is testkit's `wait_until`;
`Collector.next_*`), never by sleeping.
"""

from __future__ import annotations

import fcntl
import os
import queue
import shutil
import signal
import subprocess
import time
import tty
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from testkit import wait_until
from testkit.processes import log_tail

VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_CONF = Path("/etc/reader.conf.d/vpcd")
PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
PCSC_LOCK = Path("/tmp/loyalty-pcsc-tests.lock")
# A test run killed by a timeout must not leave a pcscd behind holding vpcd's ports.
_PCSCD = (["setpriv", "--pdeathsig", "TERM"] if shutil.which("setpriv") else []) + [
    "pcscd",
    "--foreground",
]
VIRTUAL_READERS = ("Virtual PCD 00 00", "Virtual PCD 00 01")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    return wait_until(predicate, timeout, every=0.02, what=what)[1]


class Collector:
    """on_read / on_error callbacks that tests can wait on."""

    def __init__(self) -> None:
        self.reads: queue.Queue[Any] = queue.Queue()
        self.errors: queue.Queue[tuple[str, Exception]] = queue.Queue()

    def on_read(self, read: Any) -> None:
        self.reads.put(read)

    def on_error(self, name: str, error: Exception) -> None:
        self.errors.put((name, error))

    def next_read(self, timeout: float = 5.0) -> Any:
        try:
            return self.reads.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no read within {timeout} s")

    def next_error(self, timeout: float = 5.0, code: str | None = None) -> tuple[str, Exception]:
        """The next error (skipping others until one with `code`, when given)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, error = self.errors.get(timeout=max(deadline - time.monotonic(), 0.001))
            except queue.Empty:
                pytest.fail(f"no error {code or ''} within {timeout} s")
            if code is None or getattr(error, "code", None) == code:
                return name, error

    def no_error(self, within: float) -> bool:
        """True if no error arrives within the window (a window, not a wait for an event)."""
        return _quiet(self.errors, within)

    def no_read(self, within: float) -> bool:
        return _quiet(self.reads, within)


def _quiet(events: queue.Queue[Any], within: float) -> bool:
    try:
        events.get(timeout=within)
    except queue.Empty:
        return True
    return False


# --- pseudo-terminals ---------------------------------------------------------------------


class PtyDevice:
    """The device side of a serial line; the reader opens `path` (a stable symlink)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.master = -1
        self.slave = -1
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # no echo, no line discipline: bytes as the device sent them
        tmp = self.path.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.path)

    def unplug(self) -> None:
        # The path goes too, as /dev/ttyUSB0 does when the adapter is pulled: a link left
        # to the freed /dev/pts/N could be opened while another test reuses that number.
        self.path.unlink(missing_ok=True)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1

    def send(self, data: bytes, baud: int = 9600) -> float:
        """Write byte by byte at the line's pace (10 bits a byte); the last byte's time."""
        start = time.monotonic()
        for i in range(len(data)):
            os.write(self.master, data[i : i + 1])
            due = start + (i + 1) * 10 / baud
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the simulated line, not waiting for an event
        return time.monotonic()

    def receive(self, size: int = 1024) -> bytes:
        os.set_blocking(self.master, False)
        try:
            return os.read(self.master, size)
        except BlockingIOError:
            return b""
        finally:
            os.set_blocking(self.master, True)


# --- pcscd with the virtual reader ---------------------------------------------------------


def pcscd_answers() -> bool:
    from smartcard import scard

    from hardware.pcsc import establish
    from hardware.reads import DeviceError

    try:
        scard.SCardReleaseContext(establish())
    except DeviceError:
        return False
    return True


def virtual_readers() -> list[str]:
    from hardware.pcsc import establish, list_readers
    from hardware.reads import DeviceError

    try:
        context = establish()
    except DeviceError:
        return []
    from smartcard import scard

    try:
        return [r for r in list_readers(context) if r in VIRTUAL_READERS]
    except DeviceError:
        return []
    finally:
        scard.SCardReleaseContext(context)


@contextmanager
def exclusive_pcsc(timeout: float) -> Iterator[None]:
    """Hold the machine's pcscd and virtual readers for one test session at a time."""
    def taken() -> bool:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # another session is using pcscd: wait for it to finish
        return True

    with open(PCSC_LOCK, "w") as lock:
        wait_until(taken, timeout, every=0.2, what=f"{PCSC_LOCK} free (another test session)")
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Pcscd:
    """A pcscd this test session started (or an external one it must leave alone)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ours(self) -> bool:
        return self.process is not None

    def start(self) -> None:
        if pcscd_answers():
            pytest.fail(
                "a pcscd is running but lists no virtual readers (it was started before "
                "vsmartcard-vpcd was installed, or while another pcscd held vpcd's ports "
                "35963/35964): stop that pcscd and run the tests again"
            )
        PCSCD_SOCKET.unlink(missing_ok=True)  # left behind by a pcscd that was killed
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(_PCSCD, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._ready, 15, "pcscd to list the virtual readers")

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            pytest.fail(f"pcscd exited with {self.process.returncode}:\n"
                        f"{log_tail(self.log_path, 2000)}")
        return len(virtual_readers()) == 2

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            PCSCD_SOCKET.unlink(missing_ok=True)
        self.process = None


def reader_has_card(reader: str) -> bool | None:
    """Whether pcscd reports a card in `reader` (None when pcscd cannot tell)."""
    from smartcard import scard

    from hardware.pcsc import establish
    from hardware.reads import DeviceError

    try:
        context = establish()
    except DeviceError:
        return None
    try:
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)]
        )
        if hresult != scard.SCARD_S_SUCCESS:
            return None
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


class EmulatorChannel:
    """A CardChannel straight to an emulated card, without PC/SC (for layout unit tests)."""

    def __init__(self, card: Any) -> None:
        self.card = card
        card.reset()

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        response = self.card.respond(bytes(apdu))
        return list(response[:-2]), response[-2], response[-1]
