"""What the cashier says or shows when a customer is identified (docs/greetings.md).

`compose` turns what the outlet knows of a customer into the messages of the identify
answer, in this order: a birthday greeting (on the day, or in the week of it: the chain's
`GreetingsDoc.birthday`), a welcome on the customer's first visit, a gift nudge (the
cheapest gift the points balance now reaches, or the points still missing to the cheapest
gift), then head office's announcements that apply today (the customer's own, then the
category's, then the chain's; each by its start, then its id). Greetings come from the
small catalogue below, in the customer's language with the fallbacks of schema/language.py;
an announcement carries its own texts per language.

Dates: `today` is the outlet's LOCAL date (its machine's time zone), given by the caller,
so a birthday starts at the outlet's midnight and an announcement valid to the 24th is
shown all of the 24th there. A birthday on 29 February is greeted on 28 February in other
years.

Pure: no I/O, no clock. Must never: fail an identification: a stored value it cannot read
(a malformed date of birth, an unknown language) only leaves its greeting out or falls back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from schema.language import ENGLISH, fallbacks, pick
from schema.masterdata import AnnouncementDoc, GiftDoc, GreetingsDoc

Kind = Literal["birthday", "welcome", "gift", "announcement"]

# The greetings per language: `{name}` is how the customer is addressed, `{points}` their
# balance, `{missing}` the points still missing, `{gift}` the gift's name. A key ending in
# `_one` is used when the number is 1, where the language has it.
CATALOGUE: dict[str, dict[str, str]] = {
    "en": {
        "birthday": "Happy birthday, {name}!",
        "birthday_week": "Happy birthday week, {name}!",
        "welcome": "Welcome to the club, {name}!",
        "gift_reached": "Your {points} points get you the gift {gift}.",
        "gift_near": "{missing} more points to the gift {gift}.",
        "gift_near_one": "1 more point to the gift {gift}.",
    },
    "de": {
        "birthday": "Alles Gute zum Geburtstag, {name}!",
        "birthday_week": "Alles Gute zur Geburtstagswoche, {name}!",
        "welcome": "Willkommen im Club, {name}!",
        "gift_reached": "Ihre {points} Punkte reichen für das Geschenk {gift}.",
        "gift_near": "Noch {missing} Punkte bis zum Geschenk {gift}.",
        "gift_near_one": "Noch 1 Punkt bis zum Geschenk {gift}.",
    },
    "sl": {
        "birthday": "Vse najboljše za rojstni dan, {name}!",
        "birthday_week": "Vse najboljše v tednu vašega rojstnega dne, {name}!",
        "welcome": "Dobrodošli v klubu, {name}!",
        "gift_reached": "Z zbranimi točkami ({points}) lahko dobite darilo {gift}.",
        "gift_near": "Do darila {gift} vam manjka točk: {missing}.",
    },
}


@dataclass(frozen=True)
class Customer:
    """What the greetings need to know of the identified customer."""

    customer_id: str
    kind: str
    name: str  # how they are addressed: a person's given name, an organisation's name
    category: str
    date_of_birth: str | None
    language: str | None
    points_balance: int
    first_visit: bool


@dataclass(frozen=True)
class Message:
    """One thing to say or show, in `language`; `print_on_receipt`: the sale receipt
    prints it too."""

    kind: Kind
    text: str
    language: str
    print_on_receipt: bool = False
    announcement_id: str | None = None
    gift: Mapping[str, Any] | None = None  # sku, name, points_cost, points_missing

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "text": self.text, "language": self.language,
                               "print_on_receipt": self.print_on_receipt}
        if self.announcement_id is not None:
            out["announcement_id"] = self.announcement_id
        if self.gift is not None:
            out["gift"] = dict(self.gift)
        return out


def catalogue_language(language: str | None, default: str | None) -> str:
    """The catalogue's language for a customer of `language` (English at the end)."""
    return next((tag for tag in fallbacks(language, default) if tag in CATALOGUE), ENGLISH)


def say(language: str, key: str, count: int | None = None, **values: Any) -> str:
    texts = CATALOGUE[language]
    if count == 1 and f"{key}_one" in texts:
        key = f"{key}_one"
    return texts[key].format(**values)


