"""Greetings and announcements at the till (issue 13, item 1; docs/greetings.md).

The agent answers in this process (a TestClient on its app, a real SQLite file) with its
clock and time zone set by the test (`Outlet.clock`, `Outlet.zone`): a birthday begins at
the outlet's local midnight, not UTC's. Head office's master data (greeting settings,
announcements, gifts) arrives the way a pull brings it (`OutletReplica.apply`), so what is
tested is what an outlet does with what HQ sent, with no HQ running: offline by
construction. The real-process chain (HQ down, a clock crossing midnight) is
tests/e2e/test_greetings_offline.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from agentkit import InProcessAgent, Till, db_state, expect_error, line
from hypothesis import given
from hypothesis import strategies as st

from agent import customers, identification
from agent.outlet import Outlet
from agent.readers import TillReaders
from agent.replication import OutletReplica
from hardware.reads import CardRead
from schema import greetings
from schema.api import CustomerIn
from schema.masterdata import GiftDoc
from schema.sync import Change, PullResponse

LJUBLJANA = ZoneInfo("Europe/Ljubljana")  # UTC+2 in summer, UTC+1 in winter


class Shop:
    """An in-process agent whose clock the test sets, and HQ's master data as pulled."""

    def __init__(self, agent: InProcessAgent) -> None:
        self.agent = agent
        self.outlet = agent.outlet
        self.till = agent.till("T1")
        self.now = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)
        self.outlet.clock = lambda: self.now
        self.outlet.zone = LJUBLJANA
        self.cursor = 0

    def at(self, local: str) -> Shop:
        """Sets the clock to a wall-clock time in Ljubljana, e.g. "2026-06-14 23:59:59"."""
        self.now = datetime.fromisoformat(local).replace(tzinfo=LJUBLJANA).astimezone(UTC)
        return self

    def publish(self, kind: str, key: str, data: dict[str, Any] | None) -> None:
        """A change of HQ's master data as a pull page brings it (None: withdrawn)."""
        self.cursor += 1
        OutletReplica(self.outlet).apply(PullResponse(
            epoch="E", cursor=self.cursor, head=self.cursor, incorporated_through=0, more=False,
            changes=[Change(kind=kind, key=key, seq=self.cursor, data=data)]))

    def announce(self, announcement_id: str, texts: dict[str, str], valid_from: str,
                 valid_to: str, **audience: Any) -> None:
        self.publish("announcement", announcement_id, {
            "announcement_id": announcement_id, "texts": texts, "valid_from": valid_from,
            "valid_to": valid_to, **audience})

    def register(self, **fields: Any) -> dict[str, str]:
        return self.till.register(**{"category": "D", **fields})

    def identify(self, card: str, till: Till | None = None) -> dict[str, Any]:
        return (till or self.till).ok("POST", "/v1/identify",
                                      json={"kind": "card", "value": card, "till_id": "T1"})

    def said(self, card: str, till: Till | None = None) -> list[tuple[str, str]]:
        return [(g["kind"], g["text"]) for g in self.identify(card, till)["greetings"]]

    def kinds(self, card: str) -> list[str]:
        return [kind for kind, _ in self.said(card)]


@pytest.fixture
def shop(make_agent: Callable[..., InProcessAgent]) -> Iterator[Shop]:
    yield Shop(make_agent())


def announcements(answer: dict[str, Any]) -> list[str]:
    return [g["announcement_id"] for g in answer["greetings"] if g["kind"] == "announcement"]


# --- birthdays -----------------------------------------------------------------------------

def test_a_birthday_is_greeted_from_the_outlets_local_midnight_to_the_next(shop: Shop) -> None:
    ana = shop.register(given_name="Ana", surname="Novak", date_of_birth="1990-06-15")
    shop.identify(ana["card_number"])  # the first visit's welcome is out of the way

    # 23:59:59 in Ljubljana is 21:59:59 UTC: not yet her birthday
    assert "birthday" not in shop.at("2026-06-14 23:59:59").kinds(ana["card_number"])
    # midnight in Ljubljana, still the 14th in UTC: her birthday has begun here
    assert shop.at("2026-06-15 00:00:00").now.date() == date(2026, 6, 14)
    assert shop.said(ana["card_number"])[0] == ("birthday", "Happy birthday, Ana!")
    assert "birthday" in shop.at("2026-06-15 23:59:59").kinds(ana["card_number"])
    # the 16th in Ljubljana while UTC still says the 15th: over
    assert shop.at("2026-06-16 00:00:00").now.date() == date(2026, 6, 15)
    assert "birthday" not in shop.kinds(ana["card_number"])


