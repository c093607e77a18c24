"""Running a FastAPI app on uvicorn: in the foreground, or in a thread (demo, benches).

Promises: `Background` returns only once the server accepts connections, and `stop()`
returns once it has shut down. Sets a keep-alive longer than uvicorn's 5 s default so a
till posting every few seconds keeps its connection (shared/notes/performance-floors.md).
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

KEEP_ALIVE_S = 75


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def config(app: FastAPI, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level,
                          timeout_keep_alive=KEEP_ALIVE_S, access_log=False)


def run(app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
    uvicorn.Server(config(app, host, port, log_level)).run()


class Background:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(config(app, host, self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
