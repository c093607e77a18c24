"""Notices and invoices sent by e-mail (issue 13, items 3 and 4): queued at HQ, submitted by
the worker to a real SMTP server in this process (STARTTLS, AUTH), read back and parsed."""

from __future__ import annotations

import ast
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hqkit import STORES
from invoicekit import OUTLET, Buyer, make_hq, pdf_text, with_payee
from mailkit import PASSWORD, SmtpServer
from testkit.processes import cli

from hq import admin, ingest, invoices, mailqueue, notices, settings
from hq.api import create_app
from hq.chain import Chain
from schema.events import Payment, SaleLine, SaleRecorded, make_event, new_id
from schema.sync import PushRequest
from schema.timing import canonical

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def buyers() -> list[Buyer]:
    return [
        Buyer("Žiga", "Novak", email="ziga.novak@example.com", consent=True,
              address="Slovenska cesta 1; 1000 Ljubljana", sales=(10_045, 5_180)),
        Buyer("Ana", "Kovač", email="ana@example.com", consent=False,
              address="Prešernova 2; 2000 Maribor"),
        Buyer("Bor", "Zupan", email="", consent=True, address="Celovška 3; 1000 Ljubljana"),
    ]


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=STORES)
def hq(request: pytest.FixtureRequest, tmp_path: Path, smtp: SmtpServer
       ) -> Iterator[tuple[Chain, list[Buyer], dict[str, str]]]:
    """HQ with October invoiced, on each store (hqkit.STORES)."""
    people = buyers()
    url = request.getfixturevalue("hq_pg") if request.param == "postgresql" else None
    chain, numbers = make_hq(tmp_path / "hq.db", people, url)
    chain.clock = lambda: "2026-11-01T05:00:00.000000Z"  # HQ's clock: notices are made then
    with_payee(chain)
    settings.change(chain, smtp.settings())
    yield chain, people, numbers
    chain.close()


def outbox(chain: Chain) -> list[dict[str, object]]:
    return list(reversed(mailqueue.listing(chain)))