def test_the_birthday_week_setting_greets_monday_to_sunday_and_off_greets_nobody(
        shop: Shop) -> None:
    # 2026-06-18 is a Thursday: its week runs from Monday 15 to Sunday 21 June
    bor = shop.register(given_name="Bor", surname="Zupan", date_of_birth="1985-06-18")
    shop.identify(bor["card_number"])
    shop.publish("greetings", "chain", {"scope": "chain", "birthday": "week"})
    assert "birthday" not in shop.at("2026-06-14 23:59:59").kinds(bor["card_number"])
    assert shop.at("2026-06-15 00:00:00").said(bor["card_number"])[0] == (
        "birthday", "Happy birthday week, Bor!")
    assert shop.at("2026-06-18 12:00:00").said(bor["card_number"])[0] == (
        "birthday", "Happy birthday, Bor!")
    assert "birthday" in shop.at("2026-06-21 23:59:59").kinds(bor["card_number"])
    assert "birthday" not in shop.at("2026-06-22 00:00:00").kinds(bor["card_number"])

    shop.publish("greetings", "chain", {"scope": "chain", "birthday": "off"})
    assert "birthday" not in shop.at("2026-06-18 12:00:00").kinds(bor["card_number"])


def test_a_birthday_on_29_february_is_greeted_on_28_february_in_a_common_year() -> None:
    assert greetings.birthday("2000-02-29", date(2027, 2, 28), "day") == "birthday"
    assert greetings.birthday("2000-02-29", date(2027, 3, 1), "day") is None
    assert greetings.birthday("2000-02-29", date(2028, 2, 29), "day") == "birthday"
    assert greetings.birthday("2000-02-29", date(2028, 2, 28), "day") is None
    # a week across new year: Monday 2029-12-31 to Sunday 2030-01-06
    assert greetings.birthday("1990-01-02", date(2029, 12, 31), "week") == "birthday_week"
    # a stored date that is not one leaves the greeting out, never fails
    assert greetings.birthday("1990-13-40", date(2026, 1, 1), "day") is None


# --- first visit ---------------------------------------------------------------------------

def test_the_first_visit_is_welcomed_exactly_once_whichever_till(shop: Shop) -> None:
    vida = shop.register(given_name="Vida", surname="Visit")
    first = shop.identify(vida["card_number"])
    assert [g for g in first["greetings"] if g["kind"] == "welcome"] == [{
        "kind": "welcome", "text": "Welcome to the club, Vida!", "language": "en",
        "print_on_receipt": False}]
    assert "welcome" not in shop.kinds(vida["card_number"])
    assert "welcome" not in [k for k, _ in shop.said(vida["card_number"],
                                                      shop.agent.till("T2"))]

    # a customer HQ has seen visit another outlet is not new here
    shop.cursor += 1
    regular = {"customer_id": "0190c0de-0000-7000-8000-00000000beef",
               "profile": {"kind": "person", "given_name": "Rok", "surname": "Regular",
                           "category": "D", "approved_actions": []},
               "status": "approved", "credit_blocked": False, "pin_hash": None,
               "picture": None, "origin_outlet": "ELSEWHERE",
               "created_at": "2026-01-01T00:00:00.000000Z",
               "first_visit_at": "2026-01-02T09:00:00.000000Z",
               "identifiers": [{"kind": "card", "value": "2900990000017", "status": "active"}],
               "tally": {}}
    OutletReplica(shop.outlet).apply(PullResponse(
        epoch="E", cursor=shop.cursor, head=shop.cursor, incorporated_through=0, more=False,
        changes=[Change(kind="customer", key=regular["customer_id"], seq=shop.cursor,
                        data=regular)]))
    assert "welcome" not in shop.kinds("2900990000017")


