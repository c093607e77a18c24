"""Receipts as evidence for a return (schema/receiptcode.py): the printed reference and its
check character, the receipt code that carries the sale to an outlet that cannot see it,
and the per-card bound on refunds an outlet cannot check."""

from __future__ import annotations

import base64
import zlib
from uuid import UUID

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schema.errors import OfflineLimitExceeded, ReceiptInvalid
from schema.events import Payment, SaleLine, SaleRecorded, new_id
from schema.receiptcode import (
    ALPHABET,
    CODE_PREFIX,
    MAX_CODE,
    ReceiptData,
    check_floor_returns,
    decode,
    encode,
    parse_reference,
    reference,
    sale_id_prefix,
    worst_loss,
)

SALE_ID = "0190a1b2-c3d4-7abc-8def-0123456789ab"


def a_sale(lines: int = 2, sale_id: str = SALE_ID) -> SaleRecorded:
    sold = [SaleLine(sku=f"SKU-{i}", name=f"Item number {i}", qty=i + 1, unit_price=1000 + i,
                     division="wine" if i % 2 else None, gross=(i + 1) * (1000 + i), discount=i,
                     net=(i + 1) * (1000 + i) - i, actions=["Category B 7%"] if i else [])
            for i in range(lines)]
    total = sum(ln.net for ln in sold)
    return SaleRecorded(sale_id=sale_id, customer_id="0190a1b2-0000-7000-8000-000000000001",
                        till_id="T1", currency="EUR", lines=sold,
                        payments=[Payment(mode="card", amount=total - 100),
                                  Payment(mode="cash", amount=100)],
                        total_gross=sum(ln.gross for ln in sold),
                        total_discount=sum(ln.discount for ln in sold), total_net=total,
                        points_earned=17)


# --- the reference ----------------------------------------------------------------------


def test_a_reference_is_twelve_symbols_and_a_check_in_groups_of_four() -> None:
    ref = reference(SALE_ID)
    assert len(ref) == 16 and ref.count("-") == 3
    assert all(c in ALPHABET for c in ref.replace("-", ""))
    assert SALE_ID.startswith(sale_id_prefix(ref)) and len(sale_id_prefix(ref)) == 18


def test_the_reference_of_the_docs_example_is_a_real_one() -> None:
    assert reference(SALE_ID) == "068A-3CP3-TJNW-M" == parse_reference("068a 3cp3 tjnw m")


def test_a_reference_leads_back_to_its_sale() -> None:
    for _ in range(200):
        sale_id = new_id()
        assert sale_id.startswith(sale_id_prefix(parse_reference(reference(sale_id))))


def test_references_of_one_outlets_sales_differ() -> None:
    refs = {reference(new_id()) for _ in range(2000)}  # one process: milliseconds increase
    assert len(refs) == 2000


def test_a_reference_is_read_as_people_type_it() -> None:
    ref = reference(SALE_ID)
    typed = ref.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert parse_reference(f"  {typed} ") == ref


def test_every_single_mistyped_character_is_caught() -> None:
    ref = reference(SALE_ID)
    plain = ref.replace("-", "")
    for i, c in enumerate(plain):
        for other in ALPHABET:
            if other != c:
                with pytest.raises(ReceiptInvalid):
                    parse_reference(plain[:i] + other + plain[i + 1:])


def test_nearly_every_swap_of_neighbours_is_caught() -> None:
    caught = tried = 0
    for _ in range(300):
        plain = reference(new_id()).replace("-", "")
        for i in range(len(plain) - 1):
            if plain[i] == plain[i + 1]:
                continue
            tried += 1
            try:
                parse_reference(plain[:i] + plain[i + 1] + plain[i] + plain[i + 2:])
            except ReceiptInvalid:
                caught += 1
    assert caught / tried > 0.99


@pytest.mark.parametrize("text", ["", "068A", "068A-3CP3-TJNW-MM", "068A-3CP3-TJNW-!",
                                  "UUUU-UUUU-UUUU-U"])
def test_a_reference_that_is_not_one_is_receipt_invalid(text: str) -> None:
    with pytest.raises(ReceiptInvalid) as caught:
        parse_reference(text)
    assert caught.value.code == "receipt_invalid"


def test_only_a_uuid7_sale_id_has_a_reference() -> None:
    with pytest.raises(ValueError):
        reference(str(UUID(int=5, version=4)))


# --- the receipt code -----------------------------------------------------------------


def test_the_code_carries_the_sale_as_recorded_less_its_action_names() -> None:
    s = a_sale(5)
    code = encode("SHOP-1", "2025-06-01T12:00:00.000000Z", s)
    assert code is not None and code.startswith(CODE_PREFIX) and len(code) <= MAX_CODE
    data = decode(code)
    assert data == ReceiptData("SHOP-1", "2025-06-01T12:00:00.000000Z", data.sale)
    expected = s.model_copy(update={"lines": [ln.model_copy(update={"actions": []})
                                              for ln in s.lines]})
    assert data.sale == expected


def test_a_code_survives_being_read_in_lower_case_with_spaces() -> None:
    code = encode("SHOP-1", "2025-06-01T12:00:00Z", a_sale())
    assert code is not None
    assert decode(" " + code.lower() + "\n").sale == decode(code).sale


def test_a_damaged_code_is_receipt_invalid() -> None:
    code = encode("SHOP-1", "2025-06-01T12:00:00Z", a_sale())
    assert code is not None
    for i in range(len(CODE_PREFIX), len(code), 7):
        damaged = code[:i] + ("A" if code[i] != "A" else "B") + code[i + 1:]
        with pytest.raises(ReceiptInvalid):
            decode(damaged)


