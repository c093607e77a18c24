"""`loyalty hq migrate --from hq.db --to postgresql://...` (hq/store/migrate.py): a chain's HQ
made through HQ's own code (ingest, invoice close, bans with their audit, a flag, staff,
settings) moves into an empty PostgreSQL database table for table, row for row; counters
and identity numbers carry on where SQLite left off; the SQLite file is left byte for byte
as it was. A target with data is refused, writing nothing; a copy that fails part-way
leaves the target empty and a second run completes; a target that differs from the source
is named by table (counts, sums, the ledger fold)."""

from __future__ import annotations

import hashlib
import re
import signal
import sqlite3
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from invoicekit import OUTLET, Buyer, make_hq
from testkit.inprocess import cli
from testkit.processes import LOYALTY

from hq import admin, credentials, ingest, invoices, notices, settings
from hq.audit import COMMAND_LINE
from hq.chain import Chain
from hq.store import migrate as moving
from hq.store.postgres import PgStore
from schema.dblock import DatabaseLock
from schema.errors import ConfigError, DatabaseInUse, MigrationMismatch, TargetNotEmpty
from schema.events import GiftRedeemed, Payment, SaleLine, SaleRecorded, make_event, new_id
from schema.hq_tables_pg import PG_ONLY
from schema.sync import PushRequest


def build_chain(path: Path) -> None:
    """An HQ with something in as many tables as HQ's own code fills."""
    buyers = [Buyer("Ana", "Novak", "ana@example.com", True, "Trg 1, Ljubljana", (12_345, 800)),
              Buyer("Žiga", "Kovač", sales=(5_000,)), Buyer("Eva", "Horvat", sales=(99,))]
    chain, _ = make_hq(path, buyers)
    try:
        with chain.db.write() as conn:
            credentials.add_outlet(conn, "MB-EAST")
            credentials.add_admin(conn, "ops")
        settings.change(chain, {"payee.name": "Zvestoba d.o.o."})
        last = int(chain.db.scalar("SELECT last_seq FROM outlets WHERE outlet_id = ?", (OUTLET,)))
        line = SaleLine(sku="MILK", name="Milk", qty=2, unit_price=129, gross=258, discount=8,
                        net=250)
        later = [
            make_event(OUTLET, last + 1, SaleRecorded(
                sale_id=new_id(), customer_id=buyers[0].customer_id, currency="EUR",
                lines=[line], payments=[Payment(mode="cash", amount=250)], total_gross=258,
                total_discount=8, total_net=250, points_earned=40), "2026-11-03T09:00:00Z"),
            make_event(OUTLET, last + 2, GiftRedeemed(
                redemption_id=new_id(), customer_id=buyers[0].customer_id,
                gift_sku="GIFT-MUG", gift_name="Club mug", qty=1, points_spent=30)),
            make_event(OUTLET, last + 3, SaleRecorded(  # a customer HQ never heard of: a flag
                sale_id=new_id(), customer_id=new_id(), currency="EUR", lines=[line],
                payments=[Payment(mode="cash", amount=250)], total_gross=258,
                total_discount=8, total_net=250, points_earned=2)),
        ]
        ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=later))
        admin.set_status(chain, buyers[2].customer_id, "banned", "fraud", by=COMMAND_LINE)
        invoices.refresh(chain, date(2026, 12, 31))
        notices.queue_due(chain)  # decided (no mail settings: noted as not sent)
    finally:
        chain.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hq") / "hq.db"
    build_chain(path)
    return path


def fingerprint(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every HQ table of the file with its rows, in a fixed order."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != '_sqlite_migrations' ORDER BY name")]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for n in names}
    finally:
        conn.close()


def pg_tables(url: str, names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr)
                for n in names}


def pg_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
        return {n: int(conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0])  # type: ignore[index]
                for n in sorted(names) if n not in PG_ONLY}


def test_migrate_copies_every_table_row_for_row_and_leaves_the_file_as_it_was(
        source: Path, pg_database: str) -> None:
    before = fingerprint(source)
    expected = sqlite_tables(source)
    filled = {t for t, rows in expected.items() if rows}
    assert {"events", "customers", "identifiers", "customer_tally", "customer_items",
            "customer_gifts", "sales", "sale_lines", "invoices", "invoice_items",
            "redemptions", "flags", "audit", "changes", "master", "notices", "outlets",
            "admin_tokens", "hq_settings", "meta"} <= filled  # the source is a real chain

    done = cli("hq", "migrate", "--from", str(source), "--to", pg_database)

    assert done.returncode == 0, done.stderr
    assert fingerprint(source) == before
    assert sorted(pg_counts(pg_database)) == sorted(expected)  # no table left out, none more
    copied = pg_tables(pg_database, sorted(expected))
    for table, rows in expected.items():
        assert copied[table] == rows, table
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("migrated ") and "verified" in last, done.stdout
    for table in filled:
        assert f"{table} " in done.stdout  # each table's rows are reported


def test_numbering_carries_on_after_the_copy(source: Path, pg_database: str) -> None:
    moving.migrate(source, pg_database)
    rows = sqlite_tables(source)
    with psycopg.connect(pg_database) as conn:
        counter = conn.execute("SELECT value FROM counters WHERE name = 'changes'").fetchone()
        assert counter == (max(r[2] for r in rows["changes"]),)
    store = PgStore(pg_database)
    try:
        with store.write() as conn:
            assert store.dialect.postgres
            flag = conn.execute("INSERT INTO flags (reason, at) VALUES ('test', 'now') "
                                "RETURNING flag_id").fetchone()[0]
            seq = Chain.bump(conn, "customer", "NEW")
    finally:
        store.close()
    assert flag == max(r[0] for r in rows["flags"]) + 1
    assert seq == max(r[2] for r in rows["changes"]) + 1


