"""Head office's customer changes of issue 12, on the domain (hq/admin.py, hq/projection.py),
in process: two profiles of one person merged by an HQ fact (the survivor's tally is the
fold of both, nothing earlier is rewritten, later facts about the merged profile count
for the survivor), a lost card replaced by HQ's own identifier facts, a picture uploaded.
Every refusal has its stable code and changes nothing."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hqkit import ON_POSTGRES, at_once
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from agent.programme import default_documents
from hq import admin, credentials, feed, ingest
from hq.audit import Actor
from hq.chain import Chain
from schema.errors import (
    CardInUse,
    CustomerMerged,
    CustomerUnknown,
    InvalidRequest,
    LoyaltyError,
)
from schema.events import (
    Body,
    CustomerRegistered,
    CustomersMerged,
    Event,
    GiftRedeemed,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
    tally_of,
)
from schema.ledger import Tally
from schema.roles import Role
from schema.sync import PushRequest

HQ_ON_BOTH_STORES = True  # every test on a SQLite file and on PostgreSQL (tests/hq/conftest.py)
OLGA = Actor("olga", Role.operator)
CARDS = {"ana": "2900010000015", "ana2": "2900010000022", "iva": "2900010000039"}
NEW_CARD = "2900010000046"


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


class Shop:
    """An HQ with outlet X and customers ana, ana2 (the same person twice) and iva."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.seq = 0
        with chain.db.write() as conn:
            credentials.add_outlet(conn, "X")
        self.push(*(CustomerRegistered(customer_id=cid, card_number=card, profile=Profile(
            kind="person", given_name="Ana" if cid != "iva" else "Iva", surname="Novak",
            category="A")) for cid, card in CARDS.items()))

    def push(self, *bodies: Body) -> list[str]:
        events = []
        for body in bodies:
            self.seq += 1
            events.append(make_event("X", self.seq, body))
        answer = ingest.push(self.chain, "X", PushRequest(outlet_id="X", events=events))
        return [r.result for r in answer.results]

    def balance(self, cid: str) -> int:
        return int(admin.customer_view(self.chain, cid)["points_balance"])

    def state(self) -> dict[str, Any]:
        """What a refused change must leave alone."""
        return {t: [tuple(r) for r in self.chain.db.all(f"SELECT * FROM {t}")] for t in (
            "events", "customers", "identifiers", "customer_tally", "audit", "changes")}


@pytest.fixture
def shop(hq_db: str) -> Iterator[Shop]:
    chain = Chain(hq_db, seed=default_documents())
    yield Shop(chain)
    chain.close()


def sale(cid: str, net: int, points: int, mode: str = "cash") -> SaleRecorded:
    line = SaleLine(sku=f"SKU-{net % 7}", name="coffee", qty=1, unit_price=net, gross=net,
                    discount=0, net=net)
    return SaleRecorded(sale_id=new_id(), customer_id=cid, currency="EUR", lines=[line],
                        payments=[Payment(mode=mode, amount=net)], total_gross=net,
                        total_discount=0, total_net=net, points_earned=points)


def gift(cid: str, points: int) -> GiftRedeemed:
    return GiftRedeemed(redemption_id=new_id(), customer_id=cid, gift_sku="MUG",
                        gift_name="Mug", qty=1, points_spent=points)


def fold_from_ledger(chain: Chain) -> dict[str, Tally]:
    """Each customer's tally as the fold of HQ's ledger, a merged profile's facts counted
    for the profile it was merged into (the merge's own meaning, read from the facts)."""
    rows = chain.db.all("SELECT event, booked_at FROM events ORDER BY hq_seq")
    events = [(Event.model_validate_json(r["event"]), r["booked_at"]) for r in rows]
    into: dict[str, str] = {}
    for event, _at in events:
        body = event.parsed()
        if isinstance(body, CustomersMerged) and event.outlet_id == "HQ":
            into[body.merged] = body.customer_id
    def owner(cid: str) -> str:
        while cid in into:
            cid = into[cid]
        return cid
    tallies: dict[str, Tally] = {}
    for event, at in events:
        if event.customer_id:
            who = owner(event.customer_id)
            tallies[who] = tallies.get(who, Tally()).combine(tally_of(event.parsed(), at))
    return tallies


