"""Category assignment: the issuer's rules over purchase figures, applied on a schedule.

Rules are master data (`category_rule`: category, minimum net turnover, window in days);
`assign(today)` puts each customer with purchases in the highest category whose threshold
their turnover reaches, and leaves customers no rule covers alone. Each change is HQ's own
fact (`customer.updated` with the new category, outlet "HQ") so it is in the chain-wide
ledger and reaches every outlet like any profile change. Promises: running it twice on
the same day changes nothing the second time. Must never: read the wall clock itself, or
touch a banned customer's category.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from hq.chain import Chain
from hq.ingest import record_hq_fact
from hq.invoices import business_day
from schema.events import CustomerUpdated, Profile
from schema.masterdata import CategoryRuleDoc


def rules(chain: Chain) -> list[CategoryRuleDoc]:
    rows = chain.db.all("SELECT data FROM master WHERE kind = 'category_rule'")
    found = [CategoryRuleDoc.model_validate(json.loads(r["data"])) for r in rows]
    return sorted(found, key=lambda r: (-r.min_turnover, r.category))


def target(turnover: int, ordered: list[CategoryRuleDoc]) -> str | None:
    """The category of the highest threshold `turnover` reaches (pure)."""
    for rule in ordered:
        if turnover >= rule.min_turnover:
            return rule.category
    return None


def assign(chain: Chain, today: date) -> dict[str, int]:
    business_day(today, "today")
    ordered = rules(chain)
    if not ordered:
        return {"changed": 0, "checked": 0}
    window = max(r.window_days for r in ordered)
    since = (today - timedelta(days=window)).isoformat()
    until = (today + timedelta(days=1)).isoformat()
    changed = checked = 0
    with chain.db.write() as conn:
        rows = conn.execute(
            "SELECT c.customer_id, c.category, COALESCE(SUM(s.total_net), 0) AS turnover "
            "FROM customers c LEFT JOIN sales s ON s.customer_id = c.customer_id "
            "AND s.at >= ? AND s.at < ? WHERE c.status != 'banned' GROUP BY c.customer_id",
            (since, until)).fetchall()
        for row in rows:
            checked += 1
            wanted = target(row["turnover"], ordered)
            if wanted is None or wanted == row["category"]:
                continue
            record_hq_fact(chain, conn, CustomerUpdated(
                customer_id=row["customer_id"], changes=Profile.model_validate({"category": wanted})))
            changed += 1
    chain.waiters.notify()
    return {"changed": changed, "checked": checked}
