"""Money typed by people (schema.money.parse_money): every spelling of an amount a person
may type is read as the same minor units, and anything ambiguous is refused with a message
that says what is expected (issue 9: `50,00` was once read as 5,000.00)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schema.errors import InvalidRequest
from schema.money import MAX_AMOUNT, money, parse_money

in_range = st.integers(0, MAX_AMOUNT)


@pytest.mark.parametrize("text, minor", [
    ("50", 5000), ("50.00", 5000), ("50,00", 5000), ("50.5", 5050), ("50,5", 5050),
    ("1.234,56", 123456), ("1,234.56", 123456), ("  76.09 ", 7609), ("\t0,01\n", 1),
    ("0", 0), ("1.234.567,89", 123456789), ("1,234,567.89", 123456789),
    ("1,234,567", 123456700), ("1.234.567", 123456700), ("007.50", 750),
])
def test_every_usual_spelling_of_an_amount_is_read_as_its_minor_units(text: str,
                                                                       minor: int) -> None:
    assert parse_money(text) == minor


@pytest.mark.parametrize("text, why", [
    ("1,234", "ambiguous"), ("1.234", "ambiguous"), ("12,345", "ambiguous"),
    ("50.001", "ambiguous"), ("50,1234", "more than 2 decimals"), ("", "empty"),
    ("   ", "empty"), ("50 00", "not an amount"), ("5O", "not an amount"),
    ("€50", "not an amount"), ("50 EUR", "not an amount"), ("1e3", "not an amount"),
    ("1,2,3", "not an amount"), ("1.234,5.6", "not an amount"), ("1,23.45", "not an amount"),
    ("1,2345.00", "not an amount"), ("1.234.56", "not an amount"), (".50", "not an amount"),
    ("50.", "not an amount"), ("+50", "not an amount"), ("٥٠", "not an amount"),
    ("1\u00a0234,56", "not an amount"), ("12,34,56", "not an amount"),
    ("1,234.567.89", "not an amount"), ("1.234,567", "more than 2 decimals"),
    ("-5", "negative"), ("99999999999999", "at most"), ("9" * 5000, "at most"),
])
def test_an_ambiguous_or_malformed_amount_is_refused_saying_what_is_expected(
        text: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_money(text)
    assert why in refused.value.message
    if why != "at most":
        assert "like 50, 50.00, 50,00, 1.234,56 or 1,234.56" in refused.value.message


def test_a_negative_amount_is_read_only_where_it_is_allowed() -> None:
    assert parse_money("-1.234,56", negative=True) == -123456
    assert parse_money(" -0.05", negative=True) == -5
    with pytest.raises(InvalidRequest, match="negative"):
        parse_money("-0.05")


def test_the_field_is_named_in_the_message() -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_money("1,234", field="amount")
    assert refused.value.message.startswith("amount: '1,234' is ambiguous")


@given(in_range, st.booleans())
def test_formatting_then_parsing_gives_the_amount_back(minor: int, grouped: bool) -> None:
    assert parse_money(money(minor, grouped)) == minor


@given(st.integers(-MAX_AMOUNT, MAX_AMOUNT))
def test_negative_amounts_round_trip_where_allowed(minor: int) -> None:
    assert parse_money(money(minor), negative=True) == minor


@st.composite
def spellings(draw: st.DrawFn) -> tuple[int, str]:
    """An amount and one way a person could type it (either convention, any grouping)."""
    minor = draw(in_range)
    whole, part = divmod(minor, 100)
    comma_decimal = draw(st.booleans())
    point, group = (",", ".") if comma_decimal else (".", ",")
    digits = str(whole)
    if draw(st.booleans()) and whole >= 1000:
        chunks = []
        while digits:
            chunks.insert(0, digits[-3:])
            digits = digits[:-3]
        digits = group.join(chunks)
    if part == 0:
        decimals = draw(st.sampled_from(["", f"{point}00", f"{point}0"]))
    elif part % 10 == 0:
        decimals = draw(st.sampled_from([f"{point}{part // 10}", f"{point}{part:02d}"]))
    else:
        decimals = f"{point}{part:02d}"
    if decimals == "" and group in digits and digits.count(group) == 1:
        decimals = f"{point}00"  # "1,234" alone is ambiguous: people add the decimals
    pad = draw(st.sampled_from(["", " ", "  ", "\t"]))
    return minor, f"{pad}{digits}{decimals}{pad}"


@given(spellings())
def test_any_spelling_of_an_amount_gives_the_same_minor_units(case: tuple[int, str]) -> None:
    minor, text = case
    assert parse_money(text) == minor


@given(st.text(alphabet="0123456789.,- +€e\u00a0", max_size=16))
def test_any_input_is_refused_cleanly_or_read_as_its_canonical_form(text: str) -> None:
    try:
        minor = parse_money(text, negative=True)
    except InvalidRequest as refused:
        assert refused.message
        return
    assert -MAX_AMOUNT <= minor <= MAX_AMOUNT
    assert parse_money(money(minor), negative=True) == minor
    assert parse_money(money(minor, grouped=False), negative=True) == minor
