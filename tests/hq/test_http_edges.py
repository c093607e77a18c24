"""HQ's HTTP edges seen from outside: a push cut off by the line, a wrong method.

The real `loyalty hq serve` process of tests/hq/conftest.py, over raw sockets and requests.
"""

from __future__ import annotations

import socket
import time

import requests
from chainkit import HQProcess, until
from hqkit import HQClient


def log_since(hq: HQProcess, offset: int) -> str:
    with open(hq.log, "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_an_outlet_hanging_up_mid_push_is_one_warning_line_naming_it(
        hq: HQProcess, outlet_a: HQClient) -> None:
    offset = hq.log.stat().st_size
    host, port = "127.0.0.1", hq.port
    with socket.create_connection((host, port), timeout=5) as line:  # a bad line drops the call
        line.sendall(f"POST /v1/sync/push HTTP/1.1\r\nHost: {host}\r\n"
                     f"Authorization: Bearer {outlet_a.token}\r\n"
                     "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                     '{"protocol": 1, "outlet_id": "A", "events": ['.encode())
        time.sleep(0.3)
    until(lambda: "push" in log_since(hq, offset), 10, what="HQ notes the hang-up")
    time.sleep(0.5)                                # anything else it would log comes now
    logged = [row for row in log_since(hq, offset).splitlines() if row.strip()]
    assert len(logged) == 1, "\n".join(logged)
    assert "WARNING" in logged[0] and "outlet A" in logged[0], logged[0]
    assert outlet_a.hello()["last_seq"] >= 0       # and HQ serves on


def test_a_wrong_method_keeps_the_allow_header(hq: HQProcess, outlet_a: HQClient) -> None:
    answer = requests.get(hq.url + "/v1/sync/push", timeout=10,
                          headers={"Authorization": f"Bearer {outlet_a.token}"})
    assert answer.status_code == 405, answer.text
    assert answer.json()["error"]["code"] == "method_not_allowed"
    assert answer.headers.get("Allow") == "POST", dict(answer.headers)
