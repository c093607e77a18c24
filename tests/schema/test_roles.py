"""The role table (schema/roles.py): who may do what in HQ's back office and at the desk,
and the password checks and lock-out both sides share (schema/passwords.py)."""

from __future__ import annotations

import time

import pytest

from schema import passwords
from schema.errors import InvalidRequest
from schema.roles import (
    DESK_ROLES,
    OFFICE_ROLES,
    ROLES,
    DeskAccount,
    Role,
    may,
    may_use_desk,
    role_of,
)

# (held, needed) -> allowed, written out: the table the docs promise (docs/backoffice.md)
EXPECTED = {
    (Role.viewer, Role.viewer): True,
    (Role.viewer, Role.operator): False,
    (Role.viewer, Role.administrator): False,
    (Role.operator, Role.viewer): True,
    (Role.operator, Role.operator): True,
    (Role.operator, Role.administrator): False,
    (Role.administrator, Role.viewer): True,
    (Role.administrator, Role.operator): True,
    (Role.administrator, Role.administrator): True,
    (Role.desk, Role.viewer): False,
    (Role.desk, Role.operator): False,
    (Role.desk, Role.administrator): False,
}


def test_the_back_office_roles_are_a_ladder_and_desk_opens_no_page() -> None:
    for (held, needed), allowed in EXPECTED.items():
        assert may(held, needed) is allowed, (held, needed)
        assert may(str(held), needed) is allowed  # as read from the database
    assert OFFICE_ROLES == (Role.viewer, Role.operator, Role.administrator)
    assert set(ROLES) == set(Role)


def test_only_desk_accounts_may_use_the_desk() -> None:
    assert DESK_ROLES == {Role.desk}
    assert [r for r in Role if may_use_desk(r)] == [Role.desk]
    assert may_use_desk("desk") and not may_use_desk("administrator")


def test_an_unknown_or_missing_role_opens_nothing() -> None:
    for held in (None, "", "root", "Administrator"):
        assert not any(may(held, needed) for needed in OFFICE_ROLES)
        assert not may_use_desk(held)
    with pytest.raises(InvalidRequest, match="choose one of administrator, operator, viewer, desk"):
        role_of("root")
    assert role_of("operator") is Role.operator


def test_a_desk_account_document_carries_a_hash_and_tolerates_new_fields() -> None:
    doc = DeskAccount.model_validate({"username": "clerk", "role": "desk",
                                      "password_hash": "scrypt$1$2$3$aa$bb", "session_gen": 2,
                                      "outlets": ["A"]})  # a field a newer HQ may add
    assert doc.role is Role.desk and "password" not in DeskAccount.model_fields


def test_a_password_check_spends_the_same_work_for_an_unknown_account() -> None:
    stored = passwords.hash_password("a long enough password")
    assert passwords.check("a long enough password", stored)
    assert not passwords.check("a long enough passwore", stored)
    assert not passwords.check("a long enough password", None)
    started = time.perf_counter()
    passwords.check("anything at all", None)
    unknown = time.perf_counter() - started
    started = time.perf_counter()
    passwords.check("anything at all", stored)
    known = time.perf_counter() - started
    assert unknown > known / 4  # scrypt ran for the unknown name too (not a shortcut)


def test_the_throttle_locks_a_username_after_repeated_failures_only() -> None:
    throttle = passwords.Throttle(failures=3, window_s=60)
    for _ in range(3):
        assert not throttle.throttled("clerk")
        throttle.failed("clerk")
    assert throttle.throttled("clerk") and not throttle.throttled("other")
    throttle.succeeded("clerk")
    assert not throttle.throttled("clerk")
    quick = passwords.Throttle(failures=1, window_s=0.05)
    quick.failed("clerk")
    assert quick.throttled("clerk")
    time.sleep(0.06)
    assert not quick.throttled("clerk")  # the window passed
