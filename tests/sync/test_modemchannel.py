"""Reliable messages over a faulty byte stream (sync.modemchannel)."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from modem_fixtures import FAST, GUARD_S, INIT, in_thread

from sync.framing import Frame, FrameDecoder, FrameType
from sync.hayes import HayesModem
from sync.linesim import LineSimulator
from sync.modemchannel import CarrierLost, ChannelConfig, LinkTimeout, ModemChannel

QUICK = ChannelConfig(speed_bps=None, ack_margin_s=0.15, give_up_after_s=5.0, poll_s=0.01)
Fault = Callable[[Frame, bytes], list[bytes]]


class Pipe:
    """One direction of an in-memory line."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.cond = threading.Condition()

    def put(self, data: bytes) -> None:
        with self.cond:
            self.buf += data
            self.cond.notify_all()


class End:
    """One end of a duplex in-memory line; `fault` sees every frame this end writes."""

    def __init__(self, inbox: Pipe, outbox: Pipe, fault: Fault | None) -> None:
        self.inbox, self.outbox, self.fault = inbox, outbox, fault
        self.timeout: float | None = 0.01
        self.broken = False

    def read(self, size: int = 1) -> bytes:
        if self.broken:
            raise serial.SerialException("device reports readiness to read but returned no data")
        with self.inbox.cond:
            self.inbox.cond.wait_for(lambda: bool(self.inbox.buf), self.timeout)
            data = bytes(self.inbox.buf[:size])
            del self.inbox.buf[:size]
            return data

    def write(self, data: bytes, /) -> int:
        if self.fault is None:
            self.outbox.put(data)
            return len(data)
        frames = FrameDecoder().feed(data)
        pieces = self.fault(frames[0], data) if frames else [data]
        for piece in pieces:
            self.outbox.put(piece)
        return len(data)


def duplex(fault_ab: Fault | None = None, fault_ba: Fault | None = None) -> tuple[End, End]:
    ab, ba = Pipe(), Pipe()
    return End(ba, ab, fault_ab), End(ab, ba, fault_ba)


def once(match: Callable[[Frame], bool], action: Callable[[bytes], list[bytes]]) -> Fault:
    """A fault applied to the first frame that matches, and only to it."""
    done = threading.Event()

    def fault(frame: Frame, raw: bytes) -> list[bytes]:
        if not done.is_set() and match(frame):
            done.set()
            return action(raw)
        return [raw]

    return fault


def flip_bit(raw: bytes) -> list[bytes]:
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0x04
    return [bytes(damaged)]


def exchange(a: End, b: End, messages: list[bytes], config: ChannelConfig = QUICK) -> list[bytes]:
    """Sends `messages` from a to b; returns what b received (and checks nothing more)."""
    sender, receiver = ModemChannel(a, config), ModemChannel(b, config)
    sent = in_thread(lambda: [sender.send_message(m) for m in messages])
    got = [receiver.receive_message(timeout=10) for _ in messages]
    deadline = time.monotonic() + 20
    while True:  # the receiver keeps answering until the sender has its last ACK
        try:
            sent(0.01)
            break
        except TimeoutError:
            assert time.monotonic() < deadline, "sender never finished"
            receiver.linger(0.05)
    receiver.linger(0.3)
    assert not receiver._rx.complete, "a message was delivered twice"
    return got


def test_message_round_trips_over_pyserial_loop_url() -> None:
    port = serial.serial_for_url("loop://", timeout=0.01, write_timeout=2)
    # loop:// holds 4 KiB and this one thread both writes and reads: a small window
    channel = ModemChannel(port, ChannelConfig(speed_bps=None, window=4, ack_margin_s=0.2))
    channel.send_message(b"to myself" * 500)  # the loop acknowledges its own frames
    assert channel.receive_message(timeout=5) == b"to myself" * 500


def test_empty_and_multi_frame_messages_arrive_whole_and_in_order() -> None:
    a, b = duplex()
    messages = [b"", b"x", os.urandom(QUICK.frame_payload), os.urandom(10 * QUICK.frame_payload + 1)]
    assert exchange(a, b, messages) == messages


