"""The one supervisor of the real processes the tests start, and the `loyalty` command.

- `LOYALTY`: the console script beside `sys.executable`, so a test runs the code of the
  virtual environment it runs in (a worktree's own .venv runs that worktree).
- `cli(*args)`: one `loyalty ARGS...` run to its end; `cli_last_line` asserts exit 0 and
  returns the last line of its output (a token, an id).
- `Service`: one long-lived `loyalty ...` server on a port chosen once, so kill -9, a
  graceful stop and a start again keep the same URL. Its stdout and stderr are appended to
  `log`, a `--- start N ---` line before each start. `start()` returns once
  `GET url + ready_path` answers below 400; when the process exits before that because its
  port is still held (uvicorn says "address already in use", or the port does not bind), it
  is spawned again until the deadline; any other exit, or no answer by the deadline, is a
  RuntimeError carrying the tail of the log (and the process is killed). Give it `args`
  (after `loyalty`) or override `command()`; override `ready()` when a GET is not the test.
- `failure_sections(values)`: the log tails of every `Service` in a test's fixture values
  (a Service, a list of them, or anything with a `processes()` method), for the report of a
  failing test; tests/conftest.py attaches them.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import requests

from testkit.waiting import wait_until
from web.serving import free_port

LOYALTY = Path(sys.executable).parent / "loyalty"
IN_USE = "address already in use"

__all__ = ["LOYALTY", "Service", "cli", "cli_last_line", "failure_sections", "free_port",
           "log_tail", "logs"]


def cli(*args: str, timeout: float = 60, input: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """`loyalty ARGS...` (with `input` on its stdin, else none); the caller checks returncode."""
    stdin: dict[str, Any] = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([str(LOYALTY), *args], check=False, capture_output=True, text=True,
                          timeout=timeout, **stdin)


def cli_last_line(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"loyalty {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def log_tail(path: Path, chars: int = 8000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except FileNotFoundError:
        return ""


class Service:
    """One `loyalty ...` server process, restartable on the same port and files."""

    label = "loyalty"
    ready_path = "/v1/status"
    start_timeout_s = 20.0
    stop_grace_s = 5.0  # SIGTERM, then kill -9 (uvicorn waits for open long polls otherwise)

    def __init__(self, log: Path, port: int | None = None, *, args: Sequence[str] = (),
                 label: str | None = None, ready_path: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.log = Path(log)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = list(args)
        if label is not None:
            self.label = label
        if ready_path is not None:
            self.ready_path = ready_path
        self.headers = dict(headers or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self.env: dict[str, str] = {}  # added to the environment it starts with
        self._since = 0  # where this start's output begins in the log

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} {self.url}>"

    def command(self) -> list[str]:
        return [str(LOYALTY), *self.args]

    def ready(self) -> bool:
        return requests.get(self.url + self.ready_path, headers=self.headers, timeout=2).ok

    # --- life cycle -------------------------------------------------------------------
    def start(self, timeout: float | None = None) -> Self:
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self) -> None:
        """Starts the process without waiting (start several, then `wait_ready` each)."""
        self.starts += 1
        self._launch(f"--- start {self.starts} ---")

    def wait_ready(self, timeout: float | None = None) -> None:
        limit = self.start_timeout_s if timeout is None else timeout
        try:
            wait_until(self._answers, limit, every=0.03, what=f"{self.label} {self.ready_path}")
        except AssertionError:
            self.kill()
            raise RuntimeError(f"{self.label} did not answer within {limit} s:\n"
                               f"{self.stderr()}") from None

    def restart(self, graceful: bool = False, timeout: float | None = None) -> Self:
        """Down (kill -9, or a graceful stop) and up again on the same port and files."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def alive(self) -> bool:
        return self.running

    def kill(self) -> None:
        """kill -9: no shutdown code runs, exactly like a power cut of the process."""
        if self.proc is not None and self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM; kill -9 if it has not gone within `grace` seconds."""
        if self.proc is not None and self.running:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=self.stop_grace_s if grace is None else grace)
            except subprocess.TimeoutExpired:
                self.kill()

    # --- its output -------------------------------------------------------------------
    def tail(self, chars: int = 8000) -> str:
        return log_tail(self.log, chars)

    def stderr(self) -> str:
        return self.tail()

    # --- inside ---------------------------------------------------------------------------
    def _launch(self, banner: str) -> None:
        with open(self.log, "ab") as log:
            log.write(f"\n{banner}\n".encode())
            log.flush()
            self._since = log.tell()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env={**os.environ, **self.env})

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is None:
            return self.ready()
        if self._port_held():
            time.sleep(0.2)
            self._launch(f"--- start {self.starts} again: port {self.port} was still held ---")
            return False
        raise RuntimeError(f"{self.label} exited with {self.proc.returncode}:\n{self.stderr()}")

    def _port_held(self) -> bool:
        with open(self.log, "rb") as log:
            log.seek(self._since)
            if IN_USE in log.read().decode(errors="replace").lower():
                return True
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                return exc.errno == errno.EADDRINUSE
        return False


def services_in(values: Iterable[Any]) -> Iterator[Service]:
    """Every Service in these values, each once (see the module docstring)."""
    seen: set[int] = set()
    stack = list(values)
    while stack:
        value = stack.pop(0)
        if isinstance(value, Service):
            if id(value) not in seen:
                seen.add(id(value))
                yield value
        elif isinstance(value, list | tuple):
            stack[:0] = value
        elif callable(getattr(type(value), "processes", None)):
            stack[:0] = value.processes()


def failure_sections(values: Iterable[Any]) -> list[tuple[str, str]]:
    return [(f"{s.label} {s.url} stderr", s.stderr()) for s in services_in(values)]


def logs(services: Iterable[Service], chars: int = 3000) -> str:
    """The log tails of several services, one after another, each under its label."""
    return "\n".join(f"--- {s.label} ---\n{s.tail(chars)}" for s in services)
