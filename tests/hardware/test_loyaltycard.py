"""Our loyalty card layout and the emulated card, talking APDUs directly (no PC/SC)."""

from __future__ import annotations

import pytest
from hwdevices import EmulatorChannel
from hypothesis import given
from hypothesis import strategies as st

from hardware import loyaltycard
from hardware.cardemulator import ContactlessCard, LoyaltyCard, contact_atr, parse_apdu
from hardware.loyaltycard import CardError, personalise, read_card_number, select, verify_pin
from hardware.reads import ParseError

NUMBER = "2900010000015"


def test_card_number_file_round_trips() -> None:
    content = loyaltycard.encode_card_number(NUMBER)
    assert len(content) == loyaltycard.FILE_SIZE and content[:2] == bytes([1, 13])
    assert loyaltycard.decode_card_number(content) == NUMBER


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (bytes(32), "card_blank"),
        (b"", "card_blank"),
        (bytes([2, 13]) + bytes(30), "card_layout"),
        (bytes([1, 40]) + bytes(30), "card_layout"),
        (bytes([1, 3]) + b"a?c" + bytes(27), "card_layout"),
    ],
)
def test_blank_or_foreign_file_content_is_a_parse_error(content: bytes, code: str) -> None:
    with pytest.raises(ParseError) as caught:
        loyaltycard.decode_card_number(content)
    assert caught.value.code == code


@given(st.binary(max_size=40))
def test_random_file_content_gives_a_number_or_a_parse_error(content: bytes) -> None:
    try:
        number = loyaltycard.decode_card_number(content)
    except ParseError:
        return
    assert 1 <= len(number) <= 30


def test_personalised_card_reads_as_its_number() -> None:
    assert read_card_number(EmulatorChannel(LoyaltyCard(NUMBER))) == NUMBER


def test_contactless_card_is_not_a_loyalty_card() -> None:
    with pytest.raises(CardError) as caught:
        read_card_number(EmulatorChannel(ContactlessCard(bytes.fromhex("04A1B2C3"))))
    assert caught.value.code == "not_loyalty_card"


def test_personalise_writes_number_and_pin_on_a_blank_card() -> None:
    card = LoyaltyCard()
    personalise(EmulatorChannel(card), NUMBER, pin="1234")
    assert (card.stored_number, card.pin) == (NUMBER, "1234")
    assert read_card_number(EmulatorChannel(card)) == NUMBER


def test_personalise_refuses_a_card_that_already_has_a_number() -> None:
    card = LoyaltyCard(NUMBER)
    with pytest.raises(CardError) as caught:
        personalise(EmulatorChannel(card), "2900010000022")
    assert caught.value.code == "card_not_blank"
    assert card.stored_number == NUMBER


def test_overwrite_needs_the_current_pin_when_the_card_has_one() -> None:
    card = LoyaltyCard(NUMBER, pin="1234")
    with pytest.raises(CardError) as caught:
        personalise(EmulatorChannel(card), "2900010000022", overwrite=True)
    assert caught.value.code == "pin_required"
    with pytest.raises(CardError) as caught:
        personalise(EmulatorChannel(card), "2900010000022", overwrite=True, current_pin="9999")
    assert caught.value.code == "pin_wrong"
    personalise(EmulatorChannel(card), "2900010000022", overwrite=True, current_pin="1234")
    assert card.stored_number == "2900010000022"


def test_pin_verify_right_wrong_and_blocked() -> None:
    card = LoyaltyCard(NUMBER, pin="1234")
    channel = EmulatorChannel(card)
    assert select(channel)
    assert loyaltycard.pin_status(channel).tries_left == 3
    assert verify_pin(channel, "0000") == loyaltycard.PinResult(ok=False, tries_left=2)
    assert verify_pin(channel, "1234").ok
    assert loyaltycard.pin_status(channel).ok  # verified for the rest of the session
    for tries_left in (2, 1):
        assert verify_pin(channel, "0000").tries_left == tries_left
    assert verify_pin(channel, "0000").blocked
    assert verify_pin(channel, "1234").blocked  # the right PIN no longer helps
    assert read_card_number(channel) == NUMBER  # reading at the till needs no PIN


def test_card_without_pin_says_so() -> None:
    channel = EmulatorChannel(LoyaltyCard(NUMBER))
    assert select(channel)
    assert loyaltycard.pin_status(channel).pin_set is False


def test_errors_do_not_show_the_card_number() -> None:
    with pytest.raises(CardError) as caught:
        personalise(EmulatorChannel(LoyaltyCard(NUMBER)), NUMBER)
    assert NUMBER not in str(caught.value)


def test_contact_atr_has_a_valid_check_byte() -> None:
    atr = contact_atr(b"LOYALTY\x01")
    check = 0
    for byte in atr[1:]:
        check ^= byte
    assert atr[0] == 0x3B and check == 0


def test_apdu_cases_parse() -> None:
    assert parse_apdu(bytes([0, 0xB0, 0, 0, 0x20])).le == 0x20
    update = parse_apdu(bytes([0, 0xD6, 0, 0, 2, 1, 2]))
    assert update is not None and (update.data, update.le) == (b"\x01\x02", None)
    assert parse_apdu(bytes([0, 0xD6, 0, 0, 5, 1])) is None


@given(st.binary(max_size=300), st.booleans())
def test_emulated_cards_answer_any_bytes_with_a_status_word(raw: bytes, contactless: bool) -> None:
    card = ContactlessCard(b"\x04\x01\x02\x03") if contactless else LoyaltyCard(NUMBER, pin="1234")
    response = card.respond(raw)
    assert len(response) >= 2
