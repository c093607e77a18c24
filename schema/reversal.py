"""The way back: returns, voids, gift returns, head office's corrections and point expiry as
facts, and the maths that makes them. Pure: no I/O, no clock (docs/design.md invariant 10).

Facts (pydantic bodies, version 1, listed in `BODIES` for the event registry): each names
what it reverses. `ReturnRecorded` names a sale and its lines (a void is a return of every
line left, `kind="void"`); `GiftReturned` names a redemption; `BalanceAdjusted` is head
office's points and/or credit correction, with a reason and optionally the fact it corrects;
`PointsExpired` names the point lots it expires (schema/lots.py). The last two are head
office's own facts, declared in schema/events.py beside their registry entries (the
registry cannot import this module, which imports it) and named here too.

Maths (docs/programme.md has the rules and worked examples):

- `plan_return` / `plan_void` turn a sale *as recorded*, the returns already made against it
  and the lines asked for into the return's body. Value per line is the line's net shared by
  quantity, cumulatively, rounded half up once (`share`): the k-th unit returned refunds
  `share(net, k, qty) - share(net, k - 1, qty)`, so the units returned so far always refund
  `share(net, returned, qty)` however they were split, and the last unit refunds the exact
  remainder. The refund goes over the sale's payments in `REFUND_ORDER` (internal credit,
  then card, then cash), never more per mode than that mode paid minus earlier refunds.
  Points come back on net value, cumulatively, rounded up (never in the customer's favour),
  never more than the sale earned; the return that empties the sale takes back exactly what
  is left. When the customer's balance cannot cover them, `ReturnsSettings.points_policy`
  decides (negative balance, a smaller refund, or a supervisor).
- `plan_gift_return` gives a redemption's points back, cumulatively, rounded down.
- `tally_delta` is what a fact adds to the customer's `Tally` (schema/ledger.py): negative
  figures for every summed statistic. The figures that are maxima (most expensive purchase,
  an item's dearest unit price, last purchase) cannot be undone by a sum: `restate`
  recomputes them from what the customer still holds (`holding`).
- `audit` lists what HQ must flag when returns made at several offline outlets add up to
  more than the sale (HQ never rejects a fact).

Must never: refund more per payment mode than the mode paid, take back more points than the
sale earned, use a float, or read the clock. Bad input raises a `LoyaltyError` with a stable
code (`return_exceeds_sale`, `already_reversed`, `supervisor_required`, `invalid_request`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schema.errors import (
    AlreadyReversed,
    InvalidRequest,
    ReturnExceedsSale,
    SupervisorRequired,
)
from schema.events import (
    BalanceAdjusted,
    Body,
    GiftRedeemed,
    GiftReturned,
    PaymentMode,
    PointsExpired,
    Refund,
    ReturnedLine,
    ReturnRecorded,
    SaleRecorded,
    tally_of,
)
from schema.ledger import ItemTally, Tally
from schema.money import MAX_AMOUNT, money

REFUND_ORDER: tuple[PaymentMode, ...] = ("credit", "card", "cash")
"""Internal credit first (it only lowers what the customer owes: buying on credit and
returning for cash is the classic way to turn credit into money), then the bank card that
paid (the money goes back where it came from, traceably), cash last (it leaves the drawer)."""

WITHHOLD_ORDER: tuple[PaymentMode, ...] = ("cash", "card", "credit")
"""What `reduce_refund` keeps for points already spent comes off the cash refund first."""

PointsPolicy = Literal["negative", "reduce_refund", "supervisor"]


class ReturnsSettings(BaseModel):
    """The programme's settings for the way back (HQ sets them; every outlet applies them).

    `points_policy` when a return's points are more than the balance holds: `negative`
    (the default: the balance goes below zero and future earnings repay it), `reduce_refund`
    (the refund is smaller by the points' value at `point_value_per_100` minor units per 100
    points), `supervisor` (refused with `supervisor_required`). `return_window_days`: how
    long after a sale its points stay pending when `pending_points` is on, and the period
    over which `floor_returns` counts refunds of other outlets' sales.
    `outlet_floor_returns`: what one outlet may refund on other outlets' sales over that
    window, every card together (None: no outlet-wide limit) (schema/receiptcode.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points_policy: PointsPolicy = "negative"
    point_value_per_100: int = Field(0, ge=0, le=MAX_AMOUNT)
    return_window_days: int = Field(30, ge=1, le=3660)
    pending_points: bool = False
    outlet_floor_returns: int | None = Field(500_000, ge=0, le=MAX_AMOUNT)

    @model_validator(mode="after")
    def _value_for_reduce(self) -> ReturnsSettings:
        if self.points_policy == "reduce_refund" and self.point_value_per_100 <= 0:
            raise ValueError("reduce_refund needs point_value_per_100: what 100 points are "
                             "worth in minor units")
        return self


# --- the facts ------------------------------------------------------------------------


BODIES: dict[tuple[str, int], type[Body]] = {
    ("return.recorded", 1): ReturnRecorded,
    ("gift.returned", 1): GiftReturned,
    ("balance.adjusted", 1): BalanceAdjusted,
    ("points.expired", 1): PointsExpired,
}


# --- returns and voids ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Asked:
    """A line asked back: `qty` of `sku`; `line` (an index into the sale's lines) picks one
    line when the sku is on several, else they are taken in the sale's line order."""

    sku: str
    qty: int
    line: int | None = None


def share(amount: int, part: int, whole: int) -> int:
    """`amount * part / whole` rounded half up: the value of `part` units out of `whole`
    (amount >= 0, 0 <= part <= whole, whole >= 1). THE rounding rule of the way back."""
    return (2 * amount * part + whole) // (2 * whole)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_sale(sale: SaleRecorded) -> None:
    for i, ln in enumerate(sale.lines):
        if (ln.qty < 1 or ln.unit_price < 0 or ln.gross != ln.qty * ln.unit_price
                or not 0 <= ln.discount <= ln.gross or ln.net != ln.gross - ln.discount):
            raise InvalidRequest(f"sale {sale.sale_id}: line {i} (sku {ln.sku!r}) does not add "
                                 "up (gross = qty x unit price, net = gross - discount)",
                                 sale_id=sale.sale_id, line=i)
    paid = sum(p.amount for p in sale.payments)
    if (sum(ln.net for ln in sale.lines) != sale.total_net or paid != sale.total_net
            or any(p.amount < 0 for p in sale.payments) or sale.points_earned < 0):
        raise InvalidRequest(f"sale {sale.sale_id}: its totals, payments and points do not add "
                             "up", sale_id=sale.sale_id)


def returned_qty(sale: SaleRecorded, earlier: Sequence[ReturnRecorded]) -> list[int]:
    """Per line of `sale`, the quantity the returns in `earlier` gave back."""
    done = [0] * len(sale.lines)
    for r in earlier:
        if r.sale_id != sale.sale_id:
            raise InvalidRequest(f"return {r.return_id} is of sale {r.sale_id}, not "
                                 f"{sale.sale_id}", return_id=r.return_id)
        for x in r.lines:
            if x.line >= len(sale.lines) or sale.lines[x.line].sku != x.sku:
                raise InvalidRequest(f"return {r.return_id} names line {x.line} ({x.sku!r}), "
                                     f"which sale {sale.sale_id} does not have",
                                     return_id=r.return_id)
            done[x.line] += x.qty
    return done


def _allocate(sale: SaleRecorded, done: list[int], asked: Sequence[Asked]) -> dict[int, int]:
    """Line index -> quantity to give back; refuses more than is left."""
    if not asked:
        raise InvalidRequest("lines: name at least one line to return (sku and qty)")
    wanted: dict[tuple[str, int | None], int] = {}
    for a in asked:
        if a.qty < 1:
            raise InvalidRequest(f"sku {a.sku!r}: qty must be a whole number from 1, got {a.qty}",
                                 sku=a.sku)
        if a.line is not None and not (0 <= a.line < len(sale.lines)
                                       and sale.lines[a.line].sku == a.sku):
            raise InvalidRequest(f"line {a.line}: sale {sale.sale_id} has no line {a.line} "
                                 f"with sku {a.sku!r}", sku=a.sku, line=a.line)
        wanted[(a.sku, a.line)] = wanted.get((a.sku, a.line), 0) + a.qty
    taken = [0] * len(sale.lines)
    # Named lines first, so a line-less ask of the same sku takes what they leave.
    for (sku, index), qty in sorted(wanted.items(), key=lambda kv: kv[0][1] is None):
        lines = [index] if index is not None else [
            i for i, ln in enumerate(sale.lines) if ln.sku == sku]
        left = [sale.lines[i].qty - done[i] - taken[i] for i in lines]
        if qty > sum(left):
            sold = sum(sale.lines[i].qty for i in lines)
            returned = sum(done[i] for i in lines)
            raise ReturnExceedsSale(
                f"sku {sku}: {sold} sold, {returned} returned already; {qty} is more than the "
                f"{sold - returned} left to return" if sold else
                f"sku {sku} is not on sale {sale.sale_id}: check the receipt",
                sku=sku, sold=sold, returned=returned, asked=qty)
        for i, room in zip(lines, left, strict=True):
            took = min(room, qty)
            taken[i] += took
            qty -= took
    return {i: q for i, q in enumerate(taken) if q}


def _paid(sale: SaleRecorded) -> dict[PaymentMode, int]:
    paid: dict[PaymentMode, int] = {"cash": 0, "card": 0, "credit": 0}
    for p in sale.payments:
        paid[p.mode] += p.amount
    return paid


def plan_return(sale: SaleRecorded, earlier: Sequence[ReturnRecorded], asked: Sequence[Asked],
                *, return_id: str, balance: int, settings: ReturnsSettings,
                kind: Literal["return", "void"] = "return", till_id: str | None = None,
                reason: str = "", receipt: str | None = None, home: bool = True,
                approved: bool = False, approved_by: str | None = None) -> ReturnRecorded:
    """The return of `asked` against `sale`, after the returns `earlier` (all of them that
    this outlet knows). `balance` is the customer's points balance as the outlet sees it;
    `approved` (or a supervisor named in `approved_by`, recorded in the fact) is a
    supervisor's approval, under which the balance may go below zero whatever the policy. Raises `return_exceeds_sale`, `supervisor_required`,
    `invalid_request`; changes nothing (there is nothing to change: it is pure)."""
    _check_sale(sale)
    done = returned_qty(sale, earlier)
    taking = _allocate(sale, done, asked)
    lines: list[ReturnedLine] = []
    for i, qty in sorted(taking.items()):
        ln = sale.lines[i]
        net = share(ln.net, done[i] + qty, ln.qty) - share(ln.net, done[i], ln.qty)
        gross = ln.unit_price * qty
        lines.append(ReturnedLine(line=i, sku=ln.sku, name=ln.name, qty=qty,
                                  unit_price=ln.unit_price, gross=gross, discount=gross - net,
                                  net=net))
    value = sum(x.net for x in lines)
    closes = all(done[i] + taking.get(i, 0) == ln.qty for i, ln in enumerate(sale.lines))
    allocated = _allocate_refund(sale, earlier, value)
    due = _points_due(sale, earlier, value, closes)
    reversed_, withheld_points, kept = _apply_policy(
        due, balance, value, settings, approved or approved_by is not None, sale.sale_id)
    refunds = _withhold(allocated, kept)
    return ReturnRecorded(
        return_id=return_id, sale_id=sale.sale_id, customer_id=sale.customer_id, kind=kind,
        till_id=till_id, reason=reason, receipt=receipt, home=home, lines=lines,
        refunds=refunds, value=value, points_reversed=reversed_,
        points_withheld=withheld_points, closes_sale=closes, approved_by=approved_by)


def plan_void(sale: SaleRecorded, earlier: Sequence[ReturnRecorded], *, return_id: str,
              balance: int, settings: ReturnsSettings, till_id: str | None = None,
              reason: str = "", receipt: str | None = None, home: bool = True,
              approved: bool = False, approved_by: str | None = None) -> ReturnRecorded:
    """The void of `sale`: a return of every line left, `kind="void"`. A sale voided or fully
    returned already is refused with `already_reversed`."""
    _check_sale(sale)
    done = returned_qty(sale, earlier)
    left = [Asked(ln.sku, ln.qty - done[i], line=i) for i, ln in enumerate(sale.lines)
            if ln.qty > done[i]]
    if not left:
        voided = any(r.kind == "void" for r in earlier)
        raise AlreadyReversed(f"sale {sale.sale_id} is {'voided' if voided else 'fully returned'}"
                              " already: there is nothing left to void", sale_id=sale.sale_id)
    return plan_return(sale, earlier, left, return_id=return_id, balance=balance,
                       settings=settings, kind="void", till_id=till_id, reason=reason,
                       receipt=receipt, home=home, approved=approved, approved_by=approved_by)


def _allocate_refund(sale: SaleRecorded, earlier: Sequence[ReturnRecorded],
                     value: int) -> dict[PaymentMode, int]:
    """`value` over the modes in REFUND_ORDER, each up to what it paid minus earlier shares."""
    room = _paid(sale)
    for r in earlier:
        for x in r.refunds:
            room[x.mode] -= x.amount + x.withheld
    allocated: dict[PaymentMode, int] = {}
    left = value
    for mode in REFUND_ORDER:
        take = min(left, max(room[mode], 0))
        if take:
            allocated[mode] = take
            left -= take
    if left:
        raise InvalidRequest(f"sale {sale.sale_id}: its earlier returns refunded more than its "
                             "payments leave", sale_id=sale.sale_id)
    return allocated


def _points_due(sale: SaleRecorded, earlier: Sequence[ReturnRecorded], value: int,
                closes: bool) -> int:
    """Points this return takes back: the cumulative share of the sale's points on the net
    value returned so far, rounded up, minus what earlier returns settled."""
    settled = sum(r.points_reversed + r.points_withheld for r in earlier)
    value_after = sum(r.value for r in earlier) + value
    if closes:
        cumulative = sale.points_earned
    elif sale.total_net == 0:
        cumulative = 0
    else:
        cumulative = min(sale.points_earned,
                         _ceil_div(sale.points_earned * value_after, sale.total_net))
    return max(0, cumulative - settled)


def _apply_policy(due: int, balance: int, value: int, settings: ReturnsSettings, approved: bool,
                  sale_id: str) -> tuple[int, int, int]:
    """(points reversed, points withheld, minor units kept from the refund)."""
    shortfall = max(0, due - max(balance, 0))
    if shortfall == 0 or approved or settings.points_policy == "negative":
        return due, 0, 0
    context = {"points_due": due, "points_balance": balance, "shortfall": shortfall}
    if settings.points_policy == "supervisor":
        raise SupervisorRequired(
            f"{shortfall} of the {due} points this return takes back are spent already: a "
            "supervisor must approve the return (the balance then goes below zero)", **context)
    kept = _ceil_div(shortfall * settings.point_value_per_100, 100)
    if kept > value:
        raise SupervisorRequired(
            f"{shortfall} of the {due} points this return takes back are spent already and are "
            f"worth {money(kept)}, more than the {money(value)} refund: a supervisor must "
            "approve the return", **context)
    return due - shortfall, shortfall, kept


def _withhold(allocated: dict[PaymentMode, int], kept: int) -> list[Refund]:
    withheld: dict[PaymentMode, int] = {}
    for mode in WITHHOLD_ORDER:
        take = min(kept, allocated.get(mode, 0))
        withheld[mode] = take
        kept -= take
    return [Refund(mode=m, amount=allocated[m] - withheld[m], withheld=withheld[m])
            for m in REFUND_ORDER if m in allocated]


# --- gift returns ---------------------------------------------------------------------


def plan_gift_return(redemption: GiftRedeemed, earlier: Sequence[GiftReturned], qty: int, *,
                     gift_return_id: str, till_id: str | None = None,
                     reason: str = "") -> GiftReturned:
    """`qty` gifts of `redemption` given back: their points, the cumulative share of the
    redemption's points rounded down, the last gift exact. More than was handed out minus
    earlier returns is refused with `return_exceeds_sale`."""
    if qty < 1:
        raise InvalidRequest(f"qty must be a whole number from 1, got {qty}")
    back = 0
    for g in earlier:
        if g.redemption_id != redemption.redemption_id:
            raise InvalidRequest(f"gift return {g.gift_return_id} is of redemption "
                                 f"{g.redemption_id}, not {redemption.redemption_id}")
        back += g.qty
    if back + qty > redemption.qty:
        raise ReturnExceedsSale(
            f"gift {redemption.gift_sku}: {redemption.qty} handed out, {back} returned already; "
            f"{qty} is more than the {redemption.qty - back} left to return",
            sku=redemption.gift_sku, sold=redemption.qty, returned=back, asked=qty)
    points = (redemption.points_spent * (back + qty) // redemption.qty
              - redemption.points_spent * back // redemption.qty)
    return GiftReturned(gift_return_id=gift_return_id, redemption_id=redemption.redemption_id,
                        customer_id=redemption.customer_id, gift_sku=redemption.gift_sku,
                        gift_name=redemption.gift_name, qty=qty, points_returned=points,
                        till_id=till_id, reason=reason)


# --- statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Delta:
    """What one fact of the way back does to its customer's tally.

    `tally` combines with a `Tally` as it is (negative figures; an expiry's points are
    `Tally.points_expired`, and the balance is `earned - used - expired`).
    `restate` names the sale whose holding changed: its customer's most expensive purchase,
    items' dearest unit prices and last purchase are recomputed by `restate`."""

    tally: Tally = field(default_factory=Tally)
    restate: str | None = None


def tally_delta(body: ReturnRecorded | GiftReturned | BalanceAdjusted | PointsExpired) -> Delta:
    """The `Delta` of a fact of the way back (see `Delta`). A return's and a gift return's
    sums are their event type's tally (schema/events.py: an item given back adds
    ("", -qty, 0), which never wins `ItemTally.combine`'s max)."""
    if isinstance(body, ReturnRecorded):
        return Delta(tally_of(body), restate=body.sale_id)
    if isinstance(body, GiftReturned):
        return Delta(tally_of(body))
    return Delta(tally_of(body))  # head office's facts: their registered tally


@dataclass(frozen=True, slots=True)
class HeldLine:
    sku: str
    name: str
    unit_price: int
    qty: int


@dataclass(frozen=True, slots=True)
class Holding:
    """What a customer still holds of one sale: its net value and units after returns."""

    sale_id: str
    at: str
    net: int
    lines: tuple[HeldLine, ...]


def holding(sale: SaleRecorded, at: str, returns: Sequence[ReturnRecorded]) -> Holding | None:
    """`sale` (made at `at`) less `returns`; None when nothing of it is held any more.
    Never raises on what a return says: a return of another sale, and a returned line the
    sale does not have (a damaged or forged code, which `audit` flags), give nothing back
    here; a line returned more often than sold is simply not held."""
    mine = [r for r in returns if r.sale_id == sale.sale_id]
    return held(sale.sale_id, at, sale.total_net,
                [HeldLine(ln.sku, ln.name, ln.unit_price, ln.qty) for ln in sale.lines],
                [(x.line, x.sku, x.qty) for r in mine for x in r.lines],
                sum(r.value for r in mine))


def held(sale_id: str, at: str, total_net: int, sold: Sequence[HeldLine],
         returned: Iterable[tuple[int, str, int]], value_returned: int) -> Holding | None:
    """`holding` from a sale's figures as stored (schema/salestore.py `holdings` reads them
    from HQ's or an outlet's tables): `sold` is its lines in order, `returned` the (line,
    sku, qty) its returns gave back, `value_returned` their value."""
    done = [0] * len(sold)
    for line, sku, qty in returned:
        if line < len(sold) and sold[line].sku == sku:
            done[line] += qty
    lines = tuple(replace(ln, qty=ln.qty - done[i]) for i, ln in enumerate(sold)
                  if ln.qty > done[i])
    if not lines:
        return None
    return Holding(sale_id, at, total_net - value_returned, lines)


def restate(tally: Tally, holdings: Iterable[Holding]) -> Tally:
    """`tally` with the figures a sum cannot undo recomputed from `holdings`, every sale the
    customer still holds: the most expensive purchase (the largest net still held), the
    last purchase, and per item its name and dearest unit price among the units still
    held. An item no longer held leaves the lists; one whose count no held sale explains
    (a return HQ holds before its sale, or more returned than sold) keeps its count under
    the neutral name and price ("", 0), so later sums carry on. The summed figures are
    untouched. So restating, adding a sale, and restating again is restating once:
    `restate(restate(t, h) + s, h') == restate(t + s, h')`, which is what lets HQ restate
    only when a return arrives (`settle`)."""
    held_ = list(holdings)
    # a sale whose returns gave back more than it was worth (HQ flags it) shows as no
    # purchase: below zero it would beat the empty tally's (0, "") in every later max
    best = max(((h.net, h.sale_id) for h in held_ if h.net >= 0), default=(0, ""))
    dearest: dict[str, tuple[int, str]] = {}
    for h in held_:
        for ln in h.lines:
            dearest[ln.sku] = max(dearest.get(ln.sku, (ln.unit_price, ln.name)),
                                  (ln.unit_price, ln.name))
    items = {}
    for sku, item in tally.items.items():
        if sku in dearest:
            price, name = dearest[sku]
            items[sku] = ItemTally(name, item.qty, price)
        elif item.qty:
            items[sku] = ItemTally("", item.qty, 0)
    return replace(tally, best_purchase_total=best[0], best_purchase_id=best[1],
                   last_purchase_at=max((h.at for h in held_), default=""), items=items)


def settle(facts: Iterable[tuple[Body, str]]) -> Tally:
    """One customer's tally as HQ holds it, from every fact about them with its booking
    time: the sum of what each adds (`tally_of`), restated from what the customer still
    holds when a return is among them. The same facts in any order give the same tally
    (the reference HQ's projection is tested against)."""
    total = Tally()
    sales: list[tuple[SaleRecorded, str]] = []
    returns: dict[str, list[ReturnRecorded]] = {}
    for body, at in facts:
        total = total.combine(tally_of(body, at))
        if isinstance(body, SaleRecorded):
            sales.append((body, at))
        elif isinstance(body, ReturnRecorded):
            returns.setdefault(body.sale_id, []).append(body)
    if not returns:
        return total
    holdings = (holding(sale, at, returns.get(sale.sale_id, [])) for sale, at in sales)
    return restate(total, [h for h in holdings if h is not None])


# --- what HQ flags --------------------------------------------------------------------


def audit(sale: SaleRecorded, returns: Sequence[ReturnRecorded]) -> list[str]:
    """Why the returns HQ holds against `sale` are wrong together (empty: they are not).
    Each outlet checks its own returns exactly; these arise when outlets that could not see
    each other returned the same receipt, or when a return was made from a receipt code that
    does not match the sale HQ holds (a damaged or forged code). HQ applies every return
    and flags these; this never raises on what a return says. When no unit came back more
    often than it was sold, an excess of at most (returns - 1) minor units per payment mode
    and points is the outlets' separate rounding and is not flagged (docs/programme.md)."""
    reasons = []
    done = [0] * len(sale.lines)
    for r in returns:
        if r.sale_id != sale.sale_id:
            reasons.append(f"return {r.return_id} is of sale {r.sale_id}, not {sale.sale_id}")
            continue
        for x in r.lines:
            if x.line >= len(sale.lines) or sale.lines[x.line].sku != x.sku:
                reasons.append(f"return {r.return_id}: line {x.line} ({x.sku}) is not on the "
                               "sale")
                continue
            if x.unit_price != sale.lines[x.line].unit_price:
                reasons.append(f"return {r.return_id}: line {x.line} ({x.sku}) at unit price "
                               f"{x.unit_price}, sold at {sale.lines[x.line].unit_price}")
            done[x.line] += x.qty
    for i, (ln, qty) in enumerate(zip(sale.lines, done, strict=True)):
        if qty > ln.qty:
            reasons.append(f"line {i} ({ln.sku}): {qty} returned of {ln.qty} sold")
    mine = [r for r in returns if r.sale_id == sale.sale_id]
    # outlets that could not see each other each round their own part (value half up,
    # points up): when no unit came back twice, an excess of at most one minor unit or
    # point per return after the first is rounding, not a second refund
    slack = 0 if reasons else max(0, len(mine) - 1)
    given: dict[PaymentMode, int] = {"cash": 0, "card": 0, "credit": 0}
    for r in mine:
        for refund in r.refunds:
            given[refund.mode] += refund.amount + refund.withheld
    paid = _paid(sale)
    for mode in REFUND_ORDER:
        if given[mode] > paid[mode] + slack:
            reasons.append(f"{mode}: {money(given[mode])} refunded of {money(paid[mode])} paid")
    points = sum(r.points_reversed + r.points_withheld for r in mine)
    if points > sale.points_earned + slack:
        reasons.append(f"points: {points} taken back of {sale.points_earned} earned")
    return reasons
