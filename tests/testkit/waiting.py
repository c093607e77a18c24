"""The one waiting helper of the tests: poll a condition with a deadline, never sleep blind.

`wait_until(condition, timeout, every, what)` calls `condition` until it returns something
truthy and returns `(seconds it took, that value)`. A `requests.RequestException` counts as
"not yet" (a server that is starting or restarting); any other exception propagates. At the
deadline it raises AssertionError naming `what` and the last value seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

T = TypeVar("T")


def wait_until(condition: Callable[[], T], timeout: float = 10.0, every: float = 0.01,
               what: str = "condition") -> tuple[float, T]:
    start = time.monotonic()
    last: Any = None
    while True:
        try:
            last = condition()
        except requests.RequestException as exc:
            last = exc
        else:
            if last:
                return time.monotonic() - start, last
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not met within {timeout} s (last: {last!r})")
        time.sleep(every)
