"""Applying a snapshot file to an outlet database (agent/snapshot.py), and the refusals:
real SQLite files, `loyalty agent bootstrap` as a real process where the command line is
what is checked. A refused snapshot changes nothing: the database keeps every byte."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
from chainkit import cli

from agent import snapshot
from agent.outlet import Outlet
from agent.programme import default_documents
from agent.replica import set_meta
from hq import credentials, ingest
from hq import snapshot as hq_snapshot
from hq.chain import Chain
from schema import snapshotfile
from schema.errors import (
    ConfigError,
    OutletNotEmpty,
    SnapshotCorrupt,
    SnapshotEpochMismatch,
    SnapshotIncompatible,
)
from schema.events import (
    CustomerRegistered,
    Payment,
    Profile,
    SaleLine,
    SaleRecorded,
    make_event,
    new_id,
)
from schema.sync import PushRequest


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of a small chain: 3 customers, one with a sale."""
    root = tmp_path_factory.mktemp("chain")
    chain = Chain(root / "hq.db", seed=default_documents())
    try:
        with chain.db.write() as conn:
            credentials.add_outlet(conn, "A")
        bodies = [CustomerRegistered(customer_id=new_id(), card_number=f"290001000{i:03d}9",
                                     profile=Profile(kind="person", given_name=f"C{i}",
                                                     surname="Snap", category="A"))
                  for i in range(3)]
        events = [make_event("A", i + 1, b) for i, b in enumerate(bodies)]
        events.append(make_event("A", 4, SaleRecorded(
            sale_id=new_id(), customer_id=bodies[0].customer_id, currency="EUR",
            lines=[SaleLine(sku="X", name="X", qty=1, unit_price=900, gross=900, discount=0,
                            net=900)],
            payments=[Payment(mode="cash", amount=900)], total_gross=900, total_discount=0,
            total_net=900, points_earned=18)))
        ingest.push(chain, "A", PushRequest(outlet_id="A", events=events))
    finally:
        chain.close()
    hq_snapshot.build(root / "hq.db", root / "chain.snapshot")
    return root / "chain.snapshot"


