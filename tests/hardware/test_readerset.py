"""The agent's entry point: configured readers started, stopped and reported together."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hwdevices import Collector, PtyDevice, reader_has_card, wait_for

from hardware.cardemulator import LoyaltyCard, insert
from hardware.readers import ReaderConfig, ReaderSet

NUMBER = "2900010000015"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "printer", "port": "/dev/ttyS0", "till": "T1"}, "kind"),
        ({"kind": "magstripe", "till": "T1"}, "port"),
        ({"kind": "pcsc", "port": "/dev/ttyS0", "till": "T1"}, "reader"),
        ({"kind": "barcode", "port": "/dev/ttyS0", "till": ""}, "till"),
        ({"kind": "barcode", "port": "/dev/ttyS0", "till": "T1", "baudrate": 0}, "baudrate"),
        ({"kind": "barcode", "port": "/dev/ttyS0", "till": "T1", "baud": 9600}, "baud"),
    ],
)
def test_bad_reader_configuration_is_refused_with_the_reason(table: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReaderConfig.from_dict(table)


def test_config_from_toml_table_gets_defaults() -> None:
    config = ReaderConfig.from_dict({"kind": "pcsc", "reader": "Virtual PCD 00 00", "till": "T1"})
    assert (config.baudrate, config.display_name) == (9600, "pcsc:Virtual PCD 00 00")


def test_two_readers_with_the_same_name_are_refused() -> None:
    config = ReaderConfig(kind="barcode", port="/dev/ttyS0", till="T1")
    with pytest.raises(ValueError, match="share a name"):
        ReaderSet([config, config], lambda r: None, lambda n, e: None)


def test_a_dead_device_does_not_keep_the_others_from_reading(
    tmp_path: Path, pty_device: PtyDevice, collector: Collector
) -> None:
    configs = [
        ReaderConfig(kind="magstripe", port=str(tmp_path / "nothing-here"), till="T1"),
        ReaderConfig(kind="barcode", port=str(pty_device.path), till="T2", name="scanner"),
    ]
    readers = ReaderSet(configs, collector.on_read, collector.on_error, max_backoff=0.5)
    readers.start()
    try:
        wait_for(lambda: readers.health()[1]["state"] == "connected", 5, "the scanner to open")
        pty_device.send(b"4006381333931\r\n")
        read = collector.next_read()
        assert (read.reader, read.till, read.value) == ("scanner", "T2", "4006381333931")
        dead, scanner = readers.health()
        assert dead["state"] == "reconnecting" and dead["last_error"]
        assert (scanner["state"], scanner["reads"]) == ("connected", 1)
    finally:
        readers.stop()


@pytest.mark.usefixtures("pcscd")
def test_serial_and_smart_card_readers_run_side_by_side_and_stop_promptly(
    pty_device: PtyDevice, collector: Collector
) -> None:
    configs = [
        ReaderConfig(kind="magstripe", port=str(pty_device.path), till="T1"),
        ReaderConfig(kind="pcsc", reader="virtual pcd 00 01", till="T2"),
    ]
    readers = ReaderSet(configs, collector.on_read, collector.on_error)
    readers.start()
    card = None
    try:
        wait_for(
            lambda: all(h["state"] == "connected" for h in readers.health()),
            5,
            "both readers to connect",
        )
        pty_device.send(f";{NUMBER}=2912?\r".encode())
        card = insert(LoyaltyCard(NUMBER), slot=1)
        got = {collector.next_read().kind: None for _ in range(2)}
        assert set(got) == {"magstripe", "smartcard"}
        assert [h["reads"] for h in readers.health()] == [1, 1]
        assert [h["till"] for h in readers.health()] == ["T1", "T2"]
    finally:
        started = time.monotonic()
        readers.stop()
        stopped_in = time.monotonic() - started
        if card is not None:
            card.remove()
            wait_for(lambda: reader_has_card("Virtual PCD 00 01") is not True, 5, "empty slot")
    assert stopped_in < 1.0
    assert {h["state"] for h in readers.health()} == {"stopped"}
