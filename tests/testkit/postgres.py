"""Throwaway PostgreSQL clusters for the tests: started and removed by the tests themselves.

`Cluster.start()` runs `initdb` and `pg_ctl` from Debian's PostgreSQL (install.sh --dev) into a
fresh folder under /tmp: the cluster listens on a unix socket in that folder only (no TCP
port to collide on, nothing reachable from outside), with fsync off (a test's data need
not survive power loss), trust authentication for the `postgres` role, UTF-8 and C order.
As root (CI runs as root) initdb and the server refuse to run, so both run as the
`postgres` user through `runuser`, in a folder chowned to it (pytest's own tmp folders are
0700 root, which that user cannot enter); as anyone else they run as that user.

- `cluster.url(name)`: the URL HQ takes (`postgresql://postgres@/NAME?host=FOLDER&port=5432`).
- `cluster.database(template=None)`: a new database of its own (from `template`, a
  database prepared once with `cluster.template(name, prepare)`: ~0.1-0.3 s instead of
  migrating again), dropped by `drop`.
- `hq_database(cluster)`: a new database with HQ's tables (a copy of the template "hq",
  migrated once per cluster), for `loyalty hq serve --db URL`; no epoch yet, so each is a
  new HQ. Dropped by `cluster.drop(url)` like any other.
- `cluster.stop()`: stops the server at once (SIGQUIT: an immediate shutdown) and removes
  the folder.

Promises: a cluster never outlives the test run that started it: `stop` runs at exit, and
`start` first removes the clusters of test runs that died without stopping theirs (the
folder names the run's pid). `missing()` says why clusters cannot start here (no
PostgreSQL binaries, or root without a `postgres` user); the fixtures skip with that
reason, and fail instead under CI (install.sh --dev installs PostgreSQL: a skip there
would hide a broken install).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PREFIX = "loyalty-pg-"
PORT = 5432  # only names the socket file in the cluster's folder (and keeps PGPORT out)
SERVER_OPTIONS = (f"-p {PORT} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                  "-c full_page_writes=off -c max_connections=200")


def bin_dir() -> Path | None:
    """Where initdb and pg_ctl are: $LOYALTY_PG_BIN, else Debian's newest
    /usr/lib/postgresql/N/bin, else the PATH."""
    if os.environ.get("LOYALTY_PG_BIN"):
        given = Path(os.environ["LOYALTY_PG_BIN"])
        return given if (given / "initdb").exists() else None
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                      else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def missing() -> str | None:
    """Why a cluster cannot start on this machine, or None when it can."""
    found = bin_dir()
    if found is None or not (found / "pg_ctl").exists():
        return ("PostgreSQL's binaries (initdb, pg_ctl) are not installed: run "
                "./install.sh --dev (it installs Debian's postgresql), or set LOYALTY_PG_BIN")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return ("running as root, PostgreSQL must run as the `postgres` user, and there "
                    "is none: install Debian's postgresql package (it creates the user)")
        if shutil.which("runuser") is None:
            return "running as root needs `runuser` (util-linux) to start PostgreSQL"
    return None


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, which nobody has reaped yet, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


class Cluster:
    """One running throwaway cluster (see the module's promises)."""

    def __init__(self, folder: Path, bindir: Path, as_user: str | None) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.bindir = bindir
        self.as_user = as_user
        self._names = itertools.count(1)
        self._templates: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopped = False

    # --- life ---------------------------------------------------------------------
    @classmethod
    def start(cls) -> Cluster:
        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        sweep()
        bindir = bin_dir()
        assert bindir is not None
        as_user = "postgres" if os.geteuid() == 0 else None
        folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
        cluster = cls(folder, bindir, as_user)
        try:
            if as_user is not None:
                entry = pwd.getpwnam(as_user)
                os.chown(folder, entry.pw_uid, entry.pw_gid)
            cluster._run("initdb", "-N", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                         "--locale=C.UTF-8", "--lc-collate=C", "-D", str(cluster.data))
            cluster._run("pg_ctl", "-w", "-t", "60", "-D", str(cluster.data), "-l",
                         str(cluster.log), "-o", f"{SERVER_OPTIONS} -k {folder}", "start")
        except BaseException:
            cluster.stop()
            raise
        atexit.register(cluster.stop)
        return cluster

    def stop(self) -> None:
        """Stops the server at once (nothing of a test's data is worth a clean shutdown)
        and removes its folder; harmless twice."""
        if self._stopped:
            return
        self._stopped = True
        # SIGQUIT is pg_ctl's `-m immediate`, sent without starting a process (a session's
        # fixtures may be finalised while a fast-tier test forbids that)
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 30
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, program: str, *args: str) -> str:
        command: Sequence[str] = [str(self.bindir / program), *args]
        if self.as_user is not None:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = self.log.read_text(errors="replace")[-2000:]
            raise subprocess.CalledProcessError(
                done.returncode, command, done.stdout, f"{done.stderr}\n{tail}")
        return done.stdout

    # --- databases ----------------------------------------------------------------
    def url(self, name: str = "postgres") -> str:
        return f"postgresql://postgres@/{name}?host={self.folder}&port={PORT}"

    def admin(self, sql: str) -> None:
        """One statement outside any transaction (CREATE/DROP DATABASE), as `postgres`."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.encode())

    def database(self, template: str | None = None, name: str | None = None) -> str:
        """A new database (empty, or a copy of `template`); returns its URL."""
        with self._lock:
            name = name or f"t{os.getpid()}_{next(self._names)}"
        if template is None:
            self.admin(f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\' '
                       "LC_COLLATE 'C' LC_CTYPE 'C.UTF-8'")
        else:
            self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{self._templates[template]}"')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drops a database `database` made, closing what is still connected to it."""
        name = url.split("?", 1)[0].rsplit("/", 1)[-1]
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def template(self, name: str, prepare: Callable[[str], None]) -> str:
        """A database prepared once by `prepare(url)` (which must close its connections)
        for `database(template=name)` to copy; returns `name`."""
        with self._lock:
            if name in self._templates:
                return name
        url = self.database(name=f"tpl_{name}")
        prepare(url)
        with self._lock:
            self._templates[name] = f"tpl_{name}"
        return name


def migrated_hq(url: str) -> None:
    """Prepares the template "hq": HQ's migrations applied, nothing else (no epoch)."""
    from hq.store.postgres import PgStore

    PgStore(url).close()


def hq_database(cluster: Cluster) -> str:
    """A new database of HQ's tables (see the module docstring); returns its URL."""
    return cluster.database(template=cluster.template("hq", migrated_hq))


def sweep() -> None:
    """Stops and removes the clusters of test runs that died without stopping them."""
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{PREFIX}*"):
        match = re.match(rf"{PREFIX}(\d+)-", folder.name)
        if match is None or alive(int(match.group(1))):
            continue
        bindir = bin_dir()
        data = folder / "data"
        if bindir is not None and (data / "postmaster.pid").exists():
            owner = data.stat().st_uid
            user = pwd.getpwuid(owner).pw_name if os.geteuid() == 0 and owner != 0 else None
            Cluster(folder, bindir, user).stop()
        else:
            shutil.rmtree(folder, ignore_errors=True)
