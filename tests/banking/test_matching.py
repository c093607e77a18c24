"""Matching a statement's credits to open invoices (banking.matching): by reference first,
then by amount and name as a suggestion; debits, reversals and overpayments are listed,
never paid; the outcome does not depend on the order of the entries."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from statementkit import Ntry, Tx, camt053, mt940

from banking import creditorref
from banking.matching import Match, OpenInvoice, match, similar_names
from banking.reader import parse_statement
from banking.statement import Entry
from schema.errors import InvalidRequest


def invoice(number: str, owed: int, name: str) -> OpenInvoice:
    return OpenInvoice(number=number, reference=creditorref.for_invoice(number), owed=owed,
                       customer_name=name)


OPEN = [
    invoice("2026-000123", 123450, "Jürgen Müller"),
    invoice("2026-000124", 1, "Ærøskøbing Café & Søn ApS"),
    invoice("2026-000125", 20000, "Łukasz Żółć"),
    invoice("2026-000126", 8000, "Jürgen Müller"),
]


def _by_position(matches: list[Match]) -> dict[str, Match]:
    return {m.entry.position: m for m in matches}


def test_the_camt053_sample_is_matched_suggested_and_listed() -> None:
    entries = parse_statement(camt053(8)).entries
    found = _by_position(match(entries, OPEN, currency="EUR"))
    assert list(found) == [e.position for e in entries]

    assert found["1"].status == "matched" and found["1"].via == "creditor_reference"
    assert [(a.number, a.amount) for a in found["1"].allocations] == [("2026-000123", 123450)]
    assert not found["1"].part_payment
    assert found["2"].status == "matched" and found["2"].via == "invoice_number_in_text"
    assert [(a.number, a.amount) for a in found["2"].allocations] == [("2026-000124", 1)]

    assert found["3.1"].status == "unmatched"
    assert "RF18539007547034" in found["3.1"].reason and "no open invoice" in found["3.1"].reason
    assert found["3.2"].status == "matched" and found["3.2"].part_payment
    assert [(a.number, a.amount) for a in found["3.2"].allocations] == [("2026-000125", 15000)]
    assert found["3.3"].status == "unmatched" and found["3.3"].allocations == ()

    assert found["4"].status == "not_a_payment" and "debit" in found["4"].reason
    assert found["5"].status == "not_a_payment" and "reversal" in found["5"].reason
    assert found["6"].status == "suggested" and found["6"].via == "amount_and_name"
    assert found["6"].invoices == ("2026-000126",) and found["6"].allocations == ()


def test_the_mt940_sample_finds_a_reference_written_in_the_text() -> None:
    entries = parse_statement(mt940().encode()).entries
    found = {m.entry.index: m for m in match(entries, OPEN, currency="EUR")}
    assert found[1].status == "matched" and found[1].via == "reference_in_text"
    assert found[1].invoices == ("2026-000123",)
    assert found[2].status == "matched" and found[2].invoices == ("2026-000124",)
    assert [found[i].status for i in (3, 4, 5)] == ["not_a_payment"] * 3
    assert found[6].status == "suggested" and found[6].invoices == ("2026-000126",)
    assert found[7].status == "unmatched" and "RF18539007547034" in found[7].reason


def _entries(*ntries: Ntry) -> tuple[Entry, ...]:
    return parse_statement(camt053(8, list(ntries))).entries


def test_an_entry_paying_more_than_is_owed_is_an_overpayment_and_pays_nothing() -> None:
    (entry,) = _entries(Ntry("1300.00", acct_svcr_ref="A", txs=[Tx(ref="RF462026000123")]))
    (found,) = match([entry], OPEN, currency="EUR")
    assert found.status == "overpayment" and found.allocations == ()
    assert found.invoices == ("2026-000123",)
    assert "1300.00" in found.reason and "1234.50" in found.reason


def test_an_invoice_already_paid_makes_a_payment_to_it_an_overpayment() -> None:
    paid = [invoice("2026-000123", 0, "Jürgen Müller")]
    (entry,) = _entries(Ntry("10.00", acct_svcr_ref="A", txs=[Tx(ref="RF462026000123")]))
    assert match([entry], paid, currency="EUR")[0].status == "overpayment"


def test_two_part_payments_beyond_what_is_owed_match_one_the_same_in_any_order() -> None:
    entries = _entries(*(Ntry("700.00", acct_svcr_ref=f"P{i}", txs=[Tx(ref="RF462026000123")])
                         for i in range(2)))
    outcomes = []
    for ordered in (list(entries), list(reversed(entries))):
        found = {m.entry.identity: m.status for m in match(ordered, OPEN, currency="EUR")}
        outcomes.append(found)
        assert sorted(found.values()) == ["matched", "overpayment"]
    assert outcomes[0] == outcomes[1]


def test_one_payment_naming_two_invoices_for_their_total_pays_both() -> None:
    (entry,) = _entries(Ntry("12.35", acct_svcr_ref="A", txs=[
        Tx(ustrd="Rechnungen 2026-000127 und 2026-000128")]))
    invoices = [invoice("2026-000127", 1000, "A"), invoice("2026-000128", 235, "A")]
    (found,) = match([entry], invoices, currency="EUR")
    assert found.status == "matched"
    assert [(a.number, a.amount) for a in found.allocations] == [
        ("2026-000127", 1000), ("2026-000128", 235)]


def test_one_payment_naming_two_invoices_for_less_than_their_total_is_for_a_clerk() -> None:
    (entry,) = _entries(Ntry("5.00", acct_svcr_ref="A", txs=[
        Tx(ustrd="2026-000127, 2026-000128")]))
    invoices = [invoice("2026-000127", 1000, "A"), invoice("2026-000128", 235, "A")]
    (found,) = match([entry], invoices, currency="EUR")
    assert found.status == "unmatched" and found.invoices == ("2026-000127", "2026-000128")
    assert "split" in found.reason


@pytest.mark.parametrize("text", [
    "RF46 2026 0001 23", "rf462026000123", "Ref: RF46202600 0123.", "2026-000123",
    "Rechnung 2026/000123", "INV 2026 000123", "E2E-INV-2026-000123", "2026000123",
])
def test_references_and_invoice_numbers_are_found_however_they_are_written(text: str) -> None:
    (entry,) = _entries(Ntry("1.00", acct_svcr_ref="A", txs=[Tx(ustrd=text)]))
    (found,) = match([entry], OPEN, currency="EUR")
    assert found.status == "matched" and found.invoices == ("2026-000123",), text


@pytest.mark.parametrize("text", [
    "RF4620260001234", "2026-0001234", "12026-000123", "2026-000123A",
    "RF462026000123X", "RF47 2026 0001 23",
])
def test_near_misses_in_the_text_match_nothing(text: str) -> None:
    (entry,) = _entries(Ntry("1.00", acct_svcr_ref="A", txs=[Tx(ustrd=text)]))
    (found,) = match([entry], OPEN, currency="EUR")
    assert found.status == "unmatched", text


def test_a_mistyped_reference_in_the_text_is_pointed_out_to_the_clerk() -> None:
    (entry,) = _entries(Ntry("1.00", acct_svcr_ref="A", txs=[Tx(ustrd="RF47 2026 0001 23")]))
    (found,) = match([entry], OPEN, currency="EUR")
    assert found.status == "unmatched"
    assert "'RF47 2026 0001 23' in the text is not a valid creditor reference" in found.reason


def test_a_mistyped_structured_reference_falls_back_to_the_text_and_says_so() -> None:
    (entry,) = _entries(Ntry("1.00", acct_svcr_ref="A", txs=[
        Tx(ref="RF462026000124", ustrd="Invoice 2026-000123")]))
    (found,) = match([entry], OPEN, currency="EUR")
    assert found.status == "matched" and found.invoices == ("2026-000123",)
    assert "RF462026000124" in found.reason and "check digits" in found.reason


def test_a_suggestion_needs_the_amount_owed_and_a_similar_name() -> None:
    (right_name,) = _entries(Ntry("80.00", acct_svcr_ref="A", txs=[Tx(debtor="J. Mueller")]))
    (wrong_name,) = _entries(Ntry("80.00", acct_svcr_ref="B", txs=[Tx(debtor="Anna Svensson")]))
    (wrong_sum,) = _entries(Ntry("80.01", acct_svcr_ref="C", txs=[Tx(debtor="Jürgen Müller")]))
    found = match([right_name, wrong_name, wrong_sum], OPEN, currency="EUR")
    assert [m.status for m in found] == ["suggested", "unmatched", "unmatched"]
    assert "2026-000126" in found[1].reason  # the amount fits, the name does not: say so


def test_entries_already_imported_are_duplicates_and_match_nothing() -> None:
    entries = parse_statement(camt053(8)).entries
    again = match(entries, OPEN, currency="EUR", seen={e.identity for e in entries})
    assert {m.status for m in again} == {"duplicate"}


def test_entries_in_another_currency_pending_or_unitemised_are_not_paid() -> None:
    foreign = Entry(identity="bank:X/1/C", statement_id="S", account="X", index=1,
                    transaction=1, batch_size=1, booking_date=None, value_date=None,
                    amount=123450, currency="USD", direction="credit",
                    creditor_reference="RF462026000123")
    pending = foreign.model_copy(update={"identity": "bank:X/2/C", "currency": "EUR",
                                         "booked": False})
    batch = foreign.model_copy(update={"identity": "bank:X/3/C", "currency": "EUR",
                                       "transaction": 0, "batch_size": 3})
    found = match([foreign, pending, batch], OPEN, currency="EUR")
    assert [m.status for m in found] == ["unmatched", "not_a_payment", "unmatched"]
    assert "USD" in found[0].reason and "pending" in found[1].reason
    assert "3 payments" in found[2].reason


def test_invoices_given_twice_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        match([], [OPEN[0], OPEN[0]], currency="EUR")


def test_an_invoice_with_a_wrong_reference_is_refused() -> None:
    with pytest.raises(ValidationError, match="check digits"):
        OpenInvoice(number="2026-000123", reference="RF00 2026 0001 23", owed=1,
                    customer_name="X")


@pytest.mark.parametrize("a, b, similar", [
    ("Jürgen Müller", "MUELLER JUERGEN", True),
    ("Jürgen Müller", "Muller Jurgen", True),
    ("Jürgen Müller", "J. Müller", True),
    ("Jürgen Müller", "Herr Dr. Jürgen Walter Müller", True),
    ("Ærøskøbing Café & Søn ApS", "AEROSKOBING CAFE OG SON", True),
    ("Łukasz Żółć", "LUKASZ ZOLC", True),
    ("IKEA Deutschland GmbH & Co. KG", "IKEA DEUTSCHLAND GMBH", True),
    ("IKEA GmbH", "ikea", True),
    ("IKEA Deutschland GmbH", "IKEA", False),
    ("Jürgen Müller", "Anna Müller", False),
    ("Jürgen Müller", "Müller", False),
    ("Jürgen Müller", "", False),
    ("GmbH", "GmbH", False),
    ("Anna Svensson", "Hans Svensson", False),
])
def test_names_are_similar_across_case_accents_order_and_legal_forms(
        a: str, b: str, similar: bool) -> None:
    assert similar_names(a, b) is similar
    assert similar_names(b, a) is similar


# --- properties ------------------------------------------------------------------------

NUMBERS = [f"2026-{n:06d}" for n in range(1, 7)]
NAMES = ["Jürgen Müller", "Anna Svensson", "Łukasz Żółć", "ACME GmbH"]

invoices_st = st.lists(
    st.builds(lambda number, owed, name: invoice(number, owed, name),
              st.sampled_from(NUMBERS), st.integers(0, 5000), st.sampled_from(NAMES)),
    max_size=6, unique_by=lambda i: i.number)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Entry], list[OpenInvoice]]:
    """Open invoices, and entries that pay them in every way: by reference, by number in
    the text, by amount and name alone, wholly, in part, too much; debits, reversals."""
    invoices = draw(invoices_st)
    owed = [i.owed for i in invoices] or [0]
    made = []
    for i in range(draw(st.integers(0, 12))):
        number = draw(st.sampled_from(NUMBERS))
        how = draw(st.sampled_from(["ref", "text", "number", "none", "none", "bad-ref"]))
        ref = {"ref": creditorref.for_invoice(number), "bad-ref": "RF00" + number}.get(how)
        text = {"text": f"paying {creditorref.printed(creditorref.for_invoice(number))}",
                "number": f"Invoice {number}"}.get(how, "")
        some = draw(st.sampled_from(owed))
        amount = draw(st.sampled_from([some, some, some // 2, some + 1])
                      | st.integers(0, 6000))
        made.append(Entry(
            identity=f"bank:X/{i}", statement_id="S", account="X", index=i + 1, transaction=1,
            batch_size=1, booking_date=date(2026, 3, draw(st.integers(1, 3))), value_date=None,
            amount=amount, currency="EUR",
            direction=draw(st.sampled_from(["credit"] * 4 + ["debit"])),
            reversal=draw(st.sampled_from([False] * 5 + [True])),
            booked=draw(st.sampled_from([True] * 5 + [False])),
            creditor_reference=ref, remittance=text, debtor_name=draw(st.sampled_from(NAMES))))
    return made, invoices


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_matching_does_not_depend_on_the_order_of_entries(
        scenario: tuple[list[Entry], list[OpenInvoice]], rnd: random.Random) -> None:
    entries, invoices = scenario
    shuffled = list(entries)
    rnd.shuffle(shuffled)
    first = {m.entry.identity: m for m in match(entries, invoices, currency="EUR")}
    second = {m.entry.identity: m for m in match(shuffled, invoices, currency="EUR")}
    assert first == second
    assert [m.entry for m in match(shuffled, invoices, currency="EUR")] == shuffled


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_only_booked_credits_are_paid_never_more_than_owed(
        scenario: tuple[list[Entry], list[OpenInvoice]]) -> None:
    entries, invoices = scenario
    found = match(entries, invoices, currency="EUR")
    owed = {i.number: i.owed for i in invoices}
    paid = dict.fromkeys(owed, 0)
    for m in found:
        if m.status != "matched":
            assert m.allocations == ()
            continue
        assert m.entry.direction == "credit" and not m.entry.reversal and m.entry.booked
        assert sum(a.amount for a in m.allocations) == m.entry.amount
        for allocation in m.allocations:
            assert allocation.amount > 0
            paid[allocation.number] += allocation.amount
    assert all(paid[n] <= owed[n] for n in owed)
    for m in found:
        if m.entry.direction == "debit" or m.entry.reversal:
            assert m.status == "not_a_payment"
