"""Card readers at the tills, end to end: a real agent process (`loyalty agent serve --config`),
real pseudo-terminals written byte for byte like the devices, real pcscd with the virtual
reader (vpcd) and emulated cards, and the till's POS long-polling
`GET /v1/tills/{till}/identification` over HTTP (agent/readers.py, agent/tills.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import LOYALTY, Till, db_state, expect_error, line, set_customer_status
from readerfixtures import (
    SLOT_T1,
    SLOT_T2,
    Pcscd,
    PtyDevice,
    ReaderAgent,
    drain,
    identification,
    pcsc_session,
    poll,
    swipe,
    wait_card,
)

from agent import cardnumber
from hardware import cardemulator
from hardware.cardemulator import ContactlessCard, LoyaltyCard

MAG_T1, BARCODE_T1, MAG_T2, CALLERID_T2 = "mag-T1", "barcode-T1", "mag-T2", "modem-T2"


def unknown_card_number() -> str:
    """A well-formed club number from a range no outlet in these tests issues."""
    return cardnumber.make(9876, int(time.monotonic_ns() % 999_999) + 1)


def customer(till: Till, **fields: Any) -> dict[str, str]:
    return till.register(**fields)


# --- serial readers: one agent, four ptys --------------------------------------------------
class SerialRig:
    def __init__(self, directory: Path) -> None:
        self.devices = {name: PtyDevice(directory / f"tty-{name}")
                        for name in (MAG_T1, BARCODE_T1, MAG_T2, CALLERID_T2)}
        kinds = {MAG_T1: ("magstripe", "T1"), BARCODE_T1: ("barcode", "T1"),
                 MAG_T2: ("magstripe", "T2"), CALLERID_T2: ("callerid", "T2")}
        self.agent = ReaderAgent(directory / "agent", [
            {"kind": kind, "port": str(self.devices[name].path), "till": till, "name": name}
            for name, (kind, till) in kinds.items()])
        self.agent.start()
        for name in self.devices:  # a serial port flushes its input when opened: wait for it
            self.agent.wait_reader(name, "connected")
        self.t1, self.t2 = self.agent.till("T1"), self.agent.till("T2")

    def close(self) -> None:
        self.agent.kill()
        for device in self.devices.values():
            device.unplug()


@pytest.fixture(scope="module")
def serial_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SerialRig]:
    rig = SerialRig(tmp_path_factory.mktemp("serial-readers"))
    yield rig
    rig.close()


@pytest.fixture
def rig(serial_rig: SerialRig) -> SerialRig:
    drain(serial_rig.t1)
    drain(serial_rig.t2)
    return serial_rig


def test_a_swipe_reaches_its_till_with_the_customer_and_no_other_till(rig: SerialRig) -> None:
    person = customer(rig.t1, given_name="Jane", surname="Doe")
    rig.devices[MAG_T1].send(swipe(person["card_number"]))
    read = identification(rig.t1)
    assert read["till_id"] == "T1" and read["reader"] == MAG_T1
    assert read["customer"]["customer_id"] == person["customer_id"]
    assert read["customer"]["display_name"] == "Jane Doe"
    assert read["customer"]["status"] == "approved"
    assert "error" not in read
    assert poll(rig.t2, 0.5) is None, "a till bound to another reader gets nothing"
    assert poll(rig.t1, 0) is None, "one swipe, one identification"


def test_a_swipe_on_the_other_tills_reader_goes_to_that_till(rig: SerialRig) -> None:
    person = customer(rig.t1)
    rig.devices[MAG_T2].send(swipe(person["card_number"]))
    read = identification(rig.t2)
    assert read["till_id"] == "T2" and read["customer"]["customer_id"] == person["customer_id"]
    assert poll(rig.t1, 0.5) is None


def test_a_garbled_swipe_is_a_read_error_and_the_next_swipe_works(rig: SerialRig) -> None:
    person = customer(rig.t1)
    pan = person["card_number"]
    rig.devices[MAG_T1].send(f"%B{pan[:5]}\x7f\x01^DOE;{pan[:4]}?\r".encode("latin-1"))
    read = identification(rig.t1)
    assert read["error"]["code"] == "read_error", read
    assert read["error"]["reason"] == "track_garbled"
    assert "customer" not in read
    assert pan not in str(read), "never a full card number in an error"
    rig.devices[MAG_T1].send(swipe(pan))
    read = identification(rig.t1)
    assert read["customer"]["customer_id"] == person["customer_id"]


def test_a_track_2_only_club_card_identifies(rig: SerialRig) -> None:
    person = customer(rig.t1)
    rig.devices[MAG_T1].send(f";{person['card_number']}?\r".encode())
    assert identification(rig.t1)["customer"]["customer_id"] == person["customer_id"]


def test_an_unknown_card_is_refused_at_the_till_and_creates_nobody(rig: SerialRig) -> None:
    before = db_state(rig.agent.db)["customers"]
    number = unknown_card_number()
    rig.devices[MAG_T1].send(swipe(number))
    read = identification(rig.t1)
    assert read["error"]["code"] == "card_unknown", read
    assert "customer" not in read
    assert db_state(rig.agent.db)["customers"] == before


def test_a_banned_customer_is_refused_at_the_till(rig: SerialRig) -> None:
    person = customer(rig.t1)
    set_customer_status(rig.agent.db, person["customer_id"], "banned")  # as HQ's update does
    rig.devices[MAG_T1].send(swipe(person["card_number"]))
    read = identification(rig.t1)
    assert read["error"]["code"] == "card_banned", read
    assert "customer" not in read


def test_a_barcode_scan_of_the_club_card_identifies(rig: SerialRig) -> None:
    person = customer(rig.t1)
    rig.devices[BARCODE_T1].send(f"{person['card_number']}\r\n".encode())
    read = identification(rig.t1)
    assert read["reader"] == BARCODE_T1
    assert read["customer"]["customer_id"] == person["customer_id"]
    assert poll(rig.t1, 0.3) is None, "CR LF is one line end, not an empty second scan"


def test_a_barcode_with_a_wrong_check_digit_is_a_read_error(rig: SerialRig) -> None:
    number = customer(rig.t1)["card_number"]
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    rig.devices[BARCODE_T1].send(f"{wrong}\r\n".encode())
    assert identification(rig.t1)["error"]["code"] == "read_error"


def test_caller_id_identifies_the_caller_at_the_till_bound_to_the_line(rig: SerialRig) -> None:
    person = customer(rig.t1, given_name="Ring", surname="Er")
    rig.t1.ok("POST", f"/v1/customers/{person['customer_id']}/identifiers", 201,
              json={"kind": "phone", "value": "5551234"})
    rig.devices[CALLERID_T2].receive()  # the modem's AT+VCID=1 from the agent
    rig.devices[CALLERID_T2].send(
        b"\r\nRING\r\n\r\nDATE = 1122\r\nTIME = 0830\r\nNMBR = 5551234\r\n\r\nRING\r\n")
    read = identification(rig.t2)
    assert read["kind"] == "phone" and read["reader"] == CALLERID_T2
    assert read["customer"]["customer_id"] == person["customer_id"]
    assert poll(rig.t2, 0.3) is None and poll(rig.t1, 0) is None


def test_a_withheld_number_is_a_read_error(rig: SerialRig) -> None:
    rig.devices[CALLERID_T2].send(b"RING\r\nDATE = 1122\r\nTIME = 0831\r\nNMBR = P\r\n")
    assert identification(rig.t2)["error"]["code"] == "read_error"


# --- a device that fails --------------------------------------------------------------------
@pytest.fixture
def lone_reader(tmp_path: Path) -> Iterator[tuple[ReaderAgent, PtyDevice]]:
    device = PtyDevice(tmp_path / "ttyMAG")
    agent = ReaderAgent(tmp_path / "agent", [
        {"kind": "magstripe", "port": str(device.path), "till": "T1", "name": "mag"}])
    agent.start()
    agent.wait_reader("mag", "connected")
    yield agent, device
    agent.kill()
    device.unplug()


def test_a_vanished_reader_reconnects_and_the_till_api_carries_on(
    lone_reader: tuple[ReaderAgent, PtyDevice],
) -> None:
    agent, device = lone_reader
    till = agent.till("T1")
    person = customer(till)
    device.unplug()  # the reader's cable pulled: the agent's next read fails
    health = agent.wait_reader("mag", "reconnecting")
    assert health["last_error"] and "device_lost" in health["last_error"]
    started = time.monotonic()
    assert till.ok("POST", "/v1/identify", json={"kind": "card", "value": person["card_number"]})[
        "customer_id"] == person["customer_id"]
    till.quote(person["card_number"], [line("SKU1", 1000)])
    assert poll(till, 0.2) is None, "a lost device is not a read for the cashier"
    assert time.monotonic() - started < 2.0, "the till API answers while the reader is away"
    time.sleep(0.5)  # let it fail to reopen a few times (back-off 0.1, 0.2, 0.4 s)
    assert agent.wait_reader("mag", "reconnecting")["state"] == "reconnecting"
    assert poll(till, 0) is None, "failing to reopen is not a read either"
    device.plug()  # plugged back in: a new pty behind the same path (a symlink)
    agent.wait_reader("mag", "connected", timeout=15)
    device.send(swipe(person["card_number"]))
    assert identification(till)["customer"]["customer_id"] == person["customer_id"]


def test_a_reader_missing_at_start_is_no_read_and_is_picked_up_when_plugged(
    tmp_path: Path,
) -> None:
    device = PtyDevice(tmp_path / "ttyLATE")
    device.unplug()
    device.path.unlink(missing_ok=True)
    agent = ReaderAgent(tmp_path / "agent", [
        {"kind": "magstripe", "port": str(device.path), "till": "T1", "name": "late"}])
    try:
        agent.start()
        health = agent.wait_reader("late", "reconnecting")
        assert "device_unavailable" in (health["last_error"] or "")
        till = agent.till("T1")
        person = customer(till)
        assert poll(till, 0.3) is None, "a missing device is not a read for the cashier"
        device.plug()
        agent.wait_reader("late", "connected")
        device.send(swipe(person["card_number"]))
        assert identification(till)["customer"]["customer_id"] == person["customer_id"]
    finally:
        agent.kill()
        device.unplug()


# --- configuration errors -------------------------------------------------------------------
@pytest.mark.parametrize(("table", "says"), [
    ('kind = "teleport"\nport = "/dev/null"\ntill = "T1"', "kind"),
    ('kind = "magstripe"\nport = "/dev/null"', "till"),
    ('kind = "magstripe"\ntill = "T1"', "port"),
    ('kind = "pcsc"\ntill = "T1"', "reader"),
    ('kind = "magstripe"\nport = "/dev/null"\ntill = "T1"\nbaud = 9600', "baud"),
])
def test_a_bad_reader_table_stops_the_agent_with_a_config_error(
    tmp_path: Path, table: str, says: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'db = "{tmp_path / "o.db"}"\noutlet = "T"\nport = 1\n[[readers]]\n{table}\n')
    done = subprocess.run([str(LOYALTY), "agent", "serve", "--config", str(config)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.startswith("error [config_error]: "), done.stderr[-2000:]
    assert says in done.stderr
    assert "Traceback" not in done.stderr


# --- smart cards through pcscd and the virtual reader ---------------------------------------
class PcscRig:
    def __init__(self, directory: Path, daemon: Pcscd) -> None:
        self.pcscd = daemon
        self.agent = ReaderAgent(directory / "agent", [
            {"kind": "pcsc", "reader": SLOT_T1, "till": "T1", "name": "chip-T1"},
            {"kind": "pcsc", "reader": SLOT_T2, "till": "T2", "name": "chip-T2"}])
        self.agent.start()
        self.agent.wait_reader("chip-T1", "connected")
        self.agent.wait_reader("chip-T2", "connected")
        self.t1, self.t2 = self.agent.till("T1"), self.agent.till("T2")
        self.inserted: list[cardemulator.InsertedCard] = []

    def insert(self, card: Any, slot: int) -> cardemulator.InsertedCard:
        inserted = cardemulator.insert(card, slot=slot)
        self.inserted.append(inserted)
        return inserted

    def remove_all(self) -> None:
        while self.inserted:
            self.inserted.pop().remove()
        if self.pcscd.running or not self.pcscd.ours:
            wait_card(SLOT_T1, False)
            wait_card(SLOT_T2, False)


@pytest.fixture(scope="module")
def pcsc_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscRig]:
    directory = tmp_path_factory.mktemp("pcsc-readers")
    with pcsc_session(directory / "pcscd.log") as daemon:
        rig = PcscRig(directory, daemon)
        try:
            yield rig
        finally:
            rig.remove_all()
            rig.agent.kill()


@pytest.fixture
def chips(pcsc_rig: PcscRig) -> Iterator[PcscRig]:
    drain(pcsc_rig.t1)
    drain(pcsc_rig.t2)
    yield pcsc_rig
    pcsc_rig.remove_all()


def test_a_personalised_loyalty_card_inserted_at_t1_identifies_there(chips: PcscRig) -> None:
    person = customer(chips.t1, given_name="Chip", surname="Holder")
    chips.insert(LoyaltyCard(card_number=person["card_number"], pin="1234"), slot=0)
    read = identification(chips.t1)
    assert read["reader"] == "chip-T1" and read["kind"] == "card"
    assert read["customer"]["customer_id"] == person["customer_id"]
    assert read["customer"]["display_name"] == "Chip Holder"
    assert isinstance(read["detected_monotonic"], float)
    assert poll(chips.t2, 0.3) is None
    assert poll(chips.t1, 0) is None, "one insertion, one identification"


def test_a_contactless_card_known_by_its_uid_identifies(chips: PcscRig) -> None:
    person = customer(chips.t1)
    chips.t1.ok("POST", f"/v1/customers/{person['customer_id']}/identifiers", 201,
                json={"kind": "smartcard", "value": "04:a1:b2:c3:d4:e5:f6"})
    chips.insert(ContactlessCard(bytes.fromhex("04A1B2C3D4E5F6")), slot=1)
    read = identification(chips.t2)
    assert read["kind"] == "smartcard" and read["reader"] == "chip-T2"
    assert read["customer"]["customer_id"] == person["customer_id"]
    assert poll(chips.t1, 0.3) is None


def test_an_unknown_contactless_card_is_card_unknown(chips: PcscRig) -> None:
    before = db_state(chips.agent.db)["customers"]
    chips.insert(ContactlessCard(bytes.fromhex("04DEADBEEF0001")), slot=0)
    assert identification(chips.t1)["error"]["code"] == "card_unknown"
    assert db_state(chips.agent.db)["customers"] == before


def test_a_blank_card_personalised_at_the_desk_then_identifies(chips: PcscRig) -> None:
    person = customer(chips.t1)
    card = LoyaltyCard()  # blank, as it comes from the card printer
    chips.insert(card, slot=0)
    read = identification(chips.t1)
    assert read["error"]["code"] == "read_error", "a blank card at a till: the cashier is told"
    assert read["error"]["reason"] == "card_blank"
    written = chips.t1.ok("POST", f"/v1/customers/{person['customer_id']}/smartcard", 201,
                          json={"reader": SLOT_T1, "pin": "4321"})
    assert written["customer_id"] == person["customer_id"]
    assert person["card_number"] not in str(written), "the answer masks the number"
    assert card.stored_number == person["card_number"] and card.pin == "4321"
    chips.remove_all()
    chips.insert(card, slot=0)
    read = identification(chips.t1)
    assert read["customer"]["customer_id"] == person["customer_id"], read
    assert chips.t1.ok("POST", "/v1/identify", json={
        "kind": "card", "value": person["card_number"], "pin": "4321"})["customer_id"] == \
        person["customer_id"], "the PIN went into the customer's record too"


def test_personalising_a_card_that_is_not_blank_is_refused(chips: PcscRig) -> None:
    owner, other = customer(chips.t1), customer(chips.t1)
    card = LoyaltyCard(card_number=owner["card_number"])
    chips.insert(card, slot=0)
    identification(chips.t1)
    answer = chips.t1.post(f"/v1/customers/{other['customer_id']}/smartcard",
                           json={"reader": SLOT_T1})
    error = expect_error(answer, answer.status_code, "card_not_blank")
    assert 400 <= answer.status_code < 500, answer.text
    assert owner["card_number"] not in error["message"] and other["card_number"] not in str(error)
    assert card.stored_number == owner["card_number"], "the card was left as it was"


def test_personalising_with_no_card_in_the_reader_says_so(chips: PcscRig) -> None:
    person = customer(chips.t1)
    started = time.monotonic()
    answer = chips.t1.post(f"/v1/customers/{person['customer_id']}/smartcard",
                           json={"reader": SLOT_T2})
    assert answer.status_code >= 400 and answer.json()["error"]["code"], answer.text
    assert time.monotonic() - started < 10


def test_pcscd_stopping_never_stops_the_agent_and_reads_resume(chips: PcscRig) -> None:
    if not chips.pcscd.ours:
        pytest.skip("pcscd was started outside these tests: not restarting someone else's daemon")
    person = customer(chips.t1)
    chips.pcscd.stop()
    try:
        health = chips.agent.wait_reader("chip-T1", "reconnecting")
        assert "no_service" in (health["last_error"] or "")
        started = time.monotonic()
        assert chips.t1.ok("POST", "/v1/identify", json={
            "kind": "card", "value": person["card_number"]})["customer_id"] == person["customer_id"]
        assert poll(chips.t1, 0.2) is None, "pcscd going away is not a read for the cashier"
        assert time.monotonic() - started < 2.0
    finally:
        chips.pcscd.start()
    chips.agent.wait_reader("chip-T1", "connected", timeout=20)
    chips.agent.wait_reader("chip-T2", "connected", timeout=20)
    chips.insert(LoyaltyCard(card_number=person["card_number"]), slot=0)
    assert identification(chips.t1)["customer"]["customer_id"] == person["customer_id"]


def test_a_read_is_not_lost_to_a_pos_that_hung_up_mid_poll(
    lone_reader: tuple[ReaderAgent, PtyDevice],
) -> None:
    import socket

    agent, device = lone_reader
    till = agent.till("T1")
    person = customer(till)
    host, port = agent.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as pos:  # a POS that then crashes
        pos.sendall(b"GET /v1/tills/T1/identification?wait=30 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.3)
    time.sleep(0.2)
    device.send(swipe(person["card_number"]))
    read = identification(till, wait=5)
    assert read["customer"]["customer_id"] == person["customer_id"]
