"""The messages of a modem call: the sync protocol's exchanges as one framed dialogue.

A call is: `auth` (the outlet's token), then any number of `hello` / `push` / `pull`, then
`bye`. Each request is a dict with an `op`; each reply is `{"ok": ...}` or
`{"error": {"code", "message"}}` exactly like the HTTP API, so both links refuse with the
same codes. Requests and replies travel packed and compressed (sync.compression).
"""

from __future__ import annotations

from typing import Any

OPS = ("auth", "hello", "push", "pull", "bye")


def request(op: str, **fields: Any) -> dict[str, Any]:
    if op not in OPS:
        raise ValueError(f"unknown modem call op {op}")
    return {"op": op, **fields}


def ok(value: Any = None) -> dict[str, Any]:
    return {"ok": value}


def error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}
