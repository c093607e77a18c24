"""One sync pass: hello, push everything pending, pull everything new (docs/design.md §3).

The pass is separate from the loops that repeat it (sync.loop) and from the links that
carry it (sync.transport): `loyalty sync`, the router loop and a modem session all run
these functions. The outlet side is reached through the small `Replica` interface, so
this module knows nothing of the agent's tables.
Promises: a push batch is acknowledged in the replica only with HQ's answer in hand; a
pulled page is applied with its cursor in one transaction (the replica's promise); HQ
going back in time (new epoch, or holding less than it acknowledged) is reconciled before
anything else is exchanged. Must never: skip an event, or advance a cursor past a page
that was not applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from schema.errors import SeqReused, SyncError, describe
from schema.events import Event
from schema.sync import Hello, PullResponse, PushRequest, PushResponse
from sync.transport import Transport

PUSH_BATCH = 500
PULL_PAGE = 1000

Progress = Callable[[int, int], None]


class EpochChanged(SyncError):
    """HQ's epoch changed under a running exchange: start again with a hello."""

    code = "hq_epoch_changed"


class Replica(Protocol):
    outlet_id: str

    def acked_through(self) -> int: ...

    def renumber(self, first: int, hq_last_seq: int) -> int: ...

    def reconcile(self, hello: Hello, acked_before: int | None = None) -> bool: ...

    def pending(self, limit: int) -> list[Event]: ...

    def acknowledge(self, response: PushResponse) -> None: ...

    def cursor(self) -> int: ...

    def apply(self, page: PullResponse) -> None: ...

    def note_sync(self, error: str | None) -> None: ...


@dataclass
class PassReport:
    pushed: int = 0
    duplicates: int = 0
    flagged: int = 0
    pulled: int = 0
    reset: bool = False
    pending_after: int = 0

    def merge_push(self, response: PushResponse) -> None:
        for result in response.results:
            if result.result == "duplicate":
                self.duplicates += 1
            else:
                self.pushed += 1
                self.flagged += result.result == "flagged"


def greet(replica: Replica, link: Transport) -> bool:
    """Hello, and reconcile with it; True if HQ went back in time. What we had acknowledged
    is read BEFORE asking, so acknowledgements racing the hello are no false alarm."""
    acked_before = replica.acked_through()
    return replica.reconcile(link.hello(), acked_before)


def push_pending(replica: Replica, link: Transport, report: PassReport,
                 batch: int = PUSH_BATCH) -> None:
    renumbered = False
    while True:
        events = replica.pending(batch)
        if not events:
            return
        try:
            response = link.push(PushRequest(outlet_id=replica.outlet_id, events=events))
        except SeqReused as exc:
            # Our database went back (restored): HQ holds other facts under these numbers.
            # Ours move past HQ's, keeping their ids, and go again; once per pass.
            if renumbered or "seq" not in exc.context:
                raise
            replica.renumber(int(exc.context["seq"]), link.hello().last_seq)
            renumbered = True
            continue
        replica.acknowledge(response)
        report.merge_push(response)
        if response.acked_through < events[-1].seq:
            return  # HQ stopped at a gap: the next pass resends from its acked_through


def pull_new(replica: Replica, link: Transport, report: PassReport, wait: float = 0,
             limit: int = PULL_PAGE, progress: Progress | None = None) -> None:
    """Pages until HQ has no more. On a link that allows it (`prefetch`, the router) the
    next page is asked for while this one is applied; it is used only if the replica's
    cursor is then where that request started (else it is asked for again)."""
    ahead = ThreadPoolExecutor(1, "pull-ahead") if getattr(link, "prefetch", False) else None
    try:
        cursor = replica.cursor()
        page = link.pull(cursor, limit, wait)
        while True:
            following: Future[PullResponse] | None = None
            if ahead is not None and page.more:
                following = ahead.submit(link.pull, page.cursor, limit, 0)
            try:
                replica.apply(page)
            except BaseException:
                if following is not None:
                    following.cancel()
                    with contextlib.suppress(Exception):
                        following.result()  # never two requests on the link at once
                raise
            report.pulled += len(page.changes)
            if progress is not None:
                progress(page.cursor, page.head)
            if not page.more:
                return
            cursor = replica.cursor()
            if following is not None and cursor == page.cursor:
                page = following.result()
            else:
                if following is not None:
                    with contextlib.suppress(Exception):
                        following.result()
                page = link.pull(cursor, limit, 0)
    finally:
        if ahead is not None:
            ahead.shutdown(wait=True)


def run_once(replica: Replica, link: Transport, progress: Progress | None = None,
             push_batch: int = PUSH_BATCH) -> PassReport:
    """One complete round; records the outcome in the replica either way."""
    report = PassReport()
    try:
        report.reset = greet(replica, link)
        push_pending(replica, link, report, batch=push_batch)
        pull_new(replica, link, report, progress=progress)
        report.pending_after = len(replica.pending(1))
    except Exception as exc:
        replica.note_sync(describe(exc))
        raise
    replica.note_sync(None)
    return report
