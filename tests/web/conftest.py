"""Fixtures of the web back office tests: a real chain and one headless Chromium.

`shop`: HQ as a real `loyalty hq serve` process and outlet A as a real `loyalty agent serve
--hq ...` process (tests/chainkit.py), with staff accounts made by `loyalty hq staff-add`
(a desk account `clerk` among them, replicated to A),
customers registered and sales, a credit sale, a stock receipt and a gift hand-out made
through A's till API and synced to HQ, and one consolidated invoice closed through HQ's
admin API. Outlet B is registered but never syncs (a stale outlet).
`browser`: one Chromium (Debian's chromium + chromedriver) for the whole session, driven
by Selenium; every page a test visits is saved under tests/artefacts/web/ by `shot`. Its
network beyond loopback is closed (every other address goes to a dead proxy, every name but
localhost fails to resolve), so a page that needs the internet shows it; its requests are
kept in the performance log (`driver.get_log("performance")`).
Browser tests are skipped ONLY when /usr/bin/chromium is missing (CI installs it with
`./install.sh --dev`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from agentkit import line, png
from chainkit import ChainRig, until
from webkit import ARTEFACTS, CHROMEDRIVER, CHROMIUM, OTHER_PASSWORD, PASSWORD, Shop, staff_add


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("web")
    rig = ChainRig(root)
    try:
        staff_add(rig.hq.db, "alice", PASSWORD)
        staff_add(rig.hq.db, "bob", OTHER_PASSWORD)
        staff_add(rig.hq.db, "clerk", PASSWORD, role="desk")  # the reception desk at A
        rig.start(("A",))
        rig.register("B")  # registered, never syncs: a stale outlet
        a = rig.outlets["A"]
        till = a.till
        until(lambda: len(till.get("/v1/gifts").json()) > 0, 20, what="A has HQ's master data")
        shop = Shop(rig, a)
        people = {
            "ana": {"given_name": "Ana", "surname": "Novak", "picture": png(120, 90),
                    "email": "ana@example.com"},
            "bor": {"given_name": "Bor", "surname": "Novak"},
            "eve": {"given_name": "Eve <script>alert(1)</script>", "surname": "Zorman"},
        }
        for key, fields in people.items():
            shop.customers[key] = till.register("A", **fields)
        ana, bor = shop.customers["ana"]["card_number"], shop.customers["bor"]["card_number"]
        shop.sales["ana"] = [
            till.sold(ana, [line("COF", 450, 4, "Coffee"), line("TEA", 300, 2, "Tea")]),
            till.sold(ana, [line("WINE", 19_900, 1, "Wine"), line("COF", 450, 2, "Coffee")]),
            till.sold(ana, [line("CHEESE", 2_350, 3, "Cheese"), line("BREAD", 199, 5, "Bread"),
                            line("TEA", 300, 1, "Tea")]),
            till.sold(ana, [line("OIL", 1_500, 2, "Olive oil")], mode="credit"),
        ]
        shop.sales["bor"] = [till.sold(bor, [line("COF", 450, 1, "Coffee")]),
                             till.sold(bor, [line("JAM", 620, 2, "Jam")], mode="credit")]
        shop.stock_received = 7
        a.stock("GIFT-MUG", shop.stock_received)
        answer = a.redeem(ana, "GIFT-MUG")
        assert answer.status_code == 201, answer.text
        shop.handed_out = 1
        rig.settled()
        today = datetime.now(UTC).date()
        made = rig.hq.admin("POST", "/v1/admin/invoices/close", 201, json={
            "period_from": today.isoformat(), "period_to": (today + timedelta(days=1)).isoformat(),
            "issued_on": today.isoformat()})
        shop.invoice = next(m for m in made if m["customer_id"] == shop.customers["ana"]
                            ["customer_id"])
        yield shop
    finally:
        rig.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium and chromium-driver "
                    "(./install.sh --dev) to run the browser tests")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="loyalty-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1280,1000", "--lang=en-GB", "--force-device-scale-factor=1",
                # no internet: loopback is never proxied, everything else hits a closed port
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob("*"):
        old.unlink()
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
