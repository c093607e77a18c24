"""A desk account made at HQ signs in at an outlet with HQ gone (agent/deskstaff.py): HQ
and outlet A as real processes (`loyalty hq serve`, `loyalty agent serve`), the account
made by an administrator on HQ's staff page over HTTP, carried to A by A's own sync loop,
then checked against A's database file once HQ has stopped."""

from __future__ import annotations

import re

import pytest
import requests
from chainkit import ChainRig, cli, until
from testkit import read_only

from agent.deskstaff import DeskLogins
from agent.outlet import Outlet
from schema.errors import LoginFailed

pytestmark = pytest.mark.timeout(180)
PASSWORD = "correct horse battery staple"
CLERK_PASSWORD = "the desk's own password"


def csrf(page: requests.Response) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert found, page.text[:500]
    return found.group(1)


def test_an_account_made_at_hq_signs_in_at_the_outlet_offline(rig: ChainRig) -> None:
    made = cli("hq", "staff-add", "--db", str(rig.hq.db), "--password-stdin", "root",
               input=PASSWORD + "\n")  # the first administrator, on HQ's machine
    assert made.returncode == 0, made.stderr
    rig.start(("A",))
    office, browser = rig.hq.url + "/office", requests.Session()
    signed_in = browser.post(f"{office}/login", data={"username": "root", "password": PASSWORD},
                             timeout=15)
    assert signed_in.status_code == 200 and "Log out" in signed_in.text
    made = browser.post(f"{office}/staff", timeout=15, data={
        "csrf": csrf(browser.get(f"{office}/staff", timeout=15)), "username": "clerk",
        "role": "desk", "password": CLERK_PASSWORD, "again": CLERK_PASSWORD,
        "reason": "reception desk at A"})
    assert made.status_code == 200 and 'id="done"' in made.text, made.text[:500]

    def replicated() -> bool:
        with read_only(rig.outlets["A"].db) as conn:
            return conn.execute("SELECT COUNT(*) FROM desk_accounts").fetchone()[0] == 1

    until(replicated, 20, what="A has the desk account")  # a long poll: well under 20 s
    rig.hq.stop()
    rig.outlets["A"].stop()
    outlet = Outlet(rig.outlets["A"].db)
    try:
        logins = DeskLogins(outlet.db)
        assert logins.sign_in("clerk", CLERK_PASSWORD).role == "desk"
        with pytest.raises(LoginFailed):
            logins.sign_in("root", PASSWORD)  # a back-office account never left HQ
    finally:
        outlet.close()
