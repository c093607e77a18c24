"""The simulated modems and line, byte for byte (sync.linesim)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import serial
from modem_fixtures import FAST, read_until

from sync.linesim import Direction, Exchange, LineSimulator, State

Open = Callable[[str], Any]
OK = b"\r\nOK\r\n"


def connect(modem_line: LineSimulator, modem_port: Open, guard: int = 10) -> tuple[Any, Any]:
    """Two raw ports in data mode: `a` dialled 100, `b` auto-answered."""
    a, b = modem_port(modem_line.add_modem("a")), modem_port(modem_line.add_modem("b"))
    modem_line.register_number("100", ["b"])
    for port in (a, b):
        port.write(f"ATE0S12={guard}\r".encode())
        assert read_until(port, OK).endswith(OK)
    b.write(b"ATS0=1\r")
    read_until(b, OK)
    a.write(b"ATDT100\r")
    connected = f"\r\nCONNECT {modem_line.exchange.speed_bps}\r\n".encode()
    assert read_until(a, connected) == connected
    assert read_until(b, connected).endswith(b"RING\r\n" + connected)
    return a, b


def test_echo_and_verbose_result_codes(modem_line: LineSimulator, modem_port: Open) -> None:
    port = modem_port(modem_line.add_modem("m"))
    port.write(b"AT\r")
    assert read_until(port, OK) == b"AT\r" + OK  # factory default: echo on


def test_numeric_result_codes_with_v0(modem_line: LineSimulator, modem_port: Open) -> None:
    port = modem_port(modem_line.add_modem("m"))
    port.write(b"ATE0V0\r")
    read_until(port, b"0\r")
    port.write(b"ATX\xff\r")
    assert read_until(port, b"4\r") == b"4\r"  # ERROR
    port.write(b"AT\r")
    assert read_until(port, b"0\r") == b"0\r"


def test_unknown_command_answers_error(modem_line: LineSimulator, modem_port: Open) -> None:
    port = modem_port(modem_line.add_modem("m"))
    port.write(b"ATE0\r")
    read_until(port, OK)
    port.write(b"ATJ\r")
    assert read_until(port, b"ERROR\r\n") == b"\r\nERROR\r\n"


def test_s_register_is_set_and_queried(modem_line: LineSimulator, modem_port: Open) -> None:
    port = modem_port(modem_line.add_modem("m"))
    port.write(b"ATE0S7=45\r")
    read_until(port, OK)
    port.write(b"ATS7?\r")
    assert read_until(port, OK) == b"\r\n045\r\n" + OK


def test_lines_that_are_not_commands_are_ignored(modem_line: LineSimulator, modem_port: Open) -> None:
    port = modem_port(modem_line.add_modem("m"))
    port.write(b"ATE0\r")
    read_until(port, OK)
    port.write(b"hello\rAT\r")
    assert read_until(port, OK) == OK


def test_ring_repeats_until_answered_with_ata(modem_line: LineSimulator, modem_port: Open) -> None:
    a, b = modem_port(modem_line.add_modem("a")), modem_port(modem_line.add_modem("b"))
    modem_line.register_number("100", ["b"])
    a.write(b"ATDT100\r")
    rings = read_until(b, b"RING\r\n\r\nRING\r\n\r\nRING")
    assert rings.count(b"RING") == 3
    b.write(b"ATA\r")
    assert b"CONNECT" in read_until(b, b"CONNECT")
    assert b"CONNECT" in read_until(a, b"CONNECT")


def test_data_mode_forwards_bytes_both_ways(modem_line: LineSimulator, modem_port: Open) -> None:
    a, b = connect(modem_line, modem_port)
    payload = bytes(range(256)) * 4
    a.write(payload)
    assert read_until(b, payload) == payload
    b.write(b"back")
    assert read_until(a, b"back") == b"back"


def test_escape_needs_guard_time_before_and_after(modem_line: LineSimulator, modem_port: Open) -> None:
    a, b = connect(modem_line, modem_port, guard=10)  # 0.2 s
    a.write(b"x+++")  # no silence before: data, not an escape
    assert read_until(b, b"x+++") == b"x+++"
    assert read_until(a, OK, 0.6) == b""
    assert modem_line.state("a") == "data"
    time.sleep(0.3)  # the guard time itself is what is under test
    a.write(b"+++")
    assert read_until(a, OK) == OK
    assert modem_line.state("a") == "online_command"
    a.write(b"ATO\r")
    assert b"CONNECT" in read_until(a, b"CONNECT")
    assert modem_line.state("a") == "data"


def test_ath_hangs_up_and_the_remote_sees_no_carrier(modem_line: LineSimulator, modem_port: Open) -> None:
    a, b = connect(modem_line, modem_port)
    time.sleep(0.25)  # guard time before the escape (S12=10)
    a.write(b"+++")
    read_until(a, OK)
    a.write(b"ATH\r")
    assert read_until(a, OK) == OK
    # the remote got the +++ as data (it was data until the guard time passed)
    assert read_until(b, b"NO CARRIER\r\n") == b"+++\r\nNO CARRIER\r\n"
    assert modem_line.state("a") == modem_line.state("b") == "command"


def test_drop_carrier_tells_both_sides(modem_line: LineSimulator, modem_port: Open) -> None:
    a, b = connect(modem_line, modem_port)
    assert modem_line.drop_carrier("b")
    for port in (a, b):
        assert read_until(port, b"NO CARRIER\r\n") == b"\r\nNO CARRIER\r\n"
    assert modem_line.state("a") == modem_line.state("b") == "command"
    assert not modem_line.drop_carrier("a")  # no call any more


def test_busy_when_the_callee_is_in_a_call(modem_line: LineSimulator, modem_port: Open) -> None:
    connect(modem_line, modem_port)
    c = modem_port(modem_line.add_modem("c"))
    c.write(b"ATE0DT100\r")
    assert read_until(c, b"BUSY\r\n") == b"ATE0DT100\r\r\nBUSY\r\n"  # echo: E0 acts after


def test_throttles_to_the_line_speed(modem_port: Open) -> None:
    speed = 96_000
    with LineSimulator(speed_bps=speed, timing=FAST) as sim:
        a, b = connect(sim, modem_port)
        payload = os.urandom(24_000)
        started = time.monotonic()
        a.write(payload)
        got = read_until(b, payload[-64:], timeout=20)
        elapsed = time.monotonic() - started
    expected = len(payload) * 10 / speed
    print(f"24,000 bytes at {speed} bit/s: {elapsed:.2f} s (line time {expected:.2f} s)")
    assert got == payload
    assert 0.95 * expected <= elapsed <= 1.5 * expected


def test_bit_errors_follow_the_configured_rate() -> None:
    rate, nbytes = 1e-3, 200_000
    direction = Direction(33_600, random.Random(5), rate)
    sent = os.urandom(nbytes)
    direction.send(sent, now=0.0)
    got = direction.take_due(now=1e9)
    flipped = sum((x ^ y).bit_count() for x, y in zip(sent, got, strict=True))
    expected = 8 * nbytes * rate
    assert flipped == direction.bits_flipped
    assert abs(flipped - expected) < 5 * expected**0.5


def test_no_bit_errors_at_rate_zero() -> None:
    direction = Direction(33_600, random.Random(5), 0.0)
    sent = os.urandom(50_000)
    direction.send(sent, now=0.0)
    assert direction.take_due(now=1e9) == sent


def test_escape_logic_without_a_pty() -> None:
    exchange = Exchange(speed_bps=1_000_000, timing=FAST)
    a, b = exchange.add_modem("a"), exchange.add_modem("b")
    exchange.register_number("1", ["b"])
    b.regs[0] = 1
    a.from_dte(b"ATE0DT1\r", now=0.0)
    for t in (0.1, 0.2, 0.3, 0.4):
        exchange.poll(t)
    assert a.state is b.state is State.DATA
    a.from_dte(b"+++", now=2.0)  # 1.6 s of silence since CONNECT: a valid start
    exchange.poll(2.5)
    assert a.state is State.DATA  # guard after not yet over
    exchange.poll(3.01)
    assert a.state is State.ONLINE_COMMAND
    assert a.to_dte.endswith(OK)


def test_cli_prints_paths_and_serves_modems(tmp_path: Path) -> None:
    config = tmp_path / "line.toml"
    config.write_text(
        'speed_bps = 33600\n[[modems]]\nname = "hq1"\n[[modems]]\nname = "outlet"\n'
        '[[numbers]]\nnumber = "100"\nmodems = ["hq1"]\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.linesim", "--config", str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        lines = [proc.stdout.readline().split() for _ in range(3)]
        paths = {words[1]: words[2] for words in lines[:2]}
        assert set(paths) == {"hq1", "outlet"} and lines[2] == ["ready"]
        port = serial.serial_for_url(paths["outlet"], timeout=0.05)
        port.write(b"AT\r")
        assert read_until(port, OK).endswith(OK)
        port.close()
        proc.stdin.write("stats\n")
        proc.stdin.flush()
        assert '"calls_made": 0' in proc.stdout.readline()
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_connect_reports_the_configured_speed(modem_port: Open) -> None:
    with LineSimulator(speed_bps=33_600, timing=FAST) as sim:
        a = modem_port(sim.add_modem("a"))
        b = modem_port(sim.add_modem("b"))
        sim.register_number("7", ["b"])
        b.write(b"ATS0=1\r")
        read_until(b, OK)
        a.write(b"ATDT7\r")
        assert read_until(a, b"CONNECT 33600\r\n").endswith(b"\r\nCONNECT 33600\r\n")
