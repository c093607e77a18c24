"""The reception desk (agent/desk.py) in a real headless Chromium over the shop's real
processes: a desk clerk (an account made at HQ, replicated to outlet A) signs in, registers
a customer and the printed card page's barcode, rendered by Chromium to PNG, scans back
with zbarimg to the same number; a gift hand-out lowers stock and points, and a
double-click hands out one. Screenshots `desk-*` at 1280 and 800 px under
tests/artefacts/web/."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from agentkit import line
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from test_office_layout import WIDTHS, shot_at
from webkit import ARTEFACTS, PASSWORD, Shop

pytestmark = pytest.mark.timeout(180)


def desk_signed_in(driver: Any, shop: Shop) -> str:
    desk = shop.a.url + "/desk"
    driver.delete_all_cookies()
    driver.get(desk + "/")
    WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.ID, "username")))
    for width in WIDTHS:
        shot_at(driver, "desk-login", width)
    driver.set_window_size(1280, 1000)
    driver.find_element(By.ID, "username").send_keys("clerk")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 15).until(EC.presence_of_element_located((By.ID, "who")))
    assert driver.find_element(By.ID, "who").text == "clerk"
    return desk


def test_a_desk_clerk_registers_a_customer_and_the_printed_card_scans_back(
        shop: Shop, browser: Any) -> None:
    desk = desk_signed_in(browser, shop)
    browser.get(desk + "/register")
    browser.find_element(By.ID, "given_name").send_keys("Dora")
    browser.find_element(By.ID, "surname").send_keys("Deskova")
    browser.find_element(By.ID, "room").send_keys("12")
    for width in WIDTHS:
        shot_at(browser, "desk-register", width)
    browser.set_window_size(1280, 1000)
    browser.find_element(By.ID, "register-button").click()
    WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.ID, "card-number")))
    number = browser.find_element(By.ID, "card-number").text
    assert len(number) == 13 and browser.find_element(By.ID, "card-name").text == "Dora Deskova"
    for width in WIDTHS:
        page = shot_at(browser, "desk-card", width)
        if shutil.which("zbarimg"):  # install.sh --dev installs zbar-tools
            read = subprocess.run(["zbarimg", "--quiet", "--raw", str(page)], check=False,
                                  capture_output=True, text=True, timeout=30)
            assert read.stdout.split() == [number], (width, read.stdout, read.stderr)
    browser.set_window_size(1280, 1000)
    browser.get(desk + "/?q=12")  # found again by room
    assert "Deskova" in browser.find_element(By.ID, "results").text
    assert number not in browser.find_element(By.ID, "results").text
    for width in WIDTHS:
        shot_at(browser, "desk-find", width)
    browser.set_window_size(1280, 1000)


def stock_and_points(browser: Any) -> tuple[int, int]:
    stock = browser.find_element(By.CSS_SELECTOR, "#gift-GIFT-MUG .stock")
    points = browser.find_element(By.ID, "points")
    return int(stock.get_attribute("data-value")), int(points.get_attribute("data-value"))


def test_a_double_clicked_gift_hand_out_at_the_desk_lowers_stock_and_points_once(
        shop: Shop, browser: Any) -> None:
    till = shop.a.till
    made = till.register("A", given_name="Gus", surname="Giftson")
    shop.customers["gus"] = made
    shop.sales["gus"] = [till.sold(made["card_number"], [line("WINE", 19_900, 10, "Wine")])]
    desk = desk_signed_in(browser, shop)
    gifts = f"{desk}/customers/{made['customer_id']}/gifts"
    browser.get(gifts)
    stock, points = stock_and_points(browser)
    for width in WIDTHS:
        shot_at(browser, "desk-gifts", width)
    browser.set_window_size(1280, 1000)
    ActionChains(browser).double_click(browser.find_element(By.ID, "hand-out-GIFT-MUG")).perform()
    WebDriverWait(browser, 15).until(EC.presence_of_element_located((By.ID, "receipt")))
    assert browser.find_element(By.ID, "card-statement").text
    assert made["card_number"] not in browser.page_source
    for width in WIDTHS:
        shot_at(browser, "desk-gift-receipt", width)
    browser.set_window_size(1280, 1000)
    shop.handed_out += 1
    browser.get(gifts)
    cost = int(browser.find_element(By.CSS_SELECTOR, "#gift-GIFT-MUG td.num").text.replace(",", ""))
    assert stock_and_points(browser) == (stock - 1, points - cost)
    shop.rig.settled()  # the other browser tests read HQ: the hand-out and the sale are there
    assert ARTEFACTS.is_dir()


def test_the_desk_shows_a_customers_card_invoices_statement_and_smart_card_form(
        shop: Shop, browser: Any) -> None:
    desk = desk_signed_in(browser, shop)
    ana = shop.customers["ana"]
    pages = {"desk-customer": f"{desk}/customers/{ana['customer_id']}",
             "desk-invoices": f"{desk}/customers/{ana['customer_id']}/invoices",
             "desk-statement": f"{desk}/customers/{ana['customer_id']}/statement",
             "desk-smartcard": f"{desk}/customers/{ana['customer_id']}/smartcard"}
    for name, url in pages.items():
        browser.get(url)
        assert ana["card_number"] not in browser.page_source, name  # masked everywhere
        for width in WIDTHS:
            shot_at(browser, name, width)
        browser.set_window_size(1280, 1000)
    browser.get(pages["desk-invoices"])
    number = shop.invoice["number"]
    left = browser.find_element(By.CSS_SELECTOR, f"#invoice-{number} .left")
    known = shop.a.till.get(f"/v1/customers/{ana['customer_id']}/invoices").json()
    mine = next(i for i in known if i["number"] == number)  # other tests may have paid it
    assert int(left.get_attribute("data-value")) == mine["amount"] - mine["paid_amount"]
