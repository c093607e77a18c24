#!/usr/bin/env python3
"""Bytes on the modem line per sale event: which encoding and compression to use.

What it does (issue 5, "Framing over the line: ... measure which"): builds N realistic
`sale.recorded` events with the real models (`schema.events`: UUIDv7 event and sale ids,
customer ids from a pool of regulars, 1-6 lines from a 300-product catalogue with
Zipf-like popularity so SKUs and names repeat as in a real shop, real prices, discounts,
1-2 payments, times through a trading day), wraps them in the real push message
(`schema.sync.PushRequest`) and measures, in one run:

- raw JSON, zlib-6 per event, zlib-6 per event with a preset dictionary (the built-in
  `PRESET_DICTIONARY_V1`, and a 4 KiB dictionary of other sample events), zlib-6 over the
  batch, LZMA (xz, preset 6) over the batch: the baselines the packed format must beat;
- packed (sync.compression: columnar, binary UUIDs/times/digits) + zlib and + LZMA, the
  `encode_message` winner; checked to decode back to the same message.

Framing: the winner and the raw baseline are also cut into 512-byte frames with
`sync.framing` (13 bytes per frame + byte stuffing); `bytes_per_event` is that framed figure,
`s_per_1000` = bytes_per_event * 1000 * 10 / 33,600 (10 bits per byte on the line).
Retransmissions are not included here; at a bit error rate of 1e-5 the channel test
measures ~93% of line time (tests/sync/test_modemchannel.py).

Last line:
`modem_wire: events= json_bytes_per_event= bytes_per_event= s_per_1000= s_per_5000=
baseline_bytes_per_event= baseline_s_per_1000= zlib_event= zlib_dict_event= zlib_batch=
lzma_batch= packed_zlib= packed_lzma= framing_overhead_pct= encode_s= decode_s=`
(baseline = uncompressed JSON in the same frames).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import random
import sys
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schema.events import Event, Payment, SaleLine, SaleRecorded, make_event
from schema.sync import MAX_BATCH, PushRequest
from sync.compression import PRESET_DICTIONARY_V1, decode_message, encode_message, pack
from sync.framing import Frame, FrameType, encode_frame

LINE_BPS = 33_600
FRAME_PAYLOAD = 512
DIVISIONS = ("wine", "food", "drinks", "deli", "bakery", None)
WORDS = ("Milk", "Bread", "Cheese", "Apple", "Rioja", "Coffee", "Butter", "Ham", "Olive oil",
         "Water", "Tomato", "Yogurt", "Chocolate", "Beer", "Pasta", "Rice", "Tea", "Salmon")
SIZES = ("250g", "500g", "1kg", "0.75l", "1l", "1.5l", "6x0.33l", "200g", "pack of 4")


def uuid7_at(moment: datetime, rng: random.Random) -> str:
    """A UUIDv7 for a given time (customers registered over the years)."""
    ms = int(moment.timestamp() * 1000)
    value = (ms << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62)
    value |= rng.getrandbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def catalogue(rng: random.Random) -> list[dict[str, Any]]:
    products = []
    for i in range(300):
        ean = f"40{rng.randrange(10**10):010d}"
        ean += str((10 - sum(int(d) * (3 if k % 2 else 1) for k, d in enumerate(ean)) % 10) % 10)
        name = f"{rng.choice(WORDS)} {rng.choice(WORDS).lower()} {rng.choice(SIZES)} #{i}"
        products.append({"sku": ean, "name": name, "price": rng.randrange(49, 3999),
                         "division": rng.choice(DIVISIONS)})
    return products


def sale(outlet: str, seq: int, at: datetime, customer: str, products: list[dict[str, Any]],
         rng: random.Random) -> Event:
    weights = [1 / (k + 1) for k in range(len(products))]  # Zipf-like popularity
    lines = []
    for product in rng.choices(products, weights, k=rng.choice((1, 1, 1, 2, 2, 2, 3, 4))):
        qty = rng.choice((1, 1, 1, 2, 3))
        gross = qty * product["price"]
        discount = gross * 5 // 100 if rng.random() < 0.3 else 0
        lines.append(SaleLine(sku=product["sku"], name=product["name"], qty=qty,
                              unit_price=product["price"], division=product["division"],
                              gross=gross, discount=discount, net=gross - discount,
                              actions=["category-5pct"] if discount else []))
    gross = sum(ln.gross for ln in lines)
    discount = sum(ln.discount for ln in lines)
    net = gross - discount
    payments = [Payment(mode=rng.choice(("cash", "card", "card")), amount=net)]
    if rng.random() < 0.1 and net > 100:
        payments = [Payment(mode="credit", amount=100), Payment(mode="card", amount=net - 100)]
    body = SaleRecorded(sale_id=uuid7_at(at, rng), customer_id=customer,
                        till_id=rng.choice(("T1", "T2", "T3")), currency="EUR", lines=lines,
                        payments=payments, total_gross=gross, total_discount=discount,
                        total_net=net, points_earned=net // 100)
    stamp = at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    event = make_event(outlet, seq, body, at=stamp)
    return event.model_copy(update={"event_id": uuid7_at(at, rng)})


def events(n: int, seed: int) -> list[Event]:
    rng = random.Random(seed)
    products = catalogue(random.Random(1))  # the same shop in every sample
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    customers = [uuid7_at(start - timedelta(days=rng.randrange(3000)), rng) for _ in range(3000)]
    out, at = [], start
    for seq in range(1, n + 1):
        at += timedelta(microseconds=int(rng.expovariate(1 / 17) * 1e6))
        out.append(sale("OUT-042", 10_000 + seq, at, rng.choice(customers), products, rng))
    return out


def framed(blob: bytes) -> int:
    chunks = [blob[i:i + FRAME_PAYLOAD] for i in range(0, len(blob), FRAME_PAYLOAD)] or [b""]
    return sum(len(encode_frame(Frame(FrameType.DATA, i % 65536, c))) for i, c in enumerate(chunks))


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 events instead of 1,000")
    ap.add_argument("--events", type=int, help="events per batch [1,000; quick 200]")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    n = args.events or (200 if args.quick else 1_000)
    if not 1 <= n <= MAX_BATCH:
        ap.error(f"--events: 1..{MAX_BATCH} (one push message; 5,000 sales = 5 pushes)")
    load_before = os.getloadavg()[0]

    batch = events(n, args.seed)
    per_event = [e.model_dump_json().encode() for e in batch]
    sample = b"".join(e.model_dump_json().encode() for e in events(40, args.seed + 1))[-4096:]
    message = PushRequest(outlet_id="OUT-042", events=batch).model_dump(mode="json")
    message_json = json.dumps(message, separators=(",", ":")).encode()

    def zlib_dict(data: bytes, zdict: bytes) -> int:
        co = zlib.compressobj(6, zdict=zdict)
        return len(co.compress(data) + co.flush())

    packed, encode_s = timed(lambda: encode_message(message))
    decoded, decode_s = timed(lambda: decode_message(packed))
    assert decoded == json.loads(message_json), "packed message did not round-trip"
    packed_zlib = len(zlib.compress(pack(message), 6)) + 1

    sizes = {
        "json": sum(map(len, per_event)) / n,
        "zlib_event": sum(len(zlib.compress(e, 6)) for e in per_event) / n,
        "zlib_dict_event": sum(zlib_dict(e, PRESET_DICTIONARY_V1) for e in per_event) / n,
        "zlib_sample_dict_event": sum(zlib_dict(e, sample) for e in per_event) / n,
        "zlib_batch": len(zlib.compress(message_json, 6)) / n,
        "lzma_batch": len(lzma.compress(message_json)) / n,
        "packed_zlib": packed_zlib / n,
        "packed_lzma": len(packed) / n,
    }
    framed_winner = framed(packed) / n
    framed_raw = framed(message_json) / n
    s_per_1000 = framed_winner * 1000 * 10 / LINE_BPS
    raw_s_per_1000 = framed_raw * 1000 * 10 / LINE_BPS
    overhead = (framed(packed) / len(packed) - 1) * 100

    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print(f"{n} sale events, {sizes['json']:.0f} B of JSON each on average; push message "
          f"{len(message_json):,} B")
    print(f"{'encoding':<44}{'bytes/event':>12}{'s/1000 @33.6k':>15}")
    labels = {
        "json": "raw JSON",
        "zlib_event": "zlib-6 per event",
        "zlib_dict_event": "zlib-6 per event, built-in preset dictionary",
        "zlib_sample_dict_event": "zlib-6 per event, 4 KiB sample dictionary",
        "zlib_batch": "zlib-6 over the batch",
        "lzma_batch": "LZMA (xz -6) over the batch",
        "packed_zlib": "packed + zlib-6 over the batch",
        "packed_lzma": "packed + LZMA over the batch (encode_message)",
    }
    for key, label in labels.items():
        print(f"{label:<44}{sizes[key]:>12.1f}{sizes[key] * 10_000 / LINE_BPS:>15.1f}")
    print(f"{'framed: winner (512 B frames)':<44}{framed_winner:>12.1f}{s_per_1000:>15.1f}")
    print(f"{'framed: raw JSON (baseline)':<44}{framed_raw:>12.1f}{raw_s_per_1000:>15.1f}")
    print(f"framing overhead on the winner: {overhead:.1f}%; encode {encode_s:.3f} s, "
          f"decode {decode_s:.3f} s for {n} events; 5,000 sales: {5 * s_per_1000:.0f} s "
          f"(goal < 150 s), goal <= 80 B/event")
    print(f"modem_wire: events={n} json_bytes_per_event={sizes['json']:.0f} "
          f"bytes_per_event={framed_winner:.1f} s_per_1000={s_per_1000:.1f} "
          f"s_per_5000={5 * s_per_1000:.0f} baseline_bytes_per_event={framed_raw:.0f} "
          f"baseline_s_per_1000={raw_s_per_1000:.0f} zlib_event={sizes['zlib_event']:.0f} "
          f"zlib_dict_event={sizes['zlib_sample_dict_event']:.0f} "
          f"zlib_batch={sizes['zlib_batch']:.1f} lzma_batch={sizes['lzma_batch']:.1f} "
          f"packed_zlib={sizes['packed_zlib']:.1f} packed_lzma={sizes['packed_lzma']:.1f} "
          f"framing_overhead_pct={overhead:.1f} encode_s={encode_s:.3f} decode_s={decode_s:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
