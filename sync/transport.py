"""The one small interface every link to HQ implements (router over HTTP, modem).

A transport carries the protocol's three exchanges and nothing else; what to send and
what to do with the answers is the sync pass's business (sync.client). Every transport
runs the same conformance test (tests/sync/test_transport_conformance.py).
Errors: `LinkDown` when HQ cannot be reached (retry later, nothing is lost); a
`LoyaltyError` with HQ's code when HQ refused the message (do not retry blindly), made by
`refusal` for every transport: a refused outlet token says how to get a new one.
Outlet clocks (docs/sync.md): a transport sends the outlet's time with every hello, and
with pushes once HQ's hello answer showed it measures clocks (`with_clock`).
"""

from __future__ import annotations

from typing import Any, Protocol

from schema import errors
from schema.errors import SyncError
from schema.events import utc_now
from schema.sync import Hello, PullResponse, PushRequest, PushResponse


class LinkDown(SyncError):
    code = "hq_unreachable"


class TokenRefused(errors.Unauthorized):
    """HQ does not know this outlet's token (revoked by `outlet-token`, or mistyped)."""


# HQ's error codes -> the class to raise here, so `except SeqReused` works on both sides.
CODES: dict[str, type[errors.LoyaltyError]] = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.LoyaltyError)
}


def refusal(code: str, message: str, context: dict[str, Any] | None = None,
            ) -> errors.LoyaltyError:
    """HQ's refusal as the error to raise at the outlet, keeping HQ's code."""
    if code == errors.Unauthorized.code:
        return TokenRefused(
            f"HQ refused this outlet's token ({message}): get a new one at HQ with "
            "`loyalty hq outlet-token --db HQ_DB OUTLET_ID` and restart the agent with "
            "--token NEW_TOKEN")
    exc = CODES.get(code, errors.SyncError)(message, **(context or {}))
    exc.code = code
    return exc


class Transport(Protocol):
    def hello(self) -> Hello: ...

    def push(self, request: PushRequest) -> PushResponse: ...

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse: ...

    def close(self) -> None: ...


def with_clock(request: PushRequest, hq_measures: bool) -> PushRequest:
    """The push with the outlet's clock (`sent_at`, read now) when HQ's last hello answer
    showed it measures outlet clocks; as it is otherwise: an HQ of an earlier version
    refuses fields it does not know, so an outlet upgraded before its HQ still syncs."""
    if not hq_measures or request.sent_at is not None:
        return request
    return request.model_copy(update={"sent_at": utc_now()})
