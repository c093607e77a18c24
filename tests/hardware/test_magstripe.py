"""ISO 7813 swipes as serial magstripe readers deliver them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hardware.magstripe import lrc, parse_swipe
from hardware.reads import ParseError

PAN = "2900010000015"
TRACK1 = f"%B{PAN}^DOE/JOHN^2912101000000000?"
TRACK2 = f";{PAN}=29121010000000000?"


def test_track1_gives_pan_and_cardholder_name() -> None:
    swipe = parse_swipe(TRACK1)
    assert (swipe.pan, swipe.track, swipe.name, swipe.expiry) == (PAN, 1, "JOHN DOE", "2912")


def test_track2_gives_pan_and_expiry() -> None:
    swipe = parse_swipe(TRACK2)
    assert (swipe.pan, swipe.track, swipe.expiry) == (PAN, 2, "2912")


def test_club_card_with_only_a_pan_on_track2_reads() -> None:
    assert parse_swipe(f";{PAN}?").pan == PAN


def test_both_tracks_in_one_line_prefer_track2_and_keep_the_name() -> None:
    swipe = parse_swipe(TRACK1 + TRACK2)
    assert (swipe.pan, swipe.track, swipe.name) == (PAN, 2, "JOHN DOE")
    assert swipe.detail["tracks"] == [1, 2]
    assert "partial" not in swipe.detail


def test_lrc_characters_after_end_sentinels_are_checked_and_accepted() -> None:
    line = TRACK1 + lrc(TRACK1, 0x20, 0x3F) + TRACK2 + lrc(TRACK2, 0x30, 0x0F)
    assert parse_swipe(line).pan == PAN


def test_wrong_lrc_is_reported_as_track_lrc() -> None:
    good = lrc(TRACK2, 0x30, 0x0F)
    bad = "0" if good != "0" else "1"
    with pytest.raises(ParseError) as caught:
        parse_swipe(TRACK2 + bad)
    assert caught.value.code == "track_lrc"


def test_track3_is_ignored() -> None:
    assert parse_swipe(TRACK2 + ";0112345678901234?").pan == PAN
    assert parse_swipe(TRACK2 + "+0112345678901234?").pan == PAN


def test_one_unreadable_track_still_gives_the_other_as_partial() -> None:
    swipe = parse_swipe("%E?" + TRACK2)
    assert swipe.pan == PAN
    assert swipe.detail["partial"] is True


def test_swipe_with_lost_start_of_track1_falls_back_to_track2() -> None:
    swipe = parse_swipe(TRACK1[5:] + TRACK2)
    assert swipe.pan == PAN and swipe.detail["partial"] is True


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("", "track_garbled"),
        ("%E?;E?", "track_garbled"),
        ("2900010000015", "track_no_sentinel"),
        (f";{PAN}=2912", "track_garbled"),  # no end sentinel: the swipe was cut short
        (f";{PAN[:6]}X{PAN[7:]}=2912?", "track_garbled"),
        (f"%A{PAN}^DOE/JOHN^2912?", "track_garbled"),  # not format code B
        (f"%B{PAN}DOE/JOHN2912?", "track_garbled"),  # no field separators
        (f";{'1' * 20}=2912?", "track_garbled"),  # PAN longer than 19 digits
        (TRACK1 + ";2900010000022=2912?", "track_mismatch"),
    ],
)
def test_garbled_or_partial_swipe_is_a_parse_error_with_a_stable_code(line: str, code: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_swipe(line)
    assert caught.value.code == code


def test_parse_error_never_shows_the_full_pan() -> None:
    with pytest.raises(ParseError) as caught:
        parse_swipe(TRACK1 + ";2900010000022=2912?")
    assert PAN not in str(caught.value) and "2900010000022" not in str(caught.value)


@given(st.binary(max_size=200))
def test_random_bytes_give_a_swipe_or_a_parse_error(data: bytes) -> None:
    try:
        swipe = parse_swipe(data.decode("latin-1"))
    except ParseError:
        return
    assert swipe.pan.isascii() and swipe.pan.isdigit()


@given(st.text(alphabet="%;+?=^BE0123456789/ AJOHNDOE", max_size=120))
def test_random_track_like_text_gives_a_swipe_or_a_parse_error(text: str) -> None:
    try:
        swipe = parse_swipe(text)
    except ParseError:
        return
    assert 1 <= len(swipe.pan) <= 19 and swipe.pan.isdigit()


@given(st.text(max_size=100))
def test_random_unicode_gives_a_swipe_or_a_parse_error(text: str) -> None:
    try:
        parse_swipe(text)
    except ParseError:
        pass
