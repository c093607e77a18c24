"""A telephone line with Hayes modems on pseudo-terminals, for tests and demos.

Each simulated modem is a pty pair: a device opens the path `add_modem` returns (with
pyserial, as it would open /dev/ttyS0) and talks to a Hayes-compatible modem: AT commands
with echo (E), verbose or numeric result codes (V), quiet mode (Q), result sets (X),
S-registers (S0 auto-answer after n rings, S2 escape char, S3/S4 line ends, S7 wait for
carrier, S12 escape guard time in 1/50 s), ATD dialling a registered number, RING / ATA,
the `+++` escape with guard times, ATO, ATH, ATZ, ATI, A/. In data mode bytes go to the
called modem through a line throttled to `speed_bps` at 10 bits per byte (a pty has no
baud rate, so deliveries are scheduled), with seeded random bit errors at
`bit_error_rate`. `drop_carrier` cuts a call: both modems say NO CARRIER in-band (ptys
have no carrier-detect line) and return to command mode.

What is fake: the telephone exchange (numbers, hunt groups, busy lines, no dial tone) and
the modems' training, which takes `connect_delay_s` instead of ~10 s. The byte stream a
device sees is the one a real modem sends. Pure modem and line logic (`SimModem`,
`Exchange`) takes the time as an argument and does no I/O; `LineSimulator` owns the ptys
and one thread. Must never: block on a device that is not reading (output is buffered and
capped like a modem's buffer), or deliver data on a line that has no call.
"""

from __future__ import annotations

import argparse
import enum
import heapq
import itertools
import json
import math
import os
import random
import selectors
import signal
import sys
import threading
import time
import tomllib
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

BITS_PER_BYTE = 10
DTE_BUFFER_CAP = 1 << 20
SLICE_S = 0.005  # granularity of throttled deliveries

RESULT_CODES = {
    "OK": 0,
    "CONNECT": 1,
    "RING": 2,
    "NO CARRIER": 3,
    "ERROR": 4,
    "NO DIALTONE": 6,
    "BUSY": 7,
    "NO ANSWER": 8,
}
FACTORY_S = {0: 0, 2: 43, 3: 13, 4: 10, 5: 8, 7: 50, 12: 50}


class State(enum.Enum):
    COMMAND = "command"  # on hook, command mode
    DIALLING = "dialling"
    ANSWERING = "answering"  # ATA given, waiting for a caller
    CONNECTING = "connecting"  # training with the remote modem
    DATA = "data"  # online, bytes go to the line
    ONLINE_COMMAND = "online_command"  # online, after +++ (data from the line is dropped)


# --- the line ---------------------------------------------------------------------------


