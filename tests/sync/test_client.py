"""One sync pass (sync.client.run_once) with the real OutletReplica and a real HQ app.

HQ runs in this process on uvicorn (web.serving.Background) over its own SQLite file;
the outlet is an in-process `Outlet` on another file; the link is the router transport.
A counting wrapper around the transport shows how the pass cuts its exchanges.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent import customers
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replication import OutletReplica
from hq import credentials
from hq.api import create_app
from hq.chain import Chain
from schema.api import CustomerIn
from schema.sync import PullResponse, PushRequest, PushResponse
from sync import client
from sync.client import EpochChanged, run_once
from sync.router import RouterTransport
from web import serving


@dataclass
class Counting:
    """A transport that remembers what went through it."""

    inner: RouterTransport
    pushes: list[int] = field(default_factory=list)
    pulls: list[tuple[int, int]] = field(default_factory=list)

    def hello(self) -> Any:
        return self.inner.hello()

    def push(self, request: PushRequest) -> PushResponse:
        self.pushes.append(len(request.events))
        return self.inner.push(request)

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse:
        page = self.inner.pull(cursor, limit, wait)
        self.pulls.append((cursor, len(page.changes)))
        return page

    def close(self) -> None:
        self.inner.close()


class HQ:
    """HQ in this process; `restart` stops it and serves again on the same port."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chain = Chain(path, seed=default_documents())
        with self.chain.db.write() as conn:
            self.token, _ = credentials.add_outlet(conn, "A")
        self.server = serving.Background(create_app(self.chain))
        self.port, self.url = self.server.port, self.server.url

    def stop(self) -> None:
        self.server.stop()
        self.chain.close()

    def start(self) -> None:
        self.chain = Chain(self.path, seed=default_documents())
        self.server = serving.Background(create_app(self.chain), port=self.port)

    def count(self, sql: str) -> int:
        return int(self.chain.db.scalar(sql))


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[HQ]:
    server = HQ(tmp_path / "hq.db")
    yield server
    server.stop()


@pytest.fixture
def outlet(tmp_path: Path) -> Iterator[Outlet]:
    shop = Outlet(tmp_path / "a.db", "A", chain=True)
    yield shop
    shop.close()


def link_to(hq: HQ) -> Counting:
    return Counting(RouterTransport(hq.url, hq.token, timeout=10))


def register(outlet: Outlet, n: int) -> list[dict[str, str]]:
    return [customers.register(outlet, CustomerIn(kind="person", given_name="P",
                                                  surname=f"S{i}", category="B"))
            for i in range(n)]


def local(outlet: Outlet, sql: str) -> Any:
    return outlet.db.scalar(sql)


def test_first_pass_bootstraps_with_progress_then_pushes_in_batches(hq: HQ,
                                                                    outlet: Outlet) -> None:
    replica = OutletReplica(outlet)
    link = link_to(hq)
    seen: list[tuple[int, int]] = []
    first = run_once(replica, link, progress=lambda done, total: seen.append((done, total)))
    assert first.pulled > 0 and first.pending_after == 0 and not first.reset
    assert seen and seen[-1][0] == seen[-1][1] == hq.count("SELECT MAX(seq) FROM changes")
    assert "A" in outlet.programme.categories            # master data arrived
    assert local(outlet, "SELECT value FROM meta WHERE key = 'card_range'") == "1"

    made = register(outlet, client.PUSH_BATCH * 2 + 100)  # 1100 cards issued locally
    link.pushes.clear()
    link.pulls.clear()
    seen.clear()
    report = run_once(replica, link, progress=lambda done, total: seen.append((done, total)))
    assert link.pushes == [client.PUSH_BATCH, client.PUSH_BATCH, 100]
    assert report.pushed == len(made) and report.duplicates == 0 and report.pending_after == 0
    assert hq.count("SELECT COUNT(*) FROM events WHERE outlet_id = 'A'") == len(made)
    assert hq.count("SELECT COUNT(*) FROM customers") == len(made)
    # the pull that follows brings HQ's confirmation of every one of them, in pages
    assert [n for _, n in link.pulls] == [client.PULL_PAGE, len(made) - client.PULL_PAGE]
    assert len(seen) == 2 and seen[0][0] < seen[1][0] == seen[1][1]
    assert local(outlet, "SELECT MIN(confirmed_through) FROM customers") == len(made)
    assert local(outlet, "SELECT COUNT(*) FROM outbox WHERE acked = 0") == 0
    status = local(outlet, "SELECT value FROM meta WHERE key = 'last_sync_error'")
    assert status is None

    again = run_once(replica, link)                       # nothing new either way
    assert (again.pushed, again.pulled, again.pending_after) == (0, 0, 0)


