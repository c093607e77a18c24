"""Running a FastAPI app on uvicorn: in the foreground, or in a thread (demo, benches).

Promises: `Background` returns only once the server accepts connections, and `stop()`
returns once it has shut down. Sets a keep-alive longer than uvicorn's 5 s default so a
till posting every few seconds keeps its connection (bench/till.py measures it). Runs on
uvicorn's fast pair, the httptools parser on a uvloop loop (`uvicorn[standard]`), named
rather than left to "auto": without them a server refuses to start instead of falling back
to h11 and asyncio in silence (slower on every request of the till's path).
"""

from __future__ import annotations

import contextlib
import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

KEEP_ALIVE_S = 75
GRACE_S = 2  # long polls in flight at shutdown are cut after this


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def config(app: FastAPI, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          timeout_keep_alive=KEEP_ALIVE_S, access_log=False,
                          timeout_graceful_shutdown=GRACE_S, http="httptools", loop="uvloop")


class Server(uvicorn.Server):
    """uvicorn's server, telling the app when shutdown starts (so long polls end now).

    `freeze` (a served process, `run`): once serving, what starting built is frozen out of
    Python's garbage collector. A full collection stops every thread, a till's sale
    included; it scanned the whole framework each time (~40 ms, and a pull's pages make
    full collections frequent) and now scans what was made since (docs/sync.md, "Sliced
    pull application")."""

    def __init__(self, cfg: uvicorn.Config, on_exit: Callable[[], None] | None = None,
                 freeze: bool = False) -> None:
        super().__init__(cfg)
        self.on_exit = on_exit
        self.freeze = freeze

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.freeze:  # what starting built lives as long as the process: never scan it
            gc.collect()
            gc.freeze()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.on_exit is not None:
            self.on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn (>= 0.29) re-raises SIGTERM/SIGINT once it has shut down, which kills the
        process before the caller's `finally` runs (HQ's modem bank would stay answering,
        schedulers and files would not be closed). A signal here means "shut down": done."""
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def run(app: FastAPI, host: str, port: int, log_level: str = "info",
        on_exit: Callable[[], None] | None = None) -> None:
    Server(config(app, host, port, log_level), on_exit, freeze=True).run()


class Background:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None,
                 on_exit: Callable[[], None] | None = None) -> None:
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.on_exit = on_exit
        self.server = Server(config(app, host, self.port), on_exit)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.on_exit is not None:
            self.on_exit()
        self.server.should_exit = True
        self.thread.join(timeout=10)
