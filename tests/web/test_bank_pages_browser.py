"""The bank statement and newsletter pages as an operator uses them (issue 13), in real
headless Chromium over HQ as a real `loyalty hq serve` process, on a database with four
invoiced customers (tests/hq/invoicekit.py) and the camt.053 statement of
tests/hq/test_statement_import.py: upload it, confirm the suggestion with one click, upload
it again (nothing changes, the page says so), upload a broken file (`invalid_statement`);
compose a newsletter, see how many customers it reaches, double-click Send (one newsletter
is recorded). Screenshots at 1280 and 800 px under tests/artefacts/web/ (`layout-*`)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from chainkit import HQProcess
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from test_backoffice import login, wait
from test_office_layout import WIDTHS, shot_at

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hq"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "banking"))

from invoicekit import Buyer, make_hq
from test_statement_import import march

from hq import settings, staff
from schema.roles import Role

pytestmark = pytest.mark.timeout(240)

PASSWORD = "a long enough password"
MAIL = {"mail.from": "Klub Zvestoba <klub@zvestoba.example>",
        "mail.public_url": "https://klub.zvestoba.example"}


@pytest.fixture(scope="module")
def bank_hq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """HQ as a real process over four invoiced customers (three agreed to e-mail), mail
    set up (no SMTP server: newsletters stay queued) and the operator `otto`."""
    root = tmp_path_factory.mktemp("bank")
    buyers = [Buyer("Jürgen", "Müller", email="jm@example.com", consent=True,
                    sales=(123_450,)),
              Buyer("Anna", "Svensson", email="as@example.com", consent=True, sales=(30_000,)),
              Buyer("Łukasz", "Żółć", email="lz@example.com", consent=True, sales=(15_000,)),
              Buyer("Ana", "Kovač", email="ak@example.com", consent=False, sales=(8_000,))]
    chain, numbers = make_hq(root / "hq.db", buyers)
    with chain.db.write() as conn:
        staff.add(conn, "otto", PASSWORD, role=Role.operator)
    settings.change(chain, MAIL)
    chain.close()
    process = HQProcess(root / "hq.db")
    process.start()
    try:
        yield SimpleNamespace(office=process.url + "/office", db=root / "hq.db", root=root,
                              numbers={b.surname: numbers[b.customer_id] for b in buyers})
    finally:
        process.kill()


def rows(hq: SimpleNamespace, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{hq.db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


def fits(driver: Any, name: str, width: int) -> None:
    for box in ("document.documentElement", "document.querySelector('main')"):
        wide = driver.execute_script(f"return {box}.scrollWidth - {box}.clientWidth")
        assert wide <= 1, f"{name}: {box} is {wide} px wider than a {width} px window"


def shots(driver: Any, name: str) -> None:
    """Screenshots at every width, each checked to fit its window; back to 1280 px."""
    for width in WIDTHS:
        shot_at(driver, name, width)
        fits(driver, name, width)
    driver.set_window_size(1280, 1000)


def upload(driver: Any, hq: SimpleNamespace, name: str, data: bytes) -> None:
    path = hq.root / name
    path.write_bytes(data)
    driver.get(hq.office + "/statements")
    driver.find_element(By.ID, "statement-file").send_keys(str(path))
    driver.find_element(By.ID, "import").click()


def test_an_operator_imports_a_statement_and_confirms_the_suggestion(
        bank_hq: SimpleNamespace, browser: Any) -> None:
    numbers = bank_hq.numbers
    browser.delete_all_cookies()
    login(browser, bank_hq, "otto", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.find_element(By.ID, "nav-statements").click()
        wait(browser, EC.presence_of_element_located((By.ID, "upload-form")))
        upload(browser, bank_hq, "camt053-20260315.xml", march(numbers))
        wait(browser, EC.presence_of_element_located((By.ID, "statement-read")))
        assert browser.find_element(By.ID, "read-entries").text == "7"
        assert browser.find_element(By.ID, "read-credits").text == "1,669.50"
        stamped = browser.find_element(By.ID, "group-matched").text
        assert numbers["Müller"] in stamped and "part payment" in stamped
        suggested = browser.find_element(By.ID, "group-suggested")
        assert "KOVAC ANA" in suggested.text and "the payer's name fit" in suggested.text
        assert "Ana Kovač, owes 80.00" in suggested.text
        assert "names no open invoice" in browser.find_element(By.ID, "group-unmatched").text
        shots(browser, "statement-import")
        assert rows(bank_hq, "SELECT status FROM invoices WHERE number = ?",
                    (numbers["Müller"],)) == [("paid",)]

        browser.find_element(By.CSS_SELECTOR, "#group-suggested button.confirm").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert numbers["Kovač"] in browser.find_element(By.ID, "done").text
        assert rows(bank_hq, "SELECT status, bank_reference FROM invoices WHERE number = ?",
                    (numbers["Kovač"],)) == [("paid", "STMT-20260315-001 2026031500004")]
        assert rows(bank_hq, "SELECT staff FROM audit WHERE action = 'invoice.bank_payment' "
                             "AND subject = ?", (numbers["Kovač"],)) == [("otto",)]
        shots(browser, "statement-confirmed")

        events = rows(bank_hq, "SELECT COUNT(*) FROM events")
        upload(browser, bank_hq, "the-same-file-again.xml", march(numbers))
        wait(browser, EC.presence_of_element_located((By.ID, "imported-before")))
        assert "nothing changed" in browser.find_element(By.ID, "imported-before").text
        assert rows(bank_hq, "SELECT COUNT(*) FROM events") == events
        shots(browser, "statement-again")

        broken = march(numbers).replace(b'<Amt Ccy="EUR">80.00</Amt>',
                                        b'<Amt Ccy="EUR">80.005</Amt>')
        upload(browser, bank_hq, "broken.xml", broken)
        wait(browser, EC.presence_of_element_located((By.ID, "statement-error")))
        error = browser.find_element(By.ID, "statement-error").text
        assert "[invalid_statement]" in error and "Nothing was changed" in error
        assert rows(bank_hq, "SELECT COUNT(*) FROM events") == events
        shots(browser, "statement-refused")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)


def test_an_operator_previews_and_double_clicks_send_and_one_newsletter_is_queued(
        bank_hq: SimpleNamespace, browser: Any) -> None:
    browser.delete_all_cookies()
    login(browser, bank_hq, "otto", PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.find_element(By.ID, "nav-newsletters").click()
        wait(browser, EC.presence_of_element_located((By.ID, "compose-form")))
        browser.find_element(By.ID, "subject").send_keys("Winter catalogue")
        browser.find_element(By.ID, "body").send_keys(
            "Dear customer,\nour winter catalogue is out: 20 % off coffee until Sunday.\n")
        Select(browser.find_element(By.ID, "category")).select_by_value("A")
        browser.find_element(By.ID, "preview").click()
        wait(browser, EC.presence_of_element_located((By.ID, "reach")))
        assert browser.find_element(By.ID, "reach").text.startswith(
            "Will reach 3 customers (category A)")
        assert rows(bank_hq, "SELECT COUNT(*) FROM newsletters") == [(0,)]
        shots(browser, "newsletter-preview")

        ActionChains(browser).double_click(browser.find_element(By.ID, "send")).perform()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert "recorded for 3 customers" in browser.find_element(By.ID, "done").text
        [(newsletter_id, recipients)] = rows(
            bank_hq, "SELECT newsletter_id, recipients FROM newsletters")
        assert recipients == 3
        assert rows(bank_hq, "SELECT COUNT(*) FROM notices WHERE kind = 'newsletter'") == [(3,)]
        assert rows(bank_hq, "SELECT staff FROM audit WHERE action = 'newsletter.send'") == [
            ("otto",)]
        counts = browser.find_element(By.ID, f"counts-{newsletter_id}")
        cells = [c.get_attribute("data-value") for c in
                 counts.find_elements(By.CSS_SELECTOR, "td[data-value]")]
        assert cells[0] == "3" and cells[2:4] == ["0", "0"]  # recipients; nothing sent, failed
        shots(browser, "newsletters")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)