def test_a_failed_pass_is_recorded_and_the_next_one_finishes_the_job(hq: HQ,
                                                                     outlet: Outlet) -> None:
    replica = OutletReplica(outlet)
    run_once(replica, link_to(hq))
    register(outlet, 3)
    hq.stop()
    with pytest.raises(Exception) as failed:
        run_once(replica, link_to(hq))
    assert getattr(failed.value, "code", "") == "hq_unreachable"
    error = local(outlet, "SELECT value FROM meta WHERE key = 'last_sync_error'")
    assert error and error.count("hq_unreachable") == 1, error  # the code said once
    assert local(outlet, "SELECT COUNT(*) FROM outbox WHERE acked = 0") == 3
    hq.start()
    report = run_once(replica, link_to(hq))
    assert report.pushed == 3 and report.pending_after == 0
    assert local(outlet, "SELECT value FROM meta WHERE key = 'last_sync_error'") is None


def test_a_new_epoch_makes_the_outlet_resend_and_repull(hq: HQ, outlet: Outlet,
                                                        tmp_path: Path) -> None:
    replica = OutletReplica(outlet)
    run_once(replica, link_to(hq))
    register(outlet, 5)
    run_once(replica, link_to(hq))
    backup = tmp_path / "backup.db"
    source = sqlite3.connect(hq.path)
    target = sqlite3.connect(backup)
    source.backup(target)
    target.close()
    source.close()
    register(outlet, 7)
    run_once(replica, link_to(hq))
    assert hq.count("SELECT COUNT(*) FROM events") == 12
    epoch = hq.chain.epoch

    hq.stop()
    for suffix in ("", "-wal", "-shm"):
        Path(str(hq.path) + suffix).unlink(missing_ok=True)
    backup.rename(hq.path)
    restored = Chain(hq.path)
    restored.restore_epoch()
    restored.close()
    hq.start()
    assert hq.chain.epoch != epoch
    assert hq.count("SELECT COUNT(*) FROM events") == 5

    link = link_to(hq)
    report = run_once(replica, link)
    assert report.reset
    assert report.pushed == 7 and report.duplicates == 0
    assert link.pulls[0][0] == 0                          # re-pulled from scratch
    assert hq.count("SELECT COUNT(*) FROM events") == 12
    assert local(outlet, "SELECT value FROM meta WHERE key = 'hq_epoch'") == hq.chain.epoch
    assert local(outlet, "SELECT MIN(confirmed_through) FROM customers") == 12
    assert run_once(replica, link_to(hq)).reset is False


def test_an_answer_from_another_epoch_is_not_applied(hq: HQ, outlet: Outlet) -> None:
    replica = OutletReplica(outlet)
    run_once(replica, link_to(hq))
    register(outlet, 1)
    cursor = replica.cursor()
    stale = PushResponse(epoch="0" * 32, acked_through=99, results=[])
    with pytest.raises(EpochChanged):
        replica.acknowledge(stale)
    assert local(outlet, "SELECT COUNT(*) FROM outbox WHERE acked = 0") == 1
    page = PullResponse(epoch="0" * 32, cursor=cursor + 50, head=cursor + 50,
                        incorporated_through=1, more=False, changes=[])
    with pytest.raises(EpochChanged):
        replica.apply(page)
    assert replica.cursor() == cursor


def test_the_outlet_sends_its_clock_only_once_hq_showed_it_measures_clocks(
        hq: HQ, tmp_path: Path) -> None:
    """An HQ of an earlier version refuses unknown fields in a push: an outlet upgraded
    first must still sync, so pushes carry `sent_at` only after a hello answer with the
    measured offset (docs/sync.md, "Outlet clocks"). The replica keeps the offset for
    `loyalty status`."""
    from agent.status import replica_status

    outlet = Outlet(tmp_path / "b.db", "A", card_range=1, chain=True)  # no hello needed
    replica, link = OutletReplica(outlet), RouterTransport(hq.url, hq.token, timeout=10)
    client.pull_new(replica, link, client.PassReport())  # the programme, without a hello
    register(outlet, 1)
    before = link.push(PushRequest(outlet_id="A", events=replica.pending(10)))
    assert before.clock_offset_s is None  # no hello yet: no sent_at went
    replica.acknowledge(before)
    assert replica_status(outlet.db)["clock"] == "not measured by HQ yet"
    hello = link.hello()
    assert hello.clock_offset_s is not None and abs(hello.clock_offset_s) < 60
    register(outlet, 1)
    after = link.push(PushRequest(outlet_id="A", events=replica.pending(10)))
    assert after.clock_offset_s is not None and after.clock_tolerance_s == 300
    replica.acknowledge(after)
    status = replica_status(outlet.db)
    assert status["clock"].startswith("in step with HQ") and status["clock_checked_at"]
    link.close()
    outlet.close()