class Direction:
    """One direction of a call: throttling to the line speed and bit errors."""

    def __init__(self, speed_bps: int, rng: random.Random, bit_error_rate: float) -> None:
        self.speed_bps = speed_bps
        self.rng = rng
        self.bit_error_rate = bit_error_rate
        self.free_at = 0.0
        self.queue: deque[tuple[float, bytes]] = deque()
        self.bytes_carried = 0
        self.bits_flipped = 0
        self._bits_to_error = self._next_gap()

    def _next_gap(self) -> float:
        if self.bit_error_rate <= 0:
            return math.inf
        return int(self.rng.expovariate(self.bit_error_rate)) + 1

    def set_bit_error_rate(self, rate: float) -> None:
        self.bit_error_rate = rate
        self._bits_to_error = self._next_gap()

    def _corrupt(self, data: bytes) -> bytes:
        bits = 8 * len(data)  # errors hit data bits; start/stop bits are the UART's
        if self._bits_to_error > bits:
            self._bits_to_error -= bits
            return data
        out = bytearray(data)
        pos = 0
        while pos + self._bits_to_error <= bits:
            pos += int(self._bits_to_error)
            out[(pos - 1) // 8] ^= 1 << ((pos - 1) % 8)
            self.bits_flipped += 1
            self._bits_to_error = self._next_gap()
        self._bits_to_error -= bits - pos
        return bytes(out)

    def send(self, data: bytes, now: float) -> None:
        data = self._corrupt(data)
        byte_time = BITS_PER_BYTE / self.speed_bps
        start = max(now, self.free_at)
        step = max(1, int(SLICE_S / byte_time))
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            self.queue.append((start + (i + len(piece)) * byte_time, piece))
        self.free_at = start + len(data) * byte_time

    def take_due(self, now: float) -> bytes:
        out = bytearray()
        while self.queue and self.queue[0][0] <= now:
            out += self.queue.popleft()[1]
        self.bytes_carried += len(out)
        return bytes(out)

    def next_due(self) -> float | None:
        return self.queue[0][0] if self.queue else None


@dataclass(eq=False)
class Call:
    caller: SimModem
    callee: SimModem
    forward: Direction  # caller -> callee
    backward: Direction
    state: str = "ringing"  # ringing, connecting, connected, ended

    def direction_from(self, modem: SimModem) -> Direction:
        return self.forward if modem is self.caller else self.backward

    def other(self, modem: SimModem) -> SimModem:
        return self.callee if modem is self.caller else self.caller


# --- a modem ----------------------------------------------------------------------------


@dataclass(eq=False)
class SimModem:
    """One Hayes modem's command interpreter and state. Output for its DTE is `to_dte`."""

    name: str
    exchange: Exchange
    state: State = State.COMMAND
    echo: bool = True
    verbose: bool = True
    quiet: bool = False
    result_set: int = 4
    regs: dict[int, int] = field(default_factory=lambda: dict(FACTORY_S))
    to_dte: bytearray = field(default_factory=bytearray)
    line: bytearray = field(default_factory=bytearray)
    last_command: bytes = b""
    call: Call | None = None
    rings: int = 0
    no_dialtone: bool = False
    off_hook: bool = False
    generation: int = 0  # bumps on every state change; stale timers check it
    last_dte_at: float = 0.0
    plus_count: int = 0
    plus_last_at: float = 0.0
    bytes_from_dte: int = 0
    bytes_to_dte: int = 0

    # results

    def result(self, text: str) -> None:
        if self.quiet:
            return
        text = self._filtered(text)
        if self.verbose:
            s3, s4 = bytes((self.regs[3],)), bytes((self.regs[4],))
            self.to_dte += s3 + s4 + text.encode() + s3 + s4
        else:
            code = RESULT_CODES.get(text.split(" ")[0] if text.startswith("CONNECT") else text, 4)
            self.to_dte += str(code).encode() + bytes((self.regs[3],))

    def _filtered(self, text: str) -> str:
        """What ATX0..4 lets through (X0 has no speeds, busy or dial-tone detection)."""
        if text.startswith("CONNECT") and self.result_set == 0:
            return "CONNECT"
        if text == "BUSY" and self.result_set in (0, 1, 2):
            return "NO CARRIER"
        if text == "NO DIALTONE" and self.result_set in (0, 1, 3):
            return "NO CARRIER"
        return text

    def info(self, text: str) -> None:
        if not self.quiet:
            s3, s4 = bytes((self.regs[3],)), bytes((self.regs[4],))
            self.to_dte += s3 + s4 + text.encode() + s3 + s4

    def set_state(self, state: State) -> None:
        self.state = state
        self.generation += 1

    @property
    def is_free(self) -> bool:
        return self.state is State.COMMAND and self.call is None and not self.off_hook

    @property
    def guard_s(self) -> float:
        return self.regs[12] / 50

    # input from the DTE

    def from_dte(self, data: bytes, now: float) -> None:
        self.bytes_from_dte += len(data)
        if self.state is State.DATA:
            self._data_from_dte(data, now)
            return
        for i, byte in enumerate(data):
            if self.state in (State.DIALLING, State.ANSWERING, State.CONNECTING):
                self.exchange.abort(self, now)  # any key aborts, like a real modem
                continue
            if self.state is State.DATA:  # ATO inside this chunk
                self._data_from_dte(data[i:], now)
                return
            self._command_byte(byte, now)

    def _data_from_dte(self, data: bytes, now: float) -> None:
        for byte in data:
            self._watch_escape(byte, now)
            self.last_dte_at = now
        if self.call is not None:
            self.call.direction_from(self).send(data, now)

    def _watch_escape(self, byte: int, now: float) -> None:
        """+++ counts only after `guard` of silence, with gaps under `guard` between them."""
        plus = byte == self.regs[2]
        if self.plus_count == 0:
            if plus and now - self.last_dte_at >= self.guard_s:
                self.plus_count, self.plus_last_at = 1, now
            return
        if plus and self.plus_count < 3 and now - self.plus_last_at < self.guard_s:
            self.plus_count, self.plus_last_at = self.plus_count + 1, now
            if self.plus_count == 3:
                gen = self.generation
                self.exchange.at(now + self.guard_s, lambda t: self._escape_due(gen, t))
            return
        self.plus_count = 0

    def _escape_due(self, gen: int, now: float) -> None:
        if gen != self.generation or self.plus_count != 3 or self.state is not State.DATA:
            return
        if now - self.last_dte_at < self.guard_s - 1e-6:
            self.plus_count = 0
            return
        self.plus_count = 0
        self.set_state(State.ONLINE_COMMAND)
        self.result("OK")

    def _command_byte(self, byte: int, now: float) -> None:
        if self.echo:
            self.to_dte.append(byte)
        if byte == self.regs[3]:
            line, self.line = bytes(self.line), bytearray()
            self._command_line(line, now)
        elif byte == self.regs[5]:
            del self.line[-1:]
        elif byte == 0x0A:
            pass
        elif byte == ord("/") and self.line.upper().endswith(b"A") and len(self.line) == 1:
            self.line.clear()
            self._command_line(self.last_command, now)
        elif len(self.line) < 255:
            self.line.append(byte)
        else:
            self.line.clear()
            self.result("ERROR")

    def _command_line(self, line: bytes, now: float) -> None:
        text = line.decode("latin-1").strip()
        if not text.upper().startswith("AT"):
            return  # real modems ignore lines that are not commands
        self.last_command = line
        outcome = self._execute(text[2:], now)
        if outcome is not None:
            self.result(outcome)

    # commands

    def _execute(self, rest: str, now: float) -> str | None:
        """Runs one command line; the result to print now, or None when one comes later."""
        body = rest.replace(" ", "")
        i = 0
        while i < len(body):
            cmd = body[i].upper()
            i += 1
            if cmd == "D":
                return self._dial(body[i:], now)
            if cmd == "A":
                return self._answer(now)
            if cmd in "&\\%":
                if i >= len(body):
                    return "ERROR"
                if cmd == "&" and body[i].upper() == "F":
                    self._reset()
                i, _ = _number(body, i + 1)
                continue
            if cmd == "+":
                return "OK"  # extended commands (+MS etc.): accepted, no effect
            if cmd == "S":
                i, outcome = self._s_register(body, i)
                if outcome is not None:
                    return outcome
                continue
            i, value = _number(body, i)
            outcome = self._basic(cmd, value, now)
            if outcome is not None:
                return outcome
        return "OK"

    def _basic(self, cmd: str, value: int, now: float) -> str | None:
        """Single-letter commands; returns a result to stop the line, None to go on."""
        flags = {"E": "echo", "V": "verbose", "Q": "quiet"}
        if cmd in flags:
            if value > 1:
                return "ERROR"
            setattr(self, flags[cmd], bool(value))
            return None
        if cmd == "X":
            if value > 4:
                return "ERROR"
            self.result_set = value
            return None
        if cmd == "H":
            if value > 1:
                return "ERROR"
            self.exchange.hang_up(self, now)
            self.off_hook = value == 1
            return None
        if cmd == "Z":
            self.exchange.hang_up(self, now)
            self._reset()
            return None
        if cmd == "O":
            return self._online()
        if cmd == "I":
            self.info(f"LINESIM {self.exchange.speed_bps}" if value == 0 else "linesim 1.0")
            return None
        if cmd in "BLMNPTWY":
            return None
        return "ERROR"

    def _s_register(self, body: str, i: int) -> tuple[int, str | None]:
        i, reg = _number(body, i)
        if reg > 255:
            return i, "ERROR"
        if body[i : i + 1] == "?":
            self.info(f"{self.regs.get(reg, 0):03d}")
            return i + 1, None
        if body[i : i + 1] != "=":
            return i, "ERROR"
        i, value = _number(body, i + 1)
        if value > 255:
            return i, "ERROR"
        self.regs[reg] = value
        return i, None

    def _reset(self) -> None:
        self.echo, self.verbose, self.quiet, self.result_set = True, True, False, 4
        self.regs = dict(FACTORY_S)
        self.off_hook = False

    def _dial(self, dial_string: str, now: float) -> str | None:
        if self.state is not State.COMMAND:
            return "ERROR"
        number = "".join(c for c in dial_string if c.isdigit() or c in "*#")
        if not number:
            return "ERROR"
        self.exchange.dial(self, number, now)
        return None

    def _answer(self, now: float) -> str | None:
        if self.state is not State.COMMAND:
            return "ERROR"
        self.exchange.answer(self, now)
        return None

    def _online(self) -> str | None:
        if self.state is not State.ONLINE_COMMAND or self.call is None:
            return "NO CARRIER"
        self.set_state(State.DATA)
        self.result(f"CONNECT {self.exchange.speed_bps}")
        return None

    # events from the exchange

    def from_line(self, data: bytes) -> None:
        if self.state is State.DATA:
            self.to_dte += data
        # in online command mode a real modem drops what the line brings

    def connected(self, now: float) -> None:
        self.set_state(State.DATA)
        self.last_dte_at = now
        self.plus_count = 0
        self.result(f"CONNECT {self.exchange.speed_bps}")

    def disconnected(self, text: str = "NO CARRIER") -> None:
        self.call = None
        self.rings = 0
        self.set_state(State.COMMAND)
        self.result(text)


def _number(body: str, i: int) -> tuple[int, int]:
    j = i
    while j < len(body) and body[j].isdigit():
        j += 1
    return j, int(body[i:j]) if j > i else 0


# --- the exchange -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    dial_delay_s: float = 0.1  # dialling until the first ring / busy / no dial tone
    ring_interval_s: float = 1.0  # a real line rings every ~6 s
    connect_delay_s: float = 0.3  # modem training; ~10 s for a real V.34 pair


class Exchange:
    """The telephone network: numbers, hunt groups, calls and timers. Time is passed in."""

    def __init__(
        self,
        speed_bps: int = 33_600,
        bit_error_rate: float = 0.0,
        seed: int = 0,
        timing: Timing | None = None,
    ) -> None:
        self.speed_bps = speed_bps
        self.bit_error_rate = bit_error_rate
        self.rng = random.Random(seed)
        self.timing = timing or Timing()
        self.modems: dict[str, SimModem] = {}
        self.numbers: dict[str, list[str]] = {}
        self.calls: list[Call] = []
        self.calls_made = 0
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._counter = itertools.count()

    def add_modem(self, name: str) -> SimModem:
        if name in self.modems:
            raise ValueError(f"modem {name!r} exists")
        modem = SimModem(name, self)
        self.modems[name] = modem
        return modem

    def register_number(self, number: str, modem_names: list[str]) -> None:
        unknown = [n for n in modem_names if n not in self.modems]
        if unknown:
            raise ValueError(f"unknown modems: {unknown}")
        self.numbers[number] = list(modem_names)

    # timers

    def at(self, when: float, callback: Callable[[float], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._counter), callback))

    def next_deadline(self) -> float | None:
        dues = [t for c in self.calls for t in (c.forward.next_due(), c.backward.next_due())]
        times = [t for t in dues if t is not None]
        if self._timers:
            times.append(self._timers[0][0])
        return min(times) if times else None

    def poll(self, now: float) -> None:
        """Delivers the line's due bytes, then runs due timers (a hang-up after its data)."""
        for call in list(self.calls):
            for direction, dest in ((call.forward, call.callee), (call.backward, call.caller)):
                data = direction.take_due(now)
                if data and call.state == "connected":
                    dest.from_line(data)
        while self._timers and self._timers[0][0] <= now:
            _, _, callback = heapq.heappop(self._timers)
            callback(now)

    # calls

    def dial(self, caller: SimModem, number: str, now: float) -> None:
        caller.set_state(State.DIALLING)
        gen = caller.generation
        delay = self.timing.dial_delay_s
        if caller.no_dialtone:
            self.at(now + delay, lambda t: self._dial_failed(caller, gen, "NO DIALTONE"))
            return
        lines = [self.modems[n] for n in self.numbers.get(number, [])]
        free = [m for m in lines if m.is_free and m is not caller]
        if lines and not free:
            self.at(now + delay, lambda t: self._dial_failed(caller, gen, "BUSY"))
            return
        self.at(now + caller.regs[7], lambda t: self._no_answer(caller, gen))
        if not free:
            return  # nobody on that number: it rings nowhere until S7 runs out
        callee = free[0]
        call = Call(caller, callee, self._direction(), self._direction())
        caller.call = callee.call = call
        self.calls.append(call)
        self.calls_made += 1
        self.at(now + delay, lambda t: self._ring(call, t))

    def _direction(self) -> Direction:
        return Direction(self.speed_bps, random.Random(self.rng.random()), self.bit_error_rate)

    def _dial_failed(self, caller: SimModem, gen: int, text: str) -> None:
        if caller.generation == gen:
            caller.disconnected(text)

    def _no_answer(self, caller: SimModem, gen: int) -> None:
        if caller.generation != gen or caller.state is not State.DIALLING:
            return
        call = caller.call
        if call is not None:
            self._end(call)
            call.callee.rings = 0
            call.callee.call = None
        caller.disconnected("NO ANSWER")

    def _ring(self, call: Call, now: float) -> None:
        if call.state != "ringing":
            return
        callee = call.callee
        callee.rings += 1
        callee.result("RING")
        if callee.regs[0] and callee.rings >= callee.regs[0]:
            self._start_training(call, now)
        else:
            self.at(now + self.timing.ring_interval_s, lambda t: self._ring(call, t))

    def answer(self, modem: SimModem, now: float) -> None:
        call = modem.call
        if call is not None and call.callee is modem and call.state == "ringing":
            self._start_training(call, now)
            return
        modem.set_state(State.ANSWERING)  # off hook with nobody calling
        gen = modem.generation
        self.at(now + modem.regs[7], lambda t: self._dial_failed(modem, gen, "NO CARRIER"))

    def _start_training(self, call: Call, now: float) -> None:
        call.state = "connecting"
        call.caller.set_state(State.CONNECTING)
        call.callee.set_state(State.CONNECTING)
        self.at(now + self.timing.connect_delay_s, lambda t: self._connect(call, t))

    def _connect(self, call: Call, now: float) -> None:
        if call.state != "connecting":
            return
        call.state = "connected"
        call.caller.connected(now)
        call.callee.connected(now)

    def abort(self, modem: SimModem, now: float) -> None:
        """A key pressed while dialling, answering or training: the attempt ends."""
        call = modem.call
        if call is not None:
            self._end(call)
            other = call.other(modem)
            other.call = None
            other.rings = 0
            if other.state is State.CONNECTING:
                other.disconnected()
        modem.disconnected()

    def hang_up(self, modem: SimModem, now: float) -> None:
        """ATH/ATZ: the remote sees NO CARRIER once the bytes already on the line arrived."""
        call = modem.call
        if call is None:
            if modem.state is not State.COMMAND:
                modem.set_state(State.COMMAND)
            return
        other = call.other(modem)
        modem.call = None
        modem.rings = 0
        modem.set_state(State.COMMAND)
        if call.state in ("ringing", "connecting") and other.state is State.DIALLING:
            self._end(call)
            other.disconnected("NO CARRIER")
            return
        last = call.direction_from(modem).free_at
        self.at(max(now, last) + 1e-3, lambda t: self._hang_up_remote(call, other))

    def _hang_up_remote(self, call: Call, other: SimModem) -> None:
        self._end(call)
        if other.call is call:
            other.disconnected()

    def drop_carrier(self, name: str, now: float) -> bool:
        """The line fails: both ends say NO CARRIER now; bytes in flight are lost."""
        call = self.modems[name].call
        if call is None or call.state != "connected":
            return False
        self._end(call)
        call.caller.disconnected()
        call.callee.disconnected()
        return True

    def _end(self, call: Call) -> None:
        call.state = "ended"
        if call in self.calls:
            self.calls.remove(call)

    def set_bit_error_rate(self, rate: float) -> None:
        self.bit_error_rate = rate
        for call in self.calls:
            call.forward.set_bit_error_rate(rate)
            call.backward.set_bit_error_rate(rate)


