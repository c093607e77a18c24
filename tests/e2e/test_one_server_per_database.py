"""One serving process per database (docs/operations.md, "One process per database").

Real `loyalty` processes: a second `agent serve` or `hq serve` on a database another one
serves is refused naming the first (pid, address); kill -9 leaves no lock behind that
blocks a restart; read-only commands run beside a server; `loyalty sync` on a router link
is refused while the agent (which syncs by itself) serves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from agentkit import AgentProcess, free_port
from chainkit import HQProcess, cli

NOWHERE = f"http://127.0.0.1:{free_port()}"  # an HQ that never answers


def refused(done: object, holder_pid: int, address: str | None) -> str:
    """One `error [database_in_use]: ...` line naming the holder; exit status 1."""
    import subprocess

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error [database_in_use]: "), done.stderr
    assert f"pid {holder_pid}" in lines[0], lines[0]
    if address:
        assert address in lines[0], lines[0]
    return str(lines[0])


def test_a_second_agent_on_the_same_database_is_refused_and_kill_9_does_not_block_a_restart(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    db = tmp_path / "north.db"
    first = start_agent(db, "NORTH")
    assert first.proc is not None
    done = cli("agent", "serve", "--db", str(db), "--outlet", "NORTH",
               "--port", str(free_port()), timeout=30)
    message = refused(done, first.proc.pid, f"127.0.0.1:{first.port}")
    assert "loyalty agent serve" in message
    first.till().ok("GET", "/v1/status")          # the first one is untouched

    # read-only commands run beside it
    assert cli("status", "--db", str(db)).returncode == 0
    assert cli("report", "turnover", "--db", str(db)).returncode == 0

    first.kill()                                   # kill -9: no shutdown code runs
    assert db.with_name("north.db.lock").exists()  # the file stays; the lock does not
    second = start_agent(db, "NORTH")              # another port, same database
    second.till().ok("GET", "/v1/status")


def test_a_second_hq_on_the_same_database_is_refused_and_kill_9_does_not_block_a_restart(
        tmp_path: Path) -> None:
    hq = HQProcess(tmp_path / "hq.db")
    hq.outlet_add("NORTH")
    try:
        hq.start()
        assert hq.proc is not None
        done = cli("hq", "serve", "--db", str(hq.db), "--port", str(free_port()), timeout=30)
        refused(done, hq.proc.pid, f"127.0.0.1:{hq.port}")
        # head-office commands run beside a serving HQ (short transactions)...
        assert cli("hq", "outlet-add", "--db", str(hq.db), "SOUTH").returncode == 0
        assert cli("report", "turnover", "--db", str(hq.db)).returncode == 0
        # ...but not a restore, which HQ would not notice while it serves
        done = cli("hq", "restore-epoch", "--db", str(hq.db))
        refused(done, hq.proc.pid, f"127.0.0.1:{hq.port}")
        hq.kill()
        hq.start()                                 # same database, same port
    finally:
        hq.kill()


def test_loyalty_sync_is_refused_while_a_router_agent_serves_and_runs_after_it_stopped(
        tmp_path: Path, start_agent: Callable[..., AgentProcess]) -> None:
    db = tmp_path / "north.db"
    agent = start_agent(db, "NORTH", extra=("--hq", NOWHERE, "--token", "lo_x"))
    assert agent.proc is not None
    message = refused(cli("sync", "--db", str(db)), agent.proc.pid, f"127.0.0.1:{agent.port}")
    assert "loyalty status" in message
    agent.kill()
    done = cli("sync", "--db", str(db))            # no stale lock: it tries HQ now
    assert done.returncode == 1 and done.stderr.startswith("error [hq_unreachable]: "), \
        done.stderr
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
