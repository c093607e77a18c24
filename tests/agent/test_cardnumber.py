"""Club card numbers (agent.cardnumber): EAN-13 check digit, per-outlet ranges, no collisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import cardnumber
from agent.cardnumber import CardNumberError, check_digit, is_valid, make, parse
from schema.errors import CardRangeExhausted

ranges = st.integers(1, cardnumber.MAX_RANGE)
serials = st.integers(1, cardnumber.MAX_SERIAL)


def test_check_digit_of_a_known_ean13() -> None:
    # 4006381333931 is the textbook EAN-13 example
    assert check_digit("400638133393") == "1"
    assert check_digit("290001000001") == "5"


@given(ranges, serials)
def test_a_card_number_is_13_digits_in_store_prefix_and_valid(card_range: int,
                                                            serial: int) -> None:
    number = make(card_range, serial)
    assert len(number) == 13 and number.isdigit() and number.startswith("29")
    assert is_valid(number)
    assert parse(number) == (card_range, serial)
    assert parse(f"  {number}\n") == (card_range, serial)


@given(ranges, serials, st.integers(0, 12), st.integers(1, 9))
def test_the_check_digit_catches_every_single_digit_error(card_range: int, serial: int,
                                                          position: int, shift: int) -> None:
    number = make(card_range, serial)
    wrong_digit = str((int(number[position]) + shift) % 10)
    typo = number[:position] + wrong_digit + number[position + 1:]
    assert typo != number
    assert not is_valid(typo)
    with pytest.raises(CardNumberError):
        parse(typo)


@given(ranges, serials, ranges, serials)
def test_different_ranges_or_serials_never_give_the_same_number(r1: int, s1: int, r2: int,
                                                                s2: int) -> None:
    assert (make(r1, s1) == make(r2, s2)) == ((r1, s1) == (r2, s2))


@given(st.lists(ranges, min_size=2, max_size=5, unique=True), st.integers(1, 200))
def test_outlets_issuing_offline_at_once_never_collide(outlet_ranges: list[int],
                                                       issued: int) -> None:
    numbers = [make(r, s) for r in outlet_ranges for s in range(1, issued + 1)]
    assert len(set(numbers)) == len(numbers)


@pytest.mark.parametrize("card_range, serial", [
    (0, 1), (cardnumber.MAX_RANGE + 1, 1), (1, 0), (-1, 5),
])
def test_numbers_outside_the_range_or_past_its_end_are_refused(card_range: int,
                                                             serial: int) -> None:
    with pytest.raises(CardNumberError):
        make(card_range, serial)
    with pytest.raises(CardRangeExhausted, match="ask HQ for a new card range"):
        make(1, cardnumber.MAX_SERIAL + 1)


@pytest.mark.parametrize("text", [
    "", "290001000001", "29000100000155", "2900010000015x", "3900010000012",
    "٢٩٠٠٠١٠٠٠٠٠١٥",  # Arabic-Indic digits are digits, but not card digits
    "29 0001 000001 5",
])
def test_malformed_numbers_are_not_valid(text: str) -> None:
    assert not is_valid(text)
    with pytest.raises(CardNumberError):
        parse(text)