@pytest.mark.parametrize("text", ["", "LR1:", "LR9:AAAA", "hello", "LR1:!!!!", "LR1:AAAAAAAAAA"])
def test_text_that_is_no_code_is_receipt_invalid(text: str) -> None:
    with pytest.raises(ReceiptInvalid):
        decode(text)


def forged(payload: bytes) -> str:
    import hashlib
    body = payload + hashlib.sha256(payload).digest()[:5]
    return CODE_PREFIX + base64.b32encode(body).decode().rstrip("=")


def test_a_well_checked_code_with_a_bad_sale_inside_is_receipt_invalid() -> None:
    with pytest.raises(ReceiptInvalid):
        decode(forged(zlib.compress(b'[1, "SHOP-1"]')))
    with pytest.raises(ReceiptInvalid):
        decode(forged(zlib.compress(b"not json")))


def test_a_code_that_inflates_beyond_any_sale_is_refused_unread() -> None:
    with pytest.raises(ReceiptInvalid):
        decode(forged(zlib.compress(b"[" + b" " * 1_000_000 + b"]", 9)))


def test_a_sale_too_big_for_a_code_has_none() -> None:
    assert encode("SHOP-1", "2025-06-01T12:00:00Z", a_sale(400)) is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30), st.text(max_size=40), st.text(min_size=1, max_size=30))
def test_any_sale_that_fits_comes_back_as_it_went(lines: int, name: str, sku: str) -> None:
    s = a_sale(lines)
    s = s.model_copy(update={"lines": [ln.model_copy(update={"name": name, "sku": sku})
                                       for ln in s.lines]})
    code = encode("O", "2025-01-01T00:00:00Z", s)
    if code is not None:
        assert decode(code).sale.model_dump() == s.model_copy(update={"lines": [
            ln.model_copy(update={"actions": []}) for ln in s.lines]}).model_dump()


# --- the bound ------------------------------------------------------------------------


def test_refunds_within_the_floor_pass() -> None:
    check_floor_returns(15_000, 5_000, 20_000)


def test_a_refund_beyond_the_cards_floor_is_refused_saying_where_to_go() -> None:
    with pytest.raises(OfflineLimitExceeded) as caught:
        check_floor_returns(15_000, 5_001, 20_000)
    assert caught.value.code == "offline_limit_exceeded"
    assert caught.value.context == {"floor_returns": 20_000, "refunded": 15_000}
    assert "200.01" in caught.value.message and "where it was bought" in caught.value.message


def test_a_refund_beyond_the_outlets_floor_is_refused() -> None:
    with pytest.raises(OfflineLimitExceeded) as caught:
        check_floor_returns(0, 5_000, 20_000, outlet_refunded=498_000, outlet_floor=500_000)
    assert caught.value.context["outlet_floor_returns"] == 500_000


def test_the_worst_loss_is_every_outlets_floor_once_per_window() -> None:
    assert worst_loss(outlets=4, floor_returns=20_000, days=10).per_card == 80_000
    assert worst_loss(outlets=4, floor_returns=20_000, days=31, window_days=30).per_card == 160_000
    chain = worst_loss(outlets=4, floor_returns=20_000, days=10, cards=3, outlet_floor=50_000)
    assert chain.per_chain == 200_000  # each outlet: min(3 x 200.00, 500.00)
    assert worst_loss(outlets=4, floor_returns=20_000, days=10, cards=3).per_chain == 240_000


# --- forged codes: a correct check, anything inside -------------------------------------


def _forged(payload: object, text: str | None = None) -> str:
    """A code whose check matches `payload` (or JSON `text`): the check is not a signature."""
    import hashlib
    import json

    raw = zlib.compress((json.dumps(payload) if text is None else text).encode(), 9)
    body = raw + hashlib.sha256(raw).digest()[:5]
    return CODE_PREFIX + base64.b32encode(body).decode().rstrip("=")


def _receipt(lines: object, points: object = 5, payments: object = None) -> list[object]:
    return [1, "O2", "2026-01-01T00:00:00Z", SALE_ID, "c1", "T1", "EUR", points, lines,
            [["cash", 1]] if payments is None else payments]


@pytest.mark.parametrize("qty,price", [("x" * 1000, 10**9), ([0] * 100, 10**9),
                                       (10**9, "x" * 1000), (10**30, "x"), (True, 5),
                                       (2.5, 4), (0, 100), (-3, 100), (100_001, 1)])
def test_a_forged_line_is_receipt_invalid_before_any_arithmetic(qty: object,
                                                                  price: object) -> None:
    with pytest.raises(ReceiptInvalid) as caught:
        decode(_forged(_receipt([["sku", "n", qty, price, 0, None]])))
    assert caught.value.code == "receipt_invalid"


def test_a_deeply_nested_forged_code_is_receipt_invalid() -> None:
    with pytest.raises(ReceiptInvalid):
        decode(_forged(None, "[" * 100_000 + "]" * 100_000))


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False)
    | st.sampled_from([0, 1, -1, 7, 10**9, 10**12 + 1, 2**63, 10**30, -(10**30)])
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=7) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=4),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(outlet=_JSONISH, at=_JSONISH, points=_JSONISH, lines=_JSONISH, payments=_JSONISH,
       line=st.lists(_JSONISH, min_size=6, max_size=6))
def test_any_forged_code_is_a_sale_or_receipt_invalid_and_never_anything_else(
        outlet: object, at: object, points: object, lines: object, payments: object,
        line: list[object]) -> None:
    for payload in ([1, outlet, at, SALE_ID, "c1", "T1", "EUR", points, lines, payments],
                    _receipt([line], points, payments), _receipt([line])):
        try:
            data = decode(_forged(payload))
        except ReceiptInvalid:
            continue
        assert all(0 < ln.qty <= 100_000 for ln in data.sale.lines)