def test_an_issued_invoice_reaches_a_consenting_customer_over_starttls_with_its_pdf(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer, tmp_path: Path) -> None:
    chain, (ziga, _, _), numbers = hq
    number = numbers[ziga.customer_id]
    assert notices.queue_due(chain) == {"mailed": 1, "no_consent": 1, "no_address": 1}
    run = mailqueue.send_due(chain, T0)
    assert (run.sent, run.failed, run.retrying, run.waiting) == (1, 0, 0, 0)

    [got] = smtp.received
    assert got.tls and got.login == "club"
    assert got.sender == "klub@zvestoba.example" and got.recipients == ["ziga.novak@example.com"]
    mail = got.message
    assert str(mail["To"]) == "Žiga Novak <ziga.novak@example.com>"
    assert str(mail["From"]) == "Klub Zvestoba <klub@zvestoba.example>"
    assert str(mail["Subject"]) == f"Invoice {number}: EUR 152.25, due 2026-11-15"
    assert mail["Auto-Submitted"] == "auto-generated"
    [queued] = outbox(chain)
    assert got.message_id == queued["message_id"] and queued["status"] == "sent"
    assert got.message_id.endswith("@zvestoba.example>")
    link = str(mail["List-Unsubscribe"]).strip("<>")
    assert link.startswith("https://klub.zvestoba.example/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = got.text()
    assert "Payment reference: RF42 2026 0000 01" in text and link in text
    assert "IBAN SI56 1910 0000 0123 438" in text

    pdf = pdf_text(got.attachment(), tmp_path)
    assert f"Invoice {number}" in pdf and "EUR 152.25" in pdf and "Žiga Novak" in pdf
    stored = chain.db.one("SELECT message FROM mail_outbox")
    assert stored is not None and stored[0] is None  # the bytes go once sent


def test_one_notice_of_a_kind_per_invoice_however_often_anything_runs(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, (ziga, _, _), numbers = hq
    for _ in range(2):
        notices.queue_due(chain)
        mailqueue.send_due(chain, T0)
    for day in (16, 17, 17):
        invoices.refresh(chain, date(2026, 11, day))
        notices.queue_due(chain)
        mailqueue.send_due(chain, T0 + timedelta(days=day))
    second = Chain(chain.db.where)  # another process's view of the same database
    try:
        assert notices.queue_due(second) == {}
    finally:
        second.close()
    subjects = [str(r.message["Subject"]) for r in smtp.received]
    number = numbers[ziga.customer_id]
    assert subjects == [f"Invoice {number}: EUR 152.25, due 2026-11-15",
                        f"Reminder: invoice {number} is overdue"]
    assert "EUR 152.25 of it is still open" in smtp.received[1].text()
    kinds = chain.db.all("SELECT kind, about, outcome FROM notices WHERE customer_id = ?",
                         (ziga.customer_id,))
    assert sorted(tuple(r) for r in kinds) == [("invoice_issued", number, "mailed"),
                                               ("invoice_overdue", number, "mailed")]


def test_customers_without_consent_or_address_get_their_invoice_by_post(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer, tmp_path: Path) -> None:
    chain, (ziga, ana, bor), numbers = hq
    notices.queue_due(chain)
    mailqueue.send_due(chain, T0)
    assert [r.recipients for r in smtp.received] == [["ziga.novak@example.com"]]

    db = chain.db.where
    listed = cli("hq", "invoices-to-post", "--db", db, "--pdf-dir", str(tmp_path / "print"))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[-1] == "2 invoice(s) to post"
    assert any(numbers[ana.customer_id] in line and "Ana Kovač" in line
               and "no e-mail consent" in line and "Prešernova 2" in line for line in lines)
    assert any(numbers[bor.customer_id] in line and "no usable e-mail address" in line
               for line in lines)
    assert not any(numbers[ziga.customer_id] in line for line in lines)
    printed = sorted(p.name for p in (tmp_path / "print").iterdir())
    assert printed == sorted(f"invoice-{numbers[b.customer_id]}.pdf" for b in (ana, bor))

    posted = cli("hq", "invoices-to-post", "--db", db, "--posted", numbers[ana.customer_id])
    assert posted.returncode == 0, posted.stderr
    assert posted.stdout.splitlines()[-1] == "1 invoice(s) to post"
    unknown = cli("hq", "invoices-to-post", "--db", db, "--posted", "2026-999999")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error [not_found]: no invoice 2026-999999")


def test_a_temporary_refusal_is_tried_again_after_a_doubling_back_off_with_the_same_id(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, _, _ = hq
    answers = iter(["451 4.3.0 try again later", "421 4.7.0 too busy"])
    smtp.reply = lambda _: next(answers, "250 2.0.0 OK")
    notices.queue_due(chain)
    assert mailqueue.send_due(chain, T0).retrying == 1
    [row] = outbox(chain)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "queued", 1, "451 4.3.0 try again later")
    assert row["next_attempt_at"] == "2026-11-01T06:01:00.000000Z"
    assert mailqueue.send_due(chain, T0 + timedelta(seconds=59)).sent == 0  # not due yet
    assert mailqueue.send_due(chain, T0 + timedelta(seconds=60)).retrying == 1
    assert outbox(chain)[0]["next_attempt_at"] == "2026-11-01T06:03:00.000000Z"  # 2 minutes
    assert mailqueue.send_due(chain, T0 + timedelta(minutes=3)).sent == 1
    assert len(set(smtp.tries)) == 1 and len(smtp.tries) == 3  # one Message-ID, three tries
    assert [mailqueue.backoff_s(n) for n in (1, 2, 3, 9, 10, 30)] == [
        60, 120, 240, 15360, 21600, 21600]


def test_a_message_still_refused_after_the_last_try_is_failed(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, _, _ = hq
    smtp.reply = lambda _: "451 4.3.0 try again later"
    notices.queue_due(chain)
    moment = T0
    for _ in range(mailqueue.MAX_ATTEMPTS):
        mailqueue.send_due(chain, moment)
        moment += timedelta(seconds=mailqueue.BACKOFF_CAP_S)
    [row] = outbox(chain)
    assert row["status"] == "failed" and row["attempts"] == mailqueue.MAX_ATTEMPTS
    assert row["last_error"] == "gave up after 12 tries: 451 4.3.0 try again later"
    assert mailqueue.send_due(chain, moment).sent == 0


def test_a_permanent_refusal_is_a_failure_shown_for_the_customer_and_the_invoice_goes_to_post(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, (ziga, _, _), numbers = hq
    smtp.reply = lambda _: "550 5.1.1 <ziga.novak@example.com>: no such mailbox"
    notices.queue_due(chain)
    assert mailqueue.send_due(chain, T0).failed == 1
    shown = cli("hq", "mail", "--db", chain.db.where, "--customer", ziga.card)
    assert shown.returncode == 0, shown.stderr
    [line, total] = shown.stdout.splitlines()
    assert "failed" in line and "invoice_issued" in line and numbers[ziga.customer_id] in line
    assert "[550 5.1.1 <ziga.novak@example.com>: no such mailbox]" in line
    assert total == "1 message(s)"
    to_post = [r["number"] for r in notices.to_post(chain) if "e-mail failed" in r["why"]]
    assert to_post == [numbers[ziga.customer_id]]


def test_a_wrong_password_leaves_the_mail_queued_and_is_never_logged(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    chain, _, _ = hq
    settings.change(chain, {"smtp.password": "wrong password 123"})
    notices.queue_due(chain)
    with caplog.at_level(logging.DEBUG):
        run = mailqueue.send_due(chain, T0)
    assert run.waiting == 1 and run.problem.startswith("535")
    [row] = outbox(chain)
    assert (row["status"], row["attempts"]) == ("queued", 0)
    assert "wrong password" not in caplog.text and PASSWORD not in caplog.text
    assert "535" in caplog.text
    assert set(smtp.logins) == {"club"} and smtp.received == []


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_server_without_starttls_never_gets_the_password(
        hq: tuple[Chain, list[Buyer], dict[str, str]], tmp_path: Path) -> None:
    chain, _, _ = hq
    (tmp_path / "plain").mkdir()
    plain = SmtpServer(tmp_path / "plain", starttls=False).start()
    try:
        settings.change(chain, {"smtp.port": str(plain.port)})
        notices.queue_due(chain)
        run = mailqueue.send_due(chain, T0)
        assert run.waiting == 1 and "no STARTTLS" in run.problem
        assert plain.logins == [] and plain.received == []
    finally:
        plain.stop()


def test_mail_left_sending_by_a_run_that_died_is_sent_again_with_the_same_message_id(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, _, _ = hq
    notices.queue_due(chain)
    with chain.db.write() as conn:  # what a crash after the claim, before the mark, leaves
        conn.execute("UPDATE mail_outbox SET status = 'sending', attempts = 1,"
                     " claimed_by = 'a run that died'")
    [before] = outbox(chain)
    assert mailqueue.send_due(chain, T0).sent == 1
    assert smtp.message_ids() == [before["message_id"]]
    assert mailqueue.send_due(chain, T0, run_id="the next run").sent == 0  # sent is sent


class Died(Exception):
    """A process dying in the middle of a submission (its transaction is rolled back)."""


@pytest.mark.slow  # a PostgreSQL cluster is a process
def test_a_message_another_hq_process_is_submitting_is_passed_over_and_never_sent_twice(
        tmp_path: Path, hq_pg: str, smtp: SmtpServer) -> None:
    chain, _ = make_hq(tmp_path / "hq.db", buyers(), hq_pg)
    chain.clock = lambda: "2026-11-01T05:00:00.000000Z"
    with_payee(chain)
    settings.change(chain, smtp.settings())
    notices.queue_due(chain)
    [queued] = outbox(chain)
    other = Chain(hq_pg)  # a second HQ process on the same database
    pool = ThreadPoolExecutor(1)
    try:
        with pytest.raises(Died), chain.db.write() as conn:
            # the first process has claimed the message: the server is taking it
            assert mailqueue.claim(conn, int(queued["mail_id"]), "run A", canonical(T0))
            meanwhile = pool.submit(mailqueue.send_due, other, T0, "run B")
            run = meanwhile.result(timeout=10)  # never waits for the first one
            assert (run.sent, smtp.received) == (0, [])
            raise Died
        # the first process died before the server's answer: the message is sent again
        assert mailqueue.send_due(other, T0, "run C").sent == 1
        assert smtp.message_ids() == [queued["message_id"]]
        assert mailqueue.send_due(chain, T0, "run D").sent == 0
    finally:
        pool.shutdown()
        other.close()


def test_a_card_reported_lost_is_told_to_the_customer_with_the_number_masked(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, (ziga, ana, _), _ = hq
    admin.set_identifier_status(chain, "card", ziga.card, "lost", by=None)
    admin.set_identifier_status(chain, "card", ana.card, "lost", by=None)  # no consent: no mail
    notices.queue_due(chain)
    mailqueue.send_due(chain, T0)
    lost = [r for r in smtp.received if "lost" in str(r.message["Subject"])]
    assert [str(r.message["Subject"]) for r in lost] == [
        f"Your club card ****{ziga.card[-4:]} was reported lost"]
    assert ziga.card not in lost[0].raw.decode(errors="replace")


def test_the_unsubscribe_link_withdraws_consent_as_an_hq_fact_and_nothing_else_does(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, (ziga, _, _), _ = hq
    notices.queue_due(chain)
    mailqueue.send_due(chain, T0)
    link = str(smtp.received[0].message["List-Unsubscribe"]).strip("<>")
    path = link.removeprefix("https://klub.zvestoba.example")
    client = TestClient(create_app(chain))

    page = client.get(path)
    assert page.status_code == 200 and "Stop the e-mails" in page.text
    assert "z…@example.com" in page.text and "ziga.novak" not in page.text
    assert admin.customer_view(chain, ziga.customer_id)["email_consent"] is True
    head, _, signature = path.rpartition(".")
    forged = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    for bad in (forged, "/unsubscribe/nonsense", "/unsubscribe/x.y"):
        refused = client.post(bad)
        assert refused.status_code == 404 and "not valid" in refused.text
    assert admin.customer_view(chain, ziga.customer_id)["email_consent"] is True

    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "no more e-mails" in done.text
    assert admin.customer_view(chain, ziga.customer_id)["email_consent"] is False
    facts = chain.db.all("SELECT outlet_id, event FROM events WHERE type = 'customer.updated'"
                         " AND customer_id = ?", (ziga.customer_id,))
    assert len(facts) == 1 and facts[0]["outlet_id"] == "HQ"
    assert '"email_consent":false' in facts[0]["event"]
    assert client.post(path).status_code == 200  # again: nothing more recorded
    assert chain.db.scalar("SELECT COUNT(*) FROM events WHERE type = 'customer.updated'") == 1
    assert "no e-mails from us" in client.get(path).text

    admin.set_identifier_status(chain, "card", ziga.card, "lost", by=None)  # no consent: no mail now
    assert notices.queue_due(chain) == {"no_consent": 1}


def test_mail_queued_before_the_customer_withdrew_consent_is_never_sent(
        hq: tuple[Chain, list[Buyer], dict[str, str]], smtp: SmtpServer) -> None:
    chain, (ziga, _, _), numbers = hq
    notices.queue_due(chain)  # queued while Žiga still consented
    assert notices.withdraw_consent(chain, ziga.customer_id)
    assert mailqueue.send_due(chain, T0).failed == 1 and smtp.tries == []
    [row] = outbox(chain)
    assert row["last_error"] == mailqueue.WITHDRAWN
    assert numbers[ziga.customer_id] in [r["number"] for r in notices.to_post(chain)]


def test_notices_waiting_for_mail_settings_never_hold_up_the_others(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mail settings a consenting customer's notice waits; the rest (no consent, a
    customer HQ does not know) are decided all the same, however many wait before them."""
    monkeypatch.setattr(notices, "BATCH", 2)
    people = [Buyer(f"Wants{i}", "Mail", email=f"w{i}@example.com", consent=True)
              for i in range(3)] + [Buyer("Ana", "Kovač")]
    chain, numbers = make_hq(tmp_path / "hq.db", people)
    try:
        stranger = "0190c0de-0000-7000-8000-00000000dead"  # a credit sale, never registered
        line = SaleLine(sku="S", name="S", qty=1, unit_price=500, gross=500, discount=0, net=500)
        sale = SaleRecorded(sale_id=new_id(), customer_id=stranger, currency="EUR",
                            lines=[line], payments=[Payment(mode="credit", amount=500)],
                            total_gross=500, total_discount=0, total_net=500, points_earned=0)
        seq = chain.db.scalar("SELECT last_seq FROM outlets") + 1
        ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=[
            make_event(OUTLET, seq, sale, "2026-11-20T10:00:00Z")]))
        [late] = invoices.close_period(chain, date(2026, 11, 1), date(2026, 12, 1),
                                       date(2026, 12, 1))
        for _ in range(3):
            notices.queue_due(chain)
        decided = dict(chain.db.all("SELECT about, outcome FROM notices"))
        assert decided == {numbers[people[3].customer_id]: "no_consent",
                           late["number"]: "unknown_customer"}
        assert {r["number"] for r in notices.to_post(chain)} == {
            *numbers.values(), late["number"]}
    finally:
        chain.close()


def test_only_the_mail_worker_speaks_smtp_and_only_the_scheduler_runs_it() -> None:
    """No mail is ever sent from a request: smtplib is imported by hq/mailqueue.py alone,
    and its `send_due` is called from hq/schedule.py alone."""
    importers, callers = set(), set()
    for package in ("agent", "hq", "sync", "web", "schema", "banking", "hardware"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            name = str(path.relative_to(ROOT))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    modules = ([a.name for a in node.names] if isinstance(node, ast.Import)
                               else [node.module or ""])
                    if any(m.split(".")[0] == "smtplib" for m in modules):
                        importers.add(name)
                if isinstance(node, ast.Attribute) and node.attr == "send_due":
                    callers.add(name)
    assert importers == {"hq/mailqueue.py"}
    assert callers == {"hq/schedule.py"}


def test_an_invoice_its_returns_bring_to_zero_says_there_is_nothing_to_pay(
        tmp_path: Path, smtp: SmtpServer) -> None:
    from schema.reversal import Asked, ReturnsSettings, plan_return

    ziga = buyers()[0]
    ziga.sales = ()
    chain, _ = make_hq(tmp_path / "hq.db", [ziga], close=False)
    try:
        line = SaleLine(sku="S", name="Stuff", qty=1, unit_price=4_990, gross=4_990,
                        discount=0, net=4_990)
        sale = SaleRecorded(sale_id=new_id(), customer_id=ziga.customer_id, currency="EUR",
                            lines=[line], payments=[Payment(mode="credit", amount=4_990)],
                            total_gross=4_990, total_discount=0, total_net=4_990,
                            points_earned=0)
        back = plan_return(sale, [], [Asked("S", 1)], return_id=new_id(), balance=0,
                           settings=ReturnsSettings(), reason="wrong size")
        ingest.push(chain, OUTLET, PushRequest(outlet_id=OUTLET, events=[
            make_event(OUTLET, 2, sale, "2026-10-05T12:00:00Z"),
            make_event(OUTLET, 3, back, "2026-10-06T12:00:00Z")]))
        [made] = invoices.close_period(chain, date(2026, 10, 1), date(2026, 11, 1),
                                       date(2026, 11, 1))
        assert made["amount"] == 0
        chain.clock = lambda: "2026-11-01T05:00:00.000000Z"
        with_payee(chain)
        settings.change(chain, smtp.settings())
        assert notices.queue_due(chain) == {"mailed": 1}
        mailqueue.send_due(chain, T0)
        [got] = smtp.received
        assert str(got.message["Subject"]) == f"Invoice {made['number']}: nothing to pay"
        text = got.text()
        assert "nothing to pay" in text and "Due on" not in text
        assert "Payment reference" not in text and "IBAN" not in text
        assert got.attachment()  # the invoice itself still goes: the purchases and credits
    finally:
        chain.close()
