"""The AT-command client against the simulated modems (sync.hayes over sync.linesim)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from modem_fixtures import in_thread, read_until

from sync.hayes import (
    HayesModem,
    ModemBusy,
    ModemCommandError,
    ModemNoAnswer,
    ModemNoCarrier,
    ModemNoDialtone,
    ModemTimeout,
)
from sync.linesim import LineSimulator

Make = Callable[..., HayesModem]


def call(caller: HayesModem, callee: HayesModem, number: str = "100") -> tuple[Any, Any]:
    callee.answer_mode(auto=True)
    answered = in_thread(lambda: callee.wait_for_call(10))
    return caller.dial(number, timeout=10), answered(15)


def test_dial_connects_both_sides_at_the_line_speed(modem_line: LineSimulator, hayes_modem: Make) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    dialled, answered = call(outlet, hq)
    assert dialled.speed_bps == answered.speed_bps == modem_line.exchange.speed_bps
    assert modem_line.state("outlet") == modem_line.state("hq") == "data"
    dialled.port.write(b"hello")
    assert read_until(answered.port, b"hello") == b"hello"


def test_dial_raises_busy_when_the_only_line_is_in_a_call(hayes_modem: Make) -> None:
    first, second, hq = hayes_modem("a"), hayes_modem("b"), hayes_modem("hq", "100")
    call(first, hq)
    with pytest.raises(ModemBusy) as info:
        second.dial("100", timeout=5)
    assert info.value.code == "modem_busy" and info.value.retriable


def test_hunt_group_gives_the_next_free_line(modem_line: LineSimulator, hayes_modem: Make) -> None:
    a, b = hayes_modem("a"), hayes_modem("b")
    hq1, hq2 = hayes_modem("hq1"), hayes_modem("hq2")
    modem_line.register_number("100", ["hq1", "hq2"])
    call(a, hq1)
    hq2.answer_mode(auto=True)
    answered = in_thread(lambda: hq2.wait_for_call(10))
    b.dial("100", timeout=10)
    answered(15)
    assert modem_line.state("hq1") == modem_line.state("hq2") == "data"


def test_no_answer_when_the_callee_does_not_pick_up(modem_line: LineSimulator, hayes_modem: Make) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    hq.answer_mode(auto=False)
    with pytest.raises(ModemNoAnswer) as info:
        outlet.dial("100", timeout=1)
    assert info.value.code == "modem_no_answer"
    assert modem_line.state("hq") == "command" and modem_line.exchange.modems["hq"].call is None


def test_no_answer_when_nobody_has_the_number(hayes_modem: Make) -> None:
    outlet = hayes_modem("outlet")
    with pytest.raises(ModemNoAnswer):
        outlet.dial("999", timeout=1)


def test_no_dialtone_is_a_typed_error(modem_line: LineSimulator, hayes_modem: Make) -> None:
    outlet = hayes_modem("outlet")
    hayes_modem("hq", "100")
    modem_line.set_no_dialtone("outlet", True)
    with pytest.raises(ModemNoDialtone) as info:
        outlet.dial("100", timeout=5)
    assert info.value.code == "modem_no_dialtone"


def test_ring_then_ata_answers_a_call(hayes_modem: Make) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    hq.answer_mode(auto=False)
    answered = in_thread(lambda: hq.wait_for_call(10, answer_after_rings=2))
    outlet.dial("100", timeout=10)
    assert answered(15).speed_bps is not None
    assert hq.rings_seen == 2


def test_hangup_by_the_callee_gives_the_caller_no_carrier(
    modem_line: LineSimulator, hayes_modem: Make
) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    dialled, _ = call(outlet, hq)
    hq.hangup()
    assert modem_line.state("hq") == "command"
    assert b"\r\nNO CARRIER\r\n" in read_until(dialled.port, b"NO CARRIER\r\n")
    assert modem_line.wait_for_state("outlet", "command", timeout=5)
    outlet.hangup()  # after a drop: no escape needed, still ends on hook
    assert outlet.command("AT") == []


def test_hangup_by_the_caller_leaves_both_in_command_mode(
    modem_line: LineSimulator, hayes_modem: Make
) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    call(outlet, hq)
    outlet.hangup()
    assert modem_line.state("outlet") == "command"
    assert modem_line.wait_for_state("hq", "command", timeout=5)
    outlet.dial("100", timeout=10)  # the line is free again
    hq.wait_for_call(10)


def test_a_refused_command_raises_command_error(hayes_modem: Make) -> None:
    outlet = hayes_modem("outlet")
    with pytest.raises(ModemCommandError) as info:
        outlet.command("ATE7")
    assert info.value.code == "modem_command_error" and not info.value.retriable


def test_a_silent_modem_raises_modem_timeout(hayes_modem: Make) -> None:
    outlet = hayes_modem("outlet")
    outlet.command_timeout_s = 0.5
    with pytest.raises(ModemTimeout):
        outlet.command("ATQ1")  # quiet mode: the modem answers nothing any more


def test_dial_abandoned_by_the_client_hangs_up_the_attempt(
    modem_line: LineSimulator, hayes_modem: Make
) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    hq.answer_mode(auto=False)
    outlet.command("ATS7=30")
    outlet.port.write(b"ATDT100\r")
    assert modem_line.wait_for_state("outlet", "dialling", timeout=5)
    outlet.port.write(b"\r")  # a key press aborts
    assert b"NO CARRIER" in read_until(outlet.port, b"NO CARRIER")
    assert modem_line.state("outlet") == "command"


def test_no_carrier_during_a_dial_is_a_typed_error(modem_line: LineSimulator, hayes_modem: Make) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    hq.answer_mode(auto=False)
    hq.port.write(b"ATA\r")  # hq goes off hook: training never starts, S7 runs out
    with pytest.raises((ModemBusy, ModemNoCarrier)):
        outlet.dial("100", timeout=2)


def test_initialize_recovers_a_modem_left_online(
    modem_line: LineSimulator, hayes_modem: Make
) -> None:
    outlet, hq = hayes_modem("outlet"), hayes_modem("hq", "100")
    call(outlet, hq)
    restarted = HayesModem(outlet.port, init=outlet.init, guard_s=outlet.guard_s)
    restarted.initialize()  # as after a crash: the modem is still in data mode
    assert modem_line.state("outlet") == "command"
    assert modem_line.wait_for_state("hq", "command", timeout=5)
