"""Points as dated lots: what a customer's balance is made of, and when each part expires.
Pure functions over a tuple of `Lot`s: no I/O, no clock (`on` is always an argument).

Every earning makes a lot (named by the fact that earned it: a sale's lot is its `sale_id`)
dated the day it was earned; the balance is the sum of the lots. Promises, for every
function here:

- the balance moves by exactly the points the operation names, never more or less;
- spending takes the oldest-expiring lot first (`spend`: spendable lots by expiry date,
  lots that never expire last; then pending lots; then a deficit);
- a return takes back from the lot its sale made first, then in spending order
  (`take_back`); a gift given back refills the lots its redemption took (`give_back`);
- a balance below zero is one `DEFICIT` lot, and only when no other lot holds points: the
  next earning repays it before it makes a lot of its own;
- an expiry never takes more than a lot holds (`due` names exactly what remains, `expire`
  refuses more);
- the result is tidy: no empty lots, in a canonical order, so equal books compare equal.

`ExpiryRule` is the programme's expiry setting (docs/programme.md, "Points expire"):
`never` (the default: an existing chain turning expiry on is never retroactive by
surprise, see `since`), `end_of_month` (the end of the Nth month after the month a lot was
earned, fixed on the lot when it is earned), `inactivity` (every lot, N months after the
later of its earning and the customer's last purchase). `Book` folds the facts of
schema/events.py and schema/reversal.py into lots in the order they are applied (HQ's
order at HQ), remembering what each redemption took so a gift given back refills it.

Must never: let the lots' sum differ from the points the facts add up to, expire a point
twice, or read the clock.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schema.events import (
    BalanceAdjusted,
    Body,
    ExpiredLot,
    GiftRedeemed,
    GiftReturned,
    PointsExpired,
    ReturnRecorded,
    SaleRecorded,
)

DEFICIT = "deficit"
"""The lot id of a balance below zero (points spent or taken back beyond what was held)."""

ExpiryKind = Literal["never", "end_of_month", "inactivity"]


def add_months(day: date, months: int) -> date:
    """The same day `months` later, or that month's last day when it is shorter."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def end_of_month_after(day: date, months: int) -> date:
    """The last day of the `months`-th month after the month of `day`."""
    first = add_months(day.replace(day=1), months)
    return first.replace(day=calendar.monthrange(first.year, first.month)[1])


