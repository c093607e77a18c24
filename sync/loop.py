"""The router link's loops: push right after local commits, long-poll pulls, back-off.

Two threads beside the till, never in its path (invariant 3):
- the pusher wakes on `kick()` (the agent calls it after every commit; waits `debounce`
  so a burst of sales travels in one batch) or on the scheduler's timer, and pushes
  everything pending;
- the puller keeps one long-poll pull open, so changes anywhere reach this outlet in well
  under a second, and re-checks HQ's epoch with a hello after every failure.
When HQ is unreachable each loop backs off exponentially up to `max_backoff` (10 s) and
keeps retrying; the till keeps selling; whichever loop reaches HQ again first wakes the
other. A failure is logged when it first happens and then at most every `LOG_AGAIN_S`
while it repeats (a refused token, HQ down for a day: one line, not one per retry).
Must never: raise into the caller, or spin without waiting after a failure.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from schema.errors import Unauthorized, describe
from sync.client import PassReport, Replica, greet, pull_new, push_pending
from sync.transport import Transport

log = logging.getLogger(__name__)

LOG_AGAIN_S = 600.0


class Backoff:
    def __init__(self, first: float = 0.2, cap: float = 30.0) -> None:
        self.first, self.cap, self.delay = first, cap, 0.0

    def failed(self) -> float:
        self.delay = min(self.cap, self.delay * 2 if self.delay else self.first)
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0


class FailureLog:
    """Logs a failure of one loop when it is new, then at most every `every` seconds while
    failures of the same kind (code) repeat; shared by both loops, so a refusal both meet is
    one line. A loop's success forgets the kinds it was the last to meet."""

    def __init__(self, every: float = LOG_AGAIN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, str, int]] = {}  # kind -> (logged at, loop, repeats)

    def failed(self, loop: str, exc: Exception, delay: float | None) -> None:
        kind = str(getattr(exc, "code", type(exc).__name__))
        with self._lock:
            now = self.clock()
            seen = self._seen.get(kind)
            if seen is not None and now - seen[0] < self.every:
                self._seen[kind] = (seen[0], loop, seen[2] + 1)
                return
            repeats = seen[2] if seen is not None else 0
            self._seen[kind] = (now, loop, 0)
        level = logging.ERROR if isinstance(exc, Unauthorized) else logging.WARNING
        log.log(level, "%s failed (%s)%s%s", loop, describe(exc),
                "" if delay is None else f"; retrying in {delay:.1f}s",
                f" ({repeats} more such failures since the last report)" if repeats else "")

    def succeeded(self, loop: str) -> None:
        with self._lock:
            for kind in [k for k, (_, owner, _) in self._seen.items() if owner == loop]:
                del self._seen[kind]


class RouterLoop:
    def __init__(self, replica: Replica, connect: Callable[[], Transport], *,
                 debounce: float = 0.005, long_poll: float = 25.0, max_backoff: float = 10.0,
                 on_master_change: Callable[[], None] | None = None) -> None:
        self.replica = replica
        self.connect = connect
        self.debounce = debounce
        self.long_poll = long_poll
        self._kick = threading.Event()
        # Whichever loop reaches HQ again first wakes the other out of its back-off.
        self._pull_wake = threading.Event()
        self._push_wake = threading.Event()
        self._stop = threading.Event()
        self._push_backoff = Backoff(cap=max_backoff)
        self._pull_backoff = Backoff(cap=max_backoff)
        self._threads: list[threading.Thread] = []
        self.failures = FailureLog()
        self.state: dict[str, Any] = {"push": "starting", "pull": "starting"}

    def start(self) -> None:
        for name, target in (("sync-push", self._push_loop), ("sync-pull", self._pull_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.kick()

    def kick(self) -> None:
        self._kick.set()

    def stop(self, timeout: float = 1.0) -> None:
        """Stops both loops; a pull blocked in a long poll is left to end on its own
        (its thread is a daemon and exits at its next step)."""
        self._stop.set()
        self._kick.set()
        self._pull_wake.set()
        self._push_wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _note(self, error: str | None) -> None:
        """Records the outcome in the replica; a replica that cannot be written (a full or
        read-only disk) must not end the loop that tries to record it."""
        try:
            self.replica.note_sync(error)
        except Exception as exc:  # noqa: BLE001 - the loop outlives its bookkeeping
            self.failures.failed("recording the sync state", exc, None)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _push_loop(self) -> None:
        link: Transport | None = None
        hello_done = False
        while not self._stop.is_set():
            self._kick.wait()
            self._kick.clear()
            if self._stop.is_set():
                break
            self._sleep(self.debounce)
            try:
                link = link or self.connect()
                if not hello_done:
                    greet(self.replica, link)
                    hello_done = True
                report = PassReport()
                push_pending(self.replica, link, report)
                self._push_backoff.succeeded()
                self.failures.succeeded("push")
                if self._pull_backoff.delay:
                    self._pull_wake.set()
                self.state["push"] = "ok"
                if report.pushed or report.duplicates:
                    self._note(None)
            # The pusher must outlive any failure (HQ down, a bug in one batch): the till keeps
            # selling and the queue is retried with back-off, so catching everything is the point.
            except Exception as exc:  # noqa: BLE001 - this thread must never die
                if self._stop.is_set():
                    break
                delay = self._push_backoff.failed()
                self.state["push"] = f"retrying in {delay:.1f}s: {exc}"
                self._note(f"push: {describe(exc)}")
                self.failures.failed("push", exc, delay)
                if link is not None:
                    link.close()
                    link = None
                hello_done = False
                self._push_wake.wait(delay)
                self._push_wake.clear()
                self._kick.set()
        if link is not None:
            link.close()

    def _pull_loop(self) -> None:
        link: Transport | None = None
        while not self._stop.is_set():
            try:
                if link is None:
                    link = self.connect()
                    if greet(self.replica, link):
                        self.kick()
                report = PassReport()
                pull_new(self.replica, link, report, wait=self.long_poll)
                self._pull_backoff.succeeded()
                self.failures.succeeded("pull")
                if self._push_backoff.delay:
                    self._push_wake.set()
                self.state["pull"] = "ok"
                if report.pulled:
                    self._note(None)
            # Same for the puller: whatever fails, back off and pull again; never die.
            except Exception as exc:  # noqa: BLE001 - this thread must never die
                if self._stop.is_set():
                    break
                delay = self._pull_backoff.failed()
                self.state["pull"] = f"retrying in {delay:.1f}s: {exc}"
                self.failures.failed("pull", exc, delay)
                if link is not None:
                    link.close()
                    link = None
                self._pull_wake.wait(delay)
                self._pull_wake.clear()
        if link is not None:
            link.close()
