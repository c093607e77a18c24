"""The loyalty programme an outlet runs: its master data turned into pricing rules.

Promises: `Programme.load` reads the replica's master data once and gives pricing its
pure types, plus limits and gifts; a replica with no master data yet is seeded with the
defaults (agent.defaults) so a fresh install already earns points. Reload after master
data changes (the sync applies them and calls `Outlet.reload_programme`).

An `Outlet` loads its programme, so this module imports no service module (they all take an
`Outlet`): the sample gifts' opening stock goes through agent.giftstock, not agent.gifts.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from agent import defaults, giftstock
from agent.pricing import Action, Category, PromotionCategory, Rules
from agent.replica import master, put_master
from schema.database import Database
from schema.masterdata import (
    DEFAULT_PROGRAMME,
    DOCS,
    PROGRAMME,
    ActionDoc,
    CategoryDoc,
    GiftDoc,
    ProgrammeDoc,
    PromoCategoryDoc,
    key_of,
)


@dataclass(frozen=True)
class Programme:
    rules: Rules
    categories: dict[str, CategoryDoc]
    gifts: dict[str, GiftDoc]
    default_category: str
    settings: ProgrammeDoc = DEFAULT_PROGRAMME  # expiry, pending points, the way back

    @classmethod
    def load(cls, db: Database) -> Programme:
        categories = {k: CategoryDoc(**v) for k, v in master(db, "category").items()}
        promos = [PromoCategoryDoc(**v) for v in master(db, "promo_category").values()]
        actions = [ActionDoc(**v) for v in master(db, "action").values()]
        division_promos = {v["division"]: v["promo"] for v in master(db, "division_promo").values()}
        rules = Rules(
            categories=[Category(c.code, c.name, c.discount_bp, c.points_per_100)
                        for c in categories.values()],
            promotions=[PromotionCategory(p.code, p.name, p.discount_bp, p.points_bonus_bp)
                        for p in promos],
            actions=[Action(a.action_id, a.name, a.valid_from, a.valid_to, a.discount_bp,
                            frozenset(a.skus), frozenset(a.divisions), frozenset(a.categories),
                            frozenset(a.customer_codes), a.stackable) for a in actions],
            division_promos=division_promos,
        )
        gifts = {k: GiftDoc(**v) for k, v in master(db, "gift").items()}
        # The lowest-ranked category (last code) is where new customers start.
        default = max(categories) if categories else "D"
        settings = master(db, PROGRAMME).get(PROGRAMME)
        return cls(rules, categories, gifts, default,
                   DEFAULT_PROGRAMME if settings is None else ProgrammeDoc(**settings))


def default_documents() -> list[tuple[str, dict[str, Any]]]:
    """The default programme as master data documents (kind, document): what a new chain's
    HQ and a standalone outlet start with."""
    data = defaults.default_rules()
    limits = {lim.category: lim for lim in data.limits}
    docs: list[tuple[str, dict[str, Any]]] = []
    for c in data.rules.categories:
        lim = limits[c.code]
        docs.append(("category", CategoryDoc(
            code=c.code, name=c.name, discount_bp=c.discount_bp, points_per_100=c.points_per_100,
            credit_limit=lim.credit_limit, floor_points=lim.floor_points,
            floor_credit=lim.floor_credit, floor_returns=lim.floor_returns,
        ).model_dump(mode="json")))
    for p in data.rules.promotions:
        docs.append(("promo_category", PromoCategoryDoc(
            code=p.code, name=p.name, discount_bp=p.discount_bp,
            points_bonus_bp=p.points_bonus_bp).model_dump(mode="json")))
    for a in data.rules.actions:
        docs.append(("action", ActionDoc(
            action_id=a.action_id, name=a.name, valid_from=a.valid_from, valid_to=a.valid_to,
            discount_bp=a.discount_bp, skus=sorted(a.skus), divisions=sorted(a.divisions),
            categories=sorted(a.categories), customer_codes=sorted(a.customer_codes),
            stackable=a.stackable).model_dump(mode="json")))
    for g in data.gifts:
        docs.append(("gift", GiftDoc(sku=g.sku, name=g.name,
                                     points_cost=g.points_cost).model_dump(mode="json")))
    return docs


def seed_defaults(conn: sqlite3.Connection, outlet_id: str) -> bool:
    """Writes the default programme into an empty replica, with the sample gifts' opening
    stock received as facts; False if it had master data already."""
    if conn.execute("SELECT 1 FROM master LIMIT 1").fetchone() is not None:
        return False
    for kind, doc in default_documents():
        put_master(conn, kind, key_of(kind, DOCS[kind].model_validate(doc)), doc)
    for g in defaults.default_rules().gifts:
        giftstock.receive(conn, outlet_id, g.sku, g.initial_stock, "receipt", "opening stock")
    return True
