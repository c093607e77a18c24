"""The web back office in a real headless Chromium (issue 6): HQ's staff pages behind a
login and the outlet's store-manager pages on loopback, over a chain whose data was made
through the real code paths (tills, sync, HQ's admin API). Every page visited is saved as
a screenshot under tests/artefacts/web/; the printed reports as PDFs beside them."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from webkit import OTHER_PASSWORD, PASSWORD, Shop, print_pdf, shot, today

from schema import reports
from schema.errors import mask_card
from schema.events import Event, fold

pytestmark = pytest.mark.timeout(180)


# --- helpers --------------------------------------------------------------------------------
def money(v: int) -> str:
    sign = "-" if v < 0 else ""
    major, minor = divmod(abs(v), 100)
    return f"{sign}{major:,}.{minor:02d}"


def wait(driver: Any, condition: Any, timeout: float = 10) -> Any:
    return WebDriverWait(driver, timeout).until(condition)


def value(driver: Any, element_id: str) -> int:
    return int(driver.find_element(By.ID, element_id).get_attribute("data-value"))


def login(driver: Any, shop: Shop, username: str = "alice", password: str = PASSWORD) -> None:
    driver.get(shop.office + "/login")
    driver.find_element(By.ID, "username").clear()
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()


def signed_in(driver: Any, shop: Shop) -> None:
    driver.get(shop.office + "/")
    if "/login" in driver.current_url:
        login(driver, shop)
        wait(driver, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))


def hq_rows(shop: Shop, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = shop.rig.hq.db_conn()
    try:
        return list(conn.execute(sql, params).fetchall())
    finally:
        conn.close()


def folded_statistics(shop: Shop, customer_id: str) -> dict[str, Any]:
    """The customer's statistics computed here from HQ's raw events (not from its tallies)."""
    events = [Event.model_validate_json(r["event"]) for r in hq_rows(
        shop, "SELECT event FROM events WHERE customer_id = ? ORDER BY hq_seq", (customer_id,))]
    return fold(events).statistics()


# --- HQ: login ------------------------------------------------------------------------------
def test_a_page_without_login_redirects_to_the_login_form(shop: Shop, browser: Any) -> None:
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})  # all sites
    browser.get(shop.office + "/customers?q=novak")
    assert "/office/login" in browser.current_url
    assert browser.find_element(By.ID, "password")
    shot(browser, "hq-login-redirect")
    # and without a browser: the redirect says where to go back to, and nothing leaks
    answer = requests.get(shop.office + "/invoices", allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/office/login?next=")
    for path in ("/customers/x/picture", "/reports/turnover", "/gifts", "/outlets", "/flags"):
        assert requests.get(shop.office + path, allow_redirects=False,
                            timeout=10).status_code == 303, path


def test_login_is_refused_with_a_wrong_password_and_accepted_with_the_right_one(
        shop: Shop, browser: Any) -> None:
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    login(browser, shop, password="not the password")
    error = wait(browser, EC.presence_of_element_located((By.ID, "login-error")))
    assert "Wrong username or password" in error.text
    assert browser.get_cookie("loyalty_office") is None
    shot(browser, "hq-login-refused")
    login(browser, shop, username="nobody", password=PASSWORD)
    wait(browser, EC.presence_of_element_located((By.ID, "login-error")))
    login(browser, shop)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    cookie = browser.get_cookie("loyalty_office")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/office"
    assert browser.find_element(By.CSS_SELECTOR, ".who").text == "alice"
    shot(browser, "hq-home")


# --- HQ: customers --------------------------------------------------------------------------
def test_a_search_finds_the_customer_and_the_card_shows_the_right_statistics(
        shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    browser.get(shop.office + "/customers")
    box = browser.find_element(By.ID, "q")
    box.send_keys("novak")
    browser.find_element(By.ID, "search").click()
    results = wait(browser, EC.presence_of_element_located((By.ID, "results")))
    names = [a.text for a in results.find_elements(By.CSS_SELECTOR, "tbody td a")]
    assert names == ["Ana Novak", "Bor Novak"]
    ana = shop.customers["ana"]
    # card numbers are masked in the list
    assert ana["card_number"] not in browser.page_source
    assert mask_card(ana["card_number"]) in results.text
    shot(browser, "hq-search")

    results.find_element(By.LINK_TEXT, "Ana Novak").click()
    wait(browser, EC.presence_of_element_located((By.ID, "statistics")))
    assert browser.find_element(By.ID, "customer-name").text == "Ana Novak"
    stats = folded_statistics(shop, ana["customer_id"])
    sold = shop.sales["ana"]
    assert stats["total_purchases"] == sum(s["total_net"] for s in sold)  # the fold is sane
    for key in ("total_purchases", "purchases_count", "items_bought", "average_item_value",
                "total_discount", "total_points_earned", "total_points_used",
                "gifts_collected"):
        assert value(browser, f"stat-{key}") == stats[key], key
    for mode, amount in stats["paid_by_mode"].items():
        assert value(browser, f"stat-paid_{mode}") == amount, mode
    assert value(browser, "stat-points_balance") == stats["points_balance"]
    assert value(browser, "stat-most_expensive_purchase") == \
        stats["most_expensive_purchase"]["total"] == max(s["total_net"] for s in sold)
    expensive = browser.find_elements(By.CSS_SELECTOR, "#top-expensive tbody tr")
    assert [(r.get_attribute("data-sku"), int(r.get_attribute("data-value"))) for r in expensive] \
        == [(t["sku"], t["unit_price"]) for t in stats["top_expensive_items"]]
    assert expensive[0].get_attribute("data-sku") == "WINE"
    purchased = browser.find_elements(By.CSS_SELECTOR, "#top-purchased tbody tr")
    assert [(r.get_attribute("data-sku"), int(r.get_attribute("data-value"))) for r in purchased] \
        == [(t["sku"], t["qty"]) for t in stats["top_purchased_items"]]
    assert purchased[0].get_attribute("data-sku") == "COF"  # 6 coffees
    gifts = browser.find_elements(By.CSS_SELECTOR, "#gifts tbody tr")
    assert [(g.get_attribute("data-sku"), int(g.get_attribute("data-value"))) for g in gifts] == \
        [("GIFT-MUG", 1)]
    # the full card number only here, to signed-in staff
    assert ana["card_number"] in browser.find_element(By.ID, "identifiers").text
    # receipts with their lines
    receipts = browser.find_elements(By.CSS_SELECTOR, "table.receipt")
    assert len(receipts) == len(sold)
    assert sorted(int(r.find_element(By.CSS_SELECTOR, "tfoot td[data-value]")
                      .get_attribute("data-value")) for r in receipts) == \
        sorted(s["total_net"] for s in sold)
    # the picture comes from HQ's blob, with its real type
    picture = browser.find_element(By.CSS_SELECTOR, "img.picture")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth",
                                  picture) == 120
    shot(browser, "hq-customer-card")


def test_everything_is_escaped(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    browser.get(shop.office + "/customers?q=zorman")
    link = wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "#results a")))
    assert link.text == "Eve <script>alert(1)</script> Zorman"
    assert "<script>alert(1)" not in browser.page_source
    link.click()
    wait(browser, EC.presence_of_element_located((By.ID, "statistics")))
    assert browser.find_element(By.ID, "customer-name").text.startswith("Eve <script>")
    shot(browser, "hq-customer-escaped")


# --- HQ: invoices ---------------------------------------------------------------------------
def test_the_invoice_shows_its_amount_and_a_bank_payment_marks_it_paid(
        shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    number = shop.invoice["number"]
    credit = [s for s in shop.sales["ana"] if any(p["mode"] == "credit" for p in
                                                   s.get("payments", [{"mode": "credit"}]))]
    on_credit = sum(r["paid_credit"] for r in hq_rows(
        shop, "SELECT paid_credit FROM sales WHERE customer_id = ?",
        (shop.customers["ana"]["customer_id"],)))
    assert on_credit == shop.sales["ana"][-1]["total_net"] and credit
    browser.get(shop.office + "/invoices")
    row = browser.find_element(By.CSS_SELECTOR, f"tr[data-number='{number}']")
    assert "Ana Novak" in row.text and "unpaid" in row.text and money(on_credit) in row.text
    shot(browser, "hq-invoices")
    row.find_element(By.LINK_TEXT, number).click()
    wait(browser, EC.presence_of_element_located((By.ID, "invoice-amount")))
    assert value(browser, "invoice-amount") == on_credit
    assert browser.find_element(By.ID, "invoice-status").text == "unpaid"
    items = browser.find_elements(By.CSS_SELECTOR, "#invoice-items tbody td[data-value]")
    assert [int(i.get_attribute("data-value")) for i in items] == [on_credit]
    assert browser.find_element(By.ID, "amount").get_attribute("value") == \
        money(on_credit).replace(",", "")
    shot(browser, "hq-invoice-unpaid")

    browser.find_element(By.ID, "reference").send_keys("BANK-2026-0042")
    browser.find_element(By.ID, "pay").click()
    wait(browser, EC.presence_of_element_located((By.ID, "done")))
    assert browser.find_element(By.ID, "invoice-status").text == "paid"
    assert value(browser, "invoice-paid") == on_credit
    assert browser.find_element(By.ID, "bank-reference").text == "BANK-2026-0042"
    shot(browser, "hq-invoice-paid")
    stored = hq_rows(shop, "SELECT status, paid_via, bank_reference, paid_amount FROM invoices "
                           "WHERE number = ?", (number,))[0]
    assert tuple(stored) == ("paid", "bank", "BANK-2026-0042", on_credit)


def test_a_form_without_its_csrf_token_or_from_another_site_is_refused(
        shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    cookie = browser.get_cookie("loyalty_office")["value"]
    other = [r for r in hq_rows(shop, "SELECT number FROM invoices WHERE status != 'paid'")]
    assert other, "Bor's invoice is still unpaid"
    number = other[0]["number"]
    http = requests.Session()
    http.cookies.set("loyalty_office", cookie, path="/office")
    url = f"{shop.office}/invoices/{number}/bank-payment"
    form = {"amount": "1.00", "reference": "FORGED"}
    assert http.post(url, data=form, timeout=10, allow_redirects=False).status_code == 403
    assert http.post(url, data={**form, "csrf": "x" * 64}, timeout=10,
                     allow_redirects=False).status_code == 403
    page = http.get(f"{shop.office}/invoices/{number}", timeout=10).text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert http.post(url, data={**form, "csrf": token}, headers={"Origin": "http://evil.example"},
                     timeout=10, allow_redirects=False).status_code == 403
    assert hq_rows(shop, "SELECT paid_amount FROM invoices WHERE number = ?",
                   (number,))[0][0] == 0


# --- HQ: reports, printed ---------------------------------------------------------------------
def test_a_report_shows_the_figures_and_prints_to_pdf(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    day = today().isoformat()
    browser.get(f"{shop.office}/reports/turnover?date_from={day}&date_to={day}")
    table = wait(browser, EC.presence_of_element_located((By.ID, "report")))
    everything = [s for sales in shop.sales.values() for s in sales]
    net = sum(s["total_net"] for s in everything)
    gross = sum(s["total_gross"] for s in everything)
    discount = sum(s["total_discount"] for s in everything)
    row = {c.get_attribute("data-col"): c.get_attribute("data-value")
           for c in table.find_elements(By.CSS_SELECTOR, "tbody tr:first-child td")}
    assert row == {"outlet": "A", "receipts": str(len(everything)), "gross": str(gross),
                   "discount": str(discount), "net": str(net),
                   "average_receipt": str((2 * net + len(everything)) // (2 * len(everything))),
                   "returned": "0", "net_of_returns": str(net)}
    shot(browser, "hq-report-turnover")
    pdf, text = print_pdf(browser, "hq-report-turnover")
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF-") and len(raw) > 5_000
    if text:  # pdftotext (poppler-utils) is there: the paper has the figures, not the menus
        assert "Turnover by outlet" in text
        assert money(net) in text and money(gross) in text and money(discount) in text
        assert "Log out" not in text and "Invoices" not in text and "Show" not in text
        assert f"date from: {day}" in text


def test_the_report_pack_prints_a_page_per_report(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    day = today().isoformat()
    browser.get(f"{shop.office}/reports/print?date_from={day}&date_to={day}")
    sections = browser.find_elements(By.CSS_SELECTOR, "section.report")
    assert len(sections) == len(reports.NAMES) - 1  # every report but one customer's receipts
    assert not browser.find_elements(By.CSS_SELECTOR, "section.report p.error")
    gifts = browser.find_element(By.ID, "report-gifts")
    qty = gifts.find_element(By.CSS_SELECTOR, "tfoot td[data-col='qty']").get_attribute("data-value")
    assert int(qty) == shop.handed_out
    shot(browser, "hq-report-pack")
    pdf, text = print_pdf(browser, "hq-report-pack")
    assert pdf.read_bytes().startswith(b"%PDF-")
    if text:
        assert text.count("\f") >= len(sections)  # a page (at least) per report
        assert "Outstanding points liability" in text and "Payment discipline" in text


def test_a_report_with_bad_filters_says_why(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    browser.get(f"{shop.office}/reports/points-liability?date_from=2026-01-01")
    assert "do not apply" in browser.find_element(By.ID, "report-error").text
    browser.get(f"{shop.office}/reports/receipts")
    assert "customer" in browser.find_element(By.ID, "report-error").text
    browser.get(f"{shop.office}/reports/receipts?customer={shop.customers['bor']['customer_id']}")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#report tbody tr")) == 2
    shot(browser, "hq-report-receipts")


@pytest.mark.parametrize("where", ["hq", "agent"])
def test_a_report_with_a_bad_date_names_the_form_field_not_a_cli_flag_or_a_regex(
        shop: Shop, browser: Any, where: str) -> None:
    if where == "hq":
        signed_in(browser, shop)
    base = shop.office if where == "hq" else shop.manager
    day = today().isoformat()
    for query, field in ((f"date_from=2026-13-01&date_to={day}", "From"),
                         (f"date_from={day}&date_to=tomorrow", "To"),
                         ("date_from=1.5.2026", "From")):
        browser.get(f"{base}/reports/turnover?{query}")
        error = browser.find_element(By.ID, "report-error").text
        assert error.startswith(f"{field}: enter a date as YYYY-MM-DD"), error
        page = browser.find_element(By.TAG_NAME, "main").text
        assert "--" not in page and "\\d" not in page and "^(" not in page, page
        assert browser.find_element(By.NAME, "date_from")  # the form is there to correct it
    shot(browser, f"{where}-report-bad-date")
    for query, message in (("date_from=" + "9" * 150, "From: expected at most 100 characters"),
                           ("by=weekly", "Group: expected '', 'category', 'day', 'week' or 'month'")):
        browser.get(f"{base}/reports/turnover?{query}")
        error = browser.find_element(By.ID, "error").text
        assert error.startswith(message), error
    browser.get(f"{base}/reports/points-liability?date_from={day}")
    error = browser.find_element(By.ID, "report-error").text
    assert "From/To do not apply" in error and "--" not in error, error


def test_the_root_of_either_service_leads_a_person_to_the_back_office(
        shop: Shop, browser: Any) -> None:
    for url, where in ((shop.hq_url, "/office/"), (shop.a.url, "/manager/")):
        answer = requests.get(url + "/", allow_redirects=False, timeout=10)
        assert answer.status_code in (303, 307), (url, answer.status_code, answer.text)
        assert answer.headers["location"] == where
    browser.get(shop.office + "/login")  # the session cookie is visible (and deleted) there
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.get(shop.hq_url + "/")
    assert "/office/login" in browser.current_url
    browser.get(shop.a.url + "/")
    assert browser.current_url == shop.manager + "/"
    assert browser.find_element(By.ID, "count-sales")


# --- HQ: gift stock, outlets, flags -----------------------------------------------------------
def test_gift_stock_outlets_and_flags(shop: Shop, browser: Any) -> None:
    signed_in(browser, shop)
    browser.get(shop.office + "/gifts")
    cell = browser.find_element(By.CSS_SELECTOR, "tr[data-sku='GIFT-MUG'] td[data-outlet='A']")
    assert int(cell.get_attribute("data-value")) == shop.stock_received - shop.handed_out
    shot(browser, "hq-gift-stock")
    browser.get(shop.office + "/outlets")
    a = browser.find_element(By.CSS_SELECTOR, "tr[data-outlet='A']")
    b = browser.find_element(By.CSS_SELECTOR, "tr[data-outlet='B']")
    assert "ok" in a.find_element(By.CSS_SELECTOR, ".health").text
    assert "stale" in b.get_attribute("class") and "never synced" in b.text
    shot(browser, "hq-outlets")
    browser.get(shop.office + "/flags")
    assert browser.find_element(By.ID, "flags")
    shot(browser, "hq-flags")


def test_logging_out_ends_the_session(shop: Shop, browser: Any) -> None:
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    login(browser, shop, "bob", OTHER_PASSWORD)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    old = browser.get_cookie("loyalty_office")["value"]
    browser.find_element(By.CSS_SELECTOR, "form.logout button").click()
    wait(browser, EC.presence_of_element_located((By.ID, "password")))
    assert browser.get_cookie("loyalty_office") is None
    # the cookie taken before logging out no longer opens anything
    answer = requests.get(shop.office + "/", cookies={"loyalty_office": old},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and "/login" in answer.headers["location"]
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})


# --- the outlet: store manager's pages on loopback ---------------------------------------------
def test_the_agent_pages_answer_on_loopback(shop: Shop, browser: Any) -> None:
    browser.get(shop.manager + "/")
    assert value(browser, "pending") == 0
    assert browser.find_element(By.ID, "count-sales").text == str(
        sum(len(s) for s in shop.sales.values()))
    shot(browser, "agent-status")
    browser.get(shop.manager + "/customers?q=novak")
    results = browser.find_element(By.ID, "results")
    assert [a.text for a in results.find_elements(By.CSS_SELECTOR, "tbody a")] == \
        ["Ana Novak", "Bor Novak"]
    shot(browser, "agent-search")
    results.find_element(By.LINK_TEXT, "Ana Novak").click()
    wait(browser, EC.presence_of_element_located((By.ID, "stat-total_purchases")))
    ana = shop.customers["ana"]
    assert value(browser, "stat-total_purchases") == sum(s["total_net"] for s in shop.sales["ana"])
    assert ana["card_number"] not in browser.page_source  # masked at the outlet, always
    shot(browser, "agent-customer-card")
    browser.get(shop.manager + "/sales")
    everything = [s for sales in shop.sales.values() for s in sales]
    assert value(browser, "today-count") == len(everything)
    assert value(browser, "today-net") == sum(s["total_net"] for s in everything)
    shot(browser, "agent-today")
    browser.get(shop.manager + "/gifts")
    mug = browser.find_element(By.CSS_SELECTOR, "tr[data-sku='GIFT-MUG'] td[data-value]")
    assert int(mug.get_attribute("data-value")) == shop.stock_received - shop.handed_out
    shot(browser, "agent-gifts")
    day = today().isoformat()
    browser.get(f"{shop.manager}/reports/discounts?date_from={day}&date_to={day}")
    total = browser.find_element(By.CSS_SELECTOR, "#report tfoot td[data-col='discount']")
    assert int(total.get_attribute("data-value")) == sum(s["total_discount"] for s in everything)
    shot(browser, "agent-report-discounts")
    pdf, text = print_pdf(browser, "agent-report-discounts")
    assert pdf.read_bytes().startswith(b"%PDF-")
    if text:
        assert "Discounts by action" in text and "Today's sales" not in text


def non_loopback_address() -> str | None:
    """This machine's address on its first non-loopback interface (no packet is sent: a UDP
    connect only picks the route), or None on a machine with loopback only."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routed by the default route, if any
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_the_agent_pages_refuse_anyone_but_loopback_even_with_the_till_token(
        tmp_path: Any) -> None:
    from agent.api import create_app
    from agent.outlet import Outlet
    from web.serving import Background

    outlet = Outlet(tmp_path / "o.db", "W", card_range=9)
    server = Background(create_app(outlet, till_token="till-secret"), host="0.0.0.0")
    http = requests.Session()
    http.trust_env = False  # straight to the agent, never through a proxy
    try:
        local = f"http://127.0.0.1:{server.port}"
        assert http.get(local + "/manager/", timeout=10).status_code == 200
        assert http.get(local + "/v1/status", timeout=10).status_code == 401
        rebound = http.get(local + "/manager/", headers={"Host": "evil.example"}, timeout=10)
        assert rebound.status_code == 403
        address = non_loopback_address()
        if address is not None:
            for token in (None, "till-secret"):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                answer = http.get(f"http://{address}:{server.port}/manager/",
                                      headers=headers, timeout=10)
                assert answer.status_code == 403, (address, token)
            assert http.get(f"http://{address}:{server.port}/v1/status", timeout=10,
                                headers={"Authorization": "Bearer till-secret"}).ok
    finally:
        server.stop()
        time.sleep(0.05)
        outlet.close()