def fingerprint(db: Path) -> str:
    """Every byte of the database and its WAL (what "changes nothing" means)."""
    digest = hashlib.sha256()
    for suffix in ("", "-wal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def outlet_db(path: Path, outlet: str = "N", **meta: str) -> Path:
    shop = Outlet(path, outlet, chain=True)
    with shop.db.write() as conn:
        for key, value in meta.items():
            set_meta(conn, key, value)
    shop.close()
    return path


def count(db: Path, table: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def meta(db: Path) -> dict[str, str]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def test_a_wiped_outlet_takes_the_snapshot_and_keeps_who_it_is(tmp_path: Path, snap: Path) -> None:
    db = outlet_db(tmp_path / "n.db", hq_url="http://hq:8700", hq_token="lo_secret",
                   link="router", card_range="7", card_serial="12", seq_floor="40")
    header = snapshot.apply(db, snap)
    got = meta(db)
    assert {k: got[k] for k in ("outlet_id", "hq_url", "hq_token", "link", "card_range",
                                "card_serial", "seq_floor")} == {
        "outlet_id": "N", "hq_url": "http://hq:8700", "hq_token": "lo_secret",
        "link": "router", "card_range": "7", "card_serial": "12", "seq_floor": "40"}
    assert (got["cursor"], got["hq_epoch"]) == (str(header.cursor), header.epoch)
    assert count(db, "customers") == 3 and count(db, "identifiers") == 3
    assert not [p.name for p in tmp_path.iterdir() if "snapshot" in p.name]  # no leftovers
    shop = Outlet(db)  # opens as an outlet database, and sells from it
    assert shop.outlet_id == "N"
    shop.close()


def test_a_new_database_needs_its_outlet_id(tmp_path: Path, snap: Path) -> None:
    with pytest.raises(ConfigError, match="--outlet"):
        snapshot.apply(tmp_path / "new.db", snap)
    assert not (tmp_path / "new.db").exists()
    snapshot.apply(tmp_path / "new.db", snap, outlet_id="N")
    assert meta(tmp_path / "new.db")["outlet_id"] == "N"


def test_a_corrupted_snapshot_is_refused_by_its_checksum_and_changes_nothing(
        tmp_path: Path, snap: Path) -> None:
    db = outlet_db(tmp_path / "n.db")
    before = fingerprint(db)
    bad = tmp_path / "bad.snapshot"
    data = bytearray(snap.read_bytes())
    data[snapshotfile.HEADER_BYTES + len(data) // 3 // 2] ^= 0x40  # one bit in the payload
    bad.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupt, match="SHA-256|damaged"):
        snapshot.apply(db, bad)
    assert fingerprint(db) == before
    assert not Path(f"{db}{snapshot.NEW}").exists()


@pytest.mark.parametrize("damage", ["cut", "longer", "not_a_snapshot", "header"])
def test_a_damaged_file_is_refused_and_changes_nothing(tmp_path: Path, snap: Path,
                                                       damage: str) -> None:
    db = outlet_db(tmp_path / "n.db")
    before = fingerprint(db)
    data = snap.read_bytes()
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes({"cut": data[:-100], "longer": data + b"x",
                     "not_a_snapshot": b"SQLite format 3\0" + data[16:],
                     "header": data[:40] + b"}" + data[41:]}[damage])
    with pytest.raises(SnapshotCorrupt):
        snapshot.apply(db, bad)
    assert fingerprint(db) == before


def test_a_snapshot_of_another_hq_epoch_is_refused(tmp_path: Path, snap: Path) -> None:
    db = outlet_db(tmp_path / "n.db", hq_epoch="0" * 32)
    before = fingerprint(db)
    with pytest.raises(SnapshotEpochMismatch, match="epoch"):
        snapshot.apply(db, snap)
    assert fingerprint(db) == before


def test_an_outlet_with_facts_of_its_own_is_refused(tmp_path: Path, snap: Path) -> None:
    from agent.outbox import append
    from schema.events import VisitRecorded

    db = outlet_db(tmp_path / "n.db")
    shop = Outlet(db)
    with shop.db.write() as conn:
        append(conn, "N", VisitRecorded(customer_id="c1", via="card"))
    shop.close()
    before = fingerprint(db)
    with pytest.raises(OutletNotEmpty, match="1 fact"):
        snapshot.apply(db, snap)
    assert fingerprint(db) == before


def test_a_snapshot_of_newer_outlet_tables_is_refused(tmp_path: Path, snap: Path) -> None:
    header = snapshotfile.read_header(snap)
    newer = header.model_copy(update={"migrations": [*header.migrations, "m999_future"]})
    db = outlet_db(tmp_path / "n.db")
    with pytest.raises(SnapshotIncompatible, match="m999_future"):
        snapshot.check(snapshot.read_local(db), newer, None, None, db)


def test_bootstrap_command_says_what_is_wrong_and_exits_1(tmp_path: Path, snap: Path) -> None:
    db = outlet_db(tmp_path / "n.db", hq_epoch="0" * 32)
    done = cli("agent", "bootstrap", "--db", str(db), "--from", str(snap))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error [snapshot_epoch_mismatch]: ")
    assert "Traceback" not in done.stderr
    junk = tmp_path / "junk.snapshot"
    junk.write_bytes(b"not a snapshot at all")
    done = cli("agent", "bootstrap", "--db", str(tmp_path / "x.db"), "--from", str(junk),
               "--outlet", "X")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error [snapshot_corrupt]: ")
    assert not (tmp_path / "x.db").exists()
    done = cli("agent", "bootstrap", "--db", str(tmp_path / "y.db"), "--from", str(snap),
               "--outlet", "Y")
    assert done.returncode == 0, done.stderr
    assert "started from the snapshot at cursor" in done.stdout
