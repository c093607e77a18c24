"""Compressing sync messages for a slow line.

Promises: `decompress(compress(b)) == b` for any bytes; `decode_message(encode_message(o))
== o` for any JSON value `o` (dict key order kept). Every blob starts with a 1-byte method
tag, so a reader knows how it was made and the format can grow; a reader must keep
decoding every tag listed in `Method`. Decoding never produces more than `max_size`
bytes (or an object whose JSON would): a decompression bomb or a malformed blob raises
`CompressionError` (a ProtocolError, code `compression_error`). Pure: no I/O.

`encode_message` is the one to use for protocol messages (measured in bench/modem_wire.py):
the JSON value is first re-encoded compactly ("packed"), then compressed with LZMA (or zlib
when that is smaller). Packed = a tagged binary form of JSON in which:
- a list of dicts becomes a table stored column by column, so equal kinds of values sit
  together (rows may miss keys: a presence bitmap), nested lists of dicts likewise;
- strings that are canonical UUIDs become 16 bytes, digit strings an integer, UTC ISO
  timestamps an integer of microseconds (delta-coded down a column), integers varints
  (delta-coded when that is shorter), and a column with few distinct strings an index.
Each special form is used only when formatting it back gives the exact same string.
"""

from __future__ import annotations

import enum
import json
import lzma
import re
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schema.errors import ProtocolError

DEFAULT_MAX_SIZE = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT_BITS = 256
LZMA_DICT_MAX = 8 * 1024 * 1024  # the decoder allocates this; a window for any batch


class CompressionError(ProtocolError):
    code = "compression_error"


class Method(enum.IntEnum):
    STORED = 0x00
    ZLIB = 0x01
    LZMA = 0x02  # raw LZMA2 stream, no .xz container (saves ~60 bytes)
    ZLIB_DICT = 0x03  # zlib with PRESET_DICTIONARY_V1 (small single messages)
    PACKED_STORED = 0x10
    PACKED_ZLIB = 0x11
    PACKED_LZMA = 0x12


# Frozen forever for ZLIB_DICT: field names and values common in sync messages. Changing it
# needs a new Method tag.
PRESET_DICTIONARY_V1 = (
    b'{"event_id":"","outlet_id":"","seq":,"type":"sale.recorded","version":1,"at":"2026-'
    b'T00:00:00.000000Z","customer_id":"","body":{"sale_id":"","till_id":"T1","currency":'
    b'"EUR","lines":[{"sku":"","name":"","qty":1,"unit_price":,"division":"","gross":,'
    b'"discount":0,"net":,"actions":[]}],"payments":[{"mode":"cash","amount":}],'
    b'"total_gross":,"total_discount":0,"total_net":,"points_earned":}}'
    b'"customer.registered""customer.updated""identifier.added""visit.recorded"'
    b'"gift.redeemed""redemption_id""gift_sku""points_spent""card_number""profile"'
    b'"acked_through""results""applied""duplicate""flagged""reason""cursor""events"'
)


# --- bytes --------------------------------------------------------------------------------


def compress(payload: bytes) -> bytes:
    """The smallest of stored, zlib, zlib with the preset dictionary and LZMA."""
    candidates = [bytes((Method.STORED,)) + payload]
    candidates.append(_pack_bytes(Method.ZLIB, payload))
    candidates.append(_pack_bytes(Method.ZLIB_DICT, payload))
    if len(payload) > 128:
        candidates.append(_pack_bytes(Method.LZMA, payload))
    return min(candidates, key=len)


def decompress(blob: bytes, max_size: int = DEFAULT_MAX_SIZE) -> bytes:
    """The original bytes (for packed blobs: the value as compact JSON)."""
    method = _method(blob)
    raw = _unpack_bytes(method, blob[1:], max_size)
    if method >= Method.PACKED_STORED:
        value = _Reader(raw, max_size).read_document()
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    return raw


def encode_message(value: Any) -> bytes:
    """A JSON value, packed and compressed (the smaller of LZMA and zlib)."""
    packed = pack(value)
    options = [_pack_bytes(Method.PACKED_ZLIB, packed)]
    if len(packed) > 128:
        options.append(_pack_bytes(Method.PACKED_LZMA, packed))
    options.append(bytes((Method.PACKED_STORED,)) + packed)
    return min(options, key=len)


