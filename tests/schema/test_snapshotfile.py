"""The snapshot file format (schema/snapshotfile.py): header, checksum, compression, and
memory that stays flat whatever the size of the database inside."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from schema import snapshotfile
from schema.errors import SnapshotCorrupt


def pack(tmp_path: Path, content: bytes, compression: snapshotfile.Compression
         ) -> tuple[Path, snapshotfile.SnapshotHeader]:
    db = tmp_path / "x.db"
    db.write_bytes(content)
    out = tmp_path / f"x-{compression}.snapshot"
    header = snapshotfile.write(out, db, epoch="e" * 32, cursor=7, built_at="2026-01-01T00:00:00Z",
                                customers=1, migrations=["m001_initial"], compression=compression)
    return out, header


@pytest.mark.parametrize("compression", ["zstd", "gzip"])
def test_a_packed_database_unpacks_to_the_same_bytes(tmp_path: Path, compression: str) -> None:
    content = bytes(range(256)) * 40_000 + b"tail"
    out, header = pack(tmp_path, content, compression)  # type: ignore[arg-type]
    assert header.file_bytes == out.stat().st_size
    assert snapshotfile.read_header(out) == header
    assert snapshotfile.checksum(out) == header.sha256
    back = snapshotfile.unpack(out, tmp_path / "back.db")
    assert back == header
    assert (tmp_path / "back.db").read_bytes() == content


def test_unpacking_keeps_memory_to_a_few_chunks_however_well_it_compresses(
        tmp_path: Path) -> None:
    out, _header = pack(tmp_path, bytes(64 << 20), "zstd")  # 64 MiB that pack to ~2 KiB
    tracemalloc.start()
    try:
        snapshotfile.unpack(out, tmp_path / "back.db")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * snapshotfile.CHUNK, f"{peak / 2**20:.1f} MiB at the peak"
    assert (tmp_path / "back.db").stat().st_size == 64 << 20


def test_a_payload_that_does_not_match_its_header_is_refused_and_leaves_nothing(
        tmp_path: Path) -> None:
    out, _header = pack(tmp_path, bytes(range(256)) * 4000, "zstd")
    data = bytearray(out.read_bytes())
    data[-5] ^= 1
    out.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupt):
        snapshotfile.unpack(out, tmp_path / "back.db")
    assert not (tmp_path / "back.db").exists()
