"""Per-till hand-off of card reads to the till's POS (`GET /v1/tills/{id}/identification`).

Readers run in threads and `publish` what they read for a till; the POS long-polls `next`.
Promises: each read is handed to exactly one poll of its till, in order; a read nobody
collects within `MAX_AGE_S` is dropped (a card swiped an hour ago must not identify the
next customer). Must never: block a reader thread, or hand a read to another till.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from typing import Any

MAX_AGE_S = 60.0
MAX_QUEUED = 16


class TillBoard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[tuple[float, dict[str, Any]]]] = defaultdict(
            lambda: deque(maxlen=MAX_QUEUED)
        )
        self._waiters: dict[str, deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]]] = (
            defaultdict(deque)
        )

    def publish(self, till_id: str, read: dict[str, Any]) -> None:
        with self._lock:
            waiters = self._waiters[till_id]
            while waiters:
                loop, future = waiters.popleft()
                if not future.done():
                    loop.call_soon_threadsafe(self._deliver, till_id, future, read)
                    return
            self._queues[till_id].append((time.monotonic(), read))

    def _deliver(self, till_id: str, future: asyncio.Future[Any], read: dict[str, Any]) -> None:
        if future.done():  # the poll timed out meanwhile: keep the read for the next one
            with self._lock:
                self._queues[till_id].appendleft((time.monotonic(), read))
            return
        future.set_result(read)

    def _take(self, till_id: str) -> dict[str, Any] | None:
        queue = self._queues[till_id]
        while queue:
            at, read = queue.popleft()
            if time.monotonic() - at <= MAX_AGE_S:
                return read
        return None

    async def next(self, till_id: str, wait_s: float) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            read = self._take(till_id)
            if read is not None or wait_s <= 0:
                return read
            self._waiters[till_id].append((loop, future))
        try:
            return await asyncio.wait_for(future, wait_s)
        except TimeoutError:
            with self._lock:
                return self._take(till_id)

    def give_back(self, till_id: str, read: dict[str, Any]) -> None:
        """A read whose poll went away before it was answered: first in line again."""
        with self._lock:
            self._queues[till_id].appendleft((time.monotonic(), read))

    def pending(self) -> dict[str, int]:
        with self._lock:
            return {till: len(q) for till, q in self._queues.items() if q}