def decode_message(blob: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Any:
    """The JSON value back; also accepts plain (non-packed) blobs holding JSON bytes."""
    method = _method(blob)
    raw = _unpack_bytes(method, blob[1:], max_size)
    if method >= Method.PACKED_STORED:
        return _Reader(raw, max_size).read_document()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CompressionError(f"not JSON: {exc}") from exc


def pack(value: Any) -> bytes:
    """The packed form alone (no method tag, not compressed): for measurements."""
    return _Writer().document(value)


def _method(blob: bytes) -> Method:
    if not blob:
        raise CompressionError("empty blob")
    try:
        return Method(blob[0])
    except ValueError:
        raise CompressionError(f"unknown compression method 0x{blob[0]:02x}") from None


def _pack_bytes(method: Method, data: bytes) -> bytes:
    base = Method(method & 0x0F)
    if base is Method.ZLIB:
        body = zlib.compress(data, 6)
    elif base is Method.ZLIB_DICT:
        co = zlib.compressobj(6, zdict=PRESET_DICTIONARY_V1)
        body = co.compress(data) + co.flush()
    elif base is Method.LZMA:
        body = lzma.compress(data, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(data)))
    else:
        body = data
    return bytes((method,)) + body


def _unpack_bytes(method: Method, body: bytes, max_size: int) -> bytes:
    base = Method(method & 0x0F)
    try:
        if base is Method.STORED:
            out = body
        elif base is Method.LZMA:
            out = _bounded_lzma(body, max_size)
        else:
            zdict = PRESET_DICTIONARY_V1 if base is Method.ZLIB_DICT else b""
            out = _bounded_zlib(body, max_size, zdict)
    except (zlib.error, lzma.LZMAError) as exc:
        raise CompressionError(f"corrupt compressed data: {exc}") from exc
    if len(out) > max_size:
        raise CompressionError("message larger than allowed", limit=max_size)
    return out


def _bounded_zlib(body: bytes, max_size: int, zdict: bytes) -> bytes:
    d = zlib.decompressobj(zdict=zdict) if zdict else zlib.decompressobj()
    out = d.decompress(body, max_size + 1)
    if len(out) > max_size or d.unconsumed_tail:
        raise CompressionError("decompressed size over the limit", limit=max_size)
    if not d.eof:
        raise CompressionError("truncated zlib stream")
    return out


def _lzma_filters(size: int) -> list[dict[str, int]]:
    """Preset 9e with a window no larger than the data: a raw LZMA2 stream decodes with
    any window at least as large, and a small one keeps compressing small messages fast."""
    window = 4096
    while window < min(size, LZMA_DICT_MAX):
        window *= 2
    return [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": window}]


def _bounded_lzma(body: bytes, max_size: int) -> bytes:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(LZMA_DICT_MAX))
    out = d.decompress(body, max_size + 1)
    if len(out) > max_size or (not d.eof and not d.needs_input):
        raise CompressionError("decompressed size over the limit", limit=max_size)
    return out


# --- packed values ------------------------------------------------------------------------

# value tags
NULL, FALSE, TRUE, INT, FLOAT, STR, LIST, MAP, UUID, DIGITS, TIME, TABLE = range(12)
# column kinds
C_ANY, C_INT, C_UUID, C_TIME, C_DIGITS, C_TABLE, C_LISTTABLE, C_STR, C_ENUM, C_UUID7 = range(10)
# how a table column is stored
ALL_PRESENT, SOME_MISSING, DEPENDENT, COMPUTED, IDENTICAL = range(5)
OPS: dict[int, Callable[[int, int], int]] = {
    0: lambda a, b: a + b,
    1: lambda a, b: a - b,
    2: lambda a, b: a * b,
}
PACKED_VERSION = 1

_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_DIGITS_RE = re.compile(r"[0-9]{1,38}")
_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|\+00:00)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING = object()


def _uuid_bytes(s: str) -> bytes | None:
    return bytes.fromhex(s.replace("-", "")) if _UUID_RE.fullmatch(s) else None


def _uuid_str(b: bytes) -> str:
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _digits(s: str) -> tuple[int, int] | None:
    return (len(s), int(s)) if _DIGITS_RE.fullmatch(s) else None


def _digits_str(length: int, value: int) -> str:
    return str(value).zfill(length)


