"""HQ's HTTP edges seen from outside: a push cut off by the line, a wrong method.

The real `loyalty hq serve` process of tests/hq/conftest.py, over raw sockets and requests.
"""

from __future__ import annotations

import socket
import time

import pytest
import requests
from chainkit import HQProcess, until
from hqkit import HQClient


def log_since(hq_process: HQProcess, offset: int) -> str:
    with open(hq_process.log, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.fixture
def outlet_a(hq_process: HQProcess) -> HQClient:
    """Outlet A's client of the real HQ process (what these tests are about)."""
    return HQClient(hq_process, "A", hq_process.tokens["A"])


def test_an_outlet_hanging_up_mid_push_is_one_warning_line_naming_it(
        hq_process: HQProcess, outlet_a: HQClient) -> None:
    offset = hq_process.log.stat().st_size
    host, port = "127.0.0.1", hq_process.port
    with socket.create_connection((host, port), timeout=5) as line:  # a bad line drops the call
        line.sendall(f"POST /v1/sync/push HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {outlet_a.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                     '{"protocol": 1, "outlet_id": "A", "events": ['.encode())
        time.sleep(0.3)
    until(lambda: "push" in log_since(hq_process, offset), 10, what="HQ notes the hang-up")
    time.sleep(0.5)                                # anything else it would log comes now
    logged = [row for row in log_since(hq_process, offset).splitlines() if row.strip()]
    assert len(logged) == 1, "\n".join(logged)
    assert "WARNING" in logged[0] and "outlet A" in logged[0], logged[0]
    assert outlet_a.hello()["last_seq"] >= 0       # and HQ serves on


def test_a_wrong_method_keeps_the_allow_header(hq_process: HQProcess, outlet_a: HQClient) -> None:
    answer = requests.get(hq_process.url + "/v1/sync/push", timeout=10,
                          headers={"Authorization": f"Bearer {outlet_a.token}"})
    assert answer.status_code == 405, answer.text
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers.get("Allow") == "POST", dict(answer.headers)
