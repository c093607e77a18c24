#!/usr/bin/env python3
"""The offline risk bound, measured: N outlets offline for M days against adversarial cards.

What it does (issue 11 "Proof", bench/README.md, docs/programme.md "The offline bound"):

1. A chain of REAL processes on loopback (tests/chainkit.py `ChainRig`: `loyalty hq serve`
   and N x `loyalty agent serve --hq`). Head office sets the bench's programme: a card
   category `EXPO` with the floor limits under test (`floor_points`, `floor_credit`,
   `floor_returns`, `credit_limit = 2 x floor_credit`), a gift `GIFT-EXPO`, the programme's
   `return_window_days` W, `outlet_floor_returns` L and `point_value_per_100`.
2. While online, each of C adversarial cards is brought to the worst starting point the
   limits allow: no points (the category earns none until then) and internal credit owed
   of `credit_limit - floor_credit` (a sale on credit), confirmed by HQ at every outlet.
   Then head office sets the category's `points_per_100` (1: a point per 100.00, so the
   small purchases below earn nothing worth spending) and HQ stops: the outage.
3. Offline, for M days in periods of W days (an outlet's notion of the day is moved by
   restarting it with the TEST-ONLY `LOYALTY_TEST_CLOCK_SKEW_S`, schema/events.py; the
   floors on points and credit are per outage, only `floor_returns` counts per window, so
   M only matters through ceil(M / W); period p starts p x W days + 1 hour after the
   first, so the outage lasts (ceil(M / W) - 1) x W days and a bit, within M), every card,
   at every outlet, in every period:
   - spends points it will not keep: buys enough (by bank card) to earn `floor_points`
     at the outlet, redeems gifts until the till refuses, then returns that purchase at
     the same outlet (the default points policy, `negative`, lets the balance go below
     zero); every outlet sees only its own earning, so each lets `floor_points` go;
   - runs up internal credit: buys on credit in quarter-floor steps until refused;
   - returns the same receipts: buys 5 units at 1/4 of `floor_returns` each at outlets 1
     and 2 (paid in cash), returns each sale whole at its own outlet (from the printed
     reference: checked exactly, legitimate), then at every outlet returns units of a
     sale made elsewhere (outlet 1: outlet 2's; the others: outlet 1's) from its receipt
     code, one at a time, until refused (`offline_limit_exceeded`: the card's
     `floor_returns` or the outlet's L). Every one of those refunds is a second one.
4. HQ starts again (its clock moved to the outlets' last day, so no stamp is "from the
   future"); every outlet pushes and pulls; testkit's `check_files` checks the ledger
   (every fact once, HQ = the fold of its events, outlets = HQ).

Loss, per card, read from HQ's ledger after the sync (the facts since the outage began):
- points: `max(0, spent - (B0 + kept))` where `spent` is the points the card's gift
  redemptions took offline, `B0` its balance at HQ when the outage began and `kept` what
  its offline sales earned less what returns took back of them (per sale, at most what it
  earned): points spent beyond what the card held. Points a *duplicate* return takes back
  lower the customer's balance, not the chain's: they count for nothing here.
  Valued at `point_value_per_100` minor units per 100 points.
- credit: `max(0, owed - credit_limit)`, what the card owes at HQ beyond its limit (the
  return sales are paid in cash, so no refund goes to credit; a refund to credit beyond
  what a sale charged would be counted once, under refunds).
- refunds: per sale, `max(0, refunded - paid)`: money given back by every return of it at
  every outlet beyond what was paid for it.
The card's loss is the sum in minor units; the chain's the sum over cards.

The bound (docs/programme.md), per card, with N outlets that cannot see each other, D days
and a window of W days: points `N x floor_points` (each outlet lets the card spend at most
`floor_points` not yet confirmed by HQ, whatever the balance it shows: that balance may be
points earned there and taken back by a return), credit `(N - 1) x floor_credit` (each
outlet lets the card charge at most `floor_credit` unconfirmed and at most up to its
credit limit: one outlet's charge is within the limit, every other's is not), refunds
`N x floor_returns x ceil(D / W)` (`schema.receiptcode.worst_loss`). Per chain:
C x (points + credit) + `N x min(C x floor_returns, L) x ceil(D / W)`.

Last line: `exposure: worst_loss_ratio=...` where `worst_loss_ratio` is the worst card's
loss / its bound (must be <= 1), each part's ratio beside it (the adversary must reach
each: >= 0.95 shows the limit is tight), the chain's ratio, the figures in minor units.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from chainkit import ChainRig, OutletProcess, until
from testkit import check_files, line, read_only

from schema import tallystore
from schema.events import Event, GiftRedeemed, ReturnRecorded, SaleRecorded
from schema.receiptcode import worst_loss

CATEGORY = "EXPO"
GIFT = "GIFT-EXPO"
SKEW = "LOYALTY_TEST_CLOCK_SKEW_S"  # TEST ONLY (schema/events.py): an outlet's clock moved
DAY_S = 86_400
HOUR_S = 3_600
UNITS = 5  # units of a return sale, each 1/4 of floor_returns: more than a floor's worth


@dataclass(frozen=True)
class Settings:
    """What the simulation runs with (the floors are minor units, `floor_points` points)."""

    outlets: int = 5
    days: int = 45
    cards: int = 3
    window_days: int = 30
    floor_points: int = 1_000
    floor_credit: int = 20_000
    floor_returns: int = 20_000
    outlet_floor_returns: int = 50_000
    point_value_per_100: int = 100
    points_per_100: int = 1  # offline: a point per 100.00
    gift_cost: int = 250

    @property
    def periods(self) -> int:
        return max(1, math.ceil(self.days / self.window_days))

    @property
    def credit_limit(self) -> int:
        return 2 * self.floor_credit

    @property
    def unit(self) -> int:
        """The price of one unit of the return sales: four make `floor_returns`."""
        return self.floor_returns // 4

    def points_value(self, points: int) -> int:
        return points * self.point_value_per_100 // 100


@dataclass(frozen=True)
class Bound:
    points: int  # points
    credit: int
    refunds: int
    money: int  # the three in minor units


def bounds(s: Settings) -> tuple[Bound, Bound]:
    """(per card, per chain) from the settings: the formulas of the module docstring."""
    refunds = worst_loss(s.outlets, s.floor_returns, s.days, window_days=s.window_days,
                         cards=s.cards, outlet_floor=s.outlet_floor_returns)
    points = s.outlets * s.floor_points
    credit = (s.outlets - 1) * s.floor_credit
    card = Bound(points, credit, refunds.per_card,
                 s.points_value(points) + credit + refunds.per_card)
    chain = Bound(s.cards * points, s.cards * credit, refunds.per_chain,
                  s.cards * (s.points_value(points) + credit) + refunds.per_chain)
    return card, chain


@dataclass
class Card:
    number: str
    customer_id: str
    balance_before: int = 0
    owed_before: int = 0
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    asked: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class Loss:
    points: int
    credit: int
    refunds: int
    money: int


# --- set-up, online -------------------------------------------------------------------------


def category_doc(s: Settings, points_per_100: int) -> dict[str, Any]:
    return {"code": CATEGORY, "name": "Exposure bench", "discount_bp": 0,
            "points_per_100": points_per_100, "credit_limit": s.credit_limit,
            "floor_points": s.floor_points, "floor_credit": s.floor_credit,
            "floor_returns": s.floor_returns}


def master_at(agent: OutletProcess, kind: str, key: str) -> dict[str, Any] | None:
    with read_only(agent.db) as conn:
        row = conn.execute("SELECT data FROM master WHERE kind = ? AND key = ?",
                           (kind, key)).fetchone()
    return None if row is None else dict(json.loads(row[0]))


def synced(rig: ChainRig, timeout: float = 60.0) -> None:
    """Every outlet has pushed everything and pulled HQ's last change."""
    rig.settled(timeout)
    with read_only(rig.hq.db) as hq:
        head = hq.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
    for agent in rig.outlets.values():
        until(lambda a=agent: a.status()["cursor"] >= head, timeout, every=0.05,
              what=f"{agent.outlet} pulled HQ's head")


