"""Speaking to HQ's back office in this process, as a signed-in member of staff.

`signed_in(chain, username)`: a `TestClient` of HQ's app holding a session, got by posting
the login form as a browser does (the account must exist with `PASSWORD`); `csrf_of(client,
path)`: the CSRF token of the form on that page. For pages in a real browser, see the
Selenium fixtures of tests/web/conftest.py.
"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from hq.api import create_app
from hq.chain import Chain

PASSWORD = "a long enough password"  # what the tests give the accounts they make


def signed_in(chain: Chain, username: str, password: str = PASSWORD) -> TestClient:
    client = TestClient(create_app(chain), base_url="http://127.0.0.1")
    answer = client.post("/office/login", data={"username": username, "password": password},
                         follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)