def stored_tallies(chain: Chain) -> dict[str, Tally]:
    from schema import tallystore
    with chain.db.read() as conn:
        ids = [r[0] for r in conn.execute("SELECT customer_id FROM customers")]
        return {cid: tallystore.load(conn, cid) for cid in ids}


BEFORE = st.lists(st.tuples(st.sampled_from(["ana", "ana2", "iva"]), st.integers(100, 5000),
                           st.integers(0, 300), st.booleans()), max_size=8)
AFTER = st.lists(st.tuples(st.sampled_from(["ana", "ana2"]), st.integers(100, 900),
                          st.integers(0, 90)), max_size=4)
CHECKS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@settings(max_examples=40, deadline=None, suppress_health_check=CHECKS)
@given(before=BEFORE, after=AFTER)
def test_after_a_merge_the_survivors_balance_is_the_sum_and_its_tally_the_fold_of_both(
        tmp_path_factory: pytest.TempPathFactory,
        before: list[tuple[str, int, int, bool]], after: list[tuple[str, int, int]]) -> None:
    merged_balance_is_the_sum(str(tmp_path_factory.mktemp("hq") / "hq.db"), before, after)


@settings(max_examples=8, deadline=None, suppress_health_check=CHECKS)  # ~0.5 s each
@given(before=BEFORE, after=AFTER)
def test_on_postgresql_after_a_merge_the_survivors_balance_is_the_sum_and_its_tally_the_fold(
        hq_pg_dbs: Callable[[], str],
        before: list[tuple[str, int, int, bool]], after: list[tuple[str, int, int]]) -> None:
    merged_balance_is_the_sum(hq_pg_dbs(), before, after)


def merged_balance_is_the_sum(db: str, before: list[tuple[str, int, int, bool]],
                              after: list[tuple[str, int, int]]) -> None:
    chain = Chain(db, seed=default_documents())
    try:
        shop = Shop(chain)
        shop.push(*(sale(cid, net, points) if not spend else gift(cid, points)
                    for cid, net, points, spend in before))
        a, b = shop.balance("ana"), shop.balance("ana2")
        tally_a, tally_b = stored_tallies(chain)["ana"], stored_tallies(chain)["ana2"]
        view = admin.merge_customers(chain, "ana", "ana2", by=OLGA, reason="one person")
        assert view["points_balance"] == a + b
        assert stored_tallies(chain)["ana"] == tally_a.combine(tally_b)
        assert shop.balance("ana2") == 0
        # an outlet that sold offline on the old profile after the merge: the facts are
        # applied (never rejected), for the survivor
        results = shop.push(*(sale(cid, net, points) for cid, net, points in after))
        assert set(results) <= {"applied"}
        assert shop.balance("ana") == a + b + sum(points for _c, _n, points in after)
        assert shop.balance("ana2") == 0
        folded, stored = fold_from_ledger(chain), stored_tallies(chain)
        for cid in ("ana", "iva"):
            assert stored[cid] == folded.get(cid, Tally()), cid
    finally:
        chain.close()


