"""Point expiry at head office (docs/programme.md, "Points expire").

`run(chain, today)` expires, for every customer, what remains of each point lot whose last
valid day plus the rule's `grace_days` is before `today` under the programme's expiry rule (`schema.lots.due`), as one
head-office fact per customer, `points.expired`, naming the lots and the points: folded
like any fact (hq/projection.py), so the lots, the tally and the change log move together
and the customer reaches every outlet with the next pull. HQ's schedule runs it every
night as of HQ's own day (hq/schedule.py); `POST /v1/admin/points/expire` runs it as of a
given day.

Promises: idempotent for a day (what expired is gone from the lots, so a second run finds
nothing; and an expiry per customer, lot and day is claimed once in `lot_expiries`, so two
HQ processes racing record it once; the nightly job runs through `schedule.once`); never expires a point twice or more than a lot holds; only customers that may
have something due are read (a lot with a fixed last day before `today`, or, under a rule
that dates lots itself, a lot old enough: any rule's life is at least 28 days a month),
in transactions of `CHUNK` customers so outlets' pushes are not held up. Must never: read
the clock except HQ's own (`chain.clock`, to refuse a future day), or edit a lot outside a fact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from hq.chain import Chain
from hq.ingest import record_hq_fact
from schema import lotstore, tallystore
from schema.dialect import dialect_of
from schema.errors import InvalidRequest
from schema.events import PointsExpired, new_id
from schema.lots import due
from schema.masterdata import ProgrammeDoc, programme_of

CHUNK = 200


def run(chain: Chain, today: date) -> dict[str, Any]:
    """Expires what is due on `today`; what it did: the day, how many customers, lots and
    points. A day after HQ's own today is `invalid_request` and changes nothing: expiry
    cannot be undone, and a typo must not wipe the chain's points (a past day is harmless:
    what expired is gone)."""
    hq_today = date.fromisoformat(chain.clock()[:10])
    if today > hq_today:
        raise InvalidRequest(f"today: {today.isoformat()} is after HQ's today "
                             f"({hq_today.isoformat()}): points expire as of today or a past "
                             "day, never ahead")
    with chain.db.read() as conn:
        settings = programme_of(conn)
    customers = lots = points = 0
    candidates = _candidates(chain, settings, today)
    while True:
        chunk = [cid for _, cid in zip(range(CHUNK), candidates, strict=False)]
        if not chunk:
            break
        with chain.db.write() as conn:
            settings = programme_of(conn)  # the rule as of this transaction
            for customer_id in chunk:
                last = tallystore.load_last_purchase(conn, customer_id)
                found = due(lotstore.load(conn, customer_id), today, settings.expiry,
                            date.fromisoformat(last[:10]) if last else None)
                mine = set(claim(conn, customer_id, today.isoformat(),
                                 [x.lot_id for x in found]))
                found = [x for x in found if x.lot_id in mine]
                if not found:
                    continue
                fact = PointsExpired(expiry_id=new_id(), customer_id=customer_id,
                                     on=today.isoformat(), lots=found)
                record_hq_fact(chain, conn, fact)
                customers, lots, points = customers + 1, lots + len(found), points + fact.points
        chain.waiters.notify()
    return {"on": today.isoformat(), "customers": customers, "lots": lots, "points": points}


def claim(conn: Any, customer_id: str, on: str, lot_ids: list[str]) -> list[str]:
    """The lots of `lot_ids` this run may expire for `customer_id` on the day `on`: those no
    other run has expired that day (`lot_expiries`, unique per customer, lot and day). Two
    HQ processes computing the same expiry (PostgreSQL, READ COMMITTED) record it once: the
    second insert waits for the first transaction and then claims nothing."""
    return [lot_id for lot_id in lot_ids if conn.execute(
        "INSERT INTO lot_expiries (customer_id, lot_id, on_day) VALUES (?, ?, ?) "
        "ON CONFLICT DO NOTHING", (customer_id, lot_id, on)).rowcount == 1]


def _candidates(chain: Chain, settings: ProgrammeDoc, today: date) -> Iterator[str]:
    """Customers who may have points due on `today`, by id (a superset: `due` decides).
    Portable SQL: `?` placeholders, the dialect's scalar greatest."""
    rule = settings.expiry
    cutoff = today - timedelta(days=rule.grace_days)  # a last day before it is due
    with chain.db.read() as conn:
        dialect = dialect_of(conn)
    where = ["(l.expires_on IS NOT NULL AND l.expires_on < ?)"]
    params: list[Any] = [cutoff.isoformat()]
    if rule.kind != "never":
        # a lot the rule dates lasts at least 28 days per month of the rule from the later
        # of its earning, the rule's start and (inactivity) the last purchase
        since = rule.since.isoformat()
        start = dialect.greatest("l.earned_on", "?")
        params.append(since)
        if rule.kind == "inactivity":
            start = dialect.greatest(
                "l.earned_on", "?", "coalesce(substr((SELECT t.last_purchase_at FROM "
                "customer_tally t WHERE t.customer_id = l.customer_id), 1, 10), '')")
        where.append(f"(l.expires_on IS NULL AND {start} < ?)")
        params.append((cutoff - timedelta(days=28 * rule.months)).isoformat())
    sql = (f"SELECT DISTINCT l.customer_id FROM customer_lots l WHERE l.points > 0 AND "
           f"({' OR '.join(where)}) AND l.customer_id > ? ORDER BY l.customer_id LIMIT {CHUNK}")
    after = ""
    while True:
        with chain.db.read() as conn:
            found = [r[0] for r in conn.execute(sql, [*params, after])]
        yield from found
        if len(found) < CHUNK:
            return
        after = found[-1]
