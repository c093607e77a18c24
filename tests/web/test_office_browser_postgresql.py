"""HQ's back office in real headless Chromium with HQ on PostgreSQL (issue 15): the browser
suites of this folder run over HQ on SQLite (the session's `shop`); here HQ is a real
`loyalty hq serve --db postgresql://...` process on a new database of the run's cluster
(tests/chainkit.py `hq_store`), outlet A a real agent, the data made through the real code
paths (tills, sync, HQ's admin API): customers, sales (one on credit), a return, a void, a
gift handed out, invoices closed.

An administrator opens every page of the back office, the list derived from the office's
routes (every GET page without a path parameter; a customer's page, its edit and correction
pages; an invoice; and every page with a parameter reached by a link from those), and each
answers below 400 with its heading and asks nothing of any other machine. A points
correction makes the round trip: previewed, confirmed, seen on the customer's page and in
the audit trail. Screenshots at 1280 px (`layout-postgresql-*`) under tests/artefacts/web/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from agentkit import line, png
from chainkit import ChainRig, hq_store, until
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from test_backoffice import login, wait
from test_correction_browser import fill
from test_office_layout import shot_at
from test_office_routers import PUBLIC, api_routes
from webkit import PASSWORD, Shop, staff_add

import hq.office
from hq.chain import Chain
from schema import reports

pytestmark = pytest.mark.timeout(240)

# GET routes that are not pages: files and pictures, checked as the requests of the pages
NOT_PAGES = {"/customers/{customer_id}/picture"}
# path parameters naming one record: one page of each route is enough; any other parameter
# (a report's name, a kind of document) names a different page, each of which is opened
ONE_RECORD = {"customer_id", "number", "username", "key", "entry_id", "flag_id", "outlet_id"}
# the pages kept as screenshots (`layout-postgresql-NAME-1280.png`), by what they open
SHOTS = {("/",): "home", ("/dashboard",): "dashboard", ("/reports",): "reports",
         ("/reports/{name}", ("name", "turnover")): "report-turnover",
         ("/customers/{customer_id}",): "customer", ("/invoices/{number}",): "invoice"}


@pytest.fixture(scope="module")
def pg_shop(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """HQ on PostgreSQL and outlet A as real processes; the administrator `alice`."""
    root = tmp_path_factory.mktemp("web-pg")
    with hq_store(request, "postgresql") as url:
        assert url is not None
        rig = ChainRig(root, db=url)
        try:
            staff_add(url, "alice", PASSWORD)
            rig.start(("A",))
            a = rig.outlets["A"]
            till = a.till
            until(lambda: len(till.get("/v1/gifts").json()) > 0, 20,
                  what="A has HQ's master data")
            shop = Shop(rig, a)
            shop.customers["ana"] = till.register("A", given_name="Ana", surname="Novak",
                                                  picture=png(120, 90), email="ana@example.com")
            shop.customers["bor"] = till.register("A", given_name="Bor", surname="Novak")
            shop.customers["eve"] = till.register("A", given_name="Eve <b>", surname="Zorman")
            ana, bor = shop.customers["ana"]["card_number"], shop.customers["bor"]["card_number"]
            shop.sales["ana"] = [
                till.sold(ana, [line("COF", 450, 4, "Coffee"), line("TEA", 300, 2, "Tea")]),
                till.sold(ana, [line("WINE", 19_900, 2, "Wine")]),
                till.sold(ana, [line("OIL", 1_500, 2, "Olive oil")], mode="credit"),
            ]
            shop.sales["bor"] = [till.sold(bor, [line("JAM", 620, 2, "Jam")]),
                                 till.sold(bor, [line("COF", 450, 1, "Coffee")])]
            returned = till.post("/v1/returns", {
                "sale_id": shop.sales["ana"][0]["sale_id"], "till_id": till.till_id,
                "reason": "one coffee too many", "lines": [{"sku": "COF", "qty": 1}]})
            assert returned.status_code == 201, returned.text
            voided = till.post(f"/v1/sales/{shop.sales['bor'][1]['sale_id']}/void",
                               {"till_id": till.till_id, "reason": "wrong card"})
            assert voided.status_code == 201, voided.text
            shop.stock_received = 3
            a.stock("GIFT-MUG", shop.stock_received)
            handed = a.redeem(ana, "GIFT-MUG")
            assert handed.status_code == 201, handed.text
            shop.handed_out = 1
            rig.settled()
            today = datetime.now(UTC).date()
            made = rig.hq.admin("POST", "/v1/admin/invoices/close", 201, json={
                "period_from": today.isoformat(),
                "period_to": (today + timedelta(days=1)).isoformat(),
                "issued_on": today.isoformat()})
            shop.invoice = next(m for m in made
                                if m["customer_id"] == shop.customers["ana"]["customer_id"])
            yield shop
        finally:
            rig.close()


def office_gets(db: str) -> list[str]:
    """The paths of the office's GET routes, from the app HQ serves (never a kept list)."""
    chain = Chain(db)
    try:
        return sorted({route.path for route in api_routes(hq.office.app(chain).routes)
                       if "GET" in (route.methods or ()) and route.path not in PUBLIC})
    finally:
        chain.close()


def pattern(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


def page_key(routes: dict[str, re.Pattern[str]], office: str, href: str) -> tuple[Any, ...] | None:
    """What a link opens, as (route, the values of its parameters that name a page), or
    None for a link that is not to a page of the office."""
    parts = urlsplit(href)
    base = urlsplit(office)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) \
            or not parts.path.startswith(base.path):
        return None
    path = parts.path[len(base.path):] or "/"
    for route, regex in routes.items():
        found = regex.match(path)
        if found:
            return (route, *sorted((k, v) for k, v in found.groupdict().items()
                                   if k not in ONE_RECORD))
    return None


