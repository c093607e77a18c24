"""Magnetic-stripe swipes (ISO 7813 tracks 1 and 2) as a serial reader delivers them (pure).

A swipe is one line (the terminator already removed) holding one or more tracks:

    track 1   %B<PAN up to 19 digits>^<NAME>^<YYMM><service code><discretionary>?[LRC]
    track 2   ;<PAN up to 19 digits>[=<YYMM><service code><discretionary>]?[LRC]
    track 3   +...?  or a second ;...?  (ignored)

Club cards often carry only a PAN on track 2 (`;2900010000015?`), so the separator and
what follows it are optional there. An LRC character after the end sentinel is checked
when the reader passes it on. A reader that failed a track sends `%E?` / `;E?`.

Promises: `parse_swipe` returns a `Swipe` whose `pan` is ASCII digits, preferring track 2
when both tracks read (they must agree); a swipe where one track is garbled but another
reads is accepted and says so in `detail`. Must never: raise anything but `ParseError`, or
put a full PAN in an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hardware.reads import ParseError

_TRACK1 = re.compile(
    r"%([A-Z])([0-9]{1,19})\^([^^?%;]{0,26})\^([0-9]{4}|\^)([0-9]{3}|\^)?([^?%;]*)\?"
)
_TRACK2 = re.compile(r";([0-9]{1,19})(?:=([0-9]{4}|=)([0-9]{3}|=)?([0-9]*))?\?")
_TRACK1_CHARS = re.compile(r"[\x20-\x5f]*")
_TRACK2_CHARS = re.compile(r"[\x30-\x3f]*")
_STARTS = "%;+"


@dataclass(frozen=True)
class Swipe:
    pan: str
    track: int
    name: str | None = None
    expiry: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Track:
    number: int
    pan: str
    name: str | None
    expiry: str | None


def lrc(track: str, base: int, mask: int) -> str:
    """The LRC character of a track from start to end sentinel (XOR of the data bits)."""
    value = 0
    for char in track:
        value ^= (ord(char) - base) & mask
    return chr(base + value)


def parse_swipe(line: str) -> Swipe:
    """The club card number in one swipe line; ParseError if no track could be read."""
    text = line.strip()
    if not text:
        raise ParseError("track_garbled", "empty swipe")
    if not any(s in text for s in "%;"):
        raise ParseError("track_no_sentinel", "no start sentinel (% or ;) in the swipe")
    tracks, failures = _split_tracks(text)
    if not tracks:
        code = failures[0] if failures else "track_garbled"
        raise ParseError(code, "no track could be read from the swipe")
    return _choose(tracks, failures)


def _split_tracks(text: str) -> tuple[list[_Track], list[str]]:
    tracks: list[_Track] = []
    failures: list[str] = []
    for body, tail, number in _segments(text, failures):
        if number == 3:
            continue
        try:
            tracks.append(_parse_track(body, tail, number))
        except ParseError as error:
            failures.append(error.code)
    return tracks, failures


def _segments(text: str, failures: list[str]) -> list[tuple[str, str, int]]:
    """(body from start to end sentinel, LRC character or "", track number) per track."""
    segments: list[tuple[str, str, int]] = []
    p = _next_start(text, 0, failures)
    seen_track2 = False
    while p < len(text):
        end = text.find("?", p + 1)
        if end < 0:
            failures.append("track_garbled")
            break
        body, p = text[p : end + 1], end + 1
        tail = ""
        if p < len(text) and _is_lrc(text, p, body):
            tail, p = text[p], p + 1
        number = 1 if body[0] == "%" else 2 if body[0] == ";" and not seen_track2 else 3
        seen_track2 = seen_track2 or number == 2
        segments.append((body, tail, number))
        p = _next_start(text, p, failures)
    return segments


def _next_start(text: str, p: int, failures: list[str]) -> int:
    """The next start sentinel at or after p; skipped garbage is recorded as a failure."""
    q = p
    while q < len(text) and text[q] not in _STARTS:
        q += 1
    if q > p:
        failures.append("track_garbled")
    return q


def _is_lrc(text: str, p: int, body: str) -> bool:
    # An LRC character may itself look like a start sentinel: it is the LRC when it is the
    # expected one and a sentinel (or the end) follows it.
    if text[p] not in _STARTS:
        return True
    followed_by_start = p + 1 == len(text) or text[p + 1] in _STARTS
    return text[p] == _expected_lrc(body) and followed_by_start


def _expected_lrc(body: str) -> str:
    return lrc(body, 0x20, 0x3F) if body[0] == "%" else lrc(body, 0x30, 0x0F)


def _parse_track(body: str, tail: str, number: int) -> _Track:
    if len(body) == 3 and body[1] == "E":
        raise ParseError("track_garbled", f"the reader could not read track {number}")
    _check_charset(body, number)
    if tail and tail != _expected_lrc(body):
        raise ParseError("track_lrc", f"track {number} fails its LRC check")
    return _track1(body) if number == 1 else _track2(body)


def _check_charset(body: str, number: int) -> None:
    chars = _TRACK1_CHARS if number == 1 else _TRACK2_CHARS
    if not chars.fullmatch(body):
        raise ParseError("track_garbled", f"track {number} holds characters it cannot encode")


def _track1(body: str) -> _Track:
    match = _TRACK1.fullmatch(body)
    if not match:
        raise ParseError("track_garbled", "track 1 does not follow ISO 7813 (%B PAN ^ NAME ^ ...?)")
    if match.group(1) != "B":
        raise ParseError("track_garbled", f"track 1 format code {match.group(1)!r} is not 'B'")
    expiry = match.group(4) if match.group(4) != "^" else None
    return _Track(1, match.group(2), _name(match.group(3)), expiry)


def _track2(body: str) -> _Track:
    match = _TRACK2.fullmatch(body)
    if not match:
        raise ParseError("track_garbled", "track 2 does not follow ISO 7813 (; PAN = ...?)")
    expiry = match.group(2) if match.group(2) not in (None, "=") else None
    return _Track(2, match.group(1), None, expiry)


def _name(raw: str) -> str | None:
    # ISO 7813 names are SURNAME/GIVEN NAMES.TITLE, padded with spaces.
    surname, _, given = raw.strip().partition("/")
    name = " ".join(part for part in (given.strip(), surname.strip()) if part)
    return name or None


def _choose(tracks: list[_Track], failures: list[str]) -> Swipe:
    by_number = {t.number: t for t in tracks}
    track1, track2 = by_number.get(1), by_number.get(2)
    if track1 and track2 and track1.pan != track2.pan:
        raise ParseError("track_mismatch", "track 1 and track 2 carry different numbers")
    best = track2 or track1
    assert best is not None
    detail: dict[str, Any] = {"track": f"track{best.number}", "tracks": sorted(by_number)}
    if failures:
        detail["partial"] = True
        detail["failed"] = failures
    name = track1.name if track1 else None
    expiry = best.expiry or (track1.expiry if track1 else None)
    return Swipe(pan=best.pan, track=best.number, name=name, expiry=expiry, detail=detail)
