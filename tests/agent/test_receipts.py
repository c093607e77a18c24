"""The loyalty part of a receipt (agent.receipts, schema.errors.mask_card): short lines, the
card masked to its last 4 digits, the discount, actions and points status shown."""

from __future__ import annotations

import pytest
from agentkit import line
from hypothesis import given
from hypothesis import strategies as st

from agent import customers, receipts, sales
from agent.outlet import Outlet
from hardware.reads import mask as hardware_mask
from schema.api import CustomerIn, SaleIn
from schema.errors import mask_card

cards = st.text(alphabet="0123456789", min_size=13, max_size=19)
# free text without digits, so a card number can only reach a line through the card field
short_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Nd")),
                     max_size=80)
amounts = st.integers(0, 10**9)


@pytest.mark.parametrize("value, masked", [
    ("2900010000015", "****0015"), ("12345", "****2345"), ("1234", "****"), ("7", "****"),
    ("6011000990139424", "****9424"), ("", ""), (None, ""),
])
def test_mask_card_keeps_only_the_last_4_behind_four_stars(value: str | None, masked: str) -> None:
    """One form everywhere: four stars and the last 4 digits (nor the length is told)."""
    assert mask_card(value) == masked


@given(st.text(alphabet="0123456789ABCDEF", min_size=1, max_size=40))
def test_the_readers_mask_is_the_same_form_as_mask_card(value: str) -> None:
    """hardware/ may not import schema/, so it has its own copy: the two must agree."""
    assert hardware_mask(value) == mask_card(value)


@pytest.mark.parametrize("minor, text", [(0, "0.00"), (5, "0.05"), (1234, "12.34"),
                                         (-387, "-3.87"), (100_000_000, "1000000.00")])
def test_money_is_printed_from_minor_units_without_floats(minor: int, text: str) -> None:
    assert receipts.money(minor) == text


@given(cards, st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=40),
       st.lists(short_text, max_size=8), amounts, amounts,
       st.lists(st.tuples(st.sampled_from(["cash", "card", "credit"]), amounts), max_size=3))
def test_sale_receipt_lines_fit_40_and_mask_the_card(card: str, outlet_id: str,
                                                    priced: list[str], earned: int,
                                                    balance: int,
                                                    payments: list[tuple[str, int]]) -> None:
    lines = receipts.sale(outlet_id, card, "2025-06-01T12:34:56.123456Z", priced, earned,
                          balance, payments)
    assert all(len(x) <= receipts.WIDTH for x in lines)
    assert all(card not in x for x in lines)
    assert card[-4:] in lines[0]
    assert lines[-2].startswith("Points earned") and lines[-2].endswith(str(earned))
    assert lines[-1].startswith("Points balance") and lines[-1].endswith(str(balance))


@given(cards, short_text, st.integers(1, 1000), amounts, amounts)
def test_redemption_receipt_lines_fit_40_and_mask_the_card(card: str, gift: str, qty: int,
                                                          spent: int, balance: int) -> None:
    lines = receipts.redemption("NORTH", card, gift, qty, spent, balance,
                                "2025-06-01T12:34:56Z")
    assert all(len(x) <= receipts.WIDTH for x in lines)
    assert all(card not in x for x in lines)
    assert any(x.startswith("Points spent") and x.endswith(str(spent)) for x in lines)
    assert lines[-1].endswith(str(balance))


def test_a_sale_receipt_shows_discount_actions_and_points(outlet: Outlet) -> None:
    card = customers.register(outlet, CustomerIn(kind="person", given_name="R", surname="Ec",
                                                 category="B"))["card_number"]
    lines = [line("W-1", 1290, 2, "Merlot 2019", "wine"), line("B-1", 450, 1, "Sourdough")]
    quote = sales.quote(outlet, sales.QuoteIn(card=card, lines=lines))  # type: ignore[attr-defined]
    answer, fresh = sales.sell(outlet, SaleIn(card=card, lines=lines, payments=[
        {"mode": "card", "amount": quote["total_net"]}]), "r-1")  # type: ignore[list-item]
    assert fresh
    text = answer["receipt_lines"]
    assert all(len(x) <= 40 for x in text) and all(card not in x for x in text)
    assert any(x.startswith("Club card") and x.endswith(card[-4:]) for x in text)
    assert any("Discount" in x for x in text)
    assert any("Wine week" in x for x in text) and any("Category B" in x for x in text)
    assert any(x.startswith("Points earned") and x.endswith(str(answer["points_earned"]))
               for x in text)
    assert text[-2].startswith("Points balance") and text[-2].endswith(
        str(answer["points_balance"]))
    assert text[-1].split() == ["Receipt", answer["receipt_reference"]]  # the barcode's text
    assert any(x.startswith("Paid card") and x.endswith(receipts.money(quote["total_net"]))
               for x in text)
