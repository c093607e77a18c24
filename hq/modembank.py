"""The modem link, HQ side: a bank of modems answering outlets' calls.

Each configured line runs in its own thread: initialise the modem, wait for a call
(auto-answer, `ATS0=1`), serve one outlet's dialogue (auth, then hello/push/pull, then
bye: schema.modemcall), hang up, wait for the next. One outlet per line at a time; several
lines serve several outlets at once. Promises: exactly the same semantics and refusals as
the HTTP API (the same hq.ingest / hq.feed calls); a dropped carrier ends the call and
frees the line; a broken modem is retried with back-off and never stops the others.
Must never: serve a request before the caller authenticated.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import serial
from pydantic import ValidationError

from hq import credentials, feed, ingest
from hq.chain import Chain
from schema.errors import LoyaltyError, ProtocolError, Unauthorized
from schema.modemcall import compact_push, error, ok
from schema.sync import PushRequest, answer_data
from sync.compression import decode_message, encode_message
from sync.hayes import HayesModem, ModemError, ModemTimeout
from sync.modemchannel import ChannelConfig, ChannelError, ModemChannel

log = logging.getLogger(__name__)

IDLE_S = 120.0
WAIT_FOR_CALL_S = 1.0  # so stop() is noticed promptly
LINGER_S = 1.0


@dataclass(frozen=True)
class LineSettings:
    port: str
    init: tuple[str, ...] = ("ATZ", "ATE0V1")
    guard_s: float = 1.0
    baudrate: int = 115_200


class ModemLine:
    def __init__(self, chain: Chain, settings: LineSettings) -> None:
        self.chain = chain
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"modem {settings.port}", daemon=True)
        self.state: dict[str, Any] = {"port": settings.port, "state": "starting", "calls": 0,
                                      "last_outlet": None, "last_error": None}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_FOR_CALL_S + 2)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                port = serial.serial_for_url(self.settings.port, baudrate=self.settings.baudrate,
                                             timeout=0.05, exclusive=True)
            except (serial.SerialException, OSError) as exc:
                self._failed(f"cannot open {self.settings.port}: {exc}", delay)
                delay = min(delay * 2, 60.0)
                continue
            try:
                self._answer_calls(port)
                delay = 1.0
            except (ModemError, serial.SerialException, OSError) as exc:
                self._failed(str(exc), delay)
                delay = min(delay * 2, 60.0)
            finally:
                port.close()

    def _failed(self, why: str, delay: float) -> None:
        self.state.update(state="failing", last_error=why)
        log.warning("modem line %s: %s; retrying in %.0fs", self.settings.port, why, delay)
        self._stop.wait(delay)

    def _answer_calls(self, port: Any) -> None:
        modem = HayesModem(port, init=self.settings.init, guard_s=self.settings.guard_s)
        modem.initialize()
        modem.answer_mode(auto=True, rings=1)
        self.state["state"] = "waiting"
        while not self._stop.is_set():
            try:
                connection = modem.wait_for_call(WAIT_FOR_CALL_S)
            except ModemTimeout:
                continue
            self.state.update(state="in call", calls=self.state["calls"] + 1)
            channel = ModemChannel(connection.port, ChannelConfig(speed_bps=connection.speed_bps))
            try:
                self._serve(channel)
            except ChannelError as exc:
                log.info("modem line %s: call ended (%s)", self.settings.port, exc)
            finally:
                modem.hangup()
                self.state["state"] = "waiting"
        # HQ is going away: stop answering, so callers get NO ANSWER and their dialer
        # retries, instead of a connected line nobody serves (a real modem also stops
        # answering when DTR drops; a pty has no DTR)
        modem.answer_mode(auto=False)
        self.state["state"] = "stopped"

    def _serve(self, channel: ModemChannel) -> None:
        outlet_id: str | None = None
        while True:
            message = channel.receive_message(timeout=IDLE_S)
            try:
                request = decode_message(message)
                reply, outlet_id, done = self._handle(request, outlet_id)
            except LoyaltyError as exc:
                reply = error(exc.code, exc.message, exc.context)
                done = isinstance(exc, Unauthorized)
            except Exception:  # never let one message take the line down: end this call
                log.exception("modem line %s: unexpected error serving %s",
                              self.settings.port, outlet_id)
                reply, done = error("internal_error", "HQ failed on this message; call again"), True
            channel.send_message(encode_message(reply))
            if done:
                channel.linger(LINGER_S)  # our last ACKs, so the caller sees its reply
                return

    def _handle(self, request: Any, outlet_id: str | None) -> tuple[dict[str, Any], str | None, bool]:
        if not isinstance(request, dict) or "op" not in request:
            raise ProtocolError("a modem call message is a dict with an op")
        op = request["op"]
        if op == "auth":
            outlet_id = credentials.outlet_for(self.chain.db, str(request.get("token", "")))
            self.state["last_outlet"] = outlet_id
            with self.chain.db.write() as conn:
                conn.execute("UPDATE outlets SET link = 'modem' WHERE outlet_id = ?", (outlet_id,))
            return ok(outlet_id), outlet_id, False
        if outlet_id is None:
            raise Unauthorized("authenticate first (auth with the outlet's token)")
        if op == "hello":
            sent_at = request.get("sent_at")
            hello = feed.hello(self.chain, outlet_id,
                               sent_at if isinstance(sent_at, str) and len(sent_at) <= 40 else None)
            return ok(answer_data(hello)), outlet_id, False
        if op == "push":
            try:
                batch = PushRequest.model_validate(request.get("batch"))
            except ValidationError as exc:
                raise ProtocolError(f"malformed push batch: {str(exc).splitlines()[0]}") from exc
            answer = ingest.push(self.chain, outlet_id, batch)
            return ok(compact_push(answer.model_dump(mode="json"))), outlet_id, False
        if op == "pull":
            cursor, limit = request.get("cursor", 0), request.get("limit", 1000)
            if not isinstance(cursor, int) or not isinstance(limit, int) or cursor < 0:
                raise ProtocolError("pull needs an integer cursor >= 0 and limit")
            page = feed.pull(self.chain, outlet_id, cursor, limit)
            return ok(page.model_dump(mode="json")), outlet_id, False
        if op == "bye":
            return ok(), outlet_id, True
        raise ProtocolError(f"unknown op {op!r}")


class ModemBank:
    """Several answering lines over one chain."""

    def __init__(self, chain: Chain, lines: list[LineSettings]) -> None:
        self.lines = [ModemLine(chain, settings) for settings in lines]

    def start(self) -> None:
        for line in self.lines:
            line.start()

    def stop(self) -> None:
        for line in self.lines:  # all at once: each may take WAIT_FOR_CALL_S to notice
            line._stop.set()
        for line in self.lines:
            line.stop()

    def health(self) -> list[dict[str, Any]]:
        return [dict(line.state) for line in self.lines]
