"""The modem link's schedule: dial HQ in windows, retry a failed call within the window.

APScheduler runs one job per outlet: every 2 hours by default (`every 2h`, `every 90m`)
or a cron expression (`0 */2 * * *`). A window starts with a call even when nothing is
pending (the outlet still pulls). BUSY, NO CARRIER, NO ANSWER, NO DIALTONE and a dropped
line are retried with back-off until the window closes; the next window resumes where the
last call stopped (the protocol re-sends only what HQ did not acknowledge). Every call's
outcome (result, bytes each way, speed) and the next dial time go to `record`.
Must never: run two calls at once on one modem, or retry past the window.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from schema.errors import ConfigError, LoyaltyError, describe
from schema.events import utc_now
from sync.client import PassReport, Progress, Replica, run_once
from sync.hayes import ModemError
from sync.modem import ModemTransport

log = logging.getLogger(__name__)

EVERY = re.compile(r"^every\s+(\d+)\s*([hm])$")
Record = Callable[[dict[str, Any]], None]


def trigger(schedule: str) -> BaseTrigger:
    """`every 2h`, `every 90m` or a five-field cron expression, in UTC."""
    match = EVERY.match(schedule.strip())
    if match:
        amount, unit = int(match[1]), match[2]
        return IntervalTrigger(hours=amount) if unit == "h" else IntervalTrigger(minutes=amount)
    try:
        return CronTrigger.from_crontab(schedule, timezone=UTC)
    except ValueError as exc:
        raise ConfigError(f"modem schedule {schedule!r}: say 'every 2h', 'every 90m' or a "
                          f"cron expression ({exc})") from exc


class Dialer:
    def __init__(self, replica: Replica, connect: Callable[[], ModemTransport], record: Record,
                 window_s: float = 1800.0, first_retry_s: float = 15.0,
                 max_retry_s: float = 300.0) -> None:
        self.replica = replica
        self.connect = connect
        self.record = record
        self.window_s = window_s
        self.first_retry_s = first_retry_s
        self.max_retry_s = max_retry_s
        self._busy = threading.Lock()
        self._stop = threading.Event()

    def schedule(self, scheduler: BaseScheduler, when: str) -> None:
        self._trigger = trigger(when)
        scheduler.add_job(self.window, self._trigger, id="modem-dial", coalesce=True,
                          max_instances=1, misfire_grace_time=600)
        self.record({"next_dial_at": self.next_dial_at()})

    def next_dial_at(self) -> str | None:
        fire = getattr(self, "_trigger", None)
        if fire is None:
            return None
        return _iso(fire.get_next_fire_time(None, datetime.now(UTC)))

    def stop(self) -> None:
        self._stop.set()

    def window(self) -> PassReport | None:
        """One dial window: call, retrying failures with back-off until the window ends."""
        deadline = time.monotonic() + self.window_s
        delay = self.first_retry_s
        while not self._stop.is_set():
            try:
                return self.call()
            except (ModemError, LoyaltyError) as exc:
                retriable = getattr(exc, "retriable", True) and not isinstance(exc, ConfigError)
                if not retriable or time.monotonic() + delay > deadline:
                    log.warning("modem window ends without a complete call: %s", exc)
                    return None
                log.info("modem call failed (%s); again in %.0fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self.max_retry_s)
        return None

    def call(self, progress: Progress | None = None) -> PassReport:
        """One call now: dial, hello, push everything, pull everything, hang up."""
        if not self._busy.acquire(blocking=False):
            raise ConfigError("a modem call is already in progress")
        link: ModemTransport | None = None
        started = utc_now()
        try:
            link = self.connect()
            link.open()
            report = run_once(self.replica, link, progress=progress, push_batch=1000)
            self._note(started, "ok", link, report)
            return report
        except Exception as exc:
            self._note(started, describe(exc), link, None)
            raise
        finally:
            if link is not None:
                link.close()
            self._busy.release()

    def _note(self, started: str, result: str, link: ModemTransport | None,
              report: PassReport | None) -> None:
        session: dict[str, Any] = {"started_at": started, "ended_at": utc_now(), "result": result}
        if link is not None:
            session.update(bytes_sent=link.stats.bytes_sent, bytes_received=link.stats.bytes_received,
                           connect_bps=link.stats.connect_bps)
        if report is not None:
            session.update(pushed=report.pushed, pulled=report.pulled)
        figures: dict[str, Any] = {"last_session": session}
        if getattr(self, "_trigger", None) is not None:  # a one-off call (`loyalty sync`)
            figures["next_dial_at"] = self.next_dial_at()  # keeps the agent's schedule
        self.record(figures)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="seconds")
