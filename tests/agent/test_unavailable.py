"""503 answers at the till: what the agent cannot do yet or any more, said so a supervisor
can act, with a stable code, and with nothing written (docs/till-api.md, "Errors").

Real `loyalty agent serve` processes over HTTP (tests/agentkit.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agentkit import AgentProcess, connect, db_state, expect_error, free_port, line
from fastapi.testclient import TestClient

PERSON = {"kind": "person", "given_name": "Ann", "surname": "Lee"}


def test_a_chain_outlet_before_its_first_sync_answers_not_ready(
        start_agent: Callable[..., AgentProcess]) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # HQ never answers
    agent = start_agent(outlet="NEW", extra=("--hq", nowhere, "--token", "lo_x"))
    till = agent.till()
    before = db_state(agent.db)
    for body in (PERSON, {**PERSON, "category": "A"}):
        error = expect_error(till.post("/v1/customers", body), 503, "not_ready")
        assert "first sync" in error["message"], error
    assert db_state(agent.db) == before


def test_a_used_up_card_range_answers_card_range_exhausted_and_a_new_range_works(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    agent = start_agent(tmp_path / "north.db", "NORTH", extra=("--card-range", "17"))
    till = agent.till()
    assert till.register()["card_number"].startswith("290017000001")
    agent.kill()
    conn = connect(agent.db)
    conn.execute("UPDATE meta SET value = '999999' WHERE key = 'card_serial'")
    conn.close()
    agent.start()
    before = db_state(agent.db)
    error = expect_error(till.post("/v1/customers", PERSON), 503, "card_range_exhausted")
    assert "range 17" in error["message"] and "--card-range" in error["message"], error
    assert db_state(agent.db) == before

    agent.kill()                                  # HQ gave range 18: restart with it
    agent.extra = ("--card-range", "18")
    agent.start()
    assert till.register()["card_number"].startswith("290018000001")


# --- storage faults: real ones, from the kernel and from SQLite ---------------------------
LIMIT_FILES = ("import os, resource, sys; n = int(sys.argv[1]); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])")


class CappedAgent(AgentProcess):
    """An agent whose files may not grow past `max_bytes` (RLIMIT_FSIZE): the kernel refuses
    the write exactly as a full disk does (Python ignores SIGXFSZ, so write() fails)."""

    def __init__(self, db: Path, outlet: str, max_bytes: int) -> None:
        super().__init__(db, outlet)
        self.max_bytes = max_bytes

    def command(self) -> list[str]:
        return [sys.executable, "-c", LIMIT_FILES, str(self.max_bytes), *super().command()]


def size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_a_full_disk_answers_storage_unavailable_writes_nothing_and_still_identifies(
        tmp_path: Path) -> None:
    db = tmp_path / "north.db"
    roomy = AgentProcess(db, "NORTH").start()
    till = roomy.till()
    card = till.register()["card_number"]
    points = till.sold(card, [line("A", 10_000)])["points_earned"]
    roomy.stop()

    full = CappedAgent(db, "NORTH", max(size(db), size(Path(f"{db}-wal"))) + 96 * 1024)
    try:
        full.start()
        till = full.till()
        for _ in range(300):                       # fill the "disk" with customers
            answer = till.post("/v1/customers", {**PERSON, "note": "n" * 1000})
            if answer.status_code != 201:
                break
        error = expect_error(answer, 503, "storage_unavailable")
        assert "full" in error["message"] or "I/O" in error["message"], error
        before = db_state(db)
        expect_error(till.sell(card, [line("B", 500)]), 503, "storage_unavailable")
        assert db_state(db) == before              # nothing half-written
        # identification answers (its small visit may still fit, or be lost: best-effort)
        who = till.post("/v1/identify", {"kind": "card", "value": card, "till_id": "T1"})
        assert who.status_code == 200, who.text
        assert who.json()["points_balance"] == points
        assert "Traceback" not in full.stderr()
    finally:
        full.kill()

    assert integrity(db) == "ok"
    again = AgentProcess(db, "NORTH").start()      # room again: it sells, nothing was lost
    try:
        assert again.till().sold(card, [line("C", 1_000)])["points_earned"] > 0
    finally:
        again.kill()


@pytest.fixture
def immutable() -> Iterator[Callable[[Path], None]]:
    """Makes a file unwritable even through descriptors already open (ext4's immutable
    attribute: root only)."""
    done: list[Path] = []
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")

    def make(path: Path) -> None:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True,
                          check=False).returncode != 0:
            pytest.skip("no immutable attribute on this filesystem")
        done.append(path)

    yield make
    for path in done:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_database_that_turns_read_only_under_a_running_agent_answers_503(
        tmp_path: Path, start_agent: Callable[..., AgentProcess],
        immutable: Callable[[Path], None]) -> None:
    agent = start_agent(tmp_path / "north.db", "NORTH")
    till = agent.till()
    card = till.register()["card_number"]
    for name in ("north.db", "north.db-wal"):
        immutable(tmp_path / name)
    before = db_state(agent.db)
    expect_error(till.post("/v1/customers", PERSON), 503, "storage_unavailable")
    expect_error(till.sell(card, [line("A", 1_000)]), 503, "storage_unavailable")
    assert till.post("/v1/identify", {"kind": "card", "value": card}).status_code == 200
    assert db_state(agent.db) == before


def test_sqlites_read_only_refusal_is_storage_unavailable_saying_cannot_be_written(
        tmp_path: Path) -> None:
    from agent.api import create_app
    from agent.outlet import Outlet

    shop = Outlet(tmp_path / "north.db", "NORTH")
    try:
        client = TestClient(create_app(shop), raise_server_exceptions=False)
        card = client.post("/v1/customers", json=PERSON).json()["card_number"]
        shop.db.conn.execute("PRAGMA query_only = ON")  # SQLite answers SQLITE_READONLY
        before = db_state(Path(shop.db.path))
        answer: Any = client.post("/v1/customers", json=PERSON)
        error = expect_error(answer, 503, "storage_unavailable")
        assert "cannot be written" in error["message"], error
        assert error["context"] == {"fault": "read_only"}
        who = client.post("/v1/identify", json={"kind": "card", "value": card})
        assert who.status_code == 200 and who.json()["points_balance"] == 0, who.text
        assert db_state(Path(shop.db.path)) == before     # no visit: it could not be written
    finally:
        shop.close()