def test_a_merge_is_one_hq_fact_that_rewrites_no_earlier_fact_and_moves_the_cards(
        shop: Shop) -> None:
    shop.push(sale("ana2", 1000, 100))
    ledger_before = shop.chain.db.all("SELECT hq_seq, event FROM events ORDER BY hq_seq")
    admin.merge_customers(shop.chain, "ana", "ana2", by=OLGA, reason="signed up twice")
    ledger_after = shop.chain.db.all("SELECT hq_seq, event, type, outlet_id FROM events "
                                     "ORDER BY hq_seq")
    assert [tuple(r)[:2] for r in ledger_after[:-1]] == [tuple(r) for r in ledger_before]
    assert (ledger_after[-1]["type"], ledger_after[-1]["outlet_id"]) == ("customers.merged",
                                                                         "HQ")
    assert admin.resolve_customer(shop.chain, CARDS["ana2"]) == "ana"
    survivor, merged = admin.customer_view(shop.chain, "ana"), admin.customer_view(
        shop.chain, "ana2")
    assert {i["value"] for i in survivor["identifiers"]} == {CARDS["ana"], CARDS["ana2"]}
    assert (merged["merged_into"], merged["identifiers"]) == ("ana", [])
    assert survivor["merged_from"] == ["ana2"]
    total, receipts = admin.receipts(shop.chain, "ana", 10)  # the duplicate's history too
    assert (total, [r["customer_id"] for r in receipts]) == (1, ["ana2"])
    # both reach the outlets: the survivor's document carries the old card
    with shop.chain.db.read() as conn:
        doc = feed.render(conn, "customer", "ana")
        gone = feed.render(conn, "customer", "ana2")
    assert doc is not None and gone is not None
    assert CARDS["ana2"] in {i["value"] for i in doc["identifiers"]}
    assert gone["merged_into"] == "ana"
    changed = [r[0] for r in shop.chain.db.all(
        "SELECT key FROM changes WHERE kind = 'customer' ORDER BY seq DESC LIMIT 2")]
    assert set(changed) == {"ana", "ana2"}
    # audited on both customers' trails, naming the fact
    rows = shop.chain.db.all("SELECT customer_id, action, reason, event_id, staff FROM audit "
                             "ORDER BY audit_id")
    assert {(r["customer_id"], r["action"], r["reason"], r["staff"]) for r in rows} == {
        ("ana2", "customer.merge", "signed up twice", "olga"),
        ("ana", "customer.merge", "signed up twice", "olga")}
    assert all(r["event_id"] for r in rows)


@pytest.mark.parametrize(("survivor", "merged", "reason", "error", "code"), [
    ("ana", "ana", "x", InvalidRequest, "invalid_request"),
    ("ana", "nobody", "x", CustomerUnknown, "customer_unknown"),
    ("ana", "ana2", "  ", InvalidRequest, "invalid_request"),
])
def test_a_refused_merge_says_why_and_changes_nothing(
        shop: Shop, survivor: str, merged: str, reason: str, error: type[LoyaltyError],
        code: str) -> None:
    before = shop.state()
    with pytest.raises(error) as refused:
        admin.merge_customers(shop.chain, survivor, merged, by=OLGA, reason=reason)
    assert refused.value.code == code
    assert shop.state() == before


def test_a_merged_profile_cannot_be_merged_again_or_merged_into(shop: Shop) -> None:
    admin.merge_customers(shop.chain, "ana", "ana2", by=OLGA, reason="twins")
    before = shop.state()
    for survivor, merged in (("iva", "ana2"), ("ana2", "iva")):
        with pytest.raises(CustomerMerged) as refused:
            admin.merge_customers(shop.chain, survivor, merged, by=OLGA, reason="again")
        assert refused.value.code == "customer_merged"
        assert refused.value.context["survivor"] == "ana"
        with pytest.raises(CustomerMerged):
            admin.merge_preview(shop.chain, survivor, merged)
    with pytest.raises(CustomerMerged):
        admin.replace_card(shop.chain, "ana2", CARDS["ana2"], NEW_CARD, by=OLGA)
    assert shop.state() == before


