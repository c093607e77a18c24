"""The back-office base (web/office.py) on its own, in process: a small app built on it the
way HQ's office and the manager's pages are, signed sessions with no HQ behind them, the
checked form, the login's `next`, money typed into a form, templates found app-first."""

# no `from __future__ import annotations`: FastAPI reads the annotations of the routes made
# inside small_app() (Staff, Posted) and needs real objects.
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from schema.errors import Conflict, InvalidRequest
from schema.money import parse_money
from web import office

KEY = b"k" * 32


class Accounts:
    """Session generations by username, as HQ's staff table keeps them."""

    def __init__(self) -> None:
        self.generations = {"alice": 0}

    def __call__(self, username: str) -> int | None:
        return self.generations.get(username)


def small_app(tmp_path: Path, sessions: office.Sessions) -> FastAPI:
    (tmp_path / "base.html").write_text(
        '{% extends "_layout.html" %}{% block nav %}<a href="{{ base }}/">Home</a>{% endblock %}')
    (tmp_path / "home.html").write_text(
        '{% extends "base.html" %}{% block main %}<p id="csrf">{{ csrf }}</p>{% endblock %}')
    app = FastAPI()
    pages = office.Pages(office.environment(tmp_path, site="Small"), lambda request: {
        "csrf": sessions.csrf(request.state.session) if hasattr(request.state, "session")
        else ""})
    office.install(app, pages)
    Staff = Annotated[dict[str, Any], Depends(sessions.signed_in)]
    Posted = Annotated[dict[str, Any], Depends(office.checked_form(sessions))]

    @app.get("/")
    def home(request: Request, _: Staff) -> HTMLResponse:
        return pages.page(request, "home.html", title="Home")

    @app.post("/act")
    def act(request: Request, session: Posted) -> HTMLResponse:
        raise Conflict(f"{session['u']} acted twice")

    return app


@pytest.fixture
def accounts() -> Accounts:
    return Accounts()


@pytest.fixture
def sessions(accounts: Accounts) -> office.Sessions:
    return office.Sessions(KEY, accounts, cookie="small", ttl_s=60)


def test_a_session_opens_pages_until_its_generation_moves_or_it_expires(
        sessions: office.Sessions, accounts: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    cookie = sessions.issue("alice", 0)
    assert sessions.read(cookie) is not None and sessions.read(cookie)["u"] == "alice"  # type: ignore[index]
    other = office.Sessions(b"o" * 32, accounts, cookie="small")
    assert other.read(cookie) is None  # another key: another back office
    assert sessions.read(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert sessions.read(sessions.issue("bob", 0)) is None  # no such account
    now = office.time.time()
    monkeypatch.setattr(office.time, "time", lambda: now + 61)
    assert sessions.read(cookie) is None  # ttl_s has passed
    monkeypatch.undo()
    accounts.generations["alice"] = 1  # logged out everywhere
    assert sessions.read(cookie) is None


def test_pages_need_a_session_and_forms_their_token_from_the_same_origin(
        tmp_path: Path, sessions: office.Sessions) -> None:
    client = TestClient(small_app(tmp_path, sessions), base_url="http://127.0.0.1")
    away = client.get("/?x=1", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"] == "/login?next=/%3Fx%3D1"
    client.cookies.set("small", sessions.issue("alice", 0))
    home = client.get("/")
    assert home.status_code == 200 and home.headers["x-frame-options"] == "DENY"
    assert '<link rel="stylesheet" href="/static/office.css">' in home.text
    assert "<title>Home · Small</title>" in home.text
    token = home.text.split('<p id="csrf">', 1)[1].split("<", 1)[0]
    assert client.post("/act", data={}).status_code == 403
    assert client.post("/act", data={"csrf": "x" * 64}).status_code == 403
    assert client.post("/act", data={"csrf": token},
                       headers={"Origin": "http://evil.example"}).status_code == 403
    refused = client.post("/act", data={"csrf": token})  # through to the route's own refusal
    assert refused.status_code == 409
    assert 'data-code="conflict"' in refused.text and "alice acted twice" in refused.text
    assert client.get("/static/office.js").headers["content-type"].startswith("text/javascript")
    missing = client.get("/static/../office.py")
    assert missing.status_code == 404 and 'id="error"' in missing.text


def test_the_login_only_ever_goes_back_to_a_page_of_this_app() -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "", None):
        assert office.safe_next(target) == "/"
    assert office.safe_next("/invoices?status=unpaid") == "/invoices?status=unpaid"


@pytest.mark.parametrize("typed", ["50,00", "1.234,56", " 76.09 ", "0"])
def test_money_typed_in_a_form_is_read_by_the_one_parser(typed: str) -> None:
    assert office.money_input(typed, "Amount") == parse_money(typed, field="Amount")


def test_money_the_parser_would_guess_at_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest) as refused:
        office.money_input("1,234", "Amount")
    assert refused.value.message.startswith("Amount: '1,234' is ambiguous")


def test_an_apps_own_template_comes_before_the_shared_one(tmp_path: Path) -> None:
    (tmp_path / "error.html").write_text("mine: {{ message }}")
    env = office.environment(tmp_path)
    assert env.get_template("error.html").render(message="<b>") == "mine: &lt;b&gt;"
    assert env.get_template("_report.html")  # the shared one, from web/templates
    assert env.filters["money"](123456) == "1,234.56" and env.filters["money"](None) == ""
    assert env.filters["when"]("2026-12-07T14:03:05.123456Z") == "2026-12-07 14:03:05"
    assert env.filters["masked"]("2900010000015") == "****0015"


def test_a_picture_is_only_a_png_or_a_jpeg() -> None:
    assert office.picture_type(b"\x89PNG\r\n\x1a\n...") == "image/png"
    assert office.picture_type(b"\xff\xd8\xff\xe0...") == "image/jpeg"
    assert office.picture_type(b"GIF89a") is None
