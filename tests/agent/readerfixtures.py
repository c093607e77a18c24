"""Helpers for the agent's card-reader tests: a real agent with `[[readers]]`, ptys, pcscd.

Reuses the hardware tests' helpers (tests/hardware/hwdevices.py: `PtyDevice`, `Pcscd`,
`exclusive_pcsc`, `wait_for`, `reader_has_card`) rather than copying them. A unique module
name (the test folders are not packages), imported as `from readerfixtures import ...`.

pcscd and the virtual readers are one per machine: whoever uses them holds the flock on
/tmp/loyalty-pcsc-tests.lock (hwdevices.PCSC_LOCK). When the hardware tests' session
fixture already holds it in this very process (both folders in one pytest run), taking it
again on a second file descriptor would wait for ourselves, so `pcsc_session` notices that
(through /proc/locks) and uses that pcscd as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hardware"))

from agentkit import AgentProcess, Till
from hwdevices import (
    PCSC_LOCK,
    VPCD_CONF,
    VPCD_DRIVER,
    Pcscd,
    PtyDevice,
    exclusive_pcsc,
    reader_has_card,
    virtual_readers,
    wait_for,
)

__all__ = [
    "SLOT_T1",
    "SLOT_T2",
    "Pcscd",
    "PtyDevice",
    "ReaderAgent",
    "drain",
    "identification",
    "pcsc_session",
    "poll",
    "reader_has_card",
    "swipe",
    "track1",
    "track2",
    "wait_for",
]

SLOT_T1 = "Virtual PCD 00 00"
SLOT_T2 = "Virtual PCD 00 01"


def track1(pan: str, name: str = "DOE/JANE") -> str:
    return f"%B{pan}^{name}^2812101000000000?"


def track2(pan: str) -> str:
    return f";{pan}=28121010000000000?"


def swipe(pan: str) -> bytes:
    """What a magstripe reader sends for one swipe: track 1, track 2 and a CR."""
    return (track1(pan) + track2(pan) + "\r").encode()


# --- the agent ----------------------------------------------------------------------------
class ReaderAgent(AgentProcess):
    """`loyalty agent serve --config FILE` with the given `[[readers]]` tables."""

    def __init__(self, directory: Path, readers: list[dict[str, Any]], outlet: str = "T") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "agent.toml"
        self.config.write_text(render_config(readers))
        super().__init__(directory / "outlet.db", outlet, extra=("--config", str(self.config)))

    def readers(self) -> dict[str, dict[str, Any]]:
        status = self.till().ok("GET", "/v1/status")
        return {r["name"]: r for r in status["readers"]}

    def wait_reader(self, name: str, state: str, timeout: float = 15.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            reader = self.readers().get(name)
            return reader if reader and reader["state"] == state else None

        return wait_for(reached, timeout, f"reader {name} to be {state}")


def render_config(readers: list[dict[str, Any]]) -> str:
    lines: list[str] = []
    for table in readers:
        lines.append("[[readers]]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")  # a JSON string is a TOML string
        lines.append("")
    return "\n".join(lines)


def poll(till: Till, wait: float = 5.0) -> Any:
    """One long poll of the till's identification: the payload, or None for 204."""
    answer = till.get(f"/v1/tills/{till.till_id}/identification", params={"wait": wait},
                      timeout=wait + 10)
    assert answer.status_code in (200, 204), answer.text
    return answer.json() if answer.status_code == 200 else None


def identification(till: Till, wait: float = 5.0) -> dict[str, Any]:
    read = poll(till, wait)
    assert read is not None, f"till {till.till_id} received nothing within {wait} s"
    return read


def drain(till: Till) -> list[Any]:
    """Whatever is queued for the till now (without waiting)."""
    out = []
    while (read := poll(till, 0)) is not None:
        out.append(read)
    return out


# --- pcscd ---------------------------------------------------------------------------------
def _lock_held_by_this_process() -> bool:
    """Whether this process holds the flock on PCSC_LOCK (the hardware tests' fixture)."""
    try:
        inode = os.stat(PCSC_LOCK).st_ino
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    for entry in locks:
        fields = entry.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:5678 0 EOF"
        if (len(fields) >= 6 and fields[1] == "FLOCK" and fields[4] == str(os.getpid())
                and fields[5].rsplit(":", 1)[-1] == str(inode)):
            return True
    return False


@contextmanager
def pcsc_session(log_path: Path) -> Iterator[Pcscd]:
    """pcscd with the two virtual readers, held exclusively; skips when not installed."""
    missing = [what for what, ok in (
        ("pcscd", shutil.which("pcscd") is not None),
        ("vsmartcard-vpcd", VPCD_DRIVER.exists() and VPCD_CONF.exists()),
    ) if not ok]
    if missing:
        pytest.skip(f"PC/SC tests need {' and '.join(missing)} (./install.sh --dev installs them)")
    try:
        import smartcard  # noqa: F401
    except ImportError:
        pytest.skip("PC/SC tests need pyscard (pip install pyscard)")
    daemon = Pcscd(log_path)
    if _lock_held_by_this_process():  # the hardware tests' session pcscd: use it as it is
        wait_for(lambda: len(virtual_readers()) == 2, 15, "the virtual readers")
        yield daemon
        return
    with exclusive_pcsc(timeout=300):
        if len(virtual_readers()) != 2:
            daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()


def wait_card(reader: str, present: bool, timeout: float = 5.0) -> None:
    wait_for(lambda: reader_has_card(reader) is present, timeout,
             f"pcscd to report {'a' if present else 'no'} card in {reader}")


def settle(seconds: float) -> None:
    """A window in which nothing must happen (not a wait for an event)."""
    time.sleep(seconds)
