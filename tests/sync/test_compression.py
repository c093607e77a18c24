"""Compression of sync messages: lossless, bounded, tagged (sync.compression)."""

from __future__ import annotations

import json
import lzma
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.compression import (
    CompressionError,
    Method,
    compress,
    decode_message,
    decompress,
    encode_message,
    pack,
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.uuids().map(str)
    | st.from_regex(r"[0-9]{1,20}", fullmatch=True)
    | st.datetimes(timezones=st.just(__import__("datetime").UTC)).map(
        lambda d: d.isoformat(timespec="microseconds").replace("+00:00", "Z")
    )
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=6)
    | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=40,
)
rows = st.lists(
    st.fixed_dictionaries(
        {"id": st.uuids().map(str), "n": st.integers(-5, 10**6)},
        optional={"sku": st.sampled_from(["4006381333931", "SKU-1", "x"]), "z": json_values},
    ),
    max_size=12,
)


def same_json(a: object, b: object) -> bool:
    """Equal as JSON: unlike ==, tells True from 1 and 1 from 1.0, and keeps key order."""
    return json.dumps(a) == json.dumps(b)


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_any_json_value_survives_encode_and_decode(value: object) -> None:
    assert same_json(decode_message(encode_message(value)), value)


tricky = st.sampled_from([0, 1, True, False, None, 1.0, -0.0, "1", "a", [1], [True], {"k": 1}])
tricky_rows = st.lists(
    st.fixed_dictionaries(
        {"k": tricky, "v": tricky, "n": st.integers(0, 3), "m": st.integers(0, 3)},
        optional={"w": tricky, "p": st.integers(0, 9)},
    ),
    min_size=2,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(tricky_rows)
def test_columns_derived_from_others_decode_to_exactly_the_same_values(rows: list) -> None:
    # small pools: columns repeat, determine or add up to each other by chance
    for row in rows:
        row["sum"], row["product"] = row["n"] + row["m"], row["n"] * row["m"]
    message = {"head": [{"id": i, "body": {"copy": i, **r}} for i, r in enumerate(rows)]}
    assert same_json(decode_message(encode_message(message)), message)


@settings(deadline=None)
@given(rows)
def test_tables_with_missing_keys_keep_values_and_key_order(value: list[dict]) -> None:
    back = decode_message(encode_message({"events": value}))
    assert same_json(back, {"events": value})
    assert [list(r) for r in back["events"]] == [list(r) for r in value]


@settings(deadline=None)
@given(st.binary(max_size=3000))
def test_any_bytes_survive_compress_and_decompress(payload: bytes) -> None:
    assert decompress(compress(payload)) == payload


@settings(deadline=None)
@given(json_values)
def test_decompress_of_a_packed_message_gives_its_json(value: object) -> None:
    assert same_json(json.loads(decompress(encode_message(value))), value)


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_random_blobs_raise_a_clear_error_or_decode(blob: bytes) -> None:
    try:
        decode_message(blob)
    except CompressionError:
        pass


def test_first_byte_names_the_method() -> None:
    assert compress(b"")[0] == Method.STORED
    assert encode_message({"a": [1] * 1000})[0] in (Method.PACKED_ZLIB, Method.PACKED_LZMA)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(CompressionError, match="unknown compression method"):
        decompress(b"\x7f" + zlib.compress(b"{}"))


def _bomb(method: Method) -> bytes:
    zeros = b"\0" * 5_000_000
    if method is Method.ZLIB:
        return bytes((method,)) + zlib.compress(zeros, 9)
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 6}]
    return bytes((method,)) + lzma.compress(zeros, format=lzma.FORMAT_RAW, filters=filters)


@pytest.mark.parametrize("method", [Method.ZLIB, Method.LZMA])
def test_decompression_bomb_raises(method: Method) -> None:
    bomb = _bomb(method)
    assert len(bomb) < 10_000
    assert len(decompress(bomb)) == 5_000_000  # a valid blob, only too large below
    with pytest.raises(CompressionError, match="limit"):
        decompress(bomb, max_size=1_000_000)


def test_packed_bomb_with_huge_counts_raises() -> None:
    # version 1, LIST of 2**40 NULLs declared in a few bytes
    blob = bytes((Method.PACKED_STORED, 1, 6)) + b"\x80\x80\x80\x80\x80\x20"
    with pytest.raises(CompressionError):
        decode_message(blob, max_size=1_000_000)


def test_truncated_blob_raises() -> None:
    blob = encode_message({"events": [{"a": i} for i in range(100)]})
    with pytest.raises(CompressionError):
        decode_message(blob[:-3])


def test_computed_and_dependent_columns_cost_almost_nothing() -> None:
    rng = __import__("random").Random(3)
    products = [(f"40{i:011d}", f"Product {i}", rng.randrange(50, 5000)) for i in range(20)]
    lines = []
    for _ in range(400):
        sku, name, price = rng.choice(products)
        qty = rng.randrange(1, 5)
        lines.append({"sku": sku, "name": name, "qty": qty, "unit_price": price,
                      "gross": qty * price})
    alone = len(pack([{k: v for k, v in ln.items() if k in ("sku", "qty")} for ln in lines]))
    full = len(pack(lines))
    assert full < alone + 20 * 20  # name, price: once per product; gross: 4 bytes


def test_a_batch_of_similar_events_packs_far_smaller_than_zlib_json() -> None:
    events = [
        {"event_id": f"0190f6a1-0000-7000-8000-{i:012x}", "seq": i, "type": "sale.recorded"}
        for i in range(500)
    ]
    plain = zlib.compress(json.dumps(events).encode(), 6)
    assert len(encode_message(events)) < len(plain) / 2
