"""Roles and the audit trail as people meet them (issue 12), in a real headless Chromium over
HQ and outlet A as real processes: a viewer sees no edit button and is refused the form
anyway; an operator records a bank payment and the audit trail shows it with every field
before -> after; the trail filters by customer and by member of staff and prints; an
administrator manages accounts on the staff page, and a desk account cannot open the back
office. Screenshots of the staff and audit pages at 1280 and 800 px under
tests/artefacts/web/ (`layout-*`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from chainkit import ChainRig, until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select
from test_backoffice import hq_rows, login, wait
from test_bank_payments import invoiced
from test_office_layout import WIDTHS, shot_at
from webkit import PASSWORD, Shop, print_pdf, shot, staff_add

pytestmark = pytest.mark.timeout(240)

ROOT, OLGA, VERA = "root", "olga", "vera"  # administrator, operator, viewer


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    rig = ChainRig(tmp_path_factory.mktemp("roles"))
    try:
        staff_add(rig.hq.db, ROOT, PASSWORD)  # the first administrator, on HQ's machine
        staff_add(rig.hq.db, OLGA, PASSWORD, role="operator")
        staff_add(rig.hq.db, VERA, PASSWORD, role="viewer")
        rig.start(("A",))
        a = rig.outlets["A"]
        until(lambda: len(a.till.get("/v1/gifts").json()) > 0, 20, what="A has HQ's programme")
        yield Shop(rig, a)
    finally:
        rig.close()


@pytest.fixture
def as_who(shop: Shop, browser: Any) -> Iterator[Any]:
    """Signs the browser in as a given member of staff (cookies are per host, not port:
    the other modules' HQ signs in again after this one)."""

    def sign_in(username: str) -> None:
        browser.delete_all_cookies()
        login(browser, shop, username, PASSWORD)
        wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))

    yield sign_in
    browser.delete_all_cookies()
    browser.set_window_size(1280, 1000)


def session_of(browser: Any, shop: Shop) -> requests.Session:
    """The browser's session as a plain HTTP client (to post what the page does not offer)."""
    http = requests.Session()
    http.cookies.set("loyalty_office", browser.get_cookie("loyalty_office")["value"],
                     path="/office")
    return http


def trail(shop: Shop) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in hq_rows(shop, "SELECT staff, action, subject FROM audit "
                                            "ORDER BY audit_id")]


def test_a_viewer_sees_no_edit_button_and_is_refused_the_form(
        shop: Shop, browser: Any, as_who: Any) -> None:
    invoice = invoiced(shop, "Viewed", 5_000, 4_500)
    as_who(VERA)
    assert browser.find_element(By.ID, "my-role").text == "(viewer)"
    assert not browser.find_elements(By.ID, "nav-staff")
    browser.get(f"{shop.office}/invoices/{invoice['number']}")
    assert browser.find_element(By.ID, "invoice-status").text == "unpaid"
    assert not browser.find_elements(By.ID, "bank-payment")  # no form, no button
    assert "operator role" in browser.find_element(By.ID, "pay-needs-operator").text
    shot(browser, "roles-viewer-invoice")

    before = (hq_rows(shop, "SELECT paid_amount FROM invoices WHERE number = ?",
                      (invoice["number"],))[0][0], trail(shop))
    http = session_of(browser, shop)
    token = browser.find_element(By.CSS_SELECTOR, "form.logout input[name=csrf]") \
        .get_attribute("value")
    answer = http.post(f"{shop.office}/invoices/{invoice['number']}/bank-payment", timeout=10,
                       data={"csrf": token, "amount": "45.00", "reference": "VIEWER"},
                       allow_redirects=False)
    assert answer.status_code == 403 and 'data-code="role_required"' in answer.text
    assert "needs the operator role" in answer.text
    assert (hq_rows(shop, "SELECT paid_amount FROM invoices WHERE number = ?",
                    (invoice["number"],))[0][0], trail(shop)) == before

    browser.get(f"{shop.office}/staff")
    error = browser.find_element(By.ID, "error")
    assert error.get_attribute("data-code") == "role_required"
    assert "administrator" in error.text
    shot(browser, "roles-viewer-refused-staff")


