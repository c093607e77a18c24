"""What this outlet sold, as the store manager's pages show it: a customer's receipts here,
and a day's sales with their lines, actions, totals and amounts per payment mode.

Read-only over the local replica (`sales`, `sale_lines`, `payments`): this outlet's own
sales, those HQ has confirmed and those still pending alike. Times are compared as stored
(canonical UTC stamps, schema/timing.py). Must never: write to the replica.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from schema import salestore

if TYPE_CHECKING:
    from agent.outlet import Outlet

RECEIPTS_SHOWN = 50
SALES_SHOWN = 500


def customer_sales(outlet: Outlet, customer_id: str,
                   limit: int = RECEIPTS_SHOWN) -> list[dict[str, Any]]:
    """The customer's latest receipts at this outlet, newest first (no lines)."""
    return [dict(r) for r in outlet.db.all(
        "SELECT sale_id, till_id, at, total_gross, total_discount, total_net, points_earned "
        "FROM sales WHERE customer_id = ? ORDER BY at DESC LIMIT ?", (customer_id, limit))]


@dataclass(frozen=True)
class Day:
    """The sales since `since` (a UTC stamp): the latest `limit` receipts with their lines,
    and totals over all of them."""

    since: str
    sales: list[dict[str, Any]]
    receipts: int = 0
    gross: int = 0
    discount: int = 0
    net: int = 0
    points: int = 0
    paid_by: dict[str, int] = field(default_factory=dict)  # payment mode -> amount
    returned: int = 0  # net value the returns and voids made since `since` gave back
    returns: int = 0  # how many there were

    @property
    def net_of_returns(self) -> int:
        """The turnover less what came back, counted when the return was made (as the
        `turnover` report counts it, docs/reports.md)."""
        return self.net - self.returned


def day_sales(outlet: Outlet, since: str, limit: int = SALES_SHOWN) -> Day:
    """The receipts stamped at or after `since`, newest first, each with its `lines`, the
    names of the `actions` that priced it and the customer's name fields (at most `limit`
    of them; `limit=0`: the totals alone, as the dashboard shows this week's)."""
    with outlet.db.read() as conn:
        sales = [dict(r) for r in conn.execute(
            "SELECT s.sale_id, s.till_id, s.at, s.total_gross, s.total_discount, "
            "s.total_net, s.points_earned, s.customer_id, c.kind, c.given_name, c.surname, "
            "c.name FROM sales s LEFT JOIN customers c USING (customer_id) WHERE s.at >= ? "
            "ORDER BY s.at DESC LIMIT ?", (since, limit))]
        totals = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(total_gross), 0), COALESCE(SUM(total_discount), 0),"
            " COALESCE(SUM(total_net), 0), COALESCE(SUM(points_earned), 0) FROM sales "
            "WHERE at >= ?", (since,)).fetchone()
        paid_by = dict(conn.execute(
            "SELECT p.mode, SUM(p.amount) FROM payments p JOIN sales s USING (sale_id) "
            "WHERE s.at >= ? GROUP BY p.mode ORDER BY p.mode", (since,)).fetchall())
        back = conn.execute("SELECT COALESCE(SUM(value), 0), COUNT(*) FROM returns "
                            "WHERE at >= ?", (since,)).fetchone()
        salestore.attach_lines(conn, sales)
    for s in sales:
        s["actions"] = sorted({a for ln in s["lines"] for a in json.loads(ln["actions"] or "[]")})
    receipts, gross, discount, net, points = (int(v) for v in totals)
    return Day(since, sales, receipts, gross, discount, net, points, paid_by, int(back[0]),
               int(back[1]))
