"""Caller ID lines from a voice modem, assembled into calls."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.callerid import Call, CallerIdAssembler, parse_block, parse_line
from hardware.reads import ParseError

BLOCK = (
    "RING\r\n\r\nDATE = 1122\r\nTIME = 0830\r\nNMBR = 5551234\r\nNAME = JOHN DOE\r\n\r\nRING\r\n"
)


def feed_all(assembler: CallerIdAssembler, text: str) -> list[Call]:
    calls: list[Call] = []
    for line in text.splitlines():
        calls.extend(assembler.feed(line))
    return calls


def test_block_gives_the_callers_number_date_and_time() -> None:
    call = parse_block(BLOCK)
    assert (call.number, call.date, call.time) == ("5551234", "1122", "0830")


def test_call_is_emitted_as_soon_as_nmbr_arrives() -> None:
    assembler = CallerIdAssembler()
    assert feed_all(assembler, "RING\nDATE = 1122\nTIME = 0830") == []
    assert assembler.feed("NMBR = 5551234") == [Call("5551234", "1122", "0830")]


def test_name_before_number_is_kept_and_name_after_is_not_a_second_call() -> None:
    assembler = CallerIdAssembler()
    calls = feed_all(assembler, "RING\nDATE=1122\nTIME=0830\nNAME=JANE ROE\nNMBR=5551234\nRING")
    assert calls == [Call("5551234", "1122", "0830", "JANE ROE")]
    assert feed_all(CallerIdAssembler(), BLOCK + BLOCK) == [Call("5551234", "1122", "0830")] * 2


def test_number_is_normalised() -> None:
    assert parse_block("NMBR = +44 (20) 7946-0018").number == "+442079460018"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("P", "callerid_withheld"),
        ("O", "callerid_withheld"),
        ("55A1234", "callerid_bad_number"),
        ("12", "callerid_bad_number"),
    ],
)
def test_withheld_or_malformed_numbers_are_parse_errors(raw: str, code: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_block(f"RING\nDATE = 1122\nTIME = 0830\nNMBR = {raw}\n")
    assert caught.value.code == code


def test_block_without_number_is_reported_incomplete_on_the_next_ring() -> None:
    assembler = CallerIdAssembler()
    feed_all(assembler, "RING\nDATE = 1122\nTIME = 0830")
    with pytest.raises(ParseError) as caught:
        assembler.feed("RING")
    assert caught.value.code == "callerid_incomplete"
    assert assembler.feed("RING") == []  # and the assembler has moved on


def test_rings_without_caller_id_and_modem_chatter_are_ignored() -> None:
    assert feed_all(CallerIdAssembler(), "AT+VCID=1\nOK\nRING\n\nRING\nNO CARRIER\nRING\n") == []


def test_unprintable_line_is_garbled() -> None:
    with pytest.raises(ParseError) as caught:
        parse_line("NMBR = 555\x001234")
    assert caught.value.code == "callerid_garbled"


@given(st.lists(st.binary(max_size=40), max_size=20))
def test_random_lines_give_calls_or_parse_errors(lines: list[bytes]) -> None:
    assembler = CallerIdAssembler()
    for line in lines:
        try:
            calls = assembler.feed(line.decode("latin-1"))
        except ParseError:
            continue
        assert all(c.number.lstrip("+").isdigit() for c in calls)


@given(
    st.lists(
        st.sampled_from(
            [
                "RING",
                "",
                "DATE = 1122",
                "TIME = 0830",
                "NAME = X",
                "NMBR = 5551234",
                "NMBR = P",
                "NMBR = 5x",
                "OK",
            ]
        ),
        max_size=30,
    )
)
def test_random_sequences_of_modem_lines_give_calls_or_parse_errors(lines: list[str]) -> None:
    assembler = CallerIdAssembler()
    for line in lines:
        try:
            calls = assembler.feed(line)
        except ParseError:
            continue
        assert all(c.number == "5551234" for c in calls)
