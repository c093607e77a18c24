"""How staff passwords are kept and checked, at HQ (hq/staff.py) and at an outlet's desk
(agent/deskstaff.py): one implementation for both, since a desk checks the very hashes HQ
made.

- A password is kept only as a salted scrypt hash, `scrypt$N$r$p$salt$hash` (hex).
- `check(password, stored)` compares in constant time and, for an unknown account
  (`stored` None), spends the same work on a dummy hash, so the answer time does not tell
  which usernames exist.
- `Throttle`: failed logins per username; LOGIN_FAILURES within LOGIN_WINDOW_S lock the
  username out for the rest of the window (in memory: a restart forgets, as the window
  would).

Must never: store, log or echo a password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time

N, R, P, DKLEN = 2**14, 8, 1, 32
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
LOGIN_FAILURES = 5  # per username within LOGIN_WINDOW_S, then refused for the window
LOGIN_WINDOW_S = 300
_MAXMEM = 256 * 1024 * 1024
_dummy: list[str] = []  # a hash to check unknown usernames against (same cost as a real one)


def hash_password(password: str, n: int = N, r: int = R, p: int = P) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN,
                         maxmem=_MAXMEM)
    return f"scrypt${n}${r}${p}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        given = hashlib.scrypt(password.encode()[:MAX_PASSWORD * 4], salt=bytes.fromhex(salt),
                               n=int(n), r=int(r), p=int(p), dklen=len(bytes.fromhex(key)),
                               maxmem=_MAXMEM)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(given, bytes.fromhex(key))


def check(password: str, stored: str | None) -> bool:
    """Whether `password` matches `stored`; with no stored hash (no such account) the same
    work is spent and the answer is False."""
    if stored is None:
        if not _dummy:
            _dummy.append(hash_password(secrets.token_hex(16)))
        verify_password(password, _dummy[0])
        return False
    return verify_password(password, stored)


class Throttle:
    """Failed logins per username (any app with staff logins keeps one)."""

    def __init__(self, failures: int = LOGIN_FAILURES, window_s: float = LOGIN_WINDOW_S) -> None:
        self.failures = failures
        self.window_s = window_s
        self._failed: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def throttled(self, username: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failed.get(username, []) if now - t < self.window_s]
            self._failed[username] = recent
            return len(recent) >= self.failures

    def failed(self, username: str) -> None:
        with self._lock:
            self._failed.setdefault(username, []).append(time.monotonic())
            if len(self._failed) > 10_000:  # never grow without bound
                self._failed.clear()

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failed.pop(username, None)
