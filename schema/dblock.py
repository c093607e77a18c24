"""One serving process per database: a lock beside the file, held for the process's life.

`loyalty agent serve` and `loyalty hq serve` hold an exclusive flock(2) on `DB.lock`
(beside `DB`) from before they open the database until they exit; a one-shot command that
must not run beside a server (`loyalty sync` on a router link, `loyalty hq restore-epoch`)
holds it for its run. The kernel drops an flock when its process dies, kill -9 included,
so a lock file left behind never blocks a restart: only a live holder refuses. The file's
content (pid, command, address, link, start time) is there to name the holder.
Promises: a refusal is `database_in_use` naming the holder and saying what to do; read-only
use (reports, `loyalty status`) never takes the lock. Must never: delete the lock file (a
process that opened the old one and a process that created a new one would both "hold" it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schema.errors import DatabaseInUse, StorageUnavailable


def lock_path(db: str | Path) -> Path:
    return Path(f"{db}.lock")


@dataclass(frozen=True)
class Holder:
    """Who holds a database's lock, as it wrote itself into the lock file."""

    pid: int | None = None
    command: str = "another process"
    address: str | None = None
    link: str | None = None
    since: str | None = None

    def __str__(self) -> str:
        details = [f"pid {self.pid}" if self.pid else "pid unknown"]
        if self.address:
            details.append(f"serving {self.address}")
        if self.since:
            details.append(f"since {self.since}")
        name = f"`{self.command}`" if self.command.startswith("loyalty") else self.command
        return f"{name} ({', '.join(details)})"

    @classmethod
    def parse(cls, raw: bytes) -> Holder:
        try:
            data: dict[str, Any] = json.loads(raw.decode())
            return cls(pid=int(data["pid"]), command=str(data.get("command") or "a process"),
                       address=data.get("address"), link=data.get("link"),
                       since=data.get("since"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return cls()  # being written right now, or not ours: still refused


class DatabaseLock:
    """`with DatabaseLock(db, "loyalty agent serve", "127.0.0.1:8701").held(hint): ...`"""

    def __init__(self, db: str | Path, command: str, address: str | None = None,
                 link: str | None = None) -> None:
        self.db = str(db)
        self.path = lock_path(db)
        self.me = Holder(os.getpid(), command, address, link,
                         datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
        self._fd: int | None = None

    def acquire(self, hint: str = "stop it first") -> None:
        """Takes the lock at once or raises `DatabaseInUse` naming the holder; `hint` says
        what to do about it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot create {self.path} ({exc.strerror}): the database's folder must be "
                "writable by the user running loyalty", fault="read_only") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(os.pread(fd, 4096, 0))
            os.close(fd)
            raise DatabaseInUse(f"{self.db} is in use by {holder}: {hint}",
                                holder_pid=holder.pid, holder=holder.command,
                                address=holder.address, link=holder.link) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": self.me.pid, "command": self.me.command,
                                  "address": self.me.address, "link": self.me.link,
                                  "since": self.me.since}).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None

    @contextlib.contextmanager
    def held(self, hint: str = "stop it first") -> Iterator[DatabaseLock]:
        self.acquire(hint)
        try:
            yield self
        finally:
            self.release()
