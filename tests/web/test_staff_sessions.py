"""Staff accounts and sessions of HQ's back office (hq/office/ on web/office.py), without a
browser: password hashing, tampered or expired cookies, the login throttle, open redirects."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hq import credentials, staff
from hq.api import create_app
from hq.chain import Chain
from schema import passwords
from schema.errors import Conflict, InvalidRequest
from web import office

PASSWORD = "a long enough password"


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    the_chain = Chain(request.getfixturevalue("hq_pg") if request.param == "postgresql"
                      else tmp_path / "hq.db")
    with the_chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        staff.add(conn, "alice", PASSWORD)
    yield the_chain
    the_chain.close()


@pytest.fixture
def client(chain: Chain) -> TestClient:
    return TestClient(create_app(chain), base_url="http://127.0.0.1")


def log_in(client: TestClient, password: str = PASSWORD, **form: str) -> object:
    return client.post("/office/login", data={"username": "alice", "password": password, **form},
                       follow_redirects=False)


def test_passwords_are_kept_as_salted_scrypt_hashes_only(chain: Chain) -> None:
    stored = chain.db.scalar("SELECT password_hash FROM staff WHERE username = 'alice'")
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert passwords.verify_password(PASSWORD, stored)
    assert not passwords.verify_password(PASSWORD + "x", stored)
    assert passwords.hash_password(PASSWORD) != passwords.hash_password(PASSWORD)  # salted
    assert staff.authenticate(chain.db, "alice", PASSWORD) == 0
    assert staff.authenticate(chain.db, "nobody", PASSWORD) is None
    with chain.db.write() as conn, pytest.raises(InvalidRequest):
        staff.add(conn, "bob", "short")
    with chain.db.write() as conn, pytest.raises(InvalidRequest):
        staff.add(conn, "-rf", PASSWORD)
    with chain.db.write() as conn, pytest.raises(Conflict):
        staff.add(conn, "alice", PASSWORD)


def test_a_tampered_or_foreign_cookie_opens_nothing(chain: Chain, client: TestClient) -> None:
    answer = log_in(client)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    good = client.cookies["loyalty_office"]
    assert client.get("/office/outlets").status_code == 200
    encoded, signature = good.rsplit(".", 1)
    data = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    forged = base64.urlsafe_b64encode(json.dumps({**data, "u": "mallory"}).encode()).decode()
    for cookie in (f"{forged.rstrip('=')}.{signature}", good[:-1] + ("0" if good[-1] != "0"
                                                                     else "1"), "garbage"):
        client.cookies.set("loyalty_office", cookie, path="/office")
        assert client.get("/office/outlets", follow_redirects=False).status_code == 303
    # a cookie signed with another HQ's secret is worthless here
    other = office.Sessions(b"\x00" * 32, lambda username: 0, cookie="loyalty_office")
    client.cookies.set("loyalty_office", other.issue("alice", 0), path="/office")
    assert client.get("/office/outlets", follow_redirects=False).status_code == 303


def test_an_expired_session_sends_back_to_login(chain: Chain, client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log_in(client)
    assert client.get("/office/").status_code == 200
    monkeypatch.setattr(office.time, "time", lambda: 4_000_000_000.0)
    assert client.get("/office/", follow_redirects=False).status_code == 303


def test_login_is_throttled_after_repeated_failures(client: TestClient) -> None:
    for _ in range(passwords.LOGIN_FAILURES):
        assert log_in(client, "wrong password!").status_code == 401  # type: ignore[attr-defined]
    assert log_in(client).status_code == 429  # type: ignore[attr-defined]
    assert "loyalty_office" not in client.cookies


def test_login_never_redirects_to_another_site(client: TestClient) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        answer = log_in(client, next=target)
        assert answer.headers["location"] == "/office/"  # type: ignore[attr-defined]
    assert log_in(client, next="/office/invoices?status=unpaid").headers[  # type: ignore[attr-defined]
        "location"] == "/office/invoices?status=unpaid"


def test_pages_carry_strict_security_headers(client: TestClient) -> None:
    page = client.get("/office/login")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


def test_the_session_key_is_made_once_per_database_and_kept(chain: Chain, tmp_path: Path) -> None:
    key = staff.session_key(chain)
    assert len(key) == 32 and staff.session_key(chain) == key
    # HQ restarted (on its file, or its PostgreSQL URL): its sessions still open
    again = Chain(getattr(chain.db, "url", None) or chain.db.path)
    try:
        assert staff.session_key(again) == key
    finally:
        again.close()
    other = Chain(tmp_path / "other.db")  # another HQ: a copied cookie opens nothing there
    try:
        assert staff.session_key(other) != key
    finally:
        other.close()


def test_logging_out_ends_every_session_of_the_account(chain: Chain, client: TestClient) -> None:
    first, second = TestClient(client.app, base_url="http://127.0.0.1"), client
    for browser in (first, second):
        assert log_in(browser).status_code == 303  # type: ignore[attr-defined]
        assert browser.get("/office/", follow_redirects=False).status_code == 200
    staff.log_out(chain.db, "alice")
    for browser in (first, second):
        assert browser.get("/office/", follow_redirects=False).status_code == 303
    assert staff.session_gen(chain.db, "alice") == 1
