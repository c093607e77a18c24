"""Desk accounts at an outlet (agent/deskstaff.py), in process on real database files: HQ's
accounts reach the outlet through the real feed and replica (hq/feed.py pull pages applied
by agent/replication.py), only desk accounts and only as hashes; a desk login is checked
with HQ gone, locks out after repeated failures, and stops working once HQ's withdrawal
or new password arrives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import deskstaff
from agent.deskstaff import DeskLogins
from agent.outlet import Outlet
from agent.replication import OutletReplica
from hq import credentials, feed, staff
from hq.audit import Actor
from hq.chain import Chain
from schema import passwords
from schema.errors import LoginFailed, LoginLocked
from schema.roles import DESK_ACCOUNT_KIND, Role
from schema.sync import Change, PullResponse

PASSWORD = "a long enough password"
ROOT = Actor("root", Role.administrator)


@pytest.fixture
def hq(tmp_path: Path) -> Iterator[Chain]:
    chain = Chain(tmp_path / "hq.db")
    with chain.db.write() as conn:
        credentials.add_outlet(conn, "A")
        staff.add(conn, "root", PASSWORD)
    yield chain
    chain.close()


@pytest.fixture
def outlet(tmp_path: Path) -> Iterator[Outlet]:
    shop = Outlet(tmp_path / "a.db", "A", chain=True)
    yield shop
    shop.close()


def pull(hq: Chain, outlet: Outlet) -> None:
    """Everything new in HQ's feed, applied to the outlet as its sync loop does."""
    replica = OutletReplica(outlet)
    while True:
        page = feed.pull(hq, "A", replica.cursor())
        replica.apply(page)
        if not page.more:
            return


def test_an_account_made_at_hq_signs_in_at_the_outlet_offline(hq: Chain, outlet: Outlet) -> None:
    staff.create(hq, ROOT, "clerk", Role.desk, PASSWORD)
    pull(hq, outlet)
    hq.close()  # HQ is gone: the desk signs people in all the same
    logins = DeskLogins(outlet.db)
    account = logins.sign_in("clerk", PASSWORD)
    assert (account.username, account.role) == ("clerk", Role.desk)
    assert logins.session_gen("clerk") == account.session_gen
    with pytest.raises(LoginFailed) as wrong:
        logins.sign_in("clerk", PASSWORD + "x")
    assert (wrong.value.code, wrong.value.status) == ("login_failed", 401)
    with pytest.raises(LoginFailed):
        logins.sign_in("nobody", PASSWORD)  # the same answer: no username is revealed


def test_back_office_accounts_never_reach_the_outlet(hq: Chain, outlet: Outlet) -> None:
    for name, role in (("ops", Role.operator), ("eyes", Role.viewer), ("boss", Role.administrator),
                       ("clerk", Role.desk)):
        staff.create(hq, ROOT, name, role, PASSWORD)
    pull(hq, outlet)
    assert [a["username"] for a in deskstaff.accounts(outlet.db)] == ["clerk"]
    stored = outlet.db.one("SELECT * FROM desk_accounts")
    assert stored is not None
    assert stored["password_hash"].startswith("scrypt$") and PASSWORD not in str(dict(stored))
    logins = DeskLogins(outlet.db)
    for name in ("root", "ops", "eyes", "boss"):
        with pytest.raises(LoginFailed):
            logins.sign_in(name, PASSWORD)


def test_a_page_naming_another_role_is_not_let_in(outlet: Outlet) -> None:
    """Whatever a page of the feed says, only a role that may use the desk is kept."""
    doc = {"username": "boss", "role": "administrator",
           "password_hash": passwords.hash_password(PASSWORD), "session_gen": 0}
    OutletReplica(outlet).apply(PullResponse(
        epoch="e1", cursor=1, head=1, incorporated_through=0, more=False,
        changes=[Change(kind=DESK_ACCOUNT_KIND, key="boss", seq=1, data=doc),
                 Change(kind=DESK_ACCOUNT_KIND, key="odd", seq=1, data={"role": 7})]))
    assert deskstaff.accounts(outlet.db) == []
    with pytest.raises(LoginFailed):
        DeskLogins(outlet.db).sign_in("boss", PASSWORD)


def test_repeated_failures_lock_the_username_out(hq: Chain, outlet: Outlet) -> None:
    staff.create(hq, ROOT, "clerk", Role.desk, PASSWORD)
    staff.create(hq, ROOT, "other", Role.desk, PASSWORD)
    pull(hq, outlet)
    logins = DeskLogins(outlet.db)
    for _ in range(passwords.LOGIN_FAILURES):
        with pytest.raises(LoginFailed):
            logins.sign_in("clerk", "a wrong password")
    with pytest.raises(LoginLocked) as locked:
        logins.sign_in("clerk", PASSWORD)  # even the right password, for the window
    assert (locked.value.code, locked.value.status) == ("login_locked", 429)
    assert logins.sign_in("other", PASSWORD).username == "other"


def test_hqs_changes_reach_the_desk_at_the_next_pull(hq: Chain, outlet: Outlet) -> None:
    staff.create(hq, ROOT, "clerk", Role.desk, PASSWORD)
    staff.create(hq, ROOT, "temp", Role.desk, PASSWORD)
    pull(hq, outlet)
    logins = DeskLogins(outlet.db)
    first = logins.sign_in("clerk", PASSWORD).session_gen
    staff.set_password(hq, ROOT, "clerk", PASSWORD + "!", "forgot it")
    staff.set_disabled(hq, ROOT, "temp", True, "left")
    assert logins.sign_in("temp", PASSWORD).username == "temp"  # until the next pull
    pull(hq, outlet)
    with pytest.raises(LoginFailed):
        logins.sign_in("clerk", PASSWORD)
    assert logins.sign_in("clerk", PASSWORD + "!").session_gen > first  # desk sessions end
    with pytest.raises(LoginFailed):
        logins.sign_in("temp", PASSWORD)
    assert logins.session_gen("temp") is None
    staff.set_role(hq, ROOT, "clerk", Role.operator, "moved to head office")
    pull(hq, outlet)
    assert deskstaff.accounts(outlet.db) == []


def test_a_copy_into_an_outlet_database_gives_what_a_pull_gives(
        hq: Chain, outlet: Outlet, tmp_path: Path) -> None:
    """`staff.desk_accounts_copy`: a snapshot of the chain (an outlet database built from
    HQ's file) holds the same desk accounts as an outlet that pulled from cursor 0."""
    staff.create(hq, ROOT, "clerk", Role.desk, PASSWORD)
    staff.create(hq, ROOT, "gone", Role.desk, PASSWORD)
    staff.create(hq, ROOT, "ops", Role.operator, PASSWORD)
    staff.set_disabled(hq, ROOT, "gone", True)
    pull(hq, outlet)
    copy = Outlet(tmp_path / "copy.db", "A", chain=True)
    try:
        with copy.db.write() as conn:
            conn.execute("ATTACH DATABASE ? AS hq", (str(hq.db.path),))
            conn.execute(staff.desk_accounts_copy())
        copy.db.conn.execute("DETACH DATABASE hq")
        assert deskstaff.accounts(copy.db) == deskstaff.accounts(outlet.db) != []
        assert DeskLogins(copy.db).sign_in("clerk", PASSWORD).username == "clerk"
    finally:
        copy.close()
