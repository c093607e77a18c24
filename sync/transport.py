"""The one small interface every link to HQ implements (router over HTTP, modem).

A transport carries the protocol's three exchanges and nothing else; what to send and
what to do with the answers is the sync pass's business (sync.client). Every transport
runs the same conformance test (tests/sync/test_transport_conformance.py).
Errors: `LinkDown` when HQ cannot be reached (retry later, nothing is lost); a
`LoyaltyError` with HQ's code when HQ refused the message (do not retry blindly).
"""

from __future__ import annotations

from typing import Protocol

from schema.errors import SyncError
from schema.sync import Hello, PullResponse, PushRequest, PushResponse


class LinkDown(SyncError):
    code = "hq_unreachable"


class Transport(Protocol):
    def hello(self) -> Hello: ...

    def push(self, request: PushRequest) -> PushResponse: ...

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse: ...

    def close(self) -> None: ...