@pytest.mark.parametrize("hq_db", [ON_POSTGRES], indirect=True)
def test_two_operators_merging_the_same_profiles_at_once_merge_them_once(shop: Shop) -> None:
    """Two HQ processes (PostgreSQL, READ COMMITTED; hqkit.at_once): one merges ana2 into
    ana, the other ana into ana2. One merge is made; the other is refused as merged
    already, records nothing and audits nothing (never two merges making a cycle)."""
    shop.push(sale("ana", 1000, 100), sale("ana2", 500, 50))
    done = at_once(shop.chain,
                   lambda: admin.merge_customers(shop.chain, "ana", "ana2", by=OLGA, reason="x"),
                   lambda: admin.merge_customers(shop.chain, "ana2", "ana", by=OLGA, reason="y"))
    assert sorted(type(d).__name__ for d in done) == ["CustomerMerged", "dict"], done
    facts = shop.chain.db.all("SELECT result FROM events WHERE type = 'customers.merged'")
    assert [f["result"] for f in facts] == ["applied"]
    assert len(shop.chain.db.all("SELECT 1 FROM audit")) == 2  # one merge, on both trails
    (view,) = [d for d in done if isinstance(d, dict)]
    assert view["points_balance"] == 150


@pytest.mark.parametrize("hq_db", [ON_POSTGRES], indirect=True)
def test_one_new_card_given_to_two_customers_at_once_goes_to_one(shop: Shop) -> None:
    done = at_once(shop.chain,
                   lambda: admin.replace_card(shop.chain, "ana", CARDS["ana"], NEW_CARD, by=OLGA),
                   lambda: admin.replace_card(shop.chain, "iva", CARDS["iva"], NEW_CARD, by=OLGA))
    assert sorted(type(d).__name__ for d in done) == ["CardInUse", "str"], done
    assert shop.chain.db.all("SELECT result FROM events WHERE type = 'identifier.added'"
                             ) == [("applied",)]
    assert len(shop.chain.db.all("SELECT 1 FROM audit")) == 1


def test_a_merge_made_twice_over_merges_follows_to_the_last_survivor(shop: Shop) -> None:
    shop.push(sale("ana2", 500, 50), sale("ana", 500, 20), sale("iva", 500, 7))
    admin.merge_customers(shop.chain, "ana", "ana2", by=OLGA, reason="twins")
    admin.merge_customers(shop.chain, "iva", "ana", by=OLGA, reason="really one person")
    assert shop.push(sale("ana2", 100, 3)) == ["applied"]
    assert shop.balance("iva") == 50 + 20 + 7 + 3
    assert admin.customer_view(shop.chain, "ana2")["merged_into"] == "iva"
    assert admin.resolve_customer(shop.chain, CARDS["ana2"]) == "iva"


def test_an_outlet_cannot_merge_profiles_its_fact_is_flagged_and_ignored(shop: Shop) -> None:
    shop.push(sale("ana2", 1000, 100))
    assert shop.push(CustomersMerged(customer_id="ana", merged="ana2")) == ["flagged"]
    assert shop.balance("ana2") == 100
    assert admin.customer_view(shop.chain, "ana2")["merged_into"] is None
    assert any("only head office merges" in str(f["reason"]) for f in ingest.flags(shop.chain))


def test_the_preview_shows_both_balances_what_moves_and_the_sum(shop: Shop) -> None:
    shop.push(sale("ana", 1000, 120), sale("ana2", 800, 30, mode="credit"))
    preview = admin.merge_preview(shop.chain, "ana", CARDS["ana2"] and "ana2")
    assert preview["survivor"]["points_balance"] == 120
    assert preview["merged"]["points_balance"] == 30
    assert preview["after"] == {"points_balance": 150, "credit_balance": 800,
                                "purchases_count": 2}
    assert [i["value"] for i in preview["moves"]] == [CARDS["ana2"]]


# --- a lost card replaced at HQ ----------------------------------------------------------


