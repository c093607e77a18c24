"""How facts fold into a customer's balances and statistics (pure, no I/O).

A `Tally` is everything the product derives per customer from events: points earned and
used, purchases, discounts, credit, the most expensive purchase, per-item counts, gifts.
Tallies form a commutative monoid: `combine` is associative and commutative and `Tally()`
is its identity. That is what makes invariant 4 a sum: the outlet's view of a customer is
`confirmed ⊕ tally(pending local events)`, and HQ's authoritative state is the fold of
every event in whatever order they arrive. What one fact adds is declared with its type in
schema/events.py (`EventType.tally`, `tally_of`, `fold`), which imports this module; this
module imports no event. Must never: depend on event order, or produce a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from schema.errors import Overpayment
from schema.money import money

TOP_N = 10


@dataclass(frozen=True)
class ItemTally:
    name: str
    qty: int
    max_unit_price: int

    def combine(self, other: ItemTally) -> ItemTally:
        # max() on (price, name) keeps the name choice independent of order.
        price, name = max((self.max_unit_price, self.name), (other.max_unit_price, other.name))
        return ItemTally(name=name, qty=self.qty + other.qty, max_unit_price=price)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any], add: Any) -> dict[str, Any]:
    merged = dict(a)
    for key, value in b.items():
        merged[key] = add(merged[key], value) if key in merged else value
    return merged


@dataclass(frozen=True)
class Tally:
    SPARSE: ClassVar[tuple[str, ...]] = ("points_expired",)
    """Figures the wire form carries only when they are not 0: added after outlets were in
    the field, which read a tally with a figure they do not know as an error."""

    purchases_total: int = 0
    purchases_count: int = 0
    items_count: int = 0
    points_earned: int = 0
    points_used: int = 0
    points_expired: int = 0
    discount_total: int = 0
    paid_cash: int = 0
    paid_card: int = 0
    paid_credit: int = 0
    credit_repaid: int = 0
    gifts_count: int = 0
    last_purchase_at: str = ""
    best_purchase_total: int = 0
    best_purchase_id: str = ""
    items: Mapping[str, ItemTally] = field(default_factory=dict)
    gifts: Mapping[str, int] = field(default_factory=dict)

    def combine(self, other: Tally) -> Tally:
        best = max(
            (self.best_purchase_total, self.best_purchase_id),
            (other.best_purchase_total, other.best_purchase_id),
        )
        return Tally(
            purchases_total=self.purchases_total + other.purchases_total,
            purchases_count=self.purchases_count + other.purchases_count,
            items_count=self.items_count + other.items_count,
            points_earned=self.points_earned + other.points_earned,
            points_used=self.points_used + other.points_used,
            points_expired=self.points_expired + other.points_expired,
            discount_total=self.discount_total + other.discount_total,
            paid_cash=self.paid_cash + other.paid_cash,
            paid_card=self.paid_card + other.paid_card,
            paid_credit=self.paid_credit + other.paid_credit,
            credit_repaid=self.credit_repaid + other.credit_repaid,
            gifts_count=self.gifts_count + other.gifts_count,
            last_purchase_at=max(self.last_purchase_at, other.last_purchase_at),
            best_purchase_total=best[0],
            best_purchase_id=best[1],
            items=_merge(self.items, other.items, ItemTally.combine),
            gifts=_merge(self.gifts, other.gifts, int.__add__),
        )

    # --- derived figures ------------------------------------------------------------
    @property
    def points_balance(self) -> int:
        return self.points_earned - self.points_used - self.points_expired

    @property
    def credit_outstanding(self) -> int:
        return self.paid_credit - self.credit_repaid

    @property
    def average_item_value(self) -> int:
        """Net spend per item bought, rounded half up to a minor unit."""
        if self.items_count == 0:
            return 0
        return (2 * self.purchases_total + self.items_count) // (2 * self.items_count)

    def held_items(self) -> list[tuple[str, ItemTally]]:
        """The items the customer still holds some of: returns leave an item at a count of
        0 (or below, until HQ has the sale a return names), which the lists leave out."""
        return [(sku, item) for sku, item in self.items.items() if item.qty > 0]

    def top_expensive(self, n: int = TOP_N) -> list[tuple[str, ItemTally]]:
        return sorted(self.held_items(), key=lambda kv: (-kv[1].max_unit_price, kv[0]))[:n]

    def top_purchased(self, n: int = TOP_N) -> list[tuple[str, ItemTally]]:
        return sorted(self.held_items(), key=lambda kv: (-kv[1].qty, kv[0]))[:n]

    def statistics(self) -> dict[str, Any]:
        """The figures a customer's card shows (GET /v1/customers/{id})."""
        return {
            "total_purchases": self.purchases_total,
            "purchases_count": self.purchases_count,
            "total_points_earned": self.points_earned,
            "points_balance": self.points_balance,
            "total_points_used": self.points_used,
            "total_points_expired": self.points_expired,
            "total_discount": self.discount_total,
            "paid_by_mode": {
                "cash": self.paid_cash,
                "card": self.paid_card,
                "credit": self.paid_credit,
            },
            "credit_outstanding": {"credit": self.credit_outstanding},
            "last_purchase_at": self.last_purchase_at or None,
            "items_bought": self.items_count,
            "average_item_value": self.average_item_value,
            "most_expensive_purchase": (
                {"sale_id": self.best_purchase_id, "total": self.best_purchase_total}
                if self.best_purchase_id
                else None
            ),
            "top_expensive_items": [
                {"sku": sku, "name": t.name, "unit_price": t.max_unit_price}
                for sku, t in self.top_expensive()
            ],
            "top_purchased_items": [
                {"sku": sku, "name": t.name, "qty": t.qty} for sku, t in self.top_purchased()
            ],
            "gifts_collected": self.gifts_count,
            "gifts": {sku: qty for sku, qty in sorted(self.gifts.items()) if qty > 0},
        }

    # --- wire form ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        scalars = {k: v for k, v in self.__dict__.items() if k not in ("items", "gifts")
                   and not (k in self.SPARSE and v == 0)}
        return {
            **scalars,
            "items": {
                sku: [t.name, t.qty, t.max_unit_price] for sku, t in sorted(self.items.items())
            },
            "gifts": dict(sorted(self.gifts.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tally:
        items = {sku: ItemTally(str(v[0]), int(v[1]), int(v[2])) for sku, v in data.get("items", {}).items()}
        scalars = {k: v for k, v in data.items() if k not in ("items", "gifts")}
        return cls(**scalars, items=items, gifts=dict(data.get("gifts", {})))


# --- internal credit (docs/backoffice.md, "Payments") -------------------------------------
def credit_available(limit: int, outstanding: int) -> int:
    """What a customer may still charge to internal credit under `limit`. Credit paid
    beyond what was owed (`outstanding` below zero: money the chain owes back) never adds
    to it: it is refunded or settled by staff, never spent beyond the limit."""
    return max(0, limit - max(outstanding, 0))


def refuse_overpayment(number: str, owed: int, amount: int) -> None:
    """A payment above what is still owed on invoice `number` is refused whole, at HQ (a
    bank payment) and at a till alike; a part payment is fine."""
    if amount > owed:
        left = f"{money(owed)} is left to pay" if owed > 0 else "nothing is left to pay"
        raise Overpayment(f"invoice {number}: {left}; a payment of {money(amount)} is more "
                          "than that: take at most what is owed (a part payment is fine)",
                          owed=max(owed, 0), amount=amount)
