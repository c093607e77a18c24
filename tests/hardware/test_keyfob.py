"""Electronic keys: hex ids with an optional XOR checksum, one per line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.keyfob import checksum, parse_key
from hardware.reads import ParseError


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("04a1b2", "04A1B2"),
        ("04A1B2C3", "04A1B2C3"),
        ("04 A1 B2 C3", "04A1B2C3"),
        ("04:A1:B2:C3*D4", "04A1B2C3"),
        ("01020304050607FF", "01020304050607FF"),
    ],
)
def test_key_lines_give_uppercase_hex_ids(line: str, key: str) -> None:
    assert parse_key(line) == key


def test_checksum_is_the_xor_of_the_id_bytes() -> None:
    assert checksum("04A1B2C3") == "D4"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("04A1B2C3*00", "key_checksum"),
        ("04A1B", "key_garbled"),
        ("", "key_garbled"),
        ("ZZ", "key_garbled"),
        ("0102030405060708FF", "key_garbled"),
        ("04A1:", "key_garbled"),
    ],
)
def test_bad_key_lines_are_parse_errors(line: str, code: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_key(line)
    assert caught.value.code == code


@given(st.binary(max_size=40))
def test_random_bytes_give_a_key_or_a_parse_error(data: bytes) -> None:
    try:
        key = parse_key(data.decode("latin-1"))
    except ParseError:
        return
    assert len(key) % 2 == 0 and int(key, 16) >= 0
