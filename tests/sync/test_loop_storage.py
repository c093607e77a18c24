"""The router loops meet a replica that cannot be written (a full or read-only disk): they
keep running and retrying; they never die on recording their own failure.

A real in-process outlet on a SQLite file, made read-only by SQLite itself (`query_only`:
every write is refused with SQLITE_READONLY, as on a read-only disk), and a real router
link to a port where no HQ listens.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from agentkit import free_port
from chainkit import until

from agent.outlet import Outlet
from agent.replica import get_meta
from agent.replication import OutletReplica
from sync.loop import RouterLoop
from sync.router import RouterTransport


def test_the_sync_loops_survive_a_replica_that_cannot_be_written(tmp_path: Path) -> None:
    shop = Outlet(tmp_path / "north.db", "NORTH", chain=True)
    nowhere = f"http://127.0.0.1:{free_port()}"
    loop = RouterLoop(OutletReplica(shop), lambda: RouterTransport(nowhere, "lo_x"),
                      max_backoff=0.2)
    shop.db.conn.execute("PRAGMA query_only = ON")
    try:
        loop.start()
        time.sleep(1.5)                            # many failed rounds, none recordable
        alive = {thread.name for thread in threading.enumerate()}
        assert {"sync-push", "sync-pull"} <= alive, loop.state
        shop.db.conn.execute("PRAGMA query_only = OFF")   # the disk has room again
        until(lambda: get_meta(shop.db, "last_sync_error"), 5,
              what="the loop records its failure once it can")
        assert "hq_unreachable" in str(get_meta(shop.db, "last_sync_error"))
    finally:
        loop.stop()
        shop.close()
