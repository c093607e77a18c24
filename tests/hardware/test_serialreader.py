"""Serial readers against pseudo-terminals written byte for byte like the real devices."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hwdevices import Collector, PtyDevice, wait_for
from hypothesis import given
from hypothesis import strategies as st

from hardware.reads import DeviceError, ParseError
from hardware.serialreader import LineFramer, SerialReader, decoder_for

PAN = "2900010000015"
TRACK1 = f"%B{PAN}^DOE/JOHN^2912101000000000?"
TRACK2 = f";{PAN}=29121010000000000?"


@pytest.fixture
def make_reader(collector: Collector) -> Iterator:
    readers: list[SerialReader] = []

    def make(kind: str, port: str, till: str = "T1", **kw) -> SerialReader:
        reader = SerialReader(
            name=f"{kind}-test",
            kind=kind,
            port=port,
            till=till,
            on_read=collector.on_read,
            on_error=collector.on_error,
            max_backoff=0.4,
            **kw,
        )
        reader.start()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.stop()


def connected(reader: SerialReader) -> bool:
    return reader.health()["state"] == "connected"


def test_swipe_reaches_on_read_with_the_right_till(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("magstripe", str(pty_device.path), till="T7")
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    last_byte = pty_device.send((TRACK1 + TRACK2 + "\r").encode())
    read = collector.next_read()
    assert (read.kind, read.value, read.till, read.reader) == (
        "magstripe",
        PAN,
        "T7",
        "magstripe-test",
    )
    assert read.detail["name"] == "JOHN DOE"
    assert read.monotonic >= last_byte - 0.005  # stamped when the terminator arrived
    assert reader.health()["reads"] == 1 and reader.health()["last_read_at"] is not None


def test_garbled_swipe_is_reported_and_reader_keeps_reading(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("magstripe", str(pty_device.path))
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    pty_device.send(b"%B29000100^DOE/JO\r")  # the card was pulled out half way
    name, error = collector.next_error()
    assert name == "magstripe-test"
    assert isinstance(error, ParseError) and error.code == "track_garbled"
    pty_device.send((TRACK2 + "\r").encode())
    assert collector.next_read().value == PAN
    health = reader.health()
    assert (health["state"], health["reads"], health["errors"]) == ("connected", 1, 1)
    assert "track_garbled" in health["last_error"]


def test_barcode_scanner_line_with_crlf_gives_one_read(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("barcode", str(pty_device.path), till="T2")
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    pty_device.send(b"]E02900010000015\r\n4006381333932\r\n")
    read = collector.next_read()
    assert (read.kind, read.value, read.till, read.detail) == (
        "barcode",
        PAN,
        "T2",
        {"symbology": "ean13"},
    )
    _, error = collector.next_error()
    assert isinstance(error, ParseError) and error.code == "check_digit"
    assert collector.no_read(0.2)  # the CR LF pair did not make an empty second read


def test_modem_caller_id_identifies_the_caller_on_the_lines_till(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("callerid", str(pty_device.path), till="T3")
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    init = wait_for(lambda: pty_device.receive(), 5, "the modem init string")
    assert init == b"AT+VCID=1\r"
    pty_device.send(
        b"\r\nOK\r\n\r\nRING\r\n\r\nDATE = 1122\r\nTIME = 0830\r\n"
        b"NMBR = 5551234\r\nNAME = JOHN DOE\r\n\r\nRING\r\n"
    )
    read = collector.next_read()
    assert (read.kind, read.value, read.till) == ("phone", "5551234", "T3")
    assert read.detail["date"] == "1122" and read.detail["time"] == "0830"
    pty_device.send(b"\r\nRING\r\n\r\nDATE = 1122\r\nTIME = 0831\r\nNMBR = P\r\n\r\nRING\r\n")
    _, error = collector.next_error()
    assert getattr(error, "code", None) == "callerid_withheld"
    assert collector.no_read(0.2)


def test_electronic_key_reads_its_id(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("key", str(pty_device.path))
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    pty_device.send(b"04A1B2C3*D4\r\n")
    assert (collector.next_read().kind, collector.reads.qsize()) == ("key", 0)


def test_unplugged_reader_reconnects_when_the_device_comes_back(
    make_reader, pty_device: PtyDevice, collector: Collector
) -> None:
    reader = make_reader("magstripe", str(pty_device.path))
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    pty_device.unplug()
    _, error = collector.next_error(code="device_lost")
    assert isinstance(error, DeviceError)
    wait_for(lambda: reader.health()["state"] == "reconnecting", 5, "health to show reconnecting")
    assert collector.no_error(0.8)  # several retries (back-off 0.1, 0.2, 0.4 s), reported once
    assert reader.health()["last_error"] and reader.health()["errors"] == 1
    pty_device.plug()  # a new pty behind the same path, like the USB adapter coming back
    wait_for(lambda: connected(reader), 5, "the reader to reconnect")
    pty_device.send((TRACK2 + "\r").encode())
    assert collector.next_read().value == PAN
    assert collector.errors.qsize() == 0  # the outage was reported once, not per retry


def test_missing_device_at_start_is_reported_once_and_retried(
    make_reader, tmp_path, collector: Collector
) -> None:
    path = tmp_path / "ttyLATE"
    reader = make_reader("barcode", str(path))
    _, error = collector.next_error(code="device_unavailable")
    assert isinstance(error, DeviceError) and "ttyLATE" in str(error)
    wait_for(lambda: reader.health()["errors"] == 1, 2, "the error to be counted")
    device = PtyDevice(path)
    try:
        wait_for(lambda: connected(reader), 5, "the reader to open the late device")
        device.send(b"4006381333931\r\n")
        assert collector.next_read().value == "4006381333931"
        assert reader.health()["errors"] == 1
    finally:
        device.unplug()


def test_stop_is_prompt_and_health_says_stopped(make_reader, pty_device: PtyDevice) -> None:
    reader = make_reader("magstripe", str(pty_device.path))
    wait_for(lambda: connected(reader), 5, "the reader to open the port")
    started = time.monotonic()
    reader.stop()
    assert time.monotonic() - started < 1.0
    assert reader.health()["state"] == "stopped"


def test_failing_callback_does_not_stop_the_reader(pty_device: PtyDevice) -> None:
    reads: list[str] = []

    def on_read(read) -> None:
        reads.append(read.value)
        raise RuntimeError("the agent's handler broke")

    reader = SerialReader(
        name="m",
        kind="magstripe",
        port=str(pty_device.path),
        till="T1",
        on_read=on_read,
        on_error=lambda n, e: None,
    )
    reader.start()
    try:
        wait_for(lambda: connected(reader), 5, "the reader to open the port")
        pty_device.send((TRACK2 + "\r" + TRACK2 + "\r").encode())
        wait_for(lambda: len(reads) == 2, 5, "both swipes to be delivered")
        assert connected(reader) and "on_read failed" in reader.health()["last_error"]
    finally:
        reader.stop()


def test_socket_url_works_like_a_serial_port(make_reader, collector: Collector) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
    make_reader("barcode", f"socket://127.0.0.1:{port}", till="T9")
    conn = wait_for(lambda: accepted and accepted[0], 5, "the reader to connect")
    try:
        conn.sendall(b"]C0LOY-000123\r\n")
        read = collector.next_read()
        assert (read.value, read.till, read.detail["symbology"]) == ("LOY-000123", "T9", "code128")
    finally:
        conn.close()
        server.close()


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        decoder_for("printer")


def test_endless_line_is_reported_and_dropped() -> None:
    framer = LineFramer(max_line=16)
    items = framer.feed(b"x" * 40 + b"\r" + b"ok\n")
    assert isinstance(items[0], ParseError) and items[0].code == "line_too_long"
    assert items[1:] == ["ok"]


@given(st.binary(max_size=300), st.sampled_from(["magstripe", "barcode", "callerid", "key"]))
def test_random_device_output_gives_reads_or_parse_errors(data: bytes, kind: str) -> None:
    decode = decoder_for(kind)
    for item in LineFramer().feed(data + b"\r\n"):
        if isinstance(item, str):
            try:
                decode(item)
            except ParseError:
                pass