def _time(s: str) -> tuple[int, int] | None:
    """(format, microseconds since 1970) when formatting back gives exactly `s`."""
    m = _TIME_RE.fullmatch(s)
    if not m:
        return None
    try:
        base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    frac = m.group(2)
    digits = len(frac) if frac is not None else 7
    micros = (base - _EPOCH) // timedelta(microseconds=1) + int((frac or "0").ljust(6, "0"))
    fmt = digits * 2 + (m.group(3) == "Z")
    return (fmt, micros) if _time_str(fmt, micros) == s else None


def _time_str(fmt: int, micros: int) -> str:
    digits, zulu = divmod(fmt, 2)
    if digits > 7:
        raise CompressionError("bad time format")
    try:
        moment = _EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise CompressionError("time out of range") from None
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if digits < 7:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    return text + ("Z" if zulu else "+00:00")


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _unzigzag(n: int) -> int:
    return n >> 1 if not n & 1 else -((n + 1) >> 1)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _identity(v: Any) -> tuple[str, Any]:
    """A key under which two values are equal only when they encode the same JSON."""
    if v is _MISSING:
        return ("missing", None)
    if v is None or isinstance(v, bool | int | str):
        return (type(v).__name__, v)
    return ("json", json.dumps(v, ensure_ascii=False))


def _distinct(column: list[Any]) -> dict[tuple[str, Any], int]:
    order: dict[tuple[str, Any], int] = {}
    for v in column:
        order.setdefault(_identity(v), len(order))
    return order


def _mapping(keys: list[Any], values: list[Any]) -> list[Any] | None:
    """The value for each distinct key (first-appearance order) if keys determine values."""
    seen: dict[tuple[str, Any], tuple[tuple[str, Any], Any]] = {}
    for k, v in zip(keys, values, strict=True):
        ident = _identity(v)
        prior = seen.setdefault(_identity(k), (ident, v))
        if prior[0] != ident:
            return None
    return [v for _, v in seen.values()]