class ExpiryRule(BaseModel):
    """When points expire (see the module docstring). A lot earned before `since` counts as
    earned on `since`: turning a rule on gives existing points the rule's whole life."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ExpiryKind = "never"
    months: int = Field(0, ge=0, le=120)
    since: date = date(1970, 1, 1)
    grace_days: int = Field(7, ge=0, le=90)
    """Days after a lot's last valid day before HQ expires it: an outlet offline (or a modem
    outlet between dials) may have spent the lot, or kept it alive, on or before that day
    without HQ knowing yet (review 11, finding 1). Receipts still print the last day."""

    @model_validator(mode="after")
    def _months(self) -> ExpiryRule:
        if self.kind != "never" and self.months < 1:
            raise ValueError(f"expiry {self.kind} needs months (1 to 120)")
        return self

    def fixed_on(self, earned_on: date) -> date | None:
        """The date a lot earned on `earned_on` is given when it is earned (None: none)."""
        if self.kind == "end_of_month":
            return end_of_month_after(max(earned_on, self.since), self.months)
        return None

    def expiry_of(self, lot: Lot, last_purchase: date | None = None) -> date | None:
        """The last day `lot` is valid (None: never). A lot keeps the date it was given;
        otherwise the rule in force decides."""
        if lot.lot_id == DEFICIT:
            return None
        if lot.expires_on is not None:
            return lot.expires_on
        if self.kind == "end_of_month":
            return self.fixed_on(lot.earned_on)
        if self.kind == "inactivity":
            start = max(lot.earned_on, last_purchase or lot.earned_on, self.since)
            return add_months(start, self.months)
        return None


@dataclass(frozen=True, slots=True)
class Lot:
    """Points earned on `earned_on` by the fact `lot_id`, `points` of them still held.
    `expires_on`: the date fixed when it was earned (None: the rule decides);
    `spendable_on`: pending until that day (None: spendable at once)."""

    lot_id: str
    earned_on: date
    points: int
    expires_on: date | None = None
    spendable_on: date | None = None


Lots = tuple[Lot, ...]
Allocation = tuple[Lot, ...]
"""Where points went: each entry a lot as it was (its dates) with the points taken from it."""

_FAR = date.max


def balance(lots: Sequence[Lot]) -> int:
    return sum(lot.points for lot in lots)


def _is_spendable(lot: Lot, on: date) -> bool:
    return lot.spendable_on is None or lot.spendable_on <= on


def spendable(lots: Sequence[Lot], on: date) -> int:
    """Points that may be spent on `on`: the balance less what is still pending."""
    return balance(lots) - pending(lots, on)


def pending(lots: Sequence[Lot], on: date) -> int:
    """Points earned but not spendable yet on `on` (the return window is still open)."""
    return sum(lot.points for lot in lots if lot.points > 0 and not _is_spendable(lot, on))


def tidy(lots: Iterable[Lot]) -> Lots:
    """`lots` in the canonical order, empty ones dropped, deficits as one lot (what every
    function here returns: equal books compare equal)."""
    return _tidy(list(lots))


def _tidy(lots: Sequence[Lot]) -> Lots:
    deficit = sum(lot.points for lot in lots if lot.lot_id == DEFICIT)
    kept = sorted((lot for lot in lots if lot.lot_id != DEFICIT and lot.points != 0),
                  key=lambda lot: (lot.earned_on, lot.lot_id))
    return ((Lot(DEFICIT, date.min, deficit),) if deficit else ()) + tuple(kept)


def _spending_order(lots: Sequence[Lot], on: date, rule: ExpiryRule,
                    last_purchase: date | None) -> list[Lot]:
    def key(lot: Lot) -> tuple[date, date, str]:
        return (rule.expiry_of(lot, last_purchase) or _FAR, lot.earned_on, lot.lot_id)

    held = [lot for lot in lots if lot.lot_id != DEFICIT and lot.points > 0]
    ready = sorted((lot for lot in held if _is_spendable(lot, on)), key=key)
    waiting = sorted((lot for lot in held if not _is_spendable(lot, on)),
                     key=lambda lot: (lot.spendable_on or _FAR, *key(lot)))
    return ready + waiting


def _take(lots: Sequence[Lot], points: int, order: list[Lot]) -> tuple[Lots, Allocation]:
    """Takes `points` from the lots in `order`, the rest into the deficit."""
    if points < 0:
        raise ValueError(f"cannot take {points} points")
    left = {lot.lot_id: lot for lot in lots}
    taken: list[Lot] = []
    for lot in order:
        if points == 0:
            break
        took = min(points, left[lot.lot_id].points)
        if took <= 0:
            continue
        taken.append(Lot(lot.lot_id, lot.earned_on, took, lot.expires_on, lot.spendable_on))
        left[lot.lot_id] = Lot(lot.lot_id, lot.earned_on, left[lot.lot_id].points - took,
                               lot.expires_on, lot.spendable_on)
        points -= took
    if points:
        taken.append(Lot(DEFICIT, date.min, points))
        left[DEFICIT] = Lot(DEFICIT, date.min, left.get(DEFICIT, Lot(DEFICIT, date.min, 0)).points
                            - points)
    return _tidy(list(left.values())), tuple(taken)


def _repay(lots: Sequence[Lot], points: int) -> tuple[list[Lot], int]:
    """Repays the deficit from `points`; (the lots, the points left over)."""
    owed = -sum(lot.points for lot in lots if lot.lot_id == DEFICIT)
    repaid = min(owed, points)
    rest = [lot for lot in lots if lot.lot_id != DEFICIT]
    if owed - repaid:
        rest.append(Lot(DEFICIT, date.min, -(owed - repaid)))
    return rest, points - repaid


def earn(lots: Sequence[Lot], lot_id: str, points: int, on: date, rule: ExpiryRule,
         pending_days: int = 0) -> Lots:
    """`points` earned on `on` by the fact `lot_id`: they repay a deficit first, the rest is
    a new lot, pending for `pending_days` (0: spendable at once)."""
    if points < 0:
        raise ValueError(f"cannot earn {points} points")
    if lot_id == DEFICIT or any(lot.lot_id == lot_id for lot in lots):
        raise ValueError(f"lot {lot_id} is earned already: a fact is applied once")
    rest, left = _repay(lots, points)
    if left:
        rest.append(Lot(lot_id, on, left, rule.fixed_on(on),
                        on + timedelta(days=pending_days) if pending_days > 0 else None))
    return _tidy(rest)


def spend(lots: Sequence[Lot], points: int, on: date, rule: ExpiryRule,
          last_purchase: date | None = None) -> tuple[Lots, Allocation]:
    """`points` spent on `on`, oldest-expiring first (see the module docstring); what no lot
    holds goes into the deficit (HQ applies a spend that happened: invariant 5)."""
    return _take(lots, points, _spending_order(lots, on, rule, last_purchase))


def take_back(lots: Sequence[Lot], lot_id: str, points: int, on: date, rule: ExpiryRule,
              last_purchase: date | None = None) -> tuple[Lots, Allocation]:
    """A return's `points` taken back: first from the lot `lot_id` (its sale's), then,
    when that lot is partly spent, in spending order (the points its spends would have
    taken had the sale never been), then into the deficit."""
    own = [lot for lot in lots if lot.lot_id == lot_id and lot_id != DEFICIT]
    others = [lot for lot in _spending_order(lots, on, rule, last_purchase)
              if lot.lot_id != lot_id]
    return _take(lots, points, own + others)


def give_back(lots: Sequence[Lot], allocation: Allocation, points: int, lot_id: str, on: date,
              rule: ExpiryRule) -> tuple[Lots, Allocation]:
    """A gift's `points` given back against what its redemption took (`allocation`): they
    repay a deficit first, then refill the lots the redemption took from, in the order it
    took them (a lot spent to nothing since comes back with its own dates); what is left
    over is a new lot `lot_id` earned on `on`. Returns the lots and what of `allocation` is
    still to give back."""
    if points < 0:
        raise ValueError(f"cannot give back {points} points")
    rest, left = _repay(lots, points)
    held = {lot.lot_id: lot for lot in rest}
    remaining: list[Lot] = []
    for entry in allocation:
        if entry.lot_id == DEFICIT:
            continue
        refill = min(left, entry.points)
        left -= refill
        now = held.get(entry.lot_id, Lot(entry.lot_id, entry.earned_on, 0, entry.expires_on,
                                         entry.spendable_on))
        held[entry.lot_id] = Lot(now.lot_id, now.earned_on, now.points + refill, now.expires_on,
                                 now.spendable_on)
        if entry.points > refill:
            remaining.append(Lot(entry.lot_id, entry.earned_on, entry.points - refill,
                                 entry.expires_on, entry.spendable_on))
    lots_after = list(held.values())
    if left:
        if lot_id in held:
            raise ValueError(f"lot {lot_id} is earned already: a fact is applied once")
        lots_after.append(Lot(lot_id, on, left, rule.fixed_on(on)))
    return _tidy(lots_after), tuple(remaining)


def adjust(lots: Sequence[Lot], adjustment_id: str, points: int, on: date, rule: ExpiryRule,
           last_purchase: date | None = None) -> Lots:
    """Head office's correction: more points are a lot of their own (spendable at once),
    fewer are taken in spending order."""
    if points >= 0:
        return earn(lots, adjustment_id, points, on, rule)
    return spend(lots, -points, on, rule, last_purchase)[0]


def due(lots: Sequence[Lot], on: date, rule: ExpiryRule,
        last_purchase: date | None = None) -> list[ExpiredLot]:
    """What expires on `on`: every lot still holding points whose last valid day plus the
    rule's `grace_days` is before `on`, with exactly what it holds (the body of a
    `PointsExpired`; `expired_on` is the last valid day, as receipts printed it)."""
    found = []
    for lot in lots:
        last_day = rule.expiry_of(lot, last_purchase)
        if (lot.points > 0 and last_day is not None
                and last_day + timedelta(days=rule.grace_days) < on):
            found.append(ExpiredLot(lot_id=lot.lot_id, points=lot.points,
                                    expired_on=last_day.isoformat()))
    return found


def expire(lots: Sequence[Lot], expired: Sequence[ExpiredLot]) -> Lots:
    """The lots after an expiry; a lot named for more than it holds is refused (the expiry
    was made from other lots: a bug, never absorbed)."""
    held = {lot.lot_id: lot for lot in lots}
    for x in expired:
        lot = held.get(x.lot_id)
        if lot is None or x.lot_id == DEFICIT or lot.points < x.points:
            have = 0 if lot is None else lot.points
            raise ValueError(f"lot {x.lot_id} holds {have} points, cannot expire {x.points}")
        held[x.lot_id] = Lot(lot.lot_id, lot.earned_on, lot.points - x.points, lot.expires_on,
                             lot.spendable_on)
    return _tidy(list(held.values()))


def expiring(lots: Sequence[Lot], on: date, within_days: int, rule: ExpiryRule,
             last_purchase: date | None = None) -> list[tuple[date, int]]:
    """(date, points) that expire from `on` to `within_days` later, by date: what a receipt
    or statement prints as "N points expire on DATE"."""
    by_day: dict[date, int] = {}
    for lot in lots:
        last_day = rule.expiry_of(lot, last_purchase)
        if lot.points > 0 and last_day is not None and on <= last_day <= on + timedelta(
                days=within_days):
            by_day[last_day] = by_day.get(last_day, 0) + lot.points
    return sorted(by_day.items())


# --- the fold --------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """A customer's lots, and per redemption what it took and has not been given back."""

    lots: Lots = ()
    spends: Mapping[str, Allocation] = field(default_factory=dict)

    @property
    def balance(self) -> int:
        return balance(self.lots)