def test_the_welcome_can_be_switched_off(shop: Shop) -> None:
    shop.publish("greetings", "chain", {"scope": "chain", "welcome": False})
    eva = shop.register(given_name="Eva", surname="Nova")
    assert "welcome" not in shop.kinds(eva["card_number"])


# --- the gift nudge ------------------------------------------------------------------------

def test_the_gift_nudge_names_the_cheapest_gift_reached_or_the_points_missing(
        shop: Shop) -> None:
    # the default catalogue: Club mug 500, Tote bag 800, Coffee beans 1,200, Voucher 1,500;
    # category D earns 1 point per 1.00
    gifts = {g["sku"]: g["points_cost"] for g in shop.till.ok("GET", "/v1/gifts")}
    assert gifts["GIFT-MUG"] == min(gifts.values()) == 500
    ana = shop.register(given_name="Ana", surname="Novak")
    card = ana["card_number"]

    def nudge() -> dict[str, Any]:
        [gift] = [g for g in shop.identify(card)["greetings"] if g["kind"] == "gift"]
        return gift

    assert nudge() == {"kind": "gift", "text": "500 more points to the gift Club mug.",
                       "language": "en", "print_on_receipt": False,
                       "gift": {"sku": "GIFT-MUG", "name": "Club mug", "points_cost": 500,
                                "points_missing": 500}}
    assert shop.till.sold(card, [line("S-1", 49_900)])["points_balance"] == 499
    assert nudge()["text"] == "1 more point to the gift Club mug."
    assert shop.till.sold(card, [line("S-2", 100)])["points_balance"] == 500
    assert nudge()["text"] == "Your 500 points get you the gift Club mug."
    assert nudge()["gift"]["points_missing"] == 0
    # 1,300 points reach the mug, the tote and the coffee: the cheapest is named
    shop.till.sold(card, [line("S-3", 80_000)])
    assert nudge()["gift"]["sku"] == "GIFT-MUG"
    # a catalogue without the mug: the tote is now the cheapest reached
    shop.publish("gift", "GIFT-MUG", None)
    assert nudge()["text"] == "Your 1300 points get you the gift Tote bag."


@given(balance=st.integers(-10_000, 10_000),
       costs=st.lists(st.integers(1, 5_000), min_size=1, max_size=8))
def test_the_nudge_is_the_cheapest_gift_reached_else_the_cheapest_and_what_is_missing(
        balance: int, costs: list[int]) -> None:
    gifts = [GiftDoc(sku=f"G{i}", name=f"Gift {i}", points_cost=c) for i, c in enumerate(costs)]
    found = greetings.nudge(balance, gifts)
    assert found is not None
    gift, missing = found
    reached = [g.points_cost for g in gifts if g.points_cost <= balance]
    if reached:
        assert missing == 0 and gift.points_cost == min(reached)
    else:
        assert gift.points_cost == min(costs) and missing == gift.points_cost - balance > 0
    assert greetings.nudge(balance, []) is None


# --- announcements -------------------------------------------------------------------------

def test_announcements_for_a_customer_a_category_and_the_chain_within_their_windows(
        shop: Shop) -> None:
    ana = shop.register(given_name="Ana", surname="Novak", category="A")
    bor = shop.register(given_name="Bor", surname="Zupan", category="B")
    shop.announce("CHAIN-SALE", {"en": "Summer sale in every shop"}, "2026-06-15", "2026-06-20")
    shop.announce("GOLD-EVENING", {"en": "Gold members' evening on Friday"},
                  "2026-06-15", "2026-06-15", category="A")
    shop.announce("ANA-PARCEL", {"en": "Your order has arrived: ask at the desk"},
                  "2026-06-10", "2026-06-30", customer_id=ana["customer_id"])

    shop.at("2026-06-14 23:59:59")
    assert announcements(shop.identify(ana["card_number"])) == ["ANA-PARCEL"]
    assert announcements(shop.identify(bor["card_number"])) == []
    shop.at("2026-06-15 00:00:00")  # the customer's own first, then the category's, the chain's
    assert announcements(shop.identify(ana["card_number"])) == [
        "ANA-PARCEL", "GOLD-EVENING", "CHAIN-SALE"]
    assert announcements(shop.identify(bor["card_number"])) == ["CHAIN-SALE"]
    shop.at("2026-06-16 00:00:00")  # the gold evening was valid the 15th only
    assert announcements(shop.identify(ana["card_number"])) == ["ANA-PARCEL", "CHAIN-SALE"]
    shop.at("2026-06-21 00:00:00")
    assert announcements(shop.identify(ana["card_number"])) == ["ANA-PARCEL"]
    assert announcements(shop.identify(bor["card_number"])) == []
    # withdrawn by HQ: gone at once
    shop.publish("announcement", "ANA-PARCEL", None)
    assert announcements(shop.identify(ana["card_number"])) == []


