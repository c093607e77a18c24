"""The modem link, outlet side: one dial-up call carrying the sync protocol.

`ModemTransport` is a `sync.transport.Transport` for the duration of one call: `open()`
dials HQ (Hayes AT commands, sync.hayes), authenticates with the outlet's token, and then
hello/push/pull travel as framed, compressed messages (sync.modemchannel,
sync.compression); `close()` says bye and hangs up (`+++`, `ATH`). Promises: a dropped
carrier or a dead line is `LinkDown` (the next call resumes: what HQ acknowledged is not
sent again, what it did not is); HQ's refusals keep their codes; the serial port is opened
exclusively, so two sessions never share a modem. Must never: leave the modem off-hook.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import serial

from schema import errors
from schema.events import utc_now
from schema.modemcall import expand_push, request
from schema.sync import Hello, PullResponse, PushRequest, PushResponse
from sync.compression import decode_message, encode_message
from sync.hayes import HayesModem, ModemError
from sync.modemchannel import ChannelConfig, ChannelError, ModemChannel
from sync.transport import LinkDown, refusal, with_clock

log = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ModemSettings:
    port: str
    number: str
    init: tuple[str, ...] = ("ATZ", "ATE0V1")
    guard_s: float = 1.0
    dial_timeout_s: float = 60.0
    baudrate: int = 115_200


@dataclass
class CallStats:
    bytes_sent: int = 0
    bytes_received: int = 0
    connect_bps: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ModemTransport:
    def __init__(self, settings: ModemSettings, token: str) -> None:
        self.settings = settings
        self._token = token
        self._serial: Any = None
        self._modem: HayesModem | None = None
        self._channel: ModemChannel | None = None
        self.stats = CallStats()
        self.sends_clock = False  # see sync.transport.with_clock

    def __repr__(self) -> str:
        return f"ModemTransport({self.settings.port!r}, {self.settings.number!r})"

    def open(self) -> None:
        """Dials HQ and authenticates; ModemError (busy, no answer...) if the call fails."""
        try:
            self._serial = serial.serial_for_url(self.settings.port, baudrate=self.settings.baudrate,
                                                 timeout=0.05, exclusive=True)
        except (serial.SerialException, OSError) as exc:
            raise errors.DeviceError(f"cannot open modem {self.settings.port}: {exc}",
                                     port=self.settings.port) from exc
        self._modem = HayesModem(self._serial, init=self.settings.init, guard_s=self.settings.guard_s)
        try:
            self._modem.initialize()
            connection = self._modem.dial(self.settings.number, timeout=self.settings.dial_timeout_s)
        except ModemError:
            self._release()
            raise
        self.stats.connect_bps = connection.speed_bps
        self._channel = ModemChannel(connection.port, ChannelConfig(speed_bps=connection.speed_bps))
        self._call(request("auth", token=self._token))

    def _call(self, message: dict[str, Any]) -> Any:
        if self._channel is None:
            raise LinkDown("no call in progress")
        try:
            self._channel.send_message(encode_message(message))
            reply = decode_message(self._channel.receive_message(timeout=REPLY_TIMEOUT_S))
        except ChannelError as exc:
            raise LinkDown(f"modem line lost: {exc}") from exc
        finally:
            self.stats.bytes_sent = self._channel.stats.bytes_sent
            self.stats.bytes_received = self._channel.stats.bytes_received
        if "error" in reply:
            raise refusal(reply["error"]["code"], reply["error"]["message"],
                          reply["error"].get("context"))
        return reply["ok"]

    def hello(self) -> Hello:
        hello = Hello.model_validate(self._call(request("hello", sent_at=utc_now())))
        self.sends_clock = hello.clock_offset_s is not None
        return hello

    def push(self, batch: PushRequest) -> PushResponse:
        sent = with_clock(batch, self.sends_clock).model_dump(mode="json")
        answer = self._call(request("push", batch=sent))
        return PushResponse.model_validate(expand_push(answer, sent["events"]))

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse:
        # No long poll on a dial-up line: the call is short and HQ answers at once.
        return PullResponse.model_validate(self._call(request("pull", cursor=cursor, limit=limit)))

    def close(self) -> None:
        if self._channel is not None and not self._channel.carrier_lost:
            try:
                self._call(request("bye"))
            except errors.LoyaltyError as exc:
                log.info("bye not acknowledged (%s); hanging up anyway", exc)
        self._release()

    def _release(self) -> None:
        try:
            if self._modem is not None:
                self._modem.hangup()
        except (ModemError, serial.SerialException, OSError) as exc:
            log.warning("hang-up failed: %s", exc)
        finally:
            if self._serial is not None:
                self._serial.close()
            self._serial = self._modem = self._channel = None
