"""Smart cards through the real PC/SC stack: pcscd, vpcd and emulated cards.

The virtual reader's driver polls about every 400 ms, so events are awaited with timeouts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from hwdevices import Collector, Pcscd, reader_has_card, wait_for

from hardware import loyaltycard
from hardware.cardemulator import ContactlessCard, InsertedCard, LoyaltyCard, insert
from hardware.pcsc import PcscWatcher, connect, personalise
from hardware.reads import CardRead, DeviceError

SLOT0, SLOT1 = "Virtual PCD 00 00", "Virtual PCD 00 01"
UID = bytes.fromhex("04A1B2C3D4E5F6")
NUMBER = "2900010000015"

pytestmark = pytest.mark.usefixtures("pcscd")


@pytest.fixture
def cards() -> Iterator[Callable[..., InsertedCard]]:
    """insert(card, slot): cards are removed, and pcscd has seen it, after the test."""
    inserted: list[InsertedCard] = []

    def insert_card(card, slot: int = 0) -> InsertedCard:
        handle = insert(card, slot=slot)
        inserted.append(handle)
        return handle

    yield insert_card
    for handle in inserted:
        handle.remove()
    for name in (SLOT0, SLOT1):
        wait_for(lambda n=name: reader_has_card(n) is not True, 5, f"{name} to be empty")


@pytest.fixture
def watch(collector: Collector) -> Iterator[Callable[..., PcscWatcher]]:
    watchers: list[PcscWatcher] = []

    def start(reader: str, till: str, connected: bool = True) -> PcscWatcher:
        watcher = PcscWatcher(
            name=f"pcsc-{till}",
            reader=reader,
            till=till,
            on_read=collector.on_read,
            on_error=collector.on_error,
            max_backoff=0.5,
        )
        watcher.start()
        watchers.append(watcher)
        if connected:
            wait_for(lambda: watcher.health()["state"] == "connected", 5, "the watcher to connect")
        return watcher

    yield start
    for watcher in watchers:
        watcher.stop()


def test_contactless_card_uid_reaches_the_readers_till(watch, cards, collector: Collector) -> None:
    watch(SLOT0, "T1")
    inserted_at = time.monotonic()
    cards(ContactlessCard(UID), slot=0)
    read: CardRead = collector.next_read()
    received_at = time.monotonic()
    assert (read.kind, read.value, read.till) == ("smartcard", "04A1B2C3D4E5F6", "T1")
    assert read.detail["source"] == "uid" and read.detail["pcsc_reader"] == SLOT0
    assert inserted_at < read.monotonic <= received_at  # stamped when pcscd reported it


def test_each_reader_feeds_its_own_till(watch, cards, collector: Collector) -> None:
    watch(SLOT0, "T1")
    watch(SLOT1, "T2")
    cards(LoyaltyCard(NUMBER), slot=1)
    read = collector.next_read()
    assert (read.value, read.till, read.detail["source"]) == (NUMBER, "T2", "applet")
    assert collector.no_read(0.6)


def test_card_already_in_the_reader_when_watching_starts_is_read(
    watch, cards, collector: Collector
) -> None:
    cards(ContactlessCard(UID), slot=0)
    wait_for(lambda: reader_has_card(SLOT0), 5, "pcscd to see the card")
    watch(SLOT0, "T1")
    assert collector.next_read().value == "04A1B2C3D4E5F6"


def test_blank_loyalty_card_at_the_till_is_reported_not_read(
    watch, cards, collector: Collector
) -> None:
    watch(SLOT0, "T1")
    cards(LoyaltyCard(), slot=0)
    name, error = collector.next_error()
    assert name == "pcsc-T1" and getattr(error, "code", None) == "card_blank"
    assert collector.reads.empty()


def test_removed_and_reinserted_card_is_read_again(watch, cards, collector: Collector) -> None:
    watcher = watch(SLOT0, "T1")
    card = LoyaltyCard(NUMBER)
    first = cards(card, slot=0)
    assert collector.next_read().value == NUMBER
    first.remove()
    wait_for(lambda: reader_has_card(SLOT0) is False, 5, "pcscd to see the removal")
    cards(card, slot=0)
    assert collector.next_read().value == NUMBER
    assert watcher.health()["reads"] == 2


def test_personalise_a_blank_card_at_reception_then_read_it_at_the_till(
    watch, cards, collector: Collector
) -> None:
    card = LoyaltyCard()
    cards(card, slot=1)
    personalise(SLOT1, NUMBER, pin="4321")
    assert (card.stored_number, card.pin) == (NUMBER, "4321")
    watch(SLOT0, "T1")
    cards(card, slot=0)  # the customer takes the new card to the till
    read = collector.next_read()
    assert (read.value, read.till) == (NUMBER, "T1")


def test_personalise_refuses_a_malformed_pin_before_waiting_for_a_card() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match="PIN"):
        personalise(SLOT1, NUMBER, pin="12", timeout=5.0)  # no card in SLOT1
    assert time.monotonic() - started < 1.0


def test_pin_verify_right_wrong_and_blocked_through_pcsc(cards) -> None:
    cards(LoyaltyCard(NUMBER, pin="1234"), slot=1)
    with connect(SLOT1) as channel:
        assert loyaltycard.select(channel)
        assert loyaltycard.verify_pin(channel, "9999").tries_left == 2
        assert loyaltycard.verify_pin(channel, "1234").ok
        results = [loyaltycard.verify_pin(channel, "9999") for _ in range(3)]
        assert [r.tries_left for r in results] == [2, 1, 0]
        assert loyaltycard.verify_pin(channel, "1234").blocked
        assert loyaltycard.read_card_number(channel) == NUMBER


def test_stop_cancels_the_wait_in_pcscd_promptly(watch) -> None:
    watcher = watch(SLOT0, "T1")
    started = time.monotonic()
    watcher.stop()
    assert time.monotonic() - started < 0.5  # well under the 1 s poll: SCardCancel worked
    assert watcher.health()["state"] == "stopped"


def test_reader_matching_nothing_shows_in_health(watch) -> None:
    watcher = watch("No Such Reader", "T1", connected=False)
    wait_for(lambda: watcher.health()["last_error"], 5, "the missing reader to be reported")
    health = watcher.health()
    assert (health["state"], health["readers"]) == ("reconnecting", [])


def test_watcher_recovers_when_pcscd_restarts(
    own_pcscd: Pcscd, watch, cards, collector: Collector
) -> None:
    watcher = watch(SLOT0, "T1")
    own_pcscd.stop()
    _, error = collector.next_error(code="no_service")
    assert isinstance(error, DeviceError)
    assert watcher.health()["state"] == "reconnecting"
    assert collector.no_error(0.8)  # several retries (back-off 0.1, 0.2, 0.4 s), reported once
    own_pcscd.start()
    wait_for(lambda: watcher.health()["state"] == "connected", 10, "the watcher to reconnect")
    cards(ContactlessCard(UID), slot=0)
    assert collector.next_read().value == "04A1B2C3D4E5F6"
    assert collector.errors.empty()  # the outage was reported once, not per retry


def test_watcher_started_before_pcscd_waits_for_it(
    own_pcscd: Pcscd, watch, cards, collector: Collector
) -> None:
    own_pcscd.stop()
    try:
        watcher = watch(SLOT0, "T1", connected=False)
        _, error = collector.next_error(code="no_service")
        assert "pcscd" in str(error)
        assert watcher.health()["state"] == "reconnecting"
    finally:
        own_pcscd.start()
    wait_for(lambda: watcher.health()["state"] == "connected", 10, "the watcher to connect")
    cards(LoyaltyCard(NUMBER), slot=0)
    assert collector.next_read().value == NUMBER
