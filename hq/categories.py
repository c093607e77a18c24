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
from hq.ingest import making_hq_facts, record_hq_fact
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


def moves(chain: Chain, today: date, ordered: list[CategoryRuleDoc] | None = None
          ) -> list[tuple[str, str | None, str]]:
    """(customer id, category now, category the rules give) for each customer `assign`
    would move on `today` under `ordered` (the stored rules when None), without moving
    anyone: the dry run the back office previews a rule change with."""
    business_day(today, "today")
    ordered = rules(chain) if ordered is None else ordered
    if not ordered:
        return []
    window = max(r.window_days for r in ordered)
    since = (today - timedelta(days=window)).isoformat()
    until = (today + timedelta(days=1)).isoformat()
    rows = chain.db.all(
        "SELECT c.customer_id, c.category, COALESCE(SUM(s.total_net), 0) AS turnover "
        "FROM customers c LEFT JOIN sales s ON s.customer_id = c.customer_id "
        "AND s.at >= ? AND s.at < ? WHERE c.status != 'banned' GROUP BY c.customer_id",
        (since, until))
    out = []
    for row in rows:
        wanted = target(row["turnover"], ordered)
        if wanted is not None and wanted != row["category"]:
            out.append((row["customer_id"], row["category"], wanted))
    return out


def with_rule(chain: Chain, rule: CategoryRuleDoc) -> list[CategoryRuleDoc]:
    """The stored rules with `rule` put in place of its category's (as saving it would)."""
    kept = [r for r in rules(chain) if r.category != rule.category]
    return sorted([*kept, rule], key=lambda r: (-r.min_turnover, r.category))


def assign(chain: Chain, today: date) -> dict[str, int]:
    business_day(today, "today")
    ordered = rules(chain)
    if not ordered:
        return {"changed": 0, "checked": 0}
    checked = int(chain.db.scalar("SELECT COUNT(*) FROM customers WHERE status != 'banned'"))
    changed = 0
    with making_hq_facts(chain) as conn:
        # moves() read before this transaction: re-check each under it (a ban may have
        # come; one made by another HQ process at once committed before this reads)
        for customer_id, _, wanted in moves(chain, today, ordered):
            row = conn.execute("SELECT status FROM customers WHERE customer_id = ?",
                               (customer_id,)).fetchone()
            if row is None or row["status"] == "banned":
                continue
            record_hq_fact(chain, conn, CustomerUpdated(
                customer_id=customer_id, changes=Profile.model_validate({"category": wanted})))
            changed += 1
    chain.waiters.notify()
    return {"changed": changed, "checked": checked}
