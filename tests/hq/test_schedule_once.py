"""HQ's scheduled jobs run once chain-wide (hq/schedule.py `once`, the store's `exclusive`):
two HQ processes on one PostgreSQL database (here: two stores in this process, each with its
own connections, as two processes have) reaching the same job for the same period at the
same moment run it once, the other skips; a later period, or the same one after the first
run ended, runs again (each job is idempotent per period). On SQLite, one HQ process per
file (schema/dblock.py), every run goes ahead."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from invoicekit import Buyer, make_hq

from hq import announcements, categories, invoices, schedule
from hq.chain import Chain


def run_together(chains: list[Chain], job: str, period: str) -> tuple[int, list[object]]:
    """Each chain runs `job` for `period` at the same moment; (runs, what each returned)."""
    runs = 0
    lock = threading.Lock()
    start = threading.Barrier(len(chains))
    answers: list[object] = [None] * len(chains)

    def work() -> str:
        nonlocal runs
        with lock:
            runs += 1
        time.sleep(0.5)  # long enough for every other process to reach the job meanwhile
        return "ran"

    def one(i: int) -> None:
        start.wait()
        answers[i] = schedule.once(chains[i], job, period, work)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(chains))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return runs, answers


@pytest.fixture
def two_processes(hq_pg: str) -> Iterator[list[Chain]]:
    chains = [Chain(hq_pg), Chain(hq_pg)]
    yield chains
    for chain in chains:
        chain.close()


def test_two_hq_processes_on_one_postgresql_run_a_job_once_per_period(
        two_processes: list[Chain]) -> None:
    runs, answers = run_together(two_processes, "invoice-close", "2026-11-01")
    assert runs == 1
    assert sorted(map(str, answers)) == ["None", "ran"]

    runs, _ = run_together(two_processes, "invoice-close", "2026-12-01")  # the next period
    assert runs == 1
    # the lock is released when the run ends: a later run goes ahead (the job is idempotent)
    assert schedule.once(two_processes[1], "invoice-close", "2026-12-01", lambda: "again") \
        == "again"


def test_different_jobs_of_one_period_do_not_hold_each_other_up(
        two_processes: list[Chain]) -> None:
    done: list[str] = []
    with two_processes[0].db.exclusive("category-assignment:2026-11-02") as mine:
        assert mine
        schedule.once(two_processes[1], "invoice-refresh", "2026-11-02",
                      lambda: done.append("refresh"))
        schedule.once(two_processes[1], "category-assignment", "2026-11-02",
                      lambda: done.append("categories"))
    assert done == ["refresh"]


def test_on_sqlite_the_one_hq_process_always_runs_its_jobs(tmp_path: Path) -> None:
    chain = Chain(tmp_path / "hq.db")
    try:
        with chain.db.exclusive("invoice-close:2026-11-01") as mine:
            assert mine
            assert schedule.once(chain, "invoice-close", "2026-11-01", lambda: 1) == 1
    finally:
        chain.close()


def dump(path: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = "
                                            "'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for n in names}
    finally:
        conn.close()


def test_each_scheduled_job_run_again_in_its_period_changes_nothing(tmp_path: Path) -> None:
    """What `once` relies on for a process that comes to a job after another ran it."""
    chain, _ = make_hq(tmp_path / "hq.db", [Buyer("Ana", "Novak", sales=(12_345,)),
                                            Buyer("Bo", "Kos", sales=(500, 700))])
    today = date(2026, 12, 20)  # invoices past their term: statuses and credit move
    jobs = [lambda: invoices.close_period(chain, date(2026, 11, 1), date(2026, 12, 1), today),
            lambda: invoices.refresh(chain, today),
            lambda: categories.assign(chain, today),
            lambda: announcements.withdraw_ended(chain, today)]
    try:
        for job in jobs:
            job()
        chain.db.checkpoint()
        first = dump(tmp_path / "hq.db")
        for job in jobs:
            job()
        chain.db.checkpoint()
        assert dump(tmp_path / "hq.db") == first
    finally:
        chain.close()
