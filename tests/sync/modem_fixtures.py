"""Fixtures and helpers for the modem-link tests: a line simulator and modems on it.

A unique module name (the test folders are not packages): test modules import what they
use with `from modem_fixtures import ...`, fixtures included, so pytest sees them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial

from sync.hayes import HayesModem
from sync.linesim import LineSimulator, Timing

FAST = Timing(dial_delay_s=0.05, ring_interval_s=0.2, connect_delay_s=0.05)
FAST_BPS = 2_000_000  # where a test is not about timing
GUARD_S = 0.2
INIT = ("ATZ", "ATE0V1", f"ATS12={int(GUARD_S * 50)}")  # short guard time: quick hangups


@pytest.fixture
def modem_line() -> Iterator[LineSimulator]:
    """A started simulator at FAST_BPS with fast rings; add modems with `add_modem`."""
    sim = LineSimulator(speed_bps=FAST_BPS, timing=FAST)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def modem_port() -> Iterator[Callable[[str], Any]]:
    """Opens a pty path as a device would (pyserial); all closed after the test."""
    ports: list[Any] = []

    def open_(path: str) -> Any:
        port = serial.serial_for_url(path, timeout=0.05)
        ports.append(port)
        return port

    yield open_
    for port in ports:
        port.close()


@pytest.fixture
def hayes_modem(
    modem_line: LineSimulator, modem_port: Callable[[str], Any]
) -> Callable[..., HayesModem]:
    """`hayes_modem(name, number=None)`: a new simulated modem with an initialised client."""

    def make(name: str, number: str | None = None) -> HayesModem:
        path = modem_line.add_modem(name)
        if number is not None:
            modem_line.register_number(number, [name])
        client = HayesModem(modem_port(path), init=INIT, guard_s=GUARD_S)
        client.initialize()
        return client

    return make


def read_until(port: Any, expected: bytes, timeout: float = 5.0) -> bytes:
    """Reads a raw port until `expected` appears (or the timeout); returns all it read."""
    got = b""
    deadline = time.monotonic() + timeout
    while expected not in got and time.monotonic() < deadline:
        got += port.read(256)
    return got


def in_thread(target: Callable[[], Any]) -> Callable[[float], Any]:
    """Runs `target` in a thread; the returned function joins it and returns or raises."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by join()
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join(timeout: float) -> Any:
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError("thread still running")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    return join
