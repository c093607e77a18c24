"""Secrets at rest: the databases hold an outlet's token or HQ's token hashes, so they and
their -wal/-shm files are readable by their owner only (docs/operations.md, "Logs and
secrets"). Real `loyalty` processes create the files, under the usual umask 022.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from agentkit import AgentProcess, free_port
from chainkit import HQProcess, cli


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def modes(db: Path) -> dict[str, int]:
    """Modes of the database and of its -wal/-shm (those that exist)."""
    return {p.name: mode(p) for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()}


def test_an_agents_new_database_and_its_wal_and_shm_are_owner_only(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    db = tmp_path / "north.db"
    agent = start_agent(db, "NORTH", extra=("--hq", f"http://127.0.0.1:{free_port()}",
                                            "--token", "lo_secret"))
    agent.till().ok("GET", "/v1/status")
    found = modes(db)
    assert set(found) == {"north.db", "north.db-wal", "north.db-shm"}, found
    assert all(m == 0o600 for m in found.values()), {k: oct(m) for k, m in found.items()}


def test_hqs_new_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    hq = HQProcess(tmp_path / "hq.db")
    hq.outlet_add("NORTH")                         # creates the file
    assert mode(hq.db) == 0o600, oct(mode(hq.db))
    try:
        hq.start()
        found = modes(hq.db)
        assert len(found) == 3 and all(m == 0o600 for m in found.values()), \
            {k: oct(m) for k, m in found.items()}
    finally:
        hq.kill()


def test_an_existing_database_others_can_read_is_tightened_with_a_warning(
        tmp_path: Path) -> None:
    db = tmp_path / "hq.db"
    assert cli("hq", "outlet-add", "--db", str(db), "NORTH").returncode == 0
    os.chmod(db, 0o644)
    done = cli("hq", "outlet-add", "--db", str(db), "SOUTH")
    assert done.returncode == 0, done.stderr
    assert mode(db) == 0o600, oct(mode(db))
    assert "readable by other users" in done.stderr and "600" in done.stderr, done.stderr


def test_a_database_created_under_umask_000_is_still_owner_only(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    old = os.umask(0)                              # the agent inherits it
    try:
        agent = start_agent(tmp_path / "wide.db", "WIDE")
    finally:
        os.umask(old)
    found = modes(agent.db)
    assert all(m == 0o600 for m in found.values()), {k: oct(m) for k, m in found.items()}
