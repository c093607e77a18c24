"""The router link: the sync protocol over HTTP(S) to HQ with requests.

Promises: one kept-alive session per transport; a request that meets a connection HQ
closed while idle is retried once (uvicorn drops idle keep-alives); unreachable HQ is
`LinkDown`; an HQ refusal is re-raised as the same `LoyaltyError` code HQ sent.
Snapshots (docs/sync.md, "Snapshot bootstrap"): `snapshot_offer` reads HQ's manifest and
`fetch_snapshot` downloads the file in chunks to a part file, resuming with an HTTP Range
where an interrupted download stopped. Must never: log the token.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
from pydantic import ValidationError

from schema import errors
from schema.events import utc_now
from schema.snapshotfile import HEADER_BYTES, SnapshotHeader, parse_header, stall
from schema.sync import Hello, PullResponse, PushRequest, PushResponse
from sync.transport import LinkDown, refusal, with_clock


class RouterTransport:
    def __init__(self, base_url: str, token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.sends_clock = False  # see sync.transport.with_clock

    def __repr__(self) -> str:
        return f"RouterTransport({self.base_url!r})"

    def _call(self, method: str, path: str, timeout: float | None = None, raw: bool = False,
              **kw: Any) -> Any:
        url = self.base_url + path
        for attempt in (1, 2):
            try:
                answer = self.session.request(method, url, timeout=timeout or self.timeout, **kw)
                break
            except requests.ConnectionError as exc:
                if attempt == 2:
                    raise LinkDown(f"HQ unreachable at {self.base_url}: {type(exc).__name__}") from exc
            except requests.Timeout as exc:
                raise LinkDown(f"HQ at {self.base_url} did not answer in time") from exc
            except requests.RequestException as exc:  # e.g. the answer cut off midway
                raise LinkDown(f"HQ's answer was cut off: {type(exc).__name__}") from exc
        if answer.status_code >= 500 and (answer.status_code != 502 or not _is_error(answer)):
            raise LinkDown(f"HQ answered {answer.status_code}")  # a bare 502: a gateway's
        if answer.status_code >= 400:
            raise _refusal(answer)
        if raw:
            return answer.content
        try:
            return answer.json()
        except ValueError as exc:  # a body cut short (the connection dropped midway)
            raise LinkDown(f"HQ's answer was cut off ({len(answer.content)} bytes)") from exc

    def hello(self) -> Hello:
        hello = Hello.model_validate(self._call("GET", "/v1/sync/hello",
                                                params={"sent_at": utc_now()}))
        self.sends_clock = hello.clock_offset_s is not None
        return hello

    def push(self, request: PushRequest) -> PushResponse:
        body = with_clock(request, self.sends_clock).model_dump_json().encode()
        data = self._call("POST", "/v1/sync/push", data=body,
                          headers={"Content-Type": "application/json"})
        return PushResponse.model_validate(data)

    prefetch = True  # sync.client.pull_new may ask for the next page while applying one

    def pull(self, cursor: int, limit: int, wait: float) -> PullResponse:
        body = self._call("GET", "/v1/sync/pull", timeout=self.timeout + wait, raw=True,
                          params={"cursor": cursor, "limit": limit, "wait": wait})
        try:
            return PullResponse.model_validate_json(body)  # parsed and checked in one go
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                # a body cut short (the connection dropped midway)
                raise LinkDown(f"HQ's answer was cut off ({len(body)} bytes)") from exc
            raise

    # --- snapshots ----------------------------------------------------------------------
    def snapshot_offer(self) -> SnapshotHeader | None:
        """HQ's current snapshot, None when it offers none (or predates snapshots)."""
        url = self.base_url + "/v1/sync/snapshot"
        try:
            answer = self.session.get(url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise LinkDown(f"HQ unreachable at {self.base_url}: {type(exc).__name__}") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code >= 500:
            raise LinkDown(f"HQ answered {answer.status_code}")
        if answer.status_code >= 400:
            raise _refusal(answer)
        return SnapshotHeader.model_validate(answer.json())

    def fetch_snapshot(self, offer: SnapshotHeader, part: Path,
                       progress: Callable[[int, int], None] | None = None) -> bool:
        """Downloads the snapshot `offer` into `part`, continuing a part file of the same
        snapshot from where it stopped; True if it resumed. `LinkDown` if the download is
        cut off (what arrived stays for the next try) or HQ no longer keeps that snapshot."""
        total = offer.file_bytes
        have = part.stat().st_size if part.exists() else 0
        if have >= HEADER_BYTES:
            with open(part, "rb") as f:
                raw = f.read(HEADER_BYTES)
            try:
                same = parse_header(raw).sha256 == offer.sha256
            except errors.SnapshotCorrupt:
                same = False
            have = have if same and have <= total else 0
        else:
            have = 0
        resumed = have > 0
        if have == total:
            return resumed
        headers = {"Range": f"bytes={have}-"} if have else {}
        url = f"{self.base_url}/v1/sync/snapshot/{offer.sha256}"
        try:
            with self.session.get(url, headers=headers, stream=True,
                                  timeout=self.timeout) as answer:
                if answer.status_code == 404:
                    raise LinkDown("HQ replaced its snapshot during the download: ask again")
                if answer.status_code >= 400:
                    raise _refusal(answer) if answer.status_code < 500 else \
                        LinkDown(f"HQ answered {answer.status_code}")
                if answer.status_code != 206:
                    have = 0  # the whole file (HQ ignored the range)
                with open(part, "r+b" if have else "wb") as out:
                    out.seek(have)
                    out.truncate()
                    for chunk in answer.iter_content(1 << 20):
                        out.write(chunk)
                        have += len(chunk)
                        if progress is not None:
                            progress(have, total)
                        stall("download")
                    out.flush()
                    os.fsync(out.fileno())
        except requests.RequestException as exc:
            raise LinkDown(f"the snapshot download was cut off at {have} of {total} bytes "
                           f"({type(exc).__name__}): it resumes there") from exc
        if have != total:
            raise LinkDown(f"the snapshot download was cut off at {have} of {total} bytes: "
                           "it resumes there")
        return resumed

    def close(self) -> None:
        self.session.close()


def _is_error(answer: requests.Response) -> bool:
    """An answer of HQ's own (`{"error": {...}}`), not of a proxy in front of it."""
    try:
        return isinstance(answer.json().get("error"), dict)
    except (ValueError, AttributeError):
        return False


def _refusal(answer: requests.Response) -> errors.LoyaltyError:
    context: dict[str, object] = {}
    try:
        error = answer.json()["error"]
        code, message = str(error["code"]), str(error["message"])
        context = dict(error.get("context") or {})
    except (ValueError, KeyError, TypeError, AttributeError):
        code, message = "sync_failed", f"HQ answered {answer.status_code}"
    return refusal(code, message, context)