# --- the pseudo-terminals ---------------------------------------------------------------


@dataclass(eq=False)
class _Pty:
    master: int
    slave: int
    path: str
    pending: bytearray = field(default_factory=bytearray)


class LineSimulator:
    """Modems on ptys and the line between them, run by one background thread.

    Usage: `sim = LineSimulator(speed_bps=33600)`; `path = sim.add_modem("hq1")`;
    `sim.register_number("100", ["hq1"])`; `sim.start()`; devices open `path`;
    `sim.drop_carrier("hq1")`; `sim.stop()`. Thread-safe.
    """

    def __init__(
        self,
        speed_bps: int = 33_600,
        bit_error_rate: float = 0.0,
        seed: int = 0,
        timing: Timing | None = None,
    ) -> None:
        self.exchange = Exchange(speed_bps, bit_error_rate, seed, timing)
        self._ptys: dict[str, _Pty] = {}
        self._lock = threading.RLock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._running = False
        self._changed = threading.Condition(self._lock)

    # set-up

    def add_modem(self, name: str) -> str:
        """Creates a modem; returns the pty path a device opens (e.g. /dev/pts/7)."""
        with self._lock:
            self.exchange.add_modem(name)
            master, slave = os.openpty()
            tty.setraw(slave)  # no echo, no line discipline: the device sees raw bytes
            os.set_blocking(master, False)
            self._ptys[name] = _Pty(master, slave, os.ttyname(slave))
            self._wake()
            return self._ptys[name].path

    def register_number(self, number: str, modem_names: list[str]) -> None:
        """A number answered by these modems, tried in order (a hunt group)."""
        with self._lock:
            self.exchange.register_number(number, modem_names)

    def path(self, name: str) -> str:
        return self._ptys[name].path

    # faults and observation

    def drop_carrier(self, name: str) -> bool:
        """Cuts `name`'s call; False when it had no connected call."""
        with self._lock:
            dropped = self.exchange.drop_carrier(name, time.monotonic())
            self._wake()
            return dropped

    def set_no_dialtone(self, name: str, no_dialtone: bool = True) -> None:
        with self._lock:
            self.exchange.modems[name].no_dialtone = no_dialtone

    def set_bit_error_rate(self, rate: float) -> None:
        with self._lock:
            self.exchange.set_bit_error_rate(rate)

    def state(self, name: str) -> str:
        with self._lock:
            return self.exchange.modems[name].state.value

    def wait_for_state(self, name: str, state: str, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.state(name) == state, timeout)

    def stats(self) -> dict[str, Any]:
        """Bytes each modem took from its device and gave to it, calls made."""
        with self._lock:
            modems = {
                name: {
                    "from_device": m.bytes_from_dte,
                    "to_device": m.bytes_to_dte,
                    "state": m.state.value,
                }
                for name, m in self.exchange.modems.items()
            }
            return {"modems": modems, "calls_made": self.exchange.calls_made}

    # running

    def start(self) -> Self:
        with self._lock:
            if self._thread is None:
                self._running = True
                self._thread = threading.Thread(target=self._run, name="linesim", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._running = False
            self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for pty in self._ptys.values():
            for fd in (pty.master, pty.slave):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._ptys.clear()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        registered: dict[int, str] = {}
        while True:
            with self._lock:
                if not self._running:
                    break
                self._register(selector, registered)
                timeout = self._timeout()
            events = selector.select(timeout)
            with self._lock:
                now = time.monotonic()
                for key, mask in events:
                    self._on_event(key.fd, key.data, mask, now)
                self.exchange.poll(now)
                self._flush_all()
                self._changed.notify_all()
        selector.close()

    def _register(self, selector: selectors.BaseSelector, registered: dict[int, str]) -> None:
        for name, pty in self._ptys.items():
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if pty.pending else 0)
            if pty.master in registered:
                selector.modify(pty.master, mask, name)
            else:
                selector.register(pty.master, mask, name)
                registered[pty.master] = name

    def _timeout(self) -> float:
        deadline = self.exchange.next_deadline()
        if deadline is None:
            return 0.5
        return min(0.5, max(0.0, deadline - time.monotonic()))

    def _on_event(self, fd: int, name: str | None, mask: int, now: float) -> None:
        if name is None:
            try:
                os.read(fd, 4096)
            except BlockingIOError:
                pass
            return
        if mask & selectors.EVENT_READ:
            try:
                data = os.read(fd, 4096)
            except (BlockingIOError, OSError):
                data = b""
            if data:
                self.exchange.modems[name].from_dte(data, now)

    def _flush_all(self) -> None:
        for name, pty in self._ptys.items():
            modem = self.exchange.modems[name]
            if modem.to_dte:
                pty.pending += modem.to_dte
                modem.bytes_to_dte += len(modem.to_dte)
                modem.to_dte.clear()
                del pty.pending[: max(0, len(pty.pending) - DTE_BUFFER_CAP)]
            if pty.pending:
                try:
                    written = os.write(pty.master, pty.pending)
                    del pty.pending[:written]
                except (BlockingIOError, OSError):
                    pass


