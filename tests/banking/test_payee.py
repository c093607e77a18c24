"""The chain's account (IBAN, BIC) and the EPC QR text (EPC069-12 version 002) that pays it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from banking.payee import EPC_MAX_BYTES, Payee, epc_qr, iban, printed_iban
from schema.errors import InvalidRequest

IBANS = ["SI56191000000123438", "DE89370400440532013000", "FR7630006000011234567890189",
         "AT611904300234573201", "NL91ABNA0417164300"]
PAYEE = Payee(name="Zvestoba d.o.o.", iban="SI56 1910 0000 0123 438", bic="bakosi2x",
              country="si")


@pytest.mark.parametrize("account", IBANS)
def test_real_ibans_validate_in_any_spacing_and_case(account: str) -> None:
    spaced = " ".join(account[i:i + 4] for i in range(0, len(account), 4)).lower()
    assert iban(spaced) == account
    assert printed_iban(account).replace(" ", "") == account


@given(st.sampled_from(IBANS), st.data())
def test_any_single_digit_changed_in_an_iban_is_refused(account: str, data: st.DataObject) -> None:
    digits = [i for i, c in enumerate(account) if c.isdigit()]
    at = data.draw(st.sampled_from(digits))
    other = data.draw(st.sampled_from([d for d in "0123456789" if d != account[at]]))
    with pytest.raises(InvalidRequest, match="check digits do not match|not an IBAN"):
        iban(account[:at] + other + account[at + 1:])


def test_the_payee_is_normalised_and_a_bad_bic_is_refused() -> None:
    assert (PAYEE.iban, PAYEE.bic, PAYEE.country) == ("SI56191000000123438", "BAKOSI2X", "SI")
    with pytest.raises(ValueError, match="not a BIC"):
        Payee(name="X", iban=IBANS[0], bic="BAKO", country="SI")
    assert Payee(name="X", iban=IBANS[0], country="SI").bic == ""


def test_the_epc_text_has_its_twelve_lines_in_order() -> None:
    text = epc_qr(PAYEE, 123456, "EUR", "RF18 5390 0754 7034", "Invoice 2026-000001")
    assert text.split("\n") == ["BCD", "002", "1", "SCT", "BAKOSI2X", "Zvestoba d.o.o.",
                                "SI56191000000123438", "EUR1234.56", "", "RF18539007547034",
                                "", "Invoice 2026-000001"]
    assert "\n".join(text.split("\n")[:10]) == epc_qr(PAYEE, 123456, "EUR", "RF18539007547034")


def test_the_epc_text_stays_within_331_bytes_with_the_longest_fields() -> None:
    wide = Payee(name="Ž" * 70, iban="MT84MALT011000012345MTLCAST001S", bic="BAKOSI2XXXX",
                 country="MT")
    text = epc_qr(wide, 999_999_999_99, "EUR", "RF18539007547034", "ž" * 200)
    assert len(text.encode()) <= EPC_MAX_BYTES
    assert text.split("\n")[7] == "EUR999999999.99"


@pytest.mark.parametrize("amount, currency, reference, problem", [
    (0, "EUR", "RF18539007547034", "from EUR 0.01"),
    (10**12, "EUR", "RF18539007547034", "from EUR 0.01"),
    (100, "CHF", "RF18539007547034", "euro only"),
    (100, "EUR", "RF19539007547034", "check digits"),
])
def test_what_an_epc_code_cannot_carry_is_refused(amount: int, currency: str, reference: str,
                                                 problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        epc_qr(PAYEE, amount, currency, reference)