def _table_keys(rows: list[Any]) -> list[str] | None:
    """The union of keys when every row is a dict whose keys keep that order; else None."""
    if not rows or not all(isinstance(r, dict) for r in rows):
        return None
    order: dict[str, None] = {}
    for row in rows:
        order.update(dict.fromkeys(row))
    keys = list(order)
    if not keys:
        return None
    for row in rows:
        if list(row) != [k for k in keys if k in row]:
            return None
    return keys


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def document(self, value: Any) -> bytes:
        self.uint(PACKED_VERSION)
        self.value(value, 0)
        return bytes(self.out)

    def uint(self, n: int) -> None:
        while n >= 0x80:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def sint(self, n: int) -> None:
        self.uint(_zigzag(n))

    def text(self, s: str) -> None:
        raw = s.encode("utf-8", "surrogatepass")
        self.uint(len(raw))
        self.out += raw

    def value(self, v: Any, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise CompressionError("value nested too deeply")
        if v is None or isinstance(v, bool):
            self.out.append({None: NULL, False: FALSE, True: TRUE}[v])
        elif isinstance(v, int):
            if v.bit_length() > MAX_INT_BITS:
                raise CompressionError("integer too large for a sync message")
            self.out.append(INT)
            self.sint(v)
        elif isinstance(v, float):
            self.out.append(FLOAT)
            self.out += struct.pack(">d", v)
        elif isinstance(v, str):
            self.string(v)
        elif isinstance(v, dict):
            self.mapping(v, depth)
        elif isinstance(v, list | tuple):
            self.sequence(list(v), depth)
        else:
            raise CompressionError(f"not a JSON value: {type(v).__name__}")

    def string(self, s: str) -> None:
        if (u := _uuid_bytes(s)) is not None:
            self.out.append(UUID)
            self.out += u
        elif (t := _time(s)) is not None:
            self.out.append(TIME)
            self.uint(t[0])
            self.sint(t[1])
        elif (d := _digits(s)) is not None:
            self.out.append(DIGITS)
            self.uint(d[0])
            self.uint(d[1])
        else:
            self.out.append(STR)
            self.text(s)

    def mapping(self, m: dict[Any, Any], depth: int) -> None:
        self.out.append(MAP)
        self.uint(len(m))
        for key, item in m.items():
            if not isinstance(key, str):
                raise CompressionError("JSON object keys must be strings")
            self.text(key)
            self.value(item, depth + 1)

    def sequence(self, items: list[Any], depth: int) -> None:
        keys = _table_keys(items) if len(items) >= 2 else None
        if keys is None:
            self.out.append(LIST)
            self.uint(len(items))
            for item in items:
                self.value(item, depth + 1)
            return
        self.out.append(TABLE)
        self.uint(len(items))
        self.table(items, keys, depth)

    def table(
        self,
        rows: list[dict[str, Any]],
        keys: list[str],
        depth: int,
        inherited: list[list[Any]] | None = None,
    ) -> None:
        """Columns in key order. `inherited`: the parent table's earlier columns when these
        rows are the parent's rows one to one (a nested object per row), so a column can
        refer to them (an event's body repeats its envelope's customer_id)."""
        self.uint(len(keys))
        for key in keys:
            self.text(key)
        earlier: list[list[Any]] = list(inherited or [])
        for key in keys:
            values = [row.get(key, _MISSING) for row in rows]
            self.column(values, depth + 1, earlier)
            earlier.append(values)

    def column(self, values: list[Any], depth: int, earlier: list[list[Any]] | None = None) -> None:
        """A column, unless it repeats, is computed from or determined by an earlier one."""
        if earlier and (
            self._identical(values, earlier)
            or self._computed(values, earlier)
            or self._dependent(values, depth, earlier)
        ):
            return
        present = [v for v in values if v is not _MISSING]
        if len(present) == len(values):
            self.out.append(ALL_PRESENT)
        else:
            self.out.append(SOME_MISSING)
            bits = bytearray((len(values) + 7) // 8)
            for i, v in enumerate(values):
                if v is not _MISSING:
                    bits[i // 8] |= 1 << (i % 8)
            self.out += bits
        self.typed_column(present, depth, earlier if len(present) == len(values) else None)

    def _identical(self, values: list[Any], earlier: list[list[Any]]) -> bool:
        idents = [_identity(v) for v in values]
        for i, col in enumerate(earlier):
            if len(col) == len(idents) and all(_identity(a) == b for a, b in zip(col, idents)):
                self.out.append(IDENTICAL)
                self.uint(i)
                return True
        return False

    def _computed(self, values: list[Any], earlier: list[list[Any]]) -> bool:
        """An integer column that is the sum, difference or product of two earlier ones
        (a sale line's gross = qty * unit_price, net = gross - discount)."""
        if len(values) < 2 or not all(_is_int(v) for v in values):
            return False
        if any(v.bit_length() > MAX_INT_BITS for v in values):
            raise CompressionError("integer too large for a sync message")
        ints = [i for i, col in enumerate(earlier) if all(_is_int(v) for v in col)]
        for a in ints:
            for b in ints:
                for op, fn in OPS.items():
                    if all(fn(x, y) == v for x, y, v in zip(earlier[a], earlier[b], values)):
                        self.out.append(COMPUTED)
                        self.out.append(op)
                        self.uint(a)
                        self.uint(b)
                        return True
        return False

    def _dependent(self, values: list[Any], depth: int, earlier: list[list[Any]]) -> bool:
        """A column whose value follows from an earlier column with few distinct values
        (a product's name, price and division follow from its SKU): stored once per
        distinct value of that column, in order of first appearance."""
        best: list[Any] | None = None
        best_index = -1
        for i, col in enumerate(earlier):
            mapping = _mapping(col, values)
            small = mapping is not None and 2 * len(mapping) <= len(values)
            if small and (best is None or len(mapping or ()) < len(best)):
                best, best_index = mapping, i
        if best is None:
            return False
        self.out.append(DEPENDENT)
        self.uint(best_index)
        self.column(best, depth)
        return True

    def typed_column(
        self, values: list[Any], depth: int, earlier: list[list[Any]] | None = None
    ) -> None:
        if values and (self._int_column(values) or self._string_column(values)):
            return
        if values and self._nested_column(values, depth, earlier):
            return
        self.out.append(C_ANY)
        for v in values:
            self.value(v, depth)

    def _int_column(self, values: list[Any]) -> bool:
        if not all(_is_int(v) for v in values):
            return False
        if any(v.bit_length() > MAX_INT_BITS for v in values):
            raise CompressionError("integer too large for a sync message")
        self.out.append(C_INT)
        self.int_run(values)
        return True

    def int_run(self, values: list[int]) -> None:
        """Plain or delta-coded varints, whichever is shorter (1 flag byte)."""
        plain, delta = _Writer(), _Writer()
        previous = 0
        for v in values:
            plain.sint(v)
            delta.sint(v - previous)
            previous = v
        use_delta = len(delta.out) < len(plain.out)
        self.out.append(int(use_delta))
        self.out += delta.out if use_delta else plain.out

    def _string_column(self, values: list[Any]) -> bool:
        if not all(isinstance(v, str) for v in values):
            return False
        uuids = [_uuid_bytes(v) for v in values]
        if all(u is not None for u in uuids):
            raw = [u for u in uuids if u is not None]
            if all(u[6] >> 4 == 7 for u in raw):  # UUIDv7: a time, then random bits
                self.out.append(C_UUID7)
                self.int_run([int.from_bytes(u[:6], "big") for u in raw])
                self.out += b"".join(u[6:] for u in raw)
            else:
                self.out.append(C_UUID)
                self.out += b"".join(raw)
            return True
        times = [_time(v) for v in values]
        if all(t is not None for t in times):
            formats = {t[0] for t in times if t is not None}
            if len(formats) == 1:
                self.out.append(C_TIME)
                self.uint(formats.pop())
                self.int_run([t[1] for t in times if t is not None])
                return True
        digits = [_digits(v) for v in values]
        if all(d is not None for d in digits):
            self.out.append(C_DIGITS)
            for d in digits:
                assert d is not None
                self.uint(d[0])
                self.uint(d[1])
            return True
        self.strings(values)
        return True

    def strings(self, values: list[str]) -> None:
        distinct = list(dict.fromkeys(values))
        if len(distinct) * 2 <= len(values):
            self.out.append(C_ENUM)
            self.uint(len(distinct))
            for s in distinct:
                self.text(s)
            index = {s: i for i, s in enumerate(distinct)}
            for s in values:
                self.uint(index[s])
            return
        self.out.append(C_STR)
        for s in values:
            self.text(s)

    def _nested_column(
        self, values: list[Any], depth: int, earlier: list[list[Any]] | None
    ) -> bool:
        keys = _table_keys(values)
        if keys is not None:
            self.out.append(C_TABLE)
            self.table(values, keys, depth, earlier)
            return True
        if not all(isinstance(v, list) for v in values):
            return False
        flat = [item for v in values for item in v]
        keys = _table_keys(flat)
        if keys is None:
            return False
        self.out.append(C_LISTTABLE)
        for v in values:
            self.uint(len(v))
        self.table(flat, keys, depth)
        return True


class _Reader:
    """Decodes packed bytes; every count is checked against what is left to read."""

    def __init__(self, data: bytes, max_size: int) -> None:
        self.data = data
        self.pos = 0
        self.budget = max_size  # rough output size allowance, against bombs

    def read_document(self) -> Any:
        if self.uint() != PACKED_VERSION:
            raise CompressionError("unknown packed version")
        value = self.value(0)
        if self.pos != len(self.data):
            raise CompressionError("trailing bytes after packed value")
        return value

    # primitives

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise CompressionError("packed value truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise CompressionError("packed value truncated")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 7 * 40:
                raise CompressionError("varint too long")

    def sint(self) -> int:
        return _unzigzag(self.uint())

    def text(self) -> str:
        raw = self.take(self.uint())
        self.spend(len(raw))
        try:
            return raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise CompressionError("bad UTF-8 in packed string") from exc

    def spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise CompressionError("decoded message larger than allowed")

    def count(self, min_bytes_each: float) -> int:
        """A count that the remaining input could actually hold."""
        n = self.uint()
        if n * min_bytes_each > len(self.data) - self.pos + 1:
            raise CompressionError("count larger than the data")
        self.spend(n)
        return n

    # values

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise CompressionError("value nested too deeply")
        tag = self.byte()
        self.spend(1)
        simple: dict[int, Callable[[], Any]] = {
            NULL: lambda: None,
            FALSE: lambda: False,
            TRUE: lambda: True,
            INT: self.sint,
            FLOAT: lambda: struct.unpack(">d", self.take(8))[0],
            STR: self.text,
            UUID: lambda: _uuid_str(self.take(16)),
            DIGITS: self._digits,
            TIME: self._time,
        }
        if tag in simple:
            return simple[tag]()
        if tag == LIST:
            return [self.value(depth + 1) for _ in range(self.count(1))]
        if tag == MAP:
            n = self.count(2)
            return {self.text(): self.value(depth + 1) for _ in range(n)}
        if tag == TABLE:
            return self.table(self.count(1 / 8), depth)
        raise CompressionError(f"unknown packed tag {tag}")

    def _digits(self) -> str:
        length = self.uint()
        if length > 38:
            raise CompressionError("digit string too long")
        return _digits_str(length, self.uint())

    def _time(self) -> str:
        fmt = self.uint()
        return _time_str(fmt, self.sint())

    def table(
        self, nrows: int, depth: int, inherited: list[list[Any]] | None = None
    ) -> list[dict[str, Any]]:
        nkeys = self.count(1)
        if nkeys == 0:
            raise CompressionError("table without columns")
        keys = [self.text() for _ in range(nkeys)]
        rows: list[dict[str, Any]] = [{} for _ in range(nrows)]
        earlier: list[list[Any]] = list(inherited or [])
        for key in keys:
            values = self.column(nrows, depth + 1, earlier)
            earlier.append(values)
            for i, v in enumerate(values):
                if v is not _MISSING:
                    rows[i][key] = v
        return rows

    def column(self, nrows: int, depth: int, earlier: list[list[Any]] | None = None) -> list[Any]:
        mode = self.byte()
        if mode == IDENTICAL:
            source = self._earlier(earlier or [])
            if len(source) != nrows:
                raise CompressionError("identical column of another length")
            self.spend(nrows)
            return list(source)
        if mode == COMPUTED:
            return self._computed(nrows, earlier or [])
        if mode == DEPENDENT:
            source = self._earlier(earlier or [])
            self.spend(nrows)
            order = _distinct(source)
            mapping = self.column(len(order), depth)
            return [mapping[order[_identity(k)]] for k in source]
        if mode == SOME_MISSING:
            bits = self.take((nrows + 7) // 8)
            mask = [bool(bits[i // 8] >> (i % 8) & 1) for i in range(nrows)]
        else:
            mask = [True] * nrows
        present = iter(self.typed_column(sum(mask), depth, earlier if all(mask) else None))
        return [next(present) if m else _MISSING for m in mask]

    def _earlier(self, earlier: list[list[Any]]) -> list[Any]:
        index = self.uint()
        if index >= len(earlier):
            raise CompressionError("column refers to a column that is not there")
        return earlier[index]

    def _computed(self, nrows: int, earlier: list[list[Any]]) -> list[int]:
        op = OPS.get(self.byte())
        a, b = self._earlier(earlier), self._earlier(earlier)
        if op is None or not all(_is_int(v) for v in a + b):
            raise CompressionError("bad computed column")
        self.spend(nrows)
        values = [op(x, y) for x, y in zip(a, b, strict=True)]
        if any(v.bit_length() > MAX_INT_BITS for v in values):
            raise CompressionError("computed integer too large")
        return values

    def typed_column(
        self, n: int, depth: int, earlier: list[list[Any]] | None = None
    ) -> list[Any]:
        kind = self.byte()
        self.spend(n)
        if kind == C_ANY:
            return [self.value(depth) for _ in range(n)]
        if kind == C_INT:
            return self.int_run(n)
        if kind == C_UUID:
            return [_uuid_str(self.take(16)) for _ in range(n)]
        if kind == C_UUID7:
            times = self.int_run(n)
            if any(not 0 <= t < 1 << 48 for t in times):
                raise CompressionError("bad UUIDv7 time")
            return [_uuid_str(t.to_bytes(6, "big") + self.take(10)) for t in times]
        if kind == C_TIME:
            fmt = self.uint()
            return [_time_str(fmt, m) for m in self.int_run(n)]
        if kind == C_DIGITS:
            return [self._digits() for _ in range(n)]
        if kind == C_STR:
            return [self.text() for _ in range(n)]
        if kind == C_ENUM:
            distinct = [self.text() for _ in range(self.count(1))]
            return [self._pick(distinct) for _ in range(n)]
        if kind == C_TABLE:
            return self.table(n, depth, earlier)
        if kind == C_LISTTABLE:
            lengths = [self.uint() for _ in range(n)]
            self.spend(sum(lengths))
            flat = iter(self.table(sum(lengths), depth) if sum(lengths) else [])
            return [[next(flat) for _ in range(k)] for k in lengths]
        raise CompressionError(f"unknown column kind {kind}")

    def _pick(self, distinct: list[str]) -> str:
        i = self.uint()
        if i >= len(distinct):
            raise CompressionError("enum index out of range")
        return distinct[i]

    def int_run(self, n: int) -> list[int]:
        delta = self.byte()
        values, previous = [], 0
        for _ in range(n):
            v = self.sint()
            previous = previous + v if delta else v
            values.append(previous)
        return values