# --- command line -----------------------------------------------------------------------


def from_config(config: dict[str, Any]) -> LineSimulator:
    """Builds a simulator from a parsed TOML config (see docs/modem.md)."""
    timing = Timing(**config.get("timing", {}))
    sim = LineSimulator(
        speed_bps=int(config.get("speed_bps", 33_600)),
        bit_error_rate=float(config.get("bit_error_rate", 0.0)),
        seed=int(config.get("seed", 0)),
        timing=timing,
    )
    for modem in config.get("modems", []):
        sim.add_modem(modem["name"])
        if modem.get("no_dialtone"):
            sim.set_no_dialtone(modem["name"], True)
    for entry in config.get("numbers", []):
        sim.register_number(str(entry["number"]), list(entry["modems"]))
    return sim


def _command(sim: LineSimulator, line: str) -> str:
    words = line.split()
    if not words:
        return ""
    if words[0] == "drop" and len(words) == 2:
        return "dropped" if sim.drop_carrier(words[1]) else "no call"
    if words[0] == "dialtone" and len(words) == 3:
        sim.set_no_dialtone(words[1], words[2] == "off")
        return "ok"
    if words[0] == "ber" and len(words) == 2:
        sim.set_bit_error_rate(float(words[1]))
        return "ok"
    if words[0] == "stats":
        return json.dumps(sim.stats())
    return "error: commands are drop NAME | dialtone NAME on|off | ber RATE | stats"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sync.linesim", description=__doc__)
    parser.add_argument("--config", required=True, help="TOML file: modems, numbers, speed")
    args = parser.parse_args(argv)
    with open(args.config, "rb") as fh:
        sim = from_config(tomllib.load(fh))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sim.start()
    for name in sim.exchange.modems:
        print(f"modem {name} {sim.path(name)}", flush=True)
    print("ready", flush=True)
    threading.Thread(target=_serve_stdin, args=(sim, stop), daemon=True).start()
    stop.wait()
    sim.stop()
    return 0


def _serve_stdin(sim: LineSimulator, stop: threading.Event) -> None:
    for line in sys.stdin:
        if line.strip() == "quit":
            stop.set()
            return
        print(_command(sim, line), flush=True)
    # stdin closed: keep running until a signal, as a background process would


if __name__ == "__main__":
    sys.exit(main())