def test_a_target_holding_data_is_refused_and_nothing_is_written(source: Path,
                                                                  pg_database: str) -> None:
    store = PgStore(pg_database)
    try:
        with store.write() as conn:
            credentials.add_outlet(conn, "ALREADY-HERE")
    finally:
        store.close()
    before = pg_counts(pg_database)

    with pytest.raises(TargetNotEmpty, match="outlets") as refused:
        moving.migrate(source, pg_database)

    assert refused.value.code == "target_not_empty"
    assert pg_counts(pg_database) == before
    done = cli("hq", "migrate", "--from", str(source), "--to", pg_database)
    assert done.returncode == 1
    assert done.stderr.startswith("error [target_not_empty]:"), done.stderr


def test_a_copy_failing_part_way_leaves_the_target_empty_and_a_second_run_completes(
        source: Path, tmp_path: Path, pg_database: str) -> None:
    broken = tmp_path / "hq.db"
    broken.write_bytes(source.read_bytes())
    conn = sqlite3.connect(broken)
    # SQLite keeps text in an INTEGER column; PostgreSQL's BIGINT cannot take it
    conn.execute("UPDATE sales SET points_earned = 'many' WHERE rowid = "
                 "(SELECT MAX(rowid) FROM sales)")
    conn.commit()
    conn.close()

    with pytest.raises(MigrationMismatch, match="sales"):
        moving.migrate(broken, pg_database)
    assert set(pg_counts(pg_database).values()) == {0}

    conn = sqlite3.connect(broken)
    conn.execute("UPDATE sales SET points_earned = 0 WHERE points_earned = 'many'")
    conn.commit()
    conn.close()
    moved = moving.migrate(broken, pg_database)
    assert moved.rows == sum(len(rows) for rows in sqlite_tables(broken).values())


def test_migrate_killed_mid_copy_leaves_the_target_empty_and_a_second_run_completes(
        source: Path, tmp_path: Path, pg_database: str) -> None:
    big = tmp_path / "hq.db"
    big.write_bytes(source.read_bytes())
    conn = sqlite3.connect(big)
    conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                 "WHERE i < 300000) INSERT INTO changes (kind, key, seq, urgent) "
                 "SELECT 'customer', 'C' || i, 1000 + i, 0 FROM n")
    conn.commit()
    conn.close()
    migrating = subprocess.Popen([str(LOYALTY), "hq", "migrate", "--from", str(big), "--to",
                                  pg_database], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
    try:
        assert migrating.stderr is not None
        for line in migrating.stderr:  # off a terminal: `progress NAME done=N total=M ...`
            seen = re.search(r" changes done=(\d+) total=(\d+)", line)
            if seen:
                assert int(seen[1]) < int(seen[2]), "the copy ended before it was killed"
                break
        else:
            raise AssertionError(f"no progress of the changes table (exit {migrating.wait()})")
    finally:
        migrating.send_signal(signal.SIGKILL)
        migrating.wait()

    assert set(pg_counts(pg_database).values()) == {0}
    done = cli("hq", "migrate", "--from", str(big), "--to", pg_database)
    assert done.returncode == 0, done.stderr
    assert pg_counts(pg_database)["changes"] == 300_000 + len(sqlite_tables(source)["changes"])


def test_verify_names_the_table_that_differs(source: Path, pg_database: str) -> None:
    moving.migrate(source, pg_database)
    moving.verify(source, pg_database)  # as copied: nothing to say

    def tampered(change: str, undo: str, table: str) -> None:
        with psycopg.connect(pg_database) as conn:
            conn.execute(change)
        with pytest.raises(MigrationMismatch, match=table):
            moving.verify(source, pg_database)
        with psycopg.connect(pg_database) as conn:
            conn.execute(undo)
        moving.verify(source, pg_database)

    # the same rows and sums, a different ledger: a customer's balance moved
    tampered("UPDATE events SET event = replace(event, '\"points_spent\":30', "
             "'\"points_spent\":31')",
             "UPDATE events SET event = replace(event, '\"points_spent\":31', "
             "'\"points_spent\":30')", "events")
    # the same number of rows, a different amount
    tampered("UPDATE sales SET total_net = total_net + 1",
             "UPDATE sales SET total_net = total_net - 1", "sales")
    # a row missing
    with psycopg.connect(pg_database) as conn:
        conn.execute("DELETE FROM sale_lines WHERE ctid = (SELECT MIN(ctid) FROM sale_lines)")
    with pytest.raises(MigrationMismatch, match="sale_lines"):
        moving.verify(source, pg_database)


def test_a_file_hq_is_serving_is_refused_saying_to_stop_it(source: Path,
                                                          pg_database: str) -> None:
    with (DatabaseLock(source, "loyalty hq serve", "127.0.0.1:8700").held(),
          pytest.raises(DatabaseInUse, match="stop")):
        moving.migrate(source, pg_database)
    assert pg_counts(pg_database) == {}  # not even HQ's tables: it was never opened


def test_the_target_must_be_a_postgresql_url_and_the_source_hqs_file(
        source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        moving.migrate(source, str(tmp_path / "other.db"))
    assert not (tmp_path / "other.db").exists()
    outlet = tmp_path / "outlet.db"
    sqlite3.connect(outlet).execute("CREATE TABLE outbox (seq INTEGER)").connection.close()
    with pytest.raises(ConfigError, match="not HQ's database"):
        moving.migrate(outlet, "postgresql://nobody@/nowhere?host=/nonexistent")
