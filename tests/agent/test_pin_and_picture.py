"""PINs (schema.pin, identification.check_pin) and customer pictures (schema.picture): on the
domain functions, and through the till API of the agent `loyalty agent serve` builds."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from agentkit import AnyAgent, Till, db_state, expect_error, png
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from agent import customers, identification
from agent.outlet import Outlet
from schema import picture, pin
from schema.api import CustomerIn
from schema.errors import InvalidRequest, PinInvalid, PinLocked

# --- PIN hashing (pure) ----------------------------------------------------------------


@settings(max_examples=8, deadline=None)  # scrypt is slow on purpose
@given(st.text(alphabet="0123456789", min_size=8, max_size=8))
def test_a_pin_hash_never_contains_the_pin_and_verifies_only_it(secret: str) -> None:
    stored = pin.hash_pin(secret)
    assert secret not in stored
    assert stored.startswith("scrypt$")
    assert pin.verify(secret, stored)
    wrong = str((int(secret[0]) + 1) % 10) + secret[1:]
    assert not pin.verify(wrong, stored)
    assert not pin.verify(secret[:-1], stored)


def test_pin_hashes_are_salted() -> None:
    first, second = pin.hash_pin("1234"), pin.hash_pin("1234")
    assert first != second
    assert pin.verify("1234", first) and pin.verify("1234", second)


@pytest.mark.parametrize("bad", ["", "123", "123456789", "12a4", "١٢٣٤", "12 34"])
def test_a_pin_is_4_to_8_ascii_digits(bad: str) -> None:
    with pytest.raises(pin.PinFormatError):
        pin.hash_pin(bad)


@pytest.mark.parametrize("stored", ["", "plain1234", "scrypt$16384$8$1$zz$00", "a$b$c"])
def test_a_corrupt_stored_hash_verifies_nothing(stored: str) -> None:
    assert pin.verify("1234", stored) is False


# --- PIN at the desk and the till ------------------------------------------------------


def test_pin_locks_after_three_failures_and_a_new_pin_resets_it(outlet: Outlet) -> None:
    cid = customers.register(outlet, CustomerIn(kind="person", given_name="P", surname="In",
                                                pin="2468"))["customer_id"]
    identification.check_pin(outlet, cid, "2468")
    for _ in range(2):
        with pytest.raises(PinInvalid):
            identification.check_pin(outlet, cid, "0000")
    identification.check_pin(outlet, cid, "2468")  # a right PIN clears the count
    for _ in range(pin.MAX_FAILURES):
        with pytest.raises(PinInvalid):
            identification.check_pin(outlet, cid, "1111")
    with pytest.raises(PinLocked):
        identification.check_pin(outlet, cid, "2468")  # locked: even the right PIN
    customers.set_pin(outlet, cid, "97531")
    with pytest.raises(PinInvalid):
        identification.check_pin(outlet, cid, "2468")
    identification.check_pin(outlet, cid, "97531")
    assert outlet.db.scalar("SELECT pin_failures FROM customers WHERE customer_id = ?",
                            (cid,)) == 0


def test_pin_failures_survive_a_restart(tmp_path: Path) -> None:
    shop = Outlet(tmp_path / "o.db", "T")
    cid = customers.register(shop, CustomerIn(kind="person", given_name="P", surname="In",
                                              pin="2468"))["customer_id"]
    for _ in range(pin.MAX_FAILURES):
        with pytest.raises(PinInvalid):
            identification.check_pin(shop, cid, "1111")
    shop.close()
    shop = Outlet(tmp_path / "o.db")
    try:
        with pytest.raises(PinLocked):
            identification.check_pin(shop, cid, "2468")
    finally:
        shop.close()


def test_identify_with_a_wrong_pin_records_no_visit(outlet: Outlet) -> None:
    joined = customers.register(outlet, CustomerIn(kind="person", given_name="P", surname="In",
                                                   pin="2468"))
    visits = outlet.db.scalar("SELECT COUNT(*) FROM visits")
    with pytest.raises(PinInvalid):
        identification.identify(outlet, "card", joined["card_number"], "T1", pin="9999")
    assert outlet.db.scalar("SELECT COUNT(*) FROM visits") == visits
    identification.identify(outlet, "card", joined["card_number"], "T1", pin="2468")
    assert outlet.db.scalar("SELECT COUNT(*) FROM visits") == visits + 1


def test_pin_over_http_locks_and_is_reset_at_the_desk(till: Till,
                                                      agent: AnyAgent) -> None:
    joined = till.register(pin="86420135")
    cid, card = joined["customer_id"], joined["card_number"]
    assert till.ok("GET", f"/v1/customers/{cid}")["has_pin"] is True
    till.ok("POST", "/v1/identify", json={"kind": "card", "value": card, "pin": "86420135"})
    for _ in range(3):
        expect_error(till.post("/v1/identify", {"kind": "card", "value": card, "pin": "1111"}),
                     401, "pin_invalid")
    expect_error(till.post("/v1/identify", {"kind": "card", "value": card, "pin": "86420135"}),
                 403, "pin_locked")
    answer = till.post(f"/v1/customers/{cid}/pin", {"pin": "55554444"})
    assert answer.status_code == 204, answer.text
    till.ok("POST", "/v1/identify", json={"kind": "card", "value": card, "pin": "55554444"})
    expect_error(till.post(f"/v1/customers/{cid}/pin", {"pin": "12"}), 422, "invalid_request")
    # the PIN itself is nowhere: not in the file, not in the answers
    raw = b"".join(p.read_bytes() for p in agent.db.parent.glob("outlet.db*")
                   if p.suffix != ".stderr")
    assert b"86420135" not in raw and b"55554444" not in raw
    assert "55554444" not in json.dumps(till.ok("GET", f"/v1/customers/{cid}"))


# --- pictures (pure) -------------------------------------------------------------------


@pytest.mark.parametrize("size, fmt", [((300, 300), "PNG"), ((1, 1), "PNG"),
                                       ((300, 300), "JPEG"), ((120, 300), "JPEG")])
def test_pictures_up_to_300x300_png_or_jpeg_are_accepted(size: tuple[int, int],
                                                         fmt: str) -> None:
    raw = picture.decode(png(*size, fmt=fmt))
    with Image.open(io.BytesIO(raw)) as image:
        assert image.size == size and image.format == fmt


@pytest.mark.parametrize("size", [(301, 10), (10, 301), (301, 301), (1000, 1)])
def test_pictures_over_300_on_a_side_are_refused(size: tuple[int, int]) -> None:
    with pytest.raises(InvalidRequest, match="300"):
        picture.decode(png(*size))


def test_a_picture_that_is_not_a_png_or_jpeg_is_refused() -> None:
    not_image = base64.b64encode(b"this is not an image at all" * 10).decode()
    truncated = base64.b64encode(base64.b64decode(png(50, 50))[:60]).decode()
    for bad in (not_image, "@@not base64@@", png(20, 20, fmt="GIF"), png(20, 20, fmt="BMP"),
                truncated):
        with pytest.raises(InvalidRequest):
            picture.decode(bad)


# --- pictures over HTTP ----------------------------------------------------------------


def test_a_300x300_picture_is_kept_and_bigger_or_non_images_are_refused(
        till: Till, agent: AnyAgent) -> None:
    joined = till.register(picture=png(300, 300))
    cid = joined["customer_id"]
    assert till.ok("GET", f"/v1/customers/{cid}")["has_picture"] is True
    before = db_state(agent.db)
    for bad in (png(301, 10), base64.b64encode(b"GIF89a not really").decode(),
                png(10, 10, fmt="GIF")):
        expect_error(till.post("/v1/customers", {"kind": "person", "given_name": "A",
                                                 "surname": "B", "picture": bad}),
                     422, "invalid_request")
        expect_error(till.request("PATCH", f"/v1/customers/{cid}", json={"picture": bad}),
                     422, "invalid_request")
    assert db_state(agent.db) == before
    other = till.register()["customer_id"]
    till.ok("PATCH", f"/v1/customers/{other}", json={"picture": png(200, 100, fmt="JPEG")})
    assert till.ok("GET", f"/v1/customers/{other}")["has_picture"] is True
