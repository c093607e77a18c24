"""Mail from a real `loyalty hq serve` to a real SMTP server (issue 13, items 3 and 4):
kill -9 of HQ while it submits, and the unsubscribe link followed over HTTP until the
change reaches what outlets pull."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from chainkit import HQProcess
from hqkit import HQClient
from invoicekit import OUTLET, Buyer, make_hq, with_payee
from mailkit import Received, SmtpServer
from testkit.processes import cli
from testkit.waiting import wait_until

from hq import credentials, settings

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def hq_process(tmp_path: Path) -> Iterator[HQProcess]:
    process = HQProcess(tmp_path / "hq.db")
    yield process
    process.kill()


def prepare(db: Path, smtp: SmtpServer, buyers: list[Buyer], public_url: str) -> str:
    """HQ's file with these buyers' October invoices and mail set up; an outlet token."""
    chain, _ = make_hq(db, buyers)
    try:
        with_payee(chain)
        settings.change(chain, smtp.settings(**{"mail.interval": "1",
                                                "mail.public_url": public_url}))
        with chain.db.write() as conn:
            return credentials.rotate_outlet(conn, OUTLET)
    finally:
        chain.close()


def test_kill_9_of_hq_while_it_sends_sends_only_the_message_in_flight_twice(
        tmp_path: Path, smtp: SmtpServer, hq_process: HQProcess) -> None:
    buyers = [Buyer(f"Kupec{i}", "Novak", email=f"kupec{i}@example.com", consent=True)
              for i in range(6)]
    prepare(hq_process.db, smtp, buyers, "https://klub.zvestoba.example")
    killed: dict[str, str] = {}
    lock = threading.Lock()

    def reply(got: Received) -> str:
        with lock:  # the third message: HQ dies after the server has it, before it hears 250
            if len(smtp.tries) == 2 and not killed:
                hq_process.kill()
                killed["message_id"] = got.message_id
        return "250 2.0.0 OK"

    smtp.reply = reply
    hq_process.start()
    wait_until(lambda: killed, 60, every=0.05, what="HQ killed during the third DATA")
    assert not hq_process.running
    hq_process.start()
    wait_until(lambda: len(set(smtp.message_ids())) == 6, 60, every=0.05,
               what="all six invoices delivered")

    ids = smtp.message_ids()
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert twice == [killed["message_id"]] and len(ids) == 7  # docs/invoices.md: at most one
    again = [r for r in smtp.received if r.message_id == killed["message_id"]]
    assert again[0].raw == again[1].raw  # the same message, byte for byte
    listed = cli("hq", "mail", "--db", str(hq_process.db))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[-1] == "6 message(s)" and all(" sent " in line for line in lines[:-1])
    assert [line for line in lines if "tries 2" in line] == [
        line for line in lines if killed["message_id"] in line]


def test_the_unsubscribe_link_in_a_mail_works_over_http_and_reaches_the_outlets(
        tmp_path: Path, smtp: SmtpServer, hq_process: HQProcess) -> None:
    ziga = Buyer("Žiga", "Novak", email="ziga.novak@example.com", consent=True)
    token = prepare(hq_process.db, smtp, [ziga], hq_process.url)
    hq_process.start()
    wait_until(lambda: smtp.received, 60, every=0.05, what="the invoice mail")
    link = str(smtp.received[0].message["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{hq_process.url}/unsubscribe/")
    assert link in smtp.received[0].text()

    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and "Stop the e-mails" in page.text
    done = requests.post(link, timeout=10)
    assert done.status_code == 200 and "no more e-mails" in done.text
    assert hq_process.customer(ziga.customer_id)["email_consent"] is False

    outlet = HQClient(hq_process, OUTLET, token)
    pulled = outlet.pull(0, limit=5000)
    assert pulled.status_code == 200, pulled.text
    docs = [c["data"] for c in pulled.json()["changes"]
            if c["kind"] == "customer" and c["key"] == ziga.customer_id]
    assert docs and docs[-1]["profile"]["email_consent"] is False, json.dumps(docs)
