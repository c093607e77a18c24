"""The statement model's rules (banking.statement, banking.reader): exact amounts in minor
units, which bytes are which format, identities that survive a second reading."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from statementkit import camt053

from banking.reader import parse_statements
from banking.statement import CURRENCY_DECIMALS, decimals, minor_units
from schema.errors import InvalidStatement

currencies = st.sampled_from(["EUR", "USD", "SEK", *CURRENCY_DECIMALS])


@given(st.integers(0, 10**15), currencies, st.integers(0, 3), st.sampled_from([".", ","]))
def test_an_amount_written_with_any_trailing_zeros_reads_back_exactly(
        minor: int, currency: str, zeros: int, separator: str) -> None:
    places = decimals(currency)
    whole, part = divmod(minor, 10**places)
    text = f"{whole}{separator}{part:0{places}d}{'0' * zeros}" if places or zeros else str(whole)
    assert minor_units(text, currency, separator=separator) == minor


@given(st.integers(1, 9), currencies)
def test_a_digit_below_the_minor_unit_is_refused(digit: int, currency: str) -> None:
    places = decimals(currency)
    with pytest.raises(InvalidStatement, match=f"more decimals than {currency}"):
        minor_units("1." + "0" * places + str(digit), currency)


@pytest.mark.parametrize("text, currency, minor", [
    ("1234.5", "EUR", 123450), ("0.01", "EUR", 1), ("1234.", "EUR", 123400),
    ("007", "EUR", 700), ("1234", "JPY", 1234), ("1.234", "KWD", 1234),
    ("999999999999999999", "JPY", 999_999_999_999_999_999),
])
def test_amounts_as_banks_write_them(text: str, currency: str, minor: int) -> None:
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize("text, currency", [
    ("-1.00", "EUR"), ("+1.00", "EUR"), ("1e3", "EUR"), ("1,00", "EUR"), (".5", "EUR"),
    ("", "EUR"), ("1 000.00", "EUR"), ("0.5", "JPY"), ("1.00", "eur"), ("1.00", "EURO"),
    ("1" * 19, "JPY"), ("١٢٣", "EUR"),
])
def test_what_is_not_an_amount_is_refused(text: str, currency: str) -> None:
    with pytest.raises(InvalidStatement):
        minor_units(text, currency)


@pytest.mark.parametrize("data", [
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj",
    b"date;amount;text\n2026-03-15;12,50;x\n",
    b"   \n\t ",
    b"\xef\xbb\xbf",
])
def test_a_file_of_another_kind_is_refused_saying_what_is_accepted(data: bytes) -> None:
    with pytest.raises(InvalidStatement) as refused:
        parse_statements(data)
    assert "camt.053" in refused.value.message or "empty" in refused.value.message


def test_a_byte_order_mark_and_leading_blank_lines_do_not_hide_the_format() -> None:
    (statement,) = parse_statements(b"\xef\xbb\xbf\n" + camt053(8))
    assert statement.format == "camt.053"


def test_reading_the_same_file_twice_gives_the_same_identities() -> None:
    first = [e.identity for s in parse_statements(camt053(8)) for e in s.entries]
    again = [e.identity for s in parse_statements(camt053(8)) for e in s.entries]
    assert first == again and len(set(first)) == len(first)


def test_two_entries_the_bank_gave_one_reference_get_distinct_identities() -> None:
    from statementkit import Ntry
    entries = [Ntry("1.00", acct_svcr_ref="SAME"), Ntry("2.00", acct_svcr_ref="SAME")]
    (statement,) = parse_statements(camt053(8, entries))
    identities = [e.identity for e in statement.entries]
    assert len(set(identities)) == 2
    assert identities == [e.identity for e in parse_statements(camt053(8, entries))[0].entries]


def test_an_entry_names_itself_for_the_invoice_it_pays() -> None:
    (statement,) = parse_statements(camt053(8))
    first, last = statement.entries[0], statement.entries[-1]
    assert first.statement_reference == "STMT-20260315-001 2026031500001"
    assert last.statement_reference == "STMT-20260315-001 entry 6"
