"""HQ's periodic work on APScheduler: invoice period closing, invoice status moves, point
expiry, category assignment, ended announcements, the mail run and the snapshot outlets
start from.

By default the period is a calendar month: on the 1st at 00:05 UTC the previous month is
closed; every day at 00:15 UTC overdue and past-term invoices are moved on (and credit
blocked per policy), at 00:30 UTC points past their last valid day expire (hq/expiry.py,
as of HQ's own day: the chain's clock, which tests set), at 00:45 UTC customers whose points
expire within 30 days are told (hq/notices.py `queue_expiring`, mailed by the next mail
run) and announcements that have ended
everywhere are withdrawn (hq/announcements.py), and at 01:00 UTC the category rules are
applied. Every `mail.interval` seconds (hq/settings.py, 15 by default) the notices that are
due are decided, pending newsletters rendered (hq/newsletters.py) and the mail that is due
is sent (hq/notices.py, hq/mailqueue.py): the only place HQ sends mail from.
Every minute HQ looks whether a new snapshot is due (hq/snapshot.py).
Every job is idempotent, so a missed or repeated run is harmless.

Once chain-wide: several HQ processes may share one PostgreSQL database, each with this
scheduler. Each run goes through `once(chain, job, period, ...)`: the store's `exclusive`
(hq/store) lets one process run a job for a period while the others, reaching it at the
same moment, skip it (logged); a process reaching it after that run ended runs it again,
which the job's idempotency per period makes harmless (closing a month twice adds nothing:
invoices are per customer and period; statuses, categories and withdrawals move only what
is due). On SQLite one HQ process serves the file (schema/dblock.py), so every run goes ahead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from apscheduler.schedulers.background import BackgroundScheduler

from hq import (
    announcements,
    categories,
    expiry,
    invoices,
    mailqueue,
    newsletters,
    notices,
    settings,
)
from hq.chain import Chain
from hq.snapshot import CHECK_EVERY_S, Snapshots

log = logging.getLogger(__name__)

T = TypeVar("T")


def once(chain: Chain, job: str, period: str, run: Callable[[], T]) -> T | None:
    """`run()` unless another HQ process on the chain's database is running `job` for
    `period` right now (then None, logged): see the module's docstring."""
    with chain.db.exclusive(f"{job}:{period}") as mine:
        if not mine:
            log.info("%s for %s is running in another HQ process: skipped here", job,
                     period or "now")
            return None
        return run()


def previous_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1), first


def close_last_month(chain: Chain) -> None:
    """Closes the previous month (late credit sales of earlier months come along)."""
    today = datetime.now(UTC).date()
    start, end = previous_month(today)
    made = once(chain, "invoice-close", start.isoformat(),
                lambda: invoices.close_period(chain, start, end, today))
    if made is not None:
        log.info("closed %s..%s: %d invoices", start, end, len(made))


def refresh_statuses(chain: Chain) -> None:
    today = datetime.now(UTC).date()
    moved = once(chain, "invoice-refresh", today.isoformat(),
                 lambda: invoices.refresh(chain, today))
    if moved is not None:
        log.info("invoice statuses: %s", moved)


def expire_points(chain: Chain) -> None:
    """Points past their last valid day expire, as of HQ's day (`chain.clock`)."""
    today = date.fromisoformat(chain.clock()[:10])
    ran = once(chain, "points-expiry", today.isoformat(), lambda: expiry.run(chain, today))
    if ran is not None:
        log.info("point expiry: %s", ran)


def expiring_notices(chain: Chain) -> None:
    """Points-expiring notices as of HQ's day (`chain.clock`), after the night's expiry."""
    today = date.fromisoformat(chain.clock()[:10])
    told = once(chain, "points-expiring-notices", today.isoformat(),
                lambda: notices.queue_expiring(chain, today))
    if told:
        log.info("points-expiring notices: %s", told)


def assign_categories(chain: Chain) -> None:
    today = datetime.now(UTC).date()
    moved = once(chain, "category-assignment", today.isoformat(),
                 lambda: categories.assign(chain, today))
    if moved is not None:
        log.info("category assignment: %s", moved)


def withdraw_ended_announcements(chain: Chain) -> None:
    today = datetime.now(UTC).date()
    ended = once(chain, "announcements-ended", today.isoformat(),
                 lambda: announcements.withdraw_ended(chain, today))
    if ended:
        log.info("announcements ended and withdrawn: %s", ", ".join(ended))


def mail_run(chain: Chain) -> None:
    """One process at a time chain-wide (`once`), each run sending what is due."""
    once(chain, "mail", "", lambda: _mail_run(chain))


def _mail_run(chain: Chain) -> None:
    """Notices and newsletters first (so an invoice closed a moment ago goes out in this
    run), then mail."""
    decided = notices.queue_due(chain)
    if decided:
        log.info("notices decided: %s", decided)
    rendered = newsletters.queue_due(chain)
    if rendered:
        log.info("newsletter messages: %s", rendered)
    mailqueue.send_due(chain)


def start(chain: Chain, snapshots: Snapshots | None = None) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    if snapshots is not None and snapshots.every > 0:
        # first look at once (a new HQ over a big chain builds one right away), then
        # every minute; a build that is still running makes the next look wait
        # (per process, not `once`: each process serves the snapshots of its own folder)
        scheduler.add_job(snapshots.refresh, "interval", seconds=CHECK_EVERY_S,
                          id="snapshot", next_run_time=datetime.now(UTC), max_instances=1,
                          coalesce=True)
    scheduler.add_job(close_last_month, "cron", day=1, hour=0, minute=5, args=[chain],
                      id="invoice-close", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(refresh_statuses, "cron", hour=0, minute=15, args=[chain],
                      id="invoice-refresh", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(withdraw_ended_announcements, "cron", hour=0, minute=30, args=[chain],
                      id="announcements-ended", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(expire_points, "cron", hour=0, minute=30, args=[chain],
                      id="points-expiry", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(expiring_notices, "cron", hour=0, minute=45, args=[chain],
                      id="points-expiring-notices", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(assign_categories, "cron", hour=1, minute=0, args=[chain],
                      id="category-assignment", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(mail_run, "interval", seconds=settings.interval_s(chain), args=[chain],
                      id="mail", max_instances=1, coalesce=True,
                      next_run_time=datetime.now(UTC))  # at start: mail cut off by a crash
    scheduler.start()
    return scheduler
