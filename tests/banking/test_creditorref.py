"""ISO 11649 RF creditor references (banking.creditorref): generation, validation, the
printed and electronic forms, and exactly which typing errors the mod-97 check catches.

The maths the properties rest on (docs/statements.md repeats it for clerks):
the check is ISO 7064 MOD 97-10 over the reference's *numeric expansion* (digits stay,
A=10 ... Z=35, the RF and check digits moved to the end). Changing one character changes
that number by (new - old) * 10^k when both characters have the same width (digit for
digit, letter for letter); |new - old| is 1..25, below 97 and 97 is prime, so the change is
always caught. A digit for a letter changes the width and the number's shape, and is missed
about once in 97. Swapping two adjacent characters of the same width is always caught
(9*(a-b) or 99*(a-b) with |a-b| < 97); a digit next to a letter is caught unless the two
expand to the same digits: B1/1B ("111"), M2/2M ("222"), X3/3X ("333").
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banking import creditorref
from schema.errors import InvalidCreditorReference

ALNUM = string.digits + string.ascii_uppercase
SAME_EXPANSION = {"B1", "1B", "M2", "2M", "X3", "3X"}

invoice_numbers = st.builds(lambda year, n: f"{year}-{n:06d}",
                            st.integers(2000, 2999), st.integers(1, 999_999))
bodies = st.text(alphabet=ALNUM, min_size=1, max_size=21)


# --- the standard's published examples, check digits verified by hand ------------------


@pytest.mark.parametrize("printed, electronic", [
    ("RF18 5390 0754 7034", "RF18539007547034"),
    # the same reference padded to the full 21 characters: leading zeros do not change
    # the number, so the check digits stay 18
    ("RF18 0000 0000 0539 0075 4703 4", "RF18000000000539007547034"),
    ("RF71 2348 231", "RF712348231"),
])
def test_published_examples_validate_and_print_in_groups_of_four(printed: str,
                                                                   electronic: str) -> None:
    assert creditorref.validate(printed) == electronic
    assert creditorref.validate(electronic.lower()) == electronic
    assert creditorref.printed(electronic) == printed
    assert creditorref.from_body(electronic[4:]) == electronic


def test_a_reference_of_twenty_one_zeros_and_a_one_has_check_digits_74_not_18() -> None:
    # "RF18 0000 0000 0000 0000 0000 1" is quoted in places as an example; worked out,
    # 1 followed by RF00 = 1271500, 98 - 1271500 mod 97 = 74.
    assert not creditorref.is_valid("RF18 0000 0000 0000 0000 0000 1")
    assert creditorref.from_body("0" * 20 + "1") == "RF74" + "0" * 20 + "1"


def test_an_invoice_number_becomes_its_digits_after_rf_and_check_digits() -> None:
    assert creditorref.for_invoice("2026-000123") == "RF462026000123"
    assert creditorref.printed(creditorref.for_invoice("2026-000123")) == "RF46 2026 0001 23"


@pytest.mark.parametrize("text, why", [
    ("", "empty"),
    ("RF", "too short"),
    ("RF18", "too short"),
    ("XX18539007547034", "starts with RF"),
    ("RFAB539007547034", "two check digits"),
    ("RF18 5390 0754 7035", "check digits"),
    ("RF18539007547034" + "0" * 10, "at most 25"),
    ("RF18 5390-0754-7034", "letters and digits"),
    ("RF18 5390 0754 703Ä", "letters and digits"),
])
def test_malformed_references_are_refused_with_what_is_wrong(text: str, why: str) -> None:
    assert not creditorref.is_valid(text)
    with pytest.raises(InvalidCreditorReference) as refused:
        creditorref.validate(text)
    assert why in refused.value.message


@pytest.mark.parametrize("number", ["", "---", "2026_000123", "2026-0001234567890123456789",
                                    "2026-ﬁ"])
def test_an_invoice_number_that_cannot_be_a_reference_is_refused(number: str) -> None:
    with pytest.raises(InvalidCreditorReference):
        creditorref.for_invoice(number)


# --- properties ------------------------------------------------------------------------


@given(invoice_numbers)
def test_every_reference_made_for_an_invoice_validates(number: str) -> None:
    reference = creditorref.for_invoice(number)
    assert len(reference) <= 25
    assert creditorref.validate(reference) == reference
    assert creditorref.validate(creditorref.printed(reference)) == reference
    assert creditorref.validate(f"  {creditorref.printed(reference).lower()} ") == reference


@given(bodies)
def test_every_reference_made_from_any_body_validates(body: str) -> None:
    reference = creditorref.from_body(body)
    assert reference.startswith("RF") and reference[4:] == body
    assert creditorref.is_valid(reference)


def _substitutions(reference: str) -> list[tuple[int, str, str]]:
    return [(i, reference[:i] + c + reference[i + 1:], c)
            for i in range(len(reference)) for c in ALNUM if c != reference[i]]


@given(bodies)
def test_any_substitution_of_the_same_kind_of_character_fails(body: str) -> None:
    reference = creditorref.from_body(body)
    for i, changed, new in _substitutions(reference):
        if i < 4 or new.isdigit() == reference[i].isdigit():
            assert not creditorref.is_valid(changed), (reference, changed)


@given(invoice_numbers)
def test_any_single_change_to_an_invoice_reference_fails_or_can_name_no_invoice(
        number: str) -> None:
    """Our references are all digits after RF: a digit for a digit is always caught, and a
    change that slips through has a letter in it, so it is no invoice's reference."""
    reference = creditorref.for_invoice(number)
    assert reference[2:].isdigit()
    for _, changed, _new in _substitutions(reference):
        if creditorref.is_valid(changed):
            assert not changed[2:].isdigit(), (reference, changed)


def test_a_digit_for_a_letter_can_slip_through_as_the_standard_allows() -> None:
    # 2026-000123's reference with its 6th character 0 typed as E still validates: the
    # one-in-97 case the maths above predicts. It can match no invoice (ours are digits).
    assert creditorref.is_valid("RF462E26000123")


@given(bodies)
def test_any_adjacent_transposition_fails_unless_both_spell_the_same_digits(body: str) -> None:
    reference = creditorref.from_body(body)
    for i in range(len(reference) - 1):
        a, b = reference[i], reference[i + 1]
        if a == b or a + b in SAME_EXPANSION:
            continue
        swapped = reference[:i] + b + a + reference[i + 2:]
        assert not creditorref.is_valid(swapped), (reference, swapped)


def test_the_transpositions_mod_97_cannot_see_validate() -> None:
    reference = creditorref.from_body("7B1")
    assert creditorref.is_valid(reference[:5] + "1B")


def test_a_ligature_that_upper_cases_into_letters_is_not_a_reference() -> None:
    # "ﬁ".upper() == "FI": without an ASCII check this would read as a valid reference
    reference = creditorref.from_body("1234FI")
    with pytest.raises(InvalidCreditorReference, match="letters and digits"):
        creditorref.validate(reference[:-2] + "ﬁ")