def test_a_lost_card_replaced_at_hq_is_two_hq_facts_and_keeps_the_balance(shop: Shop) -> None:
    shop.push(sale("ana", 1000, 120))
    admin.replace_card(shop.chain, "ana", CARDS["ana"], NEW_CARD, by=OLGA,
                       reason="lost on the bus")
    facts = shop.chain.db.all("SELECT type, event FROM events WHERE outlet_id = 'HQ' "
                              "ORDER BY seq")
    assert [f["type"] for f in facts] == ["identifier.status_changed", "identifier.added"]
    view = admin.customer_view(shop.chain, "ana")
    assert {(i["value"], i["status"]) for i in view["identifiers"]} == {
        (CARDS["ana"], "lost"), (NEW_CARD, "active")}
    assert view["points_balance"] == 120
    assert admin.resolve_customer(shop.chain, NEW_CARD) == "ana"
    urgent = shop.chain.db.one("SELECT urgent FROM changes WHERE kind = 'customer' AND "
                               "key = 'ana'")
    assert urgent is not None
    (row,) = shop.chain.db.all("SELECT * FROM audit")
    assert (row["action"], row["customer_id"], row["reason"]) == ("card.replace", "ana",
                                                                  "lost on the bus")
    assert CARDS["ana"] not in row["before"] + row["after"]  # masked to the last 4 digits
    assert "****0015" in row["before"] and "****0046" in row["after"]


@pytest.mark.parametrize(("lost", "card", "code"), [
    (CARDS["ana"], CARDS["iva"], "card_in_use"),     # another customer's
    (CARDS["ana"], CARDS["ana"], "card_in_use"),     # this customer's own
    (CARDS["ana"], "2900010000047", "invalid_request"),  # a check digit typo
    (CARDS["ana"], "12ab", "invalid_request"),
    (CARDS["iva"], NEW_CARD, "invalid_request"),     # not this customer's card
])
def test_a_refused_card_replacement_says_why_and_changes_nothing(
        shop: Shop, lost: str, card: str, code: str) -> None:
    before = shop.state()
    with pytest.raises((InvalidRequest, CardInUse)) as refused:
        admin.replace_card(shop.chain, "ana", lost, card, by=OLGA)
    assert refused.value.code == code
    assert shop.state() == before


# --- the picture ----------------------------------------------------------------------------


def test_an_uploaded_picture_is_an_hq_fact_that_reaches_outlets_and_is_audited(
        shop: Shop) -> None:
    raw = png(300, 200, "JPEG")
    admin.set_picture(shop.chain, "ana", raw, by=OLGA, reason="new photo")
    assert admin.picture(shop.chain, "ana") == raw
    (fact,) = shop.chain.db.all("SELECT type FROM events WHERE outlet_id = 'HQ'")
    assert fact["type"] == "customer.updated"
    with shop.chain.db.read() as conn:
        doc = feed.render(conn, "customer", "ana")
    assert doc is not None and base64.b64decode(doc["picture"]) == raw
    (row,) = shop.chain.db.all("SELECT action, before, after FROM audit")
    assert row["action"] == "customer.picture"
    assert "JPEG 300x200" in row["after"] and len(row["after"]) < 100  # no bytes in the trail


@pytest.mark.parametrize("raw", [png(301, 10), png(10, 301), png(20, 20, "GIF"),
                                 b"not a picture at all", b"", png(50, 50)[:60]])
def test_a_picture_too_large_or_not_an_image_is_refused_and_changes_nothing(
        shop: Shop, raw: bytes) -> None:
    before = shop.state()
    with pytest.raises(InvalidRequest) as refused:
        admin.set_picture(shop.chain, "ana", raw, by=OLGA)
    assert (refused.value.code, refused.value.context.get("field")) == ("invalid_request",
                                                                         "picture")
    if raw:  # the admin API's PATCH is checked the same way ("" there removes the picture)
        with pytest.raises(InvalidRequest):
            admin.edit_customer(shop.chain, "ana",
                                {"picture": base64.b64encode(raw).decode()}, by=OLGA)
    assert shop.state() == before


def test_a_picture_over_the_byte_cap_is_refused(shop: Shop) -> None:
    noise = Image.frombytes("RGB", (300, 300), bytes(range(256)) * 1055)
    out = io.BytesIO()
    noise.save(out, format="PNG", compress_level=0)
    out.write(b"\0" * 300_000)  # a PNG of 300x300 padded over 512 KiB
    with pytest.raises(InvalidRequest, match="KiB"):
        admin.set_picture(shop.chain, "ana", out.getvalue(), by=OLGA)