def test_an_operator_records_a_bank_payment_and_the_trail_shows_before_and_after(
        shop: Shop, browser: Any, as_who: Any) -> None:
    invoice = invoiced(shop, "Payer", 10_000, 9_000)
    as_who(OLGA)
    assert not browser.find_elements(By.ID, "nav-staff")  # operators manage no accounts
    browser.get(f"{shop.office}/invoices/{invoice['number']}")
    browser.find_element(By.ID, "amount").clear()
    browser.find_element(By.ID, "amount").send_keys("40,00")
    browser.find_element(By.ID, "reference").send_keys("STMT-OLGA-1")
    browser.find_element(By.ID, "pay").click()
    wait(browser, EC.presence_of_element_located((By.ID, "done")))

    browser.get(f"{shop.office}/audit")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-action='invoice.bank_payment']")
    assert row.get_attribute("data-staff") == OLGA
    assert row.get_attribute("data-customer") == invoice["customer_id"]
    assert "Payer" in row.text and invoice["number"] in row.text and "operator" in row.text

    def change(field: str) -> tuple[str, str]:
        item = row.find_element(By.CSS_SELECTOR, f"li[data-field='{field}']")
        return (item.find_element(By.CLASS_NAME, "before").text,
                item.find_element(By.CLASS_NAME, "after").text)

    assert change("paid_amount") == ("0.00", "40.00")
    assert change("bank_reference") == ("-", "STMT-OLGA-1")
    assert "statement STMT-OLGA-1" in row.find_element(By.CLASS_NAME, "why").text
    event_id = hq_rows(shop, "SELECT event_id FROM audit WHERE subject = ?",
                       (invoice["number"],))[0][0]
    assert hq_rows(shop, "SELECT type FROM events WHERE event_id = ?",
                   (event_id,))[0][0] == "credit.repaid"
    shot(browser, "audit-after-payment")

    browser.get(f"{shop.office}/invoices/{invoice['number']}")  # the rest: the invoice is paid
    browser.find_element(By.ID, "reference").send_keys("STMT-OLGA-2")
    browser.find_element(By.ID, "pay").click()
    wait(browser, EC.presence_of_element_located((By.ID, "done")))
    browser.get(f"{shop.office}/audit?customer={invoice['card']}")
    newest = browser.find_element(By.CSS_SELECTOR, "#audit tbody tr")
    status = newest.find_element(By.CSS_SELECTOR, "li[data-field='status']")
    assert status.text == "status: unpaid → paid"


