"""Points-expiring notices (issue 13 item 3; hq/notices.py `queue_expiring`), over a real
SMTP server in the test process (tests/hq/mailkit.py): a consenting customer with points
expiring within 30 days gets exactly one "N points expire on DATE" with a working
unsubscribe link; a customer without consent none, one without an address none (decided
`no_address`); a second run, or the schedule's run (hq/schedule.py through `once`), none."""

from __future__ import annotations

from datetime import date

import test_mail
from fastapi.testclient import TestClient
from invoicekit import Buyer
from mailkit import SmtpServer

from hq import admin, mailqueue, notices, schedule
from hq.api import create_app
from hq.chain import Chain

hq, smtp = test_mail.hq, test_mail.smtp  # the fixtures: Žiga (consent), Ana (none), Bor (no address)
Hq = tuple[Chain, list[Buyer], dict[str, str]]


def expiring_rows(chain: Chain) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in chain.db.all(
        "SELECT customer_id, about, outcome FROM notices WHERE kind = 'points_expiring'"
        " ORDER BY customer_id")]


def test_a_consenting_customer_is_told_once_that_points_expire_and_nobody_else(
        hq: Hq, smtp: SmtpServer) -> None:
    chain, (ziga, ana, bor), _ = hq
    admin.put_master(chain, "programme", {"expiry": {"kind": "end_of_month", "months": 1}},
                     by=None)
    for buyer in (ziga, ana, bor):  # earned on HQ's day, 2026-11-01: valid to 2026-12-31
        admin.adjust(chain, buyer.customer_id, 1_250, 0, "welcome points", by=None)

    assert notices.queue_expiring(chain, date(2026, 11, 20)) == {}  # 41 days away: not yet
    assert notices.queue_expiring(chain, date(2026, 12, 5)) == {"mailed": 1, "no_address": 1}
    assert sorted(expiring_rows(chain)) == sorted([
        (ziga.customer_id, "2026-12-31", "mailed"), (bor.customer_id, "2026-12-31",
                                                     "no_address")])
    assert notices.queue_expiring(chain, date(2026, 12, 6)) == {}  # once per expiry day
    chain.clock = lambda: "2026-12-07T00:45:00.000000Z"
    schedule.expiring_notices(chain)  # HQ's schedule: nothing new either
    assert len(expiring_rows(chain)) == 2

    mailqueue.send_due(chain, test_mail.T0)
    [told] = smtp.received
    assert told.recipients == [ziga.email]
    assert str(told.message["Subject"]) == "1,250 points expire on 2026-12-31"
    assert "1,250 of your club points expire on 2026-12-31" in told.text()
    link = str(told.message["List-Unsubscribe"]).strip("<>")
    client = TestClient(create_app(chain))
    done = client.post(link.removeprefix("https://klub.zvestoba.example"))
    assert done.status_code == 200 and "no more e-mails" in done.text
    assert admin.customer_view(chain, ziga.customer_id)["email_consent"] is False