def test_corrupt_frame_is_retransmitted() -> None:
    a, b = duplex(once(lambda f: f.type is FrameType.DATA and f.seq == 2, flip_bit))
    message = os.urandom(8 * QUICK.frame_payload)
    sender = ModemChannel(a, QUICK)
    receiver = ModemChannel(b, QUICK)
    sent = in_thread(lambda: sender.send_message(message))
    assert receiver.receive_message(timeout=10) == message
    sent(10)
    # the flip lands on a random payload byte: now and then it invents a FLAG (0x7A ^ 0x04),
    # which splits the damaged frame into two pieces, both rejected
    assert receiver.stats.bad_frames in (1, 2) and receiver.stats.naks_sent >= 1
    assert sender.stats.retransmissions >= 1


def test_lost_frame_is_retransmitted() -> None:
    a, b = duplex(once(lambda f: f.type is FrameType.DATA and f.seq == 3, lambda raw: []))
    message = os.urandom(8 * QUICK.frame_payload)
    assert exchange(a, b, [message]) == [message]


def test_lost_last_frame_is_retransmitted_after_its_ack_is_overdue() -> None:
    a, b = duplex(once(lambda f: f.type is FrameType.END, lambda raw: []))
    message = os.urandom(3 * QUICK.frame_payload)
    assert exchange(a, b, [message]) == [message]


def test_a_lost_ack_is_made_good_by_the_answer_that_carries_it() -> None:
    dropped = threading.Event()

    def drop_ack(frame: Frame, raw: bytes) -> list[bytes]:
        if frame.type is FrameType.ACK and not dropped.is_set():
            dropped.set()
            return []
        return [raw]

    a, b = duplex(fault_ba=drop_ack)
    slow_timer = ChannelConfig(speed_bps=None, ack_margin_s=30, give_up_after_s=60, poll_s=0.01)
    outlet, hq = ModemChannel(a, slow_timer), ModemChannel(b, QUICK)
    sent = in_thread(lambda: outlet.send_message(b"push"))
    assert hq.receive_message(timeout=5) == b"push"
    hq.send_message(b"answer")  # its frame acknowledges the push
    sent(5)  # long before the outlet's 30 s retransmission timer
    assert dropped.is_set() and outlet.stats.retransmissions == 0
    assert outlet.receive_message(timeout=5) == b"answer"


def test_a_duplicate_of_the_last_frame_is_acknowledged_again_not_delivered() -> None:
    a, b = duplex(fault_ba=once(lambda f: f.type is FrameType.ACK, lambda raw: []))
    outlet, hq = ModemChannel(a, QUICK), ModemChannel(b, QUICK)
    sent = in_thread(lambda: outlet.send_message(b"push"))
    assert hq.receive_message(timeout=5) == b"push"
    hq.linger(1.0)  # the outlet re-sends its frame; hq acknowledges it again
    sent(5)
    assert hq.stats.duplicates >= 1 and outlet.stats.retransmissions >= 1
    assert not hq._rx.complete


def test_duplicate_frames_are_delivered_once() -> None:
    a, b = duplex(lambda frame, raw: [raw, raw])
    messages = [os.urandom(3000), b"second", os.urandom(700)]
    assert exchange(a, b, messages) == messages


def test_garbage_on_the_line_is_ignored() -> None:
    a, b = duplex(lambda frame, raw: [b"\x00\xff+++ATH\n", raw, os.urandom(5)])
    messages = [os.urandom(4000), b"after noise"]
    assert exchange(a, b, messages) == messages


@settings(max_examples=12, deadline=None)
@given(
    st.lists(st.binary(max_size=3000), min_size=1, max_size=4),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 0.05, 0.15]),
)
def test_any_mix_of_faults_delivers_every_message_once_intact(
    messages: list[bytes], seed: int, rate: float
) -> None:
    rng = random.Random(seed)
    lock = threading.Lock()

    def fault(frame: Frame, raw: bytes) -> list[bytes]:
        with lock:
            roll = rng.random()
            if roll < rate:
                return []
            if roll < 2 * rate:
                return flip_bit(raw)
            if roll < 3 * rate:
                return [raw, raw]
            return [raw]

    a, b = duplex(fault, fault)
    assert exchange(a, b, messages) == messages


def test_no_carrier_in_band_raises_carrier_lost() -> None:
    a, b = duplex()
    receiver = ModemChannel(b, QUICK)
    a.write(b"\r\nNO CARRIER\r\n")
    with pytest.raises(CarrierLost) as info:
        receiver.receive_message(timeout=5)
    assert info.value.code == "modem_carrier_lost"
    with pytest.raises(CarrierLost):
        receiver.send_message(b"too late")


