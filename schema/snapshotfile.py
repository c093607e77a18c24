"""The snapshot file: a ready outlet replica as HQ serves it and an operator carries it.

One file, so a copy carried by hand needs nothing beside it:

    LOYALTY-SNAPSHOT\\n         magic (17 bytes)
    {header JSON} + spaces + \\n  padded to HEADER_BYTES in all
    payload                      the outlet's SQLite database, compressed

The header says what the replica is (HQ's epoch, the change-log cursor it is complete
up to, the outlet migrations it has) and how to check it: `sha256` is the SHA-256 of the
payload exactly as stored, so a file damaged in transfer or on a stick is refused before
anything of it is used. The HTTP manifest is this header, so a resumed download can tell
whether the part it has belongs to the same snapshot.

Compression (measured on this machine, docs/sync.md "Snapshot bootstrap"): zstd (the
`zstandard` package) decompresses several times faster than zlib and packs tighter at the
level used; `gzip` (stdlib zlib) stays readable for files made by hand with
`compression="gzip"`.

Promises: `write` streams (memory does not grow with the database) and replaces its
output atomically; `unpack` streams too, and refuses (`SnapshotCorrupt`) a file whose
payload does not hash to its header before it reports success. Must never: read a whole
database into memory, or leave a half-written output under the final name.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, ValidationError

from schema.errors import SnapshotCorrupt

MAGIC = b"LOYALTY-SNAPSHOT\n"
HEADER_BYTES = 4096
FORMAT = 1
CHUNK = 1 << 20
ZSTD_LEVEL = 3  # zstd's default: ~0.5 GB/s to pack on one core here, >1 GB/s to unpack
GZIP_LEVEL = 1

Compression = Literal["zstd", "gzip"]
Progress = Callable[[int, int], None]


class _Described(BaseModel):
    """What a snapshot holds and how to check it: the header's fields."""

    model_config = ConfigDict(extra="ignore")  # a later format may add fields

    format: int = FORMAT
    epoch: str
    cursor: int
    built_at: str
    customers: int
    migrations: list[str]
    compression: Compression
    db_bytes: int
    payload_bytes: int
    sha256: str


class SnapshotHeader(_Described):
    """The header at the start of a snapshot file."""

    @property
    def file_bytes(self) -> int:
        return HEADER_BYTES + self.payload_bytes


def _header_bytes(header: SnapshotHeader) -> bytes:
    text = MAGIC + header.model_dump_json().encode()
    if len(text) + 1 > HEADER_BYTES:
        raise ValueError("snapshot header too long")
    return text + b" " * (HEADER_BYTES - len(text) - 1) + b"\n"


def parse_header(raw: bytes, where: str = "snapshot") -> SnapshotHeader:
    """The header from a file's first HEADER_BYTES; SnapshotCorrupt if it is not one."""
    if len(raw) < HEADER_BYTES or not raw.startswith(MAGIC):
        raise SnapshotCorrupt(f"{where} is not a loyalty snapshot file (no snapshot header)")
    try:
        header = SnapshotHeader.model_validate_json(raw[len(MAGIC):HEADER_BYTES].strip())
    except ValidationError as exc:
        raise SnapshotCorrupt(f"{where} has a damaged snapshot header ({exc.error_count()} "
                              "problem(s)): get the file again") from exc
    if header.format != FORMAT:
        raise SnapshotCorrupt(f"{where} is snapshot format {header.format}; this version "
                              f"reads format {FORMAT}: upgrade this outlet or pull page by page")
    return header


def read_header(path: str | Path) -> SnapshotHeader:
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except FileNotFoundError:
        raise SnapshotCorrupt(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SnapshotCorrupt(f"{path} is a directory, not a snapshot file") from None
    return parse_header(raw, str(path))


def write(out: str | Path, db: str | Path, *, epoch: str, cursor: int, built_at: str,
          customers: int, migrations: list[str],
          compression: Compression = "zstd") -> SnapshotHeader:
    """Packs the SQLite file `db` as a snapshot at `out` (written beside it, then renamed)."""
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    digest = hashlib.sha256()
    payload = 0
    pack: Callable[[bytes], bytes]
    finish: Callable[[], bytes]
    if compression == "zstd":
        import zstandard

        packer = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        pack, finish = packer.compress, packer.flush
    else:
        deflate = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # 31: a gzip stream
        pack, finish = deflate.compress, deflate.flush
    with open(db, "rb") as src, open(tmp, "wb") as dst:
        os.fchmod(dst.fileno(), 0o600)  # it holds every customer's profile and PIN hash
        dst.write(b"\0" * HEADER_BYTES)
        db_bytes = 0
        while chunk := src.read(CHUNK):
            db_bytes += len(chunk)
            part = pack(chunk)
            if part:
                digest.update(part)
                payload += len(part)
                dst.write(part)
        tail = finish()
        digest.update(tail)
        payload += len(tail)
        dst.write(tail)
        header = SnapshotHeader(epoch=epoch, cursor=cursor, built_at=built_at,
                                customers=customers, migrations=migrations,
                                compression=compression, db_bytes=db_bytes,
                                payload_bytes=payload, sha256=digest.hexdigest())
        dst.seek(0)
        dst.write(_header_bytes(header))
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, out)
    return header