def opened(browser: Any, url: str) -> tuple[list[tuple[str, int]], list[str]]:
    """Opens `url`: (every answer the page got, as (url, status)), (requests it made to
    anything but this machine), from the browser's performance log."""
    browser.get_log("performance")  # forget what came before
    browser.get(url)
    answers, outside = [], []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            asked = params["request"]["url"]
            if not asked.startswith(("http://127.0.0.1", "http://localhost", "data:",
                                     "about:", "blob:")):
                outside.append(asked)
        elif message.get("method") == "Network.responseReceived":
            answers.append((params["response"]["url"], int(params["response"]["status"])))
    return answers, outside


def test_an_administrator_opens_every_page_of_the_office_on_postgresql(
        pg_shop: Shop, browser: Any) -> None:
    shop = pg_shop
    assert isinstance(shop.rig.hq.db, str) and shop.rig.hq.db.startswith("postgresql://")
    gets = [path for path in office_gets(shop.rig.hq.db) if path not in NOT_PAGES]
    routes = {path: pattern(path) for path in gets}
    cid, other = shop.customers["ana"]["customer_id"], shop.customers["eve"]["customer_id"]
    start = [path for path in gets if "{" not in path]
    start += [f"/customers/{cid}", f"/customers/{cid}/edit", f"/customers/{cid}/correction",
              f"/customers/{cid}/merge?duplicate={other}",  # the preview: changes nothing
              f"/invoices/{shop.invoice['number']}",
              f"/reports/receipts?customer={cid}"]  # without a customer: a form asking (422)
    queue = [shop.office + path for path in start]
    seen = {page_key(routes, shop.office, url) for url in queue}
    assert None not in seen, queue
    visited: dict[str, str] = {}  # route -> the first url opened for it
    browser.delete_all_cookies()
    login(browser, shop)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    assert browser.find_element(By.CSS_SELECTOR, ".who").text == "alice"
    try:
        while queue:
            url = queue.pop(0)
            key = page_key(routes, shop.office, url)
            assert key is not None
            answers, outside = opened(browser, url)
            assert answers and answers[0][1] < 400, (url, answers[:1])
            failed = [(u, s) for u, s in answers if s >= 400]
            assert failed == [], (url, failed)
            assert outside == [], (url, outside)
            assert "/login" not in browser.current_url, url
            heading = browser.find_elements(By.CSS_SELECTOR, "main h1")
            assert heading and heading[0].text.strip(), f"{url}: no heading"
            assert browser.find_elements(By.ID, "error") == [], (url, heading[0].text)
            visited.setdefault(key[0], url)
            if key in SHOTS:
                shot_at(browser, f"postgresql-{SHOTS[key]}", 1280)
                browser.set_window_size(1280, 1000)
            links = browser.execute_script(
                "return Array.from(document.querySelectorAll('a[href]'), a => a.href)")
            for href in links:
                href = href.split("#", 1)[0]
                found = page_key(routes, shop.office, href)
                if found is not None and found not in seen:
                    seen.add(found)
                    queue.append(href)
        unvisited = sorted(set(gets) - set(visited))
        assert unvisited == [], "pages no link led to: open them from the start list " \
            f"of this test ({unvisited})"
        every_report = {("/reports/{name}", ("name", name)) for name in reports.NAMES}
        assert every_report <= seen and len(visited) >= 25, (sorted(seen), visited)
    finally:
        browser.set_window_size(1280, 1000)


def test_a_points_correction_is_previewed_confirmed_and_audited_on_postgresql(
        pg_shop: Shop, browser: Any) -> None:
    shop = pg_shop
    cid = shop.customers["bor"]["customer_id"]

    def hq_points() -> int:
        return int(shop.rig.hq.customer(cid)["points_balance"])

    before = hq_points()
    assert before > 0
    browser.delete_all_cookies()
    login(browser, shop)
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, "form.logout")))
    try:
        browser.get(f"{shop.office}/customers/{cid}")
        browser.find_element(By.ID, "correct-customer").click()
        wait(browser, EC.presence_of_element_located((By.ID, "correction-form")))
        fill(browser, "-3", "", "a coffee booked on the wrong card")
        lines = wait(browser, EC.presence_of_element_located((By.ID, "preview-lines"))).text
        assert lines.splitlines() == [f"Points: {before:,} → {before - 3:,}"]
        assert hq_points() == before  # a preview changes nothing
        browser.find_element(By.ID, "save-correction").click()
        wait(browser, EC.presence_of_element_located((By.ID, "done")))
        assert int(browser.find_element(By.ID, "now-points").get_attribute(
            "data-value")) == before - 3
        assert hq_points() == before - 3
        browser.get(f"{shop.office}/customers/{cid}")
        assert int(browser.find_element(By.ID, "stat-points_balance").get_attribute(
            "data-value")) == before - 3
        shot_at(browser, "postgresql-customer-corrected", 1280)
        browser.find_element(By.ID, "customer-audit").click()
        row = wait(browser, EC.presence_of_element_located(
            (By.CSS_SELECTOR, "tr[data-action='customer.adjust']")))
        assert row.get_attribute("data-staff") == "alice"
        assert row.get_attribute("data-customer") == cid
        assert row.find_element(By.CSS_SELECTOR, ".why").text == \
            "a coffee booked on the wrong card"
        shot_at(browser, "postgresql-audit", 1280)
        assert shop.rig.hq.rows("SELECT staff, action, reason FROM audit WHERE customer_id = ?",
                                (cid,)) == [("alice", "customer.adjust",
                                             "a coffee booked on the wrong card")]
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1280, 1000)

