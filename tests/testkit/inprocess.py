"""The in-process tier: the agent's and HQ's apps answered in this process, the CLI run here.

The fast tier (`pytest -m "not slow"`, docs/operations.md "Tests") checks the HTTP contract
of the till API and of HQ's API without starting a process: the app the service builds is
called through FastAPI's `TestClient` instead of uvicorn, over a real SQLite file.

- `Session(client)`: the part of `requests.Session` the tests use (`request`, `get`, `post`,
  `put`, `patch`, `delete`, `headers`) over one entered `TestClient`. requests' keywords
  become httpx's (`data=` bytes, text or an iterator of bytes → `content=`; `timeout` is
  dropped; `allow_redirects` → `follow_redirects`) and every answer gets requests' `ok`.
  Each Session has its own headers (one token per client) and they all share the app's one
  client, so the app runs on one event loop, as under uvicorn.
- `InProcessAgent(db, outlet, **options)`: the agent `loyalty agent serve` runs, built by
  `agent.runtime.build` from the same options (`config.load`) and started (scheduler, WAL
  checkpointer), minus uvicorn. `.db`, `.url`, `.app`, `.outlet`, `.session()`, `.till()`,
  `close()`, so tests written against `AgentProcess` run unchanged.
- `TIERS`: for the few tests that also run against the real process (see below).
- `InProcessHQ(db, clock_tolerance=None, log=None)`: HQ's app from `hq.api.create_app` over
  a `Chain` opened as `loyalty hq serve` opens it (the default programme as its seed, the
  clock tolerance, the WAL checkpointer); the monthly schedule and the modem bank are not
  started. `db` is HQ's SQLite file or a `postgresql://` URL (then give `log`, the file its
  log goes to; on SQLite it is beside the database).
  With testkit's `HQAdmin`, whose `outlet_add` and `admin_token` run `loyalty hq ...` through
  `cli` below. `stderr()` is what the process logged (warnings and up) while it was up.
- `cli(*args, input=None)`: `loyalty ARGS...` through click's `CliRunner`, on the command the
  console script runs (its entry point), returning a `CompletedProcess` like
  `testkit.processes.cli`; `cli_last_line` the same.

An exception the app does not turn into an answer is raised in the test, with its
traceback (TestClient's default), where a real server would answer 500: stricter, and the
contract never allows a 500 anyway.

What this tier does not see, so one real-process test per family stays in the slow tier:
uvicorn's HTTP (a port, keep-alive, a chunked body as it arrives, concurrent connections),
process start-up, kill -9 and restart, and the manager pages' loopback check (a TestClient's
client host is "testclient", so those pages answer 403 here).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from testkit.hqadmin import HQAdmin
from testkit.till import Till

__all__ = ["TIERS", "InProcessAgent", "InProcessHQ", "Session", "cli", "cli_last_line",
           "loyalty_command"]

URL = "http://testserver"

# `@pytest.mark.parametrize("agent", TIERS, indirect=True)` (or "hq"): the test runs in
# process and again against the real process, which is in the slow tier.
TIERS = ["in process", pytest.param("real process", marks=pytest.mark.slow)]


class Session:
    """requests.Session's surface over an entered TestClient (see the module docstring)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.headers: dict[str, str] = {}

    def request(self, method: str, url: str, **kw: Any) -> Any:
        kw.pop("timeout", None)  # in process nothing waits on a socket
        if "allow_redirects" in kw:
            kw["follow_redirects"] = kw.pop("allow_redirects")
        if isinstance(kw.get("data"), bytes | str | Iterator):
            kw["content"] = kw.pop("data")  # httpx takes raw bodies as content (a form stays data)
        kw["headers"] = {**self.headers, **(kw.get("headers") or {})}
        answer = self.client.request(method, url, **kw)
        answer.ok = answer.is_success  # requests' name, which the tests use
        return answer

    def get(self, url: str, **kw: Any) -> Any:
        return self.request("GET", url, **kw)

    def post(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.request("POST", url, json=json, **kw)

    def put(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PUT", url, json=json, **kw)

    def patch(self, url: str, json: Any = None, **kw: Any) -> Any:
        return self.request("PATCH", url, json=json, **kw)

    def delete(self, url: str, **kw: Any) -> Any:
        return self.request("DELETE", url, **kw)


def _entered(app: FastAPI) -> TestClient:
    client = TestClient(app, base_url=URL)
    client.__enter__()  # one event loop (a portal thread) for the app's life, and its lifespan
    return client


class InProcessAgent:
    """`loyalty agent serve --db DB --outlet OUTLET [options]`, minus uvicorn."""

    label = "agent (in process)"
    url = URL

    def __init__(self, db: Path, outlet: str = "T", *, till_token: str | None = None,
                 **options: Any) -> None:
        from agent import config, runtime

        self.db = Path(db)
        self.outlet_id = outlet
        self.till_token = till_token
        self.runtime = runtime.build(config.load(None, db=str(self.db), outlet=outlet,
                                                 till_token=till_token, **options))
        self.runtime.start()
        self.client = _entered(self.runtime.app)

    def __repr__(self) -> str:
        return f"<InProcessAgent {self.outlet_id} {self.db}>"

    @property
    def app(self) -> FastAPI:
        return self.runtime.app

    @property
    def outlet(self) -> Any:
        return self.runtime.outlet

    def session(self) -> Session:
        return Session(self.client)

    def till(self, till_id: str = "T1", token: str | None = None) -> Till:
        return Till(self.url, till_id, token if token is not None else self.till_token,
                    session=self.session())

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.runtime.stop()


class InProcessHQ(HQAdmin):
    """`loyalty hq serve --db DB`, minus uvicorn, the schedule and the modem bank.

    Give it outlets and an admin token (`HQAdmin`, the command run by `cli` here), then
    `start()`; `close()` (also `kill`/`stop`) closes the app and the file."""

    label = "HQ (in process)"
    url = URL

    def __init__(self, db: Path | str, clock_tolerance: float | None = None,
                 log: Path | None = None) -> None:
        self.db = db if isinstance(db, str) and "://" in db else Path(db)
        self.tokens = {}
        self.clock_tolerance = clock_tolerance
        self.client: TestClient | None = None
        self.chain: Any = None
        if log is None:
            assert isinstance(self.db, Path), "an HQ on PostgreSQL needs log= (a file)"
            log = self.db.with_name(self.db.name + ".log")
        self.log = log
        self._handler: logging.Handler | None = None

    def start(self) -> InProcessHQ:
        from agent.programme import default_documents  # the seed `loyalty hq` is handed
        from hq.api import create_app
        from hq.chain import Chain

        self._handler = logging.FileHandler(self.log)
        self._handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(self._handler)
        self.chain = Chain(self.db, seed=default_documents())
        if self.clock_tolerance is not None:
            self.chain.clock_tolerance_s = self.clock_tolerance
        self.chain.db.start_checkpointer()
        self.client = _entered(create_app(self.chain))
        return self

    @property
    def running(self) -> bool:
        return self.client is not None

    def session(self) -> Session:
        assert self.client is not None, "start() the in-process HQ first"
        return Session(self.client)

    def run_cli(self, *args: str) -> str:
        return cli_last_line(*args)

    def stderr(self) -> str:
        """What HQ's code logged while it was up (a process would have written it to stderr)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        if self.client is not None:
            self.chain.waiters.close()  # what uvicorn's shutdown does: long polls end now
            self.client.__exit__(None, None, None)
            self.chain.close()
            self.client = None
            self._http = None
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler.close()
            self._handler = None

    kill = stop = close


# --- the loyalty command, in this process -------------------------------------------------
def loyalty_command() -> Any:
    """The click command the `loyalty` console script runs (found by its entry point)."""
    (script,) = entry_points(group="console_scripts", name="loyalty")
    return script.load()


def cli(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`loyalty ARGS...` through CliRunner; exit code, stdout and stderr as a process has them."""
    from click.testing import CliRunner

    done = CliRunner().invoke(loyalty_command(), list(args), input=input)
    if done.exception is not None and not isinstance(done.exception, SystemExit):
        raise done.exception  # a traceback a real run would print: fail with it
    return subprocess.CompletedProcess(["loyalty", *args], done.exit_code, done.stdout,
                                       done.stderr)


def cli_last_line(*args: str) -> str:
    done = cli(*args)
    assert done.returncode == 0, f"loyalty {' '.join(args)}: {done.returncode}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]