def test_no_carrier_inside_a_payload_is_just_data() -> None:
    a, b = duplex()
    message = b"\r\nNO CARRIER\r\n" * 100
    assert exchange(a, b, [message]) == [message]


def test_port_failure_raises_carrier_lost() -> None:
    _a, b = duplex()
    b.broken = True
    with pytest.raises(CarrierLost):
        ModemChannel(b, QUICK).receive_message(timeout=5)


def test_a_peer_that_never_acknowledges_raises_link_timeout() -> None:
    a, _b = duplex()
    sender = ModemChannel(a, ChannelConfig(speed_bps=None, ack_margin_s=0.1, give_up_after_s=0.5))
    started = time.monotonic()
    with pytest.raises(LinkTimeout):
        sender.send_message(b"anyone?")
    assert time.monotonic() - started < 5
    assert sender.stats.retransmissions >= 2


def test_receive_times_out_when_nothing_arrives() -> None:
    _a, b = duplex()
    with pytest.raises(LinkTimeout):
        ModemChannel(b, QUICK).receive_message(timeout=0.3)


# --- through the simulated modems --------------------------------------------------------


def dial_pair(sim: LineSimulator, ports: list[Any]) -> tuple[Any, Any]:
    """Outlet dials HQ through `sim`; returns both Connections."""
    clients = []
    for name in ("outlet", "hq"):
        port = serial.serial_for_url(sim.add_modem(name), timeout=0.05)
        ports.append(port)
        client = HayesModem(port, init=INIT, guard_s=GUARD_S)
        client.initialize()
        clients.append(client)
    sim.register_number("100", ["hq"])
    outlet, hq = clients
    hq.answer_mode(auto=True)
    answered = in_thread(lambda: hq.wait_for_call(10))
    dialled = outlet.dial("100", timeout=10)
    return dialled, answered(15)


def test_200kb_at_33600_with_bit_errors_arrives_intact_in_near_line_time() -> None:
    speed, size = 33_600, 200_000
    ports: list[Any] = []
    with LineSimulator(speed_bps=speed, bit_error_rate=1e-5, seed=7, timing=FAST) as sim:
        try:
            dialled, answered = dial_pair(sim, ports)
            config = ChannelConfig(speed_bps=dialled.speed_bps)
            sender = ModemChannel(dialled.port, config)
            receiver = ModemChannel(answered.port, config)
            message = os.urandom(size)
            started = time.monotonic()
            sent = in_thread(lambda: sender.send_message(message))
            got = receiver.receive_message(timeout=30)
            elapsed = time.monotonic() - started
            sent(30)
        finally:
            for port in ports:
                port.close()
    line_time = size * 10 / speed
    print(
        f"\n200 KB at {speed} bit/s, BER 1e-5: {elapsed:.1f} s "
        f"(payload line time {line_time:.1f} s, efficiency {line_time / elapsed:.0%}); "
        f"bad frames {receiver.stats.bad_frames}, retransmissions "
        f"{sender.stats.retransmissions}"
    )
    assert got == message
    assert receiver.stats.bad_frames > 0  # the errors did happen
    assert elapsed < 1.25 * line_time


def test_carrier_drop_mid_message_raises_carrier_lost_on_both_sides() -> None:
    ports: list[Any] = []
    with LineSimulator(speed_bps=200_000, timing=FAST) as sim:
        try:
            dialled, answered = dial_pair(sim, ports)
            config = ChannelConfig(speed_bps=dialled.speed_bps)
            sender = ModemChannel(dialled.port, config)
            receiver = ModemChannel(answered.port, config)
            sent = in_thread(lambda: sender.send_message(os.urandom(150_000)))
            received = in_thread(lambda: receiver.receive_message(timeout=30))
            deadline = time.monotonic() + 10
            while receiver.stats.bytes_received < 20_000 and time.monotonic() < deadline:
                time.sleep(0.01)  # waits for an event (bytes arrived), bounded
            assert sim.drop_carrier("hq")
            with pytest.raises(CarrierLost):
                sent(10)
            with pytest.raises(CarrierLost):
                received(10)
            assert dialled.port.carrier_lost and answered.port.carrier_lost
            assert sim.state("outlet") == sim.state("hq") == "command"
        finally:
            for port in ports:
                port.close()