def test_an_announcement_to_print_is_on_the_sale_receipt_in_the_customers_language(
        shop: Shop) -> None:
    mojca = shop.register(given_name="Mojca", surname="Kranjc", language="sl")
    tom = shop.register(given_name="Tom", surname="Smith")
    shop.announce("TASTING", {"en": "Wine tasting on Friday at 18:00 in our shop: you are "
                                    "invited, bring a friend!",
                              "sl": "Degustacija vin v petek ob 18.00 v naši trgovini: "
                                    "vabljeni, pripeljite prijatelja!"},
                  "2026-06-15", "2026-06-19", print_on_receipt=True)
    shop.announce("QUIET", {"en": "Shown, not printed"}, "2026-06-15", "2026-06-19")
    shop.at("2026-06-15 09:00:00")
    shown = [g for g in shop.identify(mojca["card_number"])["greetings"]
             if g["kind"] == "announcement"]
    assert [(g["announcement_id"], g["language"], g["print_on_receipt"]) for g in shown] == [
        ("QUIET", "en", False), ("TASTING", "sl", True)]  # same audience and start: by id

    receipt = shop.till.sold(mojca["card_number"], [line("W-1", 1_290)])["receipt_lines"]
    # after the balance comes the receipt reference (docs/till-api.md), then the notes
    tail = receipt[receipt.index(next(ln for ln in receipt if ln.startswith("Points balance")))
                   + 2:]
    assert receipt[-len(tail) - 1].startswith("Receipt")
    assert tail == ["", "Degustacija vin v petek ob 18.00 v naši", "trgovini: vabljeni, pripeljite",
                    "prijatelja!"]
    assert all(len(ln) <= 40 for ln in receipt)
    english = shop.till.sold(tom["card_number"], [line("W-1", 1_290)])["receipt_lines"]
    assert "Wine tasting on Friday at 18:00 in our" in english
    assert not any("Shown, not printed" in ln for ln in english)
    # after its window the receipt is back to what it was
    shop.at("2026-06-20 00:00:00")
    after = shop.till.sold(tom["card_number"], [line("W-1", 1_290)])["receipt_lines"]
    assert after[-2].startswith("Points balance") and after[-1].startswith("Receipt")


# --- languages -----------------------------------------------------------------------------

def test_greetings_fall_back_from_the_customers_language_to_the_chains_then_english(
        shop: Shop) -> None:
    shop.announce("NEWS", {"en": "News", "de": "Neuigkeiten"}, "2026-01-01", "2026-12-31")

    def greeted(language: str | None) -> tuple[str, str, str]:
        extra = {"language": language} if language else {}
        who = shop.register(given_name="Kim", surname="Lee", **extra)
        answer = shop.identify(who["card_number"])
        texts = {g["kind"]: (g["language"], g["text"]) for g in answer["greetings"]}
        return answer["language"], texts["welcome"][1], texts["announcement"][0]

    assert greeted("de-AT") == ("de", "Willkommen im Club, Kim!", "de")
    assert greeted("sl") == ("sl", "Dobrodošli v klubu, Kim!", "en")
    assert greeted("fr") == ("en", "Welcome to the club, Kim!", "en")
    assert greeted(None) == ("en", "Welcome to the club, Kim!", "en")
    # the chain's default language is German: a customer without a text of their own gets it
    shop.publish("greetings", "chain", {"scope": "chain", "language": "de"})
    assert greeted("fr") == ("de", "Willkommen im Club, Kim!", "de")
    assert greeted(None) == ("de", "Willkommen im Club, Kim!", "de")
    assert greeted("sl") == ("sl", "Dobrodošli v klubu, Kim!", "de")
    # an announcement in none of the customer's, the chain's or English: its first text
    shop.announce("HR-ONLY", {"hr": "Samo hrvatski"}, "2026-01-01", "2026-12-31")
    who = shop.register(given_name="Kim", surname="Lee", language="sl")
    [only] = [g for g in shop.identify(who["card_number"])["greetings"]
              if g.get("announcement_id") == "HR-ONLY"]
    assert (only["language"], only["text"]) == ("hr", "Samo hrvatski")