def _chunks(f: IO[bytes], size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = f.read(min(CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


class _Payload(io.RawIOBase):
    """The payload of an open snapshot file as a stream: hashes what is read, and ends at
    the size the header says (so a decompressor never reads past it)."""

    def __init__(self, f: IO[bytes], size: int, progress: Progress | None) -> None:
        self.f, self.left, self.size, self.progress = f, size, size, progress
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self.left)
        if want <= 0:
            return 0
        data = self.f.read(want)
        self.digest.update(data)
        self.left -= len(data)
        buffer[:len(data)] = data
        if self.progress is not None:
            self.progress(self.size - self.left, self.size)
        return len(data)


def unpack(path: str | Path, dest: str | Path, progress: Progress | None = None) -> SnapshotHeader:
    """Decompresses the snapshot at `path` into the file `dest` (created or truncated) and
    fsyncs it; SnapshotCorrupt (dest removed) when the payload does not hash to the header,
    is cut short, or does not decompress to the size the header says. Memory stays at a
    few chunks whatever the size (the decompressor's output is read a chunk at a time)."""
    header = read_header(path)
    broken: tuple[type[BaseException], ...] = (zlib.error, EOFError, gzip.BadGzipFile)
    written = 0
    try:
        with open(path, "rb") as src, open(dest, "wb") as dst:
            src.seek(HEADER_BYTES)
            payload = _Payload(src, header.payload_bytes, progress)
            reader: IO[bytes]
            if header.compression == "zstd":
                import zstandard

                broken = (*broken, zstandard.ZstdError)
                reader = zstandard.ZstdDecompressor().stream_reader(
                    cast(IO[bytes], payload), read_size=CHUNK)
            else:
                reader = cast(IO[bytes], gzip.GzipFile(fileobj=payload, mode="rb"))
            with reader:
                while data := reader.read(CHUNK):
                    written += len(data)
                    if written > header.db_bytes:
                        raise SnapshotCorrupt(f"{path} expands past the size its header says:"
                                              " the file is damaged: get it again")
                    dst.write(data)
            payload.read()  # what the decompressor left unread still counts in the hash
            if src.read(1):
                raise SnapshotCorrupt(f"{path} is longer than its header says: get it again")
            dst.flush()
            os.fsync(dst.fileno())
    except broken as exc:
        Path(dest).unlink(missing_ok=True)
        raise SnapshotCorrupt(f"{path} does not decompress ({exc}): the file is damaged:"
                              " get it again") from exc
    except BaseException:
        Path(dest).unlink(missing_ok=True)
        raise
    read = header.payload_bytes - payload.left
    if read != header.payload_bytes or payload.digest.hexdigest() != header.sha256 \
            or written != header.db_bytes:
        Path(dest).unlink(missing_ok=True)
        raise SnapshotCorrupt(
            f"{path} fails its SHA-256 check ({read} of {header.payload_bytes} bytes read):"
            " the file is damaged or incomplete: get it again")
    return header


def checksum(path: str | Path) -> str:
    """SHA-256 of the payload of a snapshot file as stored (what the header must say)."""
    header = read_header(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(HEADER_BYTES)
        for chunk in _chunks(f, header.payload_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def stall(stage: str) -> None:
    """Test only: with `LOYALTY_TEST_SNAPSHOT_STALL=STAGE` in its environment a process
    says `snapshot stage STAGE` on stderr at that point and waits there, so a test can
    kill -9 it at a known moment (tests/e2e/test_snapshot_bootstrap.py). Never set it on a
    real outlet."""
    if os.environ.get("LOYALTY_TEST_SNAPSHOT_STALL") == stage:
        import sys
        import time

        print(f"snapshot stage {stage}", file=sys.stderr, flush=True)
        time.sleep(600)


class SnapshotManifest(_Described):
    """The manifest HQ serves (`GET /v1/sync/snapshot`): the header's fields plus
    `file_bytes`, the whole file's size (header + payload)."""

    file_bytes: int


def header_json(header: SnapshotHeader) -> str:
    """The manifest HQ serves, as JSON."""
    return json.dumps({**header.model_dump(mode="json"), "file_bytes": header.file_bytes})
