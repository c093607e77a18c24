"""Reading SWIFT MT940 statements (banking.mt940 through banking.reader): the :61: marks
(C, D, RC, RD), exact amounts, the :86: details in their common structures, the SWIFT
envelope, several statements in one file, and clear refusals naming the entry."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statementkit import IBAN, Line, envelope, mt940, sample_lines

from banking.reader import parse_statement, parse_statements
from banking.statement import Statement
from schema.errors import InvalidStatement


def _read(text: str, encoding: str = "utf-8") -> Statement:
    return parse_statement(text.encode(encoding))


def test_the_sample_statement_reads_every_field() -> None:
    statement = _read(envelope(mt940()))
    assert statement.format == "mt940"
    assert statement.statement_id == "STARTUMS/00074/001"
    assert statement.account == IBAN and statement.currency == "EUR"
    assert (statement.from_date, statement.to_date) == (date(2026, 3, 14), date(2026, 3, 15))
    assert statement.opening_balance == 100000
    assert statement.closing_balance == 100000 + 123450 + 1 - 2500 - 5000 + 750 + 8000 + 10000

    first = statement.entries[0]
    assert (first.amount, first.direction, first.reversal) == (123450, "credit", False)
    assert first.booking_date == date(2026, 3, 15) and first.value_date == date(2026, 3, 15)
    assert first.bank_reference == "2026031500001"
    assert first.identity == f"bank:{IBAN}/2026031500001/C"
    assert first.end_to_end_id == "E2E-INV-2026-000123"
    assert first.remittance == "RF46 2026 0001 23 Rechnung 2026-000123"
    assert first.debtor_name == "Jürgen Müller"
    assert first.creditor_reference is None


def test_amounts_are_exact_minor_units() -> None:
    entries = _read(mt940()).entries
    assert [e.amount for e in entries] == [123450, 1, 2500, 5000, 750, 8000, 10000]


def test_marks_say_direction_and_reversal() -> None:
    entries = _read(mt940()).entries
    assert [(e.direction, e.reversal, e.mark) for e in entries] == [
        ("credit", False, "C"), ("credit", False, "C"), ("debit", False, "D"),
        ("debit", True, "RC"), ("credit", True, "RD"), ("credit", False, "C"),
        ("credit", False, "C")]


def test_slash_coded_details_give_text_name_and_structured_reference() -> None:
    entries = _read(mt940()).entries
    cent, structured = entries[1], entries[6]
    assert cent.remittance == "Invoice 2026-000124 thank you"
    assert cent.debtor_name == "Ærøskøbing Café & Søn ApS"
    assert cent.end_to_end_id is None  # NOTPROVIDED
    assert structured.creditor_reference == "RF18539007547034"
    assert structured.debtor_name == "Anna Svensson" and structured.end_to_end_id == "E2E-7"


def test_free_text_details_are_the_remittance_as_written() -> None:
    entries = _read(mt940()).entries
    assert entries[2].remittance == "Kontofuehrung 03/2026"
    assert entries[5].remittance == "MUELLER JUERGEN" and entries[5].debtor_name is None


def test_a_line_without_a_bank_reference_gets_a_stable_derived_identity() -> None:
    entry = _read(mt940()).entries[5]
    assert entry.bank_reference is None and entry.identity.startswith("hash:")
    assert entry.booking_date == date(2026, 3, 16) and entry.value_date == date(2026, 3, 15)
    assert _read(mt940()).entries[5].identity == entry.identity
    other_day = _read(mt940(opening="2247,01")).entries[5]
    assert other_day.identity != entry.identity  # same :20: STARTUMS, another statement


def test_several_statements_in_one_file_are_read_in_order() -> None:
    second = mt940(sample_lines()[:1], number="00075/001", opening="2347,01")
    statements = parse_statements(envelope(mt940(), second).encode())
    assert [s.statement_id for s in statements] == ["STARTUMS/00074/001", "STARTUMS/00075/001"]
    assert len(statements[1].entries) == 1
    plain = parse_statements((mt940() + "\n-\n" + second + "\n-\n").encode())
    assert plain == statements


def test_a_windows_1252_file_reads_its_accents() -> None:
    text = mt940([Line("C", "1,00", details="/NAME/Jürgen Müller/", bank_reference="W")])
    entries = _read(text, encoding="cp1252").entries
    assert entries[0].debtor_name == "Jürgen Müller"


def test_a_line_without_a_booking_date_is_booked_on_its_value_date() -> None:
    (entry,) = _read(mt940([Line("C", "1,00", entry="", bank_reference="X")])).entries
    assert entry.booking_date == entry.value_date == date(2026, 3, 15)


def test_a_yen_statement_has_no_decimals() -> None:
    statement = _read(mt940([Line("C", "1234,", bank_reference="Y")], currency="JPY",
                            opening="0,"))
    assert statement.entries[0].amount == 1234


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.sampled_from(["C", "D", "RC", "RD"])),
                min_size=1, max_size=8))
def test_any_statement_reads_back_its_amounts_and_marks(rows: list[tuple[int, str]]) -> None:
    lines = [Line(mark, f"{Decimal(cents) / 100}".replace(".", ",")
                  + ("" if cents % 100 else ","), bank_reference=f"R{i}")
             for i, (cents, mark) in enumerate(rows)]
    read = _read(mt940(lines)).entries
    assert [(e.amount, e.mark) for e in read] == rows


# --- refusals ---------------------------------------------------------------------------


def _refused(text: str) -> InvalidStatement:
    with pytest.raises(InvalidStatement) as refused:
        parse_statements(text.encode())
    assert refused.value.code == "invalid_statement"
    return refused.value


def test_more_decimals_than_the_currency_has_is_refused_naming_the_entry() -> None:
    lines = sample_lines()
    lines[2] = Line("D", "25,001", bank_reference="X")
    error = _refused(mt940(lines, closing="2347,01"))
    assert "entry 3" in error.message and ":61:" in error.message and "25.001" in error.message
    assert error.context["entry"] == "3"


@pytest.mark.parametrize("bad", [
    ":61:garbage",
    ":61:2613150315C1,00NTRFNONREF//X",  # month 13
    ":61:2603150315C1,2,3NTRFNONREF//X",
    ":61:2603150315X1,00NTRFNONREF//X",
])
def test_an_unreadable_statement_line_is_refused_naming_its_entry(bad: str) -> None:
    lines = mt940(sample_lines()[:2]).split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(":62F:"))
    error = _refused("\n".join([*lines[:at], bad, *lines[at:]]))
    assert "entry 3" in error.message


def test_a_statement_line_that_would_merge_into_the_next_is_refused() -> None:
    # without its transaction type (NTRF) the library adds the next line to this one
    text = mt940(sample_lines()[:1], closing="1236,50")
    error = _refused(text.replace(":61:", ":61:2603150315C2,00//X\n:61:", 1))
    assert ":61:" in error.message and "2 :61: lines but 1" in error.message


@pytest.mark.parametrize("tag", [":25:", ":60F:", ":62F:"])
def test_a_statement_without_a_mandatory_tag_is_refused_naming_it(tag: str) -> None:
    text = "\n".join(line for line in mt940().split("\n") if not line.startswith(tag))
    assert tag in _refused(text).message


def test_entries_that_do_not_add_up_to_the_closing_balance_are_refused() -> None:
    assert "do not add up" in _refused(mt940(closing="1,00")).message


def test_an_envelope_without_its_text_block_is_refused() -> None:
    assert "{4:" in _refused("{1:F01COBADEFFAXXX0000000000}{2:O940}").message