def test_a_language_is_kept_in_one_spelling_and_a_wrong_one_is_refused_changing_nothing(
        shop: Shop) -> None:
    joined = shop.register(given_name="Ana", surname="Novak", language="DE-at")
    customer = f"/v1/customers/{joined['customer_id']}"
    assert shop.till.ok("GET", customer)["language"] == "de-AT"
    before = db_state(shop.agent.db)
    for bad in ("german", "d", "de_AT", "", 7):
        error = expect_error(shop.till.request("PATCH", customer, json={"language": bad}),
                             422, "invalid_request")
        assert "language" in error["message"]
    assert db_state(shop.agent.db) == before
    assert shop.till.ok("PATCH", customer, json={"language": "sl"})["language"] == "sl"


# --- the reader's long poll and what the outlet cannot read ----------------------------------

def test_a_card_read_at_a_reader_carries_the_greetings_to_its_till(shop: Shop) -> None:
    ana = shop.register(given_name="Ana", surname="Novak")
    readers = TillReaders(shop.outlet, [])
    readers.on_read(CardRead(kind="barcode", value=ana["card_number"], reader="R1", till="T1",
                             at=datetime.now(UTC), monotonic=0.0))
    read = shop.till.ok("GET", "/v1/tills/T1/identification?wait=0")
    assert read["customer"]["language"] == "en"
    assert [g["kind"] for g in read["customer"]["greetings"]] == ["welcome", "gift"]


def test_a_stored_document_the_outlet_cannot_read_never_fails_an_identification(
        shop: Shop) -> None:
    ana = shop.register(given_name="Ana", surname="Novak")
    with shop.outlet.db.write() as conn:
        conn.execute("INSERT INTO master (kind, key, data) VALUES ('announcement', 'BAD', ?)",
                     ('{"announcement_id": "BAD", "texts": {}}',))
        conn.execute("INSERT INTO master (kind, key, data) VALUES ('greetings', 'chain', ?)",
                     ('{"scope": "chain", "birthday": "fortnight"}',))
    answer = shop.identify(ana["card_number"])
    assert [g["kind"] for g in answer["greetings"]] == ["welcome", "gift"]
    assert shop.till.sold(ana["card_number"], [line("S-1", 100)])["receipt_lines"]


def test_the_outlets_local_date_is_its_clock_in_its_zone(shop: Shop) -> None:
    shop.now = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert shop.outlet.today() == date(2027, 1, 1)  # Ljubljana is an hour ahead in winter
    shop.outlet.zone = ZoneInfo("America/New_York")
    assert shop.outlet.today() == date(2026, 12, 31)
    assert shop.outlet.local_now().utcoffset() == -timedelta(hours=5)


def test_an_outlet_upgraded_from_the_first_schema_welcomes_none_of_its_customers_again(
        tmp_path: Path) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures"
    people = json.loads((fixtures / "agent_v1.expected.json").read_text())["people"]
    shutil.copyfile(fixtures / "agent_v1.db", tmp_path / "v1.db")
    upgraded = Outlet(tmp_path / "v1.db")
    try:
        for who in ("ana", "dora", "hotel"):  # one visited before the upgrade, two never
            answer = identification.identify(upgraded, "card", people[who]["card_number"])
            assert "welcome" not in [g["kind"] for g in answer["greetings"]], who
        new = customers.register(upgraded, CustomerIn(kind="person", given_name="New",
                                                      surname="Comer"))
        answer = identification.identify(upgraded, "card", new["card_number"])
        assert answer["greetings"][0]["kind"] == "welcome"
    finally:
        upgraded.close()
