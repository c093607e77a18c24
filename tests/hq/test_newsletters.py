"""Newsletters (issue 13, item 3): one message from head office to a segment of consenting
customers, queued at HQ and sent by the mail worker to a real SMTP server in this process
(tests/hq/mailkit.py), read back and parsed. HQ answers in this process over a real file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hqkit import STORES
from mailkit import SmtpServer
from testkit.inprocess import cli

from agent.programme import default_documents
from hq import admin, credentials, ingest, mailqueue, newsletters, notices, settings
from hq.api import create_app
from hq.chain import Chain
from schema.events import (
    CustomerRegistered,
    Event,
    Profile,
    VisitRecorded,
    make_event,
    new_id,
)
from schema.sync import PushRequest

NOW = "2026-11-01T05:00:00.000000Z"  # HQ's clock: "the last 30 days" are October's
T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


@dataclass
class Member:
    name: str
    category: str = "A"
    outlet: str = "LJ"
    email: str | None = None
    consent: bool = True
    registered: str = "2026-01-10T09:00:00Z"
    visited: str | None = None
    customer_id: str = ""

    def __post_init__(self) -> None:
        self.customer_id = new_id()
        if self.email is None:
            self.email = f"{self.name.lower()}@example.com"


def members() -> dict[str, Member]:
    return {m.name: m for m in (
        Member("Active", visited="2026-10-25T10:00:00Z"),
        Member("Dormant"),  # registered in January, nothing since
        Member("Newcomer", registered="2026-10-20T10:00:00Z"),  # registering is activity
        Member("Maribor", outlet="MB", visited="2026-10-25T10:00:00Z"),
        Member("Silver", category="B", visited="2026-10-25T10:00:00Z"),
        Member("Private", consent=False, visited="2026-10-25T10:00:00Z"),
        Member("Nomail", email="not an address", visited="2026-10-25T10:00:00Z"),
        Member("Banned", visited="2026-10-25T10:00:00Z"),
    )}


def make_chain(path: Path | str, people: dict[str, Member]) -> Chain:
    chain = Chain(path, seed=default_documents())
    chain.clock = lambda: NOW
    with chain.db.write() as conn:
        for outlet in ("LJ", "MB"):
            credentials.add_outlet(conn, outlet)
        conn.execute("UPDATE outlets SET created_at = '2020-01-01T00:00:00.000000Z'")
    for outlet in ("LJ", "MB"):
        events: list[Event] = []
        for n, m in enumerate(p for p in people.values() if p.outlet == outlet):
            profile = Profile(kind="person", given_name=m.name, surname="Member",
                              category=m.category, email=m.email, email_consent=m.consent)
            events.append(make_event(outlet, len(events) + 1, CustomerRegistered(
                customer_id=m.customer_id, card_number=f"29{outlet == 'MB':d}0001{n:07d}",
                profile=profile), m.registered))
            if m.visited:
                events.append(make_event(outlet, len(events) + 1, VisitRecorded(
                    customer_id=m.customer_id, via="card"), m.visited))
        ingest.push(chain, outlet, PushRequest(outlet_id=outlet, events=events))
    admin.set_status(chain, people["Banned"].customer_id, "banned", "fraud", by=None)
    return chain


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=STORES)
def club(request: pytest.FixtureRequest, tmp_path: Path, smtp: SmtpServer
         ) -> Iterator[tuple[Chain, dict[str, Member]]]:
    """The club on each store (hqkit.STORES)."""
    people = members()
    chain = make_chain(request.getfixturevalue("hq_pg") if request.param == "postgresql"
                       else tmp_path / "hq.db", people)
    settings.change(chain, smtp.settings())
    yield chain, people
    chain.close()


def recipients(chain: Chain, newsletter_id: str) -> set[str]:
    return {r[0] for r in chain.db.all("SELECT customer_id FROM notices WHERE kind = "
                                       "'newsletter' AND about = ?", (newsletter_id,))}


def ids(people: dict[str, Member], *names: str) -> set[str]:
    return {people[n].customer_id for n in names}


def test_a_segment_is_the_consenting_customers_of_its_category_outlet_and_activity(
        club: tuple[Chain, dict[str, Member]]) -> None:
    chain, people = club

    def sent(**segment: Any) -> set[str]:
        return recipients(chain, newsletters.send(chain, "News", "Hello", **segment)
                          ["newsletter_id"])

    assert sent() == ids(people, "Active", "Dormant", "Newcomer", "Maribor", "Silver")
    assert sent(category="A") == ids(people, "Active", "Dormant", "Newcomer", "Maribor")
    assert sent(outlet="MB") == ids(people, "Maribor")
    assert sent(active_days=30) == ids(people, "Active", "Newcomer", "Maribor", "Silver")
    assert sent(category="A", outlet="LJ", active_days=30) == ids(people, "Active",
                                                                   "Newcomer")
    assert sent(active_days=5) == set()


def test_a_newsletter_is_mailed_once_to_each_recipient_with_a_working_unsubscribe_link(
        club: tuple[Chain, dict[str, Member]], smtp: SmtpServer) -> None:
    chain, people = club
    http = TestClient(create_app(chain))
    with chain.db.write() as conn:
        token = credentials.add_admin(conn)
    auth = {"Authorization": f"Bearer {token}"}
    body = {"subject": "Autumn catalogue", "body": "Dear member,\n\nour autumn catalogue ...\n",
            "category": "A", "outlet": "LJ", "active_days": 30, "newsletter_id": "AUTUMN-26"}
    made = http.post("/v1/admin/newsletters", json=body, headers=auth)
    assert made.status_code == 201, made.text
    assert made.json() == {"newsletter_id": "AUTUMN-26", "subject": "Autumn catalogue",
                           "category": "A", "outlet": "LJ", "active_days": 30,
                           "created_at": NOW, "recipients": 2, "decided": {"pending": 2},
                           "mail": {}}
    assert smtp.tries == []  # the request decided; nothing was rendered or sent

    assert newsletters.queue_due(chain) == {"mailed": 2}
    run = mailqueue.send_due(chain, T0)
    assert run.sent == 2
    got = {r.recipients[0]: r for r in smtp.received}
    assert set(got) == {"active@example.com", "newcomer@example.com"}
    letter = got["active@example.com"]
    assert letter.message["Subject"] == "Autumn catalogue"
    text = letter.text().replace("\r\n", "\n")
    assert text.startswith("Dear member,\n\nour autumn catalogue ...\n")
    link = str(letter.message["List-Unsubscribe"]).strip("<>")
    assert link in text and link.startswith("https://klub.zvestoba.example/unsubscribe/")
    with chain.db.read() as conn:
        assert notices.customer_of(conn, link.rsplit("/", 1)[1]) == people["Active"].customer_id

    # the same newsletter again (a retried request): nobody is added, nothing sent twice
    again = http.post("/v1/admin/newsletters", json=body, headers=auth)
    assert again.status_code == 201 and again.json()["decided"] == {"mailed": 2}
    assert again.json()["mail"] == {"sent": 2}
    assert newsletters.queue_due(chain) == {}
    assert mailqueue.send_due(chain, T0).sent == 0 and len(smtp.received) == 2
    assert http.get("/v1/admin/newsletters/AUTUMN-26", headers=auth).json() == again.json()
    # another text under its id is a conflict, and changes nothing
    other = http.post("/v1/admin/newsletters", json={**body, "body": "Another text"},
                      headers=auth)
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"
    assert http.get("/v1/admin/newsletters/NOPE", headers=auth).status_code == 404


def test_a_customer_who_withdraws_consent_before_the_mail_run_is_never_mailed(
        club: tuple[Chain, dict[str, Member]], smtp: SmtpServer) -> None:
    chain, people = club
    sent = newsletters.send(chain, "News", "Hello", outlet="MB")
    assert sent["recipients"] == 1
    assert notices.withdraw_consent(chain, people["Maribor"].customer_id)
    assert newsletters.queue_due(chain) == {"no_consent": 1}
    assert mailqueue.send_due(chain, T0).sent == 0 and smtp.tries == []
    assert newsletters.summary(chain, sent["newsletter_id"])["decided"] == {"no_consent": 1}


def test_a_newsletter_needs_mail_settings_and_a_known_segment_and_else_records_nothing(
        tmp_path: Path) -> None:
    people = members()
    chain = make_chain(tmp_path / "hq.db", people)
    try:
        with pytest.raises(Exception) as refused:
            newsletters.send(chain, "News", "Hello")
        assert getattr(refused.value, "code", "") == "mail_not_configured"
        settings.change(chain, {"mail.from": "Club <club@example.com>",
                                "mail.public_url": "https://club.example.com"})
        for segment, words in (({"category": "Z"}, "unknown category"),
                               ({"outlet": "NOWHERE"}, "unknown outlet"),
                               ({"active_days": 0}, "active_days")):
            with pytest.raises(Exception) as wrong:
                newsletters.send(chain, "News", "Hello", **segment)
            assert getattr(wrong.value, "code", "") == "invalid_request"
            assert words in str(wrong.value)
        with pytest.raises(Exception) as two_lines:
            newsletters.send(chain, "News\r\nBcc: everybody@example.com", "Hello")
        assert "subject" in str(two_lines.value)
        assert chain.db.scalar("SELECT COUNT(*) FROM newsletters") == 0
        assert chain.db.scalar("SELECT COUNT(*) FROM notices") == 0
    finally:
        chain.close()


def test_loyalty_hq_newsletter_queues_the_file_to_the_segment_and_prints_its_id(
        tmp_path: Path) -> None:
    people = members()
    chain = make_chain(tmp_path / "hq.db", people)
    settings.change(chain, {"mail.from": "Club <club@example.com>",
                            "mail.public_url": "https://club.example.com"})
    chain.close()
    text = tmp_path / "letter.txt"
    text.write_text("Pozdravljeni,\n\nnovi katalog je tu.\n", encoding="utf-8")
    db = str(tmp_path / "hq.db")
    done = cli("hq", "newsletter", "--db", db, "--subject", "Katalog", "--body-file", str(text),
               "--category", "B")
    assert done.returncode == 0, done.stderr
    newsletter_id = done.stdout.strip().splitlines()[-1]
    assert "1 consenting customer(s)" in done.stdout
    chain = Chain(tmp_path / "hq.db")
    try:
        assert recipients(chain, newsletter_id) == ids(people, "Silver")
        assert chain.db.scalar("SELECT body FROM newsletters") == text.read_text()
    finally:
        chain.close()
    missing = cli("hq", "newsletter", "--db", db, "--subject", "X", "--body-file",
                  str(tmp_path / "nope.txt"))
    assert missing.returncode == 1 and missing.stderr.startswith("error [not_found]")
    unset = tmp_path / "unset.db"
    Chain(unset, seed=default_documents()).close()
    refused = cli("hq", "newsletter", "--db", str(unset), "--subject", "X", "--body-file",
                  str(text))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error [mail_not_configured]: mail is not set up")
