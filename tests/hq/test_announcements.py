"""Head office's side of greetings (issue 13, item 1; docs/greetings.md): announcements
and greeting settings as master data through the admin API and `loyalty hq announce`,
their withdrawal once ended everywhere, and the first visit HQ publishes so each outlet
welcomes a customer once. HQ answers in this process (a real SQLite file); the outlets'
side, replicated and offline, is tests/agent/test_greetings.py and
tests/e2e/test_greetings_offline.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hqkit import STORES, AnyHQ, HQClient, registered
from testkit.inprocess import cli

from agent.programme import default_documents
from hq import announcements, credentials, ingest
from hq.chain import Chain
from schema.events import VisitRecorded, make_event
from schema.sync import PushRequest


def pulled(hq: AnyHQ, outlet: HQClient, kind: str) -> dict[str, Any]:
    """What a pull from the start brings of `kind`, by key (None: withdrawn)."""
    page = outlet.pull(0, limit=1000).json()
    return {c["key"]: c["data"] for c in page["changes"] if c["kind"] == kind}


def master_rows(hq: AnyHQ, kind: str) -> dict[str, Any]:
    conn = hq.db_conn()
    try:
        return {r["key"]: json.loads(r["data"]) for r in conn.execute(
            "SELECT key, data FROM master WHERE kind = ?", (kind,))}
    finally:
        conn.close()


def test_an_announcement_put_through_the_admin_api_is_published_to_the_outlets(
        hq: AnyHQ, outlet_a: HQClient) -> None:
    ana = registered("Ana")
    outlet_a.pushed(outlet_a.events(ana))
    doc = {"announcement_id": "API-1", "texts": {"SL": "Dober dan", "en": "Good day"},
           "customer_id": ana.customer_id, "valid_from": "2026-06-01",
           "valid_to": "2026-06-30", "print_on_receipt": True}
    assert hq.admin("PUT", "/v1/admin/master/announcement", json=doc) == {
        "kind": "announcement", "key": "API-1"}
    stored = pulled(hq, outlet_a, "announcement")["API-1"]
    assert stored == {**doc, "texts": {"sl": "Dober dan", "en": "Good day"}, "category": None}
    settings = {"scope": "chain", "language": "sl", "birthday": "week"}
    hq.admin("PUT", "/v1/admin/master/greetings", json=settings)
    assert pulled(hq, outlet_a, "greetings")["chain"] == {
        **settings, "welcome": True, "gift_nudge": True}


@pytest.mark.parametrize(("change", "status", "code", "words"), [
    ({"valid_to": "2026-05-31"}, 422, "invalid_request", "valid_to is before valid_from"),
    ({"category": "A"}, 422, "invalid_request", "not both"),
    ({"customer_id": None, "category": "NOPE"}, 422, "invalid_request", "unknown category"),
    ({"customer_id": "no-such-customer"}, 404, "customer_unknown", "no such customer"),
    ({"texts": {}}, 422, "invalid_request", "texts"),
    ({"texts": {"klingon": "nuqneH"}}, 422, "invalid_request", "language tag"),
    ({"texts": {"en": "x" * 501}}, 422, "invalid_request", "500"),
    ({"valid_from": "2026-02-30"}, 422, "invalid_request", "valid_from"),
    ({"print_on_receipt": "yes"}, 422, "invalid_request", "print_on_receipt"),
])
def test_a_wrong_announcement_is_refused_with_its_reason_and_stores_nothing(
        hq: AnyHQ, outlet_a: HQClient, change: dict[str, Any], status: int, code: str,
        words: str) -> None:
    ana = registered("Ana")
    outlet_a.pushed(outlet_a.events(ana))
    before = master_rows(hq, "announcement")
    doc = {"announcement_id": "WRONG-1", "texts": {"en": "Hello"},
           "customer_id": ana.customer_id, "valid_from": "2026-06-01",
           "valid_to": "2026-06-30", **change}
    refused = hq.admin("PUT", "/v1/admin/master/announcement", None, json=doc)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["code"] == code and words in error["message"], error
    assert master_rows(hq, "announcement") == before


# --- loyalty hq announce ---------------------------------------------------------------------

@pytest.fixture(params=STORES)
def chain_file(request: pytest.FixtureRequest, tmp_path: Path
               ) -> Iterator[tuple[Path | str, str, str]]:
    """An HQ with one customer registered at outlet LJ: (its file or PostgreSQL URL,
    customer id, card)."""
    path: Path | str = (request.getfixturevalue("hq_pg") if request.param == "postgresql"
                        else tmp_path / "hq.db")
    chain = Chain(path, seed=default_documents())
    with chain.db.write() as conn:
        credentials.add_outlet(conn, "LJ")
    who = registered("Mojca")
    ingest.push(chain, "LJ", PushRequest(outlet_id="LJ", events=[make_event("LJ", 1, who)]))
    chain.close()
    yield path, who.customer_id, who.card_number


def stored(path: Path | str) -> list[dict[str, Any]]:
    chain = Chain(path)
    try:
        return announcements.listing(chain)
    finally:
        chain.close()


def test_loyalty_hq_announce_keeps_the_text_in_the_chains_language_for_a_customer_by_card(
        chain_file: tuple[Path | str, str, str]) -> None:
    path, customer_id, card = chain_file
    db = str(path)
    done = cli("hq", "announce", "--db", db, "--text", "Good morning", "--from", "2026-06-01",
               "--to", "2026-06-30")
    assert done.returncode == 0, done.stderr
    first = done.stdout.strip().splitlines()[-1]
    [doc] = stored(path)
    assert doc == {"announcement_id": first, "texts": {"en": "Good morning"},
                   "customer_id": None, "category": None, "valid_from": "2026-06-01",
                   "valid_to": "2026-06-30", "print_on_receipt": False}

    chain = Chain(path)
    try:  # the chain speaks Slovene: `--text` is in Slovene
        from hq import admin
        admin.put_master(chain, "greetings", {"scope": "chain", "language": "sl"}, by=None)
    finally:
        chain.close()
    done = cli("hq", "announce", "--db", db, "--text", "Vaše naročilo je prispelo",
               "--text-in", "de", "Ihre Bestellung ist da", "--customer", card,
               "--from", "2026-06-10", "--to", "2026-06-12", "--receipt", "--id", "PARCEL-1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "PARCEL-1"
    parcel = next(d for d in stored(path) if d["announcement_id"] == "PARCEL-1")
    assert parcel["texts"] == {"sl": "Vaše naročilo je prispelo",
                               "de": "Ihre Bestellung ist da"}
    assert parcel["customer_id"] == customer_id and parcel["print_on_receipt"] is True
    assert "customer " + customer_id in done.stdout and "printed on receipts" in done.stdout

    listed = cli("hq", "announcements", "--db", db)
    assert listed.returncode == 0 and "PARCEL-1" in listed.stdout and first in listed.stdout
    withdrawn = cli("hq", "announcements", "--db", db, "--withdraw", first)
    assert withdrawn.returncode == 0 and f"withdrawn: {first}" in withdrawn.stdout
    assert [d["announcement_id"] for d in stored(path)] == ["PARCEL-1"]


JUNE = ["--from", "2026-06-01", "--to", "2026-06-30"]


@pytest.mark.parametrize(("args", "words"), [
    ([*JUNE, "--customer", "C", "--category", "A"], "not both"),
    ([*JUNE, "--category", "NOPE"], "unknown category"),
    ([*JUNE, "--customer", "2900000000000"], "no customer"),
    (["--from", "2026-06-01", "--to", "2026-05-01"], "valid_to is before valid_from"),
    (["--from", "1.6.2026", "--to", "2026-06-30"], "--from: '1.6.2026' is not a date"),
    ([*JUNE, "--text-in", "xx_YY", "Hi"], "language tag"),
    ([*JUNE, "--id", "no spaces please"], "announcement_id"),
])
def test_loyalty_hq_announce_refuses_what_is_wrong_in_one_line_and_stores_nothing(
        chain_file: tuple[Path | str, str, str], args: list[str], words: str) -> None:
    path, _, _ = chain_file
    done = cli("hq", "announce", "--db", str(path), "--text", "Hello", *args)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("error [") and words in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert stored(path) == []


def test_ended_announcements_are_withdrawn_once_ended_in_every_time_zone(
        chain_file: tuple[Path | str, str, str]) -> None:
    path, _, _ = chain_file
    chain = Chain(path)
    try:
        for name, last in (("ENDED", "2026-06-08"), ("LAST-DAY-SOMEWHERE", "2026-06-09"),
                           ("RUNNING", "2026-06-30")):
            announcements.announce(chain, {"en": name}, date(2026, 6, 1), date.fromisoformat(last),
                                   announcement_id=name, by=None)
        head = chain.db.scalar("SELECT MAX(seq) FROM changes")
        # the 10th in UTC: the 9th still runs at UTC-12, the 8th has ended everywhere
        assert announcements.withdraw_ended(chain, date(2026, 6, 10)) == ["ENDED"]
        assert [d["announcement_id"] for d in announcements.listing(chain)] == [
            "LAST-DAY-SOMEWHERE", "RUNNING"]
        withdrawn = chain.db.one("SELECT seq FROM changes WHERE kind = 'announcement' AND "
                                 "key = 'ENDED'")
        assert withdrawn is not None and withdrawn["seq"] > head  # outlets drop it too
        assert announcements.withdraw_ended(chain, date(2026, 6, 10)) == []
    finally:
        chain.close()


# --- the first visit ---------------------------------------------------------------------------

def test_hq_publishes_a_customers_first_visit_once_and_later_visits_change_nothing(
        hq: AnyHQ, outlet_a: HQClient, outlet_b: HQClient) -> None:
    eva = registered("Eva")
    outlet_a.pushed(outlet_a.events(eva))

    def doc_and_seq() -> tuple[dict[str, Any], int]:
        page = outlet_b.pull(0, limit=1000).json()
        [change] = [c for c in page["changes"] if c["key"] == eva.customer_id]
        return change["data"], change["seq"]

    doc, registered_at = doc_and_seq()
    assert doc["first_visit_at"] is None
    visit = VisitRecorded(customer_id=eva.customer_id, till_id="T1", via="card")
    [event] = outlet_a.events(visit)
    outlet_a.pushed([event])
    doc, first_seq = doc_and_seq()
    assert first_seq > registered_at and doc["first_visit_at"] == event.at
    outlet_b.pushed(outlet_b.events(visit))
    assert doc_and_seq() == (doc, first_seq)  # a later visit is not published again
