"""Where a sale's time goes in a real agent: `python bench/saleprobe.py OUT.tsv agent serve ...`.

Runs `loyalty agent serve ...` (the same CLI, the same code) in this process after wrapping
`schema.database.Database.write` with timers; bench/sync.py `--probe` starts the agent of
its "sales during a pull" part this way. For every outermost write transaction, and every read that had to wait for the writer, it
appends one line to OUT.tsv:

    kind  thread  durable  wait_ms  begin_ms  body_ms  commit_ms  gc_ms  started_at  ended_at

- `kind`: `write` or `read` (`Database.read`, which shares the writer's connection);
- `wait_ms`: waiting for the database's connection (another transaction of this
  process, a pulled slice for instance, held it);
- `begin_ms`: BEGIN IMMEDIATE (SQLite's write lock: another process on the file);
- `body_ms`: from BEGIN IMMEDIATE to just before COMMIT (the transaction's SQL and
  Python; for a read, the read);
- `commit_ms`: COMMIT (with synchronous=FULL: the write-ahead log written and fsynced);
- `gc_ms`: time Python's garbage collector ran meanwhile (any thread);
- `started_at`, `ended_at`: time.perf_counter() (CLOCK_MONOTONIC: the same clock in every
  process of the machine, so the bench lines them up with its sales).

The timers measure; they change nothing in what is written (the wrappers take the
connection's re-entrant lock first, so the time spent waiting for it is seen alone, then
run the real `write` / `read`). A measurement tool, not part of the product: nothing imports it. `SALEPROBE_SWITCH_S`
in the environment sets the interpreter's thread switch interval first, `SALEPROBE_SLICE_S`
the time a pulled slice aims to hold the writer (`agent.replication.SLICE_S`): experiments.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

from schema.database import Database

_gc_s = 0.0  # the collector's total time so far (any thread)
_gc_started: float | None = None


def _gc_clock(phase: str, _info: dict[str, Any]) -> None:
    global _gc_s, _gc_started
    now = time.perf_counter()
    if phase == "start":
        _gc_started = now
    elif _gc_started is not None:
        _gc_s += now - _gc_started
        _gc_started = None


def install(out: IO[str]) -> None:
    """Wraps `Database.write` and `Database.read` so that each writes its line to `out`."""
    write, read = Database.write, Database.read
    lock = threading.Lock()

    def emit(kind: str, durable: bool, times: list[float], gc_ms: float) -> None:
        asked, got, began, body_end, ended = times
        line = (f"{kind}\t{threading.current_thread().name}\t{int(durable)}\t"
                f"{(got - asked) * 1000:.3f}\t{(began - got) * 1000:.3f}\t"
                f"{(body_end - began) * 1000:.3f}\t{(ended - body_end) * 1000:.3f}\t"
                f"{gc_ms:.3f}\t{asked:.6f}\t{ended:.6f}\n")
        with lock:
            out.write(line)
            out.flush()

    @contextlib.contextmanager
    def timed_write(self: Database, durable: bool = True) -> Iterator[sqlite3.Connection]:
        asked = time.perf_counter()
        with self._waiting():
            self._lock.acquire()  # re-entrant: the real write() below takes it again at once
        try:
            nested = self.conn.in_transaction
            got = time.perf_counter()
            gc_before = _gc_s
            with write(self, durable) as conn:
                began = time.perf_counter()
                yield conn
                body_end = time.perf_counter()
            ended = time.perf_counter()
        finally:
            self._lock.release()
        if not nested:
            emit("write", durable, [asked, got, began, body_end, ended],
                 (_gc_s - gc_before) * 1000)

    @contextlib.contextmanager
    def timed_read(self: Database) -> Iterator[sqlite3.Connection]:
        asked = time.perf_counter()
        with self._waiting():
            self._lock.acquire()
        try:
            got = time.perf_counter()
            gc_before = _gc_s
            with read(self) as conn:
                yield conn
            ended = time.perf_counter()
        finally:
            self._lock.release()
        if got - asked > 0.0005:  # only the reads that waited (the rest are many and short)
            emit("read", False, [asked, got, got, ended, ended], (_gc_s - gc_before) * 1000)

    Database.write = timed_write  # type: ignore[method-assign]
    Database.read = timed_read  # type: ignore[method-assign]
    gc.callbacks.append(_gc_clock)


def main() -> None:
    out_path, *args = sys.argv[1:]
    out = open(out_path, "a", encoding="utf-8")  # noqa: SIM115 - open while the agent runs
    here = os.path.dirname(os.path.abspath(__file__))  # bench/sync.py would hide `sync`
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    install(out)
    switch = os.environ.get("SALEPROBE_SWITCH_S")  # an experiment: the GIL's switch interval
    if switch:
        sys.setswitchinterval(float(switch))
    slice_s = os.environ.get("SALEPROBE_SLICE_S")  # an experiment: a pulled slice's target
    if slice_s:
        from agent import replication

        replication.SLICE_S = float(slice_s)
    from loyalty.cli import main as loyalty

    sys.argv = ["loyalty", *args]
    loyalty()


if __name__ == "__main__":
    main()