def publish(rig: ChainRig, kind: str, doc: dict[str, Any], key: str) -> None:
    """Head office puts a master document; returns once every outlet holds it as sent."""
    rig.hq.admin("PUT", f"/v1/admin/master/{kind}", json=doc)
    for agent in rig.outlets.values():
        until(lambda a=agent: _holds(master_at(a, kind, key), doc), 30, every=0.05,
              what=f"{kind} {key} at {agent.outlet}")


def _holds(held: dict[str, Any] | None, doc: dict[str, Any]) -> bool:
    if held is None:
        return False
    flat = {k: v for k, v in doc.items() if not isinstance(v, dict)}
    nested = all(held.get(k, {}).get(kk) == vv for k, v in doc.items() if isinstance(v, dict)
                 for kk, vv in v.items())
    return nested and all(held.get(k) == v for k, v in flat.items())


def set_up(rig: ChainRig, s: Settings) -> list[Card]:
    """The programme, the gift, the cards at their worst starting point, confirmed."""
    publish(rig, "category", category_doc(s, 0), CATEGORY)
    publish(rig, "gift", {"sku": GIFT, "name": "Exposure gift", "points_cost": s.gift_cost},
            GIFT)
    publish(rig, "programme", {"returns": {
        "return_window_days": s.window_days, "outlet_floor_returns": s.outlet_floor_returns,
        "point_value_per_100": s.point_value_per_100}}, "programme")
    agents = list(rig.outlets.values())
    stock = s.cards * s.periods * (s.floor_points // s.gift_cost + 2)
    for agent in agents:
        agent.stock(GIFT, stock)
    first = agents[0]
    cards = []
    for k in range(s.cards):
        who = first.till.register(CATEGORY, surname=f"Adversary {k + 1}")
        cards.append(Card(who["card_number"], who["customer_id"]))
    for card in cards:
        for agent in agents:
            until(lambda a=agent, c=card: a.balance(c.customer_id) is not None, 30, every=0.05,
                  what=f"{card.customer_id} known at {agent.outlet}")
        first.till.sold(card.number, [line("OWE", s.credit_limit - s.floor_credit)],
                        mode="credit")
    synced(rig)
    publish(rig, "category", category_doc(s, s.points_per_100), CATEGORY)
    synced(rig)
    with read_only(rig.hq.db) as hq:
        for card in cards:
            tally = tallystore.load(hq, card.customer_id)
            card.balance_before, card.owed_before = tally.points_balance, tally.credit_outstanding
    return cards


# --- the adversary, offline -----------------------------------------------------------------


def _outcome(card: Card, what: str, answer: Any) -> bool:
    """True when the till took it; a refusal is counted by its code."""
    card.asked[what] += 1
    if answer.status_code == 201:
        return True
    code = answer.json().get("error", {}).get("code", str(answer.status_code))
    card.refused[f"{what}:{code}"] += 1
    return False


def spend_points(agent: OutletProcess, card: Card, s: Settings) -> None:
    """Earn `floor_points` here, spend until refused, give the purchase back here."""
    price = s.floor_points * 10_000 // s.points_per_100  # minor units earning floor_points
    bought = agent.till.sold(card.number, [line("PTS", price)], mode="card")
    for _ in range(s.floor_points // s.gift_cost + 2):
        answer = agent.till.post("/v1/redemptions", {"card": card.number, "gift_sku": GIFT,
                                                     "till_id": agent.till.till_id})
        if not _outcome(card, "points", answer):
            break
    back = give_back(agent, {"receipt": bought["receipt_reference"],
                             "lines": [{"sku": "PTS", "qty": 1}]})
    if back.status_code != 201:
        raise RuntimeError(f"a return at the sale's own outlet: {back.text}")


def run_up_credit(agent: OutletProcess, card: Card, s: Settings) -> None:
    step = max(1, s.floor_credit // 4)
    for _ in range(6):
        answer = agent.till.sell(card.number, [line("CRD", step)],
                                 payments=[{"mode": "credit", "amount": step}])
        if not _outcome(card, "credit", answer):
            return


def give_back(agent: OutletProcess, body: dict[str, Any]) -> Any:
    return agent.till.post("/v1/returns", {"till_id": agent.till.till_id,
                                           "reason": "exposure bench", **body})


def return_everywhere(agents: list[OutletProcess], card: Card, s: Settings) -> None:
    """Two cash sales (at the first two outlets), each returned whole at home, then at every
    other outlet unit by unit from its receipt code until the till refuses."""
    sales = [agents[k].till.sold(card.number, [line("RET", s.unit, qty=UNITS)], mode="cash")
             for k in (0, 1)]
    for home, sale in zip(agents, sales, strict=False):
        whole = give_back(home, {"receipt": sale["receipt_reference"],
                                 "lines": [{"sku": "RET", "qty": UNITS}]})
        if whole.status_code != 201:
            raise RuntimeError(f"a return at the sale's own outlet: {whole.text}")
    for k, agent in enumerate(agents):
        other = sales[1] if k == 0 else sales[0]
        for _ in range(UNITS):
            answer = give_back(agent, {"receipt": other["receipt_code"], "card": card.number,
                                       "lines": [{"sku": "RET", "qty": 1}]})
            if not _outcome(card, "return", answer):
                break


def move_clock(agents: list[OutletProcess], skew_s: int) -> None:
    """The outlets' next period: each restarted with its clock `skew_s` ahead (TEST ONLY)."""
    for agent in agents:
        agent.kill()
        agent.env[SKEW] = str(skew_s)
        agent.spawn()
    for agent in agents:
        agent.wait_ready()


def offline(rig: ChainRig, cards: list[Card], s: Settings, say: Any) -> None:
    agents = list(rig.outlets.values())
    rig.hq.stop()
    for period in range(s.periods):
        if period:
            move_clock(agents, period * s.window_days * DAY_S + HOUR_S)
        say(f"period {period + 1}/{s.periods}: {len(cards)} cards x {len(agents)} outlets")
        for card in cards:
            for agent in agents:
                spend_points(agent, card, s)
                run_up_credit(agent, card, s)
            return_everywhere(agents, card, s)


def reconnect(rig: ChainRig, s: Settings) -> None:
    """HQ back, its clock on the outlets' last day; every outlet pushes and pulls."""
    rig.hq.env[SKEW] = str((s.periods - 1) * s.window_days * DAY_S + HOUR_S)
    rig.hq.start()
    synced(rig, timeout=120.0)


# --- the loss, from HQ's ledger ---------------------------------------------------------------


def losses(hq_db: Path, cards: list[Card], s: Settings, since: int) -> dict[str, Loss]:
    """Per customer id: the loss defined in the module docstring."""
    spent: dict[str, int] = defaultdict(int)
    earned: dict[str, int] = {}
    paid: dict[str, int] = {}
    owner: dict[str, str] = {}
    refunded: dict[str, int] = defaultdict(int)
    reversed_points: dict[str, int] = defaultdict(int)
    with read_only(hq_db) as hq:
        rows = hq.execute("SELECT event FROM events WHERE hq_seq > ? ORDER BY hq_seq",
                          (since,)).fetchall()
        owed = {c.customer_id: tallystore.load(hq, c.customer_id).credit_outstanding
                for c in cards}
    for row in rows:
        body = Event.model_validate_json(row[0]).parsed()
        if isinstance(body, GiftRedeemed):
            spent[body.customer_id] += body.points_spent
        elif isinstance(body, SaleRecorded):
            earned[body.sale_id] = body.points_earned
            paid[body.sale_id] = sum(p.amount for p in body.payments)
            owner[body.sale_id] = body.customer_id
        elif isinstance(body, ReturnRecorded):
            refunded[body.sale_id] += sum(r.amount for r in body.refunds)
            reversed_points[body.sale_id] += body.points_reversed
    out = {}
    for card in cards:
        cid = card.customer_id
        mine = [sid for sid, who in owner.items() if who == cid]
        kept = sum(earned[sid] - min(earned[sid], reversed_points[sid]) for sid in mine)
        points = max(0, spent[cid] - (card.balance_before + kept))
        credit = max(0, owed[cid] - s.credit_limit)
        refunds = sum(max(0, refunded[sid] - paid[sid]) for sid in mine)
        out[cid] = Loss(points, credit, refunds, s.points_value(points) + credit + refunds)
    return out


def flags_on_returns(hq_db: Path) -> int:
    with read_only(hq_db) as hq:
        return int(hq.execute("SELECT COUNT(*) FROM flags f JOIN events e ON e.event_id ="
                              " f.event_id WHERE e.type = 'return.recorded'").fetchone()[0])


# --- one run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    settings: Settings
    card_bound: Bound
    chain_bound: Bound
    cards: list[Card]
    loss: dict[str, Loss]
    flags: int
    ledger: dict[str, Any]

    def ratio(self, part: str) -> float:
        """The worst card's loss / bound for `part` (points, credit, refunds, money)."""
        bound = getattr(self.card_bound, part)
        return max(getattr(loss, part) for loss in self.loss.values()) / bound

    def chain(self, part: str) -> int:
        return sum(getattr(loss, part) for loss in self.loss.values())

    @property
    def worst_loss_ratio(self) -> float:
        return max(loss.money for loss in self.loss.values()) / self.card_bound.money

    @property
    def chain_loss_ratio(self) -> float:
        return self.chain("money") / self.chain_bound.money


def simulate(rig: ChainRig, s: Settings, say: Any = lambda msg: None) -> Result:
    """The whole simulation on `rig` (a ChainRig not started yet); see the module docstring."""
    if s.outlets < 2:
        raise ValueError("the bound is about outlets that cannot see each other: 2 or more")
    rig.start(tuple(f"O{k + 1}" for k in range(s.outlets)))
    say(f"chain up: HQ and {s.outlets} outlets")
    cards = set_up(rig, s)
    with read_only(rig.hq.db) as hq:
        since = int(hq.execute("SELECT COALESCE(MAX(hq_seq), 0) FROM events").fetchone()[0])
    say("set-up confirmed everywhere; HQ goes down")
    offline(rig, cards, s, say)
    say("HQ back; syncing")
    reconnect(rig, s)
    ledger = check_files(rig.hq.db, {o: a.db for o, a in rig.outlets.items()})
    card_bound, chain_bound = bounds(s)
    return Result(s, card_bound, chain_bound, cards, losses(rig.hq.db, cards, s, since),
                  flags_on_returns(rig.hq.db), ledger)


def report(result: Result, wall_s: float, load: tuple[float, float]) -> list[str]:
    s, cb, ch = result.settings, result.card_bound, result.chain_bound
    out = [(f"chain: {s.outlets} outlets offline {s.days} days ({s.periods} window(s) of"
            f" {s.window_days} days), {s.cards} adversarial card(s); load average"
            f" {load[0]:.2f} before, {load[1]:.2f} after"),
           (f"limits: floor_points={s.floor_points} floor_credit={s.floor_credit}"
            f" floor_returns={s.floor_returns} outlet_floor_returns={s.outlet_floor_returns}"
            f" credit_limit={s.credit_limit} point_value_per_100={s.point_value_per_100}"),
           f"{'card':<6} {'points':>13} {'credit':>17} {'refunds':>17} {'total':>17} refused"]
    for k, card in enumerate(result.cards, 1):
        loss = result.loss[card.customer_id]
        refused = " ".join(f"{key}={n}" for key, n in sorted(card.refused.items()))
        out.append(f"{k:<6} {loss.points:>6}/{cb.points:<6} {loss.credit:>8}/{cb.credit:<8}"
                   f" {loss.refunds:>8}/{cb.refunds:<8} {loss.money:>8}/{cb.money:<8} {refused}")
    out.append(f"{'chain':<6} {result.chain('points'):>6}/{ch.points:<6}"
               f" {result.chain('credit'):>8}/{ch.credit:<8} {result.chain('refunds'):>8}/"
               f"{ch.refunds:<8} {result.chain('money'):>8}/{ch.money:<8}")
    out.append(f"HQ flagged {result.flags} returns; ledger: {result.ledger['hq_events']} events,"
               " each once, HQ = the fold of its events, every outlet = HQ")
    parts = {p: result.ratio(p) for p in ("points", "credit", "refunds")}
    held = max([*parts.values(), result.worst_loss_ratio, result.chain_loss_ratio]) <= 1
    tight = min([*parts.values(), result.worst_loss_ratio, result.chain_loss_ratio]) >= 0.95
    out.append(f"goals: loss <= bound: {'met' if held else 'MISSED'}; the adversary reaches"
               f" every bound (ratio >= 0.95): {'met' if tight else 'MISSED'}")
    out.append(f"exposure: worst_loss_ratio={result.worst_loss_ratio:.3f}"
               f" points_ratio={parts['points']:.3f} credit_ratio={parts['credit']:.3f}"
               f" refunds_ratio={parts['refunds']:.3f}"
               f" chain_loss_ratio={result.chain_loss_ratio:.3f}"
               f" worst_card_loss={max(v.money for v in result.loss.values())}"
               f" card_bound={cb.money} chain_loss={result.chain('money')}"
               f" chain_bound={ch.money} flags={result.flags} outlets={s.outlets}"
               f" days={s.days} cards={s.cards} wall_s={wall_s:.1f}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 outlets, 45 days, 2 cards")
    ap.add_argument("--outlets", type=int, help="outlets offline together [5]")
    ap.add_argument("--days", type=int, help="days offline [45; quick 45]")
    ap.add_argument("--cards", type=int, help="adversarial cards [3; quick 2]")
    ap.add_argument("--window", type=int, default=30, help="return_window_days [30]")
    ap.add_argument("--outlet-floor", type=int,
                    help="outlet_floor_returns, minor units [50000; quick 30000]")
    ap.add_argument("--dir", help="where the chain's files go (kept) [a temp dir]")
    args = ap.parse_args()
    quick = args.quick
    s = Settings(outlets=args.outlets or (3 if quick else 5), days=args.days or 45,
                 cards=args.cards or (2 if quick else 3), window_days=args.window,
                 outlet_floor_returns=args.outlet_floor or (30_000 if quick else 50_000))

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    tmp = None
    if args.dir:  # a fresh folder in it per run: the chain's files are new every time
        where = Path(args.dir) / time.strftime("exposure-%Y%m%dT%H%M%S")
        where.mkdir(parents=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-exposure-")
        where = Path(tmp.name)
    started = time.perf_counter()
    rig = ChainRig(where)
    try:
        result = simulate(rig, s, say)
    finally:
        rig.close()
        if tmp is not None:
            tmp.cleanup()
    wall_s = time.perf_counter() - started
    for text in report(result, wall_s, (load_before, os.getloadavg()[0])):
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
