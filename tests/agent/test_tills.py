"""Per-till hand-off of card reads (agent.tills.TillBoard), in process and over HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from agent import tills
from agent.api import create_app
from agent.outlet import Outlet
from agent.tills import TillBoard
from web import serving


def read(n: int) -> dict[str, Any]:
    return {"kind": "magstripe", "value": f";{n:016d}=2512?", "reader": "R1"}


def test_a_read_reaches_exactly_one_waiting_poll_of_its_till() -> None:
    board = TillBoard()

    async def scenario() -> list[Any]:
        polls = [asyncio.create_task(board.next(t, 0.5)) for t in ("T1", "T1", "T2")]
        await asyncio.sleep(0.05)  # all three are waiting
        board.publish("T1", read(1))
        return await asyncio.gather(*polls)

    first, second, other_till = asyncio.run(scenario())
    assert sorted([first, second], key=lambda r: r is None) == [read(1), None]
    assert other_till is None
    assert board.pending() == {}


def test_a_read_published_from_a_reader_thread_wakes_the_poll() -> None:
    board = TillBoard()

    async def scenario() -> tuple[Any, float]:
        started = time.monotonic()
        threading.Timer(0.1, board.publish, args=("T1", read(2))).start()
        got = await board.next("T1", 5)
        return got, time.monotonic() - started

    got, took = asyncio.run(scenario())
    assert got == read(2)
    assert took < 2, "delivered on publish, not at the poll's timeout"


def test_a_read_with_no_waiter_goes_to_the_next_poll_once_and_in_order() -> None:
    board = TillBoard()
    board.publish("T1", read(1))
    board.publish("T1", read(2))
    assert board.pending() == {"T1": 2}

    async def polls() -> list[Any]:
        return [await board.next("T2", 0), await board.next("T1", 0),
                await board.next("T1", 0.05), await board.next("T1", 0.05)]

    assert asyncio.run(polls()) == [None, read(1), read(2), None]


def test_the_queue_of_a_till_is_bounded_and_keeps_the_newest() -> None:
    board = TillBoard()
    for n in range(tills.MAX_QUEUED + 4):
        board.publish("T1", read(n))

    async def drain() -> list[Any]:
        got = []
        while (r := await board.next("T1", 0)) is not None:
            got.append(r)
        return got

    assert asyncio.run(drain()) == [read(n) for n in range(4, tills.MAX_QUEUED + 4)]


def test_reads_older_than_max_age_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(tills, "time", SimpleNamespace(monotonic=lambda: now[0]))
    board = TillBoard()
    board.publish("T1", read(1))
    now[0] += tills.MAX_AGE_S / 2
    board.publish("T1", read(2))
    now[0] += tills.MAX_AGE_S / 2 + 1  # read 1 is now too old, read 2 is not
    assert asyncio.run(board.next("T1", 0)) == read(2)
    board.publish("T1", read(3))
    now[0] += tills.MAX_AGE_S + 1
    assert asyncio.run(board.next("T1", 0)) is None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Outlet, str]]:
    """The real app on uvicorn in this process, so a test can publish reads on its board."""
    shop = Outlet(tmp_path / "o.db", "T")
    server = serving.Background(create_app(shop))
    yield shop, server.url
    server.stop()
    shop.close()


def test_the_long_poll_over_http_hands_a_read_to_its_till(served: tuple[Outlet, str]) -> None:
    shop, url = served
    got: dict[str, requests.Response] = {}

    def poll(till: str) -> None:
        got[till] = requests.get(f"{url}/v1/tills/{till}/identification", params={"wait": 1.5},
                                 timeout=10)

    waiters = [threading.Thread(target=poll, args=(t,)) for t in ("T1", "T2")]
    for w in waiters:
        w.start()
    time.sleep(0.3)
    shop.tills.publish("T1", read(7))
    waiters[0].join(timeout=10)
    assert got["T1"].status_code == 200 and got["T1"].json() == read(7)
    waiters[1].join(timeout=10)
    assert got["T2"].status_code == 204
    # published with nobody polling: the next poll of that till gets it at once
    shop.tills.publish("T2", read(8))
    answer = requests.get(f"{url}/v1/tills/T2/identification", timeout=10)
    assert answer.status_code == 200 and answer.json() == read(8)



def test_an_async_read_never_holds_the_event_loop_while_a_write_holds_the_replica(
        served: tuple[Outlet, str]) -> None:
    """A customer's profile is read on the event loop only when the replica is free; behind
    a running write (here 1.5 s) it waits in a worker thread, and the long polls the loop
    serves keep answering meanwhile."""
    shop, url = served
    card = requests.post(f"{url}/v1/customers", json={"kind": "person", "given_name": "A",
                                                      "surname": "B"}, timeout=10).json()
    held = threading.Event()

    def slow_write() -> None:
        with shop.db.write():
            held.set()
            time.sleep(1.5)

    writer = threading.Thread(target=slow_write)
    writer.start()
    held.wait(5)
    got: dict[str, requests.Response] = {}
    reader = threading.Thread(target=lambda: got.setdefault("profile", requests.get(
        f"{url}/v1/customers/{card['customer_id']}", timeout=10)))
    reader.start()
    time.sleep(0.2)  # the profile's read is waiting for the write now
    started = time.monotonic()
    poll = requests.get(f"{url}/v1/tills/T1/identification", timeout=10)
    took = time.monotonic() - started
    writer.join()
    reader.join(timeout=10)
    assert poll.status_code == 204 and took < 0.5, f"the loop was held {took:.2f} s"
    assert got["profile"].status_code == 200
    assert got["profile"].json()["customer_id"] == card["customer_id"]
