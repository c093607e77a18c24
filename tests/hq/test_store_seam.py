"""HQ's storage seam (hq/store): both stores keep the promises of hq/store/base.py, and a
`postgresql://` `--db` is a database, never a file name.

Through the `loyalty` command (in process): a PostgreSQL that cannot be reached is
`storage_unavailable` naming it without its password, and nothing is created on disk;
against a real throwaway cluster: what runs on PostgreSQL in phase 1 (outlets, tokens)
works, what does not yet is refused saying so. The stores themselves: rows read like
sqlite3.Row, whole numbers are ints, nested blocks join, a read block is one snapshot even
against another writer, `transact` runs a serialization failure again, and a commit that
announced wakes a listener of another store."""

from __future__ import annotations

import decimal
import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hqkit import STORES
from testkit.inprocess import cli
from testkit.postgres import Cluster

from hq.chain import Chain
from hq.store import SqliteStore, open_hq
from hq.store.base import Store, shown
from hq.store.postgres import PgStore
from schema.dialect import dialect_of, insert_ignoring, replace_into
from schema.errors import StorageUnavailable

UNREACHABLE = "postgresql://loyalty:s3cret@127.0.0.1:1/hq"


# --- a URL is never a file -------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["hq", "serve", "--db", UNREACHABLE],
    ["hq", "outlet-add", "--db", UNREACHABLE, "A"],
    ["hq", "ban", "--db", UNREACHABLE, "C1"],
    ["hq", "restore-epoch", "--db", UNREACHABLE],
])
def test_an_unreachable_postgresql_is_storage_unavailable_and_nothing_is_created_on_disk(
        args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli(*args)
    assert done.returncode == 1
    assert done.stderr.startswith(
        "error [storage_unavailable]: PostgreSQL at postgresql://loyalty:***@127.0.0.1:1/hq "
        "cannot be reached ("), done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == [], "a file was made under a name like the URL"


def test_a_socket_folder_that_does_not_exist_is_unreachable_too(tmp_path: Path) -> None:
    with pytest.raises(StorageUnavailable, match="cannot be reached") as refused:
        open_hq(f"postgresql://postgres@/hq?host={tmp_path}/nowhere")
    assert refused.value.context == {"fault": "unreachable"}
    assert list(tmp_path.iterdir()) == []


def test_a_url_libpq_cannot_read_is_a_config_error_without_its_password() -> None:
    done = cli("hq", "outlet-add", "--db", "postgresql://u:s3cret@h/db?nonsense=1", "A")
    assert done.returncode == 1
    assert done.stderr.startswith("error [config_error]: --db postgresql://u:***@h/db?nonsense=1 "
                                  "is not a PostgreSQL URL"), done.stderr
    assert "s3cret" not in done.stderr


def test_a_password_is_hidden_wherever_the_url_carries_it() -> None:
    assert shown("postgresql://u:pw@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert shown("postgresql://h/db?user=u&password=pw&sslmode=require") == \
        "postgresql://h/db?user=u&password=***&sslmode=require"
    socket = "postgresql://u@/db?host=/run/postgresql"
    assert shown(socket) == socket


def test_both_stores_offer_every_member_of_the_store_interface() -> None:
    wanted = {name for name in dir(Store) if not name.startswith("_")} | \
        set(Store.__annotations__)
    for store in (SqliteStore, PgStore):
        assert not {name for name in wanted if not hasattr(store, name)}, store


# --- the commands on a real PostgreSQL ---------------------------------------------------
def test_outlets_and_tokens_are_issued_on_postgresql(
        hq_pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    added = cli("hq", "outlet-add", "--db", hq_pg, "A")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("lo_")
    assert cli("hq", "admin-token", "--db", hq_pg).stdout.strip().splitlines()[-1].startswith("la_")
    # every `loyalty hq` command runs on a URL now, restore-epoch too (tests/hq/test_hq_cli.py)
    assert list(tmp_path.iterdir()) == []
    with psycopg.connect(hq_pg) as conn:
        assert conn.execute("SELECT outlet_id, card_range FROM outlets").fetchall() == [("A", 1)]


# --- the stores' promises ----------------------------------------------------------------
def test_rows_read_like_sqlite_rows_and_whole_numbers_are_ints(hq_pg: str) -> None:
    store = PgStore(hq_pg)
    try:
        row = store.one("SELECT 7 AS n, 'x' AS s, SUM(v) AS total, AVG(v) AS mean, "
                        "COUNT(*) > ? AS some FROM (VALUES (1::bigint), (2::bigint)) t(v)",
                        (0,))
        assert row is not None
        assert (row[0], row["s"], row["total"], row["mean"], row["some"]) == \
            (7, "x", 3, decimal.Decimal("1.5"), True)
        assert type(row["total"]) is int
        assert dict(row) == {"n": 7, "s": "x", "total": 3, "mean": decimal.Decimal("1.5"),
                             "some": True}
        assert row.keys() == ["n", "s", "total", "mean", "some"]
        assert store.scalar("SELECT '100%' || ?", ("!",)) == "100%!"
    finally:
        store.close()


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_a_nested_block_joins_the_write_and_a_failure_keeps_nothing(hq_db: str) -> None:
    store = open_hq(hq_db)
    try:
        with store.write() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('a', '1')")
            with store.write() as inner:
                inner.execute("INSERT INTO meta (key, value) VALUES ('b', '2')")
            assert store.scalar("SELECT COUNT(*) FROM meta WHERE key IN ('a', 'b')") == 2
            with store.read() as reading:
                assert reading.execute("SELECT value FROM meta WHERE key = 'b'"
                                       ).fetchone()[0] == "2"
        with pytest.raises(RuntimeError, match="half way"), store.write() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('c', '3')")
            raise RuntimeError("half way")
        assert [r[0] for r in store.all("SELECT key FROM meta WHERE key IN ('a', 'b', 'c') "
                                        "ORDER BY key")] == ["a", "b"]
    finally:
        store.close()


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_a_snapshot_does_not_see_what_another_writer_commits_in_the_middle(hq_db: str) -> None:
    reader, writer = open_hq(hq_db), open_hq(hq_db)  # two stores: as two processes
    try:
        with reader.snapshot() as conn:
            before = conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0]
            with writer.write() as other:
                other.execute("INSERT INTO meta (key, value) VALUES ('late', 'x')")
            assert conn.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == before
        assert reader.scalar("SELECT COUNT(*) FROM meta") == before + 1
    finally:
        reader.close()
        writer.close()


def test_transact_runs_a_transaction_again_after_a_serialization_failure(hq_pg: str) -> None:
    store, other = PgStore(hq_pg), PgStore(hq_pg)
    attempts: list[int] = []
    try:
        with store.write() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('n', '0')")

        def bump(conn: Any) -> str:
            attempts.append(1)
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            seen = conn.execute("SELECT value FROM meta WHERE key = 'n'").fetchone()[0]
            if len(attempts) == 1:  # another transaction changes the row in between
                with other.write() as theirs:
                    theirs.execute("UPDATE meta SET value = '10' WHERE key = 'n'")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'n'", (str(int(seen) + 1),))
            return str(seen)

        assert store.transact(bump) == "10"
        assert len(attempts) == 2
        assert store.scalar("SELECT value FROM meta WHERE key = 'n'") == "11"
    finally:
        store.close()
        other.close()


def test_a_committed_change_wakes_the_listeners_of_another_store_and_a_rolled_back_one_does_not(
        hq_pg: str) -> None:
    writer, listener = Chain(hq_pg), PgStore(hq_pg)
    woken = threading.Event()
    try:
        listener.listen(woken.set)
        assert woken.wait(10), "the listener never connected"
        woken.clear()
        with pytest.raises(RuntimeError), writer.db.write() as conn:
            writer.bump(conn, "gift", "G1")
            raise RuntimeError("rolled back")
        assert not woken.wait(0.5)
        with writer.db.write() as conn:
            writer.bump(conn, "gift", "G1")
        assert woken.wait(10), "a committed change woke nobody"
    finally:
        listener.close()
        writer.close()


def test_connections_the_server_dropped_are_replaced_without_failing_a_request(
        hq_pg: str) -> None:
    store = PgStore(hq_pg)
    try:
        assert store.scalar("SELECT 1") == 1
        with psycopg.connect(hq_pg, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT COUNT(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        assert ended is not None and ended[0] >= 1
        assert store.scalar("SELECT 2") == 2
    finally:
        store.close()


def test_a_server_that_goes_away_is_storage_unavailable_naming_it() -> None:
    cluster = Cluster.start()
    try:
        url = cluster.database()
        store = PgStore(url, wait_s=1.0)
        cluster.stop()
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match=r"PostgreSQL at postgresql://postgres@/t"):
            store.scalar("SELECT 1")
        assert time.monotonic() - started < 15
    finally:
        cluster.stop()


@pytest.mark.parametrize("hq_db", STORES, indirect=True)
def test_the_dialect_hooks_answer_the_same_on_both_stores(hq_db: str) -> None:
    store = open_hq(hq_db)
    try:
        with store.write() as conn:
            d = dialect_of(conn)
            conn.execute(replace_into("meta", ["key", "value"], ["key"]), ("h1", "one"))
            conn.execute(replace_into("meta", ["key", "value"], ["key"]), ("h1", "uno"))
            conn.execute(insert_ignoring("meta", ["key", "value"]), ("h1", "ignored"))
            conn.execute(insert_ignoring("meta", ["key", "value"]), ("h2", "two"))
            row = conn.execute(
                f"SELECT {d.greatest('3', '5')}, {d.least('3', '5')}, "
                f"{d.last_chars('?', 4)}, {d.json_object(('a', '1'), ('b', 'CAST(? AS TEXT)'))}, "
                f"(SELECT {d.json_array_agg('key')} FROM meta WHERE key IN ('h1', 'h2')), "
                f"(SELECT {d.json_object_agg('key', 'value')} FROM meta "
                "WHERE key IN ('h1', 'h2'))", ("4000001234567890", "x")).fetchone()
        answers = [json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v for v in row]
        assert answers[:4] == [5, 3, "7890", {"a": 1, "b": "x"}]
        assert sorted(answers[4]) == ["h1", "h2"]
        assert answers[5] == {"h1": "uno", "h2": "two"}
    finally:
        store.close()
