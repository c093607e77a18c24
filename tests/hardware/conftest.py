"""Real devices for the hardware tests: pcscd with the virtual reader, and pseudo-terminals.

PC/SC tests need Debian's pcscd and vsmartcard-vpcd (./install.sh --dev installs them);
without them they are skipped with the reason. A pcscd already serving the virtual readers
is used as is (and never stopped by the tests); otherwise the session starts its own.
Helpers live in hwdevices.py (a unique module name: test folders here are not packages).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hwdevices import (
    VPCD_CONF,
    VPCD_DRIVER,
    Collector,
    Pcscd,
    PtyDevice,
    exclusive_pcsc,
    virtual_readers,
)


@pytest.fixture
def collector() -> Collector:
    return Collector()


@pytest.fixture
def pty_device(tmp_path: Path) -> Iterator[PtyDevice]:
    device = PtyDevice(tmp_path / "ttyREADER0")
    yield device
    device.unplug()


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    missing = [
        what
        for what, ok in (
            ("pcscd", shutil.which("pcscd") is not None),
            ("vsmartcard-vpcd", VPCD_DRIVER.exists() and VPCD_CONF.exists()),
        )
        if not ok
    ]
    if missing:
        pytest.skip(f"PC/SC tests need {' and '.join(missing)} (./install.sh --dev installs them)")
    try:
        import smartcard  # noqa: F401
    except ImportError:
        pytest.skip("PC/SC tests need pyscard (pip install pyscard)")
    with exclusive_pcsc(timeout=300):
        daemon = Pcscd(tmp_path_factory.mktemp("pcscd") / "pcscd.log")
        if len(virtual_readers()) != 2:
            daemon.start()
        yield daemon
        daemon.stop()


@pytest.fixture
def own_pcscd(pcscd: Pcscd) -> Iterator[Pcscd]:
    """pcscd that this test may stop and restart; running again for the next test."""
    if not pcscd.ours:
        pytest.skip("pcscd was started outside the tests: not restarting someone else's daemon")
    yield pcscd
    if not pcscd.running:
        pcscd.start()
