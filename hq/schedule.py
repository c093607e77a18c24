"""HQ's periodic work on APScheduler: invoice period closing, invoice status moves,
point expiry and category assignment.

By default the period is a calendar month: on the 1st at 00:05 UTC the previous month is
closed; every day at 00:15 UTC overdue and past-term invoices are moved on (and credit
blocked per policy), at 00:30 UTC points past their last valid day expire (hq/expiry.py,
as of HQ's own day: the chain's clock, which tests set), and at 01:00 UTC the category
rules are applied. Every job is idempotent, so a missed or repeated run is harmless.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from hq import categories, expiry, invoices
from hq.chain import Chain

log = logging.getLogger(__name__)


def previous_month(today: date) -> tuple[date, date]:
    first = today.replace(day=1)
    return (first - timedelta(days=1)).replace(day=1), first


def close_last_month(chain: Chain) -> None:
    """Closes the previous month (late credit sales of earlier months come along)."""
    today = datetime.now(UTC).date()
    start, end = previous_month(today)
    made = invoices.close_period(chain, start, end, today)
    log.info("closed %s..%s: %d invoices", start, end, len(made))


def refresh_statuses(chain: Chain) -> None:
    moved = invoices.refresh(chain, datetime.now(UTC).date())
    log.info("invoice statuses: %s", moved)


def expire_points(chain: Chain) -> None:
    """Points past their last valid day expire, as of HQ's day (`chain.clock`)."""
    log.info("point expiry: %s", expiry.run(chain, date.fromisoformat(chain.clock()[:10])))


def assign_categories(chain: Chain) -> None:
    log.info("category assignment: %s", categories.assign(chain, datetime.now(UTC).date()))


def start(chain: Chain) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(close_last_month, "cron", day=1, hour=0, minute=5, args=[chain],
                      id="invoice-close", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(refresh_statuses, "cron", hour=0, minute=15, args=[chain],
                      id="invoice-refresh", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(expire_points, "cron", hour=0, minute=30, args=[chain],
                      id="points-expiry", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.add_job(assign_categories, "cron", hour=1, minute=0, args=[chain],
                      id="category-assignment", misfire_grace_time=6 * 3600, coalesce=True)
    scheduler.start()
    return scheduler