def test_the_audit_page_filters_by_customer_and_by_staff_member(
        shop: Shop, browser: Any, as_who: Any) -> None:
    first = invoiced(shop, "Filtered", 2_000, 1_800)
    second = invoiced(shop, "Other", 3_000, 2_700)
    as_who(OLGA)
    for invoice in (first, second):
        browser.get(f"{shop.office}/invoices/{invoice['number']}")
        browser.find_element(By.ID, "reference").send_keys(f"STMT-{invoice['number']}")
        browser.find_element(By.ID, "pay").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
    as_who(ROOT)
    browser.get(f"{shop.office}/staff/{VERA}")
    browser.find_element(By.ID, "role-reason").send_keys("reads reports only")
    browser.find_element(By.ID, "set-role").click()  # unchanged role: nothing recorded
    wait(browser, EC.presence_of_element_located((By.ID, "done")))

    browser.get(f"{shop.office}/audit")
    browser.find_element(By.ID, "filter-customer").send_keys(first["card"])  # a club card
    browser.find_element(By.ID, "show").click()
    wait(browser, EC.url_contains("customer="))
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr[data-audit]")
    assert rows and {r.get_attribute("data-customer") for r in rows} == {first["customer_id"]}
    assert "Filtered" in browser.find_element(By.CLASS_NAME, "printed-filters") \
        .get_attribute("textContent")

    browser.get(f"{shop.office}/audit")
    Select(browser.find_element(By.ID, "filter-staff")).select_by_value(OLGA)
    browser.find_element(By.ID, "show").click()
    wait(browser, EC.url_contains(f"staff={OLGA}"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr[data-audit]")
    assert {r.get_attribute("data-staff") for r in rows} == {OLGA}
    numbers = {r.get_attribute("data-audit") for r in rows}
    expected = {str(r[0]) for r in hq_rows(shop, "SELECT audit_id FROM audit WHERE staff = ?",
                                            (OLGA,))}
    assert numbers == expected and len(numbers) >= 2

    browser.get(f"{shop.office}/audit?customer=0000000000000")
    assert "no customer with the id or club card number ****0000" in \
        browser.find_element(By.ID, "audit-error").text
    browser.get(f"{shop.office}/audit?staff={OLGA}")
    _, text = print_pdf(browser, "audit-trail")
    if text:  # poppler-utils present: the paper shows the filter and the changes
        assert f"staff: {OLGA}" in text and "operator" in text and "→" in text
        assert "Show" not in text and "Print" not in text  # no form on paper
    for width in WIDTHS:
        shot_at(browser, "hq-audit", width)
        wide = browser.execute_script("return document.documentElement.scrollWidth - "
                                      "document.documentElement.clientWidth")
        assert wide <= 1, f"the audit page is {wide} px wider than a {width} px window"


def test_an_administrator_manages_accounts_on_the_staff_page(
        shop: Shop, browser: Any, as_who: Any) -> None:
    as_who(ROOT)
    browser.find_element(By.ID, "nav-staff").click()
    wait(browser, EC.presence_of_element_located((By.ID, "accounts")))
    roles = {r.get_attribute("data-username"): r.find_element(By.CLASS_NAME, "role").text
             for r in browser.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")}
    assert roles[ROOT] == "administrator" and roles[OLGA] == "operator"

    def add(username: str, role: str, password: str, again: str) -> None:
        browser.get(f"{shop.office}/staff")
        browser.find_element(By.ID, "new-username").send_keys(username)
        Select(browser.find_element(By.ID, "new-role")).select_by_value(role)
        browser.find_element(By.ID, "new-password").send_keys(password)
        browser.find_element(By.ID, "new-again").send_keys(again)
        browser.find_element(By.ID, "new-reason").send_keys("new reception clerk")
        browser.find_element(By.ID, "add").click()

    add("dora", "desk", PASSWORD, PASSWORD + "x")
    error = wait(browser, EC.presence_of_element_located((By.ID, "staff-error")))
    assert "two passwords differ" in error.text
    assert browser.find_element(By.ID, "new-password").get_attribute("value") == ""
    add("dora", "desk", PASSWORD, PASSWORD)
    wait(browser, EC.presence_of_element_located((By.ID, "done")))
    assert browser.find_element(By.ID, "account-role").text == "desk"
    assert hq_rows(shop, "SELECT COUNT(*) FROM staff WHERE password_hash LIKE 'scrypt$%' "
                         "AND username = 'dora'")[0][0] == 1

    Select(browser.find_element(By.ID, "role")).select_by_value("viewer")
    browser.find_element(By.ID, "role-reason").send_keys("moved to head office")
    browser.find_element(By.ID, "set-role").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "account-role"), "viewer"))
    browser.find_element(By.ID, "disable-reason").send_keys("on leave")
    browser.find_element(By.ID, "disable-account").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "account-state"), "disabled"))
    browser.find_element(By.ID, "enable-account").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "account-state"), "active"))
    browser.find_element(By.ID, "password").send_keys(PASSWORD + "!")
    browser.find_element(By.ID, "again").send_keys(PASSWORD + "!")
    browser.find_element(By.ID, "set-password").click()
    wait(browser, EC.text_to_be_present_in_element((By.ID, "done"), "Password set"))
    history = [r.get_attribute("data-action") for r in browser.find_elements(
        By.CSS_SELECTOR, "#account-history tbody tr[data-audit]")]
    assert history == ["staff.password", "staff.enable", "staff.disable", "staff.role",
                       "staff.add"]
    assert "role: desk → viewer" in browser.find_element(
        By.CSS_SELECTOR, "#account-history tr[data-action='staff.role']").text
    for width in WIDTHS:
        shot_at(browser, "hq-staff-account", width)
    browser.get(f"{shop.office}/staff")
    for width in WIDTHS:
        shot_at(browser, "hq-staff", width)
        wide = browser.execute_script("return document.documentElement.scrollWidth - "
                                      "document.documentElement.clientWidth")
        assert wide <= 1, f"the staff page is {wide} px wider than a {width} px window"

    browser.get(f"{shop.office}/staff/{ROOT}")  # the last administrator stays
    Select(browser.find_element(By.ID, "role")).select_by_value("operator")
    browser.find_element(By.ID, "set-role").click()
    error = wait(browser, EC.presence_of_element_located((By.ID, "staff-error")))
    assert "last active administrator" in error.text
    assert browser.find_element(By.ID, "account-role").text == "administrator"


def test_a_desk_account_cannot_open_the_back_office(shop: Shop, browser: Any) -> None:
    staff_add(shop.rig.hq.db, "clerk", PASSWORD, role="desk")
    browser.delete_all_cookies()
    login(browser, shop, "clerk", PASSWORD)
    error = wait(browser, EC.presence_of_element_located((By.ID, "login-error")))
    assert "reception desk account" in error.text
    assert browser.get_cookie("loyalty_office") is None
    shot(browser, "roles-desk-login-refused")
