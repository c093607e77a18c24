"""Reading ISO 20022 camt.053 bank statements (banking.camt053 through banking.reader):
every version's shapes, batch entries, reversals, exact amounts, and clear refusals."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statementkit import IBAN, Ntry, Tx, camt053, sample_entries, stmt

from banking.reader import parse_statement, parse_statements
from banking.statement import Entry, Statement
from schema.errors import InvalidRequest, InvalidStatement

VERSIONS = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]


def _read(data: bytes) -> Statement:
    return parse_statement(data)


def _comparable(entry: Entry) -> dict[str, object]:
    return entry.model_dump()


def test_the_sample_statement_reads_every_field() -> None:
    statement = _read(camt053(8))
    assert statement.format == "camt.053"
    assert statement.statement_id == "STMT-20260315-001"
    assert statement.account == IBAN
    assert statement.currency == "EUR"
    assert (statement.from_date, statement.to_date) == (date(2026, 3, 15), date(2026, 3, 15))
    assert statement.opening_balance == 100000
    assert statement.closing_balance == 100000 + 123450 + 1 + 30000 - 2500 - 5000 + 8000

    entries = statement.entries
    assert [e.position for e in entries] == ["1", "2", "3.1", "3.2", "3.3", "4", "5", "6"]
    first = entries[0]
    assert first.amount == 123450 and first.currency == "EUR"
    assert first.direction == "credit" and not first.reversal and first.booked
    assert first.booking_date == date(2026, 3, 15) and first.value_date == date(2026, 3, 16)
    assert first.bank_reference == "2026031500001" and first.entry_reference == "1"
    assert first.end_to_end_id == "E2E-INV-2026-000123"
    assert first.creditor_reference == "RF462026000123"
    assert first.remittance == "Rechnung 2026-000123"
    assert first.debtor_name == "Jürgen Müller"
    assert first.identity == f"bank:{IBAN}/2026031500001/C"


def test_amounts_are_exact_minor_units() -> None:
    entries = _read(camt053(8)).entries
    assert [e.amount for e in entries] == [123450, 1, 10000, 15000, 5000, 2500, 5000, 8000]
    assert all(type(e.amount) is int for e in entries)


def test_a_non_ascii_debtor_name_is_kept_as_written() -> None:
    entries = _read(camt053(8)).entries
    assert entries[1].debtor_name == "Ærøskøbing Café & Søn ApS"
    assert entries[3].debtor_name == "Łukasz Żółć"


def test_a_batch_entry_becomes_one_payment_per_transaction() -> None:
    batch = [e for e in _read(camt053(8)).entries if e.index == 3]
    assert [(e.transaction, e.batch_size, e.amount) for e in batch] == [
        (1, 3, 10000), (2, 3, 15000), (3, 3, 5000)]
    assert [e.bank_reference for e in batch] == [
        "2026031500003-1", "2026031500003-2", "2026031500003-3"]
    assert [e.end_to_end_id for e in batch] == ["BATCH-1", "BATCH-2", "BATCH-3"]
    assert [e.debtor_name for e in batch] == ["Anna Svensson", "Łukasz Żółć", "Nobody Known"]
    assert batch[0].creditor_reference == "RF18539007547034"
    assert batch[1].remittance == "2026-000125"
    assert len({e.identity for e in batch}) == 3


def test_debits_and_reversals_are_told_apart_from_credits() -> None:
    entries = _read(camt053(8)).entries
    fees, returned = entries[5], entries[6]
    assert (fees.direction, fees.reversal, fees.mark) == ("debit", False, "D")
    assert (returned.direction, returned.reversal, returned.mark) == ("debit", True, "RC")
    assert returned.creditor_reference == "RF462026000123"


def test_an_entry_without_a_bank_reference_gets_a_stable_derived_identity() -> None:
    last = _read(camt053(8)).entries[-1]
    assert last.bank_reference is None
    assert last.identity.startswith("hash:")
    assert _read(camt053(8)).entries[-1].identity == last.identity
    moved = _read(camt053(8, [sample_entries()[5]])).entries[0]
    assert moved.identity != last.identity  # another position, another statement


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_reads_to_the_same_statement(version: int) -> None:
    assert _read(camt053(version)) == _read(camt053(8))


def test_dates_with_times_and_the_namespace_prefix_do_not_matter() -> None:
    entries = [Ntry("10.00", booking="2026-03-15T10:30:00+01:00", acct_svcr_ref="A1",
                    txs=[Tx(debtor="A")])]
    declaration, body = camt053(5, entries).split(b"\n", 1)
    body = re.sub(rb"<(/?)([A-Za-z])", rb"<\1c:\2", body).replace(b" xmlns=", b" xmlns:c=")
    data = declaration + b"\n" + body
    assert b"<c:Ntry>" in data
    entry = _read(data).entries[0]
    assert entry.booking_date == date(2026, 3, 15) and entry.amount == 1000


def test_several_statements_in_one_file_are_read_in_order() -> None:
    first = stmt(8, sample_entries()[:2], stmt_id="S-1")
    second = stmt(8, sample_entries()[3:4], stmt_id="S-2", iban="FR1420041010050500013M02606")
    statements = parse_statements(camt053(8, statements=[first, second]))
    assert [s.statement_id for s in statements] == ["S-1", "S-2"]
    assert statements[1].account == "FR1420041010050500013M02606"
    with pytest.raises(InvalidStatement, match="2 statements"):
        parse_statement(camt053(8, statements=[first, second]))


def test_currencies_with_other_minor_units_are_converted_by_their_decimals() -> None:
    yen = _read(camt053(8, [Ntry("1234", currency="JPY", acct_svcr_ref="Y1")],
                        currency="JPY", opening="0"))
    assert yen.entries[0].amount == 1234 and yen.currency == "JPY"
    dinar = _read(camt053(8, [Ntry("1.235", currency="KWD", acct_svcr_ref="K1")],
                          currency="KWD", opening="0"))
    assert dinar.entries[0].amount == 1235


def test_a_batch_without_amounts_per_transaction_stays_one_unitemised_entry() -> None:
    entry = Ntry("30.00", acct_svcr_ref="B9", txs=[Tx(ustrd="one", debtor="X"),
                                                    Tx(ustrd="two", debtor="Y")])
    (read,) = _read(camt053(8, [entry])).entries
    assert (read.amount, read.transaction, read.batch_size) == (3000, 0, 2)
    assert read.remittance == "one\ntwo" and read.debtor_name is None


def test_a_pending_entry_is_read_but_not_booked() -> None:
    entries = [Ntry("10.00", acct_svcr_ref="P1", status="PDNG")]
    assert not _read(camt053(8, entries)).entries[0].booked
    assert not _read(camt053(4, entries)).entries[0].booked


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.sampled_from(["CRDT", "DBIT"]),
                          st.booleans()), min_size=1, max_size=8),
       st.sampled_from(VERSIONS))
def test_any_statement_reads_back_its_amounts_and_directions(
        rows: list[tuple[int, str, bool]], version: int) -> None:
    entries = [Ntry(f"{Decimal(cents) / 100}", direction=mark, reversal=reversal,
                    acct_svcr_ref=f"R{i}") for i, (cents, mark, reversal) in enumerate(rows)]
    read = _read(camt053(version, entries)).entries
    assert [(e.amount, e.direction, e.reversal) for e in read] == [
        (cents, "credit" if mark == "CRDT" else "debit", reversal)
        for cents, mark, reversal in rows]


# --- refusals ---------------------------------------------------------------------------


def _refused(data: bytes) -> InvalidStatement:
    with pytest.raises(InvalidStatement) as refused:
        parse_statements(data)
    assert isinstance(refused.value, InvalidRequest) and refused.value.code == "invalid_statement"
    return refused.value


def test_more_decimals_than_the_currency_has_is_refused_naming_the_entry() -> None:
    entries = sample_entries()
    entries[1] = Ntry("0.015", acct_svcr_ref="X")
    error = _refused(camt053(8, entries, closing="2539.52"))
    assert "entry 2" in error.message and "Amt" in error.message and "0.015" in error.message
    assert error.context["entry"] == "2"


def test_a_transaction_amount_that_is_not_a_number_is_refused_naming_the_transaction() -> None:
    entries = sample_entries()
    entries[2].txs[1].amount = "150,00"
    error = _refused(camt053(8, entries))
    assert "entry 3.2" in error.message and "150,00" in error.message


def test_a_batch_whose_transactions_do_not_add_up_to_the_entry_is_refused() -> None:
    entries = sample_entries()
    entries[2].txs[2].amount = "40.00"
    assert "entry 3" in _refused(camt053(8, entries)).message


def test_an_entry_without_its_credit_debit_indicator_is_refused() -> None:
    data = camt053(8).replace(b"<CdtDbtInd>DBIT</CdtDbtInd><Sts>", b"<Sts>", 1)
    error = _refused(data)
    assert "entry 4" in error.message and "CdtDbtInd" in error.message


def test_entries_that_do_not_add_up_to_the_closing_balance_are_refused() -> None:
    error = _refused(camt053(8, closing="9999.99"))
    assert "do not add up" in error.message and "9999.99" in error.message


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"<Document", "not well-formed"),
    ((b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:pain.001.001.03'>"
     b"<CstmrCdtTrfInitn/></Document>"), "pain.001"),
    (b"<?xml version='1.0'?><Document><BkToCstmrStmt/></Document>", "not a camt.053"),
    ((b"<?xml version='1.0'?><Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'>"
     b"<BkToCstmrStmt><GrpHdr><MsgId>1</MsgId></GrpHdr></BkToCstmrStmt></Document>"),
     "no statement"),
])
def test_files_that_are_not_camt053_statements_are_refused(data: bytes, why: str) -> None:
    assert why in _refused(data).message


def test_a_camt054_notification_is_refused_by_name() -> None:
    data = camt053(8, namespace="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08")
    assert "camt.054" in _refused(data).message


def test_an_entity_expansion_bomb_is_refused_without_expanding() -> None:
    bomb = (b'<?xml version="1.0"?>\n<!DOCTYPE Document [\n<!ENTITY a "aaaaaaaaaa">\n'
            + b"".join(b'<!ENTITY %c "%s">\n' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10)
                       for i in range(8))
            + b']>\n<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">'
            b"<BkToCstmrStmt><Stmt><Id>&i;</Id></Stmt></BkToCstmrStmt></Document>")
    assert "DTD" in _refused(bomb).message


def test_an_external_entity_is_refused_without_reading_it() -> None:
    xxe = (b'<?xml version="1.0"?>\n<!DOCTYPE Document [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>'
           b"<Stmt><Id>&x;</Id></Stmt></BkToCstmrStmt></Document>")
    error = _refused(xxe)
    assert "DTD" in error.message and "root:" not in error.message
