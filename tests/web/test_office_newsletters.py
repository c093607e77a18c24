"""The newsletter page of HQ's back office (issue 13, item 3; hq/office/newsletters.py), in
process over a real HQ file: an operator composes a plain-text message, chooses a segment
and sees how many consenting customers it will reach before sending; sending records it
for HQ's mail run (nothing is mailed in the request), audited with the operator's name;
the same form posted twice (a double click) records one newsletter; past newsletters show
their queued / sent / failed counts; without mail settings the page says
`mail_not_configured` and records nothing."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hq"))

from invoicekit import Buyer, make_hq
from testkit.office import PASSWORD, signed_in

from hq import newsletters, settings, staff
from hq.chain import Chain
from schema.roles import Role

MAIL = {"mail.from": "Klub Zvestoba <klub@zvestoba.example>",
        "mail.public_url": "https://klub.zvestoba.example"}


# HQ's stores (as tests/hq/hqkit.py STORES): PostgreSQL's cluster is a process (slow tier)
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def club(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Chain]:
    buyers = [Buyer("Ana", "Novak", email="ana@example.com", consent=True),
              Buyer("Bor", "Kranjc", email="bor@example.com", consent=True),
              Buyer("Cene", "Horvat", email="cene@example.com", consent=True),
              Buyer("Dana", "Zupan", email="dana@example.com", consent=False),
              Buyer("Eva", "Kos", email=None, consent=True)]
    url = request.getfixturevalue("pg_database") if request.param == "postgresql" else None
    chain, _ = make_hq(tmp_path / "hq.db", buyers, url)
    with chain.db.write() as conn:
        staff.add(conn, "olga", PASSWORD, role=Role.operator)
        staff.add(conn, "vera", PASSWORD, role=Role.viewer)
    settings.change(chain, MAIL)
    yield chain
    chain.close()



def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no hidden {name}"
    return found.group(1)


def compose(client: TestClient, **typed: str) -> tuple[int, str]:
    """The compose form filled in and previewed: the answer's status and page."""
    page = client.get("/office/newsletters").text
    form = {"csrf": hidden(page, "csrf"), "newsletter_id": hidden(page, "newsletter_id"),
            "subject": "Autumn catalogue", "body": "Dear customer,\r\nthe catalogue is out.\r\n",
            "category": "", "outlet": "", "active_days": "", **typed}
    answer = client.post("/office/newsletters/preview", data=form)
    return answer.status_code, answer.text


def send_form(page: str) -> dict[str, Any]:
    """The hidden fields of the preview's send form, as the browser posts them."""
    form = page[page.index('id="send-form"'):]
    form = form[:form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', form))


def letters(chain: Chain) -> list[dict[str, Any]]:
    return [dict(r) for r in chain.db.all("SELECT * FROM newsletters")]


def test_the_preview_says_how_many_consenting_customers_it_will_reach_and_records_nothing(
        club: Chain) -> None:
    client = signed_in(club, "olga")
    status, page = compose(client)
    assert status == 200, page
    assert re.search(r'id="reach"[^>]*>\s*Will reach <strong>3</strong> customers', page), page
    assert "Autumn catalogue" in page and 'id="send"' in page
    status, page = compose(client, category="B")
    assert status == 200 and re.search(r'id="reach"[^>]*>\s*Will reach <strong>0</strong>', page)
    status, page = compose(client, outlet="LJ-CENTER", active_days="30000")
    assert status == 422 and "active_days: 1 to 3660 days" in page
    assert "invalid_request" in page
    assert letters(club) == [] and club.db.scalar(
        "SELECT COUNT(*) FROM audit WHERE action LIKE 'newsletter%'") == 0


def test_sending_twice_by_double_click_records_one_newsletter_audited_and_queued_for_the_run(
        club: Chain) -> None:
    client = signed_in(club, "olga")
    _, page = compose(client, category="A")
    form = send_form(page)
    first = client.post("/office/newsletters", data=form, follow_redirects=False)
    second = client.post("/office/newsletters", data=form, follow_redirects=False)
    assert first.status_code == second.status_code == 303, first.text
    assert first.headers["location"] == second.headers["location"]
    [letter] = letters(club)
    assert (letter["subject"], letter["recipients"]) == ("Autumn catalogue", 3)
    assert letter["body"] == "Dear customer,\nthe catalogue is out.\n"
    assert club.db.scalar("SELECT COUNT(*) FROM notices WHERE kind = 'newsletter'") == 3
    assert club.db.scalar("SELECT COUNT(*) FROM mail_outbox") == 0  # the mail run sends
    [row] = club.db.all("SELECT staff, action, subject, after FROM audit WHERE action LIKE "
                        "'newsletter%'")
    assert (row["staff"], row["action"], row["subject"]) == (
        "olga", "newsletter.send", letter["newsletter_id"])
    assert '"recipients": 3' in row["after"]

    newsletters.queue_due(club)  # HQ's mail run renders them into the queue
    listed = client.get(first.headers["location"].removeprefix("http://127.0.0.1")).text
    assert 'id="done"' in listed
    past = listed[listed.index('id="past"'):]
    assert "Autumn catalogue" in past
    counts = re.search(r'id="counts-[^"]+">(.*?)</tr>', past, re.DOTALL)
    assert counts and re.findall(r'data-value="(\d+)"', counts.group(1)) == [
        "3", "3", "0", "0", "0"], counts.group(1)  # recipients, queued, sent, failed, skipped


def test_without_mail_settings_the_page_says_so_and_records_nothing(club: Chain) -> None:
    settings.change(club, dict.fromkeys(MAIL))
    client = signed_in(club, "olga")
    _, page = compose(client)
    answer = client.post("/office/newsletters", data=send_form(page))
    assert answer.status_code == 409 or answer.status_code == 503, answer.text
    assert "mail_not_configured" in answer.text and "loyalty hq settings" in answer.text
    assert letters(club) == []


def test_a_viewer_may_not_open_the_newsletter_page(club: Chain) -> None:
    client = signed_in(club, "vera")
    assert client.get("/office/newsletters").status_code == 403


def test_the_same_form_with_another_text_is_a_conflict_and_the_page_offers_a_new_newsletter(
        club: Chain) -> None:
    client = signed_in(club, "olga")
    _, page = compose(client)
    form = send_form(page)
    assert client.post("/office/newsletters", data=form, follow_redirects=False
                       ).status_code == 303
    changed = client.post("/office/newsletters", data={**form, "subject": "Another text"})
    assert changed.status_code == 409 and "[conflict]" in changed.text
    assert hidden(changed.text, "newsletter_id") != form["newsletter_id"]
    assert "Another text" in changed.text  # what was typed stays, to be previewed again
    assert len(letters(club)) == 1