def apply(book: Book, body: Body, on: date, rule: ExpiryRule, *, pending_days: int = 0,
          last_purchase: date | None = None) -> Book:
    """`book` after the fact `body`, applied on `on`. Sales earn (pending for `pending_days`),
    redemptions spend, returns take back from their sale's lot, gift returns refill what
    their redemption took, corrections add or take, expiries expire; other facts change
    nothing."""
    if isinstance(body, SaleRecorded):
        return Book(earn(book.lots, body.sale_id, body.points_earned, on, rule, pending_days),
                    book.spends)
    if isinstance(body, GiftRedeemed):
        lots, taken = spend(book.lots, body.points_spent, on, rule, last_purchase)
        return Book(lots, {**book.spends, body.redemption_id: taken})
    if isinstance(body, ReturnRecorded):
        lots, _ = take_back(book.lots, body.sale_id, body.points_reversed, on, rule,
                            last_purchase)
        return Book(lots, book.spends)
    if isinstance(body, GiftReturned):
        lots, left = give_back(book.lots, book.spends.get(body.redemption_id, ()),
                               body.points_returned, body.gift_return_id, on, rule)
        spends = {k: v for k, v in book.spends.items() if k != body.redemption_id}
        if left:
            spends[body.redemption_id] = left
        return Book(lots, spends)
    if isinstance(body, BalanceAdjusted):
        return Book(adjust(book.lots, body.adjustment_id, body.points, on, rule, last_purchase),
                    book.spends)
    if isinstance(body, PointsExpired):
        return Book(expire(book.lots, body.lots), book.spends)
    return book
