"""Barcodes as scanners deliver them: EAN-13/EAN-8 with check digits, Code 128, AIM ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.barcode import ean_check_digit, parse_barcode
from hardware.reads import ParseError


@pytest.mark.parametrize(
    ("text", "value", "symbology"),
    [
        ("4006381333931", "4006381333931", "ean13"),  # a real product EAN-13
        ("]E02900010000015", "2900010000015", "ean13"),  # a club card, AIM-prefixed
        ("96385074", "96385074", "ean8"),
        ("]E496385074", "96385074", "ean8"),
        ("]C0LOY-000123", "LOY-000123", "code128"),
        ("LOY-000123", "LOY-000123", "code128"),
        ("]C1010123456789012815\x1d10ABC", "010123456789012815\x1d10ABC", "gs1-128"),
        ("]C02900010000018", "2900010000018", "code128"),  # AIM says Code 128: no EAN check
    ],
)
def test_scanned_codes_give_value_and_symbology(text: str, value: str, symbology: str) -> None:
    code = parse_barcode(text)
    assert (code.value, code.symbology) == (value, symbology)


def test_ean_check_digit_matches_known_codes() -> None:
    assert ean_check_digit("400638133393") == "1"
    assert ean_check_digit("9638507") == "4"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("4006381333932", "check_digit"),
        ("]E02900010000018", "check_digit"),
        ("96385075", "check_digit"),
        ("]E0290001000001", "barcode_garbled"),  # 12 digits announced as EAN-13
        ("]E0290001000001X", "barcode_garbled"),
        ("]Q1https://example.com", "barcode_unknown_format"),  # QR code
        ("]d2010123", "barcode_unknown_format"),  # Data Matrix
        ("", "barcode_empty"),
        ("]C0", "barcode_empty"),
        ("LOY\x00123", "barcode_garbled"),
        ("caf\xe9", "barcode_garbled"),
    ],
)
def test_bad_scans_are_parse_errors_with_stable_codes(text: str, code: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_barcode(text)
    assert caught.value.code == code


def test_check_digit_error_masks_the_number() -> None:
    with pytest.raises(ParseError) as caught:
        parse_barcode("2900010000018")
    assert "2900010000018" not in str(caught.value)
    assert "0018" in str(caught.value)


def test_a_scan_of_only_spaces_is_an_empty_read_not_an_empty_code() -> None:
    with pytest.raises(ParseError) as caught:
        parse_barcode("   ")
    assert caught.value.code == "barcode_empty"


@given(st.binary(max_size=64))
def test_random_bytes_give_a_code_or_a_parse_error(data: bytes) -> None:
    try:
        code = parse_barcode(data.decode("latin-1"))
    except ParseError:
        return
    assert code.value and code.symbology in {"ean13", "ean8", "code128", "gs1-128"}


@given(st.from_regex(r"(\][A-Za-z][0-9])?[0-9]{7,14}", fullmatch=True))
def test_random_digit_codes_pass_only_with_a_right_check_digit(text: str) -> None:
    try:
        code = parse_barcode(text)
    except ParseError:
        return
    if code.symbology in {"ean13", "ean8"}:
        assert ean_check_digit(code.value[:-1]) == code.value[-1]