# --- birthdays ------------------------------------------------------------------------------
def birth_date(text: str | None) -> tuple[int, int] | None:
    """(month, day) of a stored `YYYY-MM-DD` date of birth; None when it is not one."""
    try:
        born = date.fromisoformat(text or "")
    except ValueError:
        return None
    return born.month, born.day


def birthday_in(year: int, month: int, day: int) -> date:
    """The birthday in `year` (29 February -> 28 February in a common year)."""
    try:
        return date(year, month, day)
    except ValueError:
        return date(year, 2, 28)


def birthday(date_of_birth: str | None, today: date, window: str) -> str | None:
    """`birthday` on the day, `birthday_week` on another day of its Monday-to-Sunday week
    (when `window` is "week"), else None."""
    born = birth_date(date_of_birth)
    if born is None or window == "off":
        return None
    if birthday_in(today.year, *born) == today:
        return "birthday"
    if window == "week":
        monday = today - timedelta(days=today.weekday())
        for offset in range(7):
            day = monday + timedelta(days=offset)
            if birthday_in(day.year, *born) == day:
                return "birthday_week"
    return None


# --- the gift nudge ------------------------------------------------------------------------
def nudge(balance: int, gifts: Iterable[GiftDoc]) -> tuple[GiftDoc, int] | None:
    """(gift, points missing): the cheapest gift `balance` reaches (0 missing), else the
    cheapest gift and what is missing to it; None without gifts. Ties by SKU."""
    ordered = sorted(gifts, key=lambda g: (g.points_cost, g.sku))
    if not ordered:
        return None
    reached = [g for g in ordered if g.points_cost <= balance]
    if reached:
        return reached[0], 0
    return ordered[0], ordered[0].points_cost - balance


# --- announcements -------------------------------------------------------------------------
def applies(doc: AnnouncementDoc, customer_id: str, category: str, today: date) -> bool:
    if not doc.valid_from <= today <= doc.valid_to:
        return False
    if doc.customer_id is not None:
        return doc.customer_id == customer_id
    if doc.category is not None:
        return doc.category == category
    return True


def _rank(doc: AnnouncementDoc) -> tuple[int, date, str]:
    audience = 0 if doc.customer_id is not None else 1 if doc.category is not None else 2
    return audience, doc.valid_from, doc.announcement_id


def announcements(docs: Iterable[AnnouncementDoc], customer: Customer, today: date,
                  default: str | None) -> list[Message]:
    """The announcements for `customer` today, in order, each in their language."""
    shown = []
    for doc in sorted((d for d in docs if applies(d, customer.customer_id, customer.category,
                                                  today)), key=_rank):
        chosen = pick(doc.texts, customer.language, default)
        if chosen is None:
            continue
        shown.append(Message("announcement", chosen[1], chosen[0], doc.print_on_receipt,
                             announcement_id=doc.announcement_id))
    return shown


# --- all of it -----------------------------------------------------------------------------
def compose(customer: Customer, today: date, settings: GreetingsDoc | None,
            gifts: Iterable[GiftDoc], docs: Iterable[AnnouncementDoc]
            ) -> tuple[str, list[Message]]:
    """(the language the greetings are in, the messages) for `customer` on the outlet's
    local date `today` (see the module docstring for the order)."""
    settings = settings or GreetingsDoc()
    language = catalogue_language(customer.language, settings.language)
    messages: list[Message] = []
    if customer.kind == "person":
        occasion = birthday(customer.date_of_birth, today, settings.birthday)
        if occasion is not None:
            messages.append(Message("birthday", say(language, occasion, name=customer.name),
                                    language))
    if customer.first_visit and settings.welcome:
        messages.append(Message("welcome", say(language, "welcome", name=customer.name),
                                language))
    found = nudge(customer.points_balance, gifts) if settings.gift_nudge else None
    if found is not None:
        gift, missing = found
        text = (say(language, "gift_reached", points=customer.points_balance, gift=gift.name)
                if missing == 0 else
                say(language, "gift_near", count=missing, missing=missing, gift=gift.name))
        messages.append(Message("gift", text, language, gift={
            "sku": gift.sku, "name": gift.name, "points_cost": gift.points_cost,
            "points_missing": missing}))
    messages += announcements(docs, customer, today, settings.language)
    return language, messages


def receipt_notes(messages: Sequence[Message]) -> list[str]:
    """The texts the sale receipt prints: announcements marked `print_on_receipt`."""
    return [m.text for m in messages if m.print_on_receipt]
