"""The throwaway PostgreSQL clusters of the tests (tests/testkit/postgres.py) keep their word:
a socket of their own and no TCP port, a fresh database from a template in well under a
second, nothing left behind (not even by a test run killed -9), as root and as anyone else,
and a clear reason where PostgreSQL is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from testkit import postgres
from testkit.postgres import Cluster

TESTS = Path(__file__).resolve().parent


def _postmaster_pid(cluster: Cluster) -> int:
    return int((cluster.data / "postmaster.pid").read_text().splitlines()[0])


def test_a_cluster_listens_on_its_own_socket_only_and_is_gone_after_stop() -> None:
    cluster = Cluster.start()
    try:
        pid = _postmaster_pid(cluster)
        with psycopg.connect(cluster.url()) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'fsync', 'unix_socket_directories', 'server_encoding',"
                " 'lc_collate')").fetchall())
        assert settings == {"listen_addresses": "", "fsync": "off", "server_encoding": "UTF8",
                            "unix_socket_directories": str(cluster.folder), "lc_collate": "C"}
        assert str(cluster.folder).startswith("/tmp/")
    finally:
        cluster.stop()
    assert not cluster.folder.exists()
    assert not postgres.alive(pid), "the server outlived stop()"
    cluster.stop()  # harmless twice


def test_a_database_from_a_template_is_a_private_copy_made_in_well_under_a_second(
        pg_cluster: Cluster) -> None:
    def prepare(url: str) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (x INTEGER)")
            conn.execute("INSERT INTO t VALUES (1)")

    name = pg_cluster.template("kit", prepare)
    assert pg_cluster.template("kit", prepare) == name  # prepared once
    started = time.monotonic()
    first = pg_cluster.database(template=name)
    took = time.monotonic() - started
    second = pg_cluster.database(template=name)
    try:
        with psycopg.connect(first) as conn:
            conn.execute("INSERT INTO t VALUES (2)")
        with psycopg.connect(second) as conn:
            assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
        assert took < 1.0, f"CREATE DATABASE from the template took {took:.2f} s"
    finally:
        pg_cluster.drop(first)
        pg_cluster.drop(second)
    with psycopg.connect(pg_cluster.url()) as conn:
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert not {first.split("/")[-1].split("?")[0], second.split("/")[-1].split("?")[0]} & names


def test_a_cluster_of_a_test_run_killed_with_sigkill_is_removed_by_the_next_start() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", ("from testkit.postgres import Cluster\n"
         "c = Cluster.start()\nprint(c.folder, flush=True)\nimport time\ntime.sleep(120)")],
        cwd=TESTS, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        folder = Path(child.stdout.readline().strip())
        orphan = Cluster(folder, postgres.bin_dir() or Path("/"), None)
        pid = _postmaster_pid(orphan)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert postgres.alive(pid), "the orphaned server should still run until swept"
    postgres.sweep()
    assert not folder.exists()
    deadline = time.monotonic() + 10
    while postgres.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not postgres.alive(pid), "sweep() left the orphaned server running"


def test_a_cluster_starts_for_a_user_who_is_not_root() -> None:
    """As root (CI), a child runs the kit as the `postgres` user, who is not root (with
    Debian's Python: this one may sit where that user cannot read); as anyone else, this
    run already is that case. The child asks the server through psql."""
    bindir = postgres.bin_dir()
    assert bindir is not None
    script = f"""
import importlib.util, subprocess, sys
spec = importlib.util.spec_from_file_location("pgkit", {str(TESTS / "testkit" / "postgres.py")!r})
kit = importlib.util.module_from_spec(spec)
sys.modules["pgkit"] = kit
spec.loader.exec_module(kit)
c = kit.Cluster.start()
try:
    print(subprocess.run([{str(bindir / "psql")!r}, "-h", str(c.folder), "-p", "5432",
                          "-U", "postgres", "-tAc", "SELECT current_user || ' ' || 1"],
                         capture_output=True, text=True, check=True).stdout.strip())
finally:
    c.stop()
print(c.folder.exists())
"""
    python = sys.executable
    command = [python, "-c", script]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", "/usr/bin/python3", "-c", script]
    done = subprocess.run(command, cwd="/tmp", capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["postgres", "1", "False"]


def test_missing_postgresql_is_a_reason_naming_the_install_step(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOYALTY_PG_BIN", str(tmp_path))
    reason = postgres.missing()
    assert reason is not None and "./install.sh --dev" in reason
    with pytest.raises(RuntimeError, match="install.sh --dev"):
        Cluster.start()
