"""Frames: round trips, damage detection and re-synchronisation (sync.framing)."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.framing import (
    CR,
    ESC,
    FLAG,
    Frame,
    FrameDecoder,
    FrameType,
    encode_frame,
)

payloads = st.binary(max_size=600)
frames = st.builds(
    Frame,
    st.sampled_from(list(FrameType)),
    st.integers(min_value=0, max_value=0xFFFF),
    payloads,
    st.integers(min_value=0, max_value=0xFFFF),
)


def decode_all(data: bytes) -> list[Frame]:
    return FrameDecoder().feed(data)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@settings(deadline=None)  # a noisy shared machine
@given(frames)
def test_any_frame_round_trips(frame: Frame) -> None:
    assert decode_all(encode_frame(frame)) == [frame]


@settings(deadline=None)  # a noisy shared machine
@given(st.lists(frames, max_size=5), st.lists(st.integers(min_value=0), max_size=20))
def test_chunking_does_not_change_what_is_decoded(frames_: list[Frame], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(f) for f in frames_)
    decoder = FrameDecoder()
    decoded = [f for chunk in split_at(stream, cuts) for f in decoder.feed(chunk)]
    assert decoded == frames_


@settings(max_examples=300, deadline=None)
@given(frames, frames, st.data())
def test_any_single_bit_flip_is_detected_and_the_next_frame_survives(
    frame: Frame, following: Frame, data: st.DataObject
) -> None:
    wire = bytearray(encode_frame(frame))
    bit = data.draw(st.integers(min_value=0, max_value=8 * len(wire) - 1))
    wire[bit // 8] ^= 1 << (bit % 8)
    assert decode_all(bytes(wire) + encode_frame(following)) == [following]


@settings(deadline=None)  # a noisy shared machine
@given(st.lists(frames, min_size=1, max_size=4), st.lists(st.binary(max_size=80), max_size=5))
def test_garbage_between_frames_is_skipped(frames_: list[Frame], noise: list[bytes]) -> None:
    # noise without a flag: a flag inside noise starts a frame that the next flag ends
    noise = [n.replace(bytes((FLAG,)), b"") for n in noise]
    stream = b""
    for i, frame in enumerate(frames_):
        stream += (noise[i] if i < len(noise) else b"") + encode_frame(frame)
    assert decode_all(stream) == frames_


@settings(deadline=None)  # a noisy shared machine
@given(frames, frames, st.integers(min_value=1))
def test_truncated_frame_is_dropped_and_the_next_one_decoded(
    first: Frame, second: Frame, cut: int
) -> None:
    wire = encode_frame(first)
    truncated = wire[: 2 + cut % (len(wire) - 3)]  # a flag and some body, not the end
    decoder = FrameDecoder()
    assert decoder.feed(truncated + encode_frame(second)) == [second]
    assert decoder.bad_frames == 1


@settings(deadline=None)  # a noisy shared machine
@given(frames)
def test_encoded_frame_holds_no_raw_cr_and_no_inner_flag(frame: Frame) -> None:
    inner = encode_frame(frame)[1:-1]
    assert FLAG not in inner
    assert CR not in inner


def test_modem_text_between_frames_is_not_a_frame() -> None:
    frame = Frame(FrameType.DATA, 7, b"NO CARRIER\r\n+++")
    stream = b"\r\nCONNECT 33600\r\n" + encode_frame(frame) + b"\r\nNO CARRIER\r\n"
    decoder = FrameDecoder()
    assert decoder.feed(stream) == [frame]


def test_oversized_frame_is_abandoned_without_growing() -> None:
    decoder = FrameDecoder(max_payload=16)
    big = encode_frame(Frame(FrameType.DATA, 1, bytes(range(100))))
    assert decoder.feed(big) == []
    assert decoder.bad_frames == 1
    assert decoder.in_frame_bytes == 0


def test_escape_followed_by_an_unescapable_byte_is_rejected() -> None:
    good = encode_frame(Frame(FrameType.ACK, 3))
    forged = good[:-1] + bytes((ESC, 0x41, FLAG))
    assert decode_all(forged) == []
